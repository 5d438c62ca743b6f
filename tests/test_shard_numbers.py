"""Issue 19 item 4: same cell, same numbers, whatever the grid. `vaebench run --shard 1/2` and
`--shard 2/2` together give bit-identical quality metrics to the unsharded grid at default
execution options (no --workers, no --threads), also while another process keeps a core busy
and while the planner sees a fully loaded machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from vaebench import executors
from vaebench.cli import cli
from vaebench.results import load_cells

#: Three cells: one shard gets two, the other one (a one-cell grid once got every core's
#: threads where the full grid had one per worker).
GRID = ["run", "--models", "ae,vae,pca", "--seeds", "0", "--epochs", "1", "--subset", "120",
        "--no-report", "--set", "eval.throughput_seconds=0.01", "--set", "eval.n_pairs=16",
        "--set", "ae.hidden=32", "--set", "vae.hidden=32"]  # fmt: skip
#: A competing load: one core kept busy, for at most this many seconds.
BUSY_SECONDS = 120


def _quality(out: Path) -> dict[tuple[str, int, str], object]:
    vals = {}
    for rec in load_cells(out):
        assert rec["status"] == "ok", rec.get("error")
        for key, v in rec["metrics"].items():
            if "seconds" in key or "per_s" in key:
                continue  # wall-clock timings are measurements, not functions of the weights
            vals[(rec["model"], rec["seed"], key)] = v
    return vals


def _threads(out: Path) -> set[int]:
    return {rec["execution"]["threads"] for rec in load_cells(out)}


def test_shards_give_the_numbers_of_the_full_grid_also_under_load(tmp_path, monkeypatch):
    full = CliRunner().invoke(cli, [*GRID, "--out", str(tmp_path / "full")])
    assert full.exit_code == 0, full.output
    busy = subprocess.Popen(
        [sys.executable, "-c",
         f"import time\nt = time.time()\nwhile time.time() - t < {BUSY_SECONDS}: pass"],
    )  # fmt: skip
    try:
        one = CliRunner().invoke(cli, [*GRID, "--shard", "1/2", "--out", str(tmp_path / "sh")])
        assert one.exit_code == 0, one.output
        # the planner sees every core busy: fewer workers at once, never other threads
        monkeypatch.setattr(executors, "_busy_cores", lambda: 10**3)
        two = CliRunner().invoke(cli, [*GRID, "--shard", "2/2", "--out", str(tmp_path / "sh")])
        assert two.exit_code == 0, two.output
    finally:
        busy.kill()
        busy.wait(timeout=30)
    expected, got = _quality(tmp_path / "full"), _quality(tmp_path / "sh")
    assert len(expected) > 10 and got.keys() == expected.keys()
    differing = {k: (expected[k], got[k]) for k in expected if expected[k] != got[k]}
    assert not differing
    assert _threads(tmp_path / "full") == _threads(tmp_path / "sh")


def test_dask_cells_record_the_clusters_worker_count_not_the_local_default():
    from types import SimpleNamespace

    from vaebench.grid import Grid

    planned = {"executor": "dask", "scheduler": "tcp://h:8786", "workers": 2, "concurrent": 2}
    grid = SimpleNamespace(cfg=SimpleNamespace(executor="dask"), execution=planned,
                           executor=SimpleNamespace(n_workers=7))  # fmt: skip
    assert Grid._cell_execution(grid)["workers"] == 7
    grid.cfg.executor = "local"
    assert Grid._cell_execution(grid)["workers"] == 2
