"""The CUDA path, end to end. Skipped without a CUDA device; ``scripts/gpu-check.sh`` runs these
together with ``vaebench bench`` on the GPU and prints one table.

What is checked: a tiny grid trains and evaluates on CUDA through the command line with finite
results; the training loop runs its matrix products in bf16 under autocast, reads the losses
back once per epoch (CUDA's sync debug mode counts every host synchronisation) and never copies
the training set back to the host; PCA on the GPU finds the CPU's subspace; ``bench`` measures
on CUDA with the allocator's peak memory.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

ROOT = Path(__file__).resolve().parents[2]
CUDA = torch.device("cuda")


def _vaebench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "vaebench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def test_tiny_grid_trains_on_cuda_with_finite_results(tmp_path):
    out = tmp_path / "run"
    proc = _vaebench(
        "run", "--models", "pca,ae,vae", "--datasets", "digits", "--seeds", "0", "--epochs",
        "2", "--device", "cuda", "--out", str(out), "--no-report",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    from vaebench.results import load_cells

    cells = load_cells(out)
    assert sorted(c["config"]["model"] for c in cells) == ["ae", "pca", "vae"]
    for cell in cells:
        assert cell.get("status", "ok") == "ok", cell.get("error")
        assert "cuda" in json.dumps(cell, default=str).lower()  # the device is recorded
        values = cell["metrics"]
        assert values, f"{cell['config']['model']}: no metric values"
        for name in ("mse", "bce"):
            assert name in values and values[name] is not None and math.isfinite(values[name])


def _products_dtypes(fn) -> set[torch.dtype]:
    """dtypes of the inputs of every matrix product run by ``fn``."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: set[torch.dtype] = set()

    class Spy(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            if func.overloadpacket.__name__ in ("mm", "addmm"):
                seen.add(args[-1].dtype)
            return func(*args, **(kwargs or {}))

    with Spy():
        fn()
    return seen


def _model(name: str, **params):
    from vaebench.plugins import get_registry

    torch.manual_seed(0)
    return get_registry().model(name).spec.create((1, 8, 8), device=CUDA, **params)


@pytest.mark.parametrize("name", ["ae", "vae"])
def test_training_uses_bf16_autocast(digits, name):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    model = _model(name, epochs=1, batch_size=256)
    x = digits.x_train.to(CUDA)
    assert torch.bfloat16 in _products_dtypes(lambda: model.fit(x))


def test_one_host_sync_per_epoch_and_data_stays_on_device(digits):
    epochs = 3
    model = _model("ae", epochs=epochs, batch_size=128)
    x = digits.x_train.to(CUDA)
    model.fit(x)  # warm-up: lazy CUDA initialisation may synchronise
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = model.fit(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    steps = epochs * math.ceil(len(x) / 128)
    assert report.epochs == epochs
    # one read-back per epoch, plus a constant for the start and the end of fit; a host sync
    # per step would give at least `steps` warnings
    assert len(syncs) <= epochs + 3 < steps, [str(w.message) for w in syncs]
    assert x.device.type == "cuda" and next(model.parameters()).device.type == "cuda"


def test_pca_on_cuda_matches_the_cpu(digits):
    from vaebench.models.pca import PCA

    cpu = PCA(digits.shape, latent_dim=6)
    cpu.fit(digits.x_train)
    gpu = PCA(digits.shape, device=CUDA, latent_dim=6)
    gpu.fit(digits.x_train.to(CUDA))
    cos = torch.linalg.svdvals(gpu.components.cpu().double() @ cpu.components.double().T)
    assert cos.min() > 1 - 1e-5
    torch.testing.assert_close(gpu.mean.cpu(), cpu.mean, atol=1e-6, rtol=0)


def test_bench_on_cuda(tmp_path):
    path = tmp_path / "bench.json"
    proc = _vaebench(
        "bench", "-m", "pca,ae,vae", "--device", "cuda", "--train-samples", "1024",
        "--repeats", "3", "--window", "0.05", "--json", str(path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(path.read_text())
    assert result["device"].startswith("cuda")
    for rec in result["models"]:
        assert rec["status"] == "ok", rec.get("error")
        assert rec["peak_memory_kind"] == "cuda_allocated" and rec["peak_memory_mib"] > 0
        assert rec["train"]["ratio"]["median"] > 0
