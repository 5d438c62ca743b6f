"""The model subject: a spec, name or factory prepared once for the model checks."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vaebench.testing.core import N_TINY, PROBE_SHAPES, SHAPES, _expect
from vaebench.testing.mechanism import _KINDS, _as_spec, _device, _Kind
from vaebench.testing.tiny import tiny_images, tiny_labels

if TYPE_CHECKING:
    from vaebench.model import Model, ModelSpec, Tags


def _as_model_spec(model: Any) -> ModelSpec:
    """Accept a ModelSpec, a registered name, a registry entry, or a factory/Model class."""
    from vaebench.model import ModelSpec

    def wrap(factory: Any) -> ModelSpec:
        name = getattr(factory, "__name__", type(factory).__name__)
        return ModelSpec(name, factory, inspect.getdoc(factory) or "")

    spec: ModelSpec = _as_spec(model, ModelSpec, "model", wrap, "factory")
    return spec


def _fit_shape(shape: Sequence[int], tags: Tags) -> tuple[int, int, int]:
    """``shape`` ``(C, H, W)`` changed as little as the tags need: a channel count they accept,
    sides within ``[min_image_size, max_image_size]``."""
    c, h, w = (int(s) for s in shape)
    if tags.channels and c not in tags.channels:
        c = int(tags.channels[0])
    low = max(1, int(tags.min_image_size))
    h, w = max(h, low), max(w, low)
    if tags.max_image_size is not None:
        h, w = min(h, int(tags.max_image_size)), min(w, int(tags.max_image_size))
    return (c, h, w)


@dataclasses.dataclass
class _ModelSubject:
    spec: ModelSpec
    device: torch.device
    params: dict[str, Any]

    @property
    def name(self) -> str:
        return self.spec.name

    def resolved(self, epochs: int = 1, batch_size: int | None = None) -> dict[str, Any]:
        """Parameters for a fast check, resolved like a run's cell does: the spec's defaults,
        then a small ``epochs`` (and ``batch_size``) when the model has them, then the caller's
        ``params``."""
        defaults = self.spec.defaults()
        out: dict[str, Any] = dict(defaults)
        if "epochs" in defaults:
            out["epochs"] = epochs
        if batch_size is not None and "batch_size" in defaults:
            out["batch_size"] = batch_size
        out.update(self.params)
        return out

    def create(self, shape: Sequence[int], seed: int = 0, **fast: Any) -> Model:
        from vaebench.train import seed_everything

        seed_everything(seed)
        return self.spec.create(shape, device=self.device, **self.resolved(**fast))

    def build_first(self, raw: bool = False) -> tuple[tuple[int, int, int], Any]:
        """A model built for the first shape of :data:`SHAPES` + :data:`PROBE_SHAPES` that the
        factory accepts, and that shape; ``raw``: call the factory itself (whatever it returns).
        When no shape builds, the first shape's error is raised."""
        from vaebench.train import seed_everything

        first: Exception | None = None
        for shape in (*SHAPES, *PROBE_SHAPES):
            try:
                if not raw:
                    return shape, self.create(shape)
                seed_everything(0)
                return shape, self.spec.factory(
                    input_shape=shape, device=self.device, **self.resolved()
                )
            except Exception as exc:  # noqa: BLE001 - try the next shape
                first = first or exc
        assert first is not None
        raise first

    @functools.cached_property
    def tags(self) -> Tags:
        """The tags of a model built with the checks' parameters."""
        from vaebench.model import Tags

        tags = self.build_first()[1].tags
        _expect(
            isinstance(tags, Tags),
            f"expected model.tags to be a vaebench.model.Tags, got {type(tags).__name__}",
        )
        return tags

    @functools.cached_property
    def shapes(self) -> tuple[tuple[int, int, int], ...]:
        """:data:`SHAPES` fitted to the tags, without repeats."""
        tags = self.tags
        out: list[tuple[int, int, int]] = []
        for shape in SHAPES:
            fitted = _fit_shape(shape, tags)
            if fitted not in out and tags.unsupported(fitted) is None:
                out.append(fitted)
        _expect(
            out,
            f"expected the tags to admit an image shape, but none of {list(SHAPES)} fits them "
            f"(min_image_size={tags.min_image_size!r}, max_image_size={tags.max_image_size!r}, "
            f"channels={tags.channels!r})",
        )
        return tuple(out)

    def fit(self, model: Model, x: Tensor, seed: int = 0) -> Any:
        """``model.fit(x)``, with the labels of :func:`tiny_labels` when the tags say
        ``uses_labels`` (``x`` must be ``tiny_images(shape, len(x), seed)``)."""
        if self.tags.uses_labels:
            return model.fit(x, tiny_labels(x.shape[0], seed).to(self.device))
        return model.fit(x)

    def fitted(
        self, shape: Sequence[int], seed: int = 0, n: int = N_TINY, **fast: Any
    ) -> tuple[Model, Tensor]:
        """A model fitted on ``n`` tiny images (seeded exactly like a run's cell), and the data."""
        model = self.create(shape, seed, **fast)
        x = tiny_images(shape, n, seed).to(self.device)
        self.fit(model, x, seed)
        return model, x


def _model_subject(
    model: Any,
    *,
    device: str | torch.device | None = None,
    params: Mapping[str, Any] | None = None,
) -> _ModelSubject:
    return _ModelSubject(_as_model_spec(model), _device(device), dict(params or {}))


_KINDS["model"] = _Kind("model", _model_subject, _ModelSubject)


def _full_state(model: Any) -> dict[str, Any]:
    """A copy of every tensor of ``model``: a torch module's parameters and buffers (whatever
    its ``state_dict`` override returns), otherwise its ``state_dict()``."""
    if isinstance(model, torch.nn.Module):
        state = torch.nn.Module.state_dict(model)
    else:
        state = model.state_dict()
    return {k: v.detach().clone() if isinstance(v, Tensor) else v for k, v in state.items()}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
            return False
        try:
            torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
        except AssertionError:
            return False
        return True
    return type(a) is type(b) and a == b


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Names of the entries added, removed or changed between two :func:`_full_state`."""
    keys = sorted(set(before) | set(after))
    return [k for k in keys if k not in before or k not in after or not _same(before[k], after[k])]


def _mode_hint(model: Any) -> str:
    if isinstance(model, torch.nn.Module) and model.training:
        return (
            " (the model is in training mode: BatchNorm normalises by the batch and updates its "
            "running statistics, dropout is random -- run inference in eval mode)"
        )
    return ""


def _batchnorm_hint(keys: Sequence[str]) -> str:
    stats = ("running_mean", "running_var", "num_batches_tracked")
    if any(k.rsplit(".", 1)[-1] in stats for k in keys):
        return " (BatchNorm running statistics change only in training mode)"
    return ""
