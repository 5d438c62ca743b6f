"""Issue 19 item 3: one model per cell. Inference puts every submodule in evaluation mode (and
restores each), `run`/`evaluate` refuse a model whose encode is not deterministic, and what
`evaluate` computes for a stored model equals what `run` computed, for every built-in model
and the example plugins."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from vaebench.config import RunConfig
from vaebench.grid import evaluate, run
from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench.models.ae import AE
from vaebench.models.pca import PCA
from vaebench.results import load_cells

ROOT = Path(__file__).resolve().parents[1]
FAST = ["eval.throughput_seconds=0.01", "eval.n_pairs=16"]
BUILTIN = ["ae", "dae", "noisy", "pca", "vae"]
EXAMPLES = {"vaebench-convae": ("vaebench_convae", ["conv-ae"]),
            "vaebench-betavae": ("vaebench_betavae", ["beta-vae"])}  # fmt: skip


class DropoutAE(AE):
    """The issue's example: a module added after ``super().__init__()`` starts in training mode
    (the model itself is in evaluation mode)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.drop = nn.Dropout(0.5)

    def encoder_outputs(self, x: torch.Tensor) -> torch.Tensor:
        return super().encoder_outputs(self.drop(x))


class RandomEncodePCA(PCA):
    """Codes with fresh noise on every call: no stored number would describe one model."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return super().encode(x) + torch.randn(x.shape[0], self.latent_dim)


class Plugin:
    @hookimpl
    def vaebench_models(self):
        return [
            ModelSpec("dropout-ae", DropoutAE, "dropout added after super().__init__()"),
            ModelSpec("random-encode", RandomEncodePCA, "noise in encode"),
        ]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def reg(fresh_plugins, monkeypatch):
    for dist in EXAMPLES:
        monkeypatch.syspath_prepend(str(ROOT / "plugins" / dist))
    pm = fresh_plugins.get_plugin_manager()
    pm.register(Plugin(), name="one-model-test")
    for module, _ in EXAMPLES.values():
        name = module.removeprefix("vaebench_")
        if pm.get_plugin(name) is None:
            pm.register(importlib.import_module(f"{module}.plugin"), name=name)
    return fresh_plugins.get_registry()


def _cfg(reg, models: str, metrics: str | None = None) -> RunConfig:
    kw = {"metrics": metrics} if metrics else {}
    return RunConfig.build(reg, models=models, seeds="0", epochs="1", subset=150, device="cpu",
                           workers=1, threads=1, sets=FAST, **kw)  # fmt: skip


def _values(out: Path) -> dict[tuple[str, str], float]:
    vals = {}
    for rec in load_cells(out):
        assert rec["status"] == "ok", rec.get("error")
        for key, v in rec["metrics"].items():
            if "seconds" in key or "per_s" in key or key.startswith(("throughput", "time")):
                continue  # wall-clock timings are measurements, not functions of the weights
            vals[(rec["model"], key)] = v
    return vals


def test_inference_puts_every_submodule_in_eval_mode_and_restores_each():
    model = DropoutAE((1, 8, 8), torch.device("cpu"), latent_dim=2, hidden=[8])
    assert not model.training and model.drop.training  # as the issue found it after load
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(model.encode(x), model.encode(x))
    assert model.drop.training and not model.training  # each module's mode restored


def test_a_model_whose_encode_is_not_deterministic_is_refused_naming_it(reg, tmp_path):
    summary = run(_cfg(reg, "random-encode", "reconstruction"), tmp_path, registry=reg,
                  show_progress=False)  # fmt: skip
    (rec,) = load_cells(tmp_path)
    assert rec["status"] == "failed" and len(summary.failed) == 1
    reason = rec["error"]["reason"]
    assert "model 'random-encode': encode gave different codes for the same 16 images" in reason
    assert "\n" not in reason


MODELS = [*BUILTIN, "dropout-ae", *(m for _, ms in EXAMPLES.values() for m in ms)]


@pytest.mark.parametrize("model", MODELS)
def test_evaluate_force_stores_what_run_stored(reg, tmp_path, model):
    """Every quality number `evaluate --force` computes from the stored weights equals the one
    `run` computed right after training (bit for bit, on the CPU)."""
    cfg = _cfg(reg, model)
    run(cfg, tmp_path, registry=reg, show_progress=False)
    before = _values(tmp_path)
    assert before
    evaluate(tmp_path, cfg, registry=reg, show_progress=False, force=True)
    after = _values(tmp_path)
    assert after.keys() == before.keys()
    for key, v in before.items():
        w = after[key]
        same = (
            (v is None and w is None)
            or (isinstance(v, float) and isinstance(w, float) and math.isnan(v) and math.isnan(w))
            or v == w
        )
        assert same, f"{key}: run stored {v}, evaluate --force {w}"
