"""Latent interpolation machinery, the ground-truth-free ``interpolation`` metric, registration,
and the interpolation figures drawn from stored artifacts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaebench.metric import EvalContext
from vaebench.metrics.interpolation import (
    PathInterpolation,
    decode_paths,
    draw_pairs,
    mean_and_se,
    midpoint_nn_ratios,
    mix_codes,
    nearest_distances,
    path_scores,
    step_fractions,
    strip_pair,
)


def ctx(seed: int = 0, **options) -> EvalContext:
    return EvalContext(seed=seed, device=torch.device("cpu"), options={
        "n_pairs": 100, "n_steps": 16, "interpolation": "linear", **options})  # fmt: skip


# ----------------------------------------------------------------------------- pairs and mixing


def test_draw_pairs_follows_the_acai_protocol_and_is_deterministic() -> None:
    a, b = draw_pairs(1000, 256, torch.Generator().manual_seed(3))
    assert a.shape == b.shape == (256,)
    both = torch.cat([a, b])
    assert len(set(both.tolist())) == 512  # 2 n_pairs distinct images, i paired with i + n
    a2, b2 = draw_pairs(1000, 256, torch.Generator().manual_seed(3))
    assert torch.equal(a, a2) and torch.equal(b, b2)
    a3, _ = draw_pairs(1000, 256, torch.Generator().manual_seed(4))
    assert not torch.equal(a, a3)
    # too few images: with replacement, never an image with itself
    a, b = draw_pairs(10, 256, torch.Generator().manual_seed(0))
    assert (a != b).all() and a.max() < 10 and b.max() < 10
    with pytest.raises(ValueError, match="at least 2"):
        draw_pairs(1, 4, torch.Generator())


def test_mix_codes_linear_and_slerp() -> None:
    za = torch.tensor([[1.0, 0.0], [2.0, 0.0], [1.0, 1.0]])
    zb = torch.tensor([[0.0, 1.0], [0.0, 2.0], [2.0, 2.0]])
    t = step_fractions(5)
    lin = mix_codes(za, zb, t, "linear")
    assert lin.shape == (3, 5, 2)
    torch.testing.assert_close(lin[:, 0], za)
    torch.testing.assert_close(lin[:, -1], zb)
    torch.testing.assert_close(lin[0, 2], torch.tensor([0.5, 0.5]))
    sl = mix_codes(za, zb, t, "slerp")
    torch.testing.assert_close(sl[:, 0], za)
    torch.testing.assert_close(sl[:, -1], zb)
    # orthogonal unit codes: the arc keeps unit norm and moves the angle evenly
    s = 1 / math.sqrt(2)
    torch.testing.assert_close(sl[0, 2], torch.tensor([s, s]))
    torch.testing.assert_close(sl[0].norm(dim=1), torch.ones(5))
    angles = torch.atan2(sl[1, :, 1], sl[1, :, 0])
    torch.testing.assert_close(angles.diff(), torch.full((4,), math.pi / 8))
    # parallel codes: slerp is undefined and falls back to linear mixing
    torch.testing.assert_close(sl[2], lin[2])
    with pytest.raises(ValueError, match="valid: linear, slerp"):
        mix_codes(za, zb, t, "cubic")


class _Linear:
    """A linear 'autoencoder' through the Model interface (encode/decode only)."""

    def __init__(self, w: torch.Tensor) -> None:
        self.w = w  # (D, L)
        self.device = torch.device("cpu")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        assert torch.is_inference_mode_enabled()
        return x.reshape(x.shape[0], -1) @ self.w

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        assert torch.is_inference_mode_enabled()
        return (z @ self.w.T).reshape(z.shape[0], 1, 2, 2)


def test_decode_paths_decodes_mixed_codes_in_batches() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.linalg.qr(torch.randn(4, 4, generator=g))[0]  # orthogonal: exact reconstruction
    model = _Linear(w)
    xa, xb = torch.rand(5, 1, 2, 2, generator=g), torch.rand(5, 1, 2, 2, generator=g)
    t = step_fractions(7)
    out = decode_paths(model, xa, xb, t, "linear", batch_size=3)
    assert out.shape == (5, 7, 1, 2, 2)
    want = (1 - t.float())[None, :, None, None, None] * xa[:, None] + t.float()[
        None, :, None, None, None
    ] * xb[:, None]
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- path scores


def test_path_scores_by_hand() -> None:
    # 2-pixel images: (0,0) -> (1,1) -> (2,0): steps sqrt2, sqrt2; direct 2
    detour = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]])
    length, step = path_scores(detour)
    assert length[0] == pytest.approx(math.sqrt(2))
    assert step[0] == pytest.approx(1.0)
    # straight and even
    t = torch.linspace(0, 1, 16)[:, None]
    straight = (t * torch.tensor([[3.0, 4.0]]))[None]
    length, step = path_scores(straight)
    assert length[0] == pytest.approx(1.0) and step[0] == pytest.approx(1.0)
    # one jump half-way: straight, but all change in one step -> T - 1
    jump = torch.cat([torch.zeros(8, 2), torch.ones(8, 2)])[None]
    length, step = path_scores(jump)
    assert length[0] == pytest.approx(1.0) and step[0] == pytest.approx(15.0)
    # equal endpoints: the length ratio is undefined; no change at all: both undefined
    loop = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]])
    still = torch.zeros(1, 3, 2)
    assert math.isnan(path_scores(loop)[0][0]) and path_scores(loop)[1][0] == pytest.approx(1.0)
    assert np.isnan(path_scores(still)).all()


def test_mean_and_se_skips_undefined() -> None:
    mean, se = mean_and_se(np.array([1.0, 2.0, 3.0, np.nan]))
    assert mean == pytest.approx(2.0) and se == pytest.approx(1.0 / math.sqrt(3))
    assert math.isnan(mean_and_se(np.array([np.nan]))[0])
    assert math.isnan(mean_and_se(np.array([5.0]))[1])


def test_nearest_distances_matches_cdist() -> None:
    g = torch.Generator().manual_seed(1)
    q, r = torch.rand(37, 1, 3, 3, generator=g), torch.rand(50, 1, 3, 3, generator=g)
    want = torch.cdist(q.reshape(37, -1).double(), r.reshape(50, -1).double()).min(1).values
    torch.testing.assert_close(nearest_distances(q, r, batch_size=8), want)


def test_strip_pair_is_fixed_and_far_apart() -> None:
    x = torch.zeros(6, 1, 2, 2)
    x[4] = 1.0
    x[2] = 0.5
    assert strip_pair(x) == (0, 4)


# ----------------------------------------------------------------------------- the metric


def test_interpolation_metric_on_digits_pca(digits, registry) -> None:
    model = registry.model("pca").spec.create(digits.shape, latent_dim=8)
    model.fit(digits.x_train)
    metric = PathInterpolation()
    assert metric.applies_to(model, digits)
    c = ctx()
    got = metric.evaluate(model, digits, c)
    assert set(got) == set(metric.declared())
    assert all(math.isfinite(v) for v in got.values()), got
    assert got["path_length_ratio"] >= 1.0 - 1e-9  # triangle inequality
    assert 1.0 <= got["path_step_ratio"] <= 15.0
    assert got["midpoint_nn_ratio"] > 0
    for k in ("path_length_ratio", "path_step_ratio", "midpoint_nn_ratio"):
        assert 0 < got[f"{k}_se"] < got[k]
    strip = c.artifacts["interp_strip"]
    assert tuple(strip.shape) == (16, *digits.shape)
    assert float(strip.min()) >= 0.0 and float(strip.max()) <= 1.0
    # deterministic per seed, different for another seed; slerp is an option
    assert metric.evaluate(model, digits, ctx()) == got
    assert metric.evaluate(model, digits, ctx(seed=1)) != got
    assert metric.evaluate(model, digits, ctx(interpolation="slerp")) != got


def test_interpolation_metric_straight_model_scores_one(digits) -> None:
    """Codes = pixels: decoded paths are straight, even cross-fades."""

    class Pixels:
        device = torch.device("cpu")

        def encode(self, x):
            return x.reshape(x.shape[0], -1)

        def decode(self, z):
            return z.reshape(z.shape[0], 1, 8, 8)

    got = PathInterpolation().evaluate(Pixels(), digits, ctx())
    # exact up to float32 rounding of the mixed codes
    assert got["path_length_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert got["path_step_ratio"] == pytest.approx(1.0, abs=1e-5)
    # its midpoint is the cross-fade of its endpoints: the normaliser itself
    assert got["midpoint_nn_ratio"] == pytest.approx(1.0, abs=1e-5)


def test_linear_decoders_win_no_interpolation_score_by_construction(digits, registry) -> None:
    """Issue 13.8: PCA (a linear decoder) takes even steps along a straight code line, so
    path_step_ratio would rank it first whatever its images look like: the value is
    descriptive; midpoint_nn_ratio is normalised by the cross-fade of the model's own decoded
    endpoints, which a linear decoder reproduces (1 up to clipping to [0, 1])."""
    metric = PathInterpolation()
    declared = metric.declared()
    assert metric.version >= 3
    assert declared["path_step_ratio"].higher_is_better is None
    assert declared["path_length_ratio"].higher_is_better is None
    assert declared["midpoint_nn_ratio"].higher_is_better is False
    assert all(v.description and v.reference for v in declared.values())
    model = registry.model("pca").spec.create(digits.shape, latent_dim=8)
    model.fit(digits.x_train)
    got = metric.evaluate(model, digits, ctx())
    assert got["midpoint_nn_ratio"] == pytest.approx(1.0, abs=0.05)


def test_midpoint_nn_ratio_reads_against_the_cross_fade() -> None:
    """A dot moving along a line: the true midpoint is a training image (ratio 0), the
    cross-fade of the two endpoint dots is two half dots (ratio 1), a grey blur is worse."""
    ref = torch.zeros(9, 1, 1, 9)
    for i in range(9):
        ref[i, 0, 0, i] = 1.0
    a, b = ref[[0, 2]], ref[[8, 6]]
    fade = 0.5 * (a + b)
    true_mid = ref[[4, 4]]
    blur = torch.full_like(a, 0.5)
    assert np.allclose(midpoint_nn_ratios(true_mid, a, b, ref), 0.0)
    assert np.allclose(midpoint_nn_ratios(fade, a, b, ref), 1.0)
    assert (midpoint_nn_ratios(blur, a, b, ref) > 1.0).all()
    # the normaliser is the distance of the cross-fade to its nearest reference: 1/sqrt(2)
    d_fade = float(nearest_distances(fade[:1], ref)[0])
    assert d_fade == pytest.approx(math.sqrt(0.5))
    got = midpoint_nn_ratios(ref[[3]], a[:1], b[:1], ref)  # a training image: 0 as well
    assert got[0] == pytest.approx(0.0)
    # a cross-fade that is itself a training image leaves the ratio undefined
    assert np.isnan(midpoint_nn_ratios(ref[[1]], ref[[3]], ref[[3]], ref))[0]


def test_metrics_are_registered_and_declare_units(registry) -> None:
    for name in ("interpolation", "acai", "midpoint"):
        metric = registry.metric(name).spec
        declared = metric.declared()
        assert declared
        for vname, value in declared.items():
            if vname.endswith("_se"):
                assert value.higher_is_better is None
                assert vname[:-3] in declared
    acai = registry.metric("acai").spec.declared()
    assert acai["mean_distance"].unit == "×10⁻³"
    assert acai["mean_distance"].higher_is_better is False
    assert acai["smoothness"].higher_is_better is False


def test_acai_and_midpoint_do_not_apply_to_digits(digits, registry) -> None:
    """Metrics say why they do not apply (the reason is stored with the cell)."""
    assert "ground-truth factor" in registry.metric("acai").spec.applies_to(None, digits)
    assert "moons" in registry.metric("midpoint").spec.applies_to(None, digits)


# ----------------------------------------------------------------------------- figures


def _cell(model: str, seed: int, phase: float) -> dict:
    from vaebench.record import encode_images

    g = torch.Generator().manual_seed(seed)
    return {
        "model": model, "dataset": "moons", "seed": seed, "status": "ok",
        "metrics": {"midpoint_phase": phase},
        "artifacts": {
            "midpoint_strip": encode_images(torch.rand(4, 1, 8, 8, generator=g)),
            "midpoint_truth": encode_images(torch.rand(3, 1, 8, 8, generator=g)),
        },
    }  # fmt: skip


def test_midpoint_figure_from_stored_artifacts(tmp_path) -> None:
    from vaebench.report.interpolation_figures import draw

    cells = [_cell("ae", 1, 0.6), _cell("ae", 0, 0.7), _cell("vae", 0, 0.74),
             {"model": "pca", "dataset": "moons", "seed": 0, "status": "failed"}]  # fmt: skip
    paths = draw(cells, "moons", ["pca", "ae", "vae"], {"ae": "red", "vae": "blue"}, tmp_path)
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert paths[0].name.startswith("moons-midpoint")
    # figures are stable: drawing again gives identical bytes
    first = [p.read_bytes() for p in paths]
    draw(cells, "moons", ["pca", "ae", "vae"], {"ae": "red", "vae": "blue"}, tmp_path)
    assert [p.read_bytes() for p in paths] == first
    # datasets without the artifact draw nothing
    assert draw(cells, "digits", ["ae"], {}, tmp_path) == []
