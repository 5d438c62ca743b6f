"""User data: .npz files and image folders, good and bad."""

from __future__ import annotations

import logging
from pathlib import Path

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
        "found range [200, 200] (looks like 0..255 values: divide by 255, store as uint8 or set "
        "max_value=255)",
    ),
    "slightly above 1": (
        lambda r: {"x_train": np.full((3, 5, 5), 1.5), "x_test": r.random((3, 5, 5))},
        "float values must lie in [0, 1], found range [1.5, 1.5]",
    ),
    "negative ints": (
        lambda r: {"x_train": np.full((3, 5, 5), -1), "x_test": r.random((3, 5, 5))},
        "x_train: integer values must lie in 0..255 (read as 8-bit and divided by 255) or be 0/1, "
        "found range [-1, -1]; state another range with max_value",
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
    "one image": (
        lambda r: {"x_train": r.random((1, 5, 5)), "x_test": r.random((2, 5, 5))},
        "x_train holds 1 image(s); vaebench needs at least 2 per split",
    ),
    "one test image": (
        lambda r: {"x_train": r.random((3, 5, 5)), "x_test": r.random((1, 5, 5))},
        "x_test holds 1 image(s); vaebench needs at least 2 per split",
    ),
    "wide ints": (
        lambda r: {"x_train": np.full((3, 5, 5), 1000), "x_test": np.zeros((3, 5, 5), int)},
        "found range [1000, 1000]; state another range with max_value (e.g. max_value=65535",
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
    assert "obj.npz: x_train: holds Python objects (dtype object)" in str(err.value)


def test_not_an_npz_and_missing_path(tmp_path):
    bad = tmp_path / "junk.npz"
    bad.write_bytes(b"this is no zip archive")
    with pytest.raises(
        DatasetError,
        match=r"junk\.npz: not an \.npz \(zip\) file \(it starts "
        r"with the text 'this is '\); save the arrays with numpy\.savez",
    ):
        load_user_dataset(str(bad))
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_user_dataset(str(tmp_path / "nope.npz"))
    other = tmp_path / "data.csv"
    other.write_text("1,2")
    with pytest.raises(DatasetError, match="unsupported file type '.csv'"):
        load_user_dataset(str(other))


def test_user_dataset_defaults():
    from vaebench.data.user import user_dataset_defaults

    assert user_dataset_defaults() == {
        "test_fraction": 0.2, "split_seed": 0, "max_value": "auto", "max_gib": 8.0
    }  # fmt: skip


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
    write_png(tmp_path / "m" / "d.png", np.zeros((4, 4), np.uint8))
    ds = load_user_dataset(str(tmp_path / "m"), test_fraction=0.34)
    assert ds.shape == (3, 4, 4)
    assert ds.x_train.shape[0] == 2 and ds.x_test.shape[0] == 2


def test_bad_folders(tmp_path, rng):
    write_png(tmp_path / "sizes" / "a.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "sizes" / "b.png", np.zeros((5, 4), np.uint8))
    write_png(tmp_path / "sizes" / "c.png", np.zeros((5, 4), np.uint8))
    write_png(tmp_path / "sizes" / "d.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(DatasetError) as err:
        load_user_dataset(str(tmp_path / "sizes"))
    msg = str(err.value)
    assert "a.png" in msg and "b.png" in msg and "vaebench does not resize" in msg
    assert "image size 4x4 (WxH) differs from 4x5" in msg or "4x5 (WxH) differs from 4x4" in msg

    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="found 0 image"):
        load_user_dataset(str(tmp_path / "empty"))
    write_png(tmp_path / "three" / "a.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "three" / "b.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "three" / "c.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(
        DatasetError,
        match="found 3 image.s.; need at least 4 to make a train and "
        "a test split of 2 or more each",
    ):
        load_user_dataset(str(tmp_path / "three"))
    for split in ("train", "test"):
        for i in range(3 if split == "train" else 1):
            write_png(tmp_path / "split" / split / f"{i}.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(
        DatasetError,
        match=r"split/test: found 1 image.s.; vaebench needs at "
        r"least 2 per split",
    ):
        load_user_dataset(str(tmp_path / "split"))

    write_png(tmp_path / "mixed" / "a.png", np.zeros((4, 4), np.uint8))
    for name in ("b", "c", "d"):
        write_png(tmp_path / "mixed" / "cls" / f"{name}.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match="some images are in class subfolders and some are not"):
        load_user_dataset(str(tmp_path / "mixed"))

    for name in ("a", "c", "d"):
        write_png(tmp_path / "broken" / f"{name}.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "broken" / "b.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match=r"b\.png: cannot read image"):
        load_user_dataset(str(tmp_path / "broken"))

    with pytest.raises(DatasetError, match=r"test_fraction must lie in \(0, 1\), got 1.5"):
        load_user_dataset(str(tmp_path / "sizes"), test_fraction=1.5)


# ----------------------------------------------------------------------------- via the runner


def test_runner_loads_a_path_dataset(tmp_path, rng, registry):
    from vaebench.cells import load_dataset

    x = rng.random((20, 6, 6)).astype(np.float32)
    path = save_npz(tmp_path / "mine.npz", x_train=x, x_test=x[:5])
    ds = load_dataset(registry, path, {}, None, 4)
    assert ds.x_train.shape == (4, 1, 6, 6) and ds.x_test.shape == (4, 1, 6, 6)
    bad = save_npz(tmp_path / "bad.npz", x_train=x * 3, x_test=x)
    with pytest.raises(DatasetError, match="bad.npz: x_train: float values must lie in"):
        load_dataset(registry, bad, {}, None, None)


def test_check_command_checks_a_path_dataset_and_names_the_claiming_plugin(tmp_path, rng):
    # a dataset given by path goes through the registry's path hook everywhere --datasets
    # goes: `vaebench check --dataset mine.npz` once said "unknown dataset"
    from click.testing import CliRunner

    from vaebench.cli import cli
    from vaebench.plugins import get_registry

    x = rng.random((40, 6, 6)).astype(np.float32)
    path = save_npz(tmp_path / "mine.npz", x_train=x[:30], x_test=x[30:])
    claimed = get_registry().dataset_or_path(path)
    assert claimed.name == path and claimed.plugin == "vaebench.data.user"
    assert get_registry().dataset_or_path("digits").plugin == "vaebench.data.digits"
    result = CliRunner().invoke(cli, ["check", "--dataset", path])
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"dataset {path} (vaebench ") and "vaebench.data.user" in lines[0]
    assert [ln.split()[1] for ln in lines[1:]][:3] == [
        "check_dataset_loads", "check_dataset_shapes", "check_dataset_range",
    ]  # fmt: skip
    assert "FAIL check_dataset_loads" not in result.stdout, result.output
    # the Python kit takes the path as the command does
    from vaebench.testing import check_dataset

    kit = check_dataset(path, checks=["check_dataset_loads", "check_dataset_range"])
    assert [r.passed for r in kit] == [True, True]
    # a missing file is still claimed by its suffix: the loading check says what is wrong
    missing = CliRunner().invoke(cli, ["check", "--dataset", str(tmp_path / "nope.npz")])
    assert missing.exit_code == 1
    assert "FAIL check_dataset_loads" in missing.stdout and "no such file" in missing.stdout
    unknown = CliRunner().invoke(cli, ["check", "--dataset", "nope"])
    assert unknown.exit_code == 2 and "unknown dataset 'nope'; valid:" in unknown.stderr


def test_resume_refuses_a_relative_path_that_now_names_other_data(tmp_path, rng, monkeypatch):
    # resumed from another folder, ./good.npz was another file: the finished pca cell was
    # trained again on it, as a second variant beside the first
    import vaebench.api as api
    from vaebench.errors import ConfigError

    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir(), elsewhere.mkdir()
    x = rng.random((40, 6, 6)).astype(np.float32)
    save_npz(home / "good.npz", x_train=x[:30], x_test=x[30:])
    save_npz(elsewhere / "good.npz", x_train=x[10:], x_test=x[:10])
    out = tmp_path / "ud"
    monkeypatch.chdir(home)
    kw = {"workers": 1, "threads": 1, "epochs": 1, "metrics": "reconstruction"}
    first = api.run("pca,ae", "good.npz", "0", out, **kw)
    assert len(first.ran) == 2
    cells = sorted(p.name for p in (out / "cells").glob("*.json"))
    next((out / "cells").glob("ae--*.json")).unlink()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(ConfigError, match="dataset 'good.npz' is not the data its cells were"):
        api.resume(out)
    assert len(list((out / "cells").glob("*.json"))) == 1  # nothing trained
    monkeypatch.chdir(home)  # from where it was started: only the missing cell trains
    again = api.resume(out)
    assert len(again.ran) == 1 and len(again.skipped) == 1
    assert sorted(p.name for p in (out / "cells").glob("*.json")) == cells


# ----------------------------------------------------------------------------- value ranges


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.int8])
def test_binary_integer_images_are_read_as_0_1_not_divided_by_255(tmp_path, rng, dtype):
    """Binarised MNIST stored as 0/1 integers: divided by 255 they would be almost black, and
    PCA would score ~55 dB PSNR on them (issue 10.6)."""
    from vaebench.metrics.reconstruction import ReconstructionAccumulator
    from vaebench.models.pca import PCA

    blobs = rng.random((60, 8, 8)) < np.linspace(0.1, 0.9, 8)[None, None, :]
    x = blobs.astype(dtype)
    ds = load_user_dataset(save_npz(tmp_path / "bin.npz", x_train=x[:40], x_test=x[40:]))
    assert ds.x_train.max() == 1.0 and set(ds.x_train.unique().tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(ds.x_test[:, 0].numpy(), blobs[40:].astype(np.float32))
    assert "read as binary images" in ds.info["scaled_from"]["x_train"]
    pca = PCA(ds.shape, latent_dim=4)
    pca.fit(ds.x_train)
    acc = ReconstructionAccumulator()
    acc.update(ds.x_test, pca.decode(pca.encode(ds.x_test)))
    assert acc.compute()["psnr"] < 15  # 0/1 pixels are hard to reconstruct; /255 gave ~55 dB


def test_binary_rule_looks_at_both_splits(tmp_path, rng):
    train = rng.integers(0, 256, (4, 5, 5), dtype=np.uint8)
    test = rng.integers(0, 2, (4, 5, 5), dtype=np.uint8)
    ds = load_user_dataset(save_npz(tmp_path / "mix.npz", x_train=train, x_test=test))
    np.testing.assert_allclose(ds.x_test[:, 0].numpy(), test / 255.0, rtol=1e-6)  # same scale


def test_max_value_states_the_range(tmp_path, rng):
    x = rng.integers(0, 2, (4, 5, 5), dtype=np.uint8)
    path = save_npz(tmp_path / "b.npz", x_train=x, x_test=x)
    ds = load_user_dataset(path, max_value=255)
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), x / 255.0, rtol=1e-6)
    assert ds.info["scaled_from"]["x_train"] == "uint8 0..255 divided by 255 (max_value)"
    wide = rng.integers(0, 65536, (4, 5, 5)).astype(np.uint16)
    ds = load_user_dataset(save_npz(tmp_path / "w.npz", x_train=wide, x_test=wide),
                           max_value="65535")  # fmt: skip
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), wide / 65535.0, rtol=1e-6)
    with pytest.raises(
        DatasetError,
        match=r"x_train: values must lie in 0..100 \(max_value\), "
        r"found range \[350, 65353\]",
    ):
        load_user_dataset(str(tmp_path / "w.npz"), max_value=100)
    for bad in (0, -1, "white", float("nan"), True):
        with pytest.raises(DatasetError, match="max_value must be 'auto' or a positive number"):
            load_user_dataset(path, max_value=bad)
    (tmp_path / "imgs").mkdir()
    with pytest.raises(DatasetError, match="max_value applies to .npz files"):
        load_user_dataset(str(tmp_path / "imgs"), max_value=255)


# ----------------------------------------------------------------------------- files that are not what they say


def _zip(path, members: dict[str, bytes]):
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return str(path)


def _npy(array) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_each_wrong_file_gets_one_line_naming_its_problem(tmp_path, rng):
    import pickle

    good = _npy(rng.random((3, 5, 5)))
    cases = {}
    (tmp_path / "empty.npz").write_bytes(b"")
    cases["empty.npz"] = "empty.npz: is empty (0 bytes), not an .npz (zip) file"
    np.save(tmp_path / "single.npy", rng.random((3, 5, 5)))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    cases["single.npz"] = "single.npz: is a single .npy array, not an .npz archive"
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps({"x_train": [1, 2]}))
    cases["pickle.npz"] = "pickle.npz: not an .npz (zip) file (it starts with b'\\x80"
    _zip(tmp_path / "member.npz", {"x_train.npy": pickle.dumps([1, 2, 3]), "x_test.npy": good})
    cases["member.npz"] = "member.npz: x_train: not a .npy array (it starts with b'\\x80"
    _zip(tmp_path / "pkl.npz", {"x_train.pkl": b"x", "x_test.npy": good})
    cases["pkl.npz"] = "pkl.npz: member 'x_train.pkl' is not a .npy array"
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 5, 5), }"
    header = header + b" " * (20000 - len(header) - 1) + b"\n"
    big = b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header + b"\0" * 600
    _zip(tmp_path / "header.npz", {"x_train.npy": big, "x_test.npy": good})
    cases["header.npz"] = ("header.npz: x_train: the .npy header is longer than 10000 bytes "
                           "(numpy's safety limit for headers)")  # fmt: skip
    _zip(tmp_path / "short.npz", {"x_train.npy": good[:-50], "x_test.npy": good})
    cases["short.npz"] = "short.npz: x_train: truncated: the .npy header declares shape (3, 5, 5)"
    (tmp_path / "cut.npz").write_bytes(Path(_zip(tmp_path / "c.npz", {"x_test.npy": good}))
                                       .read_bytes()[:40])  # fmt: skip
    cases["cut.npz"] = "cut.npz: not a readable .npz (zip) file"
    for name, message in cases.items():
        with pytest.raises(DatasetError) as err:
            load_user_dataset(str(tmp_path / name))
        assert message in str(err.value), (name, str(err.value))
        assert "\n" not in str(err.value) and "allow_pickle" not in str(err.value)


def test_special_files_are_refused_at_once(tmp_path):
    """A FIFO named x.npz would block open() forever; /dev/zero would be read without end. Run
    in a child process with a timeout so that a regression fails instead of hanging."""
    import os
    import socket
    import subprocess
    import sys

    os.mkfifo(tmp_path / "fifo.npz")
    os.symlink("/dev/zero", tmp_path / "zero.npz")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.npz"))
    folder = tmp_path / "imgs"
    for i in range(4):
        write_png(folder / f"{i}.png", np.full((4, 4), 40 * i, np.uint8))
    os.mkfifo(folder / "blocked.png")  # skipped: not a regular file
    code = (
        "import sys\n"
        "from vaebench.data.user import load_user_dataset\n"
        "from vaebench.dataset import DatasetError\n"
        "for name in sys.argv[1:4]:\n"
        "    try:\n"
        "        load_user_dataset(name)\n"
        "    except DatasetError as exc:\n"
        "        print(exc)\n"
        "print(load_user_dataset(sys.argv[4]).x_train.shape[0])\n"
    )
    args = [str(tmp_path / n) for n in ("fifo.npz", "zero.npz", "sock.npz")] + [str(folder)]
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              text=True, timeout=120)  # fmt: skip
    finally:
        sock.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("fifo.npz' is a FIFO (named pipe), not a regular file; give a .npz "
                             "file or a folder of images")  # fmt: skip
    assert "zero.npz' is a character device, not a regular file" in lines[1]
    assert "sock.npz' is a socket, not a regular file" in lines[2]
    assert lines[3] == "2"  # 4 images, the FIFO skipped


def test_zip_bombs_are_refused_from_declared_sizes_before_reading(tmp_path, monkeypatch):
    import zipfile

    # 30 MB of zeros compress to ~30 kB: the zip declares the 30 MB; refused unread
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x_train=np.zeros((3000, 100, 100), np.uint8),
                        x_test=np.zeros((2, 100, 100), np.uint8))  # fmt: skip
    assert path.stat().st_size < 200_000

    def never(*a, **kw):
        raise AssertionError("data was decompressed")

    monkeypatch.setattr(zipfile.ZipExtFile, "read", never)
    with pytest.raises(DatasetError) as err:
        load_user_dataset(str(path), max_gib=0.01)
    msg = str(err.value)
    assert "bomb.npz: its arrays declare 28.6 MiB uncompressed" in msg
    assert "more than 10.2 MiB: refused before reading" in msg and "max_gib=N" in msg
    monkeypatch.undo()
    # a .npy header that declares 20 GB in a tiny member: refused from the header alone
    header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (20000000000,), }"
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 100
    lie = _zip(tmp_path / "lie.npz", {"x_train.npy": npy, "x_test.npy": _npy(np.zeros((2, 5, 5)))})
    with pytest.raises(
        DatasetError,
        match=r"lie.npz: the arrays \(x_train \(20000000000,\) uint8, "
        r"x_test \(2, 5, 5\) float64\) need 74.5 GiB of memory "
        r"as float32 images, more than 8 GiB",
    ):
        load_user_dataset(lie)
    for bad in (0, -1, "lots", float("inf")):
        with pytest.raises(DatasetError, match="max_gib must be a positive number of GiB"):
            load_user_dataset(str(path), max_gib=bad)
