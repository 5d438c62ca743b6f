"""The pytest helper: one test per check and subject."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from vaebench.testing.core import NOT_APPLICABLE, CheckFailed
from vaebench.testing.mechanism import _KINDS, _device, _subject_name
from vaebench.testing.model_subject import _as_model_spec


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
