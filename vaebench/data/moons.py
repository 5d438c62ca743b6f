"""``moons``, ``moons-gap``, ``moons-lecture``: the lecture's moon phases as a dataset.

Each image shows a moon: a disc of radius ``R = radius * size`` at the image centre whose lit
part is the region (disc coordinates, x right, y up)

    x > (1 - 2t) * sqrt(R^2 - y^2)

for phase ``t`` in ``[0, 1]``. The terminator is then a half-ellipse with semi-axis
``|1 - 2t| R``, and the lit *area* is exactly the fraction ``t`` of the disc: ``t = 0`` new moon,
``0.5`` half (lit right half), ``0.75`` the three-quarter moon, ``1`` full. Lit pixels are 1,
the unlit part of the disc is ``unlit`` (default 0.3: dimmer than the lit part, brighter than
the background, so no image is constant), the background 0. Pixels are anti-aliased by
supersampling: each pixel is the mean over a ``supersample x supersample`` grid of sample
points (so the lit area of every rendered moon is non-decreasing in ``t``).

Optional nuisance factors (off by default): a shift of the disc centre by up to ``shift`` px in
x and y and a rotation of the whole moon about its centre by up to ``rotation`` degrees,
uniform. With nuisances on, the factors are ``(phase, dx, dy, rotation)`` (px, px -- positive
dy moves the moon down --, radians); otherwise just ``(phase,)``. Phase is always factor 0.

Training regimes (option ``regime``; the three registered names differ only in its default):

- ``dense``: training phases uniform on ``[0, 1]``;
- ``gap``: uniform on ``[0, 1]`` minus the band ``gap_center +- gap_width / 2`` (default
  ``[0.65, 0.85]``): the three-quarter moon never appears in training;
- ``lecture``: only phases near the half and the full moon -- half the images uniform on
  ``[0.5 - w/2, 0.5 + w/2]``, half on ``[1 - w, 1]`` with ``w = lecture_width`` (default 0.1).

The test split always covers all phases: stratified ``(i + U[0, 1)) / n_test`` for
``i = 0..n_test-1``, shuffled, from a random stream that depends only on ``seed`` and the
test options -- so ``moons``, ``moons-gap`` and ``moons-lecture`` share the same test images.
Labels are 10 phase bins ``min(int(10 t), 9)``. Phases (and nuisances) are rounded to float32
before drawing, so ``render(factors)`` reproduces the stored images bit for bit.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaebench.dataset import Dataset, DatasetError, DatasetSpec
from vaebench.hookspecs import hookimpl

__all__ = ["CITATION", "REGIMES", "MoonRenderer", "draw_moons", "sample_phases", "load_moons"]

CITATION = (
    "vaebench synthetic moon phases (MIT, generated on the fly); the lit area fraction equals "
    "the phase by construction. Interpolation protocol after Berthelot et al., ICLR 2019."
)

REGIMES = ("dense", "gap", "lecture")
NUISANCE_NAMES = ("phase", "dx", "dy", "rotation")

#: Share of test images that may equal a training image (declared in ``info["test_overlap"]``
#: for the conformance kit's overlap check), and why. Measured with the default options:
#: moons 36.9 %, moons-gap 36.0 %, moons-lecture 16.0 % of the 1000 test images.
MAX_TEST_OVERLAP = 0.5
TEST_OVERLAP_REASON = (
    "the phase is continuous but an image changes only when the terminator crosses one of the "
    "supersample x supersample points of a pixel, so all phases render to finitely many images "
    "(about 14000 at the defaults) and a test phase close to a training phase draws the very "
    "same image"
)
_CHUNK = 16  # images per block of the general path (keeps temporaries in cache)


def draw_moons(
    factors: np.ndarray,
    size: int = 32,
    radius: float = 0.375,
    unlit: float = 0.3,
    supersample: int = 8,
) -> np.ndarray:
    """Moon images, float32 ``(M, size, size)`` in ``[0, 1]``.

    ``factors``: float ``(M, 4)`` rows ``(phase in [0, 1], dx px, dy px, rotation rad)``.
    ``radius`` is a fraction of ``size``. A pixel's value is
    ``(unlit * n_disc + (1 - unlit) * n_lit) / supersample^2`` from integer counts of its sample
    points inside the disc and inside the lit region, so results do not depend on batching.

    A sample point at ``(x, y)`` (moon frame) with half-chord ``c = sqrt(R^2 - y^2) > 0`` is lit
    when ``t > tau = (1 - x / c) / 2``, which is ``x > (1 - 2t) c`` solved for ``t``. Factors and
    coordinates are float32 (the stored factor precision). Each point's
    threshold ``tau`` is computed once, so the many images of the centred, upright moon are
    counted with one ``searchsorted`` per pixel; both paths compare the same ``tau`` values with
    ``t`` and give identical pixels.
    """
    f = np.asarray(factors, dtype=np.float32)
    if f.ndim != 2 or f.shape[1] != 4:
        raise DatasetError(f"draw_moons: expected factors of shape (M, 4), got {f.shape}")
    ss = int(supersample)
    r_sq = np.float32((radius * size) ** 2)
    # sample points: pixel j covers [j, j + 1); sample k sits at j + (k + 0.5) / ss
    grid = ((np.arange(size * ss, dtype=np.float64) + 0.5) / ss - size / 2.0).astype(np.float32)
    half = np.float32(0.5)

    def thresholds(c: np.ndarray) -> np.ndarray:
        """Per image and sample point: the phase above which the point is lit (+inf: never)."""
        # per-image cos/sin with Python's math (no SIMD variant can differ between batches)
        cos_t = np.array([math.cos(a) for a in c[:, 3].tolist()], np.float32)[:, None, None]
        sin_t = np.array([math.sin(a) for a in c[:, 3].tolist()], np.float32)[:, None, None]
        gx = grid[None, None, :] - c[:, 1, None, None]  # x right
        gy = -(grid[None, :, None] - c[:, 2, None, None])  # y up (rows grow downwards)
        # coordinates in the moon's own frame (undo its counter-clockwise rotation)
        xr = gx * cos_t + gy * sin_t
        yr = -gx * sin_t + gy * cos_t
        chord_sq = r_sq - yr * yr  # squared half-chord of the disc at height yr
        inside = (xr * xr <= chord_sq) & (chord_sq > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = half - half * xr / np.sqrt(chord_sq)
        return np.where(inside, tau, np.float32(np.inf))

    def per_pixel(a: np.ndarray) -> np.ndarray:
        """``(B, size*ss, size*ss)`` -> ``(B, size, size, ss*ss)``: the samples of each pixel."""
        b = a.reshape(len(a), size, ss, size, ss).transpose(0, 1, 3, 2, 4)
        return b.reshape(len(a), size, size, ss * ss)

    # pixel value for every (n_disc, n_lit) pair of sample counts
    n = np.arange(ss * ss + 1)
    value = ((unlit * n[:, None] + (1.0 - unlit) * n[None, :]) / (ss * ss)).astype(np.float32)

    out = np.zeros((len(f), size, size), dtype=np.float32)
    plain = np.flatnonzero(np.all(f[:, 1:] == 0.0, axis=1))  # the centred, upright moon
    if len(plain):
        tau0 = np.sort(per_pixel(thresholds(np.zeros((1, 4), np.float32)))[0], axis=-1)
        n_disc0 = (tau0 < np.inf).sum(axis=-1)
        rows, cols = np.nonzero(n_disc0)  # pixels touching the disc; the rest stay 0
        phases = f[plain, 0]
        n_lit = np.empty((len(rows), len(phases)), dtype=np.intp)
        for k, (i, j) in enumerate(zip(rows, cols, strict=True)):
            n_lit[k] = np.searchsorted(tau0[i, j], phases, side="left")  # #{tau < t}
        images = np.zeros((len(phases), size, size), dtype=np.float32)
        images[:, rows, cols] = value[n_disc0[rows, cols][:, None], n_lit].T
        out[plain] = images
    rest = np.flatnonzero(np.any(f[:, 1:] != 0.0, axis=1))
    for start in range(0, len(rest), _CHUNK):
        idx = rest[start : start + _CHUNK]
        tau = thresholds(f[idx])
        shape = (len(idx), size, ss, size, ss)
        n_disc = (tau < np.inf).reshape(shape).sum(axis=(2, 4))
        n_lit = (tau < f[idx, 0, None, None]).reshape(shape).sum(axis=(2, 4))
        out[idx] = value[n_disc, n_lit]
    return out


def _as_factors(factors: Any) -> np.ndarray:
    """Scalar / ``(M,)`` / ``(M, 1)`` phases or ``(M, 4)`` full factors -> float64 ``(M, 4)``."""
    if isinstance(factors, Tensor):
        factors = factors.detach().cpu().numpy()
    a = np.asarray(factors, dtype=np.float32)
    if a.ndim == 0:
        a = a.reshape(1, 1)
    elif a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] not in (1, 4):
        raise DatasetError(
            f"moons.render: expected phases (M,) / (M, 1) or factors (M, 4) "
            f"(phase, dx, dy, rotation), got shape {a.shape}"
        )
    if not np.isfinite(a).all():
        raise DatasetError("moons.render: factors contain NaN or infinite values")
    full = np.zeros((a.shape[0], 4), dtype=np.float64)
    full[:, : a.shape[1]] = a
    if full[:, 0].min(initial=0.0) < 0.0 or full[:, 0].max(initial=0.0) > 1.0:
        raise DatasetError(
            f"moons.render: phases must lie in [0, 1], found range "
            f"[{full[:, 0].min():g}, {full[:, 0].max():g}]"
        )
    return full


@dataclasses.dataclass(frozen=True)
class MoonRenderer:
    """``render(factors) -> (M, 1, size, size)`` float32 in ``[0, 1]``.

    ``factors``: a phase (scalar), phases ``(M,)`` / ``(M, 1)`` (nuisances zero: the centred,
    upright moon), or ``(M, 4)`` rows ``(phase, dx, dy, rotation)``.
    """

    size: int = 32
    radius: float = 0.375
    unlit: float = 0.3
    supersample: int = 8

    def __call__(self, factors: Any) -> Tensor:
        f = _as_factors(factors)
        images = draw_moons(f, self.size, self.radius, self.unlit, self.supersample)
        return torch.from_numpy(images[:, None])


def sample_phases(
    n: int,
    regime: str,
    rng: np.random.Generator,
    gap_center: float = 0.75,
    gap_width: float = 0.2,
    lecture_width: float = 0.1,
) -> np.ndarray:
    """``n`` training phases (float64 in ``[0, 1]``) for ``regime`` (see the module docstring)."""
    u = rng.random(n)
    if regime == "dense":
        return u
    if regime == "gap":
        lo = max(gap_center - gap_width / 2.0, 0.0)
        hi = min(gap_center + gap_width / 2.0, 1.0)
        p = u * (1.0 - (hi - lo))
        return np.where(p < lo, p, p + (hi - lo))
    if regime == "lecture":
        half = np.arange(n) % 2 == 0
        return np.where(
            half, 0.5 - lecture_width / 2.0 + lecture_width * u, 1.0 - lecture_width * u
        )
    raise DatasetError(f"moons: unknown regime {regime!r}; valid: {', '.join(REGIMES)}")


def _check(name: str, cond: bool, key: str, value: Any, rule: str) -> None:
    if not cond:
        raise DatasetError(f"{name}: {key} must be {rule}, got {value!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_options(
    name: str,
    regime: str,
    n_train: int,
    n_test: int,
    size: int,
    seed: int,
    gap_center: float,
    gap_width: float,
    lecture_width: float,
    unlit: float,
    radius: float,
    supersample: int,
    shift: float,
    rotation: float,
) -> None:
    """Raise :class:`DatasetError` (one line: the option, its value, the valid range) for an
    option of :func:`load_moons` out of range, or a moon that does not fit in the image."""
    _check(name, regime in REGIMES, "regime", regime, f"one of {', '.join(REGIMES)}")
    _check(name, _is_int(n_train) and n_train >= 1, "n_train", n_train, "an integer >= 1")
    _check(name, _is_int(n_test) and n_test >= 1, "n_test", n_test, "an integer >= 1")
    _check(name, _is_int(size) and size >= 8, "size", size, "an integer >= 8")
    _check(name, _is_int(seed) and seed >= 0, "seed", seed, "a non-negative integer")
    _check(name, 0.0 <= gap_center <= 1.0, "gap_center", gap_center, "in [0, 1]")
    _check(name, 0.0 < gap_width < 1.0, "gap_width", gap_width, "in (0, 1)")
    _check(name, 0.0 < lecture_width <= 0.5, "lecture_width", lecture_width, "in (0, 0.5]")
    _check(name, 0.0 < unlit < 1.0, "unlit", unlit, "in (0, 1)")
    _check(name, _is_int(supersample) and supersample >= 1, "supersample", supersample, ">= 1")
    _check(name, shift >= 0.0, "shift", shift, ">= 0 (pixels)")
    _check(name, 0.0 <= rotation <= 180.0, "rotation", rotation, "in [0, 180] (degrees)")
    _check(name, 0.0 < radius <= 0.5, "radius", radius, "in (0, 0.5] (fraction of size)")
    if radius * size + shift * math.sqrt(2.0) > size / 2.0:
        raise DatasetError(
            f"{name}: a moon of radius {radius * size:g} px shifted by up to {shift:g} px does "
            f"not fit in {size}x{size} images; lower radius or shift"
        )


def _factor_info(shift: float, rotation: float) -> dict[str, Any]:
    """``info["factors"]``: the phase, and the nuisance jitter when there is one."""
    factor_info: dict[str, Any] = {"phase": {"low": 0.0, "high": 1.0, "periodic": False}}
    if shift > 0.0 or rotation > 0.0:
        factor_info.update(
            dx={"low": -shift, "high": shift, "unit": "px"},
            dy={"low": -shift, "high": shift, "unit": "px"},
            rotation={
                "low": -math.radians(rotation),
                "high": math.radians(rotation),
                "unit": "rad",
            },
        )
    return factor_info


def load_moons(
    regime: str = "dense",
    n_train: int = 4000,
    n_test: int = 1000,
    size: int = 32,
    seed: int = 0,
    gap_center: float = 0.75,
    gap_width: float = 0.2,
    lecture_width: float = 0.1,
    unlit: float = 0.3,
    radius: float = 0.375,
    supersample: int = 8,
    shift: float = 0.0,
    rotation: float = 0.0,
    *,
    name: str = "moons",
) -> Dataset:
    """Moon-phase images ``(1, size, size)`` in [0, 1] with the true phase as factor 0.

    ``regime``: dense | gap | lecture (training phases; the test split is always uniform).
    ``gap_center``/``gap_width``: the band left out by ``gap``; ``lecture_width``: width of each
    band of ``lecture``. ``unlit``: brightness of the dark part of the disc, in (0, 1).
    ``radius``: disc radius as a fraction of ``size``; ``supersample``: samples per pixel side.
    ``shift`` (px) and ``rotation`` (degrees): maximum nuisance jitter, 0 = off.
    """
    _check_options(name, regime, n_train, n_test, size, seed, gap_center, gap_width,
                   lecture_width, unlit, radius, supersample, shift, rotation)  # fmt: skip

    nuisances = shift > 0.0 or rotation > 0.0

    def factors(phases: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        f = np.zeros((len(phases), 4))
        f[:, 0] = phases
        if nuisances:
            f[:, 1:3] = rng.uniform(-shift, shift, size=(len(phases), 2))
            f[:, 3] = np.deg2rad(rng.uniform(-rotation, rotation, size=len(phases)))
        # round through float32 (the stored factor dtype) so render(factors) is exact
        return f.astype(np.float32).astype(np.float64)

    rng_train = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    rng_test = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    phases_train = sample_phases(n_train, regime, rng_train, gap_center, gap_width, lecture_width)
    phases_train = phases_train[rng_train.permutation(n_train)]
    strata = (np.arange(n_test) + rng_test.random(n_test)) / n_test
    phases_test = strata[rng_test.permutation(n_test)]
    f_train, f_test = factors(phases_train, rng_train), factors(phases_test, rng_test)

    render = MoonRenderer(size=size, radius=radius, unlit=unlit, supersample=supersample)
    k = 4 if nuisances else 1

    def labels(f: np.ndarray) -> Tensor:
        return torch.from_numpy(np.minimum((10 * f[:, 0]).astype(np.int64), 9))

    info: dict[str, Any] = {
        "regime": regime,
        "seed": seed,
        "size": size,
        "radius_px": radius * size,
        "unlit": unlit,
        "supersample": supersample,
        "shift_px": shift,
        "rotation_deg": rotation,
        "factors": _factor_info(shift, rotation),
        # checked by vaebench.testing.check_dataset_overlap (docs/datasets.md, "Test images
        # that equal training images")
        "test_overlap": {"max_fraction": MAX_TEST_OVERLAP, "reason": TEST_OVERLAP_REASON},
    }
    if regime == "gap":
        info["gap"] = [max(gap_center - gap_width / 2, 0.0), min(gap_center + gap_width / 2, 1.0)]
    elif regime == "lecture":
        info["bands"] = [[0.5 - lecture_width / 2, 0.5 + lecture_width / 2], [1 - lecture_width, 1]]
    return Dataset(
        name=name,
        x_train=render(f_train),
        x_test=render(f_test),
        y_train=labels(f_train),
        y_test=labels(f_test),
        factors_train=torch.from_numpy(f_train[:, :k]).float(),
        factors_test=torch.from_numpy(f_test[:, :k]).float(),
        factor_names=NUISANCE_NAMES[:k],
        render=render,
        citation=CITATION,
        info=info,
    )


#: Meaning of each option (``vaebench list datasets``).
OPTION_DOCS = {
    "regime": "dense | gap | lecture: which phases train (test is always uniform)",
    "n_train": "training images",
    "n_test": "test images",
    "size": "image side in pixels",
    "seed": "seed of the generated images (not the run's --seeds)",
    "gap_center": "centre of the phase band that gap leaves out",
    "gap_width": "width of the phase band that gap leaves out",
    "lecture_width": "width of each phase band of lecture",
    "unlit": "brightness of the dark part of the disc, in (0, 1)",
    "radius": "disc radius as a fraction of size",
    "supersample": "samples per pixel side",
    "shift": "maximum position jitter in pixels (0: off)",
    "rotation": "maximum rotation jitter in degrees (0: off)",
}


def _spec(name: str, regime: str, description: str) -> DatasetSpec:
    import inspect

    options: dict[str, Any] = {
        k: (regime if k == "regime" else p.default)
        for k, p in inspect.signature(load_moons).parameters.items()
        if p.kind is p.POSITIONAL_OR_KEYWORD
    }
    return DatasetSpec(
        name,
        functools.partial(load_moons, name=name, regime=regime),
        description,
        shape=(1, 32, 32),
        sizes=(options["n_train"], options["n_test"]),
        citation=CITATION,
        options=options,
        option_docs=OPTION_DOCS,
    )


@hookimpl
def vaebench_datasets():
    return [
        _spec("moons", "dense", "moon phases, training phases uniform on [0, 1]; factor phase"),
        _spec("moons-gap", "gap", "moon phases, training skips phases 0.65-0.85; factor phase"),
        _spec("moons-lecture", "lecture", "moon phases, training only near half and full moon"),
    ]
