"""The packed IWAE/ELBO evaluation (issue 25) gives today's values for the same draws: the
functions below are the per-image-group implementation it replaced, kept verbatim as the
reference. Packing many images x samples into one decoder call (what CUDA gets) changes only
the float32 summation order inside the decoder."""

from __future__ import annotations

import math

import pytest
import torch

from vaebench.metrics import likelihood
from vaebench.metrics.likelihood import LOG_2PI, elbo_terms, iwae_log_likelihood, log_prior
from vaebench.models.vae import VAE
from vaebench.nn import gaussian_kl

# --- the implementation before issue 25 (vaebench/metrics/likelihood.py at 5947ffc) ---------


def _old_log_joint_terms(model, x, mean, logvar, k, generator):
    b, d = mean.shape
    eps = torch.randn(b, k, d, generator=generator, dtype=torch.float64)
    m, lv = mean.double()[:, None, :], logvar.double()[:, None, :]
    z = m + torch.exp(0.5 * lv) * eps
    log_q = (-0.5 * eps.pow(2) - 0.5 * lv - 0.5 * LOG_2PI).sum(-1)
    log_p = (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(-1)
    xs = x.to(model.device).repeat_interleave(k, 0)
    zs = z.reshape(b * k, d).to(device=model.device, dtype=torch.float32)
    llh = model.log_likelihood(xs, zs)
    return llh.detach().double().cpu().reshape(b, k), log_p - log_q


def old_iwae(model, x, mean, logvar, k, generator, batch_size=1024):
    chunk = min(k, batch_size)
    per = max(1, batch_size // chunk)
    log_p, elbo = [], []
    with torch.inference_mode():
        for i in range(0, x.shape[0], per):
            sl = slice(i, i + per)
            parts = []
            for start in range(0, k, chunk):
                n = min(chunk, k - start)
                llh, prior_q = _old_log_joint_terms(
                    model, x[sl], mean[sl], logvar[sl], n, generator
                )
                parts.append(llh + prior_q)
            log_w = torch.cat(parts, 1)
            log_p.append(torch.logsumexp(log_w, 1) - math.log(k))
            elbo.append(log_w.mean(1))
    return torch.cat(log_p), torch.cat(elbo)


def old_elbo(model, x, mean, logvar, samples, generator, batch_size=1024):
    chunk = min(samples, batch_size)
    per = max(1, batch_size // chunk)
    recon = []
    with torch.inference_mode():
        for i in range(0, x.shape[0], per):
            sl = slice(i, i + per)
            total = torch.zeros(x[sl].shape[0], dtype=torch.float64)
            for start in range(0, samples, chunk):
                n = min(chunk, samples - start)
                llh, _ = _old_log_joint_terms(model, x[sl], mean[sl], logvar[sl], n, generator)
                total += llh.sum(1)
            recon.append(total / samples)
    return torch.cat(recon), gaussian_kl(mean.double(), logvar.double())


# ---------------------------------------------------------------------------------------------


class Counting(VAE):
    """A VAE that counts its ``log_likelihood`` calls and the codes each saw."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[int] = []

    def log_likelihood(self, x, z):
        self.calls.append(int(z.shape[0]))
        return super().log_likelihood(x, z)


@pytest.fixture(scope="module")
def setup(digits):
    torch.manual_seed(0)
    model = Counting(digits.shape, latent_dim=4, hidden=(32,))
    x = digits.x_test[:37]
    mean, logvar = model.posterior(x)
    return model, x, mean, logvar


CASES = [(1000, 1024), (7, 16), (40, 16), (5, 1024), (1, 8)]


@pytest.mark.parametrize(("k", "batch"), CASES)
def test_iwae_equals_the_previous_implementation_for_the_same_draws(setup, k, batch):
    model, x, mean, logvar = setup
    old = old_iwae(model, x, mean, logvar, k, torch.Generator().manual_seed(5), batch)
    new = iwae_log_likelihood(model, x, mean, logvar, k, torch.Generator().manual_seed(5), batch)
    # on the CPU the calls hold the same codes as before: bit for bit
    assert torch.equal(old[0], new[0]) and torch.equal(old[1], new[1])


@pytest.mark.parametrize(("k", "batch"), CASES)
def test_elbo_equals_the_previous_implementation_for_the_same_draws(setup, k, batch):
    model, x, mean, logvar = setup
    old = old_elbo(model, x, mean, logvar, k, torch.Generator().manual_seed(9), batch)
    new = elbo_terms(model, x, mean, logvar, k, torch.Generator().manual_seed(9), batch)
    assert torch.equal(old[0], new[0]) and torch.equal(old[1], new[1])


@pytest.mark.parametrize(("k", "batch"), CASES)
def test_packed_calls_hold_many_images_and_change_only_summation_order(setup, monkeypatch, k,
                                                                       batch):  # fmt: skip
    """With the CUDA packing (here forced to 512 codes a call on the CPU) a call holds many
    images x samples, no call exceeds the budget unless one draw unit does, and the values
    agree with the previous implementation to float32 rounding of log p(x|z)."""
    model, x, mean, logvar = setup
    monkeypatch.setattr(likelihood, "_codes_per_call", lambda m, xx, b: max(b, 512))
    old = old_iwae(model, x, mean, logvar, k, torch.Generator().manual_seed(5), batch)
    model.calls.clear()
    new = iwae_log_likelihood(model, x, mean, logvar, k, torch.Generator().manual_seed(5), batch)
    assert sum(model.calls) == x.shape[0] * k
    assert max(model.calls) <= max(512, min(k, batch) * max(1, batch // min(k, batch)))
    if k * x.shape[0] >= 2 * 512 and k <= 512:
        assert min(model.calls[:-1]) > 512 - max(k, batch), model.calls  # full calls
    scale = old[0].abs().max()
    assert torch.allclose(old[0], new[0], rtol=0, atol=1e-5 * float(scale))
    assert torch.allclose(old[1], new[1], rtol=0, atol=1e-5 * float(scale))


def test_cpu_calls_see_at_most_eval_batch_size_codes(setup):
    model, x, mean, logvar = setup
    model.calls.clear()
    iwae_log_likelihood(model, x, mean, logvar, 100, torch.Generator().manual_seed(0), 256)
    assert max(model.calls) <= 256 and sum(model.calls) == x.shape[0] * 100
    assert len(model.calls) == math.ceil(x.shape[0] / 2)  # 2 images x 100 samples a call


def test_log_prior_is_the_standard_normal_density():
    z = torch.randn(3, 5, 4, dtype=torch.float64)
    ref = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    assert torch.allclose(log_prior(z), ref, atol=1e-12)


def test_cuda_budget_is_many_codes_per_call():
    class Fake:
        device = torch.device("cuda")

    x = torch.zeros(2, 1, 28, 28)
    per_call = likelihood._codes_per_call(Fake(), x, 1024)
    assert per_call == likelihood.CUDA_CALL_BYTES // (4 * 784) > 100 * 1024
