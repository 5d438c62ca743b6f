"""``pca``: the first rung of the lecture's ladder -- linear encode W, decode W^T.

Two solvers, chosen by the shape of the training set:

- ``covariance`` (input dimension ``D <= 4096``): one pass over the data accumulates the
  ``D x D`` scatter matrix ``sum (x - s)(x - s)^T`` chunk by chunk (float32 products, summed in
  float64, ``s`` a shift close to the mean so that nothing cancels), corrects it to the mean,
  and takes its top eigenvectors with ``torch.linalg.eigh`` in float64. Exact PCA; on
  Fashion-MNIST (60 000 x 784) it costs one ``X^T X`` product, which is what makes it faster than
  scikit-learn's randomized solver (docs/performance.md has the ratio);
- ``randomized`` (larger ``D``, where a ``D x D`` matrix no longer fits comfortably): the
  randomized range finder of Halko, Martinsson & Tropp (2011, Algorithm 4.4) as
  ``torch.svd_lowrank`` with ``latent_dim + 10`` columns and 7 power iterations -- the settings
  scikit-learn's ``PCA(svd_solver="randomized")`` uses for few components.

Both run on the model's device (MPS, which has no float64, computes on the CPU).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from vaebench.hookspecs import hookimpl
from vaebench.model import FitReport, Model, ModelSpec, ProgressCallback, Tags

SOLVERS = ("auto", "covariance", "randomized")

#: Largest input dimension for which ``auto`` forms the ``D x D`` covariance (128 MiB in float64).
COVARIANCE_MAX_DIM = 4096

#: Rows per chunk of the covariance pass: bounds the float32 temporary to about 24 MiB.
_CHUNK_BYTES = 24 * 2**20

#: Column blocks of the scatter product; only the upper block triangle is computed.
_GRAM_BLOCKS = 4

#: Extra columns and power iterations of the randomized solver (scikit-learn's defaults for
#: ``n_components < 0.1 * min(N, D)``: ``n_oversamples=10``, ``n_iter=7``).
_OVERSAMPLES = 10
_POWER_ITERATIONS = 7


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _flip_signs(components: Tensor) -> Tensor:
    """Make the largest-magnitude loading of each component (row) positive, so that the same
    data always gives the same components (eigenvectors are defined up to sign)."""
    idx = components.abs().argmax(1)
    signs = torch.sign(components[torch.arange(components.shape[0]), idx])
    signs[signs == 0] = 1
    return components * signs[:, None]


def covariance_pca(flat: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, float]:
    """Exact PCA of ``flat`` ``(N, D)`` through the eigendecomposition of its scatter matrix.

    Returns ``(mean (D,), components (k, D), eigenvalues (k,), residual)`` in float64: the top
    ``k`` eigenvectors of ``C = sum_i (x_i - mean)(x_i - mean)^T`` as rows (largest eigenvalue
    first), their eigenvalues (sums of squares, not yet divided by ``N - 1``) and the residual
    sum of squares ``trace(C) - sum(eigenvalues)`` of the rank-``k`` reconstruction.

    One pass: each chunk is shifted by ``s`` (the mean of the first rows), multiplied in float32
    (the upper block triangle only: the matrix is symmetric) and added in float64; the shift is
    removed at the end with ``C = S - N (mean - s)(mean - s)^T``, which does not cancel because
    ``mean - s`` is small.
    """
    n, d = flat.shape
    device = flat.device
    shift = flat[: min(n, 1024)].to(torch.float64).mean(0)
    shift32 = shift.to(torch.float32)
    upper = torch.zeros(d, d, dtype=torch.float64, device=device)
    col_sum = torch.zeros(d, dtype=torch.float64, device=device)
    # upper block triangle only: with 4 column blocks, 10/16 of the full product's work
    blocks = _GRAM_BLOCKS if d >= 256 else 1
    edges = [round(d * j / blocks) for j in range(blocks + 1)]
    rows = max(1, _CHUNK_BYTES // (4 * d))
    for i in range(0, n, rows):
        chunk = flat[i : i + rows].to(torch.float32) - shift32
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            upper[:b, a:b] += (chunk[:, :b].T @ chunk[:, a:b]).to(torch.float64)
        col_sum += chunk.sum(0).to(torch.float64)
    scatter = torch.triu(upper) + torch.triu(upper, 1).T
    delta = col_sum / n
    scatter -= n * torch.outer(delta, delta)
    evals, evecs = torch.linalg.eigh(scatter)  # ascending
    top = evals[-k:].flip(0).clamp_min(0)
    comps = evecs[:, -k:].flip(1).T.contiguous()
    residual = float((torch.diagonal(scatter).sum() - top.sum()).clamp_min(0))
    return shift + delta, comps, top, residual


def randomized_pca(
    flat: Tensor, k: int, generator_seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, float]:
    """Approximate PCA of ``flat`` ``(N, D)`` with ``torch.svd_lowrank`` (Halko et al., 2011).

    Returns ``(mean (D,), components (k, D), squared singular values (k,), residual)`` as
    :func:`covariance_pca` does. Works in float32 (a float64 copy of a large image set would
    not fit); the random test matrix comes from a generator seeded with ``generator_seed``
    inside a fork of the global RNG, so the result does not depend on what ran before.
    """
    n, d = flat.shape
    x = flat.to(torch.float32)
    rows = max(1, _CHUNK_BYTES // (4 * d))
    total = torch.zeros(d, dtype=torch.float64, device=flat.device)
    for i in range(0, n, rows):
        total += x[i : i + rows].sum(0).to(torch.float64)
    mean = total / n
    q = min(k + _OVERSAMPLES, n, d)
    devices = [flat.device] if flat.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(generator_seed)
        _, s, v = torch.svd_lowrank(x, q=q, niter=_POWER_ITERATIONS, M=mean[None, :].float())
    comps = v[:, :k].T.contiguous()
    # residual of the projection, chunk by chunk (formed, not |c|^2 - |c W^T|^2, which cancels)
    residual = torch.zeros((), dtype=torch.float64, device=flat.device)
    mean32 = mean.float()
    for i in range(0, n, rows):
        chunk = x[i : i + rows] - mean32
        residual += (chunk - (chunk @ comps.T) @ comps).pow(2).sum().double()
    sq = s[:k].to(torch.float64) ** 2
    return mean, comps.to(torch.float64), sq, max(float(residual), 0.0)


class PCA(Model):
    """Principal component analysis solved in closed form on the model's device.

    ``encode(x) = (x - mean) W^T`` with ``W`` ``(latent_dim, D)`` the top ``latent_dim``
    principal directions (orthonormal rows, largest variance first, sign fixed so that each
    row's largest-magnitude entry is positive); ``decode(z) = z W + mean``.

    **Clipping.** With ``clip=True`` (the default) ``decode`` clips its output to ``[0, 1]`` so
    that it is a valid image, as the model contract requires; clipping can only lower the
    squared error (by 0.3-10 % on the reference results), so a clipped PCA is slightly better
    than plain PCA. ``clip=False`` returns the plain linear reconstruction, for comparisons with
    textbook PCA (``--set pca.clip=false``); the model then tags ``bounded_output=False``, so
    vaebench checks its outputs for finiteness only and the results record the setting. The fitted ``history["loss"]`` is always the unclipped training MSE (the PCA
    objective), whatever ``clip`` says.

    Solvers (``solver``): see the module docstring. ``auto`` takes ``covariance`` for input
    dimensions up to 4096, else ``randomized``.

    Raises ``ValueError`` for a non-positive ``latent_dim``, one larger than the input dimension
    or the number of training images, or an unknown ``solver``.
    """

    param_docs = {
        "latent_dim": "number of principal components (code size)",
        "clip": "decode clips reconstructions to [0, 1] (False: plain linear PCA reconstruction)",
        "solver": "auto, covariance (exact, D x D eigh) or randomized (torch.svd_lowrank)",
    }

    def __init__(
        self,
        input_shape: Sequence[int],
        device: torch.device | str = "cpu",
        latent_dim: int = 10,
        clip: bool = True,
        solver: str = "auto",
    ) -> None:
        _check_int("latent_dim", latent_dim)
        if not isinstance(clip, bool):
            raise ValueError(f"clip must be true or false, got {clip!r}")
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; valid: {', '.join(SOLVERS)}")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.latent_dim = latent_dim
        self.clip = clip
        self.solver = solver
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

    @property
    def tags(self) -> Tags:
        """``bounded_output`` follows ``clip``: unclipped reconstructions are real-valued."""
        return dataclasses.replace(super().tags, bounded_output=self.clip)

    def chosen_solver(self, n: int) -> str:
        """The solver ``fit`` uses for ``n`` training images (resolves ``auto``)."""
        if self.solver != "auto":
            return self.solver
        return "covariance" if self.mean.numel() <= COVARIANCE_MAX_DIM else "randomized"

    def fit(
        self, x: Tensor, y: Tensor | None = None, progress: ProgressCallback | None = None
    ) -> FitReport:
        """Fit on ``x`` ``(N, C, H, W)``; ``history["loss"]`` is the unclipped mean squared
        error per pixel of the rank-``latent_dim`` reconstruction of ``x``."""
        start = time.perf_counter()
        work = self._device if self._device.type != "mps" else torch.device("cpu")
        flat = x.to(work).reshape(x.shape[0], -1)
        n, d = flat.shape
        if n < self.latent_dim:
            raise ValueError(
                f"PCA with latent_dim={self.latent_dim} needs at least that many training "
                f"examples, got {n}"
            )
        if self.chosen_solver(n) == "covariance":
            mean, comps, sq, residual = covariance_pca(flat, self.latent_dim)
        else:
            mean, comps, sq, residual = randomized_pca(flat, self.latent_dim)
        comps = _flip_signs(comps)
        self.mean = mean.float().to(self._device)
        self.components = comps.float().to(self._device)
        self.explained_variance = (sq / max(n - 1, 1)).float().to(self._device)
        mse = residual / (n * d)
        seconds = time.perf_counter() - start
        if progress is not None:
            progress(1, 1, {"loss": mse})
        return FitReport(history={"loss": [mse]}, seconds=seconds, samples_seen=n, epochs=1)

    def encode(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            flat = x.to(self._device).reshape(x.shape[0], -1).float()
            return (flat - self.mean) @ self.components.T

    def decode(self, z: Tensor) -> Tensor:
        with torch.inference_mode():
            flat = torch.addmm(self.mean, z.to(self._device).float(), self.components)
            if self.clip:
                flat = flat.clamp_(0.0, 1.0)
            return flat.reshape(z.shape[0], *self.input_shape)

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
            "PCA in closed form (covariance eigh, or randomized SVD for large images): linear "
            "encode W, decode W^T; decode clips to [0, 1] unless clip=false",
        )
    ]
