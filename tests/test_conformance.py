"""The conformance kit (vaebench.testing): built-ins pass it, deliberately faulty plugins fail it
with the failing check's name and what it expected."""

from __future__ import annotations

import contextlib
import copy
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import Tensor, nn
from torch.nn import functional as F

from vaebench.dataset import Dataset, DatasetSpec
from vaebench.hookspecs import hookimpl
from vaebench.metric import Metric, Value
from vaebench.model import FitReport, Model, ModelSpec, TorchAutoencoder
from vaebench.plugins import get_registry
from vaebench.testing import (
    MAX_TEST_OVERLAP,
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
    run_dataset_checks,
    run_metric_checks,
    run_model_checks,
    tiny_dataset,
    tiny_images,
)

# ----------------------------------------------------------------------------- built-ins pass

_REG = get_registry()
#: Every registered model, dataset and metric (built-ins and installed plugins alike): a model
#: another branch or plugin registers is covered without editing this file.
REGISTERED_MODELS = [r.spec for r in _REG.models.values()]
REGISTERED_DATASETS = sorted(_REG.datasets)
REGISTERED_METRICS = sorted(_REG.metrics)
TINY_SPEC = DatasetSpec(
    "tiny-blobs", tiny_dataset, "the kit's own tiny dataset", (1, 8, 8), (128, 64)
)
#: Options that keep a dataset check cheap, each applied where the dataset declares it: a small
#: generated split, and no download (data files not on this machine skip the dataset's checks).
SMALL_DATASET = {"n_train": 40, "n_test": 20, "max_images": 64, "download": False}
#: The phrase of a file-backed loader whose files are absent and may not be downloaded.
NOT_ON_THIS_MACHINE = "downloading is off"


#: Options that keep an expensive metric's check short (its own feature network and sample
#: counts), each applied where the metric declares it; the kit's FAST_EVAL_OPTIONS cover the rest.
SMALL_METRIC = {"sample_n": 256, "feature_steps": 100, "feature_train_n": 512,
                "two_stage_steps": 100, "kid_subsets": 10, "kid_subset_size": 100}  # fmt: skip


def small_metric(metric: Metric) -> Metric:
    """A copy of ``metric`` whose declared options are cut to :data:`SMALL_METRIC`."""
    options = dict(getattr(metric, "options", None) or {})
    small = copy.copy(metric)
    small.options = {**options, **{k: v for k, v in SMALL_METRIC.items() if k in options}}
    return small


def small_options(spec: DatasetSpec) -> dict:
    defaults = spec.defaults()
    return {k: v for k, v in SMALL_DATASET.items() if k in defaults}


@parametrize_with_checks([*REGISTERED_MODELS, TINY_SPEC])
def test_registered_models_conform(subject, check):
    """All model checks on every registered model, at the kit's own tiny shapes and budgets."""
    check(subject)


def test_every_builtin_model_is_covered():
    assert {s.name for s in REGISTERED_MODELS} >= {"pca", "ae", "noisy", "vae"}
    assert set(REGISTERED_METRICS) >= {"reconstruction", "interpolation", "acai", "midpoint"}
    assert set(REGISTERED_DATASETS) >= {"digits", "moons", "lines", "mnist"}


@pytest.mark.parametrize("name", REGISTERED_DATASETS)
def test_registered_datasets_conform(name):
    """All dataset checks on every registered dataset, generated ones at a small size; one whose
    data files are not on this machine is skipped with the loader's own message."""
    spec = _REG.datasets[name].spec
    results = list(run_dataset_checks(spec, options=small_options(spec)))
    if not results[0].passed and NOT_ON_THIS_MACHINE in results[0].message:
        pytest.skip(f"{name}: {results[0].message}")
    failed = [f"{r.name}: {r.message}" for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    assert [r.name for r in results] == [c.__name__ for c in dataset_checks()]


def _metric_datasets():
    """Where a metric is checked: the kit's tiny dataset first, then every registered dataset
    with a small generated split (e.g. ``lines`` for ``acai``, a moons set for ``midpoint``)."""
    yield None
    for name in REGISTERED_DATASETS:
        spec = _REG.datasets[name].spec
        if {"n_train", "n_test"} <= set(spec.defaults()):
            yield spec.load(**small_options(spec))


@pytest.mark.parametrize("name", REGISTERED_METRICS)
def test_registered_metrics_conform(name):
    """All metric checks on every registered metric, on the first small dataset its values
    apply to (the kit fits its small VAE there); a metric that applies to none fails."""
    metric = small_metric(_REG.metrics[name].spec)
    for dataset in _metric_datasets():
        results = list(run_metric_checks(metric, dataset=dataset))
        failed = [f"{r.name}: {r.message}" for r in results if not r.passed]
        assert not failed, "\n".join(failed)
        if not any(r.skipped for r in results):
            return
    pytest.fail(f"metric {name} applies to none of the kit's small datasets: {results}")


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


class TinyAE(nn.Module, Model):
    """A standalone BatchNorm autoencoder with its own training loop (not TorchAutoencoder, so
    the faults below stay faults whatever the shared loop does). Done right: a new model is in
    eval mode, inference runs in eval mode and restores the mode, and a last batch of one image
    joins the previous batch."""

    def __init__(
        self,
        input_shape,
        device="cpu",
        latent_dim: int = 3,
        hidden: int = 16,
        epochs: int = 2,
        batch_size: int = 16,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.latent_dim, self.epochs, self.batch_size = latent_dim, epochs, batch_size
        d = math.prod(self.input_shape)
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, latent_dim),
        )  # fmt: skip
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, d))
        self._device = torch.device(device)
        nn.Module.to(self, self._device)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device):
        self._device = torch.device(device)
        nn.Module.to(self, self._device)
        return self

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def state_dict(self, *args, **kwargs):
        return dict(nn.Module.state_dict(self, *args, **kwargs))

    def load_state_dict(self, state, strict: bool = True):
        return nn.Module.load_state_dict(self, state, strict=strict)

    def batches(self, n: int) -> list[tuple[int, int]]:
        """Batch bounds over n examples; a last batch of one joins the previous one."""
        bounds = [(a, min(a + self.batch_size, n)) for a in range(0, n, self.batch_size)]
        if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2:] = [(bounds[-2][0], n)]
        return bounds

    def fit(self, x: Tensor, y=None, progress=None) -> FitReport:
        start = time.perf_counter()
        x = x.to(self._device)
        opt = torch.optim.Adam(self.parameters(), lr=1e-2)
        history = []
        self.train()
        for _ in range(self.epochs):
            perm = torch.randperm(x.shape[0], device=self._device)
            total = 0.0
            for a, b in self.batches(x.shape[0]):
                batch = x[perm[a:b]]
                logits = self.decoder(self.encoder(batch))
                loss = F.binary_cross_entropy_with_logits(
                    logits, batch.flatten(1), reduction="none"
                ).sum(1).mean()  # fmt: skip
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * (b - a)
            history.append(total / x.shape[0])
        self.eval()
        seconds = time.perf_counter() - start
        return FitReport({"loss": history}, seconds, x.shape[0] * self.epochs, self.epochs)

    @contextlib.contextmanager
    def inference(self):
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            self.train(was_training)

    def encode(self, x: Tensor) -> Tensor:
        with self.inference():
            return self.encoder(x.to(self._device)).float()

    def decode(self, z: Tensor) -> Tensor:
        with self.inference():
            out = torch.sigmoid(self.decoder(z.to(self._device)))
            return out.reshape(z.shape[0], *self.input_shape)


class InfersInTrainingMode(TinyAE):
    """BatchNorm autoencoder whose encode and decode run in whatever mode the module is in, and a
    new model is in training mode (torch's default): a fresh or reloaded model normalises by the
    batch, updates its running statistics and cannot encode one image (issue 10.4)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.train()

    def encode(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.encoder(x.to(self._device)).float()

    def decode(self, z: Tensor) -> Tensor:
        with torch.no_grad():
            out = torch.sigmoid(self.decoder(z.to(self._device)))
            return out.reshape(z.shape[0], *self.input_shape)


class NaiveLastBatch(TinyAE):
    """BatchNorm autoencoder whose loop slices batches naively: 33 images in batches of 16 leave
    a last batch of one image, on which BatchNorm raises (issue 10.5)."""

    def batches(self, n: int) -> list[tuple[int, int]]:
        return [(a, min(a + self.batch_size, n)) for a in range(0, n, self.batch_size)]


def standalone(cls: type) -> ModelSpec:
    return ModelSpec(cls.__name__.lower(), cls, cls.__doc__ or "")


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
    (standalone(InfersInTrainingMode), "check_inference_unchanged", "expected encode of 8 images to leave the model unchanged, but on a freshly built model it changed encoder.2.num_batches_tracked, encoder.2.running_mean, encoder.2.running_var (BatchNorm running statistics change only in training mode) (the model is in training mode"),
    (standalone(NaiveLastBatch), "check_fit_last_batch_of_one", "expected fit on 33 images with batch_size=16 (a last batch of one image) to work, but it raised ValueError: Expected more than 1 value per channel when training"),
]  # fmt: skip


ALSO_FAILING = {
    # outputs that change from call to call also break the checks that compare outputs
    "noisyencode": {"check_deterministic", "check_save_load", "check_device",
                    "check_inference_unchanged"},
    # wrong code shapes break everything downstream of encode
    "wrongcodeshape": {"check_encode_shape", "check_decode_shape", "check_decode_range",
                       "check_deterministic", "check_device", "check_fit_lowers_loss",
                       "check_no_grad", "check_save_load", "check_inference_unchanged",
                       "check_fit_last_batch_of_one"},
    # a reloaded model in training mode does not reproduce the saved one's outputs
    "infersintrainingmode": {"check_inference_unchanged", "check_save_load"},
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
    skipped = {r.name: r.message for r in results if r.skipped}
    assert skipped == {
        "check_sample": "not applicable: the model has no prior to sample from "
        "(tags.can_sample is False)",
        "check_posterior": "not applicable: the model has no posterior "
        "(tags.has_posterior is False)",
        "check_log_likelihood": "not applicable: the model states no likelihood "
        "(tags.likelihood is empty)",
    }
    notes = {r.name: r.message for r in results if r.message and not r.skipped}
    assert notes == {
        "check_tags": "image shapes used: (1, 8, 8), (1, 28, 28), (3, 16, 16)",
        "check_fit_last_batch_of_one": "fitted 33 images (the model has no batch_size parameter)",
    }


@pytest.mark.parametrize("kind", ["model", "dataset", "metric"])
def test_check_functions_take_the_arguments_of_their_run_functions(kind):
    # check_X is run_X_checks collected and raised: the same parameters, one definition
    import inspect

    import vaebench.testing as kit

    check, run = getattr(kit, f"check_{kind}"), getattr(kit, f"run_{kind}_checks")
    assert check.__name__ == f"check_{kind}"
    assert "ConformanceError" in check.__doc__
    got, want = inspect.signature(check), inspect.signature(run)
    assert list(got.parameters.values()) == list(want.parameters.values())
    assert got.return_annotation == "list[CheckResult]"


def test_check_model_passes_every_argument_of_run_model_checks_on():
    results = check_model("pca", "cpu", checks=["check_tags"], threads=1)
    assert [r.name for r in results] == ["check_tags"] and results[0].passed
    # the subject by the name help() shows, as every other argument
    assert [r.name for r in check_model(model="pca", checks="check_tags")] == ["check_tags"]
    with pytest.raises(TypeError, match="nope"):
        check_model("pca", nope=1)
    with pytest.raises(ConformanceError) as info:
        check_model(ModelSpec("not-a-model", not_a_model), checks=["check_interface"])
    assert [r.name for r in info.value.failures] == ["check_interface"]


def test_a_batchnorm_model_done_right_passes_every_check():
    # eval mode at inference, a last batch of one merged: the kit has no false alarm for it
    results = check_model(standalone(TinyAE))
    assert all(r.passed for r in results)
    last = next(r for r in results if r.name == "check_fit_last_batch_of_one")
    assert last.message == "fitted 33 images with batch_size=16 (a last batch of one image)"


def test_save_load_blames_training_mode_not_an_incomplete_state_dict():
    # issue 10.4: the kit used to blame state_dict(), which is complete
    with pytest.raises(CheckFailed) as info:
        check_save_load(standalone(InfersInTrainingMode))
    message = str(info.value)
    assert message.startswith("check_save_load[infersintrainingmode]: expected identical codes")
    assert "(state_dict() is complete), but the loaded model infers in training mode" in message
    assert "in eval mode it reproduces the outputs exactly" in message
    assert "must hold every tensor" not in message


def test_save_load_names_the_tensors_a_state_dict_leaves_out():
    with pytest.raises(CheckFailed) as info:
        check_save_load(small(ForgetsDecoderState))
    message = str(info.value)
    assert "expected identical reconstructions after save/load" in message
    assert "the loaded model's tensors differ from the saved model's in decoder." in message
    assert "state_dict() must hold every tensor decode uses" in message


def test_save_load_blames_outputs_that_are_not_deterministic():
    with pytest.raises(CheckFailed, match="the saved model itself gives other outputs on a second"):
        check_save_load(small(NoisyEncode))


def test_a_check_takes_its_subject_by_keyword_and_rejects_unknown_options():
    check_decode_shape(model="pca", params={"latent_dim": 2})
    with pytest.raises(TypeError):
        check_decode_shape("pca", colour="blue")
    assert [c.kind for c in model_checks()] == ["model"] * len(model_checks())
    assert "params" in str(__import__("inspect").signature(check_decode_shape))


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
    assert f"1 failed, {len(model_checks()) - 1} deselected" in proc.stdout
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
    results = check_dataset(dataset=TINY_SPEC)
    assert [r.name for r in results] == [c.__name__ for c in dataset_checks()]
    assert not any(r.skipped for r in results)  # render check applied, not skipped
    notes = {r.name: r.message for r in results if r.message}
    assert notes == {
        "check_dataset_overlap": "0 of 64 test images (0.0%) are exact copies of training images"
    }


def _test_split_copies(k: int, n_test: int = 64) -> Dataset:
    """The kit's dataset with its first ``k`` test images (and their labels and factors)
    replaced by training images -- as a plugin's first ``rings`` dataset had 465 of 500."""
    ds = tiny_dataset(n_test=n_test)
    for attr in ("x", "y", "factors"):
        train, test = getattr(ds, f"{attr}_train"), getattr(ds, f"{attr}_test")
        setattr(ds, f"{attr}_test", torch.cat([train[:k], test[k:]]))
    return ds


def test_a_test_split_that_copies_training_images_fails_with_the_count():
    with pytest.raises(ConformanceError) as info:
        check_dataset(_spec(lambda: _test_split_copies(60)))
    failed = {r.name: r.message for r in info.value.failures}
    assert set(failed) == {"check_dataset_overlap"}
    assert failed["check_dataset_overlap"].startswith(
        "expected at most 1% of the test images to be copies of training images, but 60 of 64 "
        "test images (93.8%) are exact copies of training images: test scores would measure "
        "memorisation."
    )


@pytest.mark.parametrize("copies, passes", [(2, True), (3, False)])
def test_overlap_threshold_is_the_documented_fraction(copies, passes):
    assert MAX_TEST_OVERLAP == 0.01
    spec = _spec(lambda: _test_split_copies(copies, n_test=200), sizes=(128, 200))
    result = next(run_dataset_checks(spec, checks=["check_dataset_overlap"]))
    assert result.passed is passes
    found = f"{copies} of 200 test images ({copies / 200:.1%}) are exact copies of training images"
    assert (result.message == found) if passes else (found in result.message)


def test_overlap_counts_images_equal_up_to_the_sign_of_zero():
    def signed_zero() -> Dataset:
        ds = _test_split_copies(60)
        ds.x_test = torch.where(ds.x_test == 0, torch.tensor(-0.0), ds.x_test)
        return ds

    result = next(run_dataset_checks(_spec(signed_zero), checks=["check_dataset_overlap"]))
    assert not result.passed and "60 of 64 test images" in result.message


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


class BadCost(_Base):
    name = "bad-cost"
    cost = "free"


class UndeclaredOptionDoc(_Base):
    name = "undeclared-doc"
    options = {"k": 5}
    option_docs = {"k": "samples per image", "j": "an option nobody declared"}


class RejectsItsDefaults(_Base):
    name = "rejects-defaults"
    options = {"k": 0}

    def check_options(self, options):
        if options["k"] < 1:
            raise ValueError(f"eval.k={options['k']}: must be >= 1")


class MutatesModel(_Base):
    name = "mutates"

    def evaluate(self, model, dataset, ctx):
        with torch.no_grad():
            next(iter(model.parameters())).add_(1.0)
        return {"score": 1.0, "other": 2.0}


class NeedsAngles(_Base):
    name = "needs-angles"

    def applies_to(self, model, dataset):
        return "needs a factor named 'angle'"


@pytest.mark.parametrize(
    "metric, check_name, expected",
    [
        (BadCost(), "check_metric_declares", "expected `cost` to be one of cheap, moderate, expensive, got 'free'"),
        (UndeclaredOptionDoc(), "check_metric_declares", "expected `option_docs` to describe declared options only, got ['j']"),
        (RejectsItsDefaults(), "check_metric_declares", "expected check_options to accept the declared defaults {'k': 0}, but it raised ValueError: eval.k=0: must be >= 1"),
        (MutatesModel(), "check_metric_values", "expected evaluate to leave the model unchanged, it changed ["),
    ],
    ids=lambda v: v.name if isinstance(v, Metric) else None,
)  # fmt: skip
def test_faulty_metric_declarations_fail_the_right_check(metric, check_name, expected):
    with pytest.raises(ConformanceError) as info:
        check_metric(metric)
    failed = {r.name: r.message for r in info.value.failures}
    assert check_name in failed, failed
    assert expected in failed[check_name]


def test_a_metric_that_does_not_apply_is_skipped_with_its_reason():
    results = list(run_metric_checks(NeedsAngles()))
    assert [(r.name, r.passed, r.skipped) for r in results] == [
        ("check_metric_declares", True, False),
        ("check_metric_values", True, True),
        ("check_metric_deterministic", True, True),
    ]
    assert "needs a factor named 'angle'; pass model= and dataset= it applies to" in (
        results[1].message
    )


def test_metric_checks_on_a_given_model_and_dataset(digits):
    from vaebench.models.pca import PCA

    ds = digits.subset(100)
    model = PCA(ds.shape, latent_dim=4)
    model.fit(ds.x_train)
    results = check_metric(metric="reconstruction", model=model, dataset=ds)
    assert [r.name for r in results] == [c.__name__ for c in metric_checks()]


def test_tiny_images_are_structured_and_in_range():
    x = tiny_images((3, 16, 16), n=10)
    assert x.shape == (10, 3, 16, 16) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert torch.equal(x, tiny_images((3, 16, 16), n=10))


# ----------------------------------------------------------------------------- command line


def test_check_command_passes_for_builtins():
    from vaebench.cli import cli

    result = CliRunner().invoke(cli, ["check", "pca", "ae"])
    assert result.exit_code == 0, result.output
    assert "model pca (vaebench 0.1.0 (vaebench.models.pca)):" in result.stdout
    assert "  PASS check_save_load\n" in result.stdout
    # pca has no prior: its sample check is reported as skipped, not as passed
    assert (
        "  SKIP check_sample: not applicable: the model has no prior to sample from "
        "(tags.can_sample is False)" in result.stdout
    )
    assert result.stdout.count("  PASS ") == 2 * (len(model_checks()) - 3)
    assert result.stdout.count("  SKIP ") == 2 * 3
    assert "FAIL" not in result.stdout
    n = len(model_checks())
    assert result.stderr == f"{2 * (n - 3)} passed, 0 failed, 6 skipped (1 torch thread)\n"


def test_check_command_unknown_model_is_a_usage_error():
    from vaebench.cli import cli

    result = CliRunner().invoke(cli, ["check", "nope"])
    assert result.exit_code == 2
    assert "unknown model 'nope'; valid:" in result.output
    # a device that is none is refused in one line, as `run --device` does (once 16 FAILs)
    bad = CliRunner().invoke(cli, ["check", "pca", "--device", "tpu"])
    assert bad.exit_code == 2 and bad.stdout == ""
    assert bad.stderr == "Error: unknown device 'tpu'; valid: auto, cpu, cuda, mps (or cuda:N)\n"


class _KitPlugin:
    """Registers a dataset whose test split copies its training split, the kit's own dataset,
    and a metric that does not apply to the kit's model."""

    @hookimpl
    def vaebench_datasets(self):
        return [
            DatasetSpec("copies", lambda: _test_split_copies(60), "copies", (1, 8, 8), (128, 64)),
            TINY_SPEC,
        ]

    @hookimpl
    def vaebench_metrics(self):
        return [NeedsAngles()]


@pytest.fixture
def kit_plugin(fresh_plugins):
    fresh_plugins.get_plugin_manager().register(_KitPlugin(), name="kit-test")
    return fresh_plugins.get_registry()


def test_check_command_checks_a_dataset_and_fails_on_overlap(kit_plugin):
    from vaebench.cli import cli

    result = CliRunner().invoke(cli, ["check", "--dataset", "copies"])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dataset copies (")
    assert [ln.split()[:2] for ln in lines[1:]] == [
        ["PASS", "check_dataset_loads"],
        ["PASS", "check_dataset_shapes"],
        ["PASS", "check_dataset_range"],
        ["PASS", "check_dataset_labels"],
        ["FAIL", "check_dataset_overlap:"],
        ["PASS", "check_dataset_render"],
        ["PASS", "check_dataset_deterministic"],
    ]
    assert "60 of 64 test images (93.8%) are exact copies of training images" in lines[5]
    assert result.stderr == "6 passed, 1 failed, 0 skipped (1 torch thread)\n"


def test_check_command_checks_datasets_and_metrics_together(kit_plugin):
    from vaebench.cli import cli

    result = CliRunner().invoke(
        cli, ["check", "--dataset", "tiny-blobs", "--metric", "reconstruction,needs-angles"]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "dataset tiny-blobs (" in out and "metric reconstruction (" in out
    assert "  PASS check_dataset_overlap: 0 of 64 test images (0.0%) are exact copies" in out
    assert "metric needs-angles (" in out
    assert (
        "  SKIP check_metric_values: not applicable: the metric does not apply to the check's "
        "model (VAE) and dataset (tiny-blobs): needs a factor named 'angle'" in out
    )
    assert "FAIL" not in out
    assert result.stderr == "11 passed, 0 failed, 2 skipped (1 torch thread)\n"


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "Error: name a model (vaebench check MODEL), --dataset NAME or --metric NAME"),
        (["pca", "--dataset", "nope"], "Error: unknown dataset 'nope'; valid: "),
        (["pca", "--metric", "nope"], "Error: unknown metric 'nope'; valid: "),
    ],
)
def test_check_command_refuses_bad_names_before_running_anything(args, message):
    from vaebench.cli import cli

    result = CliRunner().invoke(cli, ["check", *args])
    assert result.exit_code == 2
    assert result.stdout == ""  # nothing ran, not even pca's checks
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1


class OtherDoesNotApply(_Base):
    """Declares one of its values not applicable (as a sample metric's ``fd@prior`` for a model
    without a prior) and returns NaN for it."""

    name = "other-not-applicable"

    def evaluate(self, model, dataset, ctx):
        ctx.value_not_applicable("other", "this model has no prior")
        return {"score": 1.0, "other": float("nan")}


class OtherDoesNotApplyButHasANumber(OtherDoesNotApply):
    name = "other-not-applicable-number"

    def evaluate(self, model, dataset, ctx):
        ctx.value_not_applicable("other", "this model has no prior")
        return {"score": 1.0, "other": 2.0}


def test_values_declared_not_applicable_may_be_nan_or_missing_but_not_numbers():
    check_metric(OtherDoesNotApply())  # NaN for the declared value: passes

    class LeavesItOut(OtherDoesNotApply):
        name = "other-left-out"

        def evaluate(self, model, dataset, ctx):
            ctx.value_not_applicable("other", "this model has no prior")
            return {"score": 1.0}

    check_metric(LeavesItOut())
    with pytest.raises(ConformanceError) as info:
        check_metric(OtherDoesNotApplyButHasANumber())
    failed = {r.name: r.message for r in info.value.failures}
    assert (
        "expected NaN (or no entry) for 'other', declared not applicable"
        in failed["check_metric_values"]
    )
