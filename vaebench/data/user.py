"""User data: ``--datasets path/to/file.npz`` or ``--datasets path/to/folder/`` of images.

A dataset name that looks like a path (ends in ``.npz``, contains ``/`` or starts with ``.``)
is loaded by :func:`load_user_dataset`.

**.npz files** (read with ``np.load(allow_pickle=False)``: object arrays are refused, never
unpickled) hold ``x_train`` and ``x_test`` and optionally ``y_train`` and ``y_test``
(integer labels, one per image); any other array name is an error. Image layout rule:

- 3-d ``(N, H, W)``: grayscale, a channel axis is added -> ``(N, 1, H, W)``;
- 4-d: channels-first ``(N, C, H, W)`` if ``shape[1] <= 4 < shape[3]``, channels-last
  ``(N, H, W, C)`` (transposed) if ``shape[3] <= 4 < shape[1]``; anything else (e.g.
  ``(N, 3, 4, 4)``) is ambiguous and an error -- store such arrays channels-first with larger
  images, or as ``(N, H, W)``.

Values: floating-point arrays must lie in ``[0, 1]`` (finite); ``uint8`` arrays (and integer
arrays with values in 0..255) are divided by 255, which is logged and recorded in
``info["scaled_from"]``; booleans become 0/1. Train and test images must share ``(C, H, W)``.

**Folders** of images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.gif``, ``.tif``, ``.tiff``;
read with Pillow, else matplotlib for PNG), searched recursively:

- ``train/`` and ``test/`` subfolders, if both exist, are the splits (images elsewhere in the
  folder are then ignored); otherwise all images are split deterministically: sorted by
  relative path, permuted by ``split_seed``, the first ``round(test_fraction * N)`` go to test
  (not stratified by class);
- if the images sit in class subfolders (``cat/1.png``, or ``train/cat/1.png``), the sorted
  class folder names give the labels 0..K-1 (as torchvision's ``ImageFolder``);
- all images must have the same size (no resizing); grayscale images give ``C = 1``; if any
  image has colour, all are converted to RGB (``C = 3``); alpha channels are dropped.

Every problem raises :class:`~vaebench.dataset.DatasetError` naming the file (and array or
image) and what is wrong.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaebench.dataset import Dataset, DatasetError

__all__ = [
    "load_user_dataset",
    "user_dataset_defaults",
    "load_npz",
    "load_image_folder",
    "to_nchw",
    "IMAGE_SUFFIXES",
]

log = logging.getLogger("vaebench.data.user")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
NPZ_ARRAYS = ("x_train", "x_test", "y_train", "y_test")


def load_user_dataset(name: str, test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
    """Load ``name`` (a ``.npz`` file or a folder of images) as a :class:`Dataset`.

    ``test_fraction`` and ``split_seed`` apply to folders without ``train/``/``test/``
    subfolders only. The dataset is named ``name`` as given.
    """
    path = Path(name).expanduser()
    if not path.exists():
        raise DatasetError(
            f"user dataset {name!r}: no such file or folder (expected a .npz file with "
            "x_train/x_test arrays or a folder of images)"
        )
    if path.is_dir():
        return load_image_folder(
            path, name=name, test_fraction=test_fraction, split_seed=split_seed
        )
    if path.suffix.lower() != ".npz":
        raise DatasetError(
            f"user dataset {name!r}: unsupported file type {path.suffix or '(none)'!r}; "
            "valid: a .npz file or a folder of images"
        )
    return load_npz(path, name=name)


def user_dataset_defaults() -> dict[str, Any]:
    """Options of :func:`load_user_dataset` and their defaults (for ``--set PATH.KEY=VALUE``)."""
    sig = inspect.signature(load_user_dataset)
    return {k: p.default for k, p in sig.parameters.items() if p.default is not p.empty}


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


def _scale(x: np.ndarray, where: str) -> tuple[np.ndarray, str | None]:
    """Values to float32 in [0, 1]; returns ``(array, scaling note or None)``."""
    if x.size == 0:
        raise DatasetError(f"{where}: holds no images (shape {x.shape})")
    if x.dtype == np.bool_:
        return x.astype(np.float32), "bool"
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0, "uint8 0..255 divided by 255"
    if np.issubdtype(x.dtype, np.integer):
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DatasetError(
                f"{where}: integer values must lie in 0..255 (read as 8-bit and divided by "
                f"255), found range [{lo}, {hi}]; store floats in [0, 1] instead"
            )
        return x.astype(np.float32) / 255.0, f"{x.dtype.name} 0..255 divided by 255"
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise DatasetError(f"{where}: contains NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            hint = (
                " (looks like 0..255 values: divide by 255 or store as uint8)"
                if lo >= 0.0 and 10.0 < hi <= 255.0
                else ""
            )
            raise DatasetError(
                f"{where}: float values must lie in [0, 1], found range [{lo:g}, {hi:g}]{hint}"
            )
        return x.astype(np.float32), None
    raise DatasetError(
        f"{where}: unsupported dtype {x.dtype}; valid: floats in [0, 1], uint8, integers "
        "in 0..255 or bool"
    )


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


def load_npz(path: str | os.PathLike, name: str | None = None) -> Dataset:
    """Load a ``.npz`` file with ``x_train``, ``x_test`` [, ``y_train``, ``y_test``]."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as npz:
            names = list(npz.files)
            unknown = sorted(set(names) - set(NPZ_ARRAYS))
            if unknown:
                raise DatasetError(
                    f"{p}: unexpected array(s) {', '.join(unknown)}; valid: "
                    f"{', '.join(NPZ_ARRAYS)} (x_train and x_test required)"
                )
            missing = [k for k in ("x_train", "x_test") if k not in names]
            if missing:
                raise DatasetError(
                    f"{p}: missing array(s) {', '.join(missing)} (found: "
                    f"{', '.join(names) or 'none'}); required: x_train, x_test; optional: "
                    "y_train, y_test"
                )
            arrays: dict[str, np.ndarray] = {}
            for k in names:
                try:
                    arrays[k] = npz[k]
                except ValueError as exc:  # object arrays need pickle: refused
                    raise DatasetError(
                        f"{p}: array {k!r} cannot be read without unpickling ({exc}); store "
                        "plain numeric arrays"
                    ) from None
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{p}: not a readable .npz file ({exc})") from None

    kw: dict[str, Any] = {}
    scaled: dict[str, str] = {}
    layouts: dict[str, str] = {}
    for split in ("train", "test"):
        where = f"{p}: x_{split}"
        x, layouts[split] = to_nchw(arrays[f"x_{split}"], where)
        x, note = _scale(x, where)
        if note:
            scaled[f"x_{split}"] = note
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
        Image = None  # noqa: N806
    try:
        if Image is None:
            if path.suffix.lower() != ".png":
                raise DatasetError(f"{path}: reading {path.suffix} images needs Pillow")
            import matplotlib.image as mpimg

            a = mpimg.imread(path)
            return a[..., :3] if a.ndim == 3 else a
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
    folder: str | os.PathLike,
    name: str | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> Dataset:
    """Load a folder of images; see the module docstring for the layout rules."""
    root = Path(folder)
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"{root}: test_fraction must lie in (0, 1), got {test_fraction!r}")
    has_splits = (root / "train").is_dir() and (root / "test").is_dir()
    if has_splits:
        split_files = {s: _list_images(root / s) for s in ("train", "test")}
        bases = {"train": root / "train", "test": root / "test"}
        for s, files in split_files.items():
            if not files:
                raise DatasetError(
                    f"{root / s}: no images (valid suffixes: {', '.join(IMAGE_SUFFIXES)})"
                )
    else:
        files = _list_images(root)
        if len(files) < 2:
            raise DatasetError(
                f"{root}: found {len(files)} image(s); need at least 2 to make a train and a "
                f"test split (valid suffixes: {', '.join(IMAGE_SUFFIXES)})"
            )
        perm = np.random.default_rng(split_seed).permutation(len(files))
        n_test = min(max(int(round(test_fraction * len(files))), 1), len(files) - 1)
        split_files = {
            "test": [files[i] for i in sorted(perm[:n_test])],
            "train": [files[i] for i in sorted(perm[n_test:])],
        }
        bases = {"train": root, "test": root}

    # class subfolders: either every image is in one, or none is
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
    classes = sorted({c for c in all_classes if c is not None})
    index = {c: i for i, c in enumerate(classes)}

    images: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    ref_shape: tuple[int, ...] | None = None
    ref_file: Path | None = None
    any_colour = False
    for s in ("train", "test"):
        for p in split_files[s]:
            a = _read_image(p)
            if ref_shape is None:
                ref_shape, ref_file = a.shape[:2], p
            elif a.shape[:2] != ref_shape:
                raise DatasetError(
                    f"{p}: image size {a.shape[1]}x{a.shape[0]} (WxH) differs from "
                    f"{ref_shape[1]}x{ref_shape[0]} of {ref_file}; all images must have one "
                    "size (vaebench does not resize)"
                )
            any_colour = any_colour or a.ndim == 3
            images[s].append(a)

    kw: dict[str, Any] = {}
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
            kw[f"y_{s}"] = torch.tensor([index[c] for c in classes_of[s]], dtype=torch.int64)
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
        **kw,
    )
