"""Tables, reference rows and figures for results/lecture-claim/README.md, from stored results.

Run from the repository root after the runs (see README.md):

    python docs/make_lecture_claim_page.py

Reads the stored cells of results/lecture-claim/latent-sweep (moons regimes x latent sizes x
seeds) and of the lines runs (lines/, lines-conv/); no model is loaded or trained.
Writes, next to results/lecture-claim/: summary.csv (mean, std, n over seeds per dataset x model x
latent size x metric), references.csv
(the same metrics for two reference "models" scored by the same metric code: a pixel cross-fade
and an oracle that decodes the true image at the interpolated factor), tables.md, and the
figures in figures/ (PNG only).
It lives in docs/ because results/ holds data, tables and figures only.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vaebench.metric import EvalContext
from vaebench.metrics.acai import AcaiInterpolation, LectureMidpoint, factor_spec
from vaebench.metrics.interpolation import PathInterpolation
from vaebench.plugins import get_registry
from vaebench.results import load_cells
from vaebench.tidy import load_results

HERE = Path(__file__).resolve().parent.parent / "results" / "lecture-claim"
SWEEP = HERE / "latent-sweep"  # moons regimes x latent sizes x seeds
MAIN_LATENT = 10  # the models' default latent size: the page's main tables
#: The ACAI lines benchmark beside the paper's Table 1 (lines-vs-acai.md): run folder and the
#: latent size of its cells shown in each table (64 is the paper's code size).
LINES = {
    "mlp, latent 10": (HERE / "lines", 10),
    "mlp, latent 64": (HERE / "lines", 64),
    "conv, latent 64": (HERE / "lines-conv", 64),
}
MODELS = ["pca", "ae", "noisy", "dae", "vae"]
MOONS = ["moons", "moons-gap", "moons-lecture"]
MIDPOINT = ["midpoint_phase", "midpoint_phase_error", "midpoint_mse", "midpoint_cosine",
            "midpoint_realism", "midpoint_endpoint_mse"]  # fmt: skip
AGGREGATE = ["mean_distance", "smoothness", "factor_path_error", "pairs_midpoint_mse",
             "path_length_ratio", "path_step_ratio", "midpoint_nn_ratio", "mse"]  # fmt: skip


class _Reference:
    """Reference 'models' through the Model interface: ``pixels`` (code = image, so latent
    interpolation is a pixel cross-fade) and ``oracle`` (code = the true factor, read off a table
    of the known images; decode renders the true image at the code, so linear mixing moves the
    factor evenly -- for angles possibly the long way round)."""

    def __init__(self, kind: str, ds) -> None:
        self.kind, self.ds, self.device = kind, ds, torch.device("cpu")
        self.spec = factor_spec(ds)
        images, factors = [ds.x_test], [ds.factors_test[:, 0].double()]
        if self.spec.name == "phase":  # the lecture's full and half moon
            images.append(ds.render(np.array([1.0, 0.5])))
            factors.append(torch.tensor([1.0, 0.5], dtype=torch.float64))
        self.table = torch.cat([x.reshape(x.shape[0], -1) for x in images]).double()
        self.f = torch.cat(factors)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "pixels":
            return x.reshape(x.shape[0], -1)
        hit = torch.cdist(x.reshape(x.shape[0], -1).double(), self.table).argmin(1)
        return self.f[hit][:, None].float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.kind == "pixels":
            return z.reshape(z.shape[0], *self.ds.shape)
        f = z[:, 0].double()
        if self.spec.period is not None:
            f = self.spec.low + torch.remainder(f - self.spec.low, self.spec.period)
        else:
            f = f.clamp(self.spec.low, self.spec.high)
        return self.ds.render(f.numpy())


def references(datasets: list[str], seeds: list[int], eval_opts: dict) -> pd.DataFrame:
    reg = get_registry()
    rows = []
    for name in datasets:
        ds = reg.dataset(name).spec.load()
        for kind, label in (("pixels", "pixel cross-fade"), ("oracle", "oracle (true images)")):
            model = _Reference(kind, ds)
            for seed in seeds:
                ctx = EvalContext(seed=seed, device=torch.device("cpu"), options=dict(eval_opts))
                vals: dict[str, float] = {}
                for metric in (AcaiInterpolation(), PathInterpolation(), LectureMidpoint()):
                    if metric.applies_to(model, ds) is True:  # else a reason
                        # the metric's own random stream, as in the runner: the same pairs
                        vals.update(metric.evaluate(model, ds, ctx.for_metric(metric.name)))
                for k, v in vals.items():
                    rows.append({"dataset": name, "model": label, "seed": seed, "metric": k,
                                 "value": v})  # fmt: skip
    frame = pd.DataFrame(rows)
    out = frame.groupby(["dataset", "model", "metric"], sort=False)["value"].agg(
        mean="mean", std="std", n="count"
    )
    return out.reset_index()


def fmt(mean: float, std: float, n: int, decimals: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if n < 2 or std is None or math.isnan(std):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


DECIMALS = {"midpoint_phase": 3, "midpoint_phase_error": 3, "midpoint_mse": 4,
            "midpoint_cosine": 1, "midpoint_realism": 2, "midpoint_endpoint_mse": 5,
            "mean_distance": 2, "smoothness": 3, "factor_path_error": 3,
            "pairs_midpoint_mse": 4, "path_length_ratio": 2, "path_step_ratio": 2,
            "midpoint_nn_ratio": 1, "mse": 5}  # fmt: skip


def table(agg: pd.DataFrame, refs: pd.DataFrame, dataset: str, metrics: list[str]) -> str:
    sub = pd.concat([agg[agg["dataset"] == dataset], refs[refs["dataset"] == dataset]])
    order = [m for m in MODELS if m in set(sub["model"])]
    order += [m for m in dict.fromkeys(refs["model"]) if m in set(sub["model"])]
    lines = ["| model | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for m in order:
        cells = []
        for k in metrics:
            r = sub[(sub["model"] == m) & (sub["metric"] == k)]
            if r.empty:
                cells.append("–")
            else:
                r = r.iloc[0]
                cells.append(fmt(r["mean"], r["std"], int(r["n"]), DECIMALS.get(k, 3)))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _aggregate(frame: pd.DataFrame, keys: tuple[str, ...] = ("dataset", "model")) -> pd.DataFrame:
    """Tidy results -> mean, std (ddof=1), n and unit per ``keys`` x metric."""
    return (
        frame.groupby([*keys, "metric"], sort=False)
        .agg(mean=("value", "mean"), std=("value", "std"), n=("value", "count"),
             unit=("unit", "first"))
        .reset_index()
    )  # fmt: skip


def _latent(cells: list[dict]) -> dict[str, int]:
    """config_hash -> latent_dim of each finished cell."""
    return {c["config_hash"]: int(c["config"]["params"]["latent_dim"]) for c in cells
            if c["status"] == "ok" and "latent_dim" in c["config"]["params"]}  # fmt: skip


def _phase_vs_latent(frame: pd.DataFrame, refs: pd.DataFrame, path: Path) -> list[Path]:
    """One panel per moons regime: estimated midpoint phase against latent size per model,
    mean over seeds (line) and every seed (points); the true 3/4 moon and the pixel cross-fade
    as horizontal references."""
    from vaebench.report.figures import _style, model_colors, save

    sub = frame[frame["metric"] == "midpoint_phase"]
    sizes = sorted(sub["latent_dim"].unique())
    pos = {d: i for i, d in enumerate(sizes)}
    colors = model_colors(MODELS)
    with _style() as Figure:
        fig = Figure(figsize=(10.5, 3.4))
        axes = fig.subplots(1, len(MOONS), sharey=True)
        for ax, ds in zip(axes, MOONS, strict=True):
            d = sub[sub["dataset"] == ds]
            for k, m in enumerate(MODELS):
                dm = d[d["model"] == m]
                if dm.empty:
                    continue
                off = (k - (len(MODELS) - 1) / 2) * 0.07
                x = dm["latent_dim"].map(pos) + off
                ax.scatter(x, dm["value"], s=9, color=colors[m], alpha=0.55, linewidths=0)
                mean = dm.groupby("latent_dim")["value"].mean()
                ax.plot([pos[i] + off for i in mean.index], mean.values, "-o", ms=3.5,
                        color=colors[m], label=m)  # fmt: skip
            fade = refs[(refs["dataset"] == ds) & (refs["model"] == "pixel cross-fade")
                        & (refs["metric"] == "midpoint_phase")]["mean"]  # fmt: skip
            ax.axhline(0.75, color="black", lw=1, ls="--", label="true ¾ moon")
            if not fade.empty:
                ax.axhline(
                    float(fade.iloc[0]), color="grey", lw=1, ls=":", label="pixel cross-fade"
                )
            ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
            ax.set_xlabel("latent size")
            ax.set_title(ds)
            ax.set_ylim(-0.02, 1.02)
        axes[0].set_ylabel("estimated phase of the\ndecoded code midpoint")
        axes[-1].legend(loc="lower right", fontsize=7, frameon=False)
        fig.tight_layout()
    return save(fig, path)


def _load(path: Path) -> tuple[list[dict], pd.DataFrame]:
    """Finished cells of a run folder and its tidy results with a ``latent_dim`` column."""
    cells = [c for c in load_cells(path) if c["status"] == "ok"]
    latent = _latent(cells)
    frame = load_results(path)
    frame["latent_dim"] = frame["config_hash"].map(latent)
    frame = frame[frame["latent_dim"].notna()].astype({"latent_dim": int})
    return [c for c in cells if c["config_hash"] in latent], frame


def main() -> None:
    sweep_cells, sweep = _load(SWEEP)
    latent = _latent(sweep_cells)
    frame = sweep[sweep["latent_dim"] == MAIN_LATENT]  # the page's main tables
    cells = [c for c in sweep_cells if latent[c["config_hash"]] == MAIN_LATENT]
    loaded = {path: _load(path) for path, _ in LINES.values() if path.is_dir()}
    loaded = {path: got for path, got in loaded.items() if got[0]}  # runs with finished cells
    lines = {name: _aggregate(loaded[path][1][loaded[path][1]["latent_dim"] == size])
             for name, (path, size) in LINES.items() if path in loaded}  # fmt: skip
    agg = _aggregate(frame)
    by_size = _aggregate(sweep, ("dataset", "model", "latent_dim"))
    pd.concat(
        [by_size.assign(run=SWEEP.name)]
        + [a.assign(run=LINES[n][0].name, latent_dim=LINES[n][1]) for n, a in lines.items()]
    ).to_csv(HERE / "summary.csv", index=False, float_format="%.6g")
    seeds = sorted({int(c["seed"]) for c in cells})
    eval_opts = _eval_opts(cells)
    moons = [d for d in MOONS if d in set(frame["dataset"])]  # those run
    refs = references(moons, seeds, eval_opts)
    line_refs = None
    if loaded:
        line_cells = next(iter(loaded.values()))[0]
        line_seeds = sorted({int(c["seed"]) for c in line_cells})
        line_refs = references(["lines"], line_seeds, _eval_opts(line_cells))
    pd.concat([refs, line_refs]).to_csv(HERE / "references.csv", index=False,
                                        float_format="%.6g")  # fmt: skip

    per_seed = frame[frame["metric"] == "midpoint_phase"].pivot_table(
        index=["dataset", "model"], columns="seed", values="value"
    )
    n = len(seeds)
    out = [f"Moons: latent size {MAIN_LATENT} (the models' default), seeds "
           f"{', '.join(map(str, seeds))}; the other sizes in the last section.", ""]  # fmt: skip
    for ds in moons:
        out += [f"## {ds}", "",
                f"Single pair (full -> half), mean ± std over {n} seeds:", "",
                table(agg, refs, ds, MIDPOINT), "",
                "midpoint_phase per seed:", "",
                per_seed.loc[ds].round(3).to_markdown(), "",
                f"Over {eval_opts['n_pairs']} random test pairs, mean ± std over {n} seeds:", "",
                table(agg, refs, ds, AGGREGATE), ""]  # fmt: skip
    out += ["## Midpoint phase against latent size", "",
            f"Estimated phase of the decoded full/half-moon code midpoint (ideal 0.75), mean ± std "
            f"over {n} seeds, then every seed.", ""]  # fmt: skip
    sizes = sorted(by_size["latent_dim"].unique())
    for ds in moons:
        out += [f"### {ds}", "", "| model | " + " | ".join(f"latent {d}" for d in sizes) + " |",
                "|---" * (len(sizes) + 1) + "|"]  # fmt: skip
        ph = by_size[(by_size["dataset"] == ds) & (by_size["metric"] == "midpoint_phase")]
        for m in MODELS:
            row = []
            for d in sizes:
                r = ph[(ph["model"] == m) & (ph["latent_dim"] == d)]
                row.append("–" if r.empty else fmt(r["mean"].iloc[0], r["std"].iloc[0],
                                                    int(r["n"].iloc[0]), 3))  # fmt: skip
            out.append(f"| {m} | " + " | ".join(row) + " |")
        seeds_tab = sweep[(sweep["dataset"] == ds) & (sweep["metric"] == "midpoint_phase")]
        seeds_tab = seeds_tab.pivot_table(index=["model", "latent_dim"], columns="seed",
                                          values="value").reindex(MODELS, level=0)  # fmt: skip
        seeds_tab.columns = [f"seed {c}" for c in seeds_tab.columns]
        out += ["", seeds_tab.round(2).reset_index().to_markdown(index=False), ""]
    for name, a in lines.items():
        out += [f"## lines: {name}", "",
                f"Over {eval_opts['n_pairs']} random test pairs, mean ± std over seeds:", "",
                table(a, line_refs, "lines", AGGREGATE), ""]  # fmt: skip
    (HERE / "tables.md").write_text("\n".join(out) + "\n", encoding="utf-8")

    from vaebench.report.figures import interpolation_strips, model_colors, save
    from vaebench.report.interpolation_figures import draw

    colors = model_colors(MODELS)
    figs = HERE / "figures"
    made = _phase_vs_latent(sweep, refs, figs / "midpoint-phase-vs-latent")
    for ds in moons:
        made += draw(cells, ds, MODELS, colors, figs)
        made += save(interpolation_strips(cells, ds, MODELS), figs / f"{ds}-interpolation")
    if "mlp, latent 10" in lines:
        path, size = LINES["mlp, latent 10"]
        lc = [c for c in loaded[path][0] if c["config"]["params"]["latent_dim"] == size]
        made += save(interpolation_strips(lc, "lines", MODELS), figs / "lines-interpolation")
    for p in made:
        if p.suffix != ".png":
            p.unlink()  # PNG only in the repository
    print((HERE / "tables.md").read_text(encoding="utf-8"))


def _eval_opts(cells: list[dict]) -> dict:
    """The options the interpolation metrics ran with (n_pairs, n_steps, interpolation), as
    stored with the first finished cell's evaluations; the reference rows use the same."""
    cell = next(c for c in cells if c["status"] == "ok")
    opts: dict = {}
    for name in ("interpolation", "acai", "midpoint"):
        opts.update((cell["evaluations"].get(name) or {}).get("options") or {})
    return opts


if __name__ == "__main__":
    main()
