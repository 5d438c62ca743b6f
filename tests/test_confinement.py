"""Issue 19 items 1-2: no write or deletion outside OUT through any path component, deletions
only of files vaebench can show it wrote, and no lock (in-place write) through a hard link."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from test_report_cells import standard_run

from vaebench import fileio
from vaebench.cli import cli
from vaebench.report import build_report
from vaebench.report.files import INDEX_NAME, JOURNAL_NAME
from vaebench.results import CellLock

RUN = ["run", "--models", "pca", "--epochs", "1", "--subset", "100", "--no-report",
       "--workers", "1", "--threads", "1", "--set", "eval.throughput_seconds=0.01",
       "--set", "eval.n_pairs=16"]  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _paper(tmp_path: Path) -> dict[Path, bytes]:
    paper = tmp_path / "paperfigs"
    paper.mkdir()
    files = {paper / "diagram.png": b"\x89PNG my diagram", paper / "fig1-of-my-paper.pdf": b"%PDF"}
    for p, data in files.items():
        p.write_bytes(data)
    return files


# ----------------------------------------------------------------------------- fileio


def test_writes_and_deletions_never_pass_a_linked_folder(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_bytes(b"mine")
    (root / "figures").symlink_to(elsewhere)
    with pytest.raises(fileio.UnsafePathError, match="figures is a symbolic link"):
        fileio.atomic_write_bytes(root / "figures" / "new.png", b"x", root)
    with pytest.raises(fileio.UnsafePathError, match="figures is a symbolic link"):
        fileio.remove_file(root / "figures" / "keep.txt", root)
    with pytest.raises(fileio.UnsafePathError, match="figures is a symbolic link"):
        fileio.open_lock(root / "figures" / "a.lock", root)
    with pytest.raises(fileio.UnsafePathError, match="not inside"):
        fileio.atomic_write_bytes(root / ".." / "escape.txt", b"x", root)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt"]
    assert (elsewhere / "keep.txt").read_bytes() == b"mine"
    assert not (tmp_path / "escape.txt").exists()
    # a deeper link, and real folders work (created on the way)
    fileio.atomic_write_bytes(root / "a" / "b" / "f.bin", b"ok", root)
    assert (root / "a" / "b" / "f.bin").read_bytes() == b"ok"
    assert fileio.remove_file(root / "a" / "b" / "f.bin", root)
    assert not fileio.remove_file(root / "a" / "b" / "f.bin", root)


def test_a_hard_link_at_a_lock_path_is_replaced_not_written(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious contents")
    lock_path = tmp_path / "cells" / "x.lock"
    lock_path.parent.mkdir()
    os.link(victim, lock_path)
    lock = CellLock(lock_path, tmp_path)
    assert lock.acquire()
    assert victim.read_bytes() == b"precious contents"
    assert os.stat(victim).st_nlink == 1 and os.stat(lock_path).st_nlink == 1
    lock.release()
    assert victim.read_bytes() == b"precious contents"


def test_run_never_truncates_a_hard_linked_lock(tmp_path: Path) -> None:
    """The issue's example: hard links planted at every cell's ``.lock`` path; `vaebench run`
    must leave the linked file as it was."""
    out = tmp_path / "run"
    first = CliRunner().invoke(cli, [*RUN, "--out", str(out)])
    assert first.exit_code == 0, first.output
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious contents")
    for cell in (out / "cells").glob("*.json"):
        cell.unlink()  # the cell runs again and takes its lock
        os.link(victim, cell.with_suffix(".lock"))
    again = CliRunner().invoke(cli, [*RUN, "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert victim.read_bytes() == b"precious contents"
    assert list((out / "cells").glob("*.json")) and not list((out / "cells").glob("*.lock"))


@pytest.mark.parametrize("folder", ["cells", "states", "manifests", "features"])
def test_run_refuses_a_linked_results_subfolder(tmp_path: Path, folder: str) -> None:
    out = tmp_path / "run"
    out.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "user.lock").write_bytes(b"user file")
    (out / folder).symlink_to(target)
    res = CliRunner().invoke(cli, [*RUN, "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert f"{folder} is a symbolic link" in res.output and res.output.count("\n") == 1
    assert sorted(p.name for p in target.iterdir()) == ["user.lock"]


def test_feature_cache_and_idx_download_stay_inside_their_folder(tmp_path: Path) -> None:
    from vaebench.data.idx import IdxFile, download_file
    from vaebench.metrics.features import _atomic_save

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "features").symlink_to(elsewhere)
    with pytest.raises(fileio.UnsafePathError):
        _atomic_save({"a": 1}, tmp_path / "run" / "features" / "net.pt")
    src = tmp_path / "src.gz"
    src.write_bytes(b"data")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "mnist").symlink_to(elsewhere)
    spec = IdxFile("x", md5="0" * 32, gz_md5="0" * 32)
    with pytest.raises(fileio.UnsafePathError):
        download_file(src.as_uri(), tmp_path / "cache" / "mnist" / "x.gz", spec)
    assert list(elsewhere.iterdir()) == []


# ----------------------------------------------------------------------------- report


def test_report_into_a_linked_figures_folder_deletes_nothing(tmp_path: Path) -> None:
    """The issue's example: OUT/figures links to a paper's figure folder and a report was
    interrupted (index incomplete): the next report must not delete the user's figures."""
    run = standard_run(tmp_path, figures=True)
    build_report([run], formats=["md"])
    index = json.loads((run / INDEX_NAME).read_text())
    index["complete"] = False  # as a report killed half-way leaves it
    (run / INDEX_NAME).write_text(json.dumps(index))
    for p in (run / "figures").iterdir():
        p.unlink()
    (run / "figures").rmdir()
    files = _paper(tmp_path)
    (run / "figures").symlink_to(tmp_path / "paperfigs")
    res = CliRunner().invoke(cli, ["report", str(run)])
    assert res.exit_code == 2, res.output
    assert "figures is a symbolic link" in res.output and res.output.count("\n") == 1
    for p, data in files.items():
        assert p.read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "paperfigs").iterdir()) == sorted(
        p.name for p in files
    )


def test_an_interrupted_report_then_a_user_file_is_kept(tmp_path: Path, monkeypatch) -> None:
    """After a report killed half-way only the files its journal proves it wrote (same bytes)
    are removed; a figure the user put into OUT/figures, or edited, stays."""
    from vaebench.report import page

    run = standard_run(tmp_path, figures=True)
    build_report([run], formats=["md"], figures=False)

    def killed(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(page, "render", killed)
    with pytest.raises(KeyboardInterrupt):
        build_report([run], formats=["md", "html"], figures=True)
    monkeypatch.undo()
    assert (run / JOURNAL_NAME).exists()
    html = run / "tables" / "toy-reconstruction.html"
    edited = run / "tables" / "tables.html"
    assert html.exists() and edited.exists()
    edited.write_text("the user's edit")
    (run / "figures" / "diagram.png").write_bytes(b"user figure")
    build_report([run], formats=["md"], figures=False)
    assert not html.exists()  # journalled, unchanged: removed
    assert edited.read_text() == "the user's edit"  # changed since: not provably ours
    assert (run / "figures" / "diagram.png").read_bytes() == b"user figure"
    assert not list((run / "figures").glob("toy-*.png"))  # journalled figures removed
    assert not (run / JOURNAL_NAME).exists()


def test_a_crafted_index_with_hashes_deletes_no_manifest_or_cell(tmp_path: Path) -> None:
    import hashlib

    run = standard_run(tmp_path)
    targets = [*sorted((run / "cells").glob("*.json"))[:1], *sorted((run / "manifests").glob("*"))]
    assert len(targets) == 2
    files = {p.relative_to(run).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in targets}  # fmt: skip
    files["figures/../manifests/x.json"] = "0" * 64
    (run / INDEX_NAME).write_text(json.dumps({
        "schema": "vaebench.report-index/2", "complete": True, "formats": ["md"],
        "figures": False, "files": files,
    }))  # fmt: skip
    build_report([run], formats=["md"], figures=False)
    for p in targets:
        assert p.exists(), p
