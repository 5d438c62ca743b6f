"""Figures are drawn only when their inputs changed (issue 25), in the formats asked for."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from test_report_cells import write_cell, write_manifest

from vaebench.report import build_report
from vaebench.report.build import figure_suffixes


@pytest.fixture
def saves(monkeypatch):
    """The figure paths passed to the report's figure writer, in order (every figure is
    written through it, whether drawn in this process or by a worker)."""
    from vaebench.report import files

    calls: list[str] = []
    original = files.write_figure

    def counting(path, figure):
        calls.append(Path(path).name)
        return original(path, figure)

    monkeypatch.setattr(files, "write_figure", counting)
    return calls


def two_datasets(root: Path) -> Path:
    run = root / "r"
    write_manifest(run, ["ae", "pca"], ["one", "two"])
    for ds in ("one", "two"):
        for seed in (0, 1):
            write_cell(run, "ae", ds, seed, {"mse": 0.1 + seed / 100})
            write_cell(run, "pca", ds, seed, {"mse": 0.2 + seed / 100})
    return run


def figure_digest(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((run / "figures").glob("*.p*"))}  # fmt: skip


def test_unchanged_inputs_draw_nothing_and_keep_the_files(tmp_path, saves):
    run = two_datasets(tmp_path)
    first = build_report([run], formats=["md"])
    drawn = list(saves)
    # each dataset's figures, and the critical-difference diagram across the two datasets
    assert drawn and {n.split("-")[0] for n in drawn} == {"one", "two", "ranks"}
    before = figure_digest(run)
    saves.clear()
    second = build_report([run], formats=["md"])
    assert saves == []
    assert figure_digest(run) == before
    assert sorted(map(str, second)) == sorted(map(str, first))  # still the report's files
    assert "figures/one-" in (run / "report.md").read_text()


def test_a_changed_cell_redraws_its_dataset_only(tmp_path, saves):
    run = two_datasets(tmp_path)
    build_report([run], formats=["md"])
    saves.clear()
    write_cell(run, "ae", "two", 1, {"mse": 0.5})  # ae now ranks below pca on "two"
    build_report([run], formats=["md"])
    assert saves and {n.split("-")[0] for n in saves} == {"two", "ranks"}
    saves.clear()
    write_cell(run, "ae", "two", 1, {"mse": 0.45})  # the same ranks: the CD diagram is kept
    build_report([run], formats=["md"])
    assert saves and {n.split("-")[0] for n in saves} == {"two"}


def test_a_copy_with_new_modification_times_keeps_the_figures(tmp_path, saves):
    # a fresh clone gives every file a new modification time: the committed figures (and
    # their keys file, byte for byte) must survive `vaebench report` there
    import os
    import shutil

    run = two_datasets(tmp_path / "a")
    build_report([run], formats=["md"])
    keys = (run / "figures" / ".figure-keys.json").read_bytes()
    before = figure_digest(run)
    clone = tmp_path / "b" / "r"
    shutil.copytree(run, clone)  # copytree keeps mtimes: move every file's on, as a clone does
    for p in clone.rglob("*"):
        os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**12))
    saves.clear()
    build_report([clone], formats=["md"])
    assert saves == []
    assert figure_digest(clone) == before
    assert (clone / "figures" / ".figure-keys.json").read_bytes() == keys
    # a changed cell of the same size (same name, same length) is still seen
    cell = next(p for p in (clone / "cells").glob("ae--one--*.json"))
    text = cell.read_text()
    assert "0.1" in text
    cell.write_text(text.replace("0.1", "0.9", 1))
    build_report([clone], formats=["md"])
    assert {n.split("-")[0] for n in saves} >= {"one"}


def test_a_changed_option_or_a_missing_file_redraws(tmp_path, saves):
    run = two_datasets(tmp_path)
    build_report([run], formats=["md"])
    saves.clear()
    build_report([run], formats=["md"], ci=True)  # another interval: every bar changes
    assert {n.split("-")[0] for n in saves} == {"one", "two"}
    saves.clear()
    next((run / "figures").glob("one-*.png")).unlink()
    build_report([run], formats=["md"], ci=True)
    assert {n.split("-")[0] for n in saves} == {"one"}


def test_png_only_and_the_pdfs_of_the_previous_report_are_removed(tmp_path, saves):
    run = two_datasets(tmp_path)
    build_report([run], formats=["md"], figures=["png"])
    assert list((run / "figures").glob("*.png")) and not list((run / "figures").glob("*.pdf"))
    build_report([run], formats=["md"])  # True: PNG and PDF
    pdfs = list((run / "figures").glob("*.pdf"))
    assert pdfs
    build_report([run], formats=["md"], figures=["png"])
    assert not any(p.exists() for p in pdfs)


def test_figure_formats_are_checked():
    assert figure_suffixes(True) == (".png", ".pdf")
    assert figure_suffixes(False) == ()
    assert figure_suffixes(["pdf"]) == (".png", ".pdf")  # PNG always: report.md shows it
    with pytest.raises(ValueError, match="unknown figure format svg; valid: png, pdf"):
        figure_suffixes(["svg"])


def test_cli_figures_option(tmp_path):
    from click.testing import CliRunner

    from vaebench.cli import cli

    run = two_datasets(tmp_path)
    res = CliRunner().invoke(cli, ["report", str(run), "--figures", "png"])
    assert res.exit_code == 0, res.output
    assert not list((run / "figures").glob("*.pdf"))
    res = CliRunner().invoke(cli, ["report", str(run), "--figures", "gif"])
    assert res.exit_code == 2 and "unknown figure format gif; valid: png, pdf" in res.output
    res = CliRunner().invoke(cli, ["report", str(run), "--no-figures"])
    assert res.exit_code == 0 and not list((run / "figures").glob("*.png"))


def test_a_report_whose_figures_are_all_kept_loads_no_plotting_library(tmp_path):
    """Issue 25: with every figure kept, matplotlib, seaborn and scikit-posthocs (whose import
    loads pyplot and seaborn) are never imported -- about a second of each report."""
    import subprocess
    import sys

    run = two_datasets(tmp_path)
    build_report([run], formats=["md"])
    code = ("import sys; from vaebench.report import build_report; "
            f"build_report([{str(run)!r}], formats=['md']); "
            "print(sorted(m for m in ('matplotlib', 'seaborn', 'scikit_posthocs') "
            "if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parent.parent)  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_report_md_is_the_same_whether_figures_are_drawn_or_kept(tmp_path, saves):
    """The kept figures are listed in the order they were drawn, so a report that keeps every
    figure writes the same report.md as the one that drew them."""
    run = two_datasets(tmp_path)
    build_report([run], formats=["md"])
    drawn = (run / "report.md").read_bytes()
    saves.clear()
    build_report([run], formats=["md"])
    assert saves == []
    assert (run / "report.md").read_bytes() == drawn


def test_kept_figures_come_back_in_the_order_they_were_drawn(tmp_path):
    from vaebench.report.cache import FigureCache

    drawn = [tmp_path / n for n in ("d-samples.png", "d-interpolation.png", "d-bars-x.png")]
    for i, p in enumerate(drawn):
        p.write_bytes(b"x" * (i + 1))
    cache = FigureCache(tmp_path)
    cache.record("d", "k", drawn)
    cache.save()
    assert FigureCache(tmp_path).reuse("d", "k") == drawn
    assert FigureCache(tmp_path).reuse("d", "other key") is None


def test_figures_drawn_by_worker_processes_are_the_serial_ones_byte_for_byte(
    tmp_path, monkeypatch, saves
):
    """Issue 25: the figures shared with worker processes (:mod:`vaebench.report.drawing`) are
    the bytes a drawing in this process writes, written in the same order."""
    import shutil

    from vaebench.report import drawing

    serial = two_datasets(tmp_path / "serial")
    shared = tmp_path / "shared" / "r"
    shutil.copytree(serial, shared)
    monkeypatch.setattr(drawing, "MIN_PARALLEL", 10**6)
    first = build_report([serial], formats=["md"])
    drawn_serially = list(saves)
    saves.clear()
    monkeypatch.setattr(drawing, "MIN_PARALLEL", 1)
    monkeypatch.setattr(drawing, "_cores", lambda: 2)
    monkeypatch.setattr(drawing, "MIN_CELL_BYTES", 0)
    monkeypatch.setattr(drawing, "_main_is_safe", lambda: True)
    shared_calls = []
    original = drawing._render_shared

    def counting(jobs, suffixes, pool):
        shared_calls.append(len(jobs))
        return original(jobs, suffixes, pool)

    monkeypatch.setattr(drawing, "_render_shared", counting)
    second = build_report([shared], formats=["md"])
    assert len(shared_calls) == 2  # each dataset's figures were shared with a worker
    assert saves == drawn_serially
    assert [p.relative_to(shared) for p in second] == [p.relative_to(serial) for p in first]
    assert figure_digest(shared) == figure_digest(serial)
    assert len(figure_digest(serial)) >= 8  # both datasets drew
