"""The likelihood metrics (``elbo``, ``iwae``) against a VAE whose likelihood is known exactly.

The linear-Gaussian model: ``p(z) = N(0, I_d)``, ``p(x|z) = N(W z + b, s^2 I_D)``, so
``p(x) = N(b, W W^T + s^2 I)`` and the exact posterior is ``N(M^-1 W^T (x - b), s^2 M^-1)`` with
``M = W^T W + s^2 I`` (diagonal here: W has orthogonal columns). Its ELBO under any diagonal
Gaussian ``q`` has a closed form too, so every estimate below is compared with an exact number.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import Tensor

from vaebench.config import RunConfig
from vaebench.dataset import Dataset
from vaebench.errors import ConfigError
from vaebench.metric import EvalContext
from vaebench.metrics.likelihood import (
    BOUNDS,
    Elbo,
    Iwae,
    bits_per_dim,
    elbo_terms,
    iwae_log_likelihood,
)
from vaebench.model import FitReport, Model
from vaebench.nn import gaussian_kl
from vaebench.testing import check_metric

D, LATENT = 6, 2


class LinearGaussian(Model):
    """The linear-Gaussian VAE; ``q_shift``/``q_log_scale`` perturb the exact posterior's mean
    (by ``q_shift`` posterior standard deviations) and log standard deviation."""

    likelihood_name = "gaussian"

    def __init__(self, q_shift: float = 0.0, q_log_scale: float = 0.0) -> None:
        self.input_shape, self.latent_dim = (1, 1, D), LATENT
        g = torch.Generator().manual_seed(3)
        u, _ = torch.linalg.qr(torch.randn(D, LATENT, generator=g, dtype=torch.float64))
        self.w = u * torch.tensor([0.25, 0.15], dtype=torch.float64)
        self.b = torch.full((D,), 0.5, dtype=torch.float64)
        self.s = 0.1
        self.q_shift, self.q_log_scale = q_shift, q_log_scale

    # exact quantities (float64)
    def exact_posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m = self.w.T @ self.w + self.s**2 * torch.eye(LATENT, dtype=torch.float64)
        mean = (x.reshape(x.shape[0], -1).double() - self.b) @ self.w @ torch.linalg.inv(m).T
        var = self.s**2 / torch.diagonal(m)
        return mean, var.log().expand_as(mean)

    def exact_log_px(self, x: Tensor) -> Tensor:
        cov = self.w @ self.w.T + self.s**2 * torch.eye(D, dtype=torch.float64)
        dist = torch.distributions.MultivariateNormal(self.b, covariance_matrix=cov)
        return dist.log_prob(x.reshape(x.shape[0], -1).double())

    def exact_elbo(self, x: Tensor) -> Tensor:
        mean, logvar = (t.double() for t in self.posterior(x))
        xf = x.reshape(x.shape[0], -1).double()
        resid = xf - mean @ self.w.T - self.b
        trace = (logvar.exp() * (self.w**2).sum(0)).sum(1)
        recon = -0.5 * D * math.log(2 * math.pi * self.s**2) - (resid.pow(2).sum(1) + trace) / (
            2 * self.s**2
        )
        return recon - gaussian_kl(mean, logvar)

    # the model contract
    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.exact_posterior(x)
        mean = mean + self.q_shift * torch.exp(0.5 * logvar)
        return mean.float(), (logvar + 2 * self.q_log_scale).float()

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        mu = z.double() @ self.w.T + self.b
        dist = torch.distributions.Normal(mu, self.s)
        return dist.log_prob(x.reshape(x.shape[0], -1).double()).sum(1).float()

    def fit(self, x, y=None, progress=None) -> FitReport:
        return FitReport({"loss": [0.0]}, 0.0, 0, 0)

    def encode(self, x: Tensor) -> Tensor:
        return self.posterior(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        return (z.double() @ self.w.T + self.b).clamp(0, 1).float().reshape(-1, 1, 1, D)

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


def data(n: int = 300, seed: int = 0) -> Tensor:
    """Draws of the model's own p(x) (clipped to [0, 1], which they almost never leave)."""
    m = LinearGaussian()
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, LATENT, generator=g, dtype=torch.float64)
    x = z @ m.w.T + m.b + m.s * torch.randn(n, D, generator=g, dtype=torch.float64)
    return x.clamp(0, 1).float().reshape(n, 1, 1, D)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset("lin-gauss", x_train=data(200, 1), x_test=data(300, 0))


def ctx(options: dict | None = None, metric: str = "elbo", batch: int = 256) -> EvalContext:
    return EvalContext(
        seed=0, device=torch.device("cpu"), eval_batch_size=batch, options=options or {},
        metric=metric,
    )  # fmt: skip


def test_iwae_with_the_exact_posterior_is_exact_for_any_k():
    model, x = LinearGaussian(), data(50)
    mean, logvar = model.posterior(x)
    exact = model.exact_log_px(x)
    for k in (1, 7, 100):
        g = torch.Generator().manual_seed(k)
        log_p, elbo = iwae_log_likelihood(model, x, mean, logvar, k, g, batch_size=16)
        # every importance weight equals p(x): only float32 rounding of the codes remains
        assert torch.allclose(log_p, exact, atol=1e-3), (k, (log_p - exact).abs().max())
        assert torch.allclose(elbo, exact, atol=1e-3)


def test_iwae_converges_to_the_exact_log_likelihood_from_below():
    model, x = LinearGaussian(q_shift=0.8, q_log_scale=0.4), data(200)
    mean, logvar = model.posterior(x)
    exact = float(model.exact_log_px(x).mean())
    elbo = float(model.exact_elbo(x).mean())
    gaps = {}
    for k in (1, 10, 100, 1000):
        g = torch.Generator().manual_seed(0)
        log_p, _ = iwae_log_likelihood(model, x, mean, logvar, k, g, batch_size=512)
        gaps[k] = exact - float(log_p.mean())
    initial = exact - elbo
    assert initial > 0.3  # the perturbed q is clearly imperfect
    # K = 1 is an unbiased estimate of the ELBO (200 images: standard error ~0.1 nats)
    assert gaps[1] == pytest.approx(initial, abs=0.15)
    # below the exact value (up to Monte-Carlo error) and tightening as K grows
    assert gaps[1] > gaps[10] > gaps[100] > gaps[1000] > -0.01
    assert gaps[1000] < 0.03 * initial, gaps


def test_elbo_terms_match_the_closed_form():
    model, x = LinearGaussian(q_shift=0.5, q_log_scale=-0.3), data(300)
    mean, logvar = model.posterior(x)
    recon, kl = elbo_terms(model, x, mean, logvar, 200, torch.Generator().manual_seed(1), 4096)
    exact = model.exact_elbo(x)
    assert float((recon - kl).mean()) == pytest.approx(float(exact.mean()), abs=0.02)
    # the KL term is the closed form of torch.distributions, in float64
    q = torch.distributions.Normal(mean.double(), torch.exp(0.5 * logvar.double()))
    ref = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1)
    assert kl.dtype == torch.float64
    torch.testing.assert_close(kl, ref)


class CallSizes(LinearGaussian):
    """Records how many codes each ``log_likelihood`` call sees."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.sizes: list[int] = []

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        self.sizes.append(z.shape[0])
        return super().log_likelihood(x, z)


def test_elbo_draws_more_samples_than_the_batch_in_bounded_chunks():
    """``elbo_samples`` above ``eval_batch_size`` used to draw all samples of an image at once
    (a ``(b, k, d)`` tensor for any ``k``); they are now drawn in chunks like the IWAE's."""
    model, x = CallSizes(q_shift=0.5, q_log_scale=-0.3), data(20)
    mean, logvar = model.posterior(x)
    recon, kl = elbo_terms(model, x, mean, logvar, 500, torch.Generator().manual_seed(1), 64)
    assert max(model.sizes) == 64 and sum(model.sizes) == 20 * 500
    exact = model.exact_elbo(x)
    # 500 draws per image: the mean over 20 images is within a few hundredths of the exact ELBO
    assert float((recon - kl).mean()) == pytest.approx(float(exact.mean()), abs=0.05)


def test_elbo_metric_values_and_details(dataset):
    model = LinearGaussian(q_shift=0.5, q_log_scale=0.2)
    c = ctx({"elbo_samples": 50})
    got = Elbo().evaluate(model, dataset, c)
    exact = float(model.exact_elbo(dataset.x_test).mean())
    assert got["elbo"] == pytest.approx(exact, abs=0.05)
    assert got["elbo"] == pytest.approx(got["elbo_recon"] - got["elbo_kl"])
    assert got["elbo_bpd"] == pytest.approx(-got["elbo"] / (D * math.log(2)))
    assert c.details["likelihood"] == "gaussian"
    assert c.details["binary_test_images"] is False
    assert c.details["normalised_density"] is True
    assert c.details["n_test"] == 300 and c.details["elbo_samples"] == 50


def test_iwae_metric_is_below_the_negative_elbo_and_states_k(dataset):
    model = LinearGaussian(q_shift=0.8, q_log_scale=0.4)
    c = ctx({"iwae_k": 200}, metric="iwae")
    got = Iwae().evaluate(model, dataset, c)
    neg_elbo = -float(model.exact_elbo(dataset.x_test).mean())
    exact_nll = -float(model.exact_log_px(dataset.x_test).mean())
    assert exact_nll - 0.02 < got["iwae_nll"] < neg_elbo - 0.3
    assert got["iwae_bpd"] == pytest.approx(bits_per_dim(got["iwae_nll"], D))
    assert c.details["k"] == 200 and c.details["n_test"] == 300
    assert "K=200" in c.details["bound"]
    assert c.details["neg_elbo_same_draws"] > got["iwae_nll"]


def test_iwae_test_cap_is_recorded(dataset):
    c = ctx({"iwae_k": 5, "iwae_test_n": 40}, metric="iwae")
    Iwae().evaluate(LinearGaussian(), dataset, c)
    assert c.details["n_test"] == 40 and c.details["n_test_total"] == 300


class Bernoulli(LinearGaussian):
    """Bernoulli pixels with p = sigmoid(W z + b) (for the density note only)."""

    likelihood_name = "bernoulli"

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        logits = (z.double() @ self.w.T + self.b).float()
        xf = x.reshape(x.shape[0], -1)
        return -torch.nn.functional.binary_cross_entropy_with_logits(
            logits, xf, reduction="none"
        ).sum(1)


def test_bernoulli_on_grey_levels_is_flagged_and_on_binary_images_not():
    grey = Dataset("grey", x_train=data(20, 1), x_test=data(30, 0))
    binary = Dataset("bin", x_train=(data(20, 1) > 0.5).float(), x_test=(data(30) > 0.5).float())
    c = ctx()
    Elbo().evaluate(Bernoulli(), grey, c)
    assert c.details["normalised_density"] is False
    assert "not a normalised density" in c.details["note"]
    c = ctx()
    Elbo().evaluate(Bernoulli(), binary, c)
    assert c.details["binary_test_images"] is True and c.details["normalised_density"] is True


def test_same_seed_same_numbers_and_another_seed_others(dataset):
    model = LinearGaussian(q_shift=0.8, q_log_scale=0.4)
    a = Iwae().evaluate(model, dataset, ctx({"iwae_k": 20}, "iwae"))
    b = Iwae().evaluate(model, dataset, ctx({"iwae_k": 20}, "iwae"))
    other = EvalContext(seed=1, device=torch.device("cpu"), options={"iwae_k": 20}, metric="iwae")
    assert a == b
    assert Iwae().evaluate(model, dataset, other) != a


def test_conformance_checks_pass(dataset):
    model = LinearGaussian(q_shift=0.3)
    for metric in (Elbo(), Iwae()):
        for result in check_metric(metric, model=model, dataset=dataset):
            assert result.passed, result


class NoPosterior(LinearGaussian):
    posterior = Model.posterior

    def encode(self, x: Tensor) -> Tensor:
        return self.exact_posterior(x)[0].float()


def test_models_without_posterior_or_likelihood_are_not_applicable(dataset):
    reason = Elbo().applies_to(NoPosterior(), dataset)
    assert isinstance(reason, str) and "posterior" in reason and "likelihood" not in reason
    assert Iwae().applies_to(LinearGaussian(), dataset) is True


@pytest.mark.parametrize(
    "metric, key, value, message",
    [
        (Elbo(), "elbo_samples", 0, "invalid value 0 for eval.elbo_samples: expected an integer "
                                    "from 1 to 10000"),
        (Iwae(), "iwae_k", 2.5, "invalid value 2.5 for eval.iwae_k: expected an integer from 1 "
                                "to 100000"),
        (Iwae(), "iwae_test_n", True, "invalid value True for eval.iwae_test_n"),
    ],
)  # fmt: skip
def test_bad_options_are_named(metric, key, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        metric.check_options({key: value})


@pytest.mark.parametrize(
    "metric, key, value, valid",
    [
        ("elbo", "elbo_samples", 100_000_000, "1 to 10000"),
        ("elbo", "elbo_samples", 0, "1 to 10000"),
        ("iwae", "iwae_k", 1_000_000_000_000, "1 to 100000"),
        ("iwae", "iwae_k", 0, "1 to 100000"),
        ("iwae", "iwae_test_n", 10_000_000, "1 to 1000000"),
        ("iwae", "iwae_test_n", 0, "1 to 1000000"),
    ],
)
def test_option_bounds_stop_the_configuration(registry, metric, key, value, valid):
    """Unbounded values ran until killed; the runner checks the resolved options before any
    training, so each is one ConfigError naming the key, the value and the range."""
    with pytest.raises(ConfigError) as err:
        RunConfig.build(registry, models="vae", metrics=metric, sets=[f"eval.{key}={value}"])
    assert str(err.value) == (
        f"metric {metric!r}: invalid value {value} for eval.{key}: expected an integer from {valid}"
    )


@pytest.mark.parametrize("metric", [Elbo(), Iwae()], ids=lambda m: m.name)
def test_the_bounds_accept_their_ends_and_the_defaults(metric):
    metric.check_options({})
    for key, (low, high) in BOUNDS.items():
        if key in metric.options:
            metric.check_options({key: low})
            metric.check_options({key: high})
            assert f"{low} to {high}" in metric.option_docs[key]


def test_cli_exits_2_with_one_line_for_an_unbounded_iwae_k(tmp_path):
    from click.testing import CliRunner

    from vaebench.cli import cli

    args = ["run", "--models", "vae", "--metrics", "iwae", "--out", str(tmp_path / "out"),
            "--set", "eval.iwae_k=1000000000000"]  # fmt: skip
    result = CliRunner().invoke(cli, args, prog_name="vaebench")
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "Error: metric 'iwae': invalid value 1000000000000 for eval.iwae_k: expected an integer "
        "from 1 to 100000"
    ]
    assert not (tmp_path / "out" / "cells").exists()
