"""Two-optimiser models in the runner: a run of ``aae`` and ``acai`` killed with SIGKILL and
resumed equals an uninterrupted one (real processes), and a critic whose loss diverges fails
its cell with a reason that names the critic (in-process)."""

from __future__ import annotations

import signal

import pytest
import torch
from test_reliability_acceptance import (
    cells,
    comparable,
    finish,
    leftovers,
    manifests,
    vaebench,
    wait_for_cells,
)
from torch import Tensor

from vaebench.config import RunConfig
from vaebench.grid import run
from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench.models.adversarial import ACAI

GRID = [
    "run", "--models", "aae,acai", "--seeds", "0,1", "--epochs", "2",
    "--subset", "100", "--device", "cpu", "--no-report", "--no-progress",
    "--set", "eval.throughput_seconds=0.02", "--set", "eval.n_pairs=16",
]  # fmt: skip
N_CELLS = 4


@pytest.mark.slow
def test_sigkill_mid_grid_then_resume_equals_an_uninterrupted_run(tmp_path):
    """Three processes (reference, victim, resume): about a minute on a loaded 2-core machine."""
    killed_dir, reference_dir = tmp_path / "killed", tmp_path / "reference"
    reference = vaebench(*GRID, "--out", str(reference_dir))
    victim = vaebench(*GRID, "--out", str(killed_dir))
    wait_for_cells(killed_dir, 1, victim)
    victim.send_signal(signal.SIGKILL)
    assert finish(victim)[0] == -signal.SIGKILL
    survived = cells(killed_dir)
    assert 1 <= len(survived) < N_CELLS, "the run was not killed mid-way"

    rc, err = finish(vaebench("run", "--resume", str(killed_dir), "--no-report", "--no-progress"))
    assert rc == 0, err
    rc, err = finish(reference)
    assert rc == 0, err
    final, expected = cells(killed_dir), cells(reference_dir)
    assert final.keys() == expected.keys() and len(final) == N_CELLS
    for stem in final:
        assert final[stem]["status"] == "ok"
        assert comparable(final[stem]) == comparable(expected[stem]), stem
        assert "critic_loss" in final[stem]["history"] or "disc_loss" in final[stem]["history"]
    assert leftovers(killed_dir) == []
    killed, resumed = manifests(killed_dir)
    assert set(resumed["summary"]["skipped"]) == set(survived)
    assert set(resumed["summary"]["ran"]) == set(final) - set(survived)


class NaNCriticACAI(ACAI):
    """ACAI whose critic's loss is NaN from the first batch on."""

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        out = super().loss(x)
        out["critic_loss"] = out["critic_loss"] * float("nan")
        return out


class _Plugin:
    @hookimpl
    def vaebench_models(self):
        return [ModelSpec("nancritic", NaNCriticACAI, "critic loss turns NaN")]


@pytest.fixture
def reg(fresh_plugins):
    fresh_plugins.get_plugin_manager().register(_Plugin(), name="nancritic-test")
    return fresh_plugins.get_registry()


def test_divergence_in_the_critic_loss_fails_the_cell_naming_the_critic(reg, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = RunConfig.build(
            reg, models="nancritic,acai", seeds="0", epochs="2", subset=150, device="cpu",
            workers=1, threads=1, sets=["eval.throughput_seconds=0.01", "eval.n_pairs=16"],
        )  # fmt: skip
        summary = run(cfg, tmp_path, registry=reg, show_progress=False)
    finally:
        torch.set_num_threads(before)
    assert [c.model for c in summary.ran] == ["acai"]
    ((cell, reason),) = summary.failed
    assert cell.model == "nancritic"
    assert reason.startswith(
        "diverged: loss diverged at epoch 1/2 in the loss of optimiser 'critic' "
        "(critic_loss=nan, non-finite from batch 1 of "
    ), reason
