"""Interpolation figures drawn from stored artifacts only (no model, no dataset is loaded).

:func:`draw` is called by the report builder once per dataset. For moons datasets it draws the
lecture's experiment: per model, the decoded strip full moon -> code midpoint -> half moon next to
the true three-quarter moon (artifact ``midpoint_strip`` of the ``midpoint`` metric), under a row
of the true full, three-quarter and half moons (artifact ``midpoint_truth``). Each model row is
labelled with its seed and that cell's estimated midpoint phase (ideal 0.75).

For factor datasets (artifact ``latent_traversal`` of the ``traversal`` metric) it draws, per
model variant, the latent traversal of its lowest seed: one row per code dimension, swept left to right
from the first test image's code, labelled with the variance of that dimension's code over the
test set (a collapsed dimension has ~0 and leaves the image unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vaebench.record import decode_images
from vaebench.report.escape import plot_text
from vaebench.report.files import save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

__all__ = ["draw", "midpoint_strips", "latent_traversal"]

COLUMNS = ("full (decoded)", "code midpoint", "half (decoded)", "true ¾")


#: Style of these figures (applied while drawing and saving; global state is untouched).
STYLE: dict[RcKeyType, Any] = {"font.size": 8, "axes.titlesize": 8, "figure.dpi": 150, "savefig.dpi": 150,
         "savefig.bbox": "tight", "pdf.fonttype": 42}  # fmt: skip


def _save(fig: Any, path: Path, suffixes: Sequence[str] = (".png", ".pdf")) -> list[Path]:
    """Write ``path`` as PNG and PDF (``suffixes``) atomically with fixed metadata (stable across
    regenerations); see :func:`vaebench.report.files.save_figure`."""
    import matplotlib

    if fig is None:
        return []
    with matplotlib.rc_context(STYLE):
        return save_figure(fig, path, suffixes)


def _hw(img: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` -> ``(H, W)`` or ``(H, W, 3)`` for imshow."""
    return img[0] if img.shape[0] == 1 else np.transpose(img[:3], (1, 2, 0))


def _first_ok(cells: list[dict], model: str, dataset: str, artifact: str) -> dict | None:
    ok = [c for c in cells
          if c.get("model") == model and c.get("dataset") == dataset and c.get("status") == "ok"
          and artifact in c.get("artifacts", {})]  # fmt: skip
    return min(ok, key=lambda c: c["seed"]) if ok else None


def midpoint_strips(
    cells: list[dict], dataset: str, models: list[str], colors: dict | None = None
) -> Figure | None:
    """The lecture's strip figure for one moons dataset (see module docstring), as a
    :class:`matplotlib.figure.Figure`; ``None`` when no cell of ``dataset`` stored a
    ``midpoint_strip``."""
    colors = colors or {}
    rows: list[tuple[str, np.ndarray, dict]] = []
    truth = None
    for m in models:
        c = _first_ok(cells, m, dataset, "midpoint_strip")
        if c is None:
            continue
        strip = decode_images(c["artifacts"]["midpoint_strip"])  # (4, C, H, W)
        if truth is None and "midpoint_truth" in c["artifacts"]:
            truth = decode_images(c["artifacts"]["midpoint_truth"])  # (3, C, H, W)
        rows.append((m, strip, c))
    if not rows:
        return None
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):
        return _draw_strips(Figure, rows, truth, colors, dataset)


def _draw_strips(Fig: Any, rows: list, truth: Any, colors: dict, dataset: str) -> Figure:
    n_rows = len(rows) + (truth is not None)
    fig = Fig(figsize=(4 * 0.75 + 1.6, 0.78 * n_rows + 0.45))
    axes = fig.subplots(n_rows, 4, squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    r0 = 0
    if truth is not None:
        for j, (img, label) in enumerate(
            zip(truth, ("true full", "true ¾", "true half"), strict=False)
        ):
            axes[0, j].imshow(_hw(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            axes[0, j].set_title(label)
        axes[0, 3].axis("off")
        axes[0, 0].set_ylabel("truth", rotation=0, ha="right", va="center")
        r0 = 1
    for i, (m, strip, c) in enumerate(rows):
        r = r0 + i
        for j in range(4):
            ax = axes[r, j]
            ax.imshow(_hw(strip[j]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            for s in ax.spines.values():
                s.set_edgecolor(colors.get(m, "black") if j == 1 else "0.7")
                s.set_linewidth(1.5 if j == 1 else 0.5)
        metrics = c.get("metrics", {})
        phase = metrics.get("midpoint_phase")
        note = f"phase {phase:.2f}" if isinstance(phase, (int, float)) else ""
        axes[r, 0].set_ylabel(f"{plot_text(m)}\nseed {c['seed']}\n{note}", rotation=0, ha="right",
                              va="center")  # fmt: skip
    for j, label in enumerate(COLUMNS):
        axes[-1, j].set_xlabel(label)
    fig.suptitle(
        f"{plot_text(dataset)}: decoding half-way between the codes of a full and a half moon",
        y=1.02,
    )
    fig.subplots_adjust(wspace=0.08, hspace=0.12)
    return fig


def latent_traversal(cells: list[dict], dataset: str, model: str) -> Figure | None:
    """The latent traversal figure of ``model`` -- a model name or a variant label such as
    ``vae (beta=4)`` -- on ``dataset`` (see the module docstring), or ``None`` when no cell
    stored one."""
    ok = [c for c in cells
          if model in (c.get("variant"), c.get("model")) and c.get("dataset") == dataset
          and c.get("status") == "ok" and "latent_traversal" in c.get("artifacts", {})]  # fmt: skip
    if not ok:
        return None
    exact = [c for c in ok if (c.get("variant") or c.get("model")) == model] or ok
    c = min(exact, key=lambda c: c["seed"])
    images = decode_images(c["artifacts"]["latent_traversal"])
    details = (c.get("evaluations", {}).get("traversal") or {}).get("details") or {}
    steps = int(details.get("steps", 7))
    d = images.shape[0] // steps
    variance = details.get("code_variance") or [None] * d
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(0.5 * steps + 1.2, 0.5 * d + 0.5))
        axes = fig.subplots(d, steps, squeeze=False)
        for i in range(d):
            for j in range(steps):
                ax = axes[i, j]
                ax.imshow(_hw(images[i * steps + j]), cmap="gray", vmin=0, vmax=1,
                          interpolation="nearest")  # fmt: skip
                ax.set_xticks([])
                ax.set_yticks([])
            v = variance[i] if i < len(variance) else None
            label = f"z{i}" + (f"\nvar {v:.2g}" if isinstance(v, (int, float)) else "")
            axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=6)
        reach = details.get("reach", 2.0)
        fig.suptitle(
            f"{plot_text(dataset)}, {plot_text(c.get('variant') or model)} (seed {c['seed']}): "
            "each code dimension "
            f"swept over +-{reach:g} x its spread",
            y=1.0,
        )
        fig.subplots_adjust(wspace=0.05, hspace=0.05)
        return fig


def draw(
    cells: list[dict],
    dataset: str,
    models: list[str],
    colors: dict,
    fig_dir: Path,
    stem: str | None = None,
    suffixes: Sequence[str] = (".png", ".pdf"),
) -> list[Path]:
    """Draw this dataset's interpolation figures into ``fig_dir`` (as each of ``suffixes``);
    return the written paths. ``stem``: the dataset's file-name stem (see
    :func:`vaebench.report.content.file_stems`)."""
    if stem is None:
        from vaebench.report.content import file_stems

        stem = file_stems([dataset])[dataset]
    fig = midpoint_strips(cells, dataset, models, colors)
    out = _save(fig, Path(fig_dir) / f"{stem}-midpoint", suffixes)
    from vaebench.report.content import file_stems

    variants = sorted({c.get("variant") or c["model"] for c in cells
                       if c.get("model") in models and c.get("dataset") == dataset
                       and "latent_traversal" in c.get("artifacts", {})})  # fmt: skip
    for v, v_stem in file_stems(variants).items():
        fig = latent_traversal(cells, dataset, v)
        out += _save(fig, Path(fig_dir) / f"{stem}-traversal-{v_stem}", suffixes)
    return out
