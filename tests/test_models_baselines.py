"""The baselines of issue 22 (iwae, vamp, rae, wae, beta-vae): each objective against the
paper's formula on a hand-computable case and against the reference implementation pythae
(clementchadebec/benchmark_VAE, src/pythae/models/...), ported here on the same inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from vaebench.metrics.likelihood import elbo_terms, iwae_log_likelihood, standard_prior
from vaebench.models.regularised import RAE, RAEGP, WAE
from vaebench.models.vae import VAE
from vaebench.models.variational import IWAE, BetaVAE, VampVAE, iwae_bound
from vaebench.nn import gaussian_kl, imq_kernel, mmd_unbiased, reconstruction_loss
from vaebench.plugins import get_registry

SHAPE = (1, 4, 4)


def _binary(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *SHAPE, generator=g) > 0.5).float()


def _log_normal(z: np.ndarray, mean: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """log N(z; mean, diag(exp(logvar))) summed over the last axis, float64 (by hand)."""
    var = np.exp(logvar)
    return (-0.5 * np.log(2 * np.pi * var) - (z - mean) ** 2 / (2 * var)).sum(-1)


# ----------------------------------------------------------------------------- registry


def test_the_new_models_are_built_in_with_their_hyperparameters():
    reg = get_registry()
    for name, key, default in [
        ("iwae", "k", 5),
        ("vamp", "pseudo_inputs", 500),
        ("rae", "code_weight", 1e-4),
        ("rae", "decoder_weight_decay", 1e-7),
        ("wae", "mmd_weight", 10.0),
        ("beta-vae", "beta", 4.0),
    ]:
        spec = reg.model(name).spec
        assert spec.defaults()[key] == default, name
        assert spec.docs()[key], (name, key)
        assert reg.model(name).plugin.startswith("vaebench.models."), name
    # the IWAE's objective is the unweighted bound: no beta, no warm-up to set
    assert not {"beta", "kl_warmup_epochs"} & set(reg.model("iwae").spec.defaults())
    for name, bad in [("iwae", {"k": 0}), ("vamp", {"pseudo_inputs": 0}),
                      ("rae", {"code_weight": -1.0}), ("wae", {"mmd_weight": float("nan")})]:  # fmt: skip
        with pytest.raises(ValueError, match=next(iter(bad))):
            reg.model(name).spec.create(SHAPE, **bad)


def test_tags_say_which_models_have_a_posterior_and_a_prior():
    tags = {
        cls.__name__: cls(SHAPE, hidden=(8,), latent_dim=2).tags
        for cls in (IWAE, VampVAE, RAE, WAE, BetaVAE)
    }
    assert tags["RAE"].can_sample is False and tags["RAE"].has_posterior is False
    assert tags["WAE"].can_sample is True and tags["WAE"].has_posterior is False
    for name in ("IWAE", "VampVAE", "BetaVAE"):
        assert tags[name].can_sample and tags[name].has_posterior and tags[name].likelihood


# ----------------------------------------------------------------------------- IWAE


def test_iwae_bound_on_a_hand_computable_case():
    # log w = (log 1, log 3): log (1/2)(1 + 3) = log 2
    zeros = torch.zeros(1, 2, dtype=torch.float64)
    log_px = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)
    assert float(iwae_bound(log_px, zeros, zeros)) == pytest.approx(math.log(2.0), abs=1e-12)
    # K = 1: the bound is the single log-weight
    one = torch.tensor([[-2.5]], dtype=torch.float64)
    assert float(iwae_bound(one, one, one)) == pytest.approx(-2.5, abs=1e-12)


def _pythae_iwae_estimate(log_px_z, z, mu, log_var):
    """pythae's importance-sampled log p(x) (src/pythae/models/vamp/vamp_model.py,
    ``get_nll``; the VAE's ``get_nll`` is the same with the N(0, I) prior): per draw
    ``log p(x|z) + log p(z) - log q(z|x)`` with ``log q = -0.5 sum (log_var + (z - mu)^2 /
    exp(log_var))`` and ``log p(z) = -0.5 sum z^2`` (the 2 pi constants cancel), then
    ``logsumexp - log(n_samples)``. Ported for one image: ``(K,)`` and ``(K, d)`` tensors."""
    log_q = -0.5 * (log_var + (z - mu) ** 2 / torch.exp(log_var)).sum(dim=-1)
    log_p_z = -0.5 * (z**2).sum(dim=-1)
    log_p_x = log_px_z + log_p_z - log_q
    return torch.logsumexp(log_p_x, 0) - np.log(len(log_p_x))


def test_iwae_loss_is_the_k_sample_bound_as_pythae_estimates_it():
    torch.manual_seed(0)
    k, n, d = 7, 3, 2
    model = IWAE(SHAPE, hidden=(8,), latent_dim=d, k=k)
    x = _binary(n)
    model.train()
    torch.manual_seed(11)
    loss = float(model.loss(x)["loss"].detach())
    # the same draws by hand: the loss draws eps (n, k, d) right after the encoder pass
    torch.manual_seed(11)
    with torch.no_grad():
        mean, logvar = model.split(model.encoder_outputs(x))
        eps = torch.randn(n, k, d)
        z = mean[:, None] + torch.exp(0.5 * logvar)[:, None] * eps
        logits = model.decoder_logits(z.reshape(n * k, d)).reshape(n, k, -1)
    ours, theirs = [], []
    for i in range(n):
        xi = x[i].reshape(1, -1).double().numpy()
        p = torch.sigmoid(logits[i].double()).numpy()
        log_px = (xi * np.log(p) + (1 - xi) * np.log(1 - p)).sum(-1)  # Bernoulli, by hand
        zi = z[i].double().numpy()
        m, lv = mean[i].double().numpy(), logvar[i].double().numpy()
        log_w = log_px + _log_normal(zi, 0.0, np.zeros(d)) - _log_normal(zi, m, lv)
        ours.append(np.log(np.mean(np.exp(log_w))))
        theirs.append(
            float(
                _pythae_iwae_estimate(
                    torch.from_numpy(log_px), z[i].double(), mean[i].double(), logvar[i].double()
                )
            )  # fmt: skip
        )
    assert loss == pytest.approx(-np.mean(ours), rel=1e-5)
    assert loss == pytest.approx(-np.mean(theirs), rel=1e-5)


def test_iwae_with_one_sample_trains_the_vae_objective_in_expectation():
    """pythae's IWAE ``loss_function`` (src/pythae/models/iwae/iwae_model.py) uses the closed-form
    KL for every draw and weights draws by ``softmax(recon + KL)``, the negative log-weights --
    not eq. 8 of Burda et al.; at K = 1 its weight is 1 and it is the VAE's negative ELBO, which
    our K = 1 loss (a Monte-Carlo KL) estimates without bias. Checked over many draws."""
    torch.manual_seed(1)
    model = IWAE(SHAPE, hidden=(8,), latent_dim=2, k=1)
    x = _binary(1).repeat(4000, 1, 1, 1)
    model.train()
    with torch.no_grad():
        ours = float(model.loss(x)["loss"])
        mean, logvar = model.split(model.encoder_outputs(x))
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        recon_x = torch.sigmoid(model.decoder_logits(z))
        recon = F.binary_cross_entropy(recon_x, x.reshape(x.shape[0], -1), reduction="none")
        kld = -0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp(), dim=-1)
        log_w = (recon.sum(-1) + kld).reshape(x.shape[0], 1)
        pythae = float((F.softmax(log_w, dim=-1) * log_w).sum(dim=-1).mean(dim=0))
    assert ours == pytest.approx(pythae, abs=0.05)


# ----------------------------------------------------------------------------- VampPrior


def _pythae_vamp_log_p_z(z, prior_mu, prior_log_var):
    """pythae's ``VAMP._log_p_z`` (src/pythae/models/vamp/vamp_model.py), ported: note its
    bracket ``-0.5 * (log_var + (z - mu)^2) / exp(log_var)`` divides the log-variance too, and
    the 2 pi constant is left out; both agree with the paper only for unit variances."""
    c = prior_mu.shape[0]
    z_expand, mu, lv = z.unsqueeze(1), prior_mu.unsqueeze(0), prior_log_var.unsqueeze(0)
    log_p_z = torch.sum(-0.5 * (lv + (z_expand - mu) ** 2) / lv.exp(), dim=2) - torch.log(
        torch.tensor(c).type(torch.float64)
    )
    return torch.logsumexp(log_p_z, dim=1)


def test_vamp_prior_is_the_mixture_of_posteriors_at_the_pseudo_inputs():
    torch.manual_seed(0)
    model = VampVAE(SHAPE, hidden=(8,), latent_dim=2, pseudo_inputs=3)
    z = torch.randn(5, 2, dtype=torch.float64)
    got = model.log_prior(z).detach()
    assert got.dtype == torch.float64 and got.shape == (5,)
    with torch.no_grad():
        u = F.hardtanh(model.pseudo, 0.0, 1.0)
        m, lv = (t.double().numpy() for t in model.posterior(u))
    zz = z.numpy()[:, None, :]
    by_hand = np.log(np.exp(_log_normal(zz, m[None], lv[None])).mean(1))  # 1/K sum_k N(z; ..)
    np.testing.assert_allclose(got.numpy(), by_hand, rtol=1e-5)


def test_vamp_log_density_matches_pythae_where_pythae_is_right():
    mu = torch.tensor([[0.0, 0.0], [2.0, -1.0]], dtype=torch.float64)
    z = torch.tensor([[0.5, 0.5], [1.0, -1.0], [3.0, 0.0]], dtype=torch.float64)
    # unit variances: the only case pythae's bracket gives the paper's density (+ the constant)
    lv = torch.zeros_like(mu)
    from vaebench.nn import gaussian_log_density

    ours = torch.logsumexp(gaussian_log_density(z[:, None], mu[None], lv[None]), 1) - math.log(2)
    theirs = _pythae_vamp_log_p_z(z, mu, lv) - math.log(2 * math.pi)  # d/2 log 2pi, d = 2
    torch.testing.assert_close(ours, theirs)
    # hand-computable: z = 0 with components at 0 and (2, -1): log((e^0 + e^-2.5) / 2 / (2 pi))
    want = math.log((1 + math.exp(-2.5)) / 2) - math.log(2 * math.pi)
    assert float(ours[0]) != pytest.approx(want)  # z[0] is (0.5, 0.5), not 0
    zero = torch.zeros(1, 2, dtype=torch.float64)
    at0 = torch.logsumexp(gaussian_log_density(zero[:, None], mu[None], lv[None]), 1) - math.log(2)
    assert float(at0) == pytest.approx(want, abs=1e-12)


def test_vamp_likelihood_metrics_use_its_own_prior():
    torch.manual_seed(0)
    model = VampVAE(SHAPE, hidden=(8,), latent_dim=2, pseudo_inputs=4, epochs=2, batch_size=8)
    x = _binary(16)
    model.fit(x)
    assert not standard_prior(model) and standard_prior(VAE(SHAPE, hidden=(8,)))
    mean, logvar = model.posterior(x)
    g = torch.Generator().manual_seed(3)
    log_p, _ = iwae_log_likelihood(model, x, mean, logvar, 1, g)
    # by hand with the same draws: log p(x|z) + log p_vamp(z) - log q(z|x)
    g = torch.Generator().manual_seed(3)
    eps = torch.randn(16, 1, 2, generator=g, dtype=torch.float64)[:, 0]
    z = mean.double() + torch.exp(0.5 * logvar.double()) * eps
    with torch.no_grad():
        want = (
            model.log_likelihood(x, z.float()).double()
            + model.log_prior(z)
            - torch.from_numpy(
                _log_normal(z.numpy(), mean.double().numpy(), logvar.double().numpy())
            )  # fmt: skip
        )
    torch.testing.assert_close(log_p, want, rtol=1e-5, atol=1e-4)
    # the ELBO's KL is then by Monte Carlo, not the closed form to N(0, I)
    g = torch.Generator().manual_seed(3)
    _, kl = elbo_terms(model, x, mean, logvar, 1, g)
    torch.testing.assert_close(kl, (-(want - model.log_likelihood(x, z.float()).double())),
                               rtol=1e-5, atol=1e-4)  # fmt: skip
    assert not torch.allclose(kl, gaussian_kl(mean.double(), logvar.double()))


def test_vamp_uses_fewer_pseudo_inputs_on_a_small_training_set_and_reloads():
    torch.manual_seed(0)
    model = VampVAE(SHAPE, hidden=(8,), latent_dim=2, pseudo_inputs=50, epochs=1, batch_size=4)
    report = model.fit(_binary(12))
    assert model.pseudo.shape[0] == 12 and report.history["pseudo_inputs_used"] == [12.0]
    fresh = VampVAE(SHAPE, hidden=(8,), latent_dim=2, pseudo_inputs=50)
    fresh.load_state_dict(model.state_dict())
    x = _binary(5, seed=1)
    torch.testing.assert_close(fresh.encode(x), model.encode(x))
    z = torch.randn(3, 2, dtype=torch.float64)
    torch.testing.assert_close(fresh.log_prior(z).detach(), model.log_prior(z).detach())


# ----------------------------------------------------------------------------- RAE


def _pythae_rae_loss(recon_x, x, z, embedding_weight):
    """pythae's ``RAE_L2.loss_function`` (src/pythae/models/rae_l2/rae_l2_model.py), ported."""
    recon_loss = F.mse_loss(
        recon_x.reshape(x.shape[0], -1), x.reshape(x.shape[0], -1), reduction="none"
    ).sum(dim=-1)
    embedding_loss = 0.5 * torch.linalg.norm(z, dim=-1) ** 2
    return (recon_loss + embedding_weight * embedding_loss).mean(dim=0)


def test_rae_loss_matches_pythae_and_the_paper():
    torch.manual_seed(0)
    model = RAE(SHAPE, hidden=(8,), latent_dim=3, code_weight=0.3, recon_loss="mse")
    x = torch.rand(6, *SHAPE)
    with torch.no_grad():
        got = model.loss(x)
        z = model.encode(x)
        recon_x = model.decode(z)
    want = _pythae_rae_loss(recon_x, x, z, 0.3)
    assert float(got["loss"]) == pytest.approx(float(want), rel=1e-6)
    # by hand: mean sum of squares + beta/2 |z|^2
    hand = ((recon_x - x) ** 2).sum((1, 2, 3)) + 0.15 * (z**2).sum(1)
    assert float(got["loss"]) == pytest.approx(float(hand.mean()), rel=1e-6)


def test_rae_decays_only_the_decoder_weights():
    model = RAE(SHAPE, hidden=(8,), latent_dim=2, decoder_weight_decay=0.5, weight_decay=0.1)
    opt = model.configure_optimizer()
    decays = {}
    for group in opt.param_groups:
        for p in group["params"]:
            decays[id(p)] = group["weight_decay"]
    assert {decays[id(p)] for p in model.decoder.parameters()} == {0.6}
    assert {decays[id(p)] for p in model.encoder.parameters()} == {0.1}


# ----------------------------------------------------------------------------- WAE


def _pythae_wae_mmd(z, z_prior, latent_dim, kernel_bandwidth=1.0, scales=(1.0,)):
    """pythae's WAE_MMD MMD term with the imq kernel (src/pythae/models/wae_mmd/
    wae_mmd_model.py, ``loss_function`` and ``imq_kernel``), ported."""

    def imq(z1, z2):
        cbase = 2.0 * latent_dim * kernel_bandwidth**2
        k = 0
        for scale in scales:
            c = scale * cbase
            k += c / (c + torch.norm(z1.unsqueeze(1) - z2.unsqueeze(0), dim=-1) ** 2)
        return k

    n = z.shape[0]
    k_z, k_z_prior, k_cross = imq(z, z), imq(z_prior, z_prior), imq(z, z_prior)
    mmd_z = (k_z - k_z.diag()).sum() / (n - 1)
    mmd_z_prior = (k_z_prior - k_z_prior.diag()).sum() / (n - 1)
    mmd_cross = k_cross.sum() / n
    return mmd_z + mmd_z_prior - 2 * mmd_cross


def test_mmd_on_a_hand_computable_case():
    # d = 1, C = 1: z = (0, 1), prior draws = (0, 2)
    z = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    p = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
    k = imq_kernel(z, p, 1.0)
    torch.testing.assert_close(k, torch.tensor([[1.0, 0.2], [0.5, 0.5]], dtype=torch.float64))
    # off-diagonal means: k(0,1) = 1/2, k(0,2) = 1/5; cross mean (1 + 1/5 + 1/2 + 1/2) / 4
    want = 0.5 + 0.2 - 2 * (1 + 0.2 + 0.5 + 0.5) / 4
    assert float(mmd_unbiased(z, p, 1.0)) == pytest.approx(want, abs=1e-12)


def test_mmd_matches_pythae_up_to_its_scaling():
    """pythae subtracts the diagonal *vector* from every row and divides by n - 1 (not n(n-1)):
    with the imq kernel (k(a, a) = 1 per scale) its term is ``n * MMD_unbiased - 2 n``, the same
    gradient up to the factor n (so pythae's ``reg_weight`` is our ``mmd_weight / n``)."""
    g = torch.Generator().manual_seed(0)
    for n, d in [(5, 2), (16, 8)]:
        z = torch.randn(n, d, generator=g, dtype=torch.float64) * 1.3 + 0.2
        p = torch.randn(n, d, generator=g, dtype=torch.float64)
        ours = float(mmd_unbiased(z, p, 2.0 * d))
        assert float(_pythae_wae_mmd(z, p, d)) == pytest.approx(n * ours - 2 * n, rel=1e-9)


def test_wae_loss_is_reconstruction_plus_weighted_mmd_to_the_prior():
    torch.manual_seed(0)
    model = WAE(SHAPE, hidden=(8,), latent_dim=3, mmd_weight=2.5)
    x = _binary(8)
    torch.manual_seed(5)
    with torch.no_grad():
        got = model.loss(x)
    torch.manual_seed(5)
    with torch.no_grad():
        z = model.code(model.encoder_outputs(x))
        rec = reconstruction_loss(model.decoder_logits(z), x).mean()
        prior = torch.randn_like(z)
    mmd = mmd_unbiased(z, prior, 6.0)
    assert float(got["loss"]) == pytest.approx(float(rec + 2.5 * mmd), rel=1e-6)
    assert float(got["mmd"]) == pytest.approx(float(mmd), rel=1e-6)


# ----------------------------------------------------------------------------- beta-VAE


def test_beta_vae_is_the_vae_with_beta_4_as_pythae_defines_it():
    """pythae's ``BetaVAE.loss_function`` (src/pythae/models/beta_vae/beta_vae_model.py):
    ``recon + beta * KLD`` with the closed-form KL, averaged over the batch."""
    torch.manual_seed(0)
    model = BetaVAE(SHAPE, hidden=(8,), latent_dim=2)
    assert model.beta == 4.0
    x = _binary(6)
    torch.manual_seed(2)
    with torch.no_grad():
        got = float(model.loss(x)["loss"])
    torch.manual_seed(2)
    with torch.no_grad():
        mu, log_var = model.split(model.encoder_outputs(x))
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        recon_x = torch.sigmoid(model.decoder_logits(z))
        recon = F.binary_cross_entropy(recon_x, x.reshape(6, -1), reduction="none").sum(-1)
        kld = -0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp(), dim=-1)
    assert got == pytest.approx(float((recon + 4.0 * kld).mean(0)), rel=1e-5)


def test_rae_gp_penalises_the_decoder_s_gradient_at_the_codes():
    torch.manual_seed(0)
    model = RAEGP(SHAPE, hidden=(8,), latent_dim=2, gp_weight=0.5, code_weight=0.1)
    assert model.decoder_weight_decay == 0.0
    x = _binary(4)
    got = model.loss(x)
    # by hand: the Jacobian of the decoder's logits, summed over pixels, per code
    z = model.encode(x).clone().requires_grad_(True)
    with torch.enable_grad():
        jac = torch.stack([torch.autograd.functional.jacobian(
            lambda v: model.decoder_logits(v[None]).sum(), zi) for zi in z])  # fmt: skip
    want_gp = float(jac.pow(2).sum(1).mean())
    assert float(got["grad_penalty"].detach()) == pytest.approx(want_gp, rel=1e-5)
    rec = float(got["recon"].detach())
    want = rec + 0.1 * 0.5 * float(z.detach().pow(2).sum(1).mean()) + 0.5 * want_gp
    assert float(got["loss"].detach()) == pytest.approx(want, rel=1e-5)
    got["loss"].backward()  # the penalty is differentiable (create_graph)
    assert all(p.grad is not None for p in model.decoder.parameters())
