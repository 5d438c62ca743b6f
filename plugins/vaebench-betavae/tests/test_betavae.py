"""Tests of the beta-vae-warmup plugin: vaebench's conformance kit plus what is special about it."""

from __future__ import annotations

from importlib import metadata

import pytest
import torch
from torch.distributions import Normal, kl_divergence
from vaebench_betavae.metrics import KlPerUnit, unit_kl
from vaebench_betavae.model import BetaVAE
from vaebench_betavae.plugin import SPEC

from vaebench.metric import EvalContext
from vaebench.model import Tags
from vaebench.models.vae import VAE
from vaebench.testing import parametrize_with_checks, tiny_dataset, tiny_images


@parametrize_with_checks([SPEC, KlPerUnit()])
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
        units = KlPerUnit().evaluate(model, ds, ctx)["collapsed_units"]
        out[beta] = (history["kl"][-1], history["recon"][-1], units)
    (kl_small, recon_small, cu_small), (kl_big, recon_big, cu_big) = out[0.5], out[8.0]
    assert kl_small > 1.0, out  # with a small beta the code carries information
    assert kl_big < 0.25 * kl_small, out
    assert recon_big > recon_small, out
    assert cu_big > cu_small, out  # a large beta switches units off


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="beta"):
        BetaVAE((1, 8, 8), beta=-1.0)
    with pytest.raises(ValueError, match="kl_warmup_epochs must be an integer >= 0"):
        BetaVAE((1, 8, 8), kl_warmup_epochs=-2)
    with pytest.raises(ValueError, match="eval.kl_collapse_nats: expected a number > 0"):
        KlPerUnit().check_options({"kl_collapse_nats": 0})


class _FixedPosterior:
    """Just enough of a model for the metric: a known posterior for the test images in order
    (batch after batch), and its tags."""

    latent_dim = 3

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor, has_posterior=True) -> None:
        self.mean, self.logvar, self.seen = mean, logvar, 0
        self.tags = Tags(has_posterior=has_posterior)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = slice(self.seen, self.seen + x.shape[0])
        self.seen += x.shape[0]
        return self.mean[rows], self.logvar[rows]


def test_unit_kl_is_the_kl_of_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(50, 4, generator=g), torch.randn(50, 4, generator=g)
    q = Normal(mean.double(), (0.5 * logvar.double()).exp())
    expected = kl_divergence(q, Normal(torch.zeros(()), torch.ones(()))).double()
    torch.testing.assert_close(unit_kl(mean, logvar), expected)


def test_kl_per_unit_counts_collapsed_units_and_the_most_informative_one():
    ds = tiny_dataset(n_test=64)
    g = torch.Generator().manual_seed(0)
    mean = torch.stack(
        [
            2.0 * torch.randn(64, generator=g),  # informative: KL ~ 2 nats
            0.01 * torch.randn(64, generator=g),  # the prior, nearly: collapsed
            torch.zeros(64),  # exactly the prior: collapsed
        ],
        dim=1,
    )
    logvar = torch.stack([torch.full((64,), -2.0), torch.zeros(64), torch.zeros(64)], dim=1)
    ctx = EvalContext(seed=0, device=torch.device("cpu"), eval_batch_size=10)  # several batches
    got = KlPerUnit().evaluate(_FixedPosterior(mean, logvar), ds, ctx)
    per_unit = unit_kl(mean, logvar).mean(0)
    assert got == {
        "collapsed_units": 2.0,
        "collapsed_fraction": pytest.approx(2 / 3),
        "max_unit_kl": pytest.approx(float(per_unit[0])),
    }
    assert ctx.details["unit_kl_nats"][2] == 0.0 and ctx.details["threshold_nats"] == 0.01
    # the threshold is an evaluation option
    ctx = EvalContext(seed=0, device=torch.device("cpu"), options={"kl_collapse_nats": 1e-9})
    assert KlPerUnit().evaluate(_FixedPosterior(mean, logvar), ds, ctx)["collapsed_units"] == 1


def test_models_without_a_posterior_get_a_reason_not_a_number():
    model = _FixedPosterior(torch.zeros(4, 3), torch.zeros(4, 3), has_posterior=False)
    reason = KlPerUnit().applies_to(model, tiny_dataset())
    assert reason == (
        "needs a posterior q(z|x) (tags.has_posterior), which _FixedPosterior does not state"
    )
    assert KlPerUnit().applies_to(SPEC.create((1, 8, 8)), tiny_dataset()) is True


def test_registered_through_the_entry_point():
    try:
        dist = metadata.distribution("vaebench-betavae")
    except metadata.PackageNotFoundError:
        pytest.skip("vaebench-betavae is not installed (pip install ./plugins/vaebench-betavae)")
    from vaebench.plugins import get_registry, reset

    reset()
    reg = get_registry()
    assert (reg.model("beta-vae-warmup").dist, reg.model("beta-vae-warmup").version) == (
        "vaebench-betavae",
        dist.version,
    )
    assert reg.metric("kl-per-unit").dist == "vaebench-betavae"
    assert not [p for p in reg.problems if "betavae" in p]
