"""The generation papers' datasets from the files a user has: ``cifar10`` and ``celeba``.

``cifar10`` (Krizhevsky 2009): the official *binary* release ``cifar-10-binary.tar.gz`` (MD5
``c32a1d4ab5d03f1284b67883e8d87530``) -- fixed-length records of one label byte and 3072 pixel
bytes (1024 red, 1024 green, 1024 blue, rows top to bottom), so nothing is unpickled. Read
straight from the archive (its MD5 checked unless ``verify=false``) or from the extracted
folder ``cifar-10-batches-bin/`` (``data_batch_1.bin`` ... ``data_batch_5.bin``,
``test_batch.bin``; checked by size: 10000 records each). 50000 train / 10000 test images
``(3, 32, 32)`` in [0, 1], labels 0-9.

``celeba`` (Liu et al. 2015): the official aligned-and-cropped JPEG images -- the folder
``img_align_celeba/`` or the archive ``img_align_celeba.zip`` (MD5
``00d2c5bc6d35e252742224ab0c1e8fcb``, read without extracting) -- and the official split file
``list_eval_partition.txt`` (MD5 ``d32c9cbf5e040fd4025c592c306e6668``): partition 0 trains
(162770 images), partition 2 tests (19962); the validation partition 1 is not used. Each
178x218 image is centre-cropped to 140x140 and resized to 64x64 (PIL bilinear with
antialiasing) -- the preprocessing of the WAE paper (Tolstikhin et al. 2018), stated because
papers differ. No labels (the sample metrics' feature network needs labels, so they do not
apply). ``max_images`` caps each split (the first images in file order): all of them take about
8.9 GB as float32.

Files are looked for as Fashion-MNIST's are (:func:`vaebench.data.idx.candidate_dirs`: the
``--data-dir``, ``$VAEBENCH_DATA``, ``/usr/share/datasets``, the user cache, each with the
dataset's subfolders first) and downloaded into the user cache when missing (``download``),
checked against the MD5 before they are kept. A missing file is refused with one line naming it
and where to get it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaebench.data.idx import IdxFile, cache_dir, candidate_dirs, download_file
from vaebench.dataset import Dataset, DatasetError, DatasetSpec
from vaebench.hookspecs import hookimpl

__all__ = [
    "CIFAR10_ARCHIVE",
    "CELEBA_ZIP",
    "CELEBA_PARTITION",
    "parse_cifar_records",
    "load_cifar10",
    "load_celeba",
    "celeba_crop",
]

log = logging.getLogger("vaebench.data.generation")


@dataclasses.dataclass(frozen=True)
class _Source:
    """Where a dataset's files are searched (``subdirs`` of every root) and fetched."""

    name: str
    subdirs: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Remote:
    """One official file: name, MD5 of its bytes, download URL, the page that hosts it."""

    filename: str
    md5: str
    url: str
    page: str


CIFAR10 = _Source("cifar10", ("cifar10", "cifar-10", "CIFAR10"))
CIFAR10_ARCHIVE = Remote(
    "cifar-10-binary.tar.gz",
    "c32a1d4ab5d03f1284b67883e8d87530",
    "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar.html",
)
CIFAR10_FOLDER = "cifar-10-batches-bin"
CIFAR10_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = ("test_batch.bin",)
CIFAR10_RECORD = 1 + 3 * 32 * 32
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")  # fmt: skip
CIFAR10_CITATION = (
    "A. Krizhevsky. Learning Multiple Layers of Features from Tiny Images. Technical report, "
    "University of Toronto, 2009."
)

CELEBA = _Source("celeba", ("celeba", "CelebA"))
_GDRIVE = "https://drive.usercontent.google.com/download?export=download&confirm=t&id="
_CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CELEBA_ZIP = Remote(
    "img_align_celeba.zip",
    "00d2c5bc6d35e252742224ab0c1e8fcb",
    _GDRIVE + "0B7EVK8r0v71pZjFTYXZWM3FlRnM",
    _CELEBA_PAGE,
)
CELEBA_PARTITION = Remote(
    "list_eval_partition.txt",
    "d32c9cbf5e040fd4025c592c306e6668",
    _GDRIVE + "0B7EVK8r0v71pY0NSMzRuSXJEVkk",
    _CELEBA_PAGE,
)
CELEBA_FOLDER = "img_align_celeba"
CELEBA_SIZES = (162770, 19962)
#: Side of the centre crop of the 178x218 aligned images, then resized to :data:`CELEBA_SIZE`.
CELEBA_CROP = 140
CELEBA_SIZE = 64
CELEBA_CITATION = (
    "Z. Liu, P. Luo, X. Wang, X. Tang. Deep Learning Face Attributes in the Wild. ICCV 2015. "
    "For non-commercial research purposes only (see the CelebA page)."
)


# ----------------------------------------------------------------------------- files


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _find(source: _Source, data_dir: Any, name: str) -> Path | None:
    for folder in candidate_dirs(source, data_dir):  # type: ignore[arg-type]
        p = folder / name
        if p.exists():
            return p
    return None


def _fetch(source: _Source, remote: Remote, download: bool, data_dir: Any) -> Path:
    """``remote``'s file from the search folders, else downloaded into the user cache (MD5
    checked); else :class:`DatasetError` in one line naming the file and where to get it."""
    found = _find(source, data_dir, remote.filename)
    if found is not None:
        return found
    dest = cache_dir() / source.name / remote.filename
    why = "downloading is off (download=false)"
    if download:
        try:
            log.info("downloading %s to %s", remote.url, dest)
            spec = IdxFile(remote.filename, md5=remote.md5, gz_md5=remote.md5)
            return download_file(remote.url, dest, spec, timeout=120.0)
        except Exception as exc:  # noqa: BLE001 - network and checksum errors alike
            why = f"downloading failed ({' '.join(str(getattr(exc, 'reason', exc)).split())})"
    raise DatasetError(
        f"dataset {source.name!r}: missing file {remote.filename} and {why}; get it from "
        f"{remote.page} (MD5 {remote.md5}) and put it into {dest.parent} or a folder given "
        "with --data-dir"
    )


def _check_md5(path: Path, remote: Remote, verify: bool) -> str | None:
    if not verify:
        return None
    got = _md5(path)
    if got != remote.md5:
        raise DatasetError(
            f"{path}: checksum mismatch: MD5 {got}, expected {remote.md5} (official "
            f"{remote.filename}); replace it, or set verify=false to load it anyway"
        )
    return got


# ----------------------------------------------------------------------------- CIFAR-10


def parse_cifar_records(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 3, 32, 32) uint8, labels (N,) uint8)`` of CIFAR-10 binary records (one
    label byte, then 1024 red, 1024 green, 1024 blue pixel bytes, rows top to bottom). Raises
    :class:`DatasetError` naming ``where`` for a length that is not whole records or a label
    outside 0-9."""
    if not data or len(data) % CIFAR10_RECORD:
        raise DatasetError(
            f"{where}: {len(data)} bytes is not a whole number of {CIFAR10_RECORD}-byte CIFAR-10 "
            "records (truncated or another file)"
        )
    rec = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR10_RECORD)
    labels = rec[:, 0]
    if labels.max() > 9:
        raise DatasetError(f"{where}: label {int(labels.max())} out of range; valid: 0...9")
    return rec[:, 1:].reshape(-1, 3, 32, 32), labels


def load_cifar10(
    data_dir: str | None = None, download: bool = True, verify: bool = True
) -> Dataset:
    """CIFAR-10 from the official binary release (see the module docstring): 50000 train /
    10000 test images ``(3, 32, 32)`` in [0, 1], labels 0-9."""
    t0 = time.perf_counter()
    folder = _find(CIFAR10, data_dir, CIFAR10_FOLDER)
    blobs: dict[str, bytes] = {}
    info: dict[str, Any] = {"classes": list(CIFAR10_CLASSES), "verified": bool(verify)}
    if folder is not None and folder.is_dir():
        for name in CIFAR10_TRAIN + CIFAR10_TEST:
            p = folder / name
            if not p.is_file():
                raise DatasetError(
                    f"dataset 'cifar10': {p} is missing; the folder {CIFAR10_FOLDER}/ of "
                    f"{CIFAR10_ARCHIVE.filename} ({CIFAR10_ARCHIVE.page}) holds "
                    f"{', '.join(CIFAR10_TRAIN + CIFAR10_TEST)}"
                )
            blobs[name] = p.read_bytes()
            if verify and len(blobs[name]) != 10000 * CIFAR10_RECORD:
                raise DatasetError(
                    f"{p}: {len(blobs[name])} bytes, expected {10000 * CIFAR10_RECORD} (10000 "
                    "records); replace it, or set verify=false to load it anyway"
                )
        info.update(source=str(folder), check="sizes of the extracted files (10000 records)")
    else:
        archive = _fetch(CIFAR10, CIFAR10_ARCHIVE, download, data_dir)
        info.update(source=str(archive), md5=_check_md5(archive, CIFAR10_ARCHIVE, verify))
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for name in CIFAR10_TRAIN + CIFAR10_TEST:
                    member = tar.getmember(f"{CIFAR10_FOLDER}/{name}")
                    fh = tar.extractfile(member) if member.isfile() else None
                    if fh is None:
                        raise KeyError(name)
                    blobs[name] = fh.read()
        except KeyError as exc:
            raise DatasetError(
                f"{archive}: no member {CIFAR10_FOLDER}/{exc.args[0]}; not the official "
                f"{CIFAR10_ARCHIVE.filename} ({CIFAR10_ARCHIVE.page})"
            ) from None
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DatasetError(f"{archive}: corrupt archive ({exc})") from None
    out: dict[str, torch.Tensor] = {}
    for split, names in (("train", CIFAR10_TRAIN), ("test", CIFAR10_TEST)):
        parts = [parse_cifar_records(blobs[n], n) for n in names]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        out[f"x_{split}"] = torch.from_numpy(images.copy()).float().div_(255.0)
        out[f"y_{split}"] = torch.from_numpy(labels.astype(np.int64))
    log.info("loaded cifar10 in %.2f s", time.perf_counter() - t0)
    return Dataset(name="cifar10", x_train=out["x_train"], x_test=out["x_test"],
                   y_train=out["y_train"], y_test=out["y_test"], citation=CIFAR10_CITATION,
                   info=info)  # fmt: skip


# ----------------------------------------------------------------------------- CelebA


def celeba_crop(image: Any) -> np.ndarray:
    """A PIL image (178x218 aligned CelebA) as ``(3, 64, 64)`` uint8: the centre
    :data:`CELEBA_CROP` x :data:`CELEBA_CROP` square, resized to :data:`CELEBA_SIZE` (bilinear,
    antialiased)."""
    from PIL import Image

    image = image.convert("RGB")
    w, h = image.size
    c = min(CELEBA_CROP, w, h)
    left, top = (w - c) // 2, (h - c) // 2
    image = image.crop((left, top, left + c, top + c))
    image = image.resize((CELEBA_SIZE, CELEBA_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def _partition(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DatasetError(
                f"{path}: line {i} is {line!r}, expected 'FILE.jpg 0|1|2' (the official split)"
            )
        out[parts[0]] = int(parts[1])
    return out


def load_celeba(
    data_dir: str | None = None,
    download: bool = True,
    verify: bool = True,
    max_images: int = 0,
) -> Dataset:
    """CelebA, aligned, centre-cropped to 64x64 (see the module docstring): images ``(3, 64,
    64)`` in [0, 1], partition 0 for training and 2 for testing, at most ``max_images`` per
    split (0: all). No labels."""
    from PIL import Image

    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 0:
        raise DatasetError(
            f"celeba: max_images must be an integer >= 0 (0: all), got {max_images!r}"
        )
    t0 = time.perf_counter()
    part_path = _fetch(CELEBA, CELEBA_PARTITION, download, data_dir)
    info: dict[str, Any] = {
        "partition_file": str(part_path),
        "partition_md5": _check_md5(part_path, CELEBA_PARTITION, verify),
        "preprocessing": f"centre crop {CELEBA_CROP}x{CELEBA_CROP}, resized to "
        f"{CELEBA_SIZE}x{CELEBA_SIZE} (bilinear, antialiased), as Tolstikhin et al. 2018",
        "splits": "official partition 0 (train) and 2 (test); 1 (validation) unused",
        "verified": bool(verify),
    }
    split_of = _partition(part_path)
    folder = _find(CELEBA, data_dir, CELEBA_FOLDER)
    if folder is not None and folder.is_dir():
        info["source"] = str(folder)

        def read(name: str) -> bytes:
            p = folder / name
            if not p.is_file():
                raise DatasetError(
                    f"dataset 'celeba': {p} is missing (listed in {CELEBA_PARTITION.filename}); "
                    f"the folder comes from {CELEBA_ZIP.filename} ({CELEBA_ZIP.page})"
                )
            return p.read_bytes()

        zf = None
    else:
        archive = _fetch(CELEBA, CELEBA_ZIP, download, data_dir)
        info.update(source=str(archive), md5=_check_md5(archive, CELEBA_ZIP, verify))
        try:
            zf = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"{archive}: corrupt archive ({exc})") from None

        def read(name: str) -> bytes:
            try:
                return zf.read(f"{CELEBA_FOLDER}/{name}")
            except KeyError:
                raise DatasetError(
                    f"{archive}: no member {CELEBA_FOLDER}/{name} (listed in "
                    f"{CELEBA_PARTITION.filename}); not the official {CELEBA_ZIP.filename}"
                ) from None

    try:
        out: dict[str, torch.Tensor] = {}
        for split, code in (("train", 0), ("test", 2)):
            names = sorted(n for n, s in split_of.items() if s == code)
            if max_images:
                names = names[:max_images]
            if not names:
                raise DatasetError(f"{part_path}: no image in partition {code} ({split})")
            images = np.empty((len(names), 3, CELEBA_SIZE, CELEBA_SIZE), dtype=np.uint8)
            for i, name in enumerate(names):
                try:
                    with Image.open(io.BytesIO(read(name))) as im:
                        images[i] = celeba_crop(im)
                except (OSError, ValueError) as exc:
                    raise DatasetError(f"celeba: {name}: not a readable image ({exc})") from None
            out[f"x_{split}"] = torch.from_numpy(images).float().div_(255.0)
    finally:
        if zf is not None:
            zf.close()
    log.info("loaded celeba in %.2f s", time.perf_counter() - t0)
    return Dataset(name="celeba", x_train=out["x_train"], x_test=out["x_test"],
                   citation=CELEBA_CITATION, info=info)  # fmt: skip


OPTION_DOCS = {
    "download": "fetch missing files into the user cache",
    "verify": "check the MD5 checksums (CIFAR-10's extracted folder: the file sizes)",
    "max_images": "at most this many images per split (0: all; all take about 8.9 GB)",
}


@hookimpl
def vaebench_datasets():
    return [
        DatasetSpec(
            "cifar10",
            load_cifar10,
            "CIFAR-10 from the official binary release (raw bytes), 10 classes, [0, 1]",
            shape=(3, 32, 32),
            sizes=(50000, 10000),
            citation=CIFAR10_CITATION,
            option_docs=OPTION_DOCS,
        ),
        DatasetSpec(
            "celeba",
            load_celeba,
            "CelebA aligned faces, centre crop 140 resized to 64x64, no labels, [0, 1]",
            shape=(3, CELEBA_SIZE, CELEBA_SIZE),
            sizes=CELEBA_SIZES,
            citation=CELEBA_CITATION,
            option_docs=OPTION_DOCS,
        ),
    ]
