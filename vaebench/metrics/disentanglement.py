"""Disentanglement metrics: BetaVAE score, FactorVAE score, MIG, DCI, SAP, modularity; and
the latent traversal the report draws (``traversal``, on by default for factor datasets).

Each is a metric plugin of group ``disentanglement`` that applies to a dataset with at least two
ground-truth factors (``factors_*`` and ``factor_names``); the definitions, sample counts,
discretisation and regressors are those of google-research/disentanglement_lib
(``evaluation/metrics/*.py`` and the ``unsupervised_study_v1`` gin configs), checked in
tests/test_metrics_disentanglement.py against a port of that code on the same codes.

**Ground truth.** As in disentanglement_lib the factors are discrete: a factor's class is the
index of its value in the dataset's declared grid (``info["factors"][NAME]["values"]``), or --
for a continuous factor -- one of 20 equal-width bins of its range
(:func:`vaebench.dataset.factor_classes`).

**Sampling.** disentanglement_lib draws factors uniformly from the grid and renders the image.
vaebench draws from the *pool* of the dataset's images -- the training and the test split
together, which for ``sprites``/``dsprites``/``shapes3d`` is every point of the (subsampled)
grid exactly once -- so a uniform row is a uniform grid point, and "factor k fixed, the others
resampled" is a uniform row among those whose factor k has the same class. On a full product
grid this is the same distribution; on a ``--subset`` of it, the conditional draws are from the
subset. The codes (posterior means for a model with a posterior, ``encode`` otherwise) of the
pool are computed once per cell and indexed, which gives the same numbers as encoding every
sampled image again (encoding is deterministic) at a fraction of the cost.

**Scikit-learn.** The classifiers are scikit-learn's, as in disentanglement_lib, but
disentanglement_lib ran scikit-learn 0.20, whose ``LogisticRegression()`` defaulted to the
liblinear solver with one-vs-rest; scikit-learn >= 0.22 uses lbfgs with a multinomial model.
vaebench uses the current defaults (recorded per evaluation in ``details["sklearn"]``), so the
BetaVAE score and explicitness can differ from numbers published with the old library
(disentanglement_lib's issue #33 reports such drift for MIG-adjacent code). MIG and modularity
use ``numpy.histogram`` bins and an exact mutual information, which do not depend on it.

Randomness: one ``numpy.random.RandomState`` per evaluation, seeded from the metric's own stream
(``EvalContext.generator``), as disentanglement_lib passes one ``random_state`` through.

Sources: Higgins et al., beta-VAE, ICLR 2017; Kim & Mnih, Disentangling by Factorising, ICML
2018; Chen et al., Isolating Sources of Disentanglement in VAEs, NeurIPS 2018; Eastwood &
Williams, A Framework for the Quantitative Evaluation of Disentangled Representations, ICLR
2018; Kumar, Sattigeri & Balakrishnan, Variational Inference of Disentangled Latent Concepts
from Unlabeled Observations, ICLR 2018; Ridgeway & Mozer, Learning Deep Disentangled Embeddings
with the F-Statistic Loss, NeurIPS 2018; Locatello et al., Challenging Common Assumptions in the
Unsupervised Learning of Disentangled Representations, ICML 2019 (disentanglement_lib).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from vaebench.errors import NotApplicableError
from vaebench.hookspecs import hookimpl
from vaebench.metric import EvalContext, Value
from vaebench.metrics import codes as codes_mod

__all__ = [
    "FactorPool",
    "histogram_discretize",
    "mutual_info_matrix",
    "mig_score",
    "dci_scores",
    "sap_score",
    "modularity_score",
    "explicitness_score",
    "betavae_score",
    "factorvae_score",
    "BetaVAEScore",
    "FactorVAEScore",
    "MIG",
    "DCI",
    "SAP",
    "Modularity",
    "Traversal",
    "traversal_codes",
]

REF_BETAVAE = "Higgins et al., beta-VAE, ICLR 2017; disentanglement_lib beta_vae.py"
REF_FACTORVAE = "Kim & Mnih, Disentangling by Factorising, ICML 2018; disentanglement_lib"
REF_MIG = "Chen et al., Isolating Sources of Disentanglement in VAEs, NeurIPS 2018"
REF_DCI = "Eastwood & Williams, ICLR 2018; disentanglement_lib dci.py (gradient boosted trees)"
REF_SAP = "Kumar, Sattigeri & Balakrishnan, ICLR 2018 (DIP-VAE paper); disentanglement_lib"
REF_MOD = "Ridgeway & Mozer, NeurIPS 2018; disentanglement_lib modularity_explicitness.py"

# ----------------------------------------------------------------------------- definitions


def histogram_discretize(z: np.ndarray, bins: int) -> np.ndarray:
    """Each column of ``z`` ``(n, d)`` binned into ``bins`` equal-width bins of its own range
    (``numpy.histogram`` edges; the maximum falls into the last bin): int ``(n, d)`` in
    ``1..bins`` (disentanglement_lib's ``_histogram_discretize``)."""
    out = np.empty(z.shape, dtype=np.int64)
    for j in range(z.shape[1]):
        edges = np.histogram(z[:, j], bins)[1][:-1]
        out[:, j] = np.digitize(z[:, j], edges)
    return out


def _mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information (nats) of two discrete label vectors, from their joint counts."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai.ravel(), bi.ravel()), 1.0)
    p = joint / joint.sum()
    pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / (pa @ pb)[nz])))


def mutual_info_matrix(codes_d: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``(d, K)`` mutual information (nats) between discretised codes ``(n, d)`` and factor
    classes ``(n, K)``."""
    return np.array(
        [[_mutual_info(codes_d[:, i], classes[:, j]) for j in range(classes.shape[1])]
         for i in range(codes_d.shape[1])]
    ).reshape(codes_d.shape[1], classes.shape[1])  # fmt: skip


def mig_score(z: np.ndarray, classes: np.ndarray, bins: int = 20) -> float:
    """Mutual information gap: over factors, the mean of (largest - second largest mutual
    information of a code dimension with the factor) / the factor's entropy. ``z`` ``(n, d)``
    codes (``d >= 2``), ``classes`` ``(n, K)``; in [0, 1]."""
    m = mutual_info_matrix(histogram_discretize(z, bins), classes)
    entropy = np.array([_mutual_info(c, c) for c in classes.T])
    top = np.sort(m, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / entropy))


def _entropy_norm(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each column of ``p`` (normalised to sum 1) in base ``base``."""
    q = p / p.sum(0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(q > 0, q * np.log(q), 0.0), axis=0)
    return h / np.log(base)


def _dci_from_importance(r: np.ndarray) -> tuple[float, float]:
    """(disentanglement, completeness) of an importance matrix ``r`` ``(d, K)``."""
    d, k = r.shape
    eps = 1e-11
    per_code = 1.0 - _entropy_norm(r.T + eps, k)
    per_factor = 1.0 - _entropy_norm(r + eps, d)
    w = np.ones_like(r) if r.sum() == 0 else r
    return (
        float(np.sum(per_code * w.sum(1) / w.sum())),
        float(np.sum(per_factor * w.sum(0) / w.sum())),
    )


def dci_scores(
    z_train: np.ndarray,
    c_train: np.ndarray,
    z_test: np.ndarray,
    c_test: np.ndarray,
    random_state: int | None = None,
) -> dict[str, Any]:
    """DCI with scikit-learn's default ``GradientBoostingClassifier`` per factor: importance
    matrix ``R[i, j]`` = feature importance of code ``i`` for factor ``j``; disentanglement =
    sum over codes of (1 - entropy base K of R's row) weighted by the row's share of R;
    completeness likewise over factors (entropy base d); informativeness = mean accuracy over
    factors (train and test). ``random_state`` seeds the trees (they break ties between equally
    good splits at random: unseeded, two runs on the same codes differ)."""
    from sklearn.ensemble import GradientBoostingClassifier

    d, k = z_train.shape[1], c_train.shape[1]
    r = np.zeros((d, k))
    acc_train, acc_test = [], []
    for j in range(k):
        clf = GradientBoostingClassifier(random_state=random_state)
        clf.fit(z_train, c_train[:, j])
        r[:, j] = np.abs(clf.feature_importances_)
        acc_train.append(np.mean(clf.predict(z_train) == c_train[:, j]))
        acc_test.append(np.mean(clf.predict(z_test) == c_test[:, j]))
    dis, comp = _dci_from_importance(r)
    return {
        "disentanglement": dis,
        "completeness": comp,
        "informativeness_train": float(np.mean(acc_train)),
        "informativeness_test": float(np.mean(acc_test)),
        "importance": r,
    }


def sap_score(
    z_train: np.ndarray, c_train: np.ndarray, z_test: np.ndarray, c_test: np.ndarray
) -> tuple[float, np.ndarray]:
    """SAP (discrete factors): ``S[i, j]`` = test accuracy of a linear SVM (``LinearSVC(C=0.01,
    class_weight="balanced")``) predicting factor ``j`` from code dimension ``i`` alone; the
    score is the mean over factors of the gap between the two best dimensions. ``(score, S)``."""
    from sklearn.svm import LinearSVC

    d, k = z_train.shape[1], c_train.shape[1]
    s = np.zeros((d, k))
    for i in range(d):
        for j in range(k):
            clf = LinearSVC(C=0.01, class_weight="balanced")
            clf.fit(z_train[:, i : i + 1], c_train[:, j])
            s[i, j] = np.mean(clf.predict(z_test[:, i : i + 1]) == c_test[:, j])
    top = np.sort(s, axis=0)
    return float(np.mean(top[-1] - top[-2])), s


def modularity_score(mi: np.ndarray) -> float:
    """Modularity of a ``(d, K)`` mutual-information matrix: per code, ``1 - (sum of squared MI
    - max) / (max * (K - 1))`` (0 for a code with no information), averaged over codes."""
    sq = mi**2
    mx = sq.max(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - (sq.sum(1) - mx) / (mx * (sq.shape[1] - 1.0))
    score[mx == 0] = 0.0
    return float(np.mean(score))


def explicitness_score(
    z_train: np.ndarray, c_train: np.ndarray, z_test: np.ndarray, c_test: np.ndarray
) -> tuple[float, float]:
    """Explicitness: codes standardised with the training mean and std; per factor, a
    ``LogisticRegression()`` (scikit-learn defaults) on all codes, scored by the ROC-AUC of its
    class probabilities (one column per class of the training labels, macro average); mean
    over factors. ``(train, test)``. A class absent from a split (or the only one present) is
    left out of that split's average (disentanglement_lib fails there instead)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    mean, std = z_train.mean(0), z_train.std(0)
    std = np.where(std > 0, std, 1.0)
    zt, ze = (z_train - mean) / std, (z_test - mean) / std
    out_train: list[float] = []
    out_test: list[float] = []
    for j in range(c_train.shape[1]):
        clf = LogisticRegression().fit(zt, c_train[:, j])
        for z, c, out in ((zt, c_train[:, j], out_train), (ze, c_test[:, j], out_test)):
            onehot = (c[:, None] == clf.classes_[None, :]).astype(int)
            prob = clf.predict_proba(z)
            both = (onehot.min(0) == 0) & (onehot.max(0) == 1)  # classes present and absent
            out.append(roc_auc_score(onehot[:, both], prob[:, both]))
    return float(np.mean(out_train)), float(np.mean(out_test))


class FactorPool:
    """Codes and factor classes of the pool of images the metrics draw from.

    ``z`` ``(N, d)`` float64, ``classes`` ``(N, K)`` int64. :meth:`rows` draws uniform rows;
    :meth:`same_factor` draws, for each given row, a uniform row whose factor ``k`` has the same
    class (see the module docstring)."""

    def __init__(self, z: np.ndarray, classes: np.ndarray) -> None:
        self.z = np.asarray(z, dtype=np.float64)
        self.classes = np.asarray(classes, dtype=np.int64)
        self.n, self.k = self.classes.shape
        self._order, self._start, self._count = [], [], []
        for j in range(self.k):
            c = self.classes[:, j]
            order = np.argsort(c, kind="stable")
            values, start, count = np.unique(c[order], return_index=True, return_counts=True)
            lookup_start = np.zeros(values.max() + 1, dtype=np.int64)
            lookup_count = np.zeros(values.max() + 1, dtype=np.int64)
            lookup_start[values], lookup_count[values] = start, count
            self._order.append(order)
            self._start.append(lookup_start)
            self._count.append(lookup_count)

    def rows(self, n: int, rs: np.random.RandomState) -> np.ndarray:
        return rs.randint(self.n, size=n)

    def same_factor(self, rows: np.ndarray, k: int | np.ndarray, rs: np.random.RandomState):
        """For each row, a uniform row with the same class of factor ``k`` (one ``k`` or one
        per row)."""
        k = np.broadcast_to(np.asarray(k), rows.shape)
        out = np.empty_like(rows)
        for j in np.unique(k):
            sel = k == j
            c = self.classes[rows[sel], j]
            pick = self._start[j][c] + (rs.random_sample(sel.sum()) * self._count[j][c]).astype(
                np.int64
            )
            out[sel] = self._order[j][pick]
        return out


def betavae_score(
    pool: FactorPool, rs: np.random.RandomState, batch_size: int, num_train: int, num_eval: int
) -> dict[str, float]:
    """BetaVAE score: each point picks a factor ``k`` at random, draws ``batch_size`` pairs of
    images sharing factor ``k``'s class and takes the mean absolute difference of their codes;
    a logistic regression (scikit-learn defaults, ``random_state`` from ``rs``) predicts ``k``
    from it; accuracy on ``num_train`` training and ``num_eval`` fresh points."""
    from sklearn.linear_model import LogisticRegression

    def batch(n: int) -> tuple[np.ndarray, np.ndarray]:
        k = rs.randint(pool.k, size=n)
        a = pool.rows(n * batch_size, rs)
        b = pool.same_factor(a, np.repeat(k, batch_size), rs)
        feats = np.abs(pool.z[a] - pool.z[b]).reshape(n, batch_size, -1).mean(1)
        return feats, k

    from sklearn.exceptions import ConvergenceWarning

    x_train, y_train = batch(num_train)
    clf = LogisticRegression(random_state=rs.randint(2**31 - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported as "converged"
        clf.fit(x_train, y_train)
    x_eval, y_eval = batch(num_eval)
    return {
        "train_accuracy": float(np.mean(clf.predict(x_train) == y_train)),
        "eval_accuracy": float(clf.score(x_eval, y_eval)),
        "converged": bool(np.max(clf.n_iter_) < clf.max_iter),
    }


def factorvae_score(
    pool: FactorPool,
    rs: np.random.RandomState,
    batch_size: int,
    num_train: int,
    num_eval: int,
    num_variance: int,
    prune_threshold: float,
) -> dict[str, Any]:
    """FactorVAE score: codes are divided by their standard deviation over ``num_variance``
    images; each point picks a factor ``k``, draws ``batch_size`` images sharing factor ``k``'s
    class and votes (k, the active dimension of least normalised variance); a majority-vote
    classifier (dimension -> factor) is read off the ``num_train`` training votes and scored on
    ``num_eval`` fresh ones. Dimensions whose standard deviation is below ``prune_threshold``
    are inactive; with none active the score is 0."""
    global_var = np.var(pool.z[pool.rows(num_variance, rs)], axis=0, ddof=1)
    active = np.sqrt(global_var) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "active_dims": 0}
    act = np.flatnonzero(active)

    def votes(n: int) -> np.ndarray:
        k = rs.randint(pool.k, size=n)
        first = pool.rows(n, rs)
        rows = pool.same_factor(np.repeat(first, batch_size), np.repeat(k, batch_size), rs)
        rows = rows.reshape(n, batch_size)
        rows[:, 0] = first
        local = np.var(pool.z[rows][:, :, act], axis=1, ddof=1)
        arg = np.argmin(local / global_var[act], axis=1)
        v = np.zeros((pool.k, pool.z.shape[1]), dtype=np.int64)
        np.add.at(v, (k, arg), 1)
        return v

    train = votes(num_train)
    classifier = np.argmax(train, axis=0)
    cols = np.arange(train.shape[1])
    ev = votes(num_eval)
    return {
        "train_accuracy": float(train[classifier, cols].sum() / train.sum()),
        "eval_accuracy": float(ev[classifier, cols].sum() / ev.sum()),
        "active_dims": int(active.sum()),
    }


# ----------------------------------------------------------------------------- plugins

_POOL_KEY = "vaebench.disentanglement.pool"


def _pool(model: Any, dataset: Any, ctx: EvalContext) -> FactorPool:
    if _POOL_KEY not in ctx.cache:
        parts, classes = [], []
        kind = ""
        for split in codes_mod.SPLITS:
            z, _, kind = codes_mod.representation_codes(model, dataset, split, ctx)
            parts.append(z.double().numpy())
            classes.append(dataset.factor_classes(split).numpy())
        ctx.cache[_POOL_KEY] = (FactorPool(np.concatenate(parts), np.concatenate(classes)), kind)
    pool, kind = ctx.cache[_POOL_KEY]
    import sklearn

    ctx.details.update(
        {
            "codes": kind,
            "pool": "training and test images together",
            "pool_size": pool.n,
            "factors": list(dataset.factor_names),
            "classes_per_factor": [int(len(np.unique(c))) for c in pool.classes.T],
            "sklearn": sklearn.__version__,
        }
    )
    return pool


def _random_state(ctx: EvalContext) -> np.random.RandomState:
    return np.random.RandomState(int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.generator)))


def _sample(pool: FactorPool, n: int, rs: np.random.RandomState):
    rows = pool.rows(n, rs)
    return pool.z[rows], pool.classes[rows]


class _Disentanglement(codes_mod.BoundedMetric):
    group = "disentanglement"
    default = False
    version = 1

    def applies_to(self, model: Any, dataset: Any) -> bool | str:
        names = tuple(getattr(dataset, "factor_names", ()) or ())
        if dataset.factors_train is None or dataset.factors_test is None or len(names) < 2:
            return (
                f"needs a dataset with at least 2 ground-truth factors; {dataset.name!r} has "
                f"{len(names) if dataset.factors_test is not None else 0}"
            )
        return True

    def _setup(self, model: Any, dataset: Any, ctx: EvalContext):
        opts = self.checked_options(ctx)
        pool = _pool(model, dataset, ctx)
        varying = sum(len(np.unique(c)) > 1 for c in pool.classes.T)
        if varying < 2:
            raise NotApplicableError(
                f"needs at least 2 factors that vary in {dataset.name!r}; {varying} do"
            )
        if pool.z.shape[1] < 2 and self.name in ("mig", "sap"):
            raise NotApplicableError(f"{self.name} needs a code of at least 2 dimensions")
        return opts, pool, _random_state(ctx)

    def _train_test(self, model: Any, dataset: Any, ctx: EvalContext):
        """Options, random stream, and the codes and factor classes of two samples of the
        pool: ``NAME_num_train`` images, then ``NAME_num_test`` (the options of a metric
        that fits on one and scores on the other, as disentanglement_lib draws them)."""
        opts, pool, rs = self._setup(model, dataset, ctx)
        train = _sample(pool, opts[f"{self.name}_num_train"], rs)
        test = _sample(pool, opts[f"{self.name}_num_test"], rs)
        return opts, rs, train, test


_N = (2, 10_000_000)


class BetaVAEScore(_Disentanglement):
    """BetaVAE score (see :func:`betavae_score`)."""

    name = "betavae_score"
    cost = "moderate"
    options = {"betavae_batch_size": 64, "betavae_num_train": 10000, "betavae_num_eval": 5000}
    bounds = {"betavae_batch_size": (1, 100000), "betavae_num_train": _N,
              "betavae_num_eval": (1, 10_000_000)}  # fmt: skip
    option_docs = {
        "betavae_batch_size": "image pairs averaged into one point (disentanglement_lib: 64)",
        "betavae_num_train": "points the classifier is fitted on (disentanglement_lib: 10000)",
        "betavae_num_eval": "points it is scored on (disentanglement_lib: 5000)",
    }
    values = (
        Value("betavae", True, "", 3,
              "BetaVAE score: accuracy of a linear classifier naming the fixed factor from mean "
              "absolute code differences of pairs sharing it", REF_BETAVAE),
    )  # fmt: skip

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts, pool, rs = self._setup(model, dataset, ctx)
        out = betavae_score(pool, rs, opts["betavae_batch_size"], opts["betavae_num_train"],
                            opts["betavae_num_eval"])  # fmt: skip
        ctx.details.update({"train_accuracy": out["train_accuracy"], "converged": out["converged"],
                            "classifier": "LogisticRegression() (scikit-learn defaults)"})  # fmt: skip
        return {"betavae": out["eval_accuracy"]}


class FactorVAEScore(_Disentanglement):
    """FactorVAE score (see :func:`factorvae_score`)."""

    name = "factorvae_score"
    cost = "cheap"
    options = {
        "factorvae_batch_size": 64,
        "factorvae_num_train": 10000,
        "factorvae_num_eval": 5000,
        "factorvae_num_variance": 10000,
        "factorvae_prune_threshold": 0.05,
    }
    bounds = {"factorvae_batch_size": (2, 100000), "factorvae_num_train": (1, 10_000_000),
              "factorvae_num_eval": (1, 10_000_000), "factorvae_num_variance": _N,
              "factorvae_prune_threshold": (0.0, 1e6)}  # fmt: skip
    option_docs = {
        "factorvae_batch_size": "images sharing the fixed factor per vote "
        "(disentanglement_lib: 64)",
        "factorvae_num_train": "votes the classifier is read from (disentanglement_lib: 10000)",
        "factorvae_num_eval": "votes it is scored on (disentanglement_lib: 5000)",
        "factorvae_num_variance": "images for the global variances (disentanglement_lib: 10000)",
        "factorvae_prune_threshold": "code dimensions with a smaller standard deviation are "
        "inactive (disentanglement_lib: 0.05)",
    }
    values = (
        Value("factorvae", True, "", 3,
              "FactorVAE score: accuracy of the majority vote naming the fixed factor from the "
              "code dimension of least normalised variance", REF_FACTORVAE),
    )  # fmt: skip

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts, pool, rs = self._setup(model, dataset, ctx)
        out = factorvae_score(
            pool, rs, opts["factorvae_batch_size"], opts["factorvae_num_train"],
            opts["factorvae_num_eval"], opts["factorvae_num_variance"],
            opts["factorvae_prune_threshold"],
        )  # fmt: skip
        ctx.details.update(
            {"train_accuracy": out["train_accuracy"], "active_dims": out["active_dims"]}
        )
        return {"factorvae": out["eval_accuracy"]}


class MIG(_Disentanglement):
    """Mutual information gap (see :func:`mig_score`)."""

    name = "mig"
    cost = "cheap"
    options = {"mig_num_train": 10000, "mig_bins": 20}
    bounds = {"mig_num_train": _N, "mig_bins": (2, 10000)}
    option_docs = {
        "mig_num_train": "sampled images (disentanglement_lib: 10000)",
        "mig_bins": "equal-width bins per code dimension (disentanglement_lib: 20)",
    }
    values = (
        Value("mig", True, "", 3,
              "mutual information gap: gap between the two code dimensions most informative "
              "about a factor, over its entropy, averaged over factors", REF_MIG),
    )  # fmt: skip

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts, pool, rs = self._setup(model, dataset, ctx)
        z, c = _sample(pool, opts["mig_num_train"], rs)
        return {"mig": mig_score(z, c, opts["mig_bins"])}


class DCI(_Disentanglement):
    """DCI disentanglement, completeness, informativeness (see :func:`dci_scores`)."""

    name = "dci"
    cost = "expensive"
    options = {"dci_num_train": 10000, "dci_num_test": 5000}
    bounds = {"dci_num_train": _N, "dci_num_test": (1, 10_000_000)}
    option_docs = {
        "dci_num_train": "images the gradient boosted trees are fitted on "
        "(disentanglement_lib: 10000)",
        "dci_num_test": "images informativeness is measured on (disentanglement_lib: 5000)",
    }
    values = (
        Value("dci_disentanglement", True, "", 3,
              "DCI disentanglement: 1 - entropy of each code dimension's importance over "
              "factors, weighted by importance", REF_DCI),
        Value("dci_completeness", True, "", 3,
              "DCI completeness: 1 - entropy of each factor's importance over code dimensions, "
              "weighted by importance", REF_DCI),
        Value("dci_informativeness", True, "", 3,
              "DCI informativeness: test accuracy of the trees predicting each factor from the "
              "code, averaged over factors", REF_DCI),
    )  # fmt: skip

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts, rs, (z_train, c_train), (z_test, c_test) = self._train_test(model, dataset, ctx)
        out = dci_scores(z_train, c_train, z_test, c_test, random_state=rs.randint(2**31 - 1))
        ctx.details.update(
            {
                "informativeness_train": out["informativeness_train"],
                "importance": np.round(out["importance"], 4).tolist(),
                "regressor": "GradientBoostingClassifier() (scikit-learn defaults, random_state from the metric's stream) per factor",
            }
        )
        return {
            "dci_disentanglement": out["disentanglement"],
            "dci_completeness": out["completeness"],
            "dci_informativeness": out["informativeness_test"],
        }


class SAP(_Disentanglement):
    """Separated attribute predictability (see :func:`sap_score`)."""

    name = "sap"
    cost = "moderate"
    options = {"sap_num_train": 10000, "sap_num_test": 5000}
    bounds = {"sap_num_train": _N, "sap_num_test": (1, 10_000_000)}
    option_docs = {
        "sap_num_train": "images the per-dimension classifiers are fitted on "
        "(disentanglement_lib: 10000)",
        "sap_num_test": "images they are scored on (disentanglement_lib: 5000)",
    }
    values = (
        Value("sap", True, "", 3,
              "SAP: gap in accuracy between the two code dimensions that best predict a factor "
              "alone (linear SVM), averaged over factors", REF_SAP),
    )  # fmt: skip

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts, rs, (z_train, c_train), (z_test, c_test) = self._train_test(model, dataset, ctx)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LinearSVC convergence on collapsed dimensions
            score, matrix = sap_score(z_train, c_train, z_test, c_test)
        ctx.details.update(
            {
                "classifier": "LinearSVC(C=0.01, class_weight='balanced') per (dimension, factor)",
                "score_matrix": np.round(matrix, 4).tolist(),
            }  # fmt: skip
        )
        return {"sap": score}


class Modularity(_Disentanglement):
    """Modularity and explicitness (see :func:`modularity_score`, :func:`explicitness_score`)."""

    name = "modularity"
    cost = "moderate"
    options = {"modularity_num_train": 10000, "modularity_num_test": 5000, "modularity_bins": 20}
    bounds = {"modularity_num_train": _N, "modularity_num_test": (1, 10_000_000),
              "modularity_bins": (2, 10000)}  # fmt: skip
    option_docs = {
        "modularity_num_train": "sampled images for the mutual information and the "
        "explicitness classifiers (disentanglement_lib: 10000)",
        "modularity_num_test": "images explicitness is scored on (disentanglement_lib: 5000)",
        "modularity_bins": "equal-width bins per code dimension (disentanglement_lib: 20)",
    }
    values = (
        Value("modularity", True, "", 3,
              "modularity: how much each code dimension's mutual information concentrates on "
              "one factor, averaged over dimensions", REF_MOD),
        Value("explicitness", True, "", 3,
              "explicitness: test ROC-AUC of a logistic regression predicting each factor from "
              "the standardised code, averaged over factors", REF_MOD),
    )  # fmt: skip

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts, rs, (z_train, c_train), (z_test, c_test) = self._train_test(model, dataset, ctx)
        mi = mutual_info_matrix(histogram_discretize(z_train, opts["modularity_bins"]), c_train)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs convergence warnings
            expl_train, expl_test = explicitness_score(z_train, c_train, z_test, c_test)
        ctx.details.update({"explicitness_train": expl_train})
        return {"modularity": modularity_score(mi), "explicitness": expl_test}


def traversal_codes(
    base: torch.Tensor, spread: torch.Tensor, centre: torch.Tensor, steps: int, reach: float
) -> torch.Tensor:
    """Codes of a latent traversal, ``(d * steps, d)``: row block ``i`` is ``base`` ``(d,)``
    with dimension ``i`` set to ``centre_i + t * spread_i`` for ``t`` in ``linspace(-reach,
    reach, steps)``."""
    d = base.shape[0]
    t = torch.linspace(-reach, reach, steps, dtype=base.dtype)
    z = base.repeat(d * steps, 1)
    for i in range(d):
        z[i * steps : (i + 1) * steps, i] = centre[i] + t * spread[i]
    return z


class Traversal(_Disentanglement):
    """Latent traversal (artifact ``latent_traversal`` for the report's figure)."""

    name = "traversal"
    cost = "cheap"
    default = True
    options = {"traversal_steps": 7, "traversal_reach": 2.0}
    bounds = {"traversal_steps": (2, 50), "traversal_reach": (0.01, 100.0)}
    option_docs = {
        "traversal_steps": "decoded images per code dimension",
        "traversal_reach": "each dimension is swept over centre +- reach x spread (prior "
        "N(0, 1) for a model with a posterior: +- reach; else the test codes' mean +- "
        "reach x their standard deviation)",
    }
    values = (
        Value("traversal_changing_dims", None, "dims", 0,
              "code dimensions whose traversal changes the decoded image by more than 0.01 "
              "(mean absolute pixel difference between the sweep's ends)",
              "latent traversals: Higgins et al., beta-VAE, ICLR 2017"),
    )  # fmt: skip

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts = self.checked_options(ctx)
        z, _, kind = codes_mod.representation_codes(model, dataset, "test", ctx)
        z = z.float()
        if kind == "posterior mean":
            centre, spread = torch.zeros(z.shape[1]), torch.ones(z.shape[1])
        else:
            centre, spread = z.mean(0), z.std(0, unbiased=False)
        steps = int(opts["traversal_steps"])
        codes = traversal_codes(z[0], spread, centre, steps, float(opts["traversal_reach"]))
        with torch.inference_mode():
            images = model.decode(codes.to(model.device)).float().cpu().clamp(0, 1)
        ends = images.reshape(z.shape[1], steps, -1)
        change = (ends[:, -1] - ends[:, 0]).abs().mean(1)
        ctx.add_artifact("latent_traversal", images)
        ctx.details.update(
            {
                "codes": kind,
                "base": "the first test image's code",
                "steps": steps,
                "reach": float(opts["traversal_reach"]),
                "code_variance": [round(float(v), 4) for v in z.var(0, unbiased=False)],
                "change": [round(float(v), 4) for v in change],
            }
        )
        return {"traversal_changing_dims": float((change > 0.01).sum())}


@hookimpl
def vaebench_metrics():
    return [BetaVAEScore(), FactorVAEScore(), MIG(), DCI(), SAP(), Modularity(), Traversal()]
