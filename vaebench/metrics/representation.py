"""How useful the codes are: linear probe, k-NN and clustering accuracy, and active units.

The codes are the posterior means of a model with a posterior (``tags.has_posterior``) and the
output of ``encode`` otherwise, computed once per cell (:mod:`vaebench.metrics.codes`). The
accuracy metrics need labels; they fit on the codes of the training split -- at most
``rep_train_n`` images, a fixed choice that is the same for every cell -- and score on the codes
of the whole test split:

- ``probe``: logistic regression (scikit-learn, L2 penalty of inverse strength ``probe_c``,
  lbfgs) on codes standardised with the training codes' mean and standard deviation, as in the
  linear evaluation protocol of representation learning (e.g. Chen et al. 2020, SimCLR);
- ``knn``: the majority label of the ``knn_k`` training codes nearest in Euclidean distance
  (raw codes, not standardised: a standardised dimension the model does not use would count as
  much as one it does);
- ``cluster``: k-means with as many clusters as classes, fitted on the training codes, assigned
  on the test codes, clusters matched to classes by the Hungarian algorithm on the test
  confusion matrix (scipy's ``linear_sum_assignment``) -- the protocol of ACAI's Table 2
  (Berthelot et al. 2019, ``cluster.py``): codes centred and whitened with the SVD of the
  training codes (option ``cluster_whiten``), ``max_iter=1000``. ACAI keeps the best of 1000
  random initialisations; vaebench keeps the best of ``cluster_n_init`` k-means++ ones;
- ``active_units`` (every model): code dimensions whose variance over the test set of the
  posterior mean (of the code, for models without a posterior) exceeds ``au_threshold``
  (Burda, Grosse & Salakhutdinov 2016: 0.01), as a count and a fraction of the code size. The
  threshold is in the code's own units, so only for a prior N(0, I) does 0.01 mean "1 % of the
  prior's variance".

Every random choice (the probe's and k-means' ``random_state``) is drawn from the metric's own
generator, so the numbers are deterministic given the cell's seed.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaebench.hookspecs import hookimpl
from vaebench.metric import EvalContext, Metric, Value
from vaebench.metrics import codes as codes_mod

__all__ = [
    "LinearProbe",
    "KnnAccuracy",
    "ClusterAccuracy",
    "ActiveUnits",
    "probe_accuracy",
    "knn_accuracy",
    "cluster_accuracy",
    "hungarian_accuracy",
    "whiten",
    "active_units",
]

REF_PROBE = (
    "linear evaluation protocol, e.g. Chen et al., A Simple Framework for Contrastive Learning "
    "of Visual Representations, ICML 2020"
)
REF_KNN = "Cover & Hart, Nearest neighbor pattern classification, IEEE Trans. Inf. Theory 1967"
REF_ACAI = (
    "Berthelot, Raffel, Roy & Goodfellow, Understanding and Improving Interpolation in "
    "Autoencoders via an Adversarial Regularizer, ICLR 2019 (Table 2)"
)
REF_AU = "Burda, Grosse & Salakhutdinov, Importance Weighted Autoencoders, ICLR 2016"

#: Iteration limits: lbfgs of the probe, and k-means (ACAI's value).
PROBE_MAX_ITER = 1000
KMEANS_MAX_ITER = 1000


def _random_state(generator: torch.Generator) -> int:
    """A scikit-learn ``random_state`` drawn from ``generator``."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


def _np(t: Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def probe_accuracy(
    z_train: np.ndarray,
    y_train: np.ndarray,
    z_test: np.ndarray,
    y_test: np.ndarray,
    c: float = 1.0,
    random_state: int = 0,
) -> tuple[float, dict[str, Any]]:
    """Test accuracy (fraction in [0, 1]) of logistic regression on standardised codes, and
    ``{"iterations", "converged"}``. ``z_*``: ``(N, d)``; ``y_*``: ``(N,)`` integer labels."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=c, max_iter=PROBE_MAX_ITER, random_state=random_state),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(z_train, y_train)
    iterations = int(np.max(clf[-1].n_iter_))
    acc = float(np.mean(clf.predict(z_test) == y_test))
    return acc, {"iterations": iterations, "converged": iterations < PROBE_MAX_ITER}


def knn_accuracy(
    z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray, k: int = 5
) -> float:
    """Test accuracy (fraction) of the ``k``-nearest-neighbour classifier (Euclidean distance,
    uniform vote; scikit-learn breaks vote ties towards the smaller label)."""
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=min(k, len(z_train)), metric="euclidean", n_jobs=1)
    clf.fit(z_train, y_train)
    return float(np.mean(clf.predict(z_test) == y_test))


def hungarian_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Clustering accuracy: the fraction of items whose cluster, mapped one-to-one to a class
    so as to maximise the matches (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``),
    is their class. ``y_true``, ``y_pred``: ``(N,)`` non-negative integers."""
    from scipy.optimize import linear_sum_assignment

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    counts = np.zeros((y_pred.max() + 1, y_true.max() + 1), dtype=np.int64)
    np.add.at(counts, (y_pred, y_true), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(y_true))


def whiten(z_train: np.ndarray, z_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ACAI's whitening: centre both sets on the training mean, rotate onto the right singular
    vectors of the centred training codes and divide by the singular values (+1e-5)."""
    mean = z_train.mean(0)
    _, s, vt = np.linalg.svd(z_train - mean, full_matrices=False)
    scale = s + 1e-5
    return (z_train - mean) @ vt.T / scale, (z_test - mean) @ vt.T / scale


def cluster_accuracy(
    z_train: np.ndarray,
    z_test: np.ndarray,
    y_test: np.ndarray,
    n_clusters: int,
    n_init: int = 10,
    random_state: int = 0,
    whiten_codes: bool = True,
) -> tuple[float, dict[str, Any]]:
    """Clustering accuracy (fraction) of k-means fitted on ``z_train`` and assigned on
    ``z_test`` (see the module docstring), and ``{"kmeans_objective_test"}``: the mean squared
    distance of a test code to its centre, in the (whitened) space clustered."""
    from sklearn.cluster import KMeans

    if whiten_codes:
        z_train, z_test = whiten(z_train, z_test)
    km = KMeans(
        n_clusters=n_clusters, n_init=n_init, max_iter=KMEANS_MAX_ITER, random_state=random_state
    )
    km.fit(z_train)
    pred = km.predict(z_test)
    acc = hungarian_accuracy(y_test, pred)
    return acc, {"kmeans_objective_test": float(-km.score(z_test) / len(z_test))}


def active_units(z: Tensor, threshold: float = 0.01) -> tuple[int, Tensor]:
    """``(count, variances)``: the number of dimensions of ``z`` ``(N, d)`` whose variance over
    the N rows (population variance, float64) exceeds ``threshold``, and the ``(d,)``
    variances."""
    var = z.double().var(0, unbiased=False)
    return int((var > threshold).sum()), var


def _labels_reason(dataset: Any) -> bool | str:
    if dataset.y_train is None or dataset.y_test is None:
        return f"needs labels; dataset {dataset.name!r} has none"
    if len(torch.unique(dataset.y_train)) < 2:
        return f"needs at least two classes in the training labels of {dataset.name!r}"
    return True


class _LabelledCodes(Metric):
    """Shared part of the accuracy metrics: labels, codes, the training cap."""

    group = "representation"
    cost = "cheap"
    default = True
    version = 1

    def applies_to(self, model: Any, dataset: Any) -> bool | str:
        return _labels_reason(dataset)

    def _opts(self, options: dict[str, Any]) -> dict[str, Any]:
        return {k: options.get(k, d) for k, d in self.options.items()}

    def check_options(self, options: dict[str, Any]) -> None:
        codes_mod.check_int(self._opts(options), "rep_train_n", 2)

    def _codes(self, model: Any, dataset: Any, ctx: EvalContext, opts: dict[str, Any]):
        z_train, idx, kind = codes_mod.representation_codes(
            model, dataset, "train", ctx, opts["rep_train_n"]
        )
        z_test, _, _ = codes_mod.representation_codes(model, dataset, "test", ctx)
        y_train = dataset.y_train[idx].numpy()
        y_test = dataset.y_test.numpy()
        ctx.details.update(
            {
                "codes": kind,
                "n_train": len(idx),
                "n_train_total": int(dataset.x_train.shape[0]),
                "n_test": int(dataset.x_test.shape[0]),
                "n_classes": int(len(np.union1d(y_train, y_test))),
            }
        )
        return _np(z_train), y_train, _np(z_test), y_test


class LinearProbe(_LabelledCodes):
    """Linear-probe accuracy (see the module docstring)."""

    name = "probe"
    options = {"rep_train_n": 10000, "probe_c": 1.0}
    option_docs = {
        "rep_train_n": "at most this many training codes fit the probe, k-NN and k-means "
        "(a fixed choice, the same for every cell)",
        "probe_c": "inverse L2 regularisation strength C of the logistic regression",
    }
    values = (
        Value(
            "probe_acc", True, "%", 1,
            "test accuracy of logistic regression fitted on standardised training codes",
            REF_PROBE,
        ),
    )  # fmt: skip

    def check_options(self, options: dict[str, Any]) -> None:
        super().check_options(options)
        codes_mod.check_float(self._opts(options), "probe_c", 0.0, strict=True)

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts = codes_mod.metric_options(self, ctx)
        self.check_options(opts)
        z_train, y_train, z_test, y_test = self._codes(model, dataset, ctx, opts)
        acc, info = probe_accuracy(
            z_train, y_train, z_test, y_test, opts["probe_c"], _random_state(ctx.generator)
        )
        ctx.details.update(
            {"classifier": "scikit-learn LogisticRegression (lbfgs, L2)", "C": opts["probe_c"]}
        )
        ctx.details.update(info)
        return {"probe_acc": 100.0 * acc}


class KnnAccuracy(_LabelledCodes):
    """k-nearest-neighbour accuracy (see the module docstring)."""

    name = "knn"
    options = {"rep_train_n": 10000, "knn_k": 5}
    option_docs = {
        "rep_train_n": LinearProbe.option_docs["rep_train_n"],
        "knn_k": "neighbours k that vote (Euclidean distance between codes)",
    }
    values = (
        Value(
            "knn_acc", True, "%", 1,
            "test accuracy of the k-nearest-neighbour vote among training codes (Euclidean)",
            REF_KNN,
        ),
    )  # fmt: skip

    def check_options(self, options: dict[str, Any]) -> None:
        super().check_options(options)
        codes_mod.check_int(self._opts(options), "knn_k", 1)

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts = codes_mod.metric_options(self, ctx)
        self.check_options(opts)
        z_train, y_train, z_test, y_test = self._codes(model, dataset, ctx, opts)
        k = min(opts["knn_k"], len(z_train))
        ctx.details.update({"k": k, "distance": "euclidean", "vote": "uniform"})
        return {"knn_acc": 100.0 * knn_accuracy(z_train, y_train, z_test, y_test, k)}


class ClusterAccuracy(_LabelledCodes):
    """k-means clustering accuracy with Hungarian matching (see the module docstring)."""

    name = "cluster"
    options = {"rep_train_n": 10000, "cluster_n_init": 10, "cluster_whiten": True}
    option_docs = {
        "rep_train_n": LinearProbe.option_docs["rep_train_n"],
        "cluster_n_init": "k-means initialisations (k-means++), the best is kept (ACAI: 1000)",
        "cluster_whiten": "whiten the codes with the SVD of the training codes first (ACAI)",
    }
    values = (
        Value(
            "cluster_acc", True, "%", 1,
            "test accuracy of k-means clusters (as many as classes) matched to classes by the "
            "Hungarian algorithm",
            REF_ACAI,
        ),
    )  # fmt: skip

    def check_options(self, options: dict[str, Any]) -> None:
        super().check_options(options)
        opts = self._opts(options)
        codes_mod.check_int(opts, "cluster_n_init", 1)
        if not isinstance(opts["cluster_whiten"], bool):
            raise ValueError(f"eval.cluster_whiten={opts['cluster_whiten']!r}: valid: true, false")

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts = codes_mod.metric_options(self, ctx)
        self.check_options(opts)
        z_train, _, z_test, y_test = self._codes(model, dataset, ctx, opts)
        n_clusters = ctx.details["n_classes"]
        acc, info = cluster_accuracy(
            z_train,
            z_test,
            y_test,
            n_clusters,
            opts["cluster_n_init"],
            _random_state(ctx.generator),
            opts["cluster_whiten"],
        )
        ctx.details.update(
            {
                "n_clusters": n_clusters,
                "n_init": opts["cluster_n_init"],
                "init": "k-means++",
                "whitened": opts["cluster_whiten"],
                "matching": "Hungarian (scipy.optimize.linear_sum_assignment) on the test split",
            }
        )
        ctx.details.update(info)
        return {"cluster_acc": 100.0 * acc}


class ActiveUnits(Metric):
    """Active units of the code (see the module docstring); applies to every model."""

    name = "active_units"
    group = "representation"
    cost = "cheap"
    default = True
    version = 1
    options = {"au_threshold": 0.01}
    option_docs = {
        "au_threshold": "a code dimension is active when its variance over the test set of "
        "the posterior mean (or code) exceeds this (Burda et al. 2016: 0.01)",
    }
    values = (
        Value(
            "active_units", None, "dims", 0,
            "code dimensions whose variance over the test set of the posterior mean (or code) "
            "exceeds the threshold",
            REF_AU,
        ),
        Value(
            "active_fraction", None, "fraction", 2,
            "active units divided by the code size", REF_AU,
        ),
    )  # fmt: skip

    def check_options(self, options: dict[str, Any]) -> None:
        opts = {k: options.get(k, d) for k, d in self.options.items()}
        codes_mod.check_float(opts, "au_threshold", 0.0)

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts = codes_mod.metric_options(self, ctx)
        self.check_options(opts)
        threshold = float(opts["au_threshold"])
        z, _, kind = codes_mod.representation_codes(model, dataset, "test", ctx)
        count, var = active_units(z, threshold)
        d = z.shape[1]
        ctx.details.update(
            {
                "codes": kind,
                "threshold": threshold,
                "n_test": int(z.shape[0]),
                "latent_dim": d,
                "variance": "population variance over the test images, per dimension",
                "variances": [float(f"{v:.4g}") for v in var.tolist()],
            }
        )
        return {"active_units": float(count), "active_fraction": count / d}


@hookimpl
def vaebench_metrics():
    return [LinearProbe(), KnnAccuracy(), ClusterAccuracy(), ActiveUnits()]
