"""Order and grouping of what a report shows: models, datasets, metric columns.

Columns follow the reader's questions: quality first (reconstruction and any other metric that
judges the model's output), then interpolation, then cost (throughput, time, size); see
:func:`vaebench.tidy.metric_group`. Within a group, the values of one metric plugin stay
together; descriptive values without a direction (``n_params``) come after the scored ones;
then the order the metric declared its values in, when the cell stored it
(``metric_info[name]["order"]``), else names alphabetically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaebench.tidy import metric_group

#: Column groups in table order, with their header labels.
GROUPS: dict[str, str] = {
    "quality": "Quality",
    "interpolation": "Interpolation",
    "cost": "Throughput and size",
}

#: Preferred order of the built-in metric plugins inside their group; others follow by name.
SOURCE_ORDER = ("reconstruction", "interpolation", "acai", "midpoint", "throughput")


#: Headline metrics for the cross-dataset summary table and the Pareto scatter, most preferred
#: first; metrics not listed follow in column order.
HEADLINE_METRICS = ("mse", "psnr", "smoothness", "mean_distance", "midpoint_nn_ratio")


def headline_first(metrics: Sequence[str]) -> list[str]:
    """``metrics`` with the :data:`HEADLINE_METRICS` first (in that order), others after."""
    head = [m for m in HEADLINE_METRICS if m in metrics]
    return head + [m for m in metrics if m not in head]


def metric_sort_key(meta: dict[str, Any], name: str) -> tuple:
    """Sort key of one metric column given its declaration ``meta`` (``group``, ``source``,
    ``higher_is_better``, optional ``order``): group, metric plugin, descriptive values last,
    declared order, name."""
    group = meta.get("group") or metric_group(meta.get("source", ""))
    source = str(meta.get("source") or "")
    order = meta.get("order")
    try:
        order = int(order)
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


def ordered(present: Sequence[str], preferred: Sequence[str]) -> list[str]:
    """``present`` names in ``preferred`` order, then the rest alphabetically."""
    have = set(present)
    head = [n for n in dict.fromkeys(preferred) if n in have]
    return head + sorted(have - set(head))


def variant_order(variants: dict[str, str], model_order: Sequence[str]) -> list[str]:
    """Variant labels ordered by their model's position, then alphabetically within a model;
    ``variants`` maps a label to its model."""
    rank = {m: i for i, m in enumerate(model_order)}
    return sorted(variants, key=lambda v: (rank.get(variants[v], len(rank)), variants[v], v))
