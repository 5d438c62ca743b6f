"""The runner in-process: failure isolation, resume, force, corrupt and left-over files,
interruption, busy cells, bad datasets and determinism."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch

from vaebench.cells import plan
from vaebench.config import RunConfig
from vaebench.dataset import DatasetError, DatasetSpec
from vaebench.fileio import HOST_TAG
from vaebench.grid import run
from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench.models.ae import AE
from vaebench.models.pca import PCA
from vaebench.results import (
    CellLock,
    ResultsError,
    atomic_write_json,
    read_cell,
)
from vaebench.signals import RunInterrupted

FAST = ["eval.throughput_seconds=0.01", "eval.n_pairs=16"]
INTERRUPT_AT_FIT = threading.Event()


class NaNLossAE(AE):
    """Its loss turns NaN at once: the training loop must report divergence."""

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().loss(x)
        return {"loss": out["loss"] * float("nan")}


class NaNOutputPCA(PCA):
    """Trains fine, then decodes to NaN (NaN weights that never showed in the loss)."""

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return super().decode(z) * float("nan")


class RaisingPCA(PCA):
    def fit(self, x, progress=None):
        raise RuntimeError("boom: something broke inside fit")


class ExitingPCA(PCA):
    """A plugin bug: calls sys.exit inside fit."""

    def fit(self, x, progress=None):
        raise SystemExit(3)


class OutOfMemoryPCA(PCA):
    def fit(self, x, progress=None):
        raise MemoryError("simulated allocation failure")


class InterruptiblePCA(PCA):
    """Behaves like Ctrl-C in the middle of fit while ``INTERRUPT_AT_FIT`` is set."""

    def fit(self, x, progress=None):
        if INTERRUPT_AT_FIT.is_set():
            raise KeyboardInterrupt
        return super().fit(x, progress)


def broken_loader(path: str = "") -> object:
    """A dataset plugin reading a damaged file with a library that raises its own errors."""
    import numpy as np

    return np.load(path, allow_pickle=False)["x"]


class ReliabilityTestPlugin:
    @hookimpl
    def vaebench_models(self):
        return [
            ModelSpec("nanloss", NaNLossAE, "diverges"),
            ModelSpec("nanout", NaNOutputPCA, "NaN reconstructions"),
            ModelSpec("raises", RaisingPCA, "raises in fit"),
            ModelSpec("oom", OutOfMemoryPCA, "runs out of memory"),
            ModelSpec("exits", ExitingPCA, "calls sys.exit"),
            ModelSpec("interruptible", InterruptiblePCA, "Ctrl-C inside fit"),
        ]

    @hookimpl
    def vaebench_datasets(self):
        return [DatasetSpec("brokenfile", broken_loader, "a corrupt .npz", shape=(1, 8, 8))]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared, loaded machine two spinning threads per op are far slower
    (and the results are compared within one process, so the count only has to be fixed)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def reg(fresh_plugins):
    """The registry with the built-ins plus the failing test models above."""
    fresh_plugins.get_plugin_manager().register(ReliabilityTestPlugin(), name="reliability-test")
    return fresh_plugins.get_registry()


def build(reg, models: str, seeds: str = "0", epochs: int = 1, sets=(), **kw) -> RunConfig:
    """A small grid run in this process on one thread (the process pool has its own tests)."""
    kw = {"workers": 1, "threads": 1, **kw}
    return RunConfig.build(
        reg, models=models, seeds=seeds, epochs=str(epochs), subset=150, device="cpu",
        sets=[*FAST, *sets], **kw,
    )  # fmt: skip


def manifests(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "manifests").glob("*.json"))]


def cell_files(out: Path) -> dict[str, dict]:
    return {p.stem: read_cell(p) for p in sorted((out / "cells").glob("*.json"))}


def comparable(cell: dict) -> dict:
    """What must not change between two runs of one cell: every metric except timings, the
    loss curve and the stored images."""
    timing_units = {"s", "samples/s"}
    info = cell["metric_info"]
    return {
        "metrics": {
            k: v for k, v in cell["metrics"].items() if info[k].get("unit") not in timing_units
        },
        "history": cell["history"],
        "artifacts": cell["artifacts"],
        "config_hash": cell["config_hash"],
    }


# ----------------------------------------------------------------------------- failure isolation


def test_failing_cells_are_recorded_and_the_grid_finishes(reg, tmp_path):
    cfg = build(reg, "pca,nanloss,nanout,raises,oom,exits,ae")
    summary = run(cfg, tmp_path, registry=reg, show_progress=False)

    assert [c.model for c in summary.ran] == ["pca", "ae"]
    reasons = {c.model: r for c, r in summary.failed}
    assert reasons["nanloss"].startswith("diverged: loss diverged at epoch 1/1")
    assert reasons["nanout"].startswith("model contract: model.decode returned NaN")
    # a third-party model's failure names the plugin it came from
    note = " [model from unknown distribution ? (plugin reliability-test)]"
    assert all(r.endswith(note) for r in reasons.values())
    assert reasons["raises"] == "RuntimeError: boom: something broke inside fit" + note
    assert reasons["oom"] == "out of memory: MemoryError: simulated allocation failure" + note
    assert reasons["exits"] == "SystemExit: 3" + note
    for c, reason in summary.failed:
        rec = read_cell(tmp_path / "cells" / f"{c.stem}.json")
        assert rec["status"] == "failed" and rec["error"]["reason"] == reason
        assert rec["error"]["traceback"].startswith("Traceback (most recent call last)")
        assert not (tmp_path / "states" / f"{c.stem}.pt").exists()
    for c in summary.ran:
        assert read_cell(tmp_path / "cells" / f"{c.stem}.json")["status"] == "ok"
        assert (tmp_path / "states" / f"{c.stem}.pt").exists()
    (m,) = manifests(tmp_path)
    assert m["status"] == "finished"
    assert set(m["summary"]["failed"]) == {c.stem for c, _ in summary.failed}
    assert not list(tmp_path.rglob("*.lock")) and not list(tmp_path.rglob(".staging*"))


def test_report_lists_failed_cells(reg, tmp_path):
    from vaebench.report import build_report

    run(build(reg, "pca,raises,nanloss"), tmp_path, registry=reg, show_progress=False)
    build_report([str(tmp_path)], out_dir=str(tmp_path), figures=False)
    page = (tmp_path / "report.md").read_text()
    assert "Failed cells" in page
    assert "RuntimeError: boom: something broke inside fit" in page
    assert "diverged: loss diverged at epoch 1/1" in page


def test_cli_exit_code_and_summary_name_failed_cells(reg, tmp_path):
    from click.testing import CliRunner

    from vaebench.cli import cli

    args = ["run", "--models", "pca,raises", "--epochs", "1", "--subset", "150", "--out",
            str(tmp_path), "--no-report", *[a for s in FAST for a in ("--set", s)]]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "1 cell(s) ran, 0 already done, 1 failed (of 2;" in result.stderr
    assert "raises / digits / seed 0: RuntimeError: boom" in result.stderr
    assert "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- resume


def test_rerun_skips_finished_cells_and_retries_failed_ones(reg, tmp_path):
    cfg = build(reg, "pca,raises,ae", seeds="0,1")
    first = run(cfg, tmp_path, registry=reg, show_progress=False)
    before = {k: v["run_id"] for k, v in cell_files(tmp_path).items()}
    second = run(cfg, tmp_path, registry=reg, show_progress=False)

    assert {c.stem for c in second.skipped} == {c.stem for c in first.ran}
    assert {c.stem for c, _ in second.failed} == {c.stem for c, _ in first.failed}
    assert second.ran == []
    after = cell_files(tmp_path)
    for stem, rec in after.items():
        expected = first.run_id if rec["status"] == "ok" else second.run_id
        assert rec["run_id"] == expected, stem
    assert before.keys() == after.keys()


def test_changed_settings_run_as_new_cells_next_to_the_old(reg, tmp_path):
    run(build(reg, "ae"), tmp_path, registry=reg, show_progress=False)
    summary = run(build(reg, "ae", epochs=2), tmp_path, registry=reg, show_progress=False)
    assert len(summary.ran) == 1 and summary.skipped == []
    assert sorted(rec["config"]["params"]["epochs"] for rec in cell_files(tmp_path).values()) == [
        1,
        2,
    ]


def test_force_reruns_finished_cells(reg, tmp_path):
    cfg = build(reg, "pca", seeds="0,1")
    first = run(cfg, tmp_path, registry=reg, show_progress=False)
    forced = run(cfg, tmp_path, registry=reg, force=True, show_progress=False)
    assert [c.stem for c in forced.ran] == [c.stem for c in first.ran]
    assert {r["run_id"] for r in cell_files(tmp_path).values()} == {forced.run_id}


def test_corrupt_cell_file_is_rerun_and_replaced(reg, tmp_path):
    cfg = build(reg, "pca", seeds="0,1")
    run(cfg, tmp_path, registry=reg, show_progress=False)
    victim = sorted((tmp_path / "cells").glob("*.json"))[0]
    victim.write_text(victim.read_text()[:100])  # truncated by a disk error or a careless edit
    summary = run(cfg, tmp_path, registry=reg, show_progress=False)
    assert [c.stem for c in summary.ran] == [victim.stem]
    assert read_cell(victim)["status"] == "ok"


def test_leftovers_of_a_killed_run_are_ignored_and_cleaned(reg, tmp_path):
    """What SIGKILL can leave: temp files, a staging folder with half a state, a lock file."""
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    cfg = build(reg, "pca", seeds="0,1")
    stems = [c.stem for c in plan(cfg, reg)]
    cells = tmp_path / "cells"
    cells.mkdir(parents=True)
    temp = cells / f".{stems[0]}.json.{gone.pid}.{HOST_TAG}.k1j2h3.tmp"
    temp.write_text('{"schema": "vaebench.cell/1", "status": "o')
    stage = tmp_path / "states" / f".staging.{gone.pid}.{HOST_TAG}"
    stage.mkdir(parents=True)
    (stage / "tmpab12.tmp").write_bytes(b"\x80\x02half")
    (cells / f"{stems[1]}.lock").write_text(f"somehost:{gone.pid}\n")

    summary = run(cfg, tmp_path, registry=reg, show_progress=False)

    assert sorted(c.stem for c in summary.ran) == sorted(stems)
    assert not temp.exists() and not stage.exists()
    assert not list(cells.glob("*.lock")) and not list(tmp_path.rglob("*.tmp"))
    assert sorted(p.stem for p in (tmp_path / "states").glob("*.pt")) == sorted(stems)


def test_interrupt_keeps_finished_cells_and_resume_completes(reg, tmp_path):
    cfg = build(reg, "pca,interruptible,ae")
    INTERRUPT_AT_FIT.set()
    try:
        with pytest.raises(RunInterrupted) as info:
            run(cfg, tmp_path, registry=reg, show_progress=False)
    finally:
        INTERRUPT_AT_FIT.clear()
    done = info.value.summary
    assert [c.model for c in done.ran] == ["pca"] and info.value.signum == 2
    (m,) = manifests(tmp_path)
    assert m["status"] == "interrupted" and m["summary"]["ran"] == [done.ran[0].stem]
    assert list(cell_files(tmp_path)) == [done.ran[0].stem]
    assert not list(tmp_path.rglob("*.lock")) and not list(tmp_path.rglob(".staging*"))

    resumed = run(cfg, tmp_path, registry=reg, show_progress=False)
    assert [c.model for c in resumed.skipped] == ["pca"]
    assert [c.model for c in resumed.ran] == ["interruptible", "ae"]


def test_interrupt_right_after_a_cell_was_saved_still_counts_it(reg, tmp_path, monkeypatch):
    """Ctrl-C between writing a cell and booking it: the summary and manifest follow the files."""
    import vaebench.grid as grid_module

    real_write = grid_module.write_cell

    def write_then_interrupt(path, obj, *root):
        real_write(path, obj, *root)
        raise KeyboardInterrupt

    monkeypatch.setattr(grid_module, "write_cell", write_then_interrupt)
    with pytest.raises(RunInterrupted) as info:
        run(build(reg, "pca", seeds="0,1"), tmp_path, registry=reg, show_progress=False)
    (saved,) = cell_files(tmp_path)
    assert [c.stem for c in info.value.summary.ran] == [saved]
    assert manifests(tmp_path)[0]["summary"]["ran"] == [saved]


# ----------------------------------------------------------------------------- two writers


def test_busy_cell_is_waited_for_and_not_run_again(reg, tmp_path):
    """A cell claimed by another writer is left to it; once it is released with a result, this
    run counts it as done elsewhere instead of running it a second time."""
    cfg = build(reg, "pca", seeds="0,1,2")
    stems = [c.stem for c in plan(cfg, reg)]
    reference = tmp_path / "reference"
    run(build(reg, "pca", seeds="1"), reference, registry=reg, show_progress=False)
    out = tmp_path / "shared"
    other = CellLock(out / "cells" / f"{stems[1]}.lock")
    assert other.acquire()
    result: dict = {}
    worker = threading.Thread(
        target=lambda: result.update(s=run(cfg, out, registry=reg, show_progress=False))
    )
    worker.start()
    while True:  # wait until the run has finished everything it can
        ms = manifests(out) if (out / "manifests").exists() else []
        if ms and len(ms[0]["summary"]["ran"]) == 2:
            break
        assert worker.is_alive()
        time.sleep(0.05)
    assert not (out / "cells" / f"{stems[1]}.json").exists()
    # the "other writer" finishes the cell and releases it
    finished = json.loads(next((reference / "cells").glob("*.json")).read_text())
    atomic_write_json(out / "cells" / f"{stems[1]}.json", {**finished, "run_id": "other"})
    other.release()
    worker.join(60)
    summary = result["s"]
    assert [c.stem for c in summary.elsewhere] == [stems[1]]
    assert sorted(c.stem for c in summary.ran) == sorted([stems[0], stems[2]])
    assert read_cell(out / "cells" / f"{stems[1]}.json")["run_id"] == "other"


def test_cell_released_without_result_is_run_by_the_waiter(reg, tmp_path):
    """The other writer was interrupted: the waiting run picks the cell up."""
    cfg = build(reg, "pca", seeds="0,1")
    stems = [c.stem for c in plan(cfg, reg)]
    other = CellLock(tmp_path / "cells" / f"{stems[0]}.lock")
    assert other.acquire()
    result: dict = {}
    worker = threading.Thread(
        target=lambda: result.update(s=run(cfg, tmp_path, registry=reg, show_progress=False))
    )
    worker.start()
    while not (tmp_path / "cells" / f"{stems[1]}.json").exists():
        assert worker.is_alive()
        time.sleep(0.05)
    other.release()
    worker.join(60)
    assert sorted(c.stem for c in result["s"].ran) == sorted(stems)


# ----------------------------------------------------------------------------- bad input


def test_folder_of_another_schema_is_refused_before_training(reg, tmp_path):
    old = {"schema": "vaebench.cell/0", "status": "ok", "model": "pca", "dataset": "digits",
           "seed": 0, "config_hash": "0" * 12}  # fmt: skip
    atomic_write_json(tmp_path / "cells" / "pca--digits--seed0--000000000000.json", old)
    with pytest.raises(ResultsError, match="another vaebench version"):
        run(build(reg, "pca"), tmp_path, registry=reg, show_progress=False)
    assert not (tmp_path / "manifests").exists()


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["ae.hidden=512,-3"], "model 'ae' with epochs=1, hidden=(512, -3): hidden must be a sequence of "
                               "positive integers, got (512, -3)"),
        (["ae.recon_loss=foo"], "model 'ae' with epochs=1, recon_loss='foo': unknown recon_loss 'foo'; "
                                "valid: bce, mse"),
        (["vae.beta=-1"], "model 'vae' with beta=-1.0, epochs=1: beta must be a finite number >= 0"),
        (["eval.n_pairs=1000000000000"], "metric 'acai': invalid value 1000000000000 for "
                                         "eval.n_pairs"),
    ],
)  # fmt: skip
def test_bad_model_or_metric_options_stop_the_grid_before_any_cell_trains(
    reg, tmp_path, sets, message
):
    """The grid starts with pca, which is fine: had the options been checked per cell, pca
    would have trained first. Model parameters are checked by building each model on the
    ``meta`` device, metric options by each metric, before the first cell."""
    from vaebench.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        run(build(reg, "pca,ae,vae", sets=sets), tmp_path, registry=reg, show_progress=False)
    assert message in str(err.value)
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.pt"))


def test_unreadable_dataset_stops_the_run_before_any_training(reg, tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    cfg = build(reg, "pca", datasets="digits,brokenfile", sets=[f"brokenfile.path={bad}"])
    with pytest.raises(DatasetError, match="cannot load dataset 'brokenfile': BadZipFile"):
        run(cfg, tmp_path / "out", registry=reg, show_progress=False)
    assert list((tmp_path / "out" / "cells").glob("*.json")) == []
    assert manifests(tmp_path / "out") == []  # nothing started: datasets load before the grid


# ----------------------------------------------------------------------------- determinism


def test_same_grid_twice_gives_identical_results(reg, tmp_path):
    """Same seeds, same CPU: identical metrics (timings aside), loss curves and images, even
    when the cells run in another order (each cell reseeds everything)."""
    a = build(reg, "pca,ae,noisy,vae", seeds="0,1", epochs=2)
    b = build(reg, "vae,noisy,ae,pca", seeds="1,0", epochs=2)
    run(a, tmp_path / "a", registry=reg, show_progress=False)
    run(b, tmp_path / "b", registry=reg, show_progress=False)
    cells_a, cells_b = cell_files(tmp_path / "a"), cell_files(tmp_path / "b")
    assert cells_a.keys() == cells_b.keys() and len(cells_a) == 8
    for stem in cells_a:
        assert comparable(cells_a[stem]) == comparable(cells_b[stem]), stem
    # and different seeds do give different models
    ae = sorted(k for k in cells_a if k.startswith("ae--"))
    assert cells_a[ae[0]]["history"] != cells_a[ae[1]]["history"]


# ----------------------------------------------------------------------------- safe files


class Payload:
    """Stands for an object a malicious state file would smuggle in through pickle."""


def test_states_are_plain_state_dicts_and_pickled_objects_are_refused(reg, tmp_path):
    cfg = build(reg, "pca,ae")
    summary = run(cfg, tmp_path, registry=reg, show_progress=False)
    for cell in summary.ran:
        state = torch.load(tmp_path / "states" / f"{cell.stem}.pt", weights_only=True)
        assert state and all(isinstance(v, torch.Tensor) for v in state.values())
        assert read_cell(tmp_path / "cells" / f"{cell.stem}.json")["schema"] == "vaebench.cell/2"
    evil = tmp_path / "evil.pt"
    torch.save({"mean": Payload()}, evil)
    model = reg.model("pca").spec.create((1, 8, 8))
    with pytest.raises(Exception, match="(?i)weights_only|unpickl|unsupported"):
        model.load(evil)


# ----------------------------------------------------------------------------- CLI edges


def test_bench_reports_a_failing_model_and_times_the_others(reg):
    from click.testing import CliRunner

    from vaebench.cli import cli

    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "--models",
            "pca,raises",
            "--train-samples",
            "64",
            "--repeats",
            "3",
            "--window",
            "0.01",
        ],  # fmt: skip
    )
    assert result.exit_code == 1, result.output
    assert "raises     FAILED: RuntimeError: boom: something broke inside fit" in result.output
    assert any(line.startswith("pca ") for line in result.output.splitlines())


def test_disk_full_stops_the_run_with_one_line_and_keeps_finished_cells(reg, tmp_path, monkeypatch):
    import errno

    from click.testing import CliRunner

    import vaebench.grid as grid_module
    from vaebench.cli import cli

    real_write = grid_module.write_cell
    writes = []

    def fill_disk_on_second_cell(path, obj, *root):
        writes.append(path)
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, obj, *root)

    monkeypatch.setattr(grid_module, "write_cell", fill_disk_on_second_cell)
    args = ["run", "--models", "pca", "--seeds", "0,1", "--epochs", "1", "--subset", "150",
            "--out", str(tmp_path), "--no-report", *[a for s in FAST for a in ("--set", s)]]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 74  # EX_IOERR: documented in run --help and docs/reliability.md
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"Error: no space left on device while writing to {tmp_path}; finished cells are intact"
        )
    )
    assert len(cell_files(tmp_path)) == 1 and manifests(tmp_path)[0]["status"] == "aborted"


# ----------------------------------------------------------------------------- damaged results


@pytest.fixture(scope="module")
def real_cells(tmp_path_factory):
    """Two genuine cell files (pca, seeds 0 and 1) to damage."""
    from vaebench.plugins import get_registry

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("real")
    reg = get_registry()
    run(build(reg, "pca", seeds="0,1"), out, registry=reg, show_progress=False)
    return sorted((out / "cells").glob("*.json"))


RECON = ("evaluations", "reconstruction")
DAMAGE = [
    ("config", "params", "x"),
    ("config", "dataset_options", [1]),
    ("dataset_info", "shape", None),
    ("dataset_info", "n_test", "many"),
    ("environment", "git", "x"),
    ("environment", "torch", [1]),
    ((*RECON, "info"), "mse", "x"),
    ((*RECON, "info", "mse"), "decimals", None),
    ((*RECON, "info", "mse"), "higher_is_better", "yes"),
    ((*RECON, "info", "mse"), "metric", [1]),
    ((*RECON, "artifacts", "recon_outputs"), "png_b64", "!!not base64!!"),
    ((*RECON, "artifacts", "recon_outputs"), "png_b64", "aGVsbG8="),  # base64, not a PNG
    ((*RECON, "artifacts", "recon_outputs"), "shape", [99, 1, 8, 8]),
    ((*RECON, "values"), "psnr", "high"),
    (RECON, "status", "great"),
    (RECON, "nan", [1]),
    ("evaluations", "acai", "x"),
    ((), "warnings", {"not": "a list"}),
    ("model_info", "n_params", "lots"),
    ("plugins", "model", 3),
    ("history", "loss", ["x"]),
    ((), "wall_seconds", "slow"),
]


@pytest.mark.parametrize(("where", "key", "value"), DAMAGE, ids=lambda v: str(v)[:20])
def test_report_names_a_damaged_cell_file_instead_of_crashing(
    real_cells, tmp_path, where, key, value
):
    from click.testing import CliRunner

    from vaebench.cli import cli

    cell = json.loads(real_cells[0].read_text())
    parent = cell
    for part in (where,) if isinstance(where, str) else where:
        parent = parent[part]
    parent[key] = value
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / real_cells[0].name).write_text(json.dumps(cell))
    (tmp_path / "cells" / real_cells[1].name).write_text(real_cells[1].read_text())
    result = CliRunner().invoke(cli, ["report", str(tmp_path), "--no-figures"])
    assert result.exit_code == 2, (result.output, result.exception)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: corrupt result file") and real_cells[0].name in line
