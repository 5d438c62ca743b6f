"""Figures from stored results (matplotlib, headless Agg): bars, Pareto scatter, image grids,
interpolation strips, 2-D latent scatter and training curves.

Every figure is written as PNG and PDF, sized for a paper column (~3.3 in wide, 8 pt text),
with fixed metadata so that regenerating from the same results gives the same bytes. One colour
per model across all figures (:func:`model_colors`). Nothing here loads a model or a dataset:
all inputs are cell records (:func:`vaebench.results.load_cells`) and aggregates
(:func:`vaebench.report.stats.aggregate`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vaebench.report.escape import plot_text
from vaebench.report.files import save_figure
from vaebench.results import decode_images

__all__ = [
    "COLUMN_WIDTH",
    "model_colors",
    "metric_bars",
    "pareto_scatter",
    "reconstruction_grid",
    "interpolation_strips",
    "latent_scatter",
    "training_curves",
    "latent_points",
]

#: Width of one paper column in inches (two-column conference formats: 3.25-3.4 in).
COLUMN_WIDTH = 3.3

#: Built-in models keep the same colour in every report, whatever else is in it.
FIXED_SLOTS = {"pca": 0, "ae": 1, "noisy": 2, "vae": 3, "dae": 4}

_STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "figure.titlesize": 8.5,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.dpi": 200,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "pdf.fonttype": 42,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "vaebench",
}


@contextlib.contextmanager
def _style() -> Iterator[Any]:
    """matplotlib (Agg backend) with the report's style, without touching global state."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    with plt.rc_context(_STYLE):
        yield plt


def model_colors(models: Sequence[str]) -> dict[str, Any]:
    """A colour per model: built-in models get fixed tab10 slots (:data:`FIXED_SLOTS`), the
    others the remaining slots in the given order (cycling after ten)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    free = [i for i in range(10) if i not in FIXED_SLOTS.values()]
    out: dict[str, Any] = {}
    k = 0
    for m in models:
        if m in FIXED_SLOTS:
            out[m] = cmap(FIXED_SLOTS[m])
        else:
            out[m] = cmap(free[k % len(free)])
            k += 1
    return out


def _save(fig: Any, path: Path) -> list[Path]:
    """Write ``path`` as PNG and PDF atomically with fixed metadata; close the figure (see
    :func:`vaebench.report.files.save_figure`)."""
    return save_figure(fig, path)


def _label(metric: str, unit: str, higher_is_better: Any) -> str:
    arrow = {True: " ↑", False: " ↓"}.get(higher_is_better, "")
    return plot_text(f"{metric}{arrow}" + (f" [{unit}]" if unit else ""))


def _spread(row: pd.Series, interval: str) -> float:
    if interval == "ci":
        return (float(row["ci_high"]) - float(row["ci_low"])) / 2
    return float(row["std"])


# ----------------------------------------------------------------------------- bars


def metric_bars(
    agg: pd.DataFrame,
    frame: pd.DataFrame,
    dataset: str,
    metrics: Sequence[str],
    models: Sequence[str],
    colors: dict[str, Any],
    path: Path,
    interval: str = "std",
    title: str = "",
) -> list[Path]:
    """One small panel per metric: a bar per model at its mean, an error bar (std or CI
    half-width) and the individual seeds as dots; bold-table winners are not marked here.
    Metrics spanning more than two decades are drawn on a log axis."""
    sub = agg[(agg["dataset"] == dataset) & agg["metric"].isin(metrics)]
    metrics = [m for m in metrics if m in set(sub["metric"])]
    if not metrics:
        return []
    seeds = frame[(frame["dataset"] == dataset) & frame["metric"].isin(metrics)]
    seeds = seeds.drop_duplicates(["config_hash", "metric"])
    ncols = 2 if len(metrics) > 1 else 1
    nrows = math.ceil(len(metrics) / ncols)
    with _style() as plt:
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(COLUMN_WIDTH, 1.45 * nrows + 0.3), squeeze=False
        )
        for k, metric in enumerate(metrics):
            ax = axes[k // ncols, k % ncols]
            rows = sub[sub["metric"] == metric].set_index("model")
            names = [m for m in models if m in rows.index]
            x = np.arange(len(names))
            means = np.array([float(rows.loc[m, "mean"]) for m in names])
            errs = np.array([_spread(rows.loc[m], interval) for m in names])
            errs = np.where(np.isfinite(errs), errs, 0.0)
            ax.bar(x, means, yerr=errs, color=[colors[m] for m in names], width=0.7,
                   error_kw={"elinewidth": 0.8, "capsize": 2}, zorder=2)  # fmt: skip
            pts = seeds[seeds["metric"] == metric]
            for i, m in enumerate(names):
                vals = pts[pts["variant"] == m]["value"].to_numpy(dtype=float)
                vals = vals[np.isfinite(vals)]
                if len(vals):
                    jitter = np.linspace(-0.15, 0.15, len(vals)) if len(vals) > 1 else [0.0]
                    ax.scatter(i + np.asarray(jitter), vals, s=4, color="black", zorder=3,
                               linewidths=0)  # fmt: skip
            positive = means[np.isfinite(means)]
            if len(positive) and (positive > 0).all() and positive.max() / positive.min() > 100:
                ax.set_yscale("log")
            first = rows.iloc[0]
            label = _label(metric, "", first["higher_is_better"])
            unit = plot_text(first["unit"] or "")
            ax.set_title(f"{label}\n[{unit}]" if unit else label, pad=3, fontsize=7)
            ax.set_xticks(x)
            ax.set_xticklabels([plot_text(n) for n in names], rotation=30 if max(map(len, names)) > 5 else 0,
                               ha="right" if max(map(len, names)) > 5 else "center")  # fmt: skip
            ax.tick_params(axis="x", length=0)
            ax.grid(axis="y", lw=0.3, alpha=0.5, zorder=0)
        for k in range(len(metrics), nrows * ncols):
            axes[k // ncols, k % ncols].set_visible(False)
        what = "95 % CI" if interval == "ci" else "± std"
        fig.suptitle(f"{plot_text(title or dataset)} (mean {what}; dots: seeds)", y=1.0)
        fig.tight_layout(pad=0.3, h_pad=0.6, w_pad=0.8)
        return _save(fig, path)


# ----------------------------------------------------------------------------- Pareto


def pareto_scatter(
    agg: pd.DataFrame,
    dataset: str,
    quality: str,
    throughput: str,
    models: Sequence[str],
    colors: dict[str, Any],
    path: Path,
    interval: str = "std",
) -> list[Path]:
    """Quality (y) against throughput (x, log axis) with error bars; models on the Pareto front
    (no other model is at least as good on both and better on one) are filled and joined by a
    dashed line, dominated models are hollow."""
    from vaebench.report.stats import pareto_front

    sub = agg[agg["dataset"] == dataset]
    q = sub[sub["metric"] == quality].set_index("model")
    t = sub[sub["metric"] == throughput].set_index("model")
    names = [m for m in models if m in q.index and m in t.index]
    if len(names) < 2 or q.empty or t.empty:
        return []
    q_hib = bool(q.iloc[0]["higher_is_better"])
    t_hib = bool(t.iloc[0]["higher_is_better"])
    points = {m: (float(t.loc[m, "mean"]), float(q.loc[m, "mean"])) for m in names}
    front = pareto_front(points, higher_x=t_hib, higher_y=q_hib)
    with _style() as plt:
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.4))
        for m in names:
            x, y = points[m]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            on = m in front
            ax.errorbar(x, y, xerr=_finite(_spread(t.loc[m], interval)),
                        yerr=_finite(_spread(q.loc[m], interval)), fmt="o", ms=5,
                        color=colors[m], mfc=colors[m] if on else "white", mew=1.2,
                        elinewidth=0.8, capsize=2, zorder=3)  # fmt: skip
            ax.annotate(plot_text(m), (x, y), xytext=(6, 4), textcoords="offset points", fontsize=7,
                        color=colors[m], zorder=4,
                        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none",
                              "alpha": 0.8})  # fmt: skip
        fx = sorted((points[m] for m in front), key=lambda p: p[0])
        if len(fx) > 1:
            ax.plot([p[0] for p in fx], [p[1] for p in fx], ls="--", lw=0.8, color="0.4",
                    zorder=1)  # fmt: skip
        xs = np.array([points[m][0] for m in names])
        ys = np.array([points[m][1] for m in names])
        _value_axis(ax, "x", xs[np.isfinite(xs)], decades=1.0)
        _value_axis(ax, "y", ys[np.isfinite(ys)], decades=2.0)
        ax.set_xlabel(_label(throughput, str(t.iloc[0]["unit"]), t_hib))
        ax.set_ylabel(_label(quality, str(q.iloc[0]["unit"]), q_hib))
        ax.set_title(f"{plot_text(dataset)}: quality vs throughput (filled: Pareto front)", pad=3)
        ax.grid(lw=0.3, alpha=0.5)
        ax.margins(x=0.15, y=0.15)
        fig.tight_layout(pad=0.3)
        return _save(fig, path)


def _finite(v: float) -> float:
    return v if math.isfinite(v) else 0.0


def _tick_text(value: float, _pos: Any = None) -> str:
    """Short tick label: ``20k``, ``1.5M`` from 10^4 on, else the shortest ``%g`` form."""
    from matplotlib.ticker import EngFormatter

    if abs(value) >= 1e4:
        return EngFormatter(sep="")(value)
    return f"{value:g}"


def _value_axis(ax: Any, which: str, values: np.ndarray, decades: float) -> None:
    """Scale and ticks of a value axis whose labels never overlap.

    Positive values spanning more than ``decades`` powers of ten get a log axis with labelled
    ticks at 1, 2 and 5 x 10^k (only at 10^k when the data span more than 2.5 decades), short
    labels (:func:`_tick_text`: ``20k``, ``0.05``) and unlabelled minor ticks; otherwise a linear
    axis with at most five labelled ticks. (Matplotlib's default log axis labels every minor tick
    when the data span less than a decade: ``2×10⁴3×10⁴...`` run into each other.)
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    if len(values) and (values > 0).all() and values.max() / values.min() > 10**decades:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        lo, hi = math.log10(values.min()), math.log10(values.max())
        subs = (1.0, 2.0, 5.0) if hi - lo < 2.5 else (1.0,)
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10) * 1.0))
        axis.set_major_formatter(FuncFormatter(_tick_text))
        axis.set_minor_formatter(NullFormatter())
    else:
        axis.set_major_locator(MaxNLocator(nbins=4, min_n_ticks=2))
        if len(values) and np.abs(values).max() >= 1e4:
            axis.set_major_formatter(FuncFormatter(_tick_text))


# ----------------------------------------------------------------------------- images


def _as_hw(img: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` -> ``(H, W)`` or ``(H, W, 3)`` for imshow."""
    if img.shape[0] == 1:
        return img[0]
    return np.transpose(img[:3], (1, 2, 0))


def image_rows(
    rows: list[tuple[str, np.ndarray]],
    path: Path,
    title: str,
    col_labels: list[str] | None = None,
    label_colors: dict[str, Any] | None = None,
) -> list[Path]:
    """One labelled row of images per entry ``(label, images (N, C, H, W) in [0, 1])``,
    scaled to a paper column."""
    n_cols = max(r[1].shape[0] for r in rows)
    label_w = 0.55
    size = min(0.45, (COLUMN_WIDTH - label_w) / n_cols)
    top = 0.22 + (0.13 if col_labels else 0.0)  # inches for the title (and column labels)
    width, height = label_w + size * n_cols, size * len(rows) + top
    with _style() as plt:
        fig, axes = plt.subplots(len(rows), n_cols, figsize=(width, height), squeeze=False)
        fig.subplots_adjust(left=label_w / width, right=1.0, bottom=0.0, top=1 - top / height,
                            wspace=0.04, hspace=0.04)  # fmt: skip
        for i, (label, imgs) in enumerate(rows):
            for j in range(n_cols):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                for s in ax.spines.values():
                    s.set_visible(False)
                if j < imgs.shape[0]:
                    ax.imshow(_as_hw(imgs[j]), cmap="gray", vmin=0, vmax=1,
                              interpolation="nearest")  # fmt: skip
                if j == 0:
                    color = (label_colors or {}).get(label, "black")
                    ax.set_ylabel(plot_text(label), rotation=0, ha="right", va="center",
                                  color=color)  # fmt: skip
                if i == 0 and col_labels and j < len(col_labels) and col_labels[j]:
                    ax.set_title(plot_text(col_labels[j]), fontsize=6, pad=2)
        fig.suptitle(title, y=1.0, va="top")  # callers escape names in it
        return _save(fig, path)


def _first_cell(
    cells: Sequence[dict], label: str, dataset: str, key: str = "variant"
) -> dict | None:
    ok = [
        c
        for c in cells
        if c.get(key, c["model"]) == label and c["dataset"] == dataset and c["status"] == "ok"
    ]
    return min(ok, key=lambda c: c["seed"]) if ok else None


def reconstruction_grid(
    cells: Sequence[dict],
    dataset: str,
    models: Sequence[str],
    path: Path,
    colors: dict[str, Any] | None = None,
) -> list[Path]:
    """Test images (top row) and each model's reconstructions of them (artifacts
    ``recon_originals`` / ``recon_outputs`` of each model's lowest seed)."""
    rows: list[tuple[str, np.ndarray]] = []
    seeds = set()
    for m in models:
        c = _first_cell(cells, m, dataset)
        if c is None or "recon_outputs" not in c.get("artifacts", {}):
            continue
        if not rows:
            rows.append(("original", decode_images(c["artifacts"]["recon_originals"])))
        rows.append((m, decode_images(c["artifacts"]["recon_outputs"])))
        seeds.add(c["seed"])
    if not rows:
        return []
    seed = f"seed {min(seeds)}" if len(seeds) == 1 else "lowest seed"
    return image_rows(rows, path, f"{plot_text(dataset)}: test images and reconstructions ({seed})",
                      label_colors=colors)  # fmt: skip


def interpolation_strips(
    cells: Sequence[dict],
    dataset: str,
    models: Sequence[str],
    path: Path,
    colors: dict[str, Any] | None = None,
) -> list[Path]:
    """Decoding along a straight line between the codes of the same two test images, one row
    per model (artifact ``interp_strip`` ``(T, C, H, W)``; first and last: the endpoints'
    reconstructions)."""
    rows = []
    for m in models:
        c = _first_cell(cells, m, dataset)
        if c is None or "interp_strip" not in c.get("artifacts", {}):
            continue
        rows.append((m, decode_images(c["artifacts"]["interp_strip"])))
    if not rows:
        return []
    n = max(r[1].shape[0] for r in rows)
    labels = [""] * n
    labels[0], labels[-1] = "t=0", "t=1"
    return image_rows(rows, path, f"{plot_text(dataset)}: decoding along the line between two codes",
                      col_labels=labels, label_colors=colors)  # fmt: skip


# ----------------------------------------------------------------------------- latent


def latent_points(
    artifact: dict[str, Any], latent_dim: int | None = None
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """``(points (N, k), labels (N,) or None, axis names (k,))`` from a ``latent_2d`` artifact,
    ``k = 2``, or ``k = 1`` for a 1-dimensional code (never an invented second axis).

    Accepts ``{"xy": [[x, y], ...]}`` (already 2-D) or ``{"z": [[...], ...]}`` (any dimension:
    projected on its first two principal components here when it has more than two), with
    optional ``"labels"`` (ints: classes; floats: a factor), ``"projection"`` (how ``xy`` was
    obtained: ``"pca"``, or ``"identity"`` for a code of at most 2 dimensions) and ``"dim"``
    (the code's dimension). A code is 1-D when ``dim`` or ``latent_dim`` (the cell's
    ``model_info``) is 1, when ``z`` has one column, or -- neither given -- when an identity
    ``xy`` has a second coordinate that is exactly 0 everywhere (how 1-D codes are stored).
    """
    labels = artifact.get("labels")
    lab = np.asarray(labels) if labels is not None else None
    dim = artifact.get("dim", latent_dim)
    if "xy" in artifact:
        xy = np.asarray(artifact["xy"], dtype=float).reshape(-1, 2)
        proj = artifact.get("projection", "")
        if proj == "pca":
            return xy, lab, ("PC 1", "PC 2")
        if proj in ("", "identity", "none"):
            padded = dim is None and len(xy) > 0 and bool((xy[:, 1] == 0).all())
            if dim == 1 or padded:
                return xy[:, :1], lab, ("z",)
            return xy, lab, ("z 1", "z 2")
        return xy, lab, (f"{proj} 1", f"{proj} 2")
    z = np.asarray(artifact["z"], dtype=float)
    z = z.reshape(z.shape[0], -1)
    if z.shape[1] == 1:
        return z, lab, ("z",)
    if z.shape[1] == 2:
        return z, lab, ("z 1", "z 2")
    centred = z - z.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    # fix the sign of each component (largest loading positive) so the plot is reproducible
    signs = np.sign(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(1)])
    signs[signs == 0] = 1
    xy = centred @ (vt[:2].T * signs)
    var = s**2 / max((s**2).sum(), 1e-300)
    return xy, lab, (f"PC 1 ({var[0] * 100:.0f} %)", f"PC 2 ({var[1] * 100:.0f} %)")


def _latent_dim(cell: dict[str, Any]) -> int | None:
    dim = (cell.get("model_info") or {}).get("latent_dim")
    return dim if isinstance(dim, int) and not isinstance(dim, bool) else None


def _strip_offsets(n: int) -> np.ndarray:
    """Fixed vertical offsets in [-0.3, 0.3] that spread the points of a 1-D strip."""
    return (np.random.default_rng(0).random(n) - 0.5) * 0.6


def latent_scatter(
    cells: Sequence[dict],
    dataset: str,
    models: Sequence[str],
    path: Path,
    colors: dict[str, Any] | None = None,
) -> list[Path]:
    """Test codes, one panel per model (needs the ``latent_2d`` artifact).

    2-D codes (or their first two principal components): a scatter coloured by label (class:
    qualitative colours; continuous factor: viridis with a colour bar). 1-D codes: the code on
    the x axis against the class (a strip per class) or the factor value (y axis), or a
    histogram of the codes when there are no labels -- never an invented second code axis.
    """
    panels = []
    for m in models:
        c = _first_cell(cells, m, dataset)
        if c is None or "latent_2d" not in c.get("artifacts", {}):
            continue
        panels.append((m, *latent_points(c["artifacts"]["latent_2d"], _latent_dim(c))))
    if not panels:
        return []
    labels_all = [p[2] for p in panels if p[2] is not None]
    discrete = bool(labels_all) and all(
        np.issubdtype(lab.dtype, np.integer) or np.all(np.mod(lab, 1) == 0) for lab in labels_all
    )
    classes = sorted({int(v) for lab in labels_all for v in lab}) if discrete else []
    discrete = discrete and len(classes) <= 20
    ncols = min(len(panels), 2 if len(panels) <= 4 else 3)
    nrows = math.ceil(len(panels) / ncols)
    side = COLUMN_WIDTH / ncols
    with _style() as plt:
        import matplotlib

        fig, axes = plt.subplots(nrows, ncols, figsize=(COLUMN_WIDTH, side * nrows + 0.5),
                                 squeeze=False)  # fmt: skip
        cmap = matplotlib.colormaps["tab20" if len(classes) > 10 else "tab10"]
        sc = None
        for k, (m, pts, lab, names) in enumerate(panels):
            ax = axes[k // ncols, k % ncols]
            color = (colors or {}).get(m, "0.3")
            if pts.shape[1] == 1:
                sc = _one_dim_panel(ax, pts[:, 0], lab, discrete, classes, cmap, color) or sc
            else:
                if lab is None:
                    ax.scatter(pts[:, 0], pts[:, 1], s=2, color=color, linewidths=0)
                elif discrete:
                    idx = np.searchsorted(classes, lab.astype(int))
                    ax.scatter(pts[:, 0], pts[:, 1], s=2, c=[cmap(i % cmap.N) for i in idx],
                               linewidths=0)  # fmt: skip
                else:
                    sc = ax.scatter(pts[:, 0], pts[:, 1], s=2, c=lab.astype(float),
                                    cmap="viridis", linewidths=0)  # fmt: skip
                ax.set_yticks([])
                ax.set_ylabel(names[1], fontsize=6, labelpad=1)
                ax.set_aspect("equal", adjustable="datalim")
            ax.set_title(plot_text(m), pad=2)
            ax.set_xticks([])
            ax.set_xlabel(names[0] + (" (1-D code)" if len(names) == 1 else ""), fontsize=6,
                          labelpad=1)  # fmt: skip
        for k in range(len(panels), nrows * ncols):
            axes[k // ncols, k % ncols].set_visible(False)
        if discrete:
            from matplotlib.lines import Line2D

            handles = [Line2D([], [], ls="", marker="o", ms=3, color=cmap(i % cmap.N), label=str(c))
                       for i, c in enumerate(classes)]  # fmt: skip
            fig.legend(handles=handles, loc="lower center", ncol=min(len(classes), 10),
                       frameon=False, handletextpad=0.1, columnspacing=0.6,
                       bbox_to_anchor=(0.5, -0.02), title="label")  # fmt: skip
        elif sc is not None:
            fig.colorbar(sc, ax=axes.ravel().tolist(), shrink=0.6, label="label")
        proj = (
            " (first two principal components of the codes where latent_dim > 2)"
            if any(p[3][0].startswith("PC") for p in panels)
            else ""
        )
        fig.suptitle(f"{plot_text(dataset)}: test codes{proj}", y=1.0)
        return _save(fig, path)


def _one_dim_panel(
    ax: Any,
    z: np.ndarray,
    lab: np.ndarray | None,
    discrete: bool,
    classes: list[int],
    cmap: Any,
    color: Any,
) -> Any:
    """Draw 1-D codes ``z`` on ``ax``: a strip per class, codes against a continuous label, or
    a histogram; returns the colour-mapped scatter (for a colour bar) or None."""
    if lab is None:
        ax.hist(z, bins=min(30, max(5, len(z) // 10)), color=color, alpha=0.8)
        ax.set_yticks([])
        ax.set_ylabel("count", fontsize=6, labelpad=1)
        return None
    if discrete:
        idx = np.searchsorted(classes, lab.astype(int))
        ax.scatter(z, idx + _strip_offsets(len(z)), s=2, c=[cmap(i % cmap.N) for i in idx],
                   linewidths=0)  # fmt: skip
        ax.set_yticks(range(len(classes)) if len(classes) <= 10 else [])
        if len(classes) <= 10:
            ax.set_yticklabels([str(c) for c in classes], fontsize=5)
        ax.set_ylabel("label", fontsize=6, labelpad=1)
        return None
    sc = ax.scatter(z, lab.astype(float), s=2, c=lab.astype(float), cmap="viridis", linewidths=0)
    ax.set_ylabel("label", fontsize=6, labelpad=1)
    ax.tick_params(axis="y", labelsize=5)
    return sc


# ----------------------------------------------------------------------------- training


def _loss_unit(cells: Sequence[dict]) -> str:
    losses = {c.get("config", {}).get("params", {}).get("recon_loss") for c in cells}
    return "nats/image" if losses == {"bce"} else "per image"


def training_curves(
    cells: Sequence[dict],
    dataset: str,
    models: Sequence[str],
    colors: dict[str, Any],
    path: Path,
) -> list[Path]:
    """Training loss per epoch (mean over seeds, band = min..max over seeds) for every model
    with more than one epoch of history. Losses of different models are different objectives
    (a VAE's includes its KL term), so compare shapes, not levels, across models."""
    series = []
    used = []
    for m in models:
        mine = [c for c in cells
                if c.get("variant", c["model"]) == m and c["dataset"] == dataset
                and c["status"] == "ok" and len(c.get("history", {}).get("loss", [])) > 1]  # fmt: skip
        if not mine:
            continue
        curves = [c["history"]["loss"] for c in mine]
        length = min(len(c) for c in curves)
        arr = np.array([c[:length] for c in curves], dtype=float)
        series.append((m, arr))
        used += mine
    if not series:
        return []
    with _style() as plt:
        from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, ScalarFormatter

        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.2))
        for m, arr in series:
            x = np.arange(1, arr.shape[1] + 1)
            ax.plot(x, np.nanmean(arr, 0), color=colors[m],
                    label=f"{plot_text(m)} (n={arr.shape[0]})",
                    lw=1.1)  # fmt: skip
            if arr.shape[0] > 1:
                ax.fill_between(x, np.nanmin(arr, 0), np.nanmax(arr, 0), color=colors[m],
                                alpha=0.2, lw=0)  # fmt: skip
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"training loss [{_loss_unit(used)}]")
        finite = np.concatenate([a[np.isfinite(a)] for _, a in series])
        if len(finite) and (finite > 0).all() and finite.max() / finite.min() > 3:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{plot_text(dataset)}: training loss (mean, band: min–max)", pad=3)
        ax.legend(frameon=False)
        ax.grid(lw=0.3, alpha=0.5)
        fig.tight_layout(pad=0.3)
        return _save(fig, path)
