"""How a report writes its files: atomically, never through a link, and never leaving stale ones.

- every file goes through :func:`vaebench.results.atomic_write_bytes` (temp file in the same
  folder, fsync, ``os.replace``): readers see the old file or the whole new one, a kill or a
  full disk never leaves a truncated figure, and a symbolic link at the path is replaced by the
  file -- its target is never opened. The file honours the umask like an ordinary file.
- :func:`save_figure` renders a matplotlib figure to memory and writes it with
  :func:`atomic_write_bytes`.
- :class:`ReportIndex` (``OUT/report-index.json``) remembers which files the last report wrote,
  so that the next one removes those it does not rewrite (a ``.tex`` table of an earlier
  ``--format tex`` would otherwise keep numbers of fewer seeds) and knows which formats to keep
  up to date by default.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vaebench.results import atomic_write_bytes, atomic_write_text

log = logging.getLogger("vaebench.report")

__all__ = ["INDEX_NAME", "INDEX_SCHEMA", "ReportIndex", "atomic_write_bytes", "save_figure"]

#: File (in the report folder) listing what the last report wrote.
INDEX_NAME = "report-index.json"
INDEX_SCHEMA = "vaebench.report-index/1"
#: Suffixes of the files a report writes into ``OUT/tables`` and ``OUT/figures``.
REPORT_SUFFIXES = (".md", ".tex", ".html", ".csv", ".png", ".pdf")


#: Metadata that would change on every save (dates, library versions): left out so that the
#: same results give the same bytes.
FIXED_METADATA = {
    ".png": {"Software": None},
    ".pdf": {"Creator": None, "Producer": None, "CreationDate": None},
}


def save_figure(
    fig: Any, path: str | os.PathLike, suffixes: Iterable[str] = (".png", ".pdf")
) -> list[Path]:
    """Write ``fig`` as ``path`` plus each suffix (PNG and PDF by default; a ``.png`` or
    ``.pdf`` already on ``path`` is dropped first, any other dot stays part of the name) through
    :func:`atomic_write_bytes`, with :data:`FIXED_METADATA`. A figure made through pyplot is
    closed afterwards (even when writing fails); one made as a plain
    :class:`matplotlib.figure.Figure` is left as it is (the caller may show it). Returns the
    paths written."""
    path = Path(path)
    if path.suffix.lower() in FIXED_METADATA:
        path = path.with_suffix("")
    out = []
    try:
        for ext in suffixes:
            buf = io.BytesIO()
            fig.savefig(buf, format=ext[1:], metadata=FIXED_METADATA.get(ext))
            p = path.with_name(path.name + ext)  # a stem may hold dots ("a.npz-bars")
            atomic_write_bytes(p, buf.getvalue())
            out.append(p)
    finally:
        if getattr(fig.canvas, "manager", None) is not None:
            import matplotlib.pyplot as plt

            plt.close(fig)
    return out


def _inside(out: Path, rel: str) -> Path | None:
    """``out / rel`` when ``rel`` is a plain relative path inside ``out`` (no ``..``, not
    absolute), else None: an edited index can never make a report delete elsewhere."""
    p = Path(rel)
    if not rel or p.is_absolute() or ".." in p.parts or p.parts[0] in ("cells", "states"):
        return None
    return out / p


class ReportIndex:
    """``OUT/report-index.json``: the formats, figures flag and files (relative to ``OUT``) of
    the last report written into ``OUT``.

    Protocol of :func:`vaebench.report.build_report`: :meth:`begin` marks the index
    incomplete before anything is written; :meth:`finish` removes the files of the old report
    that this one did not write and records exactly the new ones. After a report that was
    killed half-way (index still incomplete), every table and figure file in ``OUT/tables`` and
    ``OUT/figures`` counts as the previous report's. Files there that no index lists (left by a
    vaebench without an index, or put there by hand) are never removed; :meth:`finish` names
    those that this report did not rewrite in a warning.
    """

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        self.path = self.out / INDEX_NAME
        self.previous = self._read()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("ignoring unreadable %s (%s)", self.path, exc)
            return {}
        if not isinstance(data, dict) or data.get("schema") != INDEX_SCHEMA:
            log.warning("ignoring %s: not a vaebench report index", self.path)
            return {}
        files = data.get("files")
        formats = data.get("formats")
        listed = [f for f in files if isinstance(f, str)] if isinstance(files, list) else []
        if data.get("complete") is not True:
            listed += [p.relative_to(self.out).as_posix() for p in self._report_like_files()]
        return {
            "files": sorted(set(listed)),
            "formats": [f for f in formats if isinstance(f, str)]
            if isinstance(formats, list)
            else [],
            "figures": data.get("figures") is True,
        }

    def _report_like_files(self) -> list[Path]:
        """Files in ``OUT/tables`` and ``OUT/figures`` with a suffix a report writes."""
        found = []
        for sub in ("tables", "figures"):
            folder = self.out / sub
            if not folder.is_dir():
                continue
            for p in sorted(folder.iterdir()):
                if (
                    not p.name.startswith(".")
                    and p.suffix in REPORT_SUFFIXES
                    and (p.is_symlink() or p.is_file())
                ):
                    found.append(p)
        return found

    @property
    def previous_formats(self) -> list[str]:
        return list(self.previous.get("formats", []))

    @property
    def previous_files(self) -> list[str]:
        return list(self.previous.get("files", []))

    def _write(
        self, formats: Iterable[str], figures: bool, files: Iterable[str], complete: bool
    ) -> None:
        record = {
            "schema": INDEX_SCHEMA,
            "complete": complete,
            "formats": list(formats),
            "figures": figures,
            "files": sorted(set(files)),
        }
        atomic_write_text(self.path, json.dumps(record, indent=1) + "\n")

    def begin(self, formats: Iterable[str], figures: bool) -> None:
        """Record that a report into ``OUT`` has started (old files still listed)."""
        self._write(formats, figures, self.previous_files, complete=False)

    def finish(self, formats: Iterable[str], figures: bool, written: Iterable[Path]) -> list[Path]:
        """Remove the old report's files that this report did not write (a symbolic link is
        removed itself, never its target), log each, record ``written``. Returns the removed
        paths."""
        new = set()
        for p in written:
            with contextlib.suppress(ValueError):
                new.add(Path(p).relative_to(self.out).as_posix())
        removed = []
        for rel in sorted(set(self.previous_files) - new):
            p = _inside(self.out, rel)
            if p is None or not (p.is_symlink() or p.is_file()):
                continue
            try:
                p.unlink()
            except OSError as exc:
                log.warning("could not remove %s, left by an earlier report and now out of date: %s",
                            p, exc)  # fmt: skip
                continue
            removed.append(p)
        if removed:
            log.warning(
                "removed %d file(s) of the previous report that this report does not rewrite "
                "(they would show older results): %s",
                len(removed),
                ", ".join(p.relative_to(self.out).as_posix() for p in removed),
            )
        listed = set(self.previous_files) | new
        unknown = [p.relative_to(self.out).as_posix() for p in self._report_like_files()
                   if p.relative_to(self.out).as_posix() not in listed]  # fmt: skip
        if unknown:
            log.warning(
                "%d file(s) in %s were not written by this report and may show older results "
                "(left by an earlier vaebench or put there by hand; delete them if stale): %s",
                len(unknown),
                self.out,
                ", ".join(unknown),
            )
        self._write(formats, figures, new, complete=True)
        return removed
