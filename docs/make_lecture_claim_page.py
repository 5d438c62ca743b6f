"""Tables, reference rows and figures for results/lecture-claim/README.md, from stored results.

Run from the repository root after the runs (see README.md):

    python docs/make_lecture_claim_page.py

Reads results/lecture-claim/run (cells only; no model is loaded or trained) and writes, next to
results/lecture-claim/: summary.csv (mean, std, n over seeds per dataset x model x metric), references.csv
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
RUN = HERE / "run"
RUN64 = HERE / "lines-latent64"  # lines with --latent-dim 64 (the paper's code size)
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
                    if metric.applies_to(model, ds):
                        vals.update(metric.evaluate(model, ds, ctx))
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


def _aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """Tidy results -> mean, std (ddof=1), n and unit per dataset x model x metric."""
    return (
        frame.groupby(["dataset", "model", "metric"], sort=False)
        .agg(mean=("value", "mean"), std=("value", "std"), n=("value", "count"),
             unit=("unit", "first"))
        .reset_index()
    )  # fmt: skip


def main() -> None:
    cells = load_cells(RUN)
    frame = load_results(RUN)
    agg = _aggregate(frame)
    agg64 = _aggregate(load_results(RUN64)) if RUN64.is_dir() else None
    both = [agg.assign(run=RUN.name)] + (
        [agg64.assign(run=RUN64.name)] if agg64 is not None else []
    )
    pd.concat(both).to_csv(HERE / "summary.csv", index=False, float_format="%.6g")
    datasets = [d for d in [*MOONS, "lines"] if d in set(agg["dataset"])]
    seeds = sorted({int(c["seed"]) for c in cells if c["status"] == "ok"})
    eval_opts = next(c["config"]["eval"] for c in cells if c["status"] == "ok")
    refs = references(datasets, seeds, eval_opts)
    refs.to_csv(HERE / "references.csv", index=False, float_format="%.6g")

    per_seed = frame[frame["metric"] == "midpoint_phase"].pivot_table(
        index=["dataset", "model"], columns="seed", values="value"
    )
    out = []
    for ds in datasets:
        out += [f"## {ds}", ""]
        if ds in MOONS:
            out += ["Single pair (full -> half), mean ± std over seeds:", "",
                    table(agg, refs, ds, MIDPOINT), "",
                    "midpoint_phase per seed:", "",
                    per_seed.loc[ds].round(3).to_markdown(), ""]  # fmt: skip
        out += [f"Over {eval_opts['n_pairs']} random test pairs, mean ± std over seeds:", "",
                table(agg, refs, ds, AGGREGATE), ""]  # fmt: skip
    if agg64 is not None:
        out += ["## lines, --latent-dim 64", "",
                f"Over {eval_opts['n_pairs']} random test pairs, mean ± std over seeds:", "",
                table(agg64, refs, "lines", AGGREGATE), ""]  # fmt: skip
    (HERE / "tables.md").write_text("\n".join(out) + "\n", encoding="utf-8")

    from vaebench.report.figures import interpolation_strips, model_colors, save
    from vaebench.report.interpolation_figures import draw

    colors = model_colors(MODELS)
    figs = HERE / "figures"
    for ds in datasets:
        made = draw(cells, ds, MODELS, colors, figs)
        made += save(interpolation_strips(cells, ds, MODELS), figs / f"{ds}-interpolation")
        for p in made:
            if p.suffix != ".png":
                p.unlink()  # PNG only in the repository
    print((HERE / "tables.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
