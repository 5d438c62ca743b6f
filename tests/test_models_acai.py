"""The ACAI paper's baselines (dropout-ae, aae, vqvae, acai): each objective against the paper's
formula on a hand-computable case and against a port of the official code on the same inputs
(brain-research/acai ``acai.py``, ``aae.py``, ``dropout.py``; for the VQ-VAE quantiser pythae,
clementchadebec/benchmark_VAE ``src/pythae/models/vq_vae/vq_vae_utils.py``, since the ACAI code
uses tensor2tensor's discrete bottleneck)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from vaebench.models.adversarial import AAE, ACAI, aae_objective, acai_objective
from vaebench.models.ae import DropoutAE
from vaebench.models.vqvae import VQVAE, nearest_code, vq_objective
from vaebench.train import seed_everything

SHAPE = (1, 4, 4)
D = 16


class Const(nn.Module):
    """A critic/discriminator that outputs ``c`` whatever it sees (hand-computable losses)."""

    def __init__(self, c: float, shape: tuple = ()) -> None:
        super().__init__()
        self.c = c
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        return torch.full((x.shape[0], *self.shape), self.c) + 0 * x.flatten(1).sum(1).reshape(
            x.shape[0], *([1] * len(self.shape))
        )


# ------------------------------------------------------------------------------------- acai
def test_acai_hand_computed_with_a_constant_critic():
    x = torch.full((2, *SHAPE), 0.5)
    z = torch.zeros(2, 3)
    logits = torch.zeros(2, D)  # sigmoid 0.5: a perfect mse reconstruction
    alpha = torch.tensor([[0.1], [0.3]])
    out = acai_objective(
        x, z, logits, alpha, lambda h: torch.zeros(h.shape[0], D), Const(0.5),
        adv_weight=0.5, reg=0.2, recon_loss="mse",
    )  # fmt: skip
    # critic_mix = ((0.5 - 0.1)^2 + (0.5 - 0.3)^2) / 2 = 0.1; critic_real = 0.25
    assert out["critic_mix"].item() == pytest.approx(0.1)
    assert out["critic_real"].item() == pytest.approx(0.25)
    assert out["critic_loss"].item() == pytest.approx(0.35)
    # loss = recon 0 + lambda * D * 0.5^2
    assert out["loss"].item() == pytest.approx(0.5 * D * 0.25)


def _official_acai(x, encode, decoder, disc, alpha, advweight, reg):
    """brain-research/acai acai.py, ACAI.model, ported line by line (tf -> torch; images are our
    [0, 1] images, the decoder output our sigmoid)."""
    ae = decoder(encode)
    loss_ae = torch.mean((x - ae) ** 2)  # tf.losses.mean_squared_error(x, ae)
    encode_mix = alpha * encode + (1 - alpha) * torch.flip(encode, [0])  # encode[::-1]
    decode_mix = decoder(encode_mix)
    loss_disc = torch.mean(torch.square(disc(decode_mix) - alpha[:, 0]))
    loss_disc_real = torch.mean(torch.square(disc(ae + reg * (x - ae))))
    loss_ae_disc = torch.mean(torch.square(disc(decode_mix)))
    return loss_ae + advweight * loss_ae_disc, loss_disc + loss_disc_real


def test_acai_matches_the_official_code():
    seed_everything(0)
    model = ACAI(SHAPE, latent_dim=3, hidden=(8,), recon_loss="mse")
    x = torch.rand(6, *SHAPE)
    alpha = 0.5 * torch.rand(6, 1)
    z = model.code(model.encoder_outputs(x))
    ours = acai_objective(
        x, z, model.decoder_logits(z), alpha, model.decoder_logits, model.critic,
        adv_weight=0.5, reg=0.2, recon_loss="mse",
    )  # fmt: skip

    def decoder(h):
        return torch.sigmoid(model.decoder_logits(h)).reshape(-1, *SHAPE)

    ae_obj, disc_obj = _official_acai(x, z, decoder, model.critic, alpha, 0.5, 0.2)
    # ours sums the squared error over the D pixels: D times the official (module docstring)
    torch.testing.assert_close(ours["loss"] / D, ae_obj)
    torch.testing.assert_close(ours["critic_loss"], disc_obj)


def test_acai_mixing_coefficients_are_folded_into_zero_to_a_half(monkeypatch):
    seed_everything(0)
    model = ACAI(SHAPE, latent_dim=3, hidden=(8,))
    seen = []
    import vaebench.models.adversarial as adv

    real = adv.acai_objective

    def spy(x, z, logits, alpha, *args, **kwargs):
        seen.append(alpha)
        return real(x, z, logits, alpha, *args, **kwargs)

    monkeypatch.setattr(adv, "acai_objective", spy)
    model.train()
    model.loss(torch.rand(4096, *SHAPE))
    a = seen[0]
    assert a.shape == (4096, 1) and a.min() >= 0 and a.max() <= 0.5
    assert a.mean().item() == pytest.approx(0.25, abs=0.01)  # U[0, 1] folded: U[0, 0.5]


def test_acai_trains_two_optimisers_and_its_critic_is_saved():
    seed_everything(0)
    model = ACAI(SHAPE, latent_dim=2, hidden=(8,), epochs=2, batch_size=8)
    steps = model.configure_optimizers()
    assert [s.name for s in steps] == ["autoencoder", "critic"]
    assert [s.loss for s in steps] == ["loss", "critic_loss"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = model.fit(torch.rand(32, *SHAPE))
    assert set(report.history) == {"loss", "critic_loss", "recon", "critic_mix", "critic_real"}
    state = model.state_dict()
    assert any(k.startswith("critic.") for k in state)
    assert any(not torch.equal(before[k], state[k]) for k in state if k.startswith("critic."))
    twin = ACAI(SHAPE, latent_dim=2, hidden=(8,))
    twin.load_state_dict(state)
    x = torch.rand(5, *SHAPE)
    torch.testing.assert_close(twin.decode(twin.encode(x)), model.decode(model.encode(x)))


# ------------------------------------------------------------------------------------- aae
def _sce(logits: Tensor, labels: Tensor) -> Tensor:
    """tf.nn.sigmoid_cross_entropy_with_logits, its documented formula."""
    return logits.clamp(min=0) - logits * labels + torch.log1p(torch.exp(-logits.abs()))


def test_aae_hand_computed_with_an_undecided_discriminator():
    x = torch.full((2, *SHAPE), 0.5)
    out = aae_objective(
        x, torch.zeros(2, 3), torch.zeros(2, D), torch.ones(2, 3), Const(0.0, (1,)),
        adv_weight=1.0, recon_loss="mse",
    )  # fmt: skip
    assert out["disc_loss"].item() == pytest.approx(2 * math.log(2))
    assert out["adv"].item() == pytest.approx(math.log(2))
    assert out["loss"].item() == pytest.approx(D * math.log(2))


def test_aae_matches_the_official_code():
    """brain-research/acai aae.py, AAE.model, ported (tf -> torch)."""
    seed_everything(0)
    model = AAE(SHAPE, latent_dim=3, hidden=(8,), recon_loss="mse")
    x = torch.rand(6, *SHAPE)
    z = model.code(model.encoder_outputs(x))
    prior = torch.randn(z.shape)
    ours = aae_objective(
        x, z, model.decoder_logits(z), prior, model.discriminator,
        adv_weight=1.0, recon_loss="mse",
    )  # fmt: skip
    ae = torch.sigmoid(model.decoder_logits(z)).reshape(x.shape)
    loss_ae = torch.mean((x - ae) ** 2)
    logit_latent = model.discriminator(z)
    logit_prior = model.discriminator(prior)
    adversary_loss_latents = _sce(logit_latent, torch.zeros_like(logit_latent)).mean()
    adversary_loss_prior = _sce(logit_prior, torch.ones_like(logit_prior)).mean()
    autoencoder_loss_latents = _sce(logit_latent, torch.ones_like(logit_latent)).mean()
    torch.testing.assert_close(ours["loss"] / D, loss_ae + autoencoder_loss_latents)
    torch.testing.assert_close(ours["disc_loss"], adversary_loss_prior + adversary_loss_latents)
    # the paper's settings: discriminator 100,100 leaky ReLU (tf default slope 0.2), lr 1e-4
    linear = [m for m in model.discriminator if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linear] == [100, 100, 1]
    steps = model.configure_optimizers()
    assert [s.optimizer.param_groups[0]["lr"] for s in steps] == [1e-3, 1e-4]


def test_aae_samples_decode_prior_draws():
    seed_everything(0)
    model = AAE(SHAPE, latent_dim=3, hidden=(8,))
    assert model.tags.can_sample
    s = model.sample(4, torch.Generator().manual_seed(1))
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(s, model.decode(z))


# --------------------------------------------------------------------------------- dropout
def test_dropout_zeroes_code_entries_and_scales_the_rest_like_tf_nn_dropout(monkeypatch):
    """brain-research/acai dropout.py: tf.nn.dropout(code, keep_prob=0.5): each entry is 0 or
    code / keep_prob."""
    seed_everything(0)
    model = DropoutAE(SHAPE, latent_dim=64, hidden=(8,), dropout=0.5)
    seen = []
    real = model.decoder_logits

    def spy(z):
        seen.append(z.detach())
        return real(z)

    monkeypatch.setattr(model, "decoder_logits", spy)
    x = torch.rand(64, *SHAPE)
    model.train()
    model.loss(x)
    with torch.no_grad():
        z = model.code(model.encoder_outputs(x))
    dropped = seen[0]
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], 2 * z[kept])
    assert 0.45 < 1 - kept.float().mean().item() < 0.55
    model.eval()
    model.loss(x)
    torch.testing.assert_close(seen[1], z)  # no dropout at evaluation
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got 1"):
        DropoutAE(SHAPE, dropout=1)


# ----------------------------------------------------------------------------------- vqvae
def test_vq_hand_computed():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    z_e = torch.tensor([[0.2, 0.1, 0.9, 1.2]], requires_grad=True)
    idx = nearest_code(z_e.detach().reshape(-1, 2), codebook)
    assert idx.tolist() == [0, 1]
    q = codebook[idx].reshape(1, 4)
    seen = []

    def decoder(h):
        seen.append(h)
        return torch.zeros(1, D) + 0 * h.sum()

    out = vq_objective(
        torch.full((1, *SHAPE), 0.5), z_e, q, decoder, beta=0.25, ema=False, recon_loss="mse"
    )
    # ||z_e - q||^2 = 0.04 + 0.01 + 0.01 + 0.04 = 0.1
    assert out["commitment"].item() == pytest.approx(0.1)
    assert out["codebook"].item() == pytest.approx(0.1)
    assert out["loss"].item() == pytest.approx(0.1 + 0.25 * 0.1)
    torch.testing.assert_close(seen[0].detach(), q)  # the decoder sees the quantised code
    assert vq_objective(
        torch.full((1, *SHAPE), 0.5), z_e, q, decoder, beta=0.25, ema=True, recon_loss="mse"
    )["loss"].item() == pytest.approx(0.25 * 0.1)


def test_straight_through_gradient_reaches_the_encoder_output():
    z_e = torch.tensor([[0.2, 0.1]], requires_grad=True)
    q = torch.tensor([[0.0, 0.0]])
    w = torch.tensor([[1.0, -2.0]])
    out = vq_objective(
        torch.zeros(1, 1, 1, 1), z_e, q, lambda h: (h * w).sum(1, keepdim=True),
        beta=0.0, ema=True, recon_loss="mse",
    )  # fmt: skip
    out["loss"].backward()
    # recon = (sigmoid(q . w) - 0)^2 at q = 0: d/dh = 2 s (1 - s) s w with s = 1/2
    torch.testing.assert_close(z_e.grad, 2 * 0.5 * 0.25 * w)


def _pythae_quantizer_ema(z, embeddings, cluster_size, ema_embed, decay, training=True):
    """pythae QuantizerEMA.forward (vq_vae_utils.py), ported on flat codes ``(M, d)``; returns
    (quantized, commitment_loss, embeddings, cluster_size, ema_embed) after the update."""
    k = embeddings.shape[0]
    distances = (
        (z**2).sum(dim=-1, keepdim=True) + (embeddings**2).sum(dim=-1) - 2 * z @ embeddings.T
    )
    closest = distances.argmin(-1).unsqueeze(-1)
    one_hot = torch.nn.functional.one_hot(closest, num_classes=k).float().squeeze(1)
    quantized = one_hot @ embeddings
    if training:
        n_i = one_hot.sum(0)
        cluster_size = cluster_size * decay + n_i * (1 - decay)
        dw = one_hot.T @ z
        ema_embed = ema_embed * decay + dw * (1 - decay)
        n = cluster_size.sum()
        cluster_size = (cluster_size + 1e-5) / (n + k * 1e-5) * n
        embeddings = ema_embed / cluster_size.unsqueeze(-1)
    commitment = torch.nn.functional.mse_loss(quantized.detach(), z, reduction="mean")
    return quantized, commitment, embeddings, cluster_size, ema_embed


def test_vq_and_its_ema_codebook_match_pythae():
    seed_everything(0)
    model = VQVAE(SHAPE, latent_dim=4, code_dim=2, codebook_size=5, hidden=(8,), decay=0.9)
    emb = model.codebook.clone()
    cs, ema = torch.ones(5), model.embed_sum.clone()  # our initial state, fed to both
    x = torch.rand(6, *SHAPE)
    model.train()
    for _ in range(2):  # the second step sees the first one's codebook
        z = model.code(model.encoder_outputs(x)).detach()
        q_ref, commit_ref, emb, cs, ema = _pythae_quantizer_ema(z.reshape(-1, 2), emb, cs, ema, 0.9)
        out = model.loss(x)
        # ours: squared norm summed over the code (latent_dim values), pythae: the mean
        torch.testing.assert_close(out["commitment"] / 4, commit_ref)
        # pythae stores the smoothed cluster sizes, Sonnet (and we) the raw ones: 1e-5 apart
        torch.testing.assert_close(model.codebook, emb, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(model.embed_sum, ema)
    assert model.code_counts.sum().item() == 2 * 6 * 2


def test_vqvae_decodes_quantised_codes_and_samples_from_index_frequencies():
    seed_everything(0)
    model = VQVAE(SHAPE, latent_dim=4, code_dim=2, codebook_size=8, hidden=(8,), epochs=1)
    model.fit(torch.rand(16, *SHAPE))
    z = torch.randn(3, 4)
    q, idx = model.quantize(z)
    assert idx.shape == (3, 2)
    torch.testing.assert_close(model.decode(z), model.decode(q))
    used = model.code_counts.nonzero().flatten().tolist()
    assert model.code_counts.sum().item() == 16 * 2
    s = model.sample(50, torch.Generator().manual_seed(0))
    assert s.shape == (50, *SHAPE) and model.tags.can_sample
    # every sampled image is the decoding of codebook rows that training used
    pairs = [[a, b] for a in used for b in used]
    decoded = model.decode(model.codebook[torch.tensor(pairs)].reshape(len(pairs), 4))
    gap = (s.flatten(1)[:, None, :] - decoded.flatten(1)[None]).abs().amax(2).amin(1)
    assert gap.max().item() < 1e-5
    with pytest.raises(ValueError, match=r"code_dim must be 0 \(auto\) or a positive integer"):
        VQVAE(SHAPE, latent_dim=5, code_dim=2)
    assert VQVAE(SHAPE, latent_dim=5).code_dim == 1 and VQVAE(SHAPE, latent_dim=64).code_dim == 2


def test_vqvae_without_ema_learns_its_codebook_by_gradient():
    seed_everything(0)
    model = VQVAE(SHAPE, latent_dim=4, code_dim=2, codebook_size=4, hidden=(8,), ema=False,
                  epochs=2, batch_size=8)  # fmt: skip
    assert isinstance(model.codebook, nn.Parameter)
    before = model.codebook.detach().clone()
    model.fit(torch.rand(16, *SHAPE))
    assert not torch.equal(before, model.codebook.detach())


def test_bench_reference_of_a_two_optimiser_model_is_a_plain_loop_of_its_own_step():
    from vaebench.bench import LoopReference, reference_for

    seed_everything(0)
    model = ACAI(SHAPE, latent_dim=2, hidden=(8,), batch_size=8)
    ref = reference_for(model)
    assert isinstance(ref, LoopReference)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert ref.train(torch.rand(16, *SHAPE)) == 16
    trained = ref.model.state_dict()
    # both parts of the copy moved, the measured model did not
    for part in ("encoder.", "critic."):
        assert any(not torch.equal(before[k], trained[k]) for k in before if k.startswith(part))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert ref.encode(torch.rand(3, *SHAPE)).shape == (3, 2)


def test_the_four_models_are_registered_with_documented_hyperparameters():
    from vaebench.plugins import get_registry

    reg = get_registry()
    want = {
        "dropout-ae": {"dropout": 0.5},
        "aae": {"adv_weight": 1.0, "disc_hidden": (100, 100), "disc_lr": 1e-4},
        "vqvae": {"codebook_size": 512, "code_dim": 0, "beta": 0.25, "ema": True, "decay": 0.99},
        "acai": {"adv_weight": 0.5, "reg": 0.2},
    }
    for name, params in want.items():
        spec = reg.model(name).spec
        defaults, docs = spec.defaults(), spec.docs()
        for key, value in params.items():
            assert defaults[key] == value, (name, key)
            assert docs[key], (name, key)
        for arch in ("mlp", "conv"):
            model = spec.create((1, 8, 8), device="meta", arch=arch, latent_dim=4)
            assert model.arch == arch
