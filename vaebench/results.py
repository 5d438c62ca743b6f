"""Results as data: one JSON file per finished cell, written atomically, plus run manifests.

Layout of a run folder::

    RUN/
      cells/MODEL--DATASET--seedS--HASH.json   one per cell (status "ok" or "failed")
      cells/MODEL--DATASET--seedS--HASH.lock   claimed by the process working on the cell
      states/MODEL--DATASET--seedS--HASH.pt    trained state_dict (never committed to git)
      manifests/TIMESTAMP-PID-RANDOM.json      one per `vaebench run` invocation

Every cell file carries :data:`SCHEMA`, the full cell config and its hash, all metric values with
their declarations (direction, unit, precision), the loss curve, small image artifacts for
figures, and the environment (versions, device, git commit). Reports are pure functions of
these files. Loading refuses files of another schema version and names corrupt files.

Crash safety: every file is written to a temp file in the same folder (``.NAME.PID.HOST.*.tmp``)
and renamed into place, so a reader sees the old file or the whole new one. Temp files are
ignored by readers and removed by the next run once their writer is gone. Cell locks are
``flock`` locks held by the kernel, so a process killed with SIGKILL leaves no live lock behind.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import errno
import hashlib
import json
import logging
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vaebench.errors import ResultsError, SchemaMismatchError

try:  # POSIX: kernel-held locks that die with their process
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("vaebench.results")

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "ResultsError",
    "SchemaMismatchError",
    "atomic_write_json",
    "atomic_write_text",
    "cell_stem",
    "CellLock",
    "environment",
    "encode_images",
    "decode_images",
    "read_cell",
    "iter_cells",
    "load_cells",
    "check_results_folder",
    "remove_stale_temp_files",
    "remove_stale_locks",
]

SCHEMA_VERSION = 1
SCHEMA = f"vaebench.cell/{SCHEMA_VERSION}"
MANIFEST_SCHEMA = f"vaebench.manifest/{SCHEMA_VERSION}"




_HOST = socket.gethostname()
#: Short tag of this host for temp-file names (host names may contain dots).
HOST_TAG = hashlib.sha1(_HOST.encode()).hexdigest()[:8]
_TEMP_FILE_RE = re.compile(r"^\..+\.(?P<pid>[0-9]+)\.(?P<host>[0-9a-f]{8})\.[^.]*\.tmp$")
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


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never a
    part: write a temp file in the same folder, fsync it, then ``os.replace``.

    The temp file is named ``.NAME.PID.HOSTTAG.RANDOM.tmp``: readers skip dot-files, and
    :func:`remove_stale_temp_files` deletes those whose writer no longer runs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.{HOST_TAG}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def staging_dir(parent: str | os.PathLike) -> Path:
    """A private folder ``PARENT/.staging.PID.HOSTTAG`` for files written by code we do not
    control (e.g. :meth:`vaebench.model.Model.save`); move finished files out with
    ``os.replace``. Left-overs of dead processes are removed by :func:`remove_stale_temp_files`.
    """
    path = Path(parent) / f".staging.{os.getpid()}.{HOST_TAG}"
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
            if m and m["host"] == HOST_TAG and not _pid_alive(int(m["pid"])):
                p = Path(dirpath) / name
                shutil.rmtree(p, ignore_errors=True)
                dirnames.remove(name)
                removed.append(p)
        for name in filenames:
            m = _TEMP_FILE_RE.match(name)
            if m and m["host"] == HOST_TAG and not _pid_alive(int(m["pid"])):
                p = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
    return removed


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (tuple, set)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean_floats(obj: Any) -> Any:
    """NaN/inf are not JSON: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_floats(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON (sorted keys, NaN/inf as null) with :func:`atomic_write_text`."""
    text = json.dumps(_clean_floats(obj), indent=1, sort_keys=True, default=_json_default)
    atomic_write_text(path, text + "\n")


# ----------------------------------------------------------------------------- cells


def cell_stem(model: str, dataset: str, seed: int, config_hash: str) -> str:
    """File name (without extension) of a cell: ``MODEL--DATASET--seedS--HASH``."""
    safe_ds = dataset.replace("/", "_").replace("\\", "_")
    return f"{model}--{safe_ds}--seed{seed}--{config_hash}"


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

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
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
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # before unlocking: see the class docstring
        finally:
            if fd is not None:
                os.close(fd)  # closing drops the flock, even if a signal hit the unlink

    def __enter__(self) -> CellLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def remove_stale_locks(folder: str | os.PathLike) -> list[Path]:
    """Delete the ``*.lock`` files in ``folder`` that no process holds (left by a process
    killed after saving its cell); returns them. A held lock is never touched."""
    removed = []
    for path in sorted(Path(folder).glob("*.lock")):
        lock = CellLock(path)
        if lock.acquire():
            lock.release()  # deletes the file
            removed.append(path)
    return removed


# ----------------------------------------------------------------------------- environment


def _git(args: list[str], cwd: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_info(path: str | None = None) -> dict[str, Any] | None:
    """Commit and dirty flag of the git checkout holding the vaebench package (if any)."""
    cwd = path or os.path.dirname(os.path.abspath(__file__))
    commit = _git(["rev-parse", "HEAD"], cwd)
    if not commit:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return {"commit": commit, "dirty": bool(status)}


def environment(device: Any = None) -> dict[str, Any]:
    """Versions, machine and device: what produced a result."""
    import sklearn
    import torch

    import vaebench

    env: dict[str, Any] = {
        "vaebench": vaebench.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "git": git_info(),
    }
    if device is not None:
        from vaebench.train import device_name

        env["device"] = str(device)
        env["device_name"] = device_name(device)
    return env


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- images


def encode_images(x: Any) -> dict[str, Any]:
    """Images in [0, 1] ``(N, C, H, W)`` -> compact JSON (uint8, base64)."""
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    q = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    return {"shape": list(q.shape), "uint8_b64": base64.b64encode(q.tobytes()).decode("ascii")}


def decode_images(obj: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_images`: float32 array in [0, 1].

    Anything that is not an encoded image raises :class:`ResultsError`.
    """
    problem = _check_image(obj) if isinstance(obj, dict) else "not an object"
    if problem:
        raise ResultsError(f"stored image artifact is broken: {problem} ({str(obj)[:60]})")
    raw = base64.b64decode(obj["uint8_b64"])
    return np.frombuffer(raw, dtype=np.uint8).reshape(obj["shape"]).astype(np.float32) / 255.0


# ----------------------------------------------------------------------------- loading


def _number_or_null(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_SCALAR = (str, int, float, bool, type(None))

#: Known keys of nested objects and the test their values must pass (absent keys are fine:
#: older or hand-made files may lack them; unknown keys are allowed for plugins' extras).
_FIELDS: dict[str, dict[str, tuple[Any, str]]] = {
    "config": {
        "params": (lambda v: isinstance(v, dict), "an object"),
        "dataset_options": (lambda v: isinstance(v, dict), "an object"),
        "eval": (lambda v: isinstance(v, dict), "an object"),
        "metrics": (lambda v: v is None or isinstance(v, list), "a list or null"),
    },
    "dataset_info": {
        "shape": (lambda v: isinstance(v, list) and all(_is_int(x) and x > 0 for x in v),
                  "a list of positive integers"),
        "n_train": (_is_int, "an integer"),
        "n_test": (_is_int, "an integer"),
        "citation": (lambda v: isinstance(v, str), "a string"),
        "info": (lambda v: isinstance(v, dict), "an object"),
    },
    "environment": {
        "git": (lambda v: v is None or (isinstance(v, dict) and isinstance(v.get("commit"), str)
                                        and isinstance(v.get("dirty", False), bool)),
                "null or an object with a commit string"),
    },
    "model_info": {
        "n_params": (_is_int, "an integer"),
        "latent_dim": (_is_int, "an integer"),
        "can_sample": (lambda v: isinstance(v, bool), "true or false"),
    },
    "metric_info.*": {
        "name": (lambda v: isinstance(v, str), "a string"),
        "metric": (lambda v: isinstance(v, str), "a string"),
        "unit": (lambda v: isinstance(v, str), "a string"),
        "description": (lambda v: isinstance(v, str), "a string"),
        "higher_is_better": (lambda v: v is None or isinstance(v, bool), "true, false or null"),
        "decimals": (lambda v: _is_int(v) and 0 <= v <= 20, "an integer in [0, 20]"),
    },
    "error": {
        "reason": (lambda v: isinstance(v, str), "a string"),
        "type": (lambda v: isinstance(v, str), "a string"),
        "traceback": (lambda v: isinstance(v, str), "a string"),
    },
}  # fmt: skip


def _check_image(obj: dict[str, Any]) -> str | None:
    """Why an encoded image artifact is broken, or None."""
    shape = obj.get("shape")
    if not (isinstance(shape, list) and shape and all(_is_int(x) and x >= 0 for x in shape)):
        return "shape must be a list of non-negative integers"
    if not isinstance(obj.get("uint8_b64"), str):
        return "uint8_b64 must be a string"
    try:
        raw = base64.b64decode(obj["uint8_b64"], validate=True)
    except ValueError:
        return "uint8_b64 is not base64"
    if len(raw) != math.prod(shape):
        return f"holds {len(raw)} bytes, shape {shape} needs {math.prod(shape)}"
    return None


def _check_cell(data: dict[str, Any], path: Path) -> None:
    """Types of every field reports rely on; anything else is a corrupt file."""

    def bad(what: str) -> ResultsError:
        return ResultsError(f"corrupt result file {path}: {what}")

    for key in ("status", "model", "dataset", "seed", "config_hash"):
        if key not in data:
            raise bad(f"missing field {key!r}")
    if data["status"] not in ("ok", "failed"):
        raise bad(f"status is {data['status']!r}, expected 'ok' or 'failed'")
    for key in ("model", "dataset", "config_hash"):
        if not isinstance(data[key], str) or not data[key]:
            raise bad(f"{key} is {data[key]!r}, expected a non-empty string")
    if not _is_int(data["seed"]) or data["seed"] < 0:
        raise bad(f"seed is {data['seed']!r}, expected a non-negative integer")
    metrics = data.get("metrics", {})
    if not isinstance(metrics, dict) or not all(
        isinstance(k, str) and _number_or_null(v) for k, v in metrics.items()
    ):
        raise bad("metrics must map names to numbers")
    history = data.get("history", {})
    if not isinstance(history, dict) or not all(
        isinstance(v, list) and all(_number_or_null(x) for x in v) for v in history.values()
    ):
        raise bad("history must map names to lists of numbers")
    for key in ("artifacts", "config", "environment", "dataset_info", "metric_info",
                "model_info", "plugins"):  # fmt: skip
        if key in data and not isinstance(data[key], dict):
            raise bad(f"{key} must be an object")
    for key in ("run_id", "started", "finished"):
        if key in data and not isinstance(data[key], str):
            raise bad(f"{key} must be a string")
    if "wall_seconds" in data and not _number_or_null(data["wall_seconds"]):
        raise bad("wall_seconds must be a number")
    if data["status"] == "failed" and not (
        isinstance(data.get("error"), dict) and "reason" in data["error"]
    ):
        raise bad("a failed cell needs error.reason")
    nested = [
        (key, data[key])
        for key in ("config", "dataset_info", "environment", "model_info", "error")
        if isinstance(data.get(key), dict)
    ]
    for name, value in data.get("metric_info", {}).items():
        if not isinstance(value, dict):
            raise bad(f"metric_info.{name} must be an object")
        nested.append((f"metric_info.{name}", value))
    for where, obj in nested:
        rules = _FIELDS["metric_info.*" if where.startswith("metric_info.") else where]
        for key, (ok, expected) in rules.items():
            if key in obj and not ok(obj[key]):
                raise bad(f"{where}.{key} is {obj[key]!r}, expected {expected}")
    env_values = [v for v in data.get("environment", {}).values() if not isinstance(v, dict)]
    if not all(isinstance(v, _SCALAR) for v in env_values):
        raise bad("environment values must be strings, numbers or null")
    if not all(isinstance(v, (str, type(None))) for v in data.get("plugins", {}).values()):
        raise bad("plugins must map names to strings")
    for name, value in data.get("artifacts", {}).items():
        if isinstance(value, dict) and ("uint8_b64" in value or "shape" in value):
            problem = _check_image(value)
            if problem:
                raise bad(f"image artifact {name!r}: {problem}")


def read_cell(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check one cell file; corrupt or foreign files raise :class:`ResultsError`
    (:class:`SchemaMismatchError` for another schema version), naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"cannot read result file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"corrupt result file {path}: {exc}") from None
    except RecursionError:
        raise ResultsError(f"corrupt result file {path}: nested too deeply") from None
    if not isinstance(data, dict) or "schema" not in data:
        raise ResultsError(f"{path} is not a vaebench result file (no schema field)")
    if data["schema"] != SCHEMA:
        raise SchemaMismatchError(
            f"{path} has schema {data['schema']!r}; this vaebench reads {SCHEMA!r} "
            "(re-run the cells, or use the vaebench version that wrote them)"
        )
    _check_cell(data, path)
    data["_path"] = str(path)
    return data


def iter_cell_paths(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Cell files of a run folder in name order (temp and lock files are skipped)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ResultsError(f"results folder not found: {run}")
    cells = run / "cells"
    if not cells.is_dir():
        raise ResultsError(f"{run} is not a vaebench results folder (no cells/ inside)")
    yield from sorted(p for p in cells.glob("*.json") if not p.name.startswith(".") and p.is_file())


def iter_cells(run_dir: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every cell of a run folder, checked by :func:`read_cell`."""
    for p in iter_cell_paths(run_dir):
        yield read_cell(p)


def load_cells(*run_dirs: str | os.PathLike) -> list[dict[str, Any]]:
    """All cells of the given run folders (each tagged with ``run``, the folder's name).

    A folder may hold several configurations of one model, dataset and seed (variants, told
    apart by ``config_hash``). Raises :class:`ResultsError` naming the file for a corrupt or
    foreign one: a report never silently leaves a cell out.
    """
    if not run_dirs:
        raise ResultsError("no results folder given")
    out = []
    for d in run_dirs:
        for cell in iter_cells(d):
            cell["run"] = Path(d).name
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
        if schema != MANIFEST_SCHEMA:
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


def is_enospc(exc: BaseException) -> bool:
    """Whether ``exc`` means the disk is full."""
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC
