"""Issue 25: a built-in command loads no plugin (so ``vaebench report`` imports no torch), while
plugin commands (hook ``vaebench_commands``) still run and are listed once the command list is
asked for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from test_report_cells import write_cell, write_manifest

ROOT = Path(__file__).parent.parent


def _vaebench(*args: str, probe: str = "") -> subprocess.CompletedProcess:
    """``vaebench ARGS`` through the console script's entry point in a fresh process; then
    ``probe`` (Python code) runs in that process and prints what it finds."""
    code = (
        f"import sys\nsys.argv = ['vaebench', *{list(args)!r}]\nfrom vaebench.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        f"{probe}"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)  # fmt: skip


def test_report_imports_no_torch_and_loads_no_plugin(tmp_path):
    run = tmp_path / "r"
    write_manifest(run, ["ae", "pca"], ["one"])
    for seed in (0, 1):
        write_cell(run, "ae", "one", seed, {"mse": 0.1 + seed / 100})
        write_cell(run, "pca", "one", seed, {"mse": 0.2 + seed / 100})
    probe = (
        "from vaebench import plugins\n"
        "print(sorted(m for m in ('torch', 'vaebench.models.pca') if m in sys.modules), "
        "plugins._pm is None)\n"
    )
    proc = _vaebench("report", str(run), probe=probe)
    assert proc.returncode == 0, proc.stderr
    assert (run / "report.md").is_file() and list((run / "figures").glob("one-*.png"))
    assert proc.stdout.strip().splitlines()[-1] == "[] True"


def test_plugin_command_runs_through_the_entry_point():
    proc = _vaebench("mlflow", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: vaebench mlflow [OPTIONS] RUN_DIR" in proc.stdout


def test_unknown_command_is_one_line_after_loading_the_plugins():
    proc = subprocess.run([sys.executable, "-c", "from vaebench.cli import console; console()", "nope"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].startswith("Error: No such command 'nope'")


def test_the_command_list_shows_plugin_commands():
    from vaebench.cli import cli

    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].splitlines()
              if line.strip()]  # fmt: skip
    assert {"mlflow", "report", "run", "list"} <= set(listed)
