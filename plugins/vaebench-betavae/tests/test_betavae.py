"""Tests of the beta-vae plugin: vaebench's conformance kit plus what is special about it."""

from __future__ import annotations

from importlib import metadata

import pytest
import torch
from vaebench_betavae.metrics import ActiveUnits
from vaebench_betavae.model import BetaVAE
from vaebench_betavae.plugin import SPEC

from vaebench.metric import EvalContext
from vaebench.models.vae import VAE
from vaebench.testing import parametrize_with_checks, tiny_dataset, tiny_images


@parametrize_with_checks([SPEC, ActiveUnits()])
def test_vaebench_conformance(subject, check):
    check(subject)


def test_defaults_are_beta_4_with_a_10_epoch_warm_up_and_nothing_else_changes():
    params = SPEC.defaults()
    assert (params["beta"], params["kl_warmup_epochs"]) == (4.0, 10)
    vae = VAE.__init__.__kwdefaults__
    assert (vae["beta"], vae["kl_warmup_epochs"]) == (1.0, 0)
    model = SPEC.create((1, 8, 8))
    assert isinstance(model, VAE) and (model.beta, model.kl_warmup_epochs) == (4.0, 10)
    # the loss is the VAE's own: no copy in this plugin
    assert BetaVAE.loss is VAE.loss and BetaVAE.on_epoch_start is VAE.on_epoch_start


def test_fit_logs_the_schedule_it_used():
    model = BetaVAE((1, 8, 8), hidden=(32,), epochs=6, batch_size=16, beta=3.0, kl_warmup_epochs=3)
    report = model.fit(tiny_images((1, 8, 8), n=32))
    assert report.history["kl_weight"] == pytest.approx([1.0, 2.0, 3.0, 3.0, 3.0, 3.0])
    # the logged loss is exactly recon + weight * KL, epoch by epoch
    for rec, kl, w, loss in zip(
        report.history["recon"],
        report.history["kl"],
        report.history["kl_weight"],
        report.history["loss"],
        strict=True,
    ):
        assert loss == pytest.approx(rec + w * kl, rel=1e-5)


def test_progress_callback_still_reaches_the_caller():
    seen = []
    model = BetaVAE((1, 8, 8), hidden=(16,), epochs=3, kl_warmup_epochs=2)
    model.fit(tiny_images((1, 8, 8), n=16), progress=lambda d, t, logs: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_larger_beta_trades_reconstruction_for_kl_and_switches_units_off():
    from vaebench.data.digits import load_digits
    from vaebench.train import seed_everything

    ds = load_digits().subset(600)
    ctx = EvalContext(seed=0, device=torch.device("cpu"))
    out = {}
    for beta in (0.5, 8.0):
        seed_everything(0)
        model = SPEC.create(
            ds.shape,
            beta=beta,
            kl_warmup_epochs=2,
            epochs=10,
            batch_size=32,
            hidden=(128,),
            lr=3e-3,
        )
        history = model.fit(ds.x_train).history
        units = ActiveUnits().evaluate(model, ds, ctx)["active_units"]
        out[beta] = (history["kl"][-1], history["recon"][-1], units)
    (kl_small, recon_small, au_small), (kl_big, recon_big, au_big) = out[0.5], out[8.0]
    assert kl_small > 1.0, out  # with a small beta the code carries information
    assert kl_big < 0.25 * kl_small, out
    assert recon_big > recon_small, out
    assert au_big < au_small, out


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="beta"):
        BetaVAE((1, 8, 8), beta=-1.0)
    with pytest.raises(ValueError, match="kl_warmup_epochs must be an integer >= 0"):
        BetaVAE((1, 8, 8), kl_warmup_epochs=-2)
    with pytest.raises(ValueError, match="threshold"):
        ActiveUnits(threshold=0)


class _FixedCodes:
    """Just enough of a model for the metric: encode returns known codes."""

    latent_dim = 3

    def __init__(self, codes: torch.Tensor) -> None:
        self.codes = codes

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.codes[: x.shape[0]]


def test_active_units_counts_units_whose_code_varies():
    ds = tiny_dataset(n_test=64)
    g = torch.Generator().manual_seed(0)
    codes = torch.stack(
        [
            torch.randn(64, generator=g),  # variance ~1: active
            0.01 * torch.randn(64, generator=g),  # variance ~1e-4: inactive
            torch.full((64,), 3.0),  # constant: inactive
        ],
        dim=1,
    )
    ctx = EvalContext(seed=0, device=torch.device("cpu"), eval_batch_size=1000)
    got = ActiveUnits().evaluate(_FixedCodes(codes), ds, ctx)
    assert got == {"active_units": 1.0, "active_fraction": pytest.approx(1 / 3)}


def test_registered_through_the_entry_point():
    try:
        dist = metadata.distribution("vaebench-betavae")
    except metadata.PackageNotFoundError:
        pytest.skip("vaebench-betavae is not installed (pip install ./plugins/vaebench-betavae)")
    from vaebench.plugins import get_registry, reset

    reset()
    reg = get_registry()
    assert (reg.model("beta-vae").dist, reg.model("beta-vae").version) == (
        "vaebench-betavae",
        dist.version,
    )
    assert reg.metric("active-units").dist == "vaebench-betavae"
    assert not [p for p in reg.problems if "betavae" in p]
