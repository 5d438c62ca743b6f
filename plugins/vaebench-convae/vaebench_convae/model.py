"""``conv-ae``: a convolutional autoencoder for images of any size, by composition.

The networks are plain ``torch.nn`` modules handed to :class:`vaebench.nn.TorchAutoencoder`,
which brings everything else (training loop, ``encode``/``decode`` in evaluation mode, saving,
tags). Encoder: per entry of ``channels`` a 3x3 convolution with stride 2 and padding 1 (a side
``n`` becomes ``ceil(n / 2)``) and a ReLU, then a linear map to the code. Decoder: a linear map
back to that feature map, per stage a 4x4 transposed convolution with stride 2 (doubling each
side), then a crop to ``(H, W)``. Any ``H x W`` works, down to 1x1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from vaebench.nn import TorchAutoencoder


class Crop(nn.Module):
    """Keep the top-left ``height x width`` of a feature map ``(N, C, H', W')``."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.height, self.width = height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : self.height, : self.width]


def conv_ae(
    input_shape: Sequence[int],
    device: torch.device | str = "cpu",
    channels: Sequence[int] = (32, 64),
    latent_dim: int = 10,
    **training,
) -> TorchAutoencoder:
    """Build the networks for images ``(C, H, W)`` and compose them (see the module docstring);
    ``training``: the other :class:`TorchAutoencoder` hyperparameters (epochs, lr, ...)."""
    channels = tuple(channels)
    if not channels or any(
        isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels
    ):
        raise ValueError(
            f"channels must be a non-empty sequence of positive integers, got {channels!r}"
        )
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
    if len(tuple(input_shape)) != 3:
        raise ValueError(f"conv-ae needs images (C, H, W), got input_shape {input_shape!r}")
    c, h, w = input_shape
    widths = (c, *channels)
    fh, fw = math.ceil(h / 2 ** len(channels)), math.ceil(w / 2 ** len(channels))
    flat = widths[-1] * fh * fw
    down: list[nn.Module] = []
    up: list[nn.Module] = [nn.Linear(latent_dim, flat), nn.Unflatten(1, (widths[-1], fh, fw))]
    for a, b in zip(widths[:-1], widths[1:], strict=True):  # the decoder mirrors: prepend
        down += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU()]
        up[2:2] = [nn.ReLU(), nn.ConvTranspose2d(b, a, 4, stride=2, padding=1)]
    encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(flat, latent_dim))
    decoder = nn.Sequential(*up, Crop(h, w))
    return TorchAutoencoder(
        input_shape, device, encoder=encoder, decoder=decoder, latent_dim=latent_dim, **training
    )
