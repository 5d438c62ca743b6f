"""Aggregation over seeds and the significance tests behind bold entries and baseline marks.

For every (dataset, model variant, metric): mean, sample standard deviation (``ddof=1``), ``n``
(finite values), the standard error and a t-based confidence interval
``mean ± t_{(1+c)/2, n-1} · std / sqrt(n)``.

Two models are compared on one metric with

- a **paired t-test over seeds** (:func:`scipy.stats.ttest_rel`) when both have the same seeds
  (at least two): seed ``s`` of one model shares data split and evaluation draws with seed ``s``
  of the other, so pairing removes that shared noise;
- **Welch's t-test** (:func:`scipy.stats.ttest_ind` with ``equal_var=False``) otherwise, when
  both have at least two values;
- no test when either has fewer than two values (``test == "none"``, ``p`` is NaN).

Tests are two-sided. Deterministic models (PCA) give identical values for every seed; when there
is no variation at all (every paired difference equal, or both samples constant, up to float
noise: relative 1e-12) the t statistic is undefined, and the comparison is decided exactly:
``p = 1`` if the values agree, ``p = 0`` if they differ (the difference is systematic, not
noise). One constant sample against a varying one (Welch) is the one-sample t-test of the
varying sample against the constant -- Welch's statistic and degrees of freedom with one
variance zero.

The comparisons with the best of one column (and those with the baseline) form a family: their
p-values are adjusted with :func:`statsmodels.stats.multitest.multipletests` (``correction``:
``holm`` -- Holm 1979, controls the family-wise error rate, the default; ``bh`` --
Benjamini-Hochberg 1995, controls the false discovery rate; ``none``), and a model is bold when
its adjusted p-value is at least ``alpha``. Effect sizes (difference from the best with its
confidence interval) and the smallest difference the seeds could detect are in
:mod:`vaebench.report.power`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from vaebench.record import metric_group

__all__ = [
    "CORRECTIONS",
    "NO_TEST_REASON",
    "TESTS",
    "adjust",
    "Comparison",
    "compare",
    "aggregate",
    "pareto_front",
    "t_interval",
    "format_number",
]

#: Why :func:`compare` returns ``test == "none"``: one of the two has fewer than two values
#: (seeds whose value is finite; a seed with a NaN value does not count).
NO_TEST_REASON = "fewer than 2 seeds with a finite value"

#: How each test is named in captions.
TESTS = {
    "paired": "paired t-test over seeds",
    "welch": "Welch's t-test",
    "none": f"no test ({NO_TEST_REASON})",
}

#: Columns of :func:`aggregate`.
AGG_COLUMNS = [
    "dataset", "model", "base_model", "metric", "source", "group", "unit", "higher_is_better", "decimals",
    "n", "seeds", "mean", "std", "sem", "ci_low", "ci_high", "rank", "best", "bold", "test_vs_best",
    "p_vs_best", "baseline", "test_vs_baseline", "p_vs_baseline", "significant_vs_baseline",
    "correction", "alpha", "p_adj_vs_best", "p_adj_vs_baseline", "diff_vs_best", "diff_ci_low",
    "diff_ci_high", "mde_vs_best",
]  # fmt: skip

#: ``--correction`` choices -> the :func:`statsmodels.stats.multitest.multipletests` method.
CORRECTIONS = {"holm": "holm", "bh": "fdr_bh", "none": None}

#: How each correction is named in captions.
CORRECTION_NAMES = {
    "holm": "Holm-corrected",
    "bh": "Benjamini-Hochberg-corrected (false discovery rate)",
    "none": "no correction for multiple comparisons",
}


def _no_collect(*args: object) -> int:
    """Stands in for :func:`gc.collect` inside statsmodels' multipletests (see :func:`adjust`)."""
    return 0


def adjust(pvalues: Sequence[float], correction: str) -> list[float]:
    """``pvalues`` adjusted for multiple comparisons by ``correction`` (a key of
    :data:`CORRECTIONS`) with :func:`statsmodels.stats.multitest.multipletests`; NaN entries
    (no test) stay NaN and are not counted in the family. Raises :class:`ValueError` for an
    unknown correction."""
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; valid: {', '.join(CORRECTIONS)}")
    out = [float(p) for p in pvalues]
    idx = [i for i, p in enumerate(out) if math.isfinite(p)]
    method = CORRECTIONS[correction]
    if method is None or not idx:
        return out
    import gc

    from statsmodels.stats.multitest import multipletests

    # statsmodels' Holm branch runs a full gc.collect() on every call (it imports gc inside the
    # function): 0.2 s each with pandas, torch and matplotlib loaded, 14 s of a 20 s report of
    # results/reference. Its result does not depend on it: the call sees a collector that does
    # nothing, and gc.collect is restored straight after.
    real_collect = gc.collect
    gc.collect = _no_collect  # type: ignore[assignment]  # a stand-in for this call only
    try:
        adj = multipletests([out[i] for i in idx], method=method)[1]
    finally:
        gc.collect = real_collect
    for i, p in zip(idx, adj, strict=True):
        out[i] = float(p)
    return out


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Result of comparing two models on one metric: the test used and its two-sided p-value."""

    test: str
    p: float

    @property
    def possible(self) -> bool:
        return self.test != "none"


#: Pseudo-metrics of a tidy frame with ``include_failed=True`` (a row per failed or skipped
#: cell): never aggregated.
NOT_VALUES = ("failed", "skipped")

#: Values that differ by less than this fraction of their magnitude are equal (float noise).
REL_TOL = 1e-12


def _close(a: float, b: float) -> bool:
    """Equal up to floating-point noise (relative :data:`REL_TOL`)."""
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=0.0) or a == b


def _constant(x: np.ndarray, scale: float) -> bool:
    """No variation beyond float noise: spread at most :data:`REL_TOL` x ``scale``."""
    return float(np.ptp(x)) <= REL_TOL * scale


def compare(a: Mapping[int, float], b: Mapping[int, float]) -> Comparison:
    """Compare two models' values given as ``{seed: value}`` (NaN values are ignored).

    Paired t-test when the seed sets are equal (n >= 2), Welch's t-test when both have n >= 2
    otherwise, no test else; see the module docstring for the zero-variance rule. Values equal
    up to float noise (relative :data:`REL_TOL` of the largest magnitude) count as equal, so
    SciPy never computes a variance of nearly identical numbers: a constant sample against a
    varying one is Welch's test with one variance zero, which is exactly the one-sample t-test
    of the varying sample against the constant (:func:`scipy.stats.ttest_1samp`).
    """
    a = {s: float(v) for s, v in a.items() if v is not None and math.isfinite(v)}
    b = {s: float(v) for s, v in b.items() if v is not None and math.isfinite(v)}
    if len(a) < 2 or len(b) < 2:
        return Comparison("none", math.nan)
    from scipy import stats  # 1.4 s to import: only when a test is computed

    scale = max(abs(v) for v in (*a.values(), *b.values()))
    if set(a) == set(b):
        seeds = sorted(a)
        x = np.array([a[s] for s in seeds])
        y = np.array([b[s] for s in seeds])
        d = x - y
        if _constant(d, scale):
            return Comparison("paired", 1.0 if abs(float(d.mean())) <= REL_TOL * scale else 0.0)
        return Comparison("paired", _pvalue(stats.ttest_rel, x, y))
    x = np.array(list(a.values()))
    y = np.array(list(b.values()))
    cx, cy = _constant(x, scale), _constant(y, scale)
    if cx and cy:
        return Comparison("welch", 1.0 if _close(float(x.mean()), float(y.mean())) else 0.0)
    if cx or cy:
        varying, const = (y, float(x.mean())) if cx else (x, float(y.mean()))
        return Comparison("welch", _pvalue(stats.ttest_1samp, varying, const))
    return Comparison("welch", _pvalue(stats.ttest_ind, x, y, equal_var=False))


def _pvalue(test: Any, *args: Any, **kw: Any) -> float:
    """Two-sided p-value of a SciPy test. The inputs behind SciPy's "Precision loss occurred in
    moment calculation" warning (nearly identical values) are decided exactly before a test is
    called; the filter only keeps that message from ever reaching the user raw."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Precision loss occurred", category=RuntimeWarning
        )
        return float(test(*args, **kw).pvalue)


@functools.lru_cache(maxsize=1024)
def _t_quantile(p: float, df: int) -> float:
    """``scipy.stats.t.ppf(p, df)``, remembered: a report asks for a few (confidence, seeds)
    pairs hundreds of times, and each scipy call costs milliseconds."""
    from scipy import stats

    return float(stats.t.ppf(p, df))


def t_interval(mean: float, std: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided t confidence interval for the mean; NaNs for n < 2."""
    if n < 2 or not math.isfinite(std):
        return (math.nan, math.nan)
    half = _t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return (mean - half, mean + half)


def format_number(value: float, decimals: int) -> str:
    """``value`` at ``decimals`` places (no ``-0.00``); NaN -> ``""``."""
    if value is None or not math.isfinite(value):
        return ""
    text = f"{value:.{decimals}f}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    return text


def _direction(value: Any) -> bool | None:
    """Stored ``higher_is_better`` (True / False / None; NaN read as None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value)


def _better(a: float, b: float, higher: bool) -> bool:
    return a > b if higher else a < b


#: The tidy-frame columns a declaration is read from (:func:`_declaration`).
_DECLARED = ("source", "group", "order", "higher_is_better", "unit", "decimals")


def _declaration(r: dict[str, Any]) -> dict[str, Any]:
    source = r.get("source") or ""
    order = r.get("order")
    return {
        "source": source,
        "group": r.get("group") or metric_group(source),
        "order": None if order is None or order is pd.NA or order != order else int(order),
        "higher_is_better": _direction(r["higher_is_better"]),
        "unit": r.get("unit") or "",
        "decimals": int(r.get("decimals", 3)),
    }


def declarations(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The declaration (source, group, order, direction, unit, decimals) of every metric in a
    tidy frame. Cells written by different vaebench versions may disagree; then the
    declaration most cells carry wins (ties: the first in the frame) -- see
    :func:`conflicting_declarations` to tell the reader."""
    from collections import Counter

    seen: dict[str, Counter] = {}
    first: dict[str, dict[tuple, dict[str, Any]]] = {}
    sub = frame[~frame["metric"].isin(NOT_VALUES)]
    cols = [c for c in ("metric", *_DECLARED) if c in sub.columns]
    made: dict[tuple, tuple[Any, dict[str, Any], tuple]] = {}  # rows alike: one declaration
    for raw in zip(*(sub[c].tolist() for c in cols), strict=True):
        hit = made.get(raw)
        if hit is None:
            r = dict(zip(cols, raw, strict=True))
            d = _declaration(r)
            hit = made[raw] = (r["metric"], d, tuple(sorted(d.items(), key=lambda kv: kv[0])))
        metric, d, key = hit
        seen.setdefault(metric, Counter())[key] += 1
        first.setdefault(metric, {}).setdefault(key, d)
    out = {}
    for metric, counts in seen.items():
        best = max(counts.values())
        key = next(k for k in first[metric] if counts[k] == best)
        out[metric] = first[metric][key]
    return out


def conflicting_declarations(frame: pd.DataFrame) -> dict[str, list[str]]:
    """``{metric: ["lower is better, unit '' (40 values)", ...]}`` for every metric whose stored
    direction or unit differs between cells (e.g. results of two vaebench versions)."""
    out: dict[str, list[str]] = {}
    sub = frame[~frame["metric"].isin(NOT_VALUES)]
    for metric, part in sub.groupby("metric", sort=True):
        kinds = part.assign(d=part["direction"].astype(str), u=part["unit"].astype(str))
        counts = kinds.groupby(["d", "u"], sort=True).size()
        if len(counts) > 1:
            out[str(metric)] = [
                f"{'descriptive' if d == 'none' else f'{d} is better'}, unit {u!r} ({n} values)"
                for (d, u), n in counts.items()
            ]
    return out


def aggregate(
    frame: pd.DataFrame,
    baseline: str | None = None,
    alpha: float = 0.05,
    confidence: float = 0.95,
    model_order: Sequence[str] | None = None,
    unranked: Collection[tuple[str, str, str]] = (),
    variant_keys: Mapping[str, tuple] | None = None,
    correction: str = "holm",
) -> pd.DataFrame:
    """Tidy frame (see :func:`vaebench.tidy.load_results`) -> one row per (dataset, model
    variant, metric) with the statistics tables and figures need.

    Cells stored twice (same ``config_hash`` in two runs) count once (the first run given).
    Columns: ``dataset``; ``model`` (the variant label) and ``base_model``; ``metric``, ``source``
    (metric plugin), ``group``,
    ``unit``, ``higher_is_better``, ``decimals``; ``n``, ``seeds`` (tuple), ``mean``, ``std``
    (ddof=1), ``sem``, ``ci_low``/``ci_high`` (``confidence`` t-interval); ``rank`` (1 = best
    mean; ties share a rank); ``best`` (best mean at the table's precision); ``bold`` (best, or
    not significantly different from the best at level ``alpha``); ``test_vs_best``,
    ``p_vs_best``; ``baseline``, ``test_vs_baseline``, ``p_vs_baseline`` and
    ``significant_vs_baseline`` (when a ``baseline`` model is given and present in the dataset).
    Descriptive metrics (no direction) get no rank, bold or tests; neither do the
    ``(dataset, variant, metric)`` entries in ``unranked`` (values that cannot be compared with
    the others of their column, e.g. sample scores from other sample counts): they are left out
    when the best is chosen, and get no rank, bold or test. ``variant_keys`` orders the
    variants of one model (see :func:`vaebench.report.layout.variant_order`). ``correction``
    (``holm``, ``bh``, ``none``) adjusts the p-values of each column's comparisons with the best
    (``p_adj_vs_best``; bold when it is at least ``alpha``) and with the baseline
    (``p_adj_vs_baseline``); ``diff_vs_best`` with ``diff_ci_low``/``diff_ci_high`` (the
    ``confidence`` interval of the difference) and ``mde_vs_best`` (the smallest difference the
    column's test detects at 80 % power) come from :mod:`vaebench.report.power`.
    """
    from vaebench.report.layout import order_metrics, variant_order

    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; valid: {', '.join(CORRECTIONS)}")

    if frame.empty:
        return pd.DataFrame(columns=AGG_COLUMNS)
    frame = frame[~frame["metric"].isin(NOT_VALUES)]
    frame = frame.drop_duplicates(["config_hash", "metric"], keep="first")
    if "variant" not in frame.columns:
        frame = frame.assign(variant=frame["model"])
    meta = declarations(frame)
    variants = dict(zip(frame["variant"], frame["model"], strict=False))
    models = variant_order(variants, model_order or sorted(set(variants.values())),
                           dict(variant_keys or {}))  # fmt: skip
    unranked_set = set(unranked)
    rows: list[dict[str, Any]] = []
    for dataset in sorted(frame["dataset"].unique()):
        sub = frame[frame["dataset"] == dataset]
        # one pass over the dataset's rows (rows keep their order within a group)
        parts = {key: dict(zip(part["seed"].astype(int), part["value"], strict=True))
                 for key, part in sub.groupby(["metric", "variant"], sort=False)}  # fmt: skip
        for metric in order_metrics({m: meta[m] for m in sub["metric"].unique()}):
            m = meta[metric]
            values: dict[str, dict[int, float]] = {}
            for variant in models:
                if (metric, variant) in parts:
                    values[variant] = parts[(metric, variant)]
            apart = {v for v in values if (dataset, v, metric) in unranked_set}
            rows.extend(_metric_rows(dataset, metric, m, values, variants, baseline, alpha,
                                     confidence, apart, correction))  # fmt: skip
    out = pd.DataFrame(rows, columns=AGG_COLUMNS)
    out["higher_is_better"] = pd.Series(
        [None if v is None else bool(v) for v in out["higher_is_better"]], dtype=object
    )
    return out


def _seed_stats(by_seed: dict[int, float], confidence: float) -> dict[str, Any]:
    """``n``, ``seeds``, ``mean``, ``std``, ``sem``, ``ci_low``, ``ci_high`` of one entry's
    finite seed values."""
    finite = {s: v for s, v in by_seed.items() if math.isfinite(v)}
    arr = np.array(list(finite.values()), dtype=float)
    n = len(arr)
    mean = float(arr.mean()) if n else math.nan
    std = float(arr.std(ddof=1)) if n >= 2 else math.nan
    lo, hi = t_interval(mean, std, n, confidence)
    return {
        "n": n,
        "seeds": tuple(sorted(finite)),
        "mean": mean,
        "std": std,
        "sem": std / math.sqrt(n) if n >= 2 else math.nan,
        "ci_low": lo,
        "ci_high": hi,
    }


def _best_of(stats_: dict[str, dict[str, Any]], ranked: list[str], higher: bool) -> str | None:
    """The first ranked variant with the best mean, or None."""
    if not ranked:
        return None
    best = ranked[0]
    for v in ranked[1:]:
        if _better(stats_[v]["mean"], stats_[best]["mean"], higher):
            best = v
    return best


def _baseline_of(
    baseline: str | None, stats_: Mapping[str, Any], variants: dict[str, str]
) -> str | None:
    """The baseline entry of a column: a variant label, or a model name with exactly one
    variant in this dataset."""
    if baseline is None:
        return None
    if baseline in stats_:
        return baseline
    cands = [v for v in stats_ if variants.get(v) == baseline]
    return cands[0] if len(cands) == 1 else None


def _empty_row(
    dataset: str, metric: str, meta: dict[str, Any], variant: str, base_model: str
) -> dict[str, Any]:
    """An aggregate row before its statistics: declaration, no rank, bold or test."""
    return {
        "dataset": dataset,
        "model": variant,
        "base_model": base_model,
        "metric": metric,
        "source": meta["source"],
        "group": meta["group"],
        "unit": meta["unit"],
        "higher_is_better": meta["higher_is_better"],
        "decimals": meta["decimals"],
    }


_NO_TESTS: dict[str, Any] = {
    "rank": math.nan,
    "best": False,
    "bold": False,
    "test_vs_best": "",
    "p_vs_best": math.nan,
}
_NO_DIFFS: dict[str, Any] = {
    "p_adj_vs_best": math.nan,
    "p_adj_vs_baseline": math.nan,
    "diff_vs_best": math.nan,
    "diff_ci_low": math.nan,
    "diff_ci_high": math.nan,
    "mde_vs_best": math.nan,
}


def _adjust_families(rows: list[dict[str, Any]], alpha: float, correction: str) -> None:
    """Adjust each column's family of comparisons (with the best; with the baseline) and set
    ``bold`` and ``significant_vs_baseline`` from the adjusted p-values, in place."""
    for key, flag in (("best", "bold"), ("baseline", "significant_vs_baseline")):
        tested = [r for r in rows if r[f"test_vs_{key}"] not in ("", "self")]
        for r, p in zip(tested, adjust([r[f"p_vs_{key}"] for r in tested], correction),
                        strict=True):  # fmt: skip
            r[f"p_adj_vs_{key}"] = p
            possible = r[f"test_vs_{key}"] != "none"
            if flag == "bold":
                r["bold"] = bool(r["best"] or (possible and p >= alpha))
            else:
                r[flag] = bool(possible and p < alpha)


def _metric_rows(
    dataset: str,
    metric: str,
    meta: dict[str, Any],
    values: dict[str, dict[int, float]],
    variants: dict[str, str],
    baseline: str | None,
    alpha: float,
    confidence: float,
    apart: set[str] | frozenset[str] = frozenset(),
    correction: str = "holm",
) -> list[dict[str, Any]]:
    from vaebench.report.power import detectable_difference, difference

    hib = meta["higher_is_better"]
    decimals = meta["decimals"]
    stats_ = {variant: _seed_stats(by_seed, confidence) for variant, by_seed in values.items()}
    directional = hib is not None
    ranked = (
        [v for v in stats_ if math.isfinite(stats_[v]["mean"]) and v not in apart]
        if directional
        else []
    )
    best_variant = _best_of(stats_, ranked, bool(hib))
    shown_best = format_number(stats_[best_variant]["mean"], decimals) if best_variant else None
    base = _baseline_of(baseline, stats_, variants) if directional else None
    rows = []
    for variant, s in stats_.items():
        row = _empty_row(dataset, metric, meta, variant, variants.get(variant, variant))
        row.update(s)
        row.update(_NO_TESTS)
        row.update({"baseline": base or "", "test_vs_baseline": "", "p_vs_baseline": math.nan,
                    "significant_vs_baseline": False, "correction": correction, "alpha": alpha})  # fmt: skip
        row.update(_NO_DIFFS)
        if directional and variant in ranked and best_variant is not None:
            better = sum(1 for o in ranked if _better(stats_[o]["mean"], s["mean"], bool(hib)))
            row["rank"] = better + 1
            row["best"] = format_number(s["mean"], decimals) == shown_best
            if variant == best_variant:
                row["bold"] = True
                row["test_vs_best"] = "self"
            else:
                cmp_ = compare(values[variant], values[best_variant])
                row["test_vs_best"] = cmp_.test
                row["p_vs_best"] = cmp_.p
                diff = difference(values[variant], values[best_variant], confidence)
                row["diff_vs_best"], row["diff_ci_low"], row["diff_ci_high"] = diff
        if (
            base is not None
            and base not in apart
            and variant != base
            and variant not in apart
            and math.isfinite(s["mean"])
        ):
            cmp_ = compare(values[variant], values[base])
            row["test_vs_baseline"] = cmp_.test
            row["p_vs_baseline"] = cmp_.p
        rows.append(row)
    # one family per column: the comparisons with the best, and those with the baseline
    _adjust_families(rows, alpha, correction)
    if best_variant is not None:
        mde = detectable_difference(values, best_variant,
                                    [r["model"] for r in rows if r["test_vs_best"] not in
                                     ("", "self", "none")], alpha)  # fmt: skip
        for r in rows:
            if r["model"] in ranked:
                r["mde_vs_best"] = mde
    return rows


def pareto_front(
    points: Mapping[str, tuple[float, float]], higher_x: bool = True, higher_y: bool = True
) -> list[str]:
    """Names of the non-dominated points: no other point is at least as good on both axes and
    strictly better on one (``higher_*`` says which way is better). Non-finite points are
    never on the front. Returned in the input order."""
    finite = {k: p for k, p in points.items() if all(math.isfinite(c) for c in p)}

    def at_least(a: float, b: float, higher: bool) -> bool:
        return a >= b if higher else a <= b

    front = []
    for k, (x, y) in finite.items():
        dominated = any(
            at_least(ox, x, higher_x)
            and at_least(oy, y, higher_y)
            and (_better(ox, x, higher_x) or _better(oy, y, higher_y))
            for o, (ox, oy) in finite.items()
            if o != k
        )
        if not dominated:
            front.append(k)
    return front
