"""The worker's task: train and/or evaluate one cell, wherever an executor runs it.

A :class:`CellTask` is everything a worker needs (picklable). :func:`execute_task` runs it in
this process or a worker (:mod:`vaebench.executors`): it seeds everything, builds the model
through its plugin's spec, checks it on two training images, fits it on the training split
(validation error, progress bar and the ``vaebench_epoch_end`` hook per epoch), and evaluates
every selected metric through :func:`vaebench.evaluation.evaluate_metrics` -- or, for an
evaluate task, loads the stored weights (checked against the record's ``state_sha256``) and
evaluates only. It writes nothing: the grid process (:mod:`vaebench.grid`) stores what comes
back.

Failure isolation (``docs/reliability.md``): a cell that diverges, raises, breaks the model
contract or runs out of memory comes back as a ``failed`` record with its reason and
traceback; a metric that raises loses only its own values. A full disk and interruption are
raised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import os
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaebench.cells import Cell, DatasetRef, dataset_for_ref
from vaebench.environment import environment, now_iso
from vaebench.errors import ModelContractError
from vaebench.evaluation import free_memory as _free_memory
from vaebench.evaluation import release_after_cell as _release_after_cell
from vaebench.results import ResultsError, is_enospc

if TYPE_CHECKING:
    import torch

    from vaebench.dataset import Dataset
    from vaebench.metric import EvalContext
    from vaebench.model import Model
    from vaebench.plugins import Registry

log = logging.getLogger("vaebench.task")

__all__ = [
    "CellTask",
    "call_hookimpl",
    "check_state",
    "execute_task",
    "failure_reason",
    "no_state_outcome",
    "stub_record",
]


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
    registry: Registry | None = None  # None: the worker's own vaebench.plugins.get_registry()
    save_state: bool = True
    state: bytes | None = None  # evaluate: the stored state
    record: dict[str, Any] | None = None  # evaluate: the stored record (fit, dataset info)
    cache_dir: str | None = None
    progress: bool | None = False  # per-epoch bar (in-process only)


def _registry_for(task: CellTask) -> Registry:
    if task.registry is not None:
        return task.registry
    from vaebench.plugins import get_registry

    return get_registry()


def origin(registry: Registry, kind: str, name: str) -> str | None:
    """Where the registered ``kind`` (``"models"``, ``"datasets"``, ``"metrics"``) ``name``
    comes from (``"vaebench 1.2"``, ``"DIST VERSION (plugin P)"``); ``None`` when not
    registered (a dataset given as a path)."""
    table = getattr(registry, kind)
    return table[name].origin if name in table else None


def _device_for(task: CellTask) -> torch.device:
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
    blas: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if task.threads is not None and not os.environ.get("VAEBENCH_WORKER"):
        blas = _blas_limits(task.threads)  # in-process: BLAS threads as a worker has them
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


#: The process's ``threadpoolctl.ThreadpoolController`` and ``len(sys.modules)`` when it was made.
_BLAS: list[Any] = [None, -1]


def _blas_limits(threads: int) -> contextlib.AbstractContextManager[Any]:
    """BLAS thread pools limited to ``threads`` inside the block (nothing without threadpoolctl).

    The loaded libraries are searched once, and again only after new modules were imported (a
    plugin may load another BLAS): the search reads every loaded shared library, ~5 ms, which
    every cell paid before."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return contextlib.nullcontext()
    if _BLAS[0] is None or _BLAS[1] != len(sys.modules):
        _BLAS[:] = [ThreadpoolController(), len(sys.modules)]
    limiter: contextlib.AbstractContextManager[Any] = _BLAS[0].limit(limits=threads)
    return limiter


def _base_record(
    task: CellTask, registry: Registry, ds: Dataset, device: torch.device
) -> dict[str, Any]:
    cell = task.cell
    import torch

    return {
        **cell.identity(),
        "execution": {
            **task.execution,
            "device": str(device),
            "threads": torch.get_num_threads(),
        },
        "environment": _environment(device),
        "run_id": task.run_id,
        "plugins": {
            "model": origin(registry, "models", cell.model),
            "dataset": origin(registry, "datasets", cell.dataset),
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


def _failed(
    record: dict[str, Any], exc: BaseException, registry: Registry, t0: float
) -> dict[str, Any]:
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


def _sanity_check(model: Model, x: torch.Tensor) -> None:
    """Before training: encode and decode two training images and check shapes, dtype,
    finiteness and range, so that a wrong-shape plugin fails in a second."""
    from vaebench.evaluation import GuardedModel

    guarded = GuardedModel(model)
    z = guarded.encode(x)
    guarded.decode(z)


def _train_task(task: CellTask, registry: Registry, t0: float) -> dict[str, Any]:

    from vaebench.metric import EvalContext
    from vaebench.train import seed_everything

    cell = task.cell
    device = _device_for(task)
    ds = dataset_for_ref(registry, task.dataset)
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


def _evaluate(
    model: Model, ds: Dataset, task: CellTask, registry: Registry, ctx: EvalContext
) -> dict[str, Any]:
    from vaebench.evaluation import check_deterministic, evaluate_metrics

    # one model per cell: run and evaluate refuse a model whose codes change between calls
    check_deterministic(model, ds.x_test.to(ctx.device), task.cell.model)

    metrics = [registry.metric(name).spec for name in task.metrics]
    origins = {m.name: origin(registry, "metrics", m.name) or "" for m in metrics}
    return evaluate_metrics(model, ds, metrics, ctx, origins=origins, run_id=task.run_id)


def _state_bytes(model: Model) -> bytes:
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


def _load_state(model: Model, state: bytes) -> None:
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
        self,
        task: CellTask,
        model: Model,
        x_val: torch.Tensor,
        curve: list[float],
        errors: list[str],
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


def _evaluate_task(task: CellTask, registry: Registry, t0: float) -> dict[str, Any]:
    from vaebench.metric import EvalContext

    cell = task.cell
    device = _device_for(task)
    record = dict(task.record or {})
    try:
        ds = dataset_for_ref(registry, task.dataset)
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


def stub_record(cell: Cell, run_id: str, status: str, **fields: Any) -> dict[str, Any]:
    """A cell record written without a task's result (skipped, or its worker died)."""
    return {
        **cell.identity(),
        "run_id": run_id,
        "status": status,
        "evaluations": {},
        "warnings": [],
        "finished": now_iso(),
        **fields,
    }


def no_state_outcome(cell: Cell, metrics: list[str], state: Path, run_id: str) -> dict[str, Any]:
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


def _plugin_note(registry: Registry, record: Mapping[str, Any]) -> str:
    """`` [model from DIST VERSION (plugin P)]`` for third-party models; empty for built-ins."""
    reg = getattr(registry, "models", {}).get(record.get("model"))
    return "" if reg is None or reg.dist == "vaebench" else f" [model from {reg.origin}]"
