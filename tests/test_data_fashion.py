"""Integration with the real Fashion-MNIST files of the Debian package dataset-fashion-mnist.

Skipped (with the reason) where ``/usr/share/datasets/fashion-mnist`` does not hold the files;
``apt install dataset-fashion-mnist`` provides them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vaebench.data import idx

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
HAVE_FILES = all(
    (DEBIAN_DIR / (f.stem + ".gz")).is_file() or (DEBIAN_DIR / f.stem).is_file()
    for f in idx.FASHION_MNIST.files.values()
)

pytestmark = [
    pytest.mark.fashion,
    pytest.mark.skipif(
        not HAVE_FILES,
        reason=f"Fashion-MNIST IDX files not in {DEBIAN_DIR} (apt install dataset-fashion-mnist)",
    ),
]


@pytest.fixture(scope="module")
def fashion():
    mp = pytest.MonkeyPatch()
    mp.delenv("VAEBENCH_DATA", raising=False)
    mp.setenv("XDG_CACHE_HOME", "/nonexistent-vaebench-test-cache")
    try:
        yield idx.load_fashion_mnist(download=False)
    finally:
        mp.undo()


def test_real_files_load_and_verify(fashion):
    assert fashion.info["folder"] == str(DEBIAN_DIR)
    assert fashion.info["verified"] is True
    assert fashion.x_train.shape == (60000, 1, 28, 28)
    assert fashion.x_test.shape == (10000, 1, 28, 28)
    assert fashion.x_train.dtype == torch.float32
    assert float(fashion.x_train.min()) == 0.0 and float(fashion.x_train.max()) == 1.0
    assert torch.bincount(fashion.y_train).tolist() == [6000] * 10
    assert torch.bincount(fashion.y_test).tolist() == [1000] * 10
    # the mean Fashion-MNIST pixel is about 0.286 (a well-known normalisation constant)
    assert float(fashion.x_train.mean()) == pytest.approx(0.2860, abs=1e-3)
    assert fashion.info["classes"][9] == "Ankle boot"


@pytest.fixture
def one_thread():
    """One torch thread: on a busy 2-core machine two threads contend and run ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_ae_trains_on_a_real_subset(fashion, registry, one_thread):
    torch.manual_seed(0)
    data = fashion.subset(2000, seed=0)
    model = registry.model("ae").spec.create(
        data.shape, epochs=3, latent_dim=8, hidden=(128,), batch_size=64
    )
    report = model.fit(data.x_train)
    assert len(report.history["loss"]) == 3
    assert report.history["loss"][2] < report.history["loss"][0]
    with torch.inference_mode():
        rec = model.decode(model.encode(data.x_test))
    assert rec.shape == data.x_test.shape
    mse = float(((rec - data.x_test) ** 2).mean())
    mean_image_mse = float(((data.x_train.mean(0) - data.x_test) ** 2).mean())
    assert mse < 0.7 * mean_image_mse, (mse, mean_image_mse)
