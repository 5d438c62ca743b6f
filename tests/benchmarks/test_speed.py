"""Speed benchmarks (pytest-benchmark). In the normal test run they execute once, untimed
(``--benchmark-disable`` in pyproject), as smoke tests. To measure, save and compare across
commits (results land in ``.benchmarks/``, with machine info and the commit)::

    pytest tests/benchmarks --benchmark-enable --benchmark-autosave
    # ... change something, commit ...
    pytest tests/benchmarks --benchmark-enable --benchmark-compare \\
        --benchmark-compare-fail=median:10%

Each group puts vaebench next to its reference (a plain-torch loop of the model's own step from
:mod:`vaebench.bench`, or scikit-learn for PCA), so one run also gives the ratio. No test here
asserts a time: a busy machine must not fail the suite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vaebench.bench import reference_for
from vaebench.plugins import get_registry

NEURAL = ["ae", "noisy", "dae", "vae"]
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def data():
    from vaebench.data.digits import load_digits

    return load_digits()


@pytest.fixture(scope="module")
def fashion():
    from vaebench.data import idx

    try:
        return idx.load_fashion_mnist(download=False)
    except Exception as exc:  # noqa: BLE001 - any missing or unreadable file: skip
        pytest.skip(f"Fashion-MNIST not available ({exc}); apt install dataset-fashion-mnist")


def _model(name: str, shape, **params):
    torch.manual_seed(0)
    return get_registry().model(name).spec.create(shape, **params)


@pytest.mark.parametrize("who", ["vaebench", "reference"])
@pytest.mark.parametrize("name", NEURAL)
def test_train_epoch(benchmark, data, name, who):
    """One epoch on digits (1438 images, batch 256): the model's ``fit`` (the shared loop)
    against the plain reference loop of the model's own step."""
    benchmark.group = f"train-epoch-{name}"
    model = _model(name, data.shape, epochs=1, batch_size=256)
    x = data.x_train
    if who == "vaebench":
        report = benchmark(model.fit, x)
        assert report.samples_seen == len(x)
    else:
        ref = reference_for(model)
        assert benchmark(ref.train, x) == len(x)


@pytest.mark.parametrize("who", ["vaebench", "sklearn-randomized", "sklearn-full"])
def test_pca_fit_fashion(benchmark, fashion, who):
    """PCA with 16 components on Fashion-MNIST (60 000 x 784): vaebench's covariance solver
    against scikit-learn's randomized and exact (LAPACK) solvers."""
    from sklearn.decomposition import PCA as SkPCA

    benchmark.group = "pca-fit-fashion"
    if benchmark.disabled:
        pytest.skip("full-size benchmark (seconds per call): runs with --benchmark-enable")
    x = fashion.x_train
    if who == "vaebench":
        model = _model("pca", fashion.shape, latent_dim=16, clip=False)
        report = benchmark(model.fit, x)
        assert report.history["loss"][0] > 0
    else:
        from threadpoolctl import threadpool_limits

        flat = x.reshape(len(x), -1).numpy()
        solver = who.split("-")[1]
        with threadpool_limits(torch.get_num_threads()):  # same threads as torch (conftest: 1)
            sk = benchmark(SkPCA(16, svd_solver=solver, random_state=0).fit, flat)
        assert sk.components_.shape == (16, 784)


@pytest.mark.fashion
def test_pca_fashion_error_equals_exact_pca(fashion):
    """The target that goes with the PCA benchmark: vaebench's unclipped training error equals
    exact PCA's within 1e-6 (exact: the covariance formed in float64 in one product, without
    vaebench's float32 blocks and shift, and its full eigendecomposition)."""
    x = fashion.x_train
    model = _model("pca", fashion.shape, latent_dim=16, clip=False)
    ours = model.fit(x).history["loss"][0]
    flat = x.reshape(len(x), -1).double().numpy()
    centred = flat - flat.mean(0)
    evals, evecs = np.linalg.eigh(centred.T @ centred)
    exact = (evals.sum() - evals[-16:].sum()) / centred.size
    assert abs(ours - exact) < 1e-6
    cosines = np.linalg.svd(model.components.double().numpy() @ evecs[:, -16:], compute_uv=False)
    assert cosines.min() > 1 - 1e-6


@pytest.mark.parametrize("name", ["pca", "ae", "vae"])
def test_encode_decode(benchmark, data, name):
    """Encode + decode of 4096 images (inference mode inside the models)."""
    spec = get_registry().model(name).spec
    model = _model(name, data.shape, **({"epochs": 1} if "epochs" in spec.defaults() else {}))
    model.fit(data.x_train)
    x = data.x_train.repeat(3, 1, 1, 1)[:4096]

    out = benchmark(lambda: model.decode(model.encode(x)))
    assert out.shape == x.shape and not out.requires_grad
