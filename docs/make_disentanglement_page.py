"""Tables and figures of results/disentanglement/ from the run's tidy table.

Reads ``results/disentanglement/run/tables/tidy.csv`` (written by the run's report: one row per
cell and metric) and writes, next to README.md:

- ``summary.csv``: mean, std (ddof 1) and n over seeds per model variant and metric;
- ``tables.md``: every metric per variant, mean ± std and the per-seed values; the spread of a
  variant's seeds against the gap between variants; the rank agreement (Spearman) of the
  metrics over all cells;
- ``figures/scores.png``: every disentanglement metric per variant, one point per seed.

Usage: ``python docs/make_disentanglement_page.py [RUN_DIR OUT_DIR]`` (defaults: the page's run
and folder).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1] / "results" / "disentanglement"
METRICS = [
    "betavae", "factorvae", "mig", "dci_disentanglement", "dci_completeness",
    "dci_informativeness", "sap", "modularity", "explicitness", "bce", "mse",
]  # fmt: skip
SCORES = METRICS[:9]
ORDER = ["vae (beta=1)", "vae (beta=4)", "vae (beta=16)", "beta-tcvae", "factorvae", "dip-vae"]


def _load(run: Path) -> pd.DataFrame:
    tidy = pd.read_csv(run / "tables" / "tidy.csv")
    tidy = tidy[tidy["metric"].isin(METRICS)]
    return tidy.pivot_table(index=["variant", "seed"], columns="metric", values="value")


def _order(variants) -> list[str]:
    known = [v for v in ORDER if v in variants]
    return known + sorted(v for v in variants if v not in known)


def main(run: Path = ROOT / "run", out: Path = ROOT) -> None:
    wide = _load(run)
    variants = _order(wide.index.get_level_values("variant").unique())
    cols = [m for m in METRICS if m in wide.columns]
    rows, lines = [], ["# Disentanglement on sprites: all numbers", ""]
    lines += ["Mean ± std (ddof 1) over seeds; per-seed values in brackets (seed order 0, 1, 2).",
              ""]  # fmt: skip
    lines += ["| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for v in variants:
        sub = wide.loc[v]
        cells = []
        for m in cols:
            vals = sub[m].dropna()
            mean, std = vals.mean(), vals.std(ddof=1)
            rows.append({"variant": v, "metric": m, "mean": mean, "std": std, "n": len(vals)})
            per = ", ".join(f"{x:.3f}" for x in vals)
            cells.append(f"{mean:.3f} ± {std:.3f} [{per}]")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    summary = pd.DataFrame(rows)
    summary.to_csv(out / "summary.csv", index=False, float_format="%.6g")

    # seed spread against the spread of the variant means
    lines += ["", "## Seeds against models", ""]
    lines += ["Per metric: the largest std over seeds of one variant, the mean of those stds, and "
              "the range (max - min) of the variant means.", ""]  # fmt: skip
    lines += [
        "| metric | max seed std | mean seed std | range of variant means |",
        "|---|---|---|---|",
    ]
    for m in SCORES:
        if m not in cols:
            continue
        s = summary[summary["metric"] == m]
        lines.append(f"| {m} | {s['std'].max():.3f} | {s['std'].mean():.3f} | "
                     f"{s['mean'].max() - s['mean'].min():.3f} |")  # fmt: skip

    # rank agreement of the metrics over all cells
    scored = [m for m in SCORES if m in cols]
    corr = wide[scored].rank().corr(method="pearson")  # Spearman = Pearson on ranks
    n = len(wide)
    lines += ["", f"## Agreement of the metrics (Spearman rank correlation over the {n} cells)", ""]
    lines += ["| | " + " | ".join(scored) + " |", "|---|" + "---|" * len(scored)]
    for a in scored:
        lines.append(f"| {a} | " + " | ".join(f"{corr.loc[a, b]:+.2f}" for b in scored) + " |")
    (out / "tables.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(scored), figsize=(2.0 * len(scored), 3.2), sharey=False)
    for ax, m in zip(np.atleast_1d(axes), scored, strict=True):
        for i, v in enumerate(variants):
            vals = wide.loc[v][m].dropna().to_numpy()
            ax.scatter(np.full(len(vals), i), vals, s=12, color=f"C{i}")
            ax.hlines(vals.mean(), i - 0.3, i + 0.3, color=f"C{i}")
        ax.set_title(m, fontsize=8)
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels(variants, rotation=90, fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("sprites, conv, latent 10: every seed (points) and the mean (line)", fontsize=9)
    fig.tight_layout()
    (out / "figures").mkdir(exist_ok=True)
    fig.savefig(out / "figures" / "scores.png", dpi=120, metadata={"Software": None})


if __name__ == "__main__":
    import sys

    main(*(Path(a) for a in sys.argv[1:3]))
