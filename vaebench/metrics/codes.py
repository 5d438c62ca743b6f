"""Codes of a dataset's splits, computed once per cell and shared by the metrics that use them.

The representation metrics (linear probe, k-NN, clustering, active units), the ex-post sampler
of the sample-quality metrics and the likelihood metrics all need the codes or the posterior of
the same images. The helpers here encode a split in batches of ``ctx.eval_batch_size`` under
``torch.inference_mode`` and keep the result in ``ctx.cache`` (shared by every metric of one
cell), so each split is encoded once however many metrics run. ``ctx.cache`` belongs to one
cell, hence to one model: the keys name the split and the number of images, not the model (the
runner may hand each metric its own guarded view of it).

They also check a metric's resolved options (:meth:`vaebench.metric.Metric.resolve_options`)
against their documented bounds, with messages naming ``eval.KEY``, the value and what is
valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from vaebench.metric import EvalContext, Metric

__all__ = [
    "SPLITS",
    "TRAIN_SUBSET_SEED",
    "Bounds",
    "BoundedMetric",
    "check_range",
    "check_choice",
    "check_bounded",
    "documented",
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

#: A documented range of a numeric option: ``(lowest, highest)``, both included. Integers when
#: both ends are ints, else finite floats.
Bounds = tuple[int, int] | tuple[float, float]


def _fmt(b: int | float) -> str:
    return str(b) if isinstance(b, int) else f"{b:g}"


def _is_range(spec: tuple[Any, ...]) -> bool:
    return len(spec) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) for b in spec
    )


def _range_text(bounds: Bounds) -> str:
    low, high = bounds
    kind = "an integer" if isinstance(low, int) and isinstance(high, int) else "a number"
    return f"{kind} from {_fmt(low)} to {_fmt(high)}"


def check_range(options: dict[str, Any], key: str, bounds: Bounds) -> int | float:
    """``options[key]`` if it lies in ``bounds`` (an int for integer bounds, a finite number
    otherwise); else ``ValueError`` naming ``eval.key``, the value and the range, e.g.
    ``invalid value 0 for eval.iwae_k: expected an integer from 1 to 100000``."""
    low, high = bounds
    value = options[key]
    integer = isinstance(low, int) and isinstance(high, int)
    ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
    ok = ok and value == value and low <= value <= high  # NaN fails ``value == value``
    if not ok:
        raise ValueError(f"invalid value {value!r} for eval.{key}: expected {_range_text(bounds)}")
    return value


def check_choice(options: dict[str, Any], key: str, choices: Iterable[Any]) -> Any:
    """``options[key]`` if it is one of ``choices``; ``ValueError`` naming them if not (a
    boolean option's choices are ``(True, False)``, shown as ``true, false``)."""
    choices = tuple(choices)
    value = options[key]
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        shown = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in choices)
        raise ValueError(f"invalid value {value!r} for eval.{key}; valid: {shown}")
    return value


def check_bounded(options: dict[str, Any], bounds: Mapping[str, Bounds | tuple[Any, ...]]) -> None:
    """Check every key of ``bounds`` present in ``options``: a ``(low, high)`` pair of numbers
    is a range (:func:`check_range`), any other tuple the valid choices (:func:`check_choice`).
    Keys not in ``options`` are left alone (the caller resolves defaults first)."""
    for key, spec in bounds.items():
        if key not in options:
            continue
        if _is_range(spec):
            check_range(options, key, spec)
        else:
            check_choice(options, key, spec)


def documented(
    docs: Mapping[str, str], bounds: Mapping[str, Bounds | tuple[Any, ...]]
) -> dict[str, str]:
    """``docs`` with each bounded option's range appended (``"...; 1 to 100000"``), so that
    ``vaebench list metrics`` shows the same bounds :func:`check_bounded` enforces. Idempotent:
    a text that already ends with its range is left as it is."""
    out = dict(docs)
    for key, spec in bounds.items():
        if key in out and _is_range(spec):
            suffix = f"; {_fmt(spec[0])} to {_fmt(spec[1])}"
            if not out[key].endswith(suffix):
                out[key] += suffix
    return out


class BoundedMetric(Metric):
    """A metric whose options are checked against documented bounds: ``bounds`` maps an option
    to a ``(low, high)`` range or a tuple of choices (:func:`check_bounded`)."""

    bounds: ClassVar[Mapping[str, Bounds | tuple[Any, ...]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's own ``option_docs`` get its ``bounds`` appended (:func:`documented`), so
        a metric declares plain texts and ``vaebench list metrics`` shows the enforced ranges."""
        super().__init_subclass__(**kwargs)
        if "option_docs" in vars(cls) or "bounds" in vars(cls):
            cls.option_docs = documented(cls.option_docs, cls.bounds)

    def check_options(self, options: dict[str, Any]) -> None:
        check_bounded(self.resolve_options(options), self.bounds)

    def checked_options(self, ctx: EvalContext) -> dict[str, Any]:
        """The options of ``ctx`` resolved against the defaults (:meth:`resolve_options`) and
        checked (:meth:`check_options`: ``ValueError`` naming ``eval.KEY``, the value and what
        is valid)."""
        opts = self.resolve_options(ctx.options)
        self.check_options(opts)
        return opts


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
