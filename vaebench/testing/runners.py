"""Run every check of a subject: as results, or raising one error listing each failure."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec

import torch

from vaebench.testing.core import CheckResult, ConformanceError
from vaebench.testing.mechanism import _run, _subject_name

P = ParamSpec("P")

if TYPE_CHECKING:
    from vaebench.dataset import Dataset
    from vaebench.model import Model


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


def _raising(
    run: Callable[Concatenate[Any, P], Iterable[CheckResult]], name: str, doc: str
) -> Callable[Concatenate[Any, P], list[CheckResult]]:
    """The ``check_*`` form of ``run`` (a ``run_*_checks`` function): the same arguments, every
    result collected; raises :class:`ConformanceError` listing each failed check and what it
    expected, else returns the results."""

    sig = inspect.signature(run)
    first = next(iter(sig.parameters))  # the subject: by position or by its name

    def check(*args: Any, **kwargs: Any) -> list[CheckResult]:
        bound = sig.bind(*args, **kwargs)  # run's TypeError for arguments it does not take
        results = list(run(*bound.args, **bound.kwargs))
        failures = [r for r in results if not r.passed]
        if failures:
            raise ConformanceError(_subject_name(bound.arguments[first]), failures)
        return results

    check.__name__ = check.__qualname__ = name
    check.__doc__ = doc  # help() and IDEs show run's arguments
    check.__signature__ = sig.replace(return_annotation="list[CheckResult]")  # type: ignore[attr-defined]
    return check


check_model = _raising(
    run_model_checks,
    "check_model",
    """Run every model check (or those named in ``checks``) on a model factory or spec, with the
    arguments of :func:`run_model_checks`; raise :class:`ConformanceError` listing each failed
    check and what it expected, else return the results.""",
)
check_dataset = _raising(
    run_dataset_checks,
    "check_dataset",
    """Run every dataset check on a dataset spec or loader, with the arguments of
    :func:`run_dataset_checks`; raise :class:`ConformanceError` on failures, else return the
    results.""",
)
check_metric = _raising(
    run_metric_checks,
    "check_metric",
    """Run every metric check (on ``model`` and ``dataset``, or a small VAE fitted on
    :func:`tiny_dataset`), with the arguments of :func:`run_metric_checks`; raise
    :class:`ConformanceError` on failures, else return the results.""",
)
