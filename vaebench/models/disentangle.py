"""The disentangling VAEs: ``beta-tcvae``, ``dip-vae`` (I and II) and ``factorvae``.

All three are the :class:`vaebench.models.vae.VAE` (Gaussian ``q(z|x)``, prior ``N(0, I)``,
the same networks, ``encode`` = posterior mean) with a different regulariser added to the
negative ELBO; per example and batch-averaged as in google-research/disentanglement_lib
(``methods/unsupervised/vae.py``), whose defaults they take where they fit:

- ``beta-tcvae`` (Chen et al., Isolating Sources of Disentanglement in VAEs, NeurIPS 2018, Eq. 4
  with alpha = gamma = 1): ``recon + KL + (beta - 1) * TC``; the total correlation ``TC =
  E_q(z)[log q(z) - sum_l log q(z_l)]`` is estimated on the batch by minibatch-weighted
  sampling, ``log q(z_i) ~ logsumexp_j log q(z_i | x_j) - log(N M)`` (batch M, data set N),
  likewise per dimension. The constants give ``TC = TC_dl + (d - 1) log(N M)``, where ``TC_dl``
  is disentanglement_lib's ``total_correlation``, which drops them (the gradient is the same);
  vaebench logs the paper's estimate. ``beta`` default 6 (Chen et al. on dSprites;
  disentanglement_lib sweeps 1 to 10);
- ``dip-vae`` (Kumar, Sattigeri & Balakrishnan, ICLR 2018, Eq. 6 and 7): ``recon + KL +
  lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2`` with ``C`` the batch
  covariance of the posterior means (type ``i``), or that plus the mean posterior variance on
  the diagonal (type ``ii``: the covariance of ``z`` under ``q(z)``); ``lambda_d =
  lambda_d_factor * lambda_od``. Defaults ``lambda_od`` 10 (disentanglement_lib sweeps 1 to
  50), ``lambda_d_factor`` 10 -- disentanglement_lib's value for type i; it uses 1 for type ii;
- ``factorvae`` (Kim & Mnih, Disentangling by Factorising, ICML 2018, Eq. 2): ``recon + KL +
  gamma * TC`` with ``TC ~ mean D(z)``, the logit of a discriminator telling codes ``z ~
  q(z|x)`` of the batch from codes whose every dimension is permuted across the batch (a draw
  from the product of the marginals). The discriminator (``disc_depth`` layers of
  ``disc_width`` units, LeakyReLU 0.2: the paper's 6 x 1000) minimises ``0.5 BCE(D(z), 1) +
  0.5 BCE(D(perm z), 0)`` with its own Adam optimiser (``disc_lr`` 1e-4, betas 0.5 and 0.9, as
  disentanglement_lib), trained in the same step on the same batch (loop v3 of
  :mod:`vaebench.train`, disentanglement_lib's ``tf.group`` of both train ops). One logit
  ``D = l_0 - l_1`` is the two-logit softmax discriminator of disentanglement_lib. ``gamma``
  default 40 (disentanglement_lib sweeps 10 to 100).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench.models.vae import VAE
from vaebench.nn import discriminator_mlp, finite_number, reconstruction_loss, reparameterize
from vaebench.train import OptimizerStep

__all__ = [
    "BetaTCVAE",
    "DIPVAE",
    "FactorVAE",
    "gaussian_log_density",
    "total_correlation",
    "dip_regularizer",
    "permute_dims",
]

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_density(z: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """Elementwise ``log N(z; mean, exp(logvar))`` (broadcasting), nats."""
    return -0.5 * ((z - mean) ** 2 * torch.exp(-logvar) + logvar + LOG_2PI)


def total_correlation(z: Tensor, mean: Tensor, logvar: Tensor, dataset_size: int) -> Tensor:
    """Minibatch-weighted-sampling estimate of the total correlation of ``q(z)`` (Chen et al.
    2018, Eq. S6 -- see the module docstring): ``z``, ``mean``, ``logvar`` ``(M, d)`` (codes
    drawn from ``q(z|x_i)`` and its parameters); ``dataset_size`` N. A scalar, nats."""
    m, d = z.shape
    log_q = gaussian_log_density(z[:, None, :], mean[None], logvar[None])  # (M, M, d)
    log_norm = math.log(dataset_size * m)
    log_qz = torch.logsumexp(log_q.sum(2), dim=1) - log_norm
    log_prod = (torch.logsumexp(log_q, dim=1) - log_norm).sum(1)
    return (log_qz - log_prod).mean()


def dip_regularizer(
    mean: Tensor, logvar: Tensor, lambda_od: float, lambda_d: float, dip_type: str
) -> Tensor:
    """DIP-VAE's penalty (module docstring): ``lambda_od * sum of squared off-diagonal entries
    + lambda_d * sum of (diagonal - 1)^2`` of the batch covariance of the posterior means
    (population covariance, as disentanglement_lib), plus the mean posterior variance on the
    diagonal for type ``ii``."""
    centred = mean - mean.mean(0, keepdim=True)
    cov = centred.T @ centred / mean.shape[0]
    if dip_type == "ii":
        cov = cov + torch.diag(torch.exp(logvar).mean(0))
    diag = torch.diagonal(cov)
    off = cov - torch.diag(diag)
    return lambda_od * off.pow(2).sum() + lambda_d * (diag - 1.0).pow(2).sum()


def permute_dims(z: Tensor) -> Tensor:
    """Every column of ``z`` ``(M, d)`` permuted independently across the batch (the default
    torch generator of ``z``'s device)."""
    idx = torch.argsort(torch.rand(z.shape, device=z.device), dim=0)
    return torch.gather(z, 0, idx)


class _RegularisedVAE(VAE):
    """The VAE's loss plus :meth:`penalty` (per batch, nats per image)."""

    def fit(self, x: Tensor, y: Tensor | None = None, progress=None):
        self._n_train = int(x.shape[0])  # the data set size N of beta-TC-VAE's estimate
        return super().fit(x, y, progress)

    def _parts(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        mean, logvar = self.split(self.encoder_outputs(x))
        z = reparameterize(mean, logvar)
        rec = reconstruction_loss(self.decoder_logits(z), x, self.recon_loss).mean()
        kl = 0.5 * (mean.float().pow(2) + logvar.float().exp() - logvar.float() - 1).sum(1).mean()
        return mean.float(), logvar.float(), z.float(), rec, kl


class BetaTCVAE(_RegularisedVAE):
    """beta-TC-VAE (see the module docstring). ``beta`` weights the total correlation; the KL
    term keeps weight 1 (times the optional warm-up of ``kl_warmup_epochs``)."""

    param_docs = {
        "beta": "total-correlation weight of beta-TC-VAE (1: the VAE; Chen et al. dSprites: 6)",
    }

    def __init__(self, *args, beta: float = 6.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tc_beta = finite_number("beta", beta)
        self._n_train = 1

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        mean, logvar, z, rec, kl = self._parts(x)
        tc = total_correlation(z, mean, logvar, max(self._n_train, x.shape[0]))
        loss = rec + self.kl_weight * kl + (self.tc_beta - 1.0) * tc
        return {"loss": loss, "recon": rec, "kl": kl, "tc": tc}


class DIPVAE(_RegularisedVAE):
    """DIP-VAE I or II (see the module docstring)."""

    param_docs = {
        "lambda_od": "DIP-VAE weight of the off-diagonal covariance penalty",
        "lambda_d_factor": "diagonal weight = lambda_d_factor * lambda_od "
        "(disentanglement_lib: 10 for type i, 1 for type ii)",
        "dip_type": "i: covariance of the posterior means; ii: of z under q(z)",
    }

    def __init__(
        self,
        *args,
        lambda_od: float = 10.0,
        lambda_d_factor: float = 10.0,
        dip_type: str = "i",
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lambda_od = finite_number("lambda_od", lambda_od)
        self.lambda_d = finite_number("lambda_d_factor", lambda_d_factor) * self.lambda_od
        if dip_type not in ("i", "ii"):
            raise ValueError(f"unknown dip_type {dip_type!r}; valid: i, ii")
        self.dip_type = dip_type

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        mean, logvar, _, rec, kl = self._parts(x)
        dip = dip_regularizer(mean, logvar, self.lambda_od, self.lambda_d, self.dip_type)
        return {"loss": rec + self.kl_weight * kl + dip, "recon": rec, "kl": kl, "dip": dip}


class FactorVAE(_RegularisedVAE):
    """FactorVAE (see the module docstring): two optimisers, the VAE's (``optimizer``, ``lr``)
    and the discriminator's (Adam, ``disc_lr``, betas 0.5 and 0.9). The discriminator is a
    submodule: saved and loaded with the model; ``encode``/``decode`` do not use it."""

    param_docs = {
        "gamma": "FactorVAE weight of the discriminator's total-correlation estimate",
        "disc_width": "units per discriminator layer (Kim & Mnih: 1000)",
        "disc_depth": "discriminator hidden layers (Kim & Mnih: 6)",
        "disc_lr": "learning rate of the discriminator's Adam (disentanglement_lib: 1e-4)",
    }

    def __init__(
        self,
        *args,
        gamma: float = 40.0,
        disc_width: int = 1000,
        disc_depth: int = 6,
        disc_lr: float = 1e-4,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.gamma = finite_number("gamma", gamma)
        for name, v in (("disc_width", disc_width), ("disc_depth", disc_depth)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.disc_lr = finite_number("disc_lr", disc_lr)
        if self.disc_lr <= 0:
            raise ValueError(f"disc_lr must be > 0, got {disc_lr!r}")
        self.discriminator = discriminator_mlp(self.latent_dim, (disc_width,) * disc_depth)
        self.discriminator.to(self.device)

    def configure_optimizers(self) -> list[OptimizerStep]:
        disc = [p for p in self.discriminator.parameters() if p.requires_grad]
        return [
            OptimizerStep("vae", self.make_optimizer(self.autoencoder_parameters())),
            OptimizerStep(
                "discriminator",
                torch.optim.Adam(disc, lr=self.disc_lr, betas=(0.5, 0.9)),
                "disc_loss",
            ),
        ]

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        mean, logvar, z, rec, kl = self._parts(x)
        logit = self.discriminator(z).float().squeeze(1)
        logit_perm = self.discriminator(permute_dims(z)).float().squeeze(1)
        tc = logit.mean()
        disc = 0.5 * (
            F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
            + F.binary_cross_entropy_with_logits(logit_perm, torch.zeros_like(logit_perm))
        )
        loss = rec + self.kl_weight * kl + self.gamma * tc
        return {"loss": loss, "disc_loss": disc, "recon": rec, "kl": kl, "tc": tc}


@hookimpl
def vaebench_models():
    return [
        ModelSpec(
            "beta-tcvae",
            BetaTCVAE,
            "beta-TC-VAE: VAE + (beta - 1) x total correlation (minibatch-weighted sampling)",
        ),
        ModelSpec(
            "dip-vae",
            DIPVAE,
            "DIP-VAE I/II: VAE + penalty on the covariance of the codes off the identity",
        ),
        ModelSpec(
            "factorvae",
            FactorVAE,
            "FactorVAE: VAE + gamma x TC from a discriminator on permuted codes (2 optimisers)",
        ),
    ]
