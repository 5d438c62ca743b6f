"""The grid run: a grid of models x datasets x sweep values x seeds, one result file per cell.

:class:`Grid` is one :func:`run` or :func:`evaluate` call. For every cell it decides what is
needed -- train (and evaluate), evaluate only (the model is stored; a metric is new or its
options changed), or nothing -- and hands a :class:`~vaebench.task.CellTask` to an executor
(:mod:`vaebench.executors`). The grid process is the only writer: it stores the state and the
cell record atomically, calls the ``vaebench_cell_finished`` hook and keeps the run manifest.
It knows no output format: reports read the stored files. Cells and their keys come from
:mod:`vaebench.cells`, the work on one cell from :mod:`vaebench.task`.

Reliability rules (see ``docs/reliability.md``):

- **Resume.** A cell whose record exists, parses, has this key and status ``ok`` is not
  trained again; missing, failed and corrupt cells run (``force`` also retrains cells finished
  before this run started). Every file is written atomically.
- **Two writers.** A cell is claimed with a :class:`~vaebench.results.CellLock` and checked
  again after claiming, so two processes pointed at one folder never work on one cell at once.
  Cells busy in another process are waited for at the end of the grid.
- **Failure isolation.** A cell that diverges, raises, breaks the model contract or runs out of
  memory is recorded as failed with its reason and traceback; a metric that raises loses only
  its own values; the grid goes on. Bad input (an unreadable dataset, an invalid
  hyperparameter, a folder of an unknown schema) stops the run before any training.
- **Interruption.** Ctrl-C (SIGINT), SIGTERM and SIGHUP stop the run: finished cells are kept,
  cells in progress are dropped (worker processes are stopped), the manifest says
  ``interrupted`` and :class:`~vaebench.signals.RunInterrupted` carries the summary.
- **Full disk.** :class:`~vaebench.errors.DiskFullError` stops the grid; finished cells stay.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import secrets
import socket
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaebench.cells import (
    Cell,
    DatasetRef,
    check_models,
    load_dataset,
    plan,
    remember_dataset,
    shard_cells,
)
from vaebench.config import RunConfig
from vaebench.environment import environment, now_iso
from vaebench.errors import DiskFullError
from vaebench.fileio import check_real_folders
from vaebench.record import MANIFEST_SCHEMA
from vaebench.results import (
    CellLock,
    ResultsError,
    atomic_write_bytes,
    atomic_write_json,
    check_results_folder,
    is_enospc,
    read_cell,
    remove_stale_locks,
    remove_stale_temp_files,
    write_cell,
)
from vaebench.signals import RunInterrupted, signal_of, termination_as_interrupt
from vaebench.summary import RunSummary, evaluation_summary
from vaebench.task import (
    CellTask,
    call_hookimpl,
    execute_task,
    no_state_outcome,
    origin,
    stub_record,
)

if TYPE_CHECKING:
    import torch

    from vaebench.dataset import Dataset
    from vaebench.executors import Executor, WorkerPlan
    from vaebench.plugins import Registry

log = logging.getLogger("vaebench.grid")

__all__ = ["Grid", "MANIFEST_INTERVAL", "evaluate", "run"]

#: Seconds between two writes of a running grid's manifest (it is written at the start and the
#: end of every run whatever this says).
MANIFEST_INTERVAL = 2.0


def run(
    cfg: RunConfig,
    out_dir: str | os.PathLike,
    *,
    registry: Registry | None = None,
    force: bool = False,
    save_states: bool = True,
    show_progress: bool | None = None,
    argv: list[str] | None = None,
) -> RunSummary:
    """Run the grid of ``cfg`` into ``out_dir`` and return what happened to each cell.

    ``force`` retrains cells that finished before this call; ``show_progress`` ``None`` shows
    progress bars only when stderr is a terminal. Raises
    :class:`~vaebench.signals.RunInterrupted` on Ctrl-C, SIGTERM or SIGHUP,
    :class:`vaebench.errors.ResultsError` when ``out_dir`` holds results of an unknown schema,
    :class:`vaebench.errors.DatasetError` when a dataset cannot be loaded and
    :class:`vaebench.errors.ConfigError` for an invalid hyperparameter (nothing is trained
    then), and :class:`vaebench.errors.DiskFullError` when the disk is full. See the module
    docstring for the rules.
    """
    from vaebench.plugins import get_registry

    registry = registry or get_registry()
    grid = Grid(cfg, Path(out_dir), registry, force, save_states, show_progress, argv, "run")
    return grid.run()


def evaluate(
    out_dir: str | os.PathLike,
    cfg: RunConfig,
    *,
    registry: Registry | None = None,
    show_progress: bool | None = None,
    argv: list[str] | None = None,
    force: bool = False,
) -> RunSummary:
    """Evaluate the stored models of ``out_dir`` with ``cfg``'s metrics and evaluation options,
    without training: every ok cell whose evaluation of a selected metric is missing, failed,
    or keyed differently (another version or options) is evaluated; ``force`` re-evaluates all
    selected metrics. ``cfg`` supplies the metrics, eval options and execution settings (its
    grid is ignored: the cells are those stored). A cell whose state file is missing gets a
    failed evaluation saying so."""
    from vaebench.plugins import get_registry

    registry = registry or get_registry()
    grid = Grid(cfg, Path(out_dir), registry, force, True, show_progress, argv, "evaluate")
    return grid.run()


class Grid:
    """One grid run: :func:`run` (``mode="run"``: plan, train, evaluate) or :func:`evaluate`
    (``mode="evaluate"``: the stored cells of ``out``, evaluation only) into the results folder
    ``out``.

    Build it with the run's :class:`~vaebench.config.RunConfig`, the folder, the plugin
    :class:`~vaebench.plugins.Registry` and the options of :func:`run`, then call
    :meth:`run` once; it returns the :class:`~vaebench.summary.RunSummary` (also kept as
    :attr:`summary`, under the unique :attr:`run_id`). The steps of :meth:`run`: prepare the
    folder (stale temporary files and locks removed, corrupt cells reported), list the cells
    (:meth:`plan_cells`), size the workers (:meth:`plan_execution`), write the ``running``
    manifest (:meth:`start_manifest`), then claim, submit and store every cell
    (:meth:`execute`). Errors are those of :func:`run`; an unknown ``mode`` raises
    :class:`ValueError`.
    """

    def __init__(
        self,
        cfg: RunConfig,
        out: Path,
        registry: Registry,
        force: bool,
        save_states: bool,
        show_progress: bool | None,
        argv: list[str] | None,
        mode: str,
    ) -> None:
        if mode not in ("run", "evaluate"):
            raise ValueError(f"Grid mode {mode!r}: expected 'run' or 'evaluate'")
        self.cfg, self.out, self.registry, self.mode = cfg, out, registry, mode
        self.force, self.save_states, self.argv = force, save_states, argv
        self.show_progress = show_progress
        self.disable = None if show_progress is None else not show_progress
        self.cells_dir, self.states_dir = out / "cells", out / "states"
        self.started_at = time.time()
        self.started = now_iso()
        # unique even for several runs of one process within a second (the API, tests)
        self.run_id = f"{self.started.replace(':', '')}-{os.getpid()}-{secrets.token_hex(3)}"
        self.summary = RunSummary(out, run_id=self.run_id)
        self.datasets: dict[str, Dataset] = {}
        self.refs: dict[str, DatasetRef] = {}
        self.warned: set[Path] = set()
        self.manifest: dict[str, Any] = {}
        self.manifest_path = out / "manifests" / f"{self.run_id}.json"
        self._manifest_written = -math.inf
        self.metric_names = cfg.selected_metrics(registry)
        self.metrics = {n: registry.metric(n).spec for n in self.metric_names}
        self.unsupported: dict[str, str] = {}
        self.executor: Executor | None = None
        self.in_flight: dict[Any, tuple[Cell, CellLock, str, Any]] = {}
        self.done_before: set[str] = set()

    @property
    def _pool(self) -> Executor:
        """The executor of the running grid (made by :meth:`execute`)."""
        if self.executor is None:
            raise RuntimeError("the grid's executor is not started (call Grid.run)")
        return self.executor

    # -- setup -------------------------------------------------------------------------------
    def _prepare_folder(self) -> None:
        if self.mode == "evaluate" and not (self.out / "cells").is_dir():
            raise ResultsError(f"{self.out} is not a vaebench results folder (no cells/ inside)")
        corrupt = check_results_folder(self.out)
        # every write and deletion below stays inside OUT through real folders (issue 19)
        check_real_folders(self.out, "cells", "states", "manifests", "features")
        try:
            self.cells_dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            what = self.cells_dir if self.cells_dir.exists() else self.out
            raise ResultsError(
                f"cannot create results folder: {what} exists and is a file"
            ) from None
        except OSError as exc:
            if is_enospc(exc):
                raise DiskFullError(exc.errno, f"no space left on device for {self.out}") from exc
            raise ResultsError(
                f"cannot create results folder {self.out}: {exc.strerror or exc}"
            ) from None
        for p in [
            *remove_stale_temp_files(self.out),
            *remove_stale_locks(self.cells_dir, self.out),
        ]:
            log.info("removed %s (left by a run that was killed)", p)
        for p in corrupt:
            if self.mode == "evaluate":  # evaluate never trains: say so, and fail (exit 1)
                self.summary.unreadable.append(p)
                continue
            log.warning(
                "%s is corrupt: it is ignored and its cell runs again if it belongs to this grid",
                p,
            )

    def _write_manifest(self, status: str, **extra: Any) -> None:
        self.manifest.update(status=status, summary=self.summary.to_dict(), **extra)
        atomic_write_json(self.manifest_path, self.manifest, self.out)
        self._manifest_written = time.monotonic()

    def _write_running_manifest(self) -> None:
        """The ``running`` manifest after a stored cell, at most every
        :data:`MANIFEST_INTERVAL` seconds: it lists every cell so far, so writing it after each
        of N cells costs O(N^2) (the cell files, not the manifest, are what a resume reads)."""
        if time.monotonic() - self._manifest_written >= MANIFEST_INTERVAL:
            self._write_manifest("running")

    def _eval_options(self) -> dict[str, Any]:
        return dict(self.cfg.eval)

    def _needed_metrics(self, rec: Mapping[str, Any]) -> list[str]:
        """Selected metrics whose stored evaluation is missing, failed or keyed differently."""
        from vaebench.evaluation import evaluation_key, metric_options

        need = []
        stored = rec.get("evaluations") or {}
        for name, metric in self.metrics.items():
            ev = stored.get(name)
            key = evaluation_key(metric, metric_options(metric, self.cfg.eval))
            if (
                self.force and self.mode == "evaluate"
                or ev is None
                or ev.get("key") != key
                or ev.get("status") == "failed"
            ):  # fmt: skip
                need.append(name)
        return need

    # -- per cell ----------------------------------------------------------------------------
    def _decide(self, cell: Cell) -> tuple[str, dict[str, Any] | None, list[str]]:
        """``(action, record, metrics)`` for the cell as it is on disk now. Actions: ``train``,
        ``evaluate`` (``metrics`` to add), ``skip`` (unsupported: write the record), ``done``,
        ``failed-elsewhere``."""
        path = self.cells_dir / f"{cell.stem}.json"
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            rec = None
        else:
            try:
                rec = read_cell(path)
            except ResultsError as exc:  # reported once by _prepare_folder
                log.debug("%s; the cell runs again", exc)
                rec = None
        if rec is not None and rec["config_hash"] != cell.hash:
            if path not in self.warned:
                self.warned.add(path)
                log.warning("%s does not hold the config it is named after; it runs again", path)
            rec = None
        if self.mode == "evaluate":
            if rec is None or rec["status"] != "ok":
                return "done", rec, []
            need = self._needed_metrics(rec)
            return ("evaluate" if need else "done"), rec, need
        if cell.stem in self.unsupported:
            if rec is not None and rec["status"] == "skipped" and not self.force:
                return "done", rec, []
            return "skip", rec, []
        if rec is None:
            return "train", None, list(self.metric_names)
        before_us = mtime < self.started_at
        if rec["status"] == "failed":
            return ("train" if before_us else "failed-elsewhere"), rec, list(self.metric_names)
        if rec["status"] != "ok" or (self.force and before_us):
            return "train", rec, list(self.metric_names)
        need = self._needed_metrics(rec)
        if not need:
            return "done", rec, []
        if not (self.states_dir / f"{cell.stem}.pt").is_file():
            log.info("%s: no stored state for the new metrics; it is trained again", cell.label)
            return "train", rec, list(self.metric_names)
        return "evaluate", rec, need

    def _registry_is_rebuildable(self) -> bool:
        """Whether a worker's own :func:`vaebench.plugins.get_registry` gives this registry:
        it is the process's registry and every plugin came from an entry point (plugins
        registered in code travel with each task instead, pickled)."""
        from vaebench.plugins import get_registry

        if self.registry is not get_registry():
            return False
        tables = (self.registry.models, self.registry.datasets, self.registry.metrics)
        return all(r.dist != "unknown distribution" for t in tables for r in t.values())

    def _cell_execution(self) -> dict[str, Any]:
        """What a cell records of how it ran: with Dask, the cluster's real worker count (a
        scheduler's workers, not the local default)."""
        n_workers = getattr(self.executor, "n_workers", None)
        if self.cfg.executor == "dask" and n_workers is not None:
            return {**self.execution, "workers": n_workers}
        return self.execution

    def _task(
        self, cell: Cell, action: str, rec: dict[str, Any] | None, metrics: list[str]
    ) -> CellTask:
        state = None
        if action == "evaluate":
            state = (self.states_dir / f"{cell.stem}.pt").read_bytes()
        registry = None if self._registry_is_rebuildable() else self.registry
        in_process = self._pool.capacity <= 1 and self.cfg.executor == "local"
        return CellTask(
            kind="train" if action == "train" else "evaluate",
            cell=cell,
            dataset=self.refs[cell.dataset],
            metrics=metrics,
            eval_options=self._eval_options(),
            device=self.cfg.device,
            threads=self.plan.threads,
            run_id=self.run_id,
            execution=self._cell_execution(),
            registry=registry,
            save_state=self.save_states,
            state=state,
            record=rec,
            # remote Dask workers would write the cache onto their own disk: no cache there
            cache_dir=None if self.cfg.scheduler else str(self.out / "features"),
            progress=self.show_progress if in_process else False,
        )

    def _store(self, cell: Cell, action: str, rec: Any, outcome: dict[str, Any]) -> str:
        """Write what a task returned; return the outcome for the summary."""
        from vaebench.evaluation import cell_warnings

        path = self.cells_dir / f"{cell.stem}.json"
        if outcome.get("record") is not None:
            record = outcome["record"]
            if action == "evaluate":  # the model broke the contract while being evaluated
                record = {**record, "evaluations": {**(rec or {}).get("evaluations", {})}}
        else:
            record = {k: v for k, v in (rec or {}).items() if not k.startswith("_")}
            record["evaluations"] = {**record.get("evaluations", {}), **outcome["evaluations"]}
            record["evaluated"] = now_iso()
        hook_warnings = [w for w in record.get("warnings", []) if w.get("kind") == "hook"]
        record["warnings"] = hook_warnings + cell_warnings(record)
        if outcome.get("state") is not None:
            atomic_write_bytes(self.states_dir / f"{cell.stem}.pt", outcome["state"], self.out)
        write_cell(path, record, self.out)
        self.summary.book(cell, record)
        self._cell_finished(cell, record)
        if record["status"] != "ok":
            reason = record["error"]["reason"]
            self.summary.failed.append((cell, reason))
            log.warning("FAILED %s: %s", cell.label, reason)
            return "failed"
        if action == "evaluate":
            self.summary.evaluated.append(cell)
            log.info(
                "evaluated %s (%s)", cell.label, evaluation_summary(outcome.get("evaluations", {}))
            )
            return "evaluated"
        self.summary.ran.append(cell)
        log.info("finished %s", cell.label)
        return "ran"

    def _write_skipped(self, cell: Cell) -> None:
        ds = self.datasets[cell.dataset]
        reason = self.unsupported[cell.stem]
        record = stub_record(cell, self.run_id, "skipped", skip_reason=reason,
                              dataset_info={"shape": list(ds.shape)})  # fmt: skip
        write_cell(self.cells_dir / f"{cell.stem}.json", record, self.out)
        self.summary.unsupported.append((cell, reason))
        log.info("skipped %s: %s", cell.label, reason)
        self._cell_finished(cell, record)

    def _cell_finished(self, cell: Cell, record: dict[str, Any]) -> None:
        """Call every plugin's ``vaebench_cell_finished`` on its own; report a raising one."""
        from vaebench.plugins import get_plugin_manager

        info = cell.info()
        for impl in get_plugin_manager().hook.vaebench_cell_finished.get_hookimpls():
            try:
                call_hookimpl(impl, cell=info, record=record)
            except Exception as exc:  # noqa: BLE001 - the stored cell is never lost
                message = (
                    f'plugin "{impl.plugin_name}" raised in vaebench_cell_finished: '
                    f"{type(exc).__name__}: {exc}"
                )
                log.warning("%s: %s", cell.label, message)
                self.summary.warnings.append((cell, message))

    # -- the grid ----------------------------------------------------------------------------
    def _load_datasets(self) -> None:
        for name in self.cfg.datasets:
            ds = load_dataset(
                self.registry,
                name,
                self.cfg.dataset_options.get(name, {}),
                self.cfg.data_dir,
                self.cfg.subset,
            )
            self.datasets[name] = ds
            ref = DatasetRef.of(
                name, self.cfg.dataset_options.get(name, {}), self.cfg.data_dir, self.cfg.subset
            )
            self.refs[name] = dataclasses.replace(ref, fingerprint=ds.fingerprint())
            remember_dataset(self.registry, ref, ds)  # in-process tasks reuse it

    def _stored_cells(self) -> list[Cell]:
        """``evaluate``: the cells of the folder (ok ones are evaluated)."""
        from vaebench.results import iter_cell_paths

        cells = []
        for p in iter_cell_paths(self.out):
            try:
                rec = read_cell(p)
            except ResultsError as exc:
                log.warning("%s", exc)
                continue
            cell = Cell.of_record(rec)
            if cell.stem != p.stem:
                log.warning("%s does not hold the cell it is named after; not evaluated", p)
                continue
            if rec["status"] == "ok" and cell.dataset not in self.refs:
                self.refs[cell.dataset] = DatasetRef.of_cell(cell, self.cfg.data_dir)
            cells.append(cell)
        return cells

    def _check_states(self, cells: list[Cell]) -> None:
        """``evaluate`` needs trained weights: a folder none of whose finished cells has its
        state stored (a fresh clone of committed results: states are not kept in git) is bad
        input, said once, before anything is written."""
        finished = [c for c in cells if self._decide(c)[0] == "evaluate"]
        if finished and not any((self.states_dir / f"{c.stem}.pt").is_file() for c in finished):
            raise ResultsError(
                f"{self.out}: none of the {len(finished)} cell(s) to evaluate has its trained "
                f"weights in {self.states_dir} (weights are not kept in git): nothing can be "
                "evaluated without training again -- run the grid with vaebench run to retrain"
            )

    def _check_evaluate_cells(self, cells: list[Cell]) -> list[Cell]:
        """Cells of an old folder may name models or datasets no longer installed."""
        keep = []
        for cell in cells:
            missing = [
                f"{kind} {name!r}"
                for kind, name, table in (
                    ("model", cell.model, self.registry.models),
                    ("dataset", cell.dataset, self.registry.datasets),
                )
                if name not in table
                and not (kind == "dataset" and self.registry.dataset_for_path(name) is not None)
            ]
            if missing:
                log.warning("%s not evaluated: %s not installed", cell.label, " and ".join(missing))
                continue
            keep.append(cell)
        return keep

    def run(self) -> RunSummary:
        """Run the grid (see the class docstring for the steps) and return its summary."""
        from vaebench.executors import check_executor
        from vaebench.train import select_device

        check_executor(self.cfg.executor)  # a missing extra: stop before the folder is touched
        device = select_device(self.cfg.device)
        self._prepare_folder()
        cells = self.plan_cells()
        self.plan_execution(device, len(cells))
        self.start_manifest(device, cells)
        return self.execute(cells)

    def plan_cells(self) -> list[Cell]:
        """``run``: the grid's cells (this shard's with ``--shard``), datasets loaded and every
        model checked on the ``meta`` device; ``evaluate``: the folder's cells whose model and
        dataset are installed."""
        if self.mode != "run":
            cells = self._check_evaluate_cells(self._stored_cells())
            self._check_states(cells)
            return cells
        self._load_datasets()
        cells = plan(self.cfg, self.registry, self.datasets)
        self.unsupported = check_models(self.registry, cells, self.datasets)
        shard = self.cfg.shard_of()
        if shard is not None:
            whole = len(cells)
            cells = shard_cells(cells, *shard)
            if not cells:  # say why (issue 19.6)
                log.warning(
                    "shard %d/%d is empty: a cell goes to shard (training key mod %d) + 1, "
                    "and none of the grid's %d cell(s) falls to this one (the other shards "
                    "hold them all; more seeds or values spread them)",
                    shard[0], shard[1], shard[1], whole,
                )  # fmt: skip
        return cells

    def plan_execution(self, device: torch.device, n_cells: int) -> None:
        """Size the workers and threads for ``n_cells`` on ``device`` (:attr:`plan`) and say
        how the cells run (:attr:`execution`, recorded in every cell and the manifest)."""
        import torch

        from vaebench.executors import plan_workers

        n_gpus = torch.cuda.device_count() if device.type == "cuda" else 0
        workers = self.cfg.workers
        if device.type == "cuda" and device.index is not None:
            n_gpus = 0  # --device cuda:N names one GPU: the cells share it, one at a time
            workers = workers or 1
        self.plan: WorkerPlan = plan_workers(
            n_cells, device.type, workers, self.cfg.threads, n_gpus
        )
        self.execution = {
            "executor": self.cfg.executor,
            "scheduler": self.cfg.scheduler,
            "workers": self.plan.workers,
            "concurrent": self.plan.concurrent,
        }
        self.summary.execution = {**self.execution, "threads": self.plan.threads}

    def start_manifest(self, device: torch.device, cells: list[Cell]) -> None:
        """Write the ``running`` manifest (configuration, execution, environment, plugins, the
        cells) and note the cells already finished."""
        self.manifest = {
            "schema": MANIFEST_SCHEMA,
            "kind": self.mode,
            "run_id": self.run_id,
            "started": self.started,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "argv": self.argv,
            "force": self.force,
            "config": self.cfg.to_dict(),
            "execution": {**self.execution, "threads": self.plan.threads},
            "environment": environment(device),
            "plugins": {
                "models": {m: origin(self.registry, "models", m) for m in self.cfg.models},
                "datasets": {d: origin(self.registry, "datasets", d) for d in self.cfg.datasets},
                "metrics": {m: origin(self.registry, "metrics", m) for m in self.metric_names},
            },
            "cells": [c.stem for c in cells],
        }
        self._write_manifest("running")
        # cells finished before this run start the bar: its rate and ETA count work done now
        self.done_before = {c.stem for c in cells if self._decide(c)[0] == "done"}

    def execute(self, cells: list[Cell]) -> RunSummary:
        """Claim, submit and store every cell, then wait for those busy in other processes;
        write the final manifest (``finished``, ``interrupted`` or ``aborted``). Raises
        :class:`~vaebench.signals.RunInterrupted` on a signal."""
        from tqdm.auto import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        from vaebench.executors import make_executor

        bar = tqdm(
            total=len(cells),
            initial=len(self.done_before),
            desc="evaluate" if self.mode == "evaluate" else "grid",
            unit="cell",
            disable=self.disable,
            dynamic_ncols=True,
        )
        redirect = logging_redirect_tqdm([logging.getLogger("vaebench")]) if not bar.disable else (
            contextlib.nullcontext()
        )  # fmt: skip
        self.bar = bar
        # the cleanup runs inside the block too: a second signal cannot cut it short
        with redirect, termination_as_interrupt():
            try:
                self.executor = make_executor(self.cfg.executor, self.plan, self.cfg.scheduler)
                self._loop(cells, wait=False)
                self._wait_for_busy()
                self.executor.shutdown()
            except KeyboardInterrupt as exc:
                bar.close()
                self._abandon()
                signum = signal_of(exc)
                with contextlib.suppress(Exception, KeyboardInterrupt):
                    self._reconcile(cells)
                    self._write_manifest("interrupted", finished=now_iso(), signal=int(signum))
                raise RunInterrupted(self.summary, signum) from None
            except BaseException as exc:
                bar.close()
                self._abandon()
                with contextlib.suppress(Exception):
                    self._write_manifest("aborted", finished=now_iso(), error=f"{exc}")
                raise
        bar.close()
        self._write_manifest("finished", finished=now_iso())
        return self.summary

    def _wait_for_busy(self) -> None:
        """Wait, one by one, for the cells another process had claimed."""
        if self.summary.busy:  # the manifest says what ran before waiting on other runs
            self._write_manifest("running")
        waiting, self.summary.busy = list(self.summary.busy), []
        for cell in waiting:
            owner = CellLock(self.cells_dir / f"{cell.stem}.lock").owner()
            log.info("waiting for %s (claimed by %s)", cell.label, owner or "another run")
            self.bar.set_postfix_str(f"waiting: {cell.label}")
            self._loop([cell], wait=True)

    def _abandon(self) -> None:
        """Stop the workers and give up the cells in flight (their locks are released), then
        delete the lock files no process holds: a signal between a lock's creation and its
        registration in flight (a few bytecodes) would leave one behind."""
        if self.executor is not None:
            with contextlib.suppress(Exception):
                self.executor.shutdown(cancel=True)
        for _, lock, _, _ in self.in_flight.values():
            lock.release()
        self.in_flight.clear()
        with contextlib.suppress(Exception):  # locks other processes hold are never touched
            remove_stale_locks(self.cells_dir, self.out)

    def _loop(self, cells: list[Cell], wait: bool) -> None:
        """Claim, submit and store cells, keeping at most ``executor.capacity`` in flight."""
        queue = list(cells)
        while queue or self.in_flight:
            while queue and len(self.in_flight) < self._pool.capacity:
                cell = queue.pop(0)
                self.bar.set_postfix_str(self._status_text(cell))
                self._claim_and_submit(cell, wait)
                self.bar.set_postfix_str(self._status_text())
            if not self.in_flight:
                break
            for fut in self._pool.wait_first(list(self.in_flight)):
                cell, lock, action, rec = self.in_flight.pop(fut)
                try:
                    outcome = self._result(fut, cell, action)
                    self._store(cell, action, rec, outcome)
                finally:
                    lock.release()
                self.bar.update(1)
                self.bar.set_postfix_str(self._status_text())
                self._write_running_manifest()

    def _status_text(self, starting: Cell | None = None) -> str:
        """The grid bar's postfix (the bar itself shows cells done / total and the ETA): cells
        running and failed; one at a time in this process, the cell being trained."""
        failed = f"failed {len(self.summary.failed)}"
        if self._pool.capacity <= 1 and self.cfg.executor == "local":
            return f"{starting.label}, {failed}" if starting is not None else failed
        return f"running {len(self.in_flight)}, {failed}"

    def _result(self, fut: Any, cell: Cell, action: str) -> dict[str, Any]:
        """A task's outcome; a worker that died becomes a failed cell."""
        try:
            return fut.result()
        except DiskFullError:
            raise
        except Exception as exc:  # noqa: BLE001 - the worker died or the executor broke
            if is_enospc(exc):
                raise
            from concurrent.futures.process import BrokenProcessPool

            from vaebench.executors import WorkerDied

            if isinstance(exc, BrokenProcessPool):
                reason = "the worker process died (killed, or out of memory?)"
                self._restart_executor()
            elif isinstance(exc, WorkerDied):  # its message says which worker and why
                reason = f"WorkerDied: {exc}"
            else:
                reason = f"{type(exc).__name__}: {exc}"
            error = {"reason": reason, "type": type(exc).__name__,
                     "traceback": traceback.format_exc()}  # fmt: skip
            record = stub_record(cell, self.run_id, "failed", error=error,
                                  execution={**self.execution, "threads": self.plan.threads})  # fmt: skip
            return {"record": record, "state": None}

    def _restart_executor(self) -> None:
        from vaebench.executors import make_executor

        with contextlib.suppress(Exception):
            self._pool.shutdown(cancel=True)
        self.executor = make_executor(self.cfg.executor, self.plan, self.cfg.scheduler)
        # every other task of the broken pool is lost too: they come back as failed futures

    def _claim_and_submit(self, cell: Cell, wait: bool) -> None:
        action, rec, metrics = self._decide(cell)
        if action in ("done", "failed-elsewhere"):
            self._record_existing(cell, action, rec, waited=wait)
            if cell.stem not in self.done_before:
                self.bar.update(1)
            return
        lock = CellLock(self.cells_dir / f"{cell.stem}.lock", self.out)
        if not lock.acquire(blocking=wait):
            self.summary.busy.append(cell)
            return
        try:
            action, rec, metrics = self._decide(cell)  # another process may have finished it
            if action in ("done", "failed-elsewhere"):
                lock.release()
                self._record_existing(cell, action, rec, waited=wait)
                self.bar.update(1)
                return
            if action == "skip":
                self._write_skipped(cell)
                lock.release()
                self.bar.update(1)
                return
            state = self.states_dir / f"{cell.stem}.pt"
            if action == "evaluate" and not state.is_file():
                # never replace a stored evaluation by a failure: keep it, and record a failure
                # only for metrics this cell has no evaluation of at all
                self.summary.no_state.append(cell)
                stored = (rec or {}).get("evaluations") or {}
                new = [m for m in metrics if m not in stored]
                if new:
                    self._store(cell, action, rec, no_state_outcome(cell, new, state, self.run_id))
                    self.summary.evaluated.remove(cell)
                lock.release()
                self.bar.update(1)
                return
            task = self._task(cell, action, rec, metrics)
            fut = self._pool.submit(execute_task, task)
        except BaseException:
            lock.release()
            raise
        self.in_flight[fut] = (cell, lock, action, rec)

    def _record_existing(self, cell: Cell, action: str, rec: Any, waited: bool) -> None:
        if action == "failed-elsewhere":
            self.summary.failed.append((cell, rec["error"]["reason"]))
        elif rec is not None and rec["status"] == "skipped":
            self.summary.unsupported.append((cell, rec.get("skip_reason", "")))
        elif rec is None and self.mode == "evaluate":
            return
        else:
            (self.summary.elsewhere if waited else self.summary.skipped).append(cell)

    def _reconcile(self, cells: list[Cell]) -> None:
        """Count cells this run saved but had no time to book (a signal between the write and
        the bookkeeping): the files, not the in-memory lists, are the truth."""
        booked = {c.stem for c in self.summary.ran} | {c.stem for c, _ in self.summary.failed}
        for cell in cells:
            if cell.stem in booked:
                continue
            try:
                rec = read_cell(self.cells_dir / f"{cell.stem}.json")
            except ResultsError:
                continue
            if rec.get("run_id") != self.run_id or rec["config_hash"] != cell.hash:
                continue
            if rec["status"] == "ok":
                self.summary.ran.append(cell)
            elif rec["status"] == "failed":
                self.summary.failed.append((cell, rec["error"]["reason"]))
            for pending in (self.summary.busy, self.summary.skipped):
                if cell in pending:
                    pending.remove(cell)
