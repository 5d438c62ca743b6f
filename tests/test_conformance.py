"""The conformance kit (vaebench.testing): built-ins pass it, deliberately faulty plugins fail it
with the failing check's name and what it expected."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import Tensor, nn

from vaebench.dataset import Dataset, DatasetSpec
from vaebench.metric import Metric, Value
from vaebench.model import FitReport, ModelSpec, TorchAutoencoder
from vaebench.plugins import get_registry
from vaebench.testing import (
    CheckFailed,
    ConformanceError,
    check_dataset,
    check_decode_shape,
    check_metric,
    check_model,
    check_save_load,
    dataset_checks,
    metric_checks,
    model_checks,
    parametrize_with_checks,
    run_model_checks,
    tiny_dataset,
    tiny_images,
)

# ----------------------------------------------------------------------------- built-ins pass

_REG = get_registry()
BUILTIN_MODELS = [r.spec for r in _REG.models.values() if r.dist == "vaebench"]
BUILTIN_METRICS = [
    _REG.metrics[n].spec
    for n in ("reconstruction", "throughput", "interpolation")
    if n in _REG.metrics and _REG.metrics[n].dist == "vaebench"
]
TINY_SPEC = DatasetSpec(
    "tiny-blobs", tiny_dataset, "the kit's own tiny dataset", (1, 8, 8), (128, 64)
)


@parametrize_with_checks(
    [*BUILTIN_MODELS, *BUILTIN_METRICS, TINY_SPEC, _REG.datasets["digits"].spec]
)
def test_builtin_plugins_conform(subject, check):
    check(subject)


def test_every_builtin_model_is_covered():
    assert {s.name for s in BUILTIN_MODELS} >= {"pca", "ae", "noisy", "vae"}


# ----------------------------------------------------------------------------- faulty models


def small(cls: type, **params) -> ModelSpec:
    """A spec for a faulty model class with a small network."""
    params = {"latent_dim": 3, "hidden": (16,), "epochs": 2, "batch_size": 32, **params}
    return ModelSpec(cls.__name__.lower(), cls, cls.__doc__ or "", params)


class WrongDecodeShape(TorchAutoencoder):
    """decode drops the channel axis."""

    def decode(self, z: Tensor) -> Tensor:
        return super().decode(z)[:, 0]


class WrongCodeShape(TorchAutoencoder):
    """encode returns the raw encoder output (mean and log-variance): twice latent_dim."""

    code_outputs = 2

    def code(self, h: Tensor) -> Tensor:
        return h if not self.training else h[:, : self.latent_dim]


class NoisyEncode(TorchAutoencoder):
    """encode samples instead of returning a deterministic code."""

    def encode(self, x: Tensor) -> Tensor:
        z = super().encode(x)
        return z + 0.1 * torch.randn_like(z)


class UnseededInit(TorchAutoencoder):
    """re-initialises its weights from an unseeded generator."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        g = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


class ForgetsDecoderState(TorchAutoencoder):
    """state_dict leaves out the decoder, so a loaded model decodes with random weights."""

    def state_dict(self, *args, **kwargs):
        return {k: v for k, v in super().state_dict().items() if k.startswith("encoder.")}

    def load_state_dict(self, state, strict: bool = True):
        return super().load_state_dict(state, strict=False)


class GradLeak(TorchAutoencoder):
    """encode runs with autograd on."""

    def encode(self, x: Tensor) -> Tensor:
        return self.code(self.encoder_outputs(x))


class Logits(TorchAutoencoder):
    """decode forgets the sigmoid."""

    def decode(self, z: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.decoder_logits(z).reshape(z.shape[0], *self.input_shape)


class Lazy(TorchAutoencoder):
    """fit does not train."""

    def fit(self, x: Tensor, progress=None) -> FitReport:
        return FitReport(
            history={"loss": [1.0, 1.0]}, seconds=0.0, samples_seen=x.shape[0], epochs=2
        )


class NoParams(TorchAutoencoder):
    """reports zero parameters."""

    @property
    def n_params(self) -> int:
        return 0


class SampleIgnoresGenerator(TorchAutoencoder):
    """sample draws from the global generator, not the one it is given."""

    def sample(self, n: int, generator=None) -> Tensor:
        return self.decode(torch.randn(n, self.latent_dim))


def not_a_model(input_shape, device="cpu", latent_dim: int = 3) -> nn.Module:
    """returns a plain torch module."""
    return nn.Linear(4, latent_dim)


FAULTY = [
    (small(WrongDecodeShape), "check_decode_shape", "expected decode(encode(x)) to have shape (5, 1, 8, 8)"),
    (small(WrongCodeShape), "check_encode_shape", "to have shape (5, 3), got (5, 6)"),
    (small(NoisyEncode), "check_deterministic", "expected encode to be deterministic"),
    (small(UnseededInit), "check_deterministic", "expected identical codes from two fits under seed_everything(0)"),
    (small(ForgetsDecoderState), "check_save_load", "expected identical reconstructions after save/load"),
    (small(GradLeak), "check_no_grad", "expected encode outputs with requires_grad=False"),
    (small(Logits), "check_decode_range", "in [0, 1]"),
    (small(Lazy), "check_fit_lowers_loss", "expected fit to lower the loss"),
    (small(NoParams), "check_metadata", "expected n_params to be an int > 0, got 0"),
    (small(SampleIgnoresGenerator), "check_sample", "expected identical samples for two generators"),
    (ModelSpec("not-a-model", not_a_model), "check_interface", "expected the factory to return a vaebench.model.Model, got Linear"),
]  # fmt: skip


ALSO_FAILING = {
    # outputs that change from call to call also break the checks that compare outputs
    "noisyencode": {"check_deterministic", "check_save_load", "check_device"},
    # wrong code shapes break everything downstream of encode
    "wrongcodeshape": {"check_encode_shape", "check_decode_shape", "check_decode_range",
                       "check_deterministic", "check_device", "check_fit_lowers_loss",
                       "check_no_grad", "check_save_load"},
    # not a Model at all: nothing works
    "not-a-model": {c.__name__ for c in model_checks()},
}  # fmt: skip


@pytest.mark.parametrize(
    "spec, check_name, expected", FAULTY, ids=[f"{c}[{s.name}]" for s, c, _ in FAULTY]
)
def test_faulty_model_fails_the_right_check_with_its_name(spec, check_name, expected):
    with pytest.raises(ConformanceError) as info:
        check_model(spec)
    failed = {r.name: r.message for r in info.value.failures}
    assert check_name in failed, failed
    assert expected in failed[check_name]
    assert f"  {check_name}: " in str(info.value)
    # a fault fails its own check; only faults that break every output fail others too
    assert set(failed) == ALSO_FAILING.get(spec.name, {check_name}), failed
    # the individual check raises an AssertionError subclass naming check and model
    check = {c.__name__: c for c in model_checks()}[check_name]
    with pytest.raises(CheckFailed) as one:
        check(spec)
    assert isinstance(one.value, AssertionError)
    assert str(one.value).startswith(f"{check_name}[{spec.name}]: ")
    assert expected in str(one.value)


def test_run_model_checks_never_raises_even_when_the_factory_does():
    def explodes(input_shape, device="cpu"):
        raise RuntimeError("cannot build")

    results = list(run_model_checks(ModelSpec("explodes", explodes)))
    assert [r.name for r in results] == [c.__name__ for c in model_checks()]
    assert not any(r.passed for r in results[:-1])
    assert "RuntimeError: cannot build" in results[0].message


def test_run_model_checks_accepts_a_factory_or_a_class_and_selects_checks():
    results = list(run_model_checks(WrongDecodeShape, checks=["check_decode_shape"]))
    assert [(r.name, r.subject, r.passed) for r in results] == [
        ("check_decode_shape", "WrongDecodeShape", False)
    ]
    with pytest.raises(ValueError, match="unknown check.*check_nope; valid: check_interface"):
        list(run_model_checks("pca", checks=["check_nope"]))


def test_user_params_reach_the_model():
    with pytest.raises(CheckFailed, match=r"check_save_load\[ae\]: expected that save then load"):
        check_save_load("ae", params={"latent_dim": 0})
    check_decode_shape("ae", params={"hidden": (8,), "latent_dim": 2})


def test_check_model_returns_the_results_when_all_pass():
    results = check_model("pca")
    assert [r.name for r in results] == [c.__name__ for c in model_checks()]
    assert results[-1].message == "not applicable: the model has no sample()"


# ----------------------------------------------------------------------------- pytest helper


def test_parametrize_ids_and_expected_failures():
    mark = parametrize_with_checks(
        [small(ForgetsDecoderState)], expected_failed_checks={"check_save_load": "known bug"}
    )
    argnames, params = mark.args
    assert argnames == "subject, check"
    ids = [p.id for p in params]
    assert ids == [f"{c.__name__}[forgetsdecoderstate]" for c in model_checks()]
    xfails = [p.id for p in params if p.marks]
    assert xfails == ["check_save_load[forgetsdecoderstate]"]
    assert not params[0].marks
    assert params[ids.index(xfails[0])].marks[0].kwargs["strict"] is True


def test_a_plugin_author_can_run_one_check_with_k(tmp_path: Path):
    test_file = tmp_path / "test_mine.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import torch
            from vaebench.model import ModelSpec, TorchAutoencoder
            from vaebench.testing import parametrize_with_checks

            class Mine(TorchAutoencoder):
                def state_dict(self, *a, **k):
                    return {}

                def load_state_dict(self, state, strict=True):
                    pass

            SPEC = ModelSpec("mine", Mine, params={"latent_dim": 2, "hidden": (8,)})

            @parametrize_with_checks([SPEC])
            def test_conformance(subject, check):
                check(subject)
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "check_save_load",
         str(test_file)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout
    assert "1 failed, 10 deselected" in proc.stdout
    assert "test_conformance[check_save_load[mine]]" in proc.stdout
    assert "check_save_load[mine]: expected identical codes after save/load" in proc.stdout


# ----------------------------------------------------------------------------- datasets


def _spec(loader, name: str = "bad", shape=(1, 8, 8), sizes=(128, 64)) -> DatasetSpec:
    return DatasetSpec(name, loader, "a faulty dataset", shape, sizes)


def _wrong_declared_shape() -> Dataset:
    return tiny_dataset((1, 16, 16))


def _short_labels() -> Dataset:
    ds = tiny_dataset()
    ds.y_train = ds.y_train[:-1]
    return ds


def _shuffled_factors() -> Dataset:
    ds = tiny_dataset()
    ds.factors_test = ds.factors_test.roll(1, 0)
    return ds


def _unseeded() -> Dataset:
    return tiny_dataset(seed=int.from_bytes(os.urandom(2), "little"))


def _bytes_not_floats() -> Dataset:
    ds = tiny_dataset()
    ds.x_train = ds.x_train * 255
    return ds


@pytest.mark.parametrize(
    "loader, check_name, expected",
    [
        (_wrong_declared_shape, "check_dataset_shapes", "to match DatasetSpec.shape (1, 8, 8)"),
        (_short_labels, "check_dataset_labels", "expected y_train of shape (128,), got (127,)"),
        (_shuffled_factors, "check_dataset_render", "match its own test image far better"),
        (_unseeded, "check_dataset_deterministic", "expected identical x_train from two loads"),
        (_bytes_not_floats, "check_dataset_range", "expected x_train in [0, 1]"),
    ],
)
def test_faulty_dataset_fails_the_right_check(loader, check_name, expected):
    with pytest.raises(ConformanceError) as info:
        check_dataset(_spec(loader))
    failed = {r.name: r.message for r in info.value.failures}
    assert set(failed) == {check_name}
    assert expected in failed[check_name]
    assert f"{check_name}: " in str(info.value)


def test_dataset_checks_pass_on_the_kits_dataset_and_cover_render():
    results = check_dataset(TINY_SPEC)
    assert [r.name for r in results] == [c.__name__ for c in dataset_checks()]
    assert all(r.message == "" for r in results)  # render check applied, not skipped


# ----------------------------------------------------------------------------- metrics


class _Base(Metric):
    values = (Value("score", True), Value("other", None))

    def evaluate(self, model, dataset, ctx):
        return {"score": 1.0, "other": 2.0}


class Undeclared(_Base):
    name = "undeclared"

    def evaluate(self, model, dataset, ctx):
        return {"score": 1.0, "other": 2.0, "surprise": 3.0}


class NotFinite(_Base):
    name = "not-finite"

    def evaluate(self, model, dataset, ctx):
        return {"score": float("nan"), "other": 2.0}


class Unseeded(_Base):
    name = "unseeded"

    def evaluate(self, model, dataset, ctx):
        return {"score": float(torch.rand(())), "other": 2.0}


class Duplicated(_Base):
    name = "duplicated"
    values = (Value("score", True), Value("score", False))


@pytest.mark.parametrize(
    "metric, check_name, expected",
    [
        (Undeclared(), "check_metric_values", "undeclared ['surprise']"),
        (NotFinite(), "check_metric_values", "expected a finite value for 'score', got nan"),
        (Unseeded(), "check_metric_deterministic", "expected equal values from two evaluations"),
        (Duplicated(), "check_metric_declares", "expected unique value names, got duplicates ['score']"),
    ],
    ids=lambda v: v.name if isinstance(v, Metric) else None,
)  # fmt: skip
def test_faulty_metric_fails_the_right_check(metric, check_name, expected):
    with pytest.raises(ConformanceError) as info:
        check_metric(metric)
    failed = {r.name: r.message for r in info.value.failures}
    assert check_name in failed, failed
    assert expected in failed[check_name]


def test_metric_checks_on_a_given_model_and_dataset(digits):
    from vaebench.models.pca import PCA

    ds = digits.subset(100)
    model = PCA(ds.shape, latent_dim=4)
    model.fit(ds.x_train)
    results = check_metric("reconstruction", model=model, dataset=ds)
    assert [r.name for r in results] == [c.__name__ for c in metric_checks()]


def test_tiny_images_are_structured_and_in_range():
    x = tiny_images((3, 16, 16), n=10)
    assert x.shape == (10, 3, 16, 16) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert torch.equal(x, tiny_images((3, 16, 16), n=10))


# ----------------------------------------------------------------------------- command line


def test_check_command_passes_for_builtins():
    from vaebench.cli import cli

    result = CliRunner().invoke(cli, ["check", "pca", "vae"])
    assert result.exit_code == 0, result.output
    assert "pca (vaebench 0.1.0 (vaebench.models.pca)):" in result.output
    assert "  PASS check_save_load" in result.output
    # pca has no prior: its sample check is reported as skipped, not as passed
    assert "  SKIP check_sample: not applicable: the model has no sample()" in result.output
    assert result.output.count("PASS") == 2 * len(model_checks()) - 1
    assert "FAIL" not in result.output


def test_check_command_unknown_model_is_a_usage_error():
    from vaebench.cli import cli

    result = CliRunner().invoke(cli, ["check", "nope"])
    assert result.exit_code == 2
    assert "unknown model 'nope'; valid:" in result.output
