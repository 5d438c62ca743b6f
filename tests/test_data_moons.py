"""The moons datasets: lit area equals phase, render == generator, regimes, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaebench.data.moons import MoonRenderer, draw_moons, load_moons, sample_phases
from vaebench.dataset import DatasetError

SMALL = {"n_train": 120, "n_test": 40}


@pytest.fixture(scope="module")
def dense():
    return load_moons(**SMALL)


def lit_fraction(images: torch.Tensor, unlit: float = 0.3) -> np.ndarray:
    """Lit area / disc area per image, from pixel sums: sum = unlit*disc + (1-unlit)*lit."""
    disc = MoonRenderer(unlit=unlit)(0.0).sum().item() / unlit
    total = images.reshape(len(images), -1).double().sum(1).numpy()
    return (total - unlit * disc) / ((1 - unlit) * disc)


def test_render_matches_the_generator(dense):
    for split in ("train", "test"):
        x, f = getattr(dense, f"x_{split}"), getattr(dense, f"factors_{split}")
        assert torch.equal(dense.render(f), x), split
        # batch-independent: one at a time gives the same pixels
        for i in (0, 7, len(f) - 1):
            assert torch.equal(dense.render(f[i]), x[i : i + 1])
    p = float(dense.factors_test[3, 0])
    assert torch.equal(dense.render(p), dense.x_test[3:4])


def test_lit_fraction_equals_phase_and_is_monotone():
    r = MoonRenderer()
    phases = np.linspace(0.0, 1.0, 201)
    frac = lit_fraction(r(phases))
    # measured: max error 0.00066 with 8x8 samples per pixel (0.005 with 4x4) on a 12 px disc
    assert np.abs(frac - phases).max() < 0.002
    assert np.all(np.diff(frac) > 0), "lit area must grow strictly with phase"
    # fine steps never decrease (per-sample lit test is monotone in the phase)
    fine = lit_fraction(r(np.linspace(0.70, 0.71, 21)))
    assert np.all(np.diff(fine) >= 0)


def test_named_phases_look_right():
    r = MoonRenderer()
    new, half, three_q, full = r([0.0, 0.5, 0.75, 1.0])[:, 0]
    inside = full == 1.0  # pixels entirely inside the disc
    assert new.max().item() == pytest.approx(0.3) and bool((new[inside] == new.max()).all())
    # half moon: right half lit, left half dim (the terminator runs through columns 15-16)
    assert bool((half[:, 16:][inside[:, 16:]] == 1.0).all())
    assert torch.allclose(half[:, :16][inside[:, :16]], torch.tensor(0.3))
    assert r(0.75).shape == (1, 1, 32, 32)
    assert torch.equal(r(0.75)[0, 0], three_q)
    # three-quarter moon: lit beyond the half moon on the left, but not the full disc
    assert half.sum() < three_q.sum() < full.sum()
    assert (full - three_q)[:, 16:].abs().max() == 0  # the right half is fully lit already
    assert full.min() == 0.0 and full[16, 16] == 1.0  # background 0, centre lit


def test_unlit_is_between_background_and_lit():
    img = MoonRenderer(unlit=0.2)(0.5)[0, 0]
    values = set(np.round(img.numpy().astype(np.float64).ravel(), 4).tolist())
    assert {0.0, 0.2, 1.0} <= values
    with pytest.raises(DatasetError, match=r"unlit must be in \(0, 1\), got 1.5"):
        load_moons(unlit=1.5, **SMALL)


def test_regimes():
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    dense = sample_phases(20000, "dense", rng())
    assert dense.min() >= 0 and dense.max() <= 1
    assert np.histogram(dense, bins=10, range=(0, 1))[0].min() > 1800
    gap = sample_phases(20000, "gap", rng(), gap_center=0.75, gap_width=0.2)
    assert not np.any((gap > 0.65) & (gap < 0.85))
    assert gap.min() < 0.01 and gap.max() > 0.99
    lecture = sample_phases(20000, "lecture", rng(), lecture_width=0.1)
    near_half = (lecture >= 0.45) & (lecture <= 0.55)
    near_full = (lecture >= 0.9) & (lecture <= 1.0)
    assert np.all(near_half | near_full) and near_half.sum() == near_full.sum() == 10000
    with pytest.raises(DatasetError, match="unknown regime 'sparse'; valid: dense, gap, lecture"):
        sample_phases(3, "sparse", rng())


def test_gap_dataset_and_shared_test_split(dense):
    gap = load_moons(regime="gap", gap_width=0.3, **SMALL)
    p = gap.factors_train[:, 0]
    assert not bool(((p > 0.6) & (p < 0.9)).any())
    assert gap.info["gap"] == pytest.approx([0.6, 0.9])
    lecture = load_moons(regime="lecture", **SMALL)
    q = lecture.factors_train[:, 0]
    assert bool((((q >= 0.45) & (q <= 0.55)) | (q >= 0.9)).all())
    # the test split is the same for every regime and covers all phases evenly
    for other in (gap, lecture):
        assert torch.equal(other.x_test, dense.x_test)
        assert torch.equal(other.factors_test, dense.factors_test)
    t = np.sort(dense.factors_test[:, 0].numpy())
    n = len(t)
    assert np.all((t >= np.arange(n) / n - 1e-6) & (t <= (np.arange(n) + 1) / n + 1e-6))


def test_registered_names_differ_only_in_regime(registry):
    specs = {n: registry.dataset(n).spec for n in ("moons", "moons-gap", "moons-lecture")}
    regimes = {n: s.defaults()["regime"] for n, s in specs.items()}
    assert regimes == {"moons": "dense", "moons-gap": "gap", "moons-lecture": "lecture"}
    base = dict(specs["moons"].defaults(), regime=None)
    for s in specs.values():
        assert dict(s.defaults(), regime=None) == base
        assert s.shape == (1, 32, 32) and s.sizes == (base["n_train"], base["n_test"])
    ds = specs["moons-gap"].load(n_train=30, n_test=10)
    assert ds.name == "moons-gap" and ds.info["regime"] == "gap"
    with pytest.raises(DatasetError, match="unknown option"):
        specs["moons"].load(name="x")


def test_deterministic_from_seed(dense):
    again = load_moons(**SMALL)
    assert torch.equal(again.x_train, dense.x_train) and torch.equal(again.y_train, dense.y_train)
    other = load_moons(seed=1, **SMALL)
    assert not torch.equal(other.factors_train, dense.factors_train)


def test_labels_are_phase_bins(dense):
    expected = torch.clamp((dense.factors_train[:, 0].double() * 10).long(), max=9)
    assert torch.equal(dense.y_train, expected)
    assert dense.factor_names == ("phase",) and dense.factors_train.shape == (120, 1)


def test_nuisances_off_by_default_and_exact_when_on(dense):
    assert dense.info["shift_px"] == 0 and dense.info["rotation_deg"] == 0
    j = load_moons(shift=2.0, rotation=30.0, **SMALL)
    assert j.factor_names == ("phase", "dx", "dy", "rotation")
    f = j.factors_train
    assert f.shape == (120, 4)
    assert f[:, 1:3].abs().max() <= 2.0 and f[:, 1:3].abs().max() > 1.0
    assert f[:, 3].abs().max() <= math.radians(30) + 1e-6
    assert torch.equal(j.render(f), j.x_train)
    # a phase-only factor renders the centred, upright moon
    centred = j.render(f[:5, :1])
    assert torch.equal(centred, dense.render(f[:5, :1]))
    assert not torch.equal(centred, j.x_train[:5])
    with pytest.raises(DatasetError, match="does not fit"):
        load_moons(shift=5.0, **SMALL)


def test_size_option_and_validation():
    small = load_moons(size=16, n_train=10, n_test=5)
    assert small.shape == (1, 16, 16)
    assert small.render([0.1, 0.9]).shape == (2, 1, 16, 16)
    with pytest.raises(DatasetError, match="regime must be one of dense, gap, lecture, got 'x'"):
        load_moons(regime="x")
    with pytest.raises(DatasetError, match="n_train must be an integer >= 1, got 0"):
        load_moons(n_train=0)
    with pytest.raises(DatasetError, match=r"phases must lie in \[0, 1\]"):
        MoonRenderer()(1.5)
    with pytest.raises(DatasetError, match=r"\(M, 4\)"):
        MoonRenderer()(np.zeros((2, 3)))
    with pytest.raises(DatasetError, match=r"expected factors of shape \(M, 4\)"):
        draw_moons(np.zeros((2, 2)))


def test_conformance_kit():
    from vaebench.testing import check_dataset

    check_dataset("moons-gap", options={"n_train": 40, "n_test": 20})


def test_fast_and_general_paths_agree():
    """Moons without nuisances are counted per pixel with searchsorted; with nuisances each image
    is thresholded on its own. A shift of 1e-30 px changes no (float32) coordinate but takes the
    general path: both must give the same pixels."""
    phases = np.random.default_rng(3).random(40)
    plain = np.zeros((40, 4))
    plain[:, 0] = phases
    general = plain.copy()
    general[:, 1] = 1e-30
    a, b = draw_moons(plain), draw_moons(general)
    assert np.array_equal(a, b)
    mixed = draw_moons(np.concatenate([plain[:20], general[20:]]))
    assert np.array_equal(mixed, a)
