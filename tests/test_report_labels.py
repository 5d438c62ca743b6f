"""One set-up, one label: a model's variant reads the same on every dataset and in every table,
figure legend and caption of report.md; ablation rows name the other swept settings in the
same order as the variant labels."""

from __future__ import annotations

import re
from pathlib import Path

from test_report_cells import write_cell, write_manifest

from vaebench.report import build_report
from vaebench.report.content import collect


def sweep_run(root: Path) -> Path:
    """pca and vae over two datasets, ``--sweep latent_dim=2,8`` for both and
    ``--sweep vae.lr=...`` / ``vae.beta=...`` for vae only (given in that order)."""
    run = root / "r"
    write_manifest(run, ["pca", "vae"], ["toy", "toy2"])
    for dataset in ("toy", "toy2"):
        for seed in (0, 1):
            for latent in (2, 8):
                mse = 0.05 / latent + 0.001 * seed
                write_cell(run, "pca", dataset, seed, {"mse": mse},
                           params={"latent_dim": latent}, sweep={"latent_dim": latent})  # fmt: skip
                for lr in (0.001, 0.01):
                    for beta in (1.0, 4.0):
                        write_cell(run, "vae", dataset, seed, {"mse": mse + beta / 100 + lr},
                                   params={"latent_dim": latent, "beta": beta, "lr": lr},
                                   sweep={"latent_dim": latent, "vae.lr": lr,
                                          "vae.beta": beta})  # fmt: skip
    return run


def test_variant_labels_agree_across_datasets_tables_and_captions(tmp_path: Path) -> None:
    run = sweep_run(tmp_path)
    rep = collect([run])
    per_dataset = {d: set(rep.agg[rep.agg.dataset == d]["model"]) for d in ("toy", "toy2")}
    assert per_dataset["toy"] == per_dataset["toy2"]
    assert "pca (latent_dim=2)" in per_dataset["toy"]
    assert "vae (beta=4, latent_dim=8, lr=0.01)" in per_dataset["toy"]
    build_report([run], formats=["md"])
    page = (run / "report.md").read_text(encoding="utf-8").replace("\\_", "_")
    shown = set(re.findall(r"\b(?:pca|vae) \([^)]*\)", page))
    # a label on the page is a variant, or a variant without the one parameter its ablation
    # table pivots; never the same settings in another order or another spelling
    lines = set()
    for variant in per_dataset["toy"]:
        model, inner = variant[:-1].split(" (", 1)
        parts = inner.split(", ")
        for i in range(len(parts)):
            rest = parts[:i] + parts[i + 1 :]
            lines.add(f"{model} ({', '.join(rest)})" if rest else model)
    assert shown <= per_dataset["toy"] | lines, sorted(shown - per_dataset["toy"] - lines)
    assert "vae (beta=1, latent_dim=2)" in shown  # a row of the lr ablation, names sorted
    assert "vae (latent_dim=2, beta=1)" not in page
