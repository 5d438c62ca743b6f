"""The metric subject and the metric checks."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vaebench.testing.core import (
    FAST_EVAL_OPTIONS,
    TIMING_UNITS,
    _expect,
    _is_int,
    _Mismatch,
    _NotApplicable,
)
from vaebench.testing.mechanism import _KINDS, _check, _Kind, _subject_name
from vaebench.testing.model_subject import _changed, _full_state
from vaebench.testing.tiny import tiny_dataset

if TYPE_CHECKING:
    from vaebench.dataset import Dataset
    from vaebench.metric import Metric
    from vaebench.model import Model


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
def check_metric_declares(s: _MetricSubject) -> None:
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
def check_metric_values(s: _MetricSubject) -> None:
    """``applies_to`` returns ``True``, ``False`` or a reason (the check does not apply unless
    ``True`` for its model and dataset: pass your own with ``model=`` / ``dataset=``);
    ``evaluate`` returns every declared value and no other, each a finite real number (a value
    it declared not applicable with ``ctx.value_not_applicable`` may be left out or NaN); it
    leaves the model unchanged (every tensor, and its codes)."""
    model, dataset, fit = s.setup()
    reason = _not_applicable(s, model, dataset)
    if reason:
        raise _NotApplicable(reason)
    probe = dataset.x_test[:4].to(model.device)
    z_before = model.encode(probe)
    state = _full_state(model)
    ctx = s.context(model, fit)
    got = s.metric.evaluate(model, dataset, ctx)
    _expect(isinstance(got, dict), f"expected evaluate to return a dict, got {type(got).__name__}")
    declared = s.metric.declared()
    # values the metric declared not applicable (ctx.value_not_applicable) may be left out or NaN
    na = dict(getattr(ctx, "not_applicable", None) or {})
    missing = sorted(set(declared) - set(got) - set(na))
    extra = sorted(set(got) - set(declared))
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
        if k in na:
            _expect(
                math.isnan(float(v)),
                f"expected NaN (or no entry) for {k!r}, declared not applicable ({na[k]}), "
                f"got {float(v)}",
            )
            continue
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
def check_metric_deterministic(s: _MetricSubject) -> None:
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

    def same(u: float, v: float) -> bool:  # NaN twice (a value that does not apply) is equal
        return u == v or (math.isnan(u) and math.isnan(v))

    differ = {
        k: (float(a[k]), float(b.get(k, math.nan)))
        for k in a
        if k not in timing and not same(float(a[k]), float(b.get(k, math.nan)))
    }
    _expect(
        not differ,
        f"expected equal values from two evaluations with seed 0, got {differ} "
        f"(draw random choices from ctx.generator)",
    )


def metric_checks() -> tuple[Callable[..., str | None], ...]:
    """Every metric check, in the order :func:`run_metric_checks` runs them."""
    return tuple(_KINDS["metric"].checks)
