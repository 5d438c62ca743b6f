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

Labels may take any values (they are compared, never used as indices). ``cluster`` does not
apply to a dataset with fewer training images than classes; ``probe``, ``knn`` and ``cluster``
fail with a message naming the option when the capped training codes are too few (fewer than
``knn_k``, than the classes, or of one class only). Option bounds: :data:`BOUNDS`.

Every random choice (the probe's and k-means' ``random_state``) is drawn from the metric's own
generator, so the numbers are deterministic given the cell's seed.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from vaebench.errors import NotApplicableError
from vaebench.hookspecs import hookimpl
from vaebench.metric import EvalContext, Value
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
    ``{"iterations", "converged"}``. ``z_*``: ``(N, d)``; ``y_*``: ``(N,)`` labels of any values
    (scikit-learn keeps the distinct ones); ``y_train`` needs at least two classes."""
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
    uniform vote; scikit-learn breaks vote ties towards the smaller label). Labels may take any
    values. Raises ``ValueError`` when there are fewer than ``k`` training codes."""
    from sklearn.neighbors import KNeighborsClassifier

    if not 1 <= k <= len(z_train):
        raise ValueError(
            f"k={k} nearest neighbours need at least k training codes, got {len(z_train)}"
        )
    clf = KNeighborsClassifier(n_neighbors=k, metric="euclidean", n_jobs=1)
    clf.fit(z_train, y_train)
    return float(np.mean(clf.predict(z_test) == y_test))


def hungarian_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Clustering accuracy: the fraction of items whose cluster, mapped one-to-one to a class
    so as to maximise the matches (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``),
    is their class. ``y_true``, ``y_pred``: ``(N,)`` labels of any values (integers, strings):
    the count matrix is ``(distinct clusters, distinct classes)``, so labels such as ``10**12``
    cost nothing. Raises ``ValueError`` for empty or unequal lengths."""
    from scipy.optimize import linear_sum_assignment

    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise ValueError(
            f"need as many (at least one) true labels as cluster labels, got {len(y_true)} and "
            f"{len(y_pred)}"
        )
    # Indices into the distinct values: the matrix is (clusters, classes) whatever the values.
    _, true_idx = np.unique(np.asarray(y_true), return_inverse=True)
    _, pred_idx = np.unique(np.asarray(y_pred), return_inverse=True)
    counts = np.zeros((pred_idx.max() + 1, true_idx.max() + 1), dtype=np.int64)
    np.add.at(counts, (pred_idx.ravel(), true_idx.ravel()), 1)
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


#: Documented bounds of the representation options (``--set eval.KEY=VALUE``), both ends
#: included; a tuple of other values lists the valid choices.
BOUNDS: dict[str, Any] = {
    "rep_train_n": (2, 1_000_000),
    "probe_c": (1e-6, 1e6),
    "knn_k": (1, 1000),
    "cluster_n_init": (1, 1000),
    "cluster_whiten": (True, False),
    "au_threshold": (0.0, 1e6),
}


def _n_classes(dataset: Any) -> int:
    """Distinct labels of the training and test splits together."""
    return len(torch.unique(torch.cat([dataset.y_train.reshape(-1), dataset.y_test.reshape(-1)])))


def _labels_reason(dataset: Any) -> bool | str:
    if dataset.y_train is None or dataset.y_test is None:
        return f"needs labels; dataset {dataset.name!r} has none"
    if len(torch.unique(dataset.y_train)) < 2:
        return f"needs at least two classes in the training labels of {dataset.name!r}"
    if len(dataset.y_test) == 0:
        return f"needs test images; dataset {dataset.name!r} has none"
    return True


class _Labelled(NamedTuple):
    """Codes ``(n, d)`` float64 and labels ``(n,)`` of the training and the test images."""

    z_train: np.ndarray
    y_train: np.ndarray
    z_test: np.ndarray
    y_test: np.ndarray


class _LabelledCodes(codes_mod.BoundedMetric):
    """Shared part of the accuracy metrics: labels, codes, the training cap."""

    group = "representation"
    cost = "cheap"
    default = True
    version = 1
    bounds = BOUNDS

    def applies_to(self, model: Any, dataset: Any) -> bool | str:
        return _labels_reason(dataset)

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts = self.checked_options(ctx)
        return self.score(self._codes(model, dataset, ctx, opts), dataset, ctx, opts)

    def score(
        self, codes: _Labelled, dataset: Any, ctx: EvalContext, opts: dict[str, Any]
    ) -> dict[str, float]:
        """The values from the codes and labels of the training images (at most
        ``eval.rep_train_n``) and of the test images; ``ctx.details`` already describes the
        codes (:meth:`_codes`)."""
        raise NotImplementedError

    def _codes(self, model: Any, dataset: Any, ctx: EvalContext, opts: dict[str, Any]) -> _Labelled:
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
        return _Labelled(_np(z_train), y_train, _np(z_test), y_test)


def _too_few(
    what: str, need: int, got: int, dataset: Any, opts: dict[str, Any]
) -> NotApplicableError:
    return NotApplicableError(
        f"{what} needs at least {need} training codes; {got} were used (dataset "
        f"{dataset.name!r} has {int(dataset.x_train.shape[0])} training images, "
        f"eval.rep_train_n={opts['rep_train_n']})"
    )


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

    def score(self, codes: _Labelled, dataset: Any, ctx: EvalContext, opts: dict[str, Any]):
        z_train, y_train, z_test, y_test = codes
        if len(np.unique(y_train)) < 2:
            raise NotApplicableError(
                f"the probe needs at least two classes among the {len(y_train)} training codes "
                f"used (eval.rep_train_n={opts['rep_train_n']}); they hold one"
            )
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

    def score(self, codes: _Labelled, dataset: Any, ctx: EvalContext, opts: dict[str, Any]):
        z_train, y_train, z_test, y_test = codes
        k = opts["knn_k"]
        if len(z_train) < k:
            raise _too_few(f"eval.knn_k={k}", k, len(z_train), dataset, opts)
        ctx.details.update({"k": k, "distance": "euclidean", "vote": "uniform"})
        return {"knn_acc": 100.0 * knn_accuracy(z_train, y_train, z_test, y_test, k)}


class ClusterAccuracy(_LabelledCodes):
    """k-means clustering accuracy with Hungarian matching (see the module docstring)."""

    name = "cluster"
    options = {"rep_train_n": 10000, "cluster_n_init": 10, "cluster_whiten": True}
    option_docs = {
        "rep_train_n": LinearProbe.option_docs["rep_train_n"],
        "cluster_n_init": "k-means initialisations (k-means++), the best is kept (ACAI: 1000)",
        "cluster_whiten": "whiten the codes with the SVD of the training codes first "
        "(ACAI); true or false",
    }
    values = (
        Value(
            "cluster_acc", True, "%", 1,
            "test accuracy of k-means clusters (as many as classes) matched to classes by the "
            "Hungarian algorithm",
            REF_ACAI,
        ),
    )  # fmt: skip

    def applies_to(self, model: Any, dataset: Any) -> bool | str:
        reason = super().applies_to(model, dataset)
        if reason is not True:
            return reason
        n_classes, n_train = _n_classes(dataset), int(dataset.x_train.shape[0])
        if n_train < n_classes:
            return (
                f"k-means with one cluster per class needs at least {n_classes} training images "
                f"(the classes of {dataset.name!r}); it has {n_train}"
            )
        return True

    def score(self, codes: _Labelled, dataset: Any, ctx: EvalContext, opts: dict[str, Any]):
        z_train, _, z_test, y_test = codes
        n_clusters = ctx.details["n_classes"]
        if len(z_train) < n_clusters:
            raise _too_few(f"k-means with {n_clusters} clusters", n_clusters, len(z_train),
                           dataset, opts)  # fmt: skip
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


class ActiveUnits(codes_mod.BoundedMetric):
    """Active units of the code (see the module docstring); applies to every model."""

    name = "active_units"
    group = "representation"
    cost = "cheap"
    default = True
    version = 1
    options = {"au_threshold": 0.01}
    bounds = BOUNDS
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

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts = self.checked_options(ctx)
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
