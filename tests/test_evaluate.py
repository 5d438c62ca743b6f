"""Training identity vs evaluation identity: stored models are evaluated, never retrained, for a
new metric or changed options; every metric has its own random stream; capability tags skip
unsupported cells; the training hooks see every epoch; the Python API mirrors the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import vaebench
import vaebench.api
from vaebench.config import RunConfig
from vaebench.errors import ResultsError
from vaebench.grid import evaluate, run
from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench.models.pca import PCA
from vaebench.results import read_cell

FAST = ["eval.throughput_seconds=0.01", "eval.n_pairs=16", "eval.n_steps=5"]


def build(reg, models="pca,ae", datasets="digits", seeds="0", **kw) -> RunConfig:
    kw = {"workers": 1, "threads": 1, "epochs": "2", "subset": 200, **kw}
    sets = [*FAST, *kw.pop("sets", ())]
    return RunConfig.build(reg, models=models, datasets=datasets, seeds=seeds, sets=sets, **kw)


def records(out: Path) -> dict[str, dict]:
    return {p.stem: read_cell(p) for p in sorted((out / "cells").glob("*.json"))}


def test_evaluate_adds_metrics_without_training(registry, tmp_path):
    out = tmp_path / "r"
    first = run(build(registry, metrics="reconstruction"), out, registry=registry)
    assert len(first.ran) == 2
    before = records(out)
    cfg = RunConfig.for_evaluation(
        registry, models=["pca", "ae"], datasets=["digits"],
        metrics="reconstruction,active_units,knn", workers=1, threads=1,
    )  # fmt: skip
    summary = evaluate(out, cfg, registry=registry)
    assert summary.ran == [] and len(summary.evaluated) == 2
    after = records(out)
    for stem, rec in after.items():
        old = before[stem]
        # training untouched: same history, fit time, environment of the training run
        assert rec["history"] == old["history"] and rec["fit"] == old["fit"]
        assert rec["run_id"] == old["run_id"]
        # the stored evaluation was kept as it was (same key), the new ones added
        assert rec["evaluations"]["reconstruction"] == old["evaluations"]["reconstruction"]
        assert set(rec["evaluations"]) == {"reconstruction", "active_units", "knn"}
        assert 0 < rec["metrics"]["knn_acc"] <= 100
    # a second evaluate has nothing left to do
    again = evaluate(out, cfg, registry=registry)
    assert again.evaluated == [] and len(again.skipped) == 2


def test_resume_after_evaluate_continues_the_trained_grid(registry, tmp_path):
    # an evaluate manifest holds evaluation settings only; --resume once took it for the run's
    # and trained the vae again at the default 30 epochs (a second variant next to the first)
    out = tmp_path / "r"
    first = vaebench.run("pca,vae", "digits", "0", out, epochs=1, subset=200, workers=1, threads=1,
                    sets=FAST, metrics="reconstruction", registry=registry)  # fmt: skip
    assert len(first.ran) == 2
    before = records(out)
    assert len(
        vaebench.evaluate(out, "reconstruction,elbo", workers=1, registry=registry).evaluated
    )
    resumed = vaebench.api.resume(out, registry=registry)
    assert resumed.ran == [] and len(resumed.skipped) == 2
    assert sorted(records(out)) == sorted(before)  # no new variant
    manifests = sorted((out / "manifests").glob("*.json"), key=lambda p: p.stat().st_mtime)
    configs = [json.loads(p.read_text()) for p in manifests]
    assert [m["kind"] for m in configs] == ["run", "evaluate", "run"]
    assert configs[2]["config"]["common"] == configs[0]["config"]["common"] == {"epochs": 1}


def test_resume_of_a_folder_with_only_evaluate_manifests_says_so(registry, tmp_path):
    out = tmp_path / "r"
    vaebench.run("pca", "digits", "0", out, subset=200, workers=1, threads=1, sets=FAST,
                 metrics="reconstruction", registry=registry)  # fmt: skip
    vaebench.evaluate(out, "reconstruction,knn", workers=1, registry=registry)
    for p in (out / "manifests").glob("*.json"):
        if json.loads(p.read_text())["kind"] == "run":
            p.unlink()
    with pytest.raises(ResultsError, match="no manifest of a `vaebench run`"):
        vaebench.api.resume(out, registry=registry)


def test_evaluate_log_lists_only_the_metrics_it_evaluated(registry, tmp_path, caplog):
    out = tmp_path / "r"
    run(build(registry, models="pca", metrics="reconstruction"), out, registry=registry)
    cfg = RunConfig.for_evaluation(
        registry, models=["pca"], datasets=["digits"], metrics="knn,iwae", workers=1, threads=1
    )
    with caplog.at_level("INFO", logger="vaebench"):
        summary = evaluate(out, cfg, registry=registry)
    assert len(summary.evaluated) == 1
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("evaluated ")]
    assert line == "evaluated pca / digits / seed 0 (knn; not applicable: iwae)"


def test_evaluation_summary_groups_metrics_by_outcome():
    from vaebench.summary import evaluation_summary

    evs = {"fd": {"status": "ok"}, "iwae": {"status": "not_applicable"},
           "knn": {"status": "failed"}, "kid": {"status": "ok"}}  # fmt: skip
    assert evaluation_summary(evs) == "fd, kid; not applicable: iwae; failed: knn"
    assert evaluation_summary({"iwae": {"status": "not_applicable"}}) == (
        "no metric; not applicable: iwae"
    )


def test_run_with_a_new_metric_evaluates_instead_of_retraining(registry, tmp_path):
    out = tmp_path / "r"
    run(build(registry, metrics="reconstruction"), out, registry=registry)
    fits = {s: r["fit"] for s, r in records(out).items()}
    summary = run(build(registry, metrics="reconstruction,interpolation"), out, registry=registry)
    assert summary.ran == [] and len(summary.evaluated) == 2
    assert {s: r["fit"] for s, r in records(out).items()} == fits
    # changing an option of one metric re-evaluates that metric only
    summary = run(
        build(registry, metrics="reconstruction,interpolation", sets=["eval.n_pairs=8"]),
        out,
        registry=registry,
    )
    assert len(summary.evaluated) == 2
    rec = next(iter(records(out).values()))
    assert rec["evaluations"]["interpolation"]["options"]["n_pairs"] == 8


def test_a_metric_alone_gives_the_numbers_it_gives_among_all(registry, tmp_path):
    """Each metric draws from its own stream: selecting a subset never changes its numbers."""
    a = run(build(registry, models="pca", metrics="interpolation"), tmp_path / "a",
            registry=registry)  # fmt: skip
    b = run(build(registry, models="pca", metrics="reconstruction,interpolation,throughput"),
            tmp_path / "b", registry=registry)  # fmt: skip
    (ra,), (rb,) = records(tmp_path / "a").values(), records(tmp_path / "b").values()
    assert a.ran[0].hash == b.ran[0].hash  # the metric selection is not part of the key
    assert (
        ra["evaluations"]["interpolation"]["values"] == rb["evaluations"]["interpolation"]["values"]
    )


def test_missing_states_never_cost_a_stored_evaluation(registry, tmp_path):
    """A fresh clone of committed results has no weights (states/ is not in git): evaluate must
    keep every stored evaluation, refuse at once when no cell has its weights, and record a
    failure only for metrics a weightless cell was never evaluated with."""
    from vaebench.errors import ResultsError

    out = tmp_path / "r"
    run(build(registry, models="pca", seeds="0,1", metrics="reconstruction,knn"), out,
        registry=registry)  # fmt: skip
    before = records(out)

    def cfg(metrics):
        return RunConfig.for_evaluation(registry, models=["pca"], datasets=["digits"],
                                        metrics=metrics, sets=["eval.knn_k=7"], workers=1,
                                        threads=1)  # fmt: skip

    states = sorted((out / "states").glob("*.pt"))
    for p in states:
        p.unlink()
    with pytest.raises(ResultsError, match="none of the 2 cell.* trained weights"):
        evaluate(out, cfg("knn"), registry=registry)
    assert records(out) == before  # nothing written

    # one cell has its weights again: it is evaluated, the other keeps what it had
    run(build(registry, models="pca", seeds="0", metrics="reconstruction,knn"), out,
        registry=registry, force=True)  # fmt: skip
    summary = evaluate(out, cfg("knn,active_units"), registry=registry)
    assert [c.seed for c in summary.evaluated] == [0]
    assert [c.seed for c in summary.no_state] == [1]
    assert [(c.seed, m) for c, m, _ in summary.metric_failures] == [(1, "active_units")]
    after = records(out)
    weightless = next(s for s in after if "seed1" in s)
    assert after[weightless]["evaluations"]["knn"] == before[weightless]["evaluations"]["knn"]
    assert after[weightless]["evaluations"]["active_units"]["status"] == "failed"
    # run retrains what it cannot evaluate
    summary = run(build(registry, models="pca", seeds="0,1", metrics="reconstruction,knn",
                        sets=["eval.knn_k=7"]), out, registry=registry)  # fmt: skip
    assert [c.seed for c in summary.ran] == [1]


def test_a_metric_that_changes_the_model_fails_and_the_model_is_restored(fresh_plugins,
                                                                         tmp_path):  # fmt: skip
    """The weights are stored before any metric runs, and a metric that changes the model
    loses its own values only: the others see the trained model."""
    from vaebench.metric import Metric, Value

    class Vandal(Metric):
        name = "vandal"
        values = (Value("zero", None),)

        def evaluate(self, model, dataset, ctx):
            for p in model.parameters():
                p.data.zero_()
            return {"zero": 0.0}

    class Plugin:
        @hookimpl
        def vaebench_metrics(self):
            return [Vandal()]

    fresh_plugins.get_plugin_manager().register(Plugin(), name="vandal-plugin")
    reg = fresh_plugins.get_registry()
    clean = run(build(reg, models="ae", metrics="reconstruction"), tmp_path / "a", registry=reg)
    dirty = run(build(reg, models="ae", metrics="vandal,reconstruction"), tmp_path / "b",
                registry=reg)  # fmt: skip
    (ra,), (rb,) = records(tmp_path / "a").values(), records(tmp_path / "b").values()
    assert rb["evaluations"]["vandal"]["status"] == "failed"
    assert "changed the model" in rb["evaluations"]["vandal"]["reason"]
    assert rb["metrics"]["mse"] == ra["metrics"]["mse"]  # reconstruction saw the trained model
    assert [m for _, m, _ in dirty.metric_failures] == ["vandal"] and not clean.metric_failures
    a = torch.load(tmp_path / "a" / "states" / f"{clean.ran[0].stem}.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "states" / f"{dirty.ran[0].stem}.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the stored weights are the trained ones
    assert rb["state_sha256"] == ra["state_sha256"]


def test_swapped_weights_are_refused(registry, tmp_path):
    """(pca's closed form gives every seed the same weights: an AE's seeds differ.)"""
    out = tmp_path / "r"
    summary = run(build(registry, models="ae", seeds="0,1", metrics="reconstruction"), out,
                  registry=registry)  # fmt: skip
    s0, s1 = (out / "states" / f"{c.stem}.pt" for c in summary.ran)
    s0.write_bytes(s1.read_bytes())
    cfg = RunConfig.for_evaluation(registry, models=["ae"], datasets=["digits"], metrics="knn",
                                   workers=1, threads=1)  # fmt: skip
    result = evaluate(out, cfg, registry=registry)
    ((cell, metric, reason),) = result.metric_failures
    assert cell.stem == summary.ran[0].stem and "does not hold the weights" in reason
    with pytest.raises(Exception, match="does not hold the weights"):
        vaebench.load_model(out, summary.ran[0].stem)


class BigImagesPCA(PCA):
    """Declares it needs images of at least 16x16 (digits are 8x8)."""

    @property
    def tags(self):
        return dataclasses.replace(super().tags, min_image_size=16)


class TagsPlugin:
    @hookimpl
    def vaebench_models(self):
        return [ModelSpec("bigpca", BigImagesPCA, "needs >= 16x16 images")]


def test_a_model_whose_tags_exclude_the_dataset_is_skipped_with_the_reason(fresh_plugins, tmp_path):
    fresh_plugins.get_plugin_manager().register(TagsPlugin(), name="tags-test")
    reg = fresh_plugins.get_registry()
    summary = run(build(reg, models="pca,bigpca", metrics="reconstruction"), tmp_path / "r",
                  registry=reg)  # fmt: skip
    assert [c.model for c in summary.ran] == ["pca"]
    ((cell, reason),) = summary.unsupported
    assert cell.model == "bigpca" and "at least 16x16 pixels, got 8x8" in reason
    rec = records(tmp_path / "r")[cell.stem]
    assert rec["status"] == "skipped" and rec["skip_reason"] == reason
    # a rerun keeps it skipped without building anything
    again = run(build(reg, models="pca,bigpca", metrics="reconstruction"), tmp_path / "r",
                registry=reg)  # fmt: skip
    assert [c.model for c, _ in again.unsupported] == ["bigpca"] and again.ran == []


class EpochRecorder:
    def __init__(self) -> None:
        self.epochs: list[tuple[str, int, float]] = []
        self.finished: list[tuple[str, str]] = []

    @hookimpl
    def vaebench_epoch_end(self, cell, epoch, logs):
        self.epochs.append((cell.stem, epoch, logs["loss"]))

    @hookimpl
    def vaebench_cell_finished(self, cell, record):
        self.finished.append((cell.stem, record["status"]))


class RaisingTracker:
    @hookimpl
    def vaebench_epoch_end(self, cell):  # a subset of the hook's arguments is allowed
        raise ConnectionError("tracking server unreachable")

    @hookimpl
    def vaebench_cell_finished(self, record):
        raise RuntimeError("cannot upload")


def test_training_hooks_see_every_epoch_and_a_raising_hook_loses_no_cell(fresh_plugins, tmp_path):
    recorder = EpochRecorder()
    pm = fresh_plugins.get_plugin_manager()
    pm.register(recorder, name="recorder")
    pm.register(RaisingTracker(), name="flaky-tracker")
    reg = fresh_plugins.get_registry()
    summary = run(build(reg, models="pca,ae", seeds="0,1", epochs="3", metrics="reconstruction"),
                  tmp_path / "r", registry=reg)  # fmt: skip
    assert len(summary.ran) == 4 and summary.failed == []
    by_cell: dict[str, list[int]] = {}
    for stem, epoch, _ in recorder.epochs:
        by_cell.setdefault(stem, []).append(epoch)
    assert sorted(by_cell[c.stem] for c in summary.ran if c.model == "ae") == [[1, 2, 3]] * 2
    assert all(by_cell[c.stem] == [1] for c in summary.ran if c.model == "pca")
    assert sorted(recorder.finished) == sorted((c.stem, "ok") for c in summary.ran)
    for rec in records(tmp_path / "r").values():
        (hook,) = [w for w in rec["warnings"] if w["kind"] == "hook"]
        assert 'plugin "flaky-tracker" raised in vaebench_epoch_end' in hook["message"]
    messages = [m for _, m in summary.warnings]
    assert sum("vaebench_cell_finished" in m and "flaky-tracker" in m for m in messages) == 4


def test_validation_split_is_logged_every_epoch_and_part_of_the_key(registry, tmp_path):
    plain = run(build(registry, models="ae", metrics="reconstruction"), tmp_path / "a",
                registry=registry)  # fmt: skip
    held = run(build(registry, models="ae", metrics="reconstruction", val_fraction="0.25"),
               tmp_path / "b", registry=registry)  # fmt: skip
    assert plain.ran[0].hash != held.ran[0].hash
    rec = next(iter(records(tmp_path / "b").values()))
    assert len(rec["history"]["val_mse"]) == 2 and all(v > 0 for v in rec["history"]["val_mse"])
    assert rec["dataset_info"]["n_val"] == 50 and rec["dataset_info"]["n_train"] == 200


def test_sweep_cells_carry_their_values_and_labels(registry, tmp_path):
    cfg = build(registry, models="pca,vae", metrics="reconstruction",
                sweeps=["vae.beta=0.5,4", "latent_dim=2,3"])  # fmt: skip
    summary = run(cfg, tmp_path / "r", registry=registry)
    assert len(summary.ran) == 2 + 4  # pca sweeps latent_dim only
    labels = sorted(c.label for c in summary.ran)
    assert "vae (beta=4, latent_dim=3) / digits / seed 0" in labels
    rec = next(r for r in records(tmp_path / "r").values() if r["model"] == "vae")
    assert set(rec["config"]["sweep"]) == {"vae.beta", "latent_dim"}
    assert rec["config"]["params"]["beta"] == rec["config"]["sweep"]["vae.beta"]


def test_shards_split_the_grid_disjointly(registry, tmp_path):
    from vaebench.cells import plan, shard_cells

    cells = plan(build(registry, models="pca,ae,noisy,vae", seeds="0-4"), registry)
    parts = [shard_cells(cells, k, 3) for k in (1, 2, 3)]
    stems = [c.stem for part in parts for c in part]
    assert sorted(stems) == sorted(c.stem for c in cells) and len(set(stems)) == len(cells)
    assert all(parts)  # 20 cells over 3 shards: none empty


def test_python_api_mirrors_the_cli(registry, tmp_path):
    assert "vae" in vaebench.list_models() and vaebench.list_models("*ae") == [
        m for m in vaebench.list_models() if m.endswith("ae")
    ]
    m = vaebench.create_model("vae", (1, 28, 28))
    assert m.n_params > 0 and m.tags.has_posterior and m.tags.likelihood == "bernoulli"
    with pytest.raises(KeyError, match="unknown model 'nope'; valid:"):
        vaebench.create_model("nope", (1, 8, 8))
    summary = vaebench.run(
        models="ae", datasets="digits", seeds=[0], out=tmp_path / "r", epochs=2, subset=200,
        metrics="reconstruction", sets=FAST, workers=1, threads=1,
    )  # fmt: skip
    (cell,) = summary.ran
    stored = read_cell(tmp_path / "r" / "cells" / f"{cell.stem}.json")
    model = vaebench.load_model(tmp_path / "r", cell.stem)
    from vaebench.data.digits import load_digits

    ds = load_digits().subset(200)
    with torch.inference_mode():
        mse = float((model.decode(model.encode(ds.x_test)).double() - ds.x_test.double())
                    .pow(2).mean())  # fmt: skip
    assert mse == pytest.approx(stored["metrics"]["mse"], rel=1e-12, abs=0)
    again = vaebench.evaluate(tmp_path / "r", "reconstruction,active_units", workers=1)
    assert len(again.evaluated) == 1 and again.ran == []
    frame = vaebench.load_results(tmp_path / "r")
    assert {"mse", "active_units"} <= set(frame["metric"])


def test_schema_1_cells_load_and_can_be_evaluated(registry, tmp_path):
    """Old result folders still load (migrated in memory); evaluate writes them as schema 2."""
    out = tmp_path / "r"
    run(build(registry, models="pca", metrics="reconstruction"), out, registry=registry)
    (path,) = (out / "cells").glob("*.json")
    rec = json.loads(path.read_text())
    ev = rec.pop("evaluations")["reconstruction"]
    old = {**rec, "schema": "vaebench.cell/1", "metrics": ev["values"], "metric_info": ev["info"],
           "artifacts": ev["artifacts"]}  # fmt: skip
    path.write_text(json.dumps(old))
    migrated = read_cell(path)
    assert (
        migrated["schema"] == "vaebench.cell/2" and migrated["migrated_from"] == "vaebench.cell/1"
    )
    assert migrated["metrics"] == ev["values"]
    assert migrated["evaluations"]["reconstruction"]["key"] == ""  # recomputed when selected
    cfg = RunConfig.for_evaluation(registry, models=["pca"], datasets=["digits"],
                                   metrics="reconstruction", workers=1, threads=1)  # fmt: skip
    summary = evaluate(out, cfg, registry=registry)
    assert len(summary.evaluated) == 1
    now = json.loads(path.read_text())
    assert now["schema"] == "vaebench.cell/2" and "metrics" not in now
    assert now["evaluations"]["reconstruction"]["values"]["mse"] == pytest.approx(
        ev["values"]["mse"], rel=1e-12
    )
