"""Tiny synthetic data for the checks: blob images, labels and a small dataset."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vaebench.testing.core import N_TINY

if TYPE_CHECKING:
    from vaebench.dataset import Dataset


def _render_blobs(factors: Any, shape: Sequence[int]) -> Tensor:
    """Noise-free images ``(M, C, H, W)`` in ``[0, 1]``: one Gaussian blob centred at the
    factor values ``(x, y)`` (each in ``[0, 1]``, fractions of the width and height), with a
    per-channel brightness so colour images are not grey copies."""
    f = torch.as_tensor(factors, dtype=torch.float32).reshape(-1, 2)
    c, h, w = (int(s) for s in shape)
    ys = torch.linspace(0.0, 1.0, h).view(1, h, 1)
    xs = torch.linspace(0.0, 1.0, w).view(1, 1, w)
    d2 = (xs - f[:, 0].view(-1, 1, 1)) ** 2 + (ys - f[:, 1].view(-1, 1, 1)) ** 2
    blob = torch.exp(-d2 / (2 * 0.18**2))  # (M, H, W)
    gain = torch.linspace(1.0, 0.5, c).view(1, c, 1, 1) if c > 1 else torch.ones(1, 1, 1, 1)
    return (blob.unsqueeze(1) * gain).clamp(0.0, 1.0)


def _blob_factors(n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand(n, 2, generator=g)


def _quadrant(f: Tensor) -> Tensor:
    return (f[:, 0] > 0.5).long() + 2 * (f[:, 1] > 0.5).long()


def tiny_images(shape: Sequence[int], n: int = N_TINY, seed: int = 0) -> Tensor:
    """``n`` structured images of ``shape`` ``(C, H, W)``, float32 in ``[0, 1]``: Gaussian blobs
    at random positions plus a little noise (learnable, so fitting lowers the loss)."""
    f = _blob_factors(n, seed)
    g = torch.Generator().manual_seed(seed + 1)
    x = _render_blobs(f, shape) + 0.02 * torch.randn(n, *shape, generator=g)
    return x.clamp(0.0, 1.0)


def tiny_labels(n: int = N_TINY, seed: int = 0) -> Tensor:
    """The labels ``(n,)`` int64 in ``0..3`` of :func:`tiny_images` ``(shape, n, seed)``: the
    quadrant of the image that holds the blob's centre (what models that ``uses_labels`` get)."""
    return _quadrant(_blob_factors(n, seed))


def tiny_dataset(
    shape: Sequence[int] = (1, 8, 8), n_train: int = 128, n_test: int = 64, seed: int = 0
) -> Dataset:
    """A small :class:`~vaebench.dataset.Dataset` with labels (the blob's quadrant, 0..3),
    ground-truth factors ``("x", "y")`` and a ``render`` function -- enough for every built-in
    metric. Used by the metric checks; handy in your own tests."""
    from vaebench.dataset import Dataset

    shape = tuple(int(s) for s in shape)
    f_train, f_test = _blob_factors(n_train, seed), _blob_factors(n_test, seed + 100)
    g = torch.Generator().manual_seed(seed + 200)

    def images(f: Tensor) -> Tensor:
        noise = 0.02 * torch.randn(f.shape[0], *shape, generator=g)
        return (_render_blobs(f, shape) + noise).clamp(0.0, 1.0)

    return Dataset(
        name="tiny-blobs",
        x_train=images(f_train),
        x_test=images(f_test),
        y_train=_quadrant(f_train),
        y_test=_quadrant(f_test),
        factors_train=f_train,
        factors_test=f_test,
        factor_names=("x", "y"),
        render=functools.partial(_render_blobs, shape=shape),
        info={"generator": "vaebench.testing.tiny_dataset", "seed": seed},
    )
