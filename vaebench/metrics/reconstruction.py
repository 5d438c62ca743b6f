"""Reconstruction quality on the test split: MSE, BCE and PSNR (plus the image artifacts the
report draws: reconstructions, a 2-D code view and, for models that can sample, prior
samples)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vaebench.errors import ModelContractError
from vaebench.hookspecs import hookimpl
from vaebench.metric import EvalContext, Metric, Value

BCE_EPS = 1e-6


class ReconstructionAccumulator:
    """Streaming reconstruction statistics, torchmetrics style (``update``/``compute``/``reset``).

    For images ``x`` and reconstructions ``x_hat`` in [0, 1] with D pixels each:

    - ``mse``  = mean over images and pixels of ``(x_hat - x)^2``;
    - ``bce``  = mean over images and pixels of ``-[x log x_hat + (1-x) log(1-x_hat)]`` (nats per
      pixel, ``x_hat`` clipped to ``[1e-6, 1 - 1e-6]``);
    - ``psnr`` = mean over images of ``10 log10(1 / mse_i)`` (dB, peak value 1; the per-image MSE
      is floored at 1e-10, i.e. at most 100 dB).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.n_images = 0
        self.n_pixels = 0
        self.sq_sum = 0.0
        self.bce_sum = 0.0
        self.psnr_sum = 0.0

    def update(self, x: Tensor, x_hat: Tensor) -> None:
        if x.shape != x_hat.shape:
            raise ValueError(
                f"reconstruction shape {tuple(x_hat.shape)} differs from input {tuple(x.shape)}"
            )
        x = x.reshape(x.shape[0], -1).double()
        x_hat = x_hat.reshape(x_hat.shape[0], -1).double()
        sq = (x_hat - x).pow(2)
        per_image_mse = sq.mean(1)
        p = x_hat.clamp(BCE_EPS, 1 - BCE_EPS)
        bce = -(x * p.log() + (1 - x) * (1 - p).log())
        self.n_images += x.shape[0]
        self.n_pixels += x.numel()
        self.sq_sum += float(sq.sum())
        self.bce_sum += float(bce.sum())
        self.psnr_sum += float((10 * torch.log10(1.0 / per_image_mse.clamp_min(1e-10))).sum())

    def compute(self) -> dict[str, float]:
        if self.n_images == 0:
            return {"mse": math.nan, "bce": math.nan, "psnr": math.nan}
        return {
            "mse": self.sq_sum / self.n_pixels,
            "bce": self.bce_sum / self.n_pixels,
            "psnr": self.psnr_sum / self.n_images,
        }


LATENT_POINTS = 300


def latent_projection(z: Tensor) -> tuple[Tensor, str]:
    """Codes ``(N, d)`` -> 2-D points ``(N, 2)``: the codes themselves when ``d <= 2`` (padded
    with zeros for ``d = 1``), else their projection on the first two principal components
    (sign fixed so the largest loading is positive)."""
    z = z.double()
    if z.shape[1] == 2:
        return z, "identity"
    if z.shape[1] == 1:
        return torch.cat([z, torch.zeros_like(z)], 1), "identity"
    centred = z - z.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    comps = vh[:2]
    signs = torch.sign(comps[torch.arange(2), comps.abs().argmax(1)])
    signs[signs == 0] = 1
    return centred @ (comps.T * signs), "pca"


#: Images drawn from the prior for the report's sample grid (models that can sample).
N_SAMPLES = 16

REF_MSE = "standard; e.g. Goodfellow, Bengio & Courville, Deep Learning, 2016, ch. 14"
REF_BCE = (
    "Bernoulli decoder loss of Kingma & Welling, Auto-Encoding Variational Bayes, ICLR 2014 "
    "(appendix C)"
)
REF_PSNR = (
    "Huynh-Thu & Ghanbari, Scope of validity of PSNR in image/video quality assessment, "
    "Electronics Letters 2008"
)


class Reconstruction(Metric):
    """Reconstruction error of the test images (see :class:`ReconstructionAccumulator`).

    Artifacts for the report: ``recon_originals`` / ``recon_outputs`` (8 test images and their
    reconstructions), ``latent_2d`` (a 2-D view of 300 test codes) and, for models whose tags
    say they can sample, ``samples``: :data:`N_SAMPLES` images ``(N, C, H, W)`` in [0, 1] drawn
    with ``model.sample`` from the metric's own generator (a model whose ``sample`` raises
    keeps its values; the details say why there are no samples)."""

    name = "reconstruction"
    group = "quality"
    values = (
        Value("mse", False, "per pixel", 5,
              "mean squared error between test images and their reconstructions, over images "
              "and pixels (pixels in [0, 1])", REF_MSE),
        Value("bce", False, "nats/pixel", 4,
              "binary cross-entropy of the test images under their reconstructions read as "
              "Bernoulli means (clipped to [1e-6, 1 - 1e-6]), mean over images and pixels",
              REF_BCE),
        Value("psnr", True, "dB", 2,
              "peak signal-to-noise ratio 10 log10(1 / MSE) per image (peak 1, at most "
              "100 dB), mean over test images", REF_PSNR),
    )  # fmt: skip

    def evaluate(self, model, dataset, ctx: EvalContext) -> dict[str, float]:
        acc = ReconstructionAccumulator()
        x = dataset.x_test
        for i in range(0, x.shape[0], ctx.eval_batch_size):
            xb = x[i : i + ctx.eval_batch_size].to(ctx.device)
            acc.update(xb, model.decode(model.encode(xb)))
        # a few originals and reconstructions for the report's reconstruction grid
        k = min(8, x.shape[0])
        idx = torch.randperm(x.shape[0], generator=ctx.generator)[:k]
        xs = x[idx].to(ctx.device)
        ctx.add_artifact("recon_originals", xs.cpu())
        ctx.add_artifact("recon_outputs", model.decode(model.encode(xs)).cpu())
        # a 2-D view of the code space, coloured by label (or first true factor) in reports
        k = min(LATENT_POINTS, x.shape[0])
        idx = torch.randperm(x.shape[0], generator=ctx.generator)[:k].sort().values
        xy, projection = latent_projection(model.encode(x[idx].to(ctx.device)).cpu())
        if dataset.y_test is not None:
            labels: list[int] | list[float] | None = [int(v) for v in dataset.y_test[idx]]
        elif dataset.factors_test is not None:
            labels = [round(float(v), 4) for v in dataset.factors_test[idx, 0]]
        else:
            labels = None
        ctx.add_artifact(
            "latent_2d",
            {"xy": [[round(float(a), 4), round(float(b), 4)] for a, b in xy.tolist()],
             "labels": labels, "projection": projection, "dim": int(model.latent_dim)},
        )  # fmt: skip
        if getattr(getattr(model, "tags", None), "can_sample", False):
            self._samples(model, ctx)
        return acc.compute()

    @staticmethod
    def _samples(model, ctx: EvalContext) -> None:
        """Store :data:`N_SAMPLES` prior samples as the ``samples`` artifact."""
        try:
            with torch.inference_mode():
                images = model.sample(N_SAMPLES, generator=ctx.generator)
        except ModelContractError:
            raise  # the model broke the contract: the cell fails, as for any output
        except Exception as exc:  # noqa: BLE001 - no sample grid, the values stand
            ctx.details["samples"] = f"model.sample raised {type(exc).__name__}: {exc}"
            return
        ctx.add_artifact("samples", images.float().cpu())


@hookimpl
def vaebench_metrics():
    return [Reconstruction()]
