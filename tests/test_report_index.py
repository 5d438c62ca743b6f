"""A report without figures reads the cells from the columnar index (issue 25, item 4): its
files are byte for byte those of the report built from the whole cell records, on a folder
with warnings, failed and skipped cells, NaN values, failed and not-applicable metrics,
details and sweeps, and on the committed reference results."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_report_cells import evaluation, image_artifacts, standard_run, write_cell

from vaebench import index
from vaebench.report import build_report
from vaebench.report.content import collect
from vaebench.tidy import load_records

pytest.importorskip("pyarrow")

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference"


def varied_run(root: Path) -> Path:
    """The standard run plus NaN values with reasons, failed and not-applicable metrics,
    details, warnings, a skipped cell, image strips and a two-value sweep."""
    run = standard_run(root)
    for seed in (0, 1, 2):
        evs = {
            "elbo": evaluation("elbo", {"elbo": -90.0 - seed, "elbo_kl": None},
                               nan={"elbo_kl": "the KL term overflowed"}),
            "probe": evaluation("probe", {"probe_acc": 80.0 + seed},
                                details={"per_class": [0.5, 0.25 * seed]}),
            "fd": evaluation("fd", {}, status="failed", reason="out of memory"),
            "acai": evaluation("acai", {}, status="not_applicable",
                               reason="needs a dataset with one known factor"),
        }  # fmt: skip
        write_cell(run, "vae_x", "toy", seed, {"mse": 0.05 + seed, "psnr": float("nan")},
                   params={"beta": 2.0}, sweep={"vae_x.beta": 2.0}, evaluations=evs,
                   artifacts=image_artifacts(seed), history={"loss": [2.0, 1.0]},
                   warnings=[{"kind": "slow", "message": f"epoch {seed} took long"}])  # fmt: skip
        write_cell(run, "vae_x", "toy", seed, {"mse": 0.06 + seed, "psnr": 11.0 + seed},
                   params={"beta": 4.0}, sweep={"vae_x.beta": 4.0})  # fmt: skip
    write_cell(run, "pca", "tiny", 0, {}, status="skipped", reason="too small for pca")
    write_cell(run, "ae", "tiny", 1, {}, status="failed", reason="diverged\nsecond line")
    return run


def report_files(run: Path, out: Path, monkeypatch, no_index: bool) -> dict[str, bytes]:
    monkeypatch.setenv("VAEBENCH_NO_INDEX", "1" if no_index else "")
    build_report([run], out, formats=["md", "csv", "tex", "html"], figures=False)
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_index_path_writes_the_bytes_of_the_record_path(tmp_path, monkeypatch):
    run = varied_run(tmp_path)
    slow = report_files(run, tmp_path / "records", monkeypatch, no_index=True)
    assert not (run / "index").exists()
    fast = report_files(run, tmp_path / "indexed", monkeypatch, no_index=False)
    assert (run / "index" / "cells.parquet").is_file()
    assert sorted(fast) == sorted(slow) and "report.md" in fast
    for name in slow:
        assert fast[name] == slow[name], f"{name} differs between the index and the records"
    page = slow["report.md"].decode()  # the folder does show what the test is about
    for text in ("the KL term overflowed", "out of memory", "too small for pca",
                 "needs a dataset with one known factor", "took long", "beta"):  # fmt: skip
        assert text in page, text
    # a second report reads the saved index; a changed cell is followed
    assert report_files(run, tmp_path / "again", monkeypatch, no_index=False) == fast
    write_cell(run, "pca", "tiny", 0, {"mse": 0.5, "psnr": 9.0})
    slow = report_files(run, tmp_path / "records2", monkeypatch, no_index=True)
    assert report_files(run, tmp_path / "indexed2", monkeypatch, no_index=False) == slow


@pytest.mark.slow
def test_index_path_regenerates_the_reference_tables(tmp_path, monkeypatch):
    """The committed reference tables (written from the records) come back byte for byte
    through the index (the record path: tests/test_report_reference.py)."""
    run = tmp_path / REFERENCE.name
    shutil.copytree(REFERENCE / "cells", run / "cells")
    shutil.copytree(REFERENCE / "manifests", run / "manifests")
    monkeypatch.setenv("VAEBENCH_NO_INDEX", "")
    build_report([run], formats=["md", "tex", "csv"], figures=False)
    assert (run / "index" / "cells.parquet").is_file()
    committed = sorted(p.name for p in (REFERENCE / "tables").iterdir() if p.is_file())
    assert sorted(p.name for p in (run / "tables").iterdir() if p.is_file()) == committed
    for name in committed:
        assert (run / "tables" / name).read_bytes() == (REFERENCE / "tables" / name).read_bytes()


def test_light_records_are_the_records_without_images_and_curves(tmp_path, monkeypatch):
    run = varied_run(tmp_path)
    full = load_records([run])
    light = index.load_records([run])
    assert len(light) == len(full)
    heavy = set(index.HEAVY_FIELDS) - {"run", "metrics", "metric_info"}
    for a, b in zip(full, light, strict=True):
        assert a["run"] == b["run"] == run.name
        assert b["metrics"].keys() == a["metrics"].keys()
        assert b["metric_info"] == a["metric_info"]
        want = {k: v for k, v in a.items() if k not in heavy}
        want["evaluations"] = {n: {k: v for k, v in ev.items() if k != "artifacts"}
                               for n, ev in a["evaluations"].items()}  # fmt: skip
        got = {k: v for k, v in b.items() if k != "artifacts"}
        assert b.get("artifacts", {}) == {}
        assert "history" not in b
        # NaN != NaN: compare through their text
        assert repr(sorted(got.items())) == repr(sorted(want.items()))
    assert any(a.get("artifacts") for a in full)  # the folder has images to leave out
    # a changed cell is read again: its new value reaches the light records
    write_cell(run, "pca", "tiny", 0, {"mse": 0.5})
    assert any(c["dataset"] == "tiny" and c["status"] == "ok" for c in index.load_records([run]))


def test_collect_light_without_index_reads_the_records(tmp_path, monkeypatch):
    run = varied_run(tmp_path)
    monkeypatch.setenv("VAEBENCH_NO_INDEX", "1")
    rep = collect([run], light=True)
    assert not (run / "index").exists()
    assert any(c.get("artifacts") for c in rep.cells)  # whole records: no index was used
    monkeypatch.setattr(index, "available", lambda: False)
    monkeypatch.delenv("VAEBENCH_NO_INDEX")
    assert len(collect([run], light=True).cells) == len(rep.cells)
    assert not (run / "index").exists()


@pytest.mark.parametrize("no_index", [True, False], ids=["records", "index"])
def test_a_run_given_as_dot_is_named_after_its_folder(tmp_path, monkeypatch, no_index):
    # `cd results/run && vaebench report .` once gave every row an empty run name
    import pandas as pd

    from vaebench.results import load_cells, run_name
    from vaebench.tidy import load_results

    run = varied_run(tmp_path)
    monkeypatch.setenv("VAEBENCH_NO_INDEX", "1" if no_index else "")
    (run / "sub").mkdir()
    monkeypatch.chdir(run / "sub")
    assert run_name("..") == run_name(run) == run.name
    monkeypatch.chdir(run)
    assert run_name(".") == run.name
    (tmp_path / "nest").mkdir()
    (tmp_path / "nest" / "cl").symlink_to(run / "cells")  # nest/cl/.. is the run, not nest
    (tmp_path / "link").symlink_to(run)  # a link to a run folder: its own name
    assert run_name(tmp_path / "nest" / "cl" / "..") == run.name
    assert run_name(tmp_path / "link") == run_name(f"{tmp_path}/link/") == "link"
    assert {c["run"] for c in load_cells(".")} == {run.name}
    assert set(load_results(["."])["run"]) == {run.name}
    assert {r["run"] for r in load_records(["."])} == {run.name}
    build_report(["."], tmp_path / "out", formats=["md", "csv"], figures=False)
    assert f"Results of `{run.name}`" in (tmp_path / "out" / "report.md").read_text()
    tidy = pd.read_csv(tmp_path / "out" / "tables" / "tidy.csv")
    assert len(tidy) > 10 and set(tidy["run"]) == {run.name}
