"""``vae``: the variational autoencoder of the lecture (Kingma & Welling, 2014)."""

from __future__ import annotations

import torch
from torch import Tensor

from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench.nn import TorchAutoencoder, reconstruction_loss


def gaussian_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(m, exp(s)) || N(0, I)) per example, summed over latent dims:
    ``0.5 * sum(exp(s) - (1 + s) + m^2)``. Shape ``(N,)``."""
    return 0.5 * (logvar.exp() - (1.0 + logvar) + mean.pow(2)).sum(1)


class VAE(TorchAutoencoder):
    """The encoder outputs a mean m and a log-variance s; the code is ``c = m + exp(s/2) e`` with
    ``e ~ N(0, I)``. Loss per example: reconstruction + ``beta`` * KL (see :func:`gaussian_kl`).
    ``encode`` returns m; ``sample(n)`` decodes draws from N(0, I)."""

    code_outputs = 2

    def __init__(self, *args, beta: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        self.beta = float(beta)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x), each ``(N, latent_dim)``."""
        h = self.encoder_outputs(x)
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        mean, logvar = self.posterior(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        rec = reconstruction_loss(self.decoder_logits(z), x, self.recon_loss).mean()
        kl = gaussian_kl(mean.float(), logvar.float()).mean()
        return {"loss": rec + self.beta * kl, "recon": rec, "kl": kl}

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn(n, self.latent_dim, generator=generator, device=self.device)
        return self.decode(z)


@hookimpl
def vaebench_models():
    return [ModelSpec("vae", VAE, "variational autoencoder: Gaussian code, KL to N(0, I)")]
