"""Tables and figures of the two claim pages of issue 22, from their stored runs.

    python docs/make_baselines_claim_pages.py iwae       # results/iwae-claim/
    python docs/make_baselines_claim_pages.py samplers   # results/samplers-claim/ (digits,
                                                         # fashion-mnist: each run found)

Writes, beside the page's README: ``summary.csv`` (mean, std, n over seeds), ``tables.md``
(mean ± std and every seed's value) and ``figures/*.png`` (every seed a point, the mean a line).
Reads only the stored cell files (``vaebench.load_results``); trains and evaluates nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import vaebench  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / "results"
SAMPLERS = ("prior", "gaussian", "gmm", "two-stage")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _fmt(v: float, d: int) -> str:
    return "n/a" if pd.isna(v) else f"{v:.{d}f}"


def _summary(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()


def _points(ax, df: pd.DataFrame, groups: list[str], metric: str, title: str) -> None:
    for i, g in enumerate(groups):
        vals = df[(df["group"] == g) & (df["metric"] == metric)]["value"].dropna()
        if vals.empty:
            continue
        ax.hlines(vals.mean(), i - 0.3, i + 0.3, color="0.3")  # the mean; axes not from 0
        ax.plot([i] * len(vals), vals, "o", color="C0", ms=4)
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    ax.set_title(title, fontsize=9)


def iwae_page() -> None:
    out = ROOT / "iwae-claim"
    runs = {
        "digits": "Binarised digits (`binarize=fixed`, seed 0), all 359 test images",
        "fashion-mnist": "Binarised Fashion-MNIST (`binarize=fixed`, seed 0, `--subset 2000`), "
        "a fixed choice of 500 of its 2000 test images",
    }
    lines = ["# IWAE claim: every number", ""]
    summaries = []
    fig, axes = plt.subplots(len(runs), 2, figsize=(8, 3.2 * len(runs)), squeeze=False)
    for row, (name, what) in enumerate(runs.items()):
        if not (out / name).is_dir():
            continue
        df = vaebench.load_results(out / name)
        df = df[df["metric"].isin(["iwae_nll", "elbo", "active_units"])].copy()
        # a run of iwae with one K names the variant "iwae": show its K
        ks = {c: c for c in set(df["variant"])}
        if "iwae" in ks:
            ks["iwae"] = "iwae (k=50)"
        df["group"] = df["variant"].map(ks)
        groups = ["vae", "iwae (k=1)", "iwae (k=5)", "iwae (k=50)"]
        order = [v for v in groups if v in set(df["group"])]
        s = _summary(df, ["group", "metric"])
        s.insert(0, "dataset", name)
        summaries.append(s)
        lines += [f"## {name}", "", f"{what}; mean ± std over seeds, then each seed.", "",
                  "| model | IWAE NLL (K=1000), nats | test ELBO, nats | active units (of 10) "
                  "| seeds |", "|---|---|---|---|---|"]  # fmt: skip
        for g in order:
            cells = []
            for m, d in (("iwae_nll", 2), ("elbo", 2), ("active_units", 0)):
                r = s[(s["group"] == g) & (s["metric"] == m)]
                cells.append(f"{_fmt(r['mean'].iloc[0], d)} ± {_fmt(r['std'].iloc[0], d)}"
                             if not r.empty else "n/a")  # fmt: skip
            n = int(s[(s["group"] == g)]["count"].max())
            lines.append(f"| {g} | " + " | ".join(cells) + f" | {n} |")
        lines += ["", "Per seed:", "",
                  "| model | seed | IWAE NLL | ELBO | active units |", "|---|---|---|---|---|"]  # fmt: skip
        for g in order:
            sub = df[df["group"] == g].pivot_table(index="seed", columns="metric", values="value")
            for seed, r in sub.iterrows():
                lines.append(f"| {g} | {seed} | {_fmt(r.get('iwae_nll'), 2)} | "
                             f"{_fmt(r.get('elbo'), 2)} | {_fmt(r.get('active_units'), 0)} |")  # fmt: skip
        lines.append("")
        _points(axes[row][0], df, order, "iwae_nll", f"{name}: test IWAE NLL, K=1000 (nats, lower "
                "is better)")  # fmt: skip
        _points(axes[row][1], df, order, "active_units", f"{name}: active units (of 10)")
    pd.concat(summaries).to_csv(out / "summary.csv", index=False)
    _write(out / "tables.md", "\n".join(lines))
    fig.tight_layout()
    (out / "figures").mkdir(exist_ok=True)
    fig.savefig(out / "figures" / "nll-active-units.png", dpi=120)
    plt.close(fig)


SAMPLER_RUNS = {
    "digits": "Digits test split",
    "fashion-mnist": "Fashion-MNIST (`--subset 2000`) test images",
}


def _counts(run: Path) -> tuple[int, int]:
    """(real, generated) image counts of the FD scores stored in a run's cell files."""
    for cell in sorted((run / "cells").glob("*.json")):
        d = json.loads(cell.read_text()).get("evaluations", {}).get("fd", {}).get("details", {})
        if "n_real" in d:
            return int(d["n_real"]), int(d["n_generated"])
    raise SystemExit(f"{run}: no cell file with an FD score")


def samplers_page() -> None:
    out = ROOT / "samplers-claim"
    lines = ["# Ex-post samplers claim: every number", ""]
    summaries = []
    for name, what in SAMPLER_RUNS.items():
        if not (out / name).is_dir():
            continue
        lines += _samplers_dataset(out, name, what, summaries)
    pd.concat(summaries).to_csv(out / "summary.csv", index=False)
    _write(out / "tables.md", "\n".join(lines) + "\n")


def _samplers_dataset(out: Path, name: str, what: str, summaries: list) -> list[str]:
    df = vaebench.load_results(out / name)
    df = df[df["metric"].str.contains("@", regex=False)].copy()
    df[["value_name", "sampler"]] = df["metric"].str.split("@", n=1, expand=True)
    models = [m for m in ["ae", "rae", "wae", "vae", "vamp"] if m in set(df["model"])]
    s = _summary(df, ["model", "value_name", "sampler"])
    s.insert(0, "dataset", name)
    summaries.append(s)
    n_real, n_gen = _counts(out / name)
    lines = [f"## {name}", "",
             f"{what} ({n_real} real images, {n_gen} generated per model and sampler), "
             "mean ± std over seeds (n/a: the model has no prior).", ""]  # fmt: skip
    for value, d, title in (("fd", 2, "FD (lower is better)"),
                            ("kid", 4, "KID (lower is better)"),
                            ("prdc_precision", 3, "precision (higher is better)"),
                            ("prdc_recall", 3, "recall (higher is better)"),
                            ("prdc_density", 3, "density (1 when the distributions match)"),
                            ("prdc_coverage", 3, "coverage (higher is better)")):  # fmt: skip
        lines += [f"### {name}: {title}", "", "| model | " + " | ".join(SAMPLERS) + " |",
                  "|---|" + "---|" * len(SAMPLERS)]  # fmt: skip
        for m in models:
            cells = []
            for smp in SAMPLERS:
                r = s[(s["model"] == m) & (s["value_name"] == value) & (s["sampler"] == smp)]
                ok = not r.empty and not pd.isna(r["mean"].iloc[0])
                cells.append(f"{_fmt(r['mean'].iloc[0], d)} ± {_fmt(r['std'].iloc[0], d)}"
                             if ok else "n/a")  # fmt: skip
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    seeds = sorted(set(df["seed"]))
    lines += [f"### {name}: FD per seed", "",
              "| model | sampler | " + " | ".join(f"seed {x}" for x in seeds) + " |",
              "|---|---|" + "---|" * len(seeds)]  # fmt: skip
    for m in models:
        for smp in SAMPLERS:
            r = df[(df["model"] == m) & (df["value_name"] == "fd") & (df["sampler"] == smp)]
            vals = [_fmt(v, 2) for v in r.sort_values("seed")["value"]]
            lines.append(f"| {m} | {smp} | " + " | ".join(vals) + " |")
    lines.append("")
    df["group"] = df["model"] + " / " + df["sampler"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, value, title in ((axes[0], "fd", f"{name}: FD (lower is better)"),
                             (axes[1], "prdc_recall", f"{name}: recall (higher is better)")):  # fmt: skip
        sub = df[df["value_name"] == value].copy()
        sub["metric"] = value
        groups = [f"{m} / {smp}" for m in models for smp in SAMPLERS]
        _points(ax, sub, groups, value, title)
        ax.tick_params(axis="x", labelsize=6)
    fig.tight_layout()
    (out / "figures").mkdir(exist_ok=True)
    fig.savefig(out / "figures" / f"{name}-fd-recall.png", dpi=120)
    plt.close(fig)
    return lines


if __name__ == "__main__":
    which = sys.argv[1:] or ["iwae", "samplers"]
    for name in which:
        {"iwae": iwae_page, "samplers": samplers_page}[name]()
