"""A synthetic results folder of N cells, for the scale benchmarks (issue 25).

    python tests/benchmarks/make_cells.py OUT 100000

The template is one real cell (``pca`` on ``digits``, metric ``reconstruction``: 22 KB with its
image strips) trained here with ``vaebench run``; every synthetic cell is that record with its
own seed and configuration hash, so the folder reads like a 100 000-seed grid. Files are
written plainly (no fsync): this is a fixture, not a run.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def template_cell() -> dict:
    """One real cell record, trained in a temporary folder by ``vaebench run``."""
    with tempfile.TemporaryDirectory(prefix="vaebench-template-") as tmp:
        cmd = [sys.executable, "-c", "from vaebench.cli import console; console()", "-q", "run",
               "-m", "pca", "-d", "digits", "--metrics", "reconstruction", "--workers", "1",
               "--threads", "1", "--no-report", "--no-progress", "--out", tmp]  # fmt: skip
        subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
        (path,) = Path(tmp, "cells").glob("*.json")
        return json.loads(path.read_text())


def make_folder(out: str | Path, n: int, template: dict | None = None) -> Path:
    """Write ``n`` cells (seeds 0..n-1 of the template) into ``out/cells``; returns ``out``."""
    from vaebench.results import cell_stem

    out = Path(out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    rec = template or template_cell()
    for seed in range(n):
        config_hash = hashlib.sha256(f"synthetic {seed}".encode()).hexdigest()[:12]
        rec["seed"], rec["config_hash"] = seed, config_hash
        rec["config"]["seed"] = seed
        stem = cell_stem(rec["model"], rec["dataset"], seed, config_hash)
        (out / "cells" / f"{stem}.json").write_text(json.dumps(rec))
    return out


if __name__ == "__main__":
    make_folder(sys.argv[1], int(sys.argv[2]))
