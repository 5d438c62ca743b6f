"""Sample quality: Fréchet distance, kernel distance (KID) and precision/recall/density/coverage.

All three compare features of generated images with features of real test images, in the
feature space of the small classifier vaebench trains on the dataset's training split
(:mod:`vaebench.metrics.features`; its weight sha256 and test accuracy are recorded with every
score). Real set: ``min(sample_n, test images)`` test images (a fixed choice, the same for every
cell); generated set: as many images, drawn

by a **sampler** (``eval.sampler``, :data:`SAMPLERS`):

- ``prior``: the model's prior (``model.sample``), for models that have one;
- ``gaussian`` (formerly ``expost``, still accepted): **ex-post density estimation** (Ghosh et
  al. 2020), a full-covariance Gaussian fitted to the codes of all training images;
- ``gmm``: an ex-post Gaussian mixture (scikit-learn ``GaussianMixture``, ``gmm_components``
  full-covariance components, 10 by default as in Ghosh et al. 2020) fitted to the same codes;
- ``two-stage``: a second, small VAE trained on the same codes (Dai & Wipf 2019, "Diagnosing
  and enhancing VAE models"; as pythae's ``TwoStageVAESampler``: an MLP of two hidden layers,
  code size = the model's, a Gaussian decoder with a learned variance ``gamma^2``); its samples
  are ``z = mu(u) + gamma e`` with ``u, e ~ N(0, I)``;
- ``auto``: ``prior`` when the model can sample, else ``gaussian``.

Every ex-post sampler is fitted on the codes (``encode``: the posterior mean of a VAE) of the
training split only, and its draws are decoded. A comma-separated list (``--set
eval.sampler=prior,gmm`` or ``vaebench evaluate OUT --sweep eval.sampler=prior,gmm``) evaluates
each sampler on the same real images and reports each value once per sampler, named
``VALUE@SAMPLER`` (``fd@gmm``); a single sampler keeps the plain names (``fd``). A sampler that
does not apply to the model (``prior`` without a prior) makes its values not applicable, with
the reason (:meth:`vaebench.metric.EvalContext.value_not_applicable`).

Each sampler's generated images come from its own random stream per cell, seeded from ``(seed,
"samples")`` for ``prior`` and ``gaussian`` (the stream of earlier versions, so stored values
stay valid) and ``(seed, "samples:" + sampler)`` for the others; ``fd``, ``kid`` and ``prdc``
describe the same generated set, and neither selecting a subset of them nor adding another
sampler changes any number. The details record each sampler with its settings. Scores depend
on the number of samples (FD is biased upwards for small sets): compare them at equal counts,
which the details record.

- ``fd`` (Heusel et al. 2017, "FID" in Inception features): ``|mu_r - mu_g|^2 + tr(S_r + S_g -
  2 (S_r S_g)^(1/2))`` between Gaussians fitted to the two feature sets; the trace of the matrix
  square root is computed from the eigenvalues of ``S_r^(1/2) S_g S_r^(1/2)`` (symmetric).
- ``kid`` (Bińkowski et al. 2018): the unbiased estimate of the squared maximum mean discrepancy
  with the cubic polynomial kernel ``k(a, b) = (a.b / d + 1)^3``, averaged over ``kid_subsets``
  random subsets of ``kid_subset_size`` real and generated features each. When the subset size
  equals both sets' size every "subset" is the whole set in another order: the estimate is then
  computed once and no standard deviation is stored (it would be rounding noise).
- ``prdc`` (Naeem et al. 2020): with ``k = prdc_k`` and ``r(a)`` the distance from a feature to
  its k-th nearest neighbour in its own set, precision is the fraction of generated features
  within ``r`` of some real feature, recall the fraction of real features within ``r`` of some
  generated one, density the number of real balls a generated feature lies in divided by k
  (averaged), coverage the fraction of real features whose ball holds a generated one.
  Distances are Euclidean; "within" is strict, as in the reference package ``prdc``.

Every option has documented bounds (:data:`BOUNDS`), and the distance and kernel matrices are
handled in blocks of at most :data:`_BLOCK` elements, so a cell's work and memory stay finite.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaebench.errors import MetricError
from vaebench.hookspecs import hookimpl
from vaebench.metric import EvalContext, Value, metric_seed
from vaebench.metrics import codes as codes_mod
from vaebench.metrics.features import FeatureNetConfig, feature_extractor, feature_labels

__all__ = [
    "FrechetDistance",
    "KernelDistance",
    "PrecisionRecall",
    "SAMPLERS",
    "frechet_distance",
    "gaussian_stats",
    "kid",
    "prdc",
    "expost_gaussian",
    "sample_features",
    "parse_samplers",
    "sampler_seed",
    "fit_gmm",
    "draw_gmm",
    "fit_two_stage",
    "SAMPLER_ALIASES",
]

#: ``sampler`` choices (see the module docstring); ``expost`` is the old name of ``gaussian``.
SAMPLERS = ("auto", "prior", "gaussian", "gmm", "two-stage")
#: Old sampler names still accepted (and shown under the new name).
SAMPLER_ALIASES = {"expost": "gaussian"}

REF_FD = (
    "Heusel et al., GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash "
    "Equilibrium, NeurIPS 2017 (in vaebench's own feature space)"
)
REF_KID = "Bińkowski et al., Demystifying MMD GANs, ICLR 2018 (in vaebench's own feature space)"
REF_PRDC = (
    "Naeem, Oh, Uh, Choi & Yoo, Reliable Fidelity and Diversity Metrics for Generative Models, "
    "ICML 2020 (in vaebench's own feature space)"
)
REF_EXPOST = (
    "Ghosh, Sajjadi, Vergari, Black & Schölkopf, From Variational to Deterministic "
    "Autoencoders, ICLR 2020"
)
REF_TWO_STAGE = "Dai & Wipf, Diagnosing and Enhancing VAE Models, ICLR 2019"

#: Options every sample-quality metric shares (one option each, one default).
SHARED_OPTIONS: dict[str, Any] = {
    "sample_n": 10000,
    "sampler": "auto",
    "gmm_components": 10,
    "two_stage_steps": 2000,
    "two_stage_width": 256,
    "feature_steps": FeatureNetConfig.steps,
    "feature_train_n": FeatureNetConfig.train_n,
}
#: Documented bounds of the sample-quality options (``--set eval.KEY=VALUE``), both ends
#: included; a tuple of other values lists the valid choices. ``kid_subset_size`` and
#: ``sample_n`` bound the distance and kernel blocks, ``feature_steps`` and ``kid_subsets`` the
#: work.
BOUNDS: dict[str, Any] = {
    "sample_n": (2, 100_000),
    "gmm_components": (1, 1000),
    "two_stage_steps": (1, 1_000_000),
    "two_stage_width": (1, 100_000),
    "feature_steps": (1, 100_000),
    "feature_train_n": (10, 1_000_000),
    "kid_subsets": (1, 10_000),
    "kid_subset_size": (2, 10_000),
    "prdc_k": (1, 1000),
}
SHARED_DOCS = codes_mod.documented(
    {
        "sample_n": "real test images and generated images compared (at most the test split)",
        "sampler": "auto (the prior if the model samples, else gaussian), prior, gaussian (a "
        "Gaussian fitted to the training codes, Ghosh et al. 2020), gmm (a Gaussian mixture on "
        "them), two-stage (a second VAE on them, Dai & Wipf 2019); a comma-separated list "
        "evaluates each (values named VALUE@SAMPLER)",
        "gmm_components": "sampler gmm: full-covariance mixture components (at most the "
        "training images)",
        "two_stage_steps": "sampler two-stage: Adam steps (batches of 128 codes, lr 1e-3) "
        "training the second VAE",
        "two_stage_width": "sampler two-stage: width of the second VAE's two hidden layers",
        "feature_steps": "mini-batch updates (of 128 images) that train the feature classifier, "
        "once per dataset (cached)",
        "feature_train_n": "at most this many training images train the feature classifier",
    },
    BOUNDS,
)

#: Generated images per sampler stored for the report's sample grid (artifact
#: ``samples@SAMPLER``, with several samplers).
PREVIEW = 8
#: Elements of one distance block in :func:`prdc` (float64: 32 MiB).
_BLOCK = 4_000_000


# ----------------------------------------------------------------------------- the scores


def gaussian_stats(features: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(F,)`` and covariance ``(F, F)`` (``N - 1`` denominator) of features ``(N, F)``."""
    a = features.double().cpu().numpy()
    return a.mean(0), np.atleast_2d(np.cov(a, rowvar=False))


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Squared Fréchet (2-Wasserstein) distance between ``N(mu1, cov1)`` and ``N(mu2, cov2)``:
    ``|mu1 - mu2|^2 + tr(cov1) + tr(cov2) - 2 tr((cov1 cov2)^(1/2))``. The last trace equals
    that of ``(cov1^(1/2) cov2 cov1^(1/2))^(1/2)``, a symmetric positive semi-definite matrix
    whose eigenvalues are taken (clipped at 0), which stays real where ``sqrtm`` of the
    non-symmetric product does not."""
    s1 = _sqrt_psd(np.asarray(cov1, dtype=np.float64))
    inner = s1 @ np.asarray(cov2, dtype=np.float64) @ s1
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum())
    diff = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_sqrt)


def _poly_kernel(a: Tensor, b: Tensor) -> Tensor:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _kernel_sum(a: Tensor, b: Tensor, *, off_diagonal: bool = False) -> float:
    """``sum_ij k(a_i, b_j)`` of the cubic kernel, leaving out ``i == j`` when
    ``off_diagonal`` (``a`` is ``b``); in row blocks of at most :data:`_BLOCK` elements."""
    rows = max(1, _BLOCK // b.shape[0])
    total = 0.0
    for i in range(0, a.shape[0], rows):
        k = _poly_kernel(a[i : i + rows], b)
        total += float(k.sum())
        if off_diagonal:
            total -= float(k.diagonal(offset=i).sum())
    return total


def kid(
    real: Tensor,
    fake: Tensor,
    n_subsets: int = 100,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[float, float, int]:
    """``(mean, std, m)``: the unbiased MMD^2 estimate with kernel ``(a.b / d + 1)^3`` over
    ``n_subsets`` pairs of random subsets (without replacement within a subset) of
    ``m = min(subset_size, len(real), len(fake))`` features each; features ``(N, d)``. The
    kernel sums are taken in row blocks, so memory stays bounded for any ``m``. When ``m``
    equals both sets' size every subset is the whole set (the estimate does not depend on the
    order): it is computed once, ``std`` is NaN and ``generator`` is not used."""
    x, y = real.double(), fake.double()
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 features in each set, got {m}")
    whole = m == x.shape[0] == y.shape[0]
    scores = []
    for _ in range(1 if whole else n_subsets):
        if whole:
            a, b = x, y
        else:
            a = x[torch.randperm(x.shape[0], generator=generator)[:m]]
            b = y[torch.randperm(y.shape[0], generator=generator)[:m]]
        off = m * (m - 1)
        mmd = (
            _kernel_sum(a, a, off_diagonal=True) / off
            + _kernel_sum(b, b, off_diagonal=True) / off
            - 2.0 * _kernel_sum(a, b) / (m * m)
        )
        scores.append(mmd)
    s = np.asarray(scores)
    return float(s.mean()), math.nan if whole else float(s.std()), m


def _kth_radii(x: Tensor, k: int) -> Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row (itself excluded)."""
    rows = max(1, _BLOCK // x.shape[0])
    out = []
    for i in range(0, x.shape[0], rows):
        d = torch.cdist(x[i : i + rows], x, compute_mode="donot_use_mm_for_euclid_dist")
        out.append(d.kthvalue(k + 1, dim=1).values)  # the 0 to itself is the first
    return torch.cat(out)


def prdc(real: Tensor, fake: Tensor, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) of ``fake`` ``(M, d)``
    against ``real`` ``(N, d)`` with ``k`` nearest neighbours (``k < min(N, M)``); the same
    definitions as the reference package ``prdc`` (``compute_prdc``), in blocks of bounded
    memory."""
    x, y = real.double(), fake.double()
    if k >= min(x.shape[0], y.shape[0]):
        raise ValueError(
            f"prdc_k={k} needs more than {k} real and generated features, got "
            f"{x.shape[0]} and {y.shape[0]}"
        )
    r_real, r_fake = _kth_radii(x, k), _kth_radii(y, k)
    in_real_balls = torch.zeros(y.shape[0], dtype=torch.float64)
    nearest_fake = torch.full((x.shape[0],), math.inf, dtype=torch.float64)
    recalled = torch.zeros(x.shape[0], dtype=torch.bool)
    cols = max(1, _BLOCK // x.shape[0])
    for j in range(0, y.shape[0], cols):
        d = torch.cdist(x, y[j : j + cols], compute_mode="donot_use_mm_for_euclid_dist")
        in_real_balls[j : j + cols] = (d < r_real[:, None]).sum(0).double()
        nearest_fake = torch.minimum(nearest_fake, d.min(1).values)
        recalled |= (d < r_fake[None, j : j + cols]).any(1)
    return {
        "precision": float((in_real_balls > 0).double().mean()),
        "recall": float(recalled.double().mean()),
        "density": float(in_real_balls.mean() / k),
        "coverage": float((nearest_fake < r_real).double().mean()),
    }


# ----------------------------------------------------------------------------- the samples


def expost_gaussian(z: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean (d,), cholesky factor (d, d))`` of the full-covariance Gaussian fitted to codes
    ``z`` ``(N, d)`` (float64; a jitter of 1e-6 times the mean variance, grown tenfold until the
    factorisation succeeds, keeps a singular covariance usable)."""
    z = z.double()
    mean = z.mean(0)
    cov = torch.atleast_2d(torch.cov(z.T)) if z.shape[0] > 1 else torch.eye(z.shape[1]).double()
    scale = float(cov.diagonal().mean()) or 1.0
    eye = torch.eye(z.shape[1], dtype=torch.float64)
    for p in range(-12, 1):
        chol, info = torch.linalg.cholesky_ex(cov + (10.0**p) * scale * eye)
        if int(info) == 0:
            return mean, chol
    raise MetricError("could not factorise the covariance of the training codes")


def parse_samplers(value: Any) -> list[str]:
    """The sampler names of an ``eval.sampler`` value: one name or a comma-separated list, old
    names mapped (:data:`SAMPLER_ALIASES`), duplicates dropped, order kept. Raises
    ``ValueError`` naming the bad value and the valid choices."""
    names = [t.strip() for t in value.split(",")] if isinstance(value, str) else [value]
    out: list[str] = []
    for name in names:
        name = SAMPLER_ALIASES.get(name, name)
        if name not in SAMPLERS:
            raise ValueError(
                f"invalid value {value!r} for eval.sampler; valid: {', '.join(SAMPLERS)} "
                "(or a comma-separated list of them)"
            )
        if name not in out:
            out.append(name)
    return out


def sampler_seed(seed: int, sampler: str) -> int:
    """Seed of sampler ``sampler``'s random stream in a cell of seed ``seed``: ``(seed,
    "samples")`` for ``prior`` and ``gaussian`` (the stream of earlier versions), ``(seed,
    "samples:" + sampler)`` for the others (:func:`vaebench.metric.metric_seed`)."""
    stream = "samples" if sampler in ("prior", "gaussian") else f"samples:{sampler}"
    return metric_seed(seed, stream)


def fit_gmm(z: Tensor, components: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(weights (K,), means (K, d), cholesky factors (K, d, d))`` float64 of a
    full-covariance Gaussian mixture fitted to codes ``z`` ``(N, d)`` by scikit-learn's
    ``GaussianMixture`` (EM from a k-means initialisation, ``random_state`` from ``seed``;
    ``K = min(components, N)``)."""
    from sklearn.mixture import GaussianMixture

    a = z.double().cpu().numpy()
    k = max(1, min(int(components), a.shape[0]))
    gmm = GaussianMixture(k, covariance_type="full", random_state=seed % 2**32, reg_covar=1e-6)
    gmm.fit(a)
    chol = np.linalg.cholesky(gmm.covariances_)
    return (torch.from_numpy(gmm.weights_), torch.from_numpy(gmm.means_), torch.from_numpy(chol))


def draw_gmm(params: tuple[Tensor, Tensor, Tensor], n: int, g: torch.Generator) -> Tensor:
    """``n`` codes ``(n, d)`` float64 drawn from :func:`fit_gmm`'s mixture with ``g``: a
    component by its weight, then ``mean + L e``, ``e ~ N(0, I)``."""
    weights, means, chol = params
    idx = torch.multinomial(weights, n, replacement=True, generator=g)
    eps = torch.randn(n, means.shape[1], generator=g, dtype=torch.float64)
    return means[idx] + torch.einsum("nij,nj->ni", chol[idx], eps)


class TwoStageVAE(torch.nn.Module):
    """The second-stage VAE of Dai & Wipf (2019) on codes ``z`` ``(N, d)``: encoder and decoder
    MLPs ``d -> width -> width -> ...`` (ReLU), a ``d``-dimensional ``u``, and the Gaussian
    decoder ``p(z|u) = N(mu(u), gamma^2 I)`` with a learned ``log gamma`` (as pythae's
    ``TwoStageVAESampler``: depth 2; its width is 1024, here ``two_stage_width``). Loss per code:
    ``|z - mu(u)|^2 / (2 gamma^2) + d log gamma + KL(q(u|z) || N(0, I))`` (the constant
    ``d/2 log 2 pi`` left out)."""

    def __init__(self, d: int, width: int) -> None:
        super().__init__()
        from vaebench.nn import mlp

        self.d = d
        self.encoder = mlp([d, width, width, 2 * d])
        self.decoder = mlp([d, width, width, d])
        self.log_gamma = torch.nn.Parameter(torch.zeros(()))
        #: The loss of the last training batch (:func:`fit_two_stage`), NaN before training.
        self.final_loss: float = float("nan")

    def loss(self, z: Tensor, eps: Tensor) -> Tensor:
        from vaebench.nn import gaussian_kl

        h = self.encoder(z)
        mean, logvar = h[:, : self.d], h[:, self.d :]
        u = mean + torch.exp(0.5 * logvar) * eps
        mu = self.decoder(u)
        rec = (z - mu).pow(2).sum(1) * torch.exp(-2 * self.log_gamma) / 2 + self.d * self.log_gamma
        return (rec + gaussian_kl(mean, logvar)).mean()

    def draw(self, n: int, g: torch.Generator) -> Tensor:
        """``n`` codes ``(n, d)``: ``mu(u) + gamma e`` with ``u, e ~ N(0, I)`` from ``g``."""
        u = torch.randn(n, self.d, generator=g)
        e = torch.randn(n, self.d, generator=g)
        with torch.no_grad():
            return (self.decoder(u) + torch.exp(self.log_gamma) * e).double()


def fit_two_stage(z: Tensor, steps: int, width: int, seed: int) -> TwoStageVAE:
    """A :class:`TwoStageVAE` trained on codes ``z`` ``(N, d)`` (on the CPU, float32) with Adam
    (lr 1e-3) for ``steps`` batches of ``min(128, N)`` codes drawn without replacement within
    each pass; initialisation, batches and noise all come from ``seed`` (the global torch
    generator is left as it was)."""
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
        z = z.detach().float().cpu().clone()  # a normal tensor (the codes may be inference ones)
        torch.manual_seed(seed % 2**63)
        g = torch.Generator().manual_seed(seed % 2**63)
        net = TwoStageVAE(z.shape[1], width)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        bs = min(128, z.shape[0])
        order = torch.randperm(z.shape[0], generator=g)
        pos = 0
        for _ in range(steps):
            if pos + bs > z.shape[0]:
                order, pos = torch.randperm(z.shape[0], generator=g), 0
            batch = z[order[pos : pos + bs]]
            pos += bs
            loss = net.loss(batch, torch.randn(bs, z.shape[1], generator=g))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.final_loss = float(loss.detach())
    return net.eval()


class _NoPrior(Exception):
    """The model has no prior to sample from (``sampler=prior``)."""


def _generate(
    model: Any, dataset: Any, ctx: EvalContext, n: int, sampler: str, options: dict[str, Any]
):
    seed = sampler_seed(ctx.seed, sampler)
    g = torch.Generator().manual_seed(seed)
    bs = ctx.eval_batch_size
    out = []
    with torch.inference_mode():
        if sampler == "prior":
            if not model.tags.can_sample:
                raise _NoPrior(
                    f"sampler 'prior': {type(getattr(model, 'wrapped', model)).__name__} has no prior to sample from "
                    "(tags.can_sample is false)"
                )
            for i in range(0, n, bs):
                out.append(model.sample(min(bs, n - i), generator=g).float().cpu())
            return torch.cat(out), {"sampler": "prior", "description": "model.sample (prior)"}
        z, _ = codes_mod.codes(model, dataset, "train", ctx)
        fitted = f"fitted to the codes of {z.shape[0]} training images, decoded"
        if sampler == "gaussian":
            mean, chol = expost_gaussian(z)
            eps = torch.randn(n, z.shape[1], generator=g, dtype=torch.float64)
            codes = (mean + eps @ chol.T).float()
            info: dict[str, Any] = {
                "description": "ex-post density estimation: a full-covariance Gaussian "
                f"{fitted} (Ghosh et al. 2020)"
            }
        elif sampler == "gmm":
            params = fit_gmm(z, options["gmm_components"], seed)
            codes = draw_gmm(params, n, g).float()
            info = {
                "description": f"ex-post Gaussian mixture of {params[0].shape[0]} full-covariance"
                f" components (scikit-learn GaussianMixture) {fitted} (Ghosh et al. 2020)",
                "gmm_components": int(params[0].shape[0]),
            }
        else:  # two-stage
            steps, width = options["two_stage_steps"], options["two_stage_width"]
            net = fit_two_stage(z, steps, width, seed)
            codes = net.draw(n, g).float()
            info = {
                "description": f"two-stage VAE (Dai & Wipf 2019): a second VAE ({width} x 2 "
                f"hidden units, learned decoder variance, {steps} Adam steps) {fitted}",
                "two_stage_steps": steps,
                "two_stage_width": width,
                "two_stage_final_loss": net.final_loss,
                "two_stage_gamma": float(torch.exp(net.log_gamma)),
            }
        for i in range(0, n, bs):
            out.append(model.decode(codes[i : i + bs].to(model.device)).float().cpu())
    info = {"sampler": sampler, **info, "fit_split": "train", "n_fit": int(z.shape[0]),
            "seed_stream": "samples" if sampler == "gaussian" else f"samples:{sampler}"}  # fmt: skip
    return torch.cat(out), info


def _resolve_sampler(model: Any, sampler: str) -> str:
    sampler = SAMPLER_ALIASES.get(sampler, sampler)
    if sampler == "auto":
        return "prior" if model.tags.can_sample else "gaussian"
    return sampler


def sample_features(
    model: Any,
    dataset: Any,
    ctx: EvalContext,
    options: dict[str, Any],
    sampler: str | None = None,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """``(real, generated, details)``: features ``(n, F)`` of ``n = min(sample_n, test images)``
    real test images and of ``n`` images generated by ``sampler`` (default: the single sampler
    of ``options["sampler"]``), and what to record (sampler and its settings, counts, the
    feature net). Cached in ``ctx.cache`` per cell, sampler and settings. Raises
    :class:`vaebench.errors.NotApplicableError` for ``prior`` on a model without one."""
    from vaebench.errors import NotApplicableError

    config = FeatureNetConfig(steps=options["feature_steps"], train_n=options["feature_train_n"])
    sampler = _resolve_sampler(model, sampler or parse_samplers(options["sampler"])[0])
    n = min(options["sample_n"], dataset.x_test.shape[0])
    settings = {
        "gmm": (options["gmm_components"],),
        "two-stage": (options["two_stage_steps"], options["two_stage_width"]),
    }.get(sampler, ())
    key = ("vaebench.samples", sampler, settings, n, config)
    if key not in ctx.cache:
        extractor = feature_extractor(dataset, config, ctx.cache_dir)
        bs = ctx.eval_batch_size
        real_key = ("vaebench.samples.real", n, config)
        if real_key not in ctx.cache:
            idx = codes_mod.subset_indices(dataset.x_test.shape[0], n)
            ctx.cache[real_key] = extractor.features(dataset.x_test[idx], ctx.device, bs)
        real = ctx.cache[real_key]
        try:
            images, sampler_info = _generate(model, dataset, ctx, n, sampler, options)
        except _NoPrior as exc:
            raise NotApplicableError(str(exc)) from None
        fake = extractor.features(images, ctx.device, bs)
        ctx.cache[("vaebench.samples.preview", key)] = images[:PREVIEW].clone()
        details = {
            **sampler_info,
            "n_real": n,
            "n_generated": n,
            "real_split": "test",
            "n_test_total": int(dataset.x_test.shape[0]),
            "feature_net": extractor.info,
        }
        ctx.cache[key] = (real, fake, details)
    real, fake, details = ctx.cache[key]
    ctx.cache["vaebench.samples.last_preview"] = ctx.cache[("vaebench.samples.preview", key)]
    return real, fake, dict(details)


# ----------------------------------------------------------------------------- the metrics


class _SampleMetric(codes_mod.BoundedMetric):
    group = "samples"
    cost = "expensive"
    default = False
    version = 1
    bounds = BOUNDS

    def applies_to(self, model: Any, dataset: Any) -> bool | str:
        if feature_labels(dataset) is None:
            return (
                f"needs labels or a ground-truth factor to train the feature network; dataset "
                f"{dataset.name!r} has neither"
            )
        return True

    def check_options(self, options: dict[str, Any]) -> None:
        super().check_options(options)
        parse_samplers(self.resolve_options(options)["sampler"])

    def declared(self, options: dict[str, Any] | None = None) -> dict[str, Value]:
        """The declared values; with several samplers in ``options["sampler"]`` each value once
        per sampler, named ``VALUE@SAMPLER``."""
        plain = {v.name: v for v in self.values}
        if options is None or "sampler" not in options:
            return plain
        samplers = parse_samplers(options["sampler"])
        if len(samplers) == 1:
            return plain
        return {
            f"{v.name}@{s}": dataclasses.replace(
                v, name=f"{v.name}@{s}", description=f"{v.description}; sampler {s}"
            )
            for s in samplers
            for v in self.values
        }

    def scores(self, real: Tensor, fake: Tensor, opts: dict[str, Any], ctx: EvalContext):
        """``(values, details)`` of one generated set."""
        raise NotImplementedError

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        opts = self.checked_options(ctx)
        samplers = parse_samplers(opts["sampler"])
        if len(samplers) == 1:
            real, fake, details = sample_features(model, dataset, ctx, opts, samplers[0])
            values, extra = self.scores(real, fake, opts, ctx)
            ctx.details.update({**details, **extra})
            return values
        out: dict[str, float] = {}
        per: dict[str, Any] = {}
        from vaebench.errors import NotApplicableError

        for sampler in samplers:
            try:
                real, fake, details = sample_features(model, dataset, ctx, opts, sampler)
            except NotApplicableError as exc:
                per[sampler] = {"sampler": sampler, "not_applicable": str(exc)}
                for v in self.values:
                    out[f"{v.name}@{sampler}"] = math.nan
                    ctx.value_not_applicable(f"{v.name}@{sampler}", str(exc))
                continue
            values, extra = self.scores(real, fake, opts, ctx)
            per[sampler] = {**details, **extra}
            out.update({f"{k}@{sampler}": v for k, v in values.items()})
            ctx.add_artifact(f"samples@{sampler}", ctx.cache["vaebench.samples.last_preview"])
        common = ("n_real", "n_generated", "real_split", "n_test_total", "feature_net")
        first: dict[str, Any] = next((d for d in per.values() if "n_real" in d), {})
        ctx.details.update({k: first[k] for k in common if k in first})
        ctx.details.update({"samplers": per})
        return out


class FrechetDistance(_SampleMetric):
    """Fréchet distance in the feature space (see the module docstring)."""

    name = "fd"
    options = dict(SHARED_OPTIONS)
    option_docs = dict(SHARED_DOCS)
    values = (
        Value(
            "fd", False, "", 2,
            "Fréchet distance between Gaussians fitted to features of test and generated "
            "images (vaebench's own classifier; compare at equal sample counts)", REF_FD,
        ),
    )  # fmt: skip

    def scores(self, real, fake, opts, ctx):
        return {"fd": frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))}, {}


class KernelDistance(_SampleMetric):
    """Kernel (KID) distance in the feature space (see the module docstring)."""

    name = "kid"
    options = {**SHARED_OPTIONS, "kid_subsets": 100, "kid_subset_size": 1000}
    option_docs = {
        **SHARED_DOCS,
        "kid_subsets": "random subset pairs whose MMD^2 estimates are averaged",
        "kid_subset_size": "features per subset (at most the sample count)",
    }
    values = (
        Value(
            "kid", False, "", 4,
            "unbiased squared MMD with the cubic polynomial kernel between features of test "
            "and generated images, mean over subsets (vaebench's own classifier)", REF_KID,
        ),
    )  # fmt: skip

    def scores(self, real, fake, opts, ctx):
        mean, std, m = kid(real, fake, opts["kid_subsets"], opts["kid_subset_size"], ctx.generator)
        whole = m == real.shape[0] == fake.shape[0]
        details = {
            "kid_std": None if whole else std,
            "kid_subsets": 1 if whole else opts["kid_subsets"],
            "kid_subset_size": m,
            "kernel": "(a.b / d + 1)^3",
            "estimator": (
                f"unbiased MMD^2 of the whole sets ({m} features each): no subsets, no std"
                if whole
                else f"mean unbiased MMD^2 over {opts['kid_subsets']} random subset pairs of "
                f"{m} features each (std over subsets stored)"
            ),
        }
        return {"kid": mean}, details


class PrecisionRecall(_SampleMetric):
    """Precision, recall, density and coverage (see the module docstring)."""

    name = "prdc"
    options = {**SHARED_OPTIONS, "prdc_k": 5}
    option_docs = {
        **SHARED_DOCS,
        "prdc_k": "nearest neighbour k that sets each ball's radius",
    }
    values = (
        Value(
            "prdc_precision", True, "fraction", 3,
            "fraction of generated images within the k-NN ball of some test image (fidelity)",
            REF_PRDC,
        ),
        Value(
            "prdc_recall", True, "fraction", 3,
            "fraction of test images within the k-NN ball of some generated image (diversity)",
            REF_PRDC,
        ),
        Value(
            "prdc_density", None, "", 3,
            "mean number of test images' k-NN balls holding a generated image, over k (1 when "
            "the distributions match; above 1 when samples crowd dense regions)", REF_PRDC,
        ),
        Value(
            "prdc_coverage", True, "fraction", 3,
            "fraction of test images whose k-NN ball holds a generated image", REF_PRDC,
        ),
    )  # fmt: skip

    def check_options(self, options: dict[str, Any]) -> None:
        super().check_options(options)
        opts = self.resolve_options(options)
        k = opts["prdc_k"]
        if opts["sample_n"] <= k:
            raise ValueError(
                f"invalid value {opts['sample_n']!r} for eval.sample_n: must exceed eval.prdc_k={k}"
            )

    def scores(self, real, fake, opts, ctx):
        got = prdc(real, fake, opts["prdc_k"])
        return {f"prdc_{k}": v for k, v in got.items()}, {
            "k": opts["prdc_k"],
            "distance": "euclidean",
        }


@hookimpl
def vaebench_metrics():
    return [FrechetDistance(), KernelDistance(), PrecisionRecall()]
