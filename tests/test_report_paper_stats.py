"""Paper statistics (issue 24): corrected bold sets, effect sizes and power, ranks across
datasets with the Friedman test and critical-difference diagrams, report.html.

Every statistic is checked against SciPy / statsmodels / scikit-posthocs called directly."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from test_report_cells import write_cell

import vaebench
from vaebench.report import build_report
from vaebench.report.html import render
from vaebench.report.power import detectable_difference, difference, seeds_needed
from vaebench.report.ranks import rank_metric
from vaebench.report.stats import adjust, aggregate
from vaebench.report.tables import build_table, to_markdown

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference"


# ------------------------------------------------------------------ corrected bold sets


def _bold_marks(md: str) -> dict[tuple[str, str], bool]:
    """``{(model, column header): bold}`` of a committed Markdown table."""
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    heads = [h.strip() for h in lines[0].strip("|").split("|")]
    out = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        for h, c in zip(heads[1:], cells[1:], strict=True):
            out[(cells[0], h.split(" ")[0].replace("\\_", "_"))] = c.startswith("**")
    return out


@pytest.mark.parametrize(
    "table", ["digits-reconstruction", "fashion-mnist-interpolation", "lines-representation"]
)
def test_committed_bold_marks_agree_with_scipy_and_statsmodels_holm(table: str) -> None:
    """The committed reference tables' bold marks, recomputed by hand from tidy.csv with
    scipy.stats.ttest_rel and statsmodels' Holm correction (alpha = 0.05)."""
    tidy = pd.read_csv(REFERENCE / "tables" / "tidy.csv")
    marks = _bold_marks((REFERENCE / "tables" / f"{table}.md").read_text())
    dataset = table.rsplit("-", 1)[0]
    agg = pd.read_csv(REFERENCE / "tables" / "aggregate.csv")
    checked = 0
    for metric in sorted({m for _, m in marks}):
        sub = tidy[(tidy["dataset"] == dataset) & (tidy["metric"] == metric)]
        hib = agg[(agg["dataset"] == dataset) & (agg["metric"] == metric)]["higher_is_better"]
        if sub.empty or hib.isna().all():
            continue
        higher = bool(hib.iloc[0])
        wide = sub.pivot_table(index="seed", columns="model", values="value").dropna(axis=1)
        means = wide.mean()
        best = means.idxmax() if higher else means.idxmin()
        dec = int(agg[(agg["dataset"] == dataset) & (agg["metric"] == metric)]["decimals"].iloc[0])
        others = [m for m in wide.columns if m != best]
        p = []
        for m in others:
            d = wide[m] - wide[best]
            if np.ptp(d) <= 1e-12 * wide.abs().to_numpy().max():  # no spread: decided exactly
                p.append(1.0 if abs(d.mean()) <= 1e-12 * wide.abs().to_numpy().max() else 0.0)
            else:
                p.append(stats.ttest_rel(wide[m], wide[best]).pvalue)
        adj = multipletests(p, method="holm")[1]
        for m, pa in zip(others, adj, strict=True):
            tied = f"{means[m]:.{dec}f}" == f"{means[best]:.{dec}f}"
            assert marks[(m, metric)] == bool(tied or pa >= 0.05), (table, metric, m, pa)
            checked += 1
        assert marks[(best, metric)]
    assert checked >= 3


def test_adjust_is_statsmodels_multipletests_and_keeps_untested_out() -> None:
    p = [0.01, math.nan, 0.04, 0.03]
    finite = [0.01, 0.04, 0.03]
    holm = multipletests(finite, method="holm")[1]
    bh = multipletests(finite, method="fdr_bh")[1]
    got = adjust(p, "holm")
    assert math.isnan(got[1])
    assert [got[0], got[2], got[3]] == pytest.approx(list(holm))
    got = adjust(p, "bh")
    assert [got[0], got[2], got[3]] == pytest.approx(list(bh))
    assert adjust(p, "none")[0] == 0.01
    with pytest.raises(ValueError, match="unknown correction 'bonf'; valid: holm, bh, none"):
        adjust(p, "bonf")


def _three_models(run: Path) -> None:
    # b and c are each significantly worse than a uncorrected (p = 0.034, 0.045), not after Holm
    vals = {"a": [1.00, 1.10, 1.20, 1.05], "b": [1.06, 1.40, 1.57, 1.44],
            "c": [1.03, 1.45, 1.59, 1.43]}  # fmt: skip
    for model, vs in vals.items():
        for seed, v in enumerate(vs):
            write_cell(run, model, "toy", seed, {"mse": v})


def test_holm_bold_set_differs_from_uncorrected_and_caption_and_csv_say_so(
    tmp_path: Path,
) -> None:
    run = tmp_path / "r"
    _three_models(run)
    frame = vaebench.load_results(run)
    raw = aggregate(frame, correction="none").set_index("model")
    holm = aggregate(frame, correction="holm").set_index("model")
    p = [raw.loc["b", "p_vs_best"], raw.loc["c", "p_vs_best"]]
    assert all(x < 0.05 for x in p)  # the example is what it claims to be
    padj = multipletests(p, method="holm")[1]
    assert holm.loc[["b", "c"], "p_adj_vs_best"].tolist() == pytest.approx(list(padj))
    assert not raw.loc["b", "bold"] and not raw.loc["c", "bold"]
    assert all(x >= 0.05 for x in padj)  # Holm keeps both in the bold set
    assert holm.loc["b", "bold"] and holm.loc["c", "bold"]
    assert set(holm["correction"]) == {"holm"} and set(holm["alpha"]) == {0.05}
    md = to_markdown(build_table(aggregate(frame), ["toy"], ["a", "b", "c"], ["mse"], name="t",
                                 title="t"))  # fmt: skip
    assert "Holm-corrected over each column's comparisons with the best" in md
    md = to_markdown(build_table(aggregate(frame, correction="none"), ["toy"], ["a", "b", "c"],
                                 ["mse"], name="t", title="t", correction="none"))  # fmt: skip
    assert "no correction for multiple comparisons" in md
    assert "Smallest difference from the best the test detects with 80 % power" in md
    assert "Not bold, difference from the best (mean, 95 % CI): mse: b +" in md


# ------------------------------------------------------------------ effect size and power


def test_difference_and_its_interval_are_scipys() -> None:
    a = {0: 1.0, 1: 1.3, 2: 1.1, 3: 1.4}
    b = {0: 0.9, 1: 1.0, 2: 1.05, 3: 1.1}
    d, lo, hi = difference(a, b)
    ci = stats.ttest_rel(list(a.values()), list(b.values())).confidence_interval()
    assert (d, lo, hi) == pytest.approx((np.mean(np.subtract(list(a.values()),
                                                             list(b.values()))),
                                         ci.low, ci.high))  # fmt: skip
    c = {5: 0.8, 6: 0.95, 7: 0.9}  # other seeds: Welch
    d, lo, hi = difference(a, c)
    ci = stats.ttest_ind(list(a.values()), list(c.values()), equal_var=False).confidence_interval()
    assert (lo, hi) == pytest.approx((ci.low, ci.high))
    assert difference({0: 1.0, 1: 1.0}, {0: 0.5, 1: 0.5}) == (0.5, 0.5, 0.5)


def test_detectable_difference_has_80_percent_power() -> None:
    best = {0: 1.0, 1: 1.2, 2: 1.1, 3: 1.3, 4: 0.9}
    other = {0: 1.3, 1: 1.4, 2: 1.5, 3: 1.5, 4: 1.2}
    mde = detectable_difference({"a": best, "b": other}, "a", ["b"], alpha=0.05)
    sd = np.std(np.subtract(list(other.values()), list(best.values())), ddof=1)
    power = TTestPower().power(effect_size=mde / sd, nobs=5, alpha=0.05)
    assert power == pytest.approx(0.8, abs=1e-6)


def test_seeds_needed_is_the_first_n_with_80_percent_power() -> None:
    a = {0: 1.0, 1: 1.2, 2: 1.1}
    b = {0: 1.05, 1: 1.1, 2: 1.25}
    diff, sd, n = seeds_needed(a, b)
    effect = abs(diff) / sd
    assert TTestPower().power(effect_size=effect, nobs=n, alpha=0.05) >= 0.8
    assert TTestPower().power(effect_size=effect, nobs=n - 1, alpha=0.05) < 0.8
    assert seeds_needed({0: 1.0, 1: 1.0}, {0: 1.0, 1: 1.0})[2] is None  # no difference
    assert seeds_needed({0: 1.0, 1: 1.0}, {0: 2.0, 1: 2.0})[2] == 2  # no spread


# ------------------------------------------------------------------ ranks across datasets


def _reference_agg() -> pd.DataFrame:
    """The committed aggregate.csv, typed as aggregate() returns it."""
    agg = pd.read_csv(REFERENCE / "tables" / "aggregate.csv")
    agg["higher_is_better"] = pd.Series(
        [None if v != v else bool(v) for v in agg["higher_is_better"]], dtype=object
    )
    return agg


@pytest.mark.parametrize("metric", ["mse", "probe_acc"])
def test_ranks_friedman_and_nemenyi_agree_with_scipy_and_scikit_posthocs(metric: str) -> None:
    agg = _reference_agg()
    datasets = ["digits", "fashion-mnist", "moons", "lines"]
    models = ["pca", "ae", "noisy", "vae"]
    r = rank_metric(agg, metric, datasets, models)
    sub = agg[agg["metric"] == metric]
    blocks = sub.pivot_table(index="dataset", columns="model", values="mean").loc[datasets, models]
    higher = bool(sub["higher_is_better"].iloc[0])
    ranks = np.array([stats.rankdata(-row if higher else row) for row in blocks.to_numpy()])
    assert r.mean_ranks.to_numpy() == pytest.approx(ranks.mean(axis=0))
    fried = stats.friedmanchisquare(*(blocks[m].to_numpy() for m in models))
    assert (r.friedman_stat, r.friedman_p) == pytest.approx((fried.statistic, fried.pvalue))
    nem = sp.posthoc_nemenyi_friedman(blocks.reset_index(drop=True))
    assert r.posthoc.to_numpy() == pytest.approx(nem.loc[models, models].to_numpy())
    # Demšar's critical difference: q_0.05 for k = 4 is 2.569 (his Table 5)
    assert r.cd == pytest.approx(2.569 * math.sqrt(4 * 5 / (6 * 4)), abs=1e-3)


@pytest.mark.parametrize("seed", range(6))
def test_nemenyi_friedman_is_scikit_posthocs_to_the_bit(seed: int) -> None:
    from vaebench.report.ranks import nemenyi_friedman

    rng = np.random.default_rng(seed)
    k, n = 3 + seed % 4, 2 + seed
    values = rng.normal(size=(n, k))
    values[0, :2] = values[0, 0]  # a tie
    blocks = pd.DataFrame(values, columns=[f"m{i}" for i in range(k)])
    want = sp.posthoc_nemenyi_friedman(blocks)
    got = nemenyi_friedman(blocks)
    assert list(got.index) == list(want.index) and list(got.columns) == list(want.columns)
    assert np.array_equal(got.to_numpy(), want.to_numpy())


def test_wilcoxon_holm_posthoc_is_scikit_posthocs() -> None:
    agg = _reference_agg()
    datasets = ["digits", "fashion-mnist", "moons", "lines"]
    r = rank_metric(agg, "mse", datasets, ["pca", "ae", "noisy", "vae"], cd_test="wilcoxon")
    blocks = r.blocks.reset_index(drop=True).melt(var_name="model", value_name="value")
    want = sp.posthoc_wilcoxon(blocks, val_col="value", group_col="model", p_adjust="holm",
                               zero_method="zsplit")  # fmt: skip
    assert r.posthoc.to_numpy() == pytest.approx(want.loc[r.posthoc.index,
                                                          r.posthoc.columns].to_numpy())  # fmt: skip
    assert math.isnan(r.cd)


def test_ranks_refuse_one_dataset_or_one_model_in_one_line() -> None:
    agg = _reference_agg()
    with pytest.raises(ValueError, match=r"^cannot rank mse across datasets: 1 dataset\(s\)"):
        rank_metric(agg, "mse", ["digits"], ["pca", "ae"])
    with pytest.raises(ValueError, match=r"1 model\(s\) with a value on each"):
        rank_metric(agg, "mse", ["digits", "moons"], ["pca"])
    with pytest.raises(ValueError, match="unknown cd test 'x'; valid: nemenyi, wilcoxon"):
        rank_metric(agg, "mse", ["digits", "moons"], ["pca", "ae"], cd_test="x")


# ------------------------------------------------------------------ report and report.html


def _two_dataset_run(run: Path) -> None:
    rng = np.random.default_rng(0)
    for ds, shift in (("toy", 0.0), ("<b>ds</b>", 0.05)):
        for model, base in (("a", 0.10), ("b", 0.12), ("<script>alert(1)</script>", 0.2)):
            for seed in range(3):
                write_cell(run, model, ds, seed, {"mse": base + shift + rng.normal(0, 0.01)})


def _build_in_process_with_hash_seed(run: Path, seed: int) -> list[Path]:
    """build_report in a fresh Python with ``PYTHONHASHSEED=seed``: the order of sets of strings
    differs between processes, and the report must not depend on it."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    code = ("import json, sys; from vaebench.report import build_report; "
            "print(json.dumps([str(p) for p in build_report([sys.argv[1]], "
            "formats=['md', 'csv', 'tex'], seeds_needed=True)]))")  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": str(seed),
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code, str(run)], env=env, capture_output=True,
                         text=True, check=False, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return [Path(p) for p in json.loads(res.stdout.strip().splitlines()[-1])]


@pytest.mark.slow  # two reports with figures, one in a fresh Python: ~10-20 s
def test_report_writes_ranks_cd_figures_and_html_and_is_byte_identical(tmp_path: Path) -> None:
    run = tmp_path / "r"
    _two_dataset_run(run)
    # this process, then a fresh one with another hash seed
    first = build_report([run], formats=["md", "csv", "tex"], seeds_needed=True)
    names = {p.relative_to(run).as_posix() for p in first}
    assert {"tables/ranks.md", "tables/ranks.tex", "tables/ranks.csv", "report.html",
            "tables/seeds-needed.md", "figures/ranks-cd-mse.png",
            "figures/ranks-cd-mse.pdf"} <= names  # fmt: skip
    before = {p: p.read_bytes() for p in first}
    seed = 1 if os.environ.get("PYTHONHASHSEED") != "1" else 2
    second = _build_in_process_with_hash_seed(run, seed)
    assert sorted(second) == sorted(first)
    changed = [p.name for p in second if p.read_bytes() != before[p]]
    assert changed == []
    page = (run / "report.html").read_text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>ds</b>" not in page
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', page)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from the network
    assert page.count("<script>") == 1  # the sort script only
    assert "Ranks across datasets" in page and "Friedman χ² =" in page


def test_report_with_one_dataset_refuses_ranks_in_one_line(tmp_path: Path) -> None:
    run = tmp_path / "r"
    for model, base in (("a", 0.1), ("b", 0.2)):
        for seed in range(2):
            write_cell(run, model, "toy", seed, {"mse": base + 0.01 * seed})
    written = build_report([run], figures=False)
    assert not any(p.name.startswith("ranks") for p in written)
    md = (run / "report.md").read_text()
    assert "Not computed: 1 dataset (ranks across datasets need at least 2)." in md


def test_html_render_inlines_only_figures_inside_the_report_folder(tmp_path: Path) -> None:
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_bytes(b"\x89PNG fake")
    outside = tmp_path.parent / "outside.png"
    outside.write_bytes(b"\x89PNG secret")
    (tmp_path / "figures" / "link.png").symlink_to(outside)
    page = render("![a](figures/a.png) ![b](../outside.png) ![c](figures/link.png)\n\n"
                  "| x | y |\n|--|--|\n| 1 | 2 |\n", tmp_path)  # fmt: skip
    assert "data:image/png;base64,iVBORyBmYWtl" in page
    assert 'src="../outside.png"' in page and 'src="figures/link.png"' in page
    assert "<table>" in page and "data-sort-ready" in page


def test_cli_options_reach_the_report_and_bad_values_exit_2(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vaebench.cli import cli

    run = tmp_path / "r"
    _two_dataset_run(run)
    res = CliRunner().invoke(cli, ["report", str(run), "--no-figures", "--correction", "none",
                                   "--cd-test", "wilcoxon", "--seeds-needed"])  # fmt: skip
    assert res.exit_code == 0, res.output
    md = (run / "report.md").read_text()
    assert "no correction for multiple comparisons" in md
    assert "Wilcoxon signed-rank tests over datasets, Holm-corrected" in md
    assert "### Seeds needed" in md and (run / "tables" / "seeds-needed.csv").is_file()
    agg = pd.read_csv(run / "tables" / "aggregate.csv")
    assert set(agg["correction"]) == {"none"}
    for bad in (["--correction", "bonferroni"], ["--cd-test", "bayes"]):
        res = CliRunner().invoke(cli, ["report", str(run), "--no-figures", *bad])
        assert res.exit_code == 2 and bad[1] in res.output


def test_ablation_rows_are_one_family_corrected_like_the_tables() -> None:
    from test_report_captions import points

    from vaebench.report.sweeps import ablation_table

    vals = {1.0: [1.00, 1.10, 1.20, 1.05], 2.0: [1.06, 1.40, 1.57, 1.44],
            4.0: [1.03, 1.45, 1.59, 1.43]}  # fmt: skip
    p = [stats.ttest_rel(vals[b], vals[1.0]).pvalue for b in (2.0, 4.0)]
    padj = multipletests(p, method="holm")[1]
    assert all(x < 0.05 for x in p) and all(x >= 0.05 for x in padj)  # the example discriminates
    for correction, want in (("none", [x >= 0.05 for x in p]),
                             ("holm", [x >= 0.05 for x in padj])):  # fmt: skip
        t = ablation_table(points(vals), dataset="d", key="beta", metric="mse", unit="",
                           higher_is_better=False, decimals=3, name="t",
                           correction=correction)  # fmt: skip
        assert [t.entries[("vae", j)].bold for j in (1, 2)] == want
    assert "Holm-corrected over each row's comparisons with its best" in t.caption


def test_adjust_runs_no_full_garbage_collection(monkeypatch) -> None:
    """statsmodels' Holm branch calls gc.collect() on every call (0.2 s each with a large heap:
    most of a report's time); adjust keeps it out and restores gc.collect afterwards."""
    import gc

    calls: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append(1) or 0)
    marker = gc.collect
    p = [0.01, 0.04, 0.03]
    assert adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert calls == []
    multipletests(p, method="holm")  # the library on its own does collect
    assert calls == [1]
    assert gc.collect is marker
