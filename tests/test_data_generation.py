"""cifar10 and celeba (issue 22): read offline from small files written in the official layout
(binary CIFAR-10 records in a tar.gz or the extracted folder; aligned JPEGs in a folder or zip
with the official partition file); missing files are refused in one line naming the file and
where to get it; checksums are enforced."""

from __future__ import annotations

import io
import tarfile
import zipfile

import numpy as np
import pytest
import torch

from vaebench.data import generation as gen
from vaebench.dataset import DatasetError


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    # no system folder, no user cache, no $VAEBENCH_DATA: only what the test writes
    monkeypatch.setattr("vaebench.data.idx.SYSTEM_DATA_ROOTS", ())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("VAEBENCH_DATA", raising=False)


def _records(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    data = b"".join(bytes([labels[i]]) + pixels[i].tobytes() for i in range(n))
    return data, pixels, labels


def _cifar_files(n: int = 3) -> dict[str, tuple[bytes, np.ndarray, np.ndarray]]:
    names = gen.CIFAR10_TRAIN + gen.CIFAR10_TEST
    return {name: _records(n, i) for i, name in enumerate(names)}


def test_cifar_records_are_label_then_red_green_blue_planes():
    data, pixels, labels = _records(2, 0)
    images, got = gen.parse_cifar_records(data, "x")
    assert np.array_equal(got, labels) and np.array_equal(images, pixels)
    # byte 1 is the red value of the top-left pixel, byte 1 + 1024 its green value
    assert images[0, 0, 0, 0] == data[1] and images[0, 1, 0, 0] == data[1 + 1024]
    with pytest.raises(DatasetError, match="not a whole number of 3073-byte"):
        gen.parse_cifar_records(data[:-1], "x")
    bad = bytes([10]) + data[1:]
    with pytest.raises(DatasetError, match="label 10 out of range"):
        gen.parse_cifar_records(bad, "x")


def test_cifar10_from_the_archive_and_from_the_extracted_folder(tmp_path):
    files = _cifar_files()
    archive = tmp_path / "a" / gen.CIFAR10_ARCHIVE.filename
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for name, (data, _, _) in files.items():
            ti = tarfile.TarInfo(f"{gen.CIFAR10_FOLDER}/{name}")
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    with pytest.raises(DatasetError, match="checksum mismatch"):
        gen.load_cifar10(str(archive.parent), download=False)
    ds = gen.load_cifar10(str(archive.parent), download=False, verify=False)
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    want = np.concatenate([files[n][1] for n in gen.CIFAR10_TRAIN]) / 255.0
    assert torch.allclose(ds.x_train.double(), torch.from_numpy(want))
    assert ds.y_test.tolist() == files["test_batch.bin"][2].tolist()
    # the extracted folder gives the same tensors
    folder = tmp_path / "b" / gen.CIFAR10_FOLDER
    folder.mkdir(parents=True)
    for name, (data, _, _) in files.items():
        (folder / name).write_bytes(data)
    with pytest.raises(DatasetError, match="expected 30730000 \\(10000 records\\)"):
        gen.load_cifar10(str(folder.parent), download=False)
    again = gen.load_cifar10(str(folder.parent), download=False, verify=False)
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.y_train, ds.y_train)
    (folder / "test_batch.bin").unlink()
    with pytest.raises(DatasetError, match="test_batch.bin is missing"):
        gen.load_cifar10(str(folder.parent), download=False, verify=False)


def test_missing_files_are_refused_in_one_line_naming_the_file_and_its_source(tmp_path):
    for load, name, page in [
        (gen.load_cifar10, "cifar-10-binary.tar.gz", "cs.toronto.edu/~kriz/cifar.html"),
        (gen.load_celeba, "list_eval_partition.txt", "mmlab.ie.cuhk.edu.hk/projects/CelebA"),
    ]:
        with pytest.raises(DatasetError) as err:
            load(str(tmp_path), download=False)
        text = str(err.value)
        assert "\n" not in text and f"missing file {name}" in text and page in text


def _faces(n: int) -> dict[str, bytes]:
    from PIL import Image

    out = {}
    for i in range(n):
        a = np.zeros((218, 178, 3), dtype=np.uint8)
        a[:, :, 0] = 10 * i
        a[39:179, 19:159, 1] = 200  # the centre 140x140 square (rows 39..178, columns 19..158)
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=95)
        out[f"{i + 1:06d}.jpg"] = buf.getvalue()
    return out


def _partition_text(names, codes) -> str:
    return "".join(f"{n} {c}\n" for n, c in zip(names, codes, strict=True))


def test_celeba_from_the_folder_and_the_zip_with_the_official_split_and_crop(tmp_path):
    faces = _faces(5)
    names = sorted(faces)
    root = tmp_path / "celeba"
    (root / gen.CELEBA_FOLDER).mkdir(parents=True)
    for name, data in faces.items():
        (root / gen.CELEBA_FOLDER / name).write_bytes(data)
    (root / gen.CELEBA_PARTITION.filename).write_text(_partition_text(names, [0, 0, 1, 2, 0]))
    with pytest.raises(DatasetError, match="checksum mismatch"):
        gen.load_celeba(str(tmp_path), download=False)
    ds = gen.load_celeba(str(tmp_path), download=False, verify=False)
    assert ds.x_train.shape == (3, 3, 64, 64) and ds.x_test.shape == (1, 3, 64, 64)
    assert ds.y_train is None
    # the centre crop is the green square: green everywhere after cropping
    assert float(ds.x_train[:, 1].min()) > 0.5  # a crop off by 2 px leaves a dark edge
    assert float(ds.x_train[2, 0].mean()) == pytest.approx(40 / 255, abs=0.02)  # image 5
    assert "centre crop 140x140" in ds.info["preprocessing"]
    capped = gen.load_celeba(str(tmp_path), download=False, verify=False, max_images=2)
    assert capped.x_train.shape[0] == 2 and torch.equal(capped.x_train, ds.x_train[:2])
    # the official zip gives the same images
    zroot = tmp_path / "z" / "celeba"
    zroot.mkdir(parents=True)
    with zipfile.ZipFile(zroot / gen.CELEBA_ZIP.filename, "w") as zf:
        for name, data in faces.items():
            zf.writestr(f"{gen.CELEBA_FOLDER}/{name}", data)
    (zroot / gen.CELEBA_PARTITION.filename).write_text(_partition_text(names, [0, 0, 1, 2, 0]))
    z = gen.load_celeba(str(zroot.parent), download=False, verify=False)
    assert torch.equal(z.x_train, ds.x_train) and torch.equal(z.x_test, ds.x_test)
    (root / gen.CELEBA_FOLDER / names[3]).unlink()
    with pytest.raises(DatasetError, match=f"{names[3]} is missing"):
        gen.load_celeba(str(tmp_path), download=False, verify=False)


def test_the_datasets_are_registered_with_their_shapes():
    from vaebench.plugins import get_registry

    reg = get_registry()
    assert reg.dataset("cifar10").spec.shape == (3, 32, 32)
    assert reg.dataset("celeba").spec.sizes == (162770, 19962)
    assert set(reg.dataset("celeba").spec.defaults()) == {"download", "verify", "max_images"}
