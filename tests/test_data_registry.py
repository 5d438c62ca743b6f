"""The dataset plugins as the harness sees them: registered names, declared shapes and sizes."""

from __future__ import annotations

import pytest

BUILTIN = ("digits", "fashion-mnist", "mnist", "moons", "moons-gap", "moons-lecture", "lines")


def test_every_builtin_dataset_is_registered_with_shape_and_sizes(registry):
    for name in BUILTIN:
        r = registry.dataset(name)
        assert r.plugin.startswith("vaebench.data."), r.plugin
        assert r.spec.shape is not None and r.spec.sizes is not None, name
        assert r.spec.citation, name


@pytest.mark.parametrize("name", ["moons", "moons-lecture", "lines"])
def test_declared_shape_and_sizes_match_a_default_load(registry, name):
    spec = registry.dataset(name).spec
    ds = spec.load()
    assert ds.shape == spec.shape
    assert (ds.x_train.shape[0], ds.x_test.shape[0]) == spec.sizes
    assert ds.has_factors and ds.factor_names[0] in ("phase", "angle")


def test_list_command_shows_shape_and_sizes():
    from click.testing import CliRunner

    from vaebench.cli import cli

    out = CliRunner().invoke(cli, ["list", "datasets"])
    assert out.exit_code == 0, out.output
    rows = {line.split()[0]: line for line in out.output.splitlines()[1:] if line.strip()}
    assert "1x28x28" in rows["fashion-mnist"] and "60000/10000" in rows["fashion-mnist"]
    assert "1x28x28" in rows["mnist"] and "60000/10000" in rows["mnist"]
    assert "1x32x32" in rows["lines"] and "10000/5000" in rows["lines"]
    for name in ("moons", "moons-gap", "moons-lecture"):
        assert "1x32x32" in rows[name] and "4000/1000" in rows[name]


def test_runner_applies_options_and_subset(registry):
    from vaebench.cells import load_dataset

    ds = load_dataset(registry, "moons-gap", {"n_train": 50, "gap_width": 0.4}, None, 20)
    assert ds.x_train.shape[0] == 20 and ds.info["subset"] == 20
    p = ds.factors_train[:, 0]
    assert not bool(((p > 0.55) & (p < 0.95)).any())


def test_digits_read_without_sklearn_datasets_equals_load_digits():
    """The embedded digits are read from the file scikit-learn ships (its ``sklearn.datasets``
    import is ~1 s of every digits run's start-up): the arrays are load_digits' own, bit for
    bit, and the dataset built from them splits as before."""
    import numpy as np
    from sklearn.datasets import load_digits as sk_load

    from vaebench.data.digits import _digits_file, load_digits, read_digits

    assert _digits_file() is not None  # the fast path is the one taken here
    images, target = read_digits()
    bunch = sk_load()
    assert images.dtype == bunch.images.dtype and target.dtype == bunch.target.dtype
    np.testing.assert_array_equal(images, bunch.images)
    np.testing.assert_array_equal(target, bunch.target)
    ds = load_digits()
    assert tuple(ds.x_train.shape) == (1438, 1, 8, 8) and tuple(ds.x_test.shape) == (359, 1, 8, 8)
    perm = np.random.default_rng(0).permutation(1797)
    np.testing.assert_array_equal(
        ds.x_test.numpy()[:, 0], (bunch.images[perm[:359]] / 16.0).astype(np.float32)
    )
    np.testing.assert_array_equal(ds.y_train.numpy(), bunch.target[perm[359:]])


def test_a_digits_run_does_not_import_sklearn_datasets():
    """Loading digits leaves ``sklearn.datasets`` unimported (a fresh process)."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom vaebench.data.digits import load_digits\nload_digits()\n"
        "print('sklearn.datasets' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
