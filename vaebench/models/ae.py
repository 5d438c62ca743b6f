"""``ae``, ``noisy``, ``dae`` and ``dropout-ae``: deterministic autoencoders sharing one architecture (``arch``:
``mlp`` or ``conv``, see ``docs/models.md``) and one training loop."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench.nn import TorchAutoencoder, finite_number, reconstruction_loss


class AE(TorchAutoencoder):
    """Deep autoencoder: networks replace PCA's W and W^T (loss: reconstruction only)."""


class NoisyAE(TorchAutoencoder):
    """Autoencoder with Gaussian noise ``noise_std * e`` added to the *code* while training.

    Each training image then covers a region of code space rather than a point (the lecture's
    noisy autoencoder). Nothing stops the encoder from scaling its codes up to drown the noise;
    vaebench reports what happens rather than assuming it does not.
    """

    param_docs = {"noise_std": "standard deviation of the Gaussian noise added to the code"}

    def __init__(self, *args, noise_std: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.noise_std = finite_number("noise_std", noise_std)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        z = self.code(self.encoder_outputs(x))
        z = z + self.noise_std * torch.randn_like(z)
        rec = reconstruction_loss(self.decoder_logits(z), x, self.recon_loss).mean()
        return {"loss": rec, "recon": rec}


class DenoisingAE(TorchAutoencoder):
    """Denoising autoencoder: corrupt the *input* with Gaussian noise, reconstruct the clean image
    (the "Denoising" baseline of Berthelot et al., 2019). Corrupted pixels are not clipped."""

    param_docs = {"input_noise_std": "standard deviation of the Gaussian noise on the input"}

    def __init__(self, *args, input_noise_std: float = 0.2, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.input_noise_std = finite_number("input_noise_std", input_noise_std)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        noisy = x + self.input_noise_std * torch.randn_like(x)
        z = self.code(self.encoder_outputs(noisy))
        rec = reconstruction_loss(self.decoder_logits(z), x, self.recon_loss).mean()
        return {"loss": rec, "recon": rec}


class DropoutAE(TorchAutoencoder):
    """Autoencoder with dropout on the *code* while training: each code entry is zeroed with
    probability ``dropout`` and the others scaled by ``1 / (1 - dropout)`` before decoding; no
    dropout at evaluation (``encode``/``decode``).

    The "Dropout" baseline of Berthelot, Raffel, Roy & Goodfellow (ICLR 2019, "Understanding and
    improving interpolation in autoencoders via an adversarial regularizer", Table 1); official
    code brain-research/acai ``dropout.py``: ``tf.nn.dropout`` on the flattened code with keep
    probability 0.5 (our ``dropout`` is the drop probability, so the paper's setting is 0.5).
    """

    param_docs = {"dropout": "probability of zeroing each code entry while training (paper: 0.5)"}

    def __init__(self, *args, dropout: float = 0.5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, int | float)
            or not (0 <= dropout < 1)
        ):
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        z = self.code(self.encoder_outputs(x))
        z = F.dropout(z, p=self.dropout, training=self.training)
        rec = reconstruction_loss(self.decoder_logits(z), x, self.recon_loss).mean()
        return {"loss": rec, "recon": rec}


@hookimpl
def vaebench_models():
    return [
        ModelSpec("ae", AE, "deep autoencoder (reconstruction loss only; mlp or conv)"),
        ModelSpec("noisy", NoisyAE, "autoencoder with Gaussian noise added to the code"),
        ModelSpec("dae", DenoisingAE, "denoising autoencoder (Gaussian noise on the input)"),
        ModelSpec("dropout-ae", DropoutAE, "autoencoder with dropout on the code (ACAI's Dropout)"),
    ]
