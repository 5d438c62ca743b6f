"""Figures from stored results (matplotlib, headless): image grids, strips, training curves.

Every figure is written as PNG and PDF. One colour per model across all figures
(:func:`model_colors`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vaebench.results import decode_images


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "figure.dpi": 150,
                         "savefig.bbox": "tight", "pdf.fonttype": 42})  # fmt: skip
    return plt


def model_colors(models: list[str]) -> dict[str, Any]:
    """A stable colour per model (tab10 in the given order)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(models)}


def _save(fig, path: Path) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in (".png", ".pdf"):
        p = path.with_suffix(ext)
        # fixed metadata so that figures do not change between regenerations
        meta = {"Software": None} if ext == ".png" else {"Creator": None, "Producer": None,
                                                          "CreationDate": None}  # fmt: skip
        fig.savefig(p, metadata=meta)
        out.append(p)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return out


def _as_hw(img: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W) or (H, W, 3) for imshow."""
    if img.shape[0] == 1:
        return img[0]
    return np.transpose(img[:3], (1, 2, 0))


def image_rows(
    rows: list[tuple[str, np.ndarray]], path: Path, title: str, col_labels: list[str] | None = None
) -> list[Path]:
    """One labelled row of images per entry ``(label, images (N, C, H, W))``."""
    plt = _plt()
    n_cols = max(r[1].shape[0] for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(0.6 * n_cols + 0.9, 0.62 * len(rows) + 0.3),
                             squeeze=False)  # fmt: skip
    for i, (label, imgs) in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < imgs.shape[0]:
                ax.imshow(_as_hw(imgs[j]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if j == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center")
            if i == 0 and col_labels and j < len(col_labels):
                ax.set_title(col_labels[j])
    fig.suptitle(title)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return _save(fig, path)


def reconstruction_grid(
    cells: list[dict], dataset: str, models: list[str], path: Path
) -> list[Path]:
    """Originals (top row) and each model's reconstructions of the same test images."""
    rows: list[tuple[str, np.ndarray]] = []
    for m in models:
        c = _first_cell(cells, m, dataset)
        if c is None or "recon_outputs" not in c.get("artifacts", {}):
            continue
        if not rows:
            rows.append(("original", decode_images(c["artifacts"]["recon_originals"])))
        rows.append((m, decode_images(c["artifacts"]["recon_outputs"])))
    if not rows:
        return []
    return image_rows(
        rows, path, f"{dataset}: test images and reconstructions (seed {_seed(cells)})"
    )


def interpolation_strips(
    cells: list[dict], dataset: str, models: list[str], path: Path
) -> list[Path]:
    """Decoded latent interpolation between the same two test images, one row per model."""
    rows = []
    for m in models:
        c = _first_cell(cells, m, dataset)
        if c is None or "interp_strip" not in c.get("artifacts", {}):
            continue
        rows.append((m, decode_images(c["artifacts"]["interp_strip"])))
    if not rows:
        return []
    return image_rows(rows, path, f"{dataset}: decoding along a straight line between two codes")


def training_curves(
    cells: list[dict], dataset: str, models: list[str], colors: dict, path: Path
) -> list[Path]:
    """Training loss per epoch (mean over seeds, band = min..max) for every neural model."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.4, 2.4))
    drawn = False
    for m in models:
        curves = [c["history"]["loss"] for c in cells
                  if c["model"] == m and c["dataset"] == dataset and c["status"] == "ok"
                  and len(c.get("history", {}).get("loss", [])) > 1]  # fmt: skip
        if not curves:
            continue
        length = min(len(c) for c in curves)
        arr = np.array([c[:length] for c in curves], dtype=float)
        x = np.arange(1, length + 1)
        ax.plot(x, arr.mean(0), color=colors[m], label=m, lw=1.2)
        if arr.shape[0] > 1:
            ax.fill_between(x, arr.min(0), arr.max(0), color=colors[m], alpha=0.2, lw=0)
        drawn = True
    if not drawn:
        plt.close(fig)
        return []
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (nats/image)")
    ax.set_yscale("log")
    ax.set_title(f"{dataset}: training loss")
    ax.legend(frameon=False)
    return _save(fig, path)


def _first_cell(cells: list[dict], model: str, dataset: str) -> dict | None:
    ok = [
        c for c in cells if c["model"] == model and c["dataset"] == dataset and c["status"] == "ok"
    ]
    return min(ok, key=lambda c: c["seed"]) if ok else None


def _seed(cells: list[dict]) -> int:
    ok = [c["seed"] for c in cells if c["status"] == "ok"]
    return min(ok) if ok else 0
