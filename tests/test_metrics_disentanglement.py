"""Disentanglement metrics: checked against a port of google-research/disentanglement_lib
(commit 86a644d4ed35c771560dc3360756363d35477357) on the same codes, and on textbook cases.

The port follows, function by function, ``disentanglement_lib/evaluation/metrics/``:
``utils.py`` (``_histogram_discretize``, ``discrete_mutual_info``, ``discrete_entropy``,
``normalize_data``), ``mig.py`` (``_compute_mig``), ``dci.py`` (``compute_importance_gbt``,
``disentanglement``, ``completeness``), ``sap_score.py`` (``compute_score_matrix``,
``compute_avg_diff_top_two``), ``modularity_explicitness.py`` (``modularity``,
``explicitness_per_factor``), ``beta_vae.py`` (``_generate_training_sample``) and
``factor_vae.py`` (``_compute_variances``, ``_prune_dims``, ``_generate_training_sample``). It
keeps their layout: codes ``(num_codes, num_points)``, factors ``(num_factors, num_points)``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics
from sklearn import ensemble, linear_model, preprocessing, svm

from vaebench.metrics import disentanglement as dis

# ----------------------------------------------------------------------------- the port


def port_histogram_discretize(target, num_bins):  # utils.py
    discretized = np.zeros_like(target)
    for i in range(target.shape[0]):
        discretized[i, :] = np.digitize(target[i, :], np.histogram(target[i, :], num_bins)[1][:-1])
    return discretized


def port_discrete_mutual_info(mus, ys):  # utils.py
    m = np.zeros([mus.shape[0], ys.shape[0]])
    for i in range(mus.shape[0]):
        for j in range(ys.shape[0]):
            m[i, j] = sklearn.metrics.mutual_info_score(ys[j, :], mus[i, :])
    return m


def port_discrete_entropy(ys):  # utils.py
    return np.array([sklearn.metrics.mutual_info_score(y, y) for y in ys])


def port_mig(mus_train, ys_train, num_bins=20):  # mig.py _compute_mig
    m = port_discrete_mutual_info(port_histogram_discretize(mus_train, num_bins), ys_train)
    entropy = port_discrete_entropy(ys_train)
    sorted_m = np.sort(m, axis=0)[::-1]
    return np.mean(np.divide(sorted_m[0, :] - sorted_m[1, :], entropy[:]))


def port_dci(mus_train, ys_train, mus_test, ys_test):  # dci.py
    num_factors, num_codes = ys_train.shape[0], mus_train.shape[0]
    importance = np.zeros([num_codes, num_factors])
    train_loss, test_loss = [], []
    for i in range(num_factors):
        np.random.seed(i)  # GradientBoostingClassifier() draws from the global state
        model = ensemble.GradientBoostingClassifier()
        model.fit(mus_train.T, ys_train[i, :])
        importance[:, i] = np.abs(model.feature_importances_)
        train_loss.append(np.mean(model.predict(mus_train.T) == ys_train[i, :]))
        test_loss.append(np.mean(model.predict(mus_test.T) == ys_test[i, :]))
    d, c = port_dci_from_importance(importance)
    return {"disentanglement": d, "completeness": c, "informativeness_train": np.mean(train_loss),
            "informativeness_test": np.mean(test_loss)}  # fmt: skip


def port_dci_from_importance(importance):  # dci.py disentanglement, completeness
    per_code = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=importance.shape[1])
    imp = np.ones_like(importance) if importance.sum() == 0.0 else importance
    d = np.sum(per_code * imp.sum(axis=1) / imp.sum())
    per_factor = 1.0 - scipy.stats.entropy(importance + 1e-11, base=importance.shape[0])
    c = np.sum(per_factor * imp.sum(axis=0) / imp.sum())
    return d, c


def port_sap(mus, ys, mus_test, ys_test):  # sap_score.py, continuous_factors=False
    score = np.zeros([mus.shape[0], ys.shape[0]])
    for i in range(mus.shape[0]):
        for j in range(ys.shape[0]):
            classifier = svm.LinearSVC(C=0.01, class_weight="balanced")
            classifier.fit(mus[i, :][:, np.newaxis], ys[j, :])
            pred = classifier.predict(mus_test[i, :][:, np.newaxis])
            score[i, j] = np.mean(pred == ys_test[j, :])
    sorted_matrix = np.sort(score, axis=0)
    return np.mean(sorted_matrix[-1, :] - sorted_matrix[-2, :])


def port_modularity(mutual_information):  # modularity_explicitness.py
    squared_mi = np.square(mutual_information)
    max_squared_mi = np.max(squared_mi, axis=1)
    numerator = np.sum(squared_mi, axis=1) - max_squared_mi
    denominator = max_squared_mi * (squared_mi.shape[1] - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        modularity_score = 1.0 - numerator / denominator
    modularity_score[max_squared_mi == 0.0] = 0.0
    return np.mean(modularity_score)


def port_explicitness(mus_train, ys_train, mus_test, ys_test):  # modularity_explicitness.py
    mean, std = np.mean(mus_train, axis=1), np.std(mus_train, axis=1)
    tr = (mus_train - mean[:, None]) / std[:, None]
    te = (mus_test - mean[:, None]) / std[:, None]
    train, test = [], []
    for i in range(ys_train.shape[0]):
        clf = linear_model.LogisticRegression().fit(tr.T, ys_train[i, :])
        mlb = preprocessing.MultiLabelBinarizer()
        train.append(
            sklearn.metrics.roc_auc_score(
                mlb.fit_transform(np.expand_dims(ys_train[i, :], 1)), clf.predict_proba(tr.T)
            )
        )
        test.append(
            sklearn.metrics.roc_auc_score(
                mlb.fit_transform(np.expand_dims(ys_test[i, :], 1)), clf.predict_proba(te.T)
            )
        )
    return np.mean(train), np.mean(test)  # fmt: skip


class PortGrid:
    """disentanglement_lib's GroundTruthData for a full product grid whose observation is the
    code itself (``representation_function`` = identity)."""

    def __init__(self, sizes, code_fn):
        self.factors_num_values, self.code_fn = sizes, code_fn
        self.num_factors = len(sizes)

    def sample_factors(self, num, random_state):
        return np.stack([random_state.randint(n, size=num) for n in self.factors_num_values], 1)

    def sample_observations_from_factors(self, factors, random_state):
        return self.code_fn(factors)


def port_betavae(data, random_state, batch_size, num_train, num_eval):  # beta_vae.py
    def sample():
        index = random_state.randint(data.num_factors)
        f1 = data.sample_factors(batch_size, random_state)
        f2 = data.sample_factors(batch_size, random_state)
        f2[:, index] = f1[:, index]
        r1 = data.sample_observations_from_factors(f1, random_state)
        r2 = data.sample_observations_from_factors(f2, random_state)
        return index, np.mean(np.abs(r1 - r2), axis=0)

    def batch(n):
        pts = [sample() for _ in range(n)]
        return np.array([p[1] for p in pts]), np.array([p[0] for p in pts])

    x, y = batch(num_train)
    model = linear_model.LogisticRegression(random_state=random_state)
    model.fit(x, y)
    xe, ye = batch(num_eval)
    return model.score(xe, ye)


def port_factorvae(data, random_state, batch_size, num_train, num_eval, num_var, thr):
    obs = data.sample_observations_from_factors(data.sample_factors(num_var, random_state), None)
    global_var = np.var(obs, axis=0, ddof=1)  # factor_vae.py _compute_variances
    active = np.sqrt(global_var) >= thr  # _prune_dims

    def votes(n):
        v = np.zeros((data.num_factors, global_var.shape[0]), dtype=np.int64)
        for _ in range(n):
            k = random_state.randint(data.num_factors)
            f = data.sample_factors(batch_size, random_state)
            f[:, k] = f[0, k]
            local = np.var(data.sample_observations_from_factors(f, random_state), axis=0, ddof=1)
            v[k, np.argmin(local[active] / global_var[active])] += 1
        return v

    train = votes(num_train)
    classifier, other = np.argmax(train, axis=0), np.arange(train.shape[1])
    ev = votes(num_eval)
    return np.sum(ev[classifier, other]) / np.sum(ev)


# ----------------------------------------------------------------------------- fixtures

SIZES = (3, 4, 5)


def grid_classes():
    mesh = np.meshgrid(*[np.arange(n) for n in SIZES], indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], 1)


def code_cases(classes, rng):
    """(n, d) codes of three kinds for factor classes (n, 3): disentangled, independent noise,
    rotated (the first two factors mixed by 45 degrees)."""
    f = classes / (np.array(SIZES) - 1.0)
    n = len(f)
    good = np.column_stack([f, 0.01 * rng.standard_normal(n)])
    noise = rng.standard_normal((n, 4))
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    rot = np.column_stack([c * f[:, 0] - s * f[:, 1], s * f[:, 0] + c * f[:, 1], f[:, 2],
                           0.01 * rng.standard_normal(n)])  # fmt: skip
    return {"good": good, "noise": noise, "rotated": rot}


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    grid = grid_classes()
    rows = rng.integers(len(grid), size=3000)
    c_train, c_test = grid[rows[:2000]], grid[rows[2000:]]
    out = {}
    for name in ("good", "noise", "rotated"):
        z = code_cases(grid[rows], np.random.default_rng(1))[name]
        out[name] = (z[:2000], c_train, z[2000:], c_test)
    return out


CASES = ("good", "noise", "rotated")


@pytest.mark.parametrize("case", CASES)
def test_mig_equals_port(samples, case):
    z, c, _, _ = samples[case]
    assert dis.mig_score(z, c, 20) == pytest.approx(port_mig(z.T, c.T, 20), abs=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_modularity_and_explicitness_equal_port(samples, case):
    z, c, zt, ct = samples[case]
    mi = dis.mutual_info_matrix(dis.histogram_discretize(z, 20), c)
    port_mi = port_discrete_mutual_info(port_histogram_discretize(z.T, 20), c.T)
    np.testing.assert_allclose(mi, port_mi, atol=1e-12)
    assert dis.modularity_score(mi) == pytest.approx(port_modularity(port_mi), abs=1e-12)
    ours = dis.explicitness_score(z, c, zt, ct)
    np.testing.assert_allclose(ours, port_explicitness(z.T, c.T, zt.T, ct.T), atol=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_sap_equals_port(samples, case):
    z, c, zt, ct = samples[case]
    z, c, zt, ct = z[:600], c[:600], zt[:300], ct[:300]
    ours, _ = dis.sap_score(z, c, zt, ct)
    assert ours == pytest.approx(port_sap(z.T, c.T, zt.T, ct.T), abs=1e-12)


def test_dci_formulas_equal_port():
    rng = np.random.default_rng(3)
    for shape in ((4, 3), (10, 5), (2, 6)):
        r = rng.random(shape) ** 3
        r[0] = 0.0  # a code dimension without importance
        assert dis._dci_from_importance(r) == pytest.approx(port_dci_from_importance(r), abs=1e-12)
    zero = np.zeros((3, 2))
    assert dis._dci_from_importance(zero) == pytest.approx(port_dci_from_importance(zero))


@pytest.mark.parametrize("case", ("good", "rotated"))
def test_dci_matches_port(samples, case):
    """The whole pipeline; the trees break ties between equal splits at random, so the
    importances agree to a few 1e-4 rather than exactly."""
    z, c, zt, ct = samples[case]
    z, c, zt, ct = z[:400], c[:400], zt[:200], ct[:200]
    ours = dis.dci_scores(z, c, zt, ct)
    port = port_dci(z.T, c.T, zt.T, ct.T)
    for key in port:
        assert ours[key] == pytest.approx(port[key], abs=0.01), key


def test_dci_from_importance_textbook():
    assert dis._dci_from_importance(np.eye(3)) == pytest.approx((1.0, 1.0))
    d, c = dis._dci_from_importance(np.ones((3, 3)))
    assert d == pytest.approx(0.0, abs=1e-9) and c == pytest.approx(0.0, abs=1e-9)


def test_textbook_cases(samples):
    """Codes equal to the factors score ~1, independent codes ~0, a rotated code between."""
    mig = {k: dis.mig_score(samples[k][0], samples[k][1]) for k in CASES}
    assert mig["good"] > 0.95 and mig["noise"] < 0.05 and 0.1 < mig["rotated"] < 0.9
    # modularity averages over code dimensions: the informative three only (a pure-noise
    # dimension's estimated MI is small but spread, hence of random modularity)
    mod = {
        k: dis.modularity_score(
            dis.mutual_info_matrix(dis.histogram_discretize(samples[k][0][:, :3], 20),
                                   samples[k][1])
        )
        for k in CASES
    }  # fmt: skip
    assert mod["good"] > 0.95 and mod["rotated"] < mod["good"] - 0.05
    sap = {k: dis.sap_score(*(a[:600] for a in samples[k]))[0] for k in CASES}
    assert sap["good"] > sap["rotated"] > sap["noise"] - 0.02 and sap["noise"] < 0.05
    dci = {k: dis.dci_scores(*(a[:400] for a in samples[k])) for k in ("good", "noise")}
    assert dci["good"]["disentanglement"] > 0.8 and dci["noise"]["disentanglement"] < 0.3


def _pool(case):
    grid = grid_classes()
    z = code_cases(grid, np.random.default_rng(2))[case]
    return dis.FactorPool(z, grid), z, grid


@pytest.mark.parametrize("case", CASES)
def test_betavae_and_factorvae_match_port(case):
    """Sampled metrics: the same definition up to sampling noise (different random streams)."""
    pool, z, grid = _pool(case)
    index = {tuple(r): i for i, r in enumerate(grid)}

    def code_fn(f):
        return z[[index[tuple(r)] for r in f]]

    data = PortGrid(SIZES, code_fn)
    ours = dis.betavae_score(pool, np.random.RandomState(0), 16, 3000, 2000)["eval_accuracy"]
    port = port_betavae(data, np.random.RandomState(1), 16, 3000, 2000)
    assert ours == pytest.approx(port, abs=0.04)
    ours = dis.factorvae_score(pool, np.random.RandomState(0), 16, 600, 300, 2000, 0.05)
    port = port_factorvae(data, np.random.RandomState(1), 16, 600, 300, 2000, 0.05)
    assert ours["eval_accuracy"] == pytest.approx(port, abs=0.08)
    if case == "good":
        assert port == pytest.approx(1.0, abs=0.02) and ours["eval_accuracy"] > 0.98
    if case == "noise":
        assert ours["eval_accuracy"] < 0.6


def test_same_factor_draws_share_the_class():
    pool, _, grid = _pool("good")
    rs = np.random.RandomState(0)
    rows = pool.rows(5000, rs)
    k = rs.randint(3, size=5000)
    other = pool.same_factor(rows, k, rs)
    assert np.all(grid[rows, k] == grid[other, k])
    # the other factors are uniform over their classes
    counts = np.bincount(grid[other[k == 0], 2], minlength=5)
    assert counts.min() > 0.7 * counts.mean()


def test_metric_plugins_on_a_factor_dataset():
    import torch

    from vaebench.dataset import Dataset
    from vaebench.metric import EvalContext

    grid = grid_classes().astype(float)
    x = torch.rand(len(grid), 1, 4, 4)
    names = ("a", "b", "c")
    info = {"factors": {n: {"low": 0.0, "high": s - 1.0, "values": list(map(float, range(s))),
                            "discrete": True} for n, s in zip(names, SIZES, strict=False)}}  # fmt: skip
    ds = Dataset("toy", x[:50], x[50:], factors_train=grid[:50], factors_test=grid[50:],
                 factor_names=names, info=info)  # fmt: skip

    class Model:
        class tags:  # noqa: N801
            has_posterior = False

        device = torch.device("cpu")

        def encode(self, xb):
            i = (xb.reshape(len(xb), -1)[:, :1] * 0).long().squeeze(1)
            return torch.zeros(len(xb), 4) + i[:, None]

    opts = {"mig_num_train": 500, "betavae_num_train": 50, "betavae_num_eval": 20,
            "betavae_batch_size": 8}  # fmt: skip
    for metric in (dis.MIG(), dis.BetaVAEScore()):
        assert metric.applies_to(Model(), ds) is True
        ctx = EvalContext(seed=0, device=torch.device("cpu"), options=opts, metric=metric.name)
        out = metric.evaluate(Model(), ds, ctx)
        assert set(out) == {v.name for v in metric.values}
        assert all(np.isfinite(v) for v in out.values())
        assert ctx.details["pool_size"] == len(grid)
    one = Dataset("one", x[:50], x[50:], factors_train=grid[:50, :1], factors_test=grid[50:, :1],
                  factor_names=("a",))  # fmt: skip
    assert "at least 2" in dis.MIG().applies_to(Model(), one)
    with pytest.raises(ValueError, match="eval.mig_bins"):
        dis.MIG().check_options({"mig_bins": 1})


def test_traversal_codes_and_figure():
    import torch

    from vaebench.record import encode_images
    from vaebench.report.interpolation_figures import latent_traversal

    base = torch.tensor([0.5, -1.0, 2.0])
    z = dis.traversal_codes(base, torch.tensor([1.0, 2.0, 0.0]), torch.zeros(3), 5, 2.0)
    assert z.shape == (15, 3)
    assert z[:5, 0].tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0] and torch.all(z[:5, 1:] == base[1:])
    assert z[5:10, 1].tolist() == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert torch.all(z[10:, 2] == 0.0)  # no spread: the dimension stays put
    images = torch.rand(15, 1, 8, 8)
    cell = {"model": "vae", "dataset": "sprites", "status": "ok", "seed": 0,
            "artifacts": {"latent_traversal": encode_images(images)},
            "evaluations": {"traversal": {"details": {"steps": 5, "reach": 2.0,
                                                      "code_variance": [1.0, 0.5, 0.0]}}}}  # fmt: skip
    fig = latent_traversal([cell], "sprites", "vae")
    assert fig is not None and len(fig.axes) == 15
    assert latent_traversal([cell], "sprites", "ae") is None
