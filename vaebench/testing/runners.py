"""Run every check of a subject: as results, or raising one error listing each failure."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch

from vaebench.testing.core import CheckResult, ConformanceError
from vaebench.testing.mechanism import _run, _subject_name

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
