"""Deterministic autoencoders with a regularised code: ``rae`` and ``rae-gp`` (Ghosh et al.
2020) and ``wae``
(the Wasserstein autoencoder with the MMD penalty, Tolstikhin et al. 2018). Neither has a
posterior, so likelihood metrics do not apply; ``wae`` samples from its prior ``N(0, I)``,
``rae`` has none (ex-post samplers only)."""

from __future__ import annotations

import torch
from torch import Tensor

from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench.nn import (
    SGD_MOMENTUM,
    TorchAutoencoder,
    finite_number,
    mmd_unbiased,
    reconstruction_loss,
)

__all__ = ["RAE", "RAEGP", "WAE"]


class RAE(TorchAutoencoder):
    """Regularised autoencoder, RAE-L2 (Ghosh, Sajjadi, Vergari, Black & Schölkopf, From
    Variational to Deterministic Autoencoders, ICLR 2020): loss per image ``rec(x, D(E(x))) +
    code_weight * |E(x)|^2 / 2``, plus an L2 weight decay ``decoder_weight_decay`` on the
    decoder's parameters only (in the optimiser, added to ``weight_decay``: with adam or sgd
    the gradient gains ``lambda * theta``, the penalty ``lambda/2 |theta|^2``; with adamw it is
    decoupled). Defaults are those of pythae's ``RAE_L2_Config`` (embedding_weight 1e-4,
    reg_weight 1e-7), not tuned here. No prior: sample with an ex-post sampler."""

    param_docs = {
        "code_weight": "weight beta of the code penalty |z|^2 / 2",
        "decoder_weight_decay": "L2 weight decay lambda on the decoder's parameters only",
    }

    def __init__(
        self, *args, code_weight: float = 1e-4, decoder_weight_decay: float = 1e-7, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.code_weight = finite_number("code_weight", code_weight)
        self.decoder_weight_decay = finite_number("decoder_weight_decay", decoder_weight_decay)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        z = self.code(self.encoder_outputs(x))
        rec = reconstruction_loss(self.decoder_logits(z), x, self.recon_loss).mean()
        code = 0.5 * z.float().pow(2).sum(1).mean()
        return {"loss": rec + self.code_weight * code, "recon": rec, "code_l2": code}

    def configure_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser of ``optimizer`` with two parameter groups: the decoder's weight decay
        is ``weight_decay + decoder_weight_decay``, everything else's ``weight_decay``."""
        from vaebench.train import fused_optimizer_ok

        dec = [p for p in self.decoder.parameters() if p.requires_grad]
        ids = {id(p) for p in dec}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups = [
            {"params": rest, "weight_decay": self.weight_decay},
            {"params": dec, "weight_decay": self.weight_decay + self.decoder_weight_decay},
        ]
        groups = [g for g in groups if g["params"]]
        if self.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=self.lr, momentum=SGD_MOMENTUM)
        adam = torch.optim.AdamW if self.optimizer == "adamw" else torch.optim.Adam
        return adam(groups, lr=self.lr, fused=fused_optimizer_ok(rest + dec))


class RAEGP(RAE):
    """RAE-GP (Ghosh et al. 2020): the RAE with a gradient penalty on the decoder instead of its
    weight decay: loss per image ``rec + code_weight * |z|^2 / 2 + gp_weight * |d/dz sum_p
    D(z)_p|^2`` at ``z = E(x)`` -- the gradient of the summed decoder output (logits) with
    respect to the code, taken with ``create_graph`` so that it is trained (the same
    summed-output trick as pythae's ``RAE_GP._compute_gp``, which differentiates with respect to
    the *input* image through the encoder instead). ``decoder_weight_decay`` defaults to 0 here.
    Defaults from pythae's ``RAE_GP_Config`` (embedding_weight 1e-4, reg_weight 1e-7)."""

    param_docs = {"gp_weight": "weight of the decoder's gradient penalty"}

    def __init__(
        self, *args, gp_weight: float = 1e-7, decoder_weight_decay: float = 0.0, **kwargs
    ) -> None:
        super().__init__(*args, decoder_weight_decay=decoder_weight_decay, **kwargs)
        self.gp_weight = finite_number("gp_weight", gp_weight)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        z = self.code(self.encoder_outputs(x))
        logits = self.decoder_logits(z)
        rec = reconstruction_loss(logits, x, self.recon_loss).mean()
        (grad,) = torch.autograd.grad(logits.float().sum(), z, create_graph=True)
        gp = grad.float().pow(2).sum(1).mean()
        code = 0.5 * z.float().pow(2).sum(1).mean()
        loss = rec + self.code_weight * code + self.gp_weight * gp
        return {"loss": loss, "recon": rec, "code_l2": code, "grad_penalty": gp}


class WAE(TorchAutoencoder):
    """Wasserstein autoencoder with the MMD penalty, WAE-MMD (Tolstikhin, Bousquet, Gelly &
    Schölkopf, ICLR 2018, Algorithm 2): a deterministic encoder, loss per batch ``mean rec(x,
    D(E(x))) + mmd_weight * MMD^2(E(x), z~)`` with ``z~ ~ N(0, I)`` (one prior draw per image)
    and the unbiased MMD estimate of :func:`vaebench.nn.mmd_unbiased` with the inverse
    multiquadratic kernel ``C / (C + |a - b|^2)``, ``C = 2 * latent_dim`` (the paper's ``2 d
    sigma^2`` for the unit-variance prior). ``mmd_weight`` 10 is the paper's MNIST value (with
    a squared-error cost; here ``recon_loss``). Samples decode prior draws."""

    param_docs = {"mmd_weight": "weight lambda of the MMD penalty between codes and N(0, I)"}

    def __init__(self, *args, mmd_weight: float = 10.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mmd_weight = finite_number("mmd_weight", mmd_weight)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        z = self.code(self.encoder_outputs(x))
        rec = reconstruction_loss(self.decoder_logits(z), x, self.recon_loss).mean()
        zf = z.float()
        mmd = mmd_unbiased(zf, torch.randn_like(zf), 2.0 * self.latent_dim)
        return {"loss": rec + self.mmd_weight * mmd, "recon": rec, "mmd": mmd}

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images decoded from codes drawn from the prior ``N(0, I)`` with ``generator``
        (on its device, the CPU for the contract's generators, then moved)."""
        where = generator.device if generator is not None else torch.device("cpu")
        z = torch.randn(n, self.latent_dim, generator=generator, device=where)
        return self.decode(z.to(self.device))


@hookimpl
def vaebench_models():
    return [
        ModelSpec("rae", RAE, "regularised deterministic AE: L2 on codes, decoder weight decay"),
        ModelSpec("rae-gp", RAEGP, "regularised AE: L2 on codes, decoder gradient penalty"),
        ModelSpec("wae", WAE, "Wasserstein AE: MMD (inverse multiquadratic) to N(0, I)"),
    ]
