"""Reconstruction and throughput metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from vaebench.metric import EvalContext
from vaebench.metrics.reconstruction import Reconstruction, ReconstructionAccumulator
from vaebench.metrics.throughput import Throughput, samples_per_second


def test_reconstruction_accumulator_hand_computed():
    x = torch.tensor([[0.0, 1.0], [0.5, 0.5]]).reshape(2, 1, 1, 2)
    xh = torch.tensor([[0.5, 1.0], [0.5, 0.0]]).reshape(2, 1, 1, 2)
    acc = ReconstructionAccumulator()
    acc.update(x[:1], xh[:1])
    acc.update(x[1:], xh[1:])  # streaming gives the same as one batch
    out = acc.compute()
    # squared errors: 0.25, 0, 0, 0.25 -> mse 0.125; per-image mse 0.125 each -> psnr 10log10(8)
    assert out["mse"] == pytest.approx(0.125)
    assert out["psnr"] == pytest.approx(10 * math.log10(8))
    eps = 1e-6
    bce = [
        -math.log(0.5),  # x=0, p=0.5
        -math.log(1 - eps),  # x=1, p=1 (clipped)
        -math.log(0.5),  # x=.5, p=.5
        -(0.5 * math.log(eps) + 0.5 * math.log(1 - eps)),  # x=.5, p=0 (clipped)
    ]
    assert out["bce"] == pytest.approx(sum(bce) / 4, rel=1e-9)
    acc.reset()
    assert math.isnan(acc.compute()["mse"])


def test_perfect_reconstruction_scores_ideal():
    x = torch.rand(4, 1, 3, 3)
    acc = ReconstructionAccumulator()
    acc.update(x, x.clone())
    out = acc.compute()
    assert out["mse"] == 0.0 and out["psnr"] == pytest.approx(100.0)


def test_shape_mismatch_is_reported():
    acc = ReconstructionAccumulator()
    with pytest.raises(ValueError, match=r"reconstruction shape \(2, 4\) differs from input"):
        acc.update(torch.zeros(2, 1, 2, 2), torch.zeros(2, 4))


class _Identity:
    """A 'model' whose code is the image itself: reconstruction is exact."""

    latent_dim = 4
    n_params = 0

    def encode(self, x):
        return x.reshape(len(x), -1)

    def decode(self, z):
        return z.reshape(len(z), 1, 2, 2)


def test_reconstruction_metric_declares_directions(digits):
    m = Reconstruction()
    d = m.declared()
    assert d["mse"].higher_is_better is False and d["psnr"].higher_is_better is True
    ds = digits.subset(20)
    ds.x_test = torch.rand(10, 1, 2, 2)
    ctx = EvalContext(seed=0, device=torch.device("cpu"))
    out = m.evaluate(_Identity(), ds, ctx)
    assert out["mse"] == 0.0
    assert ctx.artifacts["recon_outputs"].shape == ctx.artifacts["recon_originals"].shape


def test_throughput_ratio_tracks_work():
    """A function doing ~4x the work reports a clearly lower rate (a ratio, never seconds)."""
    x = torch.rand(256, 256)

    def light(b):
        return b @ x

    def heavy(b):
        for _ in range(4):
            b = b @ x
        return b

    fast = samples_per_second(light, x, torch.device("cpu"), min_seconds=0.05)
    slow = samples_per_second(heavy, x, torch.device("cpu"), min_seconds=0.05)
    assert fast > 1.5 * slow


def test_throughput_metric_values(digits):
    from vaebench.model import FitReport

    ctx = EvalContext(seed=0, device=torch.device("cpu"),
                      fit=FitReport({"loss": [1.0]}, seconds=2.0, samples_seen=100, epochs=1),
                      options={"throughput_seconds": 0.01})  # fmt: skip
    ds = digits.subset(30)
    ds.x_test = torch.rand(30, 1, 2, 2)
    out = Throughput().evaluate(_Identity(), ds, ctx)
    assert out["train_samples_per_s"] == 50.0 and out["fit_seconds"] == 2.0
    assert out["encode_samples_per_s"] > 0 and out["decode_samples_per_s"] > 0
    assert set(out) == set(Throughput().declared())
