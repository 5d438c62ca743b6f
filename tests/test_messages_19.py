"""Issue 19 item 6: messages. Long dataset names, NaN codes in `check`, `python -m
vaebench.cli` and the current folder, factor names that disagree with the factor columns, an
empty shard, and a worker count lowered by the machine's load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vaebench import executors
from vaebench.cli import cli
from vaebench.dataset import Dataset, DatasetError
from vaebench.results import MAX_STEM_BYTES, cell_stem

ROOT = Path(__file__).resolve().parents[1]
RUN = ["run", "--models", "pca", "--subset", "100", "--no-report", "--threads", "1",
       "--set", "eval.throughput_seconds=0.01", "--set", "eval.n_pairs=16"]  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_long_names_give_short_distinct_stems():
    a, b = "./" + "d" * 300 + "/one.npz", "./" + "d" * 300 + "/two.npz"
    sa, sb = cell_stem("pca", a, 0, "0123456789ab"), cell_stem("pca", b, 0, "0123456789ab")
    assert len(sa.encode()) <= MAX_STEM_BYTES and len(sb.encode()) <= MAX_STEM_BYTES
    assert sa != sb and sa.endswith("--seed0--0123456789ab")
    assert cell_stem("pca", "digits", 3, "abc") == "pca--digits--seed3--abc"  # short: as before


def test_a_dataset_named_by_a_250_character_path_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = Path("d" * 120) / ("e" * 120)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(folder / "x.npz", x_train=rng.random((40, 1, 8, 8), dtype=np.float32),
             x_test=rng.random((20, 1, 8, 8), dtype=np.float32))  # fmt: skip
    name = f"./{folder}/x.npz"
    assert len(name) > 220
    res = CliRunner().invoke(cli, [*RUN, "--workers", "1", "--datasets", name, "--out", "o"])
    assert res.exit_code == 0, res.output
    (cell,) = Path("o/cells").glob("*.json")
    assert len(cell.stem.encode()) <= MAX_STEM_BYTES


def test_check_on_nan_codes_says_nan_not_posterior_mean():
    from vaebench.model import ModelSpec
    from vaebench.models.pca import PCA
    from vaebench.testing import run_model_checks

    class NaNCodes(PCA):
        def encode(self, x):
            return super().encode(x) * float("nan")

    spec = ModelSpec("nancodes", NaNCodes, "NaN codes")
    (result,) = [r for r in run_model_checks(spec) if "deterministic" in r.name]
    assert not result.passed
    assert "encode returned NaN in" in result.message
    assert "posterior mean" not in result.message


def test_python_m_cli_imports_nothing_from_the_current_folder(tmp_path):
    marker = tmp_path / "IMPORTED"
    (tmp_path / "torch.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "vaebench.cli", "list", "models"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "pca" in proc.stdout and not marker.exists()


def test_factor_names_that_disagree_with_the_columns_are_refused_on_load():
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(DatasetError, match="factors_train has 2 column.*factor_names has 1"):
        Dataset("d", x, x, factors_train=torch.rand(4, 2), factors_test=torch.rand(4, 2),
                factor_names=("a",))  # fmt: skip


def test_an_empty_shard_says_why(tmp_path):
    said = []
    for k in (1, 2):
        res = CliRunner().invoke(cli, [*RUN, "--workers", "1", "--shard", f"{k}/2",
                                       "--out", str(tmp_path / f"s{k}")])  # fmt: skip
        assert res.exit_code == 0, res.output
        said.append("is empty: a cell goes to shard (training key mod 2) + 1" in res.output)
    assert sorted(said) == [False, True]  # one cell: exactly one shard is empty, and says so


def test_a_worker_count_lowered_by_load_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "usable_cores", lambda: 4)
    monkeypatch.setattr(executors, "_busy_cores", lambda: 3)
    res = CliRunner().invoke(cli, [*RUN, "--seeds", "0,1", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "1 worker(s) x 1 thread(s), not 2: other processes keep the cores busy" in res.output
