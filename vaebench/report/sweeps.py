"""Sweeps in reports: each swept parameter against each headline metric, and ablation tables.

A cell that ran as part of a sweep (``vaebench run --sweep vae.beta=0.5,1,4``) stores its swept
values in ``config.sweep`` (``{"vae.beta": 4.0}``). For one dataset and one swept parameter
(``beta``), every cell that swept it is placed on a **line**: its model plus the values of the
other parameters swept with it (``vae``, or ``vae (latent_dim=8)`` when ``latent_dim`` was swept
too), at the position of its value of the parameter.

- :func:`sweep_points` gives the per-seed values of a metric on those lines;
- :func:`ablation_table` pivots the parameter into columns: rows are the lines, columns the
  swept values, one table per headline metric; entries are mean ± std over seeds; bold marks,
  per row, the best value and every value not significantly different from it (the same tests
  as the other tables: paired t-test over seeds where the seeds match, Welch otherwise);
- :func:`vaebench.report.figures.sweep_lines` draws the parameter against the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from vaebench.report.stats import NO_TEST_REASON, TESTS, adjust, compare, format_number
from vaebench.report.tables import ARROWS, Column, Entry, Table, format_mean_std
from vaebench.tidy import format_setting, sweep_values

__all__ = [
    "swept_parameters",
    "sweep_points",
    "value_order",
    "ablation_table",
    "line_label",
]


def swept_parameters(cells: Sequence[dict[str, Any]], dataset: str) -> list[str]:
    """Short names of the parameters swept on ``dataset`` with at least two values among the
    finished cells (``["beta", "latent_dim"]``), in the order they were swept."""
    seen: dict[str, set[str]] = {}
    for cell in sorted(cells, key=lambda c: str(c.get("config_hash"))):
        if cell.get("dataset") != dataset or cell.get("status") != "ok":
            continue
        for key, value in sweep_values(cell).items():
            seen.setdefault(key, set()).add(repr(value))
    return [k for k, vals in seen.items() if len(vals) > 1]


def line_label(cell: dict[str, Any], key: str) -> str:
    """The line a swept cell belongs to for parameter ``key``: its model, plus the values of
    the other parameters swept with it (``"vae (latent_dim=8)"``), by name as in the variant
    labels (:func:`vaebench.tidy.variant_labels`), whatever order the sweeps were given in."""
    others = {k: v for k, v in sorted(sweep_values(cell).items()) if k != key}
    if not others:
        return cell["model"]
    inner = ", ".join(f"{k}={format_setting(v)}" for k, v in others.items())
    return f"{cell['model']} ({inner})"


def _sort_value(v: Any) -> tuple:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, str(v))


def value_order(values: Sequence[Any]) -> list[Any]:
    """Distinct swept values, numbers ascending first, then the others by their text."""
    distinct: dict[str, Any] = {}
    for v in values:
        distinct.setdefault(repr(v), v)
    return sorted(distinct.values(), key=_sort_value)


def sweep_points(
    cells: Sequence[dict[str, Any]],
    frame: pd.DataFrame,
    dataset: str,
    key: str,
    metric: str,
    model_order: Sequence[str] = (),
) -> pd.DataFrame:
    """Per-seed values of ``metric`` on ``dataset`` for the cells that swept ``key``: columns
    ``line``, ``model``, ``value`` (the swept value, as stored), ``label`` (its text),
    ``seed``, ``y`` (the metric; NaN rows dropped). Lines in ``model_order``, then by name;
    points by swept value, then seed."""
    where: dict[str, tuple[str, str, Any]] = {}
    for cell in cells:
        if cell.get("dataset") != dataset or cell.get("status") != "ok":
            continue
        sweep = sweep_values(cell)
        if key in sweep:
            where[cell["config_hash"]] = (line_label(cell, key), cell["model"], sweep[key])
    sub = frame[(frame["dataset"] == dataset) & (frame["metric"] == metric)]
    sub = sub.drop_duplicates(["config_hash", "metric"])
    rows = []
    for r in sub.itertuples(index=False):
        if r.config_hash in where and math.isfinite(float(r.value)):
            line, model, value = where[r.config_hash]
            rows.append({"line": line, "model": model, "value": value,
                         "label": format_setting(value), "seed": int(r.seed),
                         "y": float(r.value)})  # fmt: skip
    out = pd.DataFrame(rows, columns=["line", "model", "value", "label", "seed", "y"])
    if out.empty:
        return out
    rank = {m: i for i, m in enumerate(model_order)}
    out["_m"] = out["model"].map(lambda m: rank.get(m, len(rank)))
    out["_v"] = out["value"].map(_sort_value)
    out = out.sort_values(["_m", "line", "_v", "seed"], kind="stable")
    return out.drop(columns=["_m", "_v"]).reset_index(drop=True)


def ablation_table(
    points: pd.DataFrame,
    *,
    dataset: str,
    key: str,
    metric: str,
    unit: str,
    higher_is_better: bool | None,
    decimals: int,
    name: str,
    alpha: float = 0.05,
    correction: str = "holm",
) -> Table | None:
    """Rows: lines (models); columns: the values of ``key``; entries: mean ± std over seeds of
    ``metric`` (from :func:`sweep_points`). ``None`` when there are no points. The p-values of
    a row's comparisons with its best value are one family, adjusted by ``correction``
    (:func:`vaebench.report.stats.adjust`: ``holm``, ``bh`` or ``none``)."""
    if points.empty:
        return None
    values = value_order(list(points["value"]))
    labels = [format_setting(v) for v in values]
    lines = list(dict.fromkeys(points["line"]))
    arrow = ARROWS[bool(higher_is_better)] if higher_is_better is not None else ""
    columns = [Column(dataset, f"{key}={lab}", "", "", metric) for lab in labels]
    by: dict[tuple[str, str], dict[int, float]] = {}
    for r in points.itertuples(index=False):
        by.setdefault((r.line, r.label), {})[int(r.seed)] = float(r.y)
    entries: dict[tuple[str, int], Entry] = {}
    tests: set[str] = set()
    seeds_n: set[int] = set()
    for line in lines:
        stats_ = {}
        for lab in labels:
            vals = list(by.get((line, lab), {}).values())
            if vals:
                s = pd.Series(vals, dtype=float)
                std = float(s.std(ddof=1)) if len(s) > 1 else math.nan
                stats_[lab] = (float(s.mean()), std, len(s))
                seeds_n.add(len(s))
        best = None
        if higher_is_better is not None and stats_:
            pick = max if higher_is_better else min
            best = pick(stats_, key=lambda lab: stats_[lab][0])
        shown_best = format_number(stats_[best][0], decimals) if best else None
        # tested even when tied as shown, so the caption names the test
        cmps = {lab: compare(by[(line, lab)], by[(line, best)]) for lab in stats_
                if best is not None and lab != best}  # fmt: skip
        padj = dict(zip(cmps, adjust([c.p for c in cmps.values()], correction), strict=True))
        for j, lab in enumerate(labels):
            if lab not in stats_:
                entries[(line, j)] = Entry("–")
                continue
            mean, std, n = stats_[lab]
            bold = False
            if best is not None:
                bold = lab == best
                if not bold:
                    cmp_ = cmps[lab]
                    tests.add(cmp_.test)
                    tied = format_number(mean, decimals) == shown_best
                    bold = tied or (cmp_.possible and padj[lab] >= alpha)
            text = format_mean_std(mean, std, n, decimals, descriptive=higher_is_better is None)
            entries[(line, j)] = Entry(text, bold=bold)
    title = f"{dataset}: {metric} by {key}"
    head = f"{metric} {arrow}".strip() + (f" [{unit}]" if unit else "")
    seeds = "/".join(map(str, sorted(seeds_n)))
    parts = [
        f"{title}. Ablation: rows are models (with the other swept settings), columns the "
        f"values of {key}; entries are {head}, mean ± standard deviation (ddof = 1) over "
        f"{seeds} seed{'s' if seeds != '1' else ''}."
    ]
    parts.append(_bold_sentence(key, tests, alpha, higher_is_better is None, correction))
    if any(e.text == "–" for e in entries.values()):
        parts.append("–: not run or no finite value.")
    return Table(name, title, lines, columns, entries, " ".join(parts))


#: How an ablation caption names each correction (one family: a row's comparisons with its best).
CORRECTION_PHRASES = {
    "holm": "Holm-corrected over each row's comparisons with its best",
    "bh": "Benjamini-Hochberg-corrected over each row's comparisons with its best",
    "none": "no correction for multiple comparisons",
}


def _bold_sentence(
    key: str, tests: set[str], alpha: float, descriptive: bool, correction: str = "holm"
) -> str:
    """What bold means in an ablation table, from the tests its comparisons used (``tests``:
    :attr:`Comparison.test` of every value compared with its row's best; empty when no row
    had a second value)."""
    if descriptive:
        return "Descriptive value: no best."
    used = sorted(tests - {"none"})
    if used:
        sentence = (
            f"Bold: per row, the best value of {key} and every value not significantly "
            f"different from it (two-sided {' or '.join(TESTS[t] for t in used)}, "
            f"α = {alpha:g}; {CORRECTION_PHRASES[correction]})."
        )
        if "none" in tests:
            sentence += (
                f" Not tested where the value or the best has {NO_TEST_REASON}: such a value "
                "is bold only when its mean equals the best's as shown."
            )
        return sentence
    if tests:
        return (
            f"Bold: per row, the best mean and any mean equal to it as shown; no significance "
            f"test is possible ({NO_TEST_REASON} in every comparison with the best)."
        )
    return f"Bold: per row, the best mean (each row has one value of {key}: nothing to compare)."
