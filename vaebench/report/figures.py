"""Figures from stored results: bars, Pareto scatter, image grids, interpolation strips, 2-D
latent scatter, sample grids, training curves and sweep lines.

Every public drawing function returns a :class:`matplotlib.figure.Figure` (or ``None`` when the
results hold nothing to draw), so a notebook can show it; saving is a separate step,
:func:`save` (PNG and PDF, atomically, with fixed metadata so that regenerating from the same
results gives the same bytes)::

    from vaebench.report import content, figures
    rep = content.collect(["results/my-run"])
    fig = figures.metric_bars(rep.agg, rep.frame, "digits", ["mse", "psnr"], rep.models)
    figures.save(fig, "digits-bars")          # digits-bars.png, digits-bars.pdf

Figures are built with :class:`matplotlib.figure.Figure` directly, not through pyplot: drawing
one never changes the pyplot state or backend of the caller. They are sized for a paper column
(~3.3 in wide, 8 pt text). One colour per model across all figures (:func:`model_colors`;
``colors`` defaults to it). Nothing here loads a model or a dataset: all inputs are cell records
(:func:`vaebench.results.load_cells`) and aggregates (:func:`vaebench.report.stats.aggregate`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vaebench.record import decode_images
from vaebench.report.escape import plot_text
from vaebench.report.files import save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

__all__ = [
    "COLUMN_WIDTH",
    "save",
    "model_colors",
    "metric_bars",
    "pareto_scatter",
    "reconstruction_grid",
    "interpolation_strips",
    "latent_scatter",
    "training_curves",
    "sample_grid",
    "sweep_lines",
    "latent_points",
]

#: Width of one paper column in inches (two-column conference formats: 3.25-3.4 in).
COLUMN_WIDTH = 3.3

#: Built-in models keep the same colour in every report, whatever else is in it.
FIXED_SLOTS = {"pca": 0, "ae": 1, "noisy": 2, "vae": 3, "dae": 4}

_STYLE: dict[RcKeyType, Any] = {
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
    # tick labels carry the whole number: no offset ("+9.88e-2") and no "1e-5" multiplier at
    # the axis end, which a reader of a paper figure cannot be expected to add back
    "axes.formatter.useoffset": False,
    "axes.formatter.limits": (-1000, 1000),
}


@contextlib.contextmanager
def _style() -> Iterator[Any]:
    """The report's style for drawing and saving; yields :class:`matplotlib.figure.Figure`.
    Global matplotlib state (backend, rcParams) is restored afterwards."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_STYLE):
        yield Figure


def save(fig: Any, path: str | Path, suffixes: Sequence[str] = (".png", ".pdf")) -> list[Path]:
    """Write ``fig`` as ``path.png`` and ``path.pdf`` (``suffixes``; a ``.png``/``.pdf`` suffix of ``path`` is
    dropped first) through :func:`vaebench.report.files.save_figure`: atomically, never through a link, with
    fixed metadata, in the report's style. ``None`` (nothing drawn) writes nothing. Returns the
    written paths."""
    if fig is None:
        return []
    with _style():
        return save_figure(fig, Path(path), suffixes)


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


def _colors(colors: dict[str, Any] | None, models: Sequence[str]) -> dict[str, Any]:
    out = model_colors(models)
    out.update(colors or {})
    return out


def _label(metric: str, unit: str, higher_is_better: Any) -> str:
    arrow = {True: " ↑", False: " ↓"}.get(higher_is_better, "")
    return plot_text(f"{metric}{arrow}" + (f" [{unit}]" if unit else ""))


def _spread(row: pd.Series, interval: str, finite: bool = False) -> float:
    """Half-width of the error bar of an aggregate row; ``finite``: NaN and inf read 0."""
    if interval == "ci":
        v = (float(row["ci_high"]) - float(row["ci_low"])) / 2
    else:
        v = float(row["std"])
    return 0.0 if finite and not math.isfinite(v) else v


# ----------------------------------------------------------------------------- bars


def metric_bars(
    agg: pd.DataFrame,
    frame: pd.DataFrame,
    dataset: str,
    metrics: Sequence[str],
    models: Sequence[str],
    colors: dict[str, Any] | None = None,
    interval: str = "std",
    title: str = "",
) -> Figure | None:
    """One small panel per metric: a bar per model at its mean, an error bar (std or CI
    half-width) and the individual seeds as dots; bold-table winners are not marked here.
    Metrics spanning more than two decades are drawn on a log axis. ``agg``: see
    :func:`vaebench.report.stats.aggregate`; ``frame``: the tidy frame (seed dots). ``None``
    when no metric has a value on ``dataset``."""
    colors = _colors(colors, models)
    sub = agg[(agg["dataset"] == dataset) & agg["metric"].isin(metrics)]
    metrics = [m for m in metrics if m in set(sub["metric"])]
    if not metrics:
        return None
    seeds = frame[(frame["dataset"] == dataset) & frame["metric"].isin(metrics)]
    seeds = seeds.drop_duplicates(["config_hash", "metric"])
    ncols = 2 if len(metrics) > 1 else 1
    nrows = math.ceil(len(metrics) / ncols)
    with _style() as Fig:
        fig = Fig(figsize=(COLUMN_WIDTH, 1.45 * nrows + 0.3))
        axes = fig.subplots(nrows, ncols, squeeze=False)
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
        return fig


# ----------------------------------------------------------------------------- Pareto


def pareto_scatter(
    agg: pd.DataFrame,
    dataset: str,
    quality: str,
    throughput: str,
    models: Sequence[str],
    colors: dict[str, Any] | None = None,
    interval: str = "std",
) -> Figure | None:
    """Quality (y) against throughput (x, log axis) with error bars; models on the Pareto front
    (no other model is at least as good on both and better on one) are filled and joined by a
    dashed line, dominated models are hollow. ``None`` with fewer than two models having
    both."""
    from vaebench.report.stats import pareto_front

    colors = _colors(colors, models)
    sub = agg[agg["dataset"] == dataset]
    q = sub[sub["metric"] == quality].set_index("model")
    t = sub[sub["metric"] == throughput].set_index("model")
    names = [m for m in models if m in q.index and m in t.index]
    if len(names) < 2 or q.empty or t.empty:
        return None
    q_hib = bool(q.iloc[0]["higher_is_better"])
    t_hib = bool(t.iloc[0]["higher_is_better"])
    points = {m: (float(t.loc[m, "mean"]), float(q.loc[m, "mean"])) for m in names}
    front = pareto_front(points, higher_x=t_hib, higher_y=q_hib)
    with _style() as Fig:
        fig = Fig(figsize=(COLUMN_WIDTH, 2.4))
        ax = fig.subplots()
        for m in names:
            x, y = points[m]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            on = m in front
            ax.errorbar(x, y, xerr=_spread(t.loc[m], interval, finite=True),
                        yerr=_spread(q.loc[m], interval, finite=True), fmt="o", ms=5,
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
        return fig


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
        axis.set_minor_locator(LogLocator(base=10, subs=(2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)))
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
    title: str,
    col_labels: list[str] | None = None,
    label_colors: dict[str, Any] | None = None,
) -> Figure:
    """One labelled row of images per entry ``(label, images (N, C, H, W) in [0, 1])``,
    scaled to a paper column."""
    n_cols = max(r[1].shape[0] for r in rows)
    label_w = 0.55
    size = min(0.45, (COLUMN_WIDTH - label_w) / n_cols)
    top = 0.22 + (0.13 if col_labels else 0.0)  # inches for the title (and column labels)
    width, height = label_w + size * n_cols, size * len(rows) + top
    with _style() as Fig:
        fig = Fig(figsize=(width, height))
        axes = fig.subplots(len(rows), n_cols, squeeze=False)
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
        return fig


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
    colors: dict[str, Any] | None = None,
) -> Figure | None:
    """Test images (top row) and each model's reconstructions of them (artifacts
    ``recon_originals`` / ``recon_outputs`` of each model's lowest seed); ``None`` when no
    model stored them."""
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
        return None
    seed = f"seed {min(seeds)}" if len(seeds) == 1 else "lowest seed"
    return image_rows(rows, f"{plot_text(dataset)}: test images and reconstructions ({seed})",
                      label_colors=_colors(colors, models))  # fmt: skip


def interpolation_strips(
    cells: Sequence[dict],
    dataset: str,
    models: Sequence[str],
    colors: dict[str, Any] | None = None,
) -> Figure | None:
    """Decoding along a straight line between the codes of the same two test images, one row
    per model (artifact ``interp_strip`` ``(T, C, H, W)``; first and last: the endpoints'
    reconstructions); ``None`` when no model stored it."""
    rows = []
    for m in models:
        c = _first_cell(cells, m, dataset)
        if c is None or "interp_strip" not in c.get("artifacts", {}):
            continue
        rows.append((m, decode_images(c["artifacts"]["interp_strip"])))
    if not rows:
        return None
    n = max(r[1].shape[0] for r in rows)
    labels = [""] * n
    labels[0], labels[-1] = "t=0", "t=1"
    return image_rows(rows, f"{plot_text(dataset)}: decoding along the line between two codes",
                      col_labels=labels, label_colors=_colors(colors, models))  # fmt: skip


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
    colors: dict[str, Any] | None = None,
) -> Figure | None:
    """Test codes, one panel per model (needs the ``latent_2d`` artifact; ``None`` without).

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
        return None
    colors = _colors(colors, models)
    labels_all = [p[2] for p in panels if p[2] is not None]
    discrete = bool(labels_all) and all(
        np.issubdtype(lab.dtype, np.integer) or np.all(np.mod(lab, 1) == 0) for lab in labels_all
    )
    classes = sorted({int(v) for lab in labels_all for v in lab}) if discrete else []
    discrete = discrete and len(classes) <= 20
    ncols = min(len(panels), 2 if len(panels) <= 4 else 3)
    nrows = math.ceil(len(panels) / ncols)
    side = COLUMN_WIDTH / ncols
    with _style() as Fig:
        import matplotlib

        fig = Fig(figsize=(COLUMN_WIDTH, side * nrows + 0.5))
        axes = fig.subplots(nrows, ncols, squeeze=False)
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
        return fig


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
    ax.set_ylabel("count" if lab is None else "label", fontsize=6, labelpad=1)
    if lab is None:
        ax.hist(z, bins=min(30, max(5, len(z) // 10)), color=color, alpha=0.8)
        ax.set_yticks([])
        return None
    if discrete:
        idx = np.searchsorted(classes, lab.astype(int))
        ax.scatter(z, idx + _strip_offsets(len(z)), s=2, c=[cmap(i % cmap.N) for i in idx],
                   linewidths=0)  # fmt: skip
        ax.set_yticks(range(len(classes)) if len(classes) <= 10 else [])
        if len(classes) <= 10:
            ax.set_yticklabels([str(c) for c in classes], fontsize=5)
        return None
    sc = ax.scatter(z, lab.astype(float), s=2, c=lab.astype(float), cmap="viridis", linewidths=0)
    ax.tick_params(axis="y", labelsize=5)
    return sc


# ----------------------------------------------------------------------------- samples


def sample_grid(
    cells: Sequence[dict],
    dataset: str,
    models: Sequence[str],
    colors: dict[str, Any] | None = None,
    per_row: int = 8,
) -> Figure | None:
    """Images drawn from each model's prior (artifact ``samples`` ``(N, C, H, W)`` of its
    lowest seed, stored by the ``reconstruction`` metric for models that can sample), in rows
    of ``per_row``; ``None`` when no model stored samples."""
    rows: list[tuple[str, np.ndarray]] = []
    seeds = set()
    for m in models:
        c = _first_cell(cells, m, dataset)
        if c is None or "samples" not in c.get("artifacts", {}):
            continue
        imgs = decode_images(c["artifacts"]["samples"])
        for k in range(0, imgs.shape[0], per_row):
            rows.append((m if k == 0 else "", imgs[k : k + per_row]))
        seeds.add(c["seed"])
    # with several samplers (eval.sampler=A,B): one row per (model, sampler)
    for m in models:
        c = _first_cell(cells, m, dataset) or {}
        arts = c.get("artifacts", {})
        for name in sorted(a for a in arts if a.startswith("samples@")):
            sampler = name.split("@", 1)[1]
            if sampler == "prior" and "samples" in arts:
                continue  # the prior's row is above
            rows.append((f"{m} ({sampler})", decode_images(arts[name])[:per_row]))
            seeds.add(c["seed"])
    if not rows:
        return None
    seed = f"seed {min(seeds)}" if len(seeds) == 1 else "lowest seed"
    what = "each model's prior" if all("(" not in r[0] for r in rows) else "each (model, sampler)"
    if what != "each model's prior":  # name the prior's rows too
        rows = [(f"{r[0]} (prior)" if r[0] and "(" not in r[0] else r[0], r[1]) for r in rows]
    return image_rows(rows, f"{plot_text(dataset)}: samples from {what} ({seed})",
                      label_colors=_colors(colors, models))  # fmt: skip


# ----------------------------------------------------------------------------- training


def _loss_unit(cells: Sequence[dict]) -> str:
    losses = {c.get("config", {}).get("params", {}).get("recon_loss") for c in cells}
    if losses == {"bce"}:
        return "nats/image"
    if losses == {"mse"}:
        return "squared error/image"
    return "per image"


#: Panels of :func:`training_curves`: (title, history keys tried in order, unit or None for
#: the reconstruction loss's unit). ``recon`` falls back to ``loss`` for models that log no
#: separate reconstruction term (their loss is the reconstruction loss).
CURVE_PANELS = (
    ("reconstruction term", ("recon", "loss"), None),
    ("KL term", ("kl",), "nats/image"),
    ("validation MSE", ("val_mse",), "per pixel"),
)


def _curves(cells: Sequence[dict], dataset: str, model: str, keys: Sequence[str]):
    """``(history key used, (n_seeds, epochs) array, cells)`` for one model, or None."""
    mine = [c for c in cells
            if c.get("variant", c["model"]) == model and c["dataset"] == dataset
            and c["status"] == "ok"]  # fmt: skip
    for key in keys:
        have = [c for c in mine if len((c.get("history") or {}).get(key) or []) > 1]
        if have:
            curves = [[v if isinstance(v, (int, float)) else np.nan for v in c["history"][key]]
                      for c in have]  # fmt: skip
            length = min(len(c) for c in curves)
            return key, np.array([c[:length] for c in curves], dtype=float), have
    return None


def training_curves(
    cells: Sequence[dict],
    dataset: str,
    models: Sequence[str],
    colors: dict[str, Any] | None = None,
) -> Figure | None:
    """Per-epoch training curves, one panel per quantity so that no two objectives share an
    axis: the reconstruction term (``history["recon"]``; models that log no separate term: their
    loss, marked "(loss)" in the legend), the KL term (``history["kl"]``, models with one) and,
    when a validation split was held out (``--val-fraction``), the validation MSE
    (``history["val_mse"]``). Lines are means over seeds, bands min..max; only models with more
    than one epoch. ``None`` when no model has a curve."""
    colors = _colors(colors, models)
    panels = []
    for title, keys, unit in CURVE_PANELS:
        series = []
        used: list[dict] = []
        for m in models:
            got = _curves(cells, dataset, m, keys)
            if got is not None:
                key, arr, have = got
                series.append((m, key, arr))
                used += have
        if series:
            panels.append((title, keys[0], unit or _loss_unit(used), series))
    if not panels:
        return None
    with _style() as Fig:
        from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, ScalarFormatter

        fig = Fig(figsize=(COLUMN_WIDTH, 1.55 * len(panels) + 0.45))
        axes = fig.subplots(len(panels), 1, squeeze=False, sharex=True)[:, 0]
        for ax, (title, main_key, unit, series) in zip(axes, panels, strict=True):
            for m, key, arr in series:
                x = np.arange(1, arr.shape[1] + 1)
                note = " (loss)" if key != main_key else ""
                ax.plot(x, np.nanmean(arr, 0), color=colors[m], lw=1.1,
                        label=f"{plot_text(m)}{note} (n={arr.shape[0]})")  # fmt: skip
                if arr.shape[0] > 1:
                    ax.fill_between(x, np.nanmin(arr, 0), np.nanmax(arr, 0), color=colors[m],
                                    alpha=0.2, lw=0)  # fmt: skip
            ax.set_ylabel(f"{title}\n[{unit}]", fontsize=7)
            finite = np.concatenate([a[np.isfinite(a)] for _, _, a in series])
            if len(finite) and (finite > 0).all() and finite.max() / finite.min() > 3:
                ax.set_yscale("log")
                ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.yaxis.set_major_formatter(ScalarFormatter())
                ax.yaxis.set_minor_formatter(NullFormatter())
            ax.legend(frameon=False, fontsize=6)
            ax.grid(lw=0.3, alpha=0.5)
        axes[-1].set_xlabel("epoch")
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.suptitle(f"{plot_text(dataset)}: training curves (mean over seeds, band: min–max)",
                     y=1.0)  # fmt: skip
        fig.tight_layout(pad=0.3, h_pad=0.5)
        return fig


# ----------------------------------------------------------------------------- sweeps


def sweep_lines(
    points: dict[str, pd.DataFrame],
    key: str,
    declarations: dict[str, dict[str, Any]],
    colors: dict[str, Any] | None = None,
    title: str = "",
) -> Figure | None:
    """A swept parameter against metrics: one panel per metric (``points[metric]``, a frame of
    :func:`vaebench.report.sweeps.sweep_points`), one line per model (and other swept
    settings) at the mean over seeds with ± std error bars, single seeds as dots; ``colors``
    maps line labels to colours (default: :func:`model_colors` of the lines). Numeric
    values on a linear axis (log when positive and spanning more than a decade), other values
    as categories. ``declarations[metric]``: ``unit`` and ``higher_is_better`` for the axis
    label. ``None`` when no panel has points."""
    from vaebench.report.sweeps import value_order
    from vaebench.tidy import format_setting

    points = {m: p for m, p in points.items() if not p.empty}
    if not points:
        return None
    lines = list(dict.fromkeys(ln for p in points.values() for ln in p["line"]))
    line_color = model_colors(lines)  # distinct colours; built-in model names keep theirs
    line_color.update({ln: c for ln, c in (colors or {}).items() if ln in line_color})
    values = value_order([v for p in points.values() for v in p["value"]])
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    pos = {repr(v): (float(v) if numeric else float(i)) for i, v in enumerate(values)}
    metrics = list(points)
    ncols = 2 if len(metrics) > 1 else 1
    nrows = math.ceil(len(metrics) / ncols)
    legend_h = 0.14 * math.ceil(len(lines) / 3) + 0.08
    height = 1.5 * nrows + 0.35 + legend_h
    with _style() as Fig:
        fig = Fig(figsize=(COLUMN_WIDTH, height))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for k, metric in enumerate(metrics):
            ax = axes[k // ncols, k % ncols]
            p = points[metric]
            for ln in lines:
                mine = p[p["line"] == ln]
                if mine.empty:
                    continue
                xs, means, stds = [], [], []
                for v in values:
                    ys = mine[mine["value"].map(repr) == repr(v)]["y"].to_numpy(dtype=float)
                    if len(ys):
                        xs.append(pos[repr(v)])
                        means.append(float(ys.mean()))
                        stds.append(float(ys.std(ddof=1)) if len(ys) > 1 else 0.0)
                        ax.scatter([pos[repr(v)]] * len(ys), ys, s=4, color=line_color[ln],
                                   alpha=0.6, linewidths=0, zorder=3)  # fmt: skip
                ax.errorbar(xs, means, yerr=stds, color=line_color[ln], lw=1.0, ms=3, fmt="-o",
                            capsize=2, elinewidth=0.8, label=plot_text(ln), zorder=2)  # fmt: skip
            decl = declarations.get(metric, {})
            ax.set_title(_label(metric, str(decl.get("unit") or ""), decl.get("higher_is_better")),
                         pad=3, fontsize=7)  # fmt: skip
            xv = np.array([pos[repr(v)] for v in values])
            if numeric and len(xv) and (xv > 0).all() and xv.max() / xv.min() > 10:
                ax.set_xscale("log")
            ax.set_xticks(xv)
            ax.set_xticklabels([plot_text(format_setting(v)) for v in values], fontsize=6)
            ax.minorticks_off()
            ax.set_xlabel(plot_text(key), fontsize=7)
            ax.grid(lw=0.3, alpha=0.5)
        for k in range(len(metrics), nrows * ncols):
            axes[k // ncols, k % ncols].set_visible(False)
        legend: dict[str, Any] = {}
        for ax in axes.ravel():
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                legend.setdefault(label, handle)
        fig.legend(list(legend.values()), list(legend), loc="lower center", frameon=False,
                   ncol=min(len(legend), 3), bbox_to_anchor=(0.5, 0.0))  # fmt: skip
        head = title or f"{key} sweep"
        fig.suptitle(f"{plot_text(head)} (mean ± std over seeds; dots: seeds)", y=1.0)
        fig.tight_layout(pad=0.3, h_pad=0.6, w_pad=0.8, rect=(0, legend_h / height, 1, 1))
        return fig
