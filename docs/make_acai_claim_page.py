"""Tables, reference rows and figures for results/acai-claim/README.md, from stored results.

Run from the repository root after the runs (see results/acai-claim/README.md):

    python docs/make_acai_claim_page.py

Reads the stored cells of results/acai-claim/lines (and of moons/ and fashion-mnist/ when they
exist); no model is loaded or trained. Writes, next to results/acai-claim/: summary.csv (mean,
std, n over seeds per dataset x model x metric), references.csv (a pixel cross-fade and the
true lines, scored by the same metric code on the same pairs), tables.md (our values beside the
ACAI paper's Table 1, per-seed values, representation metrics) and figures/ (PNG only).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_lecture_claim_page import _aggregate, _eval_opts, _load, fmt, references  # noqa: E402

HERE = Path(__file__).resolve().parent.parent / "results" / "acai-claim"
#: Our model -> the column of the ACAI paper's Table 1 (Berthelot et al., ICLR 2019).
COLUMNS = {"ae": "Baseline", "dropout-ae": "Dropout", "dae": "Denoising", "vae": "VAE",
           "aae": "AAE", "vqvae": "VQ-VAE", "acai": "ACAI"}  # fmt: skip
MODELS = list(COLUMNS)
#: Table 1, lines, Mean Distance (x 1e-3) and Smoothness: transcribed in
#: ../shared/REFERENCES.md, **unverified** against the paper itself.
PAPER = {"Baseline": (6.88, 0.44), "Dropout": (2.85, 0.74), "Denoising": (4.21, 0.66),
         "VAE": (1.21, 0.49), "AAE": (3.26, 0.14), "VQ-VAE": (5.41, 0.77),
         "ACAI": (0.24, 0.10)}  # fmt: skip
METRICS = ["mean_distance", "smoothness", "smoothness_undefined", "factor_path_error",
           "pairs_midpoint_mse", "mse", "probe_acc", "knn_acc", "cluster_acc"]  # fmt: skip
DECIMALS = {"mean_distance": 2, "smoothness": 3, "smoothness_undefined": 3,
            "factor_path_error": 3, "pairs_midpoint_mse": 4, "mse": 5, "probe_acc": 1,
            "knn_acc": 1, "cluster_acc": 1}  # fmt: skip
RUNS = ["lines", "moons", "fashion-mnist"]


def _value(agg: pd.DataFrame, model: str, metric: str) -> str:
    r = agg[(agg["model"] == model) & (agg["metric"] == metric)]
    if r.empty:
        return "–"
    r = r.iloc[0]
    return fmt(r["mean"], r["std"], int(r["n"]), DECIMALS.get(metric, 3))


def _table(agg: pd.DataFrame, refs: pd.DataFrame | None, metrics: list[str]) -> list[str]:
    rows = ["| model | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for m in MODELS:
        if m in set(agg["model"]):
            rows.append(f"| {m} | " + " | ".join(_value(agg, m, k) for k in metrics) + " |")
    if refs is not None:
        for m in dict.fromkeys(refs["model"]):
            rows.append(f"| {m} | " + " | ".join(_value(refs, m, k) for k in metrics) + " |")
    return rows


def _scatter(frame: pd.DataFrame, path: Path) -> list[Path]:
    """Mean Distance against Smoothness on lines: every seed (small points), the mean over
    seeds (large point) and the paper's Table 1 value (hollow square, unverified), one colour
    per model."""
    from vaebench.report.figures import _style, model_colors, save

    colors = model_colors(MODELS)
    md = frame[frame["metric"] == "mean_distance"].set_index(["model", "seed"])["value"]
    sm = frame[frame["metric"] == "smoothness"].set_index(["model", "seed"])["value"]
    with _style() as Figure:
        fig = Figure(figsize=(6.4, 4.4))
        ax = fig.subplots()
        for m in MODELS:
            if m not in md.index.get_level_values(0):
                continue
            x, y = md.loc[m], sm.reindex(md.loc[m].index.map(lambda s, m=m: (m, s)))
            ax.scatter(x.values, y.values, s=12, color=colors[m], alpha=0.5, linewidths=0)
            ax.scatter([x.mean()], [y.mean()], s=45, color=colors[m], label=m)
            px, py = PAPER[COLUMNS[m]]
            ax.scatter([px], [py], s=45, marker="s", facecolors="none", edgecolors=colors[m])
        ax.scatter([], [], s=45, marker="s", facecolors="none", edgecolors="black",
                   label="paper, Table 1 (unverified)")  # fmt: skip
        ax.set_xlabel("Mean Distance (×10⁻³, lower is better)")
        ax.set_ylabel("Smoothness (lower is better)")
        ax.set_title("lines: ours (filled; small = one seed) and the paper (hollow)")
        ax.legend(fontsize=7, frameon=False, loc="best")
        fig.tight_layout()
    return save(fig, path)


def main() -> None:
    from vaebench.report.figures import interpolation_strips, save

    runs = {name: _load(HERE / name) for name in RUNS if (HERE / name).is_dir()}
    runs = {name: got for name, got in runs.items() if got[0]}
    summary, refs_all, out = [], [], []
    figs = HERE / "figures"
    made: list[Path] = []
    for name, (cells, frame) in runs.items():
        agg = _aggregate(frame)
        summary.append(agg.assign(run=name))
        seeds = sorted({int(c["seed"]) for c in cells})
        datasets = sorted({c["dataset"] for c in cells})
        refs = None
        if name in ("lines", "moons"):
            refs = references(datasets, seeds, _eval_opts(cells))
            refs_all.append(refs)
        metrics = [k for k in METRICS if k in set(frame["metric"])]
        out += [f"## {name}", "", f"Mean ± std over seeds {', '.join(map(str, seeds))}:", ""]
        out += _table(agg, refs, metrics) + [""]
        if name == "lines":
            out += ["### Beside the ACAI paper's Table 1 (paper values transcribed, *unverified*)",
                    "", "| model | paper column | Mean Distance ×10⁻³, ours | Mean Distance, "
                    "paper | Smoothness, ours | Smoothness, paper |", "|---|---|---|---|---|---|"]  # fmt: skip
            for m in MODELS:
                col = COLUMNS[m]
                out.append(
                    f"| {m} | {col} | {_value(agg, m, 'mean_distance')} | {PAPER[col][0]} | "
                    f"{_value(agg, m, 'smoothness')} | {PAPER[col][1]} |"
                )
            out.append("")
            made += _scatter(frame, figs / "lines-table1")
        for k in ("mean_distance", "smoothness", "probe_acc", "cluster_acc"):
            if k in set(frame["metric"]):
                per = frame[frame["metric"] == k].pivot_table(
                    index="model", columns="seed", values="value"
                )
                per = per.reindex([m for m in MODELS if m in per.index])
                per.columns = [f"seed {c}" for c in per.columns]
                out += [f"{k} per seed:", "", per.round(DECIMALS[k]).to_markdown(), ""]
        for ds in datasets:
            made += save(interpolation_strips(cells, ds, MODELS), figs / f"{ds}-interpolation")
    pd.concat(summary).to_csv(HERE / "summary.csv", index=False, float_format="%.6g")
    if refs_all:
        pd.concat(refs_all).to_csv(HERE / "references.csv", index=False, float_format="%.6g")
    (HERE / "tables.md").write_text("\n".join(out) + "\n", encoding="utf-8")
    for p in made:
        if p.suffix != ".png":
            p.unlink()  # PNG only in the repository
    print((HERE / "tables.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
