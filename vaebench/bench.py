"""``vaebench bench``: throughput of each model through the harness *and* through a plain
reference of the same network, measured so that the comparison can be trusted.

For every model it measures, in samples per second:

- **train**: the harness's ``model.fit`` for one epoch over the training window (``epochs=1`` and
  the chosen ``batch_size`` where the model has those hyperparameters), as ``vaebench run``
  trains it;
- **encode** / **decode**: ``model.encode`` on a batch of test images and ``model.decode`` on
  their codes;

and the same three for a **reference**: the plain loop anyone would write around the model's
*own* training step (:class:`LoopReference`), on a copy of the model built from the registry
with the same weights -- shuffle, slice, the model's own ``loss``, ``backward``, the model's own
optimiser (one ``backward(inputs=...)`` per optimiser for a model with several, e.g. ``aae``,
``acai``) -- with the same batch size; encode/decode call the copy's networks bare. Nothing here
copies a model's loss or imports a model class: every torch model with a ``loss`` (a plugin's
too) gets this reference, and the ratio measures what the shared loop adds around the step. A
linear projection model (``mean`` and ``components``, e.g. ``pca``) is compared with
scikit-learn's randomized PCA (:class:`PcaReference`: plain matmuls for encode/decode). Any other
model gets the harness columns only.

**How.** Harness and reference run in alternating order (harness first in even repeats,
reference first in odd ones) for ``repeats`` rounds, so that a slow spell of a shared machine
falls on both; each window is preceded by warm-up calls and lasts at least ``window_s`` (a train
window repeats the epoch until it does); CUDA is synchronised before every clock read. Reported:
the median over repeats of each rate and of the paired ratio ``harness / reference``, and the
spread ``(max - min) / (2 median)``. A spread above :data:`BUSY_SPREAD` means the machine was
busy or the windows too short: the result carries a warning and should be measured again.

**Efficiency.** One training step is traced (:class:`torch.utils.flop_counter.FlopCounterMode`)
and the matrix products it performs (``mm``, ``addmm``, ``bmm``, convolutions, with their shapes
and strides) are replayed alone: their rate is what this machine's BLAS reaches on *this model's*
shapes, and ``fraction = achieved / replay`` says how much of the step is spent outside them.

**Memory.** On CUDA the peak of ``torch.cuda.max_memory_allocated`` during a model's
measurement; on Linux CPUs the peak resident set size of the process during it (``VmHWM``,
reset through ``/proc/self/clear_refs``: it includes the dataset and the libraries); elsewhere
the process's lifetime peak (``ru_maxrss``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from vaebench.dataset import Dataset
from vaebench.errors import ConfigError
from vaebench.train import autocast, torch_threads

if TYPE_CHECKING:
    from vaebench.plugins import Registry

__all__ = [
    "SCHEMA",
    "BUSY_SPREAD",
    "BenchConfig",
    "LoopReference",
    "PcaReference",
    "reference_for",
    "run_bench",
    "summarize",
    "default_threads",
    "format_table",
]

SCHEMA = "vaebench.bench/1"

#: Relative half-range of the repeats above which a measurement is flagged as disturbed.
BUSY_SPREAD = 0.10

#: ``wall``: elapsed time (``time.perf_counter``), what a user waits for; ``cpu``: CPU time of
#: the whole process (``time.process_time``), which a busy machine disturbs far less -- for the
#: CPU device only (it cannot see GPU work).
CLOCKS = ("wall", "cpu")

#: Operators replayed to measure the matrix-product rate of a model's shapes.
_PRODUCT_OPS = ("mm", "addmm", "bmm", "baddbmm", "convolution", "convolution_backward")


def default_threads(device: torch.device) -> int:
    """Threads per worker that ``vaebench run`` uses by default for a full grid (one worker per
    core on the CPU, one per GPU on CUDA; :func:`vaebench.executors.plan_workers`)."""
    from vaebench.executors import plan_workers

    n_gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    return plan_workers(10**6, device.type, n_gpus=n_gpus, busy=0).threads


@dataclasses.dataclass
class BenchConfig:
    """What to measure. ``models=None``: every built-in model. ``train_samples=None``: the whole
    training split (one epoch per train call). ``threads=None``: :func:`default_threads`."""

    models: list[str] | None = None
    dataset: str = "digits"
    device: str = "auto"
    threads: int | None = None
    batch_size: int = 256
    eval_batch_size: int = 1024
    repeats: int = 5
    train_samples: int | None = None
    latent_dim: int | None = None
    window_s: float = 1.0
    clock: str = "wall"

    def check(self) -> None:
        """Raise :class:`vaebench.errors.ConfigError` naming the first bad value."""
        for name in ("batch_size", "eval_batch_size", "repeats", "threads", "train_samples"):
            v = getattr(self, name)
            if v is None and name in ("threads", "train_samples"):
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.repeats < 3:
            raise ConfigError(
                f"repeats must be at least 3 to estimate a spread, got {self.repeats}"
            )
        if self.latent_dim is not None and (
            isinstance(self.latent_dim, bool)
            or not isinstance(self.latent_dim, int)
            or self.latent_dim < 1
        ):
            raise ConfigError(f"latent_dim must be a positive integer, got {self.latent_dim!r}")
        if self.clock not in CLOCKS:
            raise ConfigError(f"unknown clock {self.clock!r}; valid: {', '.join(CLOCKS)}")
        if not (isinstance(self.window_s, (int, float)) and 0 < self.window_s <= 60):
            raise ConfigError(f"window_s must be in (0, 60] seconds, got {self.window_s!r}")


def summarize(values: list[float]) -> dict[str, Any]:
    """``{"median", "spread", "values"}``; ``spread = (max - min) / (2 median)`` (the relative
    half-range: 0.05 reads as +-5 %), NaN for fewer than two finite values."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"median": float("nan"), "spread": float("nan"), "values": list(values)}
    med = statistics.median(finite)
    spread = (max(finite) - min(finite)) / (2 * med) if len(finite) > 1 and med > 0 else math.nan
    return {"median": med, "spread": spread, "values": list(values)}


# ------------------------------------------------------------------------------- references
def _losses_of(model: Any, x: Tensor, y: Tensor | None) -> Any:
    """The model's own ``loss`` of one batch (``loss(x, y)`` with labels)."""
    return model.loss(x) if y is None else model.loss(x, y)


def _entry(losses: Any, key: str) -> Tensor:
    """Entry ``key`` of what ``loss`` returned (a dict), or the tensor itself."""
    return losses[key] if isinstance(losses, dict) else losses


class LoopReference:
    """The plain loop anyone would write around a torch model's *own* training step, on a copy of
    the model (same weights, same settings): per call one epoch -- a shuffled index, batches of
    the model's ``batch_size`` (a last batch of one skipped), the model's own ``loss`` (under the
    same bf16 autocast on CUDA), ``zero_grad``, ``backward``, ``step`` -- with the model's own
    optimiser: ``configure_optimizer()``, else Adam at the model's ``lr``. A model with several
    optimisers (``configure_optimizers()``, e.g. ``aae``, ``acai``) gets one
    ``backward(inputs=...)`` per optimiser into that optimiser's parameters, then every optimiser
    steps. No vaebench loop code and no copy of any loss: what the ratio measures is what the
    shared loop adds around the model's step.

    ``encode``/``decode``: the copy's networks called bare under ``torch.inference_mode`` where
    the model exposes them (``encoder_outputs``/``code`` and ``decoder_logits`` + sigmoid, as
    :class:`vaebench.nn.TorchAutoencoder`), else the copy's own ``encode``/``decode``."""

    description = "plain loop of the model's own loss/step: shuffle, slice, backward, its optimiser"

    def __init__(self, model: Any) -> None:
        self.model = copy.deepcopy(model).eval()
        self.device: torch.device = model.device
        self.batch_size = int(model.batch_size)
        self.shape = tuple(model.input_shape)
        self._bare = all(
            callable(getattr(model, a, None)) for a in ("encoder_outputs", "code", "decoder_logits")
        )

    def _optimisers(self) -> list[tuple[torch.optim.Optimizer, str, list[Tensor] | None]]:
        """``(optimiser, loss entry, parameters or None)`` per optimiser of the copy."""
        m = self.model
        multi = getattr(m, "configure_optimizers", None)
        steps = multi() if callable(multi) else None
        if steps:
            return [
                (s.optimizer, s.loss, [p for g in s.optimizer.param_groups for p in g["params"]])
                for s in steps
            ]
        if callable(getattr(m, "configure_optimizer", None)):
            return [(m.configure_optimizer(), "loss", None)]
        lr = float(getattr(m, "lr", 1e-3))
        return [(torch.optim.Adam(m.parameters(), lr=lr), "loss", None)]

    def train(self, x: Tensor, y: Tensor | None = None) -> int:
        """One epoch over images ``x`` ``(N, C, H, W)`` (labels ``y`` ``(N,)`` passed to the
        loss when given); returns ``N``, the samples processed."""
        m = self.model
        steps = self._optimisers()
        last = len(steps) - 1
        m.train()
        n = x.shape[0]
        perm = torch.randperm(n, device=self.device)
        for i in range(0, n, self.batch_size):
            idx = perm[i : i + self.batch_size]
            if idx.shape[0] < 2:
                continue
            with autocast(self.device):
                losses = _losses_of(m, x[idx], None if y is None else y[idx])
            for opt, _, _ in steps:
                opt.zero_grad(set_to_none=True)
            for k, (_, key, params) in enumerate(steps):
                _entry(losses, key).backward(inputs=params, retain_graph=k < last)
            for opt, _, _ in steps:
                opt.step()
        m.eval()
        return n

    def encode(self, x: Tensor) -> Tensor:
        """Codes ``(N, latent_dim)`` of images ``(N, C, H, W)`` from the copy's bare encoder."""
        m = self.model
        with torch.inference_mode():
            return m.code(m.encoder_outputs(x)) if self._bare else m.encode(x)

    def decode(self, z: Tensor) -> Tensor:
        """Images ``(N, C, H, W)`` in ``[0, 1]`` of codes ``(N, latent_dim)``, from the copy's
        bare decoder."""
        m = self.model
        with torch.inference_mode():
            if not self._bare:
                return m.decode(z)
            return torch.sigmoid(m.decoder_logits(z)).reshape(z.shape[0], *self.shape)


class PcaReference:
    """For a linear projection model (tensors ``mean`` ``(D,)`` and ``components`` ``(k, D)``,
    no loss): scikit-learn's ``PCA(svd_solver="randomized")`` for fitting (limited to the same
    number of BLAS threads); encode and decode as plain matrix products with the model's fitted
    components."""

    description = "scikit-learn PCA(svd_solver='randomized'); plain matmul encode/decode"

    def __init__(self, model: Any, threads: int) -> None:
        self.model = model
        self.threads = threads
        self._host: tuple[tuple[Any, ...], Any] | None = None

    def train(self, x: Tensor, y: Tensor | None = None) -> int:
        """Fit scikit-learn's PCA to images ``x`` ``(N, C, H, W)`` (``y`` unused); returns ``N``."""
        from sklearn.decomposition import PCA as SkPCA
        from threadpoolctl import threadpool_limits

        key = (x.device, x.data_ptr(), tuple(x.shape))
        if self._host is None or self._host[0] != key:  # host copy made once, outside windows
            self._host = (key, x.reshape(x.shape[0], -1).cpu().numpy())
        flat = self._host[1]
        with threadpool_limits(self.threads):
            SkPCA(n_components=self.model.latent_dim, svd_solver="randomized", random_state=0).fit(
                flat
            )
        return int(x.shape[0])

    def encode(self, x: Tensor) -> Tensor:
        m = self.model
        with torch.inference_mode():
            return (x.reshape(x.shape[0], -1) - m.mean) @ m.components.T

    def decode(self, z: Tensor) -> Tensor:
        m = self.model
        with torch.inference_mode():
            out = (z @ m.components + m.mean).clamp(0, 1)
            return out.reshape(z.shape[0], *m.input_shape)


Reference = LoopReference | PcaReference


def _is_linear_projection(model: Any) -> bool:
    return not isinstance(model, nn.Module) and all(
        isinstance(getattr(model, a, None), Tensor) for a in ("mean", "components")
    )


def reference_for(model: Any, threads: int = 1) -> Reference | str:
    """The reference of ``model``, or a string saying why it has none: a torch module with its
    own ``loss`` gets :class:`LoopReference`, a linear projection (``mean``, ``components``)
    :class:`PcaReference`, any other model the harness columns only."""
    if isinstance(model, nn.Module) and callable(getattr(model, "loss", None)):
        return LoopReference(model)
    if _is_linear_projection(model):
        return PcaReference(model, threads)
    return (
        f"no plain reference for {type(model).__name__}: neither a torch module with its own "
        "loss() nor a linear projection (harness columns only)"
    )


# ------------------------------------------------------------------------------- measuring
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclasses.dataclass(frozen=True)
class _Timer:
    device: torch.device
    clock: Callable[[], float]

    def __call__(self, fn: Callable[[], Any], calls: int) -> float:
        """Seconds taken by ``calls`` calls of ``fn`` (CUDA synchronised at both ends)."""
        _sync(self.device)
        start = self.clock()
        for _ in range(calls):
            fn()
        _sync(self.device)
        return max(self.clock() - start, 1e-9)

    def calls_for(self, fn: Callable[[], Any], window_s: float) -> int:
        """Warm ``fn`` up (two calls) and return how many calls fill ``window_s``."""
        fn()
        return max(1, math.ceil(window_s / self(fn, 1)))


@dataclasses.dataclass(frozen=True)
class _TensorMeta:
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype

    def make(self, device: torch.device) -> Tensor:
        t = torch.empty_strided(self.shape, self.stride, dtype=self.dtype, device=device)
        return t.normal_() if self.dtype.is_floating_point else t.zero_()


class _ProductRecorder(torch.utils._python_dispatch.TorchDispatchMode):
    """Records every matrix product (op, argument shapes and strides) that passes through."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[Any, Any]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func.overloadpacket.__name__ in _PRODUCT_OPS:
            meta = torch.utils._pytree.tree_map_only(
                Tensor, lambda t: _TensorMeta(tuple(t.shape), tuple(t.stride()), t.dtype),
                (args, kwargs),
            )  # fmt: skip
            self.ops.append((func, meta))
        return func(*args, **kwargs)


def _materialise(meta: Any, device: torch.device) -> Any:
    return torch.utils._pytree.tree_map_only(_TensorMeta, lambda m: m.make(device), meta)


@dataclasses.dataclass
class _Products:
    flops_per_sample: float
    replay: Callable[[], None]
    replay_flops: float


def _trace_products(step: Callable[[], Any], batch: int, device: torch.device) -> _Products:
    """FLOPs per sample of ``step`` and a function replaying its matrix products alone."""
    from torch.utils.flop_counter import FlopCounterMode

    recorder = _ProductRecorder()
    counter = FlopCounterMode(display=False)
    with counter, recorder:
        step()
    flops = counter.get_total_flops()
    calls = [(func, *_materialise(meta, device)) for func, meta in recorder.ops]

    def replay() -> None:
        for func, a, k in calls:
            func(*a, **k)

    replay_counter = FlopCounterMode(display=False)
    with replay_counter:
        replay()
    return _Products(flops / batch, replay, float(replay_counter.get_total_flops()))


class _PeakMemory:
    """Peak memory during a block: CUDA allocator peak, or the process's resident-set peak."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda_allocated"
        if device.type != "cuda":
            self.kind = "rss" if os.path.exists("/proc/self/clear_refs") else "rss_lifetime"

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.kind == "rss":
            try:
                with open("/proc/self/clear_refs", "w") as fh:
                    fh.write("5")
            except OSError:
                self.kind = "rss_lifetime"

    def peak_mib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.kind == "rss":
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------- one model
def _build(
    registry: Registry, name: str, shape: tuple[int, ...], device: torch.device, cfg: BenchConfig
) -> tuple[Any, dict[str, Any]]:
    """The model ``name`` from the registry with one epoch per fit and the bench's batch size
    and code size where it has those hyperparameters; and those settings."""
    spec = registry.model(name).spec
    defaults = spec.defaults()
    params: dict[str, Any] = {}
    if "epochs" in defaults:
        params["epochs"] = 1
    if "batch_size" in defaults:
        params["batch_size"] = cfg.batch_size
    if cfg.latent_dim is not None and "latent_dim" in defaults:
        params["latent_dim"] = cfg.latent_dim
    torch.manual_seed(0)
    return spec.create(shape, device=device, **params), params


def _train_step(model: Any, batch: Tensor) -> Callable[[], Any] | None:
    """One forward and backward pass of a model with a ``loss(x)`` method, else ``None``."""
    loss_of = getattr(model, "loss", None)
    if not (callable(loss_of) and isinstance(model, nn.Module)):
        return None

    def step() -> None:
        model.train()
        with autocast(batch.device):
            loss = _entry(loss_of(batch), "loss")
        loss.backward()
        model.zero_grad(set_to_none=True)

    return step


@dataclasses.dataclass
class _Job:
    """One measured quantity: the harness's call and the reference's (``None``: no reference),
    calls per timed window, and samples per call of each."""

    harness: Callable[[], Any]
    reference: Callable[[], Any] | None
    calls: int
    per_call: int
    ref_per_call: int


@dataclasses.dataclass
class _Data:
    """The model's slices of the dataset, on the device."""

    x_train: Tensor
    y_train: Tensor | None
    x_eval: Tensor

    @classmethod
    def of(cls, ds: Dataset, model: Any, device: torch.device, cfg: BenchConfig) -> _Data:
        n = (
            len(ds.x_train)
            if cfg.train_samples is None
            else min(cfg.train_samples, len(ds.x_train))
        )
        y = None
        if model.tags.uses_labels and ds.y_train is not None:
            y = ds.y_train[:n].to(device)
        return cls(ds.x_train[:n].to(device), y, ds.x_test[: cfg.eval_batch_size].to(device))


def _calibrate(
    model: Any, ref: Reference | str, data: _Data, timed: _Timer, cfg: BenchConfig
) -> dict[str, _Job]:
    """Warm both sides up (a slice, then a whole epoch, which also fits encode/decode) and size
    each window: the train, encode and decode jobs."""
    x, y, x_eval = data.x_train, data.y_train, data.x_eval
    seen: list[int] = []  # samples per fit, as the model reports them (its epochs may be fixed)

    def harness_train() -> None:
        seen.append((model.fit(x) if y is None else model.fit(x, y)).samples_seen)

    warm = x[: min(len(x), 8 * cfg.batch_size)]
    model.fit(warm) if y is None else model.fit(warm, y[: len(warm)])
    train_calls = max(1, math.ceil(cfg.window_s / timed(harness_train, 1)))
    z_eval = model.encode(x_eval)
    enc_calls = timed.calls_for(lambda: model.encode(x_eval), cfg.window_s / 4)
    dec_calls = timed.calls_for(lambda: model.decode(z_eval), cfg.window_s / 4)
    r = None if isinstance(ref, str) else ref
    if r is None:
        refs: list[Callable[[], Any] | None] = [None, None, None]
    else:
        r.train(warm, None if y is None else y[: len(warm)])
        r.train(x, y)
        r.encode(x_eval), r.decode(z_eval)
        refs = [lambda: r.train(x, y), lambda: r.encode(x_eval), lambda: r.decode(z_eval)]
    e = len(x_eval)
    return {
        "train": _Job(harness_train, refs[0], train_calls, seen[-1], len(x)),
        "encode": _Job(lambda: model.encode(x_eval), refs[1], enc_calls, e, e),
        "decode": _Job(lambda: model.decode(z_eval), refs[2], dec_calls, e, e),
    }


def _measure(
    jobs: dict[str, _Job], products: _Products | None, timed: _Timer, cfg: BenchConfig
) -> tuple[dict[str, dict[str, list[float]]], list[float]]:
    """Rates per repeat (samples/s) of every job, harness and reference in alternating order,
    and the matrix-product replay's GFLOP/s."""
    rates: dict[str, dict[str, list[float]]] = {
        what: {"harness": [], "reference": []} for what in jobs
    }
    replay_rates: list[float] = []
    prod_calls = timed.calls_for(products.replay, cfg.window_s / 4) if products else 0
    for r in range(cfg.repeats):
        for what, job in jobs.items():
            order = [
                ("harness", job.harness, job.per_call),
                ("reference", job.reference, job.ref_per_call),
            ]
            for who, fn, per_call in order[:: -1 if r % 2 else 1]:
                if fn is not None:
                    rates[what][who].append(job.calls * per_call / timed(fn, job.calls))
        if products is not None:
            seconds = timed(products.replay, prod_calls)
            replay_rates.append(prod_calls * products.replay_flops / seconds / 1e9)
    return rates, replay_rates


def _flops(
    products: _Products | None, train_rates: list[float], replay_rates: list[float]
) -> dict[str, Any] | None:
    if products is None:
        return None
    achieved = [products.flops_per_sample * v / 1e9 for v in train_rates]
    return {
        "train_flops_per_sample": products.flops_per_sample,
        "achieved_gflops": summarize(achieved),
        "matmul_gflops": summarize(replay_rates),
        "fraction": summarize([a / b for a, b in zip(achieved, replay_rates, strict=True)]),
    }


def bench_model(
    registry: Registry,
    name: str,
    ds: Dataset,
    device: torch.device,
    cfg: BenchConfig,
    threads: int,
) -> dict[str, Any]:
    """Measure one model (see the module docstring); returns its JSON record."""
    timed = _Timer(device, _CLOCK[cfg.clock])
    memory = _PeakMemory(device)
    memory.reset()
    model, params = _build(registry, name, ds.shape, device, cfg)
    data = _Data.of(ds, model, device, cfg)
    ref = reference_for(model, threads)
    jobs = _calibrate(model, ref, data, timed, cfg)
    n = len(data.x_train)
    step = _train_step(model, data.x_train[: cfg.batch_size])
    products = None if step is None else _trace_products(step, min(cfg.batch_size, n), device)
    rates, replay_rates = _measure(jobs, products, timed, cfg)
    record: dict[str, Any] = {
        "model": name,
        "status": "ok",
        "params": params,
        "n_params": int(model.n_params),
        "reference": None if isinstance(ref, str) else ref.description,
        "reference_note": ref if isinstance(ref, str) else None,
        "train_samples": n,
        "samples_per_fit": jobs["train"].per_call,
        "calls_per_window": {what: job.calls for what, job in jobs.items()},
    }
    for what in jobs:
        h, rr = rates[what]["harness"], rates[what]["reference"]
        record[what] = {
            "harness": summarize(h),
            "reference": summarize(rr) if rr else None,
            "ratio": summarize([a / b for a, b in zip(h, rr, strict=True)]) if rr else None,
        }
    record["flops"] = _flops(products, rates["train"]["harness"], replay_rates)
    record["peak_memory_mib"] = memory.peak_mib()
    record["peak_memory_kind"] = memory.kind
    record["busy"] = _busy(record)
    return record


def _busy(record: dict[str, Any]) -> list[str]:
    """Names of the quantities whose spread exceeds :data:`BUSY_SPREAD`."""
    out = []
    for what in ("train", "encode", "decode"):
        for key in ("ratio", "harness"):
            s = record[what][key]
            if s is not None and math.isfinite(s["spread"]) and s["spread"] > BUSY_SPREAD:
                out.append(f"{what} {key}")
                break
    return out


# ------------------------------------------------------------------------------- the run


def resolve(cfg: BenchConfig, registry: Registry) -> tuple[list[str], torch.device]:
    """Check ``cfg`` against the registry; raise :class:`ConfigError` naming the bad value."""
    from vaebench.plugins import BUILTIN_DIST, UnknownNameError
    from vaebench.train import select_device

    cfg.check()
    try:
        device = select_device(cfg.device)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if cfg.clock == "cpu" and device.type != "cpu":
        raise ConfigError(
            f"clock 'cpu' cannot time work on {device}; use clock 'wall' (the default)"
        )
    if cfg.models is None:
        names = [k for k, v in registry.models.items() if v.dist == BUILTIN_DIST]
    else:
        names = list(dict.fromkeys(cfg.models))
        if not names:
            raise ConfigError("no model given; valid: " + ", ".join(sorted(registry.models)))
    for name in [*names]:
        try:
            registry.model(name)
        except UnknownNameError as exc:
            raise ConfigError(str(exc).strip("'\"")) from None
    try:
        registry.dataset(cfg.dataset)
    except UnknownNameError as exc:
        raise ConfigError(str(exc).strip("'\"")) from None
    return names, device


def run_bench(
    cfg: BenchConfig,
    registry: Registry | None = None,
    echo: Callable[[str], None] | None = None,
    on_update: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Measure every model of ``cfg``; return the JSON-ready result (schema :data:`SCHEMA`).

    Raises :class:`ConfigError` for bad settings, an unknown model or dataset, and
    :class:`vaebench.errors.DatasetError` when the dataset cannot be loaded. A model that fails
    while being measured gets ``status: "failed"`` and its ``error``; the others still run.
    ``echo`` receives a table line per finished model; ``on_update`` the result so far (with
    ``"complete": False`` until the last model), e.g. to save partial results.
    """
    from vaebench.dataset import DatasetError
    from vaebench.environment import environment, now_iso
    from vaebench.plugins import get_registry

    registry = registry if registry is not None else get_registry()
    names, device = resolve(cfg, registry)
    threads = cfg.threads if cfg.threads is not None else default_threads(device)
    try:
        ds = registry.dataset(cfg.dataset).spec.load()
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - a loader's bug or a missing file: one line
        raise DatasetError(
            f"cannot load dataset {cfg.dataset!r}: {type(exc).__name__}: {exc}"
        ) from exc
    load = os.getloadavg if hasattr(os, "getloadavg") else lambda: None
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "created": now_iso(),
        "complete": False,
        "dataset": cfg.dataset,
        "image_shape": list(ds.shape),
        "device": str(device),
        "threads": threads,
        "batch_size": cfg.batch_size,
        "eval_batch_size": cfg.eval_batch_size,
        "repeats": cfg.repeats,
        "window_s": cfg.window_s,
        "clock": cfg.clock,
        "load_average": {"before": load(), "after": None},
        "environment": environment(device),
        "models": [],
        "warnings": [],
    }
    with torch_threads(threads):
        for name in names:
            try:
                rec = bench_model(registry, name, ds, device, cfg, threads)
            except Exception as exc:  # noqa: BLE001 - one broken model must not hide the others
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())
                rec = {"model": name, "status": "failed", "error": reason}
            result["models"].append(rec)
            if rec.get("busy"):
                result["warnings"].append(
                    f"{name}: spread above ±{BUSY_SPREAD:.0%} in {', '.join(rec['busy'])}: the "
                    "machine was busy (or the windows too short); measure again on a quiet "
                    "machine"
                )
            result["load_average"]["after"] = load()
            result["complete"] = name == names[-1]
            if echo is not None:
                echo(format_row(rec))
            if on_update is not None:
                on_update(result)
    return result


# ------------------------------------------------------------------------------- printing
def _rate(s: dict[str, Any] | None) -> str:
    if s is None or not math.isfinite(s["median"]):
        return "-"
    v = s["median"]
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}k" if v >= 1e3 else f"{v:.0f}"


def _ratio(s: dict[str, Any] | None) -> str:
    if s is None or not math.isfinite(s["median"]):
        return "-"
    spread = f"±{s['spread']:.0%}" if math.isfinite(s["spread"]) else ""
    return f"{s['median']:.2f}{spread}"


_COLUMNS = (
    ("model", 10), ("train/s", 8), ("ref", 8), ("ratio", 9), ("encode/s", 8), ("ref", 8),
    ("ratio", 9), ("decode/s", 8), ("ref", 8), ("ratio", 9), ("GFLOP/s", 8), ("mm", 6),
    ("frac", 5), ("peakMiB", 7),
)  # fmt: skip


def format_header() -> str:
    return " ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(_COLUMNS))


def format_row(rec: dict[str, Any]) -> str:
    """One table line for a model record (``FAILED: reason`` for a failed model)."""
    if rec["status"] != "ok":
        return f"{rec['model']:<10} FAILED: {rec['error']}"
    cells = [rec["model"]]
    for what in ("train", "encode", "decode"):
        cells += [
            _rate(rec[what]["harness"]),
            _rate(rec[what]["reference"]),
            _ratio(rec[what]["ratio"]),
        ]
    f = rec.get("flops")
    if f:
        cells += [
            f"{f['achieved_gflops']['median']:.1f}",
            f"{f['matmul_gflops']['median']:.0f}",
            f"{f['fraction']['median']:.2f}",
        ]
    else:
        cells += ["-", "-", "-"]
    cells.append(f"{rec['peak_memory_mib']:.0f}")
    return " ".join(
        f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
        for i, (c, (_, w)) in enumerate(zip(cells, _COLUMNS, strict=True))
    )


def format_table(result: dict[str, Any]) -> str:
    """The whole result as text: a setup line, the header, one row per model, the notes."""
    lines = [
        f"{result['dataset']} {tuple(result['image_shape'])} on {result['device']}, "
        f"{result['threads']} thread(s), batch {result['batch_size']}, "
        f"encode/decode batch {result['eval_batch_size']}, median of {result['repeats']} "
        f"interleaved repeats, {result['clock']} clock (ratio = harness / reference, "
        "± = half-range)",
        format_header(),
        *(format_row(r) for r in result["models"]),
    ]
    for rec in result["models"]:
        if rec["status"] == "ok" and rec.get("reference_note"):
            lines.append(f"note: {rec['model']}: {rec['reference_note']}")
    lines += [f"warning: {w}" for w in result["warnings"]]
    return "\n".join(lines)
