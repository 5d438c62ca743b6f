"""Local executors: worker and thread planning, GPU assignment, worker death, interruption
(Ctrl-C, SIGTERM, a killed grid process) and resume, and the missing Dask extra."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from vaebench.config import RunConfig
from vaebench.errors import ConfigError
from vaebench.executors import (
    DASK_INSTALL,
    ProcessExecutor,
    WorkerDied,
    check_executor,
    describe_exit,
    gpu_assignment,
    make_executor,
    plan_workers,
)
from vaebench.grid import run
from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench.models.pca import PCA
from vaebench.results import read_cell

ROOT = Path(__file__).resolve().parents[1]
FAST = ["eval.throughput_seconds=0.01", "eval.n_pairs=16"]
EPOCHS = "25"  # ae cells of the real-process grids take seconds: signals land mid-grid

# ----------------------------------------------------------------------------- planning


def test_default_plan_fills_the_cores_with_one_thread_per_worker():
    plan = plan_workers(10, "cpu", cores=8, busy=0)
    assert plan.to_dict() == {"workers": 8, "threads": 1, "concurrent": 8, "gpus": 0}
    # never more workers than cells; the spare cores stay idle: the threads of a cell never
    # depend on the grid's size (issue 19.4; they went to threads before, so a 2-cell shard
    # computed with 4 threads what the full grid computed with 1)
    assert plan_workers(2, "cpu", cores=8, busy=0).to_dict() == {
        "workers": 2, "threads": 1, "concurrent": 2, "gpus": 0,
    }  # fmt: skip
    # workers x threads never exceeds the cores
    for cores in (1, 2, 3, 8, 64):
        for cells in (1, 2, 5, 100):
            p = plan_workers(cells, "cpu", cores=cores, busy=0)
            assert p.workers * p.threads <= cores


def test_default_threads_depend_on_neither_grid_size_nor_load():
    """Issue 19.4: a shard, a smaller grid or a busy machine gets the thread count of the full
    grid on a quiet machine; only --workers or --threads given by the user change it."""
    for device, gpus in (("cpu", 0), ("cuda", 2)):
        for cores in (1, 2, 3, 8, 64):
            full = plan_workers(10**6, device, n_gpus=gpus, cores=cores, busy=0).threads
            for cells in (1, 2, 3, 7, 100):
                for busy in (0, 1, cores, 10 * cores):
                    p = plan_workers(cells, device, n_gpus=gpus, cores=cores, busy=busy)
                    assert p.threads == full, (device, cores, cells, busy)
    assert plan_workers(1, "cpu", workers=1, cores=8, busy=0).threads == 8
    assert plan_workers(1, "cpu", threads=3, cores=8, busy=0).threads == 3


def test_load_runs_fewer_default_workers_but_never_changes_the_threads():
    quiet = plan_workers(10, "cpu", cores=4, busy=0)
    busy = plan_workers(10, "cpu", cores=4, busy=3)
    overloaded = plan_workers(10, "cpu", cores=4, busy=9)
    assert (quiet.concurrent, busy.concurrent, overloaded.concurrent) == (4, 1, 1)
    assert quiet.threads == busy.threads == overloaded.threads == 1


def test_workers_the_user_gives_are_kept_under_load():
    plan = plan_workers(10, "cpu", workers=2, cores=2, busy=5)
    assert (plan.workers, plan.threads, plan.concurrent) == (2, 1, 2)
    plan = plan_workers(10, "cpu", workers=1, threads=2, cores=2, busy=5)
    assert (plan.workers, plan.threads, plan.concurrent) == (1, 2, 1)


def test_cuda_plans_one_worker_per_gpu_whatever_the_load():
    plan = plan_workers(10, "cuda", n_gpus=4, cores=16, busy=15)
    assert plan.to_dict() == {"workers": 4, "threads": 4, "concurrent": 4, "gpus": 4}
    assert plan_workers(2, "cuda", n_gpus=4, cores=16, busy=0).concurrent == 2


def test_gpu_assignment_follows_the_visible_devices():
    assert gpu_assignment(2, 2, environ={}) == ["0", "1"]
    assert gpu_assignment(3, 2, environ={}) == ["0", "1", "0"]
    # Slurm and friends hand out GPUs by setting CUDA_VISIBLE_DEVICES (indices or UUIDs)
    assert gpu_assignment(3, 2, environ={"CUDA_VISIBLE_DEVICES": "3,5"}) == ["3", "5", "3"]
    uuids = {"CUDA_VISIBLE_DEVICES": "GPU-aaaa, GPU-bbbb"}
    assert gpu_assignment(2, 2, environ=uuids) == ["GPU-aaaa", "GPU-bbbb"]
    # torch counts only the first n_gpus of a longer list as usable here
    assert gpu_assignment(2, 1, environ={"CUDA_VISIBLE_DEVICES": "2,7"}) == ["2", "2"]
    with pytest.raises(ValueError, match="n_gpus=0"):
        gpu_assignment(2, 0)


def test_exit_codes_are_described():
    assert "SIGKILL (signal 9): out of memory" in describe_exit(-signal.SIGKILL)
    assert "SIGSEGV" in describe_exit(-signal.SIGSEGV) and "native code" in describe_exit(-11)
    assert describe_exit(3) == "it exited with code 3 (os._exit or a crash in native code)"


# ----------------------------------------------------------------------------- the extra


def test_unknown_executor_and_missing_dask_are_config_errors(monkeypatch):
    with pytest.raises(ConfigError, match="unknown executor 'ray'; valid: local, dask"):
        check_executor("ray")
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"pip install 'vaebench\[dask\]'"):
        make_executor("dask", plan_workers(2, "cpu", cores=2, busy=0))


def test_cli_dask_without_the_extra_exits_2_naming_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)
    out = tmp_path / "r"
    args = ["run", "--models", "pca", "--executor", "dask", "--no-report", "--out", str(out)]
    res = CliRunner().invoke(cli_main(), args)
    assert res.exit_code == 2, res.output
    assert DASK_INSTALL in res.output and "Traceback" not in res.output
    assert not list(out.glob("cells/*.json"))  # nothing trained


def cli_main():
    from vaebench.cli import cli

    return cli


# ----------------------------------------------------------------------------- worker processes
# (functions run in spawned workers: module level, so that they pickle by reference)


def report_worker(delay: float) -> dict:
    time.sleep(delay)
    import torch as t

    return {
        "pid": os.getpid(),
        "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "torch_threads": t.get_num_threads(),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "ignores_sigint": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
    }


def kill_own_worker(delay: float) -> None:
    time.sleep(delay)
    os.kill(os.getpid(), signal.SIGKILL)


def test_workers_get_their_threads_one_gpu_each_and_ignore_ctrl_c(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    ex = ProcessExecutor(2, threads=1, gpus=2)
    try:
        futures = [ex.submit(report_worker, 1.5) for _ in range(2)]
        results = [f.result(timeout=120) for f in futures]
    finally:
        ex.shutdown()
    assert len({r["pid"] for r in results}) == 2  # two workers ran side by side
    assert sorted(r["gpu"] for r in results) == ["3", "5"]  # one visible GPU each
    assert all(r["torch_threads"] == 1 and r["omp"] == "1" for r in results)
    assert all(r["ignores_sigint"] for r in results)


def test_killed_worker_fails_only_its_own_task():
    ex = ProcessExecutor(2, threads=1)
    try:
        innocent = ex.submit(report_worker, 2.0)
        doomed = ex.submit(kill_own_worker, 0.5)
        pending = {innocent, doomed}
        deadline = time.monotonic() + 180
        while pending and time.monotonic() < deadline:
            pending -= ex.wait_first(pending)
        assert not pending
        with pytest.raises(WorkerDied, match=r"died: it was killed by SIGKILL \(signal 9\)"):
            doomed.result()
        assert innocent.result()["pid"] > 0  # resubmitted to the new pool and finished
        # the restarted pool keeps working
        assert ex.submit(report_worker, 0.0).result(timeout=120)["torch_threads"] == 1
    finally:
        ex.shutdown()


# ----------------------------------------------------------------------------- through the grid


class SuicidePCA(PCA):
    """Its worker process dies in fit (as under the kernel's OOM killer)."""

    def fit(self, x, progress=None):
        os.kill(os.getpid(), signal.SIGKILL)


class KillerPlugin:
    @hookimpl
    def vaebench_models(self):
        return [ModelSpec("suicide", SuicidePCA, "its worker is killed in fit")]


def cell_files(out: Path) -> dict[str, dict]:
    return {p.stem: read_cell(p) for p in sorted((out / "cells").glob("*.json"))}


def comparable(cell: dict) -> dict:
    """What must not change between two runs of one cell: every metric except timings, the
    loss curve and the stored images."""
    info = cell["metric_info"]
    return {
        "metrics": {
            k: v
            for k, v in cell["metrics"].items()
            if info[k].get("unit") not in {"s", "samples/s"}
        },
        "history": cell["history"],
        "artifacts": cell["artifacts"],
        "config_hash": cell["config_hash"],
    }


def test_grid_goes_on_when_a_worker_is_killed(fresh_plugins, tmp_path):
    fresh_plugins.get_plugin_manager().register(KillerPlugin(), name="killer-test")
    reg = fresh_plugins.get_registry()
    cfg = RunConfig.build(
        reg, models="pca,suicide", seeds="0,1", subset=150, device="cpu", workers=2, threads=1,
        sets=FAST,
    )  # fmt: skip
    summary = run(cfg, tmp_path, registry=reg, show_progress=False)
    assert sorted((c.model, c.seed) for c in summary.ran) == [("pca", 0), ("pca", 1)]
    reasons = {(c.model, c.seed): r for c, r in summary.failed}
    assert set(reasons) == {("suicide", 0), ("suicide", 1)}
    for reason in reasons.values():
        assert "died: it was killed by SIGKILL (signal 9): out of memory" in reason, reason
    for stem, rec in cell_files(tmp_path).items():
        assert rec["status"] == ("failed" if stem.startswith("suicide") else "ok")
        if rec["status"] == "ok":
            assert rec["execution"]["workers"] == 2 and rec["execution"]["threads"] == 1
    assert not list(tmp_path.rglob("*.lock"))


# ----------------------------------------------------------------------------- real processes


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def vaebench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from vaebench.cli import console; console()", *args]


def children(pid: int) -> set[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def grid_args(out: Path, *extra: str) -> list[str]:
    """A 6-cell grid (pca, ae x 3 seeds) whose ae cells take a few seconds each."""
    return vaebench_cmd(
        "-q", "run", "--models", "pca,ae", "--seeds", "0,1,2", "--epochs", EPOCHS, "--subset", "150",
        "--set", FAST[0], "--set", FAST[1], "--no-report", "--out", str(out), *extra,
    )  # fmt: skip


def start_grid(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        grid_args(out, *extra), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,  # own process group: killpg reaches it and its workers
    )  # fmt: skip


def wait_for_cells(out: Path, proc: subprocess.Popen, n: int = 1, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list((out / "cells").glob("*.json"))) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"the grid ended early: {proc.communicate()}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("no cell was written in time")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, dict]:
    """The cells of :func:`grid_args`'s grid run in this process on one thread."""
    from vaebench.plugins import get_registry

    out = tmp_path_factory.mktemp("reference")
    reg = get_registry()
    cfg = RunConfig.build(
        reg, models="pca,ae", seeds="0,1,2", epochs=EPOCHS, subset=150, sets=FAST, workers=1,
        threads=1,
    )  # fmt: skip
    run(cfg, out, registry=reg, show_progress=False)
    return cell_files(out)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "group", "code"),
    [(signal.SIGTERM, False, 143), (signal.SIGINT, True, 130)],
    ids=["sigterm", "ctrl-c"],
)
def test_interrupted_worker_grid_stops_its_workers_and_resumes(
    tmp_path, reference, sig, group, code
):
    """SIGTERM to the grid process, or Ctrl-C (SIGINT to the whole process group, as a
    terminal sends it): finished cells are kept, the workers are stopped, the manifest says
    interrupted, and resuming finishes the grid with the cells an uninterrupted run makes."""
    out = tmp_path / "run"
    proc = start_grid(out, "--workers", "2", "--threads", "1")
    wait_for_cells(out, proc)
    workers = children(proc.pid)  # both workers run by the time the first cell is stored
    (os.killpg if group else os.kill)(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Resume with: vaebench run --resume" in err
    deadline = time.monotonic() + 30
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers and not any(alive(p) for p in workers)
    (manifest,) = [json.loads(p.read_text()) for p in (out / "manifests").glob("*.json")]
    assert manifest["status"] == "interrupted" and manifest["execution"]["workers"] == 2
    kept = set(cell_files(out))
    assert kept and set(manifest["summary"]["ran"]) == kept
    assert not list(out.rglob("*.lock"))

    resumed = subprocess.run(
        vaebench_cmd("-q", "run", "--resume", str(out), "--no-report"),
        env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(kept)} already done" in resumed.stderr
    final = cell_files(out)
    assert len(final) == 6 and all(c["status"] == "ok" for c in final.values())

    # the same numbers cell for cell as the grid run in one process on one thread
    assert final.keys() == reference.keys()
    for stem in final:
        assert comparable(final[stem]) == comparable(reference[stem]), stem


@pytest.mark.slow
def test_workers_exit_when_the_grid_process_is_killed(tmp_path):
    """SIGKILL of the grid process (a batch system's hard limit, the OOM killer): its workers
    notice and exit instead of training cells nobody stores; a resume cleans up after it."""
    out = tmp_path / "run"
    proc = start_grid(out, "--workers", "2", "--threads", "1")
    wait_for_cells(out, proc)
    workers = children(proc.pid)
    assert len(workers) >= 2
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in workers)
    resumed = subprocess.run(
        vaebench_cmd("-q", "run", "--resume", str(out), "--no-report", "--workers", "1"),
        env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    cells = cell_files(out)
    assert len(cells) == 6 and all(c["status"] == "ok" for c in cells.values())
    assert not list(out.rglob("*.lock"))


def test_threads_restored_in_the_calling_process(tmp_path):
    """workers=1 runs in this process: the grid's thread count does not leak out of it."""
    before = torch.get_num_threads()
    from vaebench.plugins import get_registry

    reg = get_registry()
    cfg = RunConfig.build(reg, models="pca", subset=100, device="cpu", workers=1, threads=2,
                          sets=FAST)  # fmt: skip
    summary = run(cfg, tmp_path, registry=reg, show_progress=False)
    assert len(summary.ran) == 1 and torch.get_num_threads() == before
    (rec,) = cell_files(tmp_path).values()
    assert rec["execution"]["threads"] == 2
