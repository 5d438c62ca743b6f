"""Speed benchmarks (pytest-benchmark). In the normal test run they execute once, untimed
(``--benchmark-disable`` in pyproject). To measure and compare across commits::

    pytest tests/benchmarks --benchmark-enable --benchmark-autosave
    pytest tests/benchmarks --benchmark-enable --benchmark-compare --benchmark-compare-fail=mean:10%

Results carry machine info and the commit (pytest-benchmark's own fields).
"""

from __future__ import annotations

import pytest
import torch

from vaebench.plugins import get_registry
from vaebench.train import seed_everything, train_loop


@pytest.fixture(scope="module")
def data():
    from vaebench.data.digits import load_digits

    return load_digits()


@pytest.mark.parametrize("name", ["ae", "vae"])
def test_train_epoch(benchmark, data, name):
    """One training epoch of the shared loop on digits (1438 images, batch 128)."""
    seed_everything(0)
    model = get_registry().model(name).spec.create(data.shape, epochs=1)
    x = data.x_train

    def epoch():
        return train_loop(model, x, epochs=1, batch_size=128, lr=1e-3)

    report = benchmark(epoch)
    assert report.samples_seen == len(x)


@pytest.mark.parametrize("name", ["pca", "ae", "vae"])
def test_encode_decode(benchmark, data, name):
    """Encode + decode of 4096 images (inference mode inside the models)."""
    seed_everything(0)
    spec = get_registry().model(name).spec
    model = spec.create(data.shape, **({"epochs": 1} if "epochs" in spec.defaults() else {}))
    model.fit(data.x_train)
    x = data.x_train.repeat(3, 1, 1, 1)[:4096]

    out = benchmark(lambda: model.decode(model.encode(x)))
    assert out.shape == x.shape and not out.requires_grad


def test_naive_loop_is_not_faster(data):
    """Sanity check of the loop design, as a ratio in one run: our on-device index batching is
    not slower than a DataLoader over a TensorDataset (which adds per-batch Python overhead)."""
    import time

    from torch.utils.data import DataLoader, TensorDataset

    seed_everything(0)
    model = get_registry().model("ae").spec.create(data.shape, hidden=(64,), epochs=1)
    x = data.x_train.repeat(4, 1, 1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def ours():
        train_loop(model, x, epochs=1, batch_size=64, lr=1e-3)

    def naive():
        for (b,) in DataLoader(TensorDataset(x), batch_size=64, shuffle=True):
            opt.zero_grad()
            model.loss(b)["loss"].backward()
            opt.step()

    def best(fn, reps=3):
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    ours(), naive()  # warm-up
    # generous margin: this guards against a regression to per-sample Python work, not noise
    assert best(ours) < 2.0 * best(naive)
