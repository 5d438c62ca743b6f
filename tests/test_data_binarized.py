"""Fixed binarisation of digits, mnist and fashion-mnist (``binarize=fixed``)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from vaebench.data import idx
from vaebench.data.digits import BINARIZATIONS, apply_binarization, load_digits
from vaebench.dataset import DatasetError


@pytest.fixture(scope="module")
def grey():
    return load_digits()


@pytest.fixture(scope="module")
def binary():
    return load_digits(binarize="fixed", binarize_seed=3)


def test_fixed_binarisation_gives_binary_pixels_with_the_grey_level_as_mean(grey, binary):
    for split in ("x_train", "x_test"):
        b, g = getattr(binary, split), getattr(grey, split)
        assert set(torch.unique(b).tolist()) <= {0.0, 1.0}
        assert b.shape == g.shape and b.dtype == torch.float32
        # pixels that are 0 or 1 stay so; the rest are drawn with probability = grey level
        assert torch.equal(b[g == 0], g[g == 0]) and torch.equal(b[g == 1], g[g == 1])
        n = g.numel()
        assert float(b.mean()) == pytest.approx(float(g.mean()), abs=4 * 0.5 / n**0.5)
    assert torch.equal(binary.y_train, grey.y_train) and torch.equal(binary.y_test, grey.y_test)


def test_the_draw_is_fixed_by_the_seed(binary):
    again = load_digits(binarize="fixed", binarize_seed=3)
    other = load_digits(binarize="fixed", binarize_seed=4)
    assert torch.equal(again.x_train, binary.x_train) and torch.equal(again.x_test, binary.x_test)
    assert not torch.equal(other.x_train, binary.x_train)


def test_info_states_fixed_binarisation(grey, binary):
    assert binary.info["binarize"] == "fixed" and binary.info["binarize_seed"] == 3
    assert "not dynamic" in binary.info["binarization"]
    assert binary.info["split_seed"] == 0  # the loader's own info is kept
    assert "binarize" not in grey.info


def test_none_is_the_grey_dataset(grey):
    assert apply_binarization(grey, "none") is grey
    plain = load_digits(binarize="none")
    assert torch.equal(plain.x_train, grey.x_train)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"binarize": "dynamic"}, "unknown binarize 'dynamic'; valid: none, fixed"),
        ({"binarize": "fixed", "binarize_seed": -1}, "binarize_seed must be an integer >= 0"),
    ],
)
def test_bad_options_name_the_valid_ones(kwargs, message):
    with pytest.raises(DatasetError, match=message):
        load_digits(**kwargs)


def test_every_image_dataset_offers_the_option(registry):
    assert BINARIZATIONS == ("none", "fixed")
    for name in ("digits", "mnist", "fashion-mnist"):
        defaults = registry.dataset(name).spec.defaults()
        assert defaults["binarize"] == "none" and defaults["binarize_seed"] == 0, name


def _idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def test_mnist_files_load_binarised(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("VAEBENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(idx, "SYSTEM_DATA_ROOTS", (str(tmp_path / "system"),))
    rng = np.random.default_rng(0)
    content = {
        "train_images": _idx(rng.integers(0, 256, (20, 28, 28))),
        "train_labels": _idx(np.arange(20) % 10),
        "test_images": _idx(rng.integers(0, 256, (10, 28, 28))),
        "test_labels": _idx(np.arange(10)),
    }
    folder = tmp_path / "mnist"
    folder.mkdir()
    for key, data in content.items():
        (folder / idx.MNIST.files[key].stem).write_bytes(data)
    kw = {"data_dir": str(folder), "download": False, "verify": False}
    ds = idx.load_mnist(**kw, binarize="fixed", binarize_seed=1)
    grey = idx.load_mnist(**kw)
    assert set(torch.unique(ds.x_train).tolist()) == {0.0, 1.0}
    assert ds.info["binarize"] == "fixed" and ds.info["files"] == grey.info["files"]
    assert float(ds.x_train.mean()) == pytest.approx(float(grey.x_train.mean()), abs=0.03)
    assert torch.equal(idx.load_mnist(**kw, binarize="fixed", binarize_seed=1).x_test, ds.x_test)
