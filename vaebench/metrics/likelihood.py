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
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from vaebench.hookspecs import hookimpl
from vaebench.metric import EvalContext, Value
from vaebench.metrics import codes as codes_mod
from vaebench.model import Model
from vaebench.nn import gaussian_kl

__all__ = [
    "Elbo",
    "Iwae",
    "elbo_terms",
    "iwae_log_likelihood",
    "log_prior",
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


#: Memory budget of one ``log_likelihood`` call on a CUDA device, in bytes of float32 decoded
#: pixels (``codes x D x 4``): a call then sees ``CUDA_CALL_BYTES // (4 D)`` codes (at least
#: ``eval_batch_size``) -- many images x K samples, as the GPU wants. On the CPU a call sees
#: ``eval_batch_size`` codes: larger calls are no faster there (measured: docs/performance.md).
CUDA_CALL_BYTES = 512 * 2**20


def log_prior(z: Tensor) -> Tensor:
    """``log p(z)`` of the standard-normal prior ``N(0, I)``, summed over the last dimension:
    codes ``z`` ``(..., d)`` -> ``(...)`` in nats (float64 in, float64 out)."""
    return (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(-1)


def _draw_units(n: int, k: int, batch_size: int) -> Iterator[tuple[int, int, int, int]]:
    """The order in which draws are made: ``(group, first image, images, samples)`` per call of
    the generator -- ``min(k, batch_size)`` samples for ``max(1, batch_size // chunk)`` images
    at a time, image-major; every image's ``k`` samples lie in one group. Fixed, so that the
    same generator gives the same draws however the decoder calls are sized."""
    chunk = min(k, batch_size)
    per = max(1, batch_size // chunk)
    for group, i in enumerate(range(0, n, per)):
        b = min(per, n - i)
        for start in range(0, k, chunk):
            yield group, i, b, min(chunk, k - start)


def _codes_per_call(model: Any, x: Tensor, batch_size: int) -> int:
    device = getattr(model, "device", None)
    if getattr(device, "type", None) == "cuda":
        return max(batch_size, CUDA_CALL_BYTES // (4 * max(1, int(x[0].numel()))))
    return batch_size


def _log_weight_groups(
    model: Any,
    x: Tensor,
    mean: Tensor,
    logvar: Tensor,
    k: int,
    generator: torch.Generator,
    batch_size: int,
) -> Iterator[tuple[int, Tensor, Tensor]]:
    """``(first image, log p(x|z), log p(z) - log q(z|x))`` per group of images of
    :func:`_draw_units`, each ``(images, k)`` float64 on the CPU, for codes ``z ~ q(z|x)``.

    Draws come from ``generator`` (CPU, float64) unit by unit; the units are packed into
    ``log_likelihood`` calls of up to :func:`_codes_per_call` codes (many images x samples per
    call, never one call per image), the images repeated once per code inside a call only, the
    results read back once per call. Memory: one call's codes and decoded images, plus the
    ``images x k`` weights of the groups in flight."""
    _check_posterior(mean, logvar, x.shape[0])
    d = mean.shape[1]
    device = model.device
    per_call = _codes_per_call(model, x, batch_size)
    m64, lv64 = mean.double(), logvar.double()
    xd = x.to(device)
    own_prior = not standard_prior(model)
    groups: dict[int, list[tuple[Tensor, Tensor]]] = {}
    firsts: dict[int, int] = {}
    units_per_group = -(-k // min(k, batch_size))
    pending: list[tuple[int, int, int, int, Tensor, Tensor]] = []

    def flush() -> Iterator[tuple[int, Tensor, Tensor]]:
        zs = torch.cat([z.reshape(-1, d) for *_, z, _ in pending])
        xs = torch.cat([xd[i : i + b].repeat_interleave(n, 0) for _, i, b, n, _, _ in pending])
        llh = model.log_likelihood(xs, zs.to(device=device, dtype=torch.float32))
        if tuple(llh.shape) != (zs.shape[0],):
            raise ValueError(
                f"log_likelihood returned shape {tuple(llh.shape)}, expected ({zs.shape[0]},)"
                " -- one log p(x|z) per image, summed over pixels"
            )
        llh = llh.detach().double().cpu()
        at = 0
        for g, i, b, n, _z, prior_q in pending:
            groups.setdefault(g, []).append((llh[at : at + b * n].reshape(b, n), prior_q))
            firsts[g] = i
            at += b * n
            if len(groups[g]) == units_per_group:
                parts = groups.pop(g)
                yield (firsts.pop(g), torch.cat([p[0] for p in parts], 1),
                       torch.cat([p[1] for p in parts], 1))  # fmt: skip
        pending.clear()

    codes = 0
    for g, i, b, n in _draw_units(x.shape[0], k, batch_size):
        eps = torch.randn(b, n, d, generator=generator, dtype=torch.float64)
        lv = lv64[i : i + b, None, :]
        z = m64[i : i + b, None, :] + torch.exp(0.5 * lv) * eps
        log_q = (-0.5 * eps.pow(2) - 0.5 * lv - 0.5 * LOG_2PI).sum(-1)
        if pending and codes + b * n > per_call:
            yield from flush()
            codes = 0
        if own_prior:  # the model's own prior (Model.log_prior), e.g. a VampPrior
            log_p = model.log_prior(z.reshape(b * n, d)).detach().double().cpu().reshape(b, n)
        else:  # N(0, I), summed in float64 here
            log_p = log_prior(z)
        pending.append((g, i, b, n, z, log_p - log_q))
        codes += b * n
    if pending:
        yield from flush()


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
    ``max(1, batch_size // chunk)`` images at a time, as in :func:`iwae_log_likelihood`, and are
    decoded many images x samples per ``log_likelihood`` call (``batch_size`` codes on the CPU,
    :data:`CUDA_CALL_BYTES` of decoded pixels on CUDA), so memory stays bounded for any
    ``samples``."""
    recon = torch.empty(x.shape[0], dtype=torch.float64)
    kl_mc = torch.empty(x.shape[0], dtype=torch.float64)
    with torch.inference_mode():
        for i, llh, prior_q in _log_weight_groups(model, x, mean, logvar, samples, generator,
                                                  batch_size):  # fmt: skip
            recon[i : i + llh.shape[0]] = llh.sum(1) / samples
            kl_mc[i : i + llh.shape[0]] = -prior_q.sum(1) / samples
    if not standard_prior(model):  # its own prior: the KL by Monte Carlo, from the same draws
        return recon, kl_mc
    return recon, gaussian_kl(mean.double(), logvar.double())


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
    chunks of ``min(k, batch_size)`` for ``max(1, batch_size // chunk)`` images at a time (the
    draw order, fixed), and decoded many images x samples per ``log_likelihood`` call: at most
    ``batch_size`` codes per call on the CPU, :data:`CUDA_CALL_BYTES` of decoded float32 pixels
    on CUDA. Memory is bounded for any ``k``: one call's codes and images plus ``k`` float64
    weights per image in flight; the log-sum-exp is taken in float64 over all ``k`` weights of
    an image. ``log p(z)`` is :func:`log_prior` (``N(0, I)``) or the model's own
    ``Model.log_prior``, called once per chunk of draws."""
    log_p = torch.empty(x.shape[0], dtype=torch.float64)
    elbo = torch.empty(x.shape[0], dtype=torch.float64)
    with torch.inference_mode():
        for i, llh, prior_q in _log_weight_groups(model, x, mean, logvar, k, generator,
                                                  batch_size):  # fmt: skip
            log_w = llh + prior_q
            log_p[i : i + log_w.shape[0]] = torch.logsumexp(log_w, 1) - math.log(k)
            elbo[i : i + log_w.shape[0]] = log_w.mean(1)
    return log_p, elbo


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


class _LikelihoodMetric(codes_mod.BoundedMetric):
    """Shared part of the likelihood metrics: what they apply to, their option bounds."""

    group = "likelihood"
    version = 1
    bounds = BOUNDS

    def applies_to(self, model: Any, dataset: Any) -> bool | str:
        return _applies(model)

    @staticmethod
    def _mean(
        model: Any, x: Tensor, per_image: Tensor, ctx: EvalContext, se: str, details: dict
    ) -> float:
        """The mean of ``per_image`` ``(N,)`` (nats/image) over the test images ``x``; records
        in ``ctx.details`` what a reader must know (:func:`likelihood_details`), then
        ``details``, then the mean's standard error as ``se`` (``None`` for one image)."""
        n = x.shape[0]
        ctx.details.update(likelihood_details(model, x))
        ctx.details.update(details)
        ctx.details[se] = float(per_image.std() / math.sqrt(n)) if n > 1 else None
        return float(per_image.mean())


class Elbo(_LikelihoodMetric):
    """Test ELBO with its reconstruction and KL terms (see the module docstring)."""

    name = "elbo"
    cost = "cheap"
    default = True
    options = {"elbo_samples": 10}
    option_docs = {
        "elbo_samples": "draws of z per test image for E_q[log p(x|z)] (the KL is exact)"
    }
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

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts = self.checked_options(ctx)
        samples = opts["elbo_samples"]
        x = dataset.x_test
        mean, logvar, _ = codes_mod.posterior(model, dataset, "test", ctx)
        recon, kl = elbo_terms(model, x, mean, logvar, samples, ctx.generator, ctx.eval_batch_size)
        kl_how = "closed form" if standard_prior(model) else (
            f"Monte Carlo ({samples} draws of z per image, the model's own prior)"
        )  # fmt: skip
        details = {"n_test": x.shape[0], "elbo_samples": samples, "kl": kl_how}
        value = self._mean(model, x, recon - kl, ctx, "elbo_se", details)
        return {
            "elbo": value,
            "elbo_recon": float(recon.mean()),
            "elbo_kl": float(kl.mean()),
            "elbo_bpd": bits_per_dim(-value, int(x[0].numel())),
        }


class Iwae(_LikelihoodMetric):
    """Importance-weighted upper bound on the test NLL (see the module docstring)."""

    name = "iwae"
    cost = "expensive"
    default = False
    options = {"iwae_k": 1000, "iwae_test_n": 10000}
    option_docs = {
        "iwae_k": "importance samples K per test image (Burda et al. 2016 use 5000)",
        "iwae_test_n": "at most this many test images (a fixed choice, the same for every cell)",
    }
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

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts = self.checked_options(ctx)
        k = opts["iwae_k"]
        mean, logvar, idx = codes_mod.posterior(model, dataset, "test", ctx, opts["iwae_test_n"])
        x = dataset.x_test[idx]
        log_p, elbo = iwae_log_likelihood(
            model, x, mean, logvar, k, ctx.generator, ctx.eval_batch_size
        )
        details = {
            "bound": f"IWAE bound with K={k} importance samples from q(z|x) (Burda et al. "
            "2016): an upper bound on -log p(x) that tightens as K grows",
            "k": k,
            "n_test": x.shape[0],
            "n_test_total": int(dataset.x_test.shape[0]),
        }
        value = self._mean(model, x, -log_p, ctx, "nll_se", details)
        ctx.details["neg_elbo_same_draws"] = float(-elbo.mean())
        return {"iwae_nll": value, "iwae_bpd": bits_per_dim(value, int(x[0].numel()))}


@hookimpl
def vaebench_metrics():
    return [Elbo(), Iwae()]
