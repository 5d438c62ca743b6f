"""Figures are drawn again only when what they draw changed.

A report's figures of one dataset depend on that dataset's cells, the report's options (the
variants and their order, which fix the colours; the interval, confidence, alpha and baseline;
the Pareto axes), the file formats and the code that draws them. :func:`dataset_key` digests
all of these; ``OUT/figures/.figure-keys.json`` remembers, per dataset, the key its figures were
drawn under and the files drawn. When the key is unchanged and every file is still there (with
the size it had), the files are kept as they are instead of being drawn again -- drawing, and
PDF font subsetting above all, was 88 % of a default report's time.

A cell is identified by its file's name, size and SHA-256 digest -- its content, not its
modification time, so that a fresh clone or a copy of a results folder under the same folder
name (new modification times, the same files) keeps the figures committed with it, and its
``.figure-keys.json`` stays byte-identical (the key holds each cell's run name, so a copy under
another name draws again). Hashing is ~1.7 GB/s here: the 48 cells of results/reference (2.9 MB) in ~2 ms.
Deleting ``.figure-keys.json`` (or any figure) redraws.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vaebench.results import atomic_write_text

__all__ = ["FigureCache", "code_digest", "dataset_key"]

#: The cache file, inside ``OUT/figures``.
CACHE_NAME = ".figure-keys.json"

#: Modules whose code draws the figures: a change in any of them redraws everything.
DRAWING_MODULES = (
    "vaebench.report.figures",
    "vaebench.report.interpolation_figures",
    "vaebench.report.sweeps",
    "vaebench.report.build",
    "vaebench.report.content",
    "vaebench.report.layout",
    "vaebench.report.files",
    "vaebench.report.ranks",
)

_CODE: list[str] = []


def code_digest() -> str:
    """SHA-256 of the drawing modules' source (:data:`DRAWING_MODULES`), matplotlib's version
    and vaebench's version; computed once per process. Nothing is imported: the modules are
    found, not run, and matplotlib's version is read from its metadata (a report whose figures
    are all kept never loads matplotlib)."""
    if not _CODE:
        import importlib.util
        from importlib.metadata import version

        import vaebench

        h = hashlib.sha256()
        h.update(f"matplotlib {version('matplotlib')} vaebench {vaebench.__version__}".encode())
        for name in DRAWING_MODULES:
            spec = importlib.util.find_spec(name)
            path = spec.origin if spec is not None else None
            h.update(name.encode())
            if path:
                h.update(Path(path).read_bytes())
        _CODE.append(h.hexdigest())
    return _CODE[0]


def _file_id(path: Any) -> list[Any]:
    """File name, size and SHA-256 of the content (not the folder, not the modification time:
    a copied or freshly cloned results folder keeps the key, and so the report folder's
    bytes)."""
    if not path:
        return [None]
    try:
        data = Path(path).read_bytes()  # a cell file: kilobytes (hashlib.file_digest: 3.11+)
    except OSError:
        return [Path(path).name, None]
    return [Path(path).name, len(data), hashlib.sha256(data).hexdigest()]


def dataset_key(
    cells: Iterable[dict[str, Any]], options: dict[str, Any], suffixes: Sequence[str]
) -> str:
    """SHA-256 over a dataset's ``cells`` (their run folder's name, ``config_hash``, ``variant``
    and file identity: name, size, content digest), the report ``options`` that shape its figures (JSON-able),
    the figure ``suffixes`` and :func:`code_digest`."""
    ids = sorted(
        [
            str(c.get("run")),
            str(c.get("config_hash")),
            str(c.get("variant")),
            *map(str, _file_id(c.get("_path"))),
        ]
        for c in cells
    )
    blob = json.dumps(
        {"cells": ids, "options": options, "suffixes": list(suffixes), "code": code_digest()},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class FigureCache:
    """``OUT/figures/.figure-keys.json``: ``{dataset: {"key": ..., "files": [[name, size], ...]}}``,
    the files in the order they were drawn (report.md shows them in that order, whether they
    are drawn or kept)."""

    def __init__(self, fig_dir: Path, name: str = CACHE_NAME) -> None:
        self.fig_dir = Path(fig_dir)
        self.path = self.fig_dir / name
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.entries: dict[str, Any] = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            self.entries = {}
        self.new: dict[str, Any] = {}

    def reuse(self, dataset: str, key: str) -> list[Path] | None:
        """The files drawn for ``dataset`` under ``key``, when all are still there unchanged
        in size; else None (draw them)."""
        entry = self.entries.get(dataset)
        if not isinstance(entry, dict) or entry.get("key") != key:
            return None
        files = entry.get("files")
        if not isinstance(files, list) or not all(
            isinstance(f, list) and len(f) == 2 and isinstance(f[0], str) for f in files
        ):
            return None
        out = []
        for name, size in files:
            p = self.fig_dir / str(name)
            if Path(name).name != name or not p.is_file() or p.is_symlink():
                return None
            if p.stat().st_size != size:
                return None
            out.append(p)
        self.new[dataset] = entry
        return out

    def record(self, dataset: str, key: str, files: Iterable[Path]) -> None:
        self.new[dataset] = {
            "key": key,
            "files": [[p.name, p.stat().st_size] for p in files if p.parent == self.fig_dir],
        }

    def save(self) -> None:
        """Write the entries of this report (datasets no longer drawn are dropped)."""
        if self.new != self.entries:
            self.fig_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self.new, indent=1, sort_keys=True) + "\n")
