"""Paper tables from aggregated results: Markdown (GitHub), LaTeX (booktabs), HTML and CSV.

A :class:`Table` holds models as rows and metric columns (optionally grouped: by metric group in
a per-dataset table, by dataset in the summary table). Every entry is ``mean ± std`` (or ``mean ±
CI half-width``) at the metric's declared precision. Headers carry the metric's direction (↑
higher is better, ↓ lower is better) and unit. Bold marks the best mean of each column and every
model not significantly different from it; a dagger marks models significantly different from a
chosen baseline. The caption states what the numbers are, the test and its level -- it is built
from the data, so it never claims a test that was not run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from vaebench.report.escape import (
    csv_safe_frame,
    escape_html,
    escape_latex,
    escape_markdown,
    latex_comment,
)
from vaebench.report.layout import GROUPS
from vaebench.report.stats import CORRECTION_NAMES, NO_TEST_REASON, TESTS, format_number

__all__ = [
    "ARROWS",
    "Column",
    "Entry",
    "Table",
    "build_table",
    "header",
    "format_mean_std",
    "to_markdown",
    "to_latex",
    "to_html",
    "latex_document",
    "html_document",
    "aggregate_csv",
    "tidy_csv",
    "escape_latex",
    "escape_markdown",
]

ARROWS = {True: "↑", False: "↓"}
MISSING = "–"
DAGGER = "†"


def header(metric: str, unit: str, higher_is_better: Any) -> str:
    """``"psnr ↑ [dB]"``: name, direction arrow (none for descriptive values) and unit."""
    arrow = ARROWS.get(higher_is_better, "") if higher_is_better is not None else ""
    label = f"{metric} {arrow}".strip()
    return f"{label} [{unit}]" if unit else label


def format_mean_std(
    mean: float, spread: float, n: int, decimals: int, descriptive: bool = False
) -> str:
    """``mean ± spread`` at ``decimals`` places.

    A single value (n < 2) shows the mean alone; so does a descriptive value that is the same for
    every seed (a parameter count). A missing mean shows ``–``.
    """
    if mean is None or not math.isfinite(mean):
        return MISSING
    m = format_number(mean, decimals)
    if n < 2 or spread is None or not math.isfinite(spread):
        return m
    if descriptive and spread == 0:
        return m
    return f"{m} ± {format_number(spread, decimals)}"


@dataclasses.dataclass(frozen=True)
class Column:
    """One table column: a metric (in a dataset), its header parts and its group label."""

    dataset: str
    metric: str
    arrow: str
    unit: str
    group: str

    @property
    def title(self) -> str:
        return f"{self.metric} {self.arrow}".strip()


@dataclasses.dataclass(frozen=True)
class Entry:
    """One formatted cell of a table."""

    text: str
    bold: bool = False
    mark: bool = False
    note: str = ""  # e.g. "n=2" when fewer seeds than the rest of the table
    flags: str = ""  # marks explained in the caption (see vaebench.report.notes.MARK_LEGEND)


@dataclasses.dataclass
class Table:
    """A rendered-format-independent table; see :func:`build_table`."""

    name: str
    title: str
    rows: list[str]
    columns: list[Column]
    entries: dict[tuple[str, int], Entry]
    caption: str

    def groups(self) -> list[tuple[str, int]]:
        """Consecutive column groups as ``(label, span)``."""
        out: list[tuple[str, int]] = []
        for c in self.columns:
            if out and out[-1][0] == c.group:
                out[-1] = (c.group, out[-1][1] + 1)
            else:
                out.append((c.group, 1))
        return out


def _correction_phrase(correction: str, against: str) -> str:
    """``"Holm-corrected over each column's comparisons with the best"`` and the like."""
    if correction == "none":
        return CORRECTION_NAMES["none"]
    return f"{CORRECTION_NAMES[correction]} over each column's comparisons with {against}"


def _tests_phrase(tests: set[str]) -> str:
    tests = tests - {"none", "self", ""}
    if tests == {"paired"}:
        return TESTS["paired"]
    if tests == {"welch"}:
        return TESTS["welch"]
    return f"{TESTS['paired']} where the seeds match, {TESTS['welch']} otherwise"


def _table_columns(
    agg: pd.DataFrame, datasets: Sequence[str], metrics: Sequence[str] | None, group_by: str
) -> tuple[list[Column], list[pd.DataFrame]]:
    """The columns of a table (``datasets`` x ``metrics``, those with rows) and each column's
    aggregate rows indexed by model."""
    columns: list[Column] = []
    col_rows: list[pd.DataFrame] = []
    for ds in datasets:
        sub = agg[agg["dataset"] == ds]
        names = list(dict.fromkeys(sub["metric"])) if metrics is None else list(metrics)
        for metric in names:
            rows = sub[sub["metric"] == metric]
            if rows.empty:
                continue
            first = rows.iloc[0]
            hib = first["higher_is_better"]
            arrow = ARROWS[bool(hib)] if hib is not None and hib == hib else ""
            group = GROUPS.get(first["group"], first["group"]) if group_by == "metric" else ds
            columns.append(Column(ds, metric, arrow, str(first["unit"] or ""), group))
            col_rows.append(rows.set_index("model"))
    return columns, col_rows


@dataclasses.dataclass
class _Seen:
    """What the entries of a table showed, for its caption."""

    short: bool = False  # an entry has fewer seeds than its dataset's most
    has_bold_col: bool = False
    all_single: bool = True
    tests_best: set[str] = dataclasses.field(default_factory=set)
    untestable_best: bool = False
    tests_base: set[str] = dataclasses.field(default_factory=set)


def _entry(
    r: pd.Series,
    col: Column,
    interval: str,
    max_n: int,
    mark_text: str,
    nonfinite: str,
    seen: _Seen,
) -> Entry:
    """The entry of one aggregate row ``r`` in column ``col``; records in ``seen`` what the
    caption must explain."""
    from vaebench.report.notes import NAN_MARK

    n = int(r["n"])
    if n >= 2:
        seen.all_single = False
    if interval == "ci" and n >= 2:
        spread = (float(r["ci_high"]) - float(r["ci_low"])) / 2
    else:
        spread = float(r["std"])
    text = format_mean_std(float(r["mean"]), spread, n, int(r["decimals"]), not col.arrow)
    if text == MISSING and NAN_MARK in mark_text:
        text = nonfinite
    note = f"n={n}" if 0 < n < max_n else ""
    seen.short = seen.short or bool(note)
    if col.arrow:
        seen.has_bold_col = True
        if r["test_vs_best"] not in ("", "self"):
            seen.tests_best.add(str(r["test_vs_best"]))
        if r["test_vs_best"] == "none" and not r["best"]:
            seen.untestable_best = True
        if r["test_vs_baseline"]:
            seen.tests_base.add(str(r["test_vs_baseline"]))
    return Entry(text, bold=bool(r["bold"]), mark=bool(r["significant_vs_baseline"]),
                 note=note, flags=mark_text)  # fmt: skip


def build_table(
    agg: pd.DataFrame,
    datasets: Sequence[str],
    models: Sequence[str],
    metrics: Sequence[str] | None = None,
    *,
    name: str,
    title: str,
    group_by: str = "metric",
    interval: str = "std",
    confidence: float = 0.95,
    alpha: float = 0.05,
    baseline: str | None = None,
    flags: Mapping[tuple[str, str, str], str] | None = None,
    nonfinite: Mapping[tuple[str, str, str], str] | None = None,
    notes: Sequence[str] = (),
    correction: str = "holm",
) -> Table:
    """Build a :class:`Table` from :func:`vaebench.report.stats.aggregate` output.

    ``datasets`` x ``metrics`` give the columns (metrics in the given order, default: the
    aggregate's order per dataset); ``models`` the rows (those without any value are dropped).
    ``group_by="metric"`` groups columns by metric group, ``"dataset"`` by dataset.
    ``interval`` is ``"std"`` (sample standard deviation) or ``"ci"`` (half-width of the
    t-based ``confidence`` interval). ``flags`` maps ``(dataset, model, metric)`` to marks
    written after an entry and explained in the caption
    (:data:`vaebench.report.notes.MARK_LEGEND`); an entry whose every seed is NaN or infinite
    reads what ``nonfinite`` says for it (``NaN``, ``inf``, ``-inf``: see
    :func:`vaebench.report.notes.nonfinite_text`; default ``NaN``) when it carries the NaN mark. ``notes`` are sentences appended to the caption
    (what the numbers were computed on). A ``–`` (no value: not evaluated, not applicable or
    failed) is explained in the caption whenever the table has one. ``correction`` names the
    multiple-comparison correction the aggregate was computed with (see
    :data:`vaebench.report.stats.CORRECTIONS`); the caption then gives, per column, the
    smallest difference the test detects at 80 % power and the difference of every non-bold
    entry from the best with its ``confidence`` interval (:mod:`vaebench.report.power`).
    """
    from vaebench.report.notes import MARK_LEGEND

    if interval not in ("std", "ci"):
        raise ValueError(f"unknown interval {interval!r}; valid: std, ci")
    columns, col_rows = _table_columns(agg, datasets, metrics, group_by)
    present = set().union(*(set(r.index) for r in col_rows)) if col_rows else set()
    row_names = [m for m in models if m in present] + sorted(present - set(models))
    max_n: dict[str, int] = {}
    for col, rows in zip(columns, col_rows, strict=True):
        max_n[col.dataset] = max(max_n.get(col.dataset, 0), int(rows["n"].max()))
    seen = _Seen()
    entries: dict[tuple[str, int], Entry] = {}
    for j, (col, rows) in enumerate(zip(columns, col_rows, strict=True)):
        for model in row_names:
            key = (col.dataset, model, col.metric)
            mark_text = (flags or {}).get(key, "")
            if model not in rows.index:
                entries[(model, j)] = Entry(MISSING, flags=mark_text)
                continue
            entries[(model, j)] = _entry(rows.loc[model], col, interval, max_n[col.dataset],
                                         mark_text, (nonfinite or {}).get(key, "NaN"), seen)  # fmt: skip
    tests_best = seen.tests_best
    caption = _caption(
        title=title,
        interval=interval,
        confidence=confidence,
        alpha=alpha,
        max_n=max_n,
        baseline=baseline,
        baseline_present=bool(baseline) and any(m == baseline for m in row_names),
        single_row=len(row_names) == 1,
        correction=correction,
        **dataclasses.asdict(seen),
    )
    if tests_best - {"none"} and len(row_names) > 1:
        caption = " ".join([caption, *_power_sentences(columns, col_rows, row_names, alpha,
                                                        confidence)])  # fmt: skip
    used = "".join(e.flags for e in entries.values())
    extra = [legend for mark, legend in MARK_LEGEND.items() if mark in used]
    if any(e.text == MISSING for e in entries.values()):
        extra.append(f"{MISSING}: no value (not evaluated, not applicable or failed; see "
                     "report.md).")  # fmt: skip
    extra += [n for n in notes if n]
    if extra:
        caption = " ".join([caption, *extra])
    return Table(name, title, row_names, columns, entries, caption)


def _percent(x: float) -> str:
    return f"{x * 100:g} %"


def _signed(value: float, decimals: int) -> str:
    text = format_number(value, decimals)
    return text if text.startswith("-") or not text else f"+{text}"


def _power_sentences(
    columns: Sequence[Column],
    col_rows: Sequence[pd.DataFrame],
    row_names: Sequence[str],
    alpha: float,
    confidence: float,
) -> list[str]:
    """Caption sentences: the difference each column's test detects at 80 % power, and each
    non-bold entry's difference from the best with its confidence interval."""
    multi = len({c.dataset for c in columns}) > 1
    detect: list[str] = []
    effects: list[str] = []
    for col, rows in zip(columns, col_rows, strict=True):
        if not col.arrow:
            continue
        label = f"{col.dataset}: {col.metric}" if multi else col.metric
        dec = int(rows["decimals"].iloc[0])
        mdes = [float(v) for v in rows["mde_vs_best"] if v == v]
        if mdes and math.isfinite(mdes[0]):
            detect.append(f"{label} {format_number(mdes[0], dec + 1)}")
        diffs = []
        for model in row_names:
            if model not in rows.index:
                continue
            r = rows.loc[model]
            if r["bold"] or r["test_vs_best"] in ("", "self", "none"):
                continue
            d, lo, hi = (float(r[k]) for k in ("diff_vs_best", "diff_ci_low", "diff_ci_high"))
            if math.isfinite(d):
                ci = (f" [{_signed(lo, dec)}, {_signed(hi, dec)}]"
                      if math.isfinite(lo) and math.isfinite(hi) else "")  # fmt: skip
                diffs.append(f"{model} {_signed(d, dec)}{ci}")
        if diffs:
            effects.append(f"{label}: {', '.join(diffs)}")
    out = []
    if detect:
        out.append(
            f"Smallest difference from the best the test detects with 80 % power at α = "
            f"{alpha:g} (uncorrected; observed spread): {'; '.join(detect)}."
        )
    if effects:
        out.append(
            f"Not bold, difference from the best (mean, {_percent(confidence)} CI): "
            f"{'; '.join(effects)}."
        )
    return out


def _caption(
    *,
    title: str,
    interval: str,
    confidence: float,
    alpha: float,
    max_n: dict[str, int],
    short: bool,
    has_bold_col: bool,
    all_single: bool,
    tests_best: set[str],
    untestable_best: bool,
    baseline: str | None,
    tests_base: set[str],
    baseline_present: bool,
    single_row: bool = False,
    correction: str = "holm",
) -> str:
    ns = sorted(set(max_n.values()))
    seeds = f"{ns[0]} seed{'s' if ns[0] != 1 else ''}" if len(ns) == 1 else (
        f"{'/'.join(map(str, ns))} seeds (by dataset)")  # fmt: skip
    if all_single:
        parts = [f"{title}. Values from a single seed (no spread can be estimated)."]
    elif interval == "ci":
        parts = [f"{title}. Mean ± half-width of the {_percent(confidence)} t-based confidence "
                 f"interval over {seeds}."]  # fmt: skip
    else:
        parts = [f"{title}. Mean ± standard deviation (ddof = 1) over {seeds}."]
    if short:
        parts.append("Where fewer seeds finished, n is given.")
    parts.append("↑ higher is better, ↓ lower is better.")
    level = f"α = {alpha:g}"
    if has_bold_col:
        if single_row:
            parts.append("Bold: the best mean per column (one model: nothing to compare).")
        elif all_single:
            parts.append(
                "Bold: the best mean per column only. With fewer than 2 seeds per model no "
                "significance test is possible, so the others are not shown to be worse."
            )
        elif not tests_best:
            parts.append(
                "Bold: the best mean per column (no other model in the same column has a value "
                "that can be compared with it: nothing is tested)."
            )
        elif not (tests_best - {"none"}):
            parts.append(
                "Bold: the best mean per column and any mean equal to it as shown. No "
                f"significance test is possible ({NO_TEST_REASON} in every comparison with "
                "the best), so the others are not shown to be worse."
            )
        else:
            parts.append(
                "Bold: the best mean per column and every model not significantly different "
                f"from it (two-sided {_tests_phrase(tests_best)}, {level}; "
                f"{_correction_phrase(correction, 'the best')})."
            )
            if untestable_best:
                parts.append(
                    f"Not tested where the model or the best has {NO_TEST_REASON}: such a "
                    "model is bold only when its mean equals the best's as shown."
                )
    if baseline:
        if not baseline_present:
            parts.append(f"Baseline {baseline} is not in this table: no significance marks.")
        elif not tests_base:
            parts.append(f"No other model has a value to test against the baseline {baseline}.")
        elif not (tests_base - {"none"}):
            parts.append(f"No test against the baseline {baseline} is possible "
                         f"({NO_TEST_REASON}).")  # fmt: skip
        else:
            parts.append(
                f"{DAGGER} significantly different from the baseline {baseline} (two-sided "
                f"{_tests_phrase(tests_base)}, {level}; "
                f"{_correction_phrase(correction, f'the baseline {baseline}')})."
            )
    return " ".join(parts)


# ----------------------------------------------------------------------------- Markdown


def _md_entry(e: Entry) -> str:
    text = escape_markdown(e.text)
    if e.bold and e.text != MISSING:
        text = f"**{text}**"
    if e.mark:
        text += DAGGER
    text += escape_markdown(e.flags)
    if e.note:
        text += f" ({e.note})"
    return text


def to_markdown(table: Table, caption: bool = True) -> str:
    """A GitHub-flavoured pipe table (numbers right-aligned), then the caption paragraph."""
    multi = len({c.group for c in table.columns}) > 1 and any(
        c.group == c.dataset for c in table.columns
    )
    heads = ["model"]
    for c in table.columns:
        h = header(c.metric, c.unit, {"↑": True, "↓": False}.get(c.arrow))
        heads.append(escape_markdown(f"{c.dataset}: {h}" if multi else h))
    lines = [
        "| " + " | ".join(heads) + " |",
        "|:--" + "|--:" * len(table.columns) + "|",
    ]
    for model in table.rows:
        cells = [escape_markdown(model)]
        cells += [_md_entry(table.entries[(model, j)]) for j in range(len(table.columns))]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if caption:
        text += "\n" + escape_markdown(table.caption) + "\n"
    return text


# ----------------------------------------------------------------------------- LaTeX


def _tex_entry(e: Entry) -> str:
    if e.text == MISSING:
        return "--" + escape_latex(e.flags)
    text = escape_latex(e.text)
    if e.bold:
        text = r"\textbf{\boldmath " + text + "}"
    if e.mark:
        text += r"$^\dagger$"
    text += escape_latex(e.flags)
    if e.note:
        text += r" {\scriptsize (" + escape_latex(e.note) + ")}"
    return text


def latex_label(name: str) -> str:
    """``tab:vaebench-NAME`` with every character but ASCII letters, digits, ``-`` and ``.``
    replaced by ``-`` (labels must survive any LaTeX input encoding)."""
    safe = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-." else "-" for ch in name)
    return "tab:vaebench-" + safe


def to_latex(table: Table) -> str:
    """A ``table`` float with a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``): a group
    header row with ``\\cmidrule``\\ s, a header row with arrows, a unit row, the model rows."""
    ncol = len(table.columns)
    lines = [
        latex_comment(
            f"{table.title}: generated by `vaebench report` from stored results; do not edit."
        ),  # fmt: skip
        r"% Requires \usepackage{booktabs}.",
        r"\begin{table}[tbp]",
        r"\centering",
        r"\small",
        r"\caption{" + escape_latex(table.caption) + "}",
        r"\label{" + latex_label(table.name) + "}",
        r"\begin{tabular}{@{}l" + "r" * ncol + "@{}}",
        r"\toprule",
    ]
    groups = table.groups()
    if len(groups) > 1 or any(c.group == c.dataset for c in table.columns):
        heads, rules, start = [""], [], 2
        for label, span in groups:
            heads.append(rf"\multicolumn{{{span}}}{{c}}{{{escape_latex(label)}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
            start += span
        lines.append(" & ".join(heads) + r" \\")
        lines.append(" ".join(rules))
    lines.append(" & ".join(["Model"] + [escape_latex(c.title) for c in table.columns]) + r" \\")
    if any(c.unit for c in table.columns):
        units = [""] + [
            r"{\scriptsize " + escape_latex(f"[{c.unit}]") + "}" if c.unit else ""
            for c in table.columns
        ]
        lines.append(" & ".join(units) + r" \\")
    lines.append(r"\midrule")
    for model in table.rows:
        cells = [escape_latex(model)]
        cells += [_tex_entry(table.entries[(model, j)]) for j in range(ncol)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def latex_document(tables: Sequence[Table], title: str = "vaebench tables") -> str:
    """A complete LaTeX document (article, booktabs) holding every table; compiles with
    ``pdflatex`` as is. Paste a table's ``.tex`` file into a paper with ``\\input``."""
    body = "\n\\clearpage\n".join(to_latex(t) for t in tables)
    return (
        "% Generated by `vaebench report`; compile with: pdflatex tables.tex\n"
        "\\documentclass{article}\n"
        "\\usepackage[landscape,margin=1.5cm]{geometry}\n"
        "\\usepackage{booktabs}\n"
        f"\\title{{{escape_latex(title)}}}\n"
        "\\date{}\n"
        "\\begin{document}\n"
        f"{body}"
        "\\end{document}\n"
    )


# ----------------------------------------------------------------------------- HTML


def _html_entry(e: Entry) -> str:
    text = escape_html(e.text)
    if e.bold and e.text != MISSING:
        text = f"<b>{text}</b>"
    if e.mark:
        text += f"<sup>{DAGGER}</sup>"
    if e.flags:
        text += f"<sup>{escape_html(e.flags)}</sup>"
    if e.note:
        text += f" <small>({escape_html(e.note)})</small>"
    return text


def to_html(table: Table) -> str:
    """An HTML ``<table>`` with caption, grouped header, bold and marks."""
    out = [f'<table class="vaebench" id="{escape_html(latex_label(table.name)[4:])}">']
    out.append(f"<caption>{escape_html(table.caption)}</caption>")
    out.append("<thead>")
    groups = table.groups()
    if len(groups) > 1 or any(c.group == c.dataset for c in table.columns):
        cells = ["<th></th>"] + [
            f'<th colspan="{span}">{escape_html(label)}</th>' for label, span in groups
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    heads = ["<th>model</th>"]
    for c in table.columns:
        unit = f"<br><small>[{escape_html(c.unit)}]</small>" if c.unit else ""
        heads.append(f"<th>{escape_html(c.title)}{unit}</th>")
    out.append("<tr>" + "".join(heads) + "</tr>")
    out.append("</thead>")
    out.append("<tbody>")
    for model in table.rows:
        cells = [f'<th scope="row">{escape_html(model)}</th>']
        cells += [
            f"<td>{_html_entry(table.entries[(model, j)])}</td>" for j in range(len(table.columns))
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody>")
    out.append("</table>")
    return "\n".join(out) + "\n"


def html_document(tables: Sequence[Table], title: str = "vaebench tables") -> str:
    """A complete HTML page holding every table."""
    style = (
        "body{font-family:sans-serif;margin:2em}"
        "table.vaebench{border-collapse:collapse;margin:1.5em 0}"
        "table.vaebench caption{caption-side:top;text-align:left;max-width:60em;"
        "padding-bottom:.5em}"
        "table.vaebench th,table.vaebench td{padding:.2em .7em;text-align:right}"
        "table.vaebench th[scope=row]{text-align:left}"
        "table.vaebench thead tr:last-child th{border-bottom:1px solid #000}"
        "table.vaebench{border-top:2px solid #000;border-bottom:2px solid #000}"
    )
    body = "\n".join(to_html(t) for t in tables)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape_html(title)}</title>\n<style>{style}</style>\n</head>\n<body>\n"
        f"<h1>{escape_html(title)}</h1>\n{body}</body>\n</html>\n"
    )


# ----------------------------------------------------------------------------- CSV


def aggregate_csv(agg: pd.DataFrame) -> str:
    """The aggregate as tidy CSV: one row per (dataset, model, metric); seeds as ``0;1;2``;
    floats with 10 significant digits; empty fields for missing values. Text fields that a
    spreadsheet would run as a formula are neutralised (see
    :func:`vaebench.report.escape.csv_cell`); numbers are unchanged."""
    out = agg.copy()
    out["seeds"] = out["seeds"].map(lambda s: ";".join(map(str, s)))
    out["higher_is_better"] = out["higher_is_better"].map(
        lambda v: "" if v is None or v != v else str(bool(v)).lower()
    )
    for col in ("best", "bold", "significant_vs_baseline"):
        out[col] = out[col].map(lambda v: str(bool(v)).lower())
    return csv_safe_frame(out).to_csv(index=False, float_format="%.10g", lineterminator="\n")


def tidy_csv(frame: pd.DataFrame) -> str:
    """Every stored value, one row per (cell, metric) (see :func:`vaebench.tidy.tidy_frame`),
    floats with 10 significant digits; text fields neutralised for spreadsheets as in
    :func:`aggregate_csv`."""
    return csv_safe_frame(frame).to_csv(index=False, float_format="%.10g", lineterminator="\n")
