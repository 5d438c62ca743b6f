"""``vaebench bench``: the result schema, the plain references (a plain loop of the model's own
step), plugin models without one, and one-line errors for bad input. Tiny settings; nothing here
asserts a speed."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from vaebench import bench
from vaebench.bench import BenchConfig, LoopReference, reference_for, run_bench, summarize
from vaebench.model import Model, ModelSpec
from vaebench.models.ae import AE
from vaebench.models.pca import PCA
from vaebench.plugins import Registered, get_registry

TINY = dict(
    dataset="digits",
    device="cpu",
    threads=1,
    batch_size=64,
    eval_batch_size=128,
    repeats=3,
    train_samples=192,
    window_s=0.002,
)


class LouderAE(AE):
    """A plugin-style subclass with its own loss: the reference must call *this* loss."""

    def loss(self, x):
        out = super().loss(x)
        return {**out, "loss": 2 * out["loss"]}


class Opaque(Model):
    """A plugin's model that is neither a torch module with a loss nor a linear projection."""

    def __init__(self, input_shape, device="cpu"):
        self._pca = PCA(input_shape, device, latent_dim=4)
        self.input_shape, self.latent_dim = tuple(input_shape), 4

    def fit(self, x, y=None, progress=None):
        return self._pca.fit(x)

    def encode(self, x):
        return self._pca.encode(x)

    def decode(self, z):
        return self._pca.decode(z)

    @property
    def device(self):
        return self._pca.device

    def to(self, device):
        self._pca.to(device)
        return self

    @property
    def n_params(self):
        return self._pca.n_params

    def state_dict(self):
        return self._pca.state_dict()

    def load_state_dict(self, state):
        return self._pca.load_state_dict(state)


def _with_models(**specs) -> object:
    reg = get_registry()
    extra = {k: Registered(k, s, "test_plugin", "test-dist", "0") for k, s in specs.items()}
    return dataclasses.replace(reg, models={**reg.models, **extra})


def test_summarize():
    s = summarize([2.0, 4.0, 3.0])
    assert s["median"] == 3.0
    assert s["spread"] == pytest.approx((4 - 2) / (2 * 3))
    assert s["values"] == [2.0, 4.0, 3.0]
    assert math.isnan(summarize([1.0])["spread"])


@pytest.mark.parametrize("name", ["ae", "noisy", "dae", "vae", "dropout-ae"])
def test_reference_is_a_plain_loop_of_the_models_own_step(digits, name):
    """The reference trains a copy of the model (same weights) with the model's own loss and
    optimiser: the same loss for the same noise, the same codes and images, and one epoch of its
    plain loop leaves the same weights as one epoch of the harness's ``fit`` from the same seed;
    the measured model is not touched by the reference."""
    spec = get_registry().model(name).spec
    torch.manual_seed(0)
    model = spec.create(digits.shape, latent_dim=4, hidden=(32, 16), batch_size=32, epochs=1)
    ref = reference_for(model)
    assert isinstance(ref, LoopReference) and ref.model is not model
    x = digits.x_train[:100]
    torch.manual_seed(1)
    ours = model.loss(x)["loss"]
    torch.manual_seed(1)
    theirs = ref.model.loss(x)["loss"]
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-4)
    with torch.inference_mode():
        torch.testing.assert_close(ref.encode(x), model.encode(x))
        z = model.encode(x)
        torch.testing.assert_close(ref.decode(z), model.decode(z))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(2)
    assert ref.train(x) == 100
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    torch.manual_seed(2)
    model.fit(x)
    trained = ref.model.state_dict()
    assert any(not torch.equal(before[k], trained[k]) for k in before)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(trained[k], v, rtol=1e-5, atol=1e-6)


def test_every_torch_model_with_a_loss_gets_a_reference_of_its_own_loss(digits):
    """No loss is copied: a subclass's loss, and any network, are what the reference runs."""
    model = LouderAE(digits.shape, latent_dim=4, hidden=(16,))
    ref = reference_for(model)
    assert isinstance(ref, LoopReference)
    x = digits.x_train[:20]
    plain = AE(digits.shape, latent_dim=4, hidden=(16,))
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(ref.model.loss(x)["loss"], 2 * plain.loss(x)["loss"])
    conv_like = AE(digits.shape)
    conv_like.encoder = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3))
    assert isinstance(reference_for(conv_like), LoopReference)
    assert isinstance(reference_for(PCA(digits.shape)), bench.PcaReference)
    assert "no plain reference for Opaque" in reference_for(Opaque(digits.shape))


def test_bench_imports_no_model_class_and_copies_no_loss():
    """The plain loop calls the model's own loss: bench.py names no built-in model module."""
    import inspect

    source = inspect.getsource(bench)
    assert "vaebench.models" not in source
    for name in ("binary_cross_entropy", "mse_loss", "reconstruction_loss", "vae_loss"):
        assert name not in source


def test_result_schema_and_flop_count():
    result = run_bench(BenchConfig(models=["pca", "ae"], **TINY))
    assert result["schema"] == bench.SCHEMA
    assert result["threads"] == 1 and result["repeats"] == 3 and result["clock"] == "wall"
    assert result["image_shape"] == [1, 8, 8] and result["complete"] is True
    pca, ae = result["models"]
    for rec in (pca, ae):
        assert rec["status"] == "ok" and rec["reference"]
        for what in ("train", "encode", "decode"):
            h, r, ratio = (rec[what][k] for k in ("harness", "reference", "ratio"))
            assert len(h["values"]) == len(r["values"]) == 3
            assert all(v > 0 for v in h["values"] + r["values"])
            assert ratio["values"] == pytest.approx(
                [a / b for a, b in zip(h["values"], r["values"], strict=True)]
            )
        assert rec["peak_memory_mib"] > 0
    assert pca["flops"] is None  # PCA has no training step to trace
    # a dense layer a -> b costs 2ab FLOPs forward, 2ab for its weight gradient and 2ab for
    # its input gradient -- except the first, whose input (the data) needs no gradient
    sizes = [(64, 512), (512, 256), (256, 10), (10, 256), (256, 512), (512, 64)]
    expected = sum(6 * a * b for a, b in sizes) - 2 * 64 * 512
    assert ae["flops"]["train_flops_per_sample"] == pytest.approx(expected, rel=0.01)
    f = ae["flops"]
    assert f["fraction"]["median"] == pytest.approx(
        f["achieved_gflops"]["median"] / f["matmul_gflops"]["median"], rel=0.5
    )
    assert json.loads(json.dumps(result, default=str))  # JSON-ready


def test_plugin_models_get_the_harness_columns_only():
    """A plugin's torch model gets the plain loop of its own loss; a model with neither a loss
    nor a linear projection gets the harness columns only."""

    def two_epochs(input_shape, device, **params):
        """A factory without an ``epochs`` parameter: bench cannot set one epoch per fit."""
        return AE(input_shape, device, epochs=2, batch_size=64)

    registry = _with_models(
        louder=ModelSpec("louder", LouderAE, "test"),
        opaque=ModelSpec("opaque", Opaque),
        twice=ModelSpec("twice", two_epochs, params={}),
    )
    result = run_bench(BenchConfig(models=["louder", "opaque", "twice"], **TINY), registry)
    louder, opaque, twice = result["models"]
    # training throughput counts the samples fit reports, whatever its epochs
    assert louder["samples_per_fit"] == opaque["samples_per_fit"] == 192
    assert twice["samples_per_fit"] == 2 * 192 and twice["train"]["ratio"]["median"] > 0
    assert louder["status"] == "ok" and louder["reference"] == LoopReference.description
    assert louder["reference_note"] is None and louder["train"]["ratio"]["median"] > 0
    assert opaque["status"] == "ok" and opaque["reference"] is None
    assert "harness columns only" in opaque["reference_note"]
    assert opaque["train"]["reference"] is None and opaque["train"]["ratio"] is None
    assert opaque["encode"]["harness"]["median"] > 0
    assert louder["flops"]["train_flops_per_sample"] > 0  # it has a loss(x): traced
    assert opaque["flops"] is None
    assert "harness columns only" in bench.format_table(result)


def test_a_failing_model_is_one_line_and_the_others_run():
    class Broken(AE):
        def fit(self, x, y=None, progress=None):
            raise RuntimeError("boom\nsecond line")

    registry = _with_models(broken=ModelSpec("broken", Broken))
    result = run_bench(BenchConfig(models=["broken", "pca"], **TINY), registry)
    broken, pca = result["models"]
    assert broken == {
        "model": "broken",
        "status": "failed",
        "error": "RuntimeError: boom second line",
    }
    assert pca["status"] == "ok"
    assert bench.format_row(broken) == "broken     FAILED: RuntimeError: boom second line"


def _cli(capsys, *args):
    from vaebench.cli import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", *args], prog_name="vaebench")
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "batch_size must be a positive integer, got 0"),
        (["--batch-size", "x"], "invalid value 'x' for --batch-size: expected a positive integer"),
        (["--repeats", "2"], "repeats must be at least 3"),
        (
            ["--threads", "-1"],
            "invalid value '-1' for --threads: expected an integer from 1 to 1024",
        ),
        (["--threads", "100000"], "for --threads: expected an integer from 1 to 1024"),
        (["--threads", "two"], "invalid value 'two' for --threads: expected an integer"),
        (["-m", "ae,nope"], "nope"),
        (["-d", "nope"], "nope"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--window", "0"], "window_s must be in (0, 60]"),
        (["--clock", "sun"], "'sun' is not one of 'wall', 'cpu'"),
        (["--json", "/nonexistent-folder/b.json"], "folder /nonexistent-folder does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    code, out, err = _cli(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and message in err, err
    assert out == ""


def test_cli_prints_the_table_and_writes_json(capsys, tmp_path):
    path = tmp_path / "bench.json"
    args = ["-m", "ae", "--threads", "1", "--batch-size", "64", "--train-samples", "128"]
    args += ["--repeats", "3", "--window", "0.002", "--device", "cpu", "--json", str(path)]
    code, out, _ = _cli(capsys, *args)
    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split()[:4] == ["model", "train/s", "ref", "ratio"]
    assert row.startswith("ae ")
    saved = json.loads(path.read_text())
    assert saved["schema"] == bench.SCHEMA and saved["models"][0]["model"] == "ae"
    assert saved["complete"] is True
    assert not list(tmp_path.glob("*.tmp"))
