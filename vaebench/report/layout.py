"""Order and grouping of what a report shows: models, datasets, metric columns.

Columns follow the reader's questions: quality first (reconstruction and any other metric that
judges the model's output), then interpolation, likelihood, representation, samples, then cost
(throughput, time, size); see :func:`vaebench.record.metric_group`. Within a group, the values of one metric plugin stay
together; descriptive values without a direction (``n_params``) come after the scored ones;
then the order the metric declared its values in, when the cell stored it
(``metric_info[name]["order"]``), else names alphabetically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vaebench.record import metric_group

#: Column groups in table order, with their header labels.
GROUPS: dict[str, str] = {
    "quality": "Quality",
    "interpolation": "Interpolation",
    "likelihood": "Likelihood",
    "representation": "Representation",
    "disentanglement": "Disentanglement",
    "samples": "Samples",
    "cost": "Throughput and size",
}

#: Groups whose metric plugins share one table per dataset (``DATASET-GROUP``): their plugins
#: give one or two values each. The other groups get one table per metric plugin
#: (``DATASET-PLUGIN``).
GROUP_TABLES = ("likelihood", "representation", "samples", "disentanglement")

#: Preferred order of the built-in metric plugins inside their group; others follow by name.
SOURCE_ORDER = (
    "reconstruction", "interpolation", "acai", "midpoint",
    "iwae", "elbo", "probe", "knn", "cluster", "active_units", "fd", "kid", "prdc",
    "throughput", "betavae_score", "factorvae_score", "mig", "dci", "sap", "modularity",
    "traversal",
)  # fmt: skip

#: Headline metrics of each group, most preferred first: the columns of the cross-dataset
#: summary table, the y axes of the sweep figures, the ablation tables and the Pareto scatter.
#: A group whose cells hold none of these takes its first scored value in column order --
#: except the values of :data:`NOT_HEADLINE`.
HEADLINES: dict[str, tuple[str, ...]] = {
    "quality": ("mse", "psnr"),
    "interpolation": ("smoothness", "mean_distance", "midpoint_nn_ratio"),
    "likelihood": ("iwae_nll", "elbo"),
    "representation": ("probe_acc", "knn_acc", "cluster_acc"),
    "samples": ("fd", "kid", "prdc_recall"),
    "disentanglement": ("mig", "dci_disentanglement", "factorvae", "betavae", "sap"),
}

#: Values never chosen as a headline: a trivially linear model wins them by construction.
#: ``path_step_ratio``: a linear decoder (PCA) maps a straight code line to evenly spaced
#: images, so it is 1 (perfect) whatever the images look like; ``path_length_ratio``: the same
#: decoder gives a straight pixel path (1). Both are descriptive in the current declaration
#: (``interpolation`` metric version 3); this list also keeps them out of headlines when older
#: cells still declare a direction. See docs/interpolation.md.
NOT_HEADLINE = frozenset({"path_step_ratio", "path_length_ratio"})


def headline(group: str, scored: Sequence[str]) -> str | None:
    """The headline metric of ``group`` among the ``scored`` metrics (those with a direction,
    in column order): the first of :data:`HEADLINES` ``[group]`` present, else the first scored
    value not in :data:`NOT_HEADLINE`, else None."""
    for name in HEADLINES.get(group, ()):
        if name in scored:
            return name
    rest = [m for m in scored if m not in NOT_HEADLINE and not m.endswith("_se")]
    return rest[0] if rest else None


def table_key(group: str, source: str) -> str:
    """The table a value goes into: its group for :data:`GROUP_TABLES`, else its metric
    plugin."""
    return group if group in GROUP_TABLES else (source or "other")


def metric_sort_key(meta: dict[str, Any], name: str) -> tuple:
    """Sort key of one metric column given its declaration ``meta`` (``group``, ``source``,
    ``higher_is_better``, optional ``order``): group, metric plugin, descriptive values last,
    declared order, name."""
    group = meta.get("group") or metric_group(meta.get("source", ""))
    source = str(meta.get("source") or "")
    raw = meta.get("order")
    try:
        order = int(raw) if raw is not None else 1_000_000
    except (TypeError, ValueError):
        order = 1_000_000
    return (
        list(GROUPS).index(group) if group in GROUPS else len(GROUPS),
        SOURCE_ORDER.index(source) if source in SOURCE_ORDER else len(SOURCE_ORDER),
        source,
        meta.get("higher_is_better") is None,
        order,
        name,
    )


def order_metrics(meta: dict[str, dict[str, Any]]) -> list[str]:
    """Metric names in column order; ``meta`` maps a name to its declaration."""
    return sorted(meta, key=lambda name: metric_sort_key(meta[name], name))


def is_companion(metric: str, present: set[str] | Sequence[str]) -> bool:
    """True for ``X_se`` when ``X`` is present: a within-cell standard error that tables leave
    to the CSV (it would double the columns and is not the spread over seeds)."""
    return metric.endswith("_se") and metric[: -len("_se")] in set(present)


def _manifest_configs(run_dirs: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    configs = []
    for d in run_dirs:
        for p in sorted(Path(d).glob("manifests/*.json")):
            try:
                configs.append(json.loads(p.read_text(encoding="utf-8"))["config"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return configs


def requested_order(run_dirs: Sequence[str | os.PathLike], key: str) -> list[str]:
    """Names (``key`` = ``"models"`` or ``"datasets"``) in the order the runs asked for them."""
    order: list[str] = []
    for config in _manifest_configs(run_dirs):
        names = config.get(key) or []
        order.extend(n for n in names if isinstance(n, str) and n not in order)
    return order


def ordered(present: Iterable[str], preferred: Sequence[str]) -> list[str]:
    """``present`` names in ``preferred`` order, then the rest alphabetically."""
    have = set(present)
    head = [n for n in dict.fromkeys(preferred) if n in have]
    return head + sorted(have - set(head))


def variant_order(
    variants: dict[str, str],
    model_order: Sequence[str],
    keys: dict[str, tuple] | None = None,
) -> list[str]:
    """Variant labels ordered by their model's position, then within a model by ``keys``
    (label -> sort key, e.g. the swept values, numbers ascending: ``beta=4`` before
    ``beta=10``) when given, then alphabetically; ``variants`` maps a label to its model."""
    rank = {m: i for i, m in enumerate(model_order)}
    keys = keys or {}
    return sorted(
        variants, key=lambda v: (rank.get(variants[v], len(rank)), variants[v], keys.get(v, ()), v)
    )


def sweep_sort_key(values: dict[str, Any]) -> tuple:
    """Sort key of a variant from its swept values (``{"beta": 4.0}``, in the order given):
    numbers by value before other values by text."""
    return tuple(
        (0, float(v), "")
        if isinstance(v, (int, float)) and not isinstance(v, bool)
        else (1, 0.0, str(v))
        for v in values.values()
    )
