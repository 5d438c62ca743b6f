"""beta-tcvae, dip-vae, factorvae: objectives against the papers' formulas and a port of
google-research/disentanglement_lib ``disentanglement_lib/methods/unsupervised/vae.py``
(commit 86a644d4ed35c771560dc3360756363d35477357: ``gaussian_log_density``,
``total_correlation``, ``compute_covariance_z_mean``, ``regularize_diag_off_diag_dip``,
``DIPVAE.regularizer``, ``FactorVAE.model_fn``, ``shuffle_codes``), in NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from vaebench.models import disentangle as dm
from vaebench.models.vae import VAE

# ----------------------------------------------------------------------------- the port


def port_gaussian_log_density(samples, mean, log_var):
    return -0.5 * ((samples - mean) ** 2 * np.exp(-log_var) + log_var + np.log(2.0 * np.pi))


def port_total_correlation(z, z_mean, z_logvar):  # drops the constants, as the original
    log_qz_prob = port_gaussian_log_density(z[:, None, :], z_mean[None], z_logvar[None])
    log_qz_product = np.sum(logsumexp(log_qz_prob, axis=1), axis=1)
    log_qz = logsumexp(np.sum(log_qz_prob, axis=2), axis=1)
    return np.mean(log_qz - log_qz_product)


def port_dip(z_mean, z_logvar, lambda_od, lambda_d_factor, dip_type):
    e_zzt = np.mean(z_mean[:, :, None] * z_mean[:, None, :], axis=0)
    e_z = np.mean(z_mean, axis=0)
    cov = e_zzt - e_z[:, None] * e_z[None, :]
    if dip_type == "ii":
        cov = np.mean(np.stack([np.diag(v) for v in np.exp(z_logvar)]), axis=0) + cov
    diag = np.diag(cov)
    off = cov - np.diag(diag)
    return lambda_od * np.sum(off**2) + lambda_d_factor * lambda_od * np.sum((diag - 1) ** 2)


def port_factorvae_losses(logits_z, logits_shuffle):
    """FactorVAE.model_fn: tc_loss and the discriminator's objective (minimised: -discr)."""
    probs_z = np.exp(logits_z - logsumexp(logits_z, axis=1, keepdims=True))
    probs_s = np.exp(logits_shuffle - logsumexp(logits_shuffle, axis=1, keepdims=True))
    tc = np.mean(logits_z[:, 0] - logits_z[:, 1])
    discr = 0.5 * np.mean(np.log(probs_z[:, 0])) + 0.5 * np.mean(np.log(probs_s[:, 1]))
    return tc, -discr


def paper_mws_tc(z, mean, logvar, n_data):
    """Chen et al. 2018, minibatch-weighted sampling, written with explicit loops:
    log q(z_i) ~ log sum_j q(z_i|x_j) - log(N M), the same per dimension."""
    m, d = z.shape
    out = []
    for i in range(m):
        dens = [np.exp(port_gaussian_log_density(z[i], mean[j], logvar[j])) for j in range(m)]
        joint = np.log(sum(np.prod(q) for q in dens)) - np.log(n_data * m)
        marg = sum(np.log(sum(q[k] for q in dens)) - np.log(n_data * m) for k in range(d))
        out.append(joint - marg)
    return np.mean(out)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ----------------------------------------------------------------------------- beta-tc-vae


def test_total_correlation_equals_port_and_paper():
    z, mean, logvar = rand(16, 5, seed=1), rand(16, 5, seed=2), 0.3 * rand(16, 5, seed=3)
    ours = float(dm.total_correlation(*(torch.from_numpy(a) for a in (z, mean, logvar)), 1000))
    const = (5 - 1) * math.log(1000 * 16)
    assert ours == pytest.approx(port_total_correlation(z, mean, logvar) + const, rel=1e-10)
    assert ours == pytest.approx(paper_mws_tc(z, mean, logvar, 1000), rel=1e-8)


def _seeded_loss(model, x, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.loss(x)


def test_beta_tcvae_loss_is_elbo_plus_weighted_tc():
    x = torch.rand(12, 1, 8, 8)
    kw = {"latent_dim": 3, "hidden": (16,), "recon_loss": "bce"}
    torch.manual_seed(0)
    tc_model = dm.BetaTCVAE((1, 8, 8), beta=4.0, **kw)
    torch.manual_seed(0)
    vae = VAE((1, 8, 8), **kw)
    out, ref = _seeded_loss(tc_model, x), _seeded_loss(vae, x)
    assert float(out["recon"]) == pytest.approx(float(ref["recon"]), rel=1e-6)
    assert float(out["kl"]) == pytest.approx(float(ref["kl"]), rel=1e-6)
    expect = out["recon"] + out["kl"] + 3.0 * out["tc"]
    assert float(out["loss"]) == pytest.approx(float(expect), rel=1e-6)
    # beta = 1: the VAE's objective
    torch.manual_seed(0)
    one = dm.BetaTCVAE((1, 8, 8), beta=1.0, **kw)
    assert float(_seeded_loss(one, x)["loss"]) == pytest.approx(float(ref["loss"]), rel=1e-6)


# ----------------------------------------------------------------------------- dip-vae


@pytest.mark.parametrize("dip_type,factor", [("i", 10.0), ("ii", 1.0)])
def test_dip_regularizer_equals_port(dip_type, factor):
    mean, logvar = rand(32, 4, seed=4), 0.5 * rand(32, 4, seed=5)
    ours = dm.dip_regularizer(torch.from_numpy(mean), torch.from_numpy(logvar), 5.0,
                              5.0 * factor, dip_type)  # fmt: skip
    assert float(ours) == pytest.approx(port_dip(mean, logvar, 5.0, factor, dip_type), rel=1e-10)


def test_dip_regularizer_textbook():
    """Codes with identity covariance cost nothing (type i); type ii adds the posterior
    variance to the diagonal."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 3, generator=g, dtype=torch.float64)
    z = (z - z.mean(0)) @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(z.T, correction=0))).T
    lv = torch.full_like(z, -50.0)
    assert float(dm.dip_regularizer(z, lv, 1.0, 1.0, "i")) < 1e-12
    lv0 = torch.zeros_like(z)  # variance 1 on top: diagonal 2, penalty 3 * (2 - 1)^2
    assert float(dm.dip_regularizer(z, lv0, 1.0, 1.0, "ii")) == pytest.approx(3.0, abs=1e-9)


def test_dip_vae_loss_and_options():
    x = torch.rand(10, 1, 8, 8)
    m = dm.DIPVAE((1, 8, 8), latent_dim=3, hidden=(16,), lambda_od=2.0, lambda_d_factor=3.0)
    with torch.no_grad():
        out = m.loss(x)
    assert float(out["loss"]) == pytest.approx(float(out["recon"] + out["kl"] + out["dip"]))
    assert m.lambda_d == 6.0
    with pytest.raises(ValueError, match="dip_type"):
        dm.DIPVAE((1, 8, 8), dip_type="iii")


# ----------------------------------------------------------------------------- factorvae


def test_permute_dims_permutes_each_column():
    z = torch.arange(40.0).reshape(10, 4)
    p = dm.permute_dims(z)
    for j in range(4):
        assert sorted(p[:, j].tolist()) == z[:, j].tolist()


class TwoLogit(torch.nn.Module):
    """disentanglement_lib's discriminator shape: two logits; vaebench's is their difference."""

    def __init__(self, d):
        super().__init__()
        self.net = torch.nn.Linear(d, 2)

    def forward(self, z):
        out = self.net(z)
        return (out[:, 0] - out[:, 1])[:, None]


def test_factorvae_losses_equal_port(monkeypatch):
    torch.manual_seed(0)
    m = dm.FactorVAE((1, 8, 8), latent_dim=3, hidden=(16,), gamma=7.0, disc_width=8, disc_depth=1)
    m.discriminator = TwoLogit(3)
    perm = torch.tensor([3, 1, 4, 0, 2, 5])
    monkeypatch.setattr(dm, "permute_dims", lambda z: z[perm])
    x = torch.rand(6, 1, 8, 8)
    torch.manual_seed(1)
    with torch.no_grad():
        out = m.loss(x)
    torch.manual_seed(1)
    mean, logvar = m.split(m.encoder_outputs(x))
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    with torch.no_grad():
        lz = m.discriminator.net(z).double().numpy()
        ls = m.discriminator.net(z[perm]).double().numpy()
    tc, disc = port_factorvae_losses(lz, ls)
    assert float(out["tc"]) == pytest.approx(tc, rel=1e-5)
    assert float(out["disc_loss"]) == pytest.approx(disc, rel=1e-5)
    expect = out["recon"] + out["kl"] + 7.0 * out["tc"]
    assert float(out["loss"]) == pytest.approx(float(expect), rel=1e-6)


def test_factorvae_trains_two_optimisers_and_saves_the_discriminator(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8)
    m = dm.FactorVAE((1, 8, 8), latent_dim=3, hidden=(16,), epochs=2, batch_size=16,
                     disc_width=16, disc_depth=2)  # fmt: skip
    steps = m.configure_optimizers()
    assert [s.name for s in steps] == ["vae", "discriminator"]
    assert steps[1].optimizer.defaults["betas"] == (0.5, 0.9)
    before_d = [p.detach().clone() for p in m.discriminator.parameters()]
    before_e = [p.detach().clone() for p in m.encoder.parameters()]
    report = m.fit(x)
    assert {"loss", "disc_loss", "tc"} <= set(report.history)
    assert any(
        not torch.equal(a, b) for a, b in zip(before_d, m.discriminator.parameters(), strict=True)
    )
    assert any(not torch.equal(a, b) for a, b in zip(before_e, m.encoder.parameters(), strict=True))
    assert any(k.startswith("discriminator.") for k in m.state_dict())
    z1, z2 = m.encode(x[:5]), m.encode(x[:5])
    assert torch.equal(z1, z2)


def test_models_are_registered_with_their_defaults():
    from vaebench.plugins import get_registry

    reg = get_registry()
    specs = {n: reg.models[n].spec for n in ("beta-tcvae", "dip-vae", "factorvae")}
    assert specs["beta-tcvae"].defaults()["beta"] == 6.0
    assert specs["dip-vae"].defaults()["lambda_od"] == 10.0
    assert specs["factorvae"].defaults()["gamma"] == 40.0
    assert specs["factorvae"].defaults()["disc_depth"] == 6
