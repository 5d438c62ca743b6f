"""``vaebench run --threads``: validated, applied, and recorded in every result."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from vaebench.cli import cli


@pytest.mark.parametrize("bad", ["0", "-2", "two"])
def test_bad_thread_counts_exit_2_with_one_line(bad, tmp_path):
    res = CliRunner().invoke(cli, ["run", "--threads", bad, "--out", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert f"invalid value '{bad}' for --threads: expected a positive integer" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "r").exists()  # rejected before anything ran


def test_threads_are_applied_and_recorded(tmp_path):
    before = torch.get_num_threads()
    try:
        res = CliRunner().invoke(
            cli,
            ["run", "--models", "pca", "--threads", "1", "--no-report", "--out", str(tmp_path)],
        )
        assert res.exit_code == 0, res.output
        cells = list((tmp_path / "cells").glob("*.json"))
        assert len(cells) == 1
        assert json.loads(cells[0].read_text())["environment"]["torch_threads"] == 1
    finally:
        torch.set_num_threads(before)
