"""Representation metrics: probe, k-NN and clustering accuracy, active units, the code cache."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch
from torch import Tensor

from vaebench.config import RunConfig
from vaebench.dataset import Dataset
from vaebench.errors import ConfigError
from vaebench.evaluation import evaluate_metrics
from vaebench.metric import EvalContext
from vaebench.metrics import codes as codes_mod
from vaebench.metrics.representation import (
    BOUNDS,
    ActiveUnits,
    ClusterAccuracy,
    KnnAccuracy,
    LinearProbe,
    active_units,
    hungarian_accuracy,
    whiten,
)
from vaebench.model import FitReport, Model
from vaebench.testing import check_metric

N_CLASSES, DIM = 4, 6


class Flatten(Model):
    """Codes are the flattened images (times ``scale``); counts its ``encode`` calls."""

    def __init__(self, dim: int = DIM, scale: float = 1.0) -> None:
        self.input_shape, self.latent_dim, self.scale = (1, 1, dim), dim, scale
        self.encode_calls = 0

    def fit(self, x, y=None, progress=None) -> FitReport:
        return FitReport({"loss": [0.0]}, 0.0, 0, 0)

    def encode(self, x: Tensor) -> Tensor:
        self.encode_calls += 1
        return self.scale * x.reshape(x.shape[0], -1).float()

    def decode(self, z: Tensor) -> Tensor:
        return (z / self.scale).clamp(0, 1).reshape(-1, *self.input_shape)

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


class WithPosterior(Flatten):
    """Posterior mean = the images' first half (the rest zero); ``encode`` returns something
    else on purpose, to show which one the metrics use."""

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = x.reshape(x.shape[0], -1).float().clone()
        z[:, DIM // 2 :] = 0.0
        return z, torch.zeros_like(z)

    def encode(self, x: Tensor) -> Tensor:
        return torch.zeros(x.shape[0], DIM)


def blobs(n: int, seed: int, spread: float = 0.03) -> tuple[Tensor, Tensor]:
    """Images ``(n, 1, 1, DIM)``: one of four well-separated prototypes plus noise."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.tensor(
        [[0.2, 0.2, 0.8, 0.5, 0.5, 0.5], [0.8, 0.2, 0.2, 0.5, 0.5, 0.5],
         [0.2, 0.8, 0.2, 0.5, 0.5, 0.5], [0.8, 0.8, 0.8, 0.5, 0.5, 0.5]]
    )  # fmt: skip
    y = torch.arange(n) % N_CLASSES
    x = protos[y] + spread * torch.randn(n, DIM, generator=g)
    return x.clamp(0, 1).reshape(n, 1, 1, DIM), y


def labelled(shuffle: bool = False, n_train: int = 400, n_test: int = 400) -> Dataset:
    x_train, y_train = blobs(n_train, 0)
    x_test, y_test = blobs(n_test, 1)
    if shuffle:
        g = torch.Generator().manual_seed(7)
        y_train = y_train[torch.randperm(n_train, generator=g)]
        y_test = y_test[torch.randperm(n_test, generator=g)]
    return Dataset("blobs", x_train, x_test, y_train=y_train, y_test=y_test)


def ctx(options: dict | None = None, metric: str = "probe", cache: dict | None = None):
    c = EvalContext(
        seed=0, device=torch.device("cpu"), eval_batch_size=64, options=options or {},
        metric=metric,
    )  # fmt: skip
    if cache is not None:
        c.cache = cache
    return c


ACCURACY = [(LinearProbe(), "probe_acc"), (KnnAccuracy(), "knn_acc"), (ClusterAccuracy(), "cluster_acc")]  # fmt: skip


@pytest.mark.parametrize("metric, value", ACCURACY, ids=lambda m: getattr(m, "name", ""))
def test_separable_codes_score_100_percent(metric, value):
    got = metric.evaluate(Flatten(), labelled(), ctx(metric=metric.name))
    assert got[value] == pytest.approx(100.0)


@pytest.mark.parametrize("metric, value", ACCURACY, ids=lambda m: getattr(m, "name", ""))
def test_shuffled_labels_score_chance(metric, value):
    # chance is 25 %; 400 test images give a standard error of 2.2 points; Hungarian
    # matching picks the best of 24 assignments, which lifts chance by a few points
    got = metric.evaluate(Flatten(), labelled(shuffle=True), ctx(metric=metric.name))
    assert 15.0 < got[value] < 35.0, got


def test_active_units_count_the_informative_dimensions():
    g = torch.Generator().manual_seed(0)
    for k in (0, 1, 3, 6):
        z = torch.cat([torch.randn(500, k, generator=g), 0.05 * torch.randn(500, 6 - k)], 1)
        count, var = active_units(z, 0.01)
        assert count == k and var.shape == (6,)


def test_active_units_metric_uses_the_posterior_mean_when_there_is_one():
    ds = labelled()
    c = ctx(metric="active_units")
    got = ActiveUnits().evaluate(WithPosterior(), ds, c)
    # prototypes vary in the first three pixels (variance 0.09); the posterior zeroes the rest
    assert got == {"active_units": 3.0, "active_fraction": 0.5}
    assert c.details["codes"] == "posterior mean" and len(c.details["variances"]) == DIM
    c = ctx(metric="active_units")
    got = ActiveUnits().evaluate(Flatten(), ds, c)
    assert got["active_units"] == 3.0 and c.details["codes"] == "code"
    # the threshold is in the code's units: x10 codes lift the noise dimensions' variance
    # (0.03^2) to 0.09, above a threshold of 0.05
    scaled = Flatten(scale=10.0)
    assert ActiveUnits().evaluate(scaled, ds, ctx({"au_threshold": 0.05}))["active_units"] == 6
    assert ActiveUnits().evaluate(scaled, ds, ctx({"au_threshold": 0.2}))["active_units"] == 3


def test_hungarian_accuracy_equals_the_best_relabelling():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 60)
    pred = np.where(rng.random(60) < 0.6, (y + 1) % 4, rng.integers(0, 4, 60))
    best = max(np.mean(np.array(p)[pred] == y) for p in itertools.permutations(range(4)))
    assert hungarian_accuracy(y, pred) == pytest.approx(best)
    assert hungarian_accuracy(y, (y + 2) % 4) == 1.0


def test_whitening_gives_orthonormal_training_codes():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 3)) @ np.array([[3.0, 1.0, 0.0], [0.0, 0.5, 0.2], [0, 0, 2]])
    w_train, w_test = whiten(a + 5.0, a[:10] + 5.0)
    assert np.allclose(w_train.T @ w_train, np.eye(3), atol=1e-5)
    assert np.allclose(w_test, w_train[:10])


def test_codes_are_encoded_once_per_split_and_shared():
    model, ds, cache = Flatten(), labelled(), {}
    for metric in (LinearProbe(), KnnAccuracy(), ClusterAccuracy(), ActiveUnits()):
        metric.evaluate(model, ds, ctx(metric=metric.name, cache=cache))
    batches = -(-400 // 64)  # two splits of 400 images in batches of 64
    assert model.encode_calls == 2 * batches


def test_training_cap_is_applied_and_recorded():
    c = ctx({"rep_train_n": 50})
    LinearProbe().evaluate(Flatten(), labelled(), c)
    assert c.details["n_train"] == 50 and c.details["n_train_total"] == 400
    assert c.details["n_test"] == 400 and c.details["converged"] is True
    # the capped choice is fixed: the same for every cell
    assert torch.equal(codes_mod.subset_indices(400, 50), codes_mod.subset_indices(400, 50))


def test_accuracy_metrics_need_labels_active_units_does_not():
    x, _ = blobs(40, 0)
    unlabelled = Dataset("nolabels", x, x)
    for metric, _ in ACCURACY:
        reason = metric.applies_to(Flatten(), unlabelled)
        assert isinstance(reason, str) and "labels" in reason
    assert ActiveUnits().applies_to(Flatten(), unlabelled) is True


@pytest.mark.parametrize("metric", [m for m, _ in ACCURACY] + [ActiveUnits()], ids=lambda m: m.name)
def test_conformance_checks_pass(metric):
    for result in check_metric(metric, model=Flatten(), dataset=labelled(n_train=80, n_test=40)):
        assert result.passed, result


@pytest.mark.parametrize(
    "metric, options, message",
    [
        (LinearProbe(), {"probe_c": 0}, "invalid value 0 for eval.probe_c: expected a number "
                                        "from 1e-06 to 1e+06"),
        (KnnAccuracy(), {"knn_k": 0}, "invalid value 0 for eval.knn_k: expected an integer "
                                      "from 1 to 1000"),
        (KnnAccuracy(), {"rep_train_n": 1}, "invalid value 1 for eval.rep_train_n: expected an "
                                            "integer from 2 to 1000000"),
        (ClusterAccuracy(), {"cluster_whiten": "yes"}, "invalid value 'yes' for "
                                                       "eval.cluster_whiten; valid: true, false"),
        (ClusterAccuracy(), {"cluster_whiten": 1}, "invalid value 1 for eval.cluster_whiten"),
        (ActiveUnits(), {"au_threshold": -1.0}, "invalid value -1.0 for eval.au_threshold: "
                                                "expected a number from 0 to 1e+06"),
        (ActiveUnits(), {"au_threshold": float("nan")}, "invalid value nan for "
                                                        "eval.au_threshold"),
    ],
)  # fmt: skip
def test_bad_options_are_named(metric, options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        metric.check_options(options)


@pytest.mark.parametrize(
    "metric, key, value, message",
    [
        ("cluster", "cluster_n_init", "1000000000", "invalid value 1000000000 for "
         "eval.cluster_n_init: expected an integer from 1 to 1000"),
        ("cluster", "cluster_n_init", "0", "expected an integer from 1 to 1000"),
        ("knn", "knn_k", "1001", "invalid value 1001 for eval.knn_k: expected an integer from 1 "
         "to 1000"),
        ("probe", "rep_train_n", "1000001", "invalid value 1000001 for eval.rep_train_n: "
         "expected an integer from 2 to 1000000"),
        ("probe", "probe_c", "1e7", "invalid value 10000000.0 for eval.probe_c: expected a "
         "number from 1e-06 to 1e+06"),
        ("probe", "probe_c", "1e-7", "expected a number from 1e-06 to 1e+06"),
        ("active_units", "au_threshold", "1e9", "invalid value 1000000000.0 for "
         "eval.au_threshold: expected a number from 0 to 1e+06"),
    ],
)  # fmt: skip
def test_option_bounds_stop_the_configuration(registry, metric, key, value, message):
    with pytest.raises(ConfigError) as err:
        RunConfig.build(registry, models="vae", metrics=metric, sets=[f"eval.{key}={value}"])
    assert str(err.value).startswith(f"metric {metric!r}: ") and message in str(err.value)


@pytest.mark.parametrize("metric", [m for m, _ in ACCURACY] + [ActiveUnits()], ids=lambda m: m.name)
def test_the_bounds_accept_their_ends_and_the_defaults(metric):
    metric.check_options({})
    for key in metric.options:
        for end in BOUNDS[key]:
            metric.check_options({key: end})
        assert isinstance(BOUNDS[key][0], bool) or " to " in metric.option_docs[key]


def test_hungarian_accuracy_does_not_size_by_the_largest_label():
    """Labels 0, 10^12, 2 * 10^12 made a (2e12 + 1)-column count matrix (43.7 TiB)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    pred = np.where(rng.random(90) < 0.7, (y + 1) % 3, rng.integers(0, 3, 90))
    small = hungarian_accuracy(y, pred)
    assert hungarian_accuracy(y * 10**12, pred) == small
    assert hungarian_accuracy(y * 10**12, pred * 10**12 + 7) == small
    assert hungarian_accuracy(np.array(["a", "b", "c"])[y], pred) == small


@pytest.mark.parametrize("metric, value", ACCURACY, ids=lambda m: getattr(m, "name", ""))
def test_huge_labels_give_the_numbers_of_small_ones(metric, value):
    ds = labelled(shuffle=True, n_train=200, n_test=200)
    huge = Dataset("blobs", ds.x_train, ds.x_test, y_train=ds.y_train * 10**12,
                   y_test=ds.y_test * 10**12)  # fmt: skip
    small = metric.evaluate(Flatten(), ds, ctx(metric=metric.name))
    assert metric.evaluate(Flatten(), huge, ctx(metric=metric.name)) == small
    assert 15.0 < small[value] < 40.0  # shuffled labels: about chance (25 %), not 100


def tiny(n_train: int, n_test: int) -> Dataset:
    """Like ``--subset``: a few images of a 4-class dataset."""
    ds = labelled()
    return Dataset("tiny", ds.x_train[:n_train], ds.x_test[:n_test],
                   y_train=ds.y_train[:n_train], y_test=ds.y_test[:n_test])  # fmt: skip


def test_too_few_training_images_for_the_classes_make_cluster_not_applicable():
    """``--subset 2``: 2 training images, 3 classes between the splits -- k-means with 3
    clusters used to fail with scikit-learn's ``n_samples=2 should be >= n_clusters=3``."""
    model, ds = Flatten(), tiny(2, 3)
    reason = ClusterAccuracy().applies_to(model, ds)
    assert reason == (
        "k-means with one cluster per class needs at least 3 training images (the classes of "
        "'tiny'); it has 2"
    )
    assert ClusterAccuracy().applies_to(model, tiny(4, 4)) is True
    got = evaluate_metrics(model, ds, [ClusterAccuracy(), LinearProbe()], ctx())
    assert got["cluster"]["status"] == "not_applicable" and got["cluster"]["reason"] == reason
    assert got["probe"]["status"] == "ok"  # two classes in two training images suffice
    one_class = Dataset("one", ds.x_train[:1], ds.x_test, y_train=ds.y_train[:1], y_test=ds.y_test)
    for metric, _ in ACCURACY:
        assert "at least two classes" in metric.applies_to(model, one_class)


def test_too_few_capped_training_codes_are_not_applicable_with_the_option_named():
    """The cap ``rep_train_n`` is an option, which ``applies_to`` does not see: fewer capped
    codes than ``knn_k`` (which used to be lowered silently), than the classes (k-means) or of
    one class only (the probe) make the metric not applicable (NotApplicableError: stored as
    not_applicable with the message, not as a failure), naming the options."""
    from vaebench.errors import NotApplicableError

    ds = tiny(2, 3)
    with pytest.raises(NotApplicableError, match=re.escape(
        "eval.knn_k=5 needs at least 5 training codes; 2 were used (dataset 'tiny' has 2 "
        "training images, eval.rep_train_n=10000)"
    )):  # fmt: skip
        KnnAccuracy().evaluate(Flatten(), ds, ctx(metric="knn"))
    c = ctx({"knn_k": 2}, metric="knn")
    KnnAccuracy().evaluate(Flatten(), ds, c)
    assert c.details["k"] == 2
    with pytest.raises(NotApplicableError, match="k-means with 4 clusters needs at least 4"):
        ClusterAccuracy().evaluate(Flatten(), labelled(), ctx({"rep_train_n": 3}, "cluster"))
    six = tiny(6, 3)
    y = torch.zeros(6, dtype=torch.long)
    y[[i for i in range(6) if i not in codes_mod.subset_indices(6, 2).tolist()][0]] = 1
    same = Dataset("same", six.x_train, six.x_test, y_train=y, y_test=six.y_test)
    assert LinearProbe().applies_to(Flatten(), same) is True  # two classes before the cap
    with pytest.raises(NotApplicableError, match="at least two classes among the 2 training"):
        LinearProbe().evaluate(Flatten(), same, ctx({"rep_train_n": 2}))


def test_docs_table_states_every_bound():
    """docs/metrics.md lists each option's bounds as the metrics enforce them."""
    from pathlib import Path

    from vaebench.metrics import likelihood, samples

    text = (Path(__file__).parents[1] / "docs" / "metrics.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in text.splitlines() if "| `" in line}
    for bounds in (likelihood.BOUNDS, BOUNDS, samples.BOUNDS):
        for key, spec in bounds.items():
            if isinstance(spec[0], (bool, str)):
                shown = ", ".join(str(c).lower() for c in spec)
            else:
                shown = " to ".join(str(b) if isinstance(b, int) else f"{b:g}" for b in spec)
            assert f"| {shown} |" in rows[key], (key, shown, rows.get(key))
