"""How a report writes its files: atomically, never through a link, and never leaving stale ones.

- every file goes through :func:`vaebench.results.atomic_write_bytes` (temp file in the same
  folder, fsync, ``os.replace``): readers see the old file or the whole new one, a kill or a
  full disk never leaves a truncated figure, and a symbolic link at the path is replaced by the
  file -- its target is never opened. The file honours the umask like an ordinary file.
- :func:`save_figure` renders a matplotlib figure to memory and writes it with
  :func:`atomic_write_bytes`.
- :class:`ReportIndex` (``OUT/report-index.json``) remembers which files the last report wrote,
  with the SHA-256 of each, so that the next one removes those it does not rewrite (a ``.tex``
  table of an earlier ``--format tex`` would otherwise keep numbers of fewer seeds) and knows
  which formats to keep up to date by default. A file is deleted only when vaebench can show it
  wrote it: it lies in ``OUT/tables`` or ``OUT/figures`` (real folders, not links: a report
  into a linked one is refused up front), has a report suffix, and its bytes still hash to what
  the index -- or, after a report killed half-way, the journal ``OUT/.report-journal`` kept
  while writing -- recorded. Whatever an edited index names, nothing else is deleted (issue 19).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vaebench import fileio
from vaebench.results import atomic_write_bytes

log = logging.getLogger("vaebench.report")

__all__ = ["INDEX_NAME", "INDEX_SCHEMA", "ReportIndex", "atomic_write_bytes", "save_figure"]

#: File (in the report folder) listing what the last report wrote.
INDEX_NAME = "report-index.json"
INDEX_SCHEMA = "vaebench.report-index/2"
#: Index schemas read; a ``/1`` index has no hashes, so none of its files is ever deleted.
READABLE_INDEX_SCHEMAS = ("vaebench.report-index/1", INDEX_SCHEMA)
#: Journal of the files a report in progress has written (``SHA256 RELPATH`` lines).
JOURNAL_NAME = ".report-journal"
#: The folders of ``OUT`` a report writes into and may delete from.
REPORT_FOLDERS = ("tables", "figures")
#: The report being written in this context (its files are recorded as they are written).
_ACTIVE: contextvars.ContextVar[ReportIndex | None] = contextvars.ContextVar("report", default=None)
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
    return write_figure(path, figure_bytes(fig, suffixes))


def write_figure(path: Path, files: Iterable[tuple[str, bytes]]) -> list[Path]:
    """Write a figure's ``files`` (``(suffix, bytes)`` from :func:`figure_bytes`) as ``path``
    plus each suffix through :func:`write_report_file`; the written paths."""
    # a stem may hold dots ("a.npz-bars")
    return [write_report_file(path.with_name(path.name + ext), data) for ext, data in files]


def figure_bytes(fig: Any, suffixes: Iterable[str] = (".png", ".pdf")) -> list[tuple[str, bytes]]:
    """``[(suffix, bytes), ...]``: ``fig`` saved in each format of ``suffixes`` with
    :data:`FIXED_METADATA` (what :func:`save_figure` writes). A figure made through pyplot is
    closed afterwards (even when saving fails)."""
    out = []
    try:
        for ext in suffixes:
            buf = io.BytesIO()
            fig.savefig(buf, format=ext[1:], metadata=FIXED_METADATA.get(ext))
            out.append((ext, buf.getvalue()))
    finally:
        if getattr(fig.canvas, "manager", None) is not None:
            import matplotlib.pyplot as plt

            plt.close(fig)
    return out


def write_report_file(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write one file of a report atomically (:func:`atomic_write_bytes`, text as UTF-8). While
    a report is being built (:meth:`ReportIndex.begin` to :meth:`ReportIndex.finish`) the file
    must lie inside its ``OUT``, reached through real folders only, and is recorded with its
    hash -- the proof, for the next report, that vaebench wrote it."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    index = _ACTIVE.get()
    if index is not None and not index.holds(path):  # another folder: a report left active
        index = None
    atomic_write_bytes(path, raw, index.out if index is not None else None)
    if index is not None:
        index.record(path, raw)
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _deletable(out: Path, rel: str) -> Path | None:
    """``out / rel`` when ``rel`` names a file a report writes: a plain relative path into
    ``OUT/tables`` or ``OUT/figures`` with a report suffix; else None (an edited index can
    never make a report delete a cell, a manifest or anything outside ``OUT``)."""
    p = Path(rel)
    if (
        not rel
        or p.is_absolute()
        or ".." in p.parts
        or len(p.parts) != 2
        or p.parts[0] not in REPORT_FOLDERS
        or p.suffix not in REPORT_SUFFIXES
    ):
        return None
    return out / p


class ReportIndex:
    """``OUT/report-index.json``: the formats, figures flag and files (relative to ``OUT``, each
    with its SHA-256) of the last report written into ``OUT``.

    Protocol of :func:`vaebench.report.build_report`: the constructor refuses (raises
    :class:`vaebench.fileio.UnsafePathError`) when ``OUT/tables`` or ``OUT/figures`` is a
    symbolic link; :meth:`begin` marks the index incomplete and starts the journal; every file
    written through :func:`write_report_file` is journalled with its hash; :meth:`finish`
    removes the files of the old report that this one did not write -- only those whose bytes
    still hash to what was recorded -- and records exactly the new ones. After a report killed
    half-way, the journal's files count as the previous report's too. Files there that no index
    or journal proves are vaebench's (left by an older vaebench, put there by hand, or changed
    since) are never removed; :meth:`finish` names those that this report did not rewrite.
    """

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        fileio.check_real_folders(self.out, *REPORT_FOLDERS)
        self.path = self.out / INDEX_NAME
        self.journal = self.out / JOURNAL_NAME
        self.previous = self._read()
        self.written: dict[str, str] = {}
        self._journal_fd: int | None = None
        self._token: contextvars.Token | None = None

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {"schema": INDEX_SCHEMA, "complete": False}
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("ignoring unreadable %s (%s)", self.path, exc)
            data = {"schema": INDEX_SCHEMA, "complete": False}
        if not isinstance(data, dict) or data.get("schema") not in READABLE_INDEX_SCHEMAS:
            log.warning("ignoring %s: not a vaebench report index", self.path)
            data = {"schema": INDEX_SCHEMA, "complete": False}
        files = data.get("files")
        formats = data.get("formats")
        hashes: dict[str, str] = {}
        if isinstance(files, dict):  # schema 2: {relpath: sha256}
            hashes = {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)}
        listed = (
            list(hashes)
            if isinstance(files, dict)
            else [f for f in files if isinstance(f, str)]
            if isinstance(files, list)
            else []
        )
        if data.get("complete") is not True:  # killed half-way: what it journalled is ours too
            for rel, digest in self._read_journal().items():
                hashes.setdefault(rel, digest)
                listed.append(rel)
        return {
            "files": sorted(set(listed)),
            "hashes": hashes,
            "formats": [f for f in formats if isinstance(f, str)]
            if isinstance(formats, list)
            else [],
            "figures": data.get("figures") is True,
        }

    def _read_journal(self) -> dict[str, str]:
        try:
            if self.journal.is_symlink():
                return {}
            text = self.journal.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return {}
        found = {}
        for line in text.splitlines():
            digest, _, rel = line.partition(" ")
            if len(digest) == 64 and rel:
                found[rel] = digest
        return found

    def _report_like_files(self) -> list[Path]:
        """Files in ``OUT/tables`` and ``OUT/figures`` with a suffix a report writes."""
        found = []
        for sub in REPORT_FOLDERS:
            folder = self.out / sub
            if folder.is_symlink() or not folder.is_dir():
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
        self, formats: Iterable[str], figures: bool, files: dict[str, str], complete: bool
    ) -> None:
        record = {
            "schema": INDEX_SCHEMA,
            "complete": complete,
            "formats": list(formats),
            "figures": figures,
            "files": dict(sorted(files.items())),
        }
        atomic_write_bytes(self.path, (json.dumps(record, indent=1) + "\n").encode(), self.out)

    def begin(self, formats: Iterable[str], figures: bool) -> None:
        """Record that a report into ``OUT`` has started (old files still listed), start the
        journal and make :func:`write_report_file` record into this index."""
        self._write(formats, figures, self.previous["hashes"], complete=False)
        fileio.remove_file(self.journal, self.out)  # the old one is merged into ``previous``
        self._journal_fd = fileio.open_lock(self.journal, self.out)
        os.ftruncate(self._journal_fd, 0)
        self._token = _ACTIVE.set(self)

    def record(self, path: Path, data: bytes) -> None:
        """Note that ``path`` (inside ``OUT``) now holds ``data``, in memory and the journal."""
        with contextlib.suppress(ValueError):
            rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(self.out)).as_posix()
            digest = _sha256(data)
            self.written[rel] = digest
            if self._journal_fd is not None:
                os.write(self._journal_fd, f"{digest} {rel}\n".encode())

    def holds(self, path: str | os.PathLike) -> bool:
        """Whether this report is being written and ``path`` lies inside its ``OUT``."""
        out = os.path.abspath(self.out)
        return self._journal_fd is not None and os.path.abspath(path).startswith(out + os.sep)

    def __del__(self) -> None:  # a report interrupted between begin and finish
        with contextlib.suppress(Exception):
            self._stop()

    def _stop(self) -> None:
        if self._token is not None:
            _ACTIVE.reset(self._token)
            self._token = None
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None

    def finish(self, formats: Iterable[str], figures: bool, written: Iterable[Path]) -> list[Path]:
        """Remove the old report's files that this report did not write and that vaebench can
        show it wrote (:func:`_deletable` and an unchanged hash), log each, record ``written``.
        Returns the removed paths."""
        self._stop()
        new: dict[str, str] = {}
        for p in written:
            with contextlib.suppress(ValueError):
                rel = Path(os.path.abspath(p)).relative_to(os.path.abspath(self.out)).as_posix()
                if rel not in self.written:  # written some other way: hash what is there
                    with contextlib.suppress(OSError):
                        self.written[rel] = _sha256(Path(p).read_bytes())
                if rel in self.written:
                    new[rel] = self.written[rel]
        removed = []
        hashes = self.previous["hashes"]
        for rel in sorted(set(self.previous_files) - set(new)):
            old = _deletable(self.out, rel)
            if old is None or rel not in hashes or old.is_symlink() or not old.is_file():
                continue
            try:
                if _sha256(old.read_bytes()) != hashes[rel]:
                    continue  # changed since vaebench wrote it: not ours to delete
                fileio.remove_file(old, self.out)
            except OSError as exc:
                log.warning("could not remove %s, left by an earlier report and now out of date: %s",
                            old, exc)  # fmt: skip
                continue
            removed.append(old)
        if removed:
            log.warning(
                "removed %d file(s) of the previous report that this report does not rewrite "
                "(they would show older results): %s",
                len(removed),
                ", ".join(p.relative_to(self.out).as_posix() for p in removed),
            )
        unknown = [p.relative_to(self.out).as_posix() for p in self._report_like_files()
                   if p.relative_to(self.out).as_posix() not in new]  # fmt: skip
        if unknown:
            log.warning(
                "%d file(s) in %s were not written by this report and may show older results "
                "(left by an earlier vaebench or put there by hand; delete them if stale): %s",
                len(unknown),
                self.out,
                ", ".join(unknown),
            )
        self._write(formats, figures, new, complete=True)
        fileio.remove_file(self.journal, self.out)
        return removed
