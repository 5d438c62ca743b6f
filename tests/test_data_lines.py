"""The ACAI lines dataset: pixels of the official generator, render == generator, labels."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vaebench.data.lines import LineRenderer, angle_labels, draw_line, load_lines
from vaebench.dataset import DatasetError

GOLDEN = Path(__file__).parent / "data" / "acai_lines_golden.json"


@pytest.fixture(scope="module")
def small():
    return load_lines(n_train=200, n_test=100)


def golden_lines() -> list[dict]:
    return json.loads(GOLDEN.read_text())["lines"]


@pytest.mark.parametrize("line", golden_lines(), ids=lambda d: f"angle={d['angle']:.4f}")
def test_pixels_match_the_official_generator(line):
    """Golden pixels were produced by ``draw_line`` of brain-research/acai (see the JSON)."""
    want = np.zeros((32, 32))
    for r, c, v in line["pixels"]:
        want[r, c] = v
    got = LineRenderer()(line["angle"])[0, 0].numpy().astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    # and in the paper's range
    np.testing.assert_allclose(draw_line(line["angle"]), 2 * want - 1, rtol=0, atol=2e-6)


def test_geometry():
    r = LineRenderer()
    right, up, left, down = r([0.0, math.pi / 2, math.pi, 3 * math.pi / 2])[:, 0]
    # 15 px long, 2 px wide, from the centre outwards
    assert right.sum() == pytest.approx(30) and up.sum() == pytest.approx(30)
    assert bool((right[15:17, 16:31] == 1).all()) and right[15:17].sum() == 30
    # float32(pi/2) is not exactly pi/2: the vertical line is off by ~1e-7 px
    assert float((up[1:16, 15:17] - 1).abs().max()) < 1e-5
    assert float(up[:, 15:17].sum()) == pytest.approx(30, abs=1e-4)
    assert left[15:17, 1:16].sum() == pytest.approx(30)
    assert down[16:31, 15:17].sum() == pytest.approx(30)
    # anti-aliased: a diagonal line has fractional pixels
    diag = r(1.0)[0, 0]
    assert bool(((diag > 0) & (diag < 1)).any())
    assert diag.min() == 0 and diag.max() == 1


def test_render_reproduces_the_generator(small):
    for split in ("train", "test"):
        x, f = getattr(small, f"x_{split}"), getattr(small, f"factors_{split}")
        assert torch.equal(small.render(f), x)
    assert torch.equal(small.render(small.factors_test[5, 0].item()), small.x_test[5:6])
    # periodic in 2*pi (up to float rounding of the angle)
    a = torch.tensor([0.5, 2.0])
    np.testing.assert_allclose(small.render(a + 2 * math.pi), small.render(a), atol=1e-4)


def test_angles_labels_and_split(small):
    full = load_lines()
    assert full.x_train.shape == (10000, 1, 32, 32) and full.x_test.shape == (5000, 1, 32, 32)
    a = full.factors_train[:, 0].double().numpy()
    assert a.min() >= 0 and a.max() < 2 * math.pi
    hist = np.histogram(a, bins=8, range=(0, 2 * math.pi))[0]
    assert hist.min() > 1100 and hist.max() < 1400  # uniform: 1250 expected per bin
    assert torch.equal(full.y_train, torch.from_numpy(angle_labels(a)))
    assert sorted(full.y_test.unique().tolist()) == list(range(10))
    # the test set does not depend on the training size; a smaller one is a prefix
    assert torch.equal(full.x_test[:100], small.x_test)
    assert torch.equal(load_lines(n_train=50, n_test=100).x_test, small.x_test)
    assert full.factor_names == ("angle",)
    assert full.info["factors"]["angle"]["periodic"] is True


def test_label_bins_follow_the_paper_and_stay_below_10():
    a = np.array([0.0, 0.6283, 0.6284, math.pi, 2 * math.pi - 1e-7, np.nextafter(2 * math.pi, 0)])
    assert angle_labels(a).tolist() == [0, 0, 1, 5, 9, 9]


def test_seeded_and_validated(small):
    again = load_lines(n_train=200, n_test=100)
    assert torch.equal(again.x_train, small.x_train)
    assert not torch.equal(load_lines(n_train=200, n_test=100, seed=1).x_train, small.x_train)
    with pytest.raises(DatasetError, match="lines: n_test must be an integer >= 1, got 0"):
        load_lines(n_test=0)
    with pytest.raises(DatasetError, match=r"expected a scalar, \(M,\) or \(M, 1\)"):
        LineRenderer()(np.zeros((2, 2)))


def test_registered_spec(registry):
    spec = registry.dataset("lines").spec
    assert spec.shape == (1, 32, 32) and spec.sizes == (10000, 5000)
    assert "Berthelot" in spec.citation


def test_conformance_kit():
    from vaebench.testing import check_dataset

    check_dataset("lines", options={"n_train": 40, "n_test": 20})
