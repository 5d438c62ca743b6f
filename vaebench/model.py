"""The model interface: the one contract every model plugin implements.

The runner, the metrics and the reports speak only to this interface:

- ``fit(x, y=None, progress=None)`` trains on ``x`` -- a float tensor ``(N, C, H, W)`` with values
  in ``[0, 1]``, already on :attr:`Model.device` -- and returns a :class:`FitReport`. ``y``
  (``(N,)`` int64 labels) is passed only to models whose :attr:`Model.tags` say ``uses_labels``;
  a model written for the first interface (``fit(x, progress=None)``) keeps working;
- ``encode(x) -> z`` maps images to codes ``(N, latent_dim)``; it is deterministic (a VAE
  returns its posterior mean), runs without autograd, and never changes the model;
- ``decode(z) -> x`` maps codes back to images ``(N, C, H, W)`` in ``[0, 1]`` (same rules);
- ``sample(n, generator)`` (optional) draws ``n`` images from the model's prior;
- ``posterior(x) -> (mean, logvar)`` (optional): the diagonal-Gaussian ``q(z|x)``, each
  ``(N, latent_dim)``; ``log_likelihood(x, z) -> (N,)`` (optional): ``log p(x|z)`` in nats per
  image, summed over pixels, under the likelihood named by ``tags.likelihood``. Together with
  the standard-normal prior these define the ELBO and the importance-weighted bound;
- :attr:`Model.tags`: what the model supports (image sizes, channels, sampling, labels,
  posterior), as scikit-learn's estimator tags; the runner skips a dataset a model does not
  support, with the reason, and the conformance kit adapts its checks;
- ``latent_dim``, ``input_shape``, ``n_params``;
- ``state_dict()`` / ``load_state_dict(state)`` hold every tensor needed to reproduce
  ``encode`` and ``decode``; :meth:`Model.save` / :meth:`Model.load` store them with
  ``torch.save`` and load them with ``weights_only=True``.

This module is the contract: it imports nothing else of vaebench but :mod:`vaebench.fileio`
(which imports nothing of vaebench). Neural models build on
:class:`vaebench.nn.TorchAutoencoder` (networks, losses and the shared training loop live
there and in :mod:`vaebench.train`); ``vaebench.model.TorchAutoencoder``, ``mlp``,
``reconstruction_loss``, ``RECON_LOSSES`` and ``DivergenceError`` remain importable from here
for plugins written against the first interface (resolved on first use).
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import math
import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from vaebench.fileio import atomic_writer

__all__ = [
    "Model",
    "ModelSpec",
    "FitReport",
    "Tags",
    "ProgressCallback",
    "LIKELIHOODS",
]

#: Names of the observation models ``log_likelihood`` may implement (``Tags.likelihood``).
#: ``bernoulli``: ``x log p + (1 - x) log(1 - p)`` summed over pixels -- a normalised density
#: only for binary images; ``gaussian``: ``log N(x; mu, sigma^2 I)`` with a fixed or learned
#: ``sigma`` stated by the model.
LIKELIHOODS = ("bernoulli", "gaussian")


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


#: ``progress(epoch, epochs, logs)``: called by ``fit`` after each epoch (1-based) with that
#: epoch's mean losses. The runner uses it for progress bars and the ``vaebench_epoch_end`` hook.
ProgressCallback = Callable[[int, int, dict[str, float]], None]


@dataclasses.dataclass(frozen=True)
class Tags:
    """What a model supports, stated by the model (as scikit-learn's estimator tags).

    - ``min_image_size`` / ``max_image_size``: smallest / largest height and width accepted
      (pixels; ``None``: no upper limit);
    - ``channels``: accepted channel counts (``None``: any);
    - ``can_sample``: ``sample(n)`` draws from a prior;
    - ``uses_labels``: ``fit`` wants the training labels ``y``; datasets without labels are
      skipped;
    - ``has_posterior``: ``posterior(x) -> (mean, logvar)`` of a diagonal Gaussian ``q(z|x)``;
    - ``likelihood``: the observation model of ``log_likelihood(x, z)`` (one of
      :data:`LIKELIHOODS`), or ``""`` when the model has none;
    - ``deterministic``: the same seed gives the same fitted model (the conformance kit checks
      it);
    - ``bounded_output``: ``decode``/``sample`` return images in ``[0, 1]``, as the contract
      asks. ``False`` only for a model that deliberately returns unclipped real values (``pca``
      with ``clip=false``, to compare with plain PCA): its outputs are then checked for
      finiteness only, and the results record the tag.

    The defaults of ``can_sample``, ``has_posterior`` and ``likelihood`` are read from which
    optional methods a model overrides; see :attr:`Model.tags`.
    """

    min_image_size: int = 1
    max_image_size: int | None = None
    channels: tuple[int, ...] | None = None
    can_sample: bool = False
    uses_labels: bool = False
    has_posterior: bool = False
    likelihood: str = ""
    deterministic: bool = True
    bounded_output: bool = True

    @property
    def has_likelihood(self) -> bool:
        return bool(self.likelihood)

    def unsupported(self, shape: Sequence[int], has_labels: bool = True) -> str | None:
        """Why a dataset of image shape ``(C, H, W)`` cannot be used, or ``None`` if it can."""
        c, h, w = (int(s) for s in shape)
        if min(h, w) < self.min_image_size:
            return (
                f"needs images of at least {self.min_image_size}x{self.min_image_size} pixels, "
                f"got {h}x{w}"
            )
        if self.max_image_size is not None and max(h, w) > self.max_image_size:
            return (
                f"takes images of at most {self.max_image_size}x{self.max_image_size} pixels, "
                f"got {h}x{w}"
            )
        if self.channels is not None and c not in self.channels:
            valid = ", ".join(map(str, self.channels))
            return f"takes images with {valid} channel(s), got {c}"
        if self.uses_labels and not has_labels:
            return "trains on labels and the dataset has none"
        return None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["channels"] = None if self.channels is None else list(self.channels)
        return out


class Model(abc.ABC):
    """Abstract autoencoder interface (see the module docstring)."""

    #: Size of the code produced by ``encode``.
    latent_dim: int
    #: Shape of one input image ``(C, H, W)``.
    input_shape: tuple[int, ...]
    #: Upper bounds of the hyperparameters whose size is work or memory, ``{name: (largest
    #: value, why)}``; a class declares those of the parameters it adds, next to its
    #: ``param_docs``, and :meth:`ModelSpec.limits` merges them along the class hierarchy. A
    #: value above its bound (or, for a tuple of layer sizes, any entry above it) is refused
    #: with the reason before anything trains. The contract bounds the shorthand options every
    #: model may share (``--epochs``, ``--latent-dim``, ``--batch-size``).
    param_limits: ClassVar[dict[str, tuple[int, str]]] = {
        "epochs": (100_000, "training time grows with it"),
        "latent_dim": (100_000, "code size: the networks grow with it"),
        "batch_size": (
            1_000_000,
            "images per step; a batch larger than the data is the whole data",
        ),
    }

    @abc.abstractmethod
    def fit(
        self, x: Tensor, y: Tensor | None = None, progress: ProgressCallback | None = None
    ) -> FitReport:
        """Train on ``x`` ``(N, C, H, W)`` in ``[0, 1]`` (already on :attr:`device`).

        ``y``: ``(N,)`` int64 labels, passed only when ``tags.uses_labels``. ``progress``: see
        :data:`ProgressCallback`. Raises :class:`vaebench.errors.DivergenceError` when the loss
        turns NaN or infinite.
        """

    @abc.abstractmethod
    def encode(self, x: Tensor) -> Tensor:
        """Map images ``(N, C, H, W)`` to codes ``(N, latent_dim)``; deterministic, no autograd,
        in evaluation mode (never changes the model)."""

    @abc.abstractmethod
    def decode(self, z: Tensor) -> Tensor:
        """Map codes ``(N, latent_dim)`` to images ``(N, C, H, W)`` in ``[0, 1]``; no autograd,
        in evaluation mode (never changes the model)."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` images ``(n, C, H, W)`` in ``[0, 1]`` from the model's prior.

        Optional: models without a prior raise :class:`NotImplementedError`. ``generator`` is a
        CPU generator: draw the codes on the CPU with it, then move them to :attr:`device`.
        """
        raise NotImplementedError(f"{type(self).__name__} has no prior to sample from")

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of the diagonal-Gaussian ``q(z|x)``, each ``(N, latent_dim)``.

        Optional (``tags.has_posterior``). Metrics call it under ``torch.inference_mode`` with
        the model in evaluation mode; a model may also use it inside its own ``loss``.
        """
        raise NotImplementedError(f"{type(self).__name__} has no posterior")

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(x|z)`` in nats per image, summed over pixels: shape ``(N,)`` for images
        ``x`` ``(N, C, H, W)`` and codes ``z`` ``(N, latent_dim)``.

        Optional (``tags.likelihood`` names the observation model); metrics call it under
        ``torch.inference_mode``. The prior is the standard normal ``N(0, I)``.
        """
        raise NotImplementedError(f"{type(self).__name__} has no likelihood")

    def log_prior(self, z: Tensor) -> Tensor:
        """``log p(z)`` in nats of codes ``z`` ``(N, latent_dim)`` under the model's prior:
        shape ``(N,)``. Optional; the default is the standard normal ``N(0, I)``. A model with
        another prior (a VampPrior) overrides it (and may set ``prior_description``); the
        likelihood metrics use it in the ELBO's and the IWAE bound's ``log p(z)``."""
        return (-0.5 * z.pow(2) - 0.5 * math.log(2.0 * math.pi)).sum(-1)

    @property
    def can_sample(self) -> bool:
        return self.tags.can_sample

    def _overrides(self, name: str) -> bool:
        return getattr(type(self), name) is not getattr(Model, name)

    @property
    def tags(self) -> Tags:
        """What this model supports. The default states ``can_sample``, ``has_posterior`` and
        the likelihood from the optional methods the model overrides (``likelihood``:
        ``"bernoulli"`` unless the class sets ``likelihood_name``). Override to state more::

            @property
            def tags(self):
                return dataclasses.replace(super().tags, min_image_size=16)
        """
        return Tags(
            can_sample=self._overrides("sample"),
            has_posterior=self._overrides("posterior"),
            likelihood=(
                getattr(self, "likelihood_name", "bernoulli")
                if self._overrides("log_likelihood")
                else ""
            ),
        )

    @property
    def unused_params(self) -> tuple[str, ...]:
        """Hyperparameters this instance was given but does not use (e.g. ``hidden`` of a
        convolutional network); stored with each result (``model_info.unused_params``) so that
        reports leave them out. Default: none."""
        return ()

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

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to ``path`` atomically (temp file in the same folder, then
        rename; a symbolic link at ``path`` is replaced, never written through)."""
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        with atomic_writer(path) as fh:
            torch.save(state, fh)

    def load(self, path: str | os.PathLike[str]) -> Model:
        """Load a state written by :meth:`save` (``weights_only=True``: no unpickling)."""
        state = torch.load(os.fspath(path), map_location=self.device, weights_only=True)
        self.load_state_dict(state)
        return self


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How a plugin registers a model.

    ``factory(input_shape=(C, H, W), device=torch.device, **params) -> Model``. ``params`` are
    the hyperparameters a user may override (``--set NAME.key=value``); when omitted they are
    read from the keyword defaults of ``factory``'s signature (and, for a class whose
    ``__init__`` passes ``**kwargs`` on, its bases'). Their default values fix each parameter's
    type. ``param_docs`` gives a one-line meaning per parameter for ``vaebench list models``
    (default: the factory's ``param_docs`` attribute, merged along its class hierarchy);
    ``param_limits`` bounds parameters beyond those the factory's classes declare (see
    :meth:`limits`).
    """

    name: str
    factory: Callable[..., Model]
    description: str = ""
    params: dict[str, Any] | None = None
    param_docs: dict[str, str] | None = None
    param_limits: dict[str, tuple[int, str]] | None = None

    def _factories(self) -> list[Callable[..., Any]]:
        if not inspect.isclass(self.factory):
            return [self.factory]
        return [vars(c)["__init__"] for c in self.factory.__mro__ if "__init__" in vars(c)]

    def defaults(self) -> dict[str, Any]:
        """Every user-settable hyperparameter with its default value (a factory's
        ``components`` -- e.g. ``("encoder", "decoder")`` of
        :class:`vaebench.nn.TorchAutoencoder`, networks passed in code -- are not settable)."""
        if self.params is not None:
            return dict(self.params)
        skip = {"self", "input_shape", "device", *getattr(self.factory, "components", ())}
        out: dict[str, Any] = {}
        for func in self._factories():
            params = inspect.signature(func).parameters
            for k, p in params.items():
                if (
                    k not in skip
                    and p.default is not inspect.Parameter.empty
                    and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                ):
                    out.setdefault(k, p.default)
            if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                break
        return out

    def docs(self) -> dict[str, str]:
        """One-line meaning of each hyperparameter (empty string where none is given)."""
        docs: dict[str, str] = {}
        if self.param_docs is not None:
            docs.update(self.param_docs)
        elif inspect.isclass(self.factory):
            for cls in reversed(self.factory.__mro__):
                docs.update(vars(cls).get("param_docs", {}) or {})
        return {k: docs.get(k, "") for k in self.defaults()}

    def limits(self) -> dict[str, tuple[int, str]]:
        """Upper bound of each hyperparameter that has one, ``{name: (largest value, why)}``:
        the contract's (:attr:`Model.param_limits`), then the ``param_limits`` of the factory's
        classes merged along its hierarchy (a subclass overrides its bases), then this spec's
        ``param_limits``; only parameters of :meth:`defaults` are listed. The harness refuses a
        larger value (each entry, for a tuple of layer sizes) with ``why`` before training."""
        merged = dict(Model.param_limits)
        if inspect.isclass(self.factory):
            for cls in reversed(self.factory.__mro__):
                merged.update(vars(cls).get("param_limits", {}) or {})
        merged.update(self.param_limits or {})
        defaults = self.defaults()
        return {k: v for k, v in merged.items() if k in defaults}

    def create(
        self, input_shape: Sequence[int], device: torch.device | str = "cpu", **params: Any
    ) -> Model:
        """Build an untrained model; unknown parameters raise ``ValueError`` naming the valid
        ones, and a factory that returns something other than a :class:`Model` ``TypeError``."""
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


#: Names importable from here for plugins written against the first interface.
_MOVED = {
    "TorchAutoencoder": "vaebench.nn",
    "mlp": "vaebench.nn",
    "reconstruction_loss": "vaebench.nn",
    "RECON_LOSSES": "vaebench.nn",
    "DivergenceError": "vaebench.errors",
}


def __getattr__(name: str) -> Any:
    """Resolve the names of :data:`_MOVED` on first use (the contract imports nothing else of
    vaebench at import time)."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
