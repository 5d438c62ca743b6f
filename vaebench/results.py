"""The store: cell files and run folders, read and written (the record's schema is
:mod:`vaebench.record`; the environment it carries, :mod:`vaebench.environment`).

Layout of a run folder::

    RUN/
      cells/MODEL--DATASET--seedS--KEY.json    one per cell (status ok, failed or skipped)
      cells/MODEL--DATASET--seedS--KEY.lock    claimed by the process working on the cell
      states/MODEL--DATASET--seedS--KEY.pt     trained state_dict (never committed to git)
      manifests/TIMESTAMP-PID-RANDOM.json      one per `vaebench run`/`evaluate` invocation
      features/                                cached feature networks of sample metrics

Every cell file holds one record of :data:`vaebench.record.SCHEMA` (its training identity,
``config_hash``, loss curve, environment and one evaluation per metric plugin; see
:class:`vaebench.record.CellRecord`). Reading checks it (:func:`vaebench.record.checked_record`:
schema-1 files are migrated in memory, unknown schemas refused, corrupt files named); writing
drops the fields reading derives. Reports are pure functions of these files.

Crash safety: every file is written to a temp file in the same folder (``.NAME.PID.HOST.*.tmp``)
and renamed into place by :mod:`vaebench.fileio`'s one atomic writer, so a reader sees the old
file or the whole new one. Temp files are ignored by readers and removed by the next run once
their writer is gone. Cell locks are ``flock`` locks held by the kernel, so a process killed
with SIGKILL leaves no live lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vaebench import fileio
from vaebench.errors import DiskFullError, ResultsError, SchemaMismatchError
from vaebench.record import (
    DERIVED_FIELDS,
    MANIFEST_SCHEMA,
    READABLE_MANIFEST_SCHEMAS,
    SCHEMA,
    checked_record,
    to_json,
)

try:  # POSIX: kernel-held locks that die with their process
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("vaebench.results")

__all__ = [
    "ResultsError",
    "SchemaMismatchError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "cell_stem",
    "CellLock",
    "check_results_folder",
    "checked_cell_name",
    "dataset_fingerprints",
    "is_enospc",
    "iter_cell_paths",
    "iter_cells",
    "latest_manifest_config",
    "run_name",
    "load_cells",
    "raise_if_disk_full",
    "read_cell",
    "remove_stale_locks",
    "remove_stale_temp_files",
    "staging_dir",
    "write_cell",
]

_HOST = socket.gethostname()
_STAGING_RE = re.compile(r"^\.staging\.(?P<pid>[0-9]+)\.(?P<host>[0-9a-f]{8})$")


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a process we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------- atomic writes


def atomic_write_bytes(
    path: str | os.PathLike, data: bytes, root: str | os.PathLike | None = None
) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a
    part: :func:`vaebench.fileio.atomic_writer` (temp file in the same folder, fsync,
    ``os.replace``; a link at ``path`` is replaced, its target never written; with ``root``,
    every folder from ``root`` down is reached through no link).

    - The temp file is named ``.NAME.PID.HOSTTAG.RANDOM.tmp``: readers skip dot-files, and
      :func:`remove_stale_temp_files` deletes those whose writer no longer runs.
    - The file gets the permissions an ordinary ``open(path, "w")`` would give.
    - A full disk raises :class:`vaebench.errors.DiskFullError` naming the folder; the old file
      (if any) is left as it was.
    """
    path = Path(path)
    try:
        fileio.atomic_write_bytes(path, data, root)
    except OSError as exc:
        raise_if_disk_full(exc, path.parent)
        raise


def atomic_write_text(
    path: str | os.PathLike, text: str, root: str | os.PathLike | None = None
) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text with ``\\n`` line ends."""
    atomic_write_bytes(path, text.encode("utf-8"), root)


def staging_dir(parent: str | os.PathLike) -> Path:
    """A private folder ``PARENT/.staging.PID.HOSTTAG`` for files written by code we do not
    control (e.g. :meth:`vaebench.model.Model.save`); move finished files out with
    ``os.replace``. Left-overs of dead processes are removed by :func:`remove_stale_temp_files`.
    """
    path = Path(parent) / f".staging.{os.getpid()}.{fileio.HOST_TAG}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete temp files and staging folders under ``folder`` left by dead writers on this host.

    Only names written by :func:`atomic_write_text` and :func:`staging_dir` are touched, and only
    when the process that made them no longer runs; a concurrent writer's files are kept.
    Returns what was removed.
    """
    removed: list[Path] = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for dirpath, dirnames, filenames in os.walk(root):
        for name in list(dirnames):
            m = _STAGING_RE.match(name)
            if m and m["host"] == fileio.HOST_TAG and not _pid_alive(int(m["pid"])):
                p = Path(dirpath) / name
                shutil.rmtree(p, ignore_errors=True)
                dirnames.remove(name)
                removed.append(p)
        for name in filenames:
            m = fileio.TEMP_FILE_RE.match(name)
            if m and m["host"] == fileio.HOST_TAG and not _pid_alive(int(m["pid"])):
                p = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
    return removed


def atomic_write_json(
    path: str | os.PathLike, obj: Any, root: str | os.PathLike | None = None
) -> None:
    """Write ``obj`` as :func:`vaebench.record.to_json` text (sorted keys, NaN/inf as null)
    with :func:`atomic_write_text` (its errors, and ``TypeError`` for what JSON cannot hold)."""
    atomic_write_text(path, to_json(obj), root)


# ----------------------------------------------------------------------------- cells


def _safe(name: str) -> str:
    """A model or dataset name as a cell's file name holds it: letters, digits and ._+=@- stay
    (every built-in name); anything else -- a path's slashes, shell or markup characters,
    control characters -- becomes "_"."""
    return "".join(ch if ch.isalnum() or ch in "._+=@-" else "_" for ch in name)


def _cut(name: str) -> str:
    """The start of :func:`_safe` ``(name)`` that a stem too long for a file keeps."""
    return _safe(name).encode()[:60].decode("utf-8", "ignore")


def cell_stem(model: str, dataset: str, seed: int, config_hash: str) -> str:
    """File name (without extension) of a cell: ``MODEL--DATASET--seedS--HASH``."""
    stem = f"{_safe(model)}--{_safe(dataset)}--seed{seed}--{config_hash}"
    if len(stem.encode()) <= MAX_STEM_BYTES:
        return stem
    # a name too long for a file (255 bytes with the temp-file and lock decorations): the
    # names are cut and a hash of both whole names keeps stems of different names apart
    tag = hashlib.sha256(f"{model}\0{dataset}".encode()).hexdigest()[:8]
    return f"{_cut(model)}--{_cut(dataset)}~{tag}--seed{seed}--{config_hash}"


def dataset_fingerprints(run_dir: str | os.PathLike, dataset: str) -> set[str]:
    """The content fingerprints (:meth:`vaebench.dataset.Dataset.fingerprint`) that the
    finished cells of ``dataset`` in ``run_dir`` were trained on. Reads only the cell files
    whose name may hold that dataset; unreadable ones are passed over (a run reports them)."""
    mark = f"--{_cut(dataset)}"
    out = set()
    for path in iter_cell_paths(run_dir):
        if mark not in path.name:
            continue
        try:
            cell = read_cell(path)
        except ResultsError:
            continue
        fingerprint = (cell.get("config") or {}).get("dataset_fingerprint")
        if cell.get("dataset") == dataset and cell.get("status") == "ok" and fingerprint:
            out.add(str(fingerprint))
    return out


#: Longest cell stem in bytes: 255 (a file name's limit on common file systems) less the
#: temp-file decoration ``.STEM.json.PID.HOSTTAG.RANDOM.tmp`` (about 50 bytes).
MAX_STEM_BYTES = 190


class CellLock:
    """Claim a cell so that no two processes work on it at once.

    On POSIX the claim is an exclusive ``flock`` on ``path``: the kernel drops it when the
    holder exits in any way (SIGKILL included), so there are no stale locks to take over -- a
    lock file left behind is simply locked again. The holder writes ``hostname:pid`` into the
    file for humans and deletes the file on release *before* unlocking; an acquirer that wins
    the lock on a file that has meanwhile been deleted or replaced starts again, so two
    processes never both hold "the" lock of one path.

    Without ``fcntl`` (Windows) the lock is an exclusively created file holding
    ``hostname:pid``; a lock whose process no longer runs on this host is stale and taken over.
    """

    def __init__(self, path: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        #: folder the lock must stay inside (reached through no link); None: the lock's folder
        self.root = root
        self.held = False
        self._fd: int | None = None

    def owner(self) -> str:
        """``hostname:pid`` of the holder as written in the lock file ('' if unknown)."""
        try:
            return self.path.read_text().strip()
        except (OSError, UnicodeDecodeError):
            return ""

    def acquire(self, blocking: bool = False) -> bool:
        """Take the lock; return ``False`` when another process holds it (``blocking=False``)
        or wait until it is free (``blocking=True``)."""
        if self.held:
            raise RuntimeError(f"lock {self.path} is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover - Windows
            return self._acquire_by_exclusive_create(blocking)
        while True:
            fd = self._open()
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                except BlockingIOError:
                    os.close(fd)
                    return False
                # the holder we waited for may have deleted the file (release) and someone may
                # have created a new one: our lock only counts if we locked what is at the path
                try:
                    on_disk = os.stat(self.path)
                except FileNotFoundError:
                    os.close(fd)
                    continue
                mine = os.fstat(fd)
                if (on_disk.st_dev, on_disk.st_ino) != (mine.st_dev, mine.st_ino):
                    os.close(fd)
                    continue
                os.ftruncate(fd, 0)
                os.write(fd, f"{_HOST}:{os.getpid()}\n".encode())
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise
            self._fd = fd
            self.held = True
            return True

    def _open(self) -> int:
        """Open (creating) the lock file through :func:`vaebench.fileio.open_lock`: never
        through a symbolic link or a file with other hard links (either is replaced by a lock
        file of its own, its target untouched), and with ``root``, through real folders only."""
        try:
            return fileio.open_lock(self.path, self.root)
        except OSError as exc:
            raise_if_disk_full(exc, self.path.parent)
            raise

    def _acquire_by_exclusive_create(self, blocking: bool) -> bool:  # pragma: no cover
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                host, _, pid = self.owner().rpartition(":")
                stale = host == _HOST and pid.isdigit() and not _pid_alive(int(pid))
                if stale:
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    continue
                if not blocking:
                    return False
                time.sleep(0.2)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{_HOST}:{os.getpid()}\n")
            self.held = True
            return True

    def release(self) -> None:
        """Give the lock up (and delete the lock file); a no-op when not held."""
        if not self.held:
            return
        fd, self._fd, self.held = self._fd, None, False
        try:
            fileio.remove_file(self.path, self.root)  # before unlocking: see the class docstring
        finally:
            if fd is not None:
                os.close(fd)  # closing drops the flock, even if a signal hit the unlink

    def __enter__(self) -> CellLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def remove_stale_locks(
    folder: str | os.PathLike, root: str | os.PathLike | None = None
) -> list[Path]:
    """Delete the ``*.lock`` files in ``folder`` that no process holds (left by a process
    killed after saving its cell); returns them. A held lock is never touched; with ``root``,
    ``folder`` must be a real folder inside it (:class:`vaebench.fileio.UnsafePathError`)."""
    removed = []
    if root is not None:
        fileio.check_real_folders(root, os.path.relpath(folder, root))
    for path in sorted(Path(folder).glob("*.lock")):
        if path.is_symlink():  # never ours: remove the link, leave its target alone
            fileio.remove_file(path, root)
            removed.append(path)
            continue
        lock = CellLock(path, root)
        if lock.acquire():
            lock.release()  # deletes the file
            removed.append(path)
    return removed


# ----------------------------------------------------------------------------- reading


def read_cell(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check one cell file; corrupt or foreign files raise :class:`ResultsError`
    (:class:`SchemaMismatchError` for a schema this vaebench cannot read), naming the file.

    The record is :func:`vaebench.record.checked_record`'s (schema-1 files migrated in memory,
    the flat views added), with ``_path``; :func:`write_cell` drops them again.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"cannot read result file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"corrupt result file {path}: {exc}") from None
    except RecursionError:
        raise ResultsError(f"corrupt result file {path}: nested too deeply") from None
    data = checked_record(data, path)
    data["_path"] = str(path)
    return data


def write_cell(
    path: str | os.PathLike, record: dict[str, Any], root: str | os.PathLike | None = None
) -> None:
    """Write a cell record atomically (:func:`atomic_write_json`, inside ``root`` through no
    link), without the derived fields :func:`read_cell` adds."""
    atomic_write_json(path, {k: v for k, v in record.items() if k not in DERIVED_FIELDS}, root)


def iter_cell_paths(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Cell files of a run folder in name order (temp and lock files are skipped)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ResultsError(f"results folder not found: {run}")
    cells = run / "cells"
    if not cells.is_dir():
        raise ResultsError(f"{run} is not a vaebench results folder (no cells/ inside)")
    paths = sorted(p for p in cells.glob("*.json") if not p.name.startswith(".") and p.is_file())
    for p in paths:
        checked_cell_name(p.name, cells)
    yield from paths


def checked_cell_name(name: str, folder: str | os.PathLike) -> str:
    """``name``, a file in the cells folder ``folder``; :class:`ResultsError` when it is not
    valid UTF-8 (no file vaebench writes: tables and the index could not hold the name), so
    that both ways of reading a folder refuse it alike, naming it."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ResultsError(
            f"{folder}: cell file name {name!r} is not valid UTF-8 (vaebench never writes such "
            "a name); rename or remove the file"
        ) from None
    return name


def iter_cells(run_dir: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every cell of a run folder, checked by :func:`read_cell`."""
    for p in iter_cell_paths(run_dir):
        yield read_cell(p)


def run_name(run_dir: str | os.PathLike) -> str:
    """The name a run folder's cells are reported under (the ``run`` column of the tables):
    the folder's own name, taken from its absolute path so that ``.`` or ``results/..`` name
    the folder they stand for. A symbolic link to a run folder gives its own name; a path
    with ``..`` is resolved as the system does (``link/..`` is the parent of the link's
    target, not the folder holding the link)."""
    path = os.fspath(run_dir)
    if ".." in Path(path).parts:
        return Path(os.path.realpath(path)).name
    return Path(os.path.abspath(path)).name


def load_cells(*run_dirs: str | os.PathLike) -> list[dict[str, Any]]:
    """All cells of the given run folders (each tagged with ``run``, :func:`run_name`).

    A folder may hold several configurations of one model, dataset and seed (variants, told
    apart by ``config_hash``). Raises :class:`ResultsError` naming the file for a corrupt or
    foreign one: a report never silently leaves a cell out.
    """
    if not run_dirs:
        raise ResultsError("no results folder given")
    out = []
    for d in run_dirs:
        for cell in iter_cells(d):
            cell["run"] = run_name(d)
            out.append(cell)
    return out


def check_results_folder(run_dir: str | os.PathLike) -> list[Path]:
    """Check that ``run_dir`` can take results of this vaebench before a run writes into it.

    Raises :class:`ResultsError` when it is not a folder and :class:`SchemaMismatchError` when
    it holds manifests or cells of another schema version (mixing them would make the folder
    unreadable as a whole). Returns the corrupt cell files found (a run reruns those cells).
    """
    run = Path(run_dir)
    if run.exists() and not run.is_dir():
        raise ResultsError(f"results folder {run} exists and is not a folder")
    for p in sorted(run.glob("manifests/*.json")):
        if p.name.startswith("."):
            continue
        try:
            schema = json.loads(p.read_text(encoding="utf-8")).get("schema")
        except (OSError, ValueError, AttributeError):
            continue  # a manifest is informational; an unreadable one blocks nothing
        if schema not in READABLE_MANIFEST_SCHEMAS:
            raise SchemaMismatchError(
                f"results folder {run} was written by another vaebench (manifest {p.name} has "
                f"schema {schema!r}, this vaebench writes {MANIFEST_SCHEMA!r}); use a new --out "
                "folder"
            )
    corrupt = []
    if (run / "cells").is_dir():
        for p in iter_cell_paths(run):
            try:
                read_cell(p)
            except SchemaMismatchError:
                schema = json.loads(p.read_text(encoding="utf-8")).get("schema")
                raise SchemaMismatchError(
                    f"results folder {run} holds results of another vaebench version ({p.name} "
                    f"has schema {schema!r}, this vaebench writes {SCHEMA!r}); use a new --out "
                    "folder"
                ) from None
            except ResultsError:
                corrupt.append(p)
    return corrupt


def latest_manifest_config(
    run_dir: str | os.PathLike, kind: str | None = None
) -> dict[str, Any] | None:
    """The configuration in the most recently written manifest of ``run_dir``, or ``None`` when
    the folder has none. ``kind="run"``: of the last ``vaebench run`` (what ``--resume``
    continues: an ``evaluate`` manifest holds the evaluation settings only, not the grid that
    was trained); ``None``: of any command (what ``evaluate`` starts from). Raises
    :class:`ResultsError` for a missing folder or an unreadable, foreign or config-less
    manifest."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise ResultsError(f"{run_dir}: no such folder")
    manifests = [p for p in folder.glob("manifests/*.json") if not p.name.startswith(".")]
    # the last active command first (a running manifest is rewritten while it runs)
    for path in sorted(manifests, key=lambda p: (p.stat().st_mtime, p.name), reverse=True):
        data = _read_manifest(path)
        if kind is None or data.get("kind", "run") == kind:
            config = data.get("config")
            if not isinstance(config, dict):
                raise ResultsError(f"manifest {path} holds no config")
            return config
    return None


def _read_manifest(newest: Path) -> dict[str, Any]:
    """A manifest's content; :class:`ResultsError` when unreadable or foreign."""
    try:
        data = json.loads(newest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ResultsError(f"unreadable manifest {newest} ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") not in READABLE_MANIFEST_SCHEMAS:
        schema = data.get("schema") if isinstance(data, dict) else None
        raise SchemaMismatchError(
            f"manifest {newest} has schema {schema!r}; this vaebench reads "
            f"{', '.join(READABLE_MANIFEST_SCHEMAS)}"
        )
    return data


def is_enospc(exc: BaseException) -> bool:
    """Whether ``exc`` means the disk is full (``ENOSPC``/``EDQUOT``, also when wrapped, e.g. by
    torch's ``inline_container`` writer, whose message names the OS error)."""
    if isinstance(exc, DiskFullError):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


def raise_if_disk_full(exc: BaseException, folder: str | os.PathLike) -> None:
    """Re-raise ``exc`` as :class:`vaebench.errors.DiskFullError` naming ``folder`` when it
    means the disk is full; otherwise return."""
    if is_enospc(exc) and not isinstance(exc, DiskFullError):
        raise DiskFullError(
            errno.ENOSPC, f"no space left on device while writing to {folder}"
        ) from exc
