"""Codes of a dataset's splits, computed once per cell and shared by the metrics that use them.

The representation metrics (linear probe, k-NN, clustering, active units), the ex-post sampler
of the sample-quality metrics and the likelihood metrics all need the codes or the posterior of
the same images. The helpers here encode a split in batches of ``ctx.eval_batch_size`` under
``torch.inference_mode`` and keep the result in ``ctx.cache`` (shared by every metric of one
cell), so each split is encoded once however many metrics run. ``ctx.cache`` belongs to one
cell, hence to one model: the keys name the split and the number of images, not the model (the
runner may hand each metric its own guarded view of it).

They also resolve a metric's options (declared defaults overlaid by ``ctx.options``) and check
them with messages naming the key, the value and what is valid.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from vaebench.metric import EvalContext, Metric

__all__ = [
    "SPLITS",
    "TRAIN_SUBSET_SEED",
    "metric_options",
    "check_int",
    "check_float",
    "check_choice",
    "split_images",
    "split_labels",
    "subset_indices",
    "codes",
    "posterior",
    "representation_codes",
]

#: The splits a dataset offers.
SPLITS = ("train", "test")
#: Seed of the fixed choice of training images when a metric caps their number: the same
#: images for every cell (model, seed), so that only the model differs between cells.
TRAIN_SUBSET_SEED = 0


# ----------------------------------------------------------------------------- options


def metric_options(metric: Metric, ctx: EvalContext) -> dict[str, Any]:
    """``metric``'s declared options with the values of ``ctx.options`` where set."""
    return {k: ctx.options.get(k, default) for k, default in metric.options.items()}


def check_int(options: dict[str, Any], key: str, minimum: int) -> int:
    """``options[key]`` as an int ``>= minimum``; ``ValueError`` naming ``eval.key`` if not."""
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"eval.{key}={value!r}: must be an integer >= {minimum}")
    return value


def check_float(
    options: dict[str, Any], key: str, minimum: float, *, strict: bool = False
) -> float:
    """``options[key]`` as a finite float ``>= minimum`` (``> minimum`` when ``strict``)."""
    value = options[key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and value == value and abs(value) != float("inf")
    ok = ok and (value > minimum if strict else value >= minimum)
    if not ok:
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"eval.{key}={value!r}: must be a finite number {bound}")
    return float(value)


def check_choice(options: dict[str, Any], key: str, choices: Iterable[str]) -> str:
    """``options[key]`` if it is one of ``choices``; ``ValueError`` naming them if not."""
    choices = tuple(choices)
    value = options[key]
    if value not in choices:
        raise ValueError(f"eval.{key}={value!r}: valid: {', '.join(choices)}")
    return str(value)


# ----------------------------------------------------------------------------- splits


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")


def split_images(dataset: Any, split: str) -> Tensor:
    """The images ``(N, C, H, W)`` of ``split`` (``"train"`` or ``"test"``)."""
    _check_split(split)
    return getattr(dataset, f"x_{split}")


def split_labels(dataset: Any, split: str) -> Tensor | None:
    """The labels ``(N,)`` of ``split``, or ``None`` when the dataset has none."""
    _check_split(split)
    return getattr(dataset, f"y_{split}")


def subset_indices(n_total: int, n: int | None) -> Tensor:
    """Sorted indices of at most ``n`` of ``n_total`` items (all when ``n`` is ``None`` or at
    least ``n_total``), chosen by a permutation fixed by :data:`TRAIN_SUBSET_SEED`."""
    if n is None or n >= n_total:
        return torch.arange(n_total)
    g = torch.Generator().manual_seed(TRAIN_SUBSET_SEED)
    return torch.randperm(n_total, generator=g)[:n].sort().values


# ----------------------------------------------------------------------------- codes


def _batched(model: Any, x: Tensor, batch_size: int, fn: Any) -> list[tuple[Tensor, ...]]:
    out = []
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch_size):
            got = fn(x[i : i + batch_size].to(model.device))
            got = got if isinstance(got, tuple) else (got,)
            out.append(tuple(t.detach().float().cpu() for t in got))
    return out


def codes(
    model: Any, dataset: Any, split: str, ctx: EvalContext, n: int | None = None
) -> tuple[Tensor, Tensor]:
    """``(codes, indices)``: ``model.encode`` of the images of ``split`` -- at most ``n`` of them,
    see :func:`subset_indices` -- as a CPU float32 tensor ``(len(indices), latent_dim)``, and
    the indices of those images in the split. Cached in ``ctx.cache``."""
    x = split_images(dataset, split)
    idx = subset_indices(x.shape[0], n)
    key = ("vaebench.codes", split, len(idx))
    if key not in ctx.cache:
        parts = _batched(model, x[idx], ctx.eval_batch_size, model.encode)
        ctx.cache[key] = torch.cat([p[0] for p in parts])
    return ctx.cache[key], idx


def posterior(
    model: Any, dataset: Any, split: str, ctx: EvalContext, n: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(mean, logvar, indices)`` of the diagonal-Gaussian ``q(z|x)`` of the images of ``split``
    (at most ``n``), each ``(len(indices), latent_dim)`` on the CPU. Cached in ``ctx.cache``.

    Raises ``ValueError`` for a model whose tags state no posterior."""
    if not model.tags.has_posterior:
        raise ValueError(f"{type(model).__name__} has no posterior (tags.has_posterior is false)")
    x = split_images(dataset, split)
    idx = subset_indices(x.shape[0], n)
    key = ("vaebench.posterior", split, len(idx))
    if key not in ctx.cache:
        parts = _batched(model, x[idx], ctx.eval_batch_size, model.posterior)
        ctx.cache[key] = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    mean, logvar = ctx.cache[key]
    return mean, logvar, idx


def representation_codes(
    model: Any, dataset: Any, split: str, ctx: EvalContext, n: int | None = None
) -> tuple[Tensor, Tensor, str]:
    """``(codes, indices, kind)``: the posterior means of a model with a posterior
    (``kind="posterior mean"``), otherwise the codes of ``encode`` (``kind="code"``); see
    :func:`codes` and :func:`posterior` for shapes and caching."""
    if model.tags.has_posterior:
        mean, _, idx = posterior(model, dataset, split, ctx, n)
        return mean, idx, "posterior mean"
    z, idx = codes(model, dataset, split, ctx, n)
    return z, idx, "code"
