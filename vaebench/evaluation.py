"""Evaluating a fitted model: every output checked, each metric isolated, each result keyed.

- :class:`GuardedModel` wraps a model for the metrics: every ``encode``/``decode``/``sample``/
  ``posterior``/``log_likelihood`` output is checked (shape, floating dtype, finite values,
  images in ``[0, 1]``), and an exception raised inside the model is attributed to the model. A
  violation raises :class:`~vaebench.errors.ModelContractError`, which fails the *cell*: a
  model that breaks the contract on some inputs must not be ranked on the others.
- :func:`evaluate_metrics` runs the selected metrics one by one, each with its own random
  stream (:func:`vaebench.metric.metric_seed`). A metric that raises fails only its own
  evaluation (reason, traceback and plugin recorded); a value that comes back NaN or infinite
  is stored as null with the reason; a value the metric declared not applicable is stored
  under ``not_applicable`` with its reason.
- :func:`evaluation_key` identifies a stored evaluation by metric name, version and options.
- :func:`cell_warnings` derives the warnings a careful researcher wants from a cell record.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from vaebench.errors import ModelContractError, NotApplicableError
from vaebench.metric import EvalContext, Metric
from vaebench.model import FitReport, Model, Tags

__all__ = [
    "GuardedModel",
    "evaluate_metrics",
    "evaluation_key",
    "metric_options",
    "check_outputs",
    "cell_warnings",
    "ModelSnapshot",
    "NOT_CONVERGED_FRACTION",
    "FEW_ACTIVE_UNITS_FRACTION",
]

#: Images may exceed [0, 1] by at most this much (rounding of a sigmoid in bf16).
RANGE_TOLERANCE = 1e-6
#: "Not converged": the monitored loss fell by more than this fraction over the last epochs.
NOT_CONVERGED_FRACTION = 0.01
#: "Few active units": a model with a posterior uses fewer than this fraction of its code.
FEW_ACTIVE_UNITS_FRACTION = 0.1


def check_outputs(
    out: Any, method: str, shape: Sequence[int] | None, *, images: bool, where: str = ""
) -> Tensor:
    """Check one model output; raise :class:`ModelContractError` naming ``method`` and what is
    wrong: not a tensor, a wrong ``shape`` (``None``: any), a non-floating dtype, NaN or infinite
    values, or -- for ``images`` -- values outside ``[0, 1]``."""
    suffix = f" {where}" if where else ""
    if not isinstance(out, Tensor):
        raise ModelContractError(
            f"model.{method} returned {type(out).__name__}, not a tensor{suffix}"
        )
    if shape is not None and tuple(out.shape) != tuple(shape):
        raise ModelContractError(
            f"model.{method} returned shape {tuple(out.shape)}, expected {tuple(shape)}{suffix}"
        )
    if not torch.is_floating_point(out):
        raise ModelContractError(
            f"model.{method} returned dtype {out.dtype}, expected floating point{suffix}"
        )
    flat = out.detach().reshape(out.shape[0], -1) if out.ndim else out.detach().reshape(1, 1)
    finite = torch.isfinite(flat)
    if not bool(finite.all()):
        rows = int((~finite.all(1)).sum())
        raise ModelContractError(
            f"model.{method} returned NaN or infinite values for {rows} of {flat.shape[0]} "
            f"inputs{suffix}"
        )
    if images and flat.numel():
        lo, hi = float(flat.min()), float(flat.max())
        if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            share = float(((flat < -RANGE_TOLERANCE) | (flat > 1 + RANGE_TOLERANCE)).float().mean())
            raise ModelContractError(
                f"model.{method} returned images outside [0, 1] (min {lo:.4g}, max {hi:.4g}; "
                f"{share:.1%} of pixels){suffix}"
            )
    return out


class GuardedModel(Model):
    """A read-only view of ``model`` whose outputs are checked (see the module docstring).

    Other attributes are passed through, so metrics that read a plugin model's own attributes
    keep working. ``fit``, ``to`` and ``load_state_dict`` are refused: metrics never change the
    model.
    """

    def __init__(self, model: Model, metric: str = "") -> None:
        self.__dict__["_model"] = model
        self.__dict__["_where"] = f"(caught while metric {metric!r} evaluated it)" if metric else ""

    # -- pass-through ------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_model"], name)

    @property
    def wrapped(self) -> Model:
        return self._model

    @property
    def latent_dim(self) -> int:  # type: ignore[override]
        return self._model.latent_dim

    @property
    def input_shape(self) -> tuple[int, ...]:  # type: ignore[override]
        return tuple(self._model.input_shape)

    @property
    def tags(self) -> Tags:
        return self._model.tags

    @property
    def device(self) -> torch.device:
        return self._model.device

    @property
    def n_params(self) -> int:
        return self._model.n_params

    def state_dict(self) -> dict[str, Tensor]:
        return self._model.state_dict()

    def to(self, device: torch.device | str) -> Model:
        raise ModelContractError(f"metrics may not move the model {self._where}")

    def load_state_dict(self, state: dict[str, Tensor]) -> Any:
        raise ModelContractError(f"metrics may not change the model's state {self._where}")

    def fit(self, x: Tensor, y: Tensor | None = None, progress: Any = None) -> FitReport:
        raise ModelContractError(f"metrics may not train the model {self._where}")

    # -- checked calls -----------------------------------------------------------------------
    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._model, method)(*args)
        except (ModelContractError, NotImplementedError, MemoryError):
            raise
        except Exception as exc:
            if "out of memory" in str(exc).lower():
                raise  # the metric's batch size, not the model's contract
            raise ModelContractError(
                f"model.{method} raised {type(exc).__name__}: {exc} {self._where}".rstrip()
            ) from exc

    def encode(self, x: Tensor) -> Tensor:
        out = self._call("encode", x)
        return check_outputs(
            out, "encode", (x.shape[0], self.latent_dim), images=False, where=self._where
        )

    def decode(self, z: Tensor) -> Tensor:
        out = self._call("decode", z)
        shape = (z.shape[0], *self.input_shape)
        bounded = self.tags.bounded_output
        return check_outputs(out, "decode", shape, images=bounded, where=self._where)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        out = self._call("sample", n, generator)
        bounded = self.tags.bounded_output
        return check_outputs(
            out, "sample", (n, *self.input_shape), images=bounded, where=self._where
        )

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self._call("posterior", x)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ModelContractError(
                f"model.posterior returned {type(out).__name__}, expected (mean, logvar) "
                f"{self._where}".rstrip()
            )
        shape = (x.shape[0], self.latent_dim)
        mean = check_outputs(out[0], "posterior (mean)", shape, images=False, where=self._where)
        logvar = check_outputs(out[1], "posterior (logvar)", shape, images=False, where=self._where)
        return mean, logvar

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        out = self._call("log_likelihood", x, z)
        return check_outputs(out, "log_likelihood", (x.shape[0],), images=False, where=self._where)

    def log_prior(self, z: Tensor) -> Tensor:
        out = self._call("log_prior", z)
        return check_outputs(out, "log_prior", (z.shape[0],), images=False, where=self._where)


#: Images :func:`check_deterministic` encodes twice.
DETERMINISM_IMAGES = 16


def check_deterministic(model: Model, x: Tensor, name: str) -> None:
    """Raise :class:`~vaebench.errors.ModelContractError` naming model ``name`` when encoding
    the same images ``x`` (the first :data:`DETERMINISM_IMAGES` of ``(N, C, H, W)``) twice
    gives different codes: every number of such a model would be of another model than the one
    stored (issue 19.3: a dropout left in training mode made ``evaluate`` store a kNN accuracy
    of 20.1 where ``run`` had stored 68.2 for the same weights). Exact on the CPU; on other
    devices within ``1e-5`` relative (kernels there may sum in another order)."""
    x = x[:DETERMINISM_IMAGES]
    if x.shape[0] == 0:
        return
    first, second = model.encode(x), model.encode(x)
    if first.device.type == "cpu":
        same = torch.equal(first, second)
    else:
        same = torch.allclose(first, second, rtol=1e-5, atol=0.0)
    if not same:
        diff = (first.float() - second.float()).abs().nan_to_num(float("inf")).max().item()
        raise ModelContractError(
            f"model {name!r}: encode gave different codes for the same {x.shape[0]} images "
            f"(largest difference {diff:.3g}); vaebench stores no numbers of a model whose "
            "codes change between calls -- a module left in training mode (one added after "
            "super().__init__() starts so; use self.inference() or eval()) or randomness in "
            "encode"
        )


def metric_options(metric: Metric, eval_options: Mapping[str, Any]) -> dict[str, Any]:
    """The options ``metric`` declares, resolved from ``eval_options`` (else its defaults)."""
    resolve = getattr(metric, "resolve_options", None)
    if resolve is not None:
        return resolve(dict(eval_options))
    declared = getattr(metric, "options", None) or {}  # a metric not derived from Metric
    return {k: eval_options.get(k, v) for k, v in declared.items()}


def evaluation_key(metric: Metric, options: Mapping[str, Any]) -> str:
    """12 hex digits identifying an evaluation: the metric's name, version and resolved
    options. A stored evaluation with another key is recomputed when the metric is selected."""
    from vaebench.cells import config_hash

    return config_hash(
        {"metric": metric.name, "version": int(getattr(metric, "version", 1)), "options": options}
    )


def _applies(metric: Metric, model: Model, dataset: Any) -> str | None:
    """``None`` when the metric applies, else the reason it does not."""
    verdict = metric.applies_to(model, dataset)
    if isinstance(verdict, str):
        return verdict or "not applicable"
    return None if bool(verdict) else "not applicable to this model or dataset"


def _float(value: Any) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise TypeError(f"a tensor of shape {tuple(value.shape)}, not a number")
        return float(value.item())
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        and not hasattr(value, "__float__")
    ):
        raise TypeError(f"{type(value).__name__}, not a number")
    return float(value)


def _jsonable_artifacts(artifacts: Mapping[str, Any]) -> dict[str, Any]:
    from vaebench.record import encode_images

    out: dict[str, Any] = {}
    for k, v in artifacts.items():
        if hasattr(v, "detach") or getattr(v, "ndim", 0) == 4:
            out[k] = encode_images(v)
        else:
            out[k] = v
    return out


def evaluate_metrics(
    model: Model,
    dataset: Any,
    metrics: Sequence[Metric],
    ctx: EvalContext,
    *,
    origins: Mapping[str, str] | None = None,
    run_id: str = "",
) -> dict[str, dict[str, Any]]:
    """Evaluate ``metrics`` on ``model`` and return one evaluation record per metric.

    ``ctx`` carries the cell's seed, device, fit report, resolved evaluation options and shared
    cache; each metric gets :meth:`EvalContext.for_metric` (its own generator and artifacts).
    Raises :class:`ModelContractError` when the model breaks the contract (the cell fails);
    everything a metric itself raises is recorded in its evaluation. See the module docstring.
    """
    from vaebench.environment import now_iso

    origins = origins or {}
    out: dict[str, dict[str, Any]] = {}
    snapshot = ModelSnapshot(model)
    for metric in metrics:
        options = metric_options(metric, ctx.options)
        ev: dict[str, Any] = {
            "metric": metric.name,
            "version": int(getattr(metric, "version", 1)),
            "options": options,
            "key": evaluation_key(metric, options),
            "plugin": origins.get(metric.name, ""),
            "run_id": run_id,
            "evaluated": now_iso(),
        }
        out[metric.name] = ev
        t0 = time.perf_counter()
        try:
            reason = _applies(metric, model, dataset)
        except Exception as exc:  # noqa: BLE001 - a broken applies_to fails its metric only
            reason = None
            ev.update(_failure(exc, "applies_to"))
        if "status" in ev:
            continue
        if reason is not None:
            ev.update(status="not_applicable", reason=reason)
            continue
        mctx = ctx.for_metric(metric.name)
        mctx.options = {**options, "eval_batch_size": ctx.eval_batch_size}
        subject = GuardedModel(model, metric.name) if metric.guarded else model
        try:
            got = metric.evaluate(subject, dataset, mctx)
            reasons = mctx.details.pop("nan_reasons", None)
            ev.update(_values(metric, got, options, reasons, mctx.not_applicable))
        except ModelContractError:
            raise
        except NotApplicableError as exc:
            ev.update(status="not_applicable", reason=one_line(exc))
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - only this metric's values fail
            ev.update(_failure(exc, "evaluate"))
            free_memory(ctx.device)
            continue
        finally:
            ev["seconds"] = round(time.perf_counter() - t0, 4)
            changed = snapshot.restore_if_changed()
            if changed:
                ev.update(
                    status="failed",
                    reason=f"the metric changed the model ({changed}); metrics must leave it as "
                    "they found it (its values are dropped, the model was restored for the next "
                    "metric)",
                )
                for key in ("values", "nan", "nonfinite", "info", "not_applicable"):
                    ev.pop(key, None)
        if ev.get("status") == "failed":
            continue
        ev["artifacts"] = _jsonable_artifacts(mctx.artifacts)
        ev["details"] = dict(mctx.details)
    return out


class ModelSnapshot:
    """The model's state (every ``state_dict`` tensor, cloned) and the training flags of its
    modules, taken once before the metrics run; :meth:`restore_if_changed` puts the model back
    after a metric that changed it and says what changed (a metric that calls ``train()`` and a
    forward pass updates BatchNorm statistics; one that writes into a parameter corrupts every
    later number and the stored weights)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        modules = list(model.modules()) if hasattr(model, "modules") else []
        self.modes = [(m, m.training) for m in modules]

    def restore_if_changed(self) -> str:
        """``""`` when the model is as it was, else a description (and the model restored)."""
        what = ""
        now = self.model.state_dict()
        for k, v in self.state.items():
            current = now.get(k)
            if current is None or current.shape != v.shape or not torch.equal(current, v):
                what = f"state tensor {k!r}"
                break
        if what:
            self.model.load_state_dict({k: v.clone() for k, v in self.state.items()})
        for module, mode in self.modes:
            if module.training != mode:
                what = what or "its training/evaluation mode"
                module.train(mode)
        return what


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An exception's message on one line (newlines folded), at most ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _failure(exc: BaseException, where: str) -> dict[str, Any]:
    text = one_line(exc)
    return {
        "status": "failed",
        "reason": f"{where} raised {type(exc).__name__}: {text}".rstrip(": "),
        "traceback": traceback.format_exc(),
    }


def _values(
    metric: Metric,
    got: Any,
    options: Mapping[str, Any] | None = None,
    reasons: Mapping[str, str] | None = None,
    not_applicable: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Check a metric's returned values against its declaration (for its resolved ``options``);
    NaN/inf become null, with the metric's own reason where it gave one (``reasons``, from
    ``ctx.details["nan_reasons"]``). Values the metric declared not applicable
    (``not_applicable``, from :meth:`EvalContext.value_not_applicable`: NaN or left out) are
    stored under ``not_applicable`` with their reason, not among the values; when every value
    is, the evaluation is ``not_applicable`` as a whole."""
    declared = _declared(metric, options)
    if not isinstance(got, Mapping):
        raise TypeError(f"evaluate returned {type(got).__name__}, expected a dict of values")
    skip = dict(not_applicable or {})
    unknown = sorted(set(skip) - set(declared))
    if unknown:
        raise ValueError(f"declared not applicable {unknown}, which are not declared values")
    if skip and set(skip) == set(declared):
        return {"status": "not_applicable", "reason": "; ".join(dict.fromkeys(skip.values()))}
    missing = sorted(set(declared) - set(got) - set(skip))
    extra = sorted(set(got) - set(declared))
    if missing or extra:
        raise ValueError(
            f"returned values {sorted(got)}; declared {sorted(declared)} (missing {missing}, "
            f"undeclared {extra})"
        )
    from vaebench.record import nonfinite_kind

    values: dict[str, float | None] = {}
    nan: dict[str, str] = {}
    nonfinite: dict[str, str] = {}
    for name in declared:
        if name in skip:
            if got.get(name) is not None and math.isfinite(_float(got[name])):
                raise ValueError(f"value {name!r} is declared not applicable but is {got[name]}")
            continue
        try:
            v = _float(got[name])
        except (TypeError, ValueError) as exc:
            raise TypeError(f"value {name!r} is {exc}") from None
        if math.isfinite(v):
            values[name] = v
        else:
            values[name] = None
            nonfinite[name] = nonfinite_kind(v)
            nan[name] = (reasons or {}).get(name) or (
                f"the metric returned {v} (undefined for this model and data)"
            )
    info = {
        name: {
            **dataclasses.asdict(value),
            "metric": metric.name,
            "group": getattr(metric, "group", "") or "",
            "order": i,
        }
        for i, (name, value) in enumerate(declared.items())
    }
    out = {"status": "ok", "values": values, "nan": nan, "nonfinite": nonfinite, "info": info}
    if skip:  # absent otherwise: records without such values stay as they were
        out["not_applicable"] = {name: skip[name] for name in declared if name in skip}
    return out


def _declared(metric: Metric, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``metric.declared(options)``; a metric written before ``declared`` took the options (or
    not derived from :class:`Metric`) is asked without them."""
    try:
        return metric.declared(dict(options or {}))
    except TypeError:
        return metric.declared()


def free_memory(device: Any) -> None:
    """Give memory back after a failure (an out-of-memory error must not starve what runs next)."""
    gc.collect()
    if getattr(device, "type", None) == "cuda":
        torch.cuda.empty_cache()


#: After a successful CPU cell a full garbage collection runs only once the resident set has
#: grown by this many bytes since the last one (a full collection costs ~130 ms with torch,
#: scikit-learn and scipy loaded: most of a small cell's time; see docs/performance.md).
COLLECT_GROWTH_BYTES = 256 * 2**20

#: Resident set after the last full collection; ``None`` until the first successful cell,
#: which sets it without collecting (what the process grew by before is its imports and data).
_last_collect_rss: list[int | None] = [None]


def _rss_bytes() -> int | None:
    """The resident set of this process (Linux ``/proc/self/statm``), else None."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def release_after_cell(device: Any) -> bool:
    """Memory housekeeping after a *successful* cell; returns whether a full collection ran.

    CUDA: :func:`free_memory` (collection and the allocator's cache handed back; the cell's own
    work dwarfs it). CPU: tensors are freed by reference counting as the cell's objects go; a
    full ``gc.collect()`` (for reference cycles) runs only when the resident set grew by
    :data:`COLLECT_GROWTH_BYTES` since the last one (the first successful cell of a process sets
    the baseline: its imports are no garbage), or where the resident set cannot be read.
    A failed cell always gets :func:`free_memory`."""
    if getattr(device, "type", None) == "cuda":
        free_memory(device)
        return True
    rss = _rss_bytes()
    if rss is not None and _last_collect_rss[0] is None:
        _last_collect_rss[0] = rss  # the baseline: growth is counted from the first cell on
        return False
    if rss is not None and rss - (_last_collect_rss[0] or 0) < COLLECT_GROWTH_BYTES:
        return False
    gc.collect()
    after = _rss_bytes()
    _last_collect_rss[0] = after if after is not None else 0
    return True


def cell_warnings(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """Warnings derived from a cell record (pure; recomputed whenever the record changes):

    - ``not_converged``: the validation loss (``val_mse``, with ``--val-fraction``) or else the
      training loss fell by more than :data:`NOT_CONVERGED_FRACTION` over the last
      ``max(2, epochs // 10)`` epochs;
    - ``few_active_units``: a model with a posterior has fewer than
      :data:`FEW_ACTIVE_UNITS_FRACTION` of its code dimensions active;
    - ``nan_value``: a metric value came back NaN/infinite (which of them, and the metric's
      reason);
    - ``metric_failed``: a metric raised (its values are missing).
    """
    from vaebench.record import NONFINITE_TEXT

    out: list[dict[str, str]] = []
    if record.get("status") != "ok":
        return out
    history = record.get("history") or {}
    monitored = "val_mse" if history.get("val_mse") else "loss"
    curve = [v for v in history.get(monitored, []) if isinstance(v, (int, float))]
    if len(curve) >= 4:
        k = max(2, len(curve) // 10)
        before, last = curve[-1 - k], curve[-1]
        drop = (before - last) / max(abs(before), 1e-12)
        if drop > NOT_CONVERGED_FRACTION:
            message = (
                f"{monitored} fell by {drop * 100:.3g}% over the last {k} of {len(curve)} epochs "
                f"(more than {NOT_CONVERGED_FRACTION:.0%}): not converged"
            )
            out.append({"kind": "not_converged", "message": message})
    tags = (record.get("model_info") or {}).get("tags") or {}
    evaluations = record.get("evaluations") or {}
    au = evaluations.get("active_units", {})
    fraction = (au.get("values") or {}).get("active_fraction")
    if (
        tags.get("has_posterior")
        and isinstance(fraction, (int, float))
        and fraction < FEW_ACTIVE_UNITS_FRACTION
    ):
        message = (
            f"only {fraction:.0%} of the code dimensions are active (fewer than "
            f"{FEW_ACTIVE_UNITS_FRACTION:.0%}): posterior collapse"
        )
        out.append({"kind": "few_active_units", "message": message})
    for name, ev in evaluations.items():
        if ev.get("status") == "failed":
            message = f"metric {name!r} failed: {ev.get('reason', '')}"
            out.append({"kind": "metric_failed", "message": message})
        kinds = ev.get("nonfinite") or {}  # absent in files written before it was stored
        for value, reason in (ev.get("nan") or {}).items():
            what = NONFINITE_TEXT.get(kinds.get(value, "nan"), "NaN")
            out.append({"kind": "nan_value", "message": f"{value} ({name}) is {what}: {reason}"})
    return out
