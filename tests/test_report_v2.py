"""Report v2 (issues 10, 12, 13, 14): skipped cells, failed metrics, NaN values, warnings, the
glossary, the likelihood/representation/samples tables with their provenance, headline metrics,
figures as Figure objects, training curves, sample grids and sweeps -- on synthetic cells."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_report_cells import evaluation, write_cell, write_manifest

from vaebench.record import encode_images
from vaebench.report import build_report
from vaebench.report import figures as F
from vaebench.report.content import collect

EVIL = "<img src=x onerror=alert(1)>"
LIK_NOTE = (
    "Bernoulli likelihood of grey-level pixels: not a normalised density, so these are not "
    "log-likelihoods of the test images (Loaiza-Ganem & Cunningham 2019)"
)


def _likelihood(seed: int) -> dict:
    details = {"likelihood": "bernoulli", "normalised_density": False, "note": LIK_NOTE,
               "elbo_samples": 10}  # fmt: skip
    iwae = {"likelihood": "bernoulli", "normalised_density": False, "note": LIK_NOTE,
            "bound": "IWAE bound with K=7 importance samples", "k": 7}  # fmt: skip
    return {
        "elbo": evaluation(
            "elbo", {"elbo": -30.0 + seed, "elbo_kl": 2.0 + seed}, details=details
        ),  # fmt: skip
        "iwae": evaluation("iwae", {"iwae_nll": 29.0 - seed}, details=iwae),
    }


def _samples(fd: float, density: float, n: int, sampler: str) -> dict:
    details = {"sampler": sampler, "n_real": n, "n_generated": n,
               "feature_net": {"sha256": "ab" * 32, "test_accuracy": 0.93}}  # fmt: skip
    return {
        "fd": evaluation("fd", {"fd": fd}, details=details),
        "prdc": evaluation("prdc", {"prdc_density": density}, details=details),
    }


def rich_run(root: Path) -> Path:
    """pca, ae, vae x 2 seeds on "toy", plus a skipped model and a failed cell."""
    run = root / "rich"
    write_manifest(run, ["pca", "ae", "vae", "big", "broken"], ["toy"])
    not_app = evaluation("elbo", {}, status="not_applicable",
                         reason="needs a posterior q(z|x), which PCA does not state")  # fmt: skip
    for seed in (0, 1):
        common = {"mse": 0.02 + 0.01 * seed, "path_step_ratio": 1.01, "midpoint_nn_ratio": 0.9}
        rep = {"probe": evaluation("probe", {"probe_acc": 80.0 + seed},
                                   details={"codes": "code"})}  # fmt: skip
        if seed == 0:  # pca's probe came back NaN in seed 0, with the metric's reason
            rep = {"probe": evaluation("probe", {"probe_acc": None},
                                       nan={"probe_acc": f"the metric returned nan {EVIL}"},
                                       details={"codes": "code"})}  # fmt: skip
        write_cell(run, "pca", "toy", seed, {**common, "psnr": 15.0},
                   evaluations={"elbo": not_app, **rep,
                                **_samples(5.0 + seed, 0.8, 300, "expost")},
                   history={"loss": [0.01]})  # fmt: skip
        write_cell(run, "ae", "toy", seed, {**common, "mse": 0.01 + 0.001 * seed, "psnr": 20.0},
                   evaluations={"probe": evaluation("probe", {"probe_acc": 90.0 + seed}),
                                "knn": evaluation("knn", {}, status="failed",
                                                  reason=f"evaluate raised ValueError: {EVIL}",
                                                  plugin="myplugin 1.0 (my.metrics)"),
                                **_samples(1.0 + 0.1 * seed, 1.0, 100, "expost")},
                   history={"loss": [5.0, 3.0, 2.0], "recon": [5.0, 3.0, 2.0]},
                   warnings=[{"kind": "hook", "message": "plugin tracker raised in "
                              "vaebench_cell_finished: OSError: disk"},
                             {"kind": "metric_failed", "message": "metric 'knn' failed"}],
                   )  # fmt: skip
        write_cell(run, "vae", "toy", seed, {**common, "mse": 0.05, "psnr": None},
                   evaluations={**_likelihood(seed),
                                "probe": evaluation("probe", {"probe_acc": 70.0 + seed}),
                                **_samples(9.0 + seed, 1.4, 300, "prior")},
                   history={"loss": [9.0, 6.0, 5.0], "recon": [8.0, 5.0, 4.0],
                            "kl": [1.0, 1.0, 1.0], "val_mse": [0.1, 0.08, 0.07]},
                   artifacts={"samples": encode_images(np.linspace(0, 1, 64).reshape(
                       16, 1, 2, 2))} if seed == 0 else None,
                   warnings=[{"kind": "not_converged" if seed == 0 else "few_active_units",
                              "message": "loss fell by 12.0% over the last 2 of 3 epochs"
                              if seed == 0 else "only 0% of the code dimensions are active"},
                             {"kind": "nan_value", "message": "psnr is NaN"}])  # fmt: skip
        write_cell(
            run,
            "big",
            "toy",
            seed,
            {},
            status="skipped",
            reason=f"needs images of at least 16x16 (tags.min_image_size=16) {EVIL}",
        )
    write_cell(run, "broken", "toy", 0, {}, status="failed", reason="diverged: loss is NaN")
    return run


@pytest.fixture(scope="module")
def rich(tmp_path_factory) -> tuple[Path, str]:
    run = rich_run(tmp_path_factory.mktemp("v2"))
    build_report([run], formats=["md", "tex", "csv", "html"])
    return run, (run / "report.md").read_text(encoding="utf-8")


def section(page: str, title: str) -> str:
    """The text of ``## title`` up to the next ``## `` heading."""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", page, re.S | re.M)
    assert m, f"no section {title!r}"
    return m.group(1)


# ----------------------------------------------------------------------------- sections


def test_skipped_cells_are_listed_with_their_reason_not_as_failures(rich) -> None:
    _, page = rich
    text = section(page, "Skipped")
    assert "| big | toy | 0, 1 | needs images of at least 16x16" in text
    assert "\\<img src=x onerror=alert(1)\\>" in text and EVIL not in page
    assert "| big |" not in section(page, "Failed cells")
    assert "| broken | toy | 0 | diverged: loss is NaN |" in section(page, "Failed cells")
    assert "6 cells finished, 1 failed, 2 skipped" in page
    assert "(6 finished, 1 failed, 2 skipped: model does not support the dataset)" in page


def test_failed_metrics_name_metric_plugin_reason_and_cells(rich) -> None:
    _, page = rich
    text = section(page, "Failed metrics")
    assert ("| ae | toy | 0, 1 | knn | myplugin 1.0 (my.metrics) | evaluate raised ValueError: "
            "\\<img src=x onerror=alert(1)\\> |") in text  # fmt: skip


def test_nan_values_are_listed_and_marked_never_a_silent_dash(rich) -> None:
    run, page = rich
    text = section(page, "NaN and infinite values")
    assert "| pca | toy | 0 | probe\\_acc | probe | the metric returned nan \\<img" in text
    # a null stored without a reason (an older file) is listed too, and says so
    assert (
        "| vae | toy | 0 | psnr | reconstruction | no reason stored (older result file) |" in text
    )
    assert "| vae | toy | 1 | psnr |" in text
    rep_md = (run / "tables" / "toy-representation.md").read_text(encoding="utf-8")
    assert re.search(r"\| pca \| [0-9.]+‡ \(n=1\) \|", rep_md), rep_md
    assert "‡ NaN or infinite for some seeds" in rep_md
    recon = (run / "tables" / "toy-reconstruction.md").read_text(encoding="utf-8")
    assert (
        "| vae | 0.0500 ± 0.0000 | NaN‡ |" in recon
    )  # every seed NaN: "NaN" and the mark, not "–"
    tex = (run / "tables" / "toy-reconstruction.tex").read_text(encoding="utf-8")
    assert r"NaN$^\ddagger$" in tex


def test_warnings_section_lists_cell_warnings_but_not_nan_or_failed_metrics(rich) -> None:
    _, page = rich
    text = section(page, "Warnings")
    assert (
        "| vae | toy | 0 | not converged | loss fell by 12.0% over the last 2 of 3 epochs |" in text
    )
    assert (
        "| vae | toy | 1 | few active units | only 0% of the code dimensions are active |" in text
    )
    assert "| ae | toy | 0 | plugin hook error | plugin tracker raised" in text
    assert "psnr is NaN" not in text and "metric 'knn' failed" not in text


def test_metrics_that_do_not_apply_are_listed(rich) -> None:
    _, page = rich
    text = section(page, "Metrics that do not apply")
    assert "| elbo | pca | toy | needs a posterior q(z\\|x), which PCA does not state |" in text


def test_glossary_ends_the_page_with_one_line_per_value_shown(rich) -> None:
    _, page = rich
    assert page.rstrip().splitlines()[-1].startswith("- **")
    text = section(page, "Glossary")
    lines = [ln for ln in text.splitlines() if ln.startswith("- **")]
    names = [re.match(r"- \*\*(.+?)\*\*", ln).group(1) for ln in lines]
    assert len(names) == len(set(names))
    for name in ("mse", "psnr", "elbo", "elbo\\_kl", "iwae\\_nll", "probe\\_acc", "fd",
                 "prdc\\_density", "path\\_step\\_ratio", "midpoint\\_nn\\_ratio"):  # fmt: skip
        assert name in names, name
    elbo = next(ln for ln in lines if ln.startswith("- **elbo**"))
    assert elbo == ("- **elbo** (elbo; ↑ higher is better; unit: nats/image): definition of "
                    "elbo. Source: Paper about elbo, 2020.")  # fmt: skip
    kl = next(ln for ln in lines if ln.startswith("- **elbo\\_kl**"))
    assert "descriptive" in kl
    mse = next(ln for ln in lines if ln.startswith("- **mse**"))
    assert "↓ lower is better" in mse and "Source: not stated by the metric." in mse


# ----------------------------------------------------------------------------- tables


def test_new_groups_share_one_table_each(rich) -> None:
    run, page = rich
    names = {p.name for p in (run / "tables").glob("*.md")}
    assert {"toy-likelihood.md", "toy-representation.md", "toy-samples.md"} <= names
    assert not {"toy-elbo.md", "toy-iwae.md", "toy-fd.md", "toy-probe.md"} & names
    lik = (run / "tables" / "toy-likelihood.md").read_text(encoding="utf-8")
    head = lik.splitlines()[0]
    assert head.index("iwae\\_nll ↓") < head.index("elbo ↑") < head.index("elbo\\_kl \\[")
    for heading in ("#### likelihood", "#### representation", "#### samples"):
        assert heading in page


def test_descriptive_values_are_never_bold(rich) -> None:
    run, _ = rich
    agg = collect([run]).agg
    for metric in ("elbo_kl", "prdc_density"):
        rows = agg[agg.metric == metric]
        assert not rows.empty and not rows["bold"].any(), metric
        assert all(v is None for v in rows["higher_is_better"]), metric
        assert rows["rank"].isna().all(), metric
    lik = (run / "tables" / "toy-likelihood.md").read_text(encoding="utf-8")
    assert "| **-29.50 ± 0.71** | 2.50 ± 0.71 |" in lik  # elbo bold, elbo_kl never


def test_likelihood_caption_says_when_it_is_not_a_density(rich) -> None:
    run, _ = rich
    lik = (run / "tables" / "toy-likelihood.md").read_text(encoding="utf-8")
    assert "Likelihood p(x\\|z): bernoulli (vae)." in lik
    assert "vae: Bernoulli likelihood of grey-level pixels: not a normalised density" in lik
    assert "Loaiza-Ganem \\& Cunningham 2019" in lik
    assert "iwae (vae): IWAE bound with K=7 importance samples." in lik
    assert "elbo (vae): E\\_q\\[log p(x\\|z)\\] from 10 draws of z per test image" in lik


def test_sample_scores_state_counts_feature_net_and_sampler(rich) -> None:
    run, _ = rich
    md = (run / "tables" / "toy-samples.md").read_text(encoding="utf-8")
    assert "from 300 real test images and 300 generated images" in md
    assert "test accuracy 93.0 %, weights sha256 abababababab" in md
    assert "° the model cannot sample" in md and "Ghosh et al. 2020" in md
    # ae scored on 100/100 images: marked, set apart, never bold although its FD is lowest
    assert "§ ae (fd, prdc): 100 real / 100 generated images." in md
    ae = next(ln for ln in md.splitlines() if ln.startswith("| ae |"))
    pca = next(ln for ln in md.splitlines() if ln.startswith("| pca |"))
    vae = next(ln for ln in md.splitlines() if ln.startswith("| vae |"))
    assert "°§" in ae and "**" not in ae
    assert pca.split("|")[2].strip().startswith("**") and pca.split("|")[2].strip().endswith("°")
    assert "°" not in vae  # the VAE sampled from its prior
    agg = collect([run]).agg
    fd = agg[agg.metric == "fd"].set_index("model")
    assert fd.loc["pca", "rank"] == 1 and fd.loc["vae", "rank"] == 2
    assert fd.loc["ae", "rank"] != fd.loc["ae", "rank"]  # NaN: not ranked


def test_headline_metrics_exclude_values_a_linear_model_wins_by_construction(tmp_path) -> None:
    from vaebench.report.content import headline_metrics
    from vaebench.report.layout import NOT_HEADLINE, headline

    run = rich_run(tmp_path)
    rep = collect([run])
    heads = headline_metrics(rep)
    assert heads == ["mse", "midpoint_nn_ratio", "iwae_nll", "probe_acc", "fd"]
    assert "path_step_ratio" in NOT_HEADLINE
    # an older cell that still declares path_step_ratio scored is never a headline
    assert headline("interpolation", ["path_step_ratio", "midpoint_nn_ratio"]) == (
        "midpoint_nn_ratio")  # fmt: skip
    assert headline("interpolation", ["path_step_ratio", "path_length_ratio"]) is None
    assert headline("quality", ["bce", "psnr"]) == "psnr"


def test_summary_table_has_one_headline_per_group(tmp_path) -> None:
    run = tmp_path / "r"
    for ds in ("one", "two"):
        for seed in (0, 1):
            for model, base in (("pca", 1.0), ("vae", 2.0)):
                evs = {"probe": evaluation("probe", {"probe_acc": 50 * base + seed})}
                if model == "vae":
                    evs["elbo"] = evaluation("elbo", {"elbo": -base - seed, "elbo_kl": 1.0})
                write_cell(run, model, ds, seed,
                           {"mse": 0.01 * base + 0.001 * seed, "path_step_ratio": base,
                            "midpoint_nn_ratio": base},
                           evaluations=evs)  # fmt: skip
    build_report([run], formats=["md"], figures=False)
    head = (run / "tables" / "summary.md").read_text(encoding="utf-8").splitlines()[0]
    for metric in ("mse", "midpoint\\_nn\\_ratio", "elbo", "probe\\_acc"):
        assert f"one: {metric} " in head and f"two: {metric} " in head, metric
    assert "path\\_step\\_ratio" not in head and "elbo\\_kl" not in head


# ----------------------------------------------------------------------------- figures


def test_figure_functions_return_figures_without_pyplot(rich) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    run, _ = rich
    rep = collect([run])
    before = plt.get_fignums()
    cells = rep.cells
    figs = {
        "bars": F.metric_bars(rep.agg, rep.frame, "toy", ["mse", "psnr"], rep.models),
        "training": F.training_curves(cells, "toy", rep.models),
        "samples": F.sample_grid(cells, "toy", rep.models),
    }
    for name, fig in figs.items():
        assert isinstance(fig, Figure), name
    assert plt.get_fignums() == before  # no pyplot figure was opened
    assert F.reconstruction_grid(cells, "toy", rep.models) is None  # nothing stored
    assert F.save(None, run / "nothing") == []


def test_training_curves_put_each_objective_on_its_own_axes(rich) -> None:
    run, _ = rich
    rep = collect([run])
    fig = F.training_curves(rep.cells, "toy", rep.models)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    ylabels = [ax.get_ylabel() for ax in axes]
    assert ylabels == ["reconstruction term\n[per image]", "KL term\n[nats/image]",
                       "validation MSE\n[per pixel]"]  # fmt: skip
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in axes]
    assert legends[0] == ["ae (n=2)", "vae (n=2)"]  # pca trained in one step: no curve
    assert legends[1] == ["vae (n=2)"] and legends[2] == ["vae (n=2)"]
    recon = axes[0].get_lines()[1].get_ydata()  # the VAE's reconstruction term, not its loss
    assert list(recon) == [8.0, 5.0, 4.0]


def test_sample_grid_and_training_figures_are_in_the_report(rich) -> None:
    run, page = rich
    for name in ("toy-samples", "toy-training"):
        assert f"](figures/{name}.png)" in page
        assert (run / "figures" / f"{name}.png").exists()
        assert (run / "figures" / f"{name}.pdf").exists()


def test_figures_of_dotted_stems_do_not_collide(tmp_path: Path) -> None:
    run = tmp_path / "r"
    for seed in (0, 1):
        write_cell(run, "ae", "user.npz", seed, {"mse": 0.1 + seed, "psnr": 3.0},
                   history={"loss": [3.0, 2.0]})  # fmt: skip
    written = build_report([run], formats=["md"])
    pngs = sorted(p.name for p in written if p.suffix == ".png")
    assert "user.npz-training.png" in pngs and "user.npz-bars-reconstruction.png" in pngs


# ----------------------------------------------------------------------------- sweeps


def sweep_run(root: Path) -> Path:
    run = root / "sweep"
    write_manifest(run, ["ae", "vae"], ["toy"])
    for beta in (0.5, 4.0, 10.0):
        for seed in (0, 1, 2):
            mse = 0.01 * beta + 0.001 * seed
            write_cell(run, "vae", "toy", seed, {"mse": mse},
                       params={"beta": beta}, sweep={"vae.beta": beta},
                       evaluations={"probe": evaluation("probe", {"probe_acc": 90 - beta + seed})})  # fmt: skip
    for seed in (0, 1, 2):
        write_cell(run, "ae", "toy", seed, {"mse": 0.02},
                   evaluations={"probe": evaluation("probe", {"probe_acc": 85.0})})  # fmt: skip
    return run


def test_sweep_variants_are_labelled_and_ordered_by_value(tmp_path: Path) -> None:
    rep = collect([sweep_run(tmp_path)])
    assert rep.models == ["ae", "vae (beta=0.5)", "vae (beta=4)", "vae (beta=10)"]


def test_ablation_tables_pivot_the_swept_parameter(tmp_path: Path) -> None:
    run = sweep_run(tmp_path)
    written = build_report([run], formats=["md", "tex"])
    names = {p.name for p in written}
    assert {"toy-ablation-beta-mse.md", "toy-ablation-beta-probe_acc.md",
            "toy-ablation-beta-mse.tex", "toy-sweep-beta.png", "toy-sweep-beta.pdf"} <= names  # fmt: skip
    md = (run / "tables" / "toy-ablation-beta-mse.md").read_text(encoding="utf-8")
    lines = md.splitlines()
    assert lines[0] == "| model | beta=0.5 | beta=4 | beta=10 |"
    assert lines[2] == "| vae | **0.0060 ± 0.0010** | 0.0410 ± 0.0010 | 0.1010 ± 0.0010 |"
    assert "Ablation: rows are models" in md and "mse ↓ \\[per pixel\\]" in md
    assert "paired t-test over seeds" in md
    page = (run / "report.md").read_text(encoding="utf-8")
    assert "#### Sweeps" in page and "##### mse by beta" in page
    assert "](figures/toy-sweep-beta.png)" in page
    # not written when switched off; the files of the previous report are removed
    written = build_report([run], formats=["md", "tex"], ablation=False)
    assert not any("ablation" in p.name for p in written)
    assert not (run / "tables" / "toy-ablation-beta-mse.md").exists()


def test_sweep_figure_draws_one_line_per_model_against_each_headline(tmp_path: Path) -> None:
    from vaebench.report.content import sweep_metrics
    from vaebench.report.sweeps import sweep_points

    rep = collect([sweep_run(tmp_path)])
    metrics = sweep_metrics(rep, "toy")
    assert metrics == ["mse", "probe_acc"]
    points = {m: sweep_points(rep.cells, rep.frame, "toy", "beta", m) for m in metrics}
    assert list(points["mse"]["label"].unique()) == ["0.5", "4", "10"]
    assert len(points["mse"]) == 9 and set(points["mse"]["line"]) == {"vae"}
    fig = F.sweep_lines(points, "beta", {"mse": {"unit": "per pixel", "higher_is_better": False}})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"  # 0.5 .. 10 spans more than a decade
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "4", "10"]
    means = ax.get_lines()[0].get_ydata()
    assert np.allclose(means, [0.006, 0.041, 0.101])


# ----------------------------------------------------------------------------- invariants


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.parts[len(root.parts)] in ("tables", "figures", "report.md")}  # fmt: skip


def test_rich_report_is_byte_stable(rich, tmp_path: Path) -> None:
    run, _ = rich
    copy = tmp_path / "rich"
    shutil.copytree(run / "cells", copy / "cells")
    shutil.copytree(run / "manifests", copy / "manifests")
    build_report([copy], formats=["md", "tex", "csv", "html"])
    assert _digest(copy) == _digest(run)


def test_rich_report_escapes_everything(rich) -> None:
    run, page = rich
    assert EVIL not in page
    for p in (run / "tables").glob("*"):
        text = p.read_text(encoding="utf-8")
        if p.suffix == ".csv":  # data, quoted by the CSV writer; no cell starts a formula
            assert not re.search(r'(^|,)"?[=+@]', text, re.M), p.name
            continue
        assert EVIL not in text, p.name


def test_rich_latex_compiles(rich, tmp_path: Path) -> None:
    import subprocess

    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed")
    run, _ = rich
    doc = tmp_path / "tables.tex"
    shutil.copy(run / "tables" / "tables.tex", doc)
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_building_the_rich_report_imports_no_torch(rich, tmp_path: Path) -> None:
    import subprocess
    import sys

    run, _ = rich
    copy = tmp_path / "copy"
    shutil.copytree(run / "cells", copy / "cells")
    code = (
        "import sys\n"
        "from vaebench.report import build_report\n"
        f"build_report([{str(copy)!r}], formats=['md', 'tex', 'csv', 'html'])\n"
        "print(','.join(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


# ----------------------------------------------------------------------------- samples artifact


def test_reconstruction_stores_prior_samples_for_models_that_sample(digits, registry) -> None:
    import torch

    from vaebench.evaluation import GuardedModel
    from vaebench.metric import EvalContext
    from vaebench.metrics.reconstruction import N_SAMPLES, Reconstruction

    torch.manual_seed(0)
    vae = registry.model("vae").spec.create(digits.shape, latent_dim=4, epochs=1)
    vae.fit(digits.x_train)
    pca = registry.model("pca").spec.create(digits.shape, latent_dim=4)
    pca.fit(digits.x_train)

    def run(model, seed=0):
        ctx = EvalContext(seed=seed, device=torch.device("cpu"), metric="reconstruction")
        values = Reconstruction().evaluate(GuardedModel(model, "reconstruction"), digits, ctx)
        return values, ctx.artifacts

    values, arts = run(vae)
    assert tuple(arts["samples"].shape) == (N_SAMPLES, *digits.shape)
    assert float(arts["samples"].min()) >= 0.0 and float(arts["samples"].max()) <= 1.0
    # drawn last from the metric's own stream: the values and other artifacts are unchanged
    # by it, and the same seed gives the same samples
    values2, arts2 = run(vae)
    assert values2 == values and torch.equal(arts2["samples"], arts["samples"])
    assert not torch.equal(run(vae, seed=1)[1]["samples"], arts["samples"])
    assert "samples" not in run(pca)[1]  # PCA cannot sample: no grid


def test_two_swept_parameters_give_one_line_per_other_setting(tmp_path: Path) -> None:
    from vaebench.report.build import build_ablations
    from vaebench.report.sweeps import sweep_points

    run = tmp_path / "two"
    for latent in (2, 8):
        for seed in (0, 1):
            write_cell(run, "ae", "toy", seed, {"mse": 0.01 * latent + 0.001 * seed},
                       params={"latent_dim": latent}, sweep={"latent_dim": latent})  # fmt: skip
            for beta in (1.0, 4.0):
                write_cell(run, "vae", "toy", seed, {"mse": 0.01 * latent + beta + 0.001 * seed},
                           params={"latent_dim": latent, "beta": beta},
                           sweep={"latent_dim": latent, "vae.beta": beta})  # fmt: skip
    rep = collect([run])
    assert rep.models == ["ae (latent_dim=2)", "ae (latent_dim=8)",
                          "vae (beta=1, latent_dim=2)", "vae (beta=1, latent_dim=8)",
                          "vae (beta=4, latent_dim=2)", "vae (beta=4, latent_dim=8)"]  # fmt: skip
    points = sweep_points(rep.cells, rep.frame, "toy", "latent_dim", "mse", rep.base_models)
    assert list(dict.fromkeys(points["line"])) == ["ae", "vae (beta=1)", "vae (beta=4)"]
    fig = F.sweep_lines({"mse": points}, "latent_dim", {})
    colors = [ln.get_color() for ln in fig.axes[0].get_lines()]
    assert len(set(colors)) == 3  # one colour per line (error bars and caps share it)
    tables = build_ablations(rep)["toy"]
    by_latent = next(t for t in tables if t.name == "toy-ablation-latent_dim-mse")
    assert by_latent.rows == ["ae", "vae (beta=1)", "vae (beta=4)"]
    by_beta = next(t for t in tables if t.name == "toy-ablation-beta-mse")
    assert by_beta.rows == ["vae (latent_dim=2)", "vae (latent_dim=8)"]
    assert [c.metric for c in by_beta.columns] == ["beta=1", "beta=4"]
