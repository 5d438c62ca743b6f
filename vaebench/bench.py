"""``vaebench bench``: throughput of each model through the harness *and* through a plain
reference of the same network, measured so that the comparison can be trusted.

For every model it measures, in samples per second:

- **train**: the harness's ``model.fit`` for one epoch over the training window (``epochs=1`` and
  the chosen ``batch_size`` where the model has those hyperparameters), as ``vaebench run``
  trains it;
- **encode** / **decode**: ``model.encode`` on a batch of test images and ``model.decode`` on
  their codes;

and the same three for a **reference**: the same network rebuilt from plain ``torch.nn`` layers
(weights copied), trained by the loop anyone would write -- shuffle, slice, loss, ``backward``,
Adam -- with the same batch size, learning rate and loss, written out below without any
vaebench code. References exist for the built-in MLP models (``ae``, ``noisy``, ``dae``,
``vae``; :data:`ARCHITECTURES` and :func:`reference_losses` are where another architecture or
loss is added), for ``pca`` (scikit-learn's randomized PCA for training, a plain matmul for
encode/decode), and for every model with several optimisers (``configure_optimizers()``, e.g.
``aae``, ``acai``): a plain loop of the model's *own* step (:class:`StepsReference`: its
``loss``, one ``backward(inputs=...)`` per optimiser, default Adam), which measures what the
shared loop adds around that step. Any other model -- a plugin's -- gets the harness columns
only.

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

import contextlib
import copy
import dataclasses
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vaebench.errors import ConfigError
from vaebench.train import torch_threads

__all__ = [
    "SCHEMA",
    "BUSY_SPREAD",
    "BenchConfig",
    "ARCHITECTURES",
    "reference_losses",
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
def plain_mlp(module: nn.Module) -> nn.Module | None:
    """The same fully connected network as ``module`` built from plain ``nn.Linear`` and
    activation layers, or ``None`` when ``module`` is not a stack of those."""
    layers: list[nn.Module] = []
    for leaf in module.modules():
        if list(leaf.children()):
            continue
        if isinstance(leaf, nn.Linear):
            layers.append(
                nn.Linear(leaf.in_features, leaf.out_features, bias=leaf.bias is not None)
            )
        elif type(leaf) in (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.LeakyReLU):
            layers.append(type(leaf)())
        elif not isinstance(leaf, (nn.Identity, nn.Flatten)):
            return None
    return nn.Sequential(*layers) if layers else None


#: Builders of a plain copy of a network, tried in order: each returns an ``nn.Module`` with the
#: same parameter shapes, or ``None`` for an architecture it does not know. A reference for the
#: conv architecture is added by appending its builder here.
ARCHITECTURES: list[Callable[[nn.Module], nn.Module | None]] = [plain_mlp]


def plain_copy(module: nn.Module) -> nn.Module | None:
    """A plain rebuild of ``module`` with its weights copied, or ``None``."""
    for build in ARCHITECTURES:
        net = build(module)
        if net is None:
            continue
        ours, theirs = list(net.parameters()), list(module.parameters())
        if [p.shape for p in ours] != [p.shape for p in theirs]:
            continue
        with torch.no_grad():
            for p, q in zip(ours, theirs, strict=True):
                p.copy_(q.detach().cpu())
        return net
    return None


def _bce_sum(logits: Tensor, x: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]


def _mse_sum(logits: Tensor, x: Tensor) -> Tensor:
    return F.mse_loss(torch.sigmoid(logits), x, reduction="sum") / x.shape[0]


def _recon(kind: str) -> Callable[[Tensor, Tensor], Tensor]:
    return {"bce": _bce_sum, "mse": _mse_sum}[kind]


# Plain losses: x is (B, D) flat, enc/dec plain nets, m the harness model (for its settings).
def _ae_loss(enc: nn.Module, dec: nn.Module, x: Tensor, m: Any) -> Tensor:
    return _recon(m.recon_loss)(dec(enc(x)), x)


def _noisy_loss(enc: nn.Module, dec: nn.Module, x: Tensor, m: Any) -> Tensor:
    z = enc(x)
    return _recon(m.recon_loss)(dec(z + m.noise_std * torch.randn_like(z)), x)


def _dae_loss(enc: nn.Module, dec: nn.Module, x: Tensor, m: Any) -> Tensor:
    return _recon(m.recon_loss)(dec(enc(x + m.input_noise_std * torch.randn_like(x))), x)


def _vae_loss(enc: nn.Module, dec: nn.Module, x: Tensor, m: Any) -> Tensor:
    mu, logvar = enc(x).chunk(2, dim=1)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / x.shape[0]
    return _recon(m.recon_loss)(dec(z), x) + m.beta * kl


def reference_losses() -> dict[type, Callable[..., Tensor]]:
    """Plain loss per built-in model class (exact class: a subclass may change the loss)."""
    from vaebench.models.ae import AE, DenoisingAE, NoisyAE
    from vaebench.models.vae import VAE

    return {AE: _ae_loss, NoisyAE: _noisy_loss, DenoisingAE: _dae_loss, VAE: _vae_loss}


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA devices that support it (as the shared training loop), else none."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class TorchReference:
    """A plain-torch copy of a built-in neural model: its networks rebuilt layer by layer, its
    loss written out, trained by the textbook loop."""

    def __init__(self, model: Any, loss: Callable[..., Tensor], enc: nn.Module, dec: nn.Module):
        self.model = model
        self.loss = loss
        self.device = model.device
        self.enc = enc.to(self.device)
        self.dec = dec.to(self.device)
        self.latent_dim = int(model.latent_dim)
        self.shape = tuple(model.input_shape)
        self.batch_size = int(model.batch_size)
        self.lr = float(model.lr)
        self.description = "plain torch: same layers and weights, shuffle-slice loop, Adam"

    def train(self, x: Tensor) -> int:
        """One epoch over ``x`` ``(N, C, H, W)``; returns the samples processed."""
        x = x.reshape(x.shape[0], -1)
        params = [*self.enc.parameters(), *self.dec.parameters()]
        opt = torch.optim.Adam(params, lr=self.lr)
        n = x.shape[0]
        perm = torch.randperm(n, device=self.device)
        for i in range(0, n, self.batch_size):
            xb = x[perm[i : i + self.batch_size]]
            with _autocast(self.device):
                loss = self.loss(self.enc, self.dec, xb, self.model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return n

    def encode(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.enc(x.reshape(x.shape[0], -1))[:, : self.latent_dim]

    def decode(self, z: Tensor) -> Tensor:
        with torch.inference_mode():
            return torch.sigmoid(self.dec(z)).reshape(z.shape[0], *self.shape)


class StepsReference:
    """A plain loop of a multi-optimiser model's own training step on a copy of the model: per
    batch its ``loss``, each optimiser's entry back-propagated into that optimiser's parameters
    (``backward(inputs=...)``), default Adam per optimiser with the model's learning rates. No
    vaebench loop code; it calls the model's ``loss`` (not a rewritten one)."""

    description = (
        "plain loop of the model's own multi-optimiser step (loss, backward per optimiser, Adam)"
    )

    def __init__(self, model: Any) -> None:
        self.model = copy.deepcopy(model)
        self.device = model.device
        self.batch_size = int(model.batch_size)

    def train(self, x: Tensor) -> int:
        m = self.model
        steps = m.configure_optimizers()
        groups = [[p for g in s.optimizer.param_groups for p in g["params"]] for s in steps]
        opts = [
            torch.optim.Adam(ps, lr=s.optimizer.param_groups[0]["lr"])
            for s, ps in zip(steps, groups, strict=True)
        ]
        last = len(steps) - 1
        m.train()
        n = x.shape[0]
        perm = torch.randperm(n, device=self.device)
        for i in range(0, n, self.batch_size):
            xb = x[perm[i : i + self.batch_size]]
            if xb.shape[0] < 2:
                continue
            with _autocast(self.device):
                losses = m.loss(xb)
            for o in opts:
                o.zero_grad(set_to_none=True)
            for k, (s, ps) in enumerate(zip(steps, groups, strict=True)):
                losses[s.loss].backward(inputs=ps, retain_graph=k < last)
            for o in opts:
                o.step()
        m.eval()
        return n

    def encode(self, x: Tensor) -> Tensor:
        return self.model.encode(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.model.decode(z)


class PcaReference:
    """scikit-learn's ``PCA(svd_solver="randomized")`` for fitting (limited to the same number
    of BLAS threads); encode and decode as plain matrix products with the model's fitted
    components."""

    description = "scikit-learn PCA(svd_solver='randomized'); plain matmul encode/decode"

    def __init__(self, model: Any, threads: int) -> None:
        self.model = model
        self.threads = threads
        self._host: tuple[tuple, Any] | None = None

    def train(self, x: Tensor) -> int:
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
        return x.shape[0]

    def encode(self, x: Tensor) -> Tensor:
        m = self.model
        with torch.inference_mode():
            return (x.reshape(x.shape[0], -1) - m.mean) @ m.components.T

    def decode(self, z: Tensor) -> Tensor:
        m = self.model
        with torch.inference_mode():
            out = (z @ m.components + m.mean).clamp(0, 1)
            return out.reshape(z.shape[0], *m.input_shape)


def reference_for(
    model: Any, threads: int = 1
) -> TorchReference | PcaReference | StepsReference | str:
    """The reference of ``model``, or a string saying why it has none."""
    from vaebench.models.pca import PCA

    if type(model) is PCA:
        return PcaReference(model, threads)
    multi = getattr(model, "configure_optimizers", None)
    if callable(multi) and multi() is not None:
        return StepsReference(model)
    loss = reference_losses().get(type(model))
    if loss is None:
        return f"no plain reference for {type(model).__name__} (harness columns only)"
    enc = plain_copy(getattr(model, "encoder", nn.Identity()))
    dec = plain_copy(getattr(model, "decoder", nn.Identity()))
    if enc is None or dec is None:
        return "network is not one of the reference architectures (harness columns only)"
    return TorchReference(model, loss, enc, dec)


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
def _build(registry: Any, name: str, shape: tuple, device: torch.device, cfg: BenchConfig) -> Any:
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
    if not (callable(getattr(model, "loss", None)) and isinstance(model, nn.Module)):
        return None

    def step() -> None:
        model.train()
        with _autocast(batch.device):
            losses = model.loss(batch)
        loss = losses["loss"] if isinstance(losses, dict) else losses
        loss.backward()
        model.zero_grad(set_to_none=True)

    return step


def bench_model(
    registry: Any,
    name: str,
    ds: Any,
    device: torch.device,
    cfg: BenchConfig,
    threads: int,
) -> dict[str, Any]:
    """Measure one model (see the module docstring); returns its JSON record."""
    timed = _Timer(device, _CLOCK[cfg.clock])
    memory = _PeakMemory(device)
    memory.reset()
    model, params = _build(registry, name, ds.shape, device, cfg)
    n = (
        ds.x_train.shape[0]
        if cfg.train_samples is None
        else min(cfg.train_samples, len(ds.x_train))
    )
    x_train = ds.x_train[:n].to(device)
    y_train = None
    if model.tags.uses_labels and ds.y_train is not None:
        y_train = ds.y_train[:n].to(device)
    x_eval = ds.x_test[: cfg.eval_batch_size].to(device)

    def harness_train() -> None:
        if y_train is not None:
            seen.append(model.fit(x_train, y_train).samples_seen)
        else:
            seen.append(model.fit(x_train).samples_seen)

    seen: list[int] = []  # samples per fit, as the model reports them (its epochs may be fixed)

    # warm-up on a slice, calibration on a whole epoch (which also fits encode/decode)
    ref = reference_for(model, threads)
    warm = x_train[: min(n, 8 * cfg.batch_size)]
    if y_train is not None:
        model.fit(warm, y_train[: len(warm)])
    else:
        model.fit(warm)
    train_calls = max(1, math.ceil(cfg.window_s / timed(harness_train, 1)))
    per_fit = seen[-1]
    z_eval = model.encode(x_eval)
    enc_calls = timed.calls_for(lambda: model.encode(x_eval), cfg.window_s / 4)
    dec_calls = timed.calls_for(lambda: model.decode(z_eval), cfg.window_s / 4)

    has_ref = not isinstance(ref, str)
    if has_ref:
        ref.train(warm)
        ref.train(x_train)
        ref.encode(x_eval), ref.decode(z_eval)

    step = _train_step(model, x_train[: cfg.batch_size])
    products = None
    if step is not None:
        products = _trace_products(step, min(cfg.batch_size, n), device)
        prod_calls = timed.calls_for(products.replay, cfg.window_s / 4)

    rates: dict[str, dict[str, list[float]]] = {
        what: {"harness": [], "reference": []} for what in ("train", "encode", "decode")
    }
    replay_rates: list[float] = []
    jobs = {
        "train": (harness_train, ref.train if has_ref else None, train_calls, per_fit),
        "encode": (
            lambda: model.encode(x_eval),
            (lambda: ref.encode(x_eval)) if has_ref else None,
            enc_calls,
            len(x_eval),
        ),
        "decode": (
            lambda: model.decode(z_eval),
            (lambda: ref.decode(z_eval)) if has_ref else None,
            dec_calls,
            len(x_eval),
        ),
    }
    for r in range(cfg.repeats):
        for what, (h_fn, r_fn, calls, per_call) in jobs.items():
            order = [("harness", h_fn), ("reference", r_fn)]
            if r % 2:
                order.reverse()
            for who, fn in order:
                if fn is None:
                    continue
                if what == "train" and who == "reference":
                    seconds = timed(lambda fn=fn: fn(x_train), calls)
                    rates[what][who].append(calls * n / seconds)
                else:
                    seconds = timed(fn, calls)
                    rates[what][who].append(calls * per_call / seconds)
        if products is not None:
            seconds = timed(products.replay, prod_calls)
            replay_rates.append(prod_calls * products.replay_flops / seconds / 1e9)

    record: dict[str, Any] = {
        "model": name,
        "status": "ok",
        "params": params,
        "n_params": int(model.n_params),
        "reference": ref.description if has_ref else None,
        "reference_note": ref if not has_ref else None,
        "train_samples": n,
        "samples_per_fit": per_fit,
        "calls_per_window": {"train": train_calls, "encode": enc_calls, "decode": dec_calls},
    }
    for what in ("train", "encode", "decode"):
        h, rr = rates[what]["harness"], rates[what]["reference"]
        record[what] = {
            "harness": summarize(h),
            "reference": summarize(rr) if rr else None,
            "ratio": summarize([a / b for a, b in zip(h, rr, strict=True)]) if rr else None,
        }
    if products is not None:
        achieved = [products.flops_per_sample * v / 1e9 for v in rates["train"]["harness"]]
        record["flops"] = {
            "train_flops_per_sample": products.flops_per_sample,
            "achieved_gflops": summarize(achieved),
            "matmul_gflops": summarize(replay_rates),
            "fraction": summarize([a / b for a, b in zip(achieved, replay_rates, strict=True)]),
        }
    else:
        record["flops"] = None
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


def resolve(cfg: BenchConfig, registry: Any) -> tuple[list[str], torch.device]:
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
    registry: Any = None,
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
