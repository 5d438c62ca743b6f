"""Comparisons across datasets: mean ranks, the Friedman test and critical-difference diagrams.

For one metric with a direction, each dataset is a block and each model's seed mean its value
there (Demšar 2006, "Statistical comparisons of classifiers over multiple data sets", JMLR 7):

- models are ranked within every dataset (1 = best; ties share the average rank,
  :func:`scipy.stats.rankdata`) and the ranks averaged over datasets;
- the **Friedman test** (:func:`scipy.stats.friedmanchisquare`, at least 3 models) asks whether
  all models have the same mean rank;
- a **post-hoc** test decides which pairs differ: the **Nemenyi** test on the ranks
  (:func:`nemenyi_friedman`: :func:`scikit_posthocs.posthoc_nemenyi_friedman`'s computation,
  without loading scikit-posthocs and its plotting stack; Demšar's critical difference
  ``CD = q_α sqrt(k (k + 1) / (6 N))``), or pairwise **Wilcoxon signed-rank** tests over datasets
  with **Holm's** correction (:func:`scikit_posthocs.posthoc_wilcoxon`, Benavoli, Corani &
  Mangili 2016, "Should we really use post-hoc tests based on mean-ranks?", JMLR 17);
- the **critical-difference diagram** (:func:`scikit_posthocs.critical_difference_diagram`) puts
  the models on the mean-rank axis and joins those the post-hoc test does not separate.

Only models with a value on every dataset take part (complete blocks); the others are named in
the caption. Fewer than two datasets or models: no ranks (:class:`ValueError`, one line).
scikit-posthocs was chosen over autorank because it exposes each step (ranks, p-value matrix,
diagram) to be checked against SciPy, and draws on a given matplotlib axis, so the figure goes
through the report's deterministic writer; autorank picks its tests itself from normality
checks, which a benchmark should state, not hide.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CD_TESTS", "RankResult", "check_cd_test", "rank_metric", "rank_table", "write"]

#: ``--cd-test`` choices -> how captions name them.
CD_TESTS = {
    "nemenyi": "Nemenyi test on the mean ranks",
    "wilcoxon": "Wilcoxon signed-rank tests over datasets, Holm-corrected",
}


def check_cd_test(name: str) -> None:
    """Raise :class:`ValueError` unless ``name`` is a key of :data:`CD_TESTS`."""
    if name not in CD_TESTS:
        raise ValueError(f"unknown cd test {name!r}; valid: {', '.join(CD_TESTS)}")


@dataclasses.dataclass
class RankResult:
    """Ranks of the models on one metric across datasets; see :func:`rank_metric`."""

    metric: str
    higher_is_better: bool
    blocks: pd.DataFrame  # datasets x models: seed means
    ranks: pd.DataFrame  # datasets x models: within-dataset ranks (1 = best)
    mean_ranks: pd.Series  # model -> mean rank, in the report's model order
    left_out: list[str]  # models without a value on every dataset
    friedman_stat: float  # NaN with fewer than 3 models
    friedman_p: float
    cd_test: str
    posthoc: pd.DataFrame  # models x models p-values of the post-hoc test
    cd: float  # Nemenyi critical difference (NaN for the Wilcoxon test)
    alpha: float

    @property
    def top(self) -> str:
        return str(self.mean_ranks.idxmin())

    def with_top(self) -> list[str]:
        """The best-ranked model and those the post-hoc test does not separate from it."""
        top = self.top
        return [m for m in self.mean_ranks.index
                if m == top or not float(self.posthoc.loc[m, top]) < self.alpha]  # fmt: skip


def nemenyi_friedman(blocks: pd.DataFrame) -> pd.DataFrame:
    """Nemenyi post-hoc p-values of a complete block design (rows: datasets, columns: models;
    no NaN): the models x models matrix, 1 on the diagonal. The computation of
    :func:`scikit_posthocs.posthoc_nemenyi_friedman` for a complete block matrix, step for step
    (same values to the bit; tested), without importing scikit-posthocs, whose package import
    loads matplotlib's pyplot and seaborn (about 0.5 s of every report)."""
    from scipy import stats

    values, groups = blocks.to_numpy(), blocks.columns.to_numpy(copy=True)
    n, k = values.shape
    mean_ranks = stats.rankdata(values, axis=1, method="average").mean(axis=0)
    vs = np.zeros((k, k))
    upper, lower = np.triu_indices(k, 1), np.tril_indices(k, -1)
    q_values = np.abs(mean_ranks[upper[0]] - mean_ranks[upper[1]]) / np.sqrt(
        k * (k + 1.0) / (6.0 * n)
    )
    vs[upper] = stats.studentized_range.sf(q_values * np.sqrt(2.0), k, np.inf)
    vs[lower] = vs.T[lower]
    np.fill_diagonal(vs, 1)
    return pd.DataFrame(vs, index=groups, columns=groups)


def rank_metric(
    agg: pd.DataFrame,
    metric: str,
    datasets: Sequence[str],
    models: Sequence[str],
    cd_test: str = "nemenyi",
    alpha: float = 0.05,
) -> RankResult:
    """Ranks, Friedman test and post-hoc p-values of ``metric`` across ``datasets``.

    ``agg``: :func:`vaebench.report.stats.aggregate` output (the seed means of ranked entries
    are used; entries left unranked there are left out here too). Raises :class:`ValueError`
    (one line) for an unknown ``cd_test``, a metric without a direction, or fewer than 2
    datasets or 2 models with a value on every dataset."""
    check_cd_test(cd_test)
    rows = agg[(agg["metric"] == metric) & agg["dataset"].isin(list(datasets))
               & agg["rank"].notna()]  # fmt: skip
    if rows.empty or rows["higher_is_better"].iloc[0] is None:
        raise ValueError(f"metric {metric!r} has no ranked values (no direction or no entries)")
    higher = bool(rows["higher_is_better"].iloc[0])
    ds = [d for d in datasets if d in set(rows["dataset"])]
    table = rows.pivot_table(index="dataset", columns="model", values="mean", aggfunc="first")
    present = [m for m in models if m in table.columns]
    complete = [m for m in present if table.loc[ds, m].notna().all()] if ds else []
    left_out = [m for m in present if m not in complete]
    if len(ds) < 2 or len(complete) < 2:
        raise ValueError(f"cannot rank {metric} across datasets: {len(ds)} dataset(s) and "
                         f"{len(complete)} model(s) with a value on each (need at least 2 of "
                         "each)")  # fmt: skip
    from scipy import stats  # 1.4 s to import: not for a report with one dataset

    blocks = table.loc[ds, complete].astype(float)
    ranks = blocks.apply(lambda r: pd.Series(stats.rankdata(-r if higher else r), index=r.index),
                         axis=1)  # fmt: skip
    mean_ranks = ranks.mean(axis=0)
    fstat = fp = math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(complete) >= 3:
            res = stats.friedmanchisquare(*(blocks[m].to_numpy() for m in complete))
            fstat, fp = float(res.statistic), float(res.pvalue)
        if cd_test == "nemenyi":
            posthoc = nemenyi_friedman(blocks.reset_index(drop=True))
            k, n = len(complete), len(ds)
            q = float(stats.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
            cd = q * math.sqrt(k * (k + 1) / (6 * n))
        else:
            long = blocks.reset_index(drop=True).melt(var_name="model", value_name="value",
                                                      ignore_index=False)  # fmt: skip
            import scikit_posthocs as sp

            posthoc = sp.posthoc_wilcoxon(long, val_col="value", group_col="model",
                                          p_adjust="holm", zero_method="zsplit")  # fmt: skip
            cd = math.nan
    posthoc = posthoc.loc[complete, complete].astype(float).fillna(1.0)
    return RankResult(metric, higher, blocks, ranks, mean_ranks, left_out, fstat, fp, cd_test,
                      posthoc, cd, alpha)  # fmt: skip


def rank_table(results: Sequence[RankResult], models: Sequence[str]) -> Any:
    """A :class:`vaebench.report.tables.Table` of mean ranks (models x metrics): bold marks the
    best-ranked model of each column and every model the post-hoc test does not separate from
    it; the caption gives N, k, the Friedman test and the post-hoc test of each column."""
    from vaebench.report.tables import ARROWS, Column, Entry, Table

    columns = [Column("all datasets", r.metric, ARROWS[r.higher_is_better], "", "mean rank")
               for r in results]  # fmt: skip
    present = {m for r in results for m in r.mean_ranks.index}
    rows = [m for m in models if m in present] + sorted(present - set(models))
    entries = {}
    for j, r in enumerate(results):
        group = set(r.with_top())
        for m in rows:
            if m in r.mean_ranks.index:
                entries[(m, j)] = Entry(f"{float(r.mean_ranks[m]):.2f}", bold=m in group)
            else:
                entries[(m, j)] = Entry("–")
    parts = ["Mean rank across datasets (1 = best; within each dataset the models are ranked by "
             "their seed means, ties share the average rank)."]  # fmt: skip
    for r in results:
        fried = (f"Friedman χ² = {r.friedman_stat:.3g}, p = {r.friedman_p:.3g}"
                 if math.isfinite(r.friedman_p) else
                 "no Friedman test (it needs at least 3 models)")  # fmt: skip
        cd = f", CD = {r.cd:.3g}" if math.isfinite(r.cd) else ""
        left = f"; not ranked (no value on every dataset): {', '.join(r.left_out)}" if (
            r.left_out) else ""  # fmt: skip
        parts.append(f"{r.metric}: N = {len(r.blocks)} datasets, k = {len(r.mean_ranks)} "
                     f"models, {fried}; post-hoc {CD_TESTS[r.cd_test]}{cd}{left}.")  # fmt: skip
    alphas = sorted({r.alpha for r in results})
    parts.append(f"Bold: the best mean rank per column and every model the post-hoc test does "
                 f"not separate from it at α = {'/'.join(f'{a:g}' for a in alphas)}. "
                 "Datasets are the independent units: with few datasets these tests have "
                 "little power.")  # fmt: skip
    if any(e.text == "–" for e in entries.values()):
        parts.append("–: not ranked on that metric.")
    return Table("ranks", "Ranks across datasets", rows, columns, entries, " ".join(parts))


def _cd_figure(r: RankResult) -> Any:
    """The critical-difference diagram of ``r`` (scikit-posthocs' drawing). Models are passed
    to it as integer positions and named afterwards: it iterates over sets of its labels, and
    the order of a set of strings changes from one Python process to the next (hash
    randomisation), which would change the figure's bytes; integers hash the same in every
    process."""
    import scikit_posthocs as sp

    from vaebench.report.escape import plot_text
    from vaebench.report.figures import _style, model_colors

    names = [str(m) for m in r.mean_ranks.index]
    with _style() as Figure:
        k = len(names)
        fig = Figure(figsize=(7.0, 1.6 + 0.3 * k))
        ax = fig.subplots()
        fig.subplots_adjust(left=0.16, right=0.84, top=0.8, bottom=0.02)
        colors = model_colors(names)
        sig = r.posthoc.loc[names, names].copy()
        sig.index = sig.columns = range(k)
        sp.critical_difference_diagram(
            {i: float(r.mean_ranks.iloc[i]) for i in range(k)},
            sig,
            cd=r.cd if math.isfinite(r.cd) else None,
            alpha=r.alpha,
            ax=ax,
            label_fmt_left="\x00{label}\x00L",
            label_fmt_right="\x00{label}\x00R",
            color_palette={i: colors[n] for i, n in enumerate(names)},
        )
        for t in ax.texts:
            parts = t.get_text().split("\x00")
            if len(parts) == 3 and parts[1].isdigit():
                i = int(parts[1])
                rank = f"{float(r.mean_ranks.iloc[i]):.2f}"
                name = plot_text(names[i])
                t.set_text(f"{name} ({rank})" if parts[2] == "L" else f"({rank}) {name}")
        fig.suptitle(plot_text(f"{r.metric}: mean rank over {len(r.blocks)} datasets "
                               f"({r.cd_test}; a bar joins models not separated)"),
                     fontsize="medium")  # fmt: skip
    return fig


def _csv(results: Sequence[RankResult]) -> str:
    from vaebench.report.escape import csv_safe_frame

    rows = []
    for r in results:
        top = set(r.with_top())
        for m, v in r.mean_ranks.items():
            rows.append({"metric": r.metric, "model": m, "mean_rank": float(v),
                         "n_datasets": len(r.blocks), "k_models": len(r.mean_ranks),
                         "friedman_chi2": r.friedman_stat, "friedman_p": r.friedman_p,
                         "posthoc": r.cd_test, "cd": r.cd, "alpha": r.alpha,
                         "p_vs_top": float(r.posthoc.loc[m, r.top]) if m != r.top else math.nan,
                         "with_top": str(m in top).lower(),
                         "datasets": ";".join(map(str, r.blocks.index))})  # fmt: skip
    frame = pd.DataFrame(rows)
    return csv_safe_frame(frame).to_csv(index=False, float_format="%.10g", lineterminator="\n")


def seeds_needed_rows(rep: Any) -> pd.DataFrame:
    """Per (dataset, directional metric) column: the two best models, their observed paired
    difference and its spread, the seeds used and the seeds needed
    (:func:`vaebench.report.power.seeds_needed`)."""
    from vaebench.report.content import table_sources
    from vaebench.report.power import seeds_needed

    rows = []
    frame = rep.frame
    for ds in rep.datasets:
        for _key, metrics in table_sources(rep, ds):
            for metric in metrics:
                sub = rep.agg[(rep.agg["dataset"] == ds) & (rep.agg["metric"] == metric)
                              & rep.agg["rank"].notna()]  # fmt: skip
                if len(sub) < 2 or sub["higher_is_better"].iloc[0] is None:
                    continue
                top = sub.sort_values(["rank", "model"], kind="stable").head(2)
                a, b = (str(m) for m in top["model"])
                vals = {}
                for m in (a, b):
                    part = frame[(frame["dataset"] == ds) & (frame["metric"] == metric)
                                 & (frame["variant"] == m)]  # fmt: skip
                    vals[m] = dict(zip(part["seed"].astype(int), part["value"], strict=True))
                diff, sd, need = seeds_needed(vals[a], vals[b], rep.alpha)
                rows.append({"dataset": ds, "metric": metric, "best": a, "second": b,
                             "difference": diff, "std_of_differences": sd,
                             "seeds": int(min(top["n"])),
                             "seeds_needed": "" if need is None else need,
                             "decimals": int(sub["decimals"].iloc[0])})  # fmt: skip
    return pd.DataFrame(rows)


def _seeds_md(frame: pd.DataFrame, alpha: float) -> str:
    from vaebench.report.escape import escape_markdown as esc
    from vaebench.report.stats import format_number

    lines = ["| dataset | metric | best | second | difference | std of differences | seeds | "
             "seeds needed |", "|:--|:--|:--|:--|--:|--:|--:|--:|"]  # fmt: skip
    for r in frame.to_dict("records"):
        dec = int(r["decimals"]) + 1
        need = r["seeds_needed"] if r["seeds_needed"] != "" else "–"
        lines.append(f"| {esc(r['dataset'])} | {esc(r['metric'])} | {esc(r['best'])} | "
                     f"{esc(r['second'])} | {format_number(r['difference'], dec) or '–'} | "
                     f"{format_number(r['std_of_differences'], dec) or '–'} | {r['seeds']} | "
                     f"{need} |")  # fmt: skip
    lines.append("")
    lines.append(f"Seeds needed: the fewest paired seeds with which a two-sided paired t-test at "
                 f"α = {alpha:g} has 80 % power to detect the observed difference between the "
                 "two best models, taking the observed std of the paired differences as the "
                 "true one (statsmodels TTestPower); – where no difference was seen, fewer "
                 "than 2 seeds are shared, or more than 10000 would be needed. A post-hoc "
                 "estimate: with few seeds the spread itself is uncertain.")  # fmt: skip
    return "\n".join(lines) + "\n"


#: The figure cache of the critical-difference diagrams, inside ``OUT/figures`` (keyed by metric;
#: the datasets' figures have their own, :data:`vaebench.report.cache.CACHE_NAME`).
RANKS_CACHE_NAME = ".ranks-figure-keys.json"


def _figure_key(r: RankResult, suffixes: Sequence[str]) -> str:
    """SHA-256 of what a critical-difference diagram draws (ranks, post-hoc p-values, critical
    difference, alpha, test), its ``suffixes`` and the drawing code."""
    import hashlib
    import json

    from vaebench.report.cache import code_digest

    blob = json.dumps(
        {
            "metric": r.metric,
            "ranks": r.mean_ranks.to_json(double_precision=15),
            "posthoc": r.posthoc.to_json(double_precision=15),
            "cd": repr(r.cd),
            "alpha": repr(r.alpha),
            "test": r.cd_test,
            "suffixes": list(suffixes),
            "code": code_digest(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _cd_figures(
    results: Sequence[RankResult], fdir: Path, suffixes: Sequence[str], written: list[Path]
) -> str:
    """Save the critical-difference diagram of each of ``results`` into ``fdir`` (drawn again
    only when its values change); append the paths to ``written``; the Markdown that shows
    them."""
    from vaebench.report.cache import FigureCache
    from vaebench.report.content import file_stems
    from vaebench.report.escape import escape_markdown

    text = ""
    cache = FigureCache(fdir, RANKS_CACHE_NAME)
    stems = file_stems([r.metric for r in results])
    for r in results:
        key = _figure_key(r, suffixes)
        paths = cache.reuse(r.metric, key)
        if paths is None:  # matplotlib is loaded only here
            from vaebench.report import figures as F

            paths = F.save(_cd_figure(r), fdir / f"ranks-cd-{stems[r.metric]}", suffixes)
            cache.record(r.metric, key, paths)
        written.extend(paths)
        png = next((p for p in paths if p.suffix == ".png"), None)
        if png is not None:
            text += (f"\n![critical-difference diagram: {escape_markdown(r.metric)}]"
                     f"(figures/{png.name})\n")  # fmt: skip
    cache.save()
    return text + (
        "\nCritical-difference diagrams: models on the mean-rank axis (1 = best, "
        "left); a bar joins models the post-hoc test does not separate.\n"
    )


def write(
    rep: Any,
    out: Path,
    formats: Sequence[str],
    suffixes: Sequence[str],
    cd_test: str,
    seeds_needed: bool,
    written: list[Path],
) -> str:
    """Write ``tables/ranks.*`` (the formats asked for), ``figures/ranks-cd-METRIC`` as each of
    ``suffixes`` (``()``: no figures) and, with ``seeds_needed``, ``tables/seeds-needed.{md,csv}``; append the
    paths to ``written``. Returns the Markdown section(s) for report.md."""
    from vaebench.report import tables as T
    from vaebench.report.content import directional, headline_metrics
    from vaebench.report.escape import escape_markdown
    from vaebench.report.files import write_report_file

    text = "### Ranks across datasets\n\n"
    agg = directional(rep.agg)
    metrics = [m for m in headline_metrics(rep) if m in set(agg["metric"])]
    results: list[RankResult] = []
    refused: list[str] = []
    for m in metrics:
        try:
            results.append(rank_metric(rep.agg, m, rep.datasets, rep.models, cd_test, rep.alpha))
        except ValueError as exc:
            refused.append(str(exc))
    if len(rep.datasets) < 2:
        text += (f"Not computed: {len(rep.datasets)} dataset (ranks across datasets need at "
                 "least 2).\n")  # fmt: skip
    elif not metrics:
        text += "Not computed: no headline metric with a direction on every dataset.\n"
    for line in refused:
        text += f"{escape_markdown(line)}.\n\n"
    tdir, fdir = out / "tables", out / "figures"
    if results:
        table = rank_table(results, rep.models)
        text += T.to_markdown(table)
        if "md" in formats:
            written.append(write_report_file(tdir / "ranks.md", T.to_markdown(table)))
        if "tex" in formats:
            written.append(write_report_file(tdir / "ranks.tex", T.to_latex(table)))
        if "html" in formats:
            written.append(write_report_file(tdir / "ranks.html", T.to_html(table)))
        if "csv" in formats:
            written.append(write_report_file(tdir / "ranks.csv", _csv(results)))
        if suffixes:
            text += _cd_figures(results, fdir, suffixes, written)
    if seeds_needed:
        frame = seeds_needed_rows(rep)
        text += "\n### Seeds needed\n\n"
        if frame.empty:
            text += "No column has two ranked models.\n"
        else:
            md = _seeds_md(frame, rep.alpha)
            text += md
            written.append(write_report_file(tdir / "seeds-needed.md", md))
            from vaebench.report.escape import csv_safe_frame

            written.append(write_report_file(tdir / "seeds-needed.csv", csv_safe_frame(
                frame.drop(columns=["decimals"])).to_csv(index=False, float_format="%.10g",
                                                         lineterminator="\n")))  # fmt: skip
    return text
