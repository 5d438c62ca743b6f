"""Sample-quality metrics (fd, kid, prdc), their feature network and the ex-post sampler.

The scores are checked against closed forms (Fréchet distance of two Gaussians), a direct
implementation of the unbiased MMD^2 estimator, and the reference ``prdc`` package of Naeem et
al. (``pip install prdc``; the comparison is skipped when it is not installed).
"""

from __future__ import annotations

import itertools
import logging
import os
import re

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import Tensor

from vaebench.config import RunConfig
from vaebench.errors import ConfigError, NotApplicableError
from vaebench.metric import EvalContext
from vaebench.metrics import features as features_mod
from vaebench.metrics.features import FeatureNetConfig, feature_extractor, feature_labels
from vaebench.metrics.samples import (
    BOUNDS,
    FrechetDistance,
    KernelDistance,
    PrecisionRecall,
    expost_gaussian,
    frechet_distance,
    gaussian_stats,
    kid,
    prdc,
)
from vaebench.model import FitReport, Model
from vaebench.testing import _render_blobs, check_metric, tiny_dataset

SHAPE = (1, 8, 8)
FAST = {"feature_steps": 150, "feature_train_n": 400, "sample_n": 200, "kid_subsets": 20}


# ----------------------------------------------------------------------------- the scores


def test_frechet_distance_equals_the_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)


def test_frechet_distance_matches_the_sqrtm_formula_for_general_covariances():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    c1, c2 = m1 @ m1.T + 0.1 * np.eye(5), m2 @ m2.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    covmean = scipy.linalg.sqrtm(c1 @ c2).real  # the formula of the FID reference code
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(mu1, c1, mu1, c1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_samples_converges_to_that_of_their_gaussians():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    b = 1.5 * torch.randn(20000, 3, generator=g, dtype=torch.float64) + 0.5
    expected = 3 * 0.5**2 + 3 * (1.0 - 1.5) ** 2
    got = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    assert got == pytest.approx(expected, abs=0.05)
    assert frechet_distance(*gaussian_stats(a), *gaussian_stats(a)) == pytest.approx(0, abs=1e-9)


def naive_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 estimator of Bińkowski et al. 2018 (Eq. 3), written out in loops."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_equals_the_unbiased_mmd_estimator():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 4, generator=g), torch.randn(30, 4, generator=g) + 0.3
    mean, std, m = kid(x, y, n_subsets=3, subset_size=30, generator=g)
    # full sets in every subset: computed once, and no std (it would be rounding noise)
    assert m == 30 and np.isnan(std)
    assert mean == pytest.approx(naive_mmd2(x.double().numpy(), y.double().numpy()), rel=1e-9)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(600, 8, generator=g), torch.randn(600, 8, generator=g)
    same, _, _ = kid(x, y, 20, 300, torch.Generator().manual_seed(0))
    near, _, _ = kid(x, y + 0.3, 20, 300, torch.Generator().manual_seed(0))
    far, _, _ = kid(x, y + 1.0, 20, 300, torch.Generator().manual_seed(0))
    assert abs(same) < 0.01 < near < far


def test_prdc_of_a_set_against_itself_is_one_and_a_shift_scores_worse():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=g)
    same = prdc(x, x, 5)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] == pytest.approx(1.0, abs=0.05)
    fresh = prdc(x, torch.randn(300, 5, generator=g), 5)
    shifted = prdc(x, torch.randn(300, 5, generator=g) + 1.5, 5)
    for key in ("precision", "recall", "density", "coverage"):
        assert shifted[key] < fresh[key] - 0.2, key


def test_prdc_matches_the_reference_package():
    reference = pytest.importorskip("prdc")
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 8))
    fake = rng.normal(size=(350, 8)) * 1.2 + 0.3
    for k in (1, 5, 10):
        ref = reference.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
        got = prdc(torch.from_numpy(real), torch.from_numpy(fake), k)
        for key in ("precision", "recall", "density", "coverage"):
            assert got[key] == pytest.approx(float(ref[key]), abs=1e-12), (k, key)


def test_prdc_blocks_give_the_same_numbers(monkeypatch):
    from vaebench.metrics import samples

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 4, generator=g), torch.randn(150, 4, generator=g) + 0.2
    whole = prdc(x, y, 3)
    monkeypatch.setattr(samples, "_BLOCK", 700)  # blocks of 3-4 rows or columns
    assert prdc(x, y, 3) == whole


def test_kid_kernel_sums_in_blocks_equal_the_unbiased_estimator(monkeypatch):
    """The kernel matrices of a subset are summed in row blocks (memory bounded for any
    ``kid_subset_size``); blocks of 2 rows give the same estimate as the loops."""
    from vaebench.metrics import samples

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(13, 4, generator=g), torch.randn(13, 4, generator=g) + 0.3
    ref = naive_mmd2(x.double().numpy(), y.double().numpy())
    monkeypatch.setattr(samples, "_BLOCK", 26)  # 2 rows of 13 per block, 7 blocks
    mean, _, m = kid(x, y, n_subsets=2, subset_size=13, generator=g)
    assert m == 13 and mean == pytest.approx(ref, rel=1e-9)


def test_expost_gaussian_reproduces_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5000, 3, generator=g, dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.3, 0.2]], dtype=torch.float64
    ) + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    mean, chol = expost_gaussian(z)
    assert torch.allclose(mean, z.mean(0))
    assert torch.allclose(chol @ chol.T, torch.cov(z.T), atol=1e-5)
    # a singular covariance (a constant and a duplicated dimension) still factorises
    flat = torch.cat([z[:, :1], z[:, :1], torch.ones(5000, 1, dtype=torch.float64)], 1)
    _, chol = expost_gaussian(flat)
    assert torch.isfinite(chol).all()


# ----------------------------------------------------------------------------- models


class Blobs(Model):
    """Draws blob images (the tiny dataset's process) with positions uniform in ``box``, times
    ``gain``; ``can_sample`` unless ``sampler=False`` (then codes are the blob centres and
    ``decode`` renders them)."""

    def __init__(self, box: tuple[float, float] = (0.2, 0.8), gain: float = 1.0) -> None:
        self.input_shape, self.latent_dim = SHAPE, 2
        self.box, self.gain = box, gain

    def _render(self, f: Tensor) -> Tensor:
        return (_render_blobs(f, SHAPE) * self.gain).clamp(0, 1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        lo, hi = self.box
        return self._render(lo + (hi - lo) * torch.rand(n, 2, generator=generator))

    def fit(self, x, y=None, progress=None) -> FitReport:
        return FitReport({"loss": [0.0]}, 0.0, 0, 0)

    def encode(self, x: Tensor) -> Tensor:
        w = x[:, 0] / x[:, 0].sum((1, 2), keepdim=True).clamp_min(1e-8)
        grid = torch.linspace(0.0, 1.0, SHAPE[1])
        return torch.stack([(w.sum(1) * grid).sum(1), (w.sum(2) * grid).sum(1)], 1)

    def decode(self, z: Tensor) -> Tensor:
        return self._render(z.clamp(0, 1))

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def to(self, device) -> Model:
        return self

    @property
    def n_params(self) -> int:
        return 0

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state) -> None:
        return None


class Deterministic(Blobs):
    """The same codes and images, but no prior to sample from."""

    sample = Model.sample


@pytest.fixture(scope="module")
def data():
    return tiny_dataset(SHAPE, n_train=400, n_test=300)


def ctx(options=None, metric="fd", cache=None, cache_dir=None, seed=0) -> EvalContext:
    c = EvalContext(
        seed=seed, device=torch.device("cpu"), eval_batch_size=128,
        options={**FAST, **(options or {})}, metric=metric, cache_dir=cache_dir,
    )  # fmt: skip
    if cache is not None:
        c.cache = cache
    return c


def scores(model, data, **options) -> dict[str, float]:
    cache: dict = {}
    out = {}
    for metric in (FrechetDistance(), KernelDistance(), PrecisionRecall()):
        out.update(metric.evaluate(model, data, ctx(options, metric.name, cache)))
    return out


def test_a_faithful_sampler_beats_a_mode_dropping_and_a_dim_one(data):
    # dropping modes costs recall and coverage; dimming images costs density and coverage
    good = scores(Blobs(), data)
    dropped = scores(Blobs(box=(0.2, 0.45)), data)
    dim = scores(Blobs(gain=0.5), data)
    assert good["prdc_precision"] > 0.8 and good["prdc_recall"] > 0.8
    assert good["prdc_coverage"] > 0.8
    for worse in (dropped, dim):
        assert worse["fd"] > 3 * good["fd"]
        assert worse["kid"] > 3 * good["kid"]
        assert worse["prdc_coverage"] < good["prdc_coverage"] - 0.3
    assert dropped["prdc_recall"] < good["prdc_recall"] - 0.3
    assert dim["prdc_density"] < good["prdc_density"] - 0.3


def test_details_record_counts_sampler_and_feature_net(data):
    c = ctx({"sample_n": 120})
    FrechetDistance().evaluate(Blobs(), data, c)
    d = c.details
    assert d["n_real"] == d["n_generated"] == 120 and d["n_test_total"] == 300
    assert d["sampler"] == "prior"
    net = d["feature_net"]
    assert len(net["sha256"]) == 64 and 0.9 < net["test_accuracy"] <= 1.0
    assert net["feature_scale"] > 0
    assert net["label_source"] == "labels" and net["n_classes"] == 4
    assert net["config"]["steps"] == 150 and net["n_train"] == 400


def test_models_that_cannot_sample_use_the_expost_gaussian(data):
    c = ctx(metric="prdc")
    got = PrecisionRecall().evaluate(Deterministic(), data, c)
    assert c.details["sampler"] == "gaussian" and "Ghosh" in c.details["description"]
    assert got["prdc_precision"] > 0.5
    with pytest.raises(NotApplicableError, match="sampler 'prior': Deterministic has no prior"):
        FrechetDistance().evaluate(Deterministic(), data, ctx({"sampler": "prior"}))
    c = ctx({"sampler": "expost"})  # the old name of the gaussian sampler
    FrechetDistance().evaluate(Blobs(), data, c)
    assert c.details["sampler"] == "gaussian"


def test_the_three_metrics_share_one_generated_set_and_selection_does_not_matter(data):
    alone = FrechetDistance().evaluate(Blobs(), data, ctx())
    together = scores(Blobs(), data)
    assert together["fd"] == alone["fd"]
    other_seed = FrechetDistance().evaluate(Blobs(), data, ctx(seed=1))
    assert other_seed["fd"] != alone["fd"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_feature_net_is_cached_on_disk_and_reloaded(data, tmp_path, caplog):
    config = FeatureNetConfig(steps=20, train_n=200)
    features_mod.clear_memory()
    first = feature_extractor(data, config, tmp_path)
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [first.info["file"]]
    assert first.info["file"].startswith("tiny-blobs--") and first.info["source"] == "trained now"
    assert files[0].stat().st_mode & 0o777 == 0o666 & ~_umask()
    stored = torch.load(files[0], weights_only=True)
    assert stored["meta"]["sha256"] == first.info["sha256"]
    features_mod.clear_memory()
    again = feature_extractor(data, config, tmp_path)
    assert again.info["source"] == "loaded from the cache folder"
    assert again.info["sha256"] == first.info["sha256"]
    assert again.info["test_accuracy"] == first.info["test_accuracy"]
    x = data.x_test[:10]
    assert torch.equal(first.features(x, torch.device("cpu")), again.features(x, "cpu"))
    # training again from scratch gives the same weights (fixed seed)
    features_mod.clear_memory()
    fresh = feature_extractor(data, config, None)
    assert fresh.info["sha256"] == first.info["sha256"]
    # a corrupt file is ignored, retrained and replaced
    files[0].write_bytes(b"not a torch file")
    features_mod.clear_memory()
    with caplog.at_level(logging.WARNING, logger="vaebench.metrics.features"):
        repaired = feature_extractor(data, config, tmp_path)
    assert "ignoring feature net" in caplog.text and repaired.info["source"] == "trained now"
    assert torch.load(files[0], weights_only=True)["meta"]["sha256"] == first.info["sha256"]
    # another configuration is another file
    features_mod.clear_memory()
    feature_extractor(data, FeatureNetConfig(steps=10, train_n=200), tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


def test_feature_net_training_leaves_the_global_random_state_alone(data):
    features_mod.clear_memory()
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    feature_extractor(data, FeatureNetConfig(steps=5, train_n=100), None)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_factor_bins_stand_in_for_missing_labels(data):
    import dataclasses

    unlabelled = dataclasses.replace(data, y_train=None, y_test=None)
    y_train, y_test, source = feature_labels(unlabelled)
    assert "10 bins of the first factor (x)" in source
    counts = torch.bincount(y_train, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 45  # deciles: 40 of 400 each
    assert FrechetDistance().applies_to(Blobs(), unlabelled) is True
    bare = dataclasses.replace(unlabelled, factors_train=None, factors_test=None, render=None)
    reason = FrechetDistance().applies_to(Blobs(), bare)
    assert isinstance(reason, str) and "neither" in reason


@pytest.mark.parametrize("metric", [FrechetDistance(), KernelDistance(), PrecisionRecall()])
def test_conformance_checks_pass(metric, data):
    metric.options = {**metric.options, **FAST, "sample_n": 60}  # this instance only
    small = tiny_dataset(SHAPE, n_train=200, n_test=60)
    for result in check_metric(metric, model=Blobs(), dataset=small):
        assert result.passed, result


@pytest.mark.parametrize(
    "metric, options, message",
    [
        (FrechetDistance(), {"sampler": "gan"}, "invalid value 'gan' for eval.sampler; valid: "
                                                "auto, prior, gaussian, gmm, two-stage"),
        (FrechetDistance(), {"sample_n": 1}, "invalid value 1 for eval.sample_n: expected an "
                                             "integer from 2 to 100000"),
        (KernelDistance(), {"kid_subset_size": 1}, "invalid value 1 for eval.kid_subset_size"),
        (PrecisionRecall(), {"sample_n": 5}, "invalid value 5 for eval.sample_n: must exceed "
                                             "eval.prdc_k=5"),
        (PrecisionRecall(), {"feature_steps": 0}, "invalid value 0 for eval.feature_steps"),
    ],
)  # fmt: skip
def test_bad_options_are_named(metric, options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        metric.check_options(options)


@pytest.mark.parametrize(
    "metric, key, value, valid",
    [
        ("fd", "feature_steps", 10**12, "1 to 100000"),
        ("fd", "feature_train_n", 9, "10 to 1000000"),
        ("fd", "sample_n", 100_001, "2 to 100000"),
        ("kid", "kid_subsets", 10**12, "1 to 10000"),
        ("kid", "kid_subset_size", 10_001, "2 to 10000"),
        ("prdc", "prdc_k", 1001, "1 to 1000"),
        ("prdc", "prdc_k", 0, "1 to 1000"),
    ],
)
def test_option_bounds_stop_the_configuration(registry, metric, key, value, valid):
    with pytest.raises(ConfigError) as err:
        RunConfig.build(registry, models="vae", metrics=metric, sets=[f"eval.{key}={value}"])
    assert str(err.value) == (
        f"metric {metric!r}: invalid value {value} for eval.{key}: expected an integer from {valid}"
    )


@pytest.mark.parametrize("metric", [FrechetDistance(), KernelDistance(), PrecisionRecall()])
def test_the_bounds_accept_their_ends_and_the_defaults(metric):
    metric.check_options({})
    for key in metric.options:
        if key == "sampler":
            continue
        low, high = BOUNDS[key]
        metric.check_options({key: high})
        if key != "sample_n":  # prdc needs sample_n > prdc_k
            metric.check_options({key: low})
        assert f"{low} to {high}" in metric.option_docs[key]


def test_feature_classes_are_the_ranks_of_the_labels(data):
    """Labels 0, 10^12, 2 * 10^12 once sized the net's output layer by the largest label."""
    import dataclasses

    y_train, y_test, _ = feature_labels(data)
    assert torch.equal(y_train, data.y_train.long())  # labels 0..3 are unchanged
    huge = dataclasses.replace(data, y_train=data.y_train * 10**12 + 5,
                               y_test=data.y_test * 10**12 + 5)  # fmt: skip
    got_train, got_test, source = feature_labels(huge)
    assert source == "labels"
    assert torch.equal(got_train, y_train) and torch.equal(got_test, y_test)
    net = feature_extractor(huge, FeatureNetConfig(steps=2, train_n=100), None)
    assert net.info["n_classes"] == 4 and net.net.head.out_features == 4
