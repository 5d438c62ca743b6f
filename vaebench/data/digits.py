"""``digits``: scikit-learn's embedded 8x8 handwritten digits (no download needed).

Also home of the binarised variants of the image datasets (``binarize=fixed``, used by
``digits``, ``mnist`` and ``fashion-mnist``): see :func:`apply_binarization`.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from vaebench.dataset import Dataset, DatasetError, DatasetSpec
from vaebench.hookspecs import hookimpl

#: Values of the ``binarize`` dataset option. ``none``: grey levels in [0, 1]; ``fixed``: every
#: pixel replaced once, at loading, by a Bernoulli draw with its grey level as probability.
#: Dynamic binarisation (a new draw every epoch, Burda et al. 2016) is not offered: the
#: training loop sees one fixed tensor.
BINARIZATIONS = ("none", "fixed")

BINARIZATION_REFERENCE = (
    "fixed stochastic binarisation as in Salakhutdinov & Murray, On the Quantitative Analysis "
    "of Deep Belief Networks, ICML 2008 (the binarised MNIST of Larochelle & Murray 2011)"
)


def apply_binarization(ds: Dataset, binarize: str = "none", seed: int = 0) -> Dataset:
    """``ds`` itself for ``binarize="none"``; for ``"fixed"`` a copy whose train and test pixels
    are single Bernoulli draws (``torch.bernoulli``, probability = the grey level) from one
    generator seeded with ``seed`` -- train first, then test --, so the same options always give
    the same binary images. ``info`` records ``binarize``, ``binarize_seed`` and what was done.

    Raises :class:`DatasetError` naming the valid choices for an unknown ``binarize`` or a
    ``seed`` that is not a non-negative integer.
    """
    if binarize not in BINARIZATIONS:
        raise DatasetError(
            f"{ds.name}: unknown binarize {binarize!r}; valid: {', '.join(BINARIZATIONS)} "
            "(dynamic binarisation, redrawn every epoch, is not offered)"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DatasetError(f"{ds.name}: binarize_seed must be an integer >= 0, got {seed!r}")
    if binarize == "none":
        return ds
    g = torch.Generator().manual_seed(seed)
    x_train = torch.bernoulli(ds.x_train, generator=g)
    x_test = torch.bernoulli(ds.x_test, generator=g)
    info = {
        **ds.info,
        "binarize": "fixed",
        "binarize_seed": seed,
        "binarization": (
            "fixed: each pixel drawn once at loading from Bernoulli(grey level) with seed "
            f"{seed}, train then test; the same binary images in every epoch and run "
            "(not dynamic binarisation)"
        ),
    }
    return dataclasses.replace(ds, x_train=x_train, x_test=x_test, info=info)


CITATION = (
    "E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. UCI Machine Learning "
    "Repository, 1998 (CC BY 4.0); as shipped by scikit-learn (load_digits)."
)


def _digits_file() -> Path | None:
    """scikit-learn's ``datasets/data/digits.csv.gz``, found without importing scikit-learn
    (``None`` where that file is not where scikit-learn keeps it)."""
    spec = importlib.util.find_spec("sklearn")
    roots = spec.submodule_search_locations if spec is not None else None
    for root in roots or ():
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits as scikit-learn's ``load_digits`` returns them: ``images`` ``(1797, 8,
    8)`` float64 with values 0..16, ``target`` ``(1797,)`` int.

    Read straight from the file scikit-learn ships, parsed as ``load_digits`` parses it
    (``np.loadtxt`` of the gzipped CSV, the last column the label): importing
    ``sklearn.datasets`` costs ~1 s of start-up that a run on ``digits`` waits for in every
    process (docs/performance.md). Where the file is not found (another scikit-learn layout),
    ``load_digits`` itself is called. tests/test_data_registry.py checks both give the same
    arrays."""
    path = _digits_file()
    if path is None:  # pragma: no cover - a scikit-learn that keeps the file elsewhere
        from sklearn.datasets import load_digits as sk_load

        bunch = sk_load()
        return bunch.images, bunch.target
    with gzip.open(path, mode="rt", encoding="utf-8") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int, copy=False)


def load_digits(
    test_fraction: float = 0.2, split_seed: int = 0, binarize: str = "none", binarize_seed: int = 0
) -> Dataset:
    """1797 images (1, 8, 8), pixel values 0..16 scaled to [0, 1]; a fixed, seeded split.

    ``binarize="fixed"``: binary pixels drawn once with ``binarize_seed`` (see
    :func:`apply_binarization`)."""
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"digits: test_fraction must lie in (0, 1), got {test_fraction!r}")
    images, target = read_digits()
    x = (images.astype(np.float32) / 16.0)[:, None, :, :]
    y = target.astype(np.int64)
    perm = np.random.default_rng(split_seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = perm[:n_test], perm[n_test:]
    ds = Dataset(
        name="digits",
        x_train=torch.from_numpy(x[train]),
        x_test=torch.from_numpy(x[test]),
        y_train=torch.from_numpy(y[train]),
        y_test=torch.from_numpy(y[test]),
        citation=CITATION,
        info={"test_fraction": test_fraction, "split_seed": split_seed},
    )
    return apply_binarization(ds, binarize, binarize_seed)


#: The options of :func:`apply_binarization`, as every loader that takes them documents them.
BINARIZE_DOCS = {
    "binarize": "none | fixed: binary pixels drawn once (likelihood papers)",
    "binarize_seed": "seed of the fixed binarisation",
}

#: Meaning of each option (``vaebench list datasets``).
OPTION_DOCS = {
    "test_fraction": "fraction of the 1797 images held out for test, in (0, 1)",
    "split_seed": "seed of the train/test split",
    **BINARIZE_DOCS,
}


@hookimpl
def vaebench_datasets():
    return [
        DatasetSpec(
            "digits",
            load_digits,
            "scikit-learn's embedded 8x8 handwritten digits, [0, 1], seeded 80/20 split",
            shape=(1, 8, 8),
            sizes=(1438, 359),
            citation=CITATION,
            option_docs=OPTION_DOCS,
        )
    ]
