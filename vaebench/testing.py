"""Conformance kit: checks a plugin author runs in their own test suite.

Every check is a small function that builds its subject afresh, runs it on tiny synthetic data and
raises :class:`CheckFailed` -- an :class:`AssertionError` -- whose message names the check, the
subject and what was expected, e.g.::

    check_encode_shape[my-model]: expected encode(x) for x of shape (5, 1, 28, 28) to have
    shape (5, 10), got (5, 20)

Three ways to use it:

- in pytest, one test per check (ids like ``check_encode_shape[my-model]``, so ``-k`` picks
  one), in the spirit of scikit-learn's ``parametrize_with_checks``::

      from vaebench.testing import parametrize_with_checks
      from my_package.plugin import MY_SPEC

      @parametrize_with_checks([MY_SPEC])
      def test_vaebench_conformance(subject, check):
          check(subject)

- all at once: :func:`check_model`, :func:`check_dataset`, :func:`check_metric` run every check
  and raise :class:`ConformanceError` listing each failure;
- without raising: :func:`run_model_checks` (used by ``vaebench check NAME``) yields one
  :class:`CheckResult` per check.

A model is given as a :class:`~vaebench.model.ModelSpec`, a registered name (``"vae"``; looked up
through the installed plugins) or a factory ``factory(input_shape=..., device=..., **params)``
(a :class:`~vaebench.model.Model` subclass works). Checks override ``epochs`` and ``batch_size``
(when the model has them) and run torch on one CPU thread to keep each check well under a
second; ``params`` adds overrides of your own (e.g. a smaller network).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from vaebench.dataset import Dataset, DatasetSpec
    from vaebench.metric import Metric
    from vaebench.model import Model, ModelSpec

__all__ = [
    "CheckFailed",
    "ConformanceError",
    "CheckResult",
    "SHAPES",
    "tiny_images",
    "tiny_dataset",
    "model_checks",
    "dataset_checks",
    "metric_checks",
    "check_model",
    "check_dataset",
    "check_metric",
    "run_model_checks",
    "run_dataset_checks",
    "run_metric_checks",
    "parametrize_with_checks",
    # individual model checks
    "check_interface",
    "check_metadata",
    "check_encode_shape",
    "check_decode_shape",
    "check_device",
    "check_deterministic",
    "check_save_load",
    "check_fit_lowers_loss",
    "check_no_grad",
    "check_decode_range",
    "check_sample",
    # dataset checks
    "check_dataset_loads",
    "check_dataset_shapes",
    "check_dataset_range",
    "check_dataset_labels",
    "check_dataset_render",
    "check_dataset_deterministic",
    # metric checks
    "check_metric_declares",
    "check_metric_values",
    "check_metric_deterministic",
]

#: Image shapes ``(C, H, W)`` every model must handle: tiny grey, MNIST-sized grey, tiny colour.
SHAPES: tuple[tuple[int, int, int], ...] = ((1, 8, 8), (1, 28, 28), (3, 16, 16))
#: Training-set size for the shape checks and the fit check.
N_TINY = 32
N_FIT = 64
#: Epochs and batch size used by the fit check (only for models that have these parameters).
FIT_EPOCHS = 5
FIT_BATCH_SIZE = 16
#: Metric values with these units measure time and are exempt from the determinism check.
TIMING_UNITS = frozenset({"s", "ms", "samples/s", "images/s", "seconds"})


# ----------------------------------------------------------------------------- results/errors


class CheckFailed(AssertionError):
    """A conformance check failed. ``str(exc)`` is ``"check_x[subject]: what was expected"``."""

    def __init__(self, check: str, subject: str, detail: str) -> None:
        self.check, self.subject, self.detail = check, subject, detail
        super().__init__(f"{check}[{subject}]: {detail}")


class ConformanceError(AssertionError):
    """Raised by :func:`check_model` (and friends) when one or more checks failed."""

    def __init__(self, subject: str, failures: Sequence[CheckResult]) -> None:
        self.subject, self.failures = subject, list(failures)
        lines = "\n".join(f"  {r.name}: {r.message}" for r in self.failures)
        super().__init__(
            f"{len(self.failures)} conformance check(s) failed for {subject}:\n{lines}"
        )


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """Outcome of one check: ``message`` says what was expected when ``passed`` is false (and
    notes such as "not applicable" otherwise); ``seconds`` is its wall time."""

    name: str
    subject: str
    passed: bool
    message: str = ""
    seconds: float = 0.0


class _Mismatch(AssertionError):
    """Raised inside a check body; converted to :class:`CheckFailed` by the check decorator."""


class _NotApplicable(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside a check body when the check does not apply (e.g. no ``sample``)."""


def _expect(condition: Any, message: str) -> None:
    if not condition:
        raise _Mismatch(message)


def _maxdiff(a: Tensor, b: Tensor) -> str:
    """Largest absolute difference of two tensors, for messages (or their shapes if unequal)."""
    if a.shape != b.shape:
        return f"(shapes {tuple(a.shape)} and {tuple(b.shape)})"
    return f"{float((a.detach() - b.detach()).abs().max()):.3g}"


def _shape(t: Any) -> tuple[int, ...] | str:
    return tuple(t.shape) if hasattr(t, "shape") else type(t).__name__


# ----------------------------------------------------------------------------- tiny data


def _render_blobs(factors: Any, shape: Sequence[int]) -> Tensor:
    """Noise-free images ``(M, C, H, W)`` in ``[0, 1]``: one Gaussian blob centred at the
    factor values ``(x, y)`` (each in ``[0, 1]``, fractions of the width and height), with a
    per-channel brightness so colour images are not grey copies."""
    f = torch.as_tensor(factors, dtype=torch.float32).reshape(-1, 2)
    c, h, w = (int(s) for s in shape)
    ys = torch.linspace(0.0, 1.0, h).view(1, h, 1)
    xs = torch.linspace(0.0, 1.0, w).view(1, 1, w)
    d2 = (xs - f[:, 0].view(-1, 1, 1)) ** 2 + (ys - f[:, 1].view(-1, 1, 1)) ** 2
    blob = torch.exp(-d2 / (2 * 0.18**2))  # (M, H, W)
    gain = torch.linspace(1.0, 0.5, c).view(1, c, 1, 1) if c > 1 else torch.ones(1, 1, 1, 1)
    return (blob.unsqueeze(1) * gain).clamp(0.0, 1.0)


def _blob_factors(n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand(n, 2, generator=g)


def tiny_images(shape: Sequence[int], n: int = N_TINY, seed: int = 0) -> Tensor:
    """``n`` structured images of ``shape`` ``(C, H, W)``, float32 in ``[0, 1]``: Gaussian blobs
    at random positions plus a little noise (learnable, so fitting lowers the loss)."""
    f = _blob_factors(n, seed)
    g = torch.Generator().manual_seed(seed + 1)
    x = _render_blobs(f, shape) + 0.02 * torch.randn(n, *shape, generator=g)
    return x.clamp(0.0, 1.0)


def tiny_dataset(
    shape: Sequence[int] = (1, 8, 8), n_train: int = 128, n_test: int = 64, seed: int = 0
) -> Dataset:
    """A small :class:`~vaebench.dataset.Dataset` with labels (the blob's quadrant, 0..3),
    ground-truth factors ``("x", "y")`` and a ``render`` function -- enough for every built-in
    metric. Used by the metric checks; handy in your own tests."""
    from vaebench.dataset import Dataset

    shape = tuple(int(s) for s in shape)
    f_train, f_test = _blob_factors(n_train, seed), _blob_factors(n_test, seed + 100)
    g = torch.Generator().manual_seed(seed + 200)

    def images(f: Tensor) -> Tensor:
        noise = 0.02 * torch.randn(f.shape[0], *shape, generator=g)
        return (_render_blobs(f, shape) + noise).clamp(0.0, 1.0)

    def quadrant(f: Tensor) -> Tensor:
        return (f[:, 0] > 0.5).long() + 2 * (f[:, 1] > 0.5).long()

    return Dataset(
        name="tiny-blobs",
        x_train=images(f_train),
        x_test=images(f_test),
        y_train=quadrant(f_train),
        y_test=quadrant(f_test),
        factors_train=f_train,
        factors_test=f_test,
        factor_names=("x", "y"),
        render=functools.partial(_render_blobs, shape=shape),
        info={"generator": "vaebench.testing.tiny_dataset", "seed": seed},
    )


# ----------------------------------------------------------------------------- model subject


def _as_model_spec(model: Any) -> ModelSpec:
    """Accept a ModelSpec, a registered name, a registry entry, or a factory/Model class."""
    from vaebench.model import ModelSpec

    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, str):
        from vaebench.plugins import get_registry

        return get_registry().model(model).spec
    spec = getattr(model, "spec", None)
    if isinstance(spec, ModelSpec):  # a vaebench.plugins.Registered
        return spec
    if callable(model):
        name = getattr(model, "__name__", type(model).__name__)
        return ModelSpec(name, model, inspect.getdoc(model) or "")
    raise TypeError(
        f"expected a vaebench.model.ModelSpec, a registered model name or a factory "
        f"callable, got {type(model).__name__}"
    )


def _subject_name(obj: Any) -> str:
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    if isinstance(obj, str):
        return obj
    return getattr(obj, "__name__", type(obj).__name__)


@dataclasses.dataclass
class _ModelSubject:
    spec: ModelSpec
    device: torch.device
    params: dict[str, Any]

    @property
    def name(self) -> str:
        return self.spec.name

    def resolved(self, epochs: int = 1, batch_size: int | None = None) -> dict[str, Any]:
        """Parameters for a fast check, resolved like a run's cell does: the spec's defaults,
        then a small ``epochs`` (and ``batch_size``) when the model has them, then the caller's
        ``params``."""
        defaults = self.spec.defaults()
        out: dict[str, Any] = dict(defaults)
        if "epochs" in defaults:
            out["epochs"] = epochs
        if batch_size is not None and "batch_size" in defaults:
            out["batch_size"] = batch_size
        out.update(self.params)
        return out

    def create(self, shape: Sequence[int], seed: int = 0, **fast: Any) -> Model:
        from vaebench.train import seed_everything

        seed_everything(seed)
        return self.spec.create(shape, device=self.device, **self.resolved(**fast))

    def fitted(
        self, shape: Sequence[int], seed: int = 0, n: int = N_TINY, **fast: Any
    ) -> tuple[Model, Tensor]:
        """A model fitted on ``n`` tiny images (seeded exactly like a run's cell), and the data."""
        model = self.create(shape, seed, **fast)
        x = tiny_images(shape, n, seed).to(self.device)
        model.fit(x)
        return model, x


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        device = os.environ.get("VAEBENCH_TEST_DEVICE", "cpu")
    return torch.device(device)


def _model_check(
    expectation: str,
) -> Callable[[Callable[[_ModelSubject], str | None]], Callable[..., str | None]]:
    """Turn ``body(subject)`` into a public check ``check(model, *, device=None, params=None)``.

    Inside the body, :func:`_expect` failures become :class:`CheckFailed` naming the check; any
    other exception becomes a :class:`CheckFailed` saying what the check expected and what was
    raised (the original is chained).
    """

    def decorate(body: Callable[[_ModelSubject], str | None]) -> Callable[..., str | None]:
        check_name = body.__name__.lstrip("_")

        @functools.wraps(body)
        def check(
            model: Any,
            *,
            device: str | torch.device | None = None,
            params: Mapping[str, Any] | None = None,
        ) -> str | None:
            try:
                spec = _as_model_spec(model)
            except Exception as exc:  # noqa: BLE001
                raise CheckFailed(check_name, _subject_name(model), str(exc)) from exc
            subject = _ModelSubject(spec, _device(device), dict(params or {}))
            return _run_body(check_name, subject.name, expectation, body, subject)

        return _named_check(check, check_name, expectation, body)

    return decorate


def _named_check(check: Callable, check_name: str, expectation: str, body: Callable) -> Callable:
    """Give a generated check its public name, docstring and ``expectation`` attribute."""
    check.__name__ = check.__qualname__ = check_name
    check.__doc__ = f"Check that {expectation}.\n\n{inspect.getdoc(body) or ''}".strip()
    check.expectation = expectation  # type: ignore[attr-defined]
    return check


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside a check. On tiny data, intra-op threads only add
    synchronisation: on a busy machine a check is 10x faster single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_body(
    check_name: str, subject: str, expectation: str, body: Callable, arg: Any
) -> str | None:
    """Run a check body; return ``None``, or a note when the check does not apply."""
    try:
        with _one_thread():
            body(arg)
    except _NotApplicable as exc:
        return f"not applicable: {exc}"
    except _Mismatch as exc:
        raise CheckFailed(check_name, subject, str(exc)) from None
    except CheckFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - any error is reported as this check failing
        raise CheckFailed(
            check_name,
            subject,
            f"expected that {expectation}, but it raised {type(exc).__name__}: {exc}",
        ) from exc


# ----------------------------------------------------------------------------- model checks


@_model_check("the factory builds a complete vaebench.model.Model")
def _check_interface(s: _ModelSubject) -> None:
    """The factory returns a :class:`~vaebench.model.Model`, accepts every default parameter,
    its defaults are JSON-serialisable (they are stored in result files), ``to`` returns the
    model and ``state_dict`` holds plain tensors only (``Model.load`` uses ``weights_only``)."""
    from vaebench.model import Model

    defaults = s.spec.defaults()
    try:
        json.dumps(defaults, sort_keys=True, default=list)
    except (TypeError, ValueError) as exc:
        raise _Mismatch(
            f"expected JSON-serialisable default parameters (they are stored with results), "
            f"got {defaults!r}: {exc}"
        ) from None
    shape = SHAPES[0]
    model = s.spec.factory(input_shape=shape, device=s.device, **s.resolved())
    _expect(
        isinstance(model, Model),
        f"expected the factory to return a vaebench.model.Model, got {type(model).__name__}",
    )
    for method in ("fit", "encode", "decode", "state_dict", "load_state_dict", "to", "save"):
        _expect(callable(getattr(model, method, None)), f"expected a method {method}()")
    moved = model.to(s.device)
    _expect(
        moved is model,
        f"expected to(device) to return the model itself, got {type(moved).__name__}",
    )
    state = model.state_dict()
    _expect(
        isinstance(state, dict), f"expected state_dict() to be a dict, got {type(state).__name__}"
    )
    bad = {k: type(v).__name__ for k, v in state.items() if not isinstance(v, Tensor)}
    _expect(
        not bad,
        f"expected state_dict() to map names to tensors only (weights_only loading), "
        f"got non-tensors {bad}",
    )
    _expect(
        all(isinstance(k, str) for k in state),
        "expected state_dict() keys to be strings",
    )


@_model_check("latent_dim, n_params and input_shape describe the model")
def _check_metadata(s: _ModelSubject) -> None:
    """``latent_dim`` is a positive int, ``n_params`` an int > 0, ``input_shape`` the shape the
    model was built for and ``device`` a :class:`torch.device`."""
    for shape in SHAPES:
        model = s.create(shape)
        ld = getattr(model, "latent_dim", None)
        _expect(
            isinstance(ld, int) and not isinstance(ld, bool) and ld > 0,
            f"expected latent_dim to be a positive int, got {ld!r}",
        )
        n = model.n_params
        _expect(
            isinstance(n, int) and not isinstance(n, bool) and n > 0,
            f"expected n_params to be an int > 0, got {n!r}",
        )
        got = tuple(getattr(model, "input_shape", ()) or ())
        _expect(
            got == tuple(shape),
            f"expected input_shape {tuple(shape)} (the shape passed to the factory), got {got}",
        )
        _expect(
            isinstance(model.device, torch.device),
            f"expected device to be a torch.device, got {type(model.device).__name__}",
        )


@_model_check(f"encode returns float32 codes (N, latent_dim) for inputs of shapes {SHAPES}")
def _check_encode_shape(s: _ModelSubject) -> None:
    """For each shape in :data:`SHAPES`, after a one-epoch fit, ``encode`` of 5 images (and of
    one image) returns finite float32 codes ``(N, latent_dim)``."""
    for shape in SHAPES:
        model, x = s.fitted(shape)
        for k in (5, 1):
            z = model.encode(x[:k])
            want = (k, model.latent_dim)
            _expect(
                isinstance(z, Tensor),
                f"expected encode(x) to return a Tensor, got {type(z).__name__}",
            )
            _expect(
                tuple(z.shape) == want,
                f"expected encode(x) for x of shape {tuple(x[:k].shape)} to have shape {want}, "
                f"got {tuple(z.shape)}",
            )
            _expect(
                z.dtype == torch.float32,
                f"expected encode(x) to be float32 for input shape {shape}, got {z.dtype}",
            )
            _expect(
                bool(torch.isfinite(z).all()),
                f"expected finite codes for input shape {shape}",
            )


@_model_check(f"decode returns float32 images (N, C, H, W) for inputs of shapes {SHAPES}")
def _check_decode_shape(s: _ModelSubject) -> None:
    """For each shape in :data:`SHAPES`, after a one-epoch fit, ``decode(encode(x))`` and
    ``decode`` of random codes return float32 images of the input's shape."""
    for shape in SHAPES:
        model, x = s.fitted(shape)
        z = model.encode(x[:5])
        g = torch.Generator().manual_seed(0)
        z_rand = torch.randn(3, model.latent_dim, generator=g).to(s.device)
        for what, code in (("decode(encode(x))", z), ("decode(z) of random codes", z_rand)):
            out = model.decode(code)
            want = (code.shape[0], *shape)
            _expect(
                isinstance(out, Tensor),
                f"expected {what} to return a Tensor, got {type(out).__name__}",
            )
            _expect(
                tuple(out.shape) == want,
                f"expected {what} to have shape {want} (codes {tuple(code.shape)}), "
                f"got {tuple(out.shape)}",
            )
            _expect(
                out.dtype == torch.float32,
                f"expected {what} to be float32 for shape {shape}, got {out.dtype}",
            )


@_model_check("the model lives and computes on the device it was built for")
def _check_device(s: _ModelSubject) -> None:
    """``model.device`` matches the requested device; parameters, buffers, state tensors and
    ``encode``/``decode`` outputs are on it; ``to("cpu")`` moves everything back."""
    model, x = s.fitted(SHAPES[0])
    want = s.device.type
    _expect(
        model.device.type == want,
        f"expected model.device of type {want!r}, got {model.device}",
    )
    if isinstance(model, torch.nn.Module):
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            _expect(t.device.type == want, f"expected tensor {name} on {want}, got {t.device}")
    for name, t in model.state_dict().items():
        _expect(t.device.type == want, f"expected state_dict()[{name!r}] on {want}, got {t.device}")
    z = model.encode(x[:4])
    out = model.decode(z)
    _expect(z.device.type == want, f"expected encode output on {want}, got {z.device}")
    _expect(out.device.type == want, f"expected decode output on {want}, got {out.device}")
    model.to("cpu")
    _expect(
        model.device.type == "cpu", f"expected model.device cpu after to('cpu'), got {model.device}"
    )
    z_cpu = model.encode(x[:4].cpu())
    _expect(
        z_cpu.device.type == "cpu", f"expected encode on cpu after to('cpu'), got {z_cpu.device}"
    )
    _expect(
        torch.allclose(z_cpu, z.cpu(), atol=1e-4, rtol=1e-4),
        "expected the same codes after moving the model to the cpu",
    )


@_model_check("models built and fitted under the same seed give identical outputs")
def _check_deterministic(s: _ModelSubject) -> None:
    """Two models built and fitted after ``seed_everything(0)`` on the same data give identical
    codes and reconstructions, and ``encode`` called twice on one model gives the same codes
    (a VAE returns its posterior mean). Randomness must come from torch's (or NumPy's, Python's)
    global generators or a generator seeded from them."""
    outs = []
    for _ in range(2):
        model, x = s.fitted(SHAPES[0])
        z1, z2 = model.encode(x[:8]), model.encode(x[:8])
        _expect(
            torch.equal(z1, z2),
            f"expected encode to be deterministic: two calls on the same input differ by up "
            f"to {_maxdiff(z1, z2)} (return the posterior mean, not a sample)",
        )
        outs.append((z1, model.decode(z1)))
    (za, xa), (zb, xb) = outs
    _expect(
        torch.equal(za, zb),
        f"expected identical codes from two fits under seed_everything(0), max |difference| "
        f"{_maxdiff(za, zb)} (use the global torch generator, not an unseeded one)",
    )
    _expect(
        torch.equal(xa, xb),
        f"expected identical reconstructions from two fits under seed_everything(0), max "
        f"|difference| {_maxdiff(xa, xb)}",
    )


@_model_check("save then load into a fresh model reproduces encode and decode exactly")
def _check_save_load(s: _ModelSubject) -> None:
    """Fit, :meth:`~vaebench.model.Model.save`, build a fresh model under another seed,
    :meth:`~vaebench.model.Model.load` (``weights_only=True``): codes and reconstructions must be
    identical, so ``state_dict`` must hold every tensor ``encode``/``decode`` use."""
    shape = SHAPES[0]
    model, x = s.fitted(shape)
    z, out = model.encode(x[:8]), model.decode(model.encode(x[:8]))
    fresh = s.create(shape, seed=12345)
    with tempfile.TemporaryDirectory(prefix="vaebench-check-") as tmp:
        path = os.path.join(tmp, "state.pt")
        model.save(path)
        _expect(os.path.exists(path), f"expected save({path!r}) to write the file")
        loaded = fresh.load(path)
    _expect(loaded is not None, "expected load() to return the model")
    z2 = fresh.encode(x[:8])
    out2 = fresh.decode(z2)
    _expect(
        z2.shape == z.shape and torch.equal(z2, z),
        f"expected identical codes after save/load, max |difference| {_maxdiff(z2, z)} "
        f"(state_dict() must hold every tensor encode uses)",
    )
    _expect(
        out2.shape == out.shape and torch.equal(out2, out),
        f"expected identical reconstructions after save/load, max |difference| "
        f"{_maxdiff(out2, out)} (state_dict() must hold every tensor decode uses)",
    )
    _expect(
        fresh.n_params == model.n_params,
        f"expected n_params {model.n_params} after load, got {fresh.n_params}",
    )


@_model_check("fitting on a tiny dataset lowers the loss or the reconstruction error")
def _check_fit_lowers_loss(s: _ModelSubject) -> None:
    """Fit on 64 blob images (``epochs=5``, ``batch_size=16`` when the model has those
    parameters; see :data:`FIT_EPOCHS`). ``fit`` must return a :class:`~vaebench.model.FitReport` with a finite
    ``history["loss"]``; the check passes when the last logged loss is below the first, or the
    reconstruction MSE after fitting is below the MSE before."""
    from vaebench.model import FitReport

    shape = SHAPES[0]
    model = s.create(shape, epochs=FIT_EPOCHS, batch_size=FIT_BATCH_SIZE)
    x = tiny_images(shape, N_FIT, seed=0).to(s.device)

    def mse() -> float:
        return float((model.decode(model.encode(x)).float() - x).pow(2).mean())

    before = mse()
    report = model.fit(x)
    _expect(
        isinstance(report, FitReport),
        f"expected fit() to return a vaebench.model.FitReport, got {type(report).__name__}",
    )
    history = report.history.get("loss") if isinstance(report.history, dict) else None
    _expect(
        isinstance(history, list) and len(history) >= 1,
        f'expected FitReport.history["loss"] to be a non-empty list, got {history!r}',
    )
    _expect(
        all(isinstance(v, (int, float)) and math.isfinite(v) for v in history),
        f'expected finite floats in FitReport.history["loss"], got {history!r}',
    )
    _expect(
        isinstance(report.samples_seen, int) and report.samples_seen > 0,
        f"expected FitReport.samples_seen > 0, got {report.samples_seen!r}",
    )
    _expect(report.seconds >= 0, f"expected FitReport.seconds >= 0, got {report.seconds!r}")
    after = mse()
    loss_fell = len(history) >= 2 and history[-1] < history[0]
    mse_fell = after < before * (1 - 1e-3)
    _expect(
        loss_fell or mse_fell,
        f"expected fit to lower the loss (history['loss'] {history[0]:.4g} -> {history[-1]:.4g})"
        f" or the reconstruction MSE ({before:.4g} -> {after:.4g}) on {N_FIT} tiny images",
    )


@_model_check("encode and decode run without autograd and leave grad mode as they found it")
def _check_no_grad(s: _ModelSubject) -> None:
    """Outputs of ``encode``/``decode`` have ``requires_grad=False`` (wrap them in
    ``torch.inference_mode()`` or ``torch.no_grad()``), and grad mode is still enabled after."""
    model, x = s.fitted(SHAPES[0])
    with torch.enable_grad():
        z = model.encode(x[:4])
        _expect(
            not z.requires_grad,
            "expected encode outputs with requires_grad=False (run encode under "
            "torch.inference_mode()), got requires_grad=True",
        )
        out = model.decode(z)
        _expect(
            not out.requires_grad,
            "expected decode outputs with requires_grad=False (run decode under "
            "torch.inference_mode()), got requires_grad=True",
        )
        _expect(
            torch.is_grad_enabled(),
            "expected grad mode to stay enabled after encode/decode (use a context manager, "
            "not torch.set_grad_enabled(False))",
        )


@_model_check("decode returns finite values in [0, 1]")
def _check_decode_range(s: _ModelSubject) -> None:
    """``decode(encode(x))`` and ``decode`` of large random codes (``3 * N(0, I)``) are finite
    and lie in ``[0, 1]`` (images; apply a sigmoid or clamp)."""
    for shape in SHAPES[:1] + SHAPES[2:]:
        model, x = s.fitted(shape)
        g = torch.Generator().manual_seed(1)
        z_rand = 3 * torch.randn(16, model.latent_dim, generator=g)
        for what, code in (
            ("decode(encode(x))", model.encode(x[:8])),
            ("decode(3 * randn codes)", z_rand.to(s.device)),
        ):
            out = model.decode(code)
            _expect(bool(torch.isfinite(out).all()), f"expected finite values from {what}")
            lo, hi = float(out.min()), float(out.max())
            _expect(
                lo >= 0.0 and hi <= 1.0,
                f"expected {what} in [0, 1] for shape {shape}, got range [{lo:.4g}, {hi:.4g}]",
            )


@_model_check("sample(n) draws n images in [0, 1], reproducibly for a seeded generator")
def _check_sample(s: _ModelSubject) -> None:
    """Only for models that override ``sample``: ``sample(n, generator)`` returns ``(n, C, H, W)``
    float32 images in ``[0, 1]`` without autograd, identical for two generators with one seed."""
    model, _ = s.fitted(SHAPES[0])
    if not model.can_sample:
        raise _NotApplicable("the model has no sample()")
    a = model.sample(6, generator=torch.Generator().manual_seed(3))
    b = model.sample(6, generator=torch.Generator().manual_seed(3))
    want = (6, *SHAPES[0])
    _expect(
        tuple(a.shape) == want, f"expected sample(6) to have shape {want}, got {tuple(a.shape)}"
    )
    _expect(a.dtype == torch.float32, f"expected float32 samples, got {a.dtype}")
    _expect(not a.requires_grad, "expected samples with requires_grad=False")
    lo, hi = float(a.min()), float(a.max())
    _expect(lo >= 0.0 and hi <= 1.0, f"expected samples in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    _expect(
        torch.equal(a, b),
        "expected identical samples for two generators seeded alike (draw from `generator`)",
    )


check_interface = _check_interface
check_metadata = _check_metadata
check_encode_shape = _check_encode_shape
check_decode_shape = _check_decode_shape
check_device = _check_device
check_deterministic = _check_deterministic
check_save_load = _check_save_load
check_fit_lowers_loss = _check_fit_lowers_loss
check_no_grad = _check_no_grad
check_decode_range = _check_decode_range
check_sample = _check_sample

_MODEL_CHECKS: tuple[Callable[..., str | None], ...] = (
    check_interface,
    check_metadata,
    check_encode_shape,
    check_decode_shape,
    check_decode_range,
    check_no_grad,
    check_device,
    check_deterministic,
    check_save_load,
    check_fit_lowers_loss,
    check_sample,
)


def model_checks() -> tuple[Callable[..., str | None], ...]:
    """Every model check, in the order :func:`run_model_checks` runs them."""
    return _MODEL_CHECKS


# ----------------------------------------------------------------------------- dataset checks


def _as_dataset_spec(dataset: Any) -> DatasetSpec:
    from vaebench.dataset import DatasetSpec

    if isinstance(dataset, DatasetSpec):
        return dataset
    if isinstance(dataset, str):
        from vaebench.plugins import get_registry

        return get_registry().dataset(dataset).spec
    spec = getattr(dataset, "spec", None)
    if isinstance(spec, DatasetSpec):
        return spec
    if callable(dataset):
        return DatasetSpec(getattr(dataset, "__name__", "dataset"), dataset)
    raise TypeError(
        f"expected a vaebench.dataset.DatasetSpec, a registered dataset name or a loader "
        f"callable, got {type(dataset).__name__}"
    )


@dataclasses.dataclass
class _DatasetSubject:
    spec: DatasetSpec
    options: dict[str, Any]
    data_dir: str | None

    @property
    def name(self) -> str:
        return self.spec.name

    def load(self) -> Dataset:
        from vaebench.dataset import Dataset

        ds = self.spec.load(data_dir=self.data_dir, **self.options)
        _expect(
            isinstance(ds, Dataset),
            f"expected the loader to return a vaebench.dataset.Dataset, got {type(ds).__name__}",
        )
        return ds


def _dataset_check(
    expectation: str,
) -> Callable[[Callable[[_DatasetSubject], None]], Callable[..., str | None]]:
    def decorate(body: Callable[[_DatasetSubject], None]) -> Callable[..., str | None]:
        check_name = body.__name__.lstrip("_")

        @functools.wraps(body)
        def check(
            dataset: Any,
            *,
            options: Mapping[str, Any] | None = None,
            data_dir: str | None = None,
        ) -> str | None:
            try:
                spec = _as_dataset_spec(dataset)
            except Exception as exc:  # noqa: BLE001
                raise CheckFailed(check_name, _subject_name(dataset), str(exc)) from exc
            subject = _DatasetSubject(spec, dict(options or {}), data_dir)
            return _run_body(check_name, subject.name, expectation, body, subject)

        return _named_check(check, check_name, expectation, body)

    return decorate


@_dataset_check("the loader returns a vaebench.dataset.Dataset")
def _check_dataset_loads(s: _DatasetSubject) -> None:
    """The spec's name is usable on the command line, its options are JSON-serialisable and
    ``load()`` returns a :class:`~vaebench.dataset.Dataset`."""
    name = s.spec.name
    _expect(
        isinstance(name, str) and name and not any(c in name for c in ",/\\ "),
        f"expected a dataset name without commas, slashes or spaces, got {name!r}",
    )
    try:
        json.dumps(s.spec.defaults(), sort_keys=True, default=list)
    except (TypeError, ValueError) as exc:
        raise _Mismatch(f"expected JSON-serialisable dataset options: {exc}") from None
    s.load()


@_dataset_check("images are (N, C, H, W), alike in both splits and as declared by the spec")
def _check_dataset_shapes(s: _DatasetSubject) -> None:
    """Train and test images are 4-D with the same ``(C, H, W)``; ``DatasetSpec.shape`` and
    ``DatasetSpec.sizes`` (shown by ``vaebench list``) match the loaded data (sizes only with
    default options)."""
    ds = s.load()
    for split in ("train", "test"):
        x = getattr(ds, f"x_{split}")
        _expect(x.ndim == 4, f"expected x_{split} of shape (N, C, H, W), got {_shape(x)}")
        _expect(x.shape[0] > 0, f"expected images in x_{split}")
    _expect(
        ds.x_train.shape[1:] == ds.x_test.shape[1:],
        f"expected train and test images of one shape, got {_shape(ds.x_train)[1:]} and "
        f"{_shape(ds.x_test)[1:]}",
    )
    if s.spec.shape is not None:
        _expect(
            tuple(s.spec.shape) == tuple(ds.shape),
            f"expected the loaded shape {tuple(ds.shape)} to match DatasetSpec.shape "
            f"{tuple(s.spec.shape)}",
        )
    if s.spec.sizes is not None and not s.options:
        got = (int(ds.x_train.shape[0]), int(ds.x_test.shape[0]))
        _expect(
            tuple(s.spec.sizes) == got,
            f"expected (train, test) sizes {got} to match DatasetSpec.sizes {tuple(s.spec.sizes)}",
        )


@_dataset_check("images are finite float32 values in [0, 1]")
def _check_dataset_range(s: _DatasetSubject) -> None:
    """Both splits are float32, finite, within ``[0, 1]`` and not constant."""
    ds = s.load()
    for split in ("train", "test"):
        x = getattr(ds, f"x_{split}")
        _expect(x.dtype == torch.float32, f"expected float32 x_{split}, got {x.dtype}")
        _expect(bool(torch.isfinite(x).all()), f"expected finite values in x_{split}")
        lo, hi = float(x.min()), float(x.max())
        _expect(lo >= 0.0 and hi <= 1.0, f"expected x_{split} in [0, 1], got [{lo:.4g}, {hi:.4g}]")
        _expect(hi > lo, f"expected x_{split} to vary, all values are {lo:.4g}")


@_dataset_check("labels and factors have one entry per image")
def _check_dataset_labels(s: _DatasetSubject) -> None:
    """``y_*`` (when present) are integer tensors ``(N,)``; ``factors_*`` float ``(N, K)``
    present in both splits or neither, with ``K == len(factor_names)``."""
    ds = s.load()
    for split in ("train", "test"):
        n = ds.x_train.shape[0] if split == "train" else ds.x_test.shape[0]
        y = getattr(ds, f"y_{split}")
        if y is not None:
            _expect(tuple(y.shape) == (n,), f"expected y_{split} of shape ({n},), got {_shape(y)}")
            _expect(
                not torch.is_floating_point(y), f"expected integer y_{split} labels, got {y.dtype}"
            )
        f = getattr(ds, f"factors_{split}")
        if f is not None:
            _expect(
                f.ndim == 2 and f.shape[0] == n,
                f"expected factors_{split} of shape ({n}, K), got {_shape(f)}",
            )
            _expect(bool(torch.isfinite(f).all()), f"expected finite factors_{split}")
            _expect(
                len(ds.factor_names) == f.shape[1],
                f"expected {f.shape[1]} factor_names for factors_{split}, got "
                f"{tuple(ds.factor_names)}",
            )
    _expect(
        (ds.factors_train is None) == (ds.factors_test is None),
        "expected factors in both splits or in neither",
    )
    _expect(
        (ds.y_train is None) == (ds.y_test is None), "expected labels in both splits or in neither"
    )


@_dataset_check("render(factors) draws images matching the dataset's own")
def _check_dataset_render(s: _DatasetSubject) -> None:
    """Only when ``render`` is present: it needs ``factors_test``; ``render(factors_test[:16])``
    is deterministic, ``(16, C, H, W)`` in ``[0, 1]``, and each rendered image is much closer (mean
    absolute difference under half) to the test image it was rendered for than to the other test
    images."""
    ds = s.load()
    if ds.render is None:
        raise _NotApplicable("the dataset has no render()")
    _expect(ds.factors_test is not None, "expected factors_test alongside render")
    f = ds.factors_test[:16]
    x = ds.x_test[:16]
    a, b = ds.render(f), ds.render(f)
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    want = (f.shape[0], *ds.shape)
    _expect(tuple(a.shape) == want, f"expected render(factors) of shape {want}, got {_shape(a)}")
    _expect(torch.equal(a, b), "expected render(factors) to be deterministic")
    lo, hi = float(a.min()), float(a.max())
    _expect(
        lo >= 0.0 and hi <= 1.0, f"expected rendered images in [0, 1], got [{lo:.4g}, {hi:.4g}]"
    )
    if f.shape[0] >= 2:
        d = (a.float().reshape(len(f), 1, -1) - x.reshape(1, len(f), -1)).abs().mean(-1)
        own = float(d.diagonal().mean())
        other = float((d.sum() - d.diagonal().sum()) / (d.numel() - len(f)))
        _expect(
            own < 0.5 * other,
            f"expected each rendered image to match its own test image far better than the "
            f"others (mean |difference| own {own:.4g}, others {other:.4g}; expected own < half "
            f"of others); are factors and images in the same order?",
        )


@_dataset_check("loading twice gives identical data")
def _check_dataset_deterministic(s: _DatasetSubject) -> None:
    """Two loads with the same options give identical images, labels and factors (seed any
    random split or generator)."""
    a, b = s.load(), s.load()
    for attr in ("x_train", "x_test", "y_train", "y_test", "factors_train", "factors_test"):
        u, v = getattr(a, attr), getattr(b, attr)
        same = (u is None and v is None) or (
            u is not None and v is not None and u.shape == v.shape and torch.equal(u, v)
        )
        _expect(same, f"expected identical {attr} from two loads")


check_dataset_loads = _check_dataset_loads
check_dataset_shapes = _check_dataset_shapes
check_dataset_range = _check_dataset_range
check_dataset_labels = _check_dataset_labels
check_dataset_render = _check_dataset_render
check_dataset_deterministic = _check_dataset_deterministic

_DATASET_CHECKS: tuple[Callable[..., str | None], ...] = (
    check_dataset_loads,
    check_dataset_shapes,
    check_dataset_range,
    check_dataset_labels,
    check_dataset_render,
    check_dataset_deterministic,
)


def dataset_checks() -> tuple[Callable[..., str | None], ...]:
    """Every dataset check, in the order :func:`run_dataset_checks` runs them."""
    return _DATASET_CHECKS


# ----------------------------------------------------------------------------- metric checks


@dataclasses.dataclass
class _MetricSubject:
    metric: Metric
    model: Model | None
    dataset: Dataset | None
    nondeterministic: frozenset[str]

    @property
    def name(self) -> str:
        return _subject_name(self.metric)

    def setup(self) -> tuple[Model, Dataset, Any]:
        """The model and dataset to evaluate on: the caller's, or a small VAE fitted on
        :func:`tiny_dataset` (it can sample, so sample-based metrics apply)."""
        from vaebench.metric import Metric

        _expect(
            isinstance(self.metric, Metric),
            f"expected a vaebench.metric.Metric instance, got {type(self.metric).__name__}",
        )
        dataset = self.dataset if self.dataset is not None else tiny_dataset()
        model = self.model
        fit = None
        if model is None:
            from vaebench.models.vae import VAE
            from vaebench.train import seed_everything

            seed_everything(0)
            model = VAE(dataset.shape, latent_dim=2, hidden=(32,), epochs=3, batch_size=32)
            fit = model.fit(dataset.x_train)
        return model, dataset, fit

    def context(self, model: Model, fit: Any) -> Any:
        from vaebench.config import EVAL_DEFAULTS
        from vaebench.metric import EvalContext

        options = {**EVAL_DEFAULTS, "n_pairs": 16, "n_steps": 8, "throughput_seconds": 0.01}
        return EvalContext(
            seed=0, device=model.device, fit=fit, eval_batch_size=64, options=options
        )


def _metric_check(
    expectation: str,
) -> Callable[[Callable[[_MetricSubject], None]], Callable[..., str | None]]:
    def decorate(body: Callable[[_MetricSubject], None]) -> Callable[..., str | None]:
        check_name = body.__name__.lstrip("_")

        @functools.wraps(body)
        def check(
            metric: Any,
            *,
            model: Model | None = None,
            dataset: Dataset | None = None,
            nondeterministic: Iterable[str] = (),
        ) -> str | None:
            if isinstance(metric, str):
                from vaebench.plugins import get_registry

                metric = get_registry().metric(metric).spec
            subject = _MetricSubject(metric, model, dataset, frozenset(nondeterministic))
            return _run_body(check_name, subject.name, expectation, body, subject)

        return _named_check(check, check_name, expectation, body)

    return decorate


@_metric_check("the metric declares a name and its values")
def _check_metric_declares(s: _MetricSubject) -> None:
    """``name`` is a usable non-empty string; ``values`` is a non-empty tuple of
    :class:`~vaebench.metric.Value` with unique names, a direction in ``{True, False, None}`` and
    integer ``decimals``."""
    from vaebench.metric import Metric, Value

    m = s.metric
    _expect(isinstance(m, Metric), f"expected a vaebench.metric.Metric, got {type(m).__name__}")
    _expect(
        isinstance(m.name, str) and m.name and not any(c in m.name for c in ",/\\ "),
        f"expected a metric name without commas, slashes or spaces, got {m.name!r}",
    )
    _expect(
        isinstance(m.values, (tuple, list)) and len(m.values) > 0,
        f"expected a non-empty tuple of vaebench.metric.Value in `values`, got {m.values!r}",
    )
    names = []
    for v in m.values:
        _expect(isinstance(v, Value), f"expected Value declarations, got {type(v).__name__}")
        _expect(
            v.higher_is_better in (True, False, None),
            f"expected higher_is_better True, False or None for {v.name!r}, got "
            f"{v.higher_is_better!r}",
        )
        _expect(
            isinstance(v.decimals, int) and v.decimals >= 0,
            f"expected non-negative int decimals for {v.name!r}, got {v.decimals!r}",
        )
        names.append(v.name)
    dupes = sorted({n for n in names if names.count(n) > 1})
    _expect(not dupes, f"expected unique value names, got duplicates {dupes}")


@_metric_check("evaluate returns exactly the declared values as finite floats")
def _check_metric_values(s: _MetricSubject) -> None:
    """``applies_to`` returns a bool and is true for the check's model and dataset (pass your own
    with ``model=`` / ``dataset=`` otherwise); ``evaluate`` returns every declared value and no
    other, each a finite real number; it leaves the model's outputs unchanged."""
    model, dataset, fit = s.setup()
    applies = s.metric.applies_to(model, dataset)
    _expect(isinstance(applies, bool), f"expected applies_to to return a bool, got {applies!r}")
    _expect(
        applies,
        f"expected the metric to apply to the check's model ({type(model).__name__}) and "
        f"dataset ({dataset.name}); pass model= and dataset= it applies to",
    )
    probe = dataset.x_test[:4].to(model.device)
    z_before = model.encode(probe)
    got = s.metric.evaluate(model, dataset, s.context(model, fit))
    _expect(isinstance(got, dict), f"expected evaluate to return a dict, got {type(got).__name__}")
    declared = s.metric.declared()
    missing, extra = sorted(set(declared) - set(got)), sorted(set(got) - set(declared))
    _expect(
        not missing and not extra,
        f"expected exactly the declared values {sorted(declared)}, got {sorted(got)} "
        f"(missing {missing}, undeclared {extra})",
    )
    for k, v in got.items():
        _expect(
            not isinstance(v, bool) and isinstance(v, (int, float)) or _is_real_scalar(v),
            f"expected a real number for {k!r}, got {type(v).__name__}",
        )
        _expect(math.isfinite(float(v)), f"expected a finite value for {k!r}, got {float(v)}")
    _expect(
        torch.equal(model.encode(probe), z_before),
        "expected evaluate to leave the model unchanged (codes differ afterwards)",
    )


def _is_real_scalar(v: Any) -> bool:
    try:
        import numpy as np

        if isinstance(v, np.generic) and np.isrealobj(v):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(v, Tensor) and v.numel() == 1 and not torch.is_complex(v)


@_metric_check("evaluate gives the same values for the same seed")
def _check_metric_deterministic(s: _MetricSubject) -> None:
    """Two evaluations with fresh contexts of one seed give equal values (draw random choices
    from ``ctx.generator``). Values with a timing unit (see :data:`TIMING_UNITS`) and those named
    in ``nondeterministic`` are exempt."""
    model, dataset, fit = s.setup()
    if not s.metric.applies_to(model, dataset):
        raise _NotApplicable("the metric does not apply to the check's model and dataset")
    a = s.metric.evaluate(model, dataset, s.context(model, fit))
    b = s.metric.evaluate(model, dataset, s.context(model, fit))
    timing = {v.name for v in s.metric.values if v.unit in TIMING_UNITS} | s.nondeterministic
    differ = {
        k: (float(a[k]), float(b.get(k, math.nan)))
        for k in a
        if k not in timing and float(a[k]) != float(b.get(k, math.nan))
    }
    _expect(
        not differ,
        f"expected equal values from two evaluations with seed 0, got {differ} "
        f"(draw random choices from ctx.generator)",
    )


check_metric_declares = _check_metric_declares
check_metric_values = _check_metric_values
check_metric_deterministic = _check_metric_deterministic

_METRIC_CHECKS: tuple[Callable[..., str | None], ...] = (
    check_metric_declares,
    check_metric_values,
    check_metric_deterministic,
)


def metric_checks() -> tuple[Callable[..., str | None], ...]:
    """Every metric check, in the order :func:`run_metric_checks` runs them."""
    return _METRIC_CHECKS


# ----------------------------------------------------------------------------- runners


def _run_checks(
    checks: Iterable[Callable[..., str | None]], subject: Any, name: str, kwargs: dict[str, Any]
) -> Iterator[CheckResult]:
    for check in checks:
        start = time.perf_counter()
        try:
            note = check(subject, **kwargs)
        except CheckFailed as exc:
            yield CheckResult(check.__name__, name, False, exc.detail, time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - a check must never stop the others
            yield CheckResult(
                check.__name__,
                name,
                False,
                f"check crashed: {type(exc).__name__}: {exc}",
                time.perf_counter() - start,
            )
        else:
            yield CheckResult(check.__name__, name, True, note or "", time.perf_counter() - start)


def _select(all_checks: Sequence[Callable[..., str | None]], names: Iterable[str] | None) -> list:
    if names is None:
        return list(all_checks)
    by_name = {c.__name__: c for c in all_checks}
    wanted = list(names)
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)}; valid: {', '.join(by_name)}")
    return [by_name[n] for n in wanted]


def run_model_checks(
    model: Any,
    device: str | torch.device | None = "cpu",
    *,
    params: Mapping[str, Any] | None = None,
    checks: Iterable[str] | None = None,
) -> Iterator[CheckResult]:
    """Run the model checks one by one, yielding a :class:`CheckResult` for each; a failing or
    crashing check is reported, never raised (``vaebench check NAME`` uses this)."""
    selected = _select(_MODEL_CHECKS, checks)
    try:
        spec = _as_model_spec(model)
    except Exception as exc:  # noqa: BLE001
        for check in selected:
            yield CheckResult(check.__name__, _subject_name(model), False, str(exc))
        return
    yield from _run_checks(selected, spec, spec.name, {"device": device, "params": params})


def run_dataset_checks(
    dataset: Any,
    *,
    options: Mapping[str, Any] | None = None,
    data_dir: str | None = None,
    checks: Iterable[str] | None = None,
) -> Iterator[CheckResult]:
    """Run the dataset checks, yielding a :class:`CheckResult` for each (never raises)."""
    selected = _select(_DATASET_CHECKS, checks)
    kwargs = {"options": options, "data_dir": data_dir}
    yield from _run_checks(selected, dataset, _subject_name(dataset), kwargs)


def run_metric_checks(
    metric: Any,
    *,
    model: Model | None = None,
    dataset: Dataset | None = None,
    nondeterministic: Iterable[str] = (),
    checks: Iterable[str] | None = None,
) -> Iterator[CheckResult]:
    """Run the metric checks, yielding a :class:`CheckResult` for each (never raises)."""
    selected = _select(_METRIC_CHECKS, checks)
    kwargs = {"model": model, "dataset": dataset, "nondeterministic": tuple(nondeterministic)}
    yield from _run_checks(selected, metric, _subject_name(metric), kwargs)


def _raise_failures(name: str, results: Iterable[CheckResult]) -> list[CheckResult]:
    results = list(results)
    failures = [r for r in results if not r.passed]
    if failures:
        raise ConformanceError(name, failures)
    return results


def check_model(
    factory_or_spec: Any,
    *,
    device: str | torch.device | None = "cpu",
    params: Mapping[str, Any] | None = None,
    checks: Iterable[str] | None = None,
) -> list[CheckResult]:
    """Run every model check (or those named in ``checks``); raise :class:`ConformanceError`
    listing each failed check and what it expected, else return the results."""
    results = run_model_checks(factory_or_spec, device, params=params, checks=checks)
    return _raise_failures(_subject_name(factory_or_spec), results)


def check_dataset(
    spec_or_loader: Any,
    *,
    options: Mapping[str, Any] | None = None,
    data_dir: str | None = None,
    checks: Iterable[str] | None = None,
) -> list[CheckResult]:
    """Run every dataset check; raise :class:`ConformanceError` on failures."""
    results = run_dataset_checks(spec_or_loader, options=options, data_dir=data_dir, checks=checks)
    return _raise_failures(_subject_name(spec_or_loader), results)


def check_metric(
    metric: Any,
    *,
    model: Model | None = None,
    dataset: Dataset | None = None,
    nondeterministic: Iterable[str] = (),
    checks: Iterable[str] | None = None,
) -> list[CheckResult]:
    """Run every metric check (on ``model`` and ``dataset``, or a small VAE fitted on
    :func:`tiny_dataset`); raise :class:`ConformanceError` on failures."""
    results = run_metric_checks(
        metric, model=model, dataset=dataset, nondeterministic=nondeterministic, checks=checks
    )
    return _raise_failures(_subject_name(metric), results)


# ----------------------------------------------------------------------------- pytest helper


def _kind_of(obj: Any) -> str:
    from vaebench.dataset import DatasetSpec
    from vaebench.metric import Metric

    if isinstance(obj, Metric):
        return "metric"
    if isinstance(obj, DatasetSpec) or isinstance(getattr(obj, "spec", None), DatasetSpec):
        return "dataset"
    return "model"


def parametrize_with_checks(
    subjects: Sequence[Any],
    *,
    device: str | torch.device | None = None,
    params: Mapping[str, Any] | None = None,
    expected_failed_checks: Mapping[str, str] | Callable[[Any], Mapping[str, str]] | None = None,
) -> Any:
    """A ``pytest.mark.parametrize`` over (subject, check) for every subject and its checks.

    ``subjects`` may mix model specs (or factories, or registered names), dataset specs and
    metric instances; each gets the checks of its kind. Test ids read
    ``check_encode_shape[my-model]`` so ``pytest -k check_encode_shape`` runs one check. Use::

        @parametrize_with_checks([MY_MODEL_SPEC, MY_METRIC])
        def test_conformance(subject, check):
            check(subject)

    ``device`` (default: ``$VAEBENCH_TEST_DEVICE`` or cpu) and ``params`` apply to model checks.
    ``expected_failed_checks`` maps check names to a reason (or is a callable ``subject ->
    mapping``); those checks are marked ``xfail(strict=True)``, so they are reported and must
    keep failing.
    """
    import pytest

    dev = _device(device)
    params_ = dict(params or {})
    argvalues = []
    for subject in subjects:
        kind = _kind_of(subject)
        if kind == "model":
            checks, kwargs = _MODEL_CHECKS, {"device": dev, "params": params_}
            name = _subject_name(_as_model_spec(subject))
        elif kind == "dataset":
            checks, kwargs = _DATASET_CHECKS, {}
            name = _subject_name(subject)
        else:
            checks, kwargs = _METRIC_CHECKS, {}
            name = _subject_name(subject)
        if callable(expected_failed_checks):
            xfails = dict(expected_failed_checks(subject))
        else:
            xfails = dict(expected_failed_checks or {})
        for check in checks:
            bound = _bind(check, kwargs)
            marks = []
            if check.__name__ in xfails:
                marks.append(
                    pytest.mark.xfail(
                        reason=xfails[check.__name__], strict=True, raises=CheckFailed
                    )
                )
            argvalues.append(
                pytest.param(subject, bound, id=f"{check.__name__}[{name}]", marks=marks)
            )
    return pytest.mark.parametrize("subject, check", argvalues)


def _bind(check: Callable[..., str | None], kwargs: dict[str, Any]) -> Callable[[Any], None]:
    """``check`` with keyword arguments fixed; skips the test (``pytest.skip``) when the check
    does not apply (e.g. ``check_sample`` on a model without ``sample``)."""

    @functools.wraps(check)
    def bound(subject: Any) -> None:
        note = check(subject, **kwargs)
        if note:
            import pytest

            pytest.skip(note)

    return bound
