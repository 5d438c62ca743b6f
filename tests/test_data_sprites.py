"""sprites (embedded), dsprites and shapes3d (official files, here small files in exactly the
official layout: same keys, dtypes, image size and grid order, fewer values per factor), and
the multi-factor declaration of ``info["factors"]``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaebench.data import sprites as sp
from vaebench.dataset import Dataset, DatasetError, check_factor_info


@pytest.fixture(scope="module")
def small():
    return sp.load_sprites(scale_step=3, orientation_step=20, position_step=8)


def test_sprites_grid_factors_and_classes(small):
    # 3 shapes x 2 scales x 2 orientations x 4 x 4 positions
    n = small.x_train.shape[0] + small.x_test.shape[0]
    assert n == 3 * 2 * 2 * 4 * 4 and small.shape == (1, 32, 32)
    assert small.factor_names == ("shape", "scale", "orientation", "x", "y")
    decl = small.info["factors"]
    assert decl["scale"]["values"] == [0.5, 0.8] and decl["orientation"]["periodic"]
    assert all(d["discrete"] for d in decl.values())
    classes = torch.cat([small.factor_classes("train"), small.factor_classes("test")])
    assert classes.max(0).values.tolist() == [2, 1, 1, 3, 3]
    assert len({tuple(r) for r in classes.tolist()}) == n  # every grid point once
    assert torch.equal(small.y_train, small.factor_classes("train")[:, 0])
    # render reproduces the stored images
    assert torch.equal(small.render(small.factors_test), small.x_test)
    assert float(small.x_train.min()) >= 0.0 and float(small.x_train.max()) == 1.0


def test_sprites_factors_move_the_sprite():
    f = np.array([[1, 1.0, 0.0, 0.0, 0.5], [1, 1.0, 0.0, 1.0, 0.5], [1, 0.5, 0.0, 0.0, 0.5],
                  [1, 1.0, np.pi / 2, 0.0, 0.5]])  # fmt: skip
    im = sp.draw_sprites(f, 32)
    cols = lambda a: (a.sum(0) > 0).nonzero()[0]  # noqa: E731
    assert cols(im[1]).mean() > cols(im[0]).mean() + 15  # x moves right
    assert im[2].sum() < 0.4 * im[0].sum()  # half the scale: a quarter of the area
    assert (im[3].sum(1) > 0).sum() > (im[0].sum(1) > 0).sum()  # rotated ellipse: taller
    assert sp.draw_sprites(f, 64).shape == (4, 64, 64)
    with pytest.raises(DatasetError, match="shape must be"):
        sp.draw_sprites(np.array([[3, 1.0, 0, 0, 0]]))


def test_sprites_options_are_checked():
    with pytest.raises(DatasetError, match="size must be 32 or 64"):
        sp.load_sprites(size=48)
    with pytest.raises(DatasetError, match="position_step must be an integer >= 1"):
        sp.load_sprites(position_step=0)


def test_factor_declaration_values_and_discrete():
    names = ("a",)
    check_factor_info({"a": {"low": 0, "high": 2, "values": [0, 1, 2], "discrete": True}},
                      names, "t")  # fmt: skip
    with pytest.raises(DatasetError, match="needs 'values'"):
        check_factor_info({"a": {"low": 0, "high": 1, "discrete": True}}, names, "t")
    with pytest.raises(DatasetError, match="strictly increasing"):
        check_factor_info({"a": {"low": 0, "high": 2, "values": [1, 0]}}, names, "t")
    with pytest.raises(DatasetError, match=r"lie in \[low, high\]"):
        check_factor_info({"a": {"low": 0, "high": 1, "values": [0, 2]}}, names, "t")
    # continuous factors are binned into 20 equal-width bins of [low, high]
    x = torch.rand(5, 1, 2, 2)
    ds = Dataset("c", x, x, factors_train=torch.tensor([0.0, 0.049, 0.05, 0.99, 1.0]),
                 factors_test=torch.zeros(5), factor_names=names,
                 info={"factors": {"a": {"low": 0.0, "high": 1.0}}})  # fmt: skip
    assert ds.factor_classes("train")[:, 0].tolist() == [0, 0, 1, 19, 19]


def test_moons_and_lines_keep_their_declaration():
    from vaebench.data.lines import load_lines

    ds = load_lines(n_train=20, n_test=10)
    assert ds.factor_classes("test").shape == (10, 1)


# ----------------------------------------------------------------------------- dsprites


def write_dsprites(path, sizes=(1, 3, 2, 4, 4, 4)):
    """A dSprites-layout .npz: imgs (N, 64, 64) uint8 0/1, latents_values and latents_classes
    (N, 6) on the full grid with posY fastest, the pickled metadata dict (compressed)."""
    mesh = np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij")
    classes = np.stack([m.reshape(-1) for m in mesh], 1).astype(np.int64)
    values = classes.astype(np.float64)
    values[:, 1] += 1  # shapes 1, 2, 3
    values[:, 2] = np.linspace(0.5, 1, sizes[2])[classes[:, 2]]
    values[:, 3] = np.linspace(0, 2 * np.pi, sizes[3], endpoint=False)[classes[:, 3]]
    values[:, 4] = np.linspace(0, 1, sizes[4])[classes[:, 4]]
    values[:, 5] = np.linspace(0, 1, sizes[5])[classes[:, 5]]
    imgs = np.zeros((len(classes), 64, 64), dtype=np.uint8)
    for i, c in enumerate(classes):  # a mark encoding the row, to check the selection
        imgs[i, c[4] * 8, c[5] * 8] = 1
        imgs[i, 63, c[1] + 3 * c[2] + 6 * c[3]] = 1
    meta = np.array({"latents_sizes": np.array(sizes)}, dtype=object)
    np.savez_compressed(path, imgs=imgs, latents_values=values, latents_classes=classes,
                        metadata=meta)  # fmt: skip
    return classes, imgs


def test_dsprites_official_layout(tmp_path):
    path = tmp_path / sp.DSPRITES.filename
    classes, imgs = write_dsprites(path)
    with pytest.raises(DatasetError, match="MD5"):
        sp.load_dsprites(data_dir=str(tmp_path))
    ds = sp.load_dsprites(data_dir=str(tmp_path), verify=False, scale_step=1,
                          orientation_step=2, position_step=2)  # fmt: skip
    n = ds.x_train.shape[0] + ds.x_test.shape[0]
    assert n == 3 * 2 * 2 * 2 * 2 and ds.shape == (1, 64, 64)
    assert ds.factor_names == sp.SPRITE_NAMES
    x = torch.cat([ds.x_train, ds.x_test])[:, 0]
    f = torch.cat([ds.factors_train, ds.factors_test])
    c = torch.cat([ds.factor_classes("train"), ds.factor_classes("test")])
    # every image is the file's image of its factors
    for img, fc in zip(x, f, strict=False):
        shape = int(fc[0])
        cls = classes[(classes[:, 1] == shape)
                      & np.isclose(np.linspace(0.5, 1, 2)[classes[:, 2]], float(fc[1]))
                      & np.isclose(np.linspace(0, 2 * np.pi, 4, endpoint=False)[classes[:, 3]],
                                   float(fc[2]))
                      & np.isclose(np.linspace(0, 1, 4)[classes[:, 4]], float(fc[3]))
                      & np.isclose(np.linspace(0, 1, 4)[classes[:, 5]], float(fc[4]))]  # fmt: skip
        assert len(cls) == 1
        assert np.array_equal(img.numpy(), imgs[np.flatnonzero((classes == cls[0]).all(1))[0]])
    assert c.max(0).values.tolist() == [2, 1, 1, 1, 1]
    small = sp.load_dsprites(data_dir=str(tmp_path), verify=False, size=32, scale_step=1,
                             orientation_step=2, position_step=2)  # fmt: skip
    assert small.shape == (1, 32, 32) and float(small.x_train.max()) == 0.25


def test_dsprites_missing_and_broken_files(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("VAEBENCH_DATA", raising=False)
    with pytest.raises(DatasetError, match="not found .*download=true"):
        sp.load_dsprites(data_dir=str(tmp_path))
    (tmp_path / sp.DSPRITES.filename).write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not the official .npz layout"):
        sp.load_dsprites(data_dir=str(tmp_path), verify=False)


def test_download_checks_md5(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello")
    good = "5d41402abc4b2a76b9719d911017c592"
    out = sp.download_checked(src.as_uri(), tmp_path / "d" / "f.bin", good)
    assert out.read_bytes() == b"hello"
    with pytest.raises(DatasetError, match="checksum mismatch"):
        sp.download_checked(src.as_uri(), tmp_path / "d" / "g.bin", "0" * 32)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["f.bin"]  # nothing left


def test_download_option_fetches_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("VAEBENCH_DATA", raising=False)
    src = tmp_path / "mirror" / sp.DSPRITES.filename
    src.parent.mkdir()
    write_dsprites(src)
    md5 = sp._md5(src)
    spec = sp.OfficialFile("dsprites", sp.DSPRITES.filename, md5, 0, (src.as_uri(),))
    monkeypatch.setattr(sp, "DSPRITES", spec)
    ds = sp.load_dsprites(download=True)
    assert (tmp_path / "cache" / "vaebench" / "dsprites" / spec.filename).is_file()
    assert ds.info["md5_checked"] and ds.x_train.shape[0] > 0


# ----------------------------------------------------------------------------- shapes3d


def test_shapes3d_official_layout(tmp_path):
    h5py = pytest.importorskip("h5py")
    sizes = (2, 2, 2, 2, 4, 3)  # floor, wall, object hue, scale, shape, orientation
    mesh = np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij")
    classes = np.stack([m.reshape(-1) for m in mesh], 1)
    labels = np.column_stack([
        classes[:, 0] / 10, classes[:, 1] / 10, classes[:, 2] / 10,
        np.linspace(0.75, 1.25, 2)[classes[:, 3]], classes[:, 4].astype(float),
        np.linspace(-30, 30, 3)[classes[:, 5]],
    ])  # fmt: skip
    images = np.zeros((len(classes), 64, 64, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(len(classes)) % 256
    with h5py.File(tmp_path / "3dshapes.h5", "w") as fh:
        fh.create_dataset("images", data=images)
        fh.create_dataset("labels", data=labels)
    ds = sp.load_shapes3d(data_dir=str(tmp_path), verify=False, hue_step=2, scale_step=1,
                          orientation_step=1)  # fmt: skip
    n = ds.x_train.shape[0] + ds.x_test.shape[0]
    assert n == 1 * 1 * 1 * 2 * 4 * 3 and ds.shape == (3, 64, 64)
    x = torch.cat([ds.x_train, ds.x_test])
    f = torch.cat([ds.factors_train, ds.factors_test]).numpy()
    for img, fc in zip(x, f, strict=False):
        row = np.flatnonzero(np.isclose(labels, fc).all(1))[0]
        assert float(img[0, 0, 0]) == pytest.approx(row / 255)
    assert ds.factor_classes("train")[:, 4].max() == 3
    assert torch.equal(ds.y_train, ds.factor_classes("train")[:, 4])


def test_sprites_pass_the_dataset_conformance_checks():
    from vaebench.plugins import get_registry
    from vaebench.testing import check_dataset

    spec = get_registry().datasets["sprites"].spec
    results = check_dataset(spec, options={"scale_step": 3, "orientation_step": 10,
                                           "position_step": 8})  # fmt: skip
    assert all(r.passed for r in results)
