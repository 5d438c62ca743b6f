"""beta-VAE (Higgins et al., 2017) with a linear KL warm-up (Bowman et al., 2016).

The loss per example is ``reconstruction + w(epoch) * KL(q(z|x) || N(0, I))`` with the weight
rising linearly from ``beta / kl_warmup_epochs`` in the first epoch to ``beta`` from epoch
``kl_warmup_epochs`` on. A large ``beta`` pushes towards disentangled but blurrier codes; the
warm-up lets the decoder learn to use the code before the KL term can switch latent units off
(posterior collapse) -- the ``kl-per-unit`` metric of this plugin counts the collapsed units.

Everything -- loss, posterior, likelihood, sampling and the warm-up (``on_epoch_start``) -- is
vaebench's VAE; this model only changes the defaults (``beta=4``, a 10-epoch warm-up) and gives
the combination its own name, so both appear side by side in one results table.
"""

from __future__ import annotations

from vaebench.models.vae import VAE


class BetaVAE(VAE):
    """vaebench's VAE with ``beta=4`` and ``kl_warmup_epochs=10`` by default."""

    def __init__(self, *args, beta: float = 4.0, kl_warmup_epochs: int = 10, **kwargs) -> None:
        super().__init__(*args, beta=beta, kl_warmup_epochs=kl_warmup_epochs, **kwargs)
