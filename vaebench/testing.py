"""Conformance kit: checks a plugin author runs in their own test suite.

Every check is a small function that builds its subject afresh, runs it on tiny synthetic data and
raises :class:`CheckFailed` -- an :class:`AssertionError` -- whose message names the check, the
subject and what was expected, e.g.::

    check_encode_shape[my-model]: expected encode(x) for x of shape (5, 1, 28, 28) to have
    shape (5, 10), got (5, 20)

Three kinds of subject share one mechanism:

- **models**: a :class:`~vaebench.model.ModelSpec`, a registered name (``"vae"``; looked up
  through the installed plugins) or a factory ``factory(input_shape=..., device=..., **params)``
  (a :class:`~vaebench.model.Model` subclass works);
- **datasets**: a :class:`~vaebench.dataset.DatasetSpec`, a registered name or a loader;
- **metrics**: a :class:`~vaebench.metric.Metric` instance or a registered name.

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
- without raising: :func:`run_model_checks`, :func:`run_dataset_checks` and
  :func:`run_metric_checks` (used by ``vaebench check``) yield one :class:`CheckResult` per check.

**The model checks adapt to the model's tags** (:class:`vaebench.model.Tags`), as scikit-learn's
checks adapt to estimator tags: the image shapes :data:`SHAPES` are fitted to the tags'
``channels``, ``min_image_size`` and ``max_image_size``; ``fit`` receives labels when
``uses_labels``; :func:`check_sample` applies only when ``can_sample``,
:func:`check_posterior` when ``has_posterior``, :func:`check_log_likelihood` when
``likelihood`` names one, and the two-fit comparison of :func:`check_deterministic` when
``deterministic``. A check that does not apply returns a note starting with
``"not applicable"`` (pytest reports it as skipped, ``vaebench check`` as SKIP).

Checks override ``epochs`` and ``batch_size`` (when the model has them) and run torch on one CPU
thread to keep each check well under a second; ``params`` adds overrides of your own (e.g. a
smaller network).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import hashlib
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
    from vaebench.model import Model, ModelSpec, Tags

__all__ = [
    "CheckFailed",
    "ConformanceError",
    "CheckResult",
    "SHAPES",
    "MAX_TEST_OVERLAP",
    "tiny_images",
    "tiny_labels",
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
    # model checks
    "check_interface",
    "check_tags",
    "check_metadata",
    "check_encode_shape",
    "check_decode_shape",
    "check_decode_range",
    "check_no_grad",
    "check_inference_unchanged",
    "check_device",
    "check_deterministic",
    "check_save_load",
    "check_fit_lowers_loss",
    "check_fit_last_batch_of_one",
    "check_sample",
    "check_posterior",
    "check_log_likelihood",
    # dataset checks
    "check_dataset_loads",
    "check_dataset_shapes",
    "check_dataset_range",
    "check_dataset_labels",
    "check_dataset_overlap",
    "check_dataset_render",
    "check_dataset_deterministic",
    # metric checks
    "check_metric_declares",
    "check_metric_values",
    "check_metric_deterministic",
]

#: Image shapes ``(C, H, W)`` of the model checks: tiny grey, MNIST-sized grey, tiny colour. Each
#: is fitted to the model's tags (a channel count it accepts, a side within its size limits).
SHAPES: tuple[tuple[int, int, int], ...] = ((1, 8, 8), (1, 28, 28), (3, 16, 16))
#: Shapes tried after :data:`SHAPES` to build a first model (its tags are read from it) when the
#: factory rejects those.
PROBE_SHAPES: tuple[tuple[int, int, int], ...] = (
    (1, 32, 32),
    (3, 32, 32),
    (1, 64, 64),
    (3, 64, 64),
)
#: Training-set size for the shape checks and the fit check.
N_TINY = 32
N_FIT = 64
#: Epochs and batch size used by the fit checks (only for models that have these parameters).
FIT_EPOCHS = 5
FIT_BATCH_SIZE = 16
#: The largest fraction of test images that may be exact copies of training images
#: (:func:`check_dataset_overlap`): above it, test scores partly measure memorisation.
MAX_TEST_OVERLAP = 0.01
#: Metric values with these units measure time and are exempt from the determinism check.
TIMING_UNITS = frozenset({"s", "ms", "samples/s", "images/s", "seconds"})
#: How the note of a check that does not apply begins.
NOT_APPLICABLE = "not applicable"
#: Evaluation options the metric checks set to keep a metric's run short.
FAST_EVAL_OPTIONS: dict[str, Any] = {"n_pairs": 16, "n_steps": 8, "throughput_seconds": 0.01}


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
    """Outcome of one check: ``message`` says what was expected when ``passed`` is false, and
    holds a note otherwise (what was measured, or why the check does not apply: then
    ``skipped`` is true); ``seconds`` is its wall time."""

    name: str
    subject: str
    passed: bool
    message: str = ""
    seconds: float = 0.0
    skipped: bool = False


class _Mismatch(AssertionError):
    """Raised inside a check body; converted to :class:`CheckFailed` naming the check."""


class _NotApplicable(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside a check body when the check does not apply (e.g. no ``sample``)."""


def _expect(condition: Any, message: str) -> None:
    if not condition:
        raise _Mismatch(message)


def _maxdiff(a: Tensor, b: Tensor) -> str:
    """Largest absolute difference of two tensors, for messages (or their shapes if unequal)."""
    if a.shape != b.shape:
        return f"(shapes {tuple(a.shape)} and {tuple(b.shape)})"
    return f"{float((a.detach().double() - b.detach().double()).abs().max()):.3g}"


def _shape(t: Any) -> tuple[int, ...] | str:
    return tuple(t.shape) if hasattr(t, "shape") else type(t).__name__


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _names(keys: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


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


def _quadrant(f: Tensor) -> Tensor:
    return (f[:, 0] > 0.5).long() + 2 * (f[:, 1] > 0.5).long()


def tiny_images(shape: Sequence[int], n: int = N_TINY, seed: int = 0) -> Tensor:
    """``n`` structured images of ``shape`` ``(C, H, W)``, float32 in ``[0, 1]``: Gaussian blobs
    at random positions plus a little noise (learnable, so fitting lowers the loss)."""
    f = _blob_factors(n, seed)
    g = torch.Generator().manual_seed(seed + 1)
    x = _render_blobs(f, shape) + 0.02 * torch.randn(n, *shape, generator=g)
    return x.clamp(0.0, 1.0)


def tiny_labels(n: int = N_TINY, seed: int = 0) -> Tensor:
    """The labels ``(n,)`` int64 in ``0..3`` of :func:`tiny_images` ``(shape, n, seed)``: the
    quadrant of the image that holds the blob's centre (what models that ``uses_labels`` get)."""
    return _quadrant(_blob_factors(n, seed))


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

    return Dataset(
        name="tiny-blobs",
        x_train=images(f_train),
        x_test=images(f_test),
        y_train=_quadrant(f_train),
        y_test=_quadrant(f_test),
        factors_train=f_train,
        factors_test=f_test,
        factor_names=("x", "y"),
        render=functools.partial(_render_blobs, shape=shape),
        info={"generator": "vaebench.testing.tiny_dataset", "seed": seed},
    )


# ----------------------------------------------------------------------------- the mechanism


@dataclasses.dataclass
class _Kind:
    """One kind of subject: ``make(obj, **options)`` prepares a subject (an instance of
    ``subject_type`` with a ``name``) from what the caller passes; ``checks`` in running
    order."""

    name: str
    make: Callable[..., Any]
    subject_type: type
    checks: list[Callable[..., str | None]] = dataclasses.field(default_factory=list)


_KINDS: dict[str, _Kind] = {}


def _subject_name(obj: Any) -> str:
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    if isinstance(obj, str):
        return obj
    return getattr(obj, "__name__", type(obj).__name__)


#: Torch CPU threads of the check running now (the runners' ``threads``; 1 by default).
_THREADS: contextvars.ContextVar[int] = contextvars.ContextVar("vaebench_check_threads", default=1)


@contextlib.contextmanager
def _check_threads() -> Iterator[None]:
    """Run torch on the kit's CPU threads inside a check: one unless a runner was given
    ``threads``. On tiny data, intra-op threads only add synchronisation: on a busy machine a
    check is 10x faster single-threaded."""
    from vaebench.train import torch_threads

    with torch_threads(_THREADS.get()):
        yield


def _run_body(
    check_name: str, subject: str, expectation: str, body: Callable, arg: Any
) -> str | None:
    """Run a check body; return its note (``None``, what it measured, or ``"not applicable:
    why"``)."""
    try:
        with _check_threads():
            note = body(arg)
    except _NotApplicable as exc:
        return f"{NOT_APPLICABLE}: {exc}"
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
    return note if isinstance(note, str) and note else None


def _check(kind: str, expectation: str) -> Callable[[Callable[[Any], str | None]], Callable]:
    """Turn ``body(subject)`` into the public check of ``kind`` (one mechanism for models,
    datasets and metrics).

    The check takes what the kind's ``make`` takes -- the subject (a spec, a name, ...) and its
    keyword options -- or a subject ``make`` already prepared (the runners prepare it once).
    Inside the body, :func:`_expect` failures become :class:`CheckFailed` naming the check; any
    other exception a :class:`CheckFailed` saying what the check expected and what was raised
    (the original chained). The body may return a note; it raises :class:`_NotApplicable` when
    the check does not apply.
    """

    def decorate(body: Callable[[Any], str | None]) -> Callable[..., str | None]:
        k = _KINDS[kind]
        check_name = body.__name__.lstrip("_")
        signature = inspect.signature(k.make)
        first = next(iter(signature.parameters))

        def check(*args: Any, **kwargs: Any) -> str | None:
            bound = signature.bind(*args, **kwargs)  # TypeError for a wrong argument
            options = dict(bound.arguments)
            obj = options.pop(first)
            if isinstance(obj, k.subject_type):
                subject = obj
            else:
                try:
                    subject = k.make(obj, **options)
                except Exception as exc:  # noqa: BLE001 - an unusable subject fails the check
                    raise CheckFailed(check_name, _subject_name(obj), str(exc)) from exc
            return _run_body(check_name, subject.name, expectation, body, subject)

        check.__name__ = check.__qualname__ = check_name
        check.__module__ = __name__
        check.__doc__ = f"Check that {expectation}.\n\n{inspect.getdoc(body) or ''}".strip()
        check.__signature__ = signature.replace(return_annotation="str | None")  # type: ignore[attr-defined]
        check.expectation = expectation  # type: ignore[attr-defined]
        check.kind = kind  # type: ignore[attr-defined]
        k.checks.append(check)
        return check

    return decorate


def _select(kind: str, names: Iterable[str] | None) -> list[Callable[..., str | None]]:
    all_checks = _KINDS[kind].checks
    if names is None:
        return list(all_checks)
    by_name = {c.__name__: c for c in all_checks}
    wanted = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)}; valid: {', '.join(by_name)}")
    return [by_name[n] for n in wanted]


def _run(
    kind: str,
    obj: Any,
    names: Iterable[str] | None,
    options: dict[str, Any],
    threads: int | None = None,
) -> Iterator[CheckResult]:
    """Prepare the subject once and run the selected checks of ``kind`` on it, yielding a
    :class:`CheckResult` each; a failing or crashing check is reported, never raised.
    ``threads``: torch CPU threads of each check (default 1)."""
    selected = _select(kind, names)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)):
        raise TypeError(f"threads must be a positive integer or None, got {threads!r}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    n = 1 if threads is None else threads
    try:
        with _kit_threads(n):
            subject = _KINDS[kind].make(obj, **options)
    except Exception as exc:  # noqa: BLE001 - every check fails with the reason
        for check in selected:
            yield CheckResult(check.__name__, _subject_name(obj), False, str(exc))
        return
    for check in selected:
        start = time.perf_counter()
        try:
            with _kit_threads(n):  # set and reset around the call: never across a yield
                note = check(subject)
        except CheckFailed as exc:
            yield CheckResult(
                check.__name__, subject.name, False, exc.detail, time.perf_counter() - start
            )
        except Exception as exc:  # noqa: BLE001 - a check must never stop the others
            yield CheckResult(
                check.__name__,
                subject.name,
                False,
                f"check crashed: {type(exc).__name__}: {exc}",
                time.perf_counter() - start,
            )
        else:
            skipped = bool(note) and note.startswith(NOT_APPLICABLE)
            elapsed = time.perf_counter() - start
            yield CheckResult(check.__name__, subject.name, True, note or "", elapsed, skipped)


@contextlib.contextmanager
def _kit_threads(n: int) -> Iterator[None]:
    """Give the checks run inside ``n`` torch CPU threads, and the subject's preparation too."""
    from vaebench.train import torch_threads

    token = _THREADS.set(n)
    try:
        with torch_threads(n):
            yield
    finally:
        _THREADS.reset(token)


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        device = os.environ.get("VAEBENCH_TEST_DEVICE", "cpu")
    return torch.device(device)


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


def _fit_shape(shape: Sequence[int], tags: Tags) -> tuple[int, int, int]:
    """``shape`` ``(C, H, W)`` changed as little as the tags need: a channel count they accept,
    sides within ``[min_image_size, max_image_size]``."""
    c, h, w = (int(s) for s in shape)
    if tags.channels and c not in tags.channels:
        c = int(tags.channels[0])
    low = max(1, int(tags.min_image_size))
    h, w = max(h, low), max(w, low)
    if tags.max_image_size is not None:
        h, w = min(h, int(tags.max_image_size)), min(w, int(tags.max_image_size))
    return (c, h, w)


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

    def build_first(self, raw: bool = False) -> tuple[tuple[int, int, int], Any]:
        """A model built for the first shape of :data:`SHAPES` + :data:`PROBE_SHAPES` that the
        factory accepts, and that shape; ``raw``: call the factory itself (whatever it returns).
        When no shape builds, the first shape's error is raised."""
        from vaebench.train import seed_everything

        first: Exception | None = None
        for shape in (*SHAPES, *PROBE_SHAPES):
            try:
                if not raw:
                    return shape, self.create(shape)
                seed_everything(0)
                return shape, self.spec.factory(
                    input_shape=shape, device=self.device, **self.resolved()
                )
            except Exception as exc:  # noqa: BLE001 - try the next shape
                first = first or exc
        assert first is not None
        raise first

    @functools.cached_property
    def tags(self) -> Tags:
        """The tags of a model built with the checks' parameters."""
        from vaebench.model import Tags

        tags = self.build_first()[1].tags
        _expect(
            isinstance(tags, Tags),
            f"expected model.tags to be a vaebench.model.Tags, got {type(tags).__name__}",
        )
        return tags

    @functools.cached_property
    def shapes(self) -> tuple[tuple[int, int, int], ...]:
        """:data:`SHAPES` fitted to the tags, without repeats."""
        tags = self.tags
        out: list[tuple[int, int, int]] = []
        for shape in SHAPES:
            fitted = _fit_shape(shape, tags)
            if fitted not in out and tags.unsupported(fitted) is None:
                out.append(fitted)
        _expect(
            out,
            f"expected the tags to admit an image shape, but none of {list(SHAPES)} fits them "
            f"(min_image_size={tags.min_image_size!r}, max_image_size={tags.max_image_size!r}, "
            f"channels={tags.channels!r})",
        )
        return tuple(out)

    def fit(self, model: Model, x: Tensor, seed: int = 0) -> Any:
        """``model.fit(x)``, with the labels of :func:`tiny_labels` when the tags say
        ``uses_labels`` (``x`` must be ``tiny_images(shape, len(x), seed)``)."""
        if self.tags.uses_labels:
            return model.fit(x, tiny_labels(x.shape[0], seed).to(self.device))
        return model.fit(x)

    def fitted(
        self, shape: Sequence[int], seed: int = 0, n: int = N_TINY, **fast: Any
    ) -> tuple[Model, Tensor]:
        """A model fitted on ``n`` tiny images (seeded exactly like a run's cell), and the data."""
        model = self.create(shape, seed, **fast)
        x = tiny_images(shape, n, seed).to(self.device)
        self.fit(model, x, seed)
        return model, x


def _model_subject(
    model: Any,
    *,
    device: str | torch.device | None = None,
    params: Mapping[str, Any] | None = None,
) -> _ModelSubject:
    return _ModelSubject(_as_model_spec(model), _device(device), dict(params or {}))


_KINDS["model"] = _Kind("model", _model_subject, _ModelSubject)


def _full_state(model: Any) -> dict[str, Any]:
    """A copy of every tensor of ``model``: a torch module's parameters and buffers (whatever
    its ``state_dict`` override returns), otherwise its ``state_dict()``."""
    if isinstance(model, torch.nn.Module):
        state = torch.nn.Module.state_dict(model)
    else:
        state = model.state_dict()
    return {k: v.detach().clone() if isinstance(v, Tensor) else v for k, v in state.items()}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
            return False
        try:
            torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
        except AssertionError:
            return False
        return True
    return type(a) is type(b) and a == b


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Names of the entries added, removed or changed between two :func:`_full_state`."""
    keys = sorted(set(before) | set(after))
    return [k for k in keys if k not in before or k not in after or not _same(before[k], after[k])]


def _mode_hint(model: Any) -> str:
    if isinstance(model, torch.nn.Module) and model.training:
        return (
            " (the model is in training mode: BatchNorm normalises by the batch and updates its "
            "running statistics, dropout is random -- run inference in eval mode)"
        )
    return ""


def _batchnorm_hint(keys: Sequence[str]) -> str:
    stats = ("running_mean", "running_var", "num_batches_tracked")
    if any(k.rsplit(".", 1)[-1] in stats for k in keys):
        return " (BatchNorm running statistics change only in training mode)"
    return ""


# ----------------------------------------------------------------------------- model checks


@_check("model", "the factory builds a complete vaebench.model.Model")
def _check_interface(s: _ModelSubject) -> None:
    """The spec's name is usable on the command line; the factory returns a
    :class:`~vaebench.model.Model`, accepts every default parameter, its defaults are
    JSON-serialisable (they are stored in result files), ``to`` returns the model and
    ``state_dict`` holds plain tensors only (``Model.load`` uses ``weights_only``)."""
    from vaebench.model import Model
    from vaebench.plugins import valid_name

    _expect(
        valid_name(s.spec.name),
        f"expected a model name without commas, slashes, spaces or control characters, got "
        f"{s.spec.name!r}",
    )
    defaults = s.spec.defaults()
    try:
        json.dumps(defaults, sort_keys=True, default=list)
    except (TypeError, ValueError) as exc:
        raise _Mismatch(
            f"expected JSON-serialisable default parameters (they are stored with results), "
            f"got {defaults!r}: {exc}"
        ) from None
    _, model = s.build_first(raw=True)
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
    _expect(all(isinstance(k, str) for k in state), "expected state_dict() keys to be strings")


@_check("model", "the model's tags are a valid vaebench.model.Tags, backed by its methods")
def _check_tags(s: _ModelSubject) -> str:
    """``tags`` is a :class:`~vaebench.model.Tags` with ``min_image_size`` an int >= 1,
    ``max_image_size`` ``None`` or an int >= it, ``channels`` ``None`` or a non-empty tuple of
    positive ints, boolean flags and ``likelihood`` empty or one of
    :data:`vaebench.model.LIKELIHOODS`; a model tagged ``can_sample``, ``has_posterior`` or with
    a ``likelihood`` implements ``sample``, ``posterior`` or ``log_likelihood``. Notes the image
    shapes the other checks use."""
    from vaebench.model import LIKELIHOODS, Model

    _, model = s.build_first()
    t = s.tags
    _expect(
        _is_int(t.min_image_size) and t.min_image_size >= 1,
        f"expected tags.min_image_size to be an int >= 1, got {t.min_image_size!r}",
    )
    _expect(
        t.max_image_size is None
        or (_is_int(t.max_image_size) and t.max_image_size >= t.min_image_size),
        f"expected tags.max_image_size to be None or an int >= min_image_size "
        f"({t.min_image_size}), got {t.max_image_size!r}",
    )
    _expect(
        t.channels is None
        or (
            isinstance(t.channels, tuple)
            and len(t.channels) > 0
            and all(_is_int(c) and c >= 1 for c in t.channels)
        ),
        f"expected tags.channels to be None or a non-empty tuple of positive ints, got "
        f"{t.channels!r}",
    )
    for flag in ("can_sample", "uses_labels", "has_posterior", "deterministic"):
        value = getattr(t, flag)
        _expect(isinstance(value, bool), f"expected tags.{flag} to be a bool, got {value!r}")
    _expect(
        t.likelihood == "" or t.likelihood in LIKELIHOODS,
        f"expected tags.likelihood to be empty or one of {', '.join(LIKELIHOODS)}, got "
        f"{t.likelihood!r}",
    )
    for flag, method in (
        ("can_sample", "sample"),
        ("has_posterior", "posterior"),
        ("likelihood", "log_likelihood"),
    ):
        value = getattr(t, flag)
        _expect(
            not value or getattr(type(model), method) is not getattr(Model, method),
            f"expected a {method}() method: the tags say {flag}={value!r} but "
            f"{type(model).__name__} does not implement {method}",
        )
    labels = "; fit gets labels" if t.uses_labels else ""
    return f"image shapes used: {', '.join(map(str, s.shapes))}{labels}"


@_check("model", "latent_dim, n_params and input_shape describe the model")
def _check_metadata(s: _ModelSubject) -> None:
    """For each image shape: ``latent_dim`` is a positive int, ``n_params`` an int > 0,
    ``input_shape`` the shape the model was built for and ``device`` a :class:`torch.device`."""
    for shape in s.shapes:
        model = s.create(shape)
        ld = getattr(model, "latent_dim", None)
        _expect(_is_int(ld) and ld > 0, f"expected latent_dim to be a positive int, got {ld!r}")
        n = model.n_params
        _expect(_is_int(n) and n > 0, f"expected n_params to be an int > 0, got {n!r}")
        got = tuple(getattr(model, "input_shape", ()) or ())
        _expect(
            got == tuple(shape),
            f"expected input_shape {tuple(shape)} (the shape passed to the factory), got {got}",
        )
        _expect(
            isinstance(model.device, torch.device),
            f"expected device to be a torch.device, got {type(model.device).__name__}",
        )


@_check("model", "encode returns float32 codes (N, latent_dim) for every image shape it supports")
def _check_encode_shape(s: _ModelSubject) -> None:
    """For each image shape (:data:`SHAPES` fitted to the tags), after a one-epoch fit,
    ``encode`` of 5 images (and of one image) returns finite float32 codes
    ``(N, latent_dim)``."""
    for shape in s.shapes:
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


@_check("model", "decode returns float32 images (N, C, H, W) for every image shape it supports")
def _check_decode_shape(s: _ModelSubject) -> None:
    """For each image shape, after a one-epoch fit, ``decode(encode(x))`` and ``decode`` of
    random codes return float32 images of the input's shape."""
    for shape in s.shapes:
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


@_check("model", "decode returns finite values in [0, 1]")
def _check_decode_range(s: _ModelSubject) -> None:
    """``decode(encode(x))`` and ``decode`` of large random codes (``3 * N(0, I)``) are finite
    and lie in ``[0, 1]`` (images; apply a sigmoid or clamp), for the first image shape and the
    colour one."""
    for shape in s.shapes[:1] + s.shapes[2:]:
        model, x = s.fitted(shape)
        g = torch.Generator().manual_seed(1)
        z_rand = 3 * torch.randn(16, model.latent_dim, generator=g)
        for what, code in (
            ("decode(encode(x))", model.encode(x[:8])),
            ("decode(3 * randn codes)", z_rand.to(s.device)),
        ):
            out = model.decode(code)
            _expect(bool(torch.isfinite(out).all()), f"expected finite values from {what}")
            if not model.tags.bounded_output:
                continue  # declared real-valued outputs (e.g. pca clip=false): finite suffices
            lo, hi = float(out.min()), float(out.max())
            _expect(
                lo >= 0.0 and hi <= 1.0,
                f"expected {what} in [0, 1] for shape {shape}, got range [{lo:.4g}, {hi:.4g}]",
            )


@_check("model", "encode and decode run without autograd and leave grad mode as they found it")
def _check_no_grad(s: _ModelSubject) -> None:
    """Outputs of ``encode``/``decode`` have ``requires_grad=False`` (wrap them in
    ``torch.inference_mode()`` or ``torch.no_grad()``), and grad mode is still enabled after."""
    model, x = s.fitted(s.shapes[0])
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


def _inference_leaves_model_unchanged(s: _ModelSubject, model: Any, x: Tensor, where: str) -> None:
    state = _full_state(model)
    tags = s.tags

    def call(what: str, fn: Callable[[], Any]) -> Any:
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - say which call on which model
            raise _Mismatch(
                f"expected {what} to work on {where}, but it raised {type(exc).__name__}: "
                f"{exc}{_mode_hint(model)}"
            ) from None
        changed = _changed(state, _full_state(model))
        _expect(
            not changed,
            f"expected {what} to leave the model unchanged, but on {where} it changed "
            f"{_names(changed)}{_batchnorm_hint(changed)}{_mode_hint(model)}",
        )
        return out

    def alone(one: Any, again: Any, batch: Any, what: str, method: str) -> None:
        if not (isinstance(one, Tensor) and isinstance(batch, Tensor)):
            return  # the shape checks report outputs that are not tensors
        if one.shape != batch[:1].shape or one.dtype != batch.dtype:
            return
        _expect(
            torch.equal(one, again),
            f"expected {method} to be deterministic, but on {where} two calls on one input "
            f"differ by up to {_maxdiff(one, again)}{_mode_hint(model)}",
        )
        scale = max(1.0, float(batch[:1].detach().abs().max()))
        _expect(
            torch.allclose(one.double(), batch[:1].double(), rtol=1e-4, atol=1e-5 * scale),
            f"expected {what} of an image not to depend on the other images of its batch, but "
            f"on {where} it differs alone and in a batch of {len(batch)} by up to "
            f"{_maxdiff(one, batch[:1])}{_mode_hint(model)}",
        )

    z = call(f"encode of {len(x)} images", lambda: model.encode(x))
    z1 = call("encode of a single image", lambda: model.encode(x[:1]))
    alone(
        z1, call("encode of a single image", lambda: model.encode(x[:1])), z, "the code", "encode"
    )
    out = call(f"decode of {len(x)} codes", lambda: model.decode(z))
    out1 = call("decode of a single code", lambda: model.decode(z[:1]))
    out1_again = call("decode of a single code", lambda: model.decode(z[:1]))
    alone(out1, out1_again, out, "the reconstruction", "decode")
    if tags.can_sample:
        call("sample(2)", lambda: model.sample(2, generator=torch.Generator().manual_seed(0)))
    if tags.has_posterior:
        call("posterior(x)", lambda: model.posterior(x))
    if tags.likelihood:
        call("log_likelihood(x, z)", lambda: model.log_likelihood(x, z))


@_check(
    "model",
    "inference (encode, decode, sample, posterior, log_likelihood) never changes the model and "
    "treats each image on its own",
)
def _check_inference_unchanged(s: _ModelSubject) -> None:
    """On a freshly built model, a fitted one, and a fresh one that loaded the fitted one's
    saved state: ``encode`` 8 images and 1, ``decode`` both (and ``sample``, ``posterior``,
    ``log_likelihood`` when the tags offer them). After every call each parameter and buffer
    must be exactly as before; a single image must work; and its code and reconstruction must
    equal those computed in a batch (up to float rounding). A model that infers in training mode
    fails here, named precisely: BatchNorm updates its running statistics, normalises by the
    batch and cannot take one image; dropout is random."""
    shape = s.shapes[0]
    x = tiny_images(shape, 8, seed=7).to(s.device)
    _inference_leaves_model_unchanged(s, s.create(shape, seed=1), x, "a freshly built model")
    fitted, _ = s.fitted(shape)
    _inference_leaves_model_unchanged(s, fitted, x, "a fitted model")
    loaded = s.create(shape, seed=2)
    with tempfile.TemporaryDirectory(prefix="vaebench-check-") as tmp:
        path = os.path.join(tmp, "state.pt")
        try:
            fitted.save(path)
            loaded.load(path)
        except Exception:  # noqa: BLE001 - saving and loading are check_save_load's business
            return
    _inference_leaves_model_unchanged(s, loaded, x, "a model that loaded a saved state")


@_check("model", "the model lives and computes on the device it was built for")
def _check_device(s: _ModelSubject) -> None:
    """``model.device`` matches the requested device; parameters, buffers, state tensors and
    ``encode``/``decode`` outputs are on it; ``to("cpu")`` moves everything back."""
    model, x = s.fitted(s.shapes[0])
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


@_check("model", "models built and fitted under the same seed give identical outputs")
def _check_deterministic(s: _ModelSubject) -> str | None:
    """``encode`` called twice on one model gives the same codes (a VAE returns its posterior
    mean); unless the tags say ``deterministic=False``, two models built and fitted after
    ``seed_everything(0)`` on the same data give identical codes and reconstructions.
    Randomness must come from torch's (or NumPy's, Python's) global generators or a generator
    seeded from them."""
    outs = []
    for _ in range(2 if s.tags.deterministic else 1):
        model, x = s.fitted(s.shapes[0])
        z1, z2 = model.encode(x[:8]), model.encode(x[:8])
        nan = torch.isnan(z1) | torch.isnan(z2) if z1.shape == z2.shape else torch.zeros(0)
        _expect(  # NaN never equals NaN: say NaN, not "not deterministic" (issue 19.6)
            not bool(nan.any()),
            f"expected finite codes: encode returned NaN in {int(nan.sum())} of {nan.numel()} "
            "values (a NaN weight or a division by zero in the encoder)",
        )
        _expect(
            torch.equal(z1, z2),
            f"expected encode to be deterministic: two calls on the same input differ by up "
            f"to {_maxdiff(z1, z2)} (return the posterior mean, not a sample)",
        )
        outs.append((z1, model.decode(z1)))
    if len(outs) == 1:
        return "two fits under one seed not compared: tags.deterministic is False"
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
    return None


@_check("model", "save then load into a fresh model reproduces encode and decode exactly")
def _check_save_load(s: _ModelSubject) -> None:
    """Fit, :meth:`~vaebench.model.Model.save`, build a fresh model under another seed,
    :meth:`~vaebench.model.Model.load` (``weights_only=True``): codes and reconstructions must be
    identical. A failure says why: the outputs are not deterministic to begin with; or the
    loaded tensors differ from the saved ones (``state_dict`` misses a tensor, or
    ``load_state_dict`` does not restore it); or the state is complete and the loaded model
    infers in training mode (it reproduces the outputs once switched to eval mode); or the
    outputs depend on something outside the state."""
    shape = s.shapes[0]
    model, x = s.fitted(shape)
    x8 = x[:8]
    z = model.encode(x8)
    out = model.decode(z)
    saved = _full_state(model)
    fresh = s.create(shape, seed=12345)
    with tempfile.TemporaryDirectory(prefix="vaebench-check-") as tmp:
        path = os.path.join(tmp, "state.pt")
        model.save(path)
        _expect(os.path.exists(path), f"expected save({path!r}) to write the file")
        loaded = fresh.load(path)
        _expect(loaded is not None, "expected load() to return the model")
        after_load = _full_state(fresh)
        z2 = fresh.encode(x8)
        out2 = fresh.decode(z2)
        same_codes = z2.shape == z.shape and torch.equal(z2, z)
        same_out = out2.shape == out.shape and torch.equal(out2, out)
        if not (same_codes and same_out):
            what, method = ("codes", "encode") if not same_codes else ("reconstructions", "decode")
            diff = _maxdiff(z2, z) if not same_codes else _maxdiff(out2, out)
            why = _save_load_diagnosis(s, model, fresh, path, x8, (z, out), saved, after_load)
            raise _Mismatch(
                f"expected identical {what} after save/load, max |difference| {diff}; "
                + why.replace("{method}", method)
            )
    _expect(
        fresh.n_params == model.n_params,
        f"expected n_params {model.n_params} after load, got {fresh.n_params}",
    )


def _save_load_diagnosis(
    s: _ModelSubject,
    model: Any,
    fresh: Any,
    path: str,
    x: Tensor,
    outputs: tuple[Tensor, Tensor],
    saved: Mapping[str, Any],
    after_load: Mapping[str, Any],
) -> str:
    """Why a loaded model's outputs differ from the saved model's (the caller replaces
    ``{method}`` with the method whose outputs differ)."""
    z, out = outputs
    z_again = model.encode(x)
    if not (torch.equal(z_again, z) and torch.equal(model.decode(z), out)):
        return (
            "the saved model itself gives other outputs on a second call, so its outputs are "
            "not deterministic (see check_deterministic)"
        )
    differ = _changed(saved, after_load)
    if differ:
        return (
            f"the loaded model's tensors differ from the saved model's in {_names(differ)}: "
            "state_dict() must hold every tensor {method} uses, and load_state_dict() restore it"
        )
    if not isinstance(fresh, torch.nn.Module):
        return (
            "although state_dict() after load equals the saved one, so {method} depends on "
            "something state_dict() does not return: it must hold every tensor {method} uses"
        )
    complete = (
        "every parameter and buffer of the loaded model equals the saved model's (state_dict() "
        "is complete)"
    )
    if fresh.training:
        fresh.load(path)  # undo what inference in training mode changed
        fresh.eval()
        z3 = fresh.encode(x)
        if torch.equal(z3, z) and torch.equal(fresh.decode(z3), out):
            return (
                f"{complete}, but the loaded model infers in training mode: in eval mode it "
                "reproduces the outputs exactly. Run inference in eval mode (BatchNorm "
                "normalises by the batch and updates its running statistics in training mode, "
                "dropout is random)"
            )
    return (
        f"{complete}, so {{method}} depends on something else (a Python attribute set by fit "
        "and not stored in state_dict()?)"
    )


@_check("model", "fitting on a tiny dataset lowers the loss or the reconstruction error")
def _check_fit_lowers_loss(s: _ModelSubject) -> None:
    """Fit on 64 blob images (``epochs=5``, ``batch_size=16`` when the model has those
    parameters; see :data:`FIT_EPOCHS`). ``fit`` must return a
    :class:`~vaebench.model.FitReport` with a finite ``history["loss"]``; the check passes when
    the last logged loss is below the first, or the reconstruction MSE after fitting is below
    the MSE before."""
    from vaebench.model import FitReport

    shape = s.shapes[0]
    model = s.create(shape, epochs=FIT_EPOCHS, batch_size=FIT_BATCH_SIZE)
    x = tiny_images(shape, N_FIT, seed=0).to(s.device)

    def mse() -> float:
        return float((model.decode(model.encode(x)).float() - x).pow(2).mean())

    before = mse()
    report = s.fit(model, x)
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
        _is_int(report.samples_seen) and report.samples_seen > 0,
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


@_check("model", "fit works when the last batch holds a single image")
def _check_fit_last_batch_of_one(s: _ModelSubject) -> str:
    """Fit one epoch on ``N = 2 * batch_size + 1`` images (``batch_size=16`` unless you set
    it; a model without a ``batch_size`` parameter gets 33), so a naive batching leaves a final
    batch of one image -- which BatchNorm cannot train on and which makes a variance or an
    MMD-style loss undefined. ``fit`` must not raise, its losses must be finite and the model
    must reconstruct finite images afterwards. Drop such a batch or merge it into the previous
    one."""
    shape = s.shapes[0]
    has_batch = "batch_size" in s.spec.defaults()
    batch = s.resolved(batch_size=FIT_BATCH_SIZE).get("batch_size") if has_batch else None
    if not (_is_int(batch) and batch > 0):
        batch = None
    n = 2 * batch + 1 if batch else 2 * FIT_BATCH_SIZE + 1
    where = (
        f"{n} images with batch_size={batch} (a last batch of one image)"
        if batch
        else f"{n} images (the model has no batch_size parameter)"
    )
    model = s.create(shape, epochs=1, batch_size=FIT_BATCH_SIZE)
    x = tiny_images(shape, n, seed=3).to(s.device)
    try:
        report = s.fit(model, x, seed=3)
    except Exception as exc:  # noqa: BLE001 - the failure this check exists for
        raise _Mismatch(
            f"expected fit on {where} to work, but it raised {type(exc).__name__}: {exc} "
            "(drop a last batch of one image or merge it into the previous batch)"
        ) from None
    history = getattr(report, "history", None)
    losses = history.get("loss") if isinstance(history, dict) else None
    if isinstance(losses, list):
        _expect(
            all(isinstance(v, (int, float)) and math.isfinite(v) for v in losses),
            f"expected finite losses from fit on {where}, got {losses!r} (a loss over one "
            "example is undefined: drop such a batch or merge it into the previous one)",
        )
    out = model.decode(model.encode(x))
    _expect(
        bool(torch.isfinite(out).all()),
        f"expected finite reconstructions after fit on {where}",
    )
    return f"fitted {where}"


@_check("model", "sample(n) draws n images in [0, 1], reproducibly for a seeded generator")
def _check_sample(s: _ModelSubject) -> None:
    """Only when the tags say ``can_sample``: ``sample(n, generator)`` returns ``(n, C, H, W)``
    float32 images in ``[0, 1]`` without autograd, identical for two generators with one seed;
    ``sample(1)`` works."""
    if not s.tags.can_sample:
        raise _NotApplicable("the model has no prior to sample from (tags.can_sample is False)")
    shape = s.shapes[0]
    model, _ = s.fitted(shape)
    with torch.enable_grad():
        a = model.sample(6, generator=torch.Generator().manual_seed(3))
    b = model.sample(6, generator=torch.Generator().manual_seed(3))
    want = (6, *shape)
    _expect(isinstance(a, Tensor), f"expected sample(6) to return a Tensor, got {type(a).__name__}")
    _expect(
        tuple(a.shape) == want, f"expected sample(6) to have shape {want}, got {tuple(a.shape)}"
    )
    _expect(a.dtype == torch.float32, f"expected float32 samples, got {a.dtype}")
    _expect(not a.requires_grad, "expected samples with requires_grad=False")
    _expect(bool(torch.isfinite(a).all()), "expected finite samples")
    lo, hi = float(a.min()), float(a.max())
    _expect(lo >= 0.0 and hi <= 1.0, f"expected samples in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    _expect(
        torch.equal(a, b),
        "expected identical samples for two generators seeded alike (draw from `generator`)",
    )
    one = model.sample(1, generator=torch.Generator().manual_seed(4))
    _expect(
        tuple(one.shape) == (1, *shape),
        f"expected sample(1) to have shape {(1, *shape)}, got {_shape(one)}",
    )


@_check("model", "posterior(x) returns the mean and log-variance (N, latent_dim) of q(z|x)")
def _check_posterior(s: _ModelSubject) -> None:
    """Only when the tags say ``has_posterior``: ``posterior(x)`` of 5 images (and of one)
    returns a pair ``(mean, logvar)`` of finite float32 tensors ``(N, latent_dim)``, the same on
    a second call. Outputs that carry autograd are accepted: models written for the first
    interface call ``posterior`` inside their loss, and metrics call it under
    ``torch.inference_mode()``."""
    if not s.tags.has_posterior:
        raise _NotApplicable("the model has no posterior (tags.has_posterior is False)")
    model, x = s.fitted(s.shapes[0])
    for k in (5, 1):
        with torch.enable_grad():
            got = model.posterior(x[:k])
        _expect(
            isinstance(got, (tuple, list)) and len(got) == 2,
            f"expected posterior(x) to return (mean, logvar), got {type(got).__name__}"
            + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else ""),
        )
        want = (k, model.latent_dim)
        for part, t in zip(("mean", "logvar"), got, strict=True):
            _expect(
                isinstance(t, Tensor),
                f"expected the posterior {part} to be a Tensor, got {type(t).__name__}",
            )
            _expect(
                tuple(t.shape) == want,
                f"expected the posterior {part} of {k} image(s) to have shape {want}, got "
                f"{tuple(t.shape)}",
            )
            _expect(t.dtype == torch.float32, f"expected a float32 posterior {part}, got {t.dtype}")
            _expect(bool(torch.isfinite(t).all()), f"expected a finite posterior {part}")
    again = model.posterior(x[:1])
    _expect(
        torch.equal(again[0].detach(), got[0].detach())
        and torch.equal(again[1].detach(), got[1].detach()),
        "expected posterior(x) to be deterministic: two calls on the same input differ",
    )


@_check("model", "log_likelihood(x, z) returns finite log p(x|z) per image, summed over pixels")
def _check_log_likelihood(s: _ModelSubject) -> None:
    """Only when the tags name a ``likelihood``: ``log_likelihood(x, z)`` for 5 images and their
    codes returns a finite float tensor ``(5,)``, the same for one image alone and on a second
    call (autograd is accepted, as for ``posterior``). Under ``bernoulli`` it must equal ``sum x log p + (1 - x) log(1 - p)``
    over pixels with ``p = decode(z)`` (relative tolerance 1e-3) -- so never positive, and a sum,
    not a mean, over pixels."""
    from vaebench.model import LIKELIHOODS

    kind = s.tags.likelihood
    if not kind:
        raise _NotApplicable("the model states no likelihood (tags.likelihood is empty)")
    _expect(
        kind in LIKELIHOODS,
        f"expected tags.likelihood to be one of {', '.join(LIKELIHOODS)}, got {kind!r}",
    )
    model, x = s.fitted(s.shapes[0])
    x5 = x[:5]
    z = model.encode(x5)
    with torch.enable_grad():
        ll = model.log_likelihood(x5, z)
    _expect(isinstance(ll, Tensor), f"expected a Tensor, got {type(ll).__name__}")
    _expect(
        tuple(ll.shape) == (5,),
        f"expected log_likelihood of 5 images to have shape (5,), got {tuple(ll.shape)} (one "
        "value per image, summed over pixels)",
    )
    _expect(ll.is_floating_point(), f"expected floating-point values, got {ll.dtype}")
    _expect(
        bool(torch.isfinite(ll).all()),
        f"expected finite log-likelihoods, got {ll.detach().tolist()}",
    )
    ll = ll.detach()
    _expect(
        torch.equal(model.log_likelihood(x5, z).detach(), ll),
        "expected log_likelihood(x, z) to be deterministic: two calls differ",
    )
    one = model.log_likelihood(x5[:1], z[:1]).detach()
    _expect(
        tuple(one.shape) == (1,) and torch.allclose(one.double(), ll[:1].double(), rtol=1e-4),
        f"expected log_likelihood of one image alone to equal its value in a batch, got "
        f"{one.tolist()} and {ll[:1].tolist()}",
    )
    if kind == "bernoulli":
        p = model.decode(z).double().reshape(5, -1).clamp(1e-7, 1 - 1e-7)
        t = x5.double().reshape(5, -1)
        ref = (t * p.log() + (1 - t) * (1 - p).log()).sum(1).to(ll.device)
        _expect(
            torch.allclose(ll.double(), ref, rtol=1e-3, atol=1e-3 * t.shape[1]),
            f"expected the Bernoulli log-likelihood of x under p = decode(z), summed over the "
            f"{t.shape[1]} pixels: {[round(v, 3) for v in ref.tolist()]}, got "
            f"{[round(v, 3) for v in ll.double().tolist()]}",
        )


check_interface = _check_interface
check_tags = _check_tags
check_metadata = _check_metadata
check_encode_shape = _check_encode_shape
check_decode_shape = _check_decode_shape
check_decode_range = _check_decode_range
check_no_grad = _check_no_grad
check_inference_unchanged = _check_inference_unchanged
check_device = _check_device
check_deterministic = _check_deterministic
check_save_load = _check_save_load
check_fit_lowers_loss = _check_fit_lowers_loss
check_fit_last_batch_of_one = _check_fit_last_batch_of_one
check_sample = _check_sample
check_posterior = _check_posterior
check_log_likelihood = _check_log_likelihood


def model_checks() -> tuple[Callable[..., str | None], ...]:
    """Every model check, in the order :func:`run_model_checks` runs them."""
    return tuple(_KINDS["model"].checks)


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


def _dataset_subject(
    dataset: Any, *, options: Mapping[str, Any] | None = None, data_dir: str | None = None
) -> _DatasetSubject:
    return _DatasetSubject(_as_dataset_spec(dataset), dict(options or {}), data_dir)


_KINDS["dataset"] = _Kind("dataset", _dataset_subject, _DatasetSubject)


@_check("dataset", "the loader returns a vaebench.dataset.Dataset")
def _check_dataset_loads(s: _DatasetSubject) -> None:
    """The spec's name is usable on the command line, its options are JSON-serialisable and
    ``load()`` returns a :class:`~vaebench.dataset.Dataset`."""
    from vaebench.plugins import valid_name

    name = s.spec.name
    _expect(
        valid_name(name),
        f"expected a dataset name without commas, slashes, spaces or control characters, got "
        f"{name!r}",
    )
    try:
        json.dumps(s.spec.defaults(), sort_keys=True, default=list)
    except (TypeError, ValueError) as exc:
        raise _Mismatch(f"expected JSON-serialisable dataset options: {exc}") from None
    s.load()


@_check("dataset", "images are (N, C, H, W), alike in both splits and as declared by the spec")
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


@_check("dataset", "images are finite float32 values in [0, 1]")
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


@_check("dataset", "labels and factors have one entry per image")
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


def _row_digests(x: Tensor) -> list[bytes]:
    """One 128-bit BLAKE2b digest of the float32 bytes of each image (``-0.0`` counted as
    ``0.0``): equal digests mean identical images."""
    flat = (x.detach().to("cpu", torch.float32).reshape(x.shape[0], -1) + 0.0).contiguous()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat.numpy()]


#: The ``info`` key by which a dataset declares that some test images are bound to equal
#: training images, and why (:func:`check_dataset_overlap`; docs/datasets.md).
OVERLAP_INFO_KEY = "test_overlap"


def _declared_overlap(ds: Dataset) -> tuple[float, str] | None:
    """``(max_fraction, reason)`` of ``info["test_overlap"]``, or ``None`` when not declared;
    a malformed declaration fails the check naming what is wrong."""
    decl = (ds.info or {}).get(OVERLAP_INFO_KEY)
    if decl is None:
        return None
    valid = "{'max_fraction': a number in (0, 1], 'reason': a sentence saying why}"
    _expect(
        isinstance(decl, dict) and set(decl) == {"max_fraction", "reason"},
        f"expected info[{OVERLAP_INFO_KEY!r}] to be {valid}, got {decl!r}",
    )
    frac, reason = decl["max_fraction"], decl["reason"]
    _expect(
        isinstance(frac, (int, float)) and not isinstance(frac, bool) and 0 < frac <= 1,
        f"expected info[{OVERLAP_INFO_KEY!r}]['max_fraction'] in (0, 1], got {frac!r}",
    )
    _expect(
        isinstance(reason, str) and reason.strip() != "",
        f"expected info[{OVERLAP_INFO_KEY!r}]['reason'] to say why, got {reason!r}",
    )
    return float(frac), reason.strip()


@_check("dataset", f"at most {MAX_TEST_OVERLAP:.0%} of the test images copy a training image")
def _check_dataset_overlap(s: _DatasetSubject) -> str:
    """Hash every image of both splits (exact float32 values) and count the test images that
    are identical to some training image. Above :data:`MAX_TEST_OVERLAP` (1 %) of the test
    split, test scores partly measure memorisation of the training set -- typical of a split
    drawn from the same images, or of a renderer too coarse to tell nearby factor values apart.

    A dataset whose copies are inherent (a continuous factor drawn into finitely many distinct
    images) declares them: ``info["test_overlap"] = {"max_fraction": F, "reason": "..."}``.
    The check then allows up to ``F`` and its note states the count and the reason -- declared
    copies are reported, never passed in silence. Notes the count."""
    ds = s.load()
    train = set(_row_digests(ds.x_train))
    test = _row_digests(ds.x_test)
    copies = sum(d in train for d in test)
    fraction = copies / len(test)
    found = (
        f"{copies} of {len(test)} test images ({fraction:.1%}) are exact copies of training images"
    )
    declared = _declared_overlap(ds)
    if declared is not None and fraction > MAX_TEST_OVERLAP:
        limit, reason = declared
        _expect(
            fraction <= limit,
            f"expected at most {limit:.0%} of the test images to be copies of training images "
            f"(declared in info[{OVERLAP_INFO_KEY!r}]: {reason}), but {found}",
        )
        return f"{found}; declared up to {limit:.0%}: {reason}"
    _expect(
        fraction <= MAX_TEST_OVERLAP,
        f"expected at most {MAX_TEST_OVERLAP:.0%} of the test images to be copies of training "
        f"images, but {found}: test scores would measure memorisation. Draw the test split "
        "independently of the training split, and render finely enough (or add noise) that "
        "nearby factor values give different images; copies that are inherent to the data are "
        f"declared with info[{OVERLAP_INFO_KEY!r}] (docs/datasets.md)",
    )
    return found


@_check("dataset", "render(factors) draws images matching the dataset's own")
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


@_check("dataset", "loading twice gives identical data")
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
check_dataset_overlap = _check_dataset_overlap
check_dataset_render = _check_dataset_render
check_dataset_deterministic = _check_dataset_deterministic


def dataset_checks() -> tuple[Callable[..., str | None], ...]:
    """Every dataset check, in the order :func:`run_dataset_checks` runs them."""
    return tuple(_KINDS["dataset"].checks)


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
        :func:`tiny_dataset` (it can sample and has a posterior, so most metrics apply)."""
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
        """A fresh evaluation context of seed 0: the metric's declared options with
        :data:`FAST_EVAL_OPTIONS` over them, the metric's own generator."""
        from vaebench.metric import EvalContext

        options = {**dict(getattr(self.metric, "options", None) or {}), **FAST_EVAL_OPTIONS}
        return EvalContext(
            seed=0,
            device=model.device,
            fit=fit,
            eval_batch_size=64,
            options=options,
            metric=self.name,
        )


def _metric_subject(
    metric: Any,
    *,
    model: Model | None = None,
    dataset: Dataset | None = None,
    nondeterministic: Iterable[str] = (),
) -> _MetricSubject:
    if isinstance(metric, str):
        from vaebench.plugins import get_registry

        metric = get_registry().metric(metric).spec
    elif not hasattr(metric, "evaluate") and hasattr(getattr(metric, "spec", None), "evaluate"):
        metric = metric.spec  # a vaebench.plugins.Registered
    skip = frozenset([nondeterministic] if isinstance(nondeterministic, str) else nondeterministic)
    return _MetricSubject(metric, model, dataset, skip)


_KINDS["metric"] = _Kind("metric", _metric_subject, _MetricSubject)


@_check("metric", "the metric declares a name, its values and its options")
def _check_metric_declares(s: _MetricSubject) -> None:
    """``name`` is usable on the command line; ``values`` is a non-empty tuple of
    :class:`~vaebench.metric.Value` with unique names, a direction in ``{True, False, None}`` and
    integer ``decimals``; ``options`` maps names to JSON-serialisable defaults, ``option_docs``
    describes declared options only, ``default`` is a bool, ``cost`` one of
    :data:`vaebench.metric.COSTS`, ``version`` an int >= 1, and ``check_options`` accepts the
    defaults."""
    from vaebench.metric import COSTS, Metric, Value
    from vaebench.plugins import valid_name

    m = s.metric
    _expect(isinstance(m, Metric), f"expected a vaebench.metric.Metric, got {type(m).__name__}")
    _expect(
        valid_name(m.name),
        f"expected a metric name without commas, slashes, spaces or control characters, got "
        f"{m.name!r}",
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
            _is_int(v.decimals) and v.decimals >= 0,
            f"expected non-negative int decimals for {v.name!r}, got {v.decimals!r}",
        )
        names.append(v.name)
    dupes = sorted({n for n in names if names.count(n) > 1})
    _expect(not dupes, f"expected unique value names, got duplicates {dupes}")
    options = m.options
    _expect(
        isinstance(options, dict) and all(isinstance(k, str) and k for k in options),
        f"expected `options` to map option names to defaults, got {options!r}",
    )
    try:
        json.dumps(options, sort_keys=True, default=list)
    except (TypeError, ValueError) as exc:
        raise _Mismatch(
            f"expected JSON-serialisable option defaults (they are stored with results): {exc}"
        ) from None
    docs = m.option_docs
    _expect(
        isinstance(docs, dict) and set(docs) <= set(options),
        f"expected `option_docs` to describe declared options only, got "
        f"{sorted(set(docs) - set(options)) if isinstance(docs, dict) else docs!r}",
    )
    _expect(isinstance(m.default, bool), f"expected `default` to be a bool, got {m.default!r}")
    _expect(m.cost in COSTS, f"expected `cost` to be one of {', '.join(COSTS)}, got {m.cost!r}")
    _expect(
        _is_int(m.version) and m.version >= 1,
        f"expected `version` to be an int >= 1, got {m.version!r}",
    )
    try:
        m.check_options(dict(options))
    except Exception as exc:  # noqa: BLE001 - the defaults must be valid
        raise _Mismatch(
            f"expected check_options to accept the declared defaults {options!r}, but it raised "
            f"{type(exc).__name__}: {exc}"
        ) from None


def _not_applicable(s: _MetricSubject, model: Model, dataset: Dataset) -> str | None:
    """Why the metric does not apply to the check's model and dataset, or ``None``."""
    applies = s.metric.applies_to(model, dataset)
    _expect(
        isinstance(applies, (bool, str)),
        f"expected applies_to to return True, False or a reason string, got {applies!r}",
    )
    if applies is True:
        return None
    reason = applies if isinstance(applies, str) and applies else "applies_to returned False"
    return (
        f"the metric does not apply to the check's model ({type(model).__name__}) and dataset "
        f"({dataset.name}): {reason}; pass model= and dataset= it applies to"
    )


@_check("metric", "evaluate returns exactly the declared values as finite floats")
def _check_metric_values(s: _MetricSubject) -> None:
    """``applies_to`` returns ``True``, ``False`` or a reason (the check does not apply unless
    ``True`` for its model and dataset: pass your own with ``model=`` / ``dataset=``);
    ``evaluate`` returns every declared value and no other, each a finite real number; it
    leaves the model unchanged (every tensor, and its codes)."""
    model, dataset, fit = s.setup()
    reason = _not_applicable(s, model, dataset)
    if reason:
        raise _NotApplicable(reason)
    probe = dataset.x_test[:4].to(model.device)
    z_before = model.encode(probe)
    state = _full_state(model)
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
            (not isinstance(v, bool) and isinstance(v, (int, float))) or _is_real_scalar(v),
            f"expected a real number for {k!r}, got {type(v).__name__}",
        )
        _expect(math.isfinite(float(v)), f"expected a finite value for {k!r}, got {float(v)}")
    changed = _changed(state, _full_state(model))
    _expect(not changed, f"expected evaluate to leave the model unchanged, it changed {changed}")
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


@_check("metric", "evaluate gives the same values for the same seed")
def _check_metric_deterministic(s: _MetricSubject) -> None:
    """Two evaluations with fresh contexts of one seed give equal values (draw random choices
    from ``ctx.generator``). Values with a timing unit (see :data:`TIMING_UNITS`) and those named
    in ``nondeterministic`` are exempt."""
    model, dataset, fit = s.setup()
    reason = _not_applicable(s, model, dataset)
    if reason:
        raise _NotApplicable(reason)
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


def metric_checks() -> tuple[Callable[..., str | None], ...]:
    """Every metric check, in the order :func:`run_metric_checks` runs them."""
    return tuple(_KINDS["metric"].checks)


# ----------------------------------------------------------------------------- runners


def run_model_checks(
    model: Any,
    device: str | torch.device | None = "cpu",
    *,
    params: Mapping[str, Any] | None = None,
    checks: Iterable[str] | None = None,
    threads: int | None = None,
) -> Iterator[CheckResult]:
    """Run the model checks one by one, yielding a :class:`CheckResult` for each; a failing or
    crashing check is reported, never raised (``vaebench check MODEL`` uses this). ``checks``
    names a selection; an unknown name raises ``ValueError`` listing the valid ones.
    ``threads``: torch CPU threads of each check (default 1)."""
    yield from _run("model", model, checks, {"device": device, "params": params}, threads)


def run_dataset_checks(
    dataset: Any,
    *,
    options: Mapping[str, Any] | None = None,
    data_dir: str | None = None,
    checks: Iterable[str] | None = None,
    threads: int | None = None,
) -> Iterator[CheckResult]:
    """Run the dataset checks (loading with ``options`` and ``data_dir``), yielding a
    :class:`CheckResult` for each; never raises (``vaebench check --dataset NAME``).
    ``threads``: torch CPU threads of each check (default 1)."""
    options_ = {"options": options, "data_dir": data_dir}
    yield from _run("dataset", dataset, checks, options_, threads)


def run_metric_checks(
    metric: Any,
    *,
    model: Model | None = None,
    dataset: Dataset | None = None,
    nondeterministic: Iterable[str] = (),
    checks: Iterable[str] | None = None,
    threads: int | None = None,
) -> Iterator[CheckResult]:
    """Run the metric checks (on ``model`` and ``dataset``, or a small VAE fitted on
    :func:`tiny_dataset`), yielding a :class:`CheckResult` for each; never raises
    (``vaebench check --metric NAME``). ``threads``: torch CPU threads of each check
    (default 1)."""
    options = {"model": model, "dataset": dataset, "nondeterministic": tuple(nondeterministic)}
    yield from _run("metric", metric, checks, options, threads)


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

    if isinstance(obj, Metric) or isinstance(getattr(obj, "spec", None), Metric):
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
    A check that does not apply (e.g. ``check_sample`` of a model that cannot sample) is
    skipped. ``expected_failed_checks`` maps check names to a reason (or is a callable
    ``subject -> mapping``); those checks are marked ``xfail(strict=True)``, so they are
    reported and must keep failing.
    """
    import pytest

    dev = _device(device)
    params_ = dict(params or {})
    argvalues = []
    for subject in subjects:
        kind = _kind_of(subject)
        if kind == "model":
            options: dict[str, Any] = {"device": dev, "params": params_}
            name = _subject_name(_as_model_spec(subject))
        else:
            options, name = {}, _subject_name(getattr(subject, "spec", subject))
        if callable(expected_failed_checks):
            xfails = dict(expected_failed_checks(subject))
        else:
            xfails = dict(expected_failed_checks or {})
        for check in _KINDS[kind].checks:
            marks = []
            if check.__name__ in xfails:
                marks.append(
                    pytest.mark.xfail(
                        reason=xfails[check.__name__], strict=True, raises=CheckFailed
                    )
                )
            argvalues.append(
                pytest.param(
                    subject, _bind(check, options), id=f"{check.__name__}[{name}]", marks=marks
                )
            )
    return pytest.mark.parametrize("subject, check", argvalues)


def _bind(check: Callable[..., str | None], options: dict[str, Any]) -> Callable[[Any], None]:
    """``check`` with its keyword options fixed; skips the test (``pytest.skip``) when the check
    does not apply (e.g. ``check_sample`` on a model that cannot sample)."""

    @functools.wraps(check)
    def bound(subject: Any) -> None:
        note = check(subject, **options)
        if note and note.startswith(NOT_APPLICABLE):
            import pytest

            pytest.skip(note)

    return bound
