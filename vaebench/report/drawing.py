"""Figures drawn in parallel: the drawing of a report's figures (matplotlib's Agg rendering and
``savefig``: most of a fresh report's time) shared between this process and worker processes.

A :class:`FigureJob` names a module-level drawing function of :mod:`vaebench.report.figures`
and its arguments (plain data: cells, pandas frames, colours), so that it pickles. With at least
two cores, in the ``vaebench`` command (a user's script is never imported again by a worker),
:func:`figure_pool` starts ``cores - 1`` worker processes (``spawn``: a worker imports numpy,
pandas, matplotlib and the report modules, never torch) while the report is collected, and for
:data:`MIN_PARALLEL` figures or more :func:`draw_all` has them render figures from the front of
the list while this process renders from the back; either way a figure's bytes are those of
:func:`render`, so the files are identical to a serial drawing. Only this process writes files
(through :func:`vaebench.report.files.write_report_file`, which records them in the report's
index).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from vaebench.processes import start_worker
from vaebench.report import files

__all__ = [
    "MIN_CELL_BYTES",
    "MIN_PARALLEL",
    "FigureJob",
    "FigurePool",
    "draw_all",
    "figure_pool",
    "close_standby",
    "render",
    "start_standby",
    "worth_sharing",
]

log = logging.getLogger(__name__)

#: Fewer figures than this are drawn in this process alone: starting a worker (about a second
#: of imports) would not pay for itself.
MIN_PARALLEL = 6


@dataclasses.dataclass(frozen=True)
class FigureJob:
    """One figure to draw: ``draw(*args, **kwargs)`` returns a :class:`matplotlib.figure.Figure`
    (or ``None``: nothing to draw), saved as ``path`` plus each suffix. ``draw`` must be a
    module-level function (it is pickled by name for a worker process)."""

    path: Path
    draw: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


def render(job: FigureJob, suffixes: Sequence[str]) -> list[tuple[str, bytes]]:
    """Draw ``job`` and return ``[(suffix, file bytes), ...]`` in the report's style (see
    :func:`vaebench.report.figures.save`); ``[]`` when there is nothing to draw."""
    from vaebench.report.figures import _style

    fig = job.draw(*job.args, **job.kwargs)
    if fig is None:
        return []
    with _style():
        return files.figure_bytes(fig, suffixes)


#: Cell files smaller than this in all hold too few images for a drawing worth sharing (a worker
#: costs about a second of imports); the default ``vaebench run`` writes about 100 KB.
MIN_CELL_BYTES = 64 * 1024


def worth_sharing(run_dirs: Sequence[str | os.PathLike[str]]) -> bool:
    """Whether the cell files of ``run_dirs`` (``RUN/cells/*.json``) reach
    :data:`MIN_CELL_BYTES`: the images the figures draw are most of a cell's bytes."""
    total = 0
    for run in run_dirs:
        for cell in Path(run).glob("cells/*.json"):
            try:
                total += cell.stat().st_size
            except OSError:  # removed meanwhile: the report says what it finds
                continue
            if total >= MIN_CELL_BYTES:
                return True
    return False


def _cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _main_is_safe() -> bool:
    """Whether a ``spawn`` worker may start: it imports the ``__main__`` module again, which
    must then run nothing. True for the ``vaebench`` command (``vaebench`` or ``python -m
    vaebench.cli``) and where ``__main__`` is no file (``python -c``, an interactive session,
    a notebook); false for any other script, which might train again at its top level."""
    main = sys.modules.get("__main__")
    path: str | None = getattr(main, "__file__", None)
    if path is None:
        return True
    spec = getattr(main, "__spec__", None)
    if spec is not None:
        return bool(spec.name == "vaebench.cli.__main__")
    return Path(path).stem == "vaebench"


def _workers() -> int:
    """Worker processes worth starting: ``cores - 1``; none on one core, inside a daemon
    process (which may not start children) or from a script of the user's
    (:func:`_main_is_safe`)."""
    cores = _cores()
    if cores < 2 or multiprocessing.current_process().daemon or not _main_is_safe():
        return 0
    return cores - 1


def _warm_up() -> None:
    """Run first in each worker: the imports a drawing needs, while the report is collected."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401

    import vaebench.report.figures  # noqa: F401


class FigurePool:
    """Worker processes for :func:`draw_all`, started on :meth:`start` or on first use (see
    :func:`figure_pool`); ``enabled`` false (or too few cores, see :func:`_workers`): none."""

    def __init__(self, enabled: bool) -> None:
        self.workers = _workers() if enabled else 0
        self._pool: ProcessPoolExecutor | None = None
        self._used = False

    def start(self) -> None:
        """Start the workers (once), each importing what a drawing needs."""
        if self.workers and self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=start_worker,
                initargs=(os.getpid(),),
            )  # fmt: skip
            for _ in range(self.workers):
                self._pool.submit(_warm_up)

    def get(self) -> ProcessPoolExecutor | None:
        """The started pool for drawing, or ``None`` when there are no workers."""
        self.start()
        self._used = self._pool is not None
        return self._pool

    def close(self) -> None:
        """Shut the workers down: waits for them when they drew; workers that only imported
        (or are still importing) are ended at once, so that a report with little to draw, or
        a command that stops early, does not wait for a worker's start."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            processes = dict(getattr(pool, "_processes", None) or {})  # shutdown drops them
            manager = getattr(pool, "_executor_manager_thread", None)
            pool.shutdown(wait=self._used, cancel_futures=True)
            if not self._used:
                for proc in processes.values():
                    proc.terminate()
                # the pool's manager thread reaps them at once; waiting for it here keeps it
                # from racing the interpreter's exit (Python 3.11 may then print EBADF noise)
                if manager is not None:
                    manager.join(timeout=10)


#: The pool started ahead of a report by :func:`start_standby` (one per process at most).
_STANDBY: FigurePool | None = None


def start_standby() -> bool:
    """Start the figure workers now, for a report this process will write later (the one at
    the end of ``vaebench run``): their imports (about a second of CPU) then run while the grid
    trains -- on a core the grid leaves idle when it runs its cells in this process -- and the
    report's first :func:`figure_pool` takes them over. False (nothing started) where
    :func:`_workers` says no worker may start. :func:`close_standby` ends an unused one."""
    global _STANDBY
    if _STANDBY is None:
        pool = FigurePool(True)
        if not pool.workers:
            return False
        pool.start()
        _STANDBY = pool
    return True


def close_standby() -> None:
    """End the pool of :func:`start_standby` if no report took it (e.g. the run failed)."""
    global _STANDBY
    pool, _STANDBY = _STANDBY, None
    if pool is not None:
        pool.close()


@contextlib.contextmanager
def figure_pool(figures: bool, start_now: bool) -> Iterator[FigurePool]:
    """A :class:`FigurePool` (no workers when ``figures`` is false), shut down on exit: the
    pool of :func:`start_standby` when there is one, else a new one. ``start_now``: start the
    workers at once, so that their imports run while the caller collects the results (for a
    report that will draw, e.g. into a fresh folder); otherwise they start when the first
    figures are drawn (a report whose figures are all kept starts none)."""
    global _STANDBY
    standby, _STANDBY = _STANDBY, None
    if standby is not None and not figures:
        standby.close()
        standby = None
    pool = standby if standby is not None else FigurePool(figures)
    try:
        if start_now:
            pool.start()
        yield pool
    finally:
        pool.close()


def _render_shared(
    jobs: Sequence[FigureJob], suffixes: Sequence[str], pool: ProcessPoolExecutor
) -> list[list[tuple[str, bytes]]]:
    """Every job's bytes, in order: the workers take jobs from the front, this process from the
    back (a job still queued is cancelled and drawn here). A job that fails in a worker, or a
    pool that breaks, is drawn again here (so a drawer's error is raised as in a serial
    drawing)."""
    done: dict[int, list[tuple[str, bytes]]] = {}
    futures: list[Future[list[tuple[str, bytes]]]] = []
    for job in jobs:
        try:
            futures.append(pool.submit(render, job, tuple(suffixes)))
        except RuntimeError:  # a broken or shut-down pool: the rest is drawn here
            break
    for i in reversed(range(len(jobs))):
        if i >= len(futures) or futures[i].cancel():
            done[i] = render(jobs[i], suffixes)
    for i, future in enumerate(futures):
        if i in done:
            continue
        try:
            done[i] = future.result()
        except Exception as exc:  # noqa: BLE001 - drawn again here, where it raises as usual
            log.debug("figure %s not drawn by a worker (%s: %s); drawing it here",
                      jobs[i].path.name, type(exc).__name__, exc)  # fmt: skip
            done[i] = render(jobs[i], suffixes)
    return [done[i] for i in range(len(jobs))]


def draw_all(
    jobs: Sequence[FigureJob],
    suffixes: Sequence[str],
    pool: FigurePool | None = None,
) -> list[Path]:
    """Draw every job and write its files (``job.path`` plus each suffix), shared with the
    worker processes of ``pool`` (:func:`figure_pool`) when there are :data:`MIN_PARALLEL` jobs
    or more, else in this process; the written paths, in the jobs' order. Raises what a drawing
    function raises, and :class:`OSError` when a file cannot be written."""
    executor = pool.get() if pool is not None and len(jobs) >= MIN_PARALLEL else None
    if executor is not None:
        rendered = _render_shared(jobs, suffixes, executor)
    else:
        rendered = [render(job, suffixes) for job in jobs]
    written: list[Path] = []
    for job, figure in zip(jobs, rendered, strict=True):
        if figure:  # nothing drawn: nothing written (as :func:`vaebench.report.figures.save`)
            written += files.write_figure(job.path, figure)
    return written
