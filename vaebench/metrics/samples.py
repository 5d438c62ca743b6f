"""Sample quality: Fréchet distance, kernel distance (KID) and precision/recall/density/coverage.

All three compare features of generated images with features of real test images, in the
feature space of the small classifier vaebench trains on the dataset's training split
(:mod:`vaebench.metrics.features`; its weight sha256 and test accuracy are recorded with every
score). Real set: ``min(sample_n, test images)`` test images (a fixed choice, the same for every
cell); generated set: as many images, drawn

- from the model's prior (``model.sample``) when the model can sample (``sampler=auto`` or
  ``prior``), or
- for models that cannot (or with ``sampler=expost``), by **ex-post density estimation** (Ghosh
  et al. 2020): a full-covariance Gaussian fitted to the codes of all training images, whose
  draws are decoded. The details say which sampler was used.

The generated images come from one random stream per cell, seeded from ``(seed, "samples")``,
so ``fd``, ``kid`` and ``prdc`` describe the same generated set, and selecting any subset of
them changes none of their numbers. Scores depend on the number of samples (FD is biased
upwards for small sets): compare them at equal counts, which the details record.

- ``fd`` (Heusel et al. 2017, "FID" in Inception features): ``|mu_r - mu_g|^2 + tr(S_r + S_g -
  2 (S_r S_g)^(1/2))`` between Gaussians fitted to the two feature sets; the trace of the matrix
  square root is computed from the eigenvalues of ``S_r^(1/2) S_g S_r^(1/2)`` (symmetric).
- ``kid`` (Bińkowski et al. 2018): the unbiased estimate of the squared maximum mean discrepancy
  with the cubic polynomial kernel ``k(a, b) = (a.b / d + 1)^3``, averaged over ``kid_subsets``
  random subsets of ``kid_subset_size`` real and generated features each.
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

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaebench.errors import MetricError
from vaebench.hookspecs import hookimpl
from vaebench.metric import EvalContext, Metric, Value, metric_seed
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
]

#: ``sampler`` choices: ``auto`` (the prior if the model can sample, else ex-post), ``prior``,
#: ``expost`` (a Gaussian fitted to the training codes).
SAMPLERS = ("auto", "prior", "expost")

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

#: Options every sample-quality metric shares (one option each, one default).
SHARED_OPTIONS: dict[str, Any] = {
    "sample_n": 10000,
    "sampler": "auto",
    "feature_steps": FeatureNetConfig.steps,
    "feature_train_n": FeatureNetConfig.train_n,
}
#: Documented bounds of the sample-quality options (``--set eval.KEY=VALUE``), both ends
#: included; a tuple of other values lists the valid choices. ``kid_subset_size`` and
#: ``sample_n`` bound the distance and kernel blocks, ``feature_steps`` and ``kid_subsets`` the
#: work.
BOUNDS: dict[str, Any] = {
    "sample_n": (2, 100_000),
    "sampler": SAMPLERS,
    "feature_steps": (1, 100_000),
    "feature_train_n": (10, 1_000_000),
    "kid_subsets": (1, 10_000),
    "kid_subset_size": (2, 10_000),
    "prdc_k": (1, 1000),
}
SHARED_DOCS = codes_mod.documented(
    {
        "sample_n": "real test images and generated images compared (at most the test split)",
        "sampler": "auto: the prior if the model samples, else ex-post; prior; expost (a "
        "Gaussian fitted to the training codes, Ghosh et al. 2020)",
        "feature_steps": "mini-batch updates (of 128 images) that train the feature classifier, "
        "once per dataset (cached)",
        "feature_train_n": "at most this many training images train the feature classifier",
    },
    BOUNDS,
)

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
    kernel sums are taken in row blocks, so memory stays bounded for any ``m``."""
    x, y = real.double(), fake.double()
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 features in each set, got {m}")
    scores = []
    for _ in range(n_subsets):
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
    return float(s.mean()), float(s.std()), m


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


def _generate(model: Any, dataset: Any, ctx: EvalContext, n: int, sampler: str):
    g = torch.Generator().manual_seed(metric_seed(ctx.seed, "samples"))
    bs = ctx.eval_batch_size
    out = []
    with torch.inference_mode():
        if sampler == "prior":
            for i in range(0, n, bs):
                out.append(model.sample(min(bs, n - i), generator=g).float().cpu())
            return torch.cat(out), {"sampler": "prior", "description": "model.sample (prior)"}
        z, _ = codes_mod.codes(model, dataset, "train", ctx)
        mean, chol = expost_gaussian(z)
        eps = torch.randn(n, z.shape[1], generator=g, dtype=torch.float64)
        codes = (mean + eps @ chol.T).float()
        for i in range(0, n, bs):
            out.append(model.decode(codes[i : i + bs].to(model.device)).float().cpu())
    info = {
        "sampler": "expost",
        "description": "ex-post density estimation: a full-covariance Gaussian fitted to "
        f"the codes of {z.shape[0]} training images, decoded (Ghosh et al. 2020)",
    }
    return torch.cat(out), info


def _resolve_sampler(model: Any, sampler: str) -> str:
    if sampler == "auto":
        return "prior" if model.tags.can_sample else "expost"
    if sampler == "prior" and not model.tags.can_sample:
        raise MetricError(
            f"eval.sampler='prior': {type(model).__name__} cannot sample (tags.can_sample is "
            "false); use auto or expost"
        )
    return sampler


def sample_features(
    model: Any, dataset: Any, ctx: EvalContext, options: dict[str, Any]
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """``(real, generated, details)``: features ``(n, F)`` of ``n = min(sample_n, test images)``
    real test images and of ``n`` generated images, and what to record (sampler, counts, the
    feature net). Cached in ``ctx.cache`` per cell and settings."""
    config = FeatureNetConfig(steps=options["feature_steps"], train_n=options["feature_train_n"])
    sampler = _resolve_sampler(model, options["sampler"])
    n = min(options["sample_n"], dataset.x_test.shape[0])
    key = ("vaebench.samples", sampler, n, config)
    if key not in ctx.cache:
        extractor = feature_extractor(dataset, config, ctx.cache_dir)
        bs = ctx.eval_batch_size
        idx = codes_mod.subset_indices(dataset.x_test.shape[0], n)
        real = extractor.features(dataset.x_test[idx], ctx.device, bs)
        images, sampler_info = _generate(model, dataset, ctx, n, sampler)
        fake = extractor.features(images, ctx.device, bs)
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
    return real, fake, dict(details)


# ----------------------------------------------------------------------------- the metrics


class _SampleMetric(Metric):
    group = "samples"
    cost = "expensive"
    default = False
    version = 1

    def applies_to(self, model: Any, dataset: Any) -> bool | str:
        if feature_labels(dataset) is None:
            return (
                f"needs labels or a ground-truth factor to train the feature network; dataset "
                f"{dataset.name!r} has neither"
            )
        return True

    def check_options(self, options: dict[str, Any]) -> None:
        codes_mod.check_bounded(self.resolve_options(options), BOUNDS)

    def _samples(self, model: Any, dataset: Any, ctx: EvalContext):
        opts = self.resolve_options(ctx.options)
        self.check_options(opts)
        real, fake, details = sample_features(model, dataset, ctx, opts)
        ctx.details.update(details)
        return real, fake, opts


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

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        real, fake, _ = self._samples(model, dataset, ctx)
        return {"fd": frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))}


class KernelDistance(_SampleMetric):
    """Kernel (KID) distance in the feature space (see the module docstring)."""

    name = "kid"
    options = {**SHARED_OPTIONS, "kid_subsets": 100, "kid_subset_size": 1000}
    option_docs = {
        **SHARED_DOCS,
        **codes_mod.documented(
            {
                "kid_subsets": "random subset pairs whose MMD^2 estimates are averaged",
                "kid_subset_size": "features per subset (at most the sample count)",
            },
            BOUNDS,
        ),
    }
    values = (
        Value(
            "kid", False, "", 4,
            "unbiased squared MMD with the cubic polynomial kernel between features of test "
            "and generated images, mean over subsets (vaebench's own classifier)", REF_KID,
        ),
    )  # fmt: skip

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        real, fake, opts = self._samples(model, dataset, ctx)
        mean, std, m = kid(real, fake, opts["kid_subsets"], opts["kid_subset_size"], ctx.generator)
        ctx.details.update(
            {"kid_std": std, "kid_subsets": opts["kid_subsets"], "kid_subset_size": m,
             "kernel": "(a.b / d + 1)^3"}
        )  # fmt: skip
        return {"kid": mean}


class PrecisionRecall(_SampleMetric):
    """Precision, recall, density and coverage (see the module docstring)."""

    name = "prdc"
    options = {**SHARED_OPTIONS, "prdc_k": 5}
    option_docs = {
        **SHARED_DOCS,
        **codes_mod.documented(
            {"prdc_k": "nearest neighbour k that sets each ball's radius"}, BOUNDS
        ),
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

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        real, fake, opts = self._samples(model, dataset, ctx)
        got = prdc(real, fake, opts["prdc_k"])
        ctx.details.update({"k": opts["prdc_k"], "distance": "euclidean"})
        return {f"prdc_{k}": v for k, v in got.items()}


@hookimpl
def vaebench_metrics():
    return [FrechetDistance(), KernelDistance(), PrecisionRecall()]
