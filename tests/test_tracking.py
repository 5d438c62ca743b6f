"""Tracking is a plugin capability: ``--track NAME=ARG`` reaches the tracker a plugin registers
through the ``vaebench_trackers`` hook; a W&B-style tracker needs no change to vaebench."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from vaebench.hookspecs import Tracker, hookimpl


class DemoTracker:
    """A tiny tracking plugin, written as a third party would: it records what it receives."""

    def __init__(self) -> None:
        self.configured: list[tuple[str | None, str]] = []
        self.finished: list[tuple[str, str, dict]] = []
        self.epochs: list[tuple[str, int, dict]] = []
        self.active: str | None = None

    def _configure(self, arg: str | None, out: str) -> None:
        if arg == "bad":
            raise ValueError("demo cannot log to 'bad'")
        self.configured.append((arg, out))
        self.active = arg

    @hookimpl
    def vaebench_trackers(self) -> list[Tracker]:
        return [Tracker("demo", self._configure, "records what it receives")]

    @hookimpl
    def vaebench_epoch_end(self, cell, epoch, logs) -> None:
        if self.active is not None:
            self.epochs.append((cell.label, epoch, dict(logs)))

    @hookimpl
    def vaebench_cell_finished(self, cell, record) -> None:
        if self.active is not None:
            self.finished.append((self.active, cell.stem, json.loads(json.dumps(record))))


@pytest.fixture
def demo(fresh_plugins):
    tracker = DemoTracker()
    fresh_plugins.get_plugin_manager().register(tracker, name="demo-tracker")
    return tracker


GRID = ["-m", "pca", "-d", "digits", "--epochs", "1", "--subset", "300", "--metrics",
        "reconstruction", "--workers", "1", "--threads", "1", "--no-report"]  # fmt: skip


def test_track_hands_its_argument_to_a_plugins_tracker_on_a_real_run(demo, tmp_path):
    from vaebench.cli import cli

    out = tmp_path / "r"
    result = CliRunner().invoke(cli, ["run", *GRID, "-o", str(out), "--track", "demo=proj-1"])
    assert result.exit_code == 0, result.output
    assert demo.configured == [("proj-1", str(out))]
    ((arg, stem, record),) = demo.finished
    assert arg == "proj-1"
    assert (out / "cells" / f"{stem}.json").is_file()
    assert record["status"] == "ok" and record["model"] == "pca" and record["dataset"] == "digits"
    assert record["evaluations"]["reconstruction"]["values"]["mse"] > 0
    assert [(label, epoch) for label, epoch, _ in demo.epochs] == [("pca / digits / seed 0", 1)]
    assert "loss" in demo.epochs[0][2]
    # the folder records the tracker it was run with: --resume tracks again
    manifests = [json.loads(p.read_text()) for p in (out / "manifests").glob("*.json")]
    assert [m["config"]["track"] for m in manifests] == [{"demo": "proj-1"}]


def test_a_tracker_not_asked_for_is_told_so_and_name_alone_means_its_default(demo, tmp_path):
    import vaebench

    out = tmp_path / "r"
    vaebench.run(models="pca", datasets="digits", out=out, epochs=1, subset=300,
                 metrics="reconstruction", workers=1, threads=1)  # fmt: skip
    assert demo.configured == [(None, str(out))] and demo.finished == []
    summary = vaebench.evaluate(out, "reconstruction", track={"demo": ""}, force=True,
                                workers=1, threads=1)  # fmt: skip
    assert demo.configured[-1] == ("", str(out))
    assert [stem for _, stem, _ in demo.finished] == [c.stem for c in summary.evaluated]


def test_unknown_tracker_and_bad_argument_are_one_line_errors(demo, tmp_path):
    from vaebench.cli import cli

    out = tmp_path / "r"
    result = CliRunner().invoke(cli, ["run", *GRID, "-o", str(out), "--track", "nosuch=1"])
    assert result.exit_code == 2
    assert result.output == "Error: unknown tracker 'nosuch' in --track; valid: demo, mlflow\n"
    assert demo.configured == [] and not (out / "cells").exists()
    result = CliRunner().invoke(cli, ["run", *GRID, "-o", str(out), "--track", "demo=bad"])
    assert result.exit_code == 2
    assert result.output == "Error: --track demo: demo cannot log to 'bad'\n"
    assert not list((out / "cells").glob("*.json"))
    result = CliRunner().invoke(cli, ["run", *GRID, "-o", str(out), "--track", "=x"])
    assert result.exit_code == 2 and "expected NAME=ARG" in result.output


def test_mlflow_is_a_tracker_registered_like_any_plugin(fresh_plugins):
    reg = fresh_plugins.get_registry()
    assert reg.tracker("mlflow").plugin == "vaebench.tracking.mlflow"
    assert isinstance(reg.tracker("mlflow").spec, Tracker)


def test_resume_names_a_stored_tracker_whose_plugin_is_gone(demo, tmp_path, fresh_plugins):
    """A run started with ``--track demo=x`` and resumed after the demo plugin was uninstalled:
    one line saying the tracker came from the stored manifest, not from the command line."""
    from vaebench.cli import cli

    out = tmp_path / "r"
    result = CliRunner().invoke(cli, ["run", *GRID, "-o", str(out), "--track", "demo=x"])
    assert result.exit_code == 0, result.output
    fresh_plugins.reset()  # the demo tracker's plugin is gone: built-ins only
    assert "demo" not in fresh_plugins.get_registry().trackers
    result = CliRunner().invoke(cli, ["run", "--resume", str(out)])
    assert result.exit_code == 2
    assert result.output == (
        f"Error: cannot resume {out}: it was run with tracker(s) 'demo' (stored in its "
        "manifest), which no installed plugin provides; install the plugin again (installed "
        "trackers: mlflow)\n"
    )
