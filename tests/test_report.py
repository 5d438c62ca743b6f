"""build_report end to end on synthetic results: files, report.md, figures, byte-stability."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_report_cells import standard_run, write_cell, write_manifest

from vaebench.report import build_report
from vaebench.report.figures import latent_points, model_colors


def digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.parts[len(root.parts)] in ("tables", "figures", "report.md")
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("built")
    run = standard_run(root, figures=True)
    written = build_report([run], formats=["md", "tex", "csv", "html"], baseline="ae")
    return run, written


def test_writes_every_format(built) -> None:
    run, written = built
    names = {p.relative_to(run).as_posix() for p in written}
    for src in ("reconstruction", "acai", "throughput"):
        for ext in ("md", "tex", "html"):
            assert f"tables/toy-{src}.{ext}" in names
    for name in ("tables/tables.tex", "tables/tables.html", "tables/aggregate.csv",
                 "tables/tidy.csv", "report.md"):  # fmt: skip
        assert name in names
    assert all(p.exists() for p in written)


def test_csv_is_tidy(built) -> None:
    import pandas as pd

    run, _ = built
    agg = pd.read_csv(run / "tables" / "aggregate.csv")
    assert not agg.duplicated(["dataset", "model", "metric"]).any()
    ae = agg[(agg.model == "ae") & (agg.metric == "mse")].iloc[0]
    assert ae["mean"] == pytest.approx(0.012) and ae["std"] == pytest.approx(0.002)
    assert ae.n == 3 and ae.seeds == "0;1;2" and bool(ae.bold)
    tidy = pd.read_csv(run / "tables" / "tidy.csv")
    assert len(tidy) == 12 * 6 + 1  # every value plus the failed cell
    assert tidy[tidy.metric == "failed"].iloc[0].error.startswith("diverged")


def test_report_page(built) -> None:
    run, _ = built
    page = (run / "report.md").read_text(encoding="utf-8")
    assert page.startswith("# vaebench report\n")
    assert "vaebench run --models pca,ae,noisy,vae\\_x,broken,broken --out run" not in page
    assert "vaebench run --models pca,ae,noisy,vae_x,broken --out run" in page  # the command
    assert "| torch | 2.13.0+cpu |" in page
    assert "| device | cpu (test machine) |" in page
    assert "0123456789ab (uncommitted changes)" in page
    assert "latent\\_dim=2" in page  # hyperparameters
    assert "n\\_pairs=8" in page  # evaluation options
    assert "| **0.0120 ± 0.0020** |" in page  # the tables
    assert "## Failed cells" in page
    assert "| broken | toy | 0 | diverged: loss is NaN \\| x |" in page
    for link in (
        "figures/toy-bars-reconstruction.png",
        "figures/toy-pareto.png",
        "figures/toy-reconstructions.png",
        "figures/toy-interpolation.png",
        "figures/toy-latent.png",
        "figures/toy-training.png",
    ):
        assert f"]({link})" in page
        assert (run / link).exists() and (run / link).with_suffix(".pdf").exists()


def test_figures_are_images_of_column_width(built) -> None:
    import matplotlib.image

    run, _ = built
    for png in sorted((run / "figures").glob("*.png")):
        img = matplotlib.image.imread(png)
        h, w = img.shape[:2]
        assert 200 < w < 1100, (png.name, w)  # ~3.3 in at 200 dpi (bbox tight)
        assert img[..., :3].std() > 0.05, png.name  # not blank
        assert (png.with_suffix(".pdf").read_bytes()[:5]) == b"%PDF-"


def test_regeneration_is_byte_stable(built, tmp_path: Path) -> None:
    run, _ = built
    first = digest(run)
    copy = tmp_path / "run"
    shutil.copytree(run / "cells", copy / "cells")
    shutil.copytree(run / "manifests", copy / "manifests")
    build_report([copy], formats=["md", "tex", "csv", "html"], baseline="ae")
    assert digest(copy) == first


def test_interpolation_figures_drawer_is_called(tmp_path: Path, monkeypatch) -> None:
    from vaebench.report import interpolation_figures

    calls = []

    def draw(cells, dataset, models, colors, fig_dir, stem=None, suffixes=None):
        calls.append((dataset, list(models), sorted(colors), Path(fig_dir).name, len(cells)))
        return []

    monkeypatch.setattr(interpolation_figures, "draw", draw)
    run = tmp_path / "r"
    write_manifest(run, ["ae", "pca"], ["b", "a"])
    for ds in ("a", "b"):
        write_cell(run, "ae", ds, 0, {"mse": 0.1})
        write_cell(run, "pca", ds, 0, {"mse": 0.2})
    build_report([run], formats=["md"])
    assert [c[0] for c in calls] == ["b", "a"]  # once per dataset, in the requested order
    assert calls[0][1] == ["ae", "pca"] and calls[0][3] == "figures"
    assert {"ae", "pca"} <= set(calls[0][2])


def test_several_datasets_give_a_summary_table(tmp_path: Path) -> None:
    run = tmp_path / "r"
    for ds, base in (("one", 0.1), ("two", 0.2)):
        for seed in (0, 1):
            write_cell(run, "ae", ds, seed, {"mse": base + seed * 0.01, "smoothness": 0.3})
            write_cell(run, "pca", ds, seed, {"mse": base * 2, "smoothness": 0.2})
    build_report([run], formats=["md", "tex"], figures=False)
    md = (run / "tables" / "summary.md").read_text(encoding="utf-8")
    assert md.splitlines()[0] == (
        "| model | one: mse ↓ \\[per pixel\\] | one: smoothness ↓ | two: mse ↓ \\[per pixel\\] "
        "| two: smoothness ↓ |"
    )
    tex = (run / "tables" / "summary.tex").read_text(encoding="utf-8")
    assert r"\multicolumn{2}{c}{one} & \multicolumn{2}{c}{two}" in tex
    assert r"\cmidrule(lr){2-3} \cmidrule(lr){4-5}" in tex
    build_report([run], formats=["md"], figures=False, summary_metrics=["smoothness"])
    md = (run / "tables" / "summary.md").read_text(encoding="utf-8")
    assert md.splitlines()[0] == "| model | one: smoothness ↓ | two: smoothness ↓ |"
    with pytest.raises(ValueError, match="unknown metric"):
        build_report([run], formats=["md"], figures=False, summary_metrics=["nope"])


@pytest.mark.parametrize("datasets", [["one"], ["one", "two"]])
def test_unknown_summary_metric_is_refused_for_any_number_of_datasets(tmp_path, datasets):
    from click.testing import CliRunner

    from vaebench.cli import cli

    run = tmp_path / "r"
    for ds in datasets:
        write_cell(run, "ae", ds, 0, {"mse": 0.1, "smoothness": 0.3})
    res = CliRunner().invoke(cli, ["report", str(run), "--metrics", "nosuch", "--no-figures"])
    assert res.exit_code == 2
    assert res.output == "Error: unknown metric(s) nosuch; valid: mse, smoothness\n"
    assert not (run / "report.md").exists()
    ok = CliRunner().invoke(cli, ["report", str(run), "--metrics", "mse", "--no-figures"])
    assert ok.exit_code == 0, ok.output


def test_bad_arguments(tmp_path: Path) -> None:
    run = standard_run(tmp_path)
    with pytest.raises(ValueError, match="unknown baseline model 'nope'; valid: pca, ae"):
        build_report([run], baseline="nope", figures=False)
    with pytest.raises(ValueError, match="unknown format xls"):
        build_report([run], formats=["xls"], figures=False)
    empty = tmp_path / "empty"
    (empty / "cells").mkdir(parents=True)
    with pytest.raises(ValueError, match="no results"):
        build_report([empty], figures=False)


def test_cli_report(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vaebench.cli import cli

    run = standard_run(tmp_path)
    result = CliRunner().invoke(cli, ["report", str(run), "--format", "md,tex,csv",
                                      "--baseline", "ae", "--no-figures"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (run / "tables" / "toy-reconstruction.tex").exists()
    assert (run / "tables" / "aggregate.csv").exists()


def test_latent_projection_and_colors() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 3)) * np.array([5.0, 1.0, 0.1])
    xy, labels, note = latent_points({"z": z.tolist(), "labels": [0, 1] * 25})
    assert xy.shape == (50, 2)
    assert np.var(xy[:, 0]) > np.var(xy[:, 1])  # first principal component first
    assert np.allclose(np.abs(xy[:, 0]), np.abs(z[:, 0] - z[:, 0].mean()), atol=0.5)
    assert note[0].startswith("PC 1 (") and labels is not None
    xy2, _, axes = latent_points({"xy": [[1, 2], [3, 4]], "projection": "pca"})
    assert xy2.tolist() == [[1.0, 2.0], [3.0, 4.0]] and axes == ("PC 1", "PC 2")
    assert latent_points({"xy": [[1, 2]], "projection": "identity"})[2] == ("z 1", "z 2")
    colors = model_colors(["mine", "vae", "pca"])
    assert colors["pca"] == model_colors(["pca"])["pca"]  # built-ins keep their colour
    assert colors["mine"] not in (colors["vae"], colors["pca"])


def test_report_imports_no_model_and_no_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    run = standard_run(tmp_path, figures=True)
    code = (
        "import sys\n"
        "from vaebench.report import build_report\n"
        f"build_report([{str(run)!r}], formats=['md', 'tex', 'csv', 'html'])\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('vaebench.model')]\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
