"""``mnist`` and ``fashion-mnist`` from the standard IDX files (gzipped or not).

Where the four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally ``.gz``) are looked for,
in this order (the first folder that holds all four wins):

1. ``data_dir`` (the CLI's ``--data-dir``),
2. every folder in ``$VAEBENCH_DATA`` (``os.pathsep``-separated),
3. the system folder ``/usr/share/datasets`` (Debian/Ubuntu package ``dataset-fashion-mnist``
   installs ``/usr/share/datasets/fashion-mnist``; Debian has no MNIST package, but
   ``/usr/share/datasets/mnist`` is looked at all the same),
4. the user cache ``$XDG_CACHE_HOME/vaebench`` (default ``~/.cache/vaebench``).

In each of these roots the dataset's own subfolder (``fashion-mnist/``, ``FashionMNIST/raw/``
-- torchvision's layout --, ...) is tried before the root itself. If no folder holds the files
they are downloaded into the user cache (urllib, a tqdm progress bar, a temporary file renamed
into place only after its MD5 matched); without internet the error says where to put them.

Every file is checked: magic number, element type, dimensions, exact length (a truncated file
or trailing bytes are errors), image/label counts, label range, and -- unless
``verify=False`` -- the MD5 of the *uncompressed* content against the official release (so
re-compressed copies such as Debian's still verify). Every problem raises
:class:`~vaebench.dataset.DatasetError` naming the file.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import logging
import os
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch

from vaebench.data.digits import BINARIZE_DOCS, apply_binarization
from vaebench.dataset import Dataset, DatasetError, DatasetSpec
from vaebench.fileio import atomic_writer
from vaebench.hookspecs import hookimpl

__all__ = [
    "IdxFile",
    "IdxSource",
    "FASHION_MNIST",
    "MNIST",
    "SYSTEM_DATA_ROOTS",
    "cache_dir",
    "candidate_dirs",
    "find_files",
    "read_idx",
    "parse_idx",
    "download_file",
    "load_idx_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "IdxLoader",
]

log = logging.getLogger("vaebench.data.idx")

#: Roots of system-wide dataset folders (Debian's ``dataset-*`` packages install here).
SYSTEM_DATA_ROOTS: tuple[str, ...] = ("/usr/share/datasets",)

#: IDX type byte -> numpy dtype (multi-byte types are big-endian).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"
_SPLIT_FILES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclasses.dataclass(frozen=True)
class IdxFile:
    """One file of an IDX release.

    ``md5`` is the checksum of the uncompressed content, ``gz_md5`` that of the published
    ``.gz`` archive (used to check downloads; a download whose archive differs is still accepted
    if its uncompressed content matches ``md5``).
    """

    stem: str
    md5: str
    gz_md5: str


@dataclasses.dataclass(frozen=True)
class IdxSource:
    """An MNIST-style release: four IDX files, where to find and fetch them, what they hold.

    ``files`` maps ``train_images``, ``train_labels``, ``test_images``, ``test_labels`` to
    :class:`IdxFile`; ``image_shape`` is ``(H, W)``; ``subdirs`` are folder names tried inside
    each search root before the root itself; ``mirrors`` are base URLs (``file://`` works).
    """

    name: str
    files: dict[str, IdxFile]
    image_shape: tuple[int, int]
    n_train: int
    n_test: int
    classes: tuple[str, ...]
    subdirs: tuple[str, ...]
    mirrors: tuple[str, ...]
    citation: str
    install_hint: str = ""

    def __post_init__(self) -> None:
        missing = sorted(set(_SPLIT_FILES) - set(self.files))
        if missing:
            raise ValueError(f"IdxSource {self.name!r}: files lacks {', '.join(missing)}")


#: File names of the MNIST layout, which Fashion-MNIST shares.
_MNIST_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _mnist_layout(**md5s: tuple[str, str]) -> dict[str, IdxFile]:
    """``IdxSource.files`` of a release with the MNIST file names: ``key=(md5, gz_md5)`` per
    file (see :class:`IdxFile`)."""
    return {key: IdxFile(_MNIST_STEMS[key], md5=md5, gz_md5=gz) for key, (md5, gz) in md5s.items()}


class _Sizes(TypedDict):
    image_shape: tuple[int, int]
    n_train: int
    n_test: int


#: Image shape and split sizes of MNIST, which Fashion-MNIST shares.
_MNIST_SIZES: _Sizes = {"image_shape": (28, 28), "n_train": 60000, "n_test": 10000}


FASHION_MNIST = IdxSource(
    name="fashion-mnist",
    files=_mnist_layout(
        train_images=("f4a8712d7a061bf5bd6d2ca38dc4d50a", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        train_labels=("9018921c3c673c538a1fc5bad174d6f9", "25c81989df183df01b3e8a0aad5dffbe"),
        test_images=("8181f5470baa50b63fa0f6fddb340f0a", "bef4ecab320f06d8554ea6380940ec79"),
        test_labels=("15d484375f8d13e6eb1aabb0c3f46965", "bb300cfdad3c16e7a12a480ee83cd310"),
    ),
    **_MNIST_SIZES,
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),  # fmt: skip
    subdirs=("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST"),
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    citation=(
        "H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST: a Novel Image Dataset for Benchmarking "
        "Machine Learning Algorithms. arXiv:1708.07747, 2017. Licence: MIT (Zalando SE)."
    ),
    install_hint="on Debian/Ubuntu: sudo apt install dataset-fashion-mnist",
)

MNIST = IdxSource(
    name="mnist",
    files=_mnist_layout(
        train_images=("6bbc9ace898e44ae57da46a324031adb", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        train_labels=("a25bea736e30d166cdddb491f175f624", "d53e105ee54ea40749a09fcbcd1e9432"),
        test_images=("2646ac647ad5339dbf082846283269ea", "9fb629c4189551a2d022fa330f9573f3"),
        test_labels=("27ae3e4e09519cfbb04c329615203637", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
    **_MNIST_SIZES,
    classes=tuple(str(i) for i in range(10)),
    subdirs=("mnist", "MNIST/raw", "MNIST"),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    citation=(
        "Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning applied to document "
        "recognition. Proc. IEEE 86(11):2278-2324, 1998; data: Y. LeCun, C. Cortes, C. J. C. "
        "Burges, The MNIST database of handwritten digits. Licence: none stated by the original "
        "site; commonly redistributed under CC BY-SA 3.0."
    ),
)

KNOWN_SOURCES: tuple[IdxSource, ...] = (FASHION_MNIST, MNIST)


# ----------------------------------------------------------------------------- reading


def _read_bytes(path: Path) -> bytes:
    """The uncompressed content of ``path`` (gzip recognised by its magic bytes, not its name)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    return _decompress(data, path)


def _decompress(data: bytes, path: Path) -> bytes:
    """``data`` uncompressed when it is gzip (by its magic bytes); ``path`` names it in errors."""
    if data[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise DatasetError(
                f"{path}: corrupt or truncated gzip file ({exc}); delete it and fetch it again"
            ) from None
    if path.suffix == ".gz":
        raise DatasetError(
            f"{path}: named .gz but is not gzip-compressed (starts with {data[:4].hex()!r})"
        )
    return data


def parse_idx(data: bytes, path: str | os.PathLike = "<bytes>") -> np.ndarray:
    """Parse uncompressed IDX bytes into an array of shape ``dims`` (big-endian types as stored).

    Raises :class:`DatasetError` naming ``path`` for a wrong magic number, an unknown element
    type, a truncated body or trailing bytes.
    """
    if len(data) < 4:
        raise DatasetError(f"{path}: truncated IDX file: {len(data)} bytes, not even a header")
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(
            f"{path}: not an IDX file: magic number {data[:4].hex()} does not start with 0000 "
            "(expected e.g. 00000803 for images, 00000801 for labels)"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        valid = ", ".join(f"0x{k:02x}" for k in IDX_DTYPES)
        raise DatasetError(
            f"{path}: unknown IDX element type 0x{type_code:02x} in magic number "
            f"{data[:4].hex()}; valid: {valid}"
        )
    if ndim == 0:
        raise DatasetError(f"{path}: IDX magic number {data[:4].hex()} declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(
            f"{path}: truncated IDX file: {len(data)} bytes, the header alone needs {header}"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[type_code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) < expected:
        raise DatasetError(
            f"{path}: truncated IDX file: header says {'x'.join(map(str, dims))} "
            f"{dtype.name} values ({expected} bytes with header) but the file has {len(data)} "
            "bytes"
        )
    if len(data) > expected:
        raise DatasetError(
            f"{path}: {len(data) - expected} unexpected trailing bytes after the "
            f"{'x'.join(map(str, dims))} values the header declares"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (raw or gzip-compressed); see :func:`parse_idx`."""
    p = Path(path)
    return parse_idx(_read_bytes(p), p)


def _identify(md5: str) -> str | None:
    for src in KNOWN_SOURCES:
        for f in src.files.values():
            if md5 in (f.md5, f.gz_md5):
                return f"{src.name} {f.stem}"
    return None


def _read_checked(path: Path, spec: IdxFile, verify: bool) -> tuple[np.ndarray, str]:
    data = _read_bytes(path)
    arr = parse_idx(data, path)
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if verify and md5 != spec.md5:
        known = _identify(md5)
        hint = f" -- it is the official {known} file" if known else ""
        raise DatasetError(
            f"{path}: checksum mismatch: MD5 of the uncompressed content is {md5}, expected "
            f"{spec.md5} (official {spec.stem}){hint}. The file is corrupt or belongs to another "
            "dataset: replace it, or set verify=false (--set NAME.verify=false) to load it anyway"
        )
    return arr, md5


# ----------------------------------------------------------------------------- finding


def cache_dir() -> Path:
    """The user cache root: ``$XDG_CACHE_HOME/vaebench``, default ``~/.cache/vaebench``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vaebench"


def candidate_dirs(source: IdxSource, data_dir: str | os.PathLike | None) -> list[Path]:
    """Folders searched for ``source``'s files, in order (see the module docstring)."""
    roots: list[Path] = []
    if data_dir:
        roots.append(Path(data_dir).expanduser())
    for p in os.environ.get("VAEBENCH_DATA", "").split(os.pathsep):
        if p.strip():
            roots.append(Path(p.strip()).expanduser())
    roots.extend(Path(p) for p in SYSTEM_DATA_ROOTS)
    roots.append(cache_dir())
    out: list[Path] = []
    for root in roots:
        for d in [*(root / s for s in source.subdirs), root]:
            if d not in out:
                out.append(d)
    return out


def _find_in(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        p = folder / name
        if p.is_file():
            return p
    return None


def find_files(
    source: IdxSource, data_dir: str | os.PathLike | None = None
) -> tuple[dict[str, Path] | None, list[Path], list[str]]:
    """Locate the four files: ``(paths or None, folders searched, notes on partial folders)``."""
    searched = candidate_dirs(source, data_dir)
    partial: list[str] = []
    for folder in searched:
        found = {k: _find_in(folder, f.stem) for k, f in source.files.items()}
        have = {k: p for k, p in found.items() if p is not None}
        if len(have) == len(found):
            return have, searched, partial
        if have:
            lacking = [source.files[k].stem for k, p in found.items() if p is None]
            partial.append(f"{folder} lacks {', '.join(lacking)}")
    return None, searched, partial


# ----------------------------------------------------------------------------- downloading


def download_file(url: str, dest: Path, spec: IdxFile, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` (a ``.gz`` path), verifying its checksum; atomic.

    The bytes go to a temporary file beside ``dest`` with a tqdm progress bar and are renamed
    into place only if their MD5 equals ``spec.gz_md5`` -- or, for an archive compressed
    differently, if the MD5 of its uncompressed content equals ``spec.md5``. On any failure the
    temporary file is removed and :class:`DatasetError` (checksum) or :class:`OSError` /
    :class:`urllib.error.URLError` (network) is raised.
    """
    from tqdm.auto import tqdm

    # the bytes go through vaebench.fileio's one atomic writer (inside the download folder's
    # parent, through no linked folder); a checksum mismatch raised in the block removes them
    chunks: list[bytes] = []
    with atomic_writer(dest, dest.parent.parent) as out:
        digest = hashlib.md5(usedforsecurity=False)
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, leave=False, disable=None
            ) as bar:
                while chunk := resp.read(1 << 16):
                    out.write(chunk)
                    chunks.append(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        got = digest.hexdigest()
        if got != spec.gz_md5:
            try:
                content = _decompress(b"".join(chunks), dest)
            except DatasetError as exc:
                raise DatasetError(
                    f"checksum mismatch for {url}: MD5 {got}, expected {spec.gz_md5}, and the "
                    f"file is no valid archive ({str(exc).split(': ', 1)[-1]}); nothing was saved"
                ) from None
            content_md5 = hashlib.md5(content, usedforsecurity=False).hexdigest()
            if content_md5 != spec.md5:
                raise DatasetError(
                    f"checksum mismatch for {url}: MD5 {got}, expected {spec.gz_md5} (archive) "
                    f"or uncompressed content {spec.md5}, got {content_md5}; nothing was saved"
                )
    return dest


def _download(source: IdxSource, folder: Path) -> tuple[dict[str, Path] | None, list[str]]:
    """Fetch every file of ``source`` into ``folder``; ``(paths, errors)``."""
    paths: dict[str, Path] = {}
    errors: list[str] = []
    for key, spec in source.files.items():
        existing = _find_in(folder, spec.stem)
        if existing is not None:
            paths[key] = existing
            continue
        dest = folder / (spec.stem + ".gz")
        for mirror in source.mirrors:
            url = mirror.rstrip("/") + "/" + spec.stem + ".gz"
            try:
                log.info("downloading %s to %s", url, dest)
                t0 = time.perf_counter()
                download_file(url, dest, spec)
                log.info("downloaded %s in %.1f s", dest.name, time.perf_counter() - t0)
                paths[key] = dest
                break
            except DatasetError as exc:
                errors.append(str(exc))
            except (OSError, urllib.error.URLError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                errors.append(f"{url}: {reason}")
        else:
            return None, errors
    return paths, errors


# ----------------------------------------------------------------------------- loading


def _fetch_or_raise(
    source: IdxSource, searched: list[Path], partial: list[str], download: bool
) -> dict[str, Path]:
    """Download ``source`` into the user cache (when ``download``) and return its files'
    paths; else raise :class:`DatasetError` (one paragraph: what was searched, where to put
    the files)."""
    target = cache_dir() / source.name
    paths, errors = _download(source, target) if download else (None, [])
    if paths is None:
        names = ", ".join(f"{f.stem}[.gz]" for f in source.files.values())
        why = (
            "downloading failed (" + "; ".join(errors) + ")"
            if download
            else "downloading is off (download=false)"
        )
        # one paragraph: the CLI prints errors on one line
        msg = (
            f"dataset {source.name!r}: files not found and {why}. Put the four files "
            f"{names} into {target} (the user cache), or into a folder given with --data-dir "
            f"or listed in $VAEBENCH_DATA (directly or in a {source.subdirs[0]}/ subfolder)."
            f" Folders searched, in order: {', '.join(str(p) for p in searched)}."
        )
        if partial:
            msg += " Incomplete folders: " + "; ".join(partial) + "."
        if source.install_hint:
            msg += f" Or {source.install_hint}."
        raise DatasetError(msg)
    return paths


def load_idx_dataset(
    source: IdxSource,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    verify: bool = True,
) -> Dataset:
    """Load an MNIST-style IDX release as a :class:`Dataset`.

    Images become float32 ``(N, 1, H, W)`` in ``[0, 1]`` (byte values / 255); labels int64 in
    ``[0, len(classes))``. ``info`` records the folder, each file's path and uncompressed MD5.
    """
    t0 = time.perf_counter()
    paths, searched, partial = find_files(source, data_dir)
    if paths is None:
        paths = _fetch_or_raise(source, searched, partial, download)
    arrays: dict[str, np.ndarray] = {}
    files_info: dict[str, Any] = {}
    for key, spec in source.files.items():
        arrays[key], md5 = _read_checked(paths[key], spec, verify)
        files_info[spec.stem] = {"path": str(paths[key]), "md5": md5}

    h, w = source.image_shape
    tensors: dict[str, Any] = {}
    for split in ("train", "test"):
        ipath, lpath = paths[f"{split}_images"], paths[f"{split}_labels"]
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (h, w):
            raise DatasetError(
                f"{ipath}: expected unsigned-byte images of shape (N, {h}, {w}), found "
                f"{images.dtype.name} values of shape {images.shape}"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise DatasetError(
                f"{lpath}: expected a 1-d array of unsigned-byte labels, found "
                f"{labels.dtype.name} values of shape {labels.shape}"
            )
        if len(images) != len(labels):
            raise DatasetError(
                f"{ipath} holds {len(images)} images but {lpath} holds {len(labels)} labels"
            )
        if len(images) == 0:
            raise DatasetError(f"{ipath}: holds no images")
        if labels.max() >= len(source.classes):
            raise DatasetError(
                f"{lpath}: label {int(labels.max())} out of range; valid: 0..."
                f"{len(source.classes) - 1}"
            )
        x = torch.from_numpy(images.copy()).unsqueeze(1).float().div_(255.0)
        tensors[f"x_{split}"] = x
        tensors[f"y_{split}"] = torch.from_numpy(labels.astype(np.int64))
    folder = paths["train_images"].parent
    log.info("loaded %s from %s in %.2f s", source.name, folder, time.perf_counter() - t0)
    return Dataset(
        name=source.name,
        citation=source.citation,
        info={
            "folder": str(folder),
            "files": files_info,
            "verified": bool(verify),
            "classes": list(source.classes),
        },
        **tensors,
    )


class IdxLoader:
    """The loader of one MNIST-layout dataset (:class:`IdxSource`): calling it with
    ``(data_dir=None, download=True, verify=True, binarize="none", binarize_seed=0)`` returns
    the :class:`~vaebench.dataset.Dataset` of ``source`` (images ``(1, 28, 28)`` in [0, 1]).

    ``download``: fetch missing files into the user cache; ``verify``: check MD5 checksums;
    ``binarize="fixed"``: binary pixels drawn once with ``binarize_seed`` -- the fixed
    stochastic binarisation of likelihood papers
    (:func:`vaebench.data.digits.apply_binarization`). Raises
    :class:`~vaebench.dataset.DatasetError` (see :func:`load_idx_dataset`).
    """

    def __init__(self, source: IdxSource, name: str) -> None:
        self.source = source
        self.__name__ = self.__qualname__ = name  # the module-level name it is bound to

    def __reduce__(self) -> str:
        """Pickled by its module-level name (as a function is): unpickled, it is the same
        object."""
        return self.__name__

    def __call__(
        self,
        data_dir: str | None = None,
        download: bool = True,
        verify: bool = True,
        binarize: str = "none",
        binarize_seed: int = 0,
    ) -> Dataset:
        ds = load_idx_dataset(self.source, data_dir, download=download, verify=verify)
        return apply_binarization(ds, binarize, binarize_seed)

    def __repr__(self) -> str:
        return f"IdxLoader({self.source.name!r}, {self.__name__!r})"


#: Fashion-MNIST: 60000 train / 10000 test images, 10 clothing classes (:class:`IdxLoader`).
load_fashion_mnist = IdxLoader(FASHION_MNIST, "load_fashion_mnist")
#: MNIST: 60000 train / 10000 test images, labels 0-9 (:class:`IdxLoader`).
load_mnist = IdxLoader(MNIST, "load_mnist")


#: Meaning of each option (``vaebench list datasets``).
OPTION_DOCS = {
    "download": "fetch missing files into the user cache",
    "verify": "check the MD5 checksums of the files",
    **BINARIZE_DOCS,
}


#: The registered IDX datasets: name, loader, description.
REGISTERED = (
    ("fashion-mnist", load_fashion_mnist,
     "Zalando Fashion-MNIST (IDX files; 10 clothing classes), [0, 1]"),
    ("mnist", load_mnist, "MNIST handwritten digits (IDX files), [0, 1]"),
)  # fmt: skip


@hookimpl
def vaebench_datasets():
    return [
        DatasetSpec(
            name,
            loader,
            text,
            shape=(1, 28, 28),
            sizes=(loader.source.n_train, loader.source.n_test),
            citation=loader.source.citation,
            option_docs=OPTION_DOCS,
        )
        for name, loader, text in REGISTERED
    ]
