"""What a report shows, derived once from the stored cells: :class:`Report` and :func:`collect`,
and the questions the tables, figures and the page ask of it (which tables a dataset has, its
headline metrics, the Pareto axes, file stems of names).

Nothing here writes a file or draws: :mod:`vaebench.report.build` writes the report,
:mod:`vaebench.report.figures` draws, :mod:`vaebench.report.page` renders report.md; all of
them read a :class:`Report`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from vaebench.tidy import load_records, tidy_frame, variant_labels

__all__ = [
    "MAX_STEM",
    "Report",
    "collect",
    "default_summary_metrics",
    "declaration",
    "directional",
    "file_stems",
    "group_of",
    "headline_metrics",
    "pareto_metrics",
    "plugins_of",
    "safe_name",
    "sweep_metrics",
    "table_sources",
]


@dataclasses.dataclass
class Report:
    """Everything a report shows, derived once from the stored cells."""

    run_dirs: list[str]
    cells: list[dict[str, Any]]  # deduplicated; each with "run" and "variant"
    duplicates: list[dict[str, Any]]  # cells stored in more than one given run (ignored)
    frame: pd.DataFrame  # tidy frame of the cells
    agg: pd.DataFrame  # see vaebench.report.stats.aggregate
    models: list[str]  # variant labels in row order
    base_models: list[str]  # model names in row order
    datasets: list[str]
    baseline: str | None
    alpha: float
    confidence: float
    interval: str  # "std" or "ci"
    conflicts: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    stems: dict[str, str] = dataclasses.field(default_factory=dict)  # dataset -> file stem
    source_stems: dict[str, str] = dataclasses.field(default_factory=dict)  # table key -> stem
    nan: list[Any] = dataclasses.field(default_factory=list)  # notes.NanValue
    samples: Any = None  # notes.SampleComparison
    flags: dict[tuple[str, str, str], str] = dataclasses.field(default_factory=dict)
    correction: str = "holm"  # see vaebench.report.stats.CORRECTIONS

    def ok(self) -> list[dict[str, Any]]:
        return [c for c in self.cells if c["status"] == "ok"]

    def failed(self) -> list[dict[str, Any]]:
        """Cells whose training or model contract failed (not the skipped ones)."""
        return [c for c in self.cells if c["status"] not in ("ok", "skipped")]

    def skipped(self) -> list[dict[str, Any]]:
        """Cells skipped because the model does not support the dataset (its tags)."""
        return [c for c in self.cells if c["status"] == "skipped"]


def _one_per_seed(
    cells: list[dict[str, Any]], duplicates: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The finished cells with one seed of one labelled set-up on one dataset, the first given
    kept: cells whose configurations differ only where labels do not look (``schema``: a
    cell of an older format next to a newer one) would otherwise both be averaged as that
    seed's value, the later silently replacing the earlier. The others go to
    ``duplicates`` (report.md counts them)."""
    kept, seen = [], set()
    for cell in cells:
        key = (cell["variant"], cell["dataset"], cell["seed"])
        if cell.get("status") == "ok":
            if key in seen:
                duplicates.append(cell)
                continue
            seen.add(key)
        kept.append(cell)
    return kept


def collect(
    run_dirs: Sequence[str | os.PathLike],
    baseline: str | None = None,
    alpha: float = 0.05,
    confidence: float = 0.95,
    ci: bool = False,
    correction: str = "holm",
    light: bool = False,
) -> Report:
    """Load, deduplicate, label and aggregate the cells of ``run_dirs``; see :class:`Report`.

    ``light``: the cells without their image strips and training curves, read from the
    folders' columnar indexes (:func:`vaebench.index.load_records`; whole cell files where the
    index is off or :mod:`pyarrow` is missing) -- all a report without figures reads.

    Sample scores computed on other sample counts or another feature network than most of
    their column are aggregated but not ranked (see
    :func:`vaebench.report.notes.sample_comparison`)."""
    from vaebench.report import notes
    from vaebench.report.layout import ordered, requested_order, sweep_sort_key, variant_order
    from vaebench.report.stats import aggregate, conflicting_declarations
    from vaebench.tidy import sweep_values

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    dirs = [str(d) for d in run_dirs]
    cells: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    seen: set[str] = set()
    from vaebench import index

    use_index = light and bool(dirs) and index.enabled()
    for cell in index.load_records(dirs) if use_index else load_records(dirs):
        if cell["config_hash"] in seen:
            duplicates.append(cell)
            continue
        seen.add(cell["config_hash"])
        cells.append(cell)
    if not cells:
        raise ValueError(f"no results in {', '.join(dirs)}")
    labels = variant_labels(cells)
    for cell in cells:
        cell["variant"] = labels[cell["config_hash"]]
    cells = _one_per_seed(cells, duplicates)
    frame = tidy_frame(cells, include_failed=True, labels=labels)
    base_models = ordered({c["model"] for c in cells}, requested_order(dirs, "models"))
    variants = {c["variant"]: c["model"] for c in cells}
    keys = {c["variant"]: sweep_sort_key(dict(sorted(sweep_values(c).items())))
            for c in sorted(cells, key=lambda c: c["config_hash"])}  # fmt: skip
    models = variant_order(variants, base_models, keys)
    datasets = ordered({c["dataset"] for c in cells}, requested_order(dirs, "datasets"))
    if baseline is not None and baseline not in models and baseline not in base_models:
        raise ValueError(f"unknown baseline model {baseline!r}; valid: {', '.join(models)}")
    samples = notes.sample_comparison(cells)
    agg = aggregate(frame, baseline=baseline, alpha=alpha, confidence=confidence,
                    model_order=base_models, unranked=samples.apart,
                    variant_keys=keys, correction=correction)  # fmt: skip
    nan = notes.nan_values(cells)
    tkeys = sorted({_table_key(r) for r in agg.to_dict("records")}) if not agg.empty else []
    return Report(dirs, cells, duplicates, frame, agg, models, base_models, datasets, baseline,
                  alpha, confidence, "ci" if ci else "std", conflicting_declarations(frame),
                  file_stems(datasets), file_stems(tkeys), nan, samples,
                  notes.flags(nan, samples), correction)  # fmt: skip


def _table_key(row: dict[str, Any]) -> str:
    from vaebench.report.layout import table_key

    group, metric = str(row.get("group") or ""), str(row.get("metric") or "")
    if group == "samples" and "@" in metric:  # several samplers: one model x sampler table each
        return f"samples: {metric.split('@', 1)[0]} by sampler"
    return table_key(group, str(row.get("source") or "other"))


def safe_name(name: str) -> str:
    """A file-name-safe version of a dataset or metric name: letters, digits, ``-_.`` kept,
    everything else (``/``, spaces, control characters) replaced by ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


#: Longest file-name stem taken from a name as it is; longer ones are cut and get a hash.
MAX_STEM = 60


def file_stems(names: Sequence[str]) -> dict[str, str]:
    """``{name: stem}`` for file names: :func:`safe_name` of each name; a name whose safe form
    is empty, starts with ``.`` (a hidden file) or ``-`` (read as an option by shell tools), is
    longer than :data:`MAX_STEM`, or equals that of another name loses its leading dots and
    dashes and gets ``-`` and 8 hex digits of its SHA-1 appended (cut to length), so that two
    datasets never share a file and no stem starts with ``.`` or ``-``."""
    out: dict[str, str] = {}
    plain = [safe_name(n) for n in names]
    for name, stem in zip(names, plain, strict=True):
        clash = plain.count(stem) > 1
        if clash or not stem or stem[0] in ".-" or len(stem) > MAX_STEM:
            digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
            stem = f"{stem.lstrip('.-')[: MAX_STEM - 9]}-{digest}".lstrip("-")
        out[name] = stem
    return out


def directional(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of an aggregate whose metric has a direction (an empty frame stays as it is)."""
    if frame.empty:
        return frame
    mask = frame["higher_is_better"].map(lambda v: v is not None and v == v).astype(bool)
    return frame[mask]


def table_sources(rep: Report, dataset: str) -> list[tuple[str, list[str]]]:
    """``[(table key, [metric columns])]`` of one dataset in table order: one table per metric
    plugin, except the groups of :data:`vaebench.report.layout.GROUP_TABLES` (likelihood,
    representation, samples), whose plugins share one table named after the group. Within-cell
    standard errors (``X_se``) are left to the CSV."""
    from vaebench.report.layout import is_companion

    sub = rep.agg[rep.agg["dataset"] == dataset]
    present = set(sub["metric"])
    out: dict[str, list[str]] = {}
    for row in sub.to_dict("records"):
        metric = row["metric"]
        if is_companion(metric, present):
            continue
        names = out.setdefault(_table_key(row), [])
        if metric not in names:
            names.append(metric)
    return list(out.items())


def headline_metrics(rep: Report, datasets: Sequence[str] | None = None) -> list[str]:
    """Headline metrics, one per group (quality, interpolation, likelihood, representation,
    samples) that has a scored metric on every dataset of ``datasets`` (default: all): see
    :func:`vaebench.report.layout.headline`."""
    from vaebench.report.layout import GROUPS, headline

    agg = rep.agg
    datasets = list(rep.datasets if datasets is None else datasets)
    if agg.empty or not datasets:
        return []
    per_ds = [set(agg[agg["dataset"] == d]["metric"]) for d in datasets]
    common = set.intersection(*per_ds)
    out = []
    for group in GROUPS:
        if group == "cost":
            continue
        rows = directional(agg[(agg["group"] == group) & agg["metric"].isin(common)])
        name = headline(group, list(dict.fromkeys(rows["metric"]))) if not rows.empty else None
        if name:
            out.append(name)
    return out


def default_summary_metrics(rep: Report) -> list[str]:
    """Headline metrics for the cross-dataset table: :func:`headline_metrics` of every
    dataset."""
    return headline_metrics(rep)


def pareto_metrics(rep: Report, dataset: str) -> tuple[str | None, str | None]:
    """Default axes of the quality-vs-throughput scatter: the headline quality metric (see
    :data:`vaebench.report.layout.HEADLINES`) and ``encode_samples_per_s`` (else the
    first higher-is-better cost metric)."""
    from vaebench.report.layout import headline

    scored = directional(rep.agg[rep.agg["dataset"] == dataset])
    if scored.empty:
        return None, None
    quality = scored[scored["group"] == "quality"]["metric"]
    cost = scored[(scored["group"] == "cost") & scored["higher_is_better"].map(bool)]["metric"]
    q = headline("quality", list(dict.fromkeys(quality))) if len(quality) else None
    if "encode_samples_per_s" in set(cost):
        return q, "encode_samples_per_s"
    return q, (str(cost.iloc[0]) if len(cost) else None)


def group_of(rep: Report, dataset: str, metrics: Sequence[str]) -> str:
    sub = rep.agg[(rep.agg["dataset"] == dataset) & rep.agg["metric"].isin(metrics)]
    return str(sub["group"].iloc[0]) if not sub.empty else ""


def plugins_of(rep: Report, dataset: str, metrics: Sequence[str]) -> list[str]:
    sub = rep.agg[(rep.agg["dataset"] == dataset) & rep.agg["metric"].isin(metrics)]
    return list(dict.fromkeys(str(s) for s in sub["source"] if s))


def declaration(rep: Report, dataset: str, metric: str) -> dict[str, Any]:
    rows = rep.agg[(rep.agg["dataset"] == dataset) & (rep.agg["metric"] == metric)]
    if rows.empty:
        return {}
    r = rows.iloc[0]
    hib = r["higher_is_better"]
    return {"unit": str(r["unit"] or ""), "decimals": int(r["decimals"]),
            "higher_is_better": None if hib is None or hib != hib else bool(hib)}  # fmt: skip


def sweep_metrics(rep: Report, dataset: str) -> list[str]:
    """The metrics a swept parameter is drawn against and pivoted on for ``dataset``: its
    :func:`headline_metrics`."""
    return headline_metrics(rep, [dataset])
