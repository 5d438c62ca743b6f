"""The built-in models: interface, maths (PCA vs scikit-learn, KL vs torch.distributions),
training (a trained AE beats the mean image) and the shared loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaebench.model import DivergenceError, Model, TorchAutoencoder, reconstruction_loss
from vaebench.plugins import get_registry
from vaebench.train import seed_everything, select_device, train_loop

BUILTIN_MODELS = ["pca", "ae", "noisy", "dae", "vae"]
NEURAL_MODELS = ["ae", "noisy", "dae", "vae"]


def _builtin_and_registered():
    # every registered model is tested (timm style); built-ins must be among them
    names = sorted(get_registry().models)
    assert set(BUILTIN_MODELS) <= set(names)
    return names


def _small(spec, shape, device, **extra):
    params = {}
    defaults = spec.defaults()
    if "epochs" in defaults:
        params["epochs"] = 2
    if "hidden" in defaults:
        params["hidden"] = (32,)
    if "latent_dim" in defaults:
        params["latent_dim"] = 3
    params.update(extra)
    return spec.create(shape, device=device, **params)


@pytest.mark.parametrize("name", _builtin_and_registered())
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 6, 5)])
def test_encode_decode_shapes(name, shape, device):
    spec = get_registry().model(name).spec
    seed_everything(0)
    model = _small(spec, shape, device)
    assert isinstance(model, Model)
    x = torch.rand(40, *shape, device=device)
    report = model.fit(x)
    assert report.samples_seen >= 40 and report.seconds >= 0
    assert "loss" in report.history and all(math.isfinite(v) for v in report.history["loss"])
    z = model.encode(x[:5])
    assert z.shape == (5, model.latent_dim)
    assert not z.requires_grad
    out = model.decode(z)
    assert out.shape == (5, *shape)
    assert not out.requires_grad
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert model.n_params > 0
    # deterministic encode
    assert torch.equal(model.encode(x[:5]), z)


@pytest.mark.parametrize("name", NEURAL_MODELS)
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 7, 9), (1, 28, 28)])
def test_conv_arch_encode_decode_shapes(name, shape, device):
    spec = get_registry().model(name).spec
    seed_everything(0)
    model = _small(spec, shape, device, arch="conv", conv_channels=(4, 8))
    x = torch.rand(20, *shape, device=device)
    report = model.fit(x)
    assert all(math.isfinite(v) for v in report.history["loss"])
    z = model.encode(x[:5])
    out = model.decode(z)
    assert z.shape == (5, 3) and out.shape == (5, *shape)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


@pytest.mark.parametrize(
    "name, arch",
    [(n, "mlp") for n in BUILTIN_MODELS] + [(n, "conv") for n in NEURAL_MODELS],
)
def test_save_load_round_trip(name, arch, tmp_path, device):
    spec = get_registry().model(name).spec
    extra = {} if name == "pca" else {"arch": arch, "batch_norm": arch == "conv"}
    seed_everything(1)
    model = _small(spec, (1, 8, 8), device, **extra)
    x = torch.rand(30, 1, 8, 8, device=device)
    model.fit(x)
    path = tmp_path / f"{name}.pt"
    model.save(path)
    seed_everything(2)
    fresh = _small(spec, (1, 8, 8), device, **extra)
    assert not torch.equal(fresh.decode(fresh.encode(x)), model.decode(model.encode(x)))
    fresh.load(path)
    assert torch.equal(fresh.decode(fresh.encode(x)), model.decode(model.encode(x)))


def test_same_seed_same_model(device):
    spec = get_registry().model("vae").spec
    x = torch.rand(50, 1, 8, 8)
    outs = []
    for _ in range(2):
        seed_everything(7)
        m = _small(spec, (1, 8, 8), device)
        rep = m.fit(x.to(device))
        outs.append((rep.history["loss"], m.encode(x.to(device))))
    assert outs[0][0] == outs[1][0]
    assert torch.equal(outs[0][1], outs[1][1])


def test_pca_matches_scikit_learn(digits, device):
    from sklearn.decomposition import PCA as SkPCA

    k = 6
    spec = get_registry().model("pca").spec
    model = spec.create(digits.shape, device=device, latent_dim=k)
    model.fit(digits.x_train.to(device))
    x = digits.x_train.reshape(len(digits.x_train), -1).double().numpy()
    sk = SkPCA(n_components=k, svd_solver="full").fit(x)
    ours = model.components.double().cpu().numpy()
    # same subspace: the projectors onto the spans agree
    np.testing.assert_allclose(ours.T @ ours, sk.components_.T @ sk.components_, atol=1e-4)
    # each component equal up to sign
    for a, b in zip(ours, sk.components_, strict=True):
        assert min(np.abs(a - b).max(), np.abs(a + b).max()) < 1e-4
    np.testing.assert_allclose(model.explained_variance.cpu().numpy(), sk.explained_variance_,
                               rtol=1e-4)  # fmt: skip
    np.testing.assert_allclose(model.mean.cpu().numpy(), sk.mean_, atol=1e-6)
    # reconstructions agree where no clipping to [0, 1] happens
    xt = digits.x_test.to(device)
    ours_rec = model.decode(model.encode(xt)).reshape(len(xt), -1).cpu().numpy()
    sk_rec = sk.inverse_transform(sk.transform(xt.reshape(len(xt), -1).double().cpu().numpy()))
    inside = (sk_rec >= 0) & (sk_rec <= 1)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(ours_rec[inside], sk_rec[inside], atol=1e-4)
    assert (ours_rec >= 0).all() and (ours_rec <= 1).all()


def test_pca_rejects_too_many_components():
    spec = get_registry().model("pca").spec
    with pytest.raises(ValueError, match="latent_dim=65 exceeds the input dimension 64"):
        spec.create((1, 8, 8), latent_dim=65)


def test_vae_kl_matches_torch_distributions():
    from torch.distributions import Normal, kl_divergence

    from vaebench.models.vae import gaussian_kl

    g = torch.Generator().manual_seed(0)
    mean = torch.randn(17, 5, generator=g, dtype=torch.float64) * 2
    logvar = torch.randn(17, 5, generator=g, dtype=torch.float64) * 1.5
    ours = gaussian_kl(mean, logvar)
    ref = kl_divergence(
        Normal(mean, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mean), torch.ones_like(mean))
    ).sum(1)
    torch.testing.assert_close(ours, ref)
    # the term is minimised (zero) at the prior and keeps the log-variance from running to -inf
    assert float(gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3))) == 0.0
    assert float(gaussian_kl(torch.zeros(1, 1), torch.full((1, 1), -30.0))) > 14


@pytest.mark.parametrize("recon_loss", ["bce", "mse"])
def test_vae_posterior_and_likelihood_match_torch_distributions(recon_loss, device):
    from torch.distributions import Bernoulli, Normal

    from vaebench.models.vae import VAE

    seed_everything(5)
    m = VAE((1, 4, 4), device=device, latent_dim=3, hidden=(8,), recon_loss=recon_loss)
    x = (torch.rand(7, 1, 4, 4, device=device) > 0.5).float()
    mean, logvar = m.posterior(x)
    with torch.no_grad():
        h = m.encoder(x)
    torch.testing.assert_close(mean, h[:, :3])
    torch.testing.assert_close(logvar, h[:, 3:])
    torch.testing.assert_close(m.encode(x), mean)  # encode is the posterior mean
    z = torch.randn(7, 3, device=device)
    with torch.no_grad():
        logits = m.decoder(z).reshape(7, 1, 4, 4)
    if recon_loss == "bce":
        ref = Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3))
        assert m.tags.likelihood == "bernoulli"
    else:
        ref = Normal(torch.sigmoid(logits), 0.5**0.5).log_prob(x).sum((1, 2, 3))
        assert m.tags.likelihood == "gaussian"
    got = m.log_likelihood(x, z)
    assert got.shape == (7,) and not got.requires_grad
    torch.testing.assert_close(got, ref)


def test_vae_loss_is_reconstruction_plus_beta_kl(device):
    from vaebench.models.vae import VAE

    x = torch.rand(8, 1, 4, 4, device=device)
    for beta in (0.0, 1.0, 4.0):
        seed_everything(3)
        m = VAE((1, 4, 4), device=device, latent_dim=2, hidden=(8,), beta=beta)
        seed_everything(4)
        losses = m.loss(x)
        torch.testing.assert_close(losses["loss"], losses["recon"] + beta * losses["kl"])


def test_vae_sample(device):
    spec = get_registry().model("vae").spec
    m = _small(spec, (1, 8, 8), device)
    g = torch.Generator(device=device).manual_seed(0)
    s = m.sample(6, generator=g)
    assert s.shape == (6, 1, 8, 8) and m.can_sample
    assert not get_registry().model("ae").spec.create((1, 8, 8)).can_sample


def test_recon_loss_is_shared_and_summed_over_pixels():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 1.0]])
    x = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    p = torch.sigmoid(logits)
    bce = -(x * p.log() + (1 - x) * (1 - p).log()).sum(1)
    torch.testing.assert_close(reconstruction_loss(logits, x, "bce"), bce)
    torch.testing.assert_close(reconstruction_loss(logits, x, "mse"), (p - x).pow(2).sum(1))
    with pytest.raises(ValueError, match="valid: bce, mse"):
        reconstruction_loss(logits, x, "l1")


def test_trained_ae_beats_mean_image(digits, device):
    """A trained deep AE reconstructs test digits far better than predicting the mean image."""
    spec = get_registry().model("ae").spec
    seed_everything(0)
    model = spec.create(digits.shape, device=device, epochs=25, latent_dim=10)
    model.fit(digits.x_train.to(device))
    xt = digits.x_test.to(device)
    mse_ae = float((model.decode(model.encode(xt)) - xt).pow(2).mean())
    mean_img = digits.x_train.mean(0, keepdim=True).to(device)
    mse_mean = float((mean_img - xt).pow(2).mean())
    assert mse_ae < 0.5 * mse_mean, (mse_ae, mse_mean)


class _NaNModel(TorchAutoencoder):
    def loss(self, x):
        out = super().loss(x)
        return {"loss": out["loss"] * float("nan"), "recon": out["recon"]}


def test_divergence_is_detected_with_reason():
    m = _NaNModel((1, 4, 4), latent_dim=2, hidden=(4,), epochs=3)
    with pytest.raises(DivergenceError, match=r"loss diverged at epoch 1/3: loss=nan"):
        m.fit(torch.rand(10, 1, 4, 4))


def test_training_loop_lowers_loss_and_logs_every_epoch(digits):
    from vaebench.models.ae import AE

    seed_everything(0)
    m = AE(digits.shape, latent_dim=4, hidden=(64,), epochs=5)
    seen = []
    rep = train_loop(m, digits.x_train, epochs=5, batch_size=64, lr=1e-3,
                     progress=lambda e, t, logs: seen.append((e, t)))  # fmt: skip
    assert seen == [(e, 5) for e in range(1, 6)]
    assert len(rep.history["loss"]) == 5 and rep.history["loss"][-1] < rep.history["loss"][0]
    assert rep.samples_seen == 5 * len(digits.x_train)
    assert not m.training  # left in eval mode


@pytest.mark.parametrize("bad", ["gpu", "cuda0", "tpu"])
def test_select_device_names_valid_choices(bad):
    with pytest.raises(ValueError, match="valid: auto, cpu, cuda, mps"):
        select_device(bad)


def test_select_device_auto_is_cpu_without_cuda():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"latent_dim": 0}, "latent_dim must be a positive integer"),
        ({"epochs": -1}, "epochs must be a positive integer"),
        ({"lr": 0.0}, "lr must be a finite number > 0, got 0.0"),
        ({"recon_loss": "l1"}, "valid: bce, mse"),
    ],
)
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        get_registry().model("ae").spec.create((1, 8, 8), **kwargs)


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(
        ValueError, match=r"unknown parameter\(s\) betta for model 'vae'; valid: .*beta"
    ):
        get_registry().model("vae").spec.create((1, 8, 8), betta=2)


def test_lecture_models_share_architecture_and_budget():
    reg = get_registry()
    ref = reg.model("ae").spec.defaults()
    shared = ["arch", "latent_dim", "hidden", "conv_channels", "batch_norm", "epochs",
              "batch_size", "lr", "optimizer", "weight_decay", "schedule", "grad_clip",
              "recon_loss"]  # fmt: skip
    assert sorted(ref) == sorted(shared)
    for name in ("noisy", "dae", "vae"):
        d = reg.model(name).spec.defaults()
        assert {k: d[k] for k in shared} == ref, name
    assert reg.model("pca").spec.defaults()["latent_dim"] == ref["latent_dim"]
