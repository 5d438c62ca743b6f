"""vaebench's one way of writing, locking and deleting files (imports nothing else of vaebench).

Every file vaebench writes goes through :func:`atomic_writer` (or :func:`atomic_write_bytes`):
a temp file in the same folder, fsync, ``os.replace``, so readers see the old file or the whole
new one. Lock files, the only files opened for writing in place, go through :func:`open_lock`,
and deletions through :func:`remove_file`. All three take a ``root`` (the results folder, the
report folder, the data folder, ...): the path must lie inside ``root`` and every folder between
``root`` and the file is opened with ``O_NOFOLLOW`` relative to its parent's descriptor, so a
symbolic link anywhere below ``root`` -- planted before or during the call -- makes the call
raise :class:`UnsafePathError` instead of writing or deleting elsewhere. ``root`` itself may be
a link (it is the user's own choice of folder). A symbolic link or hard link *at* the file's
path is replaced, never written through.

Without ``root`` only the file's own folder is trusted as given (the contract of
:meth:`vaebench.model.Model.save`, which receives a bare path).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

log = logging.getLogger("vaebench.fileio")

__all__ = [
    "HOST_TAG",
    "TEMP_FILE_RE",
    "UnsafePathError",
    "atomic_write_bytes",
    "atomic_writer",
    "check_real_folders",
    "current_umask",
    "open_lock",
    "remove_file",
]

#: Short tag of this host for temp-file names (host names may contain dots).
HOST_TAG = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
#: Names of the temp files :func:`atomic_writer` makes: ``.NAME.PID.HOSTTAG.RANDOM.tmp``.
TEMP_FILE_RE = re.compile(r"^\..+\.(?P<pid>[0-9]+)\.(?P<host>[0-9a-f]{8})\.[^.]*\.tmp$")

#: ``os.O_BINARY`` where it exists (Windows), else 0.
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
#: Whether folders can be walked by descriptor (POSIX); elsewhere each folder is checked with
#: ``lstat`` just before use (not race-free).
_DIR_FD = os.open in os.supports_dir_fd and os.unlink in os.supports_dir_fd and bool(_O_NOFOLLOW)


class UnsafePathError(ValueError):
    """A write or deletion would leave its root folder: the path lies outside it, or a folder
    on the way is a symbolic link (or not a folder). The message names both."""


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux
    ``/proc/self/status``); elsewhere set and restored at once."""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii") as fh,
    ):
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _split(
    path: str | os.PathLike, root: str | os.PathLike | None
) -> tuple[str, tuple[str, ...], str]:
    """``(root, folders below root, file name)`` of ``path``; raises :class:`UnsafePathError`
    when ``path`` is not strictly inside ``root`` (compared lexically, after ``abspath``)."""
    p = os.path.abspath(os.fspath(path))
    r = os.path.dirname(p) if root is None else os.path.abspath(os.fspath(root))
    rel = os.path.relpath(p, r)
    parts = Path(rel).parts
    if not parts or rel == os.curdir or parts[0] == os.pardir or os.path.isabs(rel):
        raise UnsafePathError(f"refusing to touch {p}: it is not inside {r}")
    return r, tuple(parts[:-1]), parts[-1]


def _unsafe(root: str, parts: tuple[str, ...], i: int, target: str) -> UnsafePathError:
    where = os.path.join(root, *parts[: i + 1])
    return UnsafePathError(
        f"refusing to touch {target}: {where} is a symbolic link or not a folder; vaebench "
        f"writes and deletes only in real folders inside {root} (replace the link by a folder)"
    )


@contextlib.contextmanager
def _folder(path: str | os.PathLike, root: str | os.PathLike | None,
            create: bool) -> Iterator[tuple[int | None, str, str]]:  # fmt: skip
    """Yield ``(folder descriptor or None, folder path, file name)`` for ``path``, reached from
    ``root`` through real folders only (created when ``create``)."""
    r, parts, name = _split(path, root)
    target = os.path.join(r, *parts, name)
    if create:
        os.makedirs(r, exist_ok=True)
    if not _DIR_FD:  # pragma: no cover - Windows: check, then use the path
        for i in range(len(parts)):
            sub = os.path.join(r, *parts[: i + 1])
            if create and not os.path.lexists(sub):
                with contextlib.suppress(FileExistsError):
                    os.mkdir(sub)
            if os.path.islink(sub) or not os.path.isdir(sub):
                raise _unsafe(r, parts, i, target)
        yield None, os.path.join(r, *parts), name
        return
    fd = os.open(r, os.O_RDONLY | _O_DIRECTORY)
    try:
        for i, part in enumerate(parts):
            flags = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW
            try:
                nfd = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
                try:
                    nfd = os.open(part, flags, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise _unsafe(r, parts, i, target) from None
                    raise
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _unsafe(r, parts, i, target) from None
                raise
            os.close(fd)
            fd = nfd
        yield fd, os.path.join(r, *parts), name
    finally:
        os.close(fd)


def _at(name: str, fd: int | None, folder: str) -> tuple[str, dict]:
    """Arguments for an ``os`` call on ``name`` in the folder (descriptor or path)."""
    if fd is None:  # pragma: no cover - Windows
        return os.path.join(folder, name), {}
    return name, {"dir_fd": fd}


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Iterator[IO[bytes]]:  # fmt: skip
    """Open a binary file that appears at ``path`` only when the ``with`` block ends without an
    exception (temp file ``.NAME.PID.HOSTTAG.RANDOM.tmp`` in the same folder, fsync,
    ``os.replace``); on any exception -- a signal included -- the temp file is removed and the
    old file (if any) is left as it was.

    - ``path`` must lie inside ``root`` and every folder from ``root`` down is reached through
      no link (:class:`UnsafePathError` otherwise; missing folders are created);
    - a symbolic or hard link at ``path`` is replaced by the new file: its target is untouched;
    - the file gets the permissions ``open(path, "w")`` would give (``0o666`` less the umask).
    Raises ``OSError`` (``ENOSPC`` on a full disk) as the system does.
    """
    with _folder(path, root, create=True) as (dfd, folder, name):
        prefix = f".{name}.{os.getpid()}.{HOST_TAG}."
        tmp = ""
        try:
            # the name is chosen before the file exists, inside the block that removes it: a
            # signal raised right after the file is created still unlinks it
            for _ in range(100):
                tmp = f"{prefix}{secrets.token_hex(6)}.tmp"
                p, kw = _at(tmp, dfd, folder)
                try:
                    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY,
                                 0o600, **kw)  # fmt: skip
                    break
                except FileExistsError:
                    tmp = ""
            else:
                raise FileExistsError(errno.EEXIST, f"no free temp file name in {folder}")
            with os.fdopen(fd, "wb") as fh:
                if hasattr(os, "fchmod"):
                    os.fchmod(fh.fileno(), 0o666 & ~current_umask())
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            src, kw = _at(tmp, dfd, folder)
            dst, _ = _at(name, dfd, folder)
            if dfd is None:  # pragma: no cover - Windows
                os.replace(src, dst)
            else:
                os.replace(src, dst, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            if tmp:
                p, kw = _at(tmp, dfd, folder)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p, **kw)
            raise
        if dfd is not None:
            with contextlib.suppress(OSError):  # make the rename durable
                os.fsync(dfd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes,
                       root: str | os.PathLike | None = None) -> None:  # fmt: skip
    """Write ``data`` to ``path`` through :func:`atomic_writer` (same rules and errors)."""
    with atomic_writer(path, root) as fh:
        fh.write(data)


def remove_file(path: str | os.PathLike, root: str | os.PathLike | None = None) -> bool:
    """Delete the file (or symbolic link -- never its target) at ``path``, reached from ``root``
    through no link (:class:`UnsafePathError` otherwise). Returns ``False`` when it (or a
    folder on the way) does not exist."""
    try:
        with _folder(path, root, create=False) as (dfd, folder, name):
            p, kw = _at(name, dfd, folder)
            os.unlink(p, **kw)
    except FileNotFoundError:
        return False
    return True


def open_lock(path: str | os.PathLike, root: str | os.PathLike | None = None) -> int:
    """Open (creating) the lock file at ``path`` for reading and writing in place and return its
    descriptor. Never through a link: a symbolic link at ``path``, or a file with more than one
    hard link (whose other names would see the lock's writes), is removed -- the file it names
    or shares is untouched -- and a fresh lock file made; folders as :func:`atomic_writer`."""
    with _folder(path, root, create=True) as (dfd, folder, name):
        p, kw = _at(name, dfd, folder)
        for _ in range(5):
            try:
                fd = os.open(p, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_BINARY, 0o666, **kw)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                log.warning("%s was a symbolic link; replaced by a lock file",
                            os.path.join(folder, name))  # fmt: skip
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p, **kw)
                continue
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_nlink <= 1:
                return fd
            os.close(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePathError(f"cannot use {os.path.join(folder, name)} as a lock file: "
                                      "it is not a regular file")  # fmt: skip
            log.warning("%s had %d hard links; replaced by a lock file of its own (the linked "
                        "file is untouched)", os.path.join(folder, name), st.st_nlink)  # fmt: skip
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p, **kw)
        raise UnsafePathError(
            f"cannot create lock file {os.path.join(folder, name)}: it keeps turning into a link"
        )


def check_real_folders(root: str | os.PathLike, *names: str) -> None:
    """Raise :class:`UnsafePathError` when one of the folders ``root/NAME`` exists as a
    symbolic link: checked up front, so that a run or report refuses before writing anything
    rather than half-way. (A plain file there is left to the caller's own message.)"""
    r = os.fspath(root)  # messages name the folder as the user gave it
    for name in names:
        sub = os.path.join(r, name)
        if os.path.islink(sub):
            raise UnsafePathError(
                f"{sub} is a symbolic link to {os.readlink(sub)}: vaebench writes and deletes "
                f"only in real folders inside {r} (replace it by a folder, and copy files out "
                "of it afterwards)"
            )
