"""The runner: a grid of models x datasets x sweep values x seeds, one result file per cell.

For every cell it decides what is needed -- train (and evaluate), evaluate only (the model is
stored; a metric is new or its options changed), or nothing -- and hands a :class:`CellTask` to
an executor (:mod:`vaebench.executors`). The task (:func:`execute_task`) runs in this process or
a worker: it seeds everything, builds the model through its plugin's spec, checks it on two
training images, fits it on the training split, and evaluates every selected metric through
:func:`vaebench.evaluation.evaluate_metrics`. The grid process is the only writer: it stores
the state and the cell record atomically, calls the ``vaebench_cell_finished`` hook and keeps
the run manifest. The runner knows no output format: reports read the stored files.

Identity (``docs/architecture.md``): a cell's key hashes only what changes the trained weights
(:func:`training_config`); each evaluation is keyed by its metric's name, version and options.

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
  ``interrupted`` and :class:`RunInterrupted` carries the summary.
- **Full disk.** :class:`~vaebench.errors.DiskFullError` stops the grid; finished cells stay.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import math
import os
import secrets
import signal
import socket
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from vaebench.config import ConfigError, RunConfig, config_hash
from vaebench.errors import DatasetError, DiskFullError, ModelContractError
from vaebench.evaluation import free_memory as _free_memory
from vaebench.evaluation import release_after_cell as _release_after_cell
from vaebench.fileio import check_real_folders
from vaebench.hookspecs import CellInfo
from vaebench.results import (
    MANIFEST_SCHEMA,
    SCHEMA,
    CellLock,
    ResultsError,
    atomic_write_bytes,
    atomic_write_json,
    cell_stem,
    check_results_folder,
    environment,
    is_enospc,
    now_iso,
    read_cell,
    remove_stale_locks,
    remove_stale_temp_files,
    write_cell,
)

log = logging.getLogger("vaebench.runner")

__all__ = [
    "Cell",
    "CellTask",
    "RunSummary",
    "RunInterrupted",
    "TRAINING_VERSION",
    "plan",
    "run",
    "evaluate",
    "execute_task",
    "load_dataset",
    "training_config",
]

#: A model with more parameters than this is refused before the grid starts (it could only fail
#: every cell by running out of memory).
MAX_PARAMS = 2_000_000_000

#: Version of what vaebench does to train a model (the shared loop, seeding, batching, data
#: splits). Part of every training key: bump it when a change alters trained weights.
TRAINING_VERSION = 3  # 3: fused Adam/AdamW kernels

#: Seconds between two writes of a running grid's manifest (it is written at the start and the
#: end of every run whatever this says).
MANIFEST_INTERVAL = 2.0


@dataclasses.dataclass
class Cell:
    """One (model, hyperparameters, dataset, seed) combination of a grid.

    ``config`` is its training identity (:func:`training_config`) and ``hash`` the training
    key; ``sweep`` maps each swept parameter's label (``"vae.beta"``, ``"latent_dim"``) to this
    cell's value.
    """

    model: str
    dataset: str
    seed: int
    config: dict[str, Any]
    hash: str
    sweep: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.hash

    @property
    def params(self) -> dict[str, Any]:
        return self.config.get("params", {})

    @property
    def stem(self) -> str:
        return cell_stem(self.model, self.dataset, self.seed, self.hash)

    @property
    def label(self) -> str:
        """``"vae (beta=4) / digits / seed 0"``, printable whatever the names hold (control
        characters of a path or a plugin's name are shown escaped)."""
        return cell_label(self.model, self.dataset, self.seed, self.sweep)

    def info(self) -> CellInfo:
        """The plain :class:`~vaebench.hookspecs.CellInfo` the cell hooks receive."""
        return CellInfo(
            self.model, self.dataset, self.seed, dict(self.params), dict(self.sweep),
            self.key, self.stem, self.label,
        )  # fmt: skip


def cell_label(model: str, dataset: str, seed: int, sweep: Mapping[str, Any]) -> str:
    """``"vae (beta=4) / digits / seed 0"``: how logs, summaries and trackers name a cell."""
    from vaebench.plugins import printable

    swept = ", ".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in sweep.items())
    name = f"{model} ({swept})" if swept else model
    return printable(f"{name} / {dataset} / seed {seed}")


def _short(value: Any) -> str:
    """A swept value as labels show it: ``4.0`` -> ``4``, ``0.001`` -> ``0.001``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclasses.dataclass
class RunSummary:
    """What a call of :func:`run` or :func:`evaluate` did with each cell.

    ``ran``: trained by this call; ``evaluated``: stored model, metrics added or recomputed;
    ``skipped``: already complete before; ``unsupported``: ``(cell, reason)`` the model's tags
    do not support the dataset; ``elsewhere``: finished by another process while this one
    waited; ``busy``: still claimed by another process (only while the grid is in progress);
    ``failed``: ``(cell, reason)``; ``metric_failures``: ``(cell, metric, reason)``;
    ``nan_values``: ``(cell, value, reason)``; ``warnings``: ``(cell, message)``;
    ``no_state``: cells that could not be evaluated because their weights are not stored (their
    stored evaluations are kept).
    """

    out_dir: Path
    ran: list[Cell] = dataclasses.field(default_factory=list)
    evaluated: list[Cell] = dataclasses.field(default_factory=list)
    skipped: list[Cell] = dataclasses.field(default_factory=list)
    unsupported: list[tuple[Cell, str]] = dataclasses.field(default_factory=list)
    busy: list[Cell] = dataclasses.field(default_factory=list)
    failed: list[tuple[Cell, str]] = dataclasses.field(default_factory=list)
    elsewhere: list[Cell] = dataclasses.field(default_factory=list)
    metric_failures: list[tuple[Cell, str, str]] = dataclasses.field(default_factory=list)
    no_state: list[Cell] = dataclasses.field(default_factory=list)
    nan_values: list[tuple[Cell, str, str]] = dataclasses.field(default_factory=list)
    warnings: list[tuple[Cell, str]] = dataclasses.field(default_factory=list)
    run_id: str = ""
    execution: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: cell files ``evaluate`` could not read (truncated, corrupt): never evaluated, exit 1
    unreadable: list[Path] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.metric_failures and not self.unreadable

    @property
    def n_cells(self) -> int:
        return (
            len(self.ran)
            + len(self.evaluated)
            + len(self.skipped)
            + len(self.unsupported)
            + len(self.busy)
            + len(self.failed)
            + len(self.elsewhere)
        )

    def to_dict(self) -> dict[str, Any]:
        """Cell stems per outcome (the ``summary`` of a run manifest)."""
        return {
            "ran": [c.stem for c in self.ran],
            "evaluated": [c.stem for c in self.evaluated],
            "skipped": [c.stem for c in self.skipped],
            "unsupported": {c.stem: reason for c, reason in self.unsupported},
            "elsewhere": [c.stem for c in self.elsewhere],
            "busy": [c.stem for c in self.busy],
            "failed": {c.stem: reason for c, reason in self.failed},
            "metric_failures": [[c.stem, m, r] for c, m, r in self.metric_failures],
            "nan_values": [[c.stem, v, r] for c, v, r in self.nan_values],
            "warnings": [[c.stem, m] for c, m in self.warnings],
            "no_state": [c.stem for c in self.no_state],
        }

    def book(self, cell: Cell, record: Mapping[str, Any]) -> None:
        """Count a written record's metric failures, NaN values and warnings."""
        for name, ev in (record.get("evaluations") or {}).items():
            if ev.get("status") == "failed":
                plugin = ev.get("plugin") or ""
                note = "" if not plugin or plugin.startswith("vaebench ") else f" [{plugin}]"
                self.metric_failures.append((cell, name, ev.get("reason", "") + note))
            for value, reason in (ev.get("nan") or {}).items():
                self.nan_values.append((cell, value, reason))
        for w in record.get("warnings") or []:
            if w.get("kind") not in ("metric_failed", "nan_value"):
                self.warnings.append((cell, w.get("message", "")))


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


def evaluation_summary(evaluations: Mapping[str, Mapping[str, Any]]) -> str:
    """What one evaluate step did, for its log line: the metrics evaluated, then those that did
    not apply and those that failed (``"fd, kid; not applicable: iwae; failed: knn"``)."""
    by_status: dict[str, list[str]] = {}
    for name, ev in evaluations.items():
        by_status.setdefault(str(ev.get("status", "ok")), []).append(name)
    parts = [", ".join(by_status.get("ok", [])) or "no metric"]
    for status, label in (("not_applicable", "not applicable"), ("failed", "failed")):
        if by_status.get(status):
            parts.append(f"{label}: {', '.join(by_status[status])}")
    return "; ".join(parts)


@contextlib.contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into a ``KeyboardInterrupt`` (with ``signum``) inside the block
    (main thread only; signals somebody set to be ignored, e.g. SIGHUP under ``nohup``, stay
    ignored)."""
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


# ----------------------------------------------------------------------------- datasets


@dataclasses.dataclass(frozen=True)
class DatasetRef:
    """How to load a dataset anywhere (a worker reloads it and checks the fingerprint)."""

    name: str
    options: tuple[tuple[str, Any], ...]
    data_dir: str | None
    subset: int | None
    fingerprint: str = ""

    @classmethod
    def of(
        cls, name: str, options: Mapping[str, Any], data_dir: str | None, subset: int | None
    ) -> DatasetRef:
        return cls(name, tuple(sorted(options.items())), data_dir, subset)


_DATASETS: dict[tuple[Any, ...], Any] = {}


def load_dataset(
    registry: Any, name: str, options: Mapping[str, Any], data_dir: str | None, subset: int | None
):
    """Load a registered dataset (or a user file/folder path) and apply ``subset``.

    Any failure raises :class:`vaebench.errors.DatasetError` naming the dataset (a loader's own
    exception is chained as its cause).
    """
    try:
        spec = registry.dataset_for_path(name) or registry.dataset(name).spec
        ds = spec.load(data_dir=data_dir, **options)
        if subset is not None:
            ds = ds.subset(subset)
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - a loader's bug or a bad file: one clear line
        log.debug("loading dataset %s failed", name, exc_info=True)
        raise DatasetError(f"cannot load dataset {name!r}: {type(exc).__name__}: {exc}") from exc
    return ds


def _dataset(registry: Any, ref: DatasetRef) -> Any:
    """The dataset of ``ref``, loaded once per process; the fingerprint must match."""
    key = (id(registry), ref.name, ref.options, ref.data_dir, ref.subset)
    ds = _DATASETS.get(key)
    if ds is None:
        ds = load_dataset(registry, ref.name, dict(ref.options), ref.data_dir, ref.subset)
        _DATASETS.clear()  # keep one dataset per process: datasets can be large
        _DATASETS[key] = ds
    if ref.fingerprint and ds.fingerprint() != ref.fingerprint:
        raise DatasetError(
            f"dataset {ref.name!r} loaded here has content {ds.fingerprint()}, but the cell was "
            f"planned (or trained) on {ref.fingerprint}: the data files differ"
        )
    return ds


# ----------------------------------------------------------------------------- planning


def training_config(
    cfg: RunConfig, registry: Any, model: str, dataset: str, ds: Any, seed: int, sweep: dict
) -> dict[str, Any]:
    """The training identity of a cell: everything that changes the trained weights."""
    return {
        "schema": SCHEMA,
        "training_version": TRAINING_VERSION,
        "model": model,
        "params": cfg.resolved_params(registry, model, sweep),
        "dataset": dataset,
        # the options the user set; the content fingerprint covers what the defaults produce,
        # so a new dataset option with a default does not retrain every stored cell
        "dataset_options": dict(cfg.dataset_options.get(dataset, {})),
        "dataset_fingerprint": ds.fingerprint(),
        "subset": cfg.subset,
        "val_fraction": cfg.val_fraction,
        "seed": seed,
        "sweep": dict(sweep),
    }


def training_key(config: Mapping[str, Any]) -> str:
    """The training key of a cell's config: its hash without ``sweep``, which only repeats
    values ``params`` holds (a swept and a plainly set latent size of 5 train the same
    weights: one cell)."""
    return config_hash({k: v for k, v in config.items() if k != "sweep"})


def plan(cfg: RunConfig, registry: Any, datasets: Mapping[str, Any] | None = None) -> list[Cell]:
    """The grid's cells in run order (dataset-major, then model, sweep values, seed).
    ``datasets`` maps each dataset name of ``cfg`` to its loaded :class:`Dataset` (loaded here
    when not given: the content fingerprint is part of every key)."""
    if datasets is None:
        datasets = {
            name: load_dataset(
                registry, name, cfg.dataset_options.get(name, {}), cfg.data_dir, cfg.subset
            )  # fmt: skip
            for name in cfg.datasets
        }
    cells = []
    for dataset in cfg.datasets:
        ds = datasets[dataset]
        for model in cfg.models:
            for sweep in cfg.variants(registry, model):
                for seed in cfg.seeds:
                    config = training_config(cfg, registry, model, dataset, ds, seed, sweep)
                    cells.append(Cell(model, dataset, seed, config, training_key(config), sweep))
    return cells


def shard_cells(cells: Sequence[Cell], k: int, n: int) -> list[Cell]:
    """The cells of shard ``k`` of ``n`` (1-based): those whose training key, read as a number,
    is ``k - 1`` modulo ``n``. Disjoint, together the whole grid, and stable when the grid
    grows (a cell's shard depends on its key alone)."""
    return [c for c in cells if int(c.hash, 16) % n == k - 1]


def check_models(
    registry: Any, cells: Sequence[Cell], datasets: Mapping[str, Any]
) -> dict[str, str]:
    """Build every distinct (model, params, image shape) once on the ``meta`` device, before
    any training: invalid hyperparameters raise :class:`ConfigError` naming the model and the
    problem. Returns ``{cell stem: reason}`` for cells whose model does not support the dataset
    (its tags)."""
    import torch

    unsupported: dict[str, str] = {}
    seen: dict[tuple[Any, ...], str | None] = {}
    for cell in cells:
        ds = datasets[cell.dataset]
        key = (cell.model, config_hash(cell.params), tuple(ds.shape), ds.y_train is not None)
        if key not in seen:
            spec = registry.model(cell.model).spec
            try:
                model = spec.create(ds.shape, device=torch.device("meta"), **cell.params)
                tags = model.tags
                n_params = int(model.n_params)
            except (ValueError, TypeError, NotImplementedError) as exc:
                raise ConfigError(
                    f"model {cell.model!r} with {_params_text(cell, spec)}: {exc}"
                ) from None
            except Exception as exc:  # noqa: BLE001 - a factory that cannot build on meta
                log.debug("model %s not checked on the meta device: %s", cell.model, exc)
                seen[key] = None
                continue
            if n_params > MAX_PARAMS:
                raise ConfigError(
                    f"model {cell.model!r} with {_params_text(cell, spec)} has {n_params:,} "
                    f"parameters, more than the limit of {MAX_PARAMS:,} (check hidden sizes and "
                    "latent_dim)"
                )
            seen[key] = tags.unsupported(ds.shape, has_labels=ds.y_train is not None)
        if seen[key]:
            unsupported[cell.stem] = f"model {cell.model!r} {seen[key]}"
    return unsupported


def _params_text(cell: Cell, spec: Any) -> str:
    """The hyperparameters of ``cell`` that differ from the model's defaults (or a phrase)."""
    defaults = spec.defaults()
    changed = {k: v for k, v in cell.params.items() if defaults.get(k, object()) != v}
    if not changed:
        return "its default parameters"
    return ", ".join(f"{k}={v!r}" for k, v in sorted(changed.items()))


# ----------------------------------------------------------------------------- tasks


@dataclasses.dataclass
class CellTask:
    """Everything a worker needs to train or evaluate one cell (picklable)."""

    kind: str  # "train" or "evaluate"
    cell: Cell
    dataset: DatasetRef
    metrics: list[str]
    eval_options: dict[str, Any]
    device: str
    threads: int | None
    run_id: str
    execution: dict[str, Any]
    registry: Any = None  # None: the worker's own vaebench.plugins.get_registry()
    save_state: bool = True
    state: bytes | None = None  # evaluate: the stored state
    record: dict[str, Any] | None = None  # evaluate: the stored record (fit, dataset info)
    cache_dir: str | None = None
    progress: bool | None = False  # per-epoch bar (in-process only)


def _registry_for(task: CellTask) -> Any:
    if task.registry is not None:
        return task.registry
    from vaebench.plugins import get_registry

    return get_registry()


def _origin(registry: Any, kind: str, name: str) -> str | None:
    table = getattr(registry, kind)
    return table[name].origin if name in table else None


def _device_for(task: CellTask) -> Any:
    from vaebench.train import select_device

    return select_device(task.device)


def execute_task(task: CellTask) -> dict[str, Any]:
    """Train and/or evaluate one cell; return ``{"record": ..., "state": bytes | None}``.

    Runs wherever the executor puts it and writes nothing: the grid process stores what comes
    back. Failures of the cell are returned as a ``failed`` record, never raised (a full disk
    and interruption excepted).
    """
    import torch

    before = torch.get_num_threads()
    if task.threads is not None and before != task.threads:
        torch.set_num_threads(task.threads)
    blas = contextlib.nullcontext()
    if task.threads is not None and not os.environ.get("VAEBENCH_WORKER"):
        with contextlib.suppress(ImportError):  # in-process: BLAS threads as a worker has them
            from threadpoolctl import threadpool_limits

            blas = threadpool_limits(limits=task.threads)
    try:
        with blas:
            registry = _registry_for(task)
            t0 = time.perf_counter()
            if task.kind == "evaluate":
                return _evaluate_task(task, registry, t0)
            return _train_task(task, registry, t0)
    finally:  # in the caller's process, leave its thread count as it was
        if torch.get_num_threads() != before and not os.environ.get("VAEBENCH_WORKER"):
            torch.set_num_threads(before)


def _base_record(task: CellTask, registry: Any, ds: Any, device: Any) -> dict[str, Any]:
    cell = task.cell
    import torch

    return {
        "schema": SCHEMA,
        "model": cell.model,
        "dataset": cell.dataset,
        "seed": cell.seed,
        "config_hash": cell.hash,
        "config": cell.config,
        "execution": {
            **task.execution,
            "device": str(device),
            "threads": torch.get_num_threads(),
        },
        "environment": _environment(device),
        "run_id": task.run_id,
        "plugins": {
            "model": _origin(registry, "models", cell.model),
            "dataset": _origin(registry, "datasets", cell.dataset),
        },
        "dataset_info": {
            "shape": list(ds.shape),
            "n_train": int(ds.x_train.shape[0]),
            "n_test": int(ds.x_test.shape[0]),
            "has_labels": ds.y_train is not None,
            "fingerprint": ds.fingerprint(),
            "citation": ds.citation,
            "info": ds.info,
        },
        "started": now_iso(),
        "history": {},
        "evaluations": {},
        "warnings": [],
    }


_ENV: dict[str, Any] = {}


def _environment(device: Any) -> dict[str, Any]:
    key = str(device)
    if key not in _ENV:
        _ENV[key] = environment(device)
    env = dict(_ENV[key])
    import torch

    env["torch_threads"] = torch.get_num_threads()
    return env


def _failed(record: dict[str, Any], exc: BaseException, registry: Any, t0: float) -> dict:
    from vaebench.errors import DivergenceError

    record.update(
        status="failed",
        error={
            "reason": failure_reason(exc, DivergenceError) + _plugin_note(registry, record),
            "type": type(exc).__name__,
            "traceback": traceback.format_exc(),
        },
        wall_seconds=time.perf_counter() - t0,
        finished=now_iso(),
    )
    return record


def _sanity_check(model: Any, x: Any) -> None:
    """Before training: encode and decode two training images and check shapes, dtype,
    finiteness and range, so that a wrong-shape plugin fails in a second."""
    from vaebench.evaluation import GuardedModel

    guarded = GuardedModel(model)
    z = guarded.encode(x)
    guarded.decode(z)


def _train_task(task: CellTask, registry: Any, t0: float) -> dict[str, Any]:

    from vaebench.metric import EvalContext
    from vaebench.train import seed_everything

    cell = task.cell
    device = _device_for(task)
    ds = _dataset(registry, task.dataset)
    record = _base_record(task, registry, ds, device)
    state: bytes | None = None
    hook_errors: list[str] = []
    try:
        spec = registry.model(cell.model).spec
        seed_everything(cell.seed)
        model = spec.create(ds.shape, device=device, **cell.params)
        train, x_val = ds.holdout(cell.config.get("val_fraction", 0.0))
        record["dataset_info"]["n_val"] = int(x_val.shape[0])
        x_train = train.x_train.to(device)
        _sanity_check(model, x_train[:2])
        y_train = train.y_train.to(device) if train.y_train is not None else None
        val_curve: list[float] = []
        progress = _EpochCallback(task, model, x_val, val_curve, hook_errors)
        try:
            if model.tags.uses_labels:
                fit = model.fit(x_train, y_train, progress=progress)
            else:
                fit = model.fit(x_train, progress=progress)
        finally:
            progress.close()
        del x_train
        history = {k: list(v) for k, v in fit.history.items()}
        if val_curve:
            history["val_mse"] = val_curve
        record["history"] = history
        record["fit"] = {
            "seconds": fit.seconds,
            "samples_seen": fit.samples_seen,
            "epochs": fit.epochs,
        }
        tags = model.tags
        record["model_info"] = {
            "n_params": int(model.n_params),
            "latent_dim": int(model.latent_dim),
            "can_sample": bool(tags.can_sample),
            "tags": tags.to_dict(),
            "unused_params": [str(p) for p in getattr(model, "unused_params", ())],
        }
        ctx = EvalContext(
            seed=cell.seed,
            device=device,
            fit=fit,
            eval_batch_size=int(task.eval_options.get("eval_batch_size", 1024)),
            options=dict(task.eval_options),
            cache_dir=Path(task.cache_dir) if task.cache_dir else None,
        )
        if task.save_state:  # before any metric runs: what training produced, nothing else
            state = _state_bytes(model)
            record["state_sha256"] = hashlib.sha256(state).hexdigest()
        record["evaluations"] = _evaluate(model, train, task, registry, ctx)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a cell's failure is recorded
        if is_enospc(exc):
            raise
        _free_memory(device)
        return {"record": _failed(record, exc, registry, t0), "state": None}
    for message in hook_errors:
        record["warnings"].append({"kind": "hook", "message": message})
    record.update(status="ok", wall_seconds=time.perf_counter() - t0, finished=now_iso())
    del model
    _release_after_cell(device)
    return {"record": record, "state": state}


def _evaluate(model: Any, ds: Any, task: CellTask, registry: Any, ctx: Any) -> dict:
    from vaebench.evaluation import check_deterministic, evaluate_metrics

    # one model per cell: run and evaluate refuse a model whose codes change between calls
    check_deterministic(model, ds.x_test.to(ctx.device), task.cell.model)

    metrics = [registry.metric(name).spec for name in task.metrics]
    origins = {m.name: _origin(registry, "metrics", m.name) or "" for m in metrics}
    return evaluate_metrics(model, ds, metrics, ctx, origins=origins, run_id=task.run_id)


def _state_bytes(model: Any) -> bytes:
    """The model's state as :meth:`Model.save` writes it (a plugin's own ``save`` is used
    when it overrides the standard one)."""
    import tempfile

    import torch

    from vaebench.model import Model

    if type(model).save is Model.save:
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
        return buf.getvalue()
    with tempfile.TemporaryDirectory(prefix="vaebench-state-") as tmp:
        path = Path(tmp) / "state.pt"
        model.save(path)
        return path.read_bytes()


def check_state(state: bytes, record: Mapping[str, Any], stem: str) -> None:
    """Raise :class:`~vaebench.errors.ResultsError` when stored weights are not the ones the
    cell's record says training produced (``state_sha256``; older records have none)."""
    expected = record.get("state_sha256")
    if expected and hashlib.sha256(state).hexdigest() != expected:
        raise ResultsError(
            f"states/{stem}.pt does not hold the weights cell {stem} was trained to (sha256 "
            f"{hashlib.sha256(state).hexdigest()[:12]}, the cell records {expected[:12]}): it "
            "was replaced or damaged; train the cell again with vaebench run --force"
        )


def _load_state(model: Any, state: bytes) -> None:
    """Load state bytes into ``model`` through its own ``load`` (``weights_only=True``)."""
    import tempfile

    from vaebench.model import Model

    if type(model).load is Model.load:
        import torch

        model.load_state_dict(
            torch.load(io.BytesIO(state), map_location=model.device, weights_only=True)
        )
        return
    with tempfile.TemporaryDirectory(prefix="vaebench-state-") as tmp:
        path = Path(tmp) / "state.pt"
        path.write_bytes(state)
        model.load(path)


class _EpochCallback:
    """The ``progress`` callback handed to ``fit``: validation error per epoch (with
    ``--val-fraction``), the per-epoch progress bar (in-process) and the ``vaebench_epoch_end``
    hook (each plugin called on its own; a raising plugin is reported once per cell)."""

    def __init__(
        self, task: CellTask, model: Any, x_val: Any, curve: list, errors: list[str]
    ) -> None:
        from vaebench.plugins import get_plugin_manager

        self.task, self.model, self.x_val, self.curve, self.errors = (
            task,
            model,
            x_val,
            curve,
            errors,
        )
        self.impls = list(get_plugin_manager().hook.vaebench_epoch_end.get_hookimpls())
        self.cell_info = task.cell.info()
        self.failed_plugins: set[str] = set()
        self.bar = None
        if task.progress is not False:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=task.cell.params.get("epochs"),
                desc=task.cell.label,
                unit="epoch",
                leave=False,
                disable=None if task.progress is None else not task.progress,
                position=1,
                dynamic_ncols=True,
            )

    def __call__(self, epoch: int, epochs: int, logs: dict[str, float]) -> None:
        logs = dict(logs)
        if self.x_val.shape[0]:
            logs["val_mse"] = self._val_mse()
            self.curve.append(logs["val_mse"])
        if self.bar is not None:
            if self.bar.total != epochs:
                self.bar.total = epochs
            self.bar.n = epoch
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in list(logs.items())[:3]}, refresh=False)
            self.bar.refresh()
        for impl in self.impls:
            if impl.plugin_name in self.failed_plugins:
                continue
            try:
                call_hookimpl(impl, cell=self.cell_info, epoch=epoch, logs=logs)
            except Exception as exc:  # noqa: BLE001 - a tracking plugin must not lose the cell
                self.failed_plugins.add(impl.plugin_name)
                message = (
                    f'plugin "{impl.plugin_name}" raised in vaebench_epoch_end at epoch {epoch}: '
                    f"{type(exc).__name__}: {exc} (not called again for this cell)"
                )
                log.warning("%s: %s", self.task.cell.label, message)
                self.errors.append(message)

    def _val_mse(self) -> float:
        import torch

        total, n = 0.0, 0
        bs = int(self.task.eval_options.get("eval_batch_size", 1024))
        with torch.inference_mode():
            for i in range(0, self.x_val.shape[0], bs):
                xb = self.x_val[i : i + bs].to(self.model.device)
                out = self.model.decode(self.model.encode(xb))
                total += float((out.double() - xb.double()).pow(2).sum())
                n += xb.numel()
        return total / max(n, 1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _fit_report(record: Mapping[str, Any]) -> Any:
    from vaebench.model import FitReport

    fit = record.get("fit")
    if not isinstance(fit, Mapping):
        return None
    return FitReport(
        history={k: list(v) for k, v in (record.get("history") or {}).items()},
        seconds=float(fit.get("seconds", float("nan"))),
        samples_seen=int(fit.get("samples_seen", 0)),
        epochs=int(fit.get("epochs", 0)),
    )


def _evaluate_task(task: CellTask, registry: Any, t0: float) -> dict[str, Any]:
    from vaebench.metric import EvalContext

    cell = task.cell
    device = _device_for(task)
    record = dict(task.record or {})
    try:
        ds = _dataset(registry, task.dataset)
        train, _ = ds.holdout(cell.config.get("val_fraction", 0.0))
        spec = registry.model(cell.model).spec
        model = spec.create(ds.shape, device=device, **cell.params)
        assert task.state is not None
        check_state(task.state, record, cell.stem)
        _load_state(model, task.state)
        ctx = EvalContext(
            seed=cell.seed,
            device=device,
            fit=_fit_report(record),
            eval_batch_size=int(task.eval_options.get("eval_batch_size", 1024)),
            options=dict(task.eval_options),
            cache_dir=Path(task.cache_dir) if task.cache_dir else None,
        )
        evaluations = _evaluate(model, train, task, registry, ctx)
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        if is_enospc(exc):
            raise
        _free_memory(device)
        if isinstance(exc, ModelContractError):
            return {"record": _failed(record, exc, registry, t0), "state": None}
        from vaebench.evaluation import one_line

        reason = f"{type(exc).__name__}: {one_line(exc)}"
        evaluations = {
            name: {"metric": name, "status": "failed", "reason": f"cannot evaluate: {reason}",
                   "traceback": traceback.format_exc(), "run_id": task.run_id,
                   "evaluated": now_iso()}
            for name in task.metrics
        }  # fmt: skip
    _release_after_cell(device)
    return {"record": None, "evaluations": evaluations, "state": None}


# ----------------------------------------------------------------------------- the grid


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

    ``force`` retrains cells that finished before this call; ``show_progress`` ``None`` shows
    progress bars only when stderr is a terminal. Raises :class:`RunInterrupted` on Ctrl-C,
    SIGTERM or SIGHUP, :class:`vaebench.errors.ResultsError` when ``out_dir`` holds results of
    an unknown schema, :class:`vaebench.errors.DatasetError` when a dataset cannot be loaded
    and :class:`vaebench.errors.ConfigError` for an invalid hyperparameter (nothing is trained
    then), and :class:`vaebench.errors.DiskFullError` when the disk is full. See the module
    docstring for the rules.
    """
    from vaebench.plugins import get_registry

    registry = registry or get_registry()
    grid = _Grid(cfg, Path(out_dir), registry, force, save_states, show_progress, argv, "run")
    return grid.run()


def evaluate(
    out_dir: str | os.PathLike,
    cfg: RunConfig,
    *,
    registry: Any = None,
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
    grid = _Grid(cfg, Path(out_dir), registry, force, True, show_progress, argv, "evaluate")
    return grid.run()


class _Grid:
    """State of one :func:`run`/:func:`evaluate` call (kept off the public API)."""

    def __init__(
        self,
        cfg: RunConfig,
        out: Path,
        registry: Any,
        force: bool,
        save_states: bool,
        show_progress: bool | None,
        argv: list[str] | None,
        mode: str,
    ) -> None:
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
        self.datasets: dict[str, Any] = {}
        self.refs: dict[str, DatasetRef] = {}
        self.warned: set[Path] = set()
        self.manifest: dict[str, Any] = {}
        self.manifest_path = out / "manifests" / f"{self.run_id}.json"
        self.metric_names = cfg.selected_metrics(registry)
        self.metrics = {n: registry.metric(n).spec for n in self.metric_names}
        self.unsupported: dict[str, str] = {}

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
        if time.monotonic() - getattr(self, "_manifest_written", -math.inf) >= MANIFEST_INTERVAL:
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

    def _task(self, cell: Cell, action: str, rec: Any, metrics: list[str]) -> CellTask:
        state = None
        if action == "evaluate":
            state = (self.states_dir / f"{cell.stem}.pt").read_bytes()
        registry = None if self._registry_is_rebuildable() else self.registry
        in_process = self.executor.capacity <= 1 and self.cfg.executor == "local"
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
        record = _stub_record(cell, self.run_id, "skipped", skip_reason=reason,
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
            key = (id(self.registry), ref.name, ref.options, ref.data_dir, ref.subset)
            _DATASETS[key] = ds  # in-process tasks reuse it

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
            config = rec.get("config") or {}
            cell = Cell(
                rec["model"],
                rec["dataset"],
                rec["seed"],
                config,
                rec["config_hash"],
                dict(config.get("sweep") or {}),
            )
            if cell.stem != p.stem:
                log.warning("%s does not hold the cell it is named after; not evaluated", p)
                continue
            if rec["status"] == "ok" and cell.dataset not in self.refs:
                opts = config.get("dataset_options") or {}
                self.refs[cell.dataset] = DatasetRef(
                    cell.dataset,
                    tuple(sorted(opts.items())),
                    self.cfg.data_dir,
                    config.get("subset"),
                    config.get("dataset_fingerprint", ""),
                )
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
                if name not in table and not (kind == "dataset" and "/" in name)
            ]
            if missing:
                log.warning("%s not evaluated: %s not installed", cell.label, " and ".join(missing))
                continue
            keep.append(cell)
        return keep

    def run(self) -> RunSummary:
        from tqdm.auto import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        from vaebench.executors import check_executor, make_executor, plan_workers
        from vaebench.train import select_device

        check_executor(self.cfg.executor)  # a missing extra: stop before the folder is touched
        device = select_device(self.cfg.device)
        self._prepare_folder()
        if self.mode == "run":
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
        else:
            cells = self._check_evaluate_cells(self._stored_cells())
            self._check_states(cells)
        import torch

        n_gpus = torch.cuda.device_count() if device.type == "cuda" else 0
        workers = self.cfg.workers
        if device.type == "cuda" and device.index is not None:
            n_gpus = 0  # --device cuda:N names one GPU: the cells share it, one at a time
            workers = workers or 1
        self.plan = plan_workers(len(cells), device.type, workers, self.cfg.threads, n_gpus)
        self.execution = {
            "executor": self.cfg.executor,
            "scheduler": self.cfg.scheduler,
            "workers": self.plan.workers,
            "concurrent": self.plan.concurrent,
        }
        self.summary.execution = {**self.execution, "threads": self.plan.threads}
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
                "models": {m: _origin(self.registry, "models", m) for m in self.cfg.models},
                "datasets": {d: _origin(self.registry, "datasets", d) for d in self.cfg.datasets},
                "metrics": {m: _origin(self.registry, "metrics", m) for m in self.metric_names},
            },
            "cells": [c.stem for c in cells],
        }
        self._write_manifest("running")
        # cells finished before this run start the bar: its rate and ETA count work done now
        self.done_before = {c.stem for c in cells if self._decide(c)[0] == "done"}
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
        self.executor = None
        self.in_flight: dict[Any, tuple[Cell, CellLock, str, Any]] = {}
        try:
            with redirect, termination_as_interrupt():
                self.executor = make_executor(self.cfg.executor, self.plan, self.cfg.scheduler)
                self._loop(cells, wait=False)
                if self.summary.busy:  # the manifest says what ran before waiting on other runs
                    self._write_manifest("running")
                waiting, self.summary.busy = list(self.summary.busy), []
                for cell in waiting:
                    owner = CellLock(self.cells_dir / f"{cell.stem}.lock").owner()
                    log.info("waiting for %s (claimed by %s)", cell.label, owner or "another run")
                    bar.set_postfix_str(f"waiting: {cell.label}")
                    self._loop([cell], wait=True)
                self.executor.shutdown()
        except KeyboardInterrupt as exc:
            bar.close()
            self._abandon()
            signum = exc.signum if isinstance(exc, _Terminated) else signal.SIGINT
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

    def _abandon(self) -> None:
        """Stop the workers and give up the cells in flight (their locks are released)."""
        if self.executor is not None:
            with contextlib.suppress(Exception):
                self.executor.shutdown(cancel=True)
        for _, lock, _, _ in self.in_flight.values():
            lock.release()
        self.in_flight.clear()

    def _loop(self, cells: list[Cell], wait: bool) -> None:
        """Claim, submit and store cells, keeping at most ``executor.capacity`` in flight."""
        queue = list(cells)
        while queue or self.in_flight:
            while queue and len(self.in_flight) < self.executor.capacity:
                cell = queue.pop(0)
                self.bar.set_postfix_str(self._status_text(cell))
                self._claim_and_submit(cell, wait)
                self.bar.set_postfix_str(self._status_text())
            if not self.in_flight:
                break
            for fut in self.executor.wait_first(list(self.in_flight)):
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
        if self.executor.capacity <= 1 and self.cfg.executor == "local":
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
            record = _stub_record(cell, self.run_id, "failed", error=error,
                                  execution={**self.execution, "threads": self.plan.threads})  # fmt: skip
            return {"record": record, "state": None}

    def _restart_executor(self) -> None:
        from vaebench.executors import make_executor

        with contextlib.suppress(Exception):
            self.executor.shutdown(cancel=True)
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
                    self._store(cell, action, rec, _no_state(cell, new, state, self.run_id))
                    self.summary.evaluated.remove(cell)
                lock.release()
                self.bar.update(1)
                return
            task = self._task(cell, action, rec, metrics)
            fut = self.executor.submit(execute_task, task)
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


def _stub_record(cell: Cell, run_id: str, status: str, **fields: Any) -> dict[str, Any]:
    """A cell record written without a task's result (skipped, or its worker died)."""
    return {
        "schema": SCHEMA,
        "model": cell.model,
        "dataset": cell.dataset,
        "seed": cell.seed,
        "config_hash": cell.hash,
        "config": cell.config,
        "run_id": run_id,
        "status": status,
        "evaluations": {},
        "warnings": [],
        "finished": now_iso(),
        **fields,
    }


def _no_state(cell: Cell, metrics: list[str], state: Path, run_id: str) -> dict[str, Any]:
    """The outcome of evaluating a cell whose trained state is missing: failed evaluations."""
    reason = (
        "the trained weights are not stored (states/ has no file for this cell): the model "
        "cannot be evaluated without training it again (vaebench run with the same grid does)"
    )
    evaluations = {
        name: {"metric": name, "status": "failed", "reason": reason, "run_id": run_id,
               "evaluated": now_iso()}
        for name in metrics
    }  # fmt: skip
    return {"record": None, "evaluations": evaluations, "state": None}


def call_hookimpl(impl: Any, **kwargs: Any) -> Any:
    """Call one plugin's hook implementation with the arguments it declares (pluggy lets an
    implementation take a subset of the spec's arguments)."""
    return impl.function(**{k: kwargs[k] for k in impl.argnames if k in kwargs})


def failure_reason(exc: BaseException, divergence: type) -> str:
    """One line saying why a cell failed: ``diverged: ...``, ``out of memory: ...``,
    ``model contract: ...`` or ``ExceptionType: message``."""
    from vaebench.evaluation import one_line

    text = one_line(exc)
    lowered = str(exc).lower()
    if isinstance(exc, divergence):
        return f"diverged: {text}"
    if isinstance(exc, ModelContractError):
        return f"model contract: {text}"
    if (
        isinstance(exc, MemoryError)
        or type(exc).__name__ == "OutOfMemoryError"
        or "out of memory" in lowered
        or "can't allocate memory" in lowered
    ):
        return f"out of memory: {type(exc).__name__}: {text}"
    return f"{type(exc).__name__}: {text}"


def _plugin_note(registry: Any, record: Mapping[str, Any]) -> str:
    """`` [model from DIST VERSION (plugin P)]`` for third-party models; empty for built-ins."""
    reg = getattr(registry, "models", {}).get(record.get("model"))
    return "" if reg is None or reg.dist == "vaebench" else f" [model from {reg.origin}]"
