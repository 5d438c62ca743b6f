"""``vaebench run --threads``: validated, applied, and recorded in every result."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from vaebench.cli import cli


@pytest.mark.parametrize(
    ("option", "bad", "expected"),
    [
        ("--threads", "0", "expected an integer from 1 to 1024"),
        ("--threads", "-2", "expected an integer from 1 to 1024"),
        ("--threads", "100000", "expected an integer from 1 to 1024"),
        ("--threads", "two", "expected an integer"),
        ("--workers", "0", "expected an integer from 1 to 1024"),
    ],
)
def test_bad_thread_counts_exit_2_with_one_line(option, bad, expected, tmp_path):
    res = CliRunner().invoke(cli, ["run", option, bad, "--out", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert res.output == f"Error: invalid value '{bad}' for {option}: {expected}\n"
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
        record = json.loads(cells[0].read_text())
        assert record["environment"]["torch_threads"] == 1
        assert record["execution"]["threads"] == 1
    finally:
        torch.set_num_threads(before)
