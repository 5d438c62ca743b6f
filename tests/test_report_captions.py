"""Captions state why an entry is bold: the test used, or the true reason no test was made."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_report_cells import write_cell

import vaebench
from vaebench.report.stats import NO_TEST_REASON, aggregate
from vaebench.report.sweeps import ablation_table
from vaebench.report.tables import build_table, to_markdown


def points(values: dict[float, list[float]]) -> pd.DataFrame:
    """Per-seed points of one line ``vae`` swept over beta (the frame of ``sweep_points``)."""
    rows = [{"line": "vae", "model": "vae", "value": beta, "label": f"{beta:g}", "seed": seed,
             "y": y} for beta, ys in values.items() for seed, y in enumerate(ys)]  # fmt: skip
    return pd.DataFrame(rows, columns=["line", "model", "value", "label", "seed", "y"])


def caption(values: dict[float, list[float]]) -> str:
    table = ablation_table(points(values), dataset="digits", key="beta", metric="ratio",
                           unit="", higher_is_better=False, decimals=3, name="t")  # fmt: skip
    assert table is not None
    return table.caption


def test_ablation_with_identical_values_over_two_seeds_names_the_test_not_missing_seeds():
    # the report of `--sweep vae.beta=0.5,1,4 --seeds 0,1`: midpoint_nn_ratio 1.000 ± 0.000
    text = caption({0.5: [1.0, 1.0], 1.0: [1.0, 1.0], 4.0: [1.0, 1.0]})
    assert "over 2 seeds" in text
    assert "fewer than 2 seeds" not in text
    assert "every value not significantly different from it" in text
    assert "paired t-test over seeds" in text


@pytest.mark.parametrize(
    ("values", "wanted", "unwanted"),
    [
        # one seed everywhere: no test, and that is why
        ({0.5: [1.0], 4.0: [2.0]}, f"no significance test is possible ({NO_TEST_REASON}",
         "significantly different from it"),
        # two seeds for the best, one finite value for the other: tested where possible
        ({0.5: [1.0, 1.1], 1.0: [1.5, 1.6], 4.0: [2.0]},
         f"Not tested where the value or the best has {NO_TEST_REASON}", "no significance test"),
        # one value of beta per row: nothing to compare, whatever the seeds
        ({0.5: [1.0, 1.1]}, "each row has one value of beta: nothing to compare",
         "fewer than 2 seeds"),
    ],
)  # fmt: skip
def test_ablation_caption_states_the_true_reason(values, wanted, unwanted):
    text = caption(values)
    assert wanted in text
    assert unwanted not in text


def test_table_caption_with_seeds_but_nothing_to_compare_does_not_blame_the_seeds(
    tmp_path: Path,
) -> None:
    run = tmp_path / "r"
    for seed in (0, 1):
        write_cell(run, "a", "toy", seed, {"mse": 0.10 + seed / 100})
        write_cell(run, "b", "toy", seed, {"mse": None})  # no finite value: not ranked
    agg = aggregate(vaebench.load_results(run))
    md = to_markdown(build_table(agg, ["toy"], ["a", "b"], ["mse"], name="t", title="toy"))
    assert "fewer than 2 seeds" not in md
    assert "no other model in the same column has a value that can be compared" in md


def test_table_caption_says_which_models_were_not_tested(tmp_path: Path) -> None:
    run = tmp_path / "r"
    for seed, v in ((0, 0.10), (1, 0.12)):
        write_cell(run, "a", "toy", seed, {"mse": v})
    for seed, v in ((0, 0.20), (1, 0.21)):
        write_cell(run, "b", "toy", seed, {"mse": v})
    write_cell(run, "c", "toy", 0, {"mse": 0.15})  # one seed: cannot be tested
    agg = aggregate(vaebench.load_results(run))
    md = to_markdown(build_table(agg, ["toy"], ["a", "b", "c"], ["mse"], name="t", title="t"))
    assert "| c | 0.1500 (n=1) |" in md
    assert "paired t-test over seeds" in md
    assert f"Not tested where the model or the best has {NO_TEST_REASON}" in md
    assert "bold only when its mean equals the best's as shown" in md


def test_table_caption_with_two_seeds_but_no_possible_test_gives_the_reason(
    tmp_path: Path,
) -> None:
    run = tmp_path / "r"
    write_cell(run, "a", "toy", 0, {"mse": 0.10})
    write_cell(run, "a", "toy", 1, {"mse": None})  # one finite value only
    for seed, v in ((0, 0.20), (1, 0.21)):
        write_cell(run, "b", "toy", seed, {"mse": v})
    agg = aggregate(vaebench.load_results(run))
    md = to_markdown(build_table(agg, ["toy"], ["a", "b"], ["mse"], name="t", title="t"))
    assert "With fewer than 2 seeds per model" not in md
    assert f"No significance test is possible ({NO_TEST_REASON}" in md
