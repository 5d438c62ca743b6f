"""``aae`` and ``acai``: autoencoders trained beside an adversary (a discriminator on codes, a
critic on decoded interpolants), each with its own optimiser in the shared loop (training loop
v3: :class:`vaebench.train.OptimizerStep`).

**Scale of the adversarial terms.** The official code (brain-research/acai) adds the adversarial
term to a reconstruction error *averaged* over pixels (``tf.losses.mean_squared_error``);
vaebench's reconstruction loss is *summed* over the ``D`` pixels of an image (nats per image).
To keep the papers' balance the adversarial term is multiplied by ``D``: with
``recon_loss="mse"`` the autoencoder's loss is exactly ``D`` times the official one on images in
``[0, 1]`` (the official images span ``[-1, 1]``, where squared errors are 4 times larger). The
adversary's own loss is the official one, unscaled.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench.nn import (
    OptimizerStep,
    TorchAutoencoder,
    discriminator_mlp,
    finite_number,
    image_critic,
    reconstruction_loss,
)

__all__ = ["AAE", "ACAI", "acai_objective", "aae_objective"]


def acai_objective(
    x: Tensor,
    z: Tensor,
    logits: Tensor,
    alpha: Tensor,
    decoder,
    critic,
    *,
    adv_weight: float,
    reg: float,
    recon_loss: str,
) -> dict[str, Tensor]:
    """ACAI's losses for one batch (Berthelot et al., ICLR 2019, eqs. 1-2; brain-research/acai
    ``acai.py``).

    ``x``: images ``(N, C, H, W)`` in ``[0, 1]``; ``z``: their codes ``(N, K)``; ``logits``:
    the decoder's output for ``z``; ``alpha``: mixing coefficients ``(N, 1)`` in ``[0, 0.5]``;
    ``decoder``: codes to logits; ``critic``: images ``(N, C, H, W)`` to scores ``(N,)``.

    Interpolants mix each code with the code of the batch read backwards,
    ``z_mix = alpha z + (1 - alpha) z[::-1]``, and are decoded (``sigmoid``) to ``x_mix``.

    - ``critic_loss = mean((critic(x_mix) - alpha)^2) + mean(critic(x_hat + reg (x - x_hat))^2)``
      (the critic predicts the mixing coefficient; a mix of real image and reconstruction
      scores 0);
    - ``loss = recon + adv_weight * D * mean(critic(x_mix)^2)`` (the autoencoder makes its
      interpolants look unmixed; ``recon`` summed over the ``D`` pixels, see the module).

    Returns ``{"loss", "critic_loss", "recon", "critic_mix", "critic_real"}`` (scalars; the
    last two are ``critic_loss``'s two terms).
    """
    n = x.shape[0]
    rec = reconstruction_loss(logits, x, recon_loss).mean()
    x_hat = torch.sigmoid(logits.float()).reshape(x.shape)
    mix = alpha * z + (1 - alpha) * z.flip(0)
    x_mix = torch.sigmoid(decoder(mix).float()).reshape(x.shape)
    score_mix = critic(x_mix).float()
    a = alpha.reshape(n).float()
    critic_mix = (score_mix - a).pow(2).mean()
    critic_real = critic(x_hat + reg * (x - x_hat)).float().pow(2).mean()
    fool = score_mix.pow(2).mean()
    d = x[0].numel()
    return {
        "loss": rec + adv_weight * d * fool,
        "critic_loss": critic_mix + critic_real,
        "recon": rec,
        "critic_mix": critic_mix,
        "critic_real": critic_real,
    }


class ACAI(TorchAutoencoder):
    """Adversarially constrained autoencoder interpolation (Berthelot, Raffel, Roy & Goodfellow,
    ICLR 2019, arXiv 1807.07543; official code brain-research/acai ``acai.py``).

    A critic sees images decoded from mixes ``alpha z_1 + (1 - alpha) z_2`` of two codes
    (``alpha ~ U[0, 1]`` folded to ``[0, 0.5]``) and predicts ``alpha``; the autoencoder is
    trained to reconstruct and to make the critic say 0 on its interpolants (weight
    ``adv_weight``, the paper's lambda = 0.5). The critic is also shown ``x_hat + reg (x -
    x_hat)`` with target 0 (``reg``, the paper's gamma = 0.2). Losses:
    :func:`acai_objective`. The critic has the encoder's layout (``arch``, ``hidden``,
    ``conv_channels``) with ``latent_dim`` outputs averaged, as in the official code, and is
    trained by its own optimiser with the same learning rate (the official code's one ``lr``).
    Both optimisers step on every batch from the same forward pass (the official code's
    ``tf.group``). The critic is saved with the model and counted in ``n_params``.
    """

    param_docs = {
        "adv_weight": "lambda: weight of the critic term in the autoencoder loss (paper: 0.5)",
        "reg": "gamma: critic regulariser, x_hat + reg (x - x_hat) scores 0 (paper: 0.2)",
    }

    def __init__(self, *args, adv_weight: float = 0.5, reg: float = 0.2, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.adv_weight = finite_number("adv_weight", adv_weight)
        self.reg = finite_number("reg", reg, high=1.0)
        with torch.device("meta") if self.device.type == "meta" else _null():
            self.critic = image_critic(
                self.arch, self.input_shape, self.latent_dim,
                hidden=self.hidden, conv_channels=self.conv_channels,
            )  # fmt: skip
        self.critic.to(self.device)
        self.eval()

    @property
    def unused_params(self) -> tuple[str, ...]:
        """The critic is always built from ``arch`` (with ``hidden`` or ``conv_channels``),
        also when the encoder and decoder are passed in code."""
        return ("conv_channels",) if self.arch == "mlp" else ("hidden",)

    def configure_optimizers(self) -> list[OptimizerStep]:
        return [
            OptimizerStep("autoencoder", self.make_optimizer(self.autoencoder_parameters())),
            OptimizerStep("critic", self.make_optimizer(self.critic.parameters()), "critic_loss"),
        ]

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        z = self.code(self.encoder_outputs(x))
        logits = self.decoder_logits(z)
        alpha = torch.rand(x.shape[0], 1, device=z.device)
        alpha = 0.5 - (alpha - 0.5).abs()
        return acai_objective(
            x, z, logits, alpha, self.decoder_logits, self.critic,
            adv_weight=self.adv_weight, reg=self.reg, recon_loss=self.recon_loss,
        )  # fmt: skip


def aae_objective(
    x: Tensor,
    z: Tensor,
    logits: Tensor,
    prior: Tensor,
    discriminator,
    *,
    adv_weight: float,
    recon_loss: str,
) -> dict[str, Tensor]:
    """The adversarial autoencoder's losses for one batch (Makhzani et al., ICLR workshop 2016,
    section 2; brain-research/acai ``aae.py``).

    ``z``: codes ``(N, K)`` of images ``x``; ``logits``: the decoder's output for ``z``;
    ``prior``: draws ``(N, K)`` from ``N(0, I)``; ``discriminator``: codes to logits ``(N, 1)``
    (1 = prior). With ``BCE(l, t)`` the sigmoid cross-entropy averaged over the batch:

    - ``disc_loss = BCE(D(z), 0) + BCE(D(prior), 1)``;
    - ``loss = recon + adv_weight * D_pixels * BCE(D(z), 1)`` (the encoder makes its codes
      look like prior draws; ``recon`` summed over pixels, see the module).

    Returns ``{"loss", "disc_loss", "recon", "adv"}`` (``adv``: ``BCE(D(z), 1)``).
    """
    rec = reconstruction_loss(logits, x, recon_loss).mean()
    d_z = discriminator(z).float()
    d_p = discriminator(prior).float()
    bce = F.binary_cross_entropy_with_logits
    disc = bce(d_z, torch.zeros_like(d_z)) + bce(d_p, torch.ones_like(d_p))
    adv = bce(d_z, torch.ones_like(d_z))
    d = x[0].numel()
    return {"loss": rec + adv_weight * d * adv, "disc_loss": disc, "recon": rec, "adv": adv}


class AAE(TorchAutoencoder):
    """Adversarial autoencoder (Makhzani, Shlens, Jaitly, Goodfellow & Frey, 2016, "Adversarial
    autoencoders"): a deterministic autoencoder whose codes a discriminator tries to tell from
    draws of the prior ``N(0, I)``; the encoder is trained to fool it, which matches the
    aggregate posterior to the prior. Losses: :func:`aae_objective`; settings of the ACAI
    paper's baseline (brain-research/acai ``aae.py``): discriminator MLP ``100,100`` with leaky
    ReLU (slope 0.2), its own Adam with learning rate ``disc_lr`` = 1e-4, adversarial weight 1.

    ``sample(n)`` decodes draws from the prior ``N(0, I)``. The discriminator is saved with the
    model and counted in ``n_params``.
    """

    param_docs = {
        "adv_weight": "weight of the fool-the-discriminator term (paper's code: 1)",
        "disc_hidden": "discriminator hidden widths (paper's code: 100,100)",
        "disc_lr": "discriminator learning rate (paper's code: 1e-4)",
    }
    param_limits = {
        "disc_hidden": (100_000, "discriminator layer width: the weights grow with its square")
    }

    def __init__(
        self,
        *args,
        adv_weight: float = 1.0,
        disc_hidden: tuple[int, ...] = (100, 100),
        disc_lr: float = 1e-4,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.adv_weight = finite_number("adv_weight", adv_weight)
        self.disc_lr = finite_number("disc_lr", disc_lr, positive=True)
        try:
            widths = tuple(disc_hidden)
        except TypeError:
            widths = None
        if widths is None or any(
            isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in widths
        ):
            raise ValueError(
                f"disc_hidden must be a sequence of positive integers, got {disc_hidden!r}"
            )
        self.disc_hidden = tuple(int(v) for v in widths)
        with torch.device("meta") if self.device.type == "meta" else _null():
            self.discriminator = discriminator_mlp(self.latent_dim, self.disc_hidden)
        self.discriminator.to(self.device)
        self.eval()

    def configure_optimizers(self) -> list[OptimizerStep]:
        disc = self.make_optimizer(self.discriminator.parameters(), lr=self.disc_lr)
        return [
            OptimizerStep("autoencoder", self.make_optimizer(self.autoencoder_parameters())),
            OptimizerStep("discriminator", disc, "disc_loss"),
        ]

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        z = self.code(self.encoder_outputs(x))
        prior = torch.randn(z.shape, device=z.device, dtype=z.dtype)
        return aae_objective(
            x, z, self.decoder_logits(z), prior, self.discriminator,
            adv_weight=self.adv_weight, recon_loss=self.recon_loss,
        )  # fmt: skip

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images decoded from codes drawn from the prior ``N(0, I)`` with
        ``generator``."""
        where = generator.device if generator is not None else torch.device("cpu")
        z = torch.randn(n, self.latent_dim, generator=generator, device=where)
        return self.decode(z.to(self.device))


def _null():
    import contextlib

    return contextlib.nullcontext()


@hookimpl
def vaebench_models():
    return [
        ModelSpec("aae", AAE, "adversarial autoencoder: a discriminator matches codes to N(0, I)"),
        ModelSpec("acai", ACAI, "ACAI: a critic on decoded interpolants (Berthelot et al. 2019)"),
    ]
