"""Grid scaling benchmarks (issue 14): measured ratios, never timed assertions.

Skipped in the normal test run (they take minutes and load the machine). Run them with::

    pytest tests/benchmarks/test_grid_scaling.py --benchmark-enable -s
    python tests/benchmarks/test_grid_scaling.py            # the same, as a script

Each measurement starts ``vaebench run`` as a new process, as a user would (start-up and
worker spawning included), and prints wall times, cells per hour, the ratio and the 1-minute
load average before and after each run (the machine may be shared: say so with the numbers).

- ``workers``: the same grid with ``--workers 2 --threads 1`` against ``--workers 1 --threads 2``
  on two cores, alternated ``REPEATS`` times (issue 14 target: >= 1.1x the cells per hour);
- ``load``: the default ``vaebench run`` quiet against the same while two busy-loop processes
  keep both cores busy (target: <= 3x the quiet wall time).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPEATS = int(os.environ.get("VAEBENCH_SCALING_REPEATS", "2"))
#: The workers-vs-threads grid: 8 cells of a few seconds each on one core.
GRID = ["--models", "ae,vae", "--seeds", "0-3", "--epochs", "10", "--metrics",
        "reconstruction,knn"]  # fmt: skip


@pytest.fixture(autouse=True)
def only_when_benchmarking(request):
    if not request.config.getoption("benchmark_enable", False):
        pytest.skip("a benchmark of minutes: run with --benchmark-enable")


def _vaebench(out: Path, *args: str) -> dict:
    """Wall and CPU seconds (user + system, its workers included) of ``vaebench run ARGS --out
    OUT`` in a new process, with the 1-minute load average before and after."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-c", "from vaebench.cli import console; console()", "-q", "run", *args,
           "--no-report", "--no-progress", "--out", str(out)]  # fmt: skip
    load = _load()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    manifest = next((out / "manifests").glob("*.json"))
    execution = json.loads(manifest.read_text())["execution"]
    return {"seconds": round(seconds, 2), "cpu": round(cpu, 2), "load_before": load,
            "load_after": _load(), "workers": execution["concurrent"],
            "threads": execution["threads"]}  # fmt: skip


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def measure_workers(repeats: int = REPEATS) -> dict:
    """``--workers 2 --threads 1`` vs ``--workers 1 --threads 2`` on the same grid,
    alternated ``repeats`` times."""
    setups = {"w2t1": ["--workers", "2", "--threads", "1"],
              "w1t2": ["--workers", "1", "--threads", "2"]}  # fmt: skip
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vaebench-scaling-") as tmp:
        for i in range(repeats):
            for name, extra in setups.items():
                runs.append({"setup": name, **_vaebench(Path(tmp) / f"{name}-{i}", *GRID, *extra)})
    cells = 8
    out = {"grid": " ".join(GRID), "cells": cells, "cores": len(os.sched_getaffinity(0)),
           "runs": runs}  # fmt: skip
    for name in setups:
        best = min(r["seconds"] for r in runs if r["setup"] == name)
        out[name] = {"best_seconds": best, "cells_per_hour": round(cells * 3600 / best)}
    out["ratio_w2t1_over_w1t2"] = round(
        out["w1t2"]["best_seconds"] / out["w2t1"]["best_seconds"], 3
    )
    return out


def measure_load(repeats: int = REPEATS) -> dict:
    """The default ``vaebench run`` on the machine as it is ("quiet"), then while two busy
    loops keep both cores busy, alternated ``repeats`` times."""
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vaebench-load-") as tmp:
        for i in range(repeats):
            runs.append({"setup": "quiet", **_vaebench(Path(tmp) / f"quiet-{i}")})
            hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
            try:
                time.sleep(20)  # the 1-minute load average sees them, as the planner does
                runs.append({"setup": "busy", **_vaebench(Path(tmp) / f"busy-{i}")})
            finally:
                for hog in hogs:
                    hog.kill()
                    hog.wait()
    out: dict = {"cores": len(os.sched_getaffinity(0)), "runs": runs}
    for name in ("quiet", "busy"):
        out[name] = {"best_seconds": min(r["seconds"] for r in runs if r["setup"] == name)}
    out["ratio_busy_over_quiet"] = round(
        out["busy"]["best_seconds"] / out["quiet"]["best_seconds"], 2
    )
    return out


def test_two_one_thread_workers_against_one_two_thread_worker():
    result = measure_workers()
    print(json.dumps(result, indent=1))
    assert all(r["seconds"] > 0 for r in result["runs"])


def test_default_run_under_load_against_quiet():
    result = measure_load()
    print(json.dumps(result, indent=1))
    assert all(r["threads"] >= 1 for r in result["runs"])


if __name__ == "__main__":
    which = sys.argv[1:] or ["workers", "load"]
    if "workers" in which:
        print(json.dumps(measure_workers(), indent=1), flush=True)
    if "load" in which:
        print(json.dumps(measure_load(), indent=1), flush=True)
