"""Acceptance tests with real `vaebench run` processes: SIGKILL mid-grid then resume, two
writers on one folder, Ctrl-C and SIGTERM.

Every run uses a tiny budget (3 epochs on 200 images, short throughput timing) and one torch
thread, so a 12-cell grid takes seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vaebench.results import read_cell

GRID = [
    "run", "--models", "pca,ae,noisy,vae", "--seeds", "0,1,2", "--epochs", "3",
    "--subset", "200", "--device", "cpu", "--no-report", "--no-progress",
    "--set", "eval.throughput_seconds=0.02", "--set", "eval.n_pairs=16",
]  # fmt: skip
N_CELLS = 12
TIMING_UNITS = {"s", "samples/s"}


def vaebench(*args: str) -> subprocess.Popen:
    """Start the vaebench CLI in a child process (stderr captured, one torch thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", "from vaebench.cli import console; console()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def wait_for_cells(out: Path, n: int, proc: subprocess.Popen) -> None:
    """Poll until ``out`` holds at least ``n`` cell files (the process must still be running)."""
    while len(list((out / "cells").glob("*.json"))) < n:
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.02)


def manifests(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "manifests").glob("*.json"))]


def cells(out: Path) -> dict[str, dict]:
    """Every cell file, read with the same checks a report applies."""
    return {p.stem: read_cell(p) for p in sorted((out / "cells").glob("*.json"))}


def comparable(cell: dict) -> dict:
    info = cell["metric_info"]
    return {
        "metrics": {
            k: v for k, v in cell["metrics"].items() if info[k].get("unit") not in TIMING_UNITS
        },
        "history": cell["history"],
        "artifacts": cell["artifacts"],
    }


def leftovers(out: Path) -> list[Path]:
    """Temp files, staging folders and lock files: none may survive a completed run."""
    return [
        *out.rglob("*.tmp"),
        *out.rglob(".staging*"),
        *out.rglob("*.lock"),
    ]


def test_sigkill_mid_grid_then_resume_equals_an_uninterrupted_run(tmp_path):
    killed_dir, reference_dir = tmp_path / "killed", tmp_path / "reference"
    reference = vaebench(*GRID, "--out", str(reference_dir))
    victim = vaebench(*GRID, "--out", str(killed_dir))
    wait_for_cells(killed_dir, 3, victim)
    victim.send_signal(signal.SIGKILL)
    assert finish(victim)[0] == -signal.SIGKILL

    survived = cells(killed_dir)  # whatever is there must read cleanly
    assert 3 <= len(survived) < N_CELLS, "the run was not killed mid-way"
    (killed_manifest,) = manifests(killed_dir)
    assert killed_manifest["status"] == "running"  # it never got to say otherwise

    rc, err = finish(vaebench("run", "--resume", str(killed_dir), "--no-report", "--no-progress"))
    assert rc == 0, err
    assert f"0 cell(s) ran, {N_CELLS} already done" not in err
    rc, err = finish(reference)
    assert rc == 0, err

    final, expected = cells(killed_dir), cells(reference_dir)
    assert final.keys() == expected.keys() and len(final) == N_CELLS
    for stem in final:
        assert final[stem]["status"] == "ok"
        assert comparable(final[stem]) == comparable(expected[stem]), stem
    assert leftovers(killed_dir) == []

    # no cell ran twice: the resumed run ran exactly the cells the killed one had not saved
    killed, resumed = manifests(killed_dir)
    assert resumed["status"] == "finished" and resumed["run_id"] != killed["run_id"]
    assert set(resumed["summary"]["skipped"]) == set(survived)
    assert set(resumed["summary"]["ran"]) == set(final) - set(survived)
    assert set(killed["summary"]["ran"]) <= set(survived)
    for stem, rec in final.items():
        assert rec["run_id"] == (killed["run_id"] if stem in survived else resumed["run_id"])


def test_two_writers_share_one_folder_and_run_each_cell_once(tmp_path):
    out = tmp_path / "shared"
    first, second = vaebench(*GRID, "--out", str(out)), vaebench(*GRID, "--out", str(out))
    (rc1, err1), (rc2, err2) = finish(first), finish(second)
    assert (rc1, rc2) == (0, 0), err1 + err2

    final = cells(out)
    assert len(final) == N_CELLS and all(r["status"] == "ok" for r in final.values())
    ms = manifests(out)
    assert len(ms) == 2 and {m["status"] for m in ms} == {"finished"}
    ran = [stem for m in ms for stem in m["summary"]["ran"]]
    assert sorted(ran) == sorted(final)  # every cell ran exactly once, by one of the two
    by_run = {m["run_id"]: m for m in ms}
    for stem, rec in final.items():
        assert stem in by_run[rec["run_id"]]["summary"]["ran"]
        (other,) = [m for m in ms if m["run_id"] != rec["run_id"]]
        assert stem in other["summary"]["skipped"] + other["summary"]["elsewhere"]
    assert leftovers(out) == []


def test_diverging_model_fails_its_cells_the_rest_finish_and_report_lists_it(tmp_path):
    """In-process (the same code path as the command): no need to pay for a process start."""
    import torch
    from click.testing import CliRunner

    from vaebench.cli import cli

    out = tmp_path / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = CliRunner().invoke(cli, [
            "run", "--models", "pca,ae,vae", "--seeds", "0,1", "--epochs", "2", "--subset", "200",
            "--set", "ae.lr=1e6", "--set", "eval.throughput_seconds=0.02",
            "--set", "eval.n_pairs=16", "--no-progress", "--no-report", "--out", str(out),
        ])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    rc, err = result.exit_code, result.stderr
    assert rc == 1, err
    assert "4 cell(s) ran, 0 already done, 2 failed (of 6;" in err
    for seed in (0, 1):
        assert f"  ae / digits / seed {seed}: diverged: loss diverged at epoch 1/2" in err
    final = cells(out)
    assert sorted((r["model"], r["status"]) for r in final.values()) == sorted(
        [("ae", "failed")] * 2 + [("pca", "ok")] * 2 + [("vae", "ok")] * 2
    )
    assert "Traceback" not in err
    report = CliRunner().invoke(cli, ["report", str(out), "--no-figures"])
    assert report.exit_code == 0, report.output
    page = (out / "report.md").read_text()
    assert "Failed cells" in page and page.count("diverged: loss diverged at epoch 1/2") == 2


@pytest.mark.parametrize(
    ("sig", "code", "times"),
    [(signal.SIGINT, 130, 1), (signal.SIGTERM, 143, 1), (signal.SIGTERM, 143, 2),
     (signal.SIGINT, 130, 2)],
    ids=["int", "term", "term-twice", "int-twice"],
)  # fmt: skip
def test_interrupt_stops_cleanly_and_says_how_to_resume(tmp_path, sig, code, times):
    # twice: `timeout` signals the process and then its group; the second signal once killed
    # the process during its cleanup (no message, manifest left "running", locks left)
    out = tmp_path / "run"
    proc = vaebench(*GRID, "--out", str(out))
    wait_for_cells(out, 2, proc)
    for _ in range(times):
        proc.send_signal(sig)
        time.sleep(0.03)
    rc, err = finish(proc)

    assert rc == code, err
    assert f"Resume with: vaebench run --resume {out}" in err
    assert "Traceback" not in err
    (m,) = manifests(out)
    assert m["status"] == "interrupted" and m["signal"] == sig
    saved = cells(out)
    assert set(m["summary"]["ran"]) == set(saved) and 2 <= len(saved) < N_CELLS
    assert leftovers(out) == []


SECOND_SIGNAL = """
import os, signal, sys, time
from vaebench import grid
from vaebench.cli import console

store, abandon = grid.Grid._store, grid.Grid._abandon

def stored_then_stopped(self, *args):  # the first SIGTERM once a cell is stored
    store(self, *args)
    # a lock file no process holds, as a signal between a lock's creation and its
    # registration would leave: the cleanup removes it
    open(os.path.join(self.cells_dir, "pca--digits--seed9--leaked.lock"), "w").close()
    os.kill(os.getpid(), signal.SIGTERM)

def cleanup_under_fire(self):  # the second one while the grid cleans up
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.3)
    abandon(self)

grid.Grid._store, grid.Grid._abandon = stored_then_stopped, cleanup_under_fire
sys.argv = ["vaebench", *sys.argv[1:]]
console()
"""


def test_a_second_signal_during_the_cleanup_does_not_cut_it_short(tmp_path):
    # `timeout` signals the process and then its group: a second SIGTERM during the cleanup
    # once killed the process outright (no message, manifest "running", lock files left)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", SECOND_SIGNAL, *GRID, "--workers", "1", "--threads", "1",
         "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 143, proc.stderr
    assert f"Resume with: vaebench run --resume {out}" in proc.stderr
    (m,) = manifests(out)
    assert m["status"] == "interrupted" and m["signal"] == signal.SIGTERM
    assert len(cells(out)) == 1 and leftovers(out) == []
