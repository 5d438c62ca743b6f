"""The committed reference results regenerate their committed tables byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

from vaebench.report import build_report

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference"


def test_reference_tables_regenerate_byte_for_byte(tmp_path: Path) -> None:
    copy = tmp_path / REFERENCE.name
    shutil.copytree(REFERENCE / "cells", copy / "cells")
    shutil.copytree(REFERENCE / "manifests", copy / "manifests")
    build_report([copy], formats=["md", "tex", "csv"], figures=False)
    committed = sorted(p.name for p in (REFERENCE / "tables").iterdir() if p.is_file())
    regenerated = sorted(p.name for p in (copy / "tables").iterdir() if p.is_file())
    assert regenerated == committed
    for name in committed:
        assert (copy / "tables" / name).read_bytes() == (
            REFERENCE / "tables" / name
        ).read_bytes(), (
            f"tables/{name} differs: regenerate with `vaebench report results/reference "
            "--format md,tex,csv` and commit"
        )
