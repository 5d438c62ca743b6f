"""``--resume`` keeps the execution settings (issue 11.8), with real processes: a ``--threads 1
--workers 1`` run killed with SIGKILL after its first cell and resumed with ``vaebench run
--resume OUT`` gives exactly the numbers of an uninterrupted ``--threads 1`` run; settings given
again with ``--resume`` override the stored ones and are recorded.

The child processes run without ``OMP_NUM_THREADS``, so only the stored settings can keep the
thread and worker counts of the interrupted run (the defaults are one worker per core, ``cores
// workers`` threads each)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vaebench.results import read_cell

GRID = [
    "run", "--models", "pca,ae", "--seeds", "0,1", "--epochs", "2", "--subset", "150",
    "--device", "cpu", "--threads", "1", "--workers", "1", "--no-report", "--no-progress",
    "--set", "eval.throughput_seconds=0.02", "--set", "eval.n_pairs=16",
]  # fmt: skip
N_CELLS = 4
TIMING_UNITS = {"s", "samples/s"}


def vaebench(*args: str) -> subprocess.Popen:
    """The CLI in a child process, with the environment's thread settings removed."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return subprocess.Popen(
        [sys.executable, "-c", "from vaebench.cli import console; console()", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def cells(out: Path) -> dict[str, dict]:
    return {p.stem: read_cell(p) for p in sorted((out / "cells").glob("*.json"))}


def manifests(out: Path) -> list[dict]:
    found = [json.loads(p.read_text()) for p in (out / "manifests").glob("*.json")]
    return sorted(found, key=lambda m: m["started"])


def numbers(cell: dict) -> dict:
    """Every quality metric (timings aside), the loss curves and the stored images."""
    info = cell["metric_info"]
    return {
        "metrics": {
            k: v for k, v in cell["metrics"].items() if info[k].get("unit") not in TIMING_UNITS
        },
        "history": cell["history"],
        "artifacts": cell["artifacts"],
    }


def test_resume_after_sigkill_keeps_threads_and_workers_and_the_numbers(tmp_path):
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    reference = vaebench(*GRID, "--out", str(reference_dir))
    victim = vaebench(*GRID, "--out", str(killed_dir))
    while not list((killed_dir / "cells").glob("*.json")):
        assert victim.poll() is None, victim.communicate()[1]
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert finish(victim)[0] == -signal.SIGKILL
    survived = set(cells(killed_dir))
    assert 1 <= len(survived) < N_CELLS, "the run was not killed mid-way"

    rc, err = finish(vaebench("run", "--resume", str(killed_dir), "--no-report", "--no-progress"))
    assert rc == 0, err
    assert "1 worker(s) x 1 thread(s)" in err
    rc, err = finish(reference)
    assert rc == 0, err

    killed, resumed = manifests(killed_dir)
    for key in ("threads", "workers"):
        assert killed["config"][key] == resumed["config"][key] == 1
    assert resumed["execution"]["threads"] == 1 and resumed["execution"]["workers"] == 1
    final, expected = cells(killed_dir), cells(reference_dir)
    assert final.keys() == expected.keys() and len(final) == N_CELLS
    for stem, rec in final.items():
        assert rec["status"] == "ok"
        assert rec["execution"]["threads"] == 1, stem
        assert numbers(rec) == numbers(expected[stem]), stem
    assert set(resumed["summary"]["ran"]) == set(final) - survived

    # settings given again override the stored ones, for this resume and the next
    redo = sorted(stem for stem in final if stem.startswith("ae--"))[:2]
    for stem in redo:
        (killed_dir / "cells" / f"{stem}.json").unlink()
    rc, err = finish(vaebench("run", "--resume", str(killed_dir), "--threads", "2",
                              "--no-report", "--no-progress"))  # fmt: skip
    assert rc == 0, err
    assert "2 cell(s) ran" in err and "x 2 thread(s)" in err
    override = manifests(killed_dir)[-1]
    assert override["config"]["threads"] == 2 and override["config"]["workers"] == 1
    assert override["execution"]["threads"] == 2
    after = cells(killed_dir)
    assert sorted(override["summary"]["ran"]) == redo
    for stem in redo:
        assert after[stem]["execution"]["threads"] == 2
        assert after[stem]["environment"]["torch_threads"] == 2
