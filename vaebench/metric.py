"""The metric contract.

A metric plugin contributes :class:`Metric` objects. A metric evaluates a fitted model through the
model interface alone (``encode``/``decode``/``sample``) and returns one or more named values; it
declares, for each value, its direction (higher or lower is better), unit and table precision.
Those declarations are stored with the results, so reports need no plugin to render them.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import numpy as np

    from vaebench.dataset import Dataset
    from vaebench.model import FitReport, Model

__all__ = ["Metric", "Value", "EvalContext"]


@dataclasses.dataclass(frozen=True)
class Value:
    """Declaration of one reported value.

    ``higher_is_better`` is ``True``/``False`` for a score with a direction and ``None`` for a
    descriptive quantity (a parameter count); ``decimals`` is the precision used in tables.
    """

    name: str
    higher_is_better: bool | None
    unit: str = ""
    decimals: int = 3
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class EvalContext:
    """Everything a metric may use besides the model and the dataset.

    ``generator`` is a torch generator seeded from the cell's seed: metrics draw their random
    choices (interpolation pairs, samples) from it so results are reproducible. ``artifacts``
    collects small arrays for figures (uint8 images), stored with the cell's result.
    """

    seed: int
    device: torch.device
    fit: FitReport | None = None
    eval_batch_size: int = 1024
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: dict[str, Any] = dataclasses.field(default_factory=dict)
    generator: torch.Generator = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(int(self.seed) + 7919)

    def add_artifact(self, name: str, value: np.ndarray | list | dict) -> None:
        self.artifacts[name] = value


class Metric(abc.ABC):
    """Base class of metric plugins.

    Subclasses set :attr:`name` and :attr:`values` and implement :meth:`evaluate`. Override
    :meth:`applies_to` when a metric needs something not every dataset has (e.g. ground-truth
    factors) or every model has (``model.can_sample``).
    """

    name: str = ""
    values: tuple[Value, ...] = ()
    #: Where reports place the metric's columns: "quality", "interpolation" or "cost"
    #: (empty: inferred from the name).
    group: str = ""

    def applies_to(self, model: Model, dataset: Dataset) -> bool:
        return True

    @abc.abstractmethod
    def evaluate(self, model: Model, dataset: Dataset, ctx: EvalContext) -> dict[str, float]:
        """Return ``{value name: float}`` for every declared value."""

    def declared(self) -> dict[str, Value]:
        return {v.name: v for v in self.values}
