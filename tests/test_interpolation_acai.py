"""The ACAI interpolation metrics (Mean Distance, Smoothness) and the lecture's midpoint metric.

Reference: the official functions of ``lib/eval.py`` in github.com/brain-research/acai
(``closest_line``, ``smoothness_score``, ``line_eval``) are re-implemented below with numpy and
scipy exactly as written there (bank passed in instead of drawn, so any renderer can be used), and
vaebench's implementation is compared with them on constructed interpolations. The renderers
here are small stand-ins written for these tests (supersampled line and moon); the real
``lines``/``moons`` datasets are used where registered.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import scipy.spatial
import torch
from torch import Tensor

from vaebench.dataset import Dataset
from vaebench.metric import EvalContext
from vaebench.metrics.acai import (
    AcaiInterpolation,
    FactorSpec,
    LectureMidpoint,
    ReferenceBank,
    cosine_distance,
    factor_spec,
    ideal_factors,
    interpolation_scores,
    mean_smoothness,
    reference_bank,
    smoothness_scores,
    to_signed,
)
from vaebench.metrics.interpolation import draw_pairs, step_fractions
from vaebench.model import FitReport, Model

TWO_PI = 2 * math.pi

# ----------------------------------------------------------------------------- stand-in data


def render_lines(angles: Any, size: int = 32, ss: int = 3) -> Tensor:
    """Anti-aliased 2 px wide, 15 px long segments from the centre at ``angles`` (rad, 0 right,
    pi/2 up), by supersampling: ``(M, 1, size, size)`` in [0, 1]."""
    a = np.asarray(angles, dtype=np.float64).reshape(-1)
    g = (np.arange(size * ss) + 0.5) / ss - size / 2
    px, py = np.meshgrid(g, -g)  # x right, y up
    out = np.empty((len(a), size, size), dtype=np.float32)
    length = size / 2 - 1
    for i, ang in enumerate(a):
        dx, dy = math.cos(ang), math.sin(ang)
        s = np.clip(px * dx + py * dy, 0.0, length)
        d2 = (px - s * dx) ** 2 + (py - s * dy) ** 2
        inside = (d2 <= 1.0).astype(np.float32)
        out[i] = inside.reshape(size, ss, size, ss).mean(axis=(1, 3))
    return torch.from_numpy(out[:, None])


def render_moons(phases: Any, size: int = 32, ss: int = 4, unlit: float = 0.3) -> Tensor:
    """Moons of radius 0.375 size: lit where x > (1 - 2t) sqrt(R^2 - y^2), unlit disc ``unlit``,
    background 0; ``(M, 1, size, size)`` in [0, 1]."""
    t = np.asarray(phases, dtype=np.float64).reshape(-1)
    r = 0.375 * size
    g = (np.arange(size * ss) + 0.5) / ss - size / 2
    px, py = np.meshgrid(g, -g)
    disc = (px**2 + py**2 <= r * r).astype(np.float32)
    chord = np.sqrt(np.maximum(r * r - py**2, 0.0))
    out = np.empty((len(t), size, size), dtype=np.float32)
    for i, ti in enumerate(t):
        lit = disc * (px > (1 - 2 * ti) * chord)
        img = unlit * disc + (1 - unlit) * lit
        out[i] = img.reshape(size, ss, size, ss).mean(axis=(1, 3))
    return torch.from_numpy(out[:, None])


def make_dataset(kind: str, n_test: int = 120, seed: int = 0, bank_size: int = 1800) -> Dataset:
    rng = np.random.default_rng(seed)
    if kind == "lines":
        f_test, f_train = rng.uniform(0, TWO_PI, n_test), rng.uniform(0, TWO_PI, 40)
        render, factor = render_lines, {"low": 0.0, "high": TWO_PI, "periodic": True}
        name = "angle"
    else:
        f_test, f_train = rng.uniform(0, 1, n_test), rng.uniform(0, 1, 40)
        render, factor = render_moons, {"low": 0.0, "high": 1.0, "periodic": False}
        name = "phase"
    return Dataset(
        name=f"toy-{kind}",
        x_train=render(f_train),
        x_test=render(f_test),
        factors_train=torch.tensor(f_train)[:, None],
        factors_test=torch.tensor(f_test)[:, None],
        factor_names=(name,),
        render=render,
        info={"factors": {name: {**factor, "bank_size": bank_size}}},
    )


@pytest.fixture(scope="module")
def lines() -> Dataset:
    return make_dataset("lines")


@pytest.fixture(scope="module")
def moons() -> Dataset:
    return make_dataset("moons")


class _Stub(Model):
    """A model defined only by ``encode``/``decode`` callables (no training)."""

    def __init__(self, shape: tuple[int, ...], latent_dim: int, encode, decode) -> None:
        self.input_shape, self.latent_dim = shape, latent_dim
        self._encode, self._decode = encode, decode

    def fit(self, x, progress=None) -> FitReport:
        return FitReport({"loss": [0.0]}, 0.0, 0, 0)

    def encode(self, x: Tensor) -> Tensor:
        return self._encode(x).float()

    def decode(self, z: Tensor) -> Tensor:
        return self._decode(z).float()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def to(self, device) -> Model:
        return self

    @property
    def n_params(self) -> int:
        return 0

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state) -> None:
        return None


def factor_oracle(ds: Dataset) -> Model:
    """Knows the true factor of every test image: codes are (cos, sin) of the angle for lines, the
    phase for moons; ``decode`` renders the true image at the code's factor."""
    table = ds.x_test.reshape(ds.x_test.shape[0], -1)
    f = ds.factors_test[:, 0].double()

    def lookup(x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        idx = (flat[:, None, :] == table[None]).all(-1).float().argmax(1)
        return f[idx]

    if ds.factor_names == ("angle",):

        def enc(x: Tensor) -> Tensor:
            a = lookup(x)
            return torch.stack([torch.cos(a), torch.sin(a)], 1)

        def dec(z: Tensor) -> Tensor:
            a = torch.atan2(z[:, 1].double(), z[:, 0].double()) % TWO_PI
            return ds.render(a.numpy())

        return _Stub(ds.shape, 2, enc, dec)
    return _Stub(ds.shape, 1, lambda x: lookup(x)[:, None], lambda z: ds.render(z[:, 0].numpy()))


def pixel_codes(ds: Dataset) -> Model:
    """Code = the image itself: latent interpolation is a pixel cross-fade."""
    shape = ds.shape
    d = int(np.prod(shape))
    return _Stub(shape, d, lambda x: x.reshape(x.shape[0], -1), lambda z: z.reshape(-1, *shape))


def ctx(seed: int = 0, **options: Any) -> EvalContext:
    return EvalContext(seed=seed, device=torch.device("cpu"), options={
        "n_pairs": 64, "n_steps": 16, "interpolation": "linear", **options})  # fmt: skip


# ----------------------------------------------------------------------------- official reference
# Re-implemented from lib/eval.py of github.com/brain-research/acai (Apache-2.0), with the bank
# of true images passed in rather than drawn inside ``closest_line``; ``unwrap`` added so the
# same code serves the non-periodic moon phase.


def ref_closest_line(query_lines: np.ndarray, all_lines: np.ndarray, angles: np.ndarray):
    flat_query = query_lines.reshape(query_lines.shape[0], -1)
    flat_all = all_lines.reshape(all_lines.shape[0], -1)
    distances = scipy.spatial.distance.cdist(flat_query, flat_all, "cosine")
    min_dist_idx = np.argmin(distances, axis=-1)
    min_dist = distances[np.arange(distances.shape[0]), min_dist_idx]
    return min_dist, np.array([angles[n] for n in min_dist_idx])


def ref_smoothness_score(angles: np.ndarray, unwrap: bool = True) -> np.ndarray:
    angles = np.atleast_2d(angles)
    if unwrap:
        angles = np.unwrap(angles)
    diffs = np.abs(np.diff(angles, axis=-1))
    total_diff = np.abs(angles[:, :1] - angles[:, -1:])
    zero_diff = (total_diff < 1e-4).flatten()
    with np.errstate(divide="ignore", invalid="ignore"):
        normalized_diffs = diffs / total_diff
    deviation = np.max(normalized_diffs, axis=-1) - 1.0 / (angles.shape[1] - 1)
    deviation[zero_diff] = np.nan
    return deviation


def ref_line_eval(interpolated_lines, all_lines, angles, unwrap: bool = True):
    original_shape = interpolated_lines.shape
    min_dist, est = ref_closest_line(
        interpolated_lines.reshape((-1,) + original_shape[2:]), all_lines, angles
    )
    mean_distance = np.mean(min_dist)
    smoothness_scores_ = ref_smoothness_score(
        est.reshape(original_shape[0], original_shape[1]), unwrap
    )
    nan_scores = np.isnan(smoothness_scores_)
    if np.all(nan_scores):
        mean_smoothness_ = np.nan
    else:
        sum_smoothness = np.sum(smoothness_scores_[np.logical_not(nan_scores)])
        mean_smoothness_ = sum_smoothness / float(len(nan_scores))
    return np.float32(mean_distance), np.float32(mean_smoothness_), est


def _paths(ds: Dataset, kind: str, n_pairs: int, seed: int = 0) -> Tensor:
    """Constructed interpolations ``(P, 16, C, H, W)`` between random test pairs."""
    g = torch.Generator().manual_seed(seed)
    a, b = draw_pairs(ds.x_test.shape[0], n_pairs, g)
    t = step_fractions(16)
    spec = factor_spec(ds)
    f = ds.factors_test[:, 0].double().numpy()
    fa, fb = f[a.numpy()], f[b.numpy()]
    tt = t.float()[None, :, None, None, None]
    xa, xb = ds.x_test[a][:, None], ds.x_test[b][:, None]
    if kind == "perfect":
        ideal = ideal_factors(fa, fb, t.numpy(), spec.period)
        if spec.period is not None:
            ideal = np.mod(ideal, spec.period)
        return ds.render(ideal.ravel()).reshape(n_pairs, 16, *ds.shape)
    if kind == "long_way":  # the true images, but the long way round the circle
        delta = np.mod(fb - fa, TWO_PI)
        delta = np.where(delta < math.pi, delta - TWO_PI, delta)
        ideal = np.mod(fa[:, None] + t.numpy()[None] * delta[:, None], TWO_PI)
        return ds.render(ideal.ravel()).reshape(n_pairs, 16, *ds.shape)
    if kind == "crossfade":
        return (1 - tt) * xa + tt * xb
    if kind == "noisy":
        noise = torch.randn(n_pairs, 16, *ds.shape, generator=g) * 0.15
        return ((1 - tt) * xa + tt * xb + noise).clamp(0, 1)
    if kind == "constant":  # half the paths stand still: NaN smoothness
        p = (1 - tt) * xa + tt * xb
        p[: n_pairs // 2] = xa[: n_pairs // 2].expand(-1, 16, -1, -1, -1)
        return p
    if kind == "all_constant":
        return xa.expand(-1, 16, -1, -1, -1).clone()
    raise ValueError(kind)


CASES = ("perfect", "crossfade", "noisy", "constant", "all_constant")


@pytest.mark.parametrize("kind", CASES + ("long_way",))
def test_lines_scores_match_official_functions(lines: Dataset, kind: str) -> None:
    spec = factor_spec(lines)
    bank = reference_bank(lines, spec)
    paths = _paths(lines, kind, n_pairs=20)
    ours = interpolation_scores(paths, bank, spec.period)
    signed = (2.0 * paths.double() - 1.0).permute(0, 1, 3, 4, 2).numpy()  # (P, T, H, W, C)
    bank_signed = (2.0 * lines.render(bank.factors).double() - 1.0).permute(0, 2, 3, 1).numpy()
    md, ms, est = ref_line_eval(signed, bank_signed, bank.factors)
    np.testing.assert_allclose(ours["mean_distance"] / 1e3, md, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(ours["factors"].ravel(), est)
    if np.isnan(ms):
        assert math.isnan(ours["smoothness"])
    else:
        np.testing.assert_allclose(ours["smoothness"], ms, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", CASES)
def test_moons_scores_match_official_functions_without_unwrap(moons: Dataset, kind: str) -> None:
    spec = factor_spec(moons)
    assert spec.period is None
    bank = reference_bank(moons, spec)
    paths = _paths(moons, kind, n_pairs=20)
    ours = interpolation_scores(paths, bank, spec.period)
    signed = (2.0 * paths.double() - 1.0).permute(0, 1, 3, 4, 2).numpy()
    bank_signed = (2.0 * moons.render(bank.factors).double() - 1.0).permute(0, 2, 3, 1).numpy()
    md, ms, est = ref_line_eval(signed, bank_signed, bank.factors, unwrap=False)
    np.testing.assert_allclose(ours["mean_distance"] / 1e3, md, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(ours["factors"].ravel(), est)
    if np.isnan(ms):
        assert math.isnan(ours["smoothness"])
    else:
        np.testing.assert_allclose(ours["smoothness"], ms, rtol=1e-5, atol=1e-7)


def test_smoothness_matches_official_on_hand_made_sequences() -> None:
    t = np.linspace(0, 1, 16)
    seqs = np.stack([
        0.3 + 1.2 * t,  # even: 0
        np.r_[np.zeros(8), np.ones(8)] * 2.0,  # one jump: 1 - 1/15
        np.full(16, 0.4),  # no change: NaN
        np.mod(6.0 + 1.0 * t, TWO_PI),  # even but wraps past 2 pi: 0 after unwrap
        0.3 + 1.2 * t**2,  # accelerating
    ])  # fmt: skip
    for period, unwrap in ((TWO_PI, True), (None, False)):
        got = smoothness_scores(seqs, period)
        want = ref_smoothness_score(seqs, unwrap)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    s = smoothness_scores(seqs, TWO_PI)
    assert s[0] == pytest.approx(0.0, abs=1e-12)
    assert s[1] == pytest.approx(1 - 1 / 15)
    assert math.isnan(s[2]) and s[3] == pytest.approx(0.0, abs=1e-9)
    assert smoothness_scores(seqs[3:4], None)[0] > 0.5  # without unwrap the wrap is a jump
    # official mean: NaN scores are left out of the sum but counted in the denominator
    mean, se = mean_smoothness(s)
    assert mean == pytest.approx(np.nansum(s) / 5)
    assert se == pytest.approx(np.nan_to_num(s).std(ddof=1) / math.sqrt(5))
    assert math.isnan(mean_smoothness(np.array([np.nan, np.nan]))[0])


# ----------------------------------------------------------------------------- ideal vs cross-fade


@pytest.mark.parametrize("kind", ["lines", "moons"])
def test_perfect_interpolation_is_ideal_and_crossfade_clearly_worse(kind, lines, moons) -> None:
    ds = lines if kind == "lines" else moons
    spec = factor_spec(ds)
    bank = reference_bank(ds, spec)
    perfect = interpolation_scores(_paths(ds, "perfect", 64), bank, spec.period)
    fade = interpolation_scores(_paths(ds, "crossfade", 64), bank, spec.period)
    # ideal: true images sit (within the bank's grid spacing) on the bank, evenly spaced
    assert perfect["mean_distance"] < 0.05  # x 1e-3
    assert perfect["smoothness"] < 0.02
    # a cross-fade leaves the data manifold and changes the factor in a jump
    assert fade["mean_distance"] > 1.0
    assert fade["mean_distance"] > 50 * perfect["mean_distance"]
    assert fade["smoothness"] > 0.3
    assert fade["smoothness"] > 10 * perfect["smoothness"]


def test_long_way_round_scores_like_the_short_way_on_lines(lines: Dataset) -> None:
    """The official unwrap accepts a path that goes round the long way (documented caveat)."""
    spec = factor_spec(lines)
    bank = reference_bank(lines, spec)
    long_way = interpolation_scores(_paths(lines, "long_way", 32), bank, spec.period)
    assert long_way["smoothness"] < 0.02 and long_way["mean_distance"] < 0.05


def _registered(name: str) -> Dataset | None:
    from vaebench.plugins import get_registry

    reg = get_registry()
    if name not in reg.datasets:
        return None
    return reg.dataset(name).spec.load()


def test_real_lines_crossfade_matches_acai_sanity_values() -> None:
    """ACAI.md: a pixel cross-fade scores Mean Distance ~6.2e-3 and Smoothness ~0.87 with the
    paper's lines, bank and protocol (256 pairs x 16 steps); true lines score ~0."""
    ds = _registered("lines")
    if ds is None:
        pytest.skip("dataset 'lines' not registered")
    spec = factor_spec(ds)
    assert spec.bank_size == 10_000 and spec.periodic
    bank = reference_bank(ds, spec)
    np.testing.assert_array_equal(bank.factors, np.linspace(0, TWO_PI - TWO_PI / 10000, 10000))
    fade = interpolation_scores(_paths(ds, "crossfade", 256), bank, spec.period)
    # tolerance: 3 standard errors of the 256-pair mean plus the rounding of the quoted values
    assert abs(fade["mean_distance"] - 6.2) < 3 * fade["mean_distance_se"] + 0.05
    assert abs(fade["smoothness"] - 0.87) < 3 * fade["smoothness_se"] + 0.005
    perfect = interpolation_scores(_paths(ds, "perfect", 256), bank, spec.period)
    assert perfect["mean_distance"] < 0.01 and perfect["smoothness"] < 0.01


def test_lines_bank_is_the_official_bank_pixel_for_pixel() -> None:
    """The official bank draws ``draw_line`` at the float64 angles of ``closest_line``
    (lib/eval.py); at pi/4 and 3 pi/4 (bank indices 1250 and 3750) rounding the angle to float32
    would shift the line by one pixel. Golden pixels: the official code at those angles."""
    import json
    from pathlib import Path

    from vaebench.data.lines import LineRenderer, load_lines
    from vaebench.metrics.acai import KNOWN_FACTORS

    golden = json.loads((Path(__file__).parent / "data" / "acai_lines_golden.json").read_text())
    entries = [e for e in golden["lines"] if "bank_index" in e]
    assert sorted(e["bank_index"] for e in entries) == [1250, 3750]
    bank = reference_bank(load_lines(n_train=1, n_test=1), KNOWN_FACTORS["angle"])
    for e in entries:
        want = np.zeros((32, 32))
        for r, c, v in e["pixels"]:
            want[r, c] = v
        i = e["bank_index"]
        assert bank.factors[i] == e["angle"]  # the float64 linspace value, bit for bit
        got = bank.pixels[i].reshape(32, 32).double().numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        # the float32-rounded angle draws another image: the test tells the two apart
        rounded = LineRenderer()(np.float32(e["angle"]))[0, 0].double().numpy()
        assert np.abs(rounded - want).max() > 0.5


def test_real_moons_perfect_vs_crossfade() -> None:
    ds = _registered("moons")
    if ds is None:
        pytest.skip("dataset 'moons' not registered")
    spec = factor_spec(ds)
    assert spec.name == "phase" and not spec.periodic
    bank = reference_bank(ds, spec)
    perfect = interpolation_scores(_paths(ds, "perfect", 128), bank, spec.period)
    fade = interpolation_scores(_paths(ds, "crossfade", 128), bank, spec.period)
    assert perfect["mean_distance"] < 0.05 and perfect["smoothness"] < 0.02
    assert fade["mean_distance"] > 50 * perfect["mean_distance"]
    assert fade["smoothness"] > 10 * perfect["smoothness"]


# ----------------------------------------------------------------------------- the bank


def test_bank_nearest_matches_brute_force_and_breaks_ties_low(moons: Dataset) -> None:
    spec = factor_spec(moons)
    bank = reference_bank(moons, spec)
    assert reference_bank(moons, spec) is bank  # cached
    q = torch.cat([moons.x_test[:30], (moons.x_test[30:60] + 0.1).clamp(0, 1)])
    dist, fac, idx = bank.nearest(q)
    full = scipy.spatial.distance.cdist(
        to_signed(q.double()).numpy(), to_signed(moons.render(bank.factors).double()).numpy(),
        "cosine",
    )  # fmt: skip
    np.testing.assert_array_equal(idx, full.argmin(1))
    np.testing.assert_allclose(dist, full.min(1), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(fac, bank.factors[idx])
    # duplicate bank entries: the lowest index wins, as numpy.argmin on cdist
    img = moons.render([0.2, 0.2, 0.7])
    dup = ReferenceBank(np.array([0.2, 0.21, 0.7]), img)
    assert dup.nearest(img[:1])[2][0] == 0


def test_cosine_distance_uses_signed_pixels() -> None:
    x = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    y = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    # in [0, 1] the cosine would be 1/sqrt(2); in [-1, 1]: (-1, 1, 1, -1) vs (-1, 1, -1, -1) -> 1/2
    assert float(cosine_distance(to_signed(x), to_signed(y))[0]) == pytest.approx(0.5)
    half = torch.full((1, 4), 0.5)  # maps to the zero vector: defined as distance 1
    assert float(cosine_distance(to_signed(half), to_signed(y))[0]) == 1.0


def test_factor_spec_rules(lines: Dataset) -> None:
    assert factor_spec(lines) == FactorSpec("angle", 0.0, TWO_PI, True, 1800, "rad")
    import dataclasses

    plain = dataclasses.replace(lines, info={})
    assert factor_spec(plain).bank_size == 10_000  # the paper's bank for a known factor
    unknown = dataclasses.replace(lines, info={}, factor_names=("tilt",))
    assert factor_spec(unknown) is None
    no_render = dataclasses.replace(lines, render=None)
    assert factor_spec(no_render) is None
    assert AcaiInterpolation().applies_to(None, no_render) is not True
    assert "moons" in LectureMidpoint().applies_to(None, lines)  # the reason says what it needs


# ----------------------------------------------------------------------------- metrics end to end


def test_acai_metric_on_oracle_and_crossfade_models(lines: Dataset) -> None:
    metric = AcaiInterpolation()
    assert metric.applies_to(None, lines)
    oracle = factor_oracle(lines)
    slerp = metric.evaluate(oracle, lines, ctx(interpolation="slerp"))
    assert set(slerp) == set(metric.declared())
    # slerp of unit (cos, sin) codes moves the angle evenly along the short arc: ideal
    assert slerp["mean_distance"] < 0.05 and slerp["smoothness"] < 0.02
    assert slerp["factor_path_error"] < 0.01  # rad
    assert slerp["pairs_midpoint_mse"] < 1e-3
    linear = metric.evaluate(oracle, lines, ctx())
    # a chord through the circle: still true lines, but the angle no longer moves evenly
    assert linear["mean_distance"] < 0.05
    assert linear["smoothness"] > slerp["smoothness"] + 0.05
    fade = metric.evaluate(pixel_codes(lines), lines, ctx())
    assert fade["mean_distance"] > 50 * slerp["mean_distance"]
    assert fade["smoothness"] > 0.3
    assert fade["pairs_midpoint_mse"] > 10 * slerp["pairs_midpoint_mse"]
    for k in ("mean_distance_se", "smoothness_se", "factor_path_error_se"):
        assert fade[k] > 0 and math.isfinite(fade[k])
    # same seed -> same pairs -> same numbers
    assert metric.evaluate(pixel_codes(lines), lines, ctx()) == fade


def test_acai_metric_on_moons_oracle_and_crossfade(moons: Dataset) -> None:
    metric = AcaiInterpolation()
    good = metric.evaluate(factor_oracle(moons), moons, ctx())
    bad = metric.evaluate(pixel_codes(moons), moons, ctx())
    assert good["mean_distance"] < 0.05 and good["smoothness"] < 0.02
    assert good["factor_path_error"] < 2e-3  # phase units; the bank step is 1/1799
    assert bad["mean_distance"] > 50 * good["mean_distance"]
    assert bad["smoothness"] > 10 * good["smoothness"]
    assert bad["factor_path_error"] > 5 * good["factor_path_error"]


def test_lecture_midpoint_metric(moons: Dataset) -> None:
    metric = LectureMidpoint()
    assert metric.applies_to(None, moons)
    c = ctx()
    good = metric.evaluate(factor_oracle_for_any_phase(moons), moons, c)
    assert set(good) == set(metric.declared())
    fade = metric.evaluate(pixel_codes(moons), moons, ctx())
    # cross-fade of full and half: lit right half, the left half at (1 + unlit) / 2 -- not a moon
    three_q, full, half = (moons.render([p])[0] for p in (0.75, 1.0, 0.5))
    want = float(((0.5 * full + 0.5 * half).double() - three_q.double()).pow(2).mean())
    assert fade["midpoint_mse"] == pytest.approx(want, rel=1e-5)
    assert fade["midpoint_endpoint_mse"] < 1e-10  # pixel codes reconstruct exactly
    assert fade["midpoint_phase_error"] == pytest.approx(abs(fade["midpoint_phase"] - 0.75))

    # the oracle decodes exactly the true 3/4 moon; its phase estimate is the lowest bank phase
    # rendering that same image (32 px moons cannot resolve phases much finer than ~0.005)
    assert good["midpoint_phase"] == pytest.approx(0.75, abs=0.01)
    assert good["midpoint_phase_error"] < 0.01
    assert good["midpoint_mse"] == 0.0 and good["midpoint_cosine"] == 0.0
    assert good["midpoint_realism"] < 1e-9
    strip = c.artifacts["midpoint_strip"]
    assert tuple(strip.shape) == (4, *moons.shape)
    np.testing.assert_array_equal(strip[3], three_q)  # the true 3/4 moon
    np.testing.assert_array_equal(c.artifacts["midpoint_truth"], moons.render([1.0, 0.75, 0.5]))
    mid_mse = float((strip[1].double() - three_q.double()).pow(2).mean())
    assert mid_mse == pytest.approx(good["midpoint_mse"])


def factor_oracle_for_any_phase(ds: Dataset) -> Model:
    """Like :func:`factor_oracle` for any rendered phase: the lecture's full and half moons are
    recognised exactly, other images get the phase of the nearest image of a fine bank."""
    known = ds.render([1.0, 0.5]).reshape(2, -1)
    fine = ReferenceBank(np.linspace(0, 1, 4001), ds.render(np.linspace(0, 1, 4001)))

    def enc(x: Tensor) -> Tensor:
        phase = torch.as_tensor(fine.nearest(x)[1])
        flat = x.reshape(x.shape[0], -1)
        for img, p in zip(known, (1.0, 0.5), strict=True):
            phase = torch.where((flat == img).all(1), torch.tensor(p, dtype=phase.dtype), phase)
        return phase[:, None]

    return _Stub(ds.shape, 1, enc, lambda z: ds.render(z[:, 0].clamp(0, 1).numpy()))
