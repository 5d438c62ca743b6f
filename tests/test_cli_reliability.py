"""The command line under bad input, plus its help, import weight, progress bars and defaults.

``BAD_INPUTS`` is also the source of the table in ``docs/reliability.md``: regenerate it from
the real messages with ``python tests/test_cli_reliability.py --write-docs``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
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
Files = dict[str, str | bytes]

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
    """Run ``vaebench ARGS`` in-process with ``where`` as the working folder."""
    import tempfile

    runner = CliRunner()
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        old_cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for name, content in files.items():
                path = Path(name)
                path.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, bytes):
                    path.write_bytes(content)
                else:
                    path.write_text(content)
            return runner.invoke(cli, args, prog_name="vaebench")
        finally:
            os.chdir(old_cwd)


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


def bad_input_table(where: Path) -> str:
    """The Markdown table of every bad input and the message it really gives."""
    rows = ["| Bad input | Command | Exit | Message (stderr) |", "|---|---|---|---|"]
    for label, args, files, _ in BAD_INPUTS:
        result = invoke_bad(args, files, where)
        message = result.stderr.strip().replace("|", "\\|")
        command = " ".join(["vaebench", *args]).replace("|", "\\|")
        rows.append(f"| {label} | `{command}` | {result.exit_code} | {message} |")
    return "\n".join(rows)


def write_docs_table() -> None:
    """Replace the table between the markers in docs/reliability.md with fresh messages."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        table = bad_input_table(Path(tmp))
    text = DOCS.read_text()
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    DOCS.write_text(f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}")


# ----------------------------------------------------------------------------- the CLI at large


def run_cli(*args: str, cwd: Path | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", "from vaebench.cli import main; main()", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=600, **kw,
    )  # fmt: skip


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
        [sys.executable, "-c", "from vaebench.cli import main; main()", *args,
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


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] != ["--write-docs"]:
        sys.exit("usage: python tests/test_cli_reliability.py --write-docs")
    write_docs_table()
    print(f"wrote the bad-input table into {DOCS}")
