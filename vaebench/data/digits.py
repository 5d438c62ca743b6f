"""``digits``: scikit-learn's embedded 8x8 handwritten digits (no download needed)."""

from __future__ import annotations

import numpy as np
import torch

from vaebench.dataset import Dataset, DatasetError, DatasetSpec
from vaebench.hookspecs import hookimpl

CITATION = (
    "E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. UCI Machine Learning "
    "Repository, 1998 (CC BY 4.0); as shipped by scikit-learn (load_digits)."
)


def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
    """1797 images (1, 8, 8), pixel values 0..16 scaled to [0, 1]; a fixed, seeded split."""
    from sklearn.datasets import load_digits as sk_load

    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"digits: test_fraction must lie in (0, 1), got {test_fraction!r}")
    bunch = sk_load()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    perm = np.random.default_rng(split_seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = perm[:n_test], perm[n_test:]
    return Dataset(
        name="digits",
        x_train=torch.from_numpy(x[train]),
        x_test=torch.from_numpy(x[test]),
        y_train=torch.from_numpy(y[train]),
        y_test=torch.from_numpy(y[test]),
        citation=CITATION,
        info={"test_fraction": test_fraction, "split_seed": split_seed},
    )


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
        )
    ]
