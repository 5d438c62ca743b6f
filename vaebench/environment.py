"""What produced a result: versions, machine, device and git commit (``record["environment"]``).

Outside the store (:mod:`vaebench.results` only writes what it is given) and free of training
code: torch's entries come from the torch module the caller has already loaded (a device handed
in is a ``torch.device``, so torch is loaded); this module never imports torch itself, so the
store and the reports stay usable without it.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from typing import Any

import numpy as np

__all__ = ["device_name", "distribution_version", "environment", "git_info", "now_iso"]


def _git(args: list[str], cwd: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_info(path: str | None = None) -> dict[str, Any] | None:
    """Commit and dirty flag of the git checkout holding ``path`` (default: the vaebench
    package), as ``{"commit": SHA, "dirty": bool}``; ``None`` outside a checkout or without git."""
    cwd = path or os.path.dirname(os.path.abspath(__file__))
    commit = _git(["rev-parse", "HEAD"], cwd)
    if not commit:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return {"commit": commit, "dirty": bool(status)}


def distribution_version(dist: str, module: str) -> str | None:
    """The installed version of distribution ``dist`` (its metadata: no import of ``module``,
    which for scikit-learn costs ~1.5 s of a run's start-up, docs/performance.md); where the
    metadata is missing, ``module.__version__`` (importing it), else ``None``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        try:
            return str(importlib.import_module(module).__version__)
        except (ImportError, AttributeError):
            return None


def device_name(device: Any) -> str:
    """Human-readable name of a ``torch.device`` for result files: the GPU model on CUDA,
    ``cpu (PROCESSOR, N cores)`` on the CPU, else ``str(device)``."""
    if device.type == "cuda":
        return str(sys.modules["torch"].cuda.get_device_name(device))
    if device.type == "cpu":
        return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return str(device)


def environment(device: Any = None) -> dict[str, Any]:
    """Versions, machine and device: what produced a result. ``device``: the ``torch.device``
    the cell ran on (adds ``device`` and ``device_name``). The torch entries (``torch``,
    ``torch_threads``, ``cuda``) are ``None`` in a process that has not loaded torch."""
    import vaebench

    torch = sys.modules.get("torch")
    env: dict[str, Any] = {
        "vaebench": vaebench.__version__,
        "python": platform.python_version(),
        "torch": None if torch is None else torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": distribution_version("scikit-learn", "sklearn"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "torch_threads": None if torch is None else torch.get_num_threads(),
        "cuda": None if torch is None else torch.version.cuda,
        "git": git_info(),
    }
    if device is not None:
        env["device"] = str(device)
        env["device_name"] = device_name(device)
    return env


def now_iso() -> str:
    """The current UTC time as ISO 8601 to the second (``2026-01-31T12:00:00+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
