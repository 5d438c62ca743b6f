"""Interpolation figures (midpoint strips on moons etc.); drawn from stored artifacts."""

from __future__ import annotations

from pathlib import Path


def draw(
    cells: list[dict], dataset: str, models: list[str], colors: dict, fig_dir: Path
) -> list[Path]:
    """Draw this dataset's interpolation figures into ``fig_dir``; return the written paths."""
    return []
