"""``lines``: the synthetic benchmark of Berthelot et al. (ACAI, ICLR 2019).

Each image is a 32x32 grayscale picture of one line segment that starts at the image centre and
runs ``size/2 - 1 = 15`` px outward at an angle drawn uniformly from ``[0, 2*pi)`` (0 points
right, ``pi/2`` up), 2 px wide, anti-aliased by fractional pixel coverage. :func:`draw_line`
follows ``draw_line`` in ``lib/data.py`` of the official code (github.com/brain-research/acai)
operation for operation, so the pixels are the paper's pixels.

Differences from the paper, on purpose:

- Pixel range: the paper's images lie in ``[-1, 1]`` (background -1); ours are
  ``x = (x_paper + 1) / 2`` in ``[0, 1]`` (background 0). Map back with ``2 * x - 1`` (the ACAI
  metrics are computed in that range).
- Training set: the paper streams fresh random lines for every batch; we draw a finite training
  set of ``n_train`` lines once from ``seed`` (the test set is, as in the paper, 5000 random
  lines, drawn from an independent stream of the same seed).
- Training and test angles are drawn as float32 values (the factor tensors are float32), so
  ``render(factors_train)`` reproduces the training images bit for bit. ``render`` itself draws
  at the precision it is given: float64 angles are *not* rounded to float32, so the reference
  bank of the ACAI metrics, drawn at the float64 angles ``linspace(0, 2 pi - 2 pi/10000, 10000)``
  of ``lib/eval.py``, is the official bank pixel for pixel (rounding to float32 moves the lines
  at pi/4 and 3 pi/4 by one pixel).
- Labels are the paper's 10 angle bins ``int(10 * angle / (2*pi - 1e-6))``, capped at 9 (the
  official formula yields 10 for angles within 1e-6 of 2*pi).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaebench.dataset import Dataset, DatasetError, DatasetSpec
from vaebench.hookspecs import hookimpl

__all__ = ["CITATION", "draw_line", "LineRenderer", "angle_labels", "load_lines"]

CITATION = (
    "D. Berthelot, C. Raffel, A. Roy, I. Goodfellow. Understanding and Improving Interpolation "
    "in Autoencoders via an Adversarial Regularizer. ICLR 2019 (arXiv:1807.07543); lines "
    "generator after lib/data.py of github.com/brain-research/acai (Apache-2.0)."
)

TWO_PI = 2.0 * math.pi
#: The largest float32 value below 2*pi (angles are stored as float32).
_MAX_ANGLE32 = float(np.nextafter(np.float32(TWO_PI), np.float32(0.0)))
while _MAX_ANGLE32 >= TWO_PI:  # float32(2*pi) rounds up; step below it
    _MAX_ANGLE32 = float(np.nextafter(np.float32(_MAX_ANGLE32), np.float32(0.0)))


def draw_line(angle: float, size: int = 32, width: float = 2.0) -> np.ndarray:
    """One line image, float64 ``(size, size)`` in the paper's range ``[-1, 1]``.

    ``angle`` in radians (0 points right, ``pi/2`` up); the segment runs from the centre
    ``(size/2, size/2)`` for ``size/2 - 1`` px and is ``width`` px wide. Pixel coverage is
    computed exactly as the official ACAI generator does: walk the segment along its major axis
    one pixel row at a time, weight partial first/last rows by their covered fraction, and spread
    each row's ``width``-long span over the pixels it covers (partial pixels by overlap).
    """
    m = np.zeros((size, size))
    # Names follow the official code: "x" is the column, "y" the row (the image is square).
    x0 = size * 0.5
    y0 = size * 0.5
    x1 = x0 + (x0 - 1) * math.cos(-angle)
    y1 = y0 + (y0 - 1) * math.sin(-angle)
    transposed = abs(y0 - y1) < abs(x0 - x1)  # mostly horizontal: walk along columns instead
    if transposed:
        x0, x1, y0, y1 = y0, y1, x0, x1
    if y1 < y0:  # walk in increasing major-axis order
        x0, x1, y0, y1 = x1, x0, y1, y0
    x0, x1 = x0 - width / 2, x1 - width / 2  # left edge of the span
    dx = x1 - x0
    dy = y1 - y0
    slope = dx / dy if dy != 0 else 0
    first_full, last_full = int(math.ceil(y0)), int(y1)
    spans: list[tuple[int, Any, float]] = []
    for y in range(int(y0), int(math.ceil(y1))):
        if y < first_full:
            weight = first_full - y0
        elif y > last_full:
            weight = y1 - last_full
        else:
            weight = 1
        xs = x0 + (y - y0 - 0.5) * slope
        xe = xs + width
        inner = int(math.ceil(xs)), int(xe)
        if inner[0] != inner[1]:
            spans.append((y, slice(inner[0], inner[1]), weight))
        if inner[0] != xs:
            spans.append((y, int(xs), weight * (inner[0] - xs)))
        if inner[1] != xe:
            spans.append((y, inner[1], weight * (xe - inner[1])))
    for y, x, cover in spans:
        if transposed:
            m[x, y] += 2 * cover
        else:
            m[y, x] += 2 * cover
    m -= 1
    return m.clip(-1, 1)


def angle_labels(angles: np.ndarray) -> np.ndarray:
    """The paper's 10 angle bins ``int(10 * angle / (2*pi - 1e-6))``, capped at 9; int64."""
    a = np.asarray(angles, dtype=np.float64)
    return np.minimum((10 * a / (TWO_PI - 1e-6)).astype(np.int64), 9)


def _as_factor_column(factors: Any, what: str) -> np.ndarray:
    """Scalar, ``(M,)`` or ``(M, 1)`` -> float64 ``(M,)``, at the precision given (float32
    values are exact in float64; float64 values are not rounded)."""
    if isinstance(factors, Tensor):
        factors = factors.detach().cpu().numpy()
    a = np.asarray(factors, dtype=np.float64)
    if a.ndim == 0:
        a = a.reshape(1)
    elif a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    elif a.ndim != 1:
        raise DatasetError(f"{what}: expected a scalar, (M,) or (M, 1) factors, got {a.shape}")
    if not np.isfinite(a).all():
        raise DatasetError(f"{what}: factors contain NaN or infinite values")
    return a


@dataclasses.dataclass(frozen=True)
class LineRenderer:
    """``render(angles) -> (M, 1, size, size)`` float32 in ``[0, 1]``.

    ``angles``: radians, a scalar, ``(M,)`` or ``(M, 1)``; any real value (the generator's
    trigonometry makes it periodic in ``2*pi``), drawn at the precision given (float64 angles
    are not rounded to float32: the official bank's angles are float64).
    """

    size: int = 32
    width: float = 2.0

    def __call__(self, factors: Any) -> Tensor:
        angles = _as_factor_column(factors, "lines.render")
        out = np.empty((len(angles), 1, self.size, self.size), dtype=np.float32)
        for i, a in enumerate(angles):
            out[i, 0] = (draw_line(float(a), self.size, self.width) + 1.0) / 2.0
        return torch.from_numpy(out)


def _draw_angles(n: int, seed: int, stream: int) -> np.ndarray:
    """``n`` angles ``2 * pi * U[0, 1)`` from stream ``stream`` of ``seed``, float32-exact."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream]))
    a = (2 * rng.random(n) * math.pi).astype(np.float32).astype(np.float64)
    return np.minimum(a, _MAX_ANGLE32)


def load_lines(n_train: int = 10000, n_test: int = 5000, seed: int = 0, size: int = 32) -> Dataset:
    """The ACAI lines benchmark: ``(1, size, size)`` images in [0, 1], factor ``angle`` (rad).

    ``n_train`` training lines and ``n_test`` test lines (paper: 5000) with angles uniform on
    ``[0, 2*pi)``, drawn from independent streams of ``seed`` (the test set does not depend on
    ``n_train``; a smaller ``n_test`` gives a prefix of the default test set). ``size`` other than 32 departs from the paper (line length ``size/2 - 1``).
    Labels: 10 angle bins.
    """
    for key, value, low in (("n_train", n_train, 1), ("n_test", n_test, 1), ("size", size, 8)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise DatasetError(f"lines: {key} must be an integer >= {low}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DatasetError(f"lines: seed must be a non-negative integer, got {seed!r}")
    render = LineRenderer(size=size)
    a_train, a_test = _draw_angles(n_train, seed, 0), _draw_angles(n_test, seed, 1)
    return Dataset(
        name="lines",
        x_train=render(a_train),
        x_test=render(a_test),
        y_train=torch.from_numpy(angle_labels(a_train)),
        y_test=torch.from_numpy(angle_labels(a_test)),
        factors_train=torch.from_numpy(a_train).float()[:, None],
        factors_test=torch.from_numpy(a_test).float()[:, None],
        factor_names=("angle",),
        render=render,
        citation=CITATION,
        info={
            "seed": seed,
            "size": size,
            "line_length_px": size / 2 - 1,
            "line_width_px": render.width,
            "pixel_range": "[0, 1]; the paper's [-1, 1] value is 2 * x - 1",
            "factors": {"angle": {"low": 0.0, "high": TWO_PI, "periodic": True, "unit": "rad"}},
            "training": "finite seeded set (the paper streams fresh lines)",
        },
    )


#: Meaning of each option (``vaebench list datasets``).
OPTION_DOCS = {
    "n_train": "training images",
    "n_test": "test images",
    "seed": "seed of the generated images (not the run's --seeds)",
    "size": "image side in pixels",
}


@hookimpl
def vaebench_datasets():
    return [
        DatasetSpec(
            "lines",
            load_lines,
            "ACAI lines: 15 px line from the centre at a uniform angle; factor angle (rad)",
            shape=(1, 32, 32),
            sizes=(10000, 5000),
            citation=CITATION,
            option_docs=OPTION_DOCS,
        )
    ]
