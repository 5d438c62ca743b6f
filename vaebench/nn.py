"""Neural-network building blocks: the torch base class of the built-in models, the network
builders (``mlp``, ``conv``) and the losses and likelihoods they share.

:class:`TorchAutoencoder` implements the model contract (:mod:`vaebench.model`) for any
encoder/decoder pair; subclasses define only their ``loss``. The contract does not import this
module. The shared training loop is :func:`vaebench.train.train_loop`. The layer tables, the
training options and the rules every neural model keeps (batching, evaluation mode) are in
``docs/models.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vaebench.model import FitReport, Model, ProgressCallback, Tags
from vaebench.train import OptimizerStep, check_training_data, train_loop

__all__ = [
    "TorchAutoencoder",
    "mlp",
    "conv_stages",
    "conv_encoder",
    "conv_decoder",
    "discriminator_mlp",
    "image_critic",
    "OptimizerStep",
    "reconstruction_loss",
    "log_likelihood",
    "gaussian_kl",
    "reparameterize",
    "vae_loss",
    "gaussian_log_density",
    "imq_kernel",
    "mmd_unbiased",
    "RECON_LOSSES",
    "ARCHS",
    "OPTIMIZERS",
    "SCHEDULES",
    "SGD_MOMENTUM",
    "CONV_MIN_IMAGE_SIZE",
]

RECON_LOSSES = ("bce", "mse")
#: Built-in networks (``arch``): the fully connected ``mlp`` and the convolutional ``conv``.
ARCHS = ("mlp", "conv")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")
#: Momentum of ``optimizer="sgd"`` (heavy-ball, as in most SGD training recipes; override
#: :meth:`TorchAutoencoder.configure_optimizer` for another value).
SGD_MOMENTUM = 0.9
#: ``schedule="step"``: the learning rate is multiplied by this factor after 50 % and again
#: after 75 % of the epochs.
STEP_GAMMA = 0.1
#: Smallest image side of ``arch="conv"``: one stride-2 stage down to a 2x2 feature map.
CONV_MIN_IMAGE_SIZE = 4
#: The Gaussian observation model of ``recon_loss="mse"`` has variance 1/2 per pixel, so its
#: negative log-density is the summed squared error plus ``D/2 * log(pi)``.
MSE_VARIANCE = 0.5


# ------------------------------------------------------------------------------- losses


def reconstruction_loss(logits: Tensor, x: Tensor, kind: str = "bce") -> Tensor:
    """Per-example reconstruction loss, summed over pixels: shape ``(N,)``.

    ``logits``: decoder output before the sigmoid, any shape with ``N * D`` elements; ``x``:
    images ``(N, C, H, W)`` in ``[0, 1]``.

    - ``bce``: Bernoulli negative log-likelihood of ``x`` under ``sigmoid(logits)`` (nats),
      computed from the logits (numerically stable);
    - ``mse``: squared error of ``sigmoid(logits)`` -- the negative log-density of a Gaussian
      with variance 1/2 per pixel, up to the constant ``D/2 * log(pi)`` (see
      :func:`log_likelihood`).

    Raises ``ValueError`` for another ``kind``.
    """
    x = x.reshape(x.shape[0], -1)
    logits = logits.reshape(x.shape[0], -1).float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    if kind == "mse":
        return (torch.sigmoid(logits) - x).pow(2).sum(1)
    raise ValueError(f"unknown recon_loss {kind!r}; valid: {', '.join(RECON_LOSSES)}")


def log_likelihood(logits: Tensor, x: Tensor, kind: str = "bce") -> Tensor:
    """``log p(x|z)`` of images ``x`` ``(N, C, H, W)`` under the observation model whose
    decoder output (before the sigmoid) is ``logits``; nats per image, summed over the ``D``
    pixels: shape ``(N,)``.

    - ``bce`` (``Tags.likelihood == "bernoulli"``): ``sum x log p + (1 - x) log(1 - p)`` with
      ``p = sigmoid(logits)``, from the logits. A normalised density only for binary ``x``;
      on grey-level pixels it is not one (Loaiza-Ganem & Cunningham, 2019, "The continuous
      Bernoulli");
    - ``mse`` (``"gaussian"``): ``log N(x; sigmoid(logits), I/2) = -sum (x - mu)^2 -
      D/2 log(pi)``, the normalised Gaussian whose negative log-density is the training loss
      plus a constant.

    Equals ``-reconstruction_loss(logits, x, kind)`` for ``bce`` and that minus
    ``D/2 log(pi)`` for ``mse``.
    """
    rec = reconstruction_loss(logits, x, kind)
    if kind == "mse":
        d = x[0].numel()
        return -rec - 0.5 * d * math.log(2 * math.pi * MSE_VARIANCE)
    return -rec


def gaussian_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mean, diag(exp(logvar))) || N(0, I))`` per example, summed over the latent
    dimensions: ``0.5 * sum(exp(logvar) - 1 - logvar + mean^2)``, shape ``(N,)`` (nats).

    Kingma & Welling (2014), appendix B.
    """
    return 0.5 * (logvar.exp() - 1.0 - logvar + mean.pow(2)).sum(1)


def reparameterize(mean: Tensor, logvar: Tensor) -> Tensor:
    """A draw ``z = mean + exp(logvar / 2) * e``, ``e ~ N(0, I)`` from torch's global
    generator (so :func:`vaebench.train.seed_everything` fixes it); differentiable in
    ``mean`` and ``logvar`` (the reparameterisation trick, Kingma & Welling, 2014)."""
    return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)


def vae_loss(
    logits: Tensor,
    x: Tensor,
    mean: Tensor,
    logvar: Tensor,
    *,
    beta: float = 1.0,
    recon_loss: str = "bce",
) -> dict[str, Tensor]:
    """The (beta-weighted) negative ELBO of a batch, averaged over its examples.

    ``logits``: the decoder's output for codes drawn from ``q(z|x)`` (see
    :func:`reparameterize`); ``mean``, ``logvar``: ``(N, latent_dim)``. Returns
    ``{"loss": recon + beta * kl, "recon": recon, "kl": kl}`` (scalars, nats per image);
    ``beta = 1`` is the VAE of Kingma & Welling (2014), other values the beta-VAE of
    Higgins et al. (2017).
    """
    rec = reconstruction_loss(logits, x, recon_loss).mean()
    kl = gaussian_kl(mean.float(), logvar.float()).mean()
    return {"loss": rec + beta * kl, "recon": rec, "kl": kl}


def gaussian_log_density(z: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """``log N(z; mean, diag(exp(logvar)))`` summed over the last dimension (nats), with the
    ``-1/2 log(2 pi)`` constant; ``z``, ``mean``, ``logvar`` broadcast against each other
    (e.g. ``(N, 1, d)`` codes against ``(1, K, d)`` components give ``(N, K)``)."""
    return -0.5 * (math.log(2.0 * math.pi) + logvar + (z - mean).pow(2) * torch.exp(-logvar)).sum(
        -1
    )


def imq_kernel(a: Tensor, b: Tensor, scale: float) -> Tensor:
    """Inverse multiquadratic kernel ``k(a, b) = C / (C + |a - b|^2)`` between the rows of ``a``
    ``(N, d)`` and ``b`` ``(M, d)``: shape ``(N, M)``, ``C = scale`` (Tolstikhin et al. 2018,
    Wasserstein Auto-Encoders, section 4, use ``C = 2 d sigma^2`` for a prior
    ``N(0, sigma^2 I)``)."""
    return scale / (scale + (a[:, None, :] - b[None, :, :]).pow(2).sum(-1))


def mmd_unbiased(z: Tensor, z_prior: Tensor, scale: float) -> Tensor:
    """Unbiased estimate of the squared maximum mean discrepancy between codes ``z`` ``(n, d)``
    and prior draws ``z_prior`` ``(n, d)`` with :func:`imq_kernel` (a scalar):
    ``1/(n(n-1)) sum_{i != j} [k(z_i, z_j) + k(p_i, p_j)] - 2/n^2 sum_{i, j} k(z_i, p_j)``,
    Tolstikhin et al. (2018), Algorithm 2. Needs ``n >= 2``."""
    n = z.shape[0]
    if n < 2 or z_prior.shape[0] != n:
        raise ValueError(f"mmd_unbiased needs two sets of n >= 2 codes, got {n} and "
                         f"{z_prior.shape[0]}")  # fmt: skip
    k_zz = imq_kernel(z, z, scale)
    k_pp = imq_kernel(z_prior, z_prior, scale)
    k_zp = imq_kernel(z, z_prior, scale)
    off = n * (n - 1)
    return (
        (k_zz.sum() - k_zz.diagonal().sum()) / off
        + (k_pp.sum() - k_pp.diagonal().sum()) / off
        - 2.0 * k_zp.sum() / (n * n)
    )


# ------------------------------------------------------------------------------- networks


def mlp(
    sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU, batch_norm: bool = False
) -> nn.Sequential:
    """Fully connected net ``sizes[0] -> ... -> sizes[-1]``; ``Linear`` (then ``BatchNorm1d``
    when ``batch_norm``) then ``activation`` between layers, nothing after the last layer."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(activation())
    return nn.Sequential(*layers)


class _FlatMLP(nn.Sequential):
    """An :func:`mlp` applied to flattened images ``(N, C, H, W) -> (N, C*H*W)``."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.flatten(1))


def conv_stages(height: int, width: int, max_stages: int) -> list[tuple[int, int]]:
    """Feature-map sizes of the ``conv`` encoder: ``[(H, W), (H//2, W//2), ...]``.

    Each stage is a 4x4 convolution with stride 2 and padding 1, which maps a side ``s`` to
    ``s // 2``. Stages are added while the smaller side of the next map stays at least 2 (so
    images of at least :data:`CONV_MIN_IMAGE_SIZE` pixels get one stage or more), at most
    ``max_stages``. 28x28 with 3 stages: 28, 14, 7, 3; 32x32: 32, 16, 8, 4; 8x8: 8, 4, 2.
    """
    sizes = [(int(height), int(width))]
    while len(sizes) <= max_stages and min(sizes[-1]) // 2 >= 2:
        h, w = sizes[-1]
        sizes.append((h // 2, w // 2))
    return sizes


def conv_encoder(
    input_shape: Sequence[int],
    channels: Sequence[int],
    out_features: int,
    batch_norm: bool = False,
) -> nn.Sequential:
    """Strided convolutional encoder ``(N, C, H, W) -> (N, out_features)``.

    Per stage (see :func:`conv_stages` for how many): ``Conv2d(c_in, c_i, 4, stride 2,
    padding 1)``, ``BatchNorm2d`` when ``batch_norm`` (the convolution then has no bias),
    ``ReLU``; then ``Flatten`` and a ``Linear`` map of the last feature map to
    ``out_features``. The DCGAN discriminator's layout (Radford, Metz & Chintala, 2016), as in
    pythae's benchmark networks (Chadebec et al., 2022), with a depth that adapts to the image.
    """
    c, h, w = (int(s) for s in input_shape)
    sizes = conv_stages(h, w, len(channels))
    layers: list[nn.Module] = []
    cin = c
    for cout in channels[: len(sizes) - 1]:
        layers.append(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU())
        cin = cout
    fh, fw = sizes[-1]
    layers += [nn.Flatten(), nn.Linear(cin * fh * fw, out_features)]
    return nn.Sequential(*layers)


def conv_decoder(
    latent_dim: int,
    input_shape: Sequence[int],
    channels: Sequence[int],
    batch_norm: bool = False,
) -> nn.Sequential:
    """The mirror of :func:`conv_encoder`: codes ``(N, latent_dim)`` to logits
    ``(N, C, H, W)``.

    ``Linear`` to the encoder's last feature map, ``Unflatten``, (``BatchNorm2d``), ``ReLU``;
    per stage in reverse a ``ConvTranspose2d(c_i, c_{i-1}, 4, stride 2, padding 1)`` -- its
    ``output_padding`` (0 or 1 per side) restores odd sides exactly, so no cropping -- followed
    by (``BatchNorm2d``) and ``ReLU`` except after the last one, which outputs the image's
    channels as logits (the sigmoid is applied by the model).
    """
    c, h, w = (int(s) for s in input_shape)
    sizes = conv_stages(h, w, len(channels))
    widths = [c, *channels[: len(sizes) - 1]]
    fh, fw = sizes[-1]
    layers: list[nn.Module] = [
        nn.Linear(latent_dim, widths[-1] * fh * fw),
        nn.Unflatten(1, (widths[-1], fh, fw)),
    ]
    if len(sizes) > 1:
        if batch_norm:
            layers.append(nn.BatchNorm2d(widths[-1]))
        layers.append(nn.ReLU())
    for i in reversed(range(1, len(sizes))):
        (bh, bw), (sh, sw) = sizes[i - 1], sizes[i]
        last = i == 1
        layers.append(
            nn.ConvTranspose2d(
                widths[i], widths[i - 1], 4, stride=2, padding=1,
                output_padding=(bh - 2 * sh, bw - 2 * sw), bias=last or not batch_norm,
            )
        )  # fmt: skip
        if not last:
            if batch_norm:
                layers.append(nn.BatchNorm2d(widths[i - 1]))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _MeanOut(nn.Module):
    """Wraps a network ``(N, ...) -> (N, K)`` and averages its ``K`` outputs: ``(N,)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).mean(1)


def discriminator_mlp(
    in_features: int, hidden: Sequence[int] = (100, 100), negative_slope: float = 0.2
) -> nn.Sequential:
    """A discriminator on vectors ``(N, in_features) -> (N, 1)`` logits: ``Linear`` layers of
    widths ``hidden`` each followed by ``LeakyReLU(negative_slope)``, then ``Linear(.., 1)``.

    The AAE's discriminator of the ACAI paper's code (brain-research/acai ``aae.py``: dense
    layers ``100,100`` with ``tf.nn.leaky_relu``, whose slope is 0.2), also usable as the
    FactorVAE discriminator (Kim & Mnih 2018: six layers of 1000).
    """
    layers: list[nn.Module] = []
    width = int(in_features)
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.LeakyReLU(negative_slope)]
        width = int(h)
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def image_critic(
    arch: str,
    input_shape: Sequence[int],
    out_features: int,
    *,
    hidden: Sequence[int] = (512, 256),
    conv_channels: Sequence[int] = (32, 64, 128),
) -> nn.Module:
    """A critic on images ``(N, C, H, W) -> (N,)``: the encoder network of ``arch``
    (:func:`conv_encoder`, or the ``mlp`` on flattened images) with ``out_features`` outputs,
    averaged -- ACAI's critic (brain-research/acai ``acai.py``: ``reduce_mean`` of an encoder
    of the same layout as the autoencoder's)."""
    if arch == "conv":
        return _MeanOut(conv_encoder(input_shape, conv_channels, out_features))
    d = math.prod(int(s) for s in input_shape)
    return _MeanOut(_FlatMLP(*mlp([d, *hidden, out_features])))


# ------------------------------------------------------------------------------- validation


def positive_int(name: str, value: Any, minimum: int = 1, why: str = "") -> int:
    """``value`` as an int if it is an integer (not a bool) >= ``minimum``; else ``ValueError``
    naming ``name`` and the value (a model hyperparameter's check)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}{why}, got {value!r}")
    return int(value)


def finite_number(
    name: str, value: object, low: float = 0.0, *, positive: bool = False, high: float = math.inf
) -> float:
    """``value`` as a float if it is a finite number (not a bool) ``>= low`` (``> low`` with
    ``positive``) and ``<= high``; else ``ValueError``: ``"NAME must be a finite number >= LOW,
    got VALUE"`` (``> LOW``; ``in [LOW, HIGH]`` with a finite ``high``). The one check of a
    real-valued hyperparameter (weights, rates, noise levels)."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or (value <= low if positive else value < low)
        or value > high
    ):
        if math.isfinite(high):
            bound = f"in {'(' if positive else '['}{low:g}, {high:g}]"
        else:
            bound = f"{'>' if positive else '>='} {low:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _choice(name: str, value: Any, valid: Sequence[str]) -> str:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
    return value


def _int_tuple(name: str, value: Any, *, allow_empty: bool) -> tuple[int, ...]:
    try:
        out = tuple(value)
    except TypeError:
        out = None
    if (
        out is None
        or (not out and not allow_empty)
        or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in out)
    ):
        empty = "" if allow_empty else "non-empty "
        raise ValueError(f"{name} must be a {empty}sequence of positive integers, got {value!r}")
    return tuple(int(v) for v in out)


# ------------------------------------------------------------------------------- the model


class TorchAutoencoder(nn.Module, Model):
    """A neural autoencoder: any encoder/decoder pair, the shared training loop, and the model
    contract (``encode``/``decode`` in evaluation mode, saving, loading, tags).

    ``encoder`` maps images ``(N, C, H, W)`` to ``(N, code_outputs * latent_dim)``;
    ``decoder`` maps codes ``(N, latent_dim)`` to logits with ``N * C * H * W`` elements
    (reshapeable to the images; the sigmoid is applied here). A network that is not given is
    built from ``arch``: ``mlp`` (``D -> hidden... -> code``, mirrored) or ``conv`` (strided
    convolutions, :func:`conv_encoder`/:func:`conv_decoder`; images of at least
    :data:`CONV_MIN_IMAGE_SIZE` pixels a side). ``hidden`` applies to ``mlp``,
    ``conv_channels`` to ``conv``, ``batch_norm`` to both.

    Subclasses set :attr:`code_outputs` (1 for a point code, 2 for a Gaussian's mean and
    log-variance) and override :meth:`loss`; per-epoch behaviour goes into
    :meth:`on_epoch_start`/:meth:`on_epoch_end`, another optimiser or schedule into
    :meth:`configure_optimizer`/:meth:`configure_scheduler`. Training options are
    hyperparameters: ``optimizer`` (``adam``, ``adamw`` -- decoupled weight decay, Loshchilov &
    Hutter 2019 --, ``sgd`` with momentum :data:`SGD_MOMENTUM`), ``weight_decay``, ``schedule``
    (``none``; ``cosine``: ``lr * (1 + cos(pi * (e - 1) / epochs)) / 2`` in epoch ``e``;
    ``step``: ``lr`` times :data:`STEP_GAMMA` after 50 % and again after 75 % of the epochs),
    ``grad_clip`` (maximum global L2 norm of the gradient, ``0``: off).

    Every hyperparameter is validated on construction (``ValueError`` naming it, the bad value
    and what is valid); construction does no data-dependent work, so a model can be built on
    the ``meta`` device to validate its parameters. A new model is in evaluation mode.
    """

    #: Encoder outputs per latent dimension (a VAE outputs mean and log-variance: 2).
    code_outputs: int = 1
    #: Constructor arguments that are networks passed in code, not ``--set`` parameters.
    components = ("encoder", "decoder")
    #: One-line meaning of each hyperparameter (``vaebench list models``).
    param_docs = {
        "arch": "built-in network when none is passed in code: mlp or conv",
        "latent_dim": "code size",
        "hidden": "mlp: hidden layer widths of the encoder (the decoder mirrors them)",
        "conv_channels": "conv: channels per stride-2 stage (fewer stages on small images)",
        "batch_norm": "batch normalisation after every hidden layer (mlp and conv)",
        "epochs": "training epochs",
        "batch_size": "examples per batch (>= 2; a last batch of one joins the previous one)",
        "lr": "learning rate",
        "optimizer": "adam, adamw (decoupled weight decay) or sgd (momentum 0.9)",
        "weight_decay": "L2 penalty (adam, sgd) or decoupled weight decay (adamw); 0 = none",
        "schedule": "learning-rate schedule: none, cosine (to 0), step (x0.1 at 50% and 75%)",
        "grad_clip": "maximum global L2 norm of the gradient; 0 = no clipping",
        "recon_loss": "bce (Bernoulli) or mse (Gaussian, variance 1/2) reconstruction loss",
    }
    #: Upper bounds (:attr:`vaebench.model.Model.param_limits`): each width of the networks.
    param_limits = {
        "hidden": (100_000, "layer width: the weights grow with its square"),
        "conv_channels": (100_000, "channels per stage: the weights grow with its square"),
    }

    def __init__(
        self,
        input_shape: Sequence[int],
        device: torch.device | str = "cpu",
        *,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        arch: str = "mlp",
        latent_dim: int = 10,
        hidden: Sequence[int] = (512, 256),
        conv_channels: Sequence[int] = (32, 64, 128),
        batch_norm: bool = False,
        epochs: int = 30,
        batch_size: int = 128,
        lr: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        schedule: str = "none",
        grad_clip: float = 0.0,
        recon_loss: str = "bce",
    ) -> None:
        super().__init__()
        shape = tuple(input_shape)
        if len(shape) != 3 or any(
            isinstance(s, bool) or not isinstance(s, numbers.Integral) or s <= 0 for s in shape
        ):
            raise ValueError(f"input_shape must be (C, H, W) of positive integers, got {shape!r}")
        for name, net in (("encoder", encoder), ("decoder", decoder)):
            if net is not None and not isinstance(net, nn.Module):
                raise ValueError(
                    f"{name} must be a torch.nn.Module (or None for the built-in {arch!r} "
                    f"network), got {type(net).__name__}"
                )
        self.input_shape = tuple(int(s) for s in shape)
        self.arch = _choice("arch", arch, ARCHS)
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.hidden = _int_tuple("hidden", hidden, allow_empty=True)
        self.conv_channels = _int_tuple("conv_channels", conv_channels, allow_empty=False)
        if not isinstance(batch_norm, bool):
            raise ValueError(f"batch_norm must be true or false, got {batch_norm!r}")
        self.batch_norm = batch_norm
        self.epochs = positive_int("epochs", epochs)
        self.batch_size = positive_int(
            "batch_size", batch_size, 2, " (a batch of one breaks batch normalisation)"
        )
        self.lr = finite_number("lr", lr, positive=True)
        self.optimizer = _choice("optimizer", optimizer, OPTIMIZERS)
        self.weight_decay = finite_number("weight_decay", weight_decay)
        self.schedule = _choice("schedule", schedule, SCHEDULES)
        self.grad_clip = finite_number("grad_clip", grad_clip)
        self.recon_loss = _choice("recon_loss", recon_loss, RECON_LOSSES)
        self.input_dim = math.prod(self.input_shape)
        self._device = torch.device(device)
        # the networks are built on the CPU (so a seed gives the same weights on every device)
        # and moved; on the meta device nothing is allocated at all
        build = torch.device("meta") if self._device.type == "meta" else contextlib.nullcontext()
        self._composed = encoder is not None or decoder is not None
        self._builds_default = encoder is None or decoder is None
        with build:
            self._builds_conv = self.arch == "conv" and (encoder is None or decoder is None)
            self.encoder = encoder if encoder is not None else self._default_encoder()
            self.decoder = decoder if decoder is not None else self._default_decoder()
        nn.Module.to(self, self._device)
        self.eval()

    def _default_encoder(self) -> nn.Module:
        out = self.code_outputs * self.latent_dim
        if self.arch == "conv":
            return conv_encoder(self.input_shape, self.conv_channels, out, self.batch_norm)
        return _FlatMLP(*mlp([self.input_dim, *self.hidden, out], batch_norm=self.batch_norm))

    def _default_decoder(self) -> nn.Module:
        if self.arch == "conv":
            return conv_decoder(
                self.latent_dim, self.input_shape, self.conv_channels, self.batch_norm
            )
        return mlp(
            [self.latent_dim, *reversed(self.hidden), self.input_dim], batch_norm=self.batch_norm
        )

    # -- Model plumbing -------------------------------------------------------------------
    @property
    def unused_params(self) -> tuple[str, ...]:
        """``hidden`` shapes only the built-in mlp, ``conv_channels`` only the built-in conv
        network (``arch``); with both networks passed in code none of the three shapes
        anything."""
        if not self._builds_default:
            return ("arch", "hidden", "conv_channels")
        return ("conv_channels",) if self.arch == "mlp" else ("hidden",)

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

    @property
    def tags(self) -> Tags:
        """:attr:`vaebench.model.Model.tags`; a built ``conv`` network needs images of at least
        :data:`CONV_MIN_IMAGE_SIZE` pixels a side."""
        tags = super().tags
        if self._builds_conv:
            size = max(tags.min_image_size, CONV_MIN_IMAGE_SIZE)
            return dataclasses.replace(tags, min_image_size=size)
        return tags

    @property
    def likelihood_name(self) -> str:
        """The observation model of ``recon_loss`` (``Tags.likelihood`` of models that define
        ``log_likelihood``): ``bce`` is ``bernoulli``, ``mse`` is ``gaussian``."""
        return {"bce": "bernoulli", "mse": "gaussian"}[self.recon_loss]

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]:  # type: ignore[override]
        return dict(nn.Module.state_dict(self, *args, **kwargs))

    def load_state_dict(self, state: dict[str, Tensor], strict: bool = True) -> Any:  # type: ignore[override]
        return nn.Module.load_state_dict(self, state, strict=strict)

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """Run the body in evaluation mode (batch norm uses its running statistics, dropout is
        off) under ``torch.inference_mode()``, then restore the previous mode: inference never
        changes the model. ``encode``, ``decode``, ``sample``, ``posterior`` and
        ``log_likelihood`` use it; so should a subclass's own inference methods."""
        # every submodule's own flag: a module added after ``super().__init__()`` (dropout in
        # front of the encoder, say) starts in training mode while the model itself is in
        # evaluation mode (issue 19.3); each is restored on its own afterwards
        modes = [(m, m.training) for m in self.modules()]
        if any(training for _, training in modes):
            self.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            for module, training in modes:
                module.training = training

    # -- networks ---------------------------------------------------------------------------
    def encoder_outputs(self, x: Tensor) -> Tensor:
        """Raw encoder output ``(N, code_outputs * latent_dim)`` for images ``x``
        ``(N, C, H, W)`` (with autograd, in the current mode: the training path)."""
        return self.encoder(x)

    def code(self, h: Tensor) -> Tensor:
        """Deterministic code from the encoder output (the mean, for a VAE)."""
        return h[:, : self.latent_dim]

    def decoder_logits(self, z: Tensor) -> Tensor:
        """Decoder output before the sigmoid for codes ``z`` ``(N, latent_dim)``: ``N * C * H
        * W`` elements (``(N, D)`` for ``mlp``, ``(N, C, H, W)`` for ``conv``)."""
        return self.decoder(z)

    def encode(self, x: Tensor) -> Tensor:
        """Codes ``(N, latent_dim)`` of images ``(N, C, H, W)``; evaluation mode, no autograd."""
        with self.inference():
            return self.code(self.encoder_outputs(x.to(self._device))).float()

    def decode(self, z: Tensor) -> Tensor:
        """Images ``(N, C, H, W)`` in ``[0, 1]`` (the sigmoid of the decoder's logits) of codes
        ``(N, latent_dim)``; evaluation mode, no autograd."""
        with self.inference():
            out = torch.sigmoid(self.decoder_logits(z.to(self._device)).float())
            return out.reshape(z.shape[0], *self.input_shape)

    def check_networks(self, x: Tensor) -> None:
        """Run the encoder and decoder once on a few images ``x`` (evaluation mode, no
        autograd) and raise ``ValueError`` naming the network when an output has the wrong
        shape. :meth:`fit` calls it before training when networks were passed in, so a
        mismatched pair fails at once with the shapes it produced."""
        with self.inference():
            h = self.encoder_outputs(x)
            want = (x.shape[0], self.code_outputs * self.latent_dim)
            if tuple(h.shape) != want:
                raise ValueError(
                    f"encoder maps images {tuple(x.shape)} to {tuple(h.shape)}; expected "
                    f"{want} (code_outputs={self.code_outputs} x latent_dim={self.latent_dim})"
                )
            logits = self.decoder_logits(h[:, : self.latent_dim])
            if logits.shape[0] != x.shape[0] or logits.numel() != x.numel():
                raise ValueError(
                    f"decoder maps codes {(x.shape[0], self.latent_dim)} to "
                    f"{tuple(logits.shape)}; expected {x.shape[0]} x {self.input_dim} logits "
                    f"(reshapeable to {tuple(x.shape)})"
                )

    # -- training -------------------------------------------------------------------------
    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Losses for one batch ``x`` ``(B, C, H, W)``: ``"loss"`` (a scalar) is minimised,
        the other entries are logged per epoch. A model tagged ``uses_labels`` receives the
        batch's labels too: ``loss(x, y)``."""
        z = self.code(self.encoder_outputs(x))
        rec = reconstruction_loss(self.decoder_logits(z), x, self.recon_loss).mean()
        return {"loss": rec, "recon": rec}

    def configure_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser of :meth:`fit`, from ``optimizer``, ``lr`` and ``weight_decay`` (Adam and
        AdamW use their fused kernel where torch has one for the device)."""
        return self.make_optimizer([p for p in self.parameters() if p.requires_grad])

    def make_optimizer(
        self, params: Iterable[Tensor], lr: float | None = None
    ) -> torch.optim.Optimizer:
        """An optimiser of the model's kind (``optimizer``, ``weight_decay``; fused Adam/AdamW
        where torch has the kernel) over ``params`` with learning rate ``lr`` (default: the
        model's ``lr``). For :meth:`configure_optimizers`."""
        from vaebench.train import fused_optimizer_ok

        params = list(params)
        lr = self.lr if lr is None else lr
        if self.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=lr, momentum=SGD_MOMENTUM, weight_decay=self.weight_decay
            )
        adam = torch.optim.AdamW if self.optimizer == "adamw" else torch.optim.Adam
        return adam(params, lr=lr, weight_decay=self.weight_decay, fused=fused_optimizer_ok(params))

    def configure_optimizers(self) -> list[OptimizerStep] | None:
        """Several optimisers (loop v3): ``None`` (the default) trains every parameter with
        :meth:`configure_optimizer` on the ``"loss"`` entry. A model with a critic or
        discriminator returns one :class:`vaebench.train.OptimizerStep` per part -- e.g.
        ``[OptimizerStep("autoencoder", self.make_optimizer(ae_params), "loss"),
        OptimizerStep("critic", self.make_optimizer(critic_params), "critic_loss")]`` --
        and :meth:`loss` returns every step's entry; each is minimised over its own
        optimiser's parameters only (see :mod:`vaebench.train`). :meth:`configure_scheduler`
        is applied to each optimiser unless a step brings its own scheduler."""
        return None

    def autoencoder_parameters(self) -> list[Tensor]:
        """The trainable parameters of the encoder and decoder (not of a critic)."""
        return [
            p for net in (self.encoder, self.decoder) for p in net.parameters() if p.requires_grad
        ]

    def configure_scheduler(
        self, optimizer: torch.optim.Optimizer
    ) -> torch.optim.lr_scheduler.LRScheduler | None:
        """The per-epoch learning-rate schedule of :meth:`fit` (``None``: constant), stepped
        once after every epoch."""
        if self.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs)
        if self.schedule == "step":
            milestones = sorted({m for m in (self.epochs // 2, 3 * self.epochs // 4) if m > 0})
            return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=STEP_GAMMA)
        return None

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Called by the training loop before epoch ``epoch`` (1-based) of ``epochs``, after
        the model is put in training mode. Override for per-epoch behaviour (a KL warm-up)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """Called after epoch ``epoch`` with its mean losses ``logs`` (after the divergence
        check, before ``progress``). Entries added to ``logs`` are stored in the history (add
        the same keys every epoch)."""

    def fit(
        self, x: Tensor, y: Tensor | None = None, progress: ProgressCallback | None = None
    ) -> FitReport:
        """Train on images ``x`` ``(N, C, H, W)`` in ``[0, 1]`` with the shared loop
        (:func:`vaebench.train.train_loop`); ``y`` (labels ``(N,)``) is passed to :meth:`loss`
        only when ``tags.uses_labels``. Raises ``ValueError`` for fewer than 2 images or a
        network of the wrong shape, :class:`vaebench.errors.DivergenceError` when the loss
        turns NaN or infinite. Leaves the model in evaluation mode."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"fit got images of shape {tuple(x.shape[1:])}; this model was built for "
                f"{self.input_shape}"
            )
        labels = y if self.tags.uses_labels else None
        x = x.to(self._device)
        check_training_data(x, labels, self.batch_size)
        if self._composed:
            self.check_networks(x[:2])
        steps = self.configure_optimizers()
        if steps is not None:
            steps = [
                s if s.scheduler is not None
                else dataclasses.replace(s, scheduler=self.configure_scheduler(s.optimizer))
                for s in steps
            ]  # fmt: skip
            return train_loop(
                self,
                x,
                labels,
                epochs=self.epochs,
                batch_size=self.batch_size,
                steps=steps,
                grad_clip=self.grad_clip,
                progress=progress,
            )
        optimizer = self.configure_optimizer()
        return train_loop(
            self,
            x,
            labels,
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=optimizer,
            scheduler=self.configure_scheduler(optimizer),
            grad_clip=self.grad_clip,
            progress=progress,
        )
