"""The dataset subject and the dataset checks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vaebench.testing.core import MAX_TEST_OVERLAP, _expect, _Mismatch, _NotApplicable, _shape
from vaebench.testing.mechanism import _KINDS, _as_spec, _check, _Kind

if TYPE_CHECKING:
    from vaebench.dataset import Dataset, DatasetSpec


def _as_dataset_spec(dataset: Any) -> DatasetSpec:
    from vaebench.dataset import DatasetSpec

    def wrap(loader: Any) -> DatasetSpec:
        return DatasetSpec(getattr(loader, "__name__", "dataset"), loader)

    spec: DatasetSpec = _as_spec(dataset, DatasetSpec, "dataset", wrap, "loader")
    return spec


@dataclasses.dataclass
class _DatasetSubject:
    spec: DatasetSpec
    options: dict[str, Any]
    data_dir: str | None

    @property
    def name(self) -> str:
        return self.spec.name

    def load(self) -> Dataset:
        from vaebench.dataset import Dataset

        ds = self.spec.load(data_dir=self.data_dir, **self.options)
        _expect(
            isinstance(ds, Dataset),
            f"expected the loader to return a vaebench.dataset.Dataset, got {type(ds).__name__}",
        )
        return ds


def _dataset_subject(
    dataset: Any, *, options: Mapping[str, Any] | None = None, data_dir: str | None = None
) -> _DatasetSubject:
    return _DatasetSubject(_as_dataset_spec(dataset), dict(options or {}), data_dir)


_KINDS["dataset"] = _Kind("dataset", _dataset_subject, _DatasetSubject)


@_check("dataset", "the loader returns a vaebench.dataset.Dataset")
def check_dataset_loads(s: _DatasetSubject) -> None:
    """The spec's name is usable on the command line (a valid name, or the path a plugin
    claims it for: :meth:`vaebench.plugins.Registry.dataset_for_path`), its options are
    JSON-serialisable and ``load()`` returns a :class:`~vaebench.dataset.Dataset`."""
    from vaebench.plugins import get_registry, valid_name

    name = s.spec.name
    _expect(
        valid_name(name) or get_registry().dataset_for_path(name) is not None,
        f"expected a dataset name without commas, slashes, spaces or control characters, got "
        f"{name!r}",
    )
    try:
        json.dumps(s.spec.defaults(), sort_keys=True, default=list)
    except (TypeError, ValueError) as exc:
        raise _Mismatch(f"expected JSON-serialisable dataset options: {exc}") from None
    s.load()


@_check("dataset", "images are (N, C, H, W), alike in both splits and as declared by the spec")
def check_dataset_shapes(s: _DatasetSubject) -> None:
    """Train and test images are 4-D with the same ``(C, H, W)``; ``DatasetSpec.shape`` and
    ``DatasetSpec.sizes`` (shown by ``vaebench list``) match the loaded data (sizes only with
    default options)."""
    ds = s.load()
    for split in ("train", "test"):
        x = getattr(ds, f"x_{split}")
        _expect(x.ndim == 4, f"expected x_{split} of shape (N, C, H, W), got {_shape(x)}")
        _expect(x.shape[0] > 0, f"expected images in x_{split}")
    _expect(
        ds.x_train.shape[1:] == ds.x_test.shape[1:],
        f"expected train and test images of one shape, got {_shape(ds.x_train)[1:]} and "
        f"{_shape(ds.x_test)[1:]}",
    )
    if s.spec.shape is not None:
        _expect(
            tuple(s.spec.shape) == tuple(ds.shape),
            f"expected the loaded shape {tuple(ds.shape)} to match DatasetSpec.shape "
            f"{tuple(s.spec.shape)}",
        )
    if s.spec.sizes is not None and not s.options:
        got = (int(ds.x_train.shape[0]), int(ds.x_test.shape[0]))
        _expect(
            tuple(s.spec.sizes) == got,
            f"expected (train, test) sizes {got} to match DatasetSpec.sizes {tuple(s.spec.sizes)}",
        )


@_check("dataset", "images are finite float32 values in [0, 1]")
def check_dataset_range(s: _DatasetSubject) -> None:
    """Both splits are float32, finite, within ``[0, 1]`` and not constant."""
    ds = s.load()
    for split in ("train", "test"):
        x = getattr(ds, f"x_{split}")
        _expect(x.dtype == torch.float32, f"expected float32 x_{split}, got {x.dtype}")
        _expect(bool(torch.isfinite(x).all()), f"expected finite values in x_{split}")
        lo, hi = float(x.min()), float(x.max())
        _expect(lo >= 0.0 and hi <= 1.0, f"expected x_{split} in [0, 1], got [{lo:.4g}, {hi:.4g}]")
        _expect(hi > lo, f"expected x_{split} to vary, all values are {lo:.4g}")


@_check("dataset", "labels and factors have one entry per image")
def check_dataset_labels(s: _DatasetSubject) -> None:
    """``y_*`` (when present) are integer tensors ``(N,)``; ``factors_*`` float ``(N, K)``
    present in both splits or neither, with ``K == len(factor_names)``."""
    ds = s.load()
    for split in ("train", "test"):
        n = ds.x_train.shape[0] if split == "train" else ds.x_test.shape[0]
        y = getattr(ds, f"y_{split}")
        if y is not None:
            _expect(tuple(y.shape) == (n,), f"expected y_{split} of shape ({n},), got {_shape(y)}")
            _expect(
                not torch.is_floating_point(y), f"expected integer y_{split} labels, got {y.dtype}"
            )
        f = getattr(ds, f"factors_{split}")
        if f is not None:
            _expect(
                f.ndim == 2 and f.shape[0] == n,
                f"expected factors_{split} of shape ({n}, K), got {_shape(f)}",
            )
            _expect(bool(torch.isfinite(f).all()), f"expected finite factors_{split}")
            _expect(
                len(ds.factor_names) == f.shape[1],
                f"expected {f.shape[1]} factor_names for factors_{split}, got "
                f"{tuple(ds.factor_names)}",
            )
    _expect(
        (ds.factors_train is None) == (ds.factors_test is None),
        "expected factors in both splits or in neither",
    )
    _expect(
        (ds.y_train is None) == (ds.y_test is None), "expected labels in both splits or in neither"
    )


def _row_digests(x: Tensor) -> list[bytes]:
    """One 128-bit BLAKE2b digest of the float32 bytes of each image (``-0.0`` counted as
    ``0.0``): equal digests mean identical images."""
    flat = (x.detach().to("cpu", torch.float32).reshape(x.shape[0], -1) + 0.0).contiguous()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat.numpy()]


#: The ``info`` key by which a dataset declares that some test images are bound to equal
#: training images, and why (:func:`check_dataset_overlap`; docs/datasets.md).
OVERLAP_INFO_KEY = "test_overlap"


def _declared_overlap(ds: Dataset) -> tuple[float, str] | None:
    """``(max_fraction, reason)`` of ``info["test_overlap"]``, or ``None`` when not declared;
    a malformed declaration fails the check naming what is wrong."""
    decl = (ds.info or {}).get(OVERLAP_INFO_KEY)
    if decl is None:
        return None
    valid = "{'max_fraction': a number in (0, 1], 'reason': a sentence saying why}"
    _expect(
        isinstance(decl, dict) and set(decl) == {"max_fraction", "reason"},
        f"expected info[{OVERLAP_INFO_KEY!r}] to be {valid}, got {decl!r}",
    )
    frac, reason = decl["max_fraction"], decl["reason"]
    _expect(
        isinstance(frac, (int, float)) and not isinstance(frac, bool) and 0 < frac <= 1,
        f"expected info[{OVERLAP_INFO_KEY!r}]['max_fraction'] in (0, 1], got {frac!r}",
    )
    _expect(
        isinstance(reason, str) and reason.strip() != "",
        f"expected info[{OVERLAP_INFO_KEY!r}]['reason'] to say why, got {reason!r}",
    )
    return float(frac), reason.strip()


@_check("dataset", f"at most {MAX_TEST_OVERLAP:.0%} of the test images copy a training image")
def check_dataset_overlap(s: _DatasetSubject) -> str:
    """Hash every image of both splits (exact float32 values) and count the test images that
    are identical to some training image. Above :data:`MAX_TEST_OVERLAP` (1 %) of the test
    split, test scores partly measure memorisation of the training set -- typical of a split
    drawn from the same images, or of a renderer too coarse to tell nearby factor values apart.

    A dataset whose copies are inherent (a continuous factor drawn into finitely many distinct
    images) declares them: ``info["test_overlap"] = {"max_fraction": F, "reason": "..."}``.
    The check then allows up to ``F`` and its note states the count and the reason -- declared
    copies are reported, never passed in silence. Notes the count."""
    ds = s.load()
    train = set(_row_digests(ds.x_train))
    test = _row_digests(ds.x_test)
    copies = sum(d in train for d in test)
    fraction = copies / len(test)
    found = (
        f"{copies} of {len(test)} test images ({fraction:.1%}) are exact copies of training images"
    )
    declared = _declared_overlap(ds)
    if declared is not None and fraction > MAX_TEST_OVERLAP:
        limit, reason = declared
        _expect(
            fraction <= limit,
            f"expected at most {limit:.0%} of the test images to be copies of training images "
            f"(declared in info[{OVERLAP_INFO_KEY!r}]: {reason}), but {found}",
        )
        return f"{found}; declared up to {limit:.0%}: {reason}"
    _expect(
        fraction <= MAX_TEST_OVERLAP,
        f"expected at most {MAX_TEST_OVERLAP:.0%} of the test images to be copies of training "
        f"images, but {found}: test scores would measure memorisation. Draw the test split "
        "independently of the training split, and render finely enough (or add noise) that "
        "nearby factor values give different images; copies that are inherent to the data are "
        f"declared with info[{OVERLAP_INFO_KEY!r}] (docs/datasets.md)",
    )
    return found


@_check("dataset", "render(factors) draws images matching the dataset's own")
def check_dataset_render(s: _DatasetSubject) -> None:
    """Only when ``render`` is present: it needs ``factors_test``; ``render(factors_test[:16])``
    is deterministic, ``(16, C, H, W)`` in ``[0, 1]``, and each rendered image is much closer (mean
    absolute difference under half) to the test image it was rendered for than to the other test
    images."""
    ds = s.load()
    if ds.render is None:
        raise _NotApplicable("the dataset has no render()")
    if ds.factors_test is None:
        raise _Mismatch("expected factors_test alongside render")
    f = ds.factors_test[:16]
    x = ds.x_test[:16]
    a, b = ds.render(f), ds.render(f)
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    want = (f.shape[0], *ds.shape)
    _expect(tuple(a.shape) == want, f"expected render(factors) of shape {want}, got {_shape(a)}")
    _expect(torch.equal(a, b), "expected render(factors) to be deterministic")
    lo, hi = float(a.min()), float(a.max())
    _expect(
        lo >= 0.0 and hi <= 1.0, f"expected rendered images in [0, 1], got [{lo:.4g}, {hi:.4g}]"
    )
    if f.shape[0] >= 2:
        d = (a.float().reshape(len(f), 1, -1) - x.reshape(1, len(f), -1)).abs().mean(-1)
        own = float(d.diagonal().mean())
        other = float((d.sum() - d.diagonal().sum()) / (d.numel() - len(f)))
        _expect(
            own < 0.5 * other,
            f"expected each rendered image to match its own test image far better than the "
            f"others (mean |difference| own {own:.4g}, others {other:.4g}; expected own < half "
            f"of others); are factors and images in the same order?",
        )


@_check("dataset", "loading twice gives identical data")
def check_dataset_deterministic(s: _DatasetSubject) -> None:
    """Two loads with the same options give identical images, labels and factors (seed any
    random split or generator)."""
    a, b = s.load(), s.load()
    for attr in ("x_train", "x_test", "y_train", "y_test", "factors_train", "factors_test"):
        u, v = getattr(a, attr), getattr(b, attr)
        same = (u is None and v is None) or (
            u is not None and v is not None and u.shape == v.shape and torch.equal(u, v)
        )
        _expect(same, f"expected identical {attr} from two loads")


def dataset_checks() -> tuple[Callable[..., str | None], ...]:
    """Every dataset check, in the order :func:`run_dataset_checks` runs them."""
    return tuple(_KINDS["dataset"].checks)
