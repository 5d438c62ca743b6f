"""The model interface: the one contract every model plugin implements.

The runner, the metrics and the reports speak only to this interface:

- ``fit(x)`` trains on ``x`` -- a float tensor ``(N, C, H, W)`` with values in ``[0, 1]`` -- and
  returns a :class:`FitReport`;
- ``encode(x) -> z`` maps images to codes ``(N, latent_dim)``; it is deterministic (a VAE
  returns its posterior mean) and runs without autograd;
- ``decode(z) -> x`` maps codes back to images ``(N, C, H, W)`` in ``[0, 1]``;
- ``sample(n)`` (optional) draws ``n`` images from the model's prior;
- ``latent_dim``, ``input_shape``, ``n_params``;
- ``state_dict()`` / ``load_state_dict(state)`` hold every tensor needed to reproduce
  ``encode`` and ``decode``; :meth:`Model.save` / :meth:`Model.load` store them with
  ``torch.save`` and load them with ``weights_only=True``.

Neural models subclass :class:`TorchAutoencoder` and only define their networks and ``loss``;
the shared training loop lives in :mod:`vaebench.train`.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "Model",
    "ModelSpec",
    "FitReport",
    "DivergenceError",
    "TorchAutoencoder",
    "mlp",
    "reconstruction_loss",
    "RECON_LOSSES",
]


class DivergenceError(RuntimeError):
    """Raised by a training loop when the loss turns NaN or infinite."""


@dataclasses.dataclass
class FitReport:
    """What ``fit`` reports back to the harness.

    ``history`` maps a logged quantity (``"loss"`` first) to one value per epoch; ``seconds`` is
    wall time spent in fit; ``samples_seen`` counts training examples processed (epochs x N), so
    ``samples_seen / seconds`` is the training throughput.
    """

    history: dict[str, list[float]]
    seconds: float
    samples_seen: int
    epochs: int

    @property
    def samples_per_second(self) -> float:
        return self.samples_seen / self.seconds if self.seconds > 0 else float("nan")


ProgressCallback = Callable[[int, int, dict[str, float]], None]


class Model(abc.ABC):
    """Abstract autoencoder interface (see module docstring)."""

    #: Size of the code produced by ``encode``.
    latent_dim: int
    #: Shape of one input image ``(C, H, W)``.
    input_shape: tuple[int, ...]

    @abc.abstractmethod
    def fit(self, x: Tensor, progress: ProgressCallback | None = None) -> FitReport:
        """Train on ``x`` ``(N, C, H, W)`` in ``[0, 1]`` (already on :attr:`device`)."""

    @abc.abstractmethod
    def encode(self, x: Tensor) -> Tensor:
        """Map images ``(N, C, H, W)`` to codes ``(N, latent_dim)``; deterministic, no autograd."""

    @abc.abstractmethod
    def decode(self, z: Tensor) -> Tensor:
        """Map codes ``(N, latent_dim)`` to images ``(N, C, H, W)`` in ``[0, 1]``; no autograd."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` images from the model's prior. Optional: models without one raise."""
        raise NotImplementedError(f"{type(self).__name__} has no prior to sample from")

    @property
    def can_sample(self) -> bool:
        return type(self).sample is not Model.sample

    @property
    @abc.abstractmethod
    def device(self) -> torch.device:
        """The device the model's tensors live on."""

    @abc.abstractmethod
    def to(self, device: torch.device | str) -> Model:
        """Move the model to ``device`` and return it."""

    @property
    @abc.abstractmethod
    def n_params(self) -> int:
        """Number of learned scalar parameters."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Tensor]:
        """All tensors needed to reproduce ``encode``/``decode`` (plain tensors only)."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Tensor]) -> Any:
        """Inverse of :meth:`state_dict`."""

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` to ``path`` atomically (temp file, then rename)."""
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(state, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load(self, path: str | os.PathLike) -> Model:
        """Load a state written by :meth:`save` (``weights_only=True``: no unpickling)."""
        state = torch.load(os.fspath(path), map_location=self.device, weights_only=True)
        self.load_state_dict(state)
        return self


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How a plugin registers a model.

    ``factory(input_shape=(C, H, W), device=torch.device, **params) -> Model``. ``params`` are
    the hyperparameters a user may override (``--set NAME.key=value``); when omitted they are
    read from the keyword defaults of ``factory``'s signature. Their default values fix each
    parameter's type.
    """

    name: str
    factory: Callable[..., Model]
    description: str = ""
    params: dict[str, Any] | None = None

    def defaults(self) -> dict[str, Any]:
        if self.params is not None:
            return dict(self.params)
        # A class whose __init__ passes **kwargs on to its base contributes the base's
        # keyword defaults too (subclass values win).
        funcs = (
            [c.__init__ for c in self.factory.__mro__ if "__init__" in vars(c)]
            if inspect.isclass(self.factory)
            else [self.factory]
        )
        out: dict[str, Any] = {}
        for func in funcs:
            params = inspect.signature(func).parameters
            for k, p in params.items():
                if (
                    k not in ("self", "input_shape", "device")
                    and p.default is not inspect.Parameter.empty
                    and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                ):
                    out.setdefault(k, p.default)
            if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                break
        return out

    def create(
        self, input_shape: Sequence[int], device: torch.device | str = "cpu", **params: Any
    ) -> Model:
        unknown = sorted(set(params) - set(self.defaults()))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)} for model {self.name!r}; "
                f"valid: {', '.join(sorted(self.defaults())) or '(none)'}"
            )
        model = self.factory(input_shape=tuple(input_shape), device=torch.device(device), **params)
        if not isinstance(model, Model):
            raise TypeError(
                f"factory of model {self.name!r} returned {type(model).__name__}, "
                "not a vaebench.model.Model"
            )
        return model


# ----------------------------------------------------------------------------- torch models

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

    def fit(self, x: Tensor, progress: ProgressCallback | None = None) -> FitReport:
        from vaebench.train import train_loop

        return train_loop(
            self,
            x,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            progress=progress,
        )
