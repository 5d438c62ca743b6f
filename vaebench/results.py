"""Results as data: one JSON file per finished cell, written atomically, plus run manifests.

Layout of a run folder::

    RUN/
      cells/MODEL--DATASET--seedS--KEY.json    one per cell (status ok, failed or skipped)
      cells/MODEL--DATASET--seedS--KEY.lock    claimed by the process working on the cell
      states/MODEL--DATASET--seedS--KEY.pt     trained state_dict (never committed to git)
      manifests/TIMESTAMP-PID-RANDOM.json      one per `vaebench run`/`evaluate` invocation
      features/                                cached feature networks of sample metrics

Every cell file carries :data:`SCHEMA`, its training identity (``config``) and the hash of it
(``config_hash``, the *training key*: what changes the weights and nothing else), the loss
curve, the environment (versions, device, git commit), and one **evaluation** per metric
plugin, keyed by the metric's name, version and options, with its values, their declarations
(direction, unit, precision, definition), small image artifacts for figures and its own
provenance. Adding a metric or changing an evaluation option adds or replaces evaluations;
nothing is retrained. Reports are pure functions of these files. Loading migrates schema-1
files in memory, refuses unknown schemas and names corrupt files. See
``docs/architecture.md`` for every field.

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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vaebench import fileio
from vaebench.errors import DiskFullError, ResultsError, SchemaMismatchError

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
    "write_cell",
    "flat_views",
    "migrate_v1",
    "latest_manifest_config",
    "atomic_write_bytes",
    "raise_if_disk_full",
    "is_enospc",
    "iter_cells",
    "load_cells",
    "check_results_folder",
    "remove_stale_temp_files",
    "nonfinite_kind",
    "NONFINITE_TEXT",
    "remove_stale_locks",
]

#: Largest seed a cell may hold (``vaebench.config.MAX_SEED``: NumPy's limit, 2**32 - 1).
MAX_SEED = 2**32 - 1
SCHEMA_VERSION = 2
SCHEMA = f"vaebench.cell/{SCHEMA_VERSION}"
MANIFEST_SCHEMA = f"vaebench.manifest/{SCHEMA_VERSION}"
#: Older schemas this vaebench still reads (cells are migrated in memory by :func:`read_cell`).
READABLE_SCHEMAS = ("vaebench.cell/1", SCHEMA)
READABLE_MANIFEST_SCHEMAS = ("vaebench.manifest/1", MANIFEST_SCHEMA)
#: Statuses of a cell and of one evaluation.
CELL_STATUSES = ("ok", "failed", "skipped")
EVALUATION_STATUSES = ("ok", "failed", "not_applicable")
#: Fields :func:`read_cell` derives from ``evaluations`` (and the loaders add); never stored.
DERIVED_FIELDS = ("metrics", "metric_info", "artifacts", "_path", "run", "variant")


_HOST = socket.gethostname()
HOST_TAG = fileio.HOST_TAG
_TEMP_FILE_RE = fileio.TEMP_FILE_RE
current_umask = fileio.current_umask
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


def nonfinite_kind(v: float) -> str:
    """``"nan"``, ``"inf"`` or ``"-inf"``: what a non-finite value was (stored in an
    evaluation's ``nonfinite``, since JSON stores all three as null)."""
    if math.isnan(v):
        return "nan"
    return "inf" if v > 0 else "-inf"


#: How each :func:`nonfinite_kind` is written in tables and messages.
NONFINITE_TEXT = {"nan": "NaN", "inf": "inf", "-inf": "-inf"}


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


def atomic_write_json(
    path: str | os.PathLike, obj: Any, root: str | os.PathLike | None = None
) -> None:
    """Write ``obj`` as JSON (sorted keys, NaN/inf as null) with :func:`atomic_write_text`."""
    text = json.dumps(_clean_floats(obj), indent=1, sort_keys=True, default=_json_default)
    atomic_write_text(path, text + "\n", root)


# ----------------------------------------------------------------------------- cells


def cell_stem(model: str, dataset: str, seed: int, config_hash: str) -> str:
    """File name (without extension) of a cell: ``MODEL--DATASET--seedS--HASH``."""

    def safe(name: str) -> str:
        # letters, digits and ._+=@- stay (every built-in name); anything else -- a path's
        # slashes, shell or markup characters, control characters -- becomes "_"
        return "".join(ch if ch.isalnum() or ch in "._+=@-" else "_" for ch in name)

    stem = f"{safe(model)}--{safe(dataset)}--seed{seed}--{config_hash}"
    if len(stem.encode()) <= MAX_STEM_BYTES:
        return stem
    # a name too long for a file (255 bytes with the temp-file and lock decorations): the
    # names are cut and a hash of both whole names keeps stems of different names apart
    tag = hashlib.sha256(f"{model}\0{dataset}".encode()).hexdigest()[:8]

    def cut(name: str) -> str:
        return safe(name).encode()[:60].decode("utf-8", "ignore")

    return f"{cut(model)}--{cut(dataset)}~{tag}--seed{seed}--{config_hash}"


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
    """Images in [0, 1] ``(N, C, H, W)`` -> compact JSON: quantised to 8 bits and stored as one
    lossless PNG strip (``png_b64``; 1 or 3 channels), else as raw bytes (``uint8_b64``).

    PNG keeps result files small (the simple images of moons and lines compress 5-20x), and
    both encodings decode to exactly the same 8-bit values (:func:`decode_images`).
    """
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    q = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    if q.ndim == 4 and q.shape[1] in (1, 3) and q.size:
        import io

        from PIL import Image

        n, c, h, w = q.shape
        strip = q.transpose(2, 0, 3, 1).reshape(h, n * w, c)  # images side by side
        img = Image.fromarray(strip[:, :, 0] if c == 1 else strip, mode="L" if c == 1 else "RGB")
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=9)
        return {"shape": list(q.shape), "png_b64": base64.b64encode(buf.getvalue()).decode("ascii")}
    return {"shape": list(q.shape), "uint8_b64": base64.b64encode(q.tobytes()).decode("ascii")}


def _png_pixels(obj: dict[str, Any]) -> np.ndarray:
    """The ``(N, C, H, W)`` uint8 pixels of a ``png_b64`` artifact; ``ValueError`` when the PNG
    is broken or its size does not match ``shape`` (checked before decoding the pixels)."""
    import io

    from PIL import Image

    n, c, h, w = obj["shape"]
    raw = base64.b64decode(obj["png_b64"], validate=True)
    with Image.open(io.BytesIO(raw)) as img:
        mode = "L" if c == 1 else "RGB"
        if img.format != "PNG" or img.size != (n * w, h) or img.mode != mode:
            raise ValueError(
                f"PNG of {img.size[0]}x{img.size[1]} {img.mode}, shape {obj['shape']} needs "
                f"{n * w}x{h} {mode}"
            )
        strip = np.asarray(img.convert(mode), dtype=np.uint8).reshape(h, n, w, c)
    return strip.transpose(1, 3, 0, 2)


def decode_images(obj: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_images`: float32 array ``(N, C, H, W)`` in [0, 1].

    Anything that is not an encoded image raises :class:`ResultsError`.
    """
    problem = _check_image(obj) if isinstance(obj, dict) else "not an object"
    if problem:
        raise ResultsError(f"stored image artifact is broken: {problem} ({str(obj)[:60]})")
    if "png_b64" in obj:
        return _png_pixels(obj).astype(np.float32) / 255.0
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
        "unused_params": (
            lambda v: isinstance(v, list) and all(isinstance(p, str) for p in v),
            "a list of parameter names",
        ),
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
    if "png_b64" in obj:
        if not isinstance(obj["png_b64"], str):
            return "png_b64 must be a string"
        if len(shape) != 4 or shape[1] not in (1, 3):
            return "a PNG artifact needs shape (N, 1 or 3, H, W)"
        try:
            _png_pixels(obj)
        except Exception as exc:  # noqa: BLE001 - a damaged file: say what is wrong
            return f"png_b64 is not a valid PNG strip: {exc}"
        return None
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
    if data["status"] not in CELL_STATUSES:
        raise bad(f"status is {data['status']!r}, expected one of {', '.join(CELL_STATUSES)}")
    for key in ("model", "dataset", "config_hash"):
        if not isinstance(data[key], str) or not data[key]:
            raise bad(f"{key} is {data[key]!r}, expected a non-empty string")
    if not _is_int(data["seed"]) or not 0 <= data["seed"] <= MAX_SEED:
        raise bad(f"seed is {data['seed']!r}, expected an integer from 0 to {MAX_SEED}")
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
    if data["status"] == "skipped" and not isinstance(data.get("skip_reason"), str):
        raise bad("a skipped cell needs skip_reason (a string)")
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
        if isinstance(value, dict) and ({"uint8_b64", "png_b64", "shape"} & set(value)):
            problem = _check_image(value)
            if problem:
                raise bad(f"image artifact {name!r}: {problem}")


def _check_evaluations(data: dict[str, Any], path: Path) -> None:
    """Types of the ``evaluations`` of a schema-2 record."""

    def bad(what: str) -> ResultsError:
        return ResultsError(f"corrupt result file {path}: {what}")

    evaluations = data.get("evaluations", {})
    if not isinstance(evaluations, dict):
        raise bad("evaluations must be an object")
    for name, ev in evaluations.items():
        where = f"evaluations.{name}"
        if not isinstance(ev, dict):
            raise bad(f"{where} must be an object")
        if ev.get("status") not in EVALUATION_STATUSES:
            raise bad(
                f"{where}.status is {ev.get('status')!r}, expected one of "
                f"{', '.join(EVALUATION_STATUSES)}"
            )
        for key in ("values", "info", "nan", "nonfinite", "artifacts", "options", "details",
                    "not_applicable"):  # fmt: skip
            if key in ev and not isinstance(ev[key], dict):
                raise bad(f"{where}.{key} must be an object")
        for key in ("reason", "key", "plugin", "evaluated", "run_id"):
            if key in ev and not isinstance(ev[key], str):
                raise bad(f"{where}.{key} must be a string")
        if ev["status"] != "ok" and not isinstance(ev.get("reason"), str):
            raise bad(f"{where}: a {ev['status']} evaluation needs a reason")
        values = ev.get("values", {})
        if not all(isinstance(k, str) and _number_or_null(v) for k, v in values.items()):
            raise bad(f"{where}.values must map names to numbers")
        if not all(isinstance(v, str) for v in ev.get("nan", {}).values()):
            raise bad(f"{where}.nan must map value names to reasons")
        if not all(v in NONFINITE_TEXT for v in ev.get("nonfinite", {}).values()):
            raise bad(f"{where}.nonfinite must map value names to {', '.join(NONFINITE_TEXT)}")
        if not all(isinstance(v, str) for v in ev.get("not_applicable", {}).values()):
            raise bad(f"{where}.not_applicable must map value names to reasons")
    warnings = data.get("warnings", [])
    if not isinstance(warnings, list) or not all(
        isinstance(w, dict) and isinstance(w.get("message"), str) for w in warnings
    ):
        raise bad("warnings must be a list of objects with a message")


#: Which metric plugin produced each artifact of a schema-1 cell (for the migration).
_V1_ARTIFACT_SOURCES = {
    "recon_originals": "reconstruction",
    "recon_outputs": "reconstruction",
    "latent_2d": "reconstruction",
    "interp_strip": "interpolation",
    "midpoint_strip": "midpoint",
    "midpoint_truth": "midpoint",
}


def migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 cell record as a schema-2 one (in memory; the file is not touched).

    Schema 1 stored one flat ``metrics``/``metric_info``/``artifacts`` set per cell; schema 2
    stores one evaluation per metric plugin. Each value goes to the evaluation of the plugin its
    ``metric_info`` names; the evaluations get the stored eval options and an empty ``key`` (so
    ``vaebench evaluate`` recomputes them under the current definitions when asked).
    ``config_hash`` and the file name stay as they were.
    """
    out = {k: v for k, v in data.items() if k not in ("metrics", "metric_info", "artifacts")}
    out["schema"] = SCHEMA
    out["migrated_from"] = data.get("schema")
    metrics = data.get("metrics", {}) if isinstance(data.get("metrics"), dict) else {}
    info = data.get("metric_info", {}) if isinstance(data.get("metric_info"), dict) else {}
    artifacts = data.get("artifacts", {}) if isinstance(data.get("artifacts"), dict) else {}
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    options = config.get("eval", {}) if isinstance(config.get("eval"), dict) else {}
    evaluations: dict[str, dict[str, Any]] = {}

    def evaluation(name: str) -> dict[str, Any]:
        return evaluations.setdefault(
            name,
            {"status": "ok", "version": 0, "key": "", "options": dict(options), "values": {},
             "info": {}, "nan": {}, "artifacts": {}},
        )  # fmt: skip

    for value, number in metrics.items():
        meta = info.get(value, {})
        source = meta.get("metric") if isinstance(meta, dict) else None
        ev = evaluation(source if isinstance(source, str) and source else "unknown")
        ev["values"][value] = number
        ev["info"][value] = meta
    for name, art in artifacts.items():
        source = _V1_ARTIFACT_SOURCES.get(name)
        target = source if source in evaluations else next(iter(evaluations), "unknown")
        evaluation(target)["artifacts"][name] = art
    out["evaluations"] = evaluations
    out.setdefault("warnings", [])
    return out


def flat_views(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``metrics`` (value -> number or None), ``metric_info`` (value -> declaration) and
    ``artifacts`` (name -> artifact) of a record, from its ok evaluations in stored order."""
    metrics: dict[str, Any] = {}
    info: dict[str, Any] = {}
    artifacts: dict[str, Any] = {}
    for ev in record.get("evaluations", {}).values():
        if ev.get("status") != "ok":
            continue
        for value, number in ev.get("values", {}).items():
            metrics[value] = number
            info[value] = ev.get("info", {}).get(value, {})
        artifacts.update(ev.get("artifacts", {}))
    return {"metrics": metrics, "metric_info": info, "artifacts": artifacts}


def read_cell(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check one cell file; corrupt or foreign files raise :class:`ResultsError`
    (:class:`SchemaMismatchError` for a schema this vaebench cannot read), naming the file.

    Schema-1 files are migrated in memory (:func:`migrate_v1`). The returned record has the
    flat views of :func:`flat_views` added, and ``_path``; :func:`write_cell` drops them again.
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
    if not isinstance(data, dict) or "schema" not in data:
        raise ResultsError(f"{path} is not a vaebench result file (no schema field)")
    if data["schema"] not in READABLE_SCHEMAS:
        raise SchemaMismatchError(
            f"{path} has schema {data['schema']!r}; this vaebench reads "
            f"{', '.join(map(repr, READABLE_SCHEMAS))} (re-run the cells, or use the vaebench "
            "version that wrote them)"
        )
    if data["schema"] != SCHEMA:
        for key in ("metrics", "metric_info", "artifacts"):
            if key in data and not isinstance(data[key], dict):
                raise ResultsError(f"corrupt result file {path}: {key} must be an object")
        data = migrate_v1(data)
    else:
        for key in DERIVED_FIELDS:
            data.pop(key, None)
    _check_evaluations(data, path)
    data.update(flat_views(data))
    _check_cell(data, path)
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


def latest_manifest_config(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run configuration in the most recently written manifest of ``run_dir`` (what
    ``--resume`` continues and ``evaluate`` starts from), or ``None`` when the folder has no
    manifest. Raises :class:`ResultsError` for a missing folder or an unreadable, foreign or
    config-less manifest."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise ResultsError(f"{run_dir}: no such folder")
    manifests = [p for p in folder.glob("manifests/*.json") if not p.name.startswith(".")]
    if not manifests:
        return None
    newest = max(manifests, key=lambda p: (p.stat().st_mtime, p.name))  # the last active run
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
    config = data.get("config")
    if not isinstance(config, dict):
        raise ResultsError(f"manifest {newest} holds no config")
    return config


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
