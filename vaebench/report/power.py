"""What the seeds can detect: effect sizes, detectable differences and seeds needed.

- :func:`difference`: the difference of one model from another (``a - b``) with its confidence
  interval, from the test :func:`vaebench.report.stats.compare` uses (SciPy's
  ``ttest_rel(...).confidence_interval`` for paired seeds, ``ttest_ind(equal_var=False)`` for
  Welch's test);
- :func:`detectable_difference`: the smallest difference from the best that the column's paired
  t-test detects with 80 % power at level ``alpha`` given the observed spread of the paired
  differences (:class:`statsmodels.stats.power.TTestPower`; Welch's columns:
  :class:`~statsmodels.stats.power.TTestIndPower` with the pooled standard deviation);
- :func:`seeds_needed`: how many seeds the paired test needs to separate the two best models of a
  column at their observed difference with 80 % power.

These are *post-hoc* power figures: they take the observed spread as if it were the true one, so
with few seeds they are rough (Hoenig & Heisey 2001, "The abuse of power"); read them as the
order of magnitude the experiment can resolve, not as a property of the models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["POWER", "difference", "detectable_difference", "seeds_needed", "MAX_SEEDS"]

#: Power at which detectable differences and seeds needed are computed.
POWER = 0.8
#: :func:`seeds_needed` searches up to this many seeds.
MAX_SEEDS = 10_000

#: Relative spread below which values count as constant (as in :mod:`vaebench.report.stats`).
_REL_TOL = 1e-12


def _finite(v: Mapping[int, float]) -> dict[int, float]:
    return {s: float(x) for s, x in v.items() if x is not None and math.isfinite(x)}


def _quiet(fn, *args, **kw):  # noqa: ANN001, ANN202 - thin warning filter
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def difference(
    a: Mapping[int, float], b: Mapping[int, float], confidence: float = 0.95
) -> tuple[float, float, float]:
    """``(mean difference a - b, CI low, CI high)`` of two models' ``{seed: value}``.

    Paired over seeds when the seed sets are equal (n >= 2), Welch otherwise (both n >= 2); a
    difference without spread (deterministic models) has a zero-width interval. NaN interval
    when either side has fewer than two finite values (the difference of the means is still
    given when both have one)."""
    a, b = _finite(a), _finite(b)
    if not a or not b:
        return (math.nan, math.nan, math.nan)
    scale = max(abs(v) for v in (*a.values(), *b.values())) or 1.0
    if set(a) == set(b) and len(a) >= 2:
        seeds = sorted(a)
        x = np.array([a[s] for s in seeds])
        y = np.array([b[s] for s in seeds])
        d = x - y
        diff = float(d.mean())
        if float(np.ptp(d)) <= _REL_TOL * scale:
            return (diff, diff, diff)
        from scipy import stats  # 1.4 s to import: only when an interval is computed

        ci = _quiet(stats.ttest_rel, x, y).confidence_interval(confidence)
        return (diff, float(ci.low), float(ci.high))
    x = np.array(list(a.values()))
    y = np.array(list(b.values()))
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return (diff, math.nan, math.nan)
    cx = float(np.ptp(x)) <= _REL_TOL * scale
    cy = float(np.ptp(y)) <= _REL_TOL * scale
    if cx and cy:
        return (diff, diff, diff)
    from scipy import stats

    if cx or cy:  # one-sample interval of the varying side around the constant
        varying, const = (y, float(x.mean())) if cx else (x, float(y.mean()))
        ci = _quiet(stats.ttest_1samp, varying, const).confidence_interval(confidence)
        sign = -1.0 if cx else 1.0
        lo, hi = sorted((sign * float(ci.low), sign * float(ci.high)))
        return (diff, lo, hi)
    ci = _quiet(stats.ttest_ind, x, y, equal_var=False).confidence_interval(confidence)
    return (diff, float(ci.low), float(ci.high))


def _d80(nobs: int, alpha: float, paired: bool) -> float:
    """Standardised effect (Cohen's d) the two-sided t-test detects with :data:`POWER`."""
    from statsmodels.stats.power import TTestIndPower, TTestPower

    if paired:
        return float(_quiet(TTestPower().solve_power, effect_size=None, nobs=nobs,
                            alpha=alpha, power=POWER))  # fmt: skip
    return float(_quiet(TTestIndPower().solve_power, effect_size=None, nobs1=nobs, ratio=1.0,
                        alpha=alpha, power=POWER))  # fmt: skip


def detectable_difference(
    values: Mapping[str, Mapping[int, float]],
    best: str,
    others: Sequence[str],
    alpha: float = 0.05,
) -> float:
    """Smallest difference from ``best`` that a two-sided t-test at level ``alpha`` detects with
    80 % power, given the observed spread (same unit as the metric).

    ``values``: ``{model: {seed: value}}`` of one column; ``others``: the models that were tested
    against the best. When every one shares the best's seeds, the spread is the pooled standard
    deviation of the paired differences (root mean square over ``others``) and the effect comes
    from :class:`statsmodels.stats.power.TTestPower` at the smallest common ``n``; else the pooled
    sample standard deviation with :class:`~statsmodels.stats.power.TTestIndPower`. NaN when
    nothing was tested or fewer than two seeds are common; 0 when there is no spread at all
    (deterministic models: any difference is detected)."""
    ref = _finite(values[best])
    if not others or len(ref) < 2:
        return math.nan
    paired = all(set(_finite(values[o])) == set(ref) for o in others)
    variances: list[float] = []
    ns: list[int] = [len(ref)]
    for o in others:
        v = _finite(values[o])
        if paired:
            d = np.array([v[s] - ref[s] for s in sorted(ref)])
            variances.append(float(d.var(ddof=1)))
        else:
            if len(v) < 2:
                continue
            variances.append(float(np.array(list(v.values())).var(ddof=1)))
            ns.append(len(v))
    if not paired:
        variances.append(float(np.array(list(ref.values())).var(ddof=1)))
    if not variances:
        return math.nan
    sd = math.sqrt(sum(variances) / len(variances))
    scale = max(abs(x) for x in ref.values()) or 1.0
    if sd <= _REL_TOL * scale:
        return 0.0
    return _d80(min(ns), alpha, paired) * sd


def seeds_needed(
    a: Mapping[int, float], b: Mapping[int, float], alpha: float = 0.05
) -> tuple[float, float, int | None]:
    """``(observed mean difference a - b, std of the paired differences, seeds needed)``: the
    smallest number of paired seeds with which the two-sided paired t-test at level ``alpha``
    has 80 % power to detect the observed difference, taking the observed spread as the true
    one (:meth:`statsmodels.stats.power.TTestPower.power`, searched from 2 seeds up to
    :data:`MAX_SEEDS`). ``None`` when it cannot be said: fewer than two common seeds, no
    difference at all, or more than :data:`MAX_SEEDS` needed. Two seeds when there is a
    difference but no spread (deterministic models)."""
    from statsmodels.stats.power import TTestPower

    a, b = _finite(a), _finite(b)
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return (math.nan, math.nan, None)
    d = np.array([a[s] - b[s] for s in common])
    diff, sd = float(d.mean()), float(d.std(ddof=1))
    scale = max(abs(x) for x in (*a.values(), *b.values())) or 1.0
    if abs(diff) <= _REL_TOL * scale:
        return (diff, sd, None)
    if sd <= _REL_TOL * scale:
        return (diff, sd, 2)
    effect = abs(diff) / sd
    power = TTestPower()

    def reached(n: int) -> bool:
        # statsmodels returns NaN when the noncentral t's tail underflows, i.e. power ~ 1
        return not _quiet(power.power, effect_size=effect, nobs=n, alpha=alpha) < POWER

    lo, hi = 2, MAX_SEEDS
    if not reached(hi):
        return (diff, sd, None)
    while lo < hi:  # power grows with n: bisect for the first n reaching POWER
        mid = (lo + hi) // 2
        if reached(mid):
            hi = mid
        else:
            lo = mid + 1
    return (diff, sd, lo)
