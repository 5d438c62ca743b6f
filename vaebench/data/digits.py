"""``digits``: scikit-learn's embedded 8x8 handwritten digits (no download needed).

Also home of the binarised variants of the image datasets (``binarize=fixed``, used by
``digits``, ``mnist`` and ``fashion-mnist``): see :func:`apply_binarization`.
"""

from __future__ import annotations

import dataclasses

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


def load_digits(
    test_fraction: float = 0.2, split_seed: int = 0, binarize: str = "none", binarize_seed: int = 0
) -> Dataset:
    """1797 images (1, 8, 8), pixel values 0..16 scaled to [0, 1]; a fixed, seeded split.

    ``binarize="fixed"``: binary pixels drawn once with ``binarize_seed`` (see
    :func:`apply_binarization`)."""
    from sklearn.datasets import load_digits as sk_load

    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"digits: test_fraction must lie in (0, 1), got {test_fraction!r}")
    bunch = sk_load()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
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
