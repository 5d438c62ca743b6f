"""Aggregation, tests and bold sets against hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from scipy import stats
from test_report_cells import standard_run, write_cell

import vaebench
from vaebench.report.stats import aggregate, compare, pareto_front, t_interval

ORDER = ["pca", "ae", "noisy", "vae_x"]


@pytest.fixture
def agg(tmp_path: Path):
    return aggregate(vaebench.load_results(standard_run(tmp_path)), baseline="ae",
                     model_order=ORDER)  # fmt: skip


def row(agg, model: str, metric: str):
    sub = agg[(agg.model == model) & (agg.metric == metric)]
    assert len(sub) == 1
    return sub.iloc[0]


def test_mean_std_n_and_interval(agg) -> None:
    ae = row(agg, "ae", "mse")  # 0.010, 0.012, 0.014
    assert ae.n == 3
    assert ae.seeds == (0, 1, 2)
    assert ae["mean"] == pytest.approx(0.012)
    assert ae["std"] == pytest.approx(0.002)  # sqrt((0.002² + 0 + 0.002²) / 2)
    assert ae["sem"] == pytest.approx(0.002 / math.sqrt(3))
    half = 4.302652729911275 * 0.002 / math.sqrt(3)  # t_{0.975, 2} = 4.3027
    assert ae.ci_low == pytest.approx(0.012 - half)
    assert ae.ci_high == pytest.approx(0.012 + half)
    noisy = row(agg, "noisy", "mse")  # 0.009, 0.016, 0.012
    assert noisy["mean"] == pytest.approx(0.037 / 3)
    assert noisy["std"] == pytest.approx(
        math.sqrt((0.009**2 + 0.016**2 + 0.012**2 - 0.037**2 / 3) / 2)
    )
    pca = row(agg, "pca", "mse")
    assert pca["std"] == 0.0


def test_t_interval_single_value_is_undefined() -> None:
    assert all(math.isnan(v) for v in t_interval(1.0, math.nan, 1))
    lo, hi = t_interval(10.0, 2.0, 5, confidence=0.9)
    assert hi - 10.0 == pytest.approx(stats.t.ppf(0.95, 4) * 2.0 / math.sqrt(5))
    assert 10.0 - lo == pytest.approx(hi - 10.0)


def test_paired_test_when_seeds_match() -> None:
    a = {0: 0.009, 1: 0.016, 2: 0.012}
    b = {0: 0.010, 1: 0.012, 2: 0.014}
    c = compare(a, b)
    assert c.test == "paired"
    assert c.p == pytest.approx(
        stats.ttest_rel([0.009, 0.016, 0.012], [0.010, 0.012, 0.014]).pvalue
    )
    # differences -0.001, 0.004, -0.002: t = 0.000333 / (0.0032146 / sqrt 3) = 0.1796
    assert c.p == pytest.approx(2 * stats.t.sf(0.17960530202677488, 2))


def test_welch_when_seeds_differ() -> None:
    c = compare({0: 1.0, 1: 2.0, 2: 4.0}, {5: 3.0, 6: 5.0})
    assert c.test == "welch"
    assert c.p == pytest.approx(stats.ttest_ind([1, 2, 4], [3, 5], equal_var=False).pvalue)


def test_no_test_below_two_values() -> None:
    c = compare({0: 1.0}, {0: 2.0, 1: 3.0})
    assert c.test == "none" and math.isnan(c.p) and not c.possible
    assert compare({0: 1.0, 1: math.nan}, {0: 2.0, 1: 3.0}).test == "none"


def test_zero_variance_is_decided_exactly() -> None:
    assert compare({0: 1.0, 1: 1.0}, {0: 2.0, 1: 2.0}).p == 0.0  # systematic difference
    assert compare({0: 1.0, 1: 1.0}, {0: 1.0, 1: 1.0}).p == 1.0
    assert compare({0: 1.0, 1: 1.0}, {3: 1.0, 4: 1.0}).p == 1.0
    assert compare({0: 1.0, 1: 1.0}, {3: 2.0, 4: 2.0}).p == 0.0


def test_bold_is_best_and_not_significantly_worse(agg) -> None:
    bold = set(agg[(agg.metric == "mse") & agg.bold].model)
    # ae best (0.0120); noisy 0.0123 not significantly worse (paired p = 0.87);
    # pca (p = 0.004) and vae_x clearly worse
    assert bold == {"ae", "noisy"}
    assert row(agg, "ae", "mse").best and row(agg, "ae", "mse")["rank"] == 1
    assert not row(agg, "noisy", "mse").best
    assert row(agg, "noisy", "mse").p_vs_best > 0.05
    assert row(agg, "pca", "mse").p_vs_best < 0.05
    assert row(agg, "vae_x", "mse")["rank"] == 4


def test_higher_is_better_and_ties_share_the_best(agg) -> None:
    # psnr: ae (20, 19, 18) and noisy (19.5, 17, 20.5) both average 19.00
    assert row(agg, "ae", "psnr").best and row(agg, "noisy", "psnr").best
    assert set(agg[(agg.metric == "psnr") & agg.bold].model) == {"ae", "noisy"}
    assert row(agg, "ae", "psnr")["rank"] == row(agg, "noisy", "psnr")["rank"] == 1
    assert row(agg, "pca", "psnr")["rank"] == 3


def test_descriptive_values_are_never_bold(agg) -> None:
    sub = agg[agg.metric == "n_params"]
    assert not sub.bold.any() and sub["rank"].isna().all()
    assert row(agg, "noisy", "n_params")["mean"] == 300.0


def test_baseline_marks(agg) -> None:
    assert row(agg, "vae_x", "mse").significant_vs_baseline
    assert row(agg, "vae_x", "mse").test_vs_baseline == "paired"
    assert not row(agg, "noisy", "mse").significant_vs_baseline
    assert row(agg, "ae", "mse").test_vs_baseline == ""  # the baseline itself
    assert (agg.baseline[agg.metric == "mse"] == "ae").all()


def test_single_seed_bolds_only_the_best(tmp_path: Path) -> None:
    run = tmp_path / "r"
    write_cell(run, "a", "toy", 0, {"mse": 0.10})
    write_cell(run, "b", "toy", 0, {"mse": 0.11})
    agg = aggregate(vaebench.load_results(run))
    assert set(agg[agg.bold].model) == {"a"}
    assert (agg[agg.model == "b"].test_vs_best == "none").all()


def test_duplicate_cells_count_once(tmp_path: Path) -> None:
    for name in ("a", "b"):  # the same cell stored in two folders
        write_cell(tmp_path / name, "ae", "toy", 0, {"mse": 0.1})
        write_cell(tmp_path / name, "ae", "toy", 1, {"mse": 0.3})
    agg = aggregate(vaebench.load_results(tmp_path / "a", tmp_path / "b"))
    assert agg.iloc[0].n == 2
    assert agg.iloc[0]["mean"] == pytest.approx(0.2)


def test_two_cells_of_one_labelled_setup_and_seed_count_once_and_are_named(tmp_path) -> None:
    # an older-format cell (another config.schema, hence another hash) beside a new one: both
    # were labelled "ae" and the table said "over 3 seeds" of whichever the seed map kept last
    import json

    from vaebench.report import build_report
    from vaebench.report.content import collect

    run = tmp_path / "r"
    for seed, mse in enumerate((0.10, 0.11, 0.12)):
        path = write_cell(run, "ae", "toy", seed, {"mse": mse})
        old = json.loads(path.read_text())
        old["config"]["schema"] = "vaebench.config/0"
        old["config_hash"] = "0ld" + old["config_hash"][3:]
        old["evaluations"]["reconstruction"]["values"]["mse"] = mse + 0.5
        (
            path.parent / path.name.replace(path.stem.rsplit("--", 1)[1], old["config_hash"])
        ).write_text(json.dumps(old))
    rep = collect([run])
    assert len(rep.cells) == 3 and len(rep.duplicates) == 3
    row = rep.agg[(rep.agg.model == "ae") & (rep.agg.metric == "mse")].iloc[0]
    kept = sorted(c["config_hash"] for c in rep.cells)
    assert row.n == 3
    assert row["mean"] == pytest.approx(0.11 if not kept[0].startswith("0ld") else 0.61)
    build_report([run], formats=["md"], figures=False)
    page = (run / "report.md").read_text()
    assert "3 finished cell(s) repeat the set-up and seed of another" in page
    assert "ae / toy / seed 0" in page


def test_pareto_front() -> None:
    points = {"a": (10.0, 1.0), "b": (5.0, 0.5), "c": (4.0, 0.9), "d": (10.0, 1.0),
              "e": (math.nan, 0.1)}  # fmt: skip
    # higher x better, lower y better: c is dominated by b; a and d tie (neither dominates)
    assert pareto_front(points, higher_x=True, higher_y=False) == ["a", "b", "d"]
    assert pareto_front(points, higher_x=False, higher_y=True) == ["a", "c", "d"]


def test_conflicting_declarations_use_the_majority_and_are_named(tmp_path: Path) -> None:
    import json

    from vaebench.report.stats import conflicting_declarations, declarations

    run = tmp_path / "r"
    paths = [write_cell(run, "ae", "toy", s, {"smoothness": 0.1 * (s + 1)}) for s in range(3)]
    old = json.loads(paths[0].read_text())  # one cell from a version that declared it descriptive
    old["evaluations"]["acai"]["info"]["smoothness"]["higher_is_better"] = None
    paths[0].write_text(json.dumps(old))
    frame = vaebench.load_results(run)
    assert declarations(frame)["smoothness"]["higher_is_better"] is False
    assert conflicting_declarations(frame) == {
        "smoothness": ["lower is better, unit '' (2 values)", "descriptive, unit '' (1 values)"]
    }
    agg = aggregate(frame)
    assert agg.iloc[0].higher_is_better is False and agg.iloc[0].n == 3
