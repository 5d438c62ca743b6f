"""Reports that can be trusted: never out of step with the cells, written atomically and never
through a link, every stored string escaped for its format, and figures that do not mislead."""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import logging
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_report_cells import standard_run, write_cell, write_manifest

from vaebench.report import build_report
from vaebench.report import figures as F
from vaebench.report.escape import (
    csv_cell,
    escape_latex,
    escape_markdown,
    md_code,
    md_code_block,
    printable,
)
from vaebench.report.files import INDEX_NAME, atomic_write_bytes, save_figure
from vaebench.results import atomic_write_json

# ----------------------------------------------------------------------------- all cells failed


def test_a_dataset_whose_cells_all_failed_is_reported_not_a_crash(tmp_path: Path) -> None:
    """`run --models ae,vae --lr 1e6`: every cell fails; the report lists the failures."""
    run = tmp_path / "r"
    write_manifest(run, ["ae", "vae"], ["toy"])
    for model in ("ae", "vae"):
        for seed in (0, 1):
            write_cell(run, model, "toy", seed, {}, status="failed",
                       reason="loss is NaN at epoch 1 (try a smaller lr)")  # fmt: skip
    written = build_report([run], formats=["md", "tex", "csv", "html"])
    page = (run / "report.md").read_text(encoding="utf-8")
    assert "0 cells finished, 4 failed" in page
    assert "No cell of this dataset finished" in page
    assert "## Failed cells" in page
    assert page.count("| loss is NaN at epoch 1 (try a smaller lr) |") == 4
    assert run / "tables" / "tidy.csv" in written
    # a second dataset that did finish still gets its tables
    from click.testing import CliRunner

    from vaebench.cli import cli

    result = CliRunner().invoke(cli, ["report", str(run), "--no-figures"])
    assert result.exit_code == 0, result.output
    assert "KeyError" not in result.output
    write_cell(run, "ae", "two", 0, {"mse": 0.1})
    build_report([run], formats=["md"])
    page = (run / "report.md").read_text(encoding="utf-8")
    assert "| **0.1000** |" in page and page.count("| loss is NaN at epoch 1") == 4


# ----------------------------------------------------------------------------- stale outputs


@contextlib.contextmanager
def report_log(caplog):
    """Capture the report's log even when the CLI (in another test) stopped propagation."""
    logger = logging.getLogger("vaebench.report")
    level = logger.level
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(level)


def _seed_cells(run: Path, seed: int) -> None:
    write_cell(run, "ae", "toy", seed, {"mse": 0.010 + 0.002 * seed})
    write_cell(run, "pca", "toy", seed, {"mse": 0.030})


def test_tables_of_an_earlier_report_are_rewritten_or_removed(tmp_path: Path, caplog) -> None:
    run = tmp_path / "r"
    for seed in (0, 1, 2):
        _seed_cells(run, seed)
    build_report([run], formats=["md", "tex", "csv"], figures=False)
    tex = run / "tables" / "toy-reconstruction.tex"
    assert "over 3 seeds" in tex.read_text(encoding="utf-8")
    index = json.loads((run / INDEX_NAME).read_text(encoding="utf-8"))
    assert index["formats"] == ["md", "csv", "tex"] and index["complete"] is True
    assert "tables/toy-reconstruction.tex" in index["files"]

    # another run adds a seed; the report after it (default formats) keeps the .tex current
    _seed_cells(run, 3)
    with report_log(caplog):
        build_report([run], figures=False)
    assert "over 4 seeds" in tex.read_text(encoding="utf-8")
    assert "over 4 seeds" in (run / "tables" / "tables.tex").read_text(encoding="utf-8")
    assert "also writing tex tables" in caplog.text

    # formats given explicitly: the .tex files of the earlier report go, and the log says so
    caplog.clear()
    with report_log(caplog):
        build_report([run], formats=["md", "csv"], figures=False)
    assert not tex.exists() and not (run / "tables" / "tables.tex").exists()
    assert "removed 2 file(s) of the previous report" in caplog.text
    assert "tables/toy-reconstruction.tex" in caplog.text
    assert json.loads((run / INDEX_NAME).read_text(encoding="utf-8"))["formats"] == ["md", "csv"]


def test_cli_report_after_a_new_seed_leaves_no_stale_tex(tmp_path: Path) -> None:
    """Issue 10.8 (b) through the command line: whatever the CLI's default formats are, the
    .tex table is either rewritten with the new seed or gone -- never left with 3 seeds."""
    from click.testing import CliRunner

    from vaebench.cli import cli

    run = tmp_path / "r"
    for seed in (0, 1, 2):
        _seed_cells(run, seed)
    args = ["report", str(run), "--no-figures"]
    assert CliRunner().invoke(cli, [*args, "--format", "md,tex,csv"]).exit_code == 0
    _seed_cells(run, 3)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    tex = run / "tables" / "toy-reconstruction.tex"
    assert not tex.exists() or "over 4 seeds" in tex.read_text(encoding="utf-8")
    assert "over 4 seeds" in (run / "tables" / "toy-reconstruction.md").read_text(encoding="utf-8")


def test_figures_of_a_dataset_no_longer_reported_are_removed(tmp_path: Path) -> None:
    run = tmp_path / "r"
    for ds in ("one", "two"):
        write_cell(run, "ae", ds, 0, {"mse": 0.1}, history={"loss": [2.0, 1.0]})
        write_cell(run, "pca", ds, 0, {"mse": 0.2}, history={"loss": [2.0, 1.5]})
    build_report([run], formats=["md"])
    assert (run / "figures" / "two-training.png").exists()
    for p in (run / "cells").glob("*--two--*"):
        p.unlink()
    build_report([run], formats=["md"])
    assert not (run / "figures" / "two-training.png").exists()
    assert not (run / "tables" / "two-reconstruction.md").exists()
    assert (run / "figures" / "one-training.png").exists()
    build_report([run], formats=["md"], figures=False)
    assert not list((run / "figures").glob("*.png"))


def test_a_report_killed_half_way_is_cleaned_up_by_the_next(tmp_path: Path, monkeypatch) -> None:
    from vaebench.report import page

    run = tmp_path / "r"
    for seed in (0, 1):
        _seed_cells(run, seed)
    build_report([run], formats=["md"], figures=False)

    def killed(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(page, "render", killed)
    with pytest.raises(KeyboardInterrupt):
        build_report([run], formats=["md", "html"], figures=False)
    assert (run / "tables" / "toy-reconstruction.html").exists()
    assert json.loads((run / INDEX_NAME).read_text(encoding="utf-8"))["complete"] is False
    monkeypatch.undo()
    build_report([run], formats=["md"], figures=False)
    assert not (run / "tables" / "toy-reconstruction.html").exists()


def test_an_edited_index_never_removes_files_outside_the_report(tmp_path: Path) -> None:
    run = standard_run(tmp_path)
    outside = tmp_path / "precious.txt"
    outside.write_text("keep", encoding="utf-8")
    cell = next((run / "cells").glob("*.json"))
    atomic_write_json(run / INDEX_NAME, {
        "schema": "vaebench.report-index/1", "complete": True, "formats": ["md"],
        "figures": False, "files": ["../precious.txt", str(outside), f"cells/{cell.name}"],
    })  # fmt: skip
    build_report([run], formats=["md"], figures=False)
    assert outside.read_text(encoding="utf-8") == "keep" and cell.exists()


def test_unindexed_files_that_may_be_stale_are_named(tmp_path: Path, caplog) -> None:
    run = standard_run(tmp_path)
    (run / "tables").mkdir(parents=True)
    (run / "tables" / "old-table.tex").write_text("% 3 seeds", encoding="utf-8")
    with report_log(caplog):
        build_report([run], formats=["md"], figures=False)
    assert (run / "tables" / "old-table.tex").exists()  # not ours to delete
    assert "tables/old-table.tex" in caplog.text and "may show older results" in caplog.text


# ----------------------------------------------------------------------------- links, atomic


def test_links_at_output_paths_are_replaced_never_written_through(tmp_path: Path) -> None:
    run = standard_run(tmp_path, figures=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    targets = {}
    for rel in ("figures/toy-pareto.png", "figures/toy-pareto.pdf",
                "tables/toy-reconstruction.md", "tables/toy-reconstruction.tex",
                "tables/tidy.csv", "report.md", INDEX_NAME):  # fmt: skip
        target = outside / rel.replace("/", "_")
        target.write_bytes(b"victim")
        link = run / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
        targets[rel] = target
    build_report([run], formats=["md", "tex", "csv"])
    for rel, target in targets.items():
        assert target.read_bytes() == b"victim", rel
        assert not (run / rel).is_symlink() and (run / rel).stat().st_size > 0, rel
    assert (run / "figures" / "toy-pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_a_failed_figure_write_keeps_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch
) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from vaebench.report import files

    path = tmp_path / "figures" / "f.png"
    path.parent.mkdir()
    path.write_bytes(b"old figure")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    with pytest.raises(OSError, match="(?i)no space left on device"):
        save_figure(fig, path.with_suffix(""), suffixes=(".png",))
    assert path.read_bytes() == b"old figure"
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.png"]
    assert not plt.get_fignums()  # closed anyway
    monkeypatch.undo()
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------- escaping

EVIL_DATASET = "toy\n# pwned\n\\input{no-such-file-xyz}%\r| x | y |"
EVIL_MODEL = "m<img src=x onerror=alert(1)>"
FORMULA_MODEL = '=HYPERLINK("x","y")'
EVIL_UNIT = "px\n\\input{no-such-file-xyz}\t<b>"
EVIL_SUBSET = "<img src=x onerror=alert(2)>"
EVIL_ARG = "a\n```\n<img src=x onerror=alert(3)>\n# heading"


@pytest.fixture(scope="module")
def evil_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("evil") / "run`x\n# y"
    for seed in (0, 1):
        for model, v in ((EVIL_MODEL, 0.1), (FORMULA_MODEL, 0.2), ("@sum", 0.3)):
            p = write_cell(run, model, EVIL_DATASET, seed, {"mse": v + seed * 0.01,
                                                            "psnr": -1.25 - seed})  # fmt: skip
            cell = json.loads(p.read_text(encoding="utf-8"))
            cell["config"]["subset"] = EVIL_SUBSET
            cell["evaluations"]["reconstruction"]["info"]["mse"]["unit"] = EVIL_UNIT
            cell["environment"]["platform"] = "<script>x</script>\n## env"
            atomic_write_json(p, cell)
    atomic_write_json(run / "manifests" / "m.json", {
        "schema": "vaebench.manifest/1", "argv": ["vaebench", "run", "--x", EVIL_ARG],
        "config": {"models": [EVIL_MODEL], "datasets": [EVIL_DATASET]},
    })  # fmt: skip
    build_report([run], formats=["md", "tex", "csv", "html"], figures=False)
    return run


def _outside_code(md: str) -> str:
    """Markdown text with fenced code blocks and inline code spans removed."""
    out, fence = [], None
    for line in md.split("\n"):
        m = re.match(r"^(`{3,})", line)
        if fence is None and m:
            fence = m.group(1)
            continue
        if fence is not None:
            if line.strip() == fence:
                fence = None
            continue
        out.append(line)
    text = "\n".join(out)
    return re.sub(r"(`+)(.+?)\1", "", text)


def test_markdown_has_no_raw_tag_heading_or_row_from_a_name(evil_run: Path) -> None:
    for page in (evil_run / "report.md", *sorted((evil_run / "tables").glob("*.md"))):
        md = page.read_text(encoding="utf-8")
        assert "\r" not in md and "\t" not in md
        text = _outside_code(md)
        assert not re.search(r"(?<!\\)<", text), page.name  # every < escaped: no tag
        for line in text.split("\n"):
            assert not line.startswith("# ") or line == "# vaebench report", line
            assert "pwned" not in line or not line.lstrip().startswith("#" * 1 + " pwned")
            if line.startswith("#"):
                assert line.split(" ", 1)[0] in ("#", "##", "###", "####"), line
                assert "pwned" not in line or line.startswith("### toy")
            if line.startswith("|"):  # every table row has as many cells as its header
                assert len(re.findall(r"(?<!\\)\|", line)) in (3, 4, 5, 6), line
        assert "\n| x | y |" not in md
    md = (evil_run / "report.md").read_text(encoding="utf-8")
    # the crafted argument stays inside its code block, the block's fence is longer
    block = re.search(r"^(`{4,})sh\n(.*?)\n\1$", md, re.S | re.M)
    assert block and "<img src=x onerror=alert(3)>" in block.group(2)
    assert block.group(2).count("\n") == 0  # one command, one line
    assert "≤ \\<img src=x onerror=alert(2)\\>" in md  # the subset, as text
    assert "### toy\\\\n\\# pwned\\\\n\\\\input{no-such-file-xyz}%\\\\r\\| x \\| y \\|" in md


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_with_crafted_names_compiles_and_runs_nothing(evil_run: Path, tmp_path: Path) -> None:
    doc = (evil_run / "tables" / "tables.tex").read_text(encoding="utf-8")
    for line in doc.split("\n"):
        if line.startswith("%"):
            continue
        assert "\\input" not in line, line  # only \textbackslash{}input, as text
    assert "\\textbackslash{}input\\{no-such-file-xyz\\}\\%" in doc
    (tmp_path / "tables.tex").write_text(doc, encoding="utf-8")
    # if \input ran, -halt-on-error would stop at the missing file
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                           "tables.tex"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "no-such-file-xyz.tex" not in proc.stdout


def test_html_escapes_names(evil_run: Path) -> None:
    html = (evil_run / "tables" / "tables.html").read_text(encoding="utf-8")
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "\t" not in html and "\r" not in html


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("name", ["aggregate.csv", "tidy.csv"])
def test_csv_cells_are_not_formulas_and_numbers_unchanged(evil_run: Path, name: str) -> None:
    rows = _read_csv(evil_run / "tables" / name)
    numeric = {"mean", "std", "sem", "ci_low", "ci_high", "p_vs_best", "p_vs_baseline",
               "value", "decimals", "n", "rank", "seed", "order"}  # fmt: skip
    for row in rows:
        for key, value in row.items():
            if key not in numeric:
                assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (key, value)
    models = {r["model"] for r in rows}
    assert {"'" + FORMULA_MODEL, "'@sum", EVIL_MODEL} <= models
    assert {r["dataset"] for r in rows} == {EVIL_DATASET}  # data stays data (quoted by csv)
    col = "mean" if name == "aggregate.csv" else "value"
    psnr = sorted(float(r[col]) for r in rows if r["metric"] == "psnr")
    assert psnr[0] in (-2.25, -1.75) and all(v < 0 for v in psnr)  # negative numbers kept
    assert all(r[col].startswith("-") for r in rows if r["metric"] == "psnr")


def test_escape_functions_on_each_input() -> None:
    assert printable("a\nb\r\tc\x00\u2028\u202e") == "a\\nb\\r\\tc\\x00\\u2028\\u202e"
    assert escape_markdown("<img onerror=x>") == "\\<img onerror=x\\>"
    assert escape_markdown("a\n# h") == "a\\\\n\\# h"
    assert md_code("a`b") == "``a`b``" and md_code("`x") == "`` `x ``"
    assert md_code_block(["x ``` y", "z\n```"], "sh") == ["````sh", "x ``` y", "z\\n```", "````"]
    assert escape_latex("a\n\\input{f}%") == r"a\textbackslash{}n\textbackslash{}input\{f\}\%"
    assert [csv_cell(v) for v in ("=1+1", "+1", "-x", "@A", "\tx", "\rx", "ok", -1.5)] == [
        "'=1+1", "'+1", "'-x", "'@A", "'\tx", "'\rx", "ok", -1.5]  # fmt: skip


def test_dollar_signs_in_names_never_reach_mathtext(tmp_path: Path) -> None:
    run = tmp_path / "r"
    for seed in (0, 1):
        write_cell(run, "a$x^{$b", "d$\\frac$", seed, {"mse": 0.1 + seed * 0.01,
                                                       "encode_samples_per_s": 10.0})  # fmt: skip
        write_cell(run, "pca", "d$\\frac$", seed, {"mse": 0.2, "encode_samples_per_s": 20.0})
    written = build_report([run], formats=["md"])
    assert any(p.suffix == ".png" and "pareto" in p.name for p in written)


# ----------------------------------------------------------------------------- figures


def _axes(fig) -> list:
    """Labels and visible tick labels (with their extents) of each visible axes of a figure."""
    fig.canvas.draw()
    return [
        {
            "xlabel": ax.get_xlabel(),
            "ylabel": ax.get_ylabel(),
            "xticks": [
                (t.get_text(), t.get_window_extent())
                for t in ax.get_xticklabels() + ax.get_xticklabels(minor=True)
                if t.get_visible()
                and t.get_text()
                and ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]
            ],
        }
        for ax in fig.axes
        if ax.get_visible()
    ]


@pytest.mark.parametrize("throughputs", [(21000.0, 26000.0, 34000.0), (900.0, 31000.0, 5e5)])
def test_pareto_tick_labels_never_overlap(tmp_path: Path, throughputs) -> None:
    from vaebench.report.content import collect

    run = tmp_path / "r"
    for model, t in zip(("pca", "ae", "vae"), throughputs, strict=True):
        for seed in (0, 1):
            write_cell(run, model, "moons", seed, {"mse": 0.01 * (1 + len(model)) + 0.001 * seed,
                                                   "encode_samples_per_s": t + seed})  # fmt: skip
    rep = collect([run])
    fig = F.pareto_scatter(rep.agg, "moons", "mse", "encode_samples_per_s", rep.models,
                           F.model_colors(rep.models))  # fmt: skip
    ticks = _axes(fig)[0]["xticks"]
    assert len(ticks) >= 2, ticks
    for (_, a), (_, b) in zip(ticks, ticks[1:], strict=False):
        assert not a.overlaps(b), [t for t, _ in ticks]
    assert all("times" not in t and "$" not in t for t, _ in ticks), [t for t, _ in ticks]


def test_one_dimensional_codes_get_no_invented_axis(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=40)
    one_d = {"xy": [[round(float(v), 4), 0.0] for v in z], "labels": [i % 3 for i in range(40)],
             "projection": "identity"}  # fmt: skip
    pts, labels, names = F.latent_points(one_d)
    assert pts.shape == (40, 1) and names == ("z",)
    assert F.latent_points({"z": z[:, None].tolist()})[2] == ("z",)
    assert F.latent_points({"xy": [[1, 0], [2, 0]]}, latent_dim=2)[2] == ("z 1", "z 2")
    cells = []
    for model, art, dim in (("ae", one_d, 1), ("vae", {"xy": one_d["xy"]}, 1),
                            ("noisy", {**one_d, "labels": [float(v) for v in z]}, 1)):  # fmt: skip
        cells.append({"model": model, "variant": model, "dataset": "d", "seed": 0,
                      "status": "ok", "artifacts": {"latent_2d": art},
                      "model_info": {"latent_dim": dim}})  # fmt: skip
    fig = F.latent_scatter(cells, "d", ["ae", "vae", "noisy"])
    paths = F.save(fig, tmp_path / "latent")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    axes = _axes(fig)
    panels = [a for a in axes if a["xlabel"]]
    assert len(panels) == 3
    assert all(a["xlabel"] == "z (1-D code)" for a in panels)
    assert [a["ylabel"] for a in panels] == ["label", "count", "label"]
    assert not any("z 2" in (a["xlabel"] + a["ylabel"]) for a in axes)


def test_different_seed_counts_raise_no_scipy_warning(tmp_path: Path) -> None:
    from vaebench.report.stats import compare

    run = tmp_path / "r"
    for seed in (0, 1, 2):
        write_cell(run, "pca", "toy", seed, {"mse": 0.03, "psnr": 15.2})
    for seed in (0, 1):
        write_cell(run, "ae", "toy", seed, {"mse": 0.02 + 0.001 * seed, "psnr": 17.0 + seed})
    write_cell(run, "vae", "toy", 5, {"mse": 0.03, "psnr": 15.2})
    write_cell(run, "vae", "toy", 6, {"mse": 0.030000000000000002, "psnr": 15.2})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_report([run], formats=["md", "csv"], figures=False)
        c = compare({0: 0.03, 1: 0.03, 2: 0.03}, {0: 0.05, 1: 0.06})
        near = compare({0: 0.03, 1: 0.030000000000000002, 2: 0.03}, {3: 0.03, 4: 0.03})
    from scipy import stats

    assert c.test == "welch" and c.p == pytest.approx(stats.ttest_1samp([0.05, 0.06], 0.03).pvalue)
    assert near.p == 1.0
    page = (run / "report.md").read_text(encoding="utf-8")
    assert "Welch" in page


# ----------------------------------------------------------------------------- report command


def _small_run(tmp_path: Path) -> Path:
    run = tmp_path / "r"
    write_cell(run, "ae", "toy", 0, {"mse": 0.1})
    return run


def test_report_on_a_full_disk_says_so_once_and_how_to_write_it_again(tmp_path, monkeypatch):
    import os

    from click.testing import CliRunner

    from vaebench.cli import cli

    run = _small_run(tmp_path)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    res = CliRunner().invoke(cli, ["report", str(run), "--no-figures"])
    assert res.exit_code == 74
    assert res.output.count("\n") == 1 and res.output.count("no space left on device") == 1
    pattern = (
        rf"Error: no space left on device while writing to {re.escape(str(run))}[^ ;]*; the "
        rf"stored results are intact\. Free space and write the report again with: vaebench "
        rf"report {re.escape(str(run))}\n"
    )
    assert re.fullmatch(pattern, res.output), res.output
    assert res.output.count(str(run)) == 2  # the folder once, then the command
    assert "Errno" not in res.output


def test_ctrl_c_during_report_says_results_are_intact_and_how_to_write_it_again(
    tmp_path, monkeypatch
):
    from click.testing import CliRunner

    import vaebench.report as report_module
    from vaebench.cli import cli

    run = _small_run(tmp_path)
    other = tmp_path / "my report"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module, "build_report", interrupted)
    res = CliRunner().invoke(cli, ["report", str(run), "--out", str(other)])
    assert res.exit_code == 130
    assert res.output == (
        f"\ninterrupted while writing the report; the stored results in {run} are intact. "
        f"Write it again with: vaebench report {run} --out '{other}'\n"
    )


@pytest.mark.parametrize("name", ["-2+3.npz", "--help", ".hidden", "-.x", ".-", "-"])
def test_file_stems_never_start_with_a_dash_or_a_dot(name):
    from vaebench.report.content import file_stems

    stems = file_stems([name, name.lstrip(".-") or "x"])
    assert all(s and s[0] not in ".-" for s in stems.values()), stems
    assert len(set(stems.values())) == 2  # never the stem of the name without the dash


def test_a_dataset_named_with_a_leading_dash_gives_no_dash_file(tmp_path):
    run = tmp_path / "r"
    for seed in (0, 1):
        write_cell(run, "ae", "-2+3.npz", seed, {"mse": 0.1 + seed * 0.01})
    written = build_report([run], formats=["md", "csv"], figures=True)
    names = [p.name for p in written if p.parent.name in ("tables", "figures")]
    assert any("2_3.npz" in n for n in names), names
    assert not [n for n in names if n[0] in ".-"], names


def test_one_printable_for_terminal_and_reports() -> None:
    """One name, one meaning: the terminal and every report format escape with the same function
    (a format character such as U+200B is escaped everywhere, not only on the terminal)."""
    from vaebench.plugins import printable as terminal_printable
    from vaebench.text import printable as text_printable

    assert printable is terminal_printable is text_printable
    assert printable("a\u200bb c") == "a\\u200bb c"
