"""The Dask executor against a real ``LocalCluster`` (2 worker processes): the same numbers as
the local executors at equal threads, results returned to the client (the workers never touch
the results folder), one GPU per worker, a worker killed by a cell, and a killed Dask run that
resumes like a local one."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from test_executors import (  # noqa: E402 - after the importorskip
    FAST,
    ROOT,
    KillerPlugin,
    _env,
    alive,
    cell_files,
    children,
    comparable,
    grid_args,
    reference,  # noqa: F401 - a fixture, used by name
    wait_for_cells,
)

from vaebench.config import RunConfig  # noqa: E402
from vaebench.executors import DaskExecutor  # noqa: E402
from vaebench.grid import run  # noqa: E402


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler with two 1-thread worker processes, as `dask scheduler` + 2 x `dask worker
    --nthreads 1` would give; a task that kills its worker fails at once (no retries)."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        lc = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            local_directory=str(tmp_path_factory.mktemp("dask-space")),
        )
    client = distributed.Client(lc)
    yield lc, client
    client.close()
    lc.close()


def build(reg, models="pca,ae", seeds="0,1", **kw):
    kw = {"threads": 1, **kw}
    return RunConfig.build(
        reg, models=models, seeds=seeds, epochs="2", subset=150, device="cpu", sets=FAST, **kw
    )


# ----------------------------------------------------------------------------- worker side
# (run on the Dask workers through client.run; module level so that they pickle by reference)

_GUARD: dict = {"root": None, "seen": []}
_PATH_EVENTS = {
    "open", "os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.listdir",
    "os.scandir", "os.chmod", "os.truncate", "os.link", "os.symlink", "shutil.rmtree",
}  # fmt: skip


def _guard(event: str, args: tuple) -> None:
    root = _GUARD["root"]
    if root is None or event not in _PATH_EVENTS:
        return
    for arg in args:
        if isinstance(arg, (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(os.fspath(arg)))
            if path == root or path.startswith(root + os.sep):
                _GUARD["seen"].append((event, path))
                raise PermissionError(f"this worker may not touch {path}")


def hide_folder(root: str | None, workdir: str) -> int:
    """In a worker: refuse and record any file access under ``root``; work in ``workdir``."""
    if not _GUARD.get("installed"):
        sys.addaudithook(_guard)
        _GUARD["installed"] = True
    _GUARD["root"], _GUARD["seen"] = root, []
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    return os.getpid()


def seen_accesses() -> list:
    return list(_GUARD["seen"])


def worker_env() -> dict:
    return {"gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "cwd": os.getcwd()}


# ----------------------------------------------------------------------------- tests


def test_dask_gives_the_numbers_of_the_local_executors(registry, tmp_path, cluster):
    """Equal threads (1): in-process (workers=1), two local worker processes and the Dask
    cluster (joined through its scheduler address) store identical cells."""
    lc, _ = cluster
    outs = {
        "inprocess": build(registry, workers=1),
        "processes": build(registry, workers=2),
        "dask": build(registry, executor="dask", scheduler=lc.scheduler_address),
    }
    cells = {}
    for name, cfg in outs.items():
        summary = run(cfg, tmp_path / name, registry=registry, show_progress=False)
        assert len(summary.ran) == 4 and not summary.failed, name
        cells[name] = cell_files(tmp_path / name)
    assert cells["inprocess"].keys() == cells["processes"].keys() == cells["dask"].keys()
    for stem, ref in cells["inprocess"].items():
        assert comparable(cells["processes"][stem]) == comparable(ref), stem
        assert comparable(cells["dask"][stem]) == comparable(ref), stem
        execution = cells["dask"][stem]["execution"]
        assert execution["executor"] == "dask" and execution["threads"] == 1
        assert execution["scheduler"] == lc.scheduler_address
        assert execution["workers"] == len(lc.scheduler_info["workers"])  # the cluster's own
    (manifest,) = (tmp_path / "dask" / "manifests").glob("*.json")
    assert json.loads(manifest.read_text())["execution"]["executor"] == "dask"


def test_results_come_back_to_a_folder_the_workers_never_see(registry, tmp_path, cluster):
    """The workers work elsewhere and every file access under the results folder fails on
    them: the grid process alone writes, so the cells and states are all there."""
    lc, client = cluster
    out = tmp_path / "results"
    out.mkdir()
    pids = client.run(hide_folder, str(out), str(tmp_path / "worker-space"))
    try:
        cfg = build(registry, executor="dask", scheduler=lc.scheduler_address)
        summary = run(cfg, out, registry=registry, show_progress=False)
        seen = client.run(seen_accesses)
        cwd = {w["cwd"] for w in client.run(worker_env).values()}
    finally:
        client.run(hide_folder, None, os.getcwd())
    assert len(pids) == 2 and cwd == {str(tmp_path / "worker-space")}
    assert all(not accesses for accesses in seen.values()), seen
    assert len(summary.ran) == 4 and not summary.failed and not summary.metric_failures
    cells = cell_files(out)
    assert len(cells) == 4 and all(c["status"] == "ok" for c in cells.values())
    assert sorted(p.stem for p in (out / "states").glob("*.pt")) == sorted(cells)
    # and the guard does bite: a worker that opens the folder is refused
    client.run(hide_folder, str(out), str(tmp_path / "worker-space"))
    try:
        probe = client.submit(open, str(out / "cells" / "x.json"), "w", pure=False)
        with pytest.raises(PermissionError, match="may not touch"):
            probe.result(timeout=60)
    finally:
        client.run(hide_folder, None, os.getcwd())


def test_local_gpu_cluster_gives_each_worker_its_own_gpu(monkeypatch):
    """Without GPUs here, only the wiring is checked: each local worker sees one device of
    this process's CUDA_VISIBLE_DEVICES, offers the resource GPU=1, and tasks ask for it."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    ex = DaskExecutor(2, threads=1, gpus=2)
    try:
        assert ex._client is None  # nothing starts before the first task
        futures = [ex.submit(time.sleep, 1.0) for _ in range(2)]
        envs = ex._client.run(worker_env)
        resources = [w["resources"] for w in ex._workers().values()]
        assert sorted(e["gpu"] for e in envs.values()) == ["4", "6"]
        assert resources == [{"GPU": 1}, {"GPU": 1}]
        assert ex.capacity == 2 and ex._resources == {"GPU": 1}
        pending = set(futures)
        while pending:
            pending -= ex.wait_first(pending)
        assert [f.result() for f in futures] == [None, None]
    finally:
        ex.shutdown()


def test_cell_that_kills_its_dask_worker_fails_alone(fresh_plugins, tmp_path, cluster):
    lc, client = cluster
    fresh_plugins.get_plugin_manager().register(KillerPlugin(), name="killer-test")
    reg = fresh_plugins.get_registry()
    cfg = build(reg, models="pca,suicide", seeds="0", executor="dask",
                scheduler=lc.scheduler_address)  # fmt: skip
    summary = run(cfg, tmp_path, registry=reg, show_progress=False)
    assert [c.model for c in summary.ran] == ["pca"]
    ((cell, reason),) = summary.failed
    assert cell.model == "suicide" and "WorkerDied" in reason and "KilledWorker" in reason
    client.wait_for_workers(2, timeout=120)  # the nanny restarts the worker


def test_unreachable_scheduler_stops_the_grid_before_any_cell(registry, tmp_path):
    import dask

    from vaebench.errors import ConfigError

    cfg = build(registry, executor="dask", scheduler="tcp://127.0.0.1:9")
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(ConfigError, match="cannot reach the Dask scheduler 'tcp://127.0.0.1:9'"),
    ):
        run(cfg, tmp_path, registry=registry, show_progress=False)
    assert not list(tmp_path.glob("cells/*.json")) and not list(tmp_path.rglob("*.lock"))


def test_finished_grid_starts_no_cluster(registry, tmp_path, monkeypatch):
    """Resuming a finished grid on Dask trains nothing, so it starts nothing."""
    run(build(registry, models="pca", seeds="0", workers=1), tmp_path, registry=registry,
        show_progress=False)  # fmt: skip
    monkeypatch.setattr(DaskExecutor, "_start", lambda self: pytest.fail("cluster started"))
    again = run(build(registry, models="pca", seeds="0", executor="dask"), tmp_path,
                registry=registry, show_progress=False)  # fmt: skip
    assert len(again.skipped) == 1


# ----------------------------------------------------------------------------- a real process


@pytest.mark.slow
def test_dask_run_killed_midway_resumes_like_a_local_one(tmp_path, reference):  # noqa: F811
    """`vaebench run --executor dask` (its own local cluster) killed with SIGKILL after its
    first cell: the cluster's workers go away with it, and `--resume` (Dask again, from the
    manifest) finishes the grid with the numbers of an uninterrupted in-process run."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        grid_args(out, "--executor", "dask", "--workers", "2", "--threads", "1"),
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    wait_for_cells(out, proc)
    workers = children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 60
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workers and not any(alive(p) for p in workers)
    kept = set(cell_files(out))
    assert 1 <= len(kept) < 6

    resumed = subprocess.run(
        [sys.executable, "-c", "from vaebench.cli import console; console()", "-q", "run", "--resume",
         str(out), "--no-report"],
        env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(kept)} already done" in resumed.stderr
    final = cell_files(out)
    assert final.keys() == reference.keys()
    for stem, cell in final.items():
        assert cell["status"] == "ok" and comparable(cell) == comparable(reference[stem]), stem
    resumed_by = {c["execution"]["executor"] for s, c in final.items() if s not in kept}
    assert resumed_by == {"dask"}
    assert not list(out.rglob("*.lock"))
    assert not Path(out / "dask-worker-space").exists()


# ----------------------------------------------------------------------------- docs/scale-out.md


def doc_block(start: str, lang: str) -> str:
    text = (ROOT / "docs" / "scale-out.md").read_text()
    m = re.search(rf"```{lang}\n({re.escape(start)}.*?)```", text, re.S)
    assert m, f"no {lang} block starting with {start!r} in docs/scale-out.md"
    return m.group(1)


def run_options() -> set[str]:
    from vaebench.cli import cli

    return {opt for param in cli.commands["run"].params for opt in param.opts}


@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")  # its dashboard, by design
def test_slurm_example_builds_its_cluster_offline():
    """The dask-jobqueue example of docs/scale-out.md, checked without Slurm: it imports,
    builds its cluster (nothing is submitted), renders the job script we mean, and hands
    vaebench only options `vaebench run` has."""
    pytest.importorskip("dask_jobqueue")
    namespace: dict = {"__name__": "slurm_grid"}
    exec(compile(doc_block("# slurm_grid.py", "python"), "slurm_grid.py", "exec"), namespace)
    cluster = namespace["make_cluster"]()
    try:
        script = cluster.job_script()
        command = namespace["command"](cluster.scheduler_address)
    finally:
        cluster.close()
    for line in ("#SBATCH -p gpu", "#SBATCH -t 04:00:00", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --gres=gpu:1"):  # fmt: skip
        assert line in script, script
    assert "--nthreads 1" in script and "--resources GPU=1" in script
    assert "sbatch" not in script  # a job script, not a submission
    assert command[command.index("--scheduler") + 1].startswith("tcp://")
    assert {a for a in command if a.startswith("--")} <= run_options()


def test_shard_array_example_uses_real_options():
    script = doc_block("#!/bin/bash", "bash")
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", script.split("vaebench run", 1)[1]))
    assert flags and flags <= run_options(), flags - run_options()
