"""The runner: a grid of models x datasets x seeds, one result file per cell.

For every cell the runner seeds everything, builds the model through its plugin's spec, fits it on
the training split (on the chosen device), saves its state, evaluates every applicable metric on
the test split, and writes the cell's JSON atomically. It knows no output format: reports read
the stored files.

Reliability rules (see ``docs/reliability.md``):

- **Resume.** A cell whose file exists, parses, has this config hash and status ``ok`` is skipped
  when the same grid runs again; missing, failed and corrupt cells run (``force`` also reruns
  cells finished before this run started). Every file is written atomically, so a run killed at
  any moment leaves only complete files plus temp files that readers ignore and the next run
  deletes.
- **Two writers.** A cell is claimed with a :class:`~vaebench.results.CellLock` and checked again
  after claiming, so two processes pointed at one folder never run a cell at the same time or
  one after the other. Cells busy in another process are waited for at the end of the grid.
- **Failure isolation.** A cell that diverges, raises or runs out of memory is recorded as failed
  with its reason and traceback; the grid goes on. Bad input (an unreadable dataset, a folder of
  another schema version) stops the run before any training.
- **Interruption.** Ctrl-C (SIGINT), SIGTERM and SIGHUP stop the run between two statements:
  finished cells are kept, the cell in progress is dropped, the manifest says ``interrupted``
  and :class:`RunInterrupted` carries the summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import secrets
import shutil
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vaebench.config import RunConfig, config_hash
from vaebench.results import (
    MANIFEST_SCHEMA,
    SCHEMA,
    CellLock,
    ResultsError,
    atomic_write_json,
    cell_stem,
    check_results_folder,
    encode_images,
    environment,
    is_enospc,
    now_iso,
    read_cell,
    remove_stale_locks,
    remove_stale_temp_files,
    staging_dir,
)

log = logging.getLogger("vaebench.runner")

__all__ = ["Cell", "RunSummary", "RunInterrupted", "plan", "run", "run_cell", "load_dataset"]


@dataclasses.dataclass
class Cell:
    """One (model, dataset, seed, config) combination of a grid."""

    model: str
    dataset: str
    seed: int
    config: dict[str, Any]
    hash: str

    @property
    def stem(self) -> str:
        return cell_stem(self.model, self.dataset, self.seed, self.hash)

    @property
    def label(self) -> str:
        return f"{self.model} / {self.dataset} / seed {self.seed}"


@dataclasses.dataclass
class RunSummary:
    """What a call of :func:`run` did with each cell of its grid.

    ``ran``: finished by this process; ``skipped``: already finished before; ``elsewhere``:
    finished by another process while this one waited; ``busy``: still claimed by another
    process (only while the grid is in progress); ``failed``: ``(cell, reason)`` pairs, failed
    in this process or (while this one waited) in another.
    """

    out_dir: Path
    ran: list[Cell] = dataclasses.field(default_factory=list)
    skipped: list[Cell] = dataclasses.field(default_factory=list)
    busy: list[Cell] = dataclasses.field(default_factory=list)
    failed: list[tuple[Cell, str]] = dataclasses.field(default_factory=list)
    elsewhere: list[Cell] = dataclasses.field(default_factory=list)
    run_id: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def n_cells(self) -> int:
        return (
            len(self.ran)
            + len(self.skipped)
            + len(self.busy)
            + len(self.failed)
            + len(self.elsewhere)
        )

    def to_dict(self) -> dict[str, Any]:
        """Cell stems per outcome (the ``summary`` of a run manifest)."""
        return {
            "ran": [c.stem for c in self.ran],
            "skipped": [c.stem for c in self.skipped],
            "elsewhere": [c.stem for c in self.elsewhere],
            "busy": [c.stem for c in self.busy],
            "failed": {c.stem: reason for c, reason in self.failed},
        }


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by a signal (Ctrl-C, SIGTERM, SIGHUP); finished cells are saved.

    ``summary`` says what is done; ``signum`` is the signal (exit code ``128 + signum``).
    """

    def __init__(self, summary: RunSummary, signum: int = signal.SIGINT) -> None:
        super().__init__()
        self.summary = summary
        self.signum = int(signum)


class _Terminated(KeyboardInterrupt):
    """Raised by our SIGTERM/SIGHUP handler so that termination unwinds like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum = signum


@contextlib.contextmanager
def _termination_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`_Terminated` while the grid runs (main thread only;
    signals somebody set to be ignored, e.g. SIGHUP under ``nohup``, stay ignored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated(signum)

    previous: dict[int, Any] = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def plan(cfg: RunConfig, registry: Any) -> list[Cell]:
    """The grid's cells in run order (dataset-major, then model, then seed)."""
    cells = []
    for dataset in cfg.datasets:
        for model in cfg.models:
            params = cfg.resolved_params(registry, model)
            for seed in cfg.seeds:
                config = {
                    "schema": SCHEMA,
                    "model": model,
                    "params": params,
                    "dataset": dataset,
                    "dataset_options": cfg.dataset_options.get(dataset, {}),
                    "subset": cfg.subset,
                    "seed": seed,
                    "eval": cfg.eval,
                    "metrics": cfg.metrics,
                }
                cells.append(Cell(model, dataset, seed, config, config_hash(config)))
    return cells


def load_dataset(
    registry: Any, name: str, options: dict[str, Any], data_dir: str | None, subset: int | None
):
    """Load a registered dataset (or a user file/folder path) and apply ``subset``.

    Any failure raises :class:`vaebench.dataset.DatasetError` naming the dataset (a loader's
    own exception is chained as its cause).
    """
    from vaebench.config import _is_path_dataset
    from vaebench.dataset import DatasetError

    try:
        if _is_path_dataset(name):
            from vaebench.data.user import load_user_dataset

            ds = load_user_dataset(name, **options)
        else:
            ds = registry.dataset(name).spec.load(data_dir=data_dir, **options)
        if subset is not None:
            ds = ds.subset(subset)
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - a loader's bug or a bad file: one clear line
        log.debug("loading dataset %s failed", name, exc_info=True)
        raise DatasetError(f"cannot load dataset {name!r}: {type(exc).__name__}: {exc}") from exc
    return ds


def _origin(registry: Any, kind: str, name: str) -> str | None:
    table = getattr(registry, kind)
    return table[name].origin if name in table else None


def _select_metrics(cfg: RunConfig, registry: Any) -> list[Any]:
    names = cfg.metrics if cfg.metrics is not None else sorted(registry.metrics)
    return [registry.metric(n).spec for n in names]


def run_cell(
    cell: Cell,
    dataset: Any,
    registry: Any,
    device: Any,
    metrics: list[Any],
    states_dir: Path | None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Fit and evaluate one cell; return the result record (raises on failure).

    Seeds Python, NumPy and torch from ``cell.seed`` first, so the result does not depend on
    what ran before in the same process. Raises :class:`vaebench.model.DivergenceError` when
    the trained model's codes or reconstructions are not finite.
    """
    import torch

    from vaebench.metric import EvalContext
    from vaebench.model import DivergenceError
    from vaebench.train import seed_everything

    spec = registry.model(cell.model).spec
    seed_everything(cell.seed)
    model = spec.create(dataset.shape, device=device, **cell.config["params"])
    x_train = dataset.x_train.to(device)
    fit = model.fit(x_train, progress=progress)
    del x_train
    with torch.inference_mode():
        probe = dataset.x_test[:2].to(device)
        z = model.encode(probe)
        out = model.decode(z)
    if tuple(z.shape) != (probe.shape[0], model.latent_dim):
        raise ValueError(
            f"model {cell.model!r}: encode returned shape {tuple(z.shape)}, "
            f"expected {(probe.shape[0], model.latent_dim)}"
        )
    if tuple(out.shape) != tuple(probe.shape):
        raise ValueError(
            f"model {cell.model!r}: decode returned shape {tuple(out.shape)}, "
            f"expected {tuple(probe.shape)}"
        )
    if not (torch.isfinite(z).all() and torch.isfinite(out).all()):
        raise DivergenceError("trained model gives NaN or infinite codes or reconstructions")
    if states_dir is not None:
        model.save(states_dir / f"{cell.stem}.pt")

    ctx = EvalContext(
        seed=cell.seed,
        device=device,
        fit=fit,
        eval_batch_size=int(cell.config["eval"]["eval_batch_size"]),
        options=dict(cell.config["eval"]),
    )
    values: dict[str, float] = {}
    info: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        if not metric.applies_to(model, dataset):
            continue
        declared = metric.declared()
        got = metric.evaluate(model, dataset, ctx)
        missing = sorted(set(declared) - set(got))
        extra = sorted(set(got) - set(declared))
        if missing or extra:
            raise ValueError(
                f"metric {metric.name!r} returned values {sorted(got)}; declared "
                f"{sorted(declared)} (missing {missing}, undeclared {extra})"
            )
        for k, v in got.items():
            if k in values:
                raise ValueError(f"metric value {k!r} reported by two metrics")
            values[k] = float(v)
            info[k] = {
                **declared[k].to_dict(),
                "metric": metric.name,
                "group": getattr(metric, "group", "") or "",
                "order": list(declared).index(k),
            }
    artifacts = {}
    for k, v in ctx.artifacts.items():
        if hasattr(v, "detach") or (hasattr(v, "ndim") and getattr(v, "ndim", 0) == 4):
            artifacts[k] = encode_images(v)
        else:
            artifacts[k] = v
    return {
        "metrics": values,
        "metric_info": info,
        "history": fit.history,
        "artifacts": artifacts,
        "model_info": {
            "n_params": model.n_params,
            "latent_dim": model.latent_dim,
            "can_sample": model.can_sample,
        },
    }


def run(
    cfg: RunConfig,
    out_dir: str | os.PathLike,
    *,
    registry: Any = None,
    force: bool = False,
    save_states: bool = True,
    show_progress: bool | None = None,
    argv: list[str] | None = None,
) -> RunSummary:
    """Run the grid of ``cfg`` into ``out_dir`` and return what happened to each cell.

    ``force`` reruns cells that finished before this call; ``show_progress`` ``None`` shows
    progress bars only when stderr is a terminal. Raises :class:`RunInterrupted` on Ctrl-C,
    SIGTERM or SIGHUP, :class:`vaebench.results.ResultsError` when ``out_dir`` holds results of
    another schema version, :class:`vaebench.dataset.DatasetError` when a dataset cannot be
    loaded (nothing is trained then), and ``OSError`` (ENOSPC) when the disk is full. See the
    module docstring for the rules.
    """
    from vaebench.plugins import get_registry
    from vaebench.train import select_device

    registry = registry or get_registry()
    grid = _Grid(cfg, Path(out_dir), registry, force, save_states, show_progress, argv)
    return grid.run(select_device(cfg.device))


class _Grid:
    """State of one :func:`run` call (kept off the public API)."""

    def __init__(
        self,
        cfg: RunConfig,
        out: Path,
        registry: Any,
        force: bool,
        save_states: bool,
        show_progress: bool | None,
        argv: list[str] | None,
    ) -> None:
        self.cfg, self.out, self.registry = cfg, out, registry
        self.force, self.save_states, self.argv = force, save_states, argv
        self.disable = None if show_progress is None else not show_progress
        self.cells_dir, self.states_dir = out / "cells", out / "states"
        self.started_at = time.time()
        self.started = now_iso()
        # unique even for several runs of one process within a second (the API, tests)
        self.run_id = f"{self.started.replace(':', '')}-{os.getpid()}-{secrets.token_hex(3)}"
        self.summary = RunSummary(out, run_id=self.run_id)
        self.datasets: dict[str, Any] = {}
        self.warned: set[Path] = set()
        self.manifest: dict[str, Any] = {}
        self.manifest_path = out / "manifests" / f"{self.run_id}.json"

    # -- setup -------------------------------------------------------------------------------
    def _prepare_folder(self) -> None:
        corrupt = check_results_folder(self.out)
        try:
            self.cells_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if is_enospc(exc):
                raise
            raise ResultsError(
                f"cannot create results folder {self.out}: {exc.strerror or exc}"
            ) from None
        for p in [*remove_stale_temp_files(self.out), *remove_stale_locks(self.cells_dir)]:
            log.info("removed %s (left by a run that was killed)", p)
        for p in corrupt:
            log.warning(
                "%s is corrupt: it is ignored and its cell runs again if it belongs to this grid",
                p,
            )

    def _write_manifest(self, status: str, **extra: Any) -> None:
        self.manifest.update(status=status, summary=self.summary.to_dict(), **extra)
        atomic_write_json(self.manifest_path, self.manifest)

    # -- per cell ----------------------------------------------------------------------------
    def _existing(self, cell: Cell) -> tuple[bool, dict[str, Any] | None]:
        """``(needs_run, record)`` for the cell's file as it is on disk now."""
        path = self.cells_dir / f"{cell.stem}.json"
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return True, None
        try:
            rec = read_cell(path)
        except ResultsError as exc:  # reported once by _prepare_folder
            log.debug("%s; the cell runs again", exc)
            return True, None
        if rec["config_hash"] != cell.hash:
            if path not in self.warned:
                self.warned.add(path)
                log.warning("%s does not hold the config it is named after; it runs again", path)
            return True, None
        before_us = mtime < self.started_at
        if rec["status"] != "ok":
            return before_us, rec  # a failure from an earlier run is retried
        return (self.force and before_us), rec

    def _attempt(self, cell: Cell, wait: bool) -> str:
        """Run ``cell`` unless it is finished or claimed; return the outcome."""
        needs, rec = self._existing(cell)
        if not needs:
            return self._outcome_of(rec)
        lock = CellLock(self.cells_dir / f"{cell.stem}.lock")
        if not lock.acquire(blocking=wait):
            return "busy"
        try:
            needs, rec = self._existing(cell)  # another process may have finished it meanwhile
            if not needs:
                return self._outcome_of(rec)
            record = self._run_one(cell)
            atomic_write_json(self.cells_dir / f"{cell.stem}.json", record)
        finally:
            lock.release()
        if record["status"] == "ok":
            self.summary.ran.append(cell)
            log.info("finished %s", cell.label)
            return "ran"
        reason = record["error"]["reason"]
        self.summary.failed.append((cell, reason))
        log.warning("FAILED %s: %s", cell.label, reason)
        return "failed"

    def _outcome_of(self, rec: dict[str, Any] | None) -> str:
        assert rec is not None
        if rec["status"] == "ok":
            return "done"
        return "failed-elsewhere"

    def _run_one(self, cell: Cell) -> dict[str, Any]:
        from tqdm.auto import tqdm

        from vaebench.model import DivergenceError

        dataset = self.datasets[cell.dataset]
        env = self.manifest["environment"]
        base = {
            "schema": SCHEMA,
            "model": cell.model,
            "dataset": cell.dataset,
            "seed": cell.seed,
            "config_hash": cell.hash,
            "config": cell.config,
            "environment": env,
            "run_id": self.run_id,
            "plugins": {
                "model": _origin(self.registry, "models", cell.model),
                "dataset": _origin(self.registry, "datasets", cell.dataset),
            },
            "dataset_info": {
                "shape": list(dataset.shape),
                "n_train": int(dataset.x_train.shape[0]),
                "n_test": int(dataset.x_test.shape[0]),
                "citation": dataset.citation,
                "info": dataset.info,
            },
            "started": now_iso(),
        }
        pbar = tqdm(
            total=cell.config["params"].get("epochs"),
            desc=cell.label,
            unit="epoch",
            leave=False,
            disable=self.disable,
            position=1,
            dynamic_ncols=True,
        )

        def progress(done: int, total: int, logs: dict[str, float]) -> None:
            if pbar.total != total:
                pbar.total = total
            pbar.n = done
            pbar.set_postfix({k: f"{v:.4g}" for k, v in list(logs.items())[:3]}, refresh=False)
            pbar.refresh()

        stage = staging_dir(self.states_dir) if self.save_states else None
        t0 = time.perf_counter()
        failure: dict[str, Any] | None = None
        try:
            result = run_cell(
                cell, dataset, self.registry, self.device, self.metrics, stage, progress
            )
            if stage is not None:
                os.replace(stage / f"{cell.stem}.pt", self.states_dir / f"{cell.stem}.pt")
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a cell's failure is recorded
            if is_enospc(exc):
                raise
            failure = {
                "reason": failure_reason(exc, DivergenceError)
                + _plugin_note(self.registry, cell.model),
                "type": type(exc).__name__,
                "traceback": traceback.format_exc(),
            }
        finally:
            pbar.close()
            if stage is not None:
                shutil.rmtree(stage, ignore_errors=True)
        if failure is not None:
            _free_memory(self.device)  # after the except block: the traceback's frames are gone
            return {
                **base,
                "status": "failed",
                "error": failure,
                "wall_seconds": time.perf_counter() - t0,
                "finished": now_iso(),
            }
        return {
            **base,
            **result,
            "status": "ok",
            "wall_seconds": time.perf_counter() - t0,
            "finished": now_iso(),
        }

    # -- the grid ----------------------------------------------------------------------------
    def run(self, device: Any) -> RunSummary:
        from tqdm.auto import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        self.device = device
        self._prepare_folder()
        cells = plan(self.cfg, self.registry)
        self.metrics = _select_metrics(self.cfg, self.registry)
        self.manifest = {
            "schema": MANIFEST_SCHEMA,
            "run_id": self.run_id,
            "started": self.started,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "argv": self.argv,
            "force": self.force,
            "config": self.cfg.to_dict(),
            "environment": environment(device),
            "plugins": {
                "models": {m: _origin(self.registry, "models", m) for m in self.cfg.models},
                "datasets": {d: _origin(self.registry, "datasets", d) for d in self.cfg.datasets},
                "metrics": {
                    m.name: _origin(self.registry, "metrics", m.name) for m in self.metrics
                },
            },
            "cells": [c.stem for c in cells],
        }
        self._write_manifest("running")
        bar = tqdm(
            total=len(cells), desc="grid", unit="cell", disable=self.disable, dynamic_ncols=True
        )
        redirect = logging_redirect_tqdm([logging.getLogger("vaebench")]) if not bar.disable else (
            contextlib.nullcontext()
        )  # fmt: skip
        try:
            with redirect, _termination_as_interrupt():
                self._load_datasets([c for c in cells if self._existing(c)[0]])
                for cell in cells:
                    bar.set_postfix_str(cell.label)
                    self._record(cell, self._attempt(cell, wait=False))
                    bar.update(0 if cell in self.summary.busy else 1)
                for cell in list(self.summary.busy):
                    self.summary.busy.remove(cell)
                    owner = CellLock(self.cells_dir / f"{cell.stem}.lock").owner()
                    log.info("waiting for %s (claimed by %s)", cell.label, owner or "another run")
                    bar.set_postfix_str(f"waiting: {cell.label}")
                    if cell.dataset not in self.datasets:
                        self._load_datasets([cell])
                    self._record(cell, self._attempt(cell, wait=True), waited=True)
                    bar.update(1)
        except KeyboardInterrupt as exc:
            bar.close()
            signum = exc.signum if isinstance(exc, _Terminated) else signal.SIGINT
            with contextlib.suppress(Exception, KeyboardInterrupt):
                self._reconcile(cells)
                self._write_manifest("interrupted", finished=now_iso(), signal=int(signum))
            raise RunInterrupted(self.summary, signum) from None
        except BaseException as exc:
            bar.close()
            with contextlib.suppress(Exception):
                self._write_manifest("aborted", finished=now_iso(), error=f"{exc}")
            raise
        bar.close()
        self._write_manifest("finished", finished=now_iso())
        return self.summary

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
            else:
                self.summary.failed.append((cell, rec["error"]["reason"]))
            for pending in (self.summary.busy, self.summary.skipped):
                if cell in pending:
                    pending.remove(cell)

    def _record(self, cell: Cell, outcome: str, waited: bool = False) -> None:
        if outcome == "busy":
            self.summary.busy.append(cell)
        elif outcome == "done":
            (self.summary.elsewhere if waited else self.summary.skipped).append(cell)
        elif outcome == "failed-elsewhere":
            rec = read_cell(self.cells_dir / f"{cell.stem}.json")
            self.summary.failed.append((cell, rec["error"]["reason"]))
        if outcome in ("ran", "failed", "failed-elsewhere"):
            self._write_manifest("running")

    def _load_datasets(self, cells: list[Cell]) -> None:
        for name in dict.fromkeys(c.dataset for c in cells):
            if name not in self.datasets:
                self.datasets[name] = load_dataset(
                    self.registry,
                    name,
                    self.cfg.dataset_options.get(name, {}),
                    self.cfg.data_dir,
                    self.cfg.subset,
                )


def failure_reason(exc: BaseException, divergence: type) -> str:
    """One line saying why a cell failed: ``diverged: ...``, ``out of memory: ...`` or
    ``ExceptionType: message``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    lowered = str(exc).lower()
    if isinstance(exc, divergence):
        return f"diverged: {text}"
    if (
        isinstance(exc, MemoryError)
        or type(exc).__name__ == "OutOfMemoryError"
        or "out of memory" in lowered
        or "can't allocate memory" in lowered
    ):
        return f"out of memory: {type(exc).__name__}: {text}"
    return f"{type(exc).__name__}: {text}"


def _free_memory(device: Any) -> None:
    """Give memory back after a failed cell (an out-of-memory error must not starve the next)."""
    gc.collect()
    if getattr(device, "type", None) == "cuda":
        import torch

        torch.cuda.empty_cache()


def _plugin_note(registry: Any, model: str) -> str:
    """`` [model from DIST VERSION (plugin P)]`` for third-party models; empty for built-ins."""
    reg = getattr(registry, "models", {}).get(model)
    return "" if reg is None or reg.dist == "vaebench" else f" [model from {reg.origin}]"
