"""The tidy data API: vaebench.load_results against hand-built cell files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from test_report_cells import standard_run, write_cell

import vaebench
from vaebench.results import ResultsError
from vaebench.tidy import COLUMNS, variant_labels


def test_one_row_per_cell_and_metric_with_declarations(tmp_path: Path) -> None:
    run = standard_run(tmp_path)
    df = vaebench.load_results(run)
    assert list(df.columns) == COLUMNS
    # 12 finished cells x 6 metrics; the failed cell adds nothing by default
    assert len(df) == 72
    assert not df.duplicated(["run", "model", "dataset", "seed", "metric"]).any()
    row = df[(df.model == "ae") & (df.seed == 1) & (df.metric == "mse")].iloc[0]
    assert row.value == 0.012
    assert row.unit == "per pixel"
    assert row.higher_is_better is False
    assert row.direction == "lower"
    assert row.decimals == 4
    assert row.source == "reconstruction"
    assert row.group == "quality"
    assert row.run == "run"
    assert row.variant == "ae"
    psnr = df[(df.metric == "psnr")].iloc[0]
    assert psnr.direction == "higher"
    n_params = df[df.metric == "n_params"].iloc[0]
    assert n_params.direction == "none" and n_params.higher_is_better is None
    assert n_params.group == "cost"
    assert df[df.metric == "smoothness"].iloc[0].group == "interpolation"


def test_hand_computed_mean_from_the_frame(tmp_path: Path) -> None:
    df = vaebench.load_results(standard_run(tmp_path))
    mse = df[(df.metric == "mse") & (df.model == "noisy")]["value"]
    assert mse.mean() == pytest.approx((0.009 + 0.016 + 0.012) / 3)
    assert sorted(df[df.metric == "mse"]["seed"].unique()) == [0, 1, 2]


def test_failed_cells_on_request(tmp_path: Path) -> None:
    df = vaebench.load_results(standard_run(tmp_path), include_failed=True)
    failed = df[df.metric == "failed"]
    assert len(failed) == 1
    assert failed.iloc[0].model == "broken"
    assert failed.iloc[0].error.startswith("diverged")
    assert math.isnan(failed.iloc[0].value)


def test_filters(tmp_path: Path) -> None:
    run = standard_run(tmp_path)
    df = vaebench.load_results(run, models=["ae", "pca"], metrics=["mse"])
    assert sorted(df.model.unique()) == ["ae", "pca"]
    assert set(df.metric) == {"mse"}
    assert len(df) == 6
    assert vaebench.load_results(run, datasets=["nope"]).empty


def test_null_metric_is_nan(tmp_path: Path) -> None:
    run = tmp_path / "r"
    write_cell(run, "ae", "toy", 0, {"mse": None, "psnr": 3.0})
    df = vaebench.load_results(run)
    assert math.isnan(df[df.metric == "mse"].iloc[0].value)
    assert df[df.metric == "psnr"].iloc[0].value == 3.0


def test_several_runs_combine_and_settings_become_variants(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for seed in (0, 1):
        write_cell(a, "ae", "toy", seed, {"mse": 0.1}, params={"epochs": 5})
        write_cell(a, "pca", "toy", seed, {"mse": 0.3})
        write_cell(b, "ae", "toy", seed, {"mse": 0.05}, params={"epochs": 30})
    df = vaebench.load_results(a, b)
    assert set(df.run) == {"a", "b"}
    assert set(df.variant) == {"ae (epochs=5)", "ae (epochs=30)", "pca"}
    assert set(df[df.model == "pca"].variant) == {"pca"}
    by_variant = df.groupby("variant")["value"].mean()
    assert by_variant["ae (epochs=5)"] == pytest.approx(0.1)
    assert by_variant["ae (epochs=30)"] == pytest.approx(0.05)
    # a list of folders works as well
    assert len(vaebench.load_results([a, b])) == len(df)


def test_variant_labels_do_not_depend_on_order(tmp_path: Path) -> None:
    run = tmp_path / "r"
    write_cell(run, "vae", "toy", 0, {"mse": 0.1}, params={"beta": 1.0, "epochs": 5})
    write_cell(run, "vae", "toy", 1, {"mse": 0.1}, params={"beta": 4.0, "epochs": 5})
    cells = vaebench.tidy.load_records([run])
    labels = variant_labels(cells)
    assert sorted(labels.values()) == ["vae (beta=1)", "vae (beta=4)"]
    assert variant_labels(list(reversed(cells))) == labels


def test_swept_values_label_variants_first_and_floats_read_short(tmp_path: Path) -> None:
    run = tmp_path / "r"
    for beta in (0.5, 4.0, 10.0):
        for latent in (2, 8):
            write_cell(run, "vae", "toy", 0, {"mse": 0.1},
                       params={"beta": beta, "latent_dim": latent, "epochs": 5 + latent},
                       sweep={"vae.beta": beta, "latent_dim": latent})  # fmt: skip
    write_cell(run, "ae", "toy", 0, {"mse": 0.1}, params={"epochs": 5})
    labels = set(variant_labels(vaebench.tidy.load_records([run])).values())
    # swept parameters first (by name), then other settings that differ; short numbers
    assert "vae (beta=0.5, latent_dim=2, epochs=7)" in labels
    assert "vae (beta=4, latent_dim=8, epochs=13)" in labels
    assert "vae (beta=10, latent_dim=2, epochs=7)" in labels
    assert "ae" in labels and len(labels) == 7


def test_labels_that_would_clash_keep_the_raw_values(tmp_path: Path) -> None:
    run = tmp_path / "r"
    write_cell(run, "vae", "toy", 0, {"mse": 0.1}, params={"beta": 4.0})
    write_cell(run, "vae", "toy", 1, {"mse": 0.1}, params={"beta": 4})
    labels = sorted(variant_labels(vaebench.tidy.load_records([run])).values())
    assert labels == ["vae (beta=4)", "vae (beta=4.0)"]


def test_format_setting() -> None:
    from vaebench.tidy import format_setting

    assert [format_setting(v) for v in (4.0, 0.5, 1e-05, 3, "mlp", [1.0, 2.5], True)] == [
        "4", "0.5", "1e-05", "3", "mlp", "[1,2.5]", "True"]  # fmt: skip


def test_corrupt_file_is_named(tmp_path: Path) -> None:
    run = tmp_path / "r"
    write_cell(run, "ae", "toy", 0, {"mse": 0.1})
    bad = run / "cells" / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ResultsError, match="bad.json"):
        vaebench.load_results(run)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="not found"):
        vaebench.load_results(tmp_path / "nope")


def test_a_setup_has_one_label_on_every_dataset(tmp_path: Path) -> None:
    """Two runs: ae with epochs=5 on two datasets, ae with epochs=30 on one of them. The
    epochs=5 cells read ``ae (epochs=5)`` on both datasets, not plain ``ae`` where they ran
    alone; a model with one set-up everywhere keeps its bare name."""
    a, b = tmp_path / "a", tmp_path / "b"
    for dataset in ("toy", "toy2"):
        write_cell(a, "ae", dataset, 0, {"mse": 0.1}, params={"epochs": 5})
        write_cell(a, "pca", dataset, 0, {"mse": 0.3})
    write_cell(b, "ae", "toy", 0, {"mse": 0.05}, params={"epochs": 30})
    df = vaebench.load_results(a, b)
    by_dataset = df.groupby("dataset")["variant"].apply(set).to_dict()
    assert by_dataset == {"toy": {"ae (epochs=5)", "ae (epochs=30)", "pca"},
                          "toy2": {"ae (epochs=5)", "pca"}}  # fmt: skip


def test_a_sweep_of_a_dataset_option_labels_only_where_it_applies() -> None:
    def cell(name: str, dataset: str, options: dict, sweep: dict) -> dict:
        config = {"model": "ae", "params": {"latent_dim": 2}, "dataset": dataset,
                  "dataset_options": options, "seed": 0, "sweep": sweep}  # fmt: skip
        return {"model": "ae", "dataset": dataset, "config_hash": name, "config": config}

    cells = [cell("a", "moons", {"noise": 0.1}, {"moons.noise": 0.1}),
             cell("b", "moons", {"noise": 0.2}, {"moons.noise": 0.2}),
             cell("c", "digits", {}, {})]  # fmt: skip
    assert variant_labels(cells) == {"a": "ae (dataset_options.noise=0.1)",
                                     "b": "ae (dataset_options.noise=0.2)", "c": "ae"}  # fmt: skip
