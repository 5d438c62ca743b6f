"""Executors: where the cells of a grid run. The grid process stays the only writer of results.

An executor runs ``execute_task(task)`` (see :mod:`vaebench.task`) somewhere and hands the
outcome back as a :class:`concurrent.futures.Future`; it never writes results. Three
implementations share that one code path:

- :class:`InProcessExecutor` -- one worker: the task runs in the calling process (per-epoch
  progress bars, no start-up cost);
- :class:`ProcessExecutor` -- ``N`` local worker processes (``spawn``; each with its own torch
  and BLAS thread count and, on CUDA, its own GPU). A worker that dies (killed, out of memory,
  a crash in native code) fails only the cell it was running, with :class:`WorkerDied` naming
  the signal; the pool is restarted and the other cells in flight are handed to it again.
  Workers ignore Ctrl-C (the grid process stops them) and exit when the grid process dies;
- :class:`DaskExecutor` -- a Dask ``distributed`` cluster: a ``LocalCluster`` sized like the
  local executor, or an existing scheduler (``--scheduler ADDRESS``; e.g. one started by
  dask-jobqueue on Slurm). Each cell is one task; with GPUs each task asks for the worker
  resource ``GPU=1`` so cells run side by side, one per GPU. Results travel back to the client,
  so the workers need not see the results folder (they do need the datasets).

:func:`plan_workers` chooses the number of workers and threads (see its docstring).
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from vaebench.errors import ConfigError, import_extra

log = logging.getLogger("vaebench.executors")

__all__ = [
    "Executor",
    "InProcessExecutor",
    "ProcessExecutor",
    "DaskExecutor",
    "WorkerDied",
    "WorkerPlan",
    "plan_workers",
    "make_executor",
    "check_executor",
    "gpu_assignment",
    "describe_exit",
    "usable_cores",
    "DASK_INSTALL",
]

#: What to install for ``--executor dask``.
DASK_INSTALL = "pip install 'vaebench[dask]'"

#: Environment variables that size the BLAS/OpenMP thread pools of numpy, scipy and
#: scikit-learn (used by metrics); a worker sets them to its thread count.
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


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

    def __repr__(self) -> str:
        return f"WorkerPlan({self.to_dict()})"


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
    - ``threads`` per worker (default): ``max(1, cores // W)`` where ``W`` is the ``workers``
      given, else one per core on the CPU (so 1 thread) or one per GPU on CUDA -- never the
      grid's size, a shard's or the machine's load, so the same cell gets the same thread count
      (and with it the same numbers) in a full grid, a shard or a one-cell grid (issue 19.4);
    - ``concurrent``: how many workers start. With the default ``workers`` on the CPU, fewer
      than ``workers`` while other processes keep cores busy (the 1-minute load average), at
      least 1; a ``workers`` the user gave is kept. Load changes how many cells run at once,
      never what they compute.

    Measured on 2 shared cores (issue 14, docs/scale-out.md): two 1-thread processes ran 1.15x
    the cells per hour of one 2-thread process, two 2-thread processes 0.47x -- hence
    threads x workers <= cores.
    """
    cores = usable_cores() if cores is None else cores
    busy = _busy_cores() if busy is None else busy
    cells = max(1, n_cells)
    per_grid = n_gpus if device_type == "cuda" and n_gpus else cores
    if threads is None:  # from the workers a full grid would have: not from n_cells or load
        threads = max(1, cores // max(1, per_grid if workers is None else workers))
    n_workers = max(1, min(per_grid, cells) if workers is None else workers)
    concurrent = min(n_workers, cells)
    if device_type == "cpu" and workers is None:
        concurrent = max(1, min(concurrent, cores - busy))
    return WorkerPlan(n_workers, threads, concurrent, n_gpus if device_type == "cuda" else 0)


def gpu_assignment(
    n_workers: int, n_gpus: int, environ: Mapping[str, str] | None = None
) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each of ``n_workers`` workers: one GPU each,
    round robin over the GPUs this process sees -- the entries of its own
    ``CUDA_VISIBLE_DEVICES`` where set (indices or UUIDs, as Slurm hands them out), else
    ``0 .. n_gpus - 1``. With more workers than GPUs, workers share GPUs in turn. Raises
    :class:`ValueError` for ``n_gpus < 1``."""
    if n_gpus < 1:
        raise ValueError(f"gpu_assignment needs at least one GPU, got n_gpus={n_gpus}")
    environ = os.environ if environ is None else environ
    visible = [d.strip() for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    devices = visible[:n_gpus] if visible else [str(i) for i in range(n_gpus)]
    return [devices[i % len(devices)] for i in range(n_workers)]


def describe_exit(exitcode: int | None) -> str:
    """Why a process ended, from its ``multiprocessing`` exit code (``-N``: signal ``N``)."""
    if exitcode is None:
        return "it ended for an unknown reason"
    if exitcode >= 0:
        return f"it exited with code {exitcode} (os._exit or a crash in native code)"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    why = {
        "SIGKILL": "out of memory (the kernel's OOM killer) or kill -9",
        "SIGSEGV": "a crash in native code (segmentation fault)",
        "SIGBUS": "a crash in native code (bus error)",
        "SIGABRT": "aborted by native code (a failed assertion)",
        "SIGTERM": "terminated by another process",
    }.get(name, "killed by a signal")
    return f"it was killed by {name} (signal {-exitcode}): {why}"


class WorkerDied(RuntimeError):
    """The worker running a cell died (killed, out of memory, a crash in native code) or the
    cluster lost it. Only that cell fails; the message says what is known about why."""


class Executor:
    """Runs tasks; ``capacity`` is how many may be in flight at once. ``submit`` returns a
    :class:`concurrent.futures.Future` of ``fn(task)``."""

    name = "local"
    capacity = 1

    def submit(self, fn: Callable[[Any], Any], task: Any) -> cf.Future:
        raise NotImplementedError

    def wait_first(self, futures: Iterable[cf.Future]) -> set[cf.Future]:
        """Block until at least one of ``futures`` is done and return the done ones (an
        executor whose capacity can grow may return an empty set after a while: the caller
        then submits more and waits again)."""
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

    def wait_first(self, futures: Iterable[cf.Future]) -> set[cf.Future]:
        return set(futures)


# ----------------------------------------------------------------------------- local processes

#: In a worker: where it reports ``(job id, pid)`` when it starts a job (see ProcessExecutor).
_STARTED: Any = None


def _init_worker(threads: int, gpu_queue: Any, started: Any = None, parent: int = 0) -> None:
    """Worker start-up: Ctrl-C is the grid process's business (it stops the workers); torch and
    BLAS threads; one GPU per worker (CUDA_VISIBLE_DEVICES set before CUDA initialises); a
    watchdog that ends the worker when the grid process dies."""
    global _STARTED
    from vaebench.processes import start_worker

    start_worker(parent)
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())
    os.environ["VAEBENCH_WORKER"] = "1"
    for var in BLAS_THREAD_VARS:  # before numpy loads its BLAS; a user's own setting wins
        os.environ.setdefault(var, str(threads))
    _STARTED = started
    import torch

    torch.set_num_threads(threads)


def _run_job(job_id: int, fn: Callable[[Any], Any], task: Any) -> Any:
    """In a worker: say which process runs the job, then run it."""
    if _STARTED is not None:
        _STARTED.put((job_id, os.getpid()))
    return fn(task)


class _Job:
    """A submitted task: its function, its result future (what the caller holds), and how
    often the pool broke while it was in flight."""

    __slots__ = ("id", "fn", "task", "future", "breaks")

    def __init__(self, job_id: int, fn: Callable[[Any], Any], task: Any) -> None:
        self.id, self.fn, self.task = job_id, fn, task
        self.future: cf.Future = cf.Future()
        self.breaks = 0


class ProcessExecutor(Executor):
    """``n`` local worker processes (spawn start method: no fork of a process holding torch
    threads or CUDA state), each with ``threads`` torch threads and, with ``gpus``, one GPU
    (:func:`gpu_assignment`).

    When a worker dies the standard pool breaks and fails every task in flight; this executor
    finds out which worker died (each reports its pid when it starts a task), fails only that
    task with :class:`WorkerDied` (naming the signal, e.g. SIGKILL: out of memory), starts a
    new pool and resubmits the others (a break caused by another task costs them nothing).
    When the dead worker cannot be told, every task in flight is a suspect: one in flight
    during two such breaks fails (it may be the one killing its workers).
    """

    #: A task in flight during this many pool breaks of unknown cause fails (it may be the one
    #: killing the workers).
    MAX_BREAKS = 2

    def __init__(self, n: int, threads: int, gpus: int = 0) -> None:
        self.capacity = n
        self._n, self._threads, self._gpus = n, threads, gpus
        self._ctx = multiprocessing.get_context("spawn")
        self._jobs: dict[int, _Job] = {}
        self._ids = itertools.count()
        self._lock = threading.RLock()
        self._closed = False
        self._start_pool()

    # -- the pool --------------------------------------------------------------------------
    def _start_pool(self) -> None:
        gpu_queue = None
        if self._gpus:
            gpu_queue = self._ctx.Queue()
            for device in gpu_assignment(self._n, self._gpus):
                gpu_queue.put(device)
        self._started = self._ctx.SimpleQueue()
        self._pool = cf.ProcessPoolExecutor(
            max_workers=self._n,
            mp_context=self._ctx,
            initializer=_init_worker,
            initargs=(self._threads, gpu_queue, self._started, os.getpid()),
        )
        # the pool's {pid: Process}; the same dict object lives on after the pool broke
        procs = getattr(self._pool, "_processes", None)
        self._procs: dict[int, Any] = procs if isinstance(procs, dict) else {}
        self._pids: dict[int, int] = {}
        self._broke: cf.Future = cf.Future()

    def _drain_started(self) -> None:
        """Read the workers' start reports (the pipe must never fill up)."""
        with self._lock:
            while not self._started.empty():
                job_id, pid = self._started.get()
                if job_id in self._jobs:
                    self._pids[job_id] = pid

    def _dispatch(self, job: _Job) -> None:
        try:
            inner = self._pool.submit(_run_job, job.id, job.fn, job.task)
        except BrokenProcessPool:
            self._signal_break()
            return
        broke = self._broke
        inner.add_done_callback(lambda f: self._inner_done(job, f, broke))

    def _signal_break(self) -> None:
        if not self._broke.done():
            self._broke.set_result(None)

    def _inner_done(self, job: _Job, inner: cf.Future, broke: cf.Future) -> None:
        """The pool's future of ``job`` finished (in the pool's manager thread)."""
        if inner.cancelled():
            return
        exc = inner.exception()
        if isinstance(exc, BrokenProcessPool):
            if not broke.done():
                broke.set_result(None)
            return
        with self._lock:
            self._jobs.pop(job.id, None)
            self._pids.pop(job.id, None)
            if job.future.done():
                return
            if exc is None:
                job.future.set_result(inner.result())
            else:
                job.future.set_exception(exc)

    def _recover(self) -> None:
        """After a worker died: fail its task, restart the pool, resubmit the other tasks."""
        old, procs = self._pool, self._procs
        old.shutdown(wait=False, cancel_futures=True)
        for proc in list(procs.values()):  # the pool terminates the others; wait for that
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        self._drain_started()
        with self._lock:
            pending = [job for job in self._jobs.values() if not job.future.done()]
            pids = dict(self._pids)
        self._start_pool()

        def exit_code(job: _Job) -> tuple[int | None, int | None]:
            pid = pids.get(job.id)
            proc = procs.get(pid) if pid is not None else None
            return pid, (proc.exitcode if proc is not None else None)

        # the workers the pool itself terminated exit with SIGTERM; any other exit is the cause
        culprits = {job.id for job in pending
                    if exit_code(job)[1] not in (None, -signal.SIGTERM)}  # fmt: skip
        resubmit = []
        for job in pending:
            pid, code = exit_code(job)
            if not culprits:  # the dead worker is unknown: every task in flight is a suspect
                job.breaks += 1
            if job.id in culprits:
                reason = (
                    f"the worker process (pid {pid}) running this cell died: {describe_exit(code)}"
                )
            elif job.breaks >= self.MAX_BREAKS:
                reason = (
                    f"worker processes died {job.breaks} times while this cell was running "
                    f"(last: pid {pid}, {describe_exit(code)})"
                )
            else:
                resubmit.append(job)
                continue
            log.warning("%s", reason)
            with self._lock:
                self._jobs.pop(job.id, None)
                job.future.set_exception(WorkerDied(reason))
        if resubmit:
            log.info("a worker process died; %d other task(s) in flight resubmitted", len(resubmit))
        for job in resubmit:
            self._dispatch(job)

    # -- the Executor interface ------------------------------------------------------------
    def submit(self, fn: Callable[[Any], Any], task: Any) -> cf.Future:
        if self._closed:
            raise RuntimeError("the executor was shut down")
        job = _Job(next(self._ids), fn, task)
        with self._lock:
            self._jobs[job.id] = job
        self._dispatch(job)
        return job.future

    def wait_first(self, futures: Iterable[cf.Future]) -> set[cf.Future]:
        futures = list(futures)
        while True:
            self._drain_started()
            if self._broke.done() and not self._closed:
                self._recover()
            done = {f for f in futures if f.done()}
            if done or not futures:
                return done
            cf.wait([*futures, self._broke], return_when=cf.FIRST_COMPLETED)

    def shutdown(self, cancel: bool = False) -> None:
        self._closed = True
        if not cancel:
            self._pool.shutdown(wait=True)
            return
        self._pool.shutdown(wait=False, cancel_futures=True)
        procs = list(self._procs.values())  # this pool's workers only
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        with self._lock:
            for job in self._jobs.values():
                job.future.cancel()
            self._jobs.clear()


# ----------------------------------------------------------------------------- Dask


def _import_distributed() -> Any:
    return import_extra("distributed", "--executor dask", "Dask distributed", DASK_INSTALL)


def check_executor(name: str) -> None:
    """Raise :class:`ConfigError` (before anything runs) when executor ``name`` is unknown or
    its extra is not installed (``dask``: :data:`DASK_INSTALL`)."""
    if name == "dask":
        _import_distributed()
    elif name != "local":
        raise ConfigError(f"unknown executor {name!r}; valid: local, dask")


def _local_cluster(distributed: Any, n: int, gpus: int) -> Any:
    """A cluster of ``n`` worker processes on this machine, one Dask thread each; with GPUs,
    each worker sees one GPU (its own CUDA_VISIBLE_DEVICES) and offers the resource GPU=1."""
    quiet = logging.ERROR
    if not gpus:
        return distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=quiet,
        )
    workers = {
        i: {
            "cls": distributed.Nanny,
            "options": {
                "nthreads": 1,
                "resources": {"GPU": 1},
                "env": {"CUDA_VISIBLE_DEVICES": device},
                "silence_logs": quiet,
                "dashboard": False,
            },
        }
        for i, device in enumerate(gpu_assignment(n, gpus))
    }
    scheduler = {"cls": distributed.Scheduler, "options": {"dashboard_address": ":0"}}
    return distributed.SpecCluster(workers=workers, scheduler=scheduler, silence_logs=quiet)


def _task_key(task: Any) -> str:
    """A readable, unique Dask key (the dashboard shows it): the cell's file stem."""
    import uuid

    cell = getattr(task, "cell", None)
    stem = getattr(cell, "stem", None) or "task"
    return f"vaebench-{stem}-{uuid.uuid4().hex[:8]}"


class DaskExecutor(Executor):
    """Tasks on a Dask ``distributed`` cluster (install the ``dask`` extra).

    ``scheduler``: address of an existing scheduler (``tcp://host:8786``); ``None`` starts a
    local cluster of ``n`` worker processes with one Dask thread each (torch threads are set
    per task). GPUs: a local cluster gives each worker one GPU; each task asks for the worker
    resource ``GPU=1`` when this machine has GPUs or when the workers of ``scheduler``
    advertise that resource (start them with ``--nthreads 1 --resources GPU=1``).

    The cluster is started (or the scheduler joined) at the first task. ``capacity`` then
    follows the cluster (the threads, or the GPUs, of the workers connected now), so workers
    that join later -- Slurm jobs leaving the queue -- are used as they arrive.
    A cell whose workers keep dying fails with :class:`WorkerDied` (Dask's ``KilledWorker``:
    the scheduler retries a task on another worker a few times first).
    """

    name = "dask"
    #: Seconds ``wait_first`` blocks before returning (so that new workers get work).
    POLL_SECONDS = 5.0

    def __init__(self, n: int, threads: int, gpus: int = 0, scheduler: str | None = None) -> None:
        self._distributed = _import_distributed()
        self._n, self._gpus, self._scheduler = max(1, n), gpus, scheduler
        self._cluster: Any = None
        self._client: Any = None
        self._gpu = bool(gpus)
        self._resources: dict[str, int] | None = {"GPU": 1} if gpus else None
        self._futures: dict[cf.Future, Any] = {}
        self._capacity_at = 0.0
        self._capacity = self._n

    def _start(self) -> None:
        """Start the local cluster or connect to the scheduler, at the first task: a grid
        whose cells are all done starts nothing. Raises :class:`ConfigError` for a scheduler
        that cannot be reached."""
        if self._client is not None:
            return
        distributed = self._distributed
        if self._scheduler is None:
            self._cluster = _local_cluster(distributed, self._n, self._gpus)
            self._client = distributed.Client(self._cluster)
        else:
            try:
                self._client = distributed.Client(self._scheduler)  # comm.timeouts.connect
            except (OSError, TimeoutError, ValueError) as exc:
                raise ConfigError(
                    f"cannot reach the Dask scheduler {self._scheduler!r}: {exc} (start one "
                    "with `dask scheduler`, or drop --scheduler to use a local cluster)"
                ) from None
        self._gpu = bool(self._gpus) or self._workers_offer_gpus()
        self._resources = {"GPU": 1} if self._gpu else None
        self._capacity, self._capacity_at = self._measure_capacity(), time.monotonic()

    def _workers(self) -> dict[str, Any]:
        try:
            return dict(self._client.scheduler_info(n_workers=-1).get("workers", {}))
        except TypeError:  # pragma: no cover - distributed before 2025
            return dict(self._client.scheduler_info().get("workers", {}))

    def _workers_offer_gpus(self) -> bool:
        workers = self._workers()
        return bool(workers) and all(
            (w.get("resources") or {}).get("GPU", 0) >= 1 for w in workers.values()
        )

    def _measure_capacity(self) -> int:
        workers = self._workers()
        if self._gpu:
            total = sum(int((w.get("resources") or {}).get("GPU", 0)) for w in workers.values())
        else:
            total = sum(int(w.get("nthreads", 1)) for w in workers.values())
        return max(1, total)

    @property
    def capacity(self) -> int:  # type: ignore[override]
        if self._client is None:  # not started yet: as planned
            return self._capacity
        now = time.monotonic()
        if now - self._capacity_at > 2.0:
            self._capacity_at = now
            try:
                self._capacity = self._measure_capacity()
            except Exception as exc:  # noqa: BLE001 - keep the last known size
                log.debug("cannot ask the Dask scheduler for its workers: %s", exc)
        return self._capacity

    @property
    def n_workers(self) -> int:
        """Workers connected to the cluster now (what its cells record as ``workers``); starts
        the cluster or connects to the scheduler, as the first :meth:`submit` would."""
        self._start()
        try:
            return max(1, len(self._workers()))
        except Exception:  # noqa: BLE001 - the scheduler went away: as planned
            return self._n

    @property
    def dashboard(self) -> str | None:
        return getattr(self._client, "dashboard_link", None)

    def submit(self, fn: Callable[[Any], Any], task: Any) -> cf.Future:
        self._start()
        dask_future = self._client.submit(
            fn, task, pure=False, resources=self._resources, key=_task_key(task)
        )
        proxy: cf.Future = cf.Future()
        self._futures[proxy] = dask_future
        dask_future.add_done_callback(lambda f: self._settle(proxy, f))
        return proxy

    def _settle(self, proxy: cf.Future, dask_future: Any) -> None:
        """Hand a finished Dask future's outcome to ``proxy`` (in Dask's callback thread),
        with lost workers and tasks said plainly."""
        killed = getattr(self._distributed, "KilledWorker", ())
        try:
            result = dask_future.result()
        except killed as exc:
            outcome: Any = WorkerDied(
                "the Dask workers running this cell died each time the scheduler tried it "
                f"(KilledWorker: out of memory, or killed?): {exc}"
            )
        except cf.CancelledError:
            outcome = WorkerDied(
                "the Dask scheduler dropped this cell (the connection to it was lost, or it "
                "shut down)"
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the grid like any outcome
            outcome = exc
        else:
            if not proxy.done():
                proxy.set_result(result)
            return
        if not proxy.done():
            proxy.set_exception(outcome)

    def wait_first(self, futures: Iterable[cf.Future]) -> set[cf.Future]:
        done, _ = cf.wait(list(futures), timeout=self.POLL_SECONDS, return_when=cf.FIRST_COMPLETED)
        for fut in done:
            self._futures.pop(fut, None)
        return set(done)

    def shutdown(self, cancel: bool = False) -> None:
        if self._client is None:
            return
        try:
            if cancel and self._futures:
                self._client.cancel(list(self._futures.values()), force=True)
            for proxy in self._futures:
                proxy.cancel()
            self._futures.clear()
        finally:
            try:
                self._client.close()
            finally:
                if self._cluster is not None:
                    self._cluster.close()


def make_executor(name: str, plan: WorkerPlan, scheduler: str | None = None) -> Executor:
    """The executor ``name`` (``local`` or ``dask``) sized by ``plan``. Raises
    :class:`ConfigError` for an unknown name, a missing extra or an unreachable scheduler."""
    check_executor(name)
    if name == "dask":
        return DaskExecutor(plan.concurrent, plan.threads, plan.gpus, scheduler)
    if plan.concurrent <= 1:
        return InProcessExecutor()
    return ProcessExecutor(plan.concurrent, plan.threads, plan.gpus)
