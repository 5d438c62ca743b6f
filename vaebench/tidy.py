"""Stored results as a tidy pandas frame -- the data API users build their own analysis on."""

from __future__ import annotations

import math
import os

from vaebench.results import load_cells

__all__ = ["load_results"]


def load_results(*run_dirs: str | os.PathLike, include_failed: bool = False):
    """Stored results as a tidy :class:`pandas.DataFrame`.

    One row per (run, model, dataset, seed, metric) with columns ``run, model, dataset, seed,
    config_hash, metric, value, unit, higher_is_better, decimals, source`` (``source``: the
    metric plugin that produced the value). With ``include_failed`` failed cells add one row
    each with ``metric="failed"`` and the reason in ``error``.
    """
    import pandas as pd

    rows = []
    for cell in load_cells(*run_dirs):
        base = {
            "run": cell["run"],
            "model": cell["model"],
            "dataset": cell["dataset"],
            "seed": int(cell["seed"]),
            "config_hash": cell["config_hash"],
        }
        if cell["status"] != "ok":
            if include_failed:
                rows.append(
                    {**base, "metric": "failed", "value": math.nan,
                     "error": (cell.get("error") or {}).get("reason", "")}
                )  # fmt: skip
            continue
        info = cell.get("metric_info", {})
        for name, value in sorted(cell.get("metrics", {}).items()):
            meta = info.get(name, {})
            rows.append(
                {
                    **base,
                    "metric": name,
                    "value": math.nan if value is None else float(value),
                    "unit": meta.get("unit", ""),
                    "higher_is_better": meta.get("higher_is_better"),
                    "decimals": meta.get("decimals", 3),
                    "source": meta.get("metric", ""),
                }
            )
    columns = [
        "run", "model", "dataset", "seed", "config_hash", "metric", "value", "unit",
        "higher_is_better", "decimals", "source",
    ]  # fmt: skip
    if include_failed:
        columns.append("error")
    return pd.DataFrame(rows, columns=columns)
