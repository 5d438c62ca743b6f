"""Factor datasets for disentanglement: ``sprites`` (embedded), ``dsprites`` and ``shapes3d``.

``sprites`` renders white shapes on black on the factor grid of dSprites (Matthey et al. 2017):
shape (square, ellipse, heart; values 0, 1, 2), scale (6 values in ``[0.5, 1]``), orientation
(40 values in ``[0, 2*pi)``), x and y position (32 values each in ``[0, 1]``). It follows the
dSprites grid but is **not pixel-identical** to DeepMind's file: the shapes are drawn from
implicit curves here (a square of side ``2 r``, an ellipse of semi-axes ``r`` and ``r/2``, the
heart ``(u^2 + v^2 - 1)^3 <= u^2 v^3``), anti-aliased by ``supersample x supersample`` points
per pixel (so pixels are grey at the edges, where dSprites is binary), with ``r = 0.16 * size *
scale`` and the centre at ``m + pos * (size - 2 m)``, ``m = 0.16 * size`` (the sprite stays
inside the image). Images are ``size x size`` (32 by default, so it trains on 2 CPU cores; 64 as
the original).

The full grid holds 737,280 images; ``scale_step``, ``orientation_step`` and ``position_step``
keep every k-th value of those factors (defaults 2, 4, 2: 3 x 3 x 10 x 16 x 16 = 23,040 images).
The grid points are split at random (fixed by ``seed``) into train and test (``test_fraction``).
Every image carries its factor values (``factors_*``, ``info["factors"]`` declares each factor's
grid in ``values``, so :meth:`vaebench.dataset.Dataset.factor_classes` gives its classes) and
its shape as label.

``dsprites`` and ``shapes3d`` read the official files (``dsprites_ndarray_co1sh3sc6or40x32y32_
64x64.npz``, Matthey et al. 2017; ``3dshapes.h5``, Burgess & Kim 2018, through the optional
extra ``vaebench[shapes3d]`` for h5py) from ``data_dir``, ``$VAEBENCH_DATA`` or the cache
(``~/.cache/vaebench/<name>``), verify their MD5 and, with ``download=true``, fetch them from
the official URLs first. They subsample the grid the same way and split it the same way; the
images are read in chunks, so only the kept images are ever held in memory.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaebench.dataset import Dataset, DatasetError, DatasetSpec
from vaebench.hookspecs import hookimpl

__all__ = [
    "SPRITE_FACTORS",
    "DSPRITES",
    "SHAPES3D",
    "SpriteRenderer",
    "draw_sprites",
    "sprite_grid",
    "load_sprites",
    "load_dsprites",
    "load_shapes3d",
    "download_checked",
]

log = logging.getLogger("vaebench.data.sprites")

TWO_PI = 2.0 * math.pi
SHAPES = ("square", "ellipse", "heart")
#: The dSprites factor grid (values of each factor), shared by ``sprites`` and ``dsprites``.
SPRITE_FACTORS: dict[str, np.ndarray] = {
    "shape": np.arange(3, dtype=np.float64),
    "scale": np.linspace(0.5, 1.0, 6),
    "orientation": np.linspace(0.0, TWO_PI, 40, endpoint=False),
    "x": np.linspace(0.0, 1.0, 32),
    "y": np.linspace(0.0, 1.0, 32),
}
SPRITE_NAMES = tuple(SPRITE_FACTORS)
CITATION_DSPRITES = (
    "Matthey, Higgins, Hassabis & Lerchner, dSprites: Disentanglement testing Sprites dataset, "
    "https://github.com/deepmind/dsprites-dataset/, 2017"
)
CITATION_SPRITES = (
    "vaebench procedural sprites on the factor grid of dSprites (not pixel-identical to it); "
    + CITATION_DSPRITES
)
CITATION_SHAPES3D = (
    "Burgess & Kim, 3D Shapes Dataset, https://github.com/deepmind/3dshapes-dataset/, 2018"
)
_MARGIN = 0.16
_HALF = 0.16
#: Test images that may equal a training image (``info["test_overlap"]``, for the conformance
#: kit): the sprites' symmetries, as in dSprites.
TEST_OVERLAP = {
    "max_fraction": 0.7,
    "reason": "the square looks the same after a quarter turn and the ellipse after a half turn "
    "(as in dSprites), so where the grid's orientations include such turns (and at the smallest "
    "scales, where nearby grid points rasterise alike) a test image equals the training image "
    "of another grid point; at most the squares' and ellipses' share, 2/3",
}


def _steps(name: str, **steps: Any) -> dict[str, int]:
    for key, value in steps.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DatasetError(f"{name}: {key} must be an integer >= 1, got {value!r}")
    return steps


def sprite_grid(
    scale_step: int = 1, orientation_step: int = 1, position_step: int = 1
) -> dict[str, np.ndarray]:
    """The kept values of every sprite factor: every k-th value of the dSprites grid."""
    steps = {"shape": 1, "scale": scale_step, "orientation": orientation_step}
    steps.update(x=position_step, y=position_step)
    return {k: v[:: steps[k]] for k, v in SPRITE_FACTORS.items()}


def _product(grid: Mapping[Any, np.ndarray]) -> np.ndarray:
    """Every combination of the grid's values, ``(M, K)``, the last factor fastest."""
    mesh = np.meshgrid(*grid.values(), indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], 1)


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether object coordinates ``(u, v)`` (in units of the half-size, v up) are inside."""
    if shape == 0:  # square
        return np.maximum(np.abs(u), np.abs(v)) <= 1.0
    if shape == 1:  # ellipse, semi-axes 1 and 1/2
        return u * u + 4.0 * v * v <= 1.0
    hu, hv = u * 1.15, v * 1.15 + 0.15  # heart, centred on its bounding box
    return (hu * hu + hv * hv - 1.0) ** 3 - hu * hu * hv**3 <= 0.0


def draw_sprites(factors: np.ndarray, size: int = 32, supersample: int = 2) -> np.ndarray:
    """Sprite images, float32 ``(M, size, size)`` in ``[0, 1]``, for factor values ``factors``
    ``(M, 5)`` (shape 0/1/2, scale, orientation in rad, x and y in ``[0, 1]``): each pixel is the
    fraction of its ``supersample^2`` sample points inside the rotated, scaled, shifted shape
    (see the module docstring). Raises :class:`DatasetError` for a bad shape index."""
    f = np.asarray(factors, dtype=np.float64).reshape(-1, 5)
    shapes = np.rint(f[:, 0]).astype(np.int64)
    if len(f) and (shapes.min() < 0 or shapes.max() > 2 or not np.all(np.isfinite(f))):
        raise DatasetError("sprites: shape must be 0 (square), 1 (ellipse) or 2 (heart)")
    s = supersample
    pts = (np.arange(size * s) + 0.5) / s  # sample points in pixel units
    out = np.empty((len(f), size, size), dtype=np.float32)
    margin = _MARGIN * size
    for lo in range(0, len(f), 64):
        blk = f[lo : lo + 64]
        r = (_HALF * size * blk[:, 1])[:, None, None]
        cx = (margin + blk[:, 3] * (size - 2 * margin))[:, None, None]
        cy = (margin + blk[:, 4] * (size - 2 * margin))[:, None, None]
        cos, sin = np.cos(blk[:, 2])[:, None, None], np.sin(blk[:, 2])[:, None, None]
        dx, dy = pts[None, None, :] - cx, -(pts[None, :, None] - cy)  # y up
        u = (cos * dx + sin * dy) / r
        v = (-sin * dx + cos * dy) / r
        inside = np.empty(u.shape, dtype=bool)
        for k in range(3):
            sel = shapes[lo : lo + 64] == k
            if sel.any():
                inside[sel] = _inside(k, u[sel], v[sel])
        frac = inside.reshape(len(blk), size, s, size, s).mean((2, 4))
        out[lo : lo + 64] = frac
    return out


class SpriteRenderer:
    """``render(factors (M, 5)) -> images (M, 1, size, size)`` float32 tensor (picklable)."""

    def __init__(self, size: int = 32, supersample: int = 2) -> None:
        self.size, self.supersample = size, supersample

    def __call__(self, factors: Any) -> Tensor:
        if isinstance(factors, Tensor):
            factors = factors.detach().cpu().numpy()
        a = np.asarray(factors, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 5:
            raise DatasetError(f"sprites.render: expected factors (M, 5), got {a.shape}")
        return torch.from_numpy(draw_sprites(a, self.size, self.supersample))[:, None]


def _declare(grid: dict[str, np.ndarray], angle: str = "orientation") -> dict[str, Any]:
    """``info["factors"]`` of a grid: range and values of every (discrete) factor; ``angle``
    names the factor that is an angle in ``[0, 2*pi)`` (none: ``""``)."""
    out: dict[str, Any] = {}
    for name, values in grid.items():
        vals = [float(v) for v in values]
        decl: dict[str, Any] = {"low": vals[0], "high": vals[-1], "values": vals}
        decl["discrete"] = True
        if name == angle:
            decl.update(low=0.0, high=TWO_PI, periodic=True, unit="rad")
        out[name] = decl
    return out


def _split(n: int, test_fraction: float, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(test_fraction, bool) or not 0 < test_fraction < 1:
        raise DatasetError(f"{name}: test_fraction must be in (0, 1), got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DatasetError(f"{name}: seed must be a non-negative integer, got {seed!r}")
    n_test = max(1, int(round(test_fraction * n)))
    if n - n_test < 2:
        raise DatasetError(f"{name}: the grid holds {n} images, too few to split")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def load_sprites(
    size: int = 32,
    scale_step: int = 2,
    orientation_step: int = 4,
    position_step: int = 2,
    test_fraction: float = 0.2,
    supersample: int = 2,
    seed: int = 0,
) -> Dataset:
    """The ``sprites`` dataset (see the module docstring): every point of the subsampled dSprites
    grid rendered once, split at random into train and test. Factors ``(shape, scale,
    orientation, x, y)``; labels: the shape (0 square, 1 ellipse, 2 heart)."""
    if size not in (32, 64):
        raise DatasetError(f"sprites: size must be 32 or 64, got {size!r}")
    _steps("sprites", scale_step=scale_step, orientation_step=orientation_step,
           position_step=position_step, supersample=supersample)  # fmt: skip
    grid = sprite_grid(scale_step, orientation_step, position_step)
    factors = _product(grid)
    train, test = _split(len(factors), test_fraction, seed, "sprites")
    render = SpriteRenderer(size, supersample)
    f_train, f_test = factors[train], factors[test]
    return Dataset(
        name="sprites",
        x_train=render(f_train),
        x_test=render(f_test),
        y_train=torch.from_numpy(f_train[:, 0].astype(np.int64)),
        y_test=torch.from_numpy(f_test[:, 0].astype(np.int64)),
        factors_train=torch.from_numpy(f_train),
        factors_test=torch.from_numpy(f_test),
        factor_names=SPRITE_NAMES,
        render=render,
        citation=CITATION_SPRITES,
        info={
            "size": size,
            "grid_steps": {
                "scale": scale_step,
                "orientation": orientation_step,
                "position": position_step,
            },  # fmt: skip
            "grid_size": len(factors),
            "seed": seed,
            "supersample": supersample,
            "shapes": list(SHAPES),
            "factors": _declare(grid),
            "note": "follows the dSprites factor grid; not pixel-identical to DeepMind's file",
            "test_overlap": TEST_OVERLAP,
        },
    )


# ----------------------------------------------------------------------------- official files


class OfficialFile:
    """An official dataset file: its name, MD5, size in bytes and download URLs."""

    def __init__(self, name: str, filename: str, md5: str, nbytes: int, urls: tuple[str, ...],
                 extra: str = "") -> None:  # fmt: skip
        self.name, self.filename, self.md5, self.nbytes = name, filename, md5, nbytes
        self.urls, self.extra = urls, extra


#: dSprites (MD5 as published by several loaders, e.g. ``disent`` and ``latte``; 26.3 MB).
DSPRITES = OfficialFile(
    "dsprites",
    "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
    md5="7da33b31b13a06f4b04a70402ce90c2e",
    nbytes=26_274_253,
    urls=(
        "https://github.com/deepmind/dsprites-dataset/raw/master/"
        "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
    ),
)
#: 3dshapes (267,573,662 bytes; MD5 as published by ``disent`` and ``latte``).
SHAPES3D = OfficialFile(
    "shapes3d",
    "3dshapes.h5",
    md5="099a2078d58cec4daad0702c55d06868",
    nbytes=267_573_662,
    urls=("https://storage.googleapis.com/3d-shapes/3dshapes.h5",),
    extra="shapes3d",
)


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def download_checked(url: str, dest: Path, md5: str, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` atomically: the bytes go to a temporary file beside ``dest``
    and are renamed into place only if their MD5 is ``md5``; otherwise the temporary file is
    removed and :class:`DatasetError` names both checksums. Network errors propagate
    (``OSError`` / ``urllib.error.URLError``)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != md5:
            raise DatasetError(
                f"checksum mismatch for {url}: MD5 {digest.hexdigest()}, expected {md5}; "
                "nothing was saved"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vaebench"


def locate(spec: OfficialFile, data_dir: str | None, download: bool, verify: bool) -> Path:
    """The official file of ``spec``: looked up in ``data_dir``, each ``$VAEBENCH_DATA`` folder
    and the cache (each folder and its ``<name>`` subfolder), downloaded into the cache when
    absent and ``download`` is true; its MD5 checked when ``verify``. Raises
    :class:`DatasetError` naming the folders searched and how to get the file."""
    roots = [Path(data_dir).expanduser()] if data_dir else []
    roots += [Path(p).expanduser() for p in os.environ.get("VAEBENCH_DATA", "").split(os.pathsep)
              if p.strip()]  # fmt: skip
    roots.append(_cache_root())
    searched = [d for r in roots for d in (r / spec.name, r)]
    path = next((d / spec.filename for d in searched if (d / spec.filename).is_file()), None)
    if path is None and download:
        dest = _cache_root() / spec.name / spec.filename
        errors = []
        for url in spec.urls:
            try:
                log.info("downloading %s to %s", url, dest)
                path = download_checked(url, dest, spec.md5)
                break
            except (DatasetError, OSError, urllib.error.URLError) as exc:
                errors.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
        if path is None:
            raise DatasetError(f"{spec.name}: download failed ({'; '.join(errors)})")
    if path is None:
        raise DatasetError(
            f"{spec.name}: {spec.filename} not found in {', '.join(map(str, searched))} and "
            f"downloading is off (download=false); download it from {spec.urls[0]} into one of "
            f"them, or pass --set {spec.name}.download=true"
        )
    if verify:
        got = _md5(path)
        if got != spec.md5:
            raise DatasetError(
                f"{spec.name}: {path} has MD5 {got}, expected {spec.md5} (the official file); "
                f"pass --set {spec.name}.verify=false to use it anyway"
            )
    return path


def _grid_rows(sizes: tuple[int, ...], steps: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a full product grid stored with the last factor fastest (as both official files)
    that keep every k-th class of each factor: ``(rows (M,), classes (M, K))``."""
    keep = [np.arange(0, n, s) for n, s in zip(sizes, steps, strict=True)]
    classes = _product(dict(enumerate(keep))).astype(np.int64)
    bases = np.cumprod((1,) + tuple(sizes[::-1]))[:-1][::-1]
    return classes @ bases, classes


def _npz_member_rows(path: Path, member: str, rows: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """The rows ``rows`` (sorted) of array ``member`` of an ``.npz``, read in chunks."""
    with zipfile.ZipFile(path) as zf, zf.open(member + ".npy") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(fh)
        if fortran:
            raise DatasetError(
                f"{path}: {member} is stored in Fortran order, not the official layout"
            )
        row_shape, row_bytes = shape[1:], int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        out = np.empty((len(rows), *row_shape), dtype=dtype)
        done = 0
        for lo in range(0, shape[0], chunk):
            hi = min(lo + chunk, shape[0])
            buf = fh.read((hi - lo) * row_bytes)
            a, b = np.searchsorted(rows, [lo, hi])
            if b > a:
                block = np.frombuffer(buf, dtype=dtype).reshape(hi - lo, *row_shape)
                out[done : done + b - a] = block[rows[a:b] - lo]
                done += b - a
    return out


def _pool(x: np.ndarray, size: int, native: int, scale: float) -> Tensor:
    """uint8 images ``(M, C, native, native)`` divided by ``scale`` as float32 at ``size``
    (mean of ``native // size`` squared pixels)."""
    t = torch.from_numpy(np.ascontiguousarray(x)).float() / scale
    if size != native:
        t = torch.nn.functional.avg_pool2d(t, native // size)
    return t.contiguous()


def load_dsprites(
    data_dir: str | None = None,
    size: int = 64,
    scale_step: int = 2,
    orientation_step: int = 4,
    position_step: int = 2,
    test_fraction: float = 0.2,
    seed: int = 0,
    download: bool = False,
    verify: bool = True,
) -> Dataset:
    """The official dSprites file (see the module docstring): the kept grid points' images
    (binary; at ``size`` 32 the mean of 2 x 2 pixels), split at random into train and test.
    Factors ``(shape, scale, orientation, x, y)`` -- the constant colour is left out, as in
    disentanglement_lib; shape values 0, 1, 2 (the file's 1, 2, 3). Labels: the shape."""
    if size not in (32, 64):
        raise DatasetError(f"dsprites: size must be 32 or 64, got {size!r}")
    _steps("dsprites", scale_step=scale_step, orientation_step=orientation_step,
           position_step=position_step)  # fmt: skip
    path = locate(DSPRITES, data_dir, download, verify)
    try:
        with np.load(path, allow_pickle=False) as npz:
            all_classes = np.asarray(npz["latents_classes"], dtype=np.int64)
            all_values = np.asarray(npz["latents_values"], dtype=np.float64)
        if all_classes.ndim != 2 or all_classes.shape[1] != 6:
            raise ValueError(f"latents_classes has shape {all_classes.shape}, not (N, 6)")
        sizes = tuple(int(v) + 1 for v in all_classes.max(0))
        steps = (1, 1, scale_step, orientation_step, position_step, position_step)
        rows, classes = _grid_rows(sizes, steps)
        if len(all_classes) != int(np.prod(sizes)) or not np.array_equal(
            all_classes[rows], classes
        ):
            raise ValueError("the images are not the factor grid in order (posY fastest)")
        imgs = _npz_member_rows(path, "imgs", rows)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"dsprites: {path} is not the official .npz layout ({exc})") from None
    if imgs.shape[1:] != (64, 64):
        raise DatasetError(f"dsprites: {path} holds images {imgs.shape[1:]}, not 64 x 64")
    values = all_values[rows]
    factors = values[:, 1:].astype(np.float64)
    factors[:, 0] -= 1.0  # shapes 1, 2, 3 -> 0, 1, 2
    split = _split(len(rows), test_fraction, seed, "dsprites")
    x = _pool(imgs[:, None], size, 64, 1.0)  # the file holds 0 and 1
    kept = {"scale": scale_step, "orientation": orientation_step, "position": position_step}
    return _file_grid_dataset("dsprites", SPRITE_NAMES, CITATION_DSPRITES, x, classes, factors,
                              1, split, path, verify, size, kept, seed)  # fmt: skip


def _file_grid_dataset(
    name: str,
    names: tuple[str, ...],
    citation: str,
    x: Tensor,
    classes: np.ndarray,
    factors: np.ndarray,
    label: int,
    split: tuple[np.ndarray, np.ndarray],
    path: Path,
    verify: bool,
    size: int,
    steps: dict[str, int],
    seed: int,
    **declare: Any,
) -> Dataset:
    """The :class:`Dataset` of an official factor-grid file (``dsprites``, ``shapes3d``): images
    ``x`` ``(N, C, H, W)``, each image's factor ``classes`` and ``factors`` ``(N, K)`` in the
    order of ``names``, the factor column ``label`` as the labels, the ``(train, test)`` rows of
    ``split``; the factor grid is declared from the values present (``declare``: options of
    :func:`_declare`)."""
    grid = {n: np.unique(factors[:, k]) for k, n in enumerate(names)}
    train, test = split
    return Dataset(
        name=name,
        x_train=x[train],
        x_test=x[test],
        y_train=torch.from_numpy(classes[train, label]),
        y_test=torch.from_numpy(classes[test, label]),
        factors_train=torch.from_numpy(factors[train]),
        factors_test=torch.from_numpy(factors[test]),
        factor_names=names,
        citation=citation,
        info={
            "file": str(path),
            "md5_checked": verify,
            "size": size,
            "grid_steps": steps,
            "seed": seed,
            "factors": _declare(grid, **declare),
        },
    )


SHAPES3D_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
#: Values per factor in the official file (the loader reads the grid from the labels).
SHAPES3D_SIZES = (10, 10, 10, 8, 4, 15)


def load_shapes3d(
    data_dir: str | None = None,
    size: int = 64,
    hue_step: int = 2,
    scale_step: int = 2,
    orientation_step: int = 3,
    test_fraction: float = 0.2,
    seed: int = 0,
    download: bool = False,
    verify: bool = True,
) -> Dataset:
    """The official 3dshapes file (``images`` (480000, 64, 64, 3) uint8, ``labels`` (480000, 6)
    float; h5py from the extra ``vaebench[shapes3d]``): the kept grid points (every
    ``hue_step``-th hue of floor, wall and object, ``scale_step``-th scale, every shape,
    ``orientation_step``-th orientation; defaults: 5 x 5 x 5 x 4 x 4 x 5 = 10,000 images), RGB
    in [0, 1], split at random. Labels: the shape (0..3)."""
    if size not in (32, 64):
        raise DatasetError(f"shapes3d: size must be 32 or 64, got {size!r}")
    _steps("shapes3d", hue_step=hue_step, scale_step=scale_step, orientation_step=orientation_step)
    try:
        import h5py
    except ImportError:
        raise DatasetError("shapes3d needs h5py: pip install 'vaebench[shapes3d]'") from None
    path = locate(SHAPES3D, data_dir, download, verify)
    steps = (hue_step, hue_step, hue_step, scale_step, 1, orientation_step)
    try:
        with h5py.File(path, "r") as fh:
            images, labels = fh["images"], fh["labels"]
            n = images.shape[0]
            if images.shape[1:] != (64, 64, 3) or labels.shape != (n, 6):
                raise DatasetError(
                    f"shapes3d: {path} holds images {images.shape} and labels {labels.shape}, "
                    "not the official (N, 64, 64, 3) and (N, 6)"
                )
            all_labels = np.asarray(labels[:], dtype=np.float64)
            uniq = [np.unique(all_labels[:, k]) for k in range(6)]
            sizes = tuple(len(u) for u in uniq)
            if n != int(np.prod(sizes)):
                raise DatasetError(f"shapes3d: {path}: {n} images are not a full factor grid")
            all_classes = np.stack(
                [np.searchsorted(uniq[k], all_labels[:, k]) for k in range(6)], 1
            )
            rows, classes = _grid_rows(sizes, steps)
            if not np.array_equal(all_classes[rows], classes):
                raise DatasetError(
                    f"shapes3d: {path}: labels do not follow the official grid order"
                )
            imgs = np.empty((len(rows), 64, 64, 3), dtype=np.uint8)
            factors = all_labels[rows]
            for lo in range(0, n, 8000):  # contiguous slabs: fast in HDF5
                a, b = np.searchsorted(rows, [lo, lo + 8000])
                if b > a:
                    sel = rows[a:b] - lo
                    imgs[a:b] = images[lo : lo + 8000][sel]
    except (OSError, KeyError) as exc:
        raise DatasetError(f"shapes3d: {path} is not the official HDF5 layout ({exc})") from None
    split = _split(len(rows), test_fraction, seed, "shapes3d")
    x = _pool(imgs.transpose(0, 3, 1, 2), size, 64, 255.0)
    kept = {"hue": hue_step, "scale": scale_step, "orientation": orientation_step}
    # orientation in degrees, -30 to 30: not an angle in radians
    return _file_grid_dataset("shapes3d", SHAPES3D_NAMES, CITATION_SHAPES3D, x, classes, factors,
                              4, split, path, verify, size, kept, seed, angle="")  # fmt: skip


_COMMON_DOCS = {
    "size": "image side in pixels: 32 or 64",
    "scale_step": "keep every k-th scale of the grid",
    "orientation_step": "keep every k-th orientation of the grid",
    "position_step": "keep every k-th x and y position of the grid",
    "test_fraction": "fraction of the grid points held out as the test split",
    "seed": "seed of the train/test split (not the run's --seeds)",
}
_FILE_DOCS = {
    "download": "fetch the official file into ~/.cache/vaebench when it is missing",
    "verify": "check the file's MD5 against the official one",
}


@hookimpl
def vaebench_datasets():
    return [
        DatasetSpec(
            "sprites",
            load_sprites,
            "procedural dSprites grid (shape, scale, orientation, x, y), embedded; "
            "not pixel-identical to dSprites",
            shape=(1, 32, 32),
            sizes=(18432, 4608),
            citation=CITATION_SPRITES,
            option_docs={
                **_COMMON_DOCS,
                "supersample": "anti-aliasing: sample points per pixel side",
            },  # fmt: skip
        ),
        DatasetSpec(
            "dsprites",
            load_dsprites,
            "official dSprites file (path option data_dir; download=true fetches it); 5 factors",
            shape=(1, 64, 64),
            sizes=(18432, 4608),
            citation=CITATION_DSPRITES,
            option_docs={**_COMMON_DOCS, **_FILE_DOCS},
        ),
        DatasetSpec(
            "shapes3d",
            load_shapes3d,
            "official 3dshapes.h5 (path option data_dir; needs vaebench[shapes3d]); 6 factors",
            shape=(3, 64, 64),
            sizes=(8000, 2000),
            citation=CITATION_SHAPES3D,
            option_docs={
                **{k: v for k, v in _COMMON_DOCS.items() if k != "position_step"},
                "hue_step": "keep every k-th floor, wall and object hue",
                **_FILE_DOCS,
            },
        ),
    ]
