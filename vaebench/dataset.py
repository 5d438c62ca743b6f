"""The dataset contract: what a dataset plugin hands the harness.

A dataset is a pair of float32 tensors ``(N, C, H, W)`` with values in ``[0, 1]`` (train and
test), optional integer labels, and -- for synthetic sets -- the true factor(s) of variation of
every image together with ``render(factors) -> images`` that draws the true image for any factor
value. Plugins register a :class:`DatasetSpec` whose ``loader`` builds the :class:`Dataset`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaebench.errors import DatasetError

__all__ = [
    "Dataset",
    "DatasetSpec",
    "DatasetError",
    "FACTOR_KEYS",
    "check_factor_info",
    "check_images",
    "factor_classes",
]

#: The keys of one factor's declaration in ``Dataset.info["factors"][NAME]`` (documented in
#: docs/datasets.md). ``low`` and ``high`` are required; any other key is an error, so that a
#: typo (``range``, ``min``) is named instead of the ground-truth metrics being skipped.
FACTOR_KEYS: dict[str, str] = {
    "low": "smallest value of the factor (a number)",
    "high": "largest value (a number >= low); for a periodic factor, low + the period",
    "periodic": "true for an angle-like factor whose high end equals its low end (default false)",
    "unit": "unit shown in reports, e.g. 'rad' or 'px' (default none)",
    "bank_size": "factor values in the reference bank of the ACAI metrics (an integer >= 2)",
    "values": "the factor's grid: its possible values, increasing, within [low, high] (a "
    "discrete factor; class k of an image is the index of its value here)",
    "discrete": "true for a factor with finitely many values (then 'values' is required; "
    "default false: continuous)",
}
_REQUIRED_FACTOR_KEYS = ("low", "high")


def check_images(x: Any, what: str) -> Tensor:
    """Validate and convert an image array to float32 ``(N, C, H, W)`` in ``[0, 1]``."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
    if t.ndim != 4:
        raise DatasetError(f"{what}: expected shape (N, C, H, W), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise DatasetError(f"{what}: no images")
    if not torch.is_floating_point(t):
        raise DatasetError(f"{what}: expected floating-point values in [0, 1], got {t.dtype}")
    t = t.float()
    if not torch.isfinite(t).all():
        raise DatasetError(f"{what}: contains NaN or infinite values")
    lo, hi = float(t.min()), float(t.max())
    if lo < 0.0 or hi > 1.0:
        raise DatasetError(f"{what}: values must lie in [0, 1], found range [{lo:g}, {hi:g}]")
    return t.contiguous()


def check_factor_info(factors: Any, factor_names: Any, where: str) -> None:
    """Validate ``info["factors"]``: a dict from factor names (each one of ``factor_names``) to
    declarations whose keys are :data:`FACTOR_KEYS` (``low`` and ``high`` required, finite,
    ``low <= high``; ``periodic`` a bool; ``unit`` a string; ``bank_size`` an integer >= 2).

    Raises :class:`DatasetError` naming ``where``, the factor, the bad key or value and the valid
    choices.
    """
    if factors is None:
        return
    if not isinstance(factors, dict):
        raise DatasetError(
            f"{where}: info['factors'] must map factor names to their declaration, got "
            f"{type(factors).__name__}"
        )
    names = tuple(factor_names or ())
    valid_keys = ", ".join(sorted(FACTOR_KEYS))
    for name, decl in factors.items():
        if name not in names:
            raise DatasetError(
                f"{where}: info['factors'] declares {name!r}, which is not one of the dataset's "
                f"factor_names ({', '.join(map(repr, names)) or 'none'})"
            )
        here = f"{where}: info['factors'][{name!r}]"
        if not isinstance(decl, dict):
            raise DatasetError(
                f"{here} must be a dict with keys {valid_keys}, got {type(decl).__name__}"
            )
        unknown = sorted(map(str, set(decl) - set(FACTOR_KEYS)))
        if unknown:
            raise DatasetError(
                f"{here} has unknown key(s) {', '.join(map(repr, unknown))}; valid: {valid_keys} "
                "(see docs/datasets.md)"
            )
        missing = [k for k in _REQUIRED_FACTOR_KEYS if k not in decl]
        if missing:
            raise DatasetError(
                f"{here} lacks {' and '.join(map(repr, missing))}: a factor's range is "
                "required (low, high)"
            )
        for key in _REQUIRED_FACTOR_KEYS:
            v = decl[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise DatasetError(f"{here}[{key!r}] must be a finite number, got {v!r}")
        if decl["low"] > decl["high"]:
            raise DatasetError(f"{here}: low {decl['low']!r} is above high {decl['high']!r}")
        if "periodic" in decl and not isinstance(decl["periodic"], bool):
            raise DatasetError(
                f"{here}['periodic'] must be true or false, got {decl['periodic']!r}"
            )
        if "unit" in decl and not isinstance(decl["unit"], str):
            raise DatasetError(f"{here}['unit'] must be a string, got {decl['unit']!r}")
        if "bank_size" in decl:
            b = decl["bank_size"]
            if isinstance(b, bool) or not isinstance(b, int) or b < 2:
                raise DatasetError(f"{here}['bank_size'] must be an integer >= 2, got {b!r}")
        if "discrete" in decl and not isinstance(decl["discrete"], bool):
            raise DatasetError(
                f"{here}['discrete'] must be true or false, got {decl['discrete']!r}"
            )
        if decl.get("discrete") and "values" not in decl:
            raise DatasetError(f"{here}: a discrete factor needs 'values' (its grid)")
        if "values" in decl:
            _check_values(decl["values"], decl["low"], decl["high"], here)


def _check_values(values: Any, low: float, high: float, here: str) -> None:
    ok = isinstance(values, (list, tuple)) and len(values) >= 1
    ok = ok and all(
        not isinstance(v, bool) and isinstance(v, (int, float)) and np.isfinite(v) for v in values
    )
    if not ok:
        raise DatasetError(
            f"{here}['values'] must be a non-empty list of finite numbers, got {values!r}"
        )
    a = np.asarray(values, dtype=np.float64)
    if len(a) > 1 and not np.all(np.diff(a) > 0):
        raise DatasetError(f"{here}['values'] must be strictly increasing")
    if a[0] < low or a[-1] > high:
        raise DatasetError(
            f"{here}['values'] must lie in [low, high] = [{low!r}, {high!r}], found "
            f"[{a[0]:g}, {a[-1]:g}]"
        )


def factor_classes(
    factors: Tensor, factor_names: tuple[str, ...], declared: dict[str, Any] | None, bins: int = 20
) -> Tensor:
    """Integer class of every image's every factor, int64 ``(N, K)`` for factor values
    ``factors`` ``(N, K)``: for a factor declared with ``values`` the index of the nearest grid
    value; otherwise (a continuous factor) the index of its value among ``bins`` equal-width bins
    of ``[low, high]`` (of the observed range when the factor is undeclared). The ground truth
    of the disentanglement metrics, which -- as disentanglement_lib -- work on discrete
    factors."""
    f = torch.as_tensor(factors).double().reshape(factors.shape[0], -1)
    if f.shape[1] != len(factor_names):
        raise DatasetError(
            f"factors have {f.shape[1]} columns but {len(factor_names)} factor names"
        )
    declared = declared or {}
    out = torch.empty(f.shape, dtype=torch.int64)
    for k, name in enumerate(factor_names):
        col = f[:, k]
        decl = declared.get(name, {})
        if "values" in decl:
            grid = torch.tensor(decl["values"], dtype=torch.float64)
            out[:, k] = (col[:, None] - grid[None, :]).abs().argmin(1)
            continue
        lo = float(decl.get("low", col.min())) if len(col) else 0.0
        hi = float(decl.get("high", col.max())) if len(col) else 1.0
        width = (hi - lo) / bins if hi > lo else 1.0
        out[:, k] = ((col - lo) / width).floor().clamp(0, bins - 1).long()
    return out


@dataclasses.dataclass
class Dataset:
    """Train and test images plus optional labels and ground-truth factors.

    ``factors_*`` are float tensors ``(N, K)`` naming each image's true factor values (e.g. the
    moon's phase, the line's angle); ``render(factors (M, K)) -> images (M, C, H, W)`` draws the
    noise-free image for any factor values. ``info`` holds anything else worth recording in
    results (regime, generator options, file checksums); ``info["factors"]`` declares each
    factor's range (keys :data:`FACTOR_KEYS`, checked here: an unknown key is a
    :class:`DatasetError`).
    """

    name: str
    x_train: Tensor
    x_test: Tensor
    y_train: Tensor | None = None
    y_test: Tensor | None = None
    factors_train: Tensor | None = None
    factors_test: Tensor | None = None
    factor_names: tuple[str, ...] = ()
    render: Callable[[Any], Tensor] | None = None
    citation: str = ""
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.x_train = check_images(self.x_train, f"dataset {self.name!r} x_train")
        self.x_test = check_images(self.x_test, f"dataset {self.name!r} x_test")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DatasetError(
                f"dataset {self.name!r}: train images {tuple(self.x_train.shape[1:])} and test "
                f"images {tuple(self.x_test.shape[1:])} differ in shape"
            )
        for split in ("train", "test"):
            n = getattr(self, f"x_{split}").shape[0]
            for kind in ("y", "factors"):
                v = getattr(self, f"{kind}_{split}")
                if v is None:
                    continue
                v = torch.as_tensor(np.asarray(v) if not isinstance(v, Tensor) else v)
                if v.shape[0] != n:
                    raise DatasetError(
                        f"dataset {self.name!r}: {kind}_{split} has {v.shape[0]} entries "
                        f"but x_{split} has {n} images"
                    )
                v = v.long() if kind == "y" else v.float().reshape(n, -1)
                setattr(self, f"{kind}_{split}", v)
        names = tuple(self.factor_names or ())
        for split in ("train", "test"):  # what `vaebench check` checks, now for every load
            f = getattr(self, f"factors_{split}")
            if f is not None and names and f.shape[1] != len(names):
                raise DatasetError(
                    f"dataset {self.name!r}: factors_{split} has {f.shape[1]} column(s) but "
                    f"factor_names has {len(names)} ({', '.join(map(repr, names))}); give one "
                    "name per column"
                )
        check_factor_info(
            (self.info or {}).get("factors"), self.factor_names, f"dataset {self.name!r}"
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one image ``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def has_factors(self) -> bool:
        return self.factors_test is not None and self.render is not None

    def factor_classes(self, split: str, bins: int = 20) -> Tensor | None:
        """Integer factor classes ``(N, K)`` of ``split`` (``train`` or ``test``), see
        :func:`factor_classes`; ``None`` when the dataset has no factors."""
        f = getattr(self, f"factors_{split}")
        if f is None:
            return None
        return factor_classes(f, self.factor_names, (self.info or {}).get("factors"), bins)

    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of the dataset's content: shapes and bytes of every split's
        images, labels and factors. Part of a cell's training key, so a changed file never
        passes for the data a stored model was trained on."""
        cached: str | None = self.__dict__.get("_fingerprint")
        if cached is not None:
            return cached
        h = hashlib.sha256()
        for field in ("x_train", "x_test", "y_train", "y_test", "factors_train", "factors_test"):
            t = getattr(self, field)
            if t is None:
                h.update(f"{field}:none;".encode())
                continue
            t = t.detach().cpu().contiguous()
            h.update(f"{field}:{t.dtype}:{tuple(t.shape)};".encode())
            h.update(t.numpy().tobytes())
        digest = h.hexdigest()[:16]
        self.__dict__["_fingerprint"] = digest
        return digest

    def holdout(self, fraction: float, seed: int = 0) -> tuple[Dataset, Tensor]:
        """Split a validation set off the training split: ``(dataset with the remaining
        training images, validation images (M, C, H, W))``, ``M = round(fraction * N)``, chosen
        by a permutation fixed by ``seed`` (the same for every cell seed). ``fraction`` in
        ``[0, 0.5]``; 0 returns the dataset and an empty tensor."""
        if isinstance(fraction, bool) or not 0 <= fraction <= 0.5:
            raise DatasetError(f"validation fraction must be in [0, 0.5], got {fraction!r}")
        n = self.x_train.shape[0]
        m = int(round(fraction * n))
        if m == 0:
            return self, self.x_train[:0]
        if n - m < 2:
            raise DatasetError(
                f"dataset {self.name!r}: holding out {m} of {n} training images leaves fewer "
                "than 2 to train on"
            )
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(n, generator=g)
        keep, val = perm[m:].sort().values, perm[:m].sort().values
        kw: dict[str, Any] = {"x_train": self.x_train[keep]}
        for kind in ("y", "factors"):
            v = getattr(self, f"{kind}_train")
            kw[f"{kind}_train"] = None if v is None else v[keep]
        info = {**self.info, "val_fraction": fraction, "n_val": m}
        return dataclasses.replace(self, info=info, **kw), self.x_train[val]

    def subset(self, n: int, seed: int = 0) -> Dataset:
        """At most ``n`` images from each split, chosen by a permutation fixed by ``seed``."""
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise DatasetError(f"subset size must be a positive integer, got {n!r}")
        g = torch.Generator().manual_seed(seed)
        kw: dict[str, Any] = {}
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            idx = torch.randperm(x.shape[0], generator=g)[:n].sort().values
            kw[f"x_{split}"] = x[idx]
            for kind in ("y", "factors"):
                v = getattr(self, f"{kind}_{split}")
                kw[f"{kind}_{split}"] = None if v is None else v[idx]
        info = {**self.info, "subset": n}
        return dataclasses.replace(self, info=info, **kw)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How a plugin registers a dataset.

    ``loader(data_dir=None, **options) -> Dataset``; ``options`` are user-settable with
    ``--set NAME.key=value`` and default to ``loader``'s keyword defaults. ``shape`` and
    ``sizes`` (train, test) are shown by ``vaebench list`` without loading anything, and so
    are the options with ``option_docs`` (option -> one-line meaning).
    """

    name: str
    loader: Callable[..., Dataset]
    description: str = ""
    shape: tuple[int, ...] | None = None
    sizes: tuple[int, int] | None = None
    citation: str = ""
    options: dict[str, Any] | None = None
    option_docs: dict[str, str] | None = None

    def docs(self) -> dict[str, str]:
        """One-line meaning of each option (empty string where none is given)."""
        docs = self.option_docs or {}
        return {k: str(docs.get(k, "") or "") for k in self.defaults()}

    def defaults(self) -> dict[str, Any]:
        if self.options is not None:
            return dict(self.options)
        sig = inspect.signature(self.loader)
        return {
            k: p.default
            for k, p in sig.parameters.items()
            if k != "data_dir"
            and p.default is not inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }

    def load(self, data_dir: str | None = None, **options: Any) -> Dataset:
        unknown = sorted(set(options) - set(self.defaults()))
        if unknown:
            raise DatasetError(
                f"unknown option(s) {', '.join(unknown)} for dataset {self.name!r}; "
                f"valid: {', '.join(sorted(self.defaults())) or '(none)'}"
            )
        kwargs = {**self.defaults(), **options}  # explicit spec options reach the loader
        if "data_dir" in inspect.signature(self.loader).parameters:
            kwargs["data_dir"] = data_dir
        ds = self.loader(**kwargs)
        if not isinstance(ds, Dataset):
            raise TypeError(
                f"loader of dataset {self.name!r} returned {type(ds).__name__}, "
                "not a vaebench.dataset.Dataset"
            )
        return ds
