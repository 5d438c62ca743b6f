"""``vqvae``: the vector-quantised autoencoder of van den Oord, Vinyals & Kavukcuoglu (NeurIPS
2017, "Neural discrete representation learning"), one of the ACAI paper's baselines."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench.nn import TorchAutoencoder, finite_number, positive_int, reconstruction_loss

__all__ = ["VQVAE", "nearest_code", "vq_objective", "ema_update"]

#: Laplace smoothing of the EMA cluster sizes (van den Oord et al. 2017, appendix; the Sonnet
#: ``VectorQuantizerEMA`` and pythae's ``QuantizerEMA`` use the same 1e-5).
EMA_EPSILON = 1e-5


def nearest_code(flat: Tensor, codebook: Tensor) -> Tensor:
    """Index of the nearest codebook row (squared Euclidean distance) of every row of ``flat``
    ``(M, d)``; ``codebook`` ``(K, d)``; returns ``(M,)`` int64 (ties: the lowest index)."""
    dist = (
        flat.pow(2).sum(1, keepdim=True)
        - 2 * flat @ codebook.t()
        + codebook.pow(2).sum(1).unsqueeze(0)
    )
    return dist.argmin(1)


def vq_objective(
    x: Tensor, z_e: Tensor, q: Tensor, decoder, *, beta: float, ema: bool, recon_loss: str
) -> dict[str, Tensor]:
    """The VQ-VAE loss of one batch (van den Oord et al. 2017, eq. 3), averaged over examples:

    ``recon(x | decoder(z_e + sg[q - z_e])) + ||sg[z_e] - q||^2 + beta ||z_e - sg[q]||^2``

    with ``z_e`` the encoder's output ``(N, K)``, ``q`` its quantisation (same shape), ``sg``
    the stop-gradient and squared norms summed over the code. The middle (codebook) term is left
    out of ``loss`` when ``ema`` (the codebook then moves by exponential moving averages, the
    paper's appendix A.1) but still logged. The first term's decoder input is the
    straight-through estimator: the forward pass decodes ``q``, the gradient reaches ``z_e`` as
    if quantisation were the identity. Returns ``{"loss", "recon", "codebook", "commitment"}``.
    """
    st = z_e + (q - z_e).detach()
    rec = reconstruction_loss(decoder(st), x, recon_loss).mean()
    codebook = (z_e.detach().float() - q.float()).pow(2).sum(1).mean()
    commit = (z_e.float() - q.detach().float()).pow(2).sum(1).mean()
    loss = rec + beta * commit + (0.0 if ema else codebook)
    return {"loss": loss, "recon": rec, "codebook": codebook, "commitment": commit}


@torch.no_grad()
def ema_update(
    flat: Tensor,
    idx: Tensor,
    cluster_size: Tensor,
    embed_sum: Tensor,
    codebook: Tensor,
    decay: float,
    eps: float = EMA_EPSILON,
) -> None:
    """In place, the EMA codebook update of van den Oord et al. (2017, appendix A.1):
    ``N_k <- decay N_k + (1 - decay) n_k``, ``m_k <- decay m_k + (1 - decay) sum_{i: k} z_i``,
    ``e_k = m_k / N_k`` with Laplace-smoothed ``N_k`` (``(N_k + eps) / (n + K eps) * n``,
    ``n = sum N_k``), as the Sonnet ``VectorQuantizerEMA``. ``flat``: encoder outputs
    ``(M, d)``; ``idx``: their nearest codes ``(M,)``; the others are the ``(K,)``, ``(K, d)``
    and ``(K, d)`` state tensors (float32)."""
    k = codebook.shape[0]
    onehot = torch.zeros(flat.shape[0], k, device=flat.device, dtype=torch.float32)
    onehot.scatter_(1, idx.unsqueeze(1), 1.0)
    cluster_size.mul_(decay).add_(onehot.sum(0), alpha=1 - decay)
    embed_sum.mul_(decay).add_(onehot.t() @ flat.float(), alpha=1 - decay)
    n = cluster_size.sum()
    smoothed = (cluster_size + eps) / (n + k * eps) * n
    codebook.copy_(embed_sum / smoothed.unsqueeze(1))


class VQVAE(TorchAutoencoder):
    """Vector-quantised autoencoder (van den Oord, Vinyals & Kavukcuoglu, NeurIPS 2017).

        The encoder's output ``z_e`` (``latent_dim`` values) is cut into ``latent_dim / code_dim``
        vectors of ``code_dim`` values; each is replaced by its nearest of ``codebook_size`` codebook
        vectors (one codebook shared by all positions), the decoder sees the quantised code, and the
        gradient passes the quantiser straight through. Loss: :func:`vq_objective` with the
        commitment weight ``beta`` (paper: 0.25). With ``ema`` (default, as the ACAI paper's code,
        brain-research/acai ``vqvae.py``: ``ema=True``) the codebook is not a parameter: it follows
        exponential moving averages of the codes assigned to it (:func:`ema_update`, ``decay``
        0.99 as van den Oord et al.'s appendix; the ACAI code uses 0.999 for far longer training),
        updated without gradient inside ``loss`` while training. Without ``ema`` it is learned by
        the codebook term. The codebook starts as ``N(0, 1)`` draws; with ``ema`` every vector starts
    with a count of one (itself), so a vector no code is assigned to keeps its place (with counts
    starting at 0 its first update would divide by the smoothing constant 1e-5 and throw it far
    away).

        ``encode`` returns the *continuous* ``z_e`` and ``decode`` quantises before decoding, so an
        interpolation mixes encoder outputs and decodes their quantisation (as the ACAI paper
        evaluates its VQ-VAE baseline). ``sample(n)`` draws every code position independently from
        the **empirical frequencies of the codebook indices** in the last training epoch (a uniform
        choice before any training) -- a stated, crude prior: the paper fits a PixelCNN over
        indices instead. ``quantize(z)`` returns ``(q, idx)``.
    """

    # buffers (``codebook`` is a parameter without ``ema``), declared for type checkers
    codebook: Tensor
    cluster_size: Tensor
    embed_sum: Tensor
    code_counts: Tensor

    param_docs = {
        "codebook_size": "number of codebook vectors K",
        "code_dim": "values per codebook vector, dividing latent_dim; 0 = 2 if latent_dim is even, else 1",
        "beta": "commitment weight (paper: 0.25)",
        "ema": "move the codebook by exponential moving averages (else learn it by gradient)",
        "decay": "EMA decay of the codebook (paper's appendix: 0.99)",
    }
    param_limits = {
        "codebook_size": (1_000_000, "codebook vectors: the distance matrix grows with it")
    }

    def __init__(
        self,
        *args,
        codebook_size: int = 512,
        code_dim: int = 0,
        beta: float = 0.25,
        ema: bool = True,
        decay: float = 0.99,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        positive_int("codebook_size", codebook_size)
        if (
            isinstance(code_dim, bool)
            or not isinstance(code_dim, int)
            or code_dim < 0
            or (code_dim > 0 and self.latent_dim % code_dim)
        ):
            raise ValueError(
                f"code_dim must be 0 (auto) or a positive integer that divides "
                f"latent_dim={self.latent_dim}, got {code_dim!r}"
            )
        if code_dim == 0:
            code_dim = 2 if self.latent_dim % 2 == 0 else 1
        finite_number("beta", beta)
        if not isinstance(ema, bool):
            raise ValueError(f"ema must be true or false, got {ema!r}")
        if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 <= decay < 1:
            raise ValueError(f"decay must be a number in [0, 1), got {decay!r}")
        self.codebook_size = int(codebook_size)
        self.code_dim = int(code_dim)
        self.beta = float(beta)
        self.ema = ema
        self.decay = float(decay)
        meta = self.device.type == "meta"
        where = torch.device("meta") if meta else torch.device("cpu")
        init = torch.randn(self.codebook_size, self.code_dim, device=where)
        if ema:
            self.register_buffer("codebook", init)
            # each vector starts as if it had been assigned once (itself): an unused vector then
            # stays where it is instead of being divided by a near-zero count and thrown far away
            self.register_buffer("cluster_size", torch.ones(self.codebook_size, device=where))
            self.register_buffer("embed_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("code_counts", torch.zeros(self.codebook_size, device=where))
        nn.Module.to(self, self.device)
        self.eval()

    def quantize(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Nearest codebook vectors of codes ``z`` ``(N, latent_dim)``: the quantised codes
        ``(N, latent_dim)`` and the indices ``(N, latent_dim / code_dim)``."""
        n = z.shape[0]
        flat = z.float().reshape(-1, self.code_dim)
        idx = nearest_code(flat, self.codebook.float())
        q = self.codebook[idx].reshape(n, self.latent_dim)
        return q, idx.reshape(n, -1)

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self.code_counts.zero_()

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        z_e = self.code(self.encoder_outputs(x))
        q, idx = self.quantize(z_e)
        if self.training:
            with torch.no_grad():
                flat_idx = idx.reshape(-1)
                self.code_counts += torch.bincount(flat_idx, minlength=self.codebook_size)
                if self.ema:
                    ema_update(
                        z_e.detach().float().reshape(-1, self.code_dim), flat_idx,
                        self.cluster_size, self.embed_sum, self.codebook, self.decay,
                    )  # fmt: skip
        return vq_objective(
            x, z_e, q.to(z_e.dtype), self.decoder_logits, beta=self.beta, ema=self.ema, recon_loss=self.recon_loss,
        )  # fmt: skip

    def decode(self, z: Tensor) -> Tensor:
        """Images ``(N, C, H, W)`` of continuous codes ``z`` ``(N, latent_dim)``, quantised
        first (:meth:`quantize`); evaluation mode, no autograd."""
        with self.inference():
            q, _ = self.quantize(z.to(self.device))
        return super().decode(q)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images decoded from codebook indices drawn independently per position from
        the last training epoch's index frequencies (uniform before training), with
        ``generator`` (on the generator's device, the CPU for the contract's generators)."""
        where = generator.device if generator is not None else torch.device("cpu")
        counts = self.code_counts.detach().float().to(where)
        probs = counts if counts.sum() > 0 else torch.ones_like(counts)
        positions = self.latent_dim // self.code_dim
        idx = torch.multinomial(probs, n * positions, replacement=True, generator=generator)
        with self.inference():
            q = self.codebook[idx.to(self.device)].reshape(n, self.latent_dim)
        return super().decode(q)


@hookimpl
def vaebench_models():
    return [
        ModelSpec("vqvae", VQVAE, "VQ-VAE: quantised code, commitment loss, EMA codebook"),
    ]
