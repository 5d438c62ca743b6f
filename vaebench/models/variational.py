"""Variational models beyond the lecture's VAE: ``iwae`` (Burda et al. 2016), ``vamp`` (a VAE
with a VampPrior, Tomczak & Welling 2018) and ``beta-vae`` (the VAE with beta = 4, Higgins et
al. 2017). Each shares the VAE's networks, posterior, likelihood and training loop."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench.models.vae import VAE
from vaebench.nn import gaussian_log_density, log_likelihood, positive_int, reconstruction_loss

__all__ = ["IWAE", "VampVAE", "BetaVAE", "iwae_bound"]

#: Constructor arguments of :class:`VAE` that :class:`IWAE` does not offer (its objective is the
#: unweighted importance-weighted bound).
_IWAE_HIDDEN = ("beta", "kl_warmup_epochs")


def iwae_bound(log_px_z: Tensor, log_pz: Tensor, log_qz_x: Tensor) -> Tensor:
    """The importance-weighted bound ``log (1/K) sum_k w_k`` per image, ``log w_k = log p(x|z_k)
    + log p(z_k) - log q(z_k|x)`` (Burda, Grosse & Salakhutdinov 2016, eq. 8): inputs ``(N, K)``
    in nats, output ``(N,)``. ``K = 1`` is the ELBO with a one-sample Monte-Carlo KL."""
    log_w = log_px_z + log_pz - log_qz_x
    return torch.logsumexp(log_w, dim=1) - math.log(log_w.shape[1])


class IWAE(VAE):
    """Importance weighted autoencoder (Burda, Grosse & Salakhutdinov, ICLR 2016): the VAE's
    networks trained on the K-sample bound :func:`iwae_bound` with ``z_k = m + exp(s/2) e_k``
    (reparameterised, ``e_k ~ N(0, I)``), ``log q`` and ``log p(z)`` with their constants;
    loss per image ``-log (1/K) sum_k w_k`` (nats). ``k = 1`` trains the VAE's objective with a
    Monte-Carlo KL. Each batch decodes ``K * batch_size`` codes."""

    param_docs = {"k": "importance samples K per training image (1: the VAE's bound)"}

    def __init__(self, *args, k: int = 5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer >= 1 (importance samples), got {k!r}")
        self.k = int(k)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        mean, logvar = self.split(self.encoder_outputs(x))
        n, d = mean.shape
        eps = torch.randn(n, self.k, d, device=mean.device, dtype=mean.dtype)
        z = mean[:, None, :] + torch.exp(0.5 * logvar)[:, None, :] * eps
        log_q = gaussian_log_density(z, mean[:, None, :], logvar[:, None, :]).float()
        log_p = self.log_prior(z.reshape(n * self.k, d)).reshape(n, self.k).float()
        logits = self.decoder_logits(z.reshape(n * self.k, d))
        xs = x.repeat_interleave(self.k, 0)
        log_px = log_likelihood(logits, xs, self.recon_loss).reshape(n, self.k)
        bound = iwae_bound(log_px, log_p, log_q)
        return {
            "loss": -bound.mean(),
            "recon": -log_px.mean(),
            "kl": (log_q - log_p).mean(),
        }


class VampVAE(VAE):
    """VAE with a VampPrior (Tomczak & Welling, AISTATS 2018): the prior is the uniform mixture
    ``p(z) = 1/K sum_k q(z | u_k)`` of the encoder's posteriors at ``K = pseudo_inputs`` learned
    pseudo-inputs ``u_k = hardtanh(v_k, 0, 1)`` (images of the input's shape; ``v_k`` starts at
    ``N(0.05, 0.01^2)`` per pixel, as in the paper's code for MNIST). Training minimises
    ``-log p(x|z) + w (log q(z|x) - log p(z))`` per image with one reparameterised draw ``z``:
    the KL by Monte Carlo, since it has no closed form (``w``: ``beta`` and the optional warm-up,
    as :class:`vaebench.models.vae.VAE`).

    Fewer pseudo-inputs on a small training set: :meth:`fit` keeps the first
    ``min(pseudo_inputs, N)`` of them for ``N`` training images (stated in the history as
    ``pseudo_inputs_used``). ``log_prior`` is the mixture's density (so the ELBO and IWAE
    metrics use this prior), ``sample`` draws a component uniformly, then a code from it.
    """

    param_docs = {
        "pseudo_inputs": "learned pseudo-inputs K of the VampPrior (at most the number of "
        "training images are used)",
    }
    prior_description = "VampPrior: uniform mixture of q(z|u_k) over learned pseudo-inputs u_k"

    def __init__(self, *args, pseudo_inputs: int = 500, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pseudo_inputs = positive_int("pseudo_inputs", pseudo_inputs)
        where = torch.device("meta") if self.device.type == "meta" else torch.device("cpu")
        init = torch.empty(self.pseudo_inputs, *self.input_shape, device=where)
        if where.type != "meta":
            init.normal_(0.05, 0.01)
        self.pseudo = nn.Parameter(init.to(self.device))

    def _resize_pseudo(self, k: int) -> None:
        if self.pseudo.shape[0] != k:
            self.pseudo = nn.Parameter(self.pseudo.detach()[:k].clone())

    def prior_components(self) -> tuple[Tensor, Tensor]:
        """Means and log-variances ``(K, latent_dim)`` of the prior's components: the encoder's
        posterior at the pseudo-inputs (in the current mode, with autograd: the training path)."""
        u = F.hardtanh(self.pseudo, 0.0, 1.0)
        return self.split(self.encoder_outputs(u))

    def log_prior(self, z: Tensor) -> Tensor:
        """``log p(z) = logsumexp_k log N(z; m_k, diag(exp(s_k))) - log K`` in nats, ``(N,)``
        for codes ``(N, latent_dim)`` (any float dtype or device; computed on the model's
        device, returned on ``z``'s in ``z``'s dtype)."""
        m, s = self.prior_components()
        zz = z.to(device=self.device, dtype=m.dtype)
        dens = gaussian_log_density(zz[:, None, :], m[None], s[None])
        out = torch.logsumexp(dens, dim=1) - math.log(m.shape[0])
        return out.to(device=z.device, dtype=z.dtype)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        mean, logvar = self.split(self.encoder_outputs(x))
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        rec = reconstruction_loss(self.decoder_logits(z), x, self.recon_loss)
        kl = gaussian_log_density(z, mean, logvar) - self.log_prior(z)
        rec, kl = rec.mean(), kl.float().mean()
        return {"loss": rec + self.kl_weight * kl, "recon": rec, "kl": kl}

    def fit(self, x: Tensor, y: Tensor | None = None, progress=None):
        """:meth:`VAE.fit <vaebench.nn.TorchAutoencoder.fit>` after keeping at most ``N``
        pseudo-inputs for ``N`` training images."""
        self._resize_pseudo(min(self.pseudo_inputs, int(x.shape[0])))
        return super().fit(x, y, progress)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        super().on_epoch_end(epoch, logs)
        logs["pseudo_inputs_used"] = float(self.pseudo.shape[0])

    def load_state_dict(self, state: dict[str, Tensor], strict: bool = True):  # type: ignore[override]
        if "pseudo" in state:
            self._resize_pseudo(int(state["pseudo"].shape[0]))
        return super().load_state_dict(state, strict=strict)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images decoded from the VampPrior: a component drawn uniformly, then a code
        from it (both with ``generator``, on the CPU)."""
        where = generator.device if generator is not None else torch.device("cpu")
        with self.inference():
            m, s = (t.float().to(where) for t in self.prior_components())
        idx = torch.randint(m.shape[0], (n,), generator=generator, device=where)
        eps = torch.randn(n, self.latent_dim, generator=generator, device=where)
        z = m[idx] + torch.exp(0.5 * s[idx]) * eps
        return self.decode(z.to(self.device))


class BetaVAE(VAE):
    """beta-VAE (Higgins et al., ICLR 2017): :class:`vaebench.models.vae.VAE` with the KL term
    weighted by ``beta`` (default 4, the paper's dSprites setting); ``vae`` with
    ``--set vae.beta=B`` is the same model."""

    def __init__(self, *args, beta: float = 4.0, **kwargs) -> None:
        super().__init__(*args, beta=beta, **kwargs)


def _iwae_spec() -> ModelSpec:
    params = {k: v for k, v in ModelSpec("iwae", IWAE).defaults().items() if k not in _IWAE_HIDDEN}
    return ModelSpec(
        "iwae", IWAE, "importance weighted autoencoder: trained on the K-sample bound", params
    )


@hookimpl
def vaebench_models():
    return [
        _iwae_spec(),
        ModelSpec(
            "vamp", VampVAE, "VAE with a VampPrior (learned pseudo-inputs; KL by Monte Carlo)"
        ),
        ModelSpec("beta-vae", BetaVAE, "the VAE with its KL weighted by beta (default 4)"),
    ]
