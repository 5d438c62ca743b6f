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


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("0", "expected an integer from 1 to 1024"),
        ("100000", "expected an integer from 1 to 1024"),
        ("two", "expected an integer"),
    ],
)
@pytest.mark.parametrize("command", [["check", "pca"], ["bench", "-m", "pca"]])
def test_check_and_bench_validate_threads_as_run_does(command, bad, expected):
    res = CliRunner().invoke(cli, [*command, "--threads", bad])
    assert res.exit_code == 2
    assert res.output == f"Error: invalid value '{bad}' for --threads: {expected}\n"


def test_check_applies_threads_to_every_check_and_says_so(monkeypatch):
    from vaebench.testing import mechanism as testing  # where the checks' bodies run

    seen = []
    real = testing._run_body

    def body_spy(check_name, subject, expectation, body, arg):
        def wrapped(a):
            seen.append(torch.get_num_threads())
            return body(a)

        return real(check_name, subject, expectation, wrapped, arg)

    monkeypatch.setattr(testing, "_run_body", body_spy)
    before = torch.get_num_threads()
    res = CliRunner().invoke(cli, ["check", "pca", "--threads", "2"])
    assert res.exit_code == 0, res.output
    assert seen and set(seen) == {2}
    assert res.stderr.endswith("skipped (2 torch threads)\n")
    assert torch.get_num_threads() == before  # restored after the kit
    seen.clear()
    res = CliRunner().invoke(cli, ["check", "pca"])
    assert set(seen) == {1} and res.stderr.endswith("skipped (1 torch thread)\n")
