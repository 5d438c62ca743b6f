"""The shared training loop, device choice and seeding.

Performance notes: the training set lives on the model's device as one tensor and is batched by
slicing a shuffled index tensor; per-batch losses are accumulated on the device and read back
once per epoch (one host sync per epoch), which is also where divergence (NaN/inf) is detected.
On CUDA the forward pass runs under bf16 autocast when the GPU supports it.
"""

from __future__ import annotations

import contextlib
import os
import random
import time

import numpy as np
import torch
from torch import Tensor, nn

from vaebench.errors import DivergenceError
from vaebench.model import FitReport, ProgressCallback

__all__ = ["seed_everything", "select_device", "autocast", "train_loop", "DEVICE_CHOICES"]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


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


def device_name(device: torch.device) -> str:
    """Human-readable device name for result files (GPU model on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        import platform

        return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return str(device)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA devices that support it; a no-op elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_loop(
    model: nn.Module,
    x: Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    progress: ProgressCallback | None = None,
) -> FitReport:
    """Train ``model`` (a module with ``loss(batch) -> dict``) with Adam on ``x``.

    ``x`` is moved to the model's device once. Raises :class:`DivergenceError` when an epoch's
    mean loss is NaN or infinite.
    """
    device = next(model.parameters()).device
    x = x.to(device, non_blocking=True)
    n = x.shape[0]
    if n == 0:
        raise ValueError("cannot fit on an empty training set")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: dict[str, list[float]] = {}
    keys: list[str] | None = None
    model.train()
    start = time.perf_counter()
    try:
        for epoch in range(epochs):
            perm = torch.randperm(n, device=device)
            sums: Tensor | None = None
            for i in range(0, n, batch_size):
                batch = x[perm[i : i + batch_size]]
                with autocast(device):
                    losses = model.loss(batch)
                opt.zero_grad(set_to_none=True)
                losses["loss"].backward()
                opt.step()
                if keys is None:
                    keys = list(losses)
                stacked = torch.stack([losses[k].detach().float() for k in keys]) * batch.shape[0]
                sums = stacked if sums is None else sums + stacked
            means = (sums / n).tolist()  # one host sync per epoch
            logs = dict(zip(keys, means, strict=True))
            for k, v in logs.items():
                history.setdefault(k, []).append(v)
            if not all(np.isfinite(v) for v in means):
                bad = {k: v for k, v in logs.items() if not np.isfinite(v)}
                raise DivergenceError(
                    f"loss diverged at epoch {epoch + 1}/{epochs}: "
                    + ", ".join(f"{k}={v}" for k, v in bad.items())
                )
            if progress is not None:
                progress(epoch + 1, epochs, logs)
    finally:
        model.eval()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return FitReport(history=history, seconds=seconds, samples_seen=n * epochs, epochs=epochs)
