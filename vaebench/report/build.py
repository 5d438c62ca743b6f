"""``vaebench report``: tables, figures and report.md from stored results.

The report is a pure function of the cell files (and the run manifests, for the order models and
datasets were asked for): nothing is retrained and no model is imported, and regenerating it from
the same files gives the same bytes. Layout of what it writes (``OUT`` defaults to the first run
folder)::

    OUT/report.md                      the page to open first: setup, tables, figures, failures
    OUT/tables/DATASET-METRIC.{md,tex,html}   one table per dataset and metric plugin
    OUT/tables/summary.{md,tex,html}   headline metrics across datasets (several datasets only)
    OUT/tables/tables.{tex,html}       every table in one document (compiles with pdflatex)
    OUT/tables/aggregate.csv           mean, std, CI, tests per (dataset, model, metric)
    OUT/tables/tidy.csv                every stored value, one row per (cell, metric)
    OUT/figures/DATASET-*.{png,pdf}    bars, Pareto scatter, images, latent codes, curves
    OUT/report-index.json              what this report wrote (see below)

Every file is written atomically (temp file in the same folder, then rename), so a kill or a full
disk never leaves a truncated table or figure, and a symbolic link at an output path is replaced,
never written through. ``report-index.json`` lists the files of the last report: the next report
removes those it does not rewrite (so a ``.tex`` table never keeps the numbers of an earlier set
of cells) and, unless told the formats, rewrites every format the last report wrote. Every name
and string read from the results is escaped for the format it goes into
(:mod:`vaebench.report.escape`). File names use :func:`file_stems` of dataset and metric names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from vaebench.report.files import ReportIndex
from vaebench.results import atomic_write_text
from vaebench.tidy import load_records, tidy_frame, variant_labels

log = logging.getLogger("vaebench.report")

__all__ = ["DEFAULT_FORMATS", "FORMATS", "Report", "build_report", "collect", "file_stems"]

FORMATS = ("md", "csv", "tex", "html")
#: Formats written when none are given (plus those the previous report in the folder wrote).
DEFAULT_FORMATS = ("md", "csv")


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
    source_stems: dict[str, str] = dataclasses.field(default_factory=dict)  # metric plugin

    def ok(self) -> list[dict[str, Any]]:
        return [c for c in self.cells if c["status"] == "ok"]

    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.cells if c["status"] != "ok"]


def collect(
    run_dirs: Sequence[str | os.PathLike],
    baseline: str | None = None,
    alpha: float = 0.05,
    confidence: float = 0.95,
    ci: bool = False,
) -> Report:
    """Load, deduplicate, label and aggregate the cells of ``run_dirs``."""
    from vaebench.report.layout import ordered, requested_order, variant_order
    from vaebench.report.stats import aggregate, conflicting_declarations

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    dirs = [str(d) for d in run_dirs]
    cells: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    seen: set[str] = set()
    for cell in load_records(dirs):
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
    frame = tidy_frame(cells, include_failed=True)
    base_models = ordered({c["model"] for c in cells}, requested_order(dirs, "models"))
    variants = {c["variant"]: c["model"] for c in cells}
    models = variant_order(variants, base_models)
    datasets = ordered({c["dataset"] for c in cells}, requested_order(dirs, "datasets"))
    if baseline is not None and baseline not in models and baseline not in base_models:
        raise ValueError(f"unknown baseline model {baseline!r}; valid: {', '.join(models)}")
    agg = aggregate(frame, baseline=baseline, alpha=alpha, confidence=confidence,
                    model_order=base_models)  # fmt: skip
    sources = sorted({str(s or "other") for s in agg["source"]}) if not agg.empty else []
    return Report(dirs, cells, duplicates, frame, agg, models, base_models, datasets, baseline,
                  alpha, confidence, "ci" if ci else "std", conflicting_declarations(frame),
                  file_stems(datasets), file_stems(sources))  # fmt: skip


def safe_name(name: str) -> str:
    """A file-name-safe version of a dataset or metric name: letters, digits, ``-_.`` kept,
    everything else (``/``, spaces, control characters) replaced by ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


#: Longest file-name stem taken from a name as it is; longer ones are cut and get a hash.
MAX_STEM = 60


def file_stems(names: Sequence[str]) -> dict[str, str]:
    """``{name: stem}`` for file names: :func:`safe_name` of each name; a name whose safe form
    is empty, starts with ``.``, is longer than :data:`MAX_STEM`, or equals that of another
    name gets ``-`` and 8 hex digits of its SHA-1 appended (cut to length), so that two
    datasets never share a file."""
    out: dict[str, str] = {}
    plain = [safe_name(n) for n in names]
    for name, stem in zip(names, plain, strict=True):
        clash = plain.count(stem) > 1
        if clash or not stem or stem.startswith(".") or len(stem) > MAX_STEM:
            digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
            stem = f"{stem.lstrip('.')[: MAX_STEM - 9]}-{digest}".lstrip("-") or digest
        out[name] = stem
    return out


def _directional(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of an aggregate whose metric has a direction (an empty frame stays as it is)."""
    if frame.empty:
        return frame
    mask = frame["higher_is_better"].map(lambda v: v is not None and v == v).astype(bool)
    return frame[mask]


def _write(path: Path, text: str) -> Path:
    atomic_write_text(path, text)
    return path


def table_sources(rep: Report, dataset: str) -> list[tuple[str, list[str]]]:
    """``[(metric plugin, [metric columns])]`` of one dataset in table order; within-cell
    standard errors (``X_se``) are left to the CSV."""
    from vaebench.report.layout import is_companion

    sub = rep.agg[rep.agg["dataset"] == dataset]
    present = set(sub["metric"])
    out: dict[str, list[str]] = {}
    for metric, source in zip(sub["metric"], sub["source"], strict=True):
        if is_companion(metric, present):
            continue
        names = out.setdefault(source or "other", [])
        if metric not in names:
            names.append(metric)
    return list(out.items())


def default_summary_metrics(rep: Report) -> list[str]:
    """Headline metrics for the cross-dataset table: per group (quality, interpolation) the
    first scored metric that every dataset has (see
    :data:`vaebench.report.layout.HEADLINE_METRICS`, then column order)."""
    from vaebench.report.layout import headline_first

    agg = rep.agg
    if agg.empty:
        return []
    per_ds = [set(agg[agg["dataset"] == d]["metric"]) for d in rep.datasets]
    common = set.intersection(*per_ds) if per_ds else set()
    out = []
    for group in ("quality", "interpolation"):
        rows = _directional(agg[(agg["group"] == group) & agg["metric"].isin(common)])
        if not rows.empty:
            out.append(headline_first(list(dict.fromkeys(rows["metric"])))[0])
    return out


def pareto_metrics(rep: Report, dataset: str) -> tuple[str | None, str | None]:
    """Default axes of the quality-vs-throughput scatter: the headline quality metric (see
    :data:`vaebench.report.layout.HEADLINE_METRICS`) and ``encode_samples_per_s`` (else the
    first higher-is-better cost metric)."""
    from vaebench.report.layout import headline_first

    scored = _directional(rep.agg[rep.agg["dataset"] == dataset])
    if scored.empty:
        return None, None
    quality = scored[scored["group"] == "quality"]["metric"]
    cost = scored[(scored["group"] == "cost") & scored["higher_is_better"].map(bool)]["metric"]
    q = headline_first(list(dict.fromkeys(quality)))[0] if len(quality) else None
    if "encode_samples_per_s" in set(cost):
        return q, "encode_samples_per_s"
    return q, (str(cost.iloc[0]) if len(cost) else None)


def build_tables(rep: Report, summary_metrics: Sequence[str] | None = None) -> dict[str, list]:
    """``{dataset or "summary": [Table, ...]}`` in display order."""
    from vaebench.report.tables import build_table

    common = dict(interval=rep.interval, confidence=rep.confidence, alpha=rep.alpha,
                  baseline=rep.baseline)  # fmt: skip
    out: dict[str, list] = {}
    for ds in rep.datasets:
        out[ds] = [
            build_table(
                rep.agg,
                [ds],
                rep.models,
                metrics,
                name=f"{rep.stems[ds]}-{rep.source_stems[src]}",
                title=f"{ds}: {src}",
                **common,
            )  # fmt: skip
            for src, metrics in table_sources(rep, ds)
        ]
    metrics = list(summary_metrics) if summary_metrics else default_summary_metrics(rep)
    if len(rep.datasets) > 1 and metrics:
        unknown = [m for m in metrics if m not in set(rep.agg["metric"])]
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(unknown)}; valid: "
                             f"{', '.join(sorted(set(rep.agg['metric'])))}")  # fmt: skip
        out["summary"] = [
            build_table(
                rep.agg,
                rep.datasets,
                rep.models,
                metrics,
                name="summary",
                title="All datasets",
                group_by="dataset",
                **common,
            )  # fmt: skip
        ]
    return out


def build_figures(
    rep: Report, fig_dir: Path, pareto: tuple[str, str] | None = None
) -> dict[str, list[Path]]:
    """Draw every figure the stored results allow; ``{dataset: [paths]}``."""
    from vaebench.report import figures as F
    from vaebench.report import interpolation_figures

    colors = F.model_colors(rep.models)
    for cell in rep.cells:  # other drawers key colours by model name: its first variant's
        colors.setdefault(cell["model"], colors[cell["variant"]])
    out: dict[str, list[Path]] = {}
    cells = rep.cells
    for ds in rep.datasets:
        s = rep.stems[ds]
        made: list[Path] = []
        for src, metrics in table_sources(rep, ds):
            sub = rep.agg[(rep.agg["dataset"] == ds) & rep.agg["metric"].isin(metrics)]
            scored = [m for m in metrics
                      if sub[sub["metric"] == m]["higher_is_better"].map(
                          lambda v: v is not None and v == v).any()
                      and sub[sub["metric"] == m]["group"].iloc[0] != "cost"]  # fmt: skip
            made += F.metric_bars(rep.agg, rep.frame, ds, scored, rep.models, colors,
                                  fig_dir / f"{s}-bars-{rep.source_stems[src]}", rep.interval,
                                  title=f"{ds}: {src}")  # fmt: skip
        q, t = pareto or pareto_metrics(rep, ds)
        if q and t:
            made += F.pareto_scatter(rep.agg, ds, q, t, rep.models, colors,
                                     fig_dir / f"{s}-pareto", rep.interval)  # fmt: skip
        made += F.reconstruction_grid(cells, ds, rep.models, fig_dir / f"{s}-reconstructions",
                                      colors)  # fmt: skip
        made += F.interpolation_strips(cells, ds, rep.models, fig_dir / f"{s}-interpolation",
                                       colors)  # fmt: skip
        made += F.latent_scatter(cells, ds, rep.models, fig_dir / f"{s}-latent", colors)
        made += F.training_curves(cells, ds, rep.models, colors, fig_dir / f"{s}-training")
        try:
            made += list(interpolation_figures.draw(cells, ds, list(rep.base_models), colors,
                                                    fig_dir, stem=s))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - one broken drawer must not lose the report
            log.warning("interpolation figures for %s not drawn: %s: %s", ds,
                        type(exc).__name__, exc)  # fmt: skip
        out[ds] = made
    return out


def build_report(
    run_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    formats: Sequence[str] | None = None,
    baseline: str | None = None,
    figures: bool = True,
    *,
    ci: bool = False,
    alpha: float = 0.05,
    confidence: float = 0.95,
    summary_metrics: Sequence[str] | None = None,
    pareto: tuple[str, str] | None = None,
) -> list[Path]:
    """Write tables, figures and ``report.md`` for the results in ``run_dirs``.

    ``formats``: table formats among :data:`FORMATS` (``md`` tables also go into report.md,
    which is always written); ``None`` (the default) writes :data:`DEFAULT_FORMATS` plus every
    format the previous report in ``out_dir`` wrote (see ``report-index.json``), so that a
    ``.tex`` table once asked for stays up to date. Files of the previous report that this one
    does not rewrite (another format, ``figures=False``, a dataset no longer present) are
    removed, and the log says which. ``baseline``: a model (or variant label) to mark
    significant differences against. ``ci``: show ``mean ± half-width of the t-based
    confidence interval`` (``confidence``) instead of ``mean ± std``. ``alpha``: level of every
    test. ``summary_metrics``: columns of the cross-dataset summary table (default: see
    :func:`default_summary_metrics`). ``pareto``: ``(quality metric, throughput metric)`` of
    the scatter (default: see :func:`pareto_metrics`). Returns the written paths.

    Raises :class:`ValueError` for an unknown format, baseline or metric, or when the folders
    hold no cells; :class:`vaebench.results.ResultsError` for a corrupt cell file;
    :class:`OSError` when a file cannot be written.
    """
    from vaebench.report import page
    from vaebench.report import tables as T

    if formats is not None:
        bad = [f for f in formats if f not in FORMATS]
        if bad:
            raise ValueError(f"unknown format {', '.join(bad)}; valid: {', '.join(FORMATS)}")
    rep = collect(run_dirs, baseline=baseline, alpha=alpha, confidence=confidence, ci=ci)
    out = Path(out_dir if out_dir is not None else rep.run_dirs[0])
    index = ReportIndex(out)
    if formats is None:
        kept = [f for f in index.previous_formats if f in FORMATS and f not in DEFAULT_FORMATS]
        formats = [f for f in FORMATS if f in DEFAULT_FORMATS or f in kept]
        if kept:
            log.info("also writing %s tables: the previous report in %s wrote them (give the "
                     "formats to drop them)", ", ".join(kept), out)  # fmt: skip
    formats = [f for f in FORMATS if f in formats]
    tables = build_tables(rep, summary_metrics)
    every = [t for ts in tables.values() for t in ts]
    tdir = out / "tables"
    index.begin(formats, figures)
    written: list[Path] = []
    for t in every:
        if "md" in formats:
            written.append(_write(tdir / f"{t.name}.md", T.to_markdown(t)))
        if "tex" in formats:
            written.append(_write(tdir / f"{t.name}.tex", T.to_latex(t)))
        if "html" in formats:
            written.append(_write(tdir / f"{t.name}.html", T.to_html(t)))
    if "tex" in formats:
        written.append(_write(tdir / "tables.tex", T.latex_document(every)))
    if "html" in formats:
        written.append(_write(tdir / "tables.html", T.html_document(every)))
    if "csv" in formats:
        written.append(_write(tdir / "aggregate.csv", T.aggregate_csv(rep.agg)))
        written.append(_write(tdir / "tidy.csv", T.tidy_csv(rep.frame)))
    figs: dict[str, list[Path]] = {}
    if figures:
        figs = build_figures(rep, out / "figures", pareto)
        written += [p for ps in figs.values() for p in ps]
    text = page.render(rep, tables, figs, out, formats)
    written.append(_write(out / "report.md", text))
    index.finish(formats, figures, written)
    return written
