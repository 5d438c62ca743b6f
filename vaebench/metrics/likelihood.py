"""Test likelihood of models with a posterior and a likelihood: the ELBO and the IWAE bound.

For a model whose tags state a diagonal-Gaussian posterior ``q(z|x)`` (``posterior``) and an
observation model ``p(x|z)`` (``log_likelihood``), with the model's prior ``p(z)``
(``log_prior``: the standard normal ``N(0, I)`` unless the model has its own, e.g. a VampPrior):

- ``elbo`` (Kingma & Welling 2014): ``E_q[log p(x|z)] - KL(q(z|x) || p(z))`` per test image,
  the expectation estimated with ``elbo_samples`` draws of ``z`` per image, the KL in closed
  form; reported with its two terms, in nats per image, and ``-ELBO`` in bits per dimension;
- ``iwae`` (Burda, Grosse & Salakhutdinov 2016): ``log (1/K) sum_k p(x, z_k) / q(z_k|x)`` with
  ``z_k ~ q(z|x)``, a lower bound on ``log p(x)`` that tightens as ``K`` grows; its negative is
  reported as an upper bound on the test negative log-likelihood (NLL), in nats per image and in
  bits per dimension. The log-sum-exp is taken in float64; the ``K`` samples are drawn in
  chunks so that one decoder call sees at most ``eval_batch_size`` codes.

The options are bounded (:data:`BOUNDS`: ``elbo_samples`` 1 to 10000, ``iwae_k`` 1 to 100000,
``iwae_test_n`` 1 to 1000000), and the ELBO's draws are chunked like the IWAE's, so a cell's
work and memory stay finite.

Bits per dimension are ``nats / (D ln 2)`` with ``D = C * H * W``. A Bernoulli likelihood of
grey-level pixels is not a normalised density (Loaiza-Ganem & Cunningham 2019): the details of
every evaluation record whether the test images are binary, so a report can say when these
numbers are not log-likelihoods. For a Gaussian likelihood the density is of pixel values on
the ``[0, 1]`` scale: add 8 bits/dim to compare with figures for 8-bit pixels on ``[0, 256)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from vaebench.hookspecs import hookimpl
from vaebench.metric import EvalContext, Metric, Value
from vaebench.metrics import codes as codes_mod
from vaebench.model import Model
from vaebench.nn import gaussian_kl

__all__ = [
    "Elbo",
    "Iwae",
    "elbo_terms",
    "iwae_log_likelihood",
    "bits_per_dim",
    "is_binary",
    "likelihood_details",
]

LOG_2PI = math.log(2.0 * math.pi)

REF_VAE = "Kingma & Welling, Auto-Encoding Variational Bayes, ICLR 2014"
REF_IWAE = "Burda, Grosse & Salakhutdinov, Importance Weighted Autoencoders, ICLR 2016"
REF_CB = (
    "Loaiza-Ganem & Cunningham, The continuous Bernoulli: fixing a pervasive error in "
    "variational autoencoders, NeurIPS 2019"
)


def bits_per_dim(nats: float, dims: int) -> float:
    """Convert nats per image of ``dims`` dimensions into bits per dimension."""
    return nats / (dims * math.log(2.0))


def is_binary(x: Tensor) -> bool:
    """Whether every value of ``x`` is exactly 0 or 1."""
    return bool(((x == 0) | (x == 1)).all())


def _check_posterior(mean: Tensor, logvar: Tensor, n: int) -> None:
    if mean.shape != logvar.shape or mean.ndim != 2 or mean.shape[0] != n:
        raise ValueError(
            f"posterior mean {tuple(mean.shape)} and log-variance {tuple(logvar.shape)} must "
            f"both be (N={n}, latent_dim)"
        )


def _log_joint_terms(
    model: Any, x: Tensor, mean: Tensor, logvar: Tensor, k: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Draw ``k`` codes per image from ``q(z|x)``; return ``(log p(x|z), log p(z) - log q(z|x))``,
    each ``(B, k)`` float64 on the CPU. ``x`` ``(B, C, H, W)``, ``mean``/``logvar`` ``(B, d)``."""
    b, d = mean.shape
    eps = torch.randn(b, k, d, generator=generator, dtype=torch.float64)
    m, lv = mean.double()[:, None, :], logvar.double()[:, None, :]
    z = m + torch.exp(0.5 * lv) * eps
    log_q = (-0.5 * eps.pow(2) - 0.5 * lv - 0.5 * LOG_2PI).sum(-1)
    # the model's own prior (Model.log_prior; the default N(0, I) sums in float64 here)
    log_p = model.log_prior(z.reshape(b * k, d)).detach().double().cpu().reshape(b, k)
    xs = x.to(model.device).repeat_interleave(k, 0)
    zs = z.reshape(b * k, d).to(device=model.device, dtype=torch.float32)
    llh = model.log_likelihood(xs, zs)
    if tuple(llh.shape) != (b * k,):
        raise ValueError(
            f"log_likelihood returned shape {tuple(llh.shape)}, expected ({b * k},) -- one "
            "log p(x|z) per image, summed over pixels"
        )
    return llh.detach().double().cpu().reshape(b, k), log_p - log_q


def elbo_terms(
    model: Any,
    x: Tensor,
    mean: Tensor,
    logvar: Tensor,
    samples: int,
    generator: torch.Generator,
    batch_size: int = 1024,
) -> tuple[Tensor, Tensor]:
    """``(recon, kl)``, each ``(N,)`` float64 in nats: the Monte-Carlo estimate of
    ``E_q(z|x)[log p(x|z)]`` from ``samples`` draws per image, and the closed-form
    ``KL(q(z|x) || N(0, I))`` (:func:`vaebench.nn.gaussian_kl`, in float64), for images ``x``
    ``(N, C, H, W)`` with posterior ``mean``/``logvar`` ``(N, d)``. ELBO = recon - kl.

    Draws come from ``generator`` (CPU), in chunks of ``min(samples, batch_size)`` for
    ``max(1, batch_size // chunk)`` images at a time, as in :func:`iwae_log_likelihood`: one
    ``log_likelihood`` call sees at most ``batch_size`` codes and memory stays bounded for any
    ``samples``."""
    _check_posterior(mean, logvar, x.shape[0])
    chunk = min(samples, batch_size)
    per = max(1, batch_size // chunk)
    recon, kl_mc = [], []
    with torch.inference_mode():
        for i in range(0, x.shape[0], per):
            sl = slice(i, i + per)
            total = torch.zeros(x[sl].shape[0], dtype=torch.float64)
            kl = torch.zeros(x[sl].shape[0], dtype=torch.float64)
            for start in range(0, samples, chunk):
                n = min(chunk, samples - start)
                llh, prior_q = _log_joint_terms(model, x[sl], mean[sl], logvar[sl], n, generator)
                total += llh.sum(1)
                kl -= prior_q.sum(1)
            recon.append(total / samples)
            kl_mc.append(kl / samples)
    if not standard_prior(model):  # its own prior: the KL by Monte Carlo, from the same draws
        return torch.cat(recon), torch.cat(kl_mc)
    return torch.cat(recon), gaussian_kl(mean.double(), logvar.double())


def standard_prior(model: Any) -> bool:
    """Whether ``model`` keeps the default prior ``N(0, I)`` (does not override
    :meth:`vaebench.model.Model.log_prior`; a metric's checked wrapper is looked through)."""
    inner = getattr(model, "wrapped", model)
    return getattr(type(inner), "log_prior", Model.log_prior) is Model.log_prior


def iwae_log_likelihood(
    model: Any,
    x: Tensor,
    mean: Tensor,
    logvar: Tensor,
    k: int,
    generator: torch.Generator,
    batch_size: int = 1024,
) -> tuple[Tensor, Tensor]:
    """``(log_p_k, elbo_k)``, each ``(N,)`` float64 in nats: the importance-weighted estimate
    ``log (1/k) sum_j w_j`` with ``w_j = p(x|z_j) p(z_j) / q(z_j|x)``, ``z_j ~ q(z|x)`` (Burda et
    al. 2016), and the mean ``(1/k) sum_j log w_j`` of the same weights (an ELBO estimate from
    the same draws; ``log_p_k >= elbo_k`` always, by Jensen's inequality).

    ``x`` ``(N, C, H, W)``, ``mean``/``logvar`` ``(N, d)``; the ``k`` draws per image are made in
    chunks of ``min(k, batch_size)`` for ``max(1, batch_size // chunk)`` images at a time, so
    one ``log_likelihood`` call sees at most ``batch_size`` codes and memory stays bounded for
    any ``k``; the log-sum-exp is taken in float64 over all ``k`` weights of an image."""
    _check_posterior(mean, logvar, x.shape[0])
    chunk = min(k, batch_size)
    per = max(1, batch_size // chunk)
    log_p, elbo = [], []
    with torch.inference_mode():
        for i in range(0, x.shape[0], per):
            sl = slice(i, i + per)
            parts = []
            for start in range(0, k, chunk):
                n = min(chunk, k - start)
                llh, prior_q = _log_joint_terms(model, x[sl], mean[sl], logvar[sl], n, generator)
                parts.append(llh + prior_q)
            log_w = torch.cat(parts, 1)
            log_p.append(torch.logsumexp(log_w, 1) - math.log(k))
            elbo.append(log_w.mean(1))
    return torch.cat(log_p), torch.cat(elbo)


def likelihood_details(model: Any, x: Tensor) -> dict[str, Any]:
    """What a reader must know to interpret likelihood numbers: the observation model, whether
    the test images are binary, and whether the numbers are those of a normalised density."""
    lik = model.tags.likelihood
    binary = is_binary(x)
    out: dict[str, Any] = {
        "likelihood": lik,
        "prior": getattr(model, "prior_description", "standard normal N(0, I)"),
        "binary_test_images": binary,
        "dims": int(x[0].numel()),
    }
    if lik == "bernoulli" and not binary:
        out["normalised_density"] = False
        out["note"] = (
            "Bernoulli likelihood of grey-level pixels: not a normalised density, so these are "
            "not log-likelihoods of the test images (Loaiza-Ganem & Cunningham 2019); use a "
            "binarised dataset (binarize=fixed) for likelihood comparisons"
        )
    elif lik == "bernoulli":
        out["normalised_density"] = True
        out["note"] = "Bernoulli likelihood of binary pixels: a normalised probability mass"
    elif lik == "gaussian":
        out["normalised_density"] = True
        out["note"] = (
            "Gaussian density of pixel values on the [0, 1] scale; add 8 bits/dim to compare "
            "with densities of 8-bit values on [0, 256)"
        )
    else:
        out["normalised_density"] = None
        out["note"] = f"observation model {lik!r} is not one vaebench knows"
    return out


def _applies(model: Any) -> bool | str:
    tags = model.tags
    if tags.has_posterior and tags.likelihood:
        return True
    lacking = [
        what
        for what, ok in (
            ("a posterior q(z|x) (tags.has_posterior)", tags.has_posterior),
            ("a likelihood p(x|z) (tags.likelihood)", bool(tags.likelihood)),
        )
        if not ok
    ]
    return f"needs {' and '.join(lacking)}, which {type(model).__name__} does not state"


#: Documented bounds of the likelihood options (``--set eval.KEY=VALUE``), both ends included:
#: the work of a cell grows with their product, so each is capped.
BOUNDS: dict[str, codes_mod.Bounds] = {
    "elbo_samples": (1, 10_000),
    "iwae_k": (1, 100_000),
    "iwae_test_n": (1, 1_000_000),
}


class Elbo(Metric):
    """Test ELBO with its reconstruction and KL terms (see the module docstring)."""

    name = "elbo"
    group = "likelihood"
    cost = "cheap"
    default = True
    version = 1
    options = {"elbo_samples": 10}
    option_docs = codes_mod.documented(
        {"elbo_samples": "draws of z per test image for E_q[log p(x|z)] (the KL is exact)"},
        BOUNDS,
    )
    values = (
        Value(
            "elbo", True, "nats/image", 2,
            "test evidence lower bound E_q[log p(x|z)] - KL(q(z|x) || N(0, I)), mean over "
            "test images", REF_VAE,
        ),
        Value(
            "elbo_recon", True, "nats/image", 2,
            "reconstruction term E_q(z|x)[log p(x|z)] of the test ELBO", REF_VAE,
        ),
        Value(
            "elbo_kl", None, "nats/image", 2,
            "KL(q(z|x) || N(0, I)) of the test ELBO (closed form), the code's rate", REF_VAE,
        ),
        Value(
            "elbo_bpd", False, "bits/dim", 4,
            "-ELBO / (D ln 2): an upper bound on the test NLL in bits per dimension", REF_VAE,
        ),
    )  # fmt: skip

    def applies_to(self, model: Any, dataset: Any) -> bool | str:
        return _applies(model)

    def check_options(self, options: dict[str, Any]) -> None:
        codes_mod.check_bounded(self.resolve_options(options), BOUNDS)

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts = self.resolve_options(ctx.options)
        self.check_options(opts)
        samples = opts["elbo_samples"]
        x = dataset.x_test
        mean, logvar, _ = codes_mod.posterior(model, dataset, "test", ctx)
        recon, kl = elbo_terms(model, x, mean, logvar, samples, ctx.generator, ctx.eval_batch_size)
        elbo = recon - kl
        dims = int(x[0].numel())
        n = x.shape[0]
        ctx.details.update(likelihood_details(model, x))
        ctx.details.update(
            {
                "n_test": n,
                "elbo_samples": samples,
                "kl": "closed form"
                if standard_prior(model)
                else f"Monte Carlo ({samples} draws of z per image, the model's own prior)",
                "elbo_se": float(elbo.std() / math.sqrt(n)) if n > 1 else None,
            }
        )
        value = float(elbo.mean())
        return {
            "elbo": value,
            "elbo_recon": float(recon.mean()),
            "elbo_kl": float(kl.mean()),
            "elbo_bpd": bits_per_dim(-value, dims),
        }


class Iwae(Metric):
    """Importance-weighted upper bound on the test NLL (see the module docstring)."""

    name = "iwae"
    group = "likelihood"
    cost = "expensive"
    default = False
    version = 1
    options = {"iwae_k": 1000, "iwae_test_n": 10000}
    option_docs = codes_mod.documented(
        {
            "iwae_k": "importance samples K per test image (Burda et al. 2016 use 5000)",
            "iwae_test_n": "at most this many test images (a fixed choice, the same for every "
            "cell)",
        },
        BOUNDS,
    )
    values = (
        Value(
            "iwae_nll", False, "nats/image", 2,
            "importance-weighted bound -log (1/K) sum_k p(x, z_k)/q(z_k|x), z_k ~ q(z|x): an "
            "upper bound on the test NLL", REF_IWAE,
        ),
        Value(
            "iwae_bpd", False, "bits/dim", 4,
            "the importance-weighted NLL bound in bits per dimension", REF_IWAE,
        ),
    )  # fmt: skip

    def applies_to(self, model: Any, dataset: Any) -> bool | str:
        return _applies(model)

    def check_options(self, options: dict[str, Any]) -> None:
        codes_mod.check_bounded(self.resolve_options(options), BOUNDS)

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts = self.resolve_options(ctx.options)
        self.check_options(opts)
        k = opts["iwae_k"]
        mean, logvar, idx = codes_mod.posterior(model, dataset, "test", ctx, opts["iwae_test_n"])
        x = dataset.x_test[idx]
        log_p, elbo = iwae_log_likelihood(
            model, x, mean, logvar, k, ctx.generator, ctx.eval_batch_size
        )
        nll = -log_p
        n = x.shape[0]
        dims = int(x[0].numel())
        ctx.details.update(likelihood_details(model, x))
        ctx.details.update(
            {
                "bound": f"IWAE bound with K={k} importance samples from q(z|x) (Burda et al. "
                "2016): an upper bound on -log p(x) that tightens as K grows",
                "k": k,
                "n_test": n,
                "n_test_total": int(dataset.x_test.shape[0]),
                "nll_se": float(nll.std() / math.sqrt(n)) if n > 1 else None,
                "neg_elbo_same_draws": float(-elbo.mean()),
            }
        )
        value = float(nll.mean())
        return {"iwae_nll": value, "iwae_bpd": bits_per_dim(value, dims)}


@hookimpl
def vaebench_metrics():
    return [Elbo(), Iwae()]
