"""Tests of the conv-ae plugin: vaebench's conformance kit plus what is special about it."""

from __future__ import annotations

from importlib import metadata

import pytest
import torch
from vaebench_convae.model import conv_ae
from vaebench_convae.plugin import SPEC

from vaebench.nn import TorchAutoencoder
from vaebench.testing import parametrize_with_checks, tiny_images


@parametrize_with_checks([SPEC])
def test_vaebench_conformance(subject, check):
    check(subject)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 3, 9), (1, 7, 5), (1, 8, 8), (3, 13, 17),
                                   (1, 28, 28), (2, 64, 48)])  # fmt: skip
def test_any_image_size_round_trips(shape):
    model = conv_ae(shape, latent_dim=3, epochs=1)
    x = tiny_images(shape, n=4)
    z = model.encode(x)
    out = model.decode(z)
    assert z.shape == (4, 3)
    assert out.shape == (4, *shape)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_the_networks_are_the_ones_composed_and_nothing_else_is_built():
    model = conv_ae((1, 28, 28), channels=(8, 16), latent_dim=4)
    assert isinstance(model, TorchAutoencoder)
    convs = [
        m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
    ]
    assert [(m.in_channels, m.out_channels) for m in convs] == [(1, 8), (8, 16), (16, 8), (8, 1)]
    # 28 -> 14 -> 7 after two stride-2 stages: the code comes from a 16 x 7 x 7 feature map
    assert model.encoder[-1].in_features == 16 * 7 * 7
    expected = sum(p.numel() for net in (model.encoder, model.decoder) for p in net.parameters())
    assert model.n_params == expected


def test_parameters_come_from_the_spec_without_the_built_in_network_options():
    params = SPEC.defaults()
    assert params["channels"] == (32, 64) and params["latent_dim"] == 10
    assert {"epochs", "lr", "optimizer", "schedule", "grad_clip"} <= set(params)
    assert not {"arch", "hidden", "conv_channels", "batch_norm"} & set(params)
    assert all(SPEC.docs().values())  # every parameter has its one-line meaning
    model = SPEC.create((1, 8, 8), optimizer="sgd", epochs=2)
    assert (model.optimizer, model.epochs) == ("sgd", 2)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="channels"):
        conv_ae((1, 8, 8), channels=())
    with pytest.raises(ValueError, match="channels"):
        conv_ae((1, 8, 8), channels=(16, -1))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        conv_ae((64,))
    with pytest.raises(ValueError, match="latent_dim"):
        conv_ae((1, 8, 8), latent_dim=0)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        conv_ae((1, 8, 8), optimizer="rmsprop")


def test_conv_ae_beats_the_mean_image_on_digits():
    from vaebench.data.digits import load_digits
    from vaebench.train import seed_everything

    seed_everything(0)
    ds = load_digits().subset(400)
    model = SPEC.create(ds.shape, latent_dim=8, epochs=15, batch_size=32)
    model.fit(ds.x_train)
    recon = model.decode(model.encode(ds.x_test))
    mse = float((recon - ds.x_test).pow(2).mean())
    baseline = float((ds.x_train.mean(0, keepdim=True) - ds.x_test).pow(2).mean())
    assert mse < 0.8 * baseline, (mse, baseline)


def test_convolutions_share_weights_across_positions():
    # far fewer parameters than the MLP autoencoder for MNIST-sized images
    conv = SPEC.create((1, 28, 28))
    mlp_params = 784 * 512 + 512 * 256 + 256 * 10  # the built-in ae's encoder alone
    assert conv.n_params < mlp_params


def test_registered_through_the_entry_point():
    try:
        dist = metadata.distribution("vaebench-convae")
    except metadata.PackageNotFoundError:
        pytest.skip("vaebench-convae is not installed (pip install ./plugins/vaebench-convae)")
    from vaebench.plugins import get_registry, reset

    reset()
    reg = get_registry().model("conv-ae")
    assert (reg.dist, reg.version) == ("vaebench-convae", dist.version)
    assert reg.plugin == "convae"
    assert isinstance(reg.spec.create((1, 8, 8)), TorchAutoencoder)
    assert torch.is_tensor(reg.spec.create((1, 8, 8)).encode(torch.rand(2, 1, 8, 8)))
