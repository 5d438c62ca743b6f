"""The command line under bad input, plus its help, import weight, progress bars and defaults.

``BAD_INPUTS`` is also the source of the table in ``docs/reliability.md``: regenerate it from
the real messages with ``python tests/test_cli_reliability.py --write-docs``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from vaebench.cli import cli

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
TABLE_START, TABLE_END = "<!-- bad-input-table:start -->", "<!-- bad-input-table:end -->"
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")  # fmt: skip


def _cell(**changes: object) -> str:
    cell = {"schema": "vaebench.cell/1", "status": "ok", "model": "pca", "dataset": "digits",
            "seed": 0, "config_hash": "0123456789ab", "metrics": {"mse": 0.01}}  # fmt: skip
    cell.update(changes)
    return json.dumps(cell)


CELL = "cells/pca--digits--seed0--0123456789ab.json"


class Fifo:
    """A named pipe to create at a path (a FIFO named x.npz would block open() forever)."""


class Link:
    """A symbolic link to ``target`` to create at a path."""

    def __init__(self, target: str) -> None:
        self.target = target


Files = dict[str, "str | bytes | Fifo | Link"]


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    """An .npz (zip) archive holding ``members`` as given (raw bytes, not arrays)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


_GOOD = _npy(np.zeros((3, 5, 5), np.float32))
_HEADER = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 5, 5), }"
_HEADER += b" " * (20000 - len(_HEADER) - 1) + b"\n"
#: A .npy member whose header is 20000 bytes long (numpy refuses headers over 10000 bytes).
BIG_HEADER = b"\x93NUMPY\x02\x00" + len(_HEADER).to_bytes(4, "little") + _HEADER + b"\0" * 600
_LIE = b"{'descr': '|u1', 'fortran_order': False, 'shape': (20000000000,), }"
_LIE += b" " * (63 - (len(_LIE) + 10) % 64) + b"\n"
#: A tiny .npy member whose header declares 20 GB of data.
HUGE_SHAPE = b"\x93NUMPY\x01\x00" + len(_LIE).to_bytes(2, "little") + _LIE + b"\0" * 100
#: Binarised images stored as uint8 0/1 (as binarised MNIST often is).
BINARY = (np.random.default_rng(0).random((32, 5, 5)) < 0.3).astype(np.uint8)
ONE_IMAGE = _zip({"x_train.npy": _npy(np.zeros((1, 5, 5), np.float32)), "x_test.npy": _GOOD})

#: (what is wrong, arguments, files to create first, text the message must contain)
BAD_INPUTS: list[tuple[str, list[str], Files, str]] = [
    ("negative epochs", ["run", "--epochs", "-1"], {}, "-1 for epochs"),
    ("epochs not a number", ["run", "--epochs", "ten"], {}, "'ten' for epochs"),
    ("latent size 0", ["run", "--latent-dim", "0"], {}, "0 for latent_dim"),
    ("learning rate 0", ["run", "--lr", "0"], {}, "0.0 for lr"),
    ("unknown model", ["run", "--models", "nope"], {}, "valid: "),
    ("model given twice", ["run", "--models", "pca,pca"], {}, "'pca' given twice"),
    ("unknown dataset", ["run", "--datasets", "nope"], {}, "unknown dataset 'nope'"),
    ("unknown metric", ["run", "--metrics", "nope"], {}, "unknown metric 'nope'"),
    ("malformed seed list", ["run", "--seeds", "1,,2"], {}, "'1,,2'"),
    ("negative seed", ["run", "--seeds", "-1"], {}, "'-1'"),
    ("reversed seed range", ["run", "--seeds", "3-1"], {}, "'3-1'"),
    ("duplicate seed", ["run", "--seeds", "0,0"], {}, "0 given twice"),
    ("huge seed range", ["run", "--seeds", "0-99999999"], {}, "at most 10000 seeds"),
    ("subset 0", ["run", "--subset", "0"], {}, "subset 0"),
    ("subset 1 (one image a split)", ["run", "--subset", "1"], {}, "subset 1: expected an integer >= 2"),
    ("subset not a number", ["run", "--subset", "ten"], {}, "'ten' for --subset"),
    ("unknown device", ["run", "--device", "tpu"], {}, "'tpu'"),
    ("unknown --set key", ["run", "--set", "vae.nope=1"], {}, "unknown key 'nope'"),
    ("--set value of the wrong type", ["run", "--set", "vae.beta=high"], {}, "'high' for vae.beta"),
    ("--set without a value", ["run", "--set", "vae.beta"], {}, "NAME.KEY=VALUE"),
    ("--set for a model not in the run", ["run", "--models", "pca", "--set", "vae.beta=2"], {},
     "'vae' is not a model or dataset of this run"),
    ("eval option out of range", ["run", "--set", "eval.n_steps=2"], {}, "eval.n_steps"),
    ("unknown option", ["run", "--epoch", "3"], {}, "No such option '--epoch'"),
    ("option without its value", ["run", "--epochs"], {}, "requires an argument"),
    ("missing config file", ["run", "--config", "missing.toml"], {}, "missing.toml"),
    ("config file not TOML", ["run", "--config", "c.toml"], {"c.toml": "epochs = \n"},
     "not valid TOML"),
    ("config: epochs of the wrong type", ["run", "--config", "c.toml"],
     {"c.toml": 'epochs = "ten"\n'}, "c.toml"),
    ("config: seeds of the wrong type", ["run", "--config", "c.toml"], {"c.toml": "seeds = 1.5\n"},
     "c.toml"),
    ("config: models not a list", ["run", "--config", "c.toml"], {"c.toml": "models = 3\n"},
     "c.toml"),
    ("config: hyperparameter of the wrong type", ["run", "--config", "c.toml"],
     {"c.toml": '[model.vae]\nbeta = "high"\n'}, "[model.vae]"),
    ("config: unknown key", ["run", "--config", "c.toml"], {"c.toml": "epoch = 3\n"},
     "unknown key(s) epoch"),
    ("config: unknown model section", ["run", "--config", "c.toml"],
     {"c.toml": "[model.nope]\nbeta = 1\n"}, "unknown model 'nope'"),
    ("config: device not a string", ["run", "--config", "c.toml"], {"c.toml": "device = 3\n"},
     "invalid device 3"),
    ("--out is a file", ["run", "--out", "afile"], {"afile": "x"}, "is not a folder"),
    ("results folder of another schema version (run)", ["run", "--out", "old"],
     {f"old/{CELL}": _cell(schema="vaebench.cell/0")}, "another vaebench version"),
    ("results folder of another schema version (report)", ["report", "old"],
     {f"old/{CELL}": _cell(schema="vaebench.cell/0")}, "vaebench.cell/0"),
    ("corrupt result JSON (report)", ["report", "broken"],
     {f"broken/{CELL}": _cell()[:60]}, CELL),
    ("result JSON with wrong field types (report)", ["report", "odd"],
     {f"odd/{CELL}": _cell(seed="zero")}, "seed is 'zero'"),
    ("report of a missing folder", ["report", "nowhere"], {}, "nowhere"),
    ("report of a folder that is not a run", ["report", "notarun"], {"notarun/x.txt": ""},
     "no cells/"),
    ("report of an empty run", ["report", "empty"], {"empty/cells/.keep": ""}, "empty"),
    ("unknown table format", ["report", "r", "--format", "xls"], {f"r/{CELL}": _cell()}, "xls"),
    ("--resume of a missing folder", ["run", "--resume", "nowhere"], {}, "no such folder"),
    ("--resume of a folder that is not a run", ["run", "--resume", "notarun"],
     {"notarun/x.txt": ""}, "no manifests/"),
    ("--resume with a corrupt manifest", ["run", "--resume", "r"],
     {"r/manifests/m.json": "{"}, "unreadable manifest"),
    ("--resume combined with grid options", ["run", "--resume", "r", "--models", "ae"],
     {"r/manifests/m.json": "{}"}, "--models"),
    ("corrupt dataset file (IDX)", ["run", "--models", "pca", "--datasets", "mnist",
                                    "--data-dir", "idx"],
     {f"idx/mnist/{name}": b"garbage!" for name in IDX_FILES}, "not an IDX file"),
    ("corrupt dataset file (.npz)", ["run", "--models", "pca", "--datasets", "./bad.npz"],
     {"bad.npz": b"PK\x03\x04 not really a zip"}, "bad.npz"),
    # issue 11.1: model and metric options are checked before the first cell trains (each
    # model is built on the meta device; each metric checks its options)
    ("hidden layer width negative", ["run", "--models", "ae", "--set", "ae.hidden=512,-3"], {},
     "model 'ae' with hidden=(512, -3): hidden must be a sequence of positive integers"),
    ("hidden layer width 0", ["run", "--models", "ae", "--set", "ae.hidden=0"], {},
     "model 'ae' with hidden=(0,): hidden must be"),
    ("unknown reconstruction loss", ["run", "--models", "ae", "--set", "ae.recon_loss=foo"], {},
     "unknown recon_loss 'foo'; valid: bce, mse"),
    ("negative beta", ["run", "--models", "vae", "--set", "vae.beta=-1"], {},
     "model 'vae' with beta=-1.0: beta must be"),
    ("10^12 interpolation pairs", ["run", "--set", "eval.n_pairs=1000000000000"], {},
     "1000000000000 for eval.n_pairs"),
    ("latent size 10^12", ["run", "--latent-dim", "1000000000000"], {},
     "1000000000000 for latent_dim: at most 100000"),
    # issue 11.2: work that never ends or never starts
    ("10^20 epochs", ["run", "--epochs", "100000000000000000000"], {},
     "100000000000000000000 for epochs: at most 100000"),
    ("config: epochs = 2^63 - 1", ["run", "--config", "c.toml"],
     {"c.toml": "epochs = 9223372036854775807\n"}, "c.toml: invalid value 9223372036854775807"),
    ("hidden layer of 10^9 units", ["run", "--models", "ae", "--set", "ae.hidden=1000000000"],
     {}, "1000000000 in ae.hidden: each entry is at most 100000"),
    ("batch of 10^10 images", ["run", "--batch-size", "10000000000"], {},
     "for batch_size: at most 1000000"),
    ("throughput timing of 1e300 s", ["run", "--set", "eval.throughput_seconds=1e300"], {},
     "eval.throughput_seconds: expected 0.001 to 60"),
    ("100000 threads", ["run", "--threads", "100000"], {}, "expected an integer from 1 to 1024"),
    ("100000 threads (bench, check)", ["check", "pca", "--threads", "100000"], {},
     "expected an integer from 1 to 1024"),
    ("a FIFO named x.npz", ["run", "--models", "pca", "--datasets", "./x.npz"],
     {"x.npz": Fifo()}, "is a FIFO (named pipe), not a regular file"),
    # issue 11.3, 11.4
    ("empty --out", ["run", "--out", ""], {}, "invalid out ''"),
    ("config: a list nested 5000 deep", ["run", "--config", "c.toml"],
     {"c.toml": "models = " + "[" * 5000 + "]" * 5000 + "\n"}, "nests arrays or inline tables"),
    ("config: 3000 nested inline tables", ["run", "--config", "c.toml"],
     {"c.toml": "models = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n"},
     "nests arrays or inline tables"),
    ("config: a list nested 200 deep", ["run", "--config", "c.toml"],
     {"c.toml": "models = " + "[" * 200 + "]" * 200 + "\n"}, "more than 4 levels deep"),
    # issue 11.5, 11.6: user data says what is actually wrong
    ("text file named x.npz", ["run", "--models", "pca", "--datasets", "./x.npz"],
     {"x.npz": "hello, these are not images\n"}, "not an .npz (zip) file (it starts with the text"),
    ("/dev/zero named x.npz", ["run", "--models", "pca", "--datasets", "./x.npz"],
     {"x.npz": Link("/dev/zero")}, "is a character device, not a regular file"),
    ("raw pickle as an .npz member", ["run", "--models", "pca", "--datasets", "./x.npz"],
     {"x.npz": _zip({"x_train.npy": pickle.dumps([1, 2, 3]), "x_test.npy": _GOOD})},
     "x_train: not a .npy array (it starts with b'\\x80"),
    ("oversized .npy header", ["run", "--models", "pca", "--datasets", "./x.npz"],
     {"x.npz": _zip({"x_train.npy": BIG_HEADER, "x_test.npy": _GOOD})},
     "the .npy header is longer than 10000 bytes"),
    (".npy header declaring 20 GB", ["run", "--models", "pca", "--datasets", "./x.npz"],
     {"x.npz": _zip({"x_train.npy": HUGE_SHAPE, "x_test.npy": _GOOD})},
     "need 74.5 GiB of memory as float32 images, more than 8 GiB"),
    ("one-image dataset", ["run", "--models", "ae", "--datasets", "./x.npz"],
     {"x.npz": ONE_IMAGE}, "x_train holds 1 image(s); vaebench needs at least 2 per split"),
    ("OUT/cells is a file", ["run", "--models", "pca", "--out", "o"], {"o/cells": "x"},
     "o/cells exists and is a file"),
    # issue 12.9: factor declarations
    ("dataset plugin with an unknown factor key", ["run", "--models", "pca",
                                                   "--datasets", "rings"], {},
     "info['factors']['angle'] has unknown key(s) 'range'; valid: bank_size, discrete, high, low"),
    # issue 19: writes and deletions stay inside OUT; every reader says what it cannot read
    ("OUT/figures links outside OUT (report)", ["report", "r"],
     {f"r/{CELL}": _cell(), "paper/diagram.png": b"mine", "r/figures": Link("../paper")},
     "r/figures is a symbolic link to ../paper: vaebench writes and deletes only in real"),
    ("OUT/cells links outside OUT (run)", ["run", "--models", "pca", "--out", "o"],
     {"elsewhere/x.lock": "mine", "o/cells": Link("../elsewhere")},
     "o/cells is a symbolic link to ../elsewhere"),
    ("cell with a seed of 10^30 (report)", ["report", "big"],
     {f"big/{CELL}": _cell(seed=10**30)}, "expected an integer from 0 to 4294967295"),
    ("report --metrics ''", ["report", "r", "--metrics", ""], {f"r/{CELL}": _cell()},
     "metrics: empty name in ''"),
    ("report --metrics ,", ["report", "r", "--metrics", ","], {f"r/{CELL}": _cell()},
     "metrics: empty name in ','"),
    ("malformed sweep range", ["run", "--models", "ae", "--sweep", "lr=1e-4:1e-2:cube5"], {},
     "a range is A:B:N (N evenly spaced values) or A:B:logN"),
]  # fmt: skip


@pytest.fixture
def one_thread():
    """One torch thread for in-process runs (far faster on a shared, loaded machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def invoke_bad(args: list[str], files: Files, where: Path) -> click.testing.Result:
    """Run ``vaebench ARGS`` in-process with ``where`` as the working folder (and the test
    plugin of :func:`rings_plugin` registered)."""
    import tempfile

    runner = CliRunner()
    with tempfile.TemporaryDirectory(dir=where) as tmp, rings_plugin():
        old_cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for name, content in files.items():
                path = Path(name)
                path.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, Fifo):
                    os.mkfifo(path)
                elif isinstance(content, Link):
                    path.symlink_to(content.target)
                elif isinstance(content, bytes):
                    path.write_bytes(content)
                else:
                    path.write_text(content)
            with _deadline(60 if any(isinstance(c, Fifo) for c in files.values()) else 0):
                return runner.invoke(cli, args, prog_name="vaebench")
        finally:
            os.chdir(old_cwd)


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Raise ``TimeoutError`` in this process after ``seconds`` (0: no deadline): a special
    file opened for reading by mistake fails the test instead of hanging it."""
    import signal

    if not seconds:
        yield
        return

    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a special file was opened?")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def rings_loader(n: int = 8):
    """A plugin author's first dataset: the factor's range declared with a key vaebench does
    not know (``range``), which once made the acai metric skip the dataset in silence."""
    import torch

    from vaebench.dataset import Dataset

    angle = torch.linspace(0, 6.28, n).reshape(-1, 1)
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    return Dataset("rings", x, x.flip(0), factors_train=angle, factors_test=angle.flip(0),
                   factor_names=("angle",), render=lambda f: x[: len(f)],
                   info={"factors": {"angle": {"range": [0, 6.28]}}})  # fmt: skip


@contextlib.contextmanager
def rings_plugin() -> Iterator[None]:
    """Register the ``rings`` dataset plugin for the duration (the registry is rebuilt)."""
    from vaebench import plugins
    from vaebench.dataset import DatasetSpec
    from vaebench.hookspecs import hookimpl

    class Rings:
        @hookimpl
        def vaebench_datasets(self):
            return [DatasetSpec("rings", rings_loader, "unknown factor key", (1, 8, 8), (8, 8))]

    plugins.reset()
    plugins.get_plugin_manager().register(Rings(), name="rings-test")
    try:
        yield
    finally:
        plugins.reset()


@pytest.mark.parametrize(
    ("args", "files", "expected"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, args, files, expected):
    result = invoke_bad(args, files, tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.output


def test_docs_table_lists_every_bad_input():
    text = DOCS.read_text()
    table = text[text.index(TABLE_START) : text.index(TABLE_END)]
    for label, *_ in BAD_INPUTS:
        assert f"| {label} |" in table, label


# ----------------------------------------------------------------------------- faults (issue 10)

FAULT_START, FAULT_END = "<!-- fault-table:start -->", "<!-- fault-table:end -->"
_TINY = ["--datasets", "darkfirst", "--metrics", "reconstruction", "--no-progress"]

#: Faults of a model, a metric or the machine (what, arguments, setup, files, exit code, text
#: the output must contain). The models, dataset and metric are the test plugin of
#: tests/test_integrity.py (8x8 images whose first two are dark); ``setup`` names what else is
#: arranged (:func:`fault_setup`). Also the source of the fault table in docs/reliability.md.
FAULTS: list[tuple[str, list[str], str, Files, int, str]] = [
    ("decoder gives NaN for test images with a bright pixel (first two dark)",
     ["-q", "run", "--models", "nanbright,pixels", *_TINY, "--no-report"], "plugin", {}, 1,
     "nanbright / darkfirst / seed 0: model contract: model.decode returned NaN"),
    ("tanh decoder (outputs below 0)",
     ["-q", "run", "--models", "tanh", *_TINY, "--no-report"], "plugin", {}, 1,
     "outside [0, 1]"),
    ("metric plugin raising ValueError",
     ["-q", "run", "--models", "pixels", "--datasets", "darkfirst",
      "--metrics", "reconstruction,brittle", "--no-progress", "--no-report"], "plugin", {}, 1,
     "brittle: evaluate raised ValueError"),
    ("metric value NaN",
     ["-q", "run", "--models", "pixels", "--datasets", "darkfirst",
      "--metrics", "reconstruction,halfnan", "--no-progress", "--no-report"], "plugin", {}, 0,
     "1 metric value(s) are NaN or infinite"),
    ("BatchNorm AE, 129 training images, batch 128 (a last batch of one)",
     ["-q", "run", "--models", "ae", "--set", "ae.batch_norm=true", "--subset", "129",
      "--batch-size", "128", "--epochs", "1", "--metrics", "reconstruction", "--no-progress",
      "--no-report"], "", {}, 0, "1 cell(s) ran, 0 already done, 0 failed"),
    ("0/1 integer images in an .npz",
     ["run", "--models", "pca", "--datasets", "./bin.npz", "--metrics", "reconstruction",
      "--no-progress", "--no-report"], "",
     {"bin.npz": _zip({"x_train.npy": _npy(BINARY[:24]), "x_test.npy": _npy(BINARY[24:])})},
     0, "uint8 0/1 read as binary images"),
    ("disk full (ENOSPC) while saving weights",
     ["-q", "run", "--models", "pixels", *_TINY, "--seeds", "0,1", "--no-report"], "enospc",
     {}, 74, "no space left on device while writing to results/vaebench-run/states"),
    ("Ctrl-C while the report is written",
     ["-q", "run", "--models", "pixels", *_TINY], "ctrl-c-report", {}, 130,
     "Write it again with: vaebench report results/vaebench-run"),
    # issue 19.5: evaluate never retrains, so it cannot pass over a cell it cannot read
    ("truncated cell file at evaluate",
     ["evaluate", "r", "--no-progress", "--no-report"], "", {f"r/{CELL}": _cell()[:60].encode()},
     1, "r/cells/pca--digits--seed0--0123456789ab.json is corrupt and was not evaluated; train "
        "its cell again with `vaebench run --resume r`"),
]  # fmt: skip


@contextlib.contextmanager
def fault_setup(name: str) -> Iterator[None]:
    """``plugin``: the test plugin of tests/test_integrity.py registered; ``enospc``: that, and
    the disk fills up when the first model state is written; ``ctrl-c-report``: that, and
    Ctrl-C arrives while the report is written."""
    import errno

    from test_integrity import IntegrityPlugin

    import vaebench.grid as grid_module
    import vaebench.report as report_module
    from vaebench import plugins

    plugins.reset()
    if name:
        plugins.get_plugin_manager().register(IntegrityPlugin(), name="integrity-test")
    real_write = grid_module.atomic_write_bytes

    def full_disk(path, data, *root):
        def no_space(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        with pytest.MonkeyPatch.context() as m:  # the real writer meets a full disk at fsync
            m.setattr(os, "fsync", no_space)
            real_write(path, data, *root)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        if name == "enospc":
            mp.setattr(grid_module, "atomic_write_bytes", full_disk)
        if name == "ctrl-c-report":
            mp.setattr(report_module, "build_report", interrupted)
        try:
            yield
        finally:
            plugins.reset()


def invoke_fault(args: list[str], setup: str, files: Files, where: Path) -> click.testing.Result:
    """Run ``vaebench ARGS`` in-process in a new folder under ``where`` with ``setup``."""
    import tempfile

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(dir=where) as tmp, fault_setup(setup):
        old_cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for name, content in files.items():
                Path(name).parent.mkdir(parents=True, exist_ok=True)
                Path(name).write_bytes(content) if isinstance(content, bytes) else None
            return CliRunner().invoke(cli, args, prog_name="vaebench")
        finally:
            os.chdir(old_cwd)
            torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("args", "setup", "files", "code", "expected"),
    [case[1:] for case in FAULTS],
    ids=[case[0] for case in FAULTS],
)
def test_each_fault_gives_its_exit_code_and_reason(tmp_path, args, setup, files, code, expected):
    result = invoke_fault(args, setup, files, tmp_path)
    assert result.exit_code == code, (result.output, result.exception)
    assert expected in result.stderr
    assert "Traceback" not in result.output and "Aborted!" not in result.output


def test_docs_table_lists_every_fault():
    text = DOCS.read_text()
    table = text[text.index(FAULT_START) : text.index(FAULT_END)]
    for label, *_ in FAULTS:
        assert f"| {label} |" in table, label


def _command(args: list[str]) -> str:
    import shlex

    return shlex.join(["vaebench", *args]).replace("|", "\\|")


def _cell_text(text: str) -> str:
    return "<br>".join(text.strip().replace("|", "\\|").splitlines())


def bad_input_table(where: Path) -> str:
    """The Markdown table of every bad input and the message it really gives."""
    rows = ["| Bad input | Command | Exit | Message (stderr) |", "|---|---|---|---|"]
    for label, args, files, _ in BAD_INPUTS:
        result = invoke_bad(args, files, where)
        command = _command(args)
        if len(command) > 100:
            command = command[:97] + "..."
        rows.append(f"| {label} | `{command}` | {result.exit_code} | "
                    f"{_cell_text(result.stderr)} |")  # fmt: skip
    return "\n".join(rows)


def fault_table(where: Path) -> str:
    """The Markdown table of every fault and what vaebench really prints (stderr)."""
    rows = ["| Fault | Command | Exit | Output (stderr) |", "|---|---|---|---|"]
    for label, args, setup, files, _, _ in FAULTS:
        result = invoke_fault(args, setup, files, where)
        command = _command(args)
        rows.append(f"| {label} | `{command}` | {result.exit_code} | "
                    f"{_cell_text(result.stderr)} |")  # fmt: skip
    return "\n".join(rows)


def _replace(text: str, start: str, end: str, table: str) -> str:
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{table}\n{end}{tail}"


def write_docs_table() -> None:
    """Replace the tables between the markers in docs/reliability.md with fresh messages."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        bad, faults = bad_input_table(Path(tmp)), fault_table(Path(tmp))
    text = _replace(DOCS.read_text(), TABLE_START, TABLE_END, bad)
    DOCS.write_text(_replace(text, FAULT_START, FAULT_END, faults))


# ----------------------------------------------------------------------------- the CLI at large


def run_cli(*args: str, cwd: Path | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    kw.setdefault("timeout", 600)
    return subprocess.run(
        [sys.executable, "-c", "from vaebench.cli import console; console()", *args],
        capture_output=True, text=True, env=env, cwd=cwd, **kw,
    )  # fmt: skip


def test_a_fifo_dataset_is_refused_by_a_real_process_at_once(tmp_path):
    """The process never opens the FIFO (it would block until a writer came): one line, exit 2,
    within the timeout."""
    os.mkfifo(tmp_path / "x.npz")
    proc = run_cli("run", "--models", "pca", "--datasets", str(tmp_path / "x.npz"),
                   "--out", str(tmp_path / "out"), timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"Error: user dataset '{tmp_path / 'x.npz'}' is a FIFO (named pipe), not a regular file; "
        "give a .npz file or a folder of images"
    ]
    assert not list((tmp_path / "out").rglob("*.json"))  # datasets load before the grid


def test_unknown_model_exits_2_naming_the_valid_ones():
    proc = run_cli("run", "--models", "nope")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "Error: unknown model 'nope'; valid: " + proc.stderr.split("valid: ")[1].strip()
    ]
    valid = proc.stderr.split("valid: ")[1].strip().split(", ")
    assert {"pca", "ae", "noisy", "vae"} <= set(valid)
    assert "Traceback" not in proc.stderr


def test_top_level_help_imports_neither_torch_nor_matplotlib():
    code = (
        "import sys\nsys.argv = ['vaebench', '--help']\nfrom vaebench.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'pandas', 'sklearn') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Benchmark autoencoder variants" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def _commands() -> list[tuple[str, click.Command]]:
    return sorted(cli.commands.items())


@pytest.mark.parametrize(("name", "command"), _commands(), ids=[n for n, _ in _commands()])
def test_every_command_explains_itself_and_its_options(name, command):
    assert command.help and len(command.help.split()) >= 5, name
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help and len(param.help.split()) >= 2, f"{name} {param.opts}"
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.opts[-1] in result.output


def test_progress_bars_are_quiet_without_a_terminal_and_shown_with_one(tmp_path, one_thread):
    import fcntl
    import pty
    import struct
    import termios

    args = ["run", "--models", "pca", "--epochs", "1", "--subset", "100", "--no-report",
            "--set", "eval.throughput_seconds=0.01"]  # fmt: skip
    piped = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "piped")])
    assert piped.exit_code == 0, piped.output
    assert "\r" not in piped.stderr and "cell/s" not in piped.stderr and "grid:" not in piped.stderr

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a real size
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from vaebench.cli import console; console()", *args,
         "--out", str(tmp_path / "tty")],
        stdout=subprocess.DEVNULL, stderr=secondary, env=env,
    )  # fmt: skip
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert proc.wait(timeout=600) == 0, seen
    assert b"grid" in seen and b"\r" in seen


@pytest.mark.slow
def test_run_without_arguments_runs_the_lecture_models_on_digits(tmp_path):
    proc = run_cli("run", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "results" / "vaebench-run"
    cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    assert sorted((c["model"], c["dataset"], c["status"]) for c in cells) == [
        (m, "digits", "ok") for m in sorted(["pca", "ae", "noisy", "vae"])
    ]
    assert (out / "report.md").exists()


def test_resume_runs_what_is_missing_with_the_stored_configuration(tmp_path, one_thread):
    out = tmp_path / "r"
    first = CliRunner().invoke(cli, [
        "run", "--models", "pca", "--seeds", "0,1", "--epochs", "1", "--subset", "100",
        "--set", "eval.throughput_seconds=0.01", "--no-report", "--out", str(out),
    ])  # fmt: skip
    assert first.exit_code == 0, first.output
    (next((out / "cells").glob("*.json"))).unlink()
    resumed = CliRunner().invoke(cli, ["run", "--resume", str(out), "--no-report"])
    assert resumed.exit_code == 0, resumed.output
    assert "1 cell(s) ran, 1 already done" in resumed.stderr
    again = CliRunner().invoke(cli, ["run", "--resume", str(out), "--no-report"])
    assert "0 cell(s) ran, 2 already done" in again.stderr
    configs = [json.loads(p.read_text())["config"] for p in sorted(out.glob("manifests/*.json"))]
    assert len(configs) == 3 and configs[0] == configs[1] == configs[2]
    # grid options with --resume are refused by the names they are typed as (once --sets,
    # --sweeps, --config-file)
    for typed in (["--set", "eval.n_pairs=3"], ["--sweep", "latent_dim=2,3"],
                  ["--config", "x.toml"], ["--data-dir", "d"], ["--val-fraction", "0.1"]):  # fmt: skip
        refused = CliRunner().invoke(cli, ["run", "--resume", str(out), *typed])
        assert refused.exit_code == 2
        assert refused.stderr.rstrip().endswith(f"do not combine it with {typed[0]}"), typed


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] != ["--write-docs"]:
        sys.exit("usage: python tests/test_cli_reliability.py --write-docs")
    write_docs_table()
    print(f"wrote the bad-input and fault tables into {DOCS}")
