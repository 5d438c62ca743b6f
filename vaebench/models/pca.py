"""``pca``: the first rung of the lecture's ladder -- linear encode W, decode W^T."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from vaebench.hookspecs import hookimpl
from vaebench.model import FitReport, Model, ModelSpec, ProgressCallback


class PCA(Model):
    """Principal component analysis solved in closed form (SVD) on the model's device.

    ``encode(x) = (x - mean) W^T`` with W the top ``latent_dim`` principal directions
    ``(latent_dim, D)``; ``decode(z) = z W + mean``, clipped to ``[0, 1]`` so that outputs stay
    valid images (clipping can only lower the squared error).
    """

    def __init__(
        self, input_shape: Sequence[int], device: torch.device | str = "cpu", latent_dim: int = 10
    ) -> None:
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim <= 0:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.latent_dim = latent_dim
        d = 1
        for s in self.input_shape:
            d *= s
        if latent_dim > d:
            raise ValueError(f"latent_dim={latent_dim} exceeds the input dimension {d}")
        self._device = torch.device(device)
        self.mean = torch.zeros(d, device=self._device)
        self.components = torch.zeros(latent_dim, d, device=self._device)
        self.explained_variance = torch.zeros(latent_dim, device=self._device)

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: torch.device | str) -> PCA:
        self._device = torch.device(device)
        self.mean = self.mean.to(self._device)
        self.components = self.components.to(self._device)
        self.explained_variance = self.explained_variance.to(self._device)
        return self

    @property
    def n_params(self) -> int:
        return self.mean.numel() + self.components.numel()

    def fit(
        self, x: Tensor, y: Tensor | None = None, progress: ProgressCallback | None = None
    ) -> FitReport:
        start = time.perf_counter()
        flat = x.to(self._device).reshape(x.shape[0], -1).double()
        if flat.shape[0] < self.latent_dim:
            raise ValueError(
                f"PCA with latent_dim={self.latent_dim} needs at least that many training "
                f"examples, got {flat.shape[0]}"
            )
        mean = flat.mean(0)
        centred = flat - mean
        _, s, vh = torch.linalg.svd(centred, full_matrices=False)
        comps = vh[: self.latent_dim]
        # deterministic sign: largest-magnitude loading of each component is positive
        idx = comps.abs().argmax(1)
        signs = torch.sign(comps[torch.arange(comps.shape[0]), idx])
        comps = comps * signs[:, None]
        self.mean = mean.float()
        self.components = comps.float()
        self.explained_variance = (s[: self.latent_dim] ** 2 / max(flat.shape[0] - 1, 1)).float()
        recon = (centred @ comps.T) @ comps
        mse = float((recon - centred).pow(2).mean())
        seconds = time.perf_counter() - start
        if progress is not None:
            progress(1, 1, {"loss": mse})
        return FitReport(
            history={"loss": [mse]}, seconds=seconds, samples_seen=flat.shape[0], epochs=1
        )

    def encode(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            flat = x.to(self._device).reshape(x.shape[0], -1).float()
            return (flat - self.mean) @ self.components.T

    def decode(self, z: Tensor) -> Tensor:
        with torch.inference_mode():
            flat = z.to(self._device).float() @ self.components + self.mean
            return flat.clamp(0.0, 1.0).reshape(z.shape[0], *self.input_shape)

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "mean": self.mean,
            "components": self.components,
            "explained_variance": self.explained_variance,
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> Any:
        expected = {"mean", "components", "explained_variance"}
        if set(state) != expected:
            raise KeyError(f"PCA state must have keys {sorted(expected)}, got {sorted(state)}")
        if tuple(state["components"].shape) != tuple(self.components.shape):
            raise ValueError(
                f"PCA state has components of shape {tuple(state['components'].shape)}, "
                f"expected {tuple(self.components.shape)}"
            )
        self.mean = state["mean"].to(self._device).float()
        self.components = state["components"].to(self._device).float()
        self.explained_variance = state["explained_variance"].to(self._device).float()


@hookimpl
def vaebench_models():
    return [
        ModelSpec(
            "pca",
            PCA,
            "PCA in closed form (SVD): linear encode W, decode W^T; the lecture's first rung",
        )
    ]
