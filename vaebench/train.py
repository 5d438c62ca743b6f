"""The shared training loop, device choice and seeding.

Performance notes: the training set lives on the model's device as one tensor and is batched by
slicing a shuffled index tensor; per-batch losses are accumulated on the device and read back
once per epoch (one host sync per epoch), which is also where divergence (NaN/inf) is detected.
On CUDA the forward pass runs under bf16 autocast when the GPU supports it.

Batching policy: every epoch visits every example once, in a fresh random order, in batches of
``batch_size``; a last batch of a single example (``N % batch_size == 1``) joins the batch
before it, so every batch holds at least 2 examples (batch normalisation and MMD-style losses
need two). Training on fewer than 2 examples raises ``ValueError``.

Several optimisers (loop v3): a model that returns :class:`OptimizerStep` entries from
``configure_optimizers()`` -- an autoencoder and a critic or discriminator, each with its own
optimiser -- is trained by the same loop: per batch one forward pass (``model.loss(batch)``),
then every optimiser's loss entry is back-propagated into *that optimiser's parameters only*
(``backward(inputs=...)``), then every optimiser steps. This is the simultaneous update of the
official ACAI and AAE code (brain-research/acai, ``acai.py``/``aae.py``: ``tf.group`` of the
train ops, both gradients from the same forward pass); the optimisers step in the order
given, each once per batch. Straight-through estimators are
ordinary autograd (``z + (q - z).detach()``); non-gradient updates (an EMA codebook) run inside
``loss`` under ``torch.no_grad()`` while ``model.training``. Every optimiser's loss is among the
logged entries and is checked for NaN/inf once per epoch; the error names the optimiser.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import clip_grad_norm_

from vaebench.errors import DivergenceError
from vaebench.model import FitReport, ProgressCallback

__all__ = [
    "seed_everything",
    "select_device",
    "autocast",
    "train_loop",
    "batch_bounds",
    "check_training_data",
    "DEVICE_CHOICES",
    "torch_threads",
    "OptimizerStep",
]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU (intra-op) threads; the previous count is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device) from one integer in
    ``[0, 2**32 - 1]``, and ask cuDNN for deterministic kernels.

    Everything random in a cell draws from these generators (weight init, shuffling, noise) or
    from a generator derived from the same seed (metrics: ``EvalContext.generator``), so the
    same seed on the same machine and thread count gives the same numbers.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32 - 1], got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU. Explicit names are checked."""
    base = name.split(":")[0]
    if base not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {name!r}; valid: {', '.join(DEVICE_CHOICES)} (or cuda:N)")
    if base == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use cpu or auto")
    if base == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ValueError(f"device {name!r} requested but MPS is not available; use cpu or auto")
    return torch.device(name)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA devices that support it; a no-op elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each batch of an epoch over ``n`` examples (see the module's
    batching policy): ``batch_size`` each, a last batch of one merged into the previous one.
    ``batch_bounds(129, 128) == [(0, 129)]``; ``batch_bounds(33, 16) == [(0, 16), (16, 33)]``.
    """
    bounds = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def check_training_data(x: Tensor, y: Tensor | None, batch_size: int) -> None:
    """Raise ``ValueError`` unless ``x`` holds at least 2 examples, ``batch_size`` is an integer
    >= 2, and the labels ``y`` (if given) are one integer per example."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(
            f"batch_size must be an integer >= 2 (a batch of one breaks batch normalisation and "
            f"MMD-style losses), got {batch_size!r}"
        )
    n = x.shape[0]
    if n < 2:
        raise ValueError(
            f"cannot fit on {n} training example(s): the training loop needs at least 2 "
            "(every batch holds at least 2 examples)"
        )
    if y is not None:
        if tuple(y.shape) != (n,):
            raise ValueError(
                f"labels y must have shape ({n},), one per image; got {tuple(y.shape)}"
            )
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise ValueError(f"labels y must be integers, got dtype {y.dtype}")


def fused_optimizer_ok(params: Sequence[Tensor]) -> bool:
    """Whether Adam/AdamW can run their fused kernel on ``params``: floating tensors on CUDA, or
    on the CPU from torch 2.4 on. One kernel instead of a dozen per parameter tensor: 1.1x the
    speed of a whole training step of the default MLP on one CPU thread (Fashion-MNIST shapes,
    measured in docs/performance.md); the updates agree to rounding."""
    if not params or not all(p.is_floating_point() for p in params):
        return False
    kinds = {p.device.type for p in params}
    if kinds == {"cuda"}:
        return True
    if kinds != {"cpu"}:
        return False
    major, minor = (int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
    return (major, minor) >= (2, 4)


@dataclasses.dataclass(frozen=True)
class OptimizerStep:
    """One optimiser of a model trained with several (see the module docstring).

    ``name``: what the optimiser trains (``"autoencoder"``, ``"critic"``), used in error
    messages; ``optimizer``: a ``torch.optim.Optimizer`` over that part's parameters (no
    parameter may belong to two steps); ``loss``: the entry of ``model.loss(batch)`` it
    minimises (a scalar); ``scheduler``: an optional per-epoch learning-rate schedule of
    ``optimizer``, stepped after every epoch.
    """

    name: str
    optimizer: torch.optim.Optimizer
    loss: str = "loss"
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None


def _check_steps(steps: Sequence[OptimizerStep]) -> list[list[Tensor]]:
    """Each step's trainable parameters; ``ValueError`` for no steps, a repeated name or a
    parameter shared by two optimisers."""
    if not steps:
        raise ValueError("configure_optimizers() returned no OptimizerStep")
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"optimiser names must be unique, got {names}")
    owner: dict[int, str] = {}
    groups: list[list[Tensor]] = []
    for s in steps:
        if not isinstance(s, OptimizerStep):
            raise ValueError(f"configure_optimizers() must return OptimizerStep entries, got {s!r}")
        params = [p for g in s.optimizer.param_groups for p in g["params"] if p.requires_grad]
        for p in params:
            if id(p) in owner:
                raise ValueError(
                    f"a parameter belongs to optimisers {owner[id(p)]!r} and {s.name!r}; "
                    "each parameter may have one optimiser"
                )
            owner[id(p)] = s.name
        if not params:
            raise ValueError(f"optimiser {s.name!r} has no trainable parameters")
        groups.append(params)
    return groups


def _diverged(
    epoch: int,
    epochs: int,
    logs: dict[str, float],
    first_bad: dict[str, int],
    batches: int,
    steps: Sequence[OptimizerStep],
) -> str:
    """The reason of a divergence: the optimisers whose loss is not finite, the first to turn
    non-finite named first (a critic that diverges drags the autoencoder's loss along), then
    every non-finite entry."""
    bad = {k: v for k, v in logs.items() if not np.isfinite(v)}
    culprits = sorted((s for s in steps if s.loss in bad), key=lambda s: first_bad[s.loss])
    which = [
        f"optimiser {s.name!r} ({s.loss}={logs[s.loss]}, non-finite from batch "
        f"{first_bad[s.loss] + 1} of {batches})"
        for s in culprits
    ]
    where = f" in the loss of {', then '.join(which)}" if which else ""
    return f"loss diverged at epoch {epoch}/{epochs}{where}: " + ", ".join(
        f"{k}={v}" for k, v in bad.items()
    )


class _Epochs:
    """The epoch bookkeeping both loops share, outside their batch loops (see
    :func:`train_loop`): the model's epoch hooks, the history of the epoch means, the
    schedulers, the progress callback and the clock."""

    def __init__(
        self,
        model: nn.Module,
        epochs: int,
        progress: ProgressCallback | None,
        schedulers: Sequence[torch.optim.lr_scheduler.LRScheduler | None],
    ) -> None:
        self.model = model
        self.epochs = epochs
        self.progress = progress
        self.schedulers = [s for s in schedulers if s is not None]
        self.on_start = getattr(model, "on_epoch_start", None)
        self.on_end = getattr(model, "on_epoch_end", None)
        self.history: dict[str, list[float]] = {}
        self.start = time.perf_counter()

    def begin(self, epoch: int) -> None:
        """Training mode, then ``model.on_epoch_start(epoch, epochs)`` when defined."""
        self.model.train()
        if self.on_start is not None:
            self.on_start(epoch, self.epochs)

    def finish(self, epoch: int, logs: dict[str, float]) -> None:
        """After a checked epoch: ``on_epoch_end``, the history, the schedulers, ``progress``."""
        if self.on_end is not None:
            self.on_end(epoch, logs)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        for s in self.schedulers:
            s.step()
        if self.progress is not None:
            self.progress(epoch, self.epochs, logs)

    def report(self, n: int) -> FitReport:
        """The fit's report: ``n`` examples per epoch, seconds since construction."""
        seconds = time.perf_counter() - self.start
        return FitReport(
            history=self.history, seconds=seconds, samples_seen=n * self.epochs, epochs=self.epochs
        )


@contextlib.contextmanager
def _leaves_eval_mode(model: nn.Module, device: torch.device) -> Iterator[None]:
    """The model is left in evaluation mode (and CUDA synchronised), also when training fails."""
    try:
        yield
    finally:
        model.eval()
        if device.type == "cuda":
            torch.cuda.synchronize(device)


def _entries_changed(keys: list[str], losses: dict[str, Tensor], epoch: int) -> ValueError:
    return ValueError(
        f"loss() must return the same entries every batch (they are logged per epoch): "
        f"first {keys}, now {list(losses)} at epoch {epoch}"
    )


def _epoch_means(sums: Tensor | None, keys: list[str] | None, n: int) -> dict[str, float]:
    """The epoch's mean of every logged entry from the per-batch sums (one host sync)."""
    if sums is None or keys is None:  # no batch: check_training_data rules it out
        raise ValueError("an epoch without a batch")
    return dict(zip(keys, (sums / n).tolist(), strict=True))


def _default_optimizer(model: nn.Module, lr: float | None) -> torch.optim.Optimizer:
    """``model.configure_optimizer()`` when the model has one and ``lr`` is not given, else
    Adam with ``lr`` (default ``1e-3``; fused where :func:`fused_optimizer_ok`)."""
    configure = getattr(model, "configure_optimizer", None)
    if lr is None and configure is not None:
        optimizer: torch.optim.Optimizer = configure()
        return optimizer
    params = list(model.parameters())
    return torch.optim.Adam(params, lr=1e-3 if lr is None else lr, fused=fused_optimizer_ok(params))


def train_loop(
    model: nn.Module,
    x: Tensor,
    y: Tensor | None = None,
    *,
    epochs: int,
    batch_size: int,
    lr: float | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    grad_clip: float = 0.0,
    progress: ProgressCallback | None = None,
    steps: Sequence[OptimizerStep] | None = None,
) -> FitReport:
    """Train ``model`` -- a module with ``loss(batch) -> dict`` (``loss(batch, labels)`` when
    ``y`` is given) whose ``"loss"`` entry is minimised -- on images ``x`` ``(N, C, H, W)``.

    Each epoch ``e`` (1-based): the model is put in training mode, ``model.on_epoch_start(e,
    epochs)`` runs (when defined), every batch (see :func:`batch_bounds`) takes one optimiser
    step (after clipping the gradient's global L2 norm to ``grad_clip`` when it is > 0), the
    epoch's mean of every logged loss is read back once, checked, passed to
    ``model.on_epoch_end(e, logs)`` (which may add entries) and stored in the history, the
    ``scheduler`` steps, and ``progress(e, epochs, logs)`` is called. The model is left in
    evaluation mode, also when training fails.

    ``optimizer``: default ``model.configure_optimizer()`` when the model has one and ``lr`` is
    not given, else Adam with ``lr`` (default ``1e-3``). ``x`` and ``y`` are moved to the
    model's device once. Raises ``ValueError`` for fewer than 2 examples or a batch size below
    2, :class:`DivergenceError` when an epoch's mean loss is NaN or infinite.

    ``steps``: several optimisers (:class:`OptimizerStep`, see the module docstring); then
    ``lr``, ``optimizer`` and ``scheduler`` must not be given, ``grad_clip`` applies to each
    optimiser's parameters separately, and a divergence names the optimiser whose loss is NaN
    or infinite. ``ValueError`` when a step's ``loss`` entry is missing from ``loss()``.
    """
    device = next(model.parameters()).device
    x = x.to(device, non_blocking=True)
    if y is not None:
        y = y.to(device, non_blocking=True)
    check_training_data(x, y, batch_size)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if steps is not None:
        if optimizer is not None or scheduler is not None or lr is not None:
            raise ValueError("train_loop: give either steps or lr/optimizer/scheduler, not both")
        return _train_steps(
            model, x, y, epochs=epochs, batch_size=batch_size, steps=list(steps),
            grad_clip=grad_clip, progress=progress,
        )  # fmt: skip
    if optimizer is None:
        optimizer = _default_optimizer(model, lr)
    return _train_one(model, x, y, optimizer, _Epochs(model, epochs, progress, [scheduler]),
                      batch_size=batch_size, grad_clip=grad_clip)  # fmt: skip


def _train_one(
    model: nn.Module,
    x: Tensor,
    y: Tensor | None,
    optimizer: torch.optim.Optimizer,
    run: _Epochs,
    *,
    batch_size: int,
    grad_clip: float,
) -> FitReport:
    """:func:`train_loop` with one optimiser (``x``, ``y`` already on the device and checked)."""
    device = x.device
    loss_of: Callable[..., dict[str, Tensor]] = getattr(model, "loss")  # noqa: B009 - typed
    n = x.shape[0]
    bounds = batch_bounds(n, batch_size)
    clipped = [p for p in model.parameters() if p.requires_grad] if grad_clip > 0 else []
    amp = autocast(device)
    keys: list[str] | None = None
    with _leaves_eval_mode(model, device):
        for epoch in range(1, run.epochs + 1):
            run.begin(epoch)
            perm = torch.randperm(n, device=device)
            sums: Tensor | None = None
            for lo, hi in bounds:
                idx = perm[lo:hi]
                batch = x[idx]
                with amp:
                    losses = loss_of(batch) if y is None else loss_of(batch, y[idx])
                optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                if clipped:
                    clip_grad_norm_(clipped, grad_clip)
                optimizer.step()
                if keys is None:
                    keys = list(losses)
                elif len(losses) != len(keys) or any(k not in losses for k in keys):
                    raise _entries_changed(keys, losses, epoch)
                stacked = torch.stack([losses[k].detach().float() for k in keys]) * (hi - lo)
                sums = stacked if sums is None else sums + stacked
            logs = _epoch_means(sums, keys, n)
            if not all(np.isfinite(v) for v in logs.values()):
                raise DivergenceError(_diverged(epoch, run.epochs, logs, {}, len(bounds), []))
            run.finish(epoch, logs)
    return run.report(n)


def _train_steps(
    model: nn.Module,
    x: Tensor,
    y: Tensor | None,
    *,
    epochs: int,
    batch_size: int,
    steps: list[OptimizerStep],
    grad_clip: float,
    progress: ProgressCallback | None,
) -> FitReport:
    """:func:`train_loop` with several optimisers (``x``, ``y`` already on the device and
    checked): one forward pass per batch, each loss back-propagated into its optimiser's
    parameters only, then every optimiser steps."""
    device = x.device
    groups = _check_steps(steps)
    loss_of: Callable[..., dict[str, Tensor]] = getattr(model, "loss")  # noqa: B009 - typed
    n = x.shape[0]
    bounds = batch_bounds(n, batch_size)
    amp = autocast(device)
    keys: list[str] | None = None
    last = len(steps) - 1
    run = _Epochs(model, epochs, progress, [s.scheduler for s in steps])
    with _leaves_eval_mode(model, device):
        for epoch in range(1, epochs + 1):
            run.begin(epoch)
            perm = torch.randperm(n, device=device)
            sums: Tensor | None = None
            first = torch.full((0,), len(bounds))  # per entry: first batch where it was not finite
            for b, (lo, hi) in enumerate(bounds):
                idx = perm[lo:hi]
                batch = x[idx]
                with amp:
                    losses = loss_of(batch) if y is None else loss_of(batch, y[idx])
                if keys is None:
                    keys = _first_entries(losses, steps)
                elif len(losses) != len(keys) or any(k not in losses for k in keys):
                    raise _entries_changed(keys, losses, epoch)
                for s in steps:
                    s.optimizer.zero_grad(set_to_none=True)
                for i, (s, params) in enumerate(zip(steps, groups, strict=True)):
                    losses[s.loss].backward(inputs=params, retain_graph=i < last)
                for s, params in zip(steps, groups, strict=True):
                    if grad_clip > 0:
                        clip_grad_norm_(params, grad_clip)
                    s.optimizer.step()
                stacked = torch.stack([losses[k].detach().float() for k in keys]) * (hi - lo)
                sums = stacked if sums is None else sums + stacked
                if b == 0:
                    first = torch.full_like(stacked, len(bounds))
                first = torch.where(torch.isfinite(stacked), first, first.clamp(max=b))
            logs = _epoch_means(sums, keys, n)
            if not all(np.isfinite(v) for v in logs.values()):
                first_bad = dict(zip(logs, (int(v) for v in first.tolist()), strict=True))
                raise DivergenceError(_diverged(epoch, epochs, logs, first_bad, len(bounds), steps))
            run.finish(epoch, logs)
    return run.report(n)


def _first_entries(losses: dict[str, Tensor], steps: Sequence[OptimizerStep]) -> list[str]:
    """The entries of the first batch's ``loss()``; ``ValueError`` when an optimiser's entry
    is missing."""
    missing = [s.loss for s in steps if s.loss not in losses]
    if missing:
        raise ValueError(
            f"loss() returned {list(losses)}; the optimisers minimise "
            f"{[s.loss for s in steps]} (missing: {missing})"
        )
    return list(losses)
