"""The runner: a grid of models x datasets x seeds, one result file per cell.

For every cell the runner seeds everything, builds the model through its plugin's spec, fits it on
the training split (on the chosen device), saves its state, evaluates every applicable metric on
the test split, and writes the cell's JSON atomically. It knows no output format: reports read
the stored files.

Finished cells (same config hash, status ``ok``) are skipped when the same command runs again
(``force`` reruns them); failed cells run again. A cell is claimed with a lock file so that two
processes pointed at one folder never run it twice at once. A cell that diverges, raises or runs
out of memory is recorded as failed with its reason and traceback; the grid goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import traceback
from collections.abc import Callable
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
    encode_images,
    environment,
    is_enospc,
    now_iso,
    read_cell,
)

log = logging.getLogger("vaebench.runner")

__all__ = ["Cell", "RunSummary", "RunInterrupted", "plan", "run", "load_dataset"]


@dataclasses.dataclass
class Cell:
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
    out_dir: Path
    ran: list[Cell] = dataclasses.field(default_factory=list)
    skipped: list[Cell] = dataclasses.field(default_factory=list)
    busy: list[Cell] = dataclasses.field(default_factory=list)
    failed: list[tuple[Cell, str]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: finished cells are saved; the summary says what is done."""

    def __init__(self, summary: RunSummary) -> None:
        super().__init__()
        self.summary = summary


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
    """Load a registered dataset (or a user file/folder path) and apply ``subset``."""
    from vaebench.config import _is_path_dataset

    if _is_path_dataset(name):
        from vaebench.data.user import load_user_dataset

        ds = load_user_dataset(name, **options)
    else:
        ds = registry.dataset(name).spec.load(data_dir=data_dir, **options)
    if subset is not None:
        ds = ds.subset(subset)
    return ds


def _origin(registry: Any, kind: str, name: str) -> str | None:
    table = getattr(registry, kind)
    return table[name].origin if name in table else None


def _finished(path: Path) -> bool:
    """A cell counts as finished only if its file parses, has our schema and status ok."""
    if not path.exists():
        return False
    try:
        return read_cell(path)["status"] == "ok"
    except ResultsError as exc:
        log.warning("ignoring unreadable result %s (%s); the cell will run again", path, exc)
        return False


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
    """Fit and evaluate one cell; return the result record (raises on failure)."""
    import torch

    from vaebench.metric import EvalContext
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
            info[k] = {**declared[k].to_dict(), "metric": metric.name}
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
    """Run the grid of ``cfg`` into ``out_dir``; see module docstring."""
    from tqdm.auto import tqdm

    from vaebench.plugins import get_registry
    from vaebench.train import select_device

    registry = registry or get_registry()
    out = Path(out_dir)
    cells_dir, states_dir = out / "cells", out / "states"
    cells_dir.mkdir(parents=True, exist_ok=True)
    device = select_device(cfg.device)
    env = environment(device)
    started = now_iso()
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "started": started,
        "argv": argv,
        "config": cfg.to_dict(),
        "environment": env,
        "plugins": {
            "models": {m: _origin(registry, "models", m) for m in cfg.models},
            "datasets": {d: _origin(registry, "datasets", d) for d in cfg.datasets},
            "metrics": {
                m.name: _origin(registry, "metrics", m.name) for m in _select_metrics(cfg, registry)
            },
        },
    }
    manifest_path = out / "manifests" / f"{started.replace(':', '')}-{os.getpid()}.json"
    atomic_write_json(manifest_path, manifest)

    cells = plan(cfg, registry)
    metrics = _select_metrics(cfg, registry)
    summary = RunSummary(out)
    datasets: dict[str, Any] = {}
    disable = None if show_progress is None else not show_progress
    bar = tqdm(total=len(cells), desc="grid", unit="cell", disable=disable, dynamic_ncols=True)
    try:
        for cell in cells:
            path = cells_dir / f"{cell.stem}.json"
            if not force and _finished(path):
                summary.skipped.append(cell)
                bar.update(1)
                continue
            lock = CellLock(cells_dir / f"{cell.stem}.lock")
            if not lock.acquire():
                log.info("skipping %s: another process is running it", cell.label)
                summary.busy.append(cell)
                bar.update(1)
                continue
            try:
                # re-check after claiming: another process may have finished it meanwhile
                if not force and _finished(path):
                    summary.skipped.append(cell)
                    bar.update(1)
                    continue
                if cell.dataset not in datasets:
                    datasets[cell.dataset] = load_dataset(
                        registry,
                        cell.dataset,
                        cfg.dataset_options.get(cell.dataset, {}),
                        cfg.data_dir,
                        cfg.subset,
                    )
                dataset = datasets[cell.dataset]
                bar.set_postfix_str(cell.label)
                record = _run_one(
                    cell, dataset, registry, device, metrics,
                    states_dir if save_states else None, env, tqdm, disable,
                )  # fmt: skip
                atomic_write_json(path, record)
                if record["status"] == "ok":
                    summary.ran.append(cell)
                    log.info("finished %s", cell.label)
                else:
                    summary.failed.append((cell, record["error"]["reason"]))
                    log.warning("FAILED %s: %s", cell.label, record["error"]["reason"])
                bar.update(1)
            finally:
                lock.release()
    except KeyboardInterrupt:
        bar.close()
        raise RunInterrupted(summary) from None
    bar.close()
    manifest["finished"] = now_iso()
    manifest["summary"] = {
        "ran": [c.stem for c in summary.ran],
        "skipped": [c.stem for c in summary.skipped],
        "busy": [c.stem for c in summary.busy],
        "failed": {c.stem: reason for c, reason in summary.failed},
    }
    atomic_write_json(manifest_path, manifest)
    return summary


def _run_one(cell, dataset, registry, device, metrics, states_dir, env, tqdm, disable):
    from vaebench.model import DivergenceError

    base = {
        "schema": SCHEMA,
        "model": cell.model,
        "dataset": cell.dataset,
        "seed": cell.seed,
        "config_hash": cell.hash,
        "config": cell.config,
        "environment": env,
        "plugins": {
            "model": _origin(registry, "models", cell.model),
            "dataset": _origin(registry, "datasets", cell.dataset),
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
    epochs = cell.config["params"].get("epochs")
    pbar = tqdm(
        total=epochs, desc=cell.label, unit="epoch", leave=False, disable=disable, position=1
    )

    def progress(done: int, total: int, logs: dict[str, float]) -> None:
        if pbar.total != total:
            pbar.total = total
        pbar.n = done
        pbar.set_postfix({k: f"{v:.4g}" for k, v in list(logs.items())[:3]}, refresh=False)
        pbar.refresh()

    t0 = time.perf_counter()
    try:
        result = run_cell(cell, dataset, registry, device, metrics, states_dir, progress)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a cell is recorded, grid goes on
        if is_enospc(exc):
            raise
        if isinstance(exc, DivergenceError):
            reason = f"diverged: {exc}"
        elif isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
            reason = f"out of memory: {exc}"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        return {
            **base,
            "status": "failed",
            "error": {"reason": reason, "type": type(exc).__name__,
                      "traceback": traceback.format_exc()},
            "wall_seconds": time.perf_counter() - t0,
            "finished": now_iso(),
        }  # fmt: skip
    finally:
        pbar.close()
    return {
        **base,
        **result,
        "status": "ok",
        "wall_seconds": time.perf_counter() - t0,
        "finished": now_iso(),
    }
