"""IDX reading, searching, verifying and downloading, on small generated files.

A fake release (``tiny``: 6 train / 3 test images of 5x4 px) is written in a temporary folder for
each test, raw or gzipped; corrupt variants are derived from it byte by byte.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from vaebench.data import idx
from vaebench.data.idx import IdxFile, IdxSource, load_idx_dataset, parse_idx, read_idx
from vaebench.dataset import DatasetError

H, W = 5, 4
STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(idx.IDX_DTYPES[type_code]).tobytes()


def release_content(n_train: int = 6, n_test: int = 3) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        "train_images": idx_bytes(rng.integers(0, 256, (n_train, H, W), dtype=np.uint8)),
        "train_labels": idx_bytes(np.arange(n_train, dtype=np.uint8) % 3),
        "test_images": idx_bytes(rng.integers(0, 256, (n_test, H, W), dtype=np.uint8)),
        "test_labels": idx_bytes(np.array([2, 0, 1], dtype=np.uint8)[:n_test]),
    }


def make_source(content: dict[str, bytes], mirrors: tuple[str, ...] = ()) -> IdxSource:
    def md5(b: bytes) -> str:
        return hashlib.md5(b).hexdigest()

    files = {
        k: IdxFile(STEMS[k], md5=md5(b), gz_md5=md5(gzip.compress(b, mtime=0)))
        for k, b in content.items()
    }
    return IdxSource(
        name="tiny",
        files=files,
        image_shape=(H, W),
        n_train=6,
        n_test=3,
        classes=("a", "b", "c"),
        subdirs=("tiny",),
        mirrors=mirrors,
        citation="test data",
    )


def write_release(folder: Path, content: dict[str, bytes], gz: bool) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for k, b in content.items():
        p = folder / (STEMS[k] + (".gz" if gz else ""))
        p.write_bytes(gzip.compress(b, mtime=0) if gz else b)
        paths[k] = p
    return paths


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $VAEBENCH_DATA, no system folders, the user cache inside tmp_path."""
    monkeypatch.delenv("VAEBENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(idx, "SYSTEM_DATA_ROOTS", (str(tmp_path / "system"),))
    return tmp_path


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_loads_raw_and_gzipped_release(isolated, gz):
    content = release_content()
    write_release(isolated / "d", content, gz)
    ds = load_idx_dataset(make_source(content), isolated / "d")
    assert ds.x_train.shape == (6, 1, H, W) and ds.x_test.shape == (3, 1, H, W)
    assert ds.x_train.dtype == torch.float32
    raw = np.frombuffer(content["train_images"], np.uint8, offset=16).reshape(6, H, W)
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), raw / 255.0, rtol=0, atol=1e-7)
    assert ds.y_train.tolist() == [0, 1, 2, 0, 1, 2] and ds.y_test.tolist() == [2, 0, 1]
    assert ds.info["verified"] is True
    assert (
        ds.info["files"]["t10k-labels-idx1-ubyte"]["md5"]
        == hashlib.md5(content["test_labels"]).hexdigest()
    )


def test_read_idx_other_element_types(tmp_path):
    arr = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(arr, 0x0C))
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), arr)
    f = np.linspace(0, 1, 6).reshape(2, 3)
    (tmp_path / "b.gz").write_bytes(gzip.compress(idx_bytes(f, 0x0E)))
    np.testing.assert_array_equal(read_idx(tmp_path / "b.gz"), f)


# ----------------------------------------------------------------------------- corrupt files

GOOD = idx_bytes(np.zeros((2, 3, 3), np.uint8))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x08\x03" + GOOD[2:], "not an IDX file: magic number 08030803 does not start with 0000"),
        (GOOD[:2] + b"\x07" + GOOD[3:], "unknown IDX element type 0x07"),
        (GOOD[:3] + b"\x00" + GOOD[4:], "declares 0 dimensions"),
        (GOOD[:10], "the header alone needs 16"),
        (GOOD[:2], "not even a header"),
        (GOOD[:-5], "truncated IDX file: header says 2x3x3 uint8 values (34 bytes with header)"),
        (GOOD + b"\x00\x00", "2 unexpected trailing bytes"),
    ],
    ids=["magic", "type", "ndim0", "short-header", "tiny", "truncated-body", "trailing"],
)
def test_corrupt_idx_errors_name_the_file(tmp_path, data, message):
    p = tmp_path / "bad-idx3-ubyte"
    p.write_bytes(data)
    with pytest.raises(DatasetError) as err:
        read_idx(p)
    assert str(p) in str(err.value)
    assert message in str(err.value)


def test_truncated_and_corrupt_gzip(tmp_path):
    packed = gzip.compress(GOOD * 50)
    p = tmp_path / "cut.gz"
    p.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated gzip file") as err:
        read_idx(p)
    assert str(p) in str(err.value)
    q = tmp_path / "flipped.gz"
    broken = bytearray(packed)
    broken[-6] ^= 0xFF  # damage the CRC / length trailer
    q.write_bytes(bytes(broken))
    with pytest.raises(DatasetError, match=r"flipped\.gz: corrupt or truncated gzip"):
        read_idx(q)
    r = tmp_path / "plain.gz"
    r.write_bytes(GOOD)
    with pytest.raises(DatasetError, match="named .gz but is not gzip-compressed"):
        read_idx(r)


def test_parse_idx_direct():
    assert parse_idx(GOOD).shape == (2, 3, 3)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_truncated_file_in_release_is_an_error(isolated, gz):
    content = release_content()
    paths = write_release(isolated / "d", content, gz=False)
    cut = content["test_images"][:-7]
    paths["test_images"].write_bytes(gzip.compress(cut) if gz else cut)
    if gz:
        paths["test_images"].rename(str(paths["test_images"]) + ".gz")
    with pytest.raises(DatasetError, match="truncated IDX file") as err:
        load_idx_dataset(make_source(content), isolated / "d")
    assert "t10k-images-idx3-ubyte" in str(err.value)


def test_count_mismatch_between_images_and_labels(isolated):
    content = release_content()
    content["train_labels"] = idx_bytes(np.zeros(5, np.uint8))
    write_release(isolated / "d", content, gz=True)
    with pytest.raises(DatasetError) as err:
        load_idx_dataset(make_source(content), isolated / "d")
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz holds 6 images" in msg
    assert "train-labels-idx1-ubyte.gz holds 5 labels" in msg


def test_wrong_image_shape_and_label_range(isolated):
    content = release_content()
    content["test_images"] = idx_bytes(np.zeros((3, H, W + 1), np.uint8))
    write_release(isolated / "d", content, gz=False)
    with pytest.raises(DatasetError, match=r"expected unsigned-byte images of shape \(N, 5, 4\)"):
        load_idx_dataset(make_source(content), isolated / "d")

    content = release_content()
    content["test_labels"] = idx_bytes(np.array([0, 7, 1], np.uint8))
    write_release(isolated / "e", content, gz=False)
    with pytest.raises(DatasetError, match=r"label 7 out of range; valid: 0...2") as err:
        load_idx_dataset(make_source(content), isolated / "e")
    assert "t10k-labels-idx1-ubyte" in str(err.value)


def test_checksum_mismatch_and_verify_false(isolated):
    content = release_content()
    source = make_source(content)
    altered = dict(content)
    altered["train_images"] = content["train_images"][:-1] + b"\x01"  # same size, other pixel
    write_release(isolated / "d", altered, gz=True)
    with pytest.raises(DatasetError) as err:
        load_idx_dataset(source, isolated / "d")
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz: checksum mismatch" in msg
    assert source.files["train_images"].md5 in msg and "verify=false" in msg
    ds = load_idx_dataset(source, isolated / "d", verify=False)
    assert ds.info["verified"] is False
    assert ds.x_train[-1, 0, -1, -1].item() == pytest.approx(1 / 255)


def test_checksum_identifies_a_file_of_another_dataset(isolated, monkeypatch):
    content = release_content()
    source = make_source(content)
    other = dataclasses.replace(idx.MNIST, files={**idx.MNIST.files})
    monkeypatch.setattr(idx, "KNOWN_SOURCES", (other,))
    wrong = release_content()
    wrong["test_labels"] = idx_bytes(np.array([1, 1, 1], np.uint8))
    write_release(isolated / "d", wrong, gz=False)
    fake = IdxFile(STEMS["test_labels"], hashlib.md5(wrong["test_labels"]).hexdigest(), "x")
    other.files["test_labels"] = fake
    with pytest.raises(DatasetError, match="it is the official mnist t10k-labels-idx1-ubyte"):
        load_idx_dataset(source, isolated / "d")


# ----------------------------------------------------------------------------- search order


def test_search_order(isolated, monkeypatch):
    content = release_content()
    source = make_source(content)
    roots = {r: isolated / r for r in ("cli", "env", "system", "cache/vaebench")}
    for r, root in roots.items():
        # each root holds the files in the dataset's subfolder; labels differ so we can tell
        c = dict(content)
        c["test_labels"] = (
            idx_bytes(np.array([0, 1, 2], np.uint8)) if r == "cli" else c["test_labels"]
        )
        write_release(root / "tiny", c, gz=False)
    monkeypatch.setenv("VAEBENCH_DATA", str(roots["env"]))
    dirs = idx.candidate_dirs(source, roots["cli"])
    assert dirs[:2] == [roots["cli"] / "tiny", roots["cli"]]
    assert dirs.index(roots["env"] / "tiny") < dirs.index(roots["system"] / "tiny")
    assert dirs.index(roots["system"] / "tiny") < dirs.index(roots["cache/vaebench"] / "tiny")
    assert dirs[-1] == roots["cache/vaebench"]

    ds = load_idx_dataset(source, roots["cli"], verify=False)
    assert ds.info["folder"] == str(roots["cli"] / "tiny")
    assert load_idx_dataset(source, None).info["folder"] == str(roots["env"] / "tiny")
    monkeypatch.delenv("VAEBENCH_DATA")
    assert load_idx_dataset(source, None).info["folder"] == str(roots["system"] / "tiny")
    for k in STEMS.values():
        (roots["system"] / "tiny" / k).unlink()
    assert load_idx_dataset(source, None).info["folder"] == str(roots["cache/vaebench"] / "tiny")


def test_files_directly_in_data_dir(isolated):
    content = release_content()
    write_release(isolated / "flat", content, gz=True)
    ds = load_idx_dataset(make_source(content), isolated / "flat")
    assert ds.info["folder"] == str(isolated / "flat")


def test_missing_files_without_download_says_where_to_put_them(isolated):
    content = release_content()
    partial = write_release(isolated / "d", content, gz=False)
    partial["test_labels"].unlink()
    with pytest.raises(DatasetError) as err:
        load_idx_dataset(make_source(content), isolated / "d", download=False)
    msg = str(err.value)
    assert "files not found and downloading is off" in msg
    for stem in STEMS.values():
        assert f"{stem}[.gz]" in msg
    assert str(isolated / "d") in msg and str(isolated / "cache" / "vaebench" / "tiny") in msg
    assert f"{isolated / 'd'} lacks t10k-labels-idx1-ubyte" in msg
    assert "--data-dir" in msg


# ----------------------------------------------------------------------------- downloading


def serve(tmp_path: Path, content: dict[str, bytes]) -> str:
    """A file:// mirror holding the gzipped release."""
    write_release(tmp_path / "mirror", content, gz=True)
    return (tmp_path / "mirror").as_uri() + "/"


def test_download_into_cache_with_checksum(isolated):
    content = release_content()
    source = make_source(content, mirrors=(serve(isolated, content),))
    ds = load_idx_dataset(source, None)
    cache = isolated / "cache" / "vaebench" / "tiny"
    assert ds.info["folder"] == str(cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted(s + ".gz" for s in STEMS.values())
    assert ds.x_train.shape == (6, 1, H, W)
    # second load finds the cached files (the mirror is gone)
    source2 = dataclasses.replace(source, mirrors=())
    assert load_idx_dataset(source2, None).info["folder"] == str(cache)


def test_download_falls_back_to_next_mirror(isolated):
    content = release_content()
    dead = (isolated / "nowhere").as_uri() + "/"
    source = make_source(content, mirrors=(dead, serve(isolated, content)))
    assert load_idx_dataset(source, None).x_test.shape == (3, 1, H, W)


def test_download_checksum_mismatch_saves_nothing(isolated):
    content = release_content()
    tampered = dict(content)
    tampered["test_images"] = content["test_images"][:-1] + b"\x00"
    source = make_source(content, mirrors=(serve(isolated, tampered),))
    with pytest.raises(DatasetError) as err:
        load_idx_dataset(source, None)
    msg = str(err.value)
    assert "checksum mismatch for file://" in msg and "t10k-images-idx3-ubyte.gz" in msg
    assert "nothing was saved" in msg and "Put the four files" in msg
    cache = isolated / "cache" / "vaebench" / "tiny"
    left = sorted(p.name for p in cache.iterdir())
    assert "t10k-images-idx3-ubyte.gz" not in left
    assert not [n for n in left if n.endswith(".part")], left


def test_download_accepts_recompressed_archive(isolated):
    content = release_content()
    source = make_source(content)
    f = source.files["train_images"]
    other = gzip.compress(content["train_images"], compresslevel=1, mtime=12345)
    assert hashlib.md5(other).hexdigest() != f.gz_md5
    (isolated / "re.gz").write_bytes(other)
    dest = isolated / "out" / "x.gz"
    idx.download_file((isolated / "re.gz").as_uri(), dest, f)
    assert dest.read_bytes() == other


def test_download_via_monkeypatched_opener(isolated, monkeypatch):
    """The http path: urlopen replaced by a local byte server (no network in tests)."""
    import io
    import urllib.request

    content = release_content()
    blobs = {STEMS[k] + ".gz": gzip.compress(b, mtime=0) for k, b in content.items()}
    requested = []

    class Response(io.BytesIO):
        def __init__(self, data: bytes) -> None:
            super().__init__(data)
            self.headers = {"Content-Length": str(len(data))}

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        return Response(blobs[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    source = make_source(content, mirrors=("https://example.invalid/tiny/",))
    ds = load_idx_dataset(source, None)
    assert ds.y_test.tolist() == [2, 0, 1]
    assert requested == [f"https://example.invalid/tiny/{s}.gz" for s in STEMS.values()]


def test_offline_message(isolated, monkeypatch):
    import urllib.error
    import urllib.request

    def no_network(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DatasetError) as err:
        load_idx_dataset(idx.FASHION_MNIST, isolated / "empty")
    msg = str(err.value)
    assert "dataset 'fashion-mnist': files not found and downloading failed" in msg
    assert "Temporary failure in name resolution" in msg
    assert "train-images-idx3-ubyte[.gz]" in msg and str(isolated / "empty") in msg
    assert "apt install dataset-fashion-mnist" in msg


# ----------------------------------------------------------------------------- registry


def test_registered_specs(registry):
    for name in ("fashion-mnist", "mnist"):
        spec = registry.dataset(name).spec
        assert spec.shape == (1, 28, 28) and spec.sizes == (60000, 10000)
        assert spec.defaults() == {
            "download": True,
            "verify": True,
            "binarize": "none",
            "binarize_seed": 0,
        }
        assert spec.citation


def test_official_checksums_are_well_formed():
    for source in (idx.FASHION_MNIST, idx.MNIST):
        hashes = [h for f in source.files.values() for h in (f.md5, f.gz_md5)]
        assert len(set(hashes)) == 8
        assert all(len(h) == 32 and int(h, 16) >= 0 for h in hashes)


def test_download_of_a_broken_archive_names_the_url(isolated):
    content = release_content()
    source = make_source(content)
    packed = gzip.compress(content["train_images"])
    (isolated / "cut.gz").write_bytes(packed[: len(packed) // 2])
    url = (isolated / "cut.gz").as_uri()
    dest = isolated / "out" / "x.gz"
    with pytest.raises(DatasetError, match="is no valid archive") as err:
        idx.download_file(url, dest, source.files["train_images"])
    assert url in str(err.value) and "nothing was saved" in str(err.value)
    assert list((isolated / "out").iterdir()) == []


def test_idx_loaders_pickle_as_themselves():
    """The registered loaders pickle by name, as functions do: a spec sent to a worker process
    (spawn, Dask) comes back equal, and the conformance kit names the loader."""
    import pickle

    from vaebench.data import idx
    from vaebench.testing.mechanism import _subject_name

    for loader in (idx.load_mnist, idx.load_fashion_mnist):
        assert pickle.loads(pickle.dumps(loader)) is loader
    spec = next(s for s in idx.vaebench_datasets() if s.name == "mnist")
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert _subject_name(idx.load_mnist) == "load_mnist"
