"""beta-VAE (Higgins et al., 2017) with a linear KL warm-up (Bowman et al., 2016).

The loss per example is ``reconstruction + w(epoch) * KL(q(z|x) || N(0, I))`` with the weight
rising linearly from ``beta / warmup_epochs`` in the first epoch to ``beta`` from epoch
``warmup_epochs`` on (``warmup_epochs=0``: ``beta`` throughout). A large ``beta`` pushes towards
disentangled but blurrier codes; the warm-up lets the decoder learn to use the code before the KL
term can switch latent units off (posterior collapse) -- the ``active-units`` metric of this
plugin counts how many survive.

``encode`` returns the posterior mean; ``sample(n)`` decodes draws from N(0, I).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from vaebench.model import FitReport, ProgressCallback, TorchAutoencoder, reconstruction_loss


def gaussian_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per example, summed over latent dims: ``(N,)``."""
    return 0.5 * (logvar.exp() - 1.0 - logvar + mean.pow(2)).sum(1)


def kl_weight(epoch: int, beta: float, warmup_epochs: int) -> float:
    """KL weight during 1-based ``epoch``: ``beta * min(1, epoch / warmup_epochs)``."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, epoch / warmup_epochs)


class BetaVAE(TorchAutoencoder):
    """Gaussian-code VAE whose KL term is weighted by a warmed-up ``beta``."""

    code_outputs = 2  # the encoder outputs a mean and a log-variance per latent unit

    def __init__(
        self,
        input_shape: Sequence[int],
        device: torch.device | str = "cpu",
        latent_dim: int = 10,
        hidden: tuple[int, ...] = (512, 256),
        epochs: int = 30,
        batch_size: int = 128,
        lr: float = 1e-3,
        recon_loss: str = "bce",
        beta: float = 4.0,
        warmup_epochs: int = 10,
    ) -> None:
        super().__init__(
            input_shape,
            device,
            latent_dim=latent_dim,
            hidden=hidden,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            recon_loss=recon_loss,
        )
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int):
            raise ValueError(f"warmup_epochs must be an integer >= 0, got {warmup_epochs!r}")
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an integer >= 0, got {warmup_epochs!r}")
        self.beta = float(beta)
        self.warmup_epochs = warmup_epochs
        self.current_kl_weight = kl_weight(1, self.beta, warmup_epochs)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x), each ``(N, latent_dim)``."""
        h = self.encoder_outputs(x)
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        mean, logvar = self.posterior(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        rec = reconstruction_loss(self.decoder_logits(z), x, self.recon_loss).mean()
        kl = gaussian_kl(mean.float(), logvar.float()).mean()
        w = self.current_kl_weight
        return {
            "loss": rec + w * kl,
            "recon": rec,
            "kl": kl,
            "kl_weight": torch.full((), w, device=rec.device),
        }

    def fit(self, x: Tensor, progress: ProgressCallback | None = None) -> FitReport:
        """The shared training loop; the KL weight is advanced after every epoch through the
        loop's progress callback (which then calls the caller's ``progress``)."""

        def step(done: int, total: int, logs: dict[str, float]) -> None:
            self.current_kl_weight = kl_weight(done + 1, self.beta, self.warmup_epochs)
            if progress is not None:
                progress(done, total, logs)

        self.current_kl_weight = kl_weight(1, self.beta, self.warmup_epochs)
        return super().fit(x, progress=step)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn(n, self.latent_dim, generator=generator).to(self.device)
        return self.decode(z)
