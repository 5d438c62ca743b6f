"""Results as data: one JSON file per finished cell, written atomically, plus run manifests.

Layout of a run folder::

    RUN/
      cells/MODEL--DATASET--seedS--HASH.json   one per cell (status "ok" or "failed")
      cells/MODEL--DATASET--seedS--HASH.lock   while a process works on the cell
      states/MODEL--DATASET--seedS--HASH.pt    trained state_dict (never committed to git)
      manifests/TIMESTAMP-PID.json             one per `vaebench run` invocation

Every cell file carries :data:`SCHEMA`, the full cell config and its hash, all metric values with
their declarations (direction, unit, precision), the loss curve, small image artifacts for
figures, and the environment (versions, device, git commit). Reports are pure functions of
these files. Loading refuses files of another schema version and names corrupt files.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import errno
import json
import math
import os
import platform
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "ResultsError",
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
]

SCHEMA_VERSION = 1
SCHEMA = f"vaebench.cell/{SCHEMA_VERSION}"
MANIFEST_SCHEMA = f"vaebench.manifest/{SCHEMA_VERSION}"


class ResultsError(ValueError):
    """A results folder or file is missing, corrupt or of an incompatible schema."""


# ----------------------------------------------------------------------------- atomic writes


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never a
    part: write a temp file in the same folder, fsync it, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
    text = json.dumps(_clean_floats(obj), indent=1, sort_keys=True, default=_json_default)
    atomic_write_text(path, text + "\n")


# ----------------------------------------------------------------------------- cells


def cell_stem(model: str, dataset: str, seed: int, config_hash: str) -> str:
    safe_ds = dataset.replace("/", "_").replace("\\", "_")
    return f"{model}--{safe_ds}--seed{seed}--{config_hash}"


class CellLock:
    """Claim a cell with an exclusively created lock file (``O_CREAT | O_EXCL``).

    The lock holds ``hostname:pid``. A lock left behind by a process that no longer runs on this
    host (killed with SIGKILL) is stale and is taken over.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.held = False

    def _owner_alive(self) -> bool:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return False
        host, _, pid = text.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return True  # another machine's lock: assume alive
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._owner_alive():
                    return False
                # stale: remove it atomically by renaming to a unique name, then retry once
                tomb = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}")
                try:
                    os.replace(self.path, tomb)
                    os.unlink(tomb)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{socket.gethostname()}:{os.getpid()}\n")
            self.held = True
            return True
        return False

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.held = False

    def __enter__(self) -> CellLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


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
    """Inverse of :func:`encode_images`: float32 array in [0, 1]."""
    raw = base64.b64decode(obj["uint8_b64"])
    return np.frombuffer(raw, dtype=np.uint8).reshape(obj["shape"]).astype(np.float32) / 255.0


# ----------------------------------------------------------------------------- loading


def read_cell(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check one cell file; corrupt or foreign files raise :class:`ResultsError`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"cannot read result file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"corrupt result file {path}: {exc}") from None
    if not isinstance(data, dict) or "schema" not in data:
        raise ResultsError(f"{path} is not a vaebench result file (no schema field)")
    if data["schema"] != SCHEMA:
        raise ResultsError(
            f"{path} has schema {data['schema']!r}; this vaebench reads {SCHEMA!r} "
            "(re-run the cells, or use the vaebench version that wrote them)"
        )
    for key in ("status", "model", "dataset", "seed", "config_hash"):
        if key not in data:
            raise ResultsError(f"corrupt result file {path}: missing field {key!r}")
    data["_path"] = str(path)
    return data


def iter_cell_paths(run_dir: str | os.PathLike) -> Iterator[Path]:
    run = Path(run_dir)
    if not run.is_dir():
        raise ResultsError(f"results folder not found: {run}")
    cells = run / "cells"
    if not cells.is_dir():
        raise ResultsError(f"{run} is not a vaebench results folder (no cells/ inside)")
    yield from sorted(p for p in cells.glob("*.json") if not p.name.startswith("."))


def iter_cells(run_dir: str | os.PathLike) -> Iterator[dict[str, Any]]:
    for p in iter_cell_paths(run_dir):
        yield read_cell(p)


def load_cells(*run_dirs: str | os.PathLike) -> list[dict[str, Any]]:
    """All cells of the given run folders (each tagged with ``run``, the folder's name)."""
    if not run_dirs:
        raise ResultsError("no results folder given")
    out = []
    for d in run_dirs:
        for cell in iter_cells(d):
            cell["run"] = Path(d).name
            out.append(cell)
    return out


def is_enospc(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC
