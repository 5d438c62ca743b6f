"""vaebench.nn: losses and likelihoods against torch.distributions, the built-in networks (mlp and
conv for any image size), composition, validation, tags, the meta device and evaluation mode."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence

from vaebench.model import ModelSpec
from vaebench.models.ae import AE
from vaebench.models.vae import VAE
from vaebench.nn import (
    CONV_MIN_IMAGE_SIZE,
    TorchAutoencoder,
    conv_decoder,
    conv_encoder,
    conv_stages,
    gaussian_kl,
    log_likelihood,
    reconstruction_loss,
    reparameterize,
    vae_loss,
)
from vaebench.plugins import get_registry
from vaebench.train import seed_everything

NEURAL = ["ae", "noisy", "dae", "vae"]


def _logits_and_images(binary: bool, n: int = 6, shape=(1, 4, 5)):
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(n, *shape, generator=g, dtype=torch.float64)
    x = torch.rand(n, *shape, generator=g, dtype=torch.float64)
    return logits, (x > 0.5).double() if binary else x


# ----------------------------------------------------------------------------- likelihoods


@pytest.mark.parametrize("binary", [True, False])
def test_bernoulli_log_likelihood_matches_torch_distributions(binary):
    logits, x = _logits_and_images(binary)
    # grey-level pixels are outside Bernoulli's support: the same formula, unnormalised
    ref = Bernoulli(logits=logits, validate_args=binary).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(log_likelihood(logits, x, "bce").double(), ref)
    torch.testing.assert_close(reconstruction_loss(logits, x, "bce").double(), -ref)


def test_gaussian_log_likelihood_is_the_normalised_density_of_the_mse_loss():
    logits, x = _logits_and_images(False)
    mu = torch.sigmoid(logits)
    ref = Normal(mu, math.sqrt(0.5)).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(log_likelihood(logits, x, "mse").double(), ref)
    # the training loss is the negative log-density up to the constant D/2 log(pi)
    d = x[0].numel()
    torch.testing.assert_close(
        reconstruction_loss(logits, x, "mse").double(), -ref - d / 2 * math.log(math.pi)
    )


def test_bernoulli_log_likelihood_is_stable_for_saturated_logits():
    logits = torch.tensor([[[[80.0, -80.0]]]])
    x = torch.tensor([[[[1.0, 0.0]]]])
    assert float(log_likelihood(logits, x, "bce")) == pytest.approx(0.0, abs=1e-30)
    assert float(log_likelihood(logits, 1 - x, "bce")) == pytest.approx(-160.0)


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mean = 2 * torch.randn(9, 4, generator=g, dtype=torch.float64)
    logvar = 1.5 * torch.randn(9, 4, generator=g, dtype=torch.float64)
    ref = kl_divergence(Normal(mean, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(gaussian_kl(mean, logvar), ref)


def test_reparameterize_draws_from_the_posterior_and_passes_gradients():
    seed_everything(0)
    mean = torch.tensor([1.0, -2.0], requires_grad=True)
    logvar = torch.tensor([0.0, math.log(0.25)], requires_grad=True)
    z = reparameterize(mean.expand(20000, 2), logvar.expand(20000, 2))
    torch.testing.assert_close(z.mean(0), mean.detach(), atol=0.03, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 0.5]), atol=0.02, rtol=0)
    z.sum().backward()
    assert mean.grad is not None and logvar.grad is not None


def test_vae_loss_is_recon_plus_beta_kl_averaged_over_the_batch():
    logits, x = _logits_and_images(False, shape=(1, 2, 2))
    mean, logvar = torch.randn(6, 3), torch.randn(6, 3)
    out = vae_loss(logits, x, mean, logvar, beta=2.5, recon_loss="mse")
    rec = reconstruction_loss(logits, x, "mse").mean()
    kl = gaussian_kl(mean, logvar).mean()
    torch.testing.assert_close(out["recon"], rec)
    torch.testing.assert_close(out["kl"], kl)
    torch.testing.assert_close(out["loss"], rec + 2.5 * kl)


# ----------------------------------------------------------------------------- networks


@pytest.mark.parametrize(
    "side, stages",
    [(1, [1]), (3, [3]), (4, [4, 2]), (7, [7, 3]), (8, [8, 4, 2]), (9, [9, 4, 2]),
     (28, [28, 14, 7, 3]), (32, [32, 16, 8, 4]), (64, [64, 32, 16, 8])],
)  # fmt: skip
def test_conv_stages_halve_down_to_a_small_feature_map(side, stages):
    assert [h for h, _ in conv_stages(side, side, 3)] == stages


@pytest.mark.parametrize(
    "shape",
    [(1, 4, 4), (1, 7, 7), (1, 8, 8), (1, 9, 9), (1, 28, 28), (1, 32, 32), (3, 32, 32),
     (3, 13, 17), (1, 5, 40)],
)  # fmt: skip
@pytest.mark.parametrize("batch_norm", [False, True])
def test_conv_networks_map_any_image_size_exactly(shape, batch_norm):
    enc = conv_encoder(shape, (8, 16, 32), 6, batch_norm)
    dec = conv_decoder(3, shape, (8, 16, 32), batch_norm)
    x = torch.rand(2, *shape)
    assert enc(x).shape == (2, 6)
    assert dec(torch.randn(2, 3)).shape == (2, *shape)  # no cropping: exact sizes
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == len(conv_stages(*shape[1:], 3)) - 1
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    assert all((c.bias is None) == batch_norm for c in convs)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in (*enc.modules(), *dec.modules()))
    assert n_bn == (2 * len(convs) if batch_norm else 0)


def test_conv_default_layers_on_28x28():
    model = AE((1, 28, 28), arch="conv")
    layers = [(type(m).__name__, getattr(m, "out_channels", None)) for m in model.encoder]
    assert layers == [("Conv2d", 32), ("ReLU", None), ("Conv2d", 64), ("ReLU", None),
                      ("Conv2d", 128), ("ReLU", None), ("Flatten", None), ("Linear", None)]  # fmt: skip
    assert model.encoder[-1].in_features == 128 * 3 * 3
    assert model.decoder[0].out_features == 128 * 3 * 3
    assert model.n_params == 353227  # the count docs/models.md states


def test_mlp_is_the_first_interface_s_network_with_the_same_state_keys():
    model = AE((1, 8, 8), hidden=(32, 16), latent_dim=3)
    assert list(model.state_dict()) == [
        "encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias",
        "encoder.4.weight", "encoder.4.bias", "decoder.0.weight", "decoder.0.bias",
        "decoder.2.weight", "decoder.2.bias", "decoder.4.weight", "decoder.4.bias",
    ]  # fmt: skip
    assert model.n_params == (64 * 32 + 32 + 32 * 16 + 16 + 16 * 3 + 3) + (
        3 * 16 + 16 + 16 * 32 + 32 + 32 * 64 + 64
    )
    bn = AE((1, 8, 8), hidden=(32,), batch_norm=True)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in bn.modules()) == 2


# ----------------------------------------------------------------------------- composition


def _pair(shape=(1, 8, 8), code=4, latent=4):
    d = math.prod(shape)
    enc = nn.Sequential(nn.Flatten(), nn.Linear(d, code))
    dec = nn.Sequential(nn.Linear(latent, d), nn.Unflatten(1, shape))
    return enc, dec


def test_composition_uses_the_networks_given_and_builds_nothing_else():
    enc, dec = _pair()
    model = TorchAutoencoder((1, 8, 8), encoder=enc, decoder=dec, latent_dim=4, epochs=2)
    assert model.encoder is enc and model.decoder is dec
    assert model.n_params == sum(p.numel() for p in (*enc.parameters(), *dec.parameters()))
    x = torch.rand(10, 1, 8, 8)
    model.fit(x)
    assert model.encode(x).shape == (10, 4) and model.decode(model.encode(x)).shape == x.shape


def test_a_missing_network_is_built_from_arch():
    enc, _ = _pair(shape=(1, 8, 8), code=8, latent=4)
    model = VAE((1, 8, 8), encoder=enc, arch="conv", latent_dim=4)
    assert model.encoder is enc
    assert any(isinstance(m, nn.ConvTranspose2d) for m in model.decoder.modules())
    assert model.tags.min_image_size == CONV_MIN_IMAGE_SIZE


def test_networks_are_components_not_parameters():
    defaults = ModelSpec("x", TorchAutoencoder).defaults()
    assert "encoder" not in defaults and "decoder" not in defaults
    assert {"arch", "conv_channels", "batch_norm", "optimizer", "schedule"} <= set(defaults)
    for name in NEURAL:
        assert get_registry().model(name).spec.defaults()["arch"] == "mlp"


def test_a_mismatched_network_fails_at_fit_naming_it_and_the_shapes():
    enc, dec = _pair(code=3, latent=4)  # the encoder gives 3 outputs for a latent_dim of 4
    model = TorchAutoencoder((1, 8, 8), encoder=enc, decoder=dec, latent_dim=4)
    with pytest.raises(ValueError, match=r"encoder maps images \(2, 1, 8, 8\) to \(2, 3\); "
                                         r"expected \(2, 4\)"):  # fmt: skip
        model.fit(torch.rand(8, 1, 8, 8))
    enc, _ = _pair(code=4)
    bad_decoder = nn.Linear(4, 10)
    model = TorchAutoencoder((1, 8, 8), encoder=enc, decoder=bad_decoder, latent_dim=4)
    with pytest.raises(ValueError, match=r"decoder maps codes \(2, 4\) to \(2, 10\); expected"):
        model.fit(torch.rand(8, 1, 8, 8))
    with pytest.raises(ValueError, match="encoder must be a torch.nn.Module"):
        TorchAutoencoder((1, 8, 8), encoder="conv")


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"arch": "resnet"}, "unknown arch 'resnet'; valid: mlp, conv"),
        ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'; valid: adam, adamw, sgd"),
        ({"schedule": "linear"}, "unknown schedule 'linear'; valid: none, cosine, step"),
        ({"weight_decay": -0.1}, r"weight_decay must be a finite number >= 0, got -0.1"),
        ({"grad_clip": float("nan")}, r"grad_clip must be a finite number >= 0, got nan"),
        ({"lr": float("inf")}, r"lr must be a finite number > 0, got inf"),
        ({"batch_size": 1}, r"batch_size must be an integer >= 2 .*got 1"),
        ({"batch_norm": "yes"}, "batch_norm must be true or false, got 'yes'"),
        ({"conv_channels": ()}, r"conv_channels must be a non-empty sequence of positive "
                                r"integers, got \(\)"),
        ({"hidden": (64, 0)}, r"hidden must be a sequence of positive integers, got \(64, 0\)"),
        ({"latent_dim": 2.5}, "latent_dim must be a positive integer, got 2.5"),
        ({"beta": -1.0}, "beta must be a finite number >= 0, got -1.0"),
        ({"kl_warmup_epochs": -3}, "kl_warmup_epochs must be an integer >= 0"),
    ],
)  # fmt: skip
def test_bad_hyperparameters_name_the_parameter_the_value_and_what_is_valid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        get_registry().model("vae").spec.create((1, 8, 8), **kwargs)


@pytest.mark.parametrize("name", NEURAL)
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_every_model_builds_on_the_meta_device(name, arch):
    spec = get_registry().model(name).spec
    meta = spec.create((1, 28, 28), device="meta", arch=arch, batch_norm=True)
    cpu = spec.create((1, 28, 28), arch=arch, batch_norm=True)
    assert meta.device.type == "meta" and all(p.is_meta for p in meta.parameters())
    assert meta.n_params == cpu.n_params
    with pytest.raises(ValueError, match="unknown arch"):
        spec.create((1, 28, 28), device="meta", arch="cnn")


@pytest.mark.parametrize("name", NEURAL)
def test_every_parameter_of_the_built_in_models_is_documented(name):
    docs = get_registry().model(name).spec.docs()
    assert docs and all(docs.values()), {k for k, v in docs.items() if not v}


# ----------------------------------------------------------------------------- tags


def test_tags_state_image_size_sampling_posterior_and_likelihood():
    assert AE((1, 8, 8)).tags.min_image_size == 1
    conv = AE((1, 8, 8), arch="conv").tags
    assert conv.min_image_size == CONV_MIN_IMAGE_SIZE
    assert conv.unsupported((1, 3, 3)) == "needs images of at least 4x4 pixels, got 3x3"
    assert conv.unsupported((1, 8, 8)) is None
    assert not conv.can_sample and not conv.has_posterior and conv.likelihood == ""
    vae = VAE((1, 8, 8)).tags
    assert vae.can_sample and vae.has_posterior and vae.likelihood == "bernoulli"
    assert VAE((1, 8, 8), recon_loss="mse").tags.likelihood == "gaussian"


# ----------------------------------------------------------------------------- evaluation mode


def _bn_vae(**kwargs):
    return VAE((1, 8, 8), arch="conv", conv_channels=(4, 8), batch_norm=True, latent_dim=3,
               epochs=2, batch_size=16, **kwargs)  # fmt: skip


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_new_model_is_in_eval_mode_and_inference_never_changes_it():
    seed_everything(0)
    model = _bn_vae()
    assert not model.training
    x = torch.rand(6, 1, 8, 8)
    for mode in (False, True):
        model.train(mode)
        before = _snapshot(model)
        z = model.encode(x)
        model.decode(z)
        model.sample(3, generator=torch.Generator().manual_seed(0))
        model.posterior(x)
        model.log_likelihood(x, z)
        _assert_same_state(before, _snapshot(model))  # running statistics untouched
        assert model.training is mode  # the caller's mode is restored
        assert torch.equal(model.encode(x), z)


def test_batch_norm_model_reloads_to_identical_codes_and_encodes_one_image(tmp_path):
    seed_everything(0)
    x = torch.rand(40, 1, 8, 8)
    model = _bn_vae()
    model.fit(x)
    assert not model.training
    codes = model.encode(x)
    model.save(tmp_path / "m.pt")
    seed_everything(1)
    fresh = _bn_vae()
    assert not torch.equal(fresh.encode(x), codes)
    fresh.load(tmp_path / "m.pt")
    assert torch.equal(fresh.encode(x), codes)
    assert torch.equal(fresh.decode(codes), model.decode(codes))
    one = fresh.encode(x[:1])
    torch.testing.assert_close(one, codes[:1])  # batch norm uses running statistics


def test_inference_outputs_carry_no_autograd_history():
    model = _bn_vae()
    x = torch.rand(4, 1, 8, 8)
    outs = [model.encode(x), *model.posterior(x), model.log_likelihood(x, torch.zeros(4, 3))]
    assert not any(t.requires_grad for t in outs)
    assert torch.is_grad_enabled()


def test_unused_params_name_what_the_built_network_ignores():
    shape = (1, 16, 16)
    assert AE(shape, arch="mlp").unused_params == ("conv_channels",)
    assert AE(shape, arch="conv").unused_params == ("hidden",)
    one = AE(shape, encoder=nn.Sequential(nn.Flatten(), nn.Linear(256, 10)))
    assert one.unused_params == ("conv_channels",)  # the decoder is still a built-in mlp
    both = AE(shape, encoder=nn.Sequential(nn.Flatten(), nn.Linear(256, 10)),
              decoder=nn.Sequential(nn.Linear(10, 256), nn.Unflatten(1, shape)))  # fmt: skip
    assert both.unused_params == ("arch", "hidden", "conv_channels")


def test_report_setup_shows_only_the_parameters_the_architecture_uses(registry, tmp_path):
    import json

    from vaebench.config import RunConfig
    from vaebench.grid import run
    from vaebench.report import build_report

    cfg = RunConfig.build(registry, models="ae", datasets="digits", seeds="0", epochs="1",
                          subset=64, workers=1, threads=1, metrics="reconstruction",
                          sets=["ae.hidden=32"])  # fmt: skip
    out = tmp_path / "r"
    run(cfg, out, registry=registry)
    (cell,) = (out / "cells").glob("*.json")
    assert json.loads(cell.read_text())["model_info"]["unused_params"] == ["conv_channels"]
    build_report([out], formats=["md"], figures=False)
    setup = (out / "report.md").read_text().split("## Setup", 1)[1].split("\n## ", 1)[0]
    (row,) = [line for line in setup.splitlines() if line.startswith("| ae |")]
    assert r"hidden=\[32\]" in row and "arch=mlp" in row and "conv" not in row


@pytest.mark.parametrize(
    ("model", "params", "message"),
    [
        ("acai", {"reg": 1.5}, "reg must be a finite number in [0, 1], got 1.5"),
        ("acai", {"adv_weight": float("nan")}, "adv_weight must be a finite number >= 0, got nan"),
        ("aae", {"disc_lr": 0.0}, "disc_lr must be a finite number > 0, got 0.0"),
        ("wae", {"mmd_weight": -1.0}, "mmd_weight must be a finite number >= 0, got -1.0"),
        ("noisy", {"noise_std": True}, "noise_std must be a finite number >= 0, got True"),
    ],
)
def test_every_real_hyperparameter_is_checked_by_one_function(model, params, message):
    """One check (``nn.finite_number``) and one message for every real-valued hyperparameter
    of the built-in models (there were three, with three wordings)."""
    from vaebench.plugins import get_registry

    spec = get_registry().model(model).spec
    with pytest.raises(ValueError, match=re.escape(message)):
        spec.create((1, 8, 8), latent_dim=2, **params)
