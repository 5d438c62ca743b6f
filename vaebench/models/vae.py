"""``vae``: the variational autoencoder of the lecture (Kingma & Welling, 2014), with an
optional linear KL warm-up (Bowman et al., 2016)."""

from __future__ import annotations

import torch
from torch import Tensor

from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench.nn import (
    TorchAutoencoder,
    finite_number,
    gaussian_kl,
    log_likelihood,
    positive_int,
    reparameterize,
    vae_loss,
)

__all__ = ["VAE", "gaussian_kl", "kl_schedule"]


def kl_schedule(epoch: int, beta: float, warmup_epochs: int) -> float:
    """KL weight in 1-based ``epoch``: ``beta * min(1, epoch / warmup_epochs)`` (linear
    warm-up, Bowman et al. 2016), ``beta`` throughout when ``warmup_epochs`` is 0."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, epoch / warmup_epochs)


class VAE(TorchAutoencoder):
    """The encoder outputs a mean ``m`` and a log-variance ``s`` of ``q(z|x) = N(m,
    diag(exp(s)))``; the code is ``z = m + exp(s/2) e``, ``e ~ N(0, I)``; the prior is
    ``N(0, I)``. Loss per example: reconstruction + ``w`` * KL (:func:`vaebench.nn.vae_loss`)
    with ``w = beta * min(1, epoch / kl_warmup_epochs)`` (``beta`` throughout when
    ``kl_warmup_epochs`` is 0; during a warm-up ``w`` is logged per epoch as ``kl_weight``).

    ``encode`` returns ``m``; ``posterior(x)`` returns ``(m, s)``; ``sample(n)`` decodes draws
    from the prior; ``log_likelihood(x, z)`` is ``log p(x|z)`` under the observation model of
    ``recon_loss`` (``tags.likelihood``: ``bernoulli`` for ``bce``, ``gaussian`` with variance
    1/2 per pixel for ``mse``; see :func:`vaebench.nn.log_likelihood`).
    """

    code_outputs = 2
    param_docs = {
        "beta": "weight of the KL term (1: the VAE; > 1: a beta-VAE)",
        "kl_warmup_epochs": "epochs of linear KL warm-up from beta/N to beta; 0 = off",
    }
    param_limits = {"kl_warmup_epochs": (100_000, "an epoch count")}

    def __init__(self, *args, beta: float = 1.0, kl_warmup_epochs: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        finite_number("beta", beta)
        positive_int("kl_warmup_epochs", kl_warmup_epochs, minimum=0, why=" (0 = no warm-up)")
        self.beta = float(beta)
        self.kl_warmup_epochs = int(kl_warmup_epochs)
        #: The KL weight of the current epoch (``beta`` outside training).
        self.kl_weight = self.beta

    def split(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder output ``(N, 2 * latent_dim)`` to the posterior's mean and log-variance."""
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self.kl_weight = kl_schedule(epoch, self.beta, self.kl_warmup_epochs)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.kl_warmup_epochs:
            logs["kl_weight"] = self.kl_weight

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        mean, logvar = self.split(self.encoder_outputs(x))
        logits = self.decoder_logits(reparameterize(mean, logvar))
        return vae_loss(logits, x, mean, logvar, beta=self.kl_weight, recon_loss=self.recon_loss)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of ``q(z|x)`` for images ``x`` ``(N, C, H, W)``, each
        ``(N, latent_dim)`` float32; evaluation mode, no autograd."""
        with self.inference():
            mean, logvar = self.split(self.encoder_outputs(x.to(self.device)))
            return mean.float(), logvar.float()

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(x|z)`` in nats per image, summed over pixels: ``(N,)`` for images ``x``
        ``(N, C, H, W)`` and codes ``z`` ``(N, latent_dim)``. Bernoulli (``recon_loss="bce"``;
        a normalised density only for binary images) or Gaussian with variance 1/2 per pixel
        (``"mse"``; normalised: includes ``-D/2 log(pi)``); evaluation mode, no autograd."""
        with self.inference():
            logits = self.decoder_logits(z.to(self.device))
            return log_likelihood(logits, x.to(self.device), self.recon_loss)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images decoded from codes drawn from ``N(0, I)`` with ``generator`` (on the
        generator's device -- the CPU for the contract's generators -- then moved)."""
        where = generator.device if generator is not None else torch.device("cpu")
        z = torch.randn(n, self.latent_dim, generator=generator, device=where)
        return self.decode(z.to(self.device))


@hookimpl
def vaebench_models():
    return [ModelSpec("vae", VAE, "variational autoencoder: Gaussian code, KL to N(0, I)")]
