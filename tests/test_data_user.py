"""User data: .npz files and image folders, good and bad."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from vaebench.data.user import load_user_dataset, to_nchw
from vaebench.dataset import DatasetError


def save_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ----------------------------------------------------------------------------- .npz


@pytest.mark.parametrize(
    "shape, layout",
    [((7, 6, 5), "(N, H, W)"), ((7, 1, 6, 5), "(N, C, H, W)"), ((7, 6, 5, 1), "(N, H, W, C)")],
)
def test_npz_layouts(tmp_path, rng, shape, layout):
    x = rng.random(shape).astype(np.float32)
    path = save_npz(tmp_path / "d.npz", x_train=x, x_test=x[:3])
    ds = load_user_dataset(path)
    assert ds.shape == (1, 6, 5) and ds.x_train.shape[0] == 7 and ds.x_test.shape[0] == 3
    np.testing.assert_array_equal(ds.x_train[:, 0].numpy(), x.reshape(7, 6, 5))
    assert ds.info["layout"]["train"] == layout
    assert ds.y_train is None and ds.name == path
    assert len(ds.info["sha256"]) == 64


def test_npz_channels_last_rgb_is_transposed(tmp_path, rng):
    x = rng.random((4, 8, 9, 3))
    ds = load_user_dataset(save_npz(tmp_path / "c.npz", x_train=x, x_test=x))
    assert ds.shape == (3, 8, 9)
    np.testing.assert_allclose(ds.x_train[2, 1].numpy(), x[2, :, :, 1], rtol=1e-6)


def test_npz_uint8_is_scaled_and_said(tmp_path, rng, caplog):
    x = rng.integers(0, 256, (5, 6, 6), dtype=np.uint8)
    y = np.arange(5)
    path = save_npz(tmp_path / "u.npz", x_train=x, x_test=x, y_train=y, y_test=y)
    # attach caplog's handler directly: the CLI's logging setup may stop propagation
    logger = logging.getLogger("vaebench.data.user")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level("INFO", logger="vaebench.data.user"):
            ds = load_user_dataset(path)
    finally:
        logger.removeHandler(caplog.handler)
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), x / 255.0, rtol=1e-6)
    assert ds.info["scaled_from"]["x_train"] == "uint8 0..255 divided by 255"
    assert "divided by 255" in caplog.text
    assert ds.y_test.tolist() == [0, 1, 2, 3, 4] and ds.y_test.dtype == torch.int64


BAD_NPZ = {
    "missing x_test": (
        lambda r: {"x_train": r.random((3, 5, 5))},
        "missing array(s) x_test (found: x_train); required: x_train, x_test",
    ),
    "unexpected array": (
        lambda r: {"X_train": r.random((3, 5, 5)), "x_train": r.random((3, 5, 5)),
                   "x_test": r.random((3, 5, 5))},
        "unexpected array(s) X_train; valid: x_train, x_test, y_train, y_test",
    ),
    "out of range": (
        lambda r: {"x_train": r.random((3, 5, 5)) * 2, "x_test": r.random((3, 5, 5))},
        "x_train: float values must lie in [0, 1], found range",
    ),
    "looks like 0..255": (
        lambda r: {"x_train": np.full((3, 5, 5), 200.0), "x_test": r.random((3, 5, 5))},
        "found range [200, 200] (looks like 0..255 values: divide by 255 or store as uint8)",
    ),
    "slightly above 1": (
        lambda r: {"x_train": np.full((3, 5, 5), 1.5), "x_test": r.random((3, 5, 5))},
        "float values must lie in [0, 1], found range [1.5, 1.5]",
    ),
    "negative ints": (
        lambda r: {"x_train": np.full((3, 5, 5), -1), "x_test": r.random((3, 5, 5))},
        "integer values must lie in 0..255",
    ),
    "nan": (
        lambda r: {"x_train": np.full((3, 5, 5), np.nan), "x_test": r.random((3, 5, 5))},
        "x_train: contains NaN or infinite values",
    ),
    "shape mismatch": (
        lambda r: {"x_train": r.random((3, 5, 5)), "x_test": r.random((3, 6, 5))},
        "x_train images (1, 5, 5) and x_test images (1, 6, 5) differ in (C, H, W)",
    ),
    "ambiguous": (
        lambda r: {"x_train": r.random((3, 3, 4, 4)), "x_test": r.random((3, 3, 4, 4))},
        "x_train: ambiguous image layout (3, 3, 4, 4)",
    ),
    "2-d": (
        lambda r: {"x_train": r.random((3, 25)), "x_test": r.random((3, 25))},
        "images must be a 3-d (N, H, W) or 4-d",
    ),
    "label count": (
        lambda r: {"x_train": r.random((3, 5, 5)), "x_test": r.random((2, 5, 5)),
                   "y_train": np.arange(4), "y_test": np.arange(2)},
        "y_train: 4 labels for 3 images",
    ),
    "float labels": (
        lambda r: {"x_train": r.random((3, 5, 5)), "x_test": r.random((2, 5, 5)),
                   "y_train": np.zeros(3), "y_test": np.arange(2)},
        "y_train: labels must be integers, got dtype float64",
    ),
    "empty": (
        lambda r: {"x_train": np.zeros((0, 5, 5)), "x_test": r.random((2, 5, 5))},
        "x_train: holds no images",
    ),
    "complex": (
        lambda r: {"x_train": np.zeros((2, 5, 5), complex), "x_test": r.random((2, 5, 5))},
        "unsupported dtype complex128",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_bad_npz_errors_name_file_and_problem(tmp_path, rng, case):
    make, message = BAD_NPZ[case]
    path = save_npz(tmp_path / "bad.npz", **make(rng))
    with pytest.raises(DatasetError) as err:
        load_user_dataset(path)
    assert path in str(err.value)
    assert message in str(err.value)


def test_pickled_object_arrays_are_refused(tmp_path):
    path = tmp_path / "obj.npz"
    objs = np.empty(2, dtype=object)
    objs[:] = [np.zeros((5, 5)), np.ones((5, 5))]
    np.savez(path, x_train=objs, x_test=np.zeros((2, 5, 5)))
    with pytest.raises(DatasetError, match="cannot be read without unpickling") as err:
        load_user_dataset(str(path))
    assert "'x_train'" in str(err.value)


def test_not_an_npz_and_missing_path(tmp_path):
    bad = tmp_path / "junk.npz"
    bad.write_bytes(b"this is no zip archive")
    with pytest.raises(DatasetError, match=r"junk\.npz: not a readable \.npz file"):
        load_user_dataset(str(bad))
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_user_dataset(str(tmp_path / "nope.npz"))
    other = tmp_path / "data.csv"
    other.write_text("1,2")
    with pytest.raises(DatasetError, match="unsupported file type '.csv'"):
        load_user_dataset(str(other))


def test_user_dataset_defaults():
    from vaebench.data.user import user_dataset_defaults

    assert user_dataset_defaults() == {"test_fraction": 0.2, "split_seed": 0}


def test_to_nchw_rule():
    assert to_nchw(np.zeros((2, 3, 10, 10)), "x")[1] == "(N, C, H, W)"
    assert to_nchw(np.zeros((2, 10, 10, 4)), "x")[0].shape == (2, 4, 10, 10)
    with pytest.raises(DatasetError, match="ambiguous"):
        to_nchw(np.zeros((2, 10, 10, 10)), "x")


# ----------------------------------------------------------------------------- folders


def write_png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_flat_folder_is_split_deterministically(tmp_path, rng):
    for i in range(10):
        write_png(tmp_path / "imgs" / f"{i:02d}.png", rng.integers(0, 256, (6, 7), dtype=np.uint8))
    ds = load_user_dataset(str(tmp_path / "imgs"))
    assert ds.shape == (1, 6, 7) and ds.x_train.shape[0] == 8 and ds.x_test.shape[0] == 2
    assert ds.y_train is None
    again = load_user_dataset(str(tmp_path / "imgs"))
    assert torch.equal(again.x_test, ds.x_test)
    other = load_user_dataset(str(tmp_path / "imgs"), split_seed=1)
    assert not torch.equal(other.x_test, ds.x_test)
    # which files went to test: sorted names, permuted by split_seed, first round(0.2 * 10)
    from PIL import Image

    files = sorted((tmp_path / "imgs").iterdir())
    test_idx = sorted(np.random.default_rng(0).permutation(10)[:2])
    for k, i in enumerate(test_idx):
        want = np.asarray(Image.open(files[i])) / 255.0
        np.testing.assert_allclose(ds.x_test[k, 0].numpy(), want, rtol=1e-6)


def test_class_folders_with_train_test_split(tmp_path, rng):
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            for i in range(n):
                write_png(
                    tmp_path / "pets" / split / cls / f"{i}.png",
                    rng.integers(0, 256, (5, 5, 3), dtype=np.uint8),
                )
    ds = load_user_dataset(str(tmp_path / "pets"))
    assert ds.shape == (3, 5, 5)
    assert ds.x_train.shape[0] == 6 and ds.x_test.shape[0] == 4
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1] and ds.y_test.tolist() == [0, 0, 1, 1]
    assert ds.info["classes"] == ["cat", "dog"]
    assert ds.info["split"] == "train/ and test/ folders"


def test_gray_and_colour_mixed_become_rgb(tmp_path, rng):
    write_png(tmp_path / "m" / "a.png", np.full((4, 4), 255, np.uint8))
    write_png(tmp_path / "m" / "b.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    write_png(tmp_path / "m" / "c.png", rng.integers(0, 256, (4, 4, 4), dtype=np.uint8))  # RGBA
    ds = load_user_dataset(str(tmp_path / "m"), test_fraction=0.34)
    assert ds.shape == (3, 4, 4)
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 3


def test_bad_folders(tmp_path, rng):
    write_png(tmp_path / "sizes" / "a.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "sizes" / "b.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(DatasetError) as err:
        load_user_dataset(str(tmp_path / "sizes"))
    msg = str(err.value)
    assert "a.png" in msg and "b.png" in msg and "vaebench does not resize" in msg
    assert "image size 4x4 (WxH) differs from 4x5" in msg or "4x5 (WxH) differs from 4x4" in msg

    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="found 0 image"):
        load_user_dataset(str(tmp_path / "empty"))

    write_png(tmp_path / "mixed" / "a.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "mixed" / "cls" / "b.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match="some images are in class subfolders and some are not"):
        load_user_dataset(str(tmp_path / "mixed"))

    write_png(tmp_path / "broken" / "a.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "broken" / "b.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match=r"b\.png: cannot read image"):
        load_user_dataset(str(tmp_path / "broken"))

    with pytest.raises(DatasetError, match=r"test_fraction must lie in \(0, 1\), got 1.5"):
        load_user_dataset(str(tmp_path / "sizes"), test_fraction=1.5)


# ----------------------------------------------------------------------------- via the runner


def test_runner_loads_a_path_dataset(tmp_path, rng, registry):
    from vaebench.runner import load_dataset

    x = rng.random((20, 6, 6)).astype(np.float32)
    path = save_npz(tmp_path / "mine.npz", x_train=x, x_test=x[:5])
    ds = load_dataset(registry, path, {}, None, 4)
    assert ds.x_train.shape == (4, 1, 6, 6) and ds.x_test.shape == (4, 1, 6, 6)
    bad = save_npz(tmp_path / "bad.npz", x_train=x * 3, x_test=x)
    with pytest.raises(DatasetError, match="bad.npz: x_train: float values must lie in"):
        load_dataset(registry, bad, {}, None, None)
