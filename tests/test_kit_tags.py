"""The conformance kit adapts to a model's tags (issue 12.6), as scikit-learn's checks adapt to
estimator tags: image shapes within the model's limits, labels for models that use them, the
optional methods checked exactly when the tags offer them -- and tags that promise more than
the model has fail."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor
from torch.nn import functional as F

from vaebench.model import ModelSpec, Tags
from vaebench.nn import TorchAutoencoder
from vaebench.testing import (
    SHAPES,
    CheckResult,
    run_model_checks,
    tiny_images,
    tiny_labels,
)

SMALL = {"latent_dim": 3, "hidden": (16,), "epochs": 2, "batch_size": 32}


def spec(cls: type) -> ModelSpec:
    return ModelSpec(cls.__name__.lower(), cls, cls.__doc__ or "", dict(SMALL))


def results(cls: type) -> dict[str, CheckResult]:
    return {r.name: r for r in run_model_checks(spec(cls))}


def failures(cls: type) -> dict[str, str]:
    return {name: r.message for name, r in results(cls).items() if not r.passed}


# ----------------------------------------------------------------------------- image shapes


class NeedsSixteen(TorchAutoencoder):
    """Refuses images smaller than 16x16 and says so in its tags."""

    def __init__(self, input_shape, *args, **kwargs) -> None:
        if min(input_shape[1:]) < 16:
            raise ValueError(f"needs images of at least 16x16, got {tuple(input_shape)}")
        super().__init__(input_shape, *args, **kwargs)

    @property
    def tags(self) -> Tags:
        return dataclasses.replace(super().tags, min_image_size=16)


class ColourOnly(TorchAutoencoder):
    """Takes 3-channel images only."""

    def __init__(self, input_shape, *args, **kwargs) -> None:
        if input_shape[0] != 3:
            raise ValueError(f"needs colour images, got {input_shape[0]} channel(s)")
        super().__init__(input_shape, *args, **kwargs)

    @property
    def tags(self) -> Tags:
        return dataclasses.replace(super().tags, channels=(3,))


class AtMostSixteen(TorchAutoencoder):
    """Takes images of at most 16x16."""

    def __init__(self, input_shape, *args, **kwargs) -> None:
        if max(input_shape[1:]) > 16:
            raise ValueError(f"takes images of at most 16x16, got {tuple(input_shape)}")
        super().__init__(input_shape, *args, **kwargs)

    @property
    def tags(self) -> Tags:
        return dataclasses.replace(super().tags, max_image_size=16)


@pytest.mark.parametrize(
    "cls, shapes",
    [
        (NeedsSixteen, "(1, 16, 16), (1, 28, 28), (3, 16, 16)"),
        (ColourOnly, "(3, 8, 8), (3, 28, 28), (3, 16, 16)"),
        (AtMostSixteen, "(1, 8, 8), (1, 16, 16), (3, 16, 16)"),
    ],
)
def test_image_shapes_are_fitted_to_the_tags(cls, shapes):
    got = results(cls)
    assert all(r.passed for r in got.values()), {n: r.message for n, r in got.items()}
    assert got["check_tags"].message == f"image shapes used: {shapes}"


def test_without_the_tags_the_same_model_fails_on_the_default_shapes():
    class Undeclared(NeedsSixteen):
        @property
        def tags(self) -> Tags:
            return TorchAutoencoder.tags.fget(self)

    failed = failures(Undeclared)
    assert SHAPES[0] == (1, 8, 8)
    assert "needs images of at least 16x16, got (1, 8, 8)" in failed["check_encode_shape"]


# ----------------------------------------------------------------------------- labels


class UsesLabels(TorchAutoencoder):
    """Trains on labels (refuses to fit without them) and records what it got."""

    seen: list[Tensor] = []

    @property
    def tags(self) -> Tags:
        return dataclasses.replace(super().tags, uses_labels=True)

    def fit(self, x: Tensor, y: Tensor | None = None, progress=None):
        if y is None:
            raise ValueError("UsesLabels needs the training labels")
        if y.dtype != torch.int64 or tuple(y.shape) != (x.shape[0],):
            raise ValueError(f"expected int64 labels ({x.shape[0]},), got {y.dtype} {y.shape}")
        type(self).seen.append(y.cpu())
        return super().fit(x, progress=progress)


def test_a_model_that_uses_labels_gets_the_labels_of_the_tiny_images():
    got = results(UsesLabels)
    assert all(r.passed for r in got.values()), {n: r.message for n, r in got.items()}
    assert got["check_tags"].message.endswith("; fit gets labels")
    # every fit got the labels of its images (the kit's fits use seeds 0 and 3)
    assert UsesLabels.seen
    for y in UsesLabels.seen:
        assert any(torch.equal(y, tiny_labels(len(y), seed)) for seed in (0, 3))


def test_a_model_that_needs_labels_but_does_not_say_so_fails():
    class Unsaid(UsesLabels):
        @property
        def tags(self) -> Tags:
            return TorchAutoencoder.tags.fget(self)

    failed = failures(Unsaid)
    assert "UsesLabels needs the training labels" in failed["check_encode_shape"]


# ----------------------------------------------------------------------------- optional methods


class CannotSample(TorchAutoencoder):
    """Has a sample method but states it cannot sample (e.g. no meaningful prior)."""

    def sample(self, n, generator=None):
        raise RuntimeError("sample() is not meant to be called")

    @property
    def tags(self) -> Tags:
        return dataclasses.replace(super().tags, can_sample=False)


class SaysItSamples(TorchAutoencoder):
    """Its tags claim can_sample, but it has no sample()."""

    @property
    def tags(self) -> Tags:
        return dataclasses.replace(super().tags, can_sample=True)


class GoodPosterior(TorchAutoencoder):
    """A point posterior: the code as mean, log-variance -4."""

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.encode(x)
        return z, torch.full_like(z, -4.0)


class PosteriorWrongShape(GoodPosterior):
    """Returns one log-variance per image instead of one per latent dimension."""

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = super().posterior(x)
        return mean, logvar[:, :1]


class GoodLikelihood(TorchAutoencoder):
    """Bernoulli log p(x|z), summed over pixels."""

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        with torch.inference_mode():
            logits = self.decoder_logits(z.to(self.device)).float()
            flat = x.to(self.device).reshape(x.shape[0], -1)
            return -F.binary_cross_entropy_with_logits(logits, flat, reduction="none").sum(1)


class MeanLikelihood(GoodLikelihood):
    """Averages over pixels instead of summing: ELBOs would be off by the pixel count."""

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        return super().log_likelihood(x, z) / x[0].numel()


class NaNLikelihood(GoodLikelihood):
    """Returns NaN for the first image."""

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        out = super().log_likelihood(x, z).clone()
        out[0] = float("nan")
        return out


def test_checks_of_missing_capabilities_are_skipped():
    got = results(CannotSample)
    assert all(r.passed for r in got.values()), {n: r.message for n, r in got.items()}
    skipped = sorted(n for n, r in got.items() if r.skipped)
    assert skipped == ["check_log_likelihood", "check_posterior", "check_sample"]
    assert got["check_sample"].message == (
        "not applicable: the model has no prior to sample from (tags.can_sample is False)"
    )


def test_tags_that_promise_a_method_the_model_lacks_fail():
    failed = failures(SaysItSamples)
    assert failed["check_tags"] == (
        "expected a sample() method: the tags say can_sample=True but SaysItSamples does not "
        "implement sample"
    )
    assert "NotImplementedError" in failed["check_sample"]
    assert set(failed) == {"check_tags", "check_sample", "check_inference_unchanged"}


def test_a_correct_posterior_and_likelihood_pass_their_checks():
    for cls, check in (
        (GoodPosterior, "check_posterior"),
        (GoodLikelihood, "check_log_likelihood"),
    ):
        got = results(cls)
        assert got[check].passed and not got[check].skipped, got[check].message
        assert all(r.passed for r in got.values()), {n: r.message for n, r in got.items()}


@pytest.mark.parametrize(
    "cls, check, expected",
    [
        (PosteriorWrongShape, "check_posterior",
         "expected the posterior logvar of 5 image(s) to have shape (5, 3), got (5, 1)"),
        (MeanLikelihood, "check_log_likelihood",
         "expected the Bernoulli log-likelihood of x under p = decode(z), summed over the 64 "
         "pixels"),
        (NaNLikelihood, "check_log_likelihood", "expected finite log-likelihoods, got [nan, "),
    ],
)  # fmt: skip
def test_faulty_posteriors_and_likelihoods_fail_their_check(cls, check, expected):
    failed = failures(cls)
    assert set(failed) == {check}, failed
    assert failed[check].startswith(expected)


# ----------------------------------------------------------------------------- invalid tags


class NotATags(TorchAutoencoder):
    @property
    def tags(self):
        return {"can_sample": False}


class ZeroMinimum(TorchAutoencoder):
    @property
    def tags(self) -> Tags:
        return dataclasses.replace(super().tags, min_image_size=0)


def test_invalid_tags_are_named():
    failed = failures(ZeroMinimum)
    assert failed == {"check_tags": "expected tags.min_image_size to be an int >= 1, got 0"}
    failed = failures(NotATags)
    assert failed["check_tags"] == "expected model.tags to be a vaebench.model.Tags, got dict"
    assert "check_interface" not in failed  # building the model works; only its tags are wrong


def test_tiny_images_and_labels_agree():
    # the label of an image is the quadrant of its brightest pixel (the blob's centre)
    x = tiny_images((1, 16, 16), n=40, seed=5)
    y = tiny_labels(40, seed=5)
    flat = x[:, 0].reshape(40, -1).argmax(1)
    row, col = flat // 16, flat % 16
    quadrant = (col >= 8).long() + 2 * (row >= 8).long()
    assert (quadrant == y).float().mean() > 0.9
