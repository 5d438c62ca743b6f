"""A convolutional autoencoder that handles images of any size ``(C, H, W)``.

Encoder: ``L`` stride-2 3x3 convolutions (``channels[i]`` filters each, ReLU), then a linear map
to the code. ``L = min(len(channels), floor(log2(min(H, W) / 2)))`` so the smallest feature map is
at least 2x2 (tiny images get fewer stages; ``1x1`` images none, which is a linear autoencoder).
Inputs are zero-padded on the bottom/right to a multiple of ``2**L`` and the decoder's output --
transposed 4x4 stride-2 convolutions mirroring the encoder, sigmoid at the end -- is cropped back
to ``(H, W)``. Training reuses vaebench's shared loop through
:class:`vaebench.model.TorchAutoencoder`; only the networks differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vaebench.model import TorchAutoencoder


def n_stages(height: int, width: int, max_stages: int) -> int:
    """Stride-2 stages that keep the smallest feature map at least 2x2 (at most ``max_stages``)."""
    side = min(height, width)
    return 0 if side < 4 else min(max_stages, int(math.floor(math.log2(side / 2))))


class ConvAE(TorchAutoencoder):
    """Convolutional autoencoder; see the module docstring for the architecture."""

    def __init__(
        self,
        input_shape: Sequence[int],
        device: torch.device | str = "cpu",
        latent_dim: int = 10,
        channels: Sequence[int] = (32, 64),
        epochs: int = 30,
        batch_size: int = 128,
        lr: float = 1e-3,
        recon_loss: str = "bce",
    ) -> None:
        if len(tuple(input_shape)) != 3:
            raise ValueError(f"conv-ae needs images (C, H, W), got input_shape {input_shape!r}")
        channels = tuple(channels)
        if not channels or any(
            isinstance(c, bool) or not isinstance(c, int) or c <= 0 for c in channels
        ):
            raise ValueError(f"channels must be positive integers, got {channels!r}")
        # The base class validates the shared hyperparameters and builds a throwaway MLP; we
        # pass the smallest one and replace both networks below.
        super().__init__(
            input_shape,
            device,
            latent_dim=latent_dim,
            hidden=(1,),
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            recon_loss=recon_loss,
        )
        c, h, w = self.input_shape
        self.channels = channels
        self.stages = n_stages(h, w, len(channels))
        step = 2**self.stages
        self.padded = (math.ceil(h / step) * step, math.ceil(w / step) * step)
        self.feature_shape = (
            channels[self.stages - 1] if self.stages else c,
            self.padded[0] // step,
            self.padded[1] // step,
        )
        flat = math.prod(self.feature_shape)

        enc: list[nn.Module] = []
        cin = c
        for cout in channels[: self.stages]:
            enc += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.ReLU()]
            cin = cout
        enc += [nn.Flatten(), nn.Linear(flat, self.code_outputs * self.latent_dim)]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [
            nn.Linear(self.latent_dim, flat),
            nn.Unflatten(1, self.feature_shape),
        ]
        widths = list(channels[: self.stages])
        for i in reversed(range(self.stages)):
            cout = widths[i - 1] if i > 0 else c
            dec += [nn.ReLU(), nn.ConvTranspose2d(widths[i], cout, 4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.hidden = ()
        nn.Module.to(self, self.device)

    def encoder_outputs(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], *self.input_shape)
        _, h, w = self.input_shape
        ph, pw = self.padded
        if (ph, pw) != (h, w):
            x = F.pad(x, (0, pw - w, 0, ph - h))
        return self.encoder(x)

    def decoder_logits(self, z: Tensor) -> Tensor:
        out = self.decoder(z)  # (N, C, padded H, padded W)
        _, h, w = self.input_shape
        return out[:, :, :h, :w].reshape(z.shape[0], -1)
