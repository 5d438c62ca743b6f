"""Ground-truth interpolation metrics: the ACAI line benchmark's two scores, and the lecture's
midpoint experiment on moons.

Berthelot, Raffel, Roy & Goodfellow, "Understanding and Improving Interpolation in Autoencoders
via an Adversarial Regularizer", ICLR 2019 (arXiv 1807.07543); official code
github.com/brain-research/acai, ``lib/eval.py`` (metrics) and ``lib/train.py`` (protocol).
Definitions, following that code:

- A *reference bank* of true images at a dense grid of factor values (lines: the 10 000 angles
  ``linspace(0, 2 pi - 2 pi/10000, 10000)``; moons: 2001 phases ``linspace(0, 1, 2001)``), drawn
  with ``dataset.render``.
- Pixel values in [0, 1] are mapped to the paper's [-1, 1] by ``2 x - 1`` before any cosine
  distance (cosine distance is not invariant to that affine map).
- **Mean Distance**: for every decoded image along every interpolation, endpoints included,
  the cosine distance ``1 - <u, v> / (|u| |v|)`` to the nearest bank image; the mean over all
  images, reported x 10^-3 (unit "x10^-3"), as in the paper's Table 1.
- **Factor estimate** of a decoded image: the factor of its nearest bank image.
- **Smoothness**: per interpolation, the factor sequence ``f_0 .. f_{T-1}`` (unwrapped with period
  2 pi for the periodic angle; phase is not periodic and is not unwrapped) scores
  ``max_t |f_{t+1} - f_t| / |f_{T-1} - f_0| - 1/(T-1)`` -- 0 for an even path; an interpolation
  whose total change ``|f_{T-1} - f_0|`` is below 1e-4 scores NaN, and the reported mean sums the
  non-NaN scores but divides by the number of all interpolations (the official ``line_eval``).
- Protocol: ``n_pairs`` (256) interpolations of ``n_steps`` (16) points between ``2 n_pairs``
  random test images, image ``i`` paired with image ``i + n_pairs``; codes mixed linearly (or by
  slerp, an option), endpoints are the decoded reconstructions.

Extras (not in the paper): the standard error of each mean; ``smoothness_undefined``, the
fraction of NaN interpolations; ``factor_path_error``, the mean absolute difference between the
estimated factor and the ideal straight path between the endpoints' true factors (shortest arc
for angles); ``pairs_midpoint_mse``, the MSE between the decoded code midpoint and the true image
at the ideal midpoint factor, averaged over the same pairs.

The lecture's experiment (metric ``midpoint``, moons only): encode a full moon (``render(1.0)``)
and a half moon (``render(0.5)``), decode the code half-way between them and compare it with the
true three-quarter moon ``render(0.75)`` (the phase is the lit area fraction, so 0.75 is the
midpoint of 1 and 0.5).
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaebench.dataset import check_factor_info
from vaebench.hookspecs import hookimpl
from vaebench.metric import EvalContext, Value
from vaebench.metrics.interpolation import (
    INTERPOLATION_OPTION_DOCS,
    INTERPOLATION_OPTIONS,
    InterpolationMetric,
    decode_paths,
    draw_pairs,
    interpolation_options,
    mean_and_se,
    step_fractions,
)

__all__ = [
    "FactorSpec",
    "KNOWN_FACTORS",
    "factor_spec",
    "ReferenceBank",
    "reference_bank",
    "to_signed",
    "cosine_distance",
    "smoothness_scores",
    "mean_smoothness",
    "ideal_factors",
    "AcaiInterpolation",
    "LectureMidpoint",
]

#: Total factor change below which an interpolation's smoothness is undefined (official code).
SMOOTHNESS_MIN_CHANGE = 1e-4
#: Bank images whose float32 cosine similarity is within this margin of a query's best are
#: re-scored exactly in float64 (float32 rounding of a unit-vector dot product is ~1e-6 at most).
SHORTLIST_MARGIN = 1e-5
#: Scale of reported cosine distances (the paper's Table 1 unit).
DISTANCE_SCALE = 1e3
DISTANCE_UNIT = "×10⁻³"

#: Sources of the values, shown in the report's glossary.
REF_ACAI = (
    "Berthelot, Raffel, Roy & Goodfellow, Understanding and Improving Interpolation in "
    "Autoencoders via an Adversarial Regularizer, ICLR 2019 (Table 1; lib/eval.py)"
)
REF_EXTRA = "vaebench's extension of the ACAI protocol (docs/interpolation.md)"
REF_LECTURE = "vaebench's moons midpoint experiment (docs/interpolation.md)"


@dataclasses.dataclass(frozen=True)
class FactorSpec:
    """The single ground-truth factor of a synthetic dataset and its reference bank grid.

    ``periodic`` factors (angles) have period ``high - low``; the bank then holds
    ``linspace(low, high - (high - low)/bank_size, bank_size)`` (the official line bank);
    otherwise ``linspace(low, high, bank_size)``.
    """

    name: str
    low: float
    high: float
    periodic: bool
    bank_size: int
    unit: str = ""

    @property
    def period(self) -> float | None:
        return (self.high - self.low) if self.periodic else None

    def grid(self) -> np.ndarray:
        """Bank factor values ``(bank_size,)`` float64."""
        if self.periodic:
            span = self.high - self.low
            return np.linspace(self.low, self.high - span / self.bank_size, self.bank_size)
        return np.linspace(self.low, self.high, self.bank_size)


#: Factors vaebench knows by name: lines' angle (radians, periodic; the paper's 10 000-line bank)
#: and moons' phase (lit fraction, 0 new .. 1 full).
KNOWN_FACTORS: dict[str, FactorSpec] = {
    "angle": FactorSpec("angle", 0.0, 2.0 * math.pi, True, 10_000, "rad"),
    "phase": FactorSpec("phase", 0.0, 1.0, False, 2_001, "phase"),
}
DEFAULT_BANK_SIZE = 2_001


def factor_spec(dataset: Any) -> FactorSpec | None:
    """The dataset's single ground-truth factor, or ``None`` when the ground-truth metrics do not
    apply (no renderer, not exactly one factor, an empty range, or a factor vaebench does not
    know that declares no range).

    The range comes from ``dataset.info["factors"][name]`` (keys
    :data:`vaebench.dataset.FACTOR_KEYS`: ``low``, ``high``, optional ``periodic``, ``unit``,
    ``bank_size``) when the dataset declares it, else from :data:`KNOWN_FACTORS`; the bank size
    from the declaration, else the known factor's, else :data:`DEFAULT_BANK_SIZE`. A declaration
    with an unknown key (``range``, ``min``...) raises :class:`vaebench.errors.DatasetError`
    naming it and the valid keys -- never a silent skip.
    """
    if not getattr(dataset, "has_factors", False):
        return None
    names = tuple(getattr(dataset, "factor_names", ()) or ())
    declared_all = (getattr(dataset, "info", None) or {}).get("factors")
    check_factor_info(declared_all, names, f"dataset {getattr(dataset, 'name', '?')!r}")
    if dataset.factors_test.ndim != 2 or dataset.factors_test.shape[1] != 1:
        return None
    if len(names) != 1:
        return None
    name = names[0]
    known = KNOWN_FACTORS.get(name)
    declared = (declared_all or {}).get(name)
    if declared is None:
        return known
    low, high = float(declared["low"]), float(declared["high"])
    if not high > low:
        return None
    default_size = known.bank_size if known else DEFAULT_BANK_SIZE
    unit = declared.get("unit", known.unit if known else "")
    return FactorSpec(
        name,
        low,
        high,
        bool(declared.get("periodic", False)),
        int(declared.get("bank_size", default_size)),
        str(unit),
    )


def to_signed(images: Tensor) -> Tensor:
    """Images in [0, 1] ``(N, ...)`` -> flat vectors ``(N, D)`` in [-1, 1] (``2 x - 1``), same dtype."""
    return images.reshape(images.shape[0], -1) * 2.0 - 1.0


def cosine_distance(u: Tensor, v: Tensor) -> Tensor:
    """Row-wise ``1 - <u, v> / (|u| |v|)`` in float64 for ``(N, D)`` vectors; a zero vector has
    cosine 0 (distance 1) where scipy's ``cdist`` would give NaN."""
    u, v = u.double(), v.double()
    den = u.norm(dim=1) * v.norm(dim=1)
    cos = (u * v).sum(1) / den.clamp_min(1e-300)
    return (1.0 - torch.where(den > 0, cos, torch.zeros_like(cos))).clamp_min(0.0)


class ReferenceBank:
    """True images at a grid of factor values, searched by cosine distance.

    ``factors`` ``(K,)``; ``images`` ``(K, C, H, W)`` in [0, 1]. :meth:`nearest` finds, with one
    float32 matmul on unit vectors, every bank image within :data:`SHORTLIST_MARGIN` of the best
    cosine similarity, re-scores those exactly in float64 (pixels mapped to [-1, 1] in float64)
    and keeps the best; exact ties go to the lowest bank index, as ``numpy.argmin`` on scipy's
    ``cdist`` does in the official code.
    """

    def __init__(self, factors: np.ndarray, images: Tensor) -> None:
        if images.shape[0] != len(factors):
            raise ValueError(f"bank has {images.shape[0]} images for {len(factors)} factors")
        self.factors = np.asarray(factors, dtype=np.float64)
        self.shape = tuple(images.shape[1:])
        # pixels kept as rendered ([0, 1], float32); 2x - 1 is taken in float64 when re-scoring
        self.pixels = images.float().reshape(images.shape[0], -1).contiguous()  # (K, D)
        signed = to_signed(self.pixels)
        self.unit = signed / signed.norm(dim=1, keepdim=True).clamp_min(1e-12)  # float32

    def __len__(self) -> int:
        return len(self.factors)

    def nearest(
        self, images: Tensor, batch_size: int = 512
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For images ``(M, C, H, W)`` in [0, 1]: cosine distance to the nearest bank image
        (float64, unitless, *not* scaled), that image's factor, and its bank index; each ``(M,)``.
        """
        if tuple(images.shape[1:]) != self.shape:
            raise ValueError(
                f"images of shape {tuple(images.shape[1:])} do not match the bank's {self.shape}"
            )
        dists, idxs = [], []
        for i in range(0, images.shape[0], batch_size):
            qd = to_signed(images[i : i + batch_size].cpu().double())  # (m, D) float64
            q = qd.float()
            qn = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
            sims = qn @ self.unit.T  # (m, K) float32
            near = sims >= sims.max(1, keepdim=True).values - SHORTLIST_MARGIN
            rows, cols = near.nonzero(as_tuple=True)  # the shortlist, row-major
            cand = self.pixels[cols].double() * 2.0 - 1.0  # (n, D) float64
            qr = qd[rows]
            den = cand.norm(dim=1) * qr.norm(dim=1)
            cos = (cand * qr).sum(1) / den.clamp_min(1e-300)
            cos = torch.where(den > 0, cos, torch.zeros_like(cos))
            exact = torch.full(sims.shape, -math.inf, dtype=torch.float64)
            exact[rows, cols] = cos
            best = exact.argmax(1)  # first maximum = lowest bank index among ties
            dists.append((1.0 - exact[torch.arange(q.shape[0]), best]).clamp_min(0.0))
            idxs.append(best)
        dist = torch.cat(dists).numpy()
        idx = torch.cat(idxs).numpy()
        return dist, self.factors[idx], idx


def render_images(dataset: Any, factors: np.ndarray, chunk: int = 256) -> Tensor:
    """``dataset.render`` for factor values ``(M,)``, in chunks; returns ``(M, C, H, W)`` float.

    Factors are passed as float64 ``(m, 1)`` arrays, never rounded: the ``lines`` renderer then
    draws the official bank exactly (``draw_line`` at the float64 ``linspace`` angles of
    ``closest_line`` in lib/eval.py; float32 angles move the lines at pi/4 and 3 pi/4 by a
    pixel)."""
    f = np.asarray(factors, dtype=np.float64).reshape(-1, 1)
    out = []
    for i in range(0, f.shape[0], chunk):
        img = dataset.render(f[i : i + chunk])
        out.append(torch.as_tensor(np.asarray(img) if not isinstance(img, Tensor) else img))
    return torch.cat(out).float().cpu()


_BANKS: collections.OrderedDict[tuple, tuple[Any, ReferenceBank]] = collections.OrderedDict()
_MAX_BANKS = 4


def reference_bank(dataset: Any, spec: FactorSpec) -> ReferenceBank:
    """The reference bank of ``dataset``: ``dataset.render`` at ``spec.grid()`` (float64; see
    :func:`render_images`), built once per renderer and spec, then cached."""
    key = (id(dataset.render), spec, tuple(dataset.shape))
    hit = _BANKS.get(key)
    if hit is not None and hit[0] is dataset.render:
        _BANKS.move_to_end(key)
        return hit[1]
    grid = spec.grid()
    bank = ReferenceBank(grid, render_images(dataset, grid))
    _BANKS[key] = (dataset.render, bank)  # holding render keeps its id from being reused
    while len(_BANKS) > _MAX_BANKS:
        _BANKS.popitem(last=False)
    return bank


def smoothness_scores(factors: np.ndarray, period: float | None = None) -> np.ndarray:
    """Per-interpolation smoothness of factor sequences ``(P, T)``, as the official
    ``smoothness_score``: unwrap (only when ``period`` is given), then
    ``max |step| / |end - start| - 1/(T-1)``; NaN where ``|end - start| < 1e-4``. ``(P,)``."""
    f = np.atleast_2d(np.asarray(factors, dtype=np.float64))
    if period is not None:
        f = np.unwrap(f, axis=-1, period=period)
    diffs = np.abs(np.diff(f, axis=-1))
    total = np.abs(f[:, :1] - f[:, -1:])
    undefined = (total < SMOOTHNESS_MIN_CHANGE).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        deviation = np.max(diffs / total, axis=-1) - 1.0 / (f.shape[1] - 1)
    deviation[undefined] = np.nan
    return deviation


def mean_smoothness(scores: np.ndarray) -> tuple[float, float]:
    """The official mean (non-NaN scores summed, divided by *all* interpolations; NaN if all are
    NaN) and its standard error (NaN counted as 0, consistent with that mean)."""
    s = np.asarray(scores, dtype=np.float64)
    nan = np.isnan(s)
    if s.size == 0 or nan.all():
        return math.nan, math.nan
    filled = np.where(nan, 0.0, s)
    mean = float(filled.sum() / s.size)
    se = float(filled.std(ddof=1) / math.sqrt(s.size)) if s.size > 1 else math.nan
    return mean, se


def ideal_factors(
    f_a: np.ndarray, f_b: np.ndarray, t: np.ndarray, period: float | None
) -> np.ndarray:
    """The straight factor path ``(P, T)`` from ``f_a`` to ``f_b`` (each ``(P,)``) at fractions
    ``t`` ``(T,)``; for a periodic factor along the shorter arc."""
    f_a = np.asarray(f_a, dtype=np.float64)
    f_b = np.asarray(f_b, dtype=np.float64)
    delta = f_b - f_a
    if period is not None:
        delta = (delta + period / 2) % period - period / 2
    return f_a[:, None] + np.asarray(t, dtype=np.float64)[None, :] * delta[:, None]


def factor_error(estimate: np.ndarray, ideal: np.ndarray, period: float | None) -> np.ndarray:
    """``|estimate - ideal|`` elementwise; for a periodic factor the shorter way round."""
    d = np.asarray(estimate, dtype=np.float64) - np.asarray(ideal, dtype=np.float64)
    if period is not None:
        d = (d + period / 2) % period - period / 2
    return np.abs(d)


def _applicable_spec(metric: Any, model: Any, dataset: Any) -> FactorSpec:
    """The dataset's ground-truth factor, for a metric evaluated where its ``applies_to``
    holds; else ``ValueError`` with the reason ``applies_to`` gives (the harness asks first)."""
    reason = metric.applies_to(model, dataset)
    spec = factor_spec(dataset)
    if reason is not True or spec is None:
        raise ValueError(f"{metric.name} does not apply to dataset {dataset.name!r}: {reason}")
    return spec


class AcaiInterpolation(InterpolationMetric):
    """The ACAI paper's Mean Distance and Smoothness, plus extras (see module docstring)."""

    name = "acai"
    version = 2  # per-metric random stream
    values = (
        Value("mean_distance", False, DISTANCE_UNIT, 2,
              "ACAI Mean Distance: cosine distance of decoded interpolants (endpoints included, "
              "pixels mapped to [-1, 1]) to the nearest true image, x1e-3", REF_ACAI),
        Value("mean_distance_se", None, DISTANCE_UNIT, 2,
              "standard error of mean_distance over interpolations", REF_ACAI),
        Value("smoothness", False, "", 3,
              "ACAI Smoothness: max |factor step| / |factor change| - 1/(T-1); 0 = even",
              REF_ACAI),
        Value("smoothness_se", None, "", 3, "standard error of smoothness", REF_ACAI),
        Value("smoothness_undefined", None, "fraction", 3,
              "interpolations whose factor changes < 1e-4 (NaN, counted as 0 in the mean)",
              REF_ACAI),
        Value("factor_path_error", False, "factor units", 3,
              "mean |estimated factor - straight path between the endpoints' true factors|",
              REF_EXTRA),
        Value("factor_path_error_se", None, "factor units", 3,
              "standard error of factor_path_error", REF_EXTRA),
        Value("pairs_midpoint_mse", False, "per pixel", 5,
              "MSE of the decoded code midpoint against the true image at the midpoint factor",
              REF_EXTRA),
        Value("pairs_midpoint_mse_se", None, "per pixel", 5,
              "standard error of pairs_midpoint_mse", REF_EXTRA),
    )  # fmt: skip

    def applies_to(self, model: Any, dataset: Any) -> bool | str:
        if factor_spec(dataset) is None:
            return "needs a dataset with one known ground-truth factor and render()"
        if dataset.x_test.shape[0] < 2:
            return "needs at least 2 test images"
        return True

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        spec = _applicable_spec(self, model, dataset)
        bank = reference_bank(dataset, spec)
        n_pairs, n_steps, method = interpolation_options(ctx)
        x, f = dataset.x_test, dataset.factors_test[:, 0].double().numpy()
        a, b = draw_pairs(x.shape[0], n_pairs, ctx.generator)
        t = step_fractions(n_steps)
        bs = ctx.eval_batch_size
        paths = decode_paths(model, x[a], x[b], t, method, bs)  # (P, T, C, H, W)
        scores = interpolation_scores(paths, bank, spec.period)

        ideal = ideal_factors(f[a.numpy()], f[b.numpy()], t.numpy(), spec.period)
        path_err = factor_error(scores["factors"], ideal, spec.period).mean(1)

        mid = decode_paths(model, x[a], x[b], torch.tensor([0.5]), method, bs)[:, 0]
        mid_f = ideal_factors(f[a.numpy()], f[b.numpy()], np.array([0.5]), spec.period)[:, 0]
        if spec.period is not None:
            mid_f = spec.low + np.mod(mid_f - spec.low, spec.period)
        truth = render_images(dataset, mid_f)
        mid_mse = (mid.double() - truth.double()).pow(2).reshape(mid.shape[0], -1).mean(1)

        out = {
            "mean_distance": scores["mean_distance"],
            "mean_distance_se": scores["mean_distance_se"],
            "smoothness": scores["smoothness"],
            "smoothness_se": scores["smoothness_se"],
            "smoothness_undefined": scores["smoothness_undefined"],
        }
        out["factor_path_error"], out["factor_path_error_se"] = mean_and_se(path_err)
        out["pairs_midpoint_mse"], out["pairs_midpoint_mse_se"] = mean_and_se(mid_mse.numpy())
        return out


def interpolation_scores(
    paths: Tensor, bank: ReferenceBank, period: float | None
) -> dict[str, Any]:
    """ACAI scores of decoded interpolations ``paths`` ``(P, T, C, H, W)`` in [0, 1].

    Returns ``mean_distance`` (x 10^-3) and its SE over interpolations, ``smoothness`` (official
    mean) and its SE, ``smoothness_undefined`` (NaN fraction), and the per-image arrays
    ``distances`` (unscaled) and ``factors``, each ``(P, T)``.
    """
    p, t = paths.shape[:2]
    dist, fac, _ = bank.nearest(paths.reshape(p * t, *paths.shape[2:]))
    dist, fac = dist.reshape(p, t), fac.reshape(p, t)
    per_path = dist.mean(1) * DISTANCE_SCALE
    _, md_se = mean_and_se(per_path)
    smooth = smoothness_scores(fac, period)
    s_mean, s_se = mean_smoothness(smooth)
    return {
        "mean_distance": float(dist.mean() * DISTANCE_SCALE),
        "mean_distance_se": md_se,
        "smoothness": s_mean,
        "smoothness_se": s_se,
        "smoothness_undefined": float(np.isnan(smooth).mean()),
        "distances": dist,
        "factors": fac,
    }


#: The lecture's pair and its true midpoint (phases: full moon, half moon, three-quarter moon).
LECTURE_FULL, LECTURE_HALF, LECTURE_MID = 1.0, 0.5, 0.75


class LectureMidpoint(InterpolationMetric):
    """The lecture's experiment on moons: decode the code midpoint of a full and a half moon.

    Values (``x_mid`` = decoded midpoint, ``x_3/4`` = ``render(0.75)``):

    - ``midpoint_mse``: mean over pixels of ``(x_mid - x_3/4)^2``, pixels in [0, 1];
    - ``midpoint_cosine``: cosine distance between ``x_mid`` and ``x_3/4`` (pixels mapped to
      [-1, 1]), x 10^-3 -- the unit of ``mean_distance``;
    - ``midpoint_phase``: phase of the nearest true moon in the reference bank (ideal 0.75) and
      ``midpoint_phase_error`` = ``|midpoint_phase - 0.75|``;
    - ``midpoint_realism``: cosine distance (x 10^-3) from ``x_mid`` to the nearest true moon of
      any phase -- small when the midpoint looks like *some* moon, right phase or not;
    - ``midpoint_endpoint_mse``: mean of the reconstruction MSEs of the full and the half moon
      (how well the endpoints themselves come back).

    Artifacts: ``midpoint_strip`` ``(4, C, H, W)`` = decoded full, decoded midpoint, decoded half,
    true 3/4 moon; ``midpoint_truth`` ``(3, C, H, W)`` = true full, 3/4 and half moon.
    """

    name = "midpoint"
    options = {"interpolation": INTERPOLATION_OPTIONS["interpolation"]}
    option_docs = {"interpolation": INTERPOLATION_OPTION_DOCS["interpolation"]}
    values = (
        Value("midpoint_mse", False, "per pixel", 5,
              "MSE between the decoded code midpoint of full and half moon and the true 3/4 moon",
              REF_LECTURE),
        Value("midpoint_cosine", False, DISTANCE_UNIT, 2,
              "cosine distance ([-1, 1] pixels) of that midpoint to the true 3/4 moon, x1e-3",
              REF_LECTURE),
        Value("midpoint_phase", None, "phase", 3,
              "phase of the true moon nearest the decoded midpoint (ideal 0.75)", REF_LECTURE),
        Value("midpoint_phase_error", False, "phase", 3, "|midpoint_phase - 0.75|",
              REF_LECTURE),
        Value("midpoint_realism", False, DISTANCE_UNIT, 2,
              "cosine distance of the decoded midpoint to the nearest true moon of any phase",
              REF_LECTURE),
        Value("midpoint_endpoint_mse", False, "per pixel", 5,
              "mean reconstruction MSE of the full and the half moon", REF_LECTURE),
    )  # fmt: skip

    def applies_to(self, model: Any, dataset: Any) -> bool | str:
        spec = factor_spec(dataset)
        if spec is None or spec.name != "phase":
            return "needs a moons dataset (ground-truth factor 'phase')"
        return True

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        spec = _applicable_spec(self, model, dataset)
        _, _, method = interpolation_options(ctx)
        bank = reference_bank(dataset, spec)
        true = render_images(dataset, np.array([LECTURE_FULL, LECTURE_MID, LECTURE_HALF]))
        full, three_q, half = true[0:1], true[1:2], true[2:3]
        dec = decode_paths(model, full, half, torch.tensor([0.0, 0.5, 1.0]), method)[0]
        dec_full, dec_mid, dec_half = dec[0:1], dec[1:2], dec[2:3]

        def mse(u: Tensor, v: Tensor) -> float:
            return float((u.double() - v.double()).pow(2).mean())

        dist, phase, _ = bank.nearest(dec_mid)
        cos = cosine_distance(to_signed(dec_mid), to_signed(three_q))
        ctx.add_artifact("midpoint_strip", torch.cat([dec_full, dec_mid, dec_half, three_q]))
        ctx.add_artifact("midpoint_truth", true)
        return {
            "midpoint_mse": mse(dec_mid, three_q),
            "midpoint_cosine": float(cos[0]) * DISTANCE_SCALE,
            "midpoint_phase": float(phase[0]),
            "midpoint_phase_error": abs(float(phase[0]) - LECTURE_MID),
            "midpoint_realism": float(dist[0]) * DISTANCE_SCALE,
            "midpoint_endpoint_mse": 0.5 * (mse(dec_full, full) + mse(dec_half, half)),
        }


@hookimpl
def vaebench_metrics():
    return [AcaiInterpolation(), LectureMidpoint()]
