"""The metric contract.

A metric plugin contributes :class:`Metric` objects. A metric evaluates a fitted model through the
model interface alone (``encode``/``decode``/``sample``, and ``posterior``/``log_likelihood``
where the model's tags offer them) and returns one or more named values; it declares, for each
value, its direction (higher or lower is better), unit, table precision, definition and source.
Those declarations are stored with the results, so reports need no plugin to render them.

A metric also declares its **options** (``--set eval.KEY=VALUE``) with their defaults, whether
it runs by default, and a cost note. A stored evaluation is identified by the metric's name,
``version`` and resolved options: changing an option, or bumping ``version``, recomputes that
metric only -- nothing is retrained (``vaebench evaluate``).
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vaebench.errors import MetricError

if TYPE_CHECKING:
    import numpy as np

    from vaebench.dataset import Dataset
    from vaebench.model import FitReport, Model

__all__ = ["Metric", "Value", "EvalContext", "MetricError", "metric_seed", "COSTS"]

#: What a metric's ``cost`` may say: ``cheap`` runs by default in seconds; ``moderate`` takes
#: up to about a minute per cell on a CPU; ``expensive`` longer (usually opt-in).
COSTS = ("cheap", "moderate", "expensive")


@dataclasses.dataclass(frozen=True)
class Value:
    """Declaration of one reported value.

    ``higher_is_better`` is ``True``/``False`` for a score with a direction and ``None`` for a
    descriptive quantity (a parameter count); ``decimals`` is the precision used in tables;
    ``description`` defines the value in one line and ``reference`` names its source (paper),
    both shown in the report's glossary.
    """

    name: str
    higher_is_better: bool | None
    unit: str = ""
    decimals: int = 3
    description: str = ""
    reference: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def metric_seed(seed: int, metric: str) -> int:
    """The seed of ``metric``'s own random stream in a cell of seed ``seed``: a 63-bit integer
    derived from both, so that selecting a subset of metrics never changes another metric's
    numbers."""
    digest = hashlib.sha256(f"vaebench-metric:{int(seed)}:{metric}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclasses.dataclass
class EvalContext:
    """Everything a metric may use besides the model and the dataset.

    - ``seed``: the cell's seed; ``metric``: the name of the metric being evaluated;
    - ``generator``: a CPU torch generator seeded by :func:`metric_seed` ``(seed, metric)`` --
      every random choice of the metric (interpolation pairs, samples) draws from it;
    - ``options``: the resolved evaluation options (every metric's declared options plus
      ``eval_batch_size``);
    - ``fit``: the :class:`~vaebench.model.FitReport` of training (rebuilt from the stored cell
      when a stored model is re-evaluated);
    - ``cache``: a dict shared by all metrics of one cell evaluation, for results several
      metrics need (e.g. the codes of the training split); keys are the producer's business;
    - ``artifacts``: small arrays for figures (images in [0, 1]), stored with the evaluation;
    - ``details``: JSON-able provenance of the evaluation beyond its values (e.g. the feature
      network's weight hash and test accuracy, which sampler was used), stored with it;
    - ``cache_dir``: a folder for expensive reusable by-products (the results folder's
      ``features/``), or ``None`` when nothing may be cached;
    - ``not_applicable``: ``{value name: reason}`` for declared values that do not apply to
      this model and data although the metric's other values do (e.g. ``fd@prior`` of a model
      without a prior); fill it with :meth:`value_not_applicable`.
    """

    seed: int
    device: torch.device
    fit: FitReport | None = None
    eval_batch_size: int = 1024
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: dict[str, Any] = dataclasses.field(default_factory=dict)
    metric: str = ""
    cache: dict[Any, Any] = dataclasses.field(default_factory=dict)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    cache_dir: Path | None = None
    not_applicable: dict[str, str] = dataclasses.field(default_factory=dict)
    generator: torch.Generator = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(metric_seed(self.seed, self.metric))

    def for_metric(self, name: str) -> EvalContext:
        """A context for metric ``name``: its own generator and artifacts, the shared cache."""
        return EvalContext(
            seed=self.seed,
            device=self.device,
            fit=self.fit,
            eval_batch_size=self.eval_batch_size,
            options=self.options,
            metric=name,
            cache=self.cache,
            cache_dir=self.cache_dir,
        )

    def value_not_applicable(self, name: str, reason: str) -> None:
        """Declare that value ``name`` does not apply, and why (one line). The metric returns
        NaN (or nothing) for it; the runner stores it under the evaluation's ``not_applicable``
        with the reason -- not as a NaN value, no ``nan_value`` warning -- and reports show it as
        a not-applicable metric is shown. When every value is declared so, the whole evaluation
        is stored as ``not_applicable`` (as if the metric had raised
        :class:`~vaebench.errors.NotApplicableError`)."""
        self.not_applicable[str(name)] = " ".join(str(reason).split())

    def add_artifact(
        self, name: str, value: np.ndarray | torch.Tensor | list[Any] | dict[str, Any]
    ) -> None:
        self.artifacts[name] = value


class Metric(abc.ABC):
    """Base class of metric plugins.

    Subclasses set :attr:`name` and :attr:`values` and implement :meth:`evaluate`; they may set:

    - :attr:`options`: evaluation options with their defaults (``--set eval.KEY=VALUE``; a key
      several metrics declare is one option shared by them, with one default);
    - :attr:`option_docs`: a one-line meaning per option (``vaebench list metrics``);
    - :attr:`default`: ``False`` for metrics that run only when named in ``--metrics``;
    - :attr:`cost`: one of :data:`COSTS`, shown by ``vaebench list metrics``;
    - :attr:`version`: bump it when the definition changes, so stored evaluations are redone;
    - :attr:`group`: where reports place the columns (quality, interpolation, likelihood,
      representation, samples or cost);
    - :attr:`guarded`: ``False`` only for metrics that time the model rather than use its
      outputs (the runner then hands them the model itself instead of the output-checking
      wrapper).

    Override :meth:`applies_to` when a metric needs something not every dataset or model has;
    it returns ``True``, ``False`` or a string saying why the metric does not apply.
    """

    name: str = ""
    values: tuple[Value, ...] = ()
    group: str = ""
    options: dict[str, Any] = {}
    option_docs: dict[str, str] = {}
    default: bool = True
    cost: str = "cheap"
    version: int = 1
    guarded: bool = True

    def applies_to(self, model: Model, dataset: Dataset) -> bool | str:
        """``True`` if the metric can evaluate ``model`` on ``dataset``; ``False`` or a reason
        (a string, recorded in the results) if not."""
        return True

    def resolve_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The options this metric declares, taken from ``options`` where given, else their
        declared defaults (the one place options are resolved: the runner keys evaluations by
        the result, and metrics read their settings from it)."""
        return {k: options.get(k, v) for k, v in (self.options or {}).items()}

    def check_options(self, options: dict[str, Any]) -> None:
        """Validate the resolved options before any training; raise ``ValueError`` naming the
        bad key, its value and what is valid (e.g. ``eval.n_pairs=0: must be >= 1``). The
        default accepts everything."""
        return None

    @abc.abstractmethod
    def evaluate(self, model: Model, dataset: Dataset, ctx: EvalContext) -> dict[str, float]:
        """Return ``{value name: float}`` for every declared value (NaN where undefined; the
        runner records why). A value that does not apply to this model (while the others do)
        is declared with :meth:`EvalContext.value_not_applicable` and returned as NaN or left
        out; a finite number for it is an error. Raise :class:`MetricError` (or any exception) to fail only this
        metric's values."""

    def declared(self, options: dict[str, Any] | None = None) -> dict[str, Value]:
        """The declared values by name. ``options`` (the resolved options) lets a metric whose
        values depend on them (the sample metrics with several samplers) declare them; the
        default ignores it."""
        return {v.name: v for v in self.values}
