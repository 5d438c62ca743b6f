"""``pca``: both solvers against scikit-learn's exact PCA, clipping, signs, meta construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA

from vaebench.models.pca import COVARIANCE_MAX_DIM, PCA
from vaebench.plugins import get_registry


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.reshape(len(x), -1).double().cpu().numpy()


def _principal_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosines of the principal angles between the row spaces of ``a`` and ``b`` (orthonormal
    rows): singular values of ``a b^T`` (Bjorck & Golub, 1973)."""
    return np.linalg.svd(a @ b.T, compute_uv=False)


@pytest.mark.parametrize("solver", ["covariance", "randomized"])
def test_same_subspace_and_error_as_scikit_learn(digits, device, solver):
    k = 8
    model = PCA(digits.shape, device=device, latent_dim=k, solver=solver, clip=False)
    report = model.fit(digits.x_train.to(device))
    x = _flat(digits.x_train)
    sk = SkPCA(n_components=k, svd_solver="full").fit(x)
    ours = model.components.double().cpu().numpy()
    np.testing.assert_allclose(ours @ ours.T, np.eye(k), atol=1e-5)
    np.testing.assert_allclose(_principal_cosines(ours, sk.components_), 1.0, atol=1e-6)
    np.testing.assert_allclose(model.mean.cpu().numpy(), sk.mean_, atol=1e-6)
    np.testing.assert_allclose(
        model.explained_variance.cpu().numpy(), sk.explained_variance_, rtol=1e-5
    )
    # the fit's loss is the unclipped training MSE of exact PCA
    exact = ((sk.inverse_transform(sk.transform(x)) - x) ** 2).mean()
    assert report.history["loss"][0] == pytest.approx(exact, abs=1e-6, rel=1e-5)
    # unclipped reconstructions of unseen images agree with scikit-learn's
    xt = digits.x_test.to(device)
    rec = _flat(model.decode(model.encode(xt)))
    sk_rec = sk.inverse_transform(sk.transform(_flat(digits.x_test)))
    np.testing.assert_allclose(rec, sk_rec, atol=1e-4)


def test_covariance_does_not_cancel_for_bright_images():
    """Pixels near 1 with tiny variance: a Gram matrix formed without centring would lose the
    variance to cancellation in float32; the shifted one-pass form keeps it."""
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(100, 5, generator=g, dtype=torch.float64))[0].T
    codes = torch.randn(3000, 5, generator=g, dtype=torch.float64) * torch.tensor(
        [5.0, 4.0, 3.0, 2.0, 1.0], dtype=torch.float64
    )
    x = (0.97 + 1e-3 * (codes @ basis)).clamp(0, 1).float().reshape(3000, 1, 10, 10)
    sk = SkPCA(n_components=3, svd_solver="full").fit(_flat(x))
    pca = PCA((1, 10, 10), latent_dim=3, solver="covariance")
    pca.fit(x)
    np.testing.assert_allclose(
        _principal_cosines(pca.components.double().numpy(), sk.components_), 1.0, atol=1e-5
    )
    np.testing.assert_allclose(pca.explained_variance.numpy(), sk.explained_variance_, rtol=1e-3)


def test_randomized_solver_on_large_images():
    """Above COVARIANCE_MAX_DIM ``auto`` takes the randomized solver; on data of low rank plus
    noise it finds the exact subspace."""
    shape = (3, 40, 40)
    d = 3 * 40 * 40
    assert d > COVARIANCE_MAX_DIM
    g = torch.Generator().manual_seed(1)
    basis = torch.linalg.qr(torch.randn(d, 4, generator=g))[0].T
    codes = torch.randn(300, 4, generator=g) * torch.tensor([8.0, 6.0, 4.0, 3.0])
    x = (0.5 + 0.02 * (codes @ basis) + 1e-4 * torch.randn(300, d, generator=g)).clamp(0, 1)
    model = PCA(shape, latent_dim=4)
    assert model.chosen_solver(300) == "randomized"
    report = model.fit(x.reshape(300, *shape))
    sk = SkPCA(n_components=4, svd_solver="full").fit(x.double().numpy())
    np.testing.assert_allclose(
        _principal_cosines(model.components.double().numpy(), sk.components_), 1.0, atol=1e-6
    )
    exact = (sk.inverse_transform(sk.transform(x.double().numpy())) - x.double().numpy()) ** 2
    assert report.history["loss"][0] == pytest.approx(exact.mean(), rel=1e-4)


def test_auto_solver_follows_the_input_dimension():
    assert PCA((1, 28, 28)).chosen_solver(60000) == "covariance"
    assert PCA((3, 64, 64)).chosen_solver(60000) == "randomized"
    assert PCA((3, 64, 64), solver="covariance").chosen_solver(10) == "covariance"


def test_clip_option(digits):
    x = digits.x_train
    on = PCA(digits.shape, latent_dim=3)
    off = PCA(digits.shape, latent_dim=3, clip=False)
    on.fit(x)
    off.fit(x)
    z = on.encode(digits.x_test)
    plain = off.decode(z)
    sk = SkPCA(n_components=3, svd_solver="full").fit(_flat(x))
    sk_rec = sk.inverse_transform(sk.transform(_flat(digits.x_test)))
    # clip=False is plain PCA, values outside [0, 1] included
    assert (sk_rec < 0).any() and (sk_rec > 1).any()
    np.testing.assert_allclose(_flat(plain), sk_rec, atol=1e-4)
    # clip=True is the same reconstruction clipped, and never worse in squared error
    np.testing.assert_array_equal(on.decode(z).numpy(), plain.clamp(0, 1).numpy())
    target = digits.x_test
    assert (on.decode(z) - target).pow(2).mean() < (plain - target).pow(2).mean()


def test_signs_are_deterministic(digits):
    """Eigenvectors are defined up to sign: the largest-magnitude loading is made positive, so
    the same data in another order gives the same components."""
    x = digits.x_train
    a = PCA(digits.shape, latent_dim=5)
    a.fit(x)
    b = PCA(digits.shape, latent_dim=5)
    b.fit(x[torch.randperm(len(x), generator=torch.Generator().manual_seed(3))])
    np.testing.assert_allclose(a.components.numpy(), b.components.numpy(), atol=1e-5)
    comps = a.components
    assert (comps[torch.arange(5), comps.abs().argmax(1)] > 0).all()


def test_constructible_on_meta_and_validates_there():
    spec = get_registry().model("pca").spec
    model = spec.create((1, 28, 28), device="meta", latent_dim=16, clip=False)
    assert model.device.type == "meta" and model.n_params == 784 * 17
    with pytest.raises(ValueError, match="unknown solver 'svd'; valid: auto, covariance"):
        spec.create((1, 28, 28), device="meta", solver="svd")
    with pytest.raises(ValueError, match="clip must be true or false, got 'yes'"):
        spec.create((1, 28, 28), device="meta", clip="yes")
    with pytest.raises(ValueError, match="latent_dim must be a positive integer, got 0"):
        spec.create((1, 28, 28), device="meta", latent_dim=0)


def test_documented_parameters():
    spec = get_registry().model("pca").spec
    assert spec.defaults() == {"latent_dim": 10, "clip": True, "solver": "auto"}
    assert all(spec.docs().values())
    assert "clips" in spec.description and "[0, 1]" in spec.description
