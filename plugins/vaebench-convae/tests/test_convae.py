"""Tests of the conv-ae plugin: vaebench's conformance kit plus what is special about it."""

from __future__ import annotations

from importlib import metadata

import pytest
import torch
from vaebench_convae.model import ConvAE, n_stages
from vaebench_convae.plugin import SPEC

from vaebench.testing import parametrize_with_checks, tiny_images


@parametrize_with_checks([SPEC])
def test_vaebench_conformance(subject, check):
    check(subject)


@pytest.mark.parametrize(
    "shape, stages",
    [((1, 1, 1), 0), ((1, 3, 9), 0), ((1, 7, 5), 1), ((1, 8, 8), 2), ((3, 13, 17), 2),
     ((1, 28, 28), 2), ((2, 64, 48), 2)],
)  # fmt: skip
def test_any_image_size_round_trips(shape, stages):
    model = ConvAE(shape, latent_dim=3, epochs=1)
    assert model.stages == stages
    x = tiny_images(shape, n=4)
    z = model.encode(x)
    out = model.decode(z)
    assert z.shape == (4, 3)
    assert out.shape == (4, *shape)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_stage_count_keeps_feature_maps_at_least_2x2():
    assert n_stages(4, 4, 5) == 1
    assert n_stages(8, 100, 5) == 2
    assert n_stages(3, 3, 5) == 0
    assert n_stages(1024, 1024, 3) == 3


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="channels"):
        ConvAE((1, 8, 8), channels=())
    with pytest.raises(ValueError, match="channels"):
        ConvAE((1, 8, 8), channels=(16, -1))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        ConvAE((64,))
    with pytest.raises(ValueError, match="latent_dim"):
        ConvAE((1, 8, 8), latent_dim=0)


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
    assert isinstance(reg.spec.create((1, 8, 8)), ConvAE)
    assert torch.is_tensor(reg.spec.create((1, 8, 8)).encode(torch.rand(2, 1, 8, 8)))
