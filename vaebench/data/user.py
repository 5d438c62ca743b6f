"""User data: ``--datasets path/to/file.npz`` or ``--datasets path/to/folder/`` of images.

A dataset name that looks like a path (ends in ``.npz``, contains ``/`` or starts with ``.``)
is claimed through the hook ``vaebench_dataset_for_path`` -- this module is a built-in plugin
like any other -- and loaded by :func:`load_user_dataset`.

**.npz files** hold ``x_train`` and ``x_test`` and optionally ``y_train`` and ``y_test``
(integer labels, one per image); any other array name is an error. They are read member by
member with :mod:`zipfile` and :mod:`numpy.lib.format`, checked before any data is read: the
path must be a regular file (a FIFO, device or socket is refused at once, never opened for
reading), the file must be a zip archive of ``.npy`` members, every ``.npy`` header must be at
most :data:`NPY_MAX_HEADER` bytes and hold a plain numeric dtype (object arrays are refused,
never unpickled), and the declared sizes -- the zip's uncompressed member sizes and the headers'
``shape x dtype`` -- must fit in ``max_gib`` GiB (default :data:`MAX_GIB`), counting images as
float32 (so a small file that would inflate to tens of GB is refused before it is read). Each
split needs at least :data:`MIN_IMAGES` images. Image layout rule:

- 3-d ``(N, H, W)``: grayscale, a channel axis is added -> ``(N, 1, H, W)``;
- 4-d: channels-first ``(N, C, H, W)`` if ``shape[1] <= 4 < shape[3]``, channels-last
  ``(N, H, W, C)`` (transposed) if ``shape[3] <= 4 < shape[1]``; anything else (e.g.
  ``(N, 3, 4, 4)``) is ambiguous and an error -- store such arrays channels-first with larger
  images, or as ``(N, H, W)``.

Values (``max_value="auto"``, the default): floating-point arrays must lie in ``[0, 1]``
(finite); booleans become 0/1; integer arrays (``uint8`` or any integer type) are read as

- **0/1 (binary) images** when every value of ``x_train`` and ``x_test`` is 0 or 1 (binarised
  MNIST and the like: never divided by 255);
- **8-bit images** divided by 255 when the values lie in 0..255 and some exceed 1;

which is logged and recorded in ``info["scaled_from"]``. Any other range is refused. Give
``max_value`` (``--set PATH.max_value=255``) to state the range instead: every array is then
divided by it and must lie in ``0..max_value`` (e.g. ``255`` for 8-bit data that happens to be
0/1, ``65535`` for 16-bit, ``1`` for 0/1). Train and test images must share ``(C, H, W)``.

**Folders** of images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.gif``, ``.tif``, ``.tiff``;
read with Pillow, else matplotlib for PNG), searched recursively:

- ``train/`` and ``test/`` subfolders, if both exist, are the splits (images elsewhere in the
  folder are then ignored); otherwise all images are split deterministically: sorted by
  relative path, permuted by ``split_seed``, the first ``round(test_fraction * N)`` go to test
  (not stratified by class);
- if the images sit in class subfolders (``cat/1.png``, or ``train/cat/1.png``), the sorted
  class folder names give the labels 0..K-1 (as torchvision's ``ImageFolder``);
- all images must have the same size (no resizing); grayscale images give ``C = 1``; if any
  image has colour, all are converted to RGB (``C = 3``); alpha channels are dropped;
- pixel values are scaled by the image's bit depth (8-bit by 255, 16-bit by 65535);
  ``max_value`` does not apply; ``max_gib`` bounds the estimated memory (files x first image);
- special files (FIFOs, devices, sockets) are skipped; each split needs :data:`MIN_IMAGES`
  images.

Every problem raises :class:`~vaebench.dataset.DatasetError` naming the file (and array or
image) and what is wrong.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import logging
import math
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaebench.dataset import Dataset, DatasetError, DatasetSpec
from vaebench.hookspecs import hookimpl

__all__ = [
    "is_dataset_path",
    "load_user_dataset",
    "user_dataset_defaults",
    "vaebench_dataset_for_path",
    "load_npz",
    "load_image_folder",
    "to_nchw",
    "IMAGE_SUFFIXES",
    "MAX_GIB",
    "MIN_IMAGES",
    "NPY_MAX_HEADER",
]

log = logging.getLogger("vaebench.data.user")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
NPZ_ARRAYS = ("x_train", "x_test", "y_train", "y_test")
#: Default bound (GiB) on the memory a user dataset may need: the declared uncompressed size of
#: an .npz and its images as float32 (``--set PATH.max_gib=N`` to change it).
MAX_GIB = 8.0
#: Fewest images per split: metrics compare pairs of test images, a training batch needs two.
MIN_IMAGES = 2
#: Largest .npy header read (bytes): numpy's own safety limit for headers.
NPY_MAX_HEADER = 10_000


def load_user_dataset(
    name: str,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    max_value: Any = "auto",
    max_gib: float = MAX_GIB,
) -> Dataset:
    """Load ``name`` (a ``.npz`` file or a folder of images) as a :class:`Dataset`.

    ``test_fraction`` and ``split_seed`` apply to folders without ``train/``/``test/``
    subfolders only; ``max_value`` (``"auto"`` or the value that means white) to ``.npz``
    files only; ``max_gib`` bounds the memory the data may need. The dataset is named ``name``
    as given. Raises :class:`DatasetError` with one line naming the path and the problem (a
    special file such as a FIFO is refused without being opened).
    """
    path = Path(name).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DatasetError(
            f"user dataset {name!r}: no such file or folder (expected a .npz file with "
            "x_train/x_test arrays or a folder of images)"
        ) from None
    except OSError as exc:
        raise DatasetError(f"user dataset {name!r}: cannot access it: {exc.strerror}") from None
    limit = _byte_limit(max_gib, name)
    if stat.S_ISDIR(st.st_mode):
        if max_value != "auto":
            raise DatasetError(
                f"user dataset {name!r}: max_value applies to .npz files; images in a folder are "
                "scaled by their bit depth (8-bit by 255, 16-bit by 65535)"
            )
        return load_image_folder(
            path, name=name, test_fraction=test_fraction, split_seed=split_seed, max_gib=max_gib
        )
    kind = _special_kind(st.st_mode)
    if kind:
        raise DatasetError(
            f"user dataset {name!r} is {kind}, not a regular file; give a .npz file or a folder "
            "of images"
        )
    if path.suffix.lower() != ".npz":
        raise DatasetError(
            f"user dataset {name!r}: unsupported file type {path.suffix or '(none)'!r}; "
            "valid: a .npz file or a folder of images"
        )
    del limit  # checked here so that a bad value is named before the file is opened
    return load_npz(path, name=name, max_value=max_value, max_gib=max_gib)


def _special_kind(mode: int) -> str | None:
    """What a non-regular, non-folder file is (``"a FIFO (named pipe)"``), or None."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return what
    return "not a regular file"


def _byte_limit(max_gib: Any, name: Any) -> int:
    if isinstance(max_gib, bool) or not isinstance(max_gib, (int, float)):
        text, max_gib = max_gib, math.nan
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            max_gib = float(text)
    if not (math.isfinite(max_gib) and max_gib > 0):
        raise DatasetError(
            f"user dataset {str(name)!r}: max_gib must be a positive number of GiB, got {max_gib!r}"
        )
    return int(max_gib * 2**30)


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**27 else f"{n / 2**20:.3g} MiB"


def user_dataset_defaults() -> dict[str, Any]:
    """Options of :func:`load_user_dataset` and their defaults (for ``--set PATH.KEY=VALUE``)."""
    sig = inspect.signature(load_user_dataset)
    return {k: p.default for k, p in sig.parameters.items() if p.default is not p.empty}


def is_dataset_path(name: str) -> bool:
    """Whether a dataset name is a path this module loads: it ends in ``.npz``, contains ``/``
    or starts with ``.`` (registered names contain no ``/``)."""
    return name.endswith(".npz") or "/" in name or name.startswith(".")


@hookimpl
def vaebench_dataset_for_path(path: str) -> DatasetSpec | None:
    """Claim ``path`` when :func:`is_dataset_path`: a spec named ``path`` that loads it with
    :func:`load_user_dataset` (options :func:`user_dataset_defaults`)."""
    if not is_dataset_path(path):
        return None
    return DatasetSpec(
        name=path,
        loader=functools.partial(load_user_dataset, path),
        description=f"user data from {path}",
        options=user_dataset_defaults(),
    )


# ----------------------------------------------------------------------------- arrays


def to_nchw(x: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """Apply the layout rule of the module docstring: ``(array (N, C, H, W), layout name)``."""
    if x.ndim == 3:
        return x[:, None], "(N, H, W)"
    if x.ndim == 4:
        c_first, c_last = x.shape[1] <= 4 < x.shape[3], x.shape[3] <= 4 < x.shape[1]
        if c_first:
            return x, "(N, C, H, W)"
        if c_last:
            return np.transpose(x, (0, 3, 1, 2)), "(N, H, W, C)"
        raise DatasetError(
            f"{where}: ambiguous image layout {x.shape}: a 4-d array is read as (N, C, H, W) "
            "when shape[1] <= 4 < shape[3] and as (N, H, W, C) when shape[3] <= 4 < shape[1]; "
            "save it as (N, C, H, W) with images wider than 4 px, or as (N, H, W)"
        )
    raise DatasetError(
        f"{where}: images must be a 3-d (N, H, W) or 4-d (N, C, H, W) / (N, H, W, C) array, "
        f"got shape {x.shape}"
    )


def _parse_max_value(value: Any, where: str) -> float | None:
    """``"auto"`` -> None; a positive finite number (or numeric string) -> float."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    number = math.nan
    if not isinstance(value, bool):
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise DatasetError(
            f"{where}: max_value must be 'auto' or a positive number (the value that means "
            f"white: 1 for 0/1 images, 255 for 8-bit, 65535 for 16-bit), got {value!r}"
        )
    return number


def _kind(x: np.ndarray, where: str) -> str:
    if x.size == 0:
        raise DatasetError(f"{where}: holds no images (shape {x.shape})")
    if x.dtype == np.bool_:
        return "bool"
    if np.issubdtype(x.dtype, np.integer):
        return "int"
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise DatasetError(f"{where}: contains NaN or infinite values")
        return "float"
    raise DatasetError(
        f"{where}: unsupported dtype {x.dtype}; valid: floats in [0, 1], integers (0/1 or "
        "0..255, or any range stated with max_value) or bool"
    )


def _scale(
    arrays: dict[str, np.ndarray], where: str, max_value: float | None
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Image arrays (``{"x_train": ..., "x_test": ...}``) to float32 in [0, 1]; returns the
    arrays and a note per array saying how its values were read (see the module docstring).
    With ``max_value="auto"`` integer arrays are read jointly: 0/1 everywhere means binary."""
    kinds = {k: _kind(x, f"{where}: {k}") for k, x in arrays.items()}
    out: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}
    if max_value is not None:
        for k, x in arrays.items():
            lo, hi = (float(x.min()), float(x.max())) if kinds[k] != "bool" else (0.0, 1.0)
            if lo < 0 or hi > max_value:
                raise DatasetError(
                    f"{where}: {k}: values must lie in 0..{max_value:g} (max_value), found "
                    f"range [{lo:g}, {hi:g}]"
                )
            out[k] = (x.astype(np.float64) / max_value).astype(np.float32)
            notes[k] = f"{x.dtype.name} 0..{max_value:g} divided by {max_value:g} (max_value)"
        return out, notes
    ints = [k for k in arrays if kinds[k] == "int"]
    binary = bool(ints) and all(
        int(arrays[k].min()) >= 0 and int(arrays[k].max()) <= 1 for k in ints
    )
    for k, x in arrays.items():
        if kinds[k] == "bool":
            out[k], notes[k] = x.astype(np.float32), "bool read as 0/1"
        elif kinds[k] == "int" and binary:
            out[k] = x.astype(np.float32)
            notes[k] = (f"{x.dtype.name} 0/1 read as binary images (0 black, 1 white), not "
                        "divided by 255; set max_value=255 if they are 8-bit values")  # fmt: skip
        elif kinds[k] == "int":
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi > 255:
                raise DatasetError(
                    f"{where}: {k}: integer values must lie in 0..255 (read as 8-bit and divided "
                    f"by 255) or be 0/1, found range [{lo}, {hi}]; state another range with "
                    "max_value (e.g. max_value=65535 for 16-bit) or store floats in [0, 1]"
                )
            out[k] = x.astype(np.float32) / 255.0
            notes[k] = f"{x.dtype.name} 0..255 divided by 255"
        else:
            lo, hi = float(x.min()), float(x.max())
            if lo < 0.0 or hi > 1.0:
                hint = (
                    " (looks like 0..255 values: divide by 255, store as uint8 or set "
                    "max_value=255)"
                    if lo >= 0.0 and 10.0 < hi <= 255.0
                    else ""
                )
                raise DatasetError(
                    f"{where}: {k}: float values must lie in [0, 1], found range "
                    f"[{lo:g}, {hi:g}]{hint}"
                )
            out[k] = x.astype(np.float32)
    return out, notes


def _labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetError(f"{where}: labels must be a 1-d array (N,), got shape {y.shape}")
    if len(y) != n:
        raise DatasetError(f"{where}: {len(y)} labels for {n} images")
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise DatasetError(f"{where}: labels must be integers, got dtype {y.dtype}")
    if len(y) and int(y.min()) < 0:
        raise DatasetError(f"{where}: labels must be >= 0, found {int(y.min())}")
    return y.astype(np.int64)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _describe_start(head: bytes) -> str:
    """What the first bytes of a file look like, for an error message."""
    if head[:1] == b"\x80":
        return f"{head!r}: a Python pickle"
    if head and all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return f"the text {head.decode('ascii')!r}"
    return f"the bytes {head!r}"


def _open_regular(p: Path) -> Any:
    """Open ``p`` for reading without blocking on a FIFO and refuse anything but a regular
    file (the check is made on the open file, so a swap after ``stat`` is caught too)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise DatasetError(f"{p}: cannot open: {exc.strerror}") from None
    kind = _special_kind(os.fstat(fd).st_mode)
    if kind:
        os.close(fd)
        raise DatasetError(f"{p} is {kind}, not a regular file; give a .npz file")
    return os.fdopen(fd, "rb")


def _npy_header(m: Any, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of the ``.npy`` stream ``m`` (positioned at its start),
    read with numpy's header parser and :data:`NPY_MAX_HEADER`; object dtypes are refused."""
    magic = m.read(6)
    if magic != b"\x93NUMPY":
        raise DatasetError(
            f"{where}: not a .npy array (it starts with {_describe_start(magic)}); an .npz must "
            "hold plain numeric arrays saved with numpy.savez"
        )
    version = m.read(2)
    if len(version) != 2 or version[0] not in (1, 2, 3):
        raise DatasetError(f"{where}: unknown .npy format version {tuple(version)}")
    read = np.lib.format.read_array_header_1_0 if version[0] == 1 else (
        np.lib.format.read_array_header_2_0)  # fmt: skip
    try:
        shape, fortran, dtype = read(m, max_header_size=NPY_MAX_HEADER)
    except ValueError as exc:
        if "max_header_size" in str(exc) or "large" in str(exc):
            raise DatasetError(
                f"{where}: the .npy header is longer than {NPY_MAX_HEADER} bytes (numpy's safety "
                "limit for headers): not a plain array; save it again with numpy.savez"
            ) from None
        raise DatasetError(f"{where}: corrupt .npy header ({exc})") from None
    except (EOFError, OSError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{where}: corrupt .npy header ({exc})") from None
    if dtype.hasobject:
        raise DatasetError(
            f"{where}: holds Python objects (dtype {dtype}), which cannot be read without "
            "unpickling (vaebench never unpickles data files); store plain numeric arrays"
        )
    return tuple(int(v) for v in shape), bool(fortran), dtype


def read_npz_arrays(path: str | os.PathLike, max_gib: float = MAX_GIB) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, checked as the module docstring says before any data is
    read; raises :class:`DatasetError` with one line naming the file and the problem."""
    p = Path(path)
    limit = _byte_limit(max_gib, p)
    with _open_regular(p) as fh:
        head = fh.read(8)
        if not head:
            raise DatasetError(f"{p}: is empty (0 bytes), not an .npz (zip) file")
        if head.startswith(b"\x93NUMPY"):
            raise DatasetError(
                f"{p}: is a single .npy array, not an .npz archive; save the splits with "
                "numpy.savez(path, x_train=..., x_test=...)"
            )
        if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise DatasetError(
                f"{p}: not an .npz (zip) file (it starts with {_describe_start(head)}); save the "
                "arrays with numpy.savez or numpy.savez_compressed"
            )
        fh.seek(0)
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise DatasetError(f"{p}: not a readable .npz (zip) file ({exc})") from None
        with zf:
            return _read_members(p, zf, limit, max_gib)


def _read_members(
    p: Path, zf: zipfile.ZipFile, limit: int, max_gib: float
) -> dict[str, np.ndarray]:
    members: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            raise DatasetError(
                f"{p}: member {info.filename!r} is not a .npy array; an .npz made by numpy.savez "
                f"holds {', '.join(k + '.npy' for k in NPZ_ARRAYS[:2])} (and y_train.npy, "
                "y_test.npy)"
            )
        key = info.filename[: -len(".npy")]
        if key in members:
            raise DatasetError(f"{p}: array {key} is stored twice")
        members[key] = info
    names = list(members)
    unknown = sorted(set(names) - set(NPZ_ARRAYS))
    if unknown:
        shown = ", ".join(unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        raise DatasetError(
            f"{p}: unexpected array(s) {shown}; valid: {', '.join(NPZ_ARRAYS)} (x_train and "
            "x_test required)"
        )
    missing = [k for k in ("x_train", "x_test") if k not in names]
    if missing:
        raise DatasetError(
            f"{p}: missing array(s) {', '.join(missing)} (found: {', '.join(names) or 'none'}); "
            "required: x_train, x_test; optional: y_train, y_test"
        )
    how = f"the limit is max_gib={max_gib:g}; raise it with --set {p}.max_gib=N if the machine has the memory"
    declared = sum(info.file_size for info in members.values())
    if declared > limit:
        raise DatasetError(
            f"{p}: its arrays declare {_gib(declared)} uncompressed ({p.stat().st_size} bytes "
            f"on disk), more than {_gib(limit)}: refused before reading ({how})"
        )
    headers = {}
    need = 0
    for key, info in members.items():
        with zf.open(info) as m:
            headers[key] = _npy_header(m, f"{p}: {key}")
        shape, _, dtype = headers[key]
        need += math.prod(shape) * (4 if key.startswith("x_") else max(8, dtype.itemsize))
    if need > limit:
        shapes = ", ".join(f"{k} {headers[k][0]} {headers[k][2]}" for k in members)
        raise DatasetError(
            f"{p}: the arrays ({shapes}) need {_gib(need)} of memory as float32 images, more "
            f"than {_gib(limit)}: refused before reading ({how})"
        )
    arrays: dict[str, np.ndarray] = {}
    for key, info in members.items():
        shape, fortran, dtype = headers[key]
        nbytes = math.prod(shape) * dtype.itemsize
        try:
            with zf.open(info) as m:
                _npy_header(m, f"{p}: {key}")
                data = m.read(nbytes)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise DatasetError(f"{p}: {key}: cannot read the array data ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - zlib.error and friends: a corrupt member
            raise DatasetError(
                f"{p}: {key}: cannot read the array data ({type(exc).__name__}: {exc})"
            ) from None
        if len(data) != nbytes:
            raise DatasetError(
                f"{p}: {key}: truncated: the .npy header declares shape {shape} {dtype} "
                f"({nbytes} bytes), the member holds {len(data)}"
            )
        a = np.frombuffer(data, dtype=dtype)
        arrays[key] = a.reshape(shape, order="F" if fortran else "C")
    return arrays


def load_npz(
    path: str | os.PathLike,
    name: str | None = None,
    max_value: Any = "auto",
    max_gib: float = MAX_GIB,
) -> Dataset:
    """Load a ``.npz`` file with ``x_train``, ``x_test`` [, ``y_train``, ``y_test``]; see the
    module docstring for the checks, the value rule (``max_value``) and the memory bound
    (``max_gib``). Raises :class:`DatasetError` naming the file and the problem."""
    p = Path(path)
    scale_to = _parse_max_value(max_value, str(p))
    arrays = read_npz_arrays(p, max_gib)

    kw: dict[str, Any] = {}
    layouts: dict[str, str] = {}
    images: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        images[f"x_{split}"], layouts[split] = to_nchw(arrays[f"x_{split}"], f"{p}: x_{split}")
    images, scaled = _scale(images, str(p), scale_to)
    for split in ("train", "test"):
        x = images[f"x_{split}"]
        if len(x) < MIN_IMAGES:
            raise DatasetError(
                f"{p}: x_{split} holds {len(x)} image(s); vaebench needs at least {MIN_IMAGES} "
                "per split (metrics compare pairs of test images, a training batch needs two)"
            )
        kw[f"x_{split}"] = torch.from_numpy(np.ascontiguousarray(x))
        if f"y_{split}" in arrays:
            kw[f"y_{split}"] = torch.from_numpy(
                _labels(arrays[f"y_{split}"], len(x), f"{p}: y_{split}")
            )
    if kw["x_train"].shape[1:] != kw["x_test"].shape[1:]:
        raise DatasetError(
            f"{p}: x_train images {tuple(kw['x_train'].shape[1:])} and x_test images "
            f"{tuple(kw['x_test'].shape[1:])} differ in (C, H, W)"
        )
    if scaled:
        log.info("%s: %s", p, "; ".join(f"{k}: {v}" for k, v in scaled.items()))
    digest = _sha256(p)
    return Dataset(
        name=name or str(path),
        citation=f"user data {p.name} (sha256 {digest[:16]})",
        info={
            "path": str(p.resolve()),
            "sha256": digest,
            "layout": layouts,
            "scaled_from": scaled,
            "max_value": "auto" if scale_to is None else scale_to,
        },
        **kw,
    )


# ----------------------------------------------------------------------------- folders


def _read_image(path: Path) -> np.ndarray:
    """``(H, W)`` grayscale or ``(H, W, 3)`` RGB array: uint8, or float32 in [0, 1].

    Pillow modes: 1/L/LA and gray palettes -> grayscale; 16-bit (I;16, I) -> divided by 65535;
    F (32-bit float) must already lie in [0, 1]; everything else -> RGB (alpha dropped).
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow ships with matplotlib
        return _read_png(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("1", "L", "LA"):
                return np.asarray(im.convert("L"))
            if mode.startswith("I"):
                a = np.asarray(im, dtype=np.float64)
                if a.min() < 0 or a.max() > 65535:
                    raise DatasetError(
                        f"{path}: {mode} image values [{a.min():g}, {a.max():g}] are not 16-bit"
                    )
                return (a / 65535.0).astype(np.float32)
            if mode == "F":
                a = np.asarray(im, dtype=np.float32)
                if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
                    raise DatasetError(f"{path}: float image values must lie in [0, 1]")
                return a
            rgb = np.asarray(im.convert("RGB"))
            if mode in ("P", "PA") and (rgb == rgb[..., :1]).all():
                return rgb[..., 0].copy()
            return rgb
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder error names the file
        raise DatasetError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None


def _read_png(path: Path) -> np.ndarray:
    """Without Pillow: a PNG image read by matplotlib (float32 in [0, 1], alpha dropped)."""
    if path.suffix.lower() != ".png":
        raise DatasetError(f"{path}: reading {path.suffix} images needs Pillow")
    try:
        import matplotlib.image as mpimg

        a = mpimg.imread(path)
    except Exception as exc:  # noqa: BLE001 - any decoder error names the file
        raise DatasetError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None
    return a[..., :3] if a.ndim == 3 else a


def _list_digest(root: Path, split_files: dict[str, list[Path]]) -> str:
    """SHA-256 over the split's relative file names and sizes (identifies the data cheaply)."""
    h = hashlib.sha256()
    for s in ("train", "test"):
        for p in split_files[s]:
            h.update(f"{s}/{p.relative_to(root).as_posix()}:{p.stat().st_size}\n".encode())
    return h.hexdigest()


def _list_images(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


def _class_of(path: Path, base: Path) -> str | None:
    parts = path.relative_to(base).parts
    return parts[0] if len(parts) > 1 else None


def load_image_folder(
    folder: str | os.PathLike[str],
    name: str | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    max_gib: float = MAX_GIB,
) -> Dataset:
    """Load a folder of images; see the module docstring for the layout rules. Raises
    :class:`DatasetError` naming the folder (or file) and the problem."""
    root = Path(folder)
    limit = _byte_limit(max_gib, root)
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"{root}: test_fraction must lie in (0, 1), got {test_fraction!r}")
    has_splits = (root / "train").is_dir() and (root / "test").is_dir()
    if has_splits:
        split_files, bases = _given_splits(root)
    else:
        split_files = _random_split(root, test_fraction, split_seed)
        bases = {"train": root, "test": root}
    classes_of, classes = _folder_classes(root, split_files, bases)
    images, any_colour = _read_images(root, split_files, limit, max_gib)
    kw = _image_tensors(images, any_colour, classes_of, classes)
    log.info(
        "%s: %d train / %d test images of shape %s%s",
        root, len(images["train"]), len(images["test"]), tuple(kw["x_train"].shape[1:]),
        f", {len(classes)} classes" if classes else "",
    )  # fmt: skip
    return Dataset(
        name=name or str(folder),
        citation=f"user images from {root.name}/",
        info={
            "path": str(root.resolve()),
            "split": "train/ and test/ folders" if has_splits else "seeded random split",
            "test_fraction": None if has_splits else test_fraction,
            "split_seed": None if has_splits else split_seed,
            "classes": classes,
            "n_files": {s: len(split_files[s]) for s in ("train", "test")},
            "files_sha256": _list_digest(root, split_files),
            "scaled_from": "8-bit pixel values divided by 255 (16-bit by 65535)",
        },
        x_train=kw["x_train"],
        x_test=kw["x_test"],
        y_train=kw.get("y_train"),
        y_test=kw.get("y_test"),
    )


def _given_splits(root: Path) -> tuple[dict[str, list[Path]], dict[str, Path]]:
    """The images of ``train/`` and ``test/`` (each split's files, each split's folder)."""
    split_files = {s: _list_images(root / s) for s in ("train", "test")}
    for s, files in split_files.items():
        if len(files) < MIN_IMAGES:
            raise DatasetError(
                f"{root / s}: found {len(files)} image(s); vaebench needs at least "
                f"{MIN_IMAGES} per split (valid suffixes: {', '.join(IMAGE_SUFFIXES)})"
            )
    return split_files, {"train": root / "train", "test": root / "test"}


def _random_split(root: Path, test_fraction: float, split_seed: int) -> dict[str, list[Path]]:
    """Every image of ``root``, sorted by relative path and split by a seeded permutation."""
    files = _list_images(root)
    if len(files) < 2 * MIN_IMAGES:
        raise DatasetError(
            f"{root}: found {len(files)} image(s); need at least {2 * MIN_IMAGES} to make a "
            f"train and a test split of {MIN_IMAGES} or more each (valid suffixes: "
            f"{', '.join(IMAGE_SUFFIXES)})"
        )
    perm = np.random.default_rng(split_seed).permutation(len(files))
    n_test = min(max(int(round(test_fraction * len(files))), MIN_IMAGES),
                 len(files) - MIN_IMAGES)  # fmt: skip
    return {
        "test": [files[i] for i in sorted(perm[:n_test])],
        "train": [files[i] for i in sorted(perm[n_test:])],
    }


def _folder_classes(
    root: Path, split_files: dict[str, list[Path]], bases: dict[str, Path]
) -> tuple[dict[str, list[str | None]], list[str]]:
    """Each image's class folder (or ``None``) and the sorted class names: either every image
    is in a class subfolder, or none is."""
    classes_of = {s: [_class_of(p, bases[s]) for p in split_files[s]] for s in split_files}
    all_classes = [c for s in classes_of.values() for c in s]
    if any(c is None for c in all_classes) and any(c is not None for c in all_classes):
        loose = next(
            p
            for s in ("train", "test")
            for p, c in zip(split_files[s], classes_of[s], strict=True)
            if c is None
        )
        raise DatasetError(
            f"{root}: some images are in class subfolders and some are not (e.g. {loose}); put "
            "every image in a class folder, or none"
        )
    return classes_of, sorted({c for c in all_classes if c is not None})


def _read_images(
    root: Path, split_files: dict[str, list[Path]], limit: int, max_gib: float
) -> tuple[dict[str, list[np.ndarray]], bool]:
    """Every image of each split (one size for all; the memory estimated from the first one
    must fit ``limit`` bytes) and whether any has colour."""
    images: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    ref_shape: tuple[int, ...] | None = None
    ref_file: Path | None = None
    any_colour = False
    for s in ("train", "test"):
        for p in split_files[s]:
            a = _read_image(p)
            if ref_shape is None:
                ref_shape, ref_file = a.shape[:2], p
                n_files = sum(len(f) for f in split_files.values())
                need = n_files * a.size * 4  # float32; an estimate from the first image
                if need > limit:
                    raise DatasetError(
                        f"{root}: {n_files} images of {a.shape} need about "
                        f"{_gib(need)} of memory as float32, more than "
                        f"{_gib(limit)}: refused before reading them (the limit is "
                        f"max_gib={max_gib:g}; raise it with --set {root}.max_gib=N)"
                    )
            elif a.shape[:2] != ref_shape:
                raise DatasetError(
                    f"{p}: image size {a.shape[1]}x{a.shape[0]} (WxH) differs from "
                    f"{ref_shape[1]}x{ref_shape[0]} of {ref_file}; all images must have one "
                    "size (vaebench does not resize)"
                )
            any_colour = any_colour or a.ndim == 3
            images[s].append(a)
    return images, any_colour


def _image_tensors(
    images: dict[str, list[np.ndarray]],
    any_colour: bool,
    classes_of: dict[str, list[str | None]],
    classes: list[str],
) -> dict[str, torch.Tensor]:
    """``x_train``, ``x_test`` as float32 ``(N, C, H, W)`` in [0, 1] (RGB for all when any
    image has colour) and, with class folders, ``y_train``, ``y_test`` (int64 class indices)."""
    index = {c: i for i, c in enumerate(classes)}
    kw: dict[str, torch.Tensor] = {}
    for s in ("train", "test"):
        arrs = []
        for a in images[s]:
            if a.dtype == np.uint8:
                a = a.astype(np.float32) / 255.0
            a = a.astype(np.float32)
            if any_colour and a.ndim == 2:
                a = np.repeat(a[:, :, None], 3, axis=2)
            arrs.append(a.transpose(2, 0, 1) if a.ndim == 3 else a[None])
        kw[f"x_{s}"] = torch.from_numpy(np.stack(arrs))
        if classes:
            kw[f"y_{s}"] = torch.tensor(
                [index[c] for c in classes_of[s] if c is not None], dtype=torch.int64
            )
    return kw
