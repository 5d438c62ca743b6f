"""``vaebench report``: tables, figures and report.md from stored results.

The report is a pure function of the cell files (and the run manifests, for the order models and
datasets were asked for): nothing is retrained and no model is imported, and regenerating it from
the same files gives the same bytes. Layout of what it writes (``OUT`` defaults to the first run
folder)::

    OUT/report.md                      the page to open first: setup, tables, figures, sweeps,
                                       skipped cells, failures, NaN values, warnings, glossary
    OUT/tables/DATASET-METRIC.{md,tex,html}   one table per dataset and metric plugin (the
                                       likelihood, representation and samples groups: one
                                       table per group, DATASET-GROUP)
    OUT/tables/DATASET-ablation-PARAM-METRIC.{md,tex,html}   swept PARAM in columns, one table
                                       per headline METRIC (runs with a sweep)
    OUT/tables/summary.{md,tex,html}   headline metrics across datasets (several datasets only)
    OUT/tables/tables.{tex,html}       every table in one document (compiles with pdflatex)
    OUT/tables/aggregate.csv           mean, std, CI, tests per (dataset, model, metric)
    OUT/tables/tidy.csv                every stored value, one row per (cell, metric)
    OUT/figures/DATASET-*.{png,pdf}    bars, Pareto scatter, images, samples, latent codes,
                                       training curves, sweep lines
    OUT/tables/ranks.*, OUT/figures/ranks-cd-METRIC.{png,pdf}   ranks across datasets
                                       (vaebench.report.ranks)
    OUT/report.html                    report.md as one self-contained page (report.html)
    OUT/report-index.json              what this report wrote (see below)

Every file is written atomically (temp file in the same folder, then rename), so a kill or a full
disk never leaves a truncated table or figure, and a symbolic link at an output path is replaced,
never written through. ``report-index.json`` lists the files of the last report: the next report
removes those it does not rewrite (so a ``.tex`` table never keeps the numbers of an earlier set
of cells) and, unless told the formats, rewrites every format the last report wrote. Every name
and string read from the results is escaped for the format it goes into
(:mod:`vaebench.report.escape`). File names use :func:`vaebench.report.content.file_stems` of dataset and metric names.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaebench.report.content import (
    Report,
    collect,
    declaration,
    default_summary_metrics,
    file_stems,
    group_of,
    pareto_metrics,
    plugins_of,
    sweep_metrics,
    table_sources,
)
from vaebench.report.files import ReportIndex, write_report_file

if TYPE_CHECKING:
    from vaebench.report.drawing import FigurePool

log = logging.getLogger("vaebench.report")

__all__ = [
    "DEFAULT_FORMATS",
    "FORMATS",
    "build_ablations",
    "build_figures",
    "build_report",
    "build_tables",
]

FORMATS = ("md", "csv", "tex", "html")
#: Formats written when none are given (plus those the previous report in the folder wrote).
DEFAULT_FORMATS = ("md", "csv")

#: Figure file formats (``figures=`` of :func:`build_report`, ``--figures``); PNG is always
#: among them (report.md shows the PNGs). ``vaebench report`` writes both (PDF for papers),
#: ``vaebench run``'s automatic report PNG only (:data:`RUN_FIGURE_FORMATS`).
FIGURE_FORMATS = ("png", "pdf")
RUN_FIGURE_FORMATS = ("png",)


def figure_suffixes(figures: bool | Sequence[str]) -> tuple[str, ...]:
    """``figures`` of :func:`build_report` as file suffixes: ``True`` both formats, ``False``
    none, else the named formats (PNG added). Raises :class:`ValueError` for an unknown one."""
    if figures is True:
        return tuple(f".{f}" for f in FIGURE_FORMATS)
    if figures is False:
        return ()
    names = [str(f).strip().lower().lstrip(".") for f in figures]
    bad = [f for f in names if f not in FIGURE_FORMATS]
    if bad:
        raise ValueError(
            f"unknown figure format {', '.join(bad)}; valid: {', '.join(FIGURE_FORMATS)}"
        )
    return tuple(f".{f}" for f in FIGURE_FORMATS if f in names or f == "png")


def _write(path: Path, text: str) -> Path:
    return write_report_file(path, text)  # atomic, inside OUT, recorded with its hash


def build_tables(rep: Report, summary_metrics: Sequence[str] | None = None) -> dict[str, list]:
    """``{dataset or "summary": [Table, ...]}`` in display order."""
    from vaebench.report.notes import nonfinite_text as notes_nonfinite_text
    from vaebench.report.notes import table_notes
    from vaebench.report.tables import build_table

    common: dict[str, Any] = dict(interval=rep.interval, confidence=rep.confidence, alpha=rep.alpha,
                  baseline=rep.baseline, flags=rep.flags,
                  nonfinite=notes_nonfinite_text(rep.nan),
                  correction=rep.correction)  # fmt: skip
    if summary_metrics:  # checked whatever the number of datasets: a typo is never silent
        valid = set(rep.agg["metric"])
        unknown = [m for m in summary_metrics if m not in valid]
        if unknown:
            raise ValueError(
                f"unknown metric(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
            )
    out: dict[str, list] = {}
    for ds in rep.datasets:
        tables = []
        for key, metrics in table_sources(rep, ds):
            rows = list(rep.agg[(rep.agg["dataset"] == ds) & rep.agg["metric"].isin(metrics)]
                        ["model"].unique())  # fmt: skip
            extra = table_notes(rep.cells, ds, plugins_of(rep, ds, metrics),
                                group_of(rep, ds, metrics), rows, rep.samples)  # fmt: skip
            tables.append(
                build_table(
                    rep.agg,
                    [ds],
                    rep.models,
                    metrics,
                    name=f"{rep.stems[ds]}-{rep.source_stems[key]}",
                    title=f"{ds}: {key}",
                    notes=extra,
                    **common,
                )  # fmt: skip
            )
        out[ds] = tables
    metrics = list(summary_metrics) if summary_metrics else default_summary_metrics(rep)
    if len(rep.datasets) > 1 and metrics:
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


def build_ablations(rep: Report) -> dict[str, list]:
    """``{dataset: [Table, ...]}``: for every parameter swept on the dataset and every
    headline metric, the ablation table of :func:`vaebench.report.sweeps.ablation_table`."""
    from vaebench.report.sweeps import ablation_table, sweep_points, swept_parameters

    out: dict[str, list] = {}
    for ds in rep.datasets:
        tables = []
        params = swept_parameters(rep.cells, ds)
        stems = file_stems(params)
        metric_stems = file_stems(sweep_metrics(rep, ds))
        for key in params:
            for metric in sweep_metrics(rep, ds):
                pts = sweep_points(rep.cells, rep.frame, ds, key, metric, rep.base_models)
                decl = declaration(rep, ds, metric)
                t = ablation_table(pts, dataset=ds, key=key, metric=metric, alpha=rep.alpha,
                                   correction=rep.correction,
                                   unit=decl.get("unit", ""), decimals=decl.get("decimals", 3),
                                   higher_is_better=decl.get("higher_is_better"),
                                   name=f"{rep.stems[ds]}-ablation-{stems[key]}-"
                                        f"{metric_stems[metric]}")  # fmt: skip
                if t is not None:
                    tables.append(t)
        if tables:
            out[ds] = tables
    return out


def build_figures(
    rep: Report,
    fig_dir: Path,
    pareto: tuple[str, str] | None = None,
    suffixes: Sequence[str] = (".png", ".pdf"),
    pool: FigurePool | None = None,
) -> dict[str, list[Path]]:
    """Draw every figure the stored results allow and save it (as each of ``suffixes``);
    ``{dataset: [paths]}``. A dataset whose figures' inputs did not change since the last
    report into ``fig_dir`` keeps its files (:mod:`vaebench.report.cache`). ``pool``: worker
    processes that share the drawing (:func:`vaebench.report.drawing.figure_pool`)."""
    from vaebench.report.cache import FigureCache, dataset_key

    out: dict[str, list[Path]] = {}
    cells = rep.cells
    cache = FigureCache(fig_dir)
    options = {
        "models": rep.models,
        "base_models": rep.base_models,
        "interval": rep.interval,
        "alpha": rep.alpha,
        "confidence": rep.confidence,
        "baseline": rep.baseline,
        "pareto": pareto,
        "stems": rep.stems,
        "source_stems": rep.source_stems,
        "colors": list({c["model"]: c["variant"] for c in reversed(cells)}.items()),
    }
    for ds in rep.datasets:
        inputs_key = dataset_key([c for c in cells if c["dataset"] == ds], options, suffixes)
        kept = cache.reuse(ds, inputs_key)
        if kept is not None:
            out[ds] = kept
            continue
        out[ds] = _draw_dataset(rep, ds, fig_dir, pareto, suffixes, pool)
        cache.record(ds, inputs_key, out[ds])
    cache.save()
    return out


def _draw_dataset(
    rep: Report,
    ds: str,
    fig_dir: Path,
    pareto: tuple[str, str] | None,
    suffixes: Sequence[str],
    pool: FigurePool | None = None,
) -> list[Path]:
    """Draw and save the figures of dataset ``ds`` (matplotlib is loaded here, on the first
    dataset whose figures are not kept); the paths written."""
    from vaebench.report import figures as F
    from vaebench.report import interpolation_figures
    from vaebench.report.drawing import FigureJob, draw_all
    from vaebench.report.sweeps import sweep_points, swept_parameters

    colors = F.model_colors(rep.models)
    for cell in rep.cells:  # other drawers key colours by model name: its first variant's
        colors.setdefault(cell["model"], colors[cell["variant"]])
    cells = rep.cells
    s = rep.stems[ds]
    jobs: list[FigureJob] = []

    def draw(name: str, drawer: Any, *args: Any, **kwargs: Any) -> None:
        jobs.append(FigureJob(fig_dir / f"{s}-{name}", drawer, args, kwargs))

    for key, metrics in table_sources(rep, ds):
        sub = rep.agg[(rep.agg["dataset"] == ds) & rep.agg["metric"].isin(metrics)]
        scored = [m for m in metrics
                  if sub[sub["metric"] == m]["higher_is_better"].map(
                      lambda v: v is not None and v == v).any()
                  and sub[sub["metric"] == m]["group"].iloc[0] != "cost"]  # fmt: skip
        draw(f"bars-{rep.source_stems[key]}", F.metric_bars, rep.agg, rep.frame, ds, scored,
             rep.models, colors, rep.interval, title=f"{ds}: {key}")  # fmt: skip
    q, t = pareto or pareto_metrics(rep, ds)
    if q and t:
        draw("pareto", F.pareto_scatter, rep.agg, ds, q, t, rep.models, colors, rep.interval)
    for name, drawer in (("reconstructions", F.reconstruction_grid), ("samples", F.sample_grid),
                         ("interpolation", F.interpolation_strips), ("latent", F.latent_scatter),
                         ("training", F.training_curves)):  # fmt: skip
        draw(name, drawer, cells, ds, rep.models, colors)
    params = swept_parameters(cells, ds)
    for key, stem in file_stems(params).items():
        points = {m: sweep_points(cells, rep.frame, ds, key, m, rep.base_models)
                  for m in sweep_metrics(rep, ds)}  # fmt: skip
        decls = {m: declaration(rep, ds, m) for m in points}
        draw(f"sweep-{stem}", F.sweep_lines, points, key, decls, title=f"{ds}: {key} sweep")
    made = draw_all(jobs, suffixes, pool)
    try:
        made += list(interpolation_figures.draw(cells, ds, list(rep.base_models), colors,
                                                fig_dir, stem=s, suffixes=suffixes))  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - one broken drawer must not lose the report
        log.warning("interpolation figures for %s not drawn: %s: %s", ds,
                    type(exc).__name__, exc)  # fmt: skip
    return made


def _write_tables(
    rep: Report, every: Sequence[Any], tdir: Path, formats: Sequence[str]
) -> list[Path]:
    """Write each table of ``every`` in each of ``formats`` into ``tdir`` (with the documents
    ``tables.tex``/``tables.html`` and, for ``csv``, the aggregate and tidy frames of ``rep``);
    the written paths."""
    from vaebench.report import tables as T

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
    return written


def build_report(
    run_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    formats: Sequence[str] | None = None,
    baseline: str | None = None,
    figures: bool | Sequence[str] = True,
    *,
    ci: bool = False,
    alpha: float = 0.05,
    confidence: float = 0.95,
    summary_metrics: Sequence[str] | None = None,
    pareto: tuple[str, str] | None = None,
    ablation: bool | None = None,
    correction: str = "holm",
    cd_test: str = "nemenyi",
    seeds_needed: bool = False,
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
    the scatter (default: see :func:`pareto_metrics`). ``ablation``: write the ablation tables
    of swept parameters (:func:`build_ablations`; ``None``, the default: when the cells hold a
    sweep). ``correction``: multiple-comparison correction of the bold sets and † marks
    (``holm``, ``bh``, ``none``; :data:`vaebench.report.stats.CORRECTIONS`). ``cd_test``: the
    post-hoc test of the critical-difference diagrams (``nemenyi`` or ``wilcoxon``; see
    :mod:`vaebench.report.ranks`). ``seeds_needed``: also write the seeds-needed summary
    (:func:`vaebench.report.ranks.seeds_needed_rows`). Besides the tables, every report
    writes ``tables/ranks.*`` and ``figures/ranks-cd-METRIC.*`` when there are at least two
    datasets and models, and ``report.html`` (:mod:`vaebench.report.html`). ``figures``: ``True``
    draws PNG and PDF, ``False`` none, or the formats among :data:`FIGURE_FORMATS` (PNG always: report.md
    shows it); figures whose inputs did not change since the last report into ``out_dir`` are
    kept, not drawn again. Returns the written paths.

    Raises :class:`ValueError` for an unknown format, baseline or metric, or when the folders
    hold no cells; :class:`vaebench.results.ResultsError` for a corrupt cell file;
    :class:`OSError` when a file cannot be written.
    """
    from vaebench.report import page

    if formats is not None:
        bad = [f for f in formats if f not in FORMATS]
        if bad:
            raise ValueError(f"unknown format {', '.join(bad)}; valid: {', '.join(FORMATS)}")
    from vaebench.report import html, ranks

    ranks.check_cd_test(cd_test)
    suffixes = figure_suffixes(figures)
    figures = bool(suffixes)
    from vaebench.report.cache import CACHE_NAME
    from vaebench.report.drawing import figure_pool, worth_sharing

    # a folder without figures yet (e.g. `run`'s own report) will draw: workers start at once
    target = out_dir if out_dir is not None else (run_dirs[0] if run_dirs else None)
    fresh = target is not None and not (Path(target) / "figures" / CACHE_NAME).exists()
    with figure_pool(figures and worth_sharing(run_dirs), start_now=fresh) as pool:
        rep = collect(run_dirs, baseline=baseline, alpha=alpha, confidence=confidence, ci=ci,
                      correction=correction, light=not figures)  # fmt: skip
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
        ablations = build_ablations(rep) if ablation is not False else {}
        every = [t for ts in tables.values() for t in ts] + [
            t for ts in ablations.values() for t in ts
        ]
        index.begin(formats, figures)
        written = _write_tables(rep, every, out / "tables", formats)
        figs: dict[str, list[Path]] = {}
        if figures:
            figs = build_figures(rep, out / "figures", pareto, suffixes, pool)
            written += [p for ps in figs.values() for p in ps]
    across = ranks.write(rep, out, formats, suffixes, cd_test, seeds_needed, written)
    text = page.render(rep, tables, figs, out, formats, ablations, across)
    written.append(_write(out / "report.md", text))
    written.append(_write(out / "report.html", html.render(text, out)))
    index.finish(formats, figures, written)
    return written
