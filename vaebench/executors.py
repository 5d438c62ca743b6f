"""Executors: where the cells of a grid run. The grid process stays the only writer of results.

An executor runs ``execute_task(task)`` (see :mod:`vaebench.runner`) somewhere and hands the
outcome back; it never writes results. Three implementations share that one code path:

- :class:`InProcessExecutor` -- one worker: the task runs in the calling process (per-epoch
  progress bars, no start-up cost);
- :class:`ProcessExecutor` -- ``N`` local worker processes (``spawn``; each with its own torch
  thread count and, on CUDA, its own GPU), through :mod:`concurrent.futures`;
- :class:`DaskExecutor` -- a Dask ``distributed`` cluster: a ``LocalCluster`` sized like the
  local executor, or an existing scheduler (``--scheduler ADDRESS``; e.g. one started by
  dask-jobqueue on Slurm). Each cell is one task; on GPUs each task asks for the worker
  resource ``GPU=1`` so cells run side by side, one per GPU. Results travel back to the client,
  so the workers need not see the results folder (they do need the datasets).

:func:`plan_workers` chooses the number of workers and threads (see its docstring).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable
from typing import Any

from vaebench.errors import ConfigError

log = logging.getLogger("vaebench.executors")

__all__ = [
    "Executor",
    "InProcessExecutor",
    "ProcessExecutor",
    "DaskExecutor",
    "WorkerPlan",
    "plan_workers",
    "make_executor",
    "usable_cores",
]


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _busy_cores() -> int:
    """Cores other processes keep busy: the 1-minute load average, rounded (0 where unknown)."""
    try:
        return int(round(os.getloadavg()[0]))
    except (AttributeError, OSError):  # pragma: no cover
        return 0


class WorkerPlan:
    """How a grid runs: ``workers`` (configured or chosen), ``threads`` per worker, and
    ``concurrent`` (how many run at once now: fewer than ``workers`` when other processes
    keep cores busy, or when the grid has fewer cells), plus ``gpus``."""

    def __init__(self, workers: int, threads: int, concurrent: int, gpus: int) -> None:
        self.workers, self.threads, self.concurrent, self.gpus = workers, threads, concurrent, gpus

    def to_dict(self) -> dict[str, int]:
        return {
            "workers": self.workers,
            "threads": self.threads,
            "concurrent": self.concurrent,
            "gpus": self.gpus,
        }


def plan_workers(
    n_cells: int,
    device_type: str,
    workers: int | None = None,
    threads: int | None = None,
    n_gpus: int = 0,
    cores: int | None = None,
    busy: int | None = None,
) -> WorkerPlan:
    """Workers and torch threads for a grid of ``n_cells`` cells.

    - ``workers`` (default): one per core on the CPU, one per GPU on CUDA, never more than the
      grid has cells;
    - ``threads`` per worker (default): ``max(1, cores // workers)`` -- from the cores alone,
      so a busy machine never changes the thread count (and with it the numbers);
    - ``concurrent``: on the CPU, how many workers start: ``workers`` less the cores other
      processes keep busy (the load average), at least 1. Load changes how many cells run at
      once, never what they compute.

    Measured on 2 shared cores (issue 14): two 1-thread processes ran 1.15x the cells per hour
    of one 2-thread process, two 2-thread processes 0.47x -- hence threads x workers <= cores.
    """
    cores = usable_cores() if cores is None else cores
    busy = _busy_cores() if busy is None else busy
    cells = max(1, n_cells)
    if workers is None:
        workers = min(n_gpus if device_type == "cuda" and n_gpus else cores, cells)
    workers = max(1, workers)
    if threads is None:
        threads = max(1, cores // workers)
    concurrent = min(workers, cells)
    if device_type == "cpu":
        concurrent = max(1, min(concurrent, cores - busy))
    return WorkerPlan(workers, threads, concurrent, n_gpus if device_type == "cuda" else 0)


class Executor:
    """Runs tasks; ``capacity`` is how many may be in flight at once."""

    name = "local"
    capacity = 1

    def submit(self, fn: Callable[[Any], Any], task: Any) -> Any:  # a future
        raise NotImplementedError

    def wait_first(self, futures: Iterable[Any]) -> set[Any]:
        """Block until at least one of ``futures`` is done; return the done ones."""
        raise NotImplementedError

    def shutdown(self, cancel: bool = False) -> None:
        """Stop the workers (``cancel``: drop queued and running tasks at once)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown(cancel=exc[0] is not None)


class InProcessExecutor(Executor):
    """Runs each task in this process when it is submitted (a signal interrupts it there)."""

    def submit(self, fn: Callable[[Any], Any], task: Any) -> cf.Future:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(task))
        except Exception as exc:  # noqa: BLE001 - handed back like a worker's failure
            fut.set_exception(exc)
        return fut

    def wait_first(self, futures: Iterable[Any]) -> set[Any]:
        return set(futures)


def _init_worker(threads: int, gpu_queue: Any) -> None:
    """Worker start-up: Ctrl-C is the grid process's business (it stops the workers); torch
    threads; one GPU per worker (CUDA_VISIBLE_DEVICES set before CUDA initialises)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())
    os.environ["VAEBENCH_WORKER"] = "1"
    import torch

    torch.set_num_threads(threads)


class ProcessExecutor(Executor):
    """``n`` local worker processes (spawn start method: no fork of a process holding torch
    threads or CUDA state)."""

    def __init__(self, n: int, threads: int, gpus: int = 0) -> None:
        ctx = multiprocessing.get_context("spawn")
        queue = None
        if gpus:
            queue = ctx.Queue()
            for i in range(n):
                queue.put(i % gpus)
        self.capacity = n
        self._pool = cf.ProcessPoolExecutor(
            max_workers=n, mp_context=ctx, initializer=_init_worker, initargs=(threads, queue)
        )

    def submit(self, fn: Callable[[Any], Any], task: Any) -> cf.Future:
        return self._pool.submit(fn, task)

    def wait_first(self, futures: Iterable[Any]) -> set[Any]:
        done, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
        return set(done)

    def shutdown(self, cancel: bool = False) -> None:
        if not cancel:
            self._pool.shutdown(wait=True)
            return
        self._pool.shutdown(wait=False, cancel_futures=True)
        for child in multiprocessing.active_children():  # the pool's workers
            child.terminate()
        for child in multiprocessing.active_children():
            child.join(timeout=5)


class DaskExecutor(Executor):
    """Tasks on a Dask ``distributed`` cluster (install the ``dask`` extra).

    ``scheduler``: address of an existing scheduler (``tcp://host:8786``); ``None`` starts a
    ``LocalCluster`` of ``n`` worker processes with one Dask thread each (torch threads are set
    per task). ``gpus``: on CUDA each task asks for the worker resource ``GPU=1``; start the
    workers with ``--resources GPU=1`` (a local cluster does this itself).
    """

    name = "dask"

    def __init__(self, n: int, threads: int, gpus: int = 0, scheduler: str | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(
                "--executor dask needs Dask distributed: pip install 'vaebench[dask]'"
            ) from None
        self._cluster = None
        self._resources = {"GPU": 1} if gpus else None
        if scheduler is None:
            kwargs: dict[str, Any] = {}
            if gpus:
                kwargs["resources"] = {"GPU": 1}
            self._cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
                **kwargs,
            )
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(scheduler, timeout="30s")
            except OSError as exc:
                raise ConfigError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        nthreads = sum(self._client.nthreads().values()) or n
        self.capacity = max(1, nthreads)

    @property
    def dashboard(self) -> str | None:
        return getattr(self._client, "dashboard_link", None)

    def submit(self, fn: Callable[[Any], Any], task: Any) -> Any:
        return self._client.submit(fn, task, pure=False, resources=self._resources)

    def wait_first(self, futures: Iterable[Any]) -> set[Any]:
        from distributed import wait

        done, _ = wait(list(futures), return_when="FIRST_COMPLETED")
        return set(done)

    def shutdown(self, cancel: bool = False) -> None:
        try:
            if cancel:
                self._client.cancel(list(self._client.futures.values()), force=True)
        finally:
            self._client.close()
            if self._cluster is not None:
                self._cluster.close()


def make_executor(name: str, plan: WorkerPlan, scheduler: str | None = None) -> Executor:
    """The executor ``name`` (``local`` or ``dask``) sized by ``plan``."""
    if name == "dask":
        return DaskExecutor(plan.concurrent, plan.threads, plan.gpus, scheduler)
    if name != "local":
        raise ConfigError(f"unknown executor {name!r}; valid: local, dask")
    if plan.concurrent <= 1:
        return InProcessExecutor()
    return ProcessExecutor(plan.concurrent, plan.threads, plan.gpus)
