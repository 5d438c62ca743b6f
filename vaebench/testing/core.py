"""Constants, results and errors of the conformance kit, and small helpers the checks share."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeGuard

import torch
from torch import Tensor

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


def _expect_float32(
    t: Any, what: str, want: tuple[int, ...], of: str, where: str, after: str = ""
) -> None:
    """Expect ``t``, what ``what`` returned, to be a float32 Tensor of shape ``want``; the
    messages name ``what`` (``of`` and ``after`` around the shape: the input's description,
    ``where`` after the dtype: the image shape)."""
    _expect(isinstance(t, Tensor), f"expected {what} to return a Tensor, got {type(t).__name__}")
    _expect(
        tuple(t.shape) == want,
        f"expected {what}{of} to have shape {want}{after}, got {tuple(t.shape)}",
    )
    _expect(t.dtype == torch.float32, f"expected {what} to be float32 {where}, got {t.dtype}")


def _maxdiff(a: Tensor, b: Tensor) -> str:
    """Largest absolute difference of two tensors, for messages (or their shapes if unequal)."""
    if a.shape != b.shape:
        return f"(shapes {tuple(a.shape)} and {tuple(b.shape)})"
    return f"{float((a.detach().double() - b.detach().double()).abs().max()):.3g}"


def _shape(t: Any) -> tuple[int, ...] | str:
    return tuple(t.shape) if hasattr(t, "shape") else type(t).__name__


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _names(keys: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
