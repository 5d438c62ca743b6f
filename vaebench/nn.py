"""Neural-network building blocks: the torch base class of the built-in models, network builders
and losses.

:class:`TorchAutoencoder` implements the model contract (:mod:`vaebench.model`) for neural
autoencoders; subclasses define only their ``loss``. The contract does not import this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vaebench.model import FitReport, Model, ProgressCallback

__all__ = ["TorchAutoencoder", "mlp", "reconstruction_loss", "RECON_LOSSES"]

RECON_LOSSES = ("bce", "mse")


def reconstruction_loss(logits: Tensor, x: Tensor, kind: str = "bce") -> Tensor:
    """Per-example reconstruction loss, summed over pixels: shape ``(N,)``.

    ``bce``: Bernoulli negative log-likelihood of ``x`` under ``sigmoid(logits)`` (nats).
    ``mse``: squared error of ``sigmoid(logits)`` (a Gaussian likelihood up to scale and constant).
    """
    x = x.reshape(x.shape[0], -1)
    logits = logits.reshape(x.shape[0], -1).float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    if kind == "mse":
        return (torch.sigmoid(logits) - x).pow(2).sum(1)
    raise ValueError(f"unknown recon_loss {kind!r}; valid: {', '.join(RECON_LOSSES)}")


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Fully connected net ``sizes[0] -> ... -> sizes[-1]``; no activation after the last layer."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class TorchAutoencoder(nn.Module, Model):
    """Base class for neural autoencoders that share one MLP architecture and training loop.

    Subclasses set :attr:`code_outputs` (1 for a point code, 2 for mean and log-variance) and
    override :meth:`loss`. Default architecture for an input of D pixels:
    ``D -> 512 -> 256 -> latent`` (encoder), mirrored decoder with a sigmoid output.
    """

    #: Encoder outputs per latent dimension (a VAE outputs mean and log-variance: 2).
    code_outputs: int = 1

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
    ) -> None:
        super().__init__()
        _check_positive("latent_dim", latent_dim)
        _check_positive("epochs", epochs)
        _check_positive("batch_size", batch_size)
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        if recon_loss not in RECON_LOSSES:
            raise ValueError(f"unknown recon_loss {recon_loss!r}; valid: {', '.join(RECON_LOSSES)}")
        hidden = tuple(int(h) for h in hidden)
        for h in hidden:
            _check_positive("hidden layer size", h)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.latent_dim = int(latent_dim)
        self.hidden = hidden
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.recon_loss = recon_loss
        d = 1
        for s in self.input_shape:
            d *= s
        self.input_dim = d
        self.encoder = mlp([d, *hidden, self.code_outputs * self.latent_dim])
        self.decoder = mlp([self.latent_dim, *reversed(hidden), d])
        self._device = torch.device(device)
        nn.Module.to(self, self._device)

    # -- Model plumbing -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: torch.device | str) -> TorchAutoencoder:  # type: ignore[override]
        self._device = torch.device(device)
        nn.Module.to(self, self._device)
        return self

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]:  # type: ignore[override]
        return dict(nn.Module.state_dict(self, *args, **kwargs))

    def load_state_dict(self, state: dict[str, Tensor], strict: bool = True) -> Any:  # type: ignore[override]
        return nn.Module.load_state_dict(self, state, strict=strict)

    # -- networks ---------------------------------------------------------------------------
    def encoder_outputs(self, x: Tensor) -> Tensor:
        """Raw encoder output ``(N, code_outputs * latent_dim)`` for images ``x``."""
        return self.encoder(x.reshape(x.shape[0], -1))

    def code(self, h: Tensor) -> Tensor:
        """Deterministic code from encoder output (the mean, for a VAE)."""
        return h[:, : self.latent_dim]

    def decoder_logits(self, z: Tensor) -> Tensor:
        """Decoder pre-sigmoid output, flat ``(N, D)``."""
        return self.decoder(z)

    def encode(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.code(self.encoder_outputs(x.to(self._device))).float()

    def decode(self, z: Tensor) -> Tensor:
        with torch.inference_mode():
            out = torch.sigmoid(self.decoder_logits(z.to(self._device)).float())
            return out.reshape(z.shape[0], *self.input_shape)

    # -- training -------------------------------------------------------------------------
    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Losses for one batch. ``"loss"`` (a scalar) is minimised; other entries are logged."""
        z = self.code(self.encoder_outputs(x))
        rec = reconstruction_loss(self.decoder_logits(z), x, self.recon_loss).mean()
        return {"loss": rec, "recon": rec}

    def fit(
        self, x: Tensor, y: Tensor | None = None, progress: ProgressCallback | None = None
    ) -> FitReport:
        from vaebench.train import train_loop

        return train_loop(
            self,
            x,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            progress=progress,
        )
