"""Aggregated tables: mean ± std over seeds, one row per model, formatted per metric."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

ARROWS = {True: "↑", False: "↓"}


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """Tidy frame -> one row per (dataset, model, metric) with mean, std (ddof=1) and n."""
    if frame.empty:
        return pd.DataFrame(
            columns=[
                "dataset",
                "model",
                "metric",
                "mean",
                "std",
                "n",
                "unit",
                "higher_is_better",
                "decimals",
            ]  # fmt: skip
        )
    keys = ["dataset", "model", "metric"]
    grouped = frame.groupby(keys, sort=False)
    out = grouped["value"].agg(mean="mean", std="std", n="count").reset_index()
    meta = grouped[["unit", "higher_is_better", "decimals"]].first().reset_index()
    return out.merge(meta, on=keys)


def format_mean_std(mean: float, std: float, n: int, decimals: int) -> str:
    """``mean ± std`` at ``decimals`` places; a single seed shows the mean alone."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if n < 2 or std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def header(metric: str, unit: str, higher_is_better: Any) -> str:
    arrow = ARROWS.get(higher_is_better, "") if higher_is_better is not None else ""
    label = f"{metric} {arrow}".strip()
    return f"{label} [{unit}]" if unit else label


def wide_table(agg: pd.DataFrame, dataset: str, metrics: list[str] | None = None) -> pd.DataFrame:
    """Models as rows, metrics as columns (formatted strings), for one dataset."""
    sub = agg[agg["dataset"] == dataset]
    if metrics is None:
        metrics = list(dict.fromkeys(sub["metric"]))
    models = list(dict.fromkeys(sub["model"]))
    table: dict[str, dict[str, str]] = {}
    for metric in metrics:
        rows = sub[sub["metric"] == metric]
        if rows.empty:
            continue
        first = rows.iloc[0]
        col = header(metric, first["unit"], first["higher_is_better"])
        table[col] = {
            r["model"]: format_mean_std(r["mean"], r["std"], int(r["n"]), int(r["decimals"]))
            for _, r in rows.iterrows()
        }
    df = pd.DataFrame(table, index=models)
    df.index.name = "model"
    return df.fillna("–")
