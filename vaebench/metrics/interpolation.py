"""Interpolation in latent space: shared machinery and the ``interpolation`` metric.

The shared machinery (used by :mod:`vaebench.metrics.acai` too):

- :func:`draw_pairs` -- endpoint pairs as in the ACAI protocol: ``2 * n_pairs`` random test
  images, image ``i`` paired with image ``i + n_pairs``;
- :func:`mix_codes` -- points along the line (``linear``) or the great circle (``slerp``) between
  two codes, at ``t = 0, 1/(T-1), ..., 1``;
- :func:`decode_paths` -- encode the endpoints, mix, decode: images ``(P, T, C, H, W)``.

The ``interpolation`` metric needs no ground truth and applies to every dataset (digits,
Fashion-MNIST, user data). With ``x_t`` the decoded image at step ``t`` (``t = 0 .. T-1``, pixel
values in [0, 1], Euclidean norm over pixels) and ``d_t = ||x_{t+1} - x_t||``:

- ``path_length_ratio`` = ``sum_t d_t / ||x_{T-1} - x_0||`` -- 1 for a straight path in pixel
  space (a cross-fade), larger when the decoded images wander. Descriptive, not a score: the
  path through *true* images of a curved data manifold is longer than the straight line too
  (rotating lines, changing moon phases), so it is declared without a direction;
- ``path_step_ratio`` = ``max_t d_t / mean_t d_t`` -- 1 when every step changes the image equally,
  up to ``T - 1`` when the whole change happens in one step (a jump). Descriptive too (since
  version 3): a linear decoder (PCA) maps the straight code line to evenly spaced images, so it
  scores 1 by construction whatever the images look like;
- ``midpoint_nn_ratio`` = ``NN(x_mid) / NN((x_a + x_b) / 2)`` where ``x_mid`` decodes the code
  half-way (``t = 1/2``), ``(x_a + x_b) / 2`` is the pixel cross-fade of the two real endpoint
  images and ``NN(x)`` is the Euclidean distance from ``x`` to its nearest training image: 1
  means the decoded midpoint lies as far from real data as a cross-fade does (a linear decoder
  lands near 1 by construction), below 1 closer to real data. The normaliser is the same for
  every model of a seed (the pairs depend on the seed only), so the ratio compares models pair
  by pair. (Before version 3 the normaliser was the median nearest-neighbour distance of test
  images, which is tiny on densely sampled synthetic data: moons read 100-200 for every model.)

Each is averaged over the pairs (pairs where it is undefined -- equal endpoints, no change, a
cross-fade that is itself a training image -- are left out of its mean); the standard error of
that mean is reported next to it (``*_se``). See ``docs/interpolation.md`` for the formulas and
their caveats.

The metric also stores the artifact ``interp_strip`` ``(T, C, H, W)``: the decoded path between
two fixed test images (the same for every model of a dataset) for the report's strip figure.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaebench.hookspecs import hookimpl
from vaebench.metric import EvalContext, Metric, Value

__all__ = [
    "INTERPOLATIONS",
    "draw_pairs",
    "mix_codes",
    "decode_batched",
    "encode_batched",
    "step_fractions",
    "path_scores",
    "decode_paths",
    "interpolation_options",
    "mean_and_se",
    "nearest_distances",
    "strip_pair",
    "midpoint_nn_ratios",
    "PathInterpolation",
]

#: Source of the interpolation values without ground truth: vaebench's own definitions.
REF_OWN = "vaebench's own definition (docs/interpolation.md)"

#: Ways of moving between two codes (``ctx.options["interpolation"]``).
INTERPOLATIONS = ("linear", "slerp")

#: Endpoints whose images differ by less than this RMS pixel value count as equal.
SAME_IMAGE_RMS = 1e-4
#: At most this many training images form the nearest-neighbour reference set.
MAX_REFERENCE_IMAGES = 10_000


#: Options of the interpolation metrics (``--set eval.n_pairs=64``), shared by
#: ``interpolation``, ``acai`` and ``midpoint``.
INTERPOLATION_OPTIONS: dict[str, Any] = {"n_pairs": 256, "n_steps": 16, "interpolation": "linear"}
INTERPOLATION_OPTION_DOCS = {
    "n_pairs": "interpolations per cell (ACAI protocol: 256); 1 to 100000",
    "n_steps": "decoded points per interpolation, endpoints included (ACAI: 16); 3 to 1000",
    "interpolation": "how codes are mixed: linear or slerp (great circle)",
}
#: Upper bounds of the interpolation options (bounded work per cell).
MAX_PAIRS, MAX_STEPS = 100_000, 1_000


def check_interpolation_options(options: dict[str, Any]) -> None:
    """Validate the interpolation options present in ``options`` (ValueError names the key)."""
    if "n_pairs" in options and not 1 <= options["n_pairs"] <= MAX_PAIRS:
        raise ValueError(
            f"invalid value {options['n_pairs']!r} for eval.n_pairs: expected 1 to {MAX_PAIRS}"
        )
    if "n_steps" in options and not 3 <= options["n_steps"] <= MAX_STEPS:
        raise ValueError(
            f"invalid value {options['n_steps']!r} for eval.n_steps: expected 3 to {MAX_STEPS}"
        )
    if "interpolation" in options and options["interpolation"] not in INTERPOLATIONS:
        raise ValueError(
            f"invalid value {options['interpolation']!r} for eval.interpolation; valid: "
            f"{', '.join(INTERPOLATIONS)}"
        )


def interpolation_options(ctx: EvalContext) -> tuple[int, int, str]:
    """``(n_pairs, n_steps, interpolation)`` from ``ctx.options`` (defaults 256, 16, linear)."""
    n_pairs = int(ctx.options.get("n_pairs", 256))
    n_steps = int(ctx.options.get("n_steps", 16))
    method = str(ctx.options.get("interpolation", "linear"))
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    if n_steps < 3:
        raise ValueError(f"n_steps must be >= 3, got {n_steps}")
    if method not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {method!r}; valid: {', '.join(INTERPOLATIONS)}")
    return n_pairs, n_steps, method


def draw_pairs(n_images: int, n_pairs: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Indices ``(a, b)``, each ``(n_pairs,)`` long, of the endpoint images of each interpolation.

    As in the ACAI protocol: ``2 * n_pairs`` distinct images in random order, the first half
    paired with the second half (image ``i`` with image ``i + n_pairs``). When there are fewer
    than ``2 * n_pairs`` images, pairs are drawn with replacement (``a != b`` within a pair).
    """
    if n_images < 2:
        raise ValueError(f"need at least 2 images to interpolate between, got {n_images}")
    if n_images >= 2 * n_pairs:
        idx = torch.randperm(n_images, generator=generator)[: 2 * n_pairs]
        return idx[:n_pairs], idx[n_pairs:]
    a = torch.randint(n_images, (n_pairs,), generator=generator)
    shift = torch.randint(1, n_images, (n_pairs,), generator=generator)
    return a, (a + shift) % n_images


def mix_codes(z_a: Tensor, z_b: Tensor, t: Tensor, method: str = "linear") -> Tensor:
    """Codes along the way from ``z_a`` to ``z_b``.

    ``z_a``, ``z_b``: ``(P, D)``; ``t``: ``(T,)`` mixing fractions (0 gives ``z_a``, 1 gives
    ``z_b``). Returns ``(P, T, D)``.

    ``linear``: ``(1 - t) z_a + t z_b``. ``slerp`` (as in the ACAI code): with ``w`` the angle
    between the codes, ``sin((1 - t) w) / sin(w) z_a + sin(t w) / sin(w) z_b`` -- the great-circle
    arc when the codes have equal norms; pairs with ``sin(w) < 1e-6`` (parallel codes) or a zero
    code fall back to linear mixing.
    """
    if method not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {method!r}; valid: {', '.join(INTERPOLATIONS)}")
    za = z_a.double()[:, None, :]
    zb = z_b.double()[:, None, :]
    tt = t.double().to(za.device)[None, :, None]
    linear = (1.0 - tt) * za + tt * zb
    if method == "linear":
        return linear.to(z_a.dtype)
    na = z_a.double().norm(dim=1)
    nb = z_b.double().norm(dim=1)
    cos = (z_a.double() * z_b.double()).sum(1) / (na * nb).clamp_min(1e-300)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    ok = (sin > 1e-6) & (na > 0) & (nb > 0)
    safe_sin = torch.where(ok, sin, torch.ones_like(sin))[:, None, None]
    om = omega[:, None, None]
    slerp = (torch.sin((1.0 - tt) * om) * za + torch.sin(tt * om) * zb) / safe_sin
    return torch.where(ok[:, None, None], slerp, linear).to(z_a.dtype)


def _batched(fn: Any, t: Tensor, device: torch.device, batch_size: int) -> Tensor:
    """``fn`` of ``t`` in batches of ``batch_size`` rows moved to ``device``, under inference
    mode; the outputs as one float32 CPU tensor."""
    outs = []
    with torch.inference_mode():
        for i in range(0, t.shape[0], batch_size):
            outs.append(fn(t[i : i + batch_size].to(device)).float().cpu())
    return torch.cat(outs)


def decode_batched(model: Any, z: Tensor, batch_size: int) -> Tensor:
    """``model.decode`` in batches under inference mode; codes ``(N, D)`` -> CPU images."""
    return _batched(model.decode, z, model.device, batch_size)


def encode_batched(model: Any, x: Tensor, batch_size: int) -> Tensor:
    """``model.encode`` in batches under inference mode; images ``(N, C, H, W)`` -> CPU codes."""
    return _batched(model.encode, x, model.device, batch_size)


def decode_paths(
    model: Any,
    x_a: Tensor,
    x_b: Tensor,
    t: Tensor,
    method: str = "linear",
    batch_size: int = 1024,
) -> Tensor:
    """Decoded interpolations between images ``x_a`` and ``x_b`` (each ``(P, C, H, W)``).

    Both are encoded with ``model.encode``, their codes mixed at the fractions ``t`` ``(T,)``
    (see :func:`mix_codes`) and decoded with ``model.decode``. The endpoints of the path are the
    decoded reconstructions, not the inputs. Returns ``(P, T, C, H, W)`` in [0, 1] on the CPU.
    """
    p = x_a.shape[0]
    z = encode_batched(model, torch.cat([x_a, x_b]), batch_size)
    codes = mix_codes(z[:p], z[p:], t, method)  # (P, T, D)
    images = decode_batched(model, codes.reshape(-1, codes.shape[-1]), batch_size)
    return images.reshape(p, t.shape[0], *images.shape[1:])


def step_fractions(n_steps: int) -> Tensor:
    """``t = 0, 1/(T-1), ..., 1`` as float64, ``(T,)``."""
    return torch.arange(n_steps, dtype=torch.float64) / (n_steps - 1)


def mean_and_se(values: np.ndarray) -> tuple[float, float]:
    """Mean of the finite entries of ``values`` and its standard error ``std(ddof=1)/sqrt(n)``.

    NaN when no entry is finite; the SE is NaN with fewer than two finite entries.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan
    if v.size == 1:
        return float(v[0]), math.nan
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


def nearest_distances(queries: Tensor, reference: Tensor, batch_size: int = 512) -> Tensor:
    """Euclidean distance from each query to its nearest reference vector.

    ``queries`` ``(M, ...)`` and ``reference`` ``(K, ...)`` are flattened to vectors; computed as
    ``sqrt(|q|^2 + |r|^2 - 2 q.r)`` in float64 in batches. Returns ``(M,)`` float64.
    """
    q = queries.reshape(queries.shape[0], -1).double()
    r = reference.reshape(reference.shape[0], -1).double()
    r_sq = (r * r).sum(1)
    out = []
    for i in range(0, q.shape[0], batch_size):
        qb = q[i : i + batch_size]
        d2 = (qb * qb).sum(1, keepdim=True) + r_sq[None, :] - 2.0 * qb @ r.T
        out.append(d2.min(1).values.clamp_min(0.0).sqrt())
    return torch.cat(out)


def strip_pair(x: Tensor, pool: int = 512) -> tuple[int, int]:
    """The fixed pair of test images shown in ``interp_strip``: image 0 and, among the first
    ``pool`` images, the one farthest from it in pixel space (so the strip shows a real change).
    Depends on the dataset only, so every model of a dataset shows the same pair."""
    n = min(pool, x.shape[0])
    flat = x[:n].reshape(n, -1).double()
    d = (flat - flat[0]).pow(2).sum(1)
    return 0, int(d.argmax())


def path_scores(paths: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair ``path_length_ratio`` and ``path_step_ratio`` of decoded paths ``(P, T, ...)``.

    Returns two float64 arrays ``(P,)``; NaN where undefined (endpoint images closer than
    :data:`SAME_IMAGE_RMS` RMS per pixel for the length ratio; no change at all for the step
    ratio).
    """
    p, t = paths.shape[:2]
    flat = paths.reshape(p, t, -1).double()
    d = flat.shape[-1]
    steps = (flat[:, 1:] - flat[:, :-1]).norm(dim=-1)  # (P, T-1)
    direct = (flat[:, -1] - flat[:, 0]).norm(dim=-1)  # (P,)
    total = steps.sum(1)
    length_ratio = torch.where(
        direct > SAME_IMAGE_RMS * math.sqrt(d), total / direct.clamp_min(1e-300), math.nan
    )
    mean_step = steps.mean(1)
    step_ratio = torch.where(
        mean_step > 0, steps.max(1).values / mean_step.clamp_min(1e-300), math.nan
    )
    return length_ratio.numpy(), step_ratio.numpy()


def midpoint_nn_ratios(mid: Tensor, end_a: Tensor, end_b: Tensor, reference: Tensor) -> np.ndarray:
    """Per pair ``NN(mid) / NN((end_a + end_b) / 2)``: the distance of each decoded code
    midpoint ``mid`` to its nearest ``reference`` image over that of the pixel cross-fade of
    the pair's decoded endpoints ``end_a``, ``end_b`` (the reconstructions of the endpoint
    images). All ``(P, C, H, W)``; ``NN`` is the Euclidean distance over pixels. A linear
    decoder gives exactly the cross-fade (1, up to clipping to [0, 1]); below 1 the model's
    midpoint lies closer to real data than a blend of its own reconstructions. Returns float64
    ``(P,)``; NaN where the cross-fade is itself a reference image (distance below 1e-12)."""
    mid_nn = nearest_distances(mid, reference)
    fade_nn = nearest_distances(0.5 * (end_a.double() + end_b.double()), reference)
    ratio = torch.where(fade_nn > 1e-12, mid_nn / fade_nn.clamp_min(1e-300), math.nan)
    return ratio.numpy()


class InterpolationMetric(Metric):
    """A metric of the interpolation group: the interpolation options (``n_pairs``,
    ``n_steps``, ``interpolation``; a subclass may declare fewer), checked by
    :func:`check_interpolation_options`."""

    group = "interpolation"
    options = INTERPOLATION_OPTIONS
    option_docs = INTERPOLATION_OPTION_DOCS

    def check_options(self, options: dict[str, Any]) -> None:
        check_interpolation_options(options)


class PathInterpolation(InterpolationMetric):
    """Interpolation smoothness and midpoint realism without ground truth (see module docstring)."""

    name = "interpolation"
    # 2: per-metric random stream; 3: path_step_ratio descriptive, midpoint_nn_ratio normalised
    # by the cross-fade of the endpoints
    version = 3
    values = (
        Value("path_length_ratio", None, "", 3,
              "decoded path length / endpoint distance (pixel L2), mean over pairs; 1 = "
              "straight in pixel space (descriptive: true paths on curved data manifolds are "
              "longer, and a linear decoder is straight by construction)", REF_OWN),
        Value("path_length_ratio_se", None, "", 3, "standard error of path_length_ratio",
              REF_OWN),
        Value("path_step_ratio", None, "", 3,
              "largest decoded step / mean step (pixel L2), mean over pairs; 1 = even steps, "
              "T-1 = one jump (descriptive: a linear decoder takes even steps by construction)",
              REF_OWN),
        Value("path_step_ratio_se", None, "", 3, "standard error of path_step_ratio", REF_OWN),
        Value("midpoint_nn_ratio", False, "", 3,
              "distance of the decoded code midpoint to its nearest training image / that of "
              "the pixel cross-fade of the two endpoint images, mean over pairs; 1 = as far "
              "off the data as a cross-fade (a linear decoder), below 1 = closer to real data",
              REF_OWN),
        Value("midpoint_nn_ratio_se", None, "", 3, "standard error of midpoint_nn_ratio",
              REF_OWN),
    )  # fmt: skip

    def applies_to(self, model: Any, dataset: Any) -> bool | str:
        if dataset.x_test.shape[0] < 2:
            return "needs at least 2 test images"
        return True

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        n_pairs, n_steps, method = interpolation_options(ctx)
        x_test, x_train = dataset.x_test, dataset.x_train
        bs = ctx.eval_batch_size
        a, b = draw_pairs(x_test.shape[0], n_pairs, ctx.generator)
        t = step_fractions(n_steps)
        paths = decode_paths(model, x_test[a], x_test[b], t, method, bs)
        length_ratio, step_ratio = path_scores(paths)

        mid = decode_paths(model, x_test[a], x_test[b], torch.tensor([0.5]), method, bs)[:, 0]
        n_ref = min(MAX_REFERENCE_IMAGES, x_train.shape[0])
        ref = x_train[torch.randperm(x_train.shape[0], generator=ctx.generator)[:n_ref]]
        nn_ratio = midpoint_nn_ratios(mid, paths[:, 0], paths[:, -1], ref)

        i, j = strip_pair(x_test)
        strip = decode_paths(model, x_test[i : i + 1], x_test[j : j + 1], t, method, bs)[0]
        ctx.add_artifact("interp_strip", strip)

        out: dict[str, float] = {}
        for name, v in (
            ("path_length_ratio", length_ratio),
            ("path_step_ratio", step_ratio),
            ("midpoint_nn_ratio", nn_ratio),
        ):
            out[name], out[f"{name}_se"] = mean_and_se(v)
        return out


@hookimpl
def vaebench_metrics():
    return [PathInterpolation()]
