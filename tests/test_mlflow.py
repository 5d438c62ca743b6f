"""MLflow tracking (the built-in plugin vaebench.tracking.mlflow) against temporary local
stores, read back through the MLflow client: one run per cell with params, per-epoch losses
and metrics, no duplicates on a second run, evaluate updates the same runs, a store that
fails warns once and loses no cell."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

mlflow = pytest.importorskip("mlflow")

from vaebench.config import RunConfig  # noqa: E402
from vaebench.grid import evaluate, run  # noqa: E402
from vaebench.tracking import mlflow as tracking  # noqa: E402

FAST = ["eval.throughput_seconds=0.01"]
ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE")


@pytest.fixture(autouse=True)
def clean_tracking(monkeypatch):
    """No tracking URI unless a test sets one; the plugin's per-process state is fresh; every
    variable the plugin or the CLI sets is removed again afterwards."""
    for name in ENV:
        monkeypatch.setenv(name, "x")  # records the original value for the undo
        monkeypatch.delenv(name)
    monkeypatch.setattr(tracking, "_folder_experiment", None)
    monkeypatch.setattr(tracking, "_failed", {})
    monkeypatch.setattr(tracking, "_clients", {})
    monkeypatch.setattr(tracking, "_experiments", {})


def grid(registry, metrics="reconstruction", **kw):
    """The acceptance grid, small: vae x beta 0.5,1,4 x seeds 0,1 (6 cells)."""
    return RunConfig.build(
        registry, models="vae", sweeps=["vae.beta=0.5,1,4"], datasets="digits", seeds="0,1",
        epochs="3", subset=150, device="cpu", workers=1, threads=1, metrics=metrics, sets=FAST,
        **kw,
    )  # fmt: skip


def runs_of(uri: str, experiment: str):
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r}"
    return client, client.search_runs([exp.experiment_id])


def test_each_cell_is_one_run_with_params_curves_metrics_and_the_record(
    registry, tmp_path, monkeypatch
):
    uri = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out = tmp_path / "beta-sweep"
    tracking.configure(None, out)
    summary = run(grid(registry), out, registry=registry, show_progress=False)
    assert len(summary.ran) == 6 and not summary.warnings

    frame = mlflow.search_runs(experiment_names=["beta-sweep"])  # MLflow's own reader
    assert len(frame) == 6 and set(frame["status"]) == {"FINISHED"}
    client, runs = runs_of(uri, "beta-sweep")
    by_cell = {r.data.tags["vaebench.cell"]: r for r in runs}
    assert set(by_cell) == {c.stem for c in summary.ran}
    for cell in summary.ran:
        r = by_cell[cell.stem]
        p = r.data.params
        assert (p["model"], p["dataset"], p["seed"]) == ("vae", "digits", str(cell.seed))
        assert p["training_key"] == cell.key == r.data.tags["vaebench.key"]
        assert float(p["sweep.vae.beta"]) == float(p["hp.beta"]) == cell.sweep["vae.beta"]
        assert p["hp.epochs"] == "3" and p["subset"] == "150"
        assert r.info.run_name == cell.label
        rec = tracking_record(out, cell.stem)
        assert r.data.metrics["mse"] == pytest.approx(rec["metrics"]["mse"])
        curve = client.get_metric_history(r.info.run_id, "train/loss")
        assert [m.step for m in curve] == [1, 2, 3]
        assert [m.value for m in curve] == pytest.approx(rec["history"]["loss"])
        assert r.data.tags["vaebench.training_run"] == summary.run_id
        assert r.data.tags["vaebench.threads"] == "1"
        (artifact,) = client.list_artifacts(r.info.run_id, "cell")
        assert artifact.path == f"cell/{cell.stem}.json"


def tracking_record(out, stem):
    from vaebench.results import read_cell

    return read_cell(out / "cells" / f"{stem}.json")


def test_second_run_adds_no_runs_and_evaluate_updates_them_in_place(
    registry, tmp_path, monkeypatch
):
    uri = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out = tmp_path / "grid"
    tracking.configure(None, out)
    cfg = grid(registry)
    run(cfg, out, registry=registry, show_progress=False)
    _, first = runs_of(uri, "grid")
    again = run(cfg, out, registry=registry, show_progress=False)
    assert len(again.skipped) == 6
    _, second = runs_of(uri, "grid")
    assert sorted(r.info.run_id for r in second) == sorted(r.info.run_id for r in first)

    added = grid(registry, metrics="reconstruction,knn")
    done = evaluate(out, added, registry=registry, show_progress=False)
    assert len(done.evaluated) == 6
    client, after = runs_of(uri, "grid")
    assert sorted(r.info.run_id for r in after) == sorted(r.info.run_id for r in first)
    for r in after:
        assert "knn_acc" in r.data.metrics and "mse" in r.data.metrics
        assert r.info.status == "FINISHED"
        # the curves were logged once: evaluate does not add epochs
        assert len(client.get_metric_history(r.info.run_id, "train/loss")) == 3


def test_failed_cell_is_a_failed_run_with_its_reason(fresh_plugins, tmp_path, monkeypatch):
    from test_executors import FAST as RUNNER_FAST
    from test_runner_reliability import ReliabilityTestPlugin

    fresh_plugins.get_plugin_manager().register(ReliabilityTestPlugin(), name="reliability-test")
    reg = fresh_plugins.get_registry()
    uri = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "failures")
    cfg = RunConfig.build(reg, models="pca,raises", subset=100, device="cpu", workers=1,
                          threads=1, sets=RUNNER_FAST)  # fmt: skip
    summary = run(cfg, tmp_path / "out", registry=reg, show_progress=False)
    assert [c.model for c, _ in summary.failed] == ["raises"]
    _, runs = runs_of(uri, "failures")
    status = {r.data.params["model"]: r for r in runs}
    assert status["pca"].info.status == "FINISHED"
    assert status["raises"].info.status == "FAILED"
    assert "boom: something broke inside fit" in status["raises"].data.tags["vaebench.error"]


def test_a_store_that_fails_warns_once_and_loses_no_cell(registry, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{blocker / 'mlruns'}")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="vaebench"):
        summary = run(grid(registry), out, registry=registry, show_progress=False)
    assert len(summary.ran) == 6 and not summary.failed and not summary.warnings
    assert len(list((out / "cells").glob("*.json"))) == 6
    mentions = [r for r in caplog.records if "MLflow tracking to" in r.getMessage()]
    assert len(mentions) == 1
    assert str(blocker) in mentions[0].getMessage()
    assert "vaebench mlflow RUN_DIR" in mentions[0].getMessage()


def test_without_mlflow_installed_the_uri_warns_once(registry, tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{tmp_path / 'mlruns'}")
    with caplog.at_level(logging.WARNING, logger="vaebench"):
        summary = run(grid(registry), tmp_path / "out", registry=registry, show_progress=False)
    assert len(summary.ran) == 6
    (message,) = [r.getMessage() for r in caplog.records if "MLflow" in r.getMessage()]
    assert "pip install 'vaebench[mlflow]'" in message
    assert not (tmp_path / "mlruns").exists()


def test_cli_option_logs_to_sqlite_named_after_the_folder(tmp_path, monkeypatch):
    from vaebench.cli import cli

    monkeypatch.chdir(tmp_path)
    uri = "sqlite:///mlflow.db"
    args = ["-q", "run", "--models", "pca", "--seeds", "0,1", "--subset", "100", "--threads",
            "1", "--workers", "1", "--metrics", "reconstruction", "--no-report", "--out",
            "results/pca-run", "--mlflow", uri]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    _, runs = runs_of(uri, "pca-run")
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]


def test_config_file_mlflow_key_logs_like_the_option_and_is_kept_for_resume(tmp_path, monkeypatch):
    import json

    from vaebench.cli import cli

    monkeypatch.chdir(tmp_path)
    uri = "sqlite:///from-file.db"
    (tmp_path / "c.toml").write_text(
        f'models = "pca"\nseeds = "0"\nsubset = 100\nthreads = 1\nworkers = 1\n'
        f'metrics = "reconstruction"\nout = "results/toml-run"\nmlflow = "{uri}"\n'
    )
    res = CliRunner().invoke(cli, ["-q", "run", "--config", "c.toml", "--no-report"])
    assert res.exit_code == 0, res.output
    _, runs = runs_of(uri, "toml-run")
    assert [r.data.params["seed"] for r in runs] == ["0"]
    (manifest,) = (tmp_path / "results" / "toml-run" / "manifests").glob("*.json")
    assert json.loads(manifest.read_text())["config"]["mlflow"] == uri  # resume reuses it


@pytest.mark.parametrize(("value", "shown"), [('""', "''"), ("3", "3")])
def test_config_file_mlflow_must_be_a_uri(tmp_path, value, shown):
    from vaebench.cli import cli

    (tmp_path / "c.toml").write_text(f'models = "pca"\nmlflow = {value}\n')
    res = CliRunner().invoke(cli, ["run", "--config", str(tmp_path / "c.toml")])
    assert res.exit_code == 2
    assert res.output == (
        f"Error: config file {tmp_path / 'c.toml'}: invalid mlflow {shown}: expected a tracking "
        "URI, e.g. sqlite:///mlflow.db or file:./mlruns\n"
    )


@pytest.mark.parametrize("where", ["option", "file"])
def test_mlflow_uri_with_a_password_is_refused_before_it_reaches_the_manifest(tmp_path, where):
    from vaebench.cli import cli

    uri = "postgresql://alice:s3cret@db.example/mlflow"
    args = ["run", "--models", "pca", "--out", str(tmp_path / "r")]
    if where == "option":
        args += ["--mlflow", uri]
    else:
        (tmp_path / "c.toml").write_text(f'models = "pca"\nmlflow = "{uri}"\n')
        args += ["--config", str(tmp_path / "c.toml")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    assert "contains a password" in res.output and "MLFLOW_TRACKING_PASSWORD" in res.output
    assert "s3cret" not in res.output  # not echoed either
    assert not (tmp_path / "r").exists()


def test_cli_mlflow_without_the_extra_exits_2_naming_it(tmp_path, monkeypatch):
    from vaebench.cli import cli

    monkeypatch.setitem(sys.modules, "mlflow", None)
    res = CliRunner().invoke(
        cli, ["run", "--models", "pca", "--out", str(tmp_path / "r"), "--mlflow", "file:./x"]
    )
    assert res.exit_code == 2
    assert "pip install 'vaebench[mlflow]'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()


def test_mlflow_command_logs_a_stored_folder_once(registry, tmp_path, monkeypatch):
    """`vaebench mlflow RUN_DIR`: a folder trained without tracking is logged; again, nothing
    is duplicated."""
    from vaebench.cli import cli

    monkeypatch.setattr(cli, "commands", dict(cli.commands))  # undone after the test
    tracking.vaebench_commands(cli)  # as main() adds plugin commands
    out = tmp_path / "stored"
    run(grid(registry), out, registry=registry, show_progress=False)
    uri = f"file:{tmp_path / 'mlruns'}"
    res = CliRunner().invoke(cli, ["mlflow", str(out), "--mlflow", uri])
    assert res.exit_code == 0, res.output
    assert "6 run(s) created, 0 updated, 0 unchanged in experiment 'stored'" in res.output
    res = CliRunner().invoke(cli, ["mlflow", str(out), "--mlflow", uri])
    assert "0 run(s) created, 0 updated, 6 unchanged" in res.output
    _, runs = runs_of(uri, "stored")
    assert len(runs) == 6
    res = CliRunner().invoke(cli, ["mlflow", str(tmp_path / "nothing-here"), "--mlflow", uri])
    assert res.exit_code == 2 and "results folder not found" in res.output


# ----------------------------------------------------------------------------- issue 19.7


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: How long `mlflow server` may take to answer /health (it took 44 s on the loaded 2-core
#: development machine).
SERVER_START_SECONDS = 180


@pytest.mark.slow
def test_default_store_reads_back_with_mlflows_client_and_server(tmp_path, monkeypatch):
    """`--mlflow` alone logs to sqlite:///mlruns.db in the current folder; MLflow's own client
    and a `mlflow server` (127.0.0.1, started and stopped here) read the runs back -- no
    "maintenance mode" refusal as with the file store the README once showed."""
    import os
    import shutil
    import signal
    import subprocess
    import time
    import urllib.request

    from vaebench.cli import cli

    monkeypatch.chdir(tmp_path)
    args = ["-q", "run", "--models", "pca", "--seeds", "0,1", "--subset", "100", "--threads",
            "1", "--workers", "1", "--metrics", "reconstruction", "--no-report", "--out",
            "results/default-store", "--mlflow"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "mlruns.db").is_file()
    _, runs = runs_of(tracking.DEFAULT_URI, "default-store")
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    expected = {r.data.params["seed"]: r.data.metrics["mse"] for r in runs}

    exe = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    if not Path(exe).exists():
        pytest.skip("the mlflow command is not installed")
    port = _free_port()
    server = subprocess.Popen(
        [exe, "server", "--backend-store-uri", tracking.DEFAULT_URI, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, "MLFLOW_ALLOW_FILE_STORE": "false"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not answer /health in time"
            time.sleep(1)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        _, served = runs_of(f"http://127.0.0.1:{port}", "default-store")
        assert {r.data.params["seed"]: r.data.metrics["mse"] for r in served} == expected
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def test_a_file_store_uri_warns_and_names_the_sqlite_default(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="vaebench.tracking.mlflow"):
        tracking.configure("file:./mlruns", tmp_path / "r")
    assert "maintenance mode" in caplog.text and "sqlite:///mlruns.db" in caplog.text
