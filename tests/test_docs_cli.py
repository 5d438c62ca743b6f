"""Every ``vaebench <command> --option`` the docs show names a real command and real options.

The calls are taken from code only: inline code spans that start with ``vaebench`` and lines
of fenced code blocks that do (with ``\\`` continuations joined). Prose such as "vaebench reads"
is not a call. The table of bad inputs in docs/reliability.md shows wrong calls on purpose
(``tests/test_cli_reliability.py`` runs each of them), so it is skipped.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from vaebench.cli import cli

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: Regions of the docs that show wrong calls on purpose.
SKIPPED = re.compile(r"<!-- bad-input-table:start -->.*?<!-- bad-input-table:end -->", re.S)
GLOBAL_OPTIONS = {"-h", "--help", "--version", "-q", "--quiet", "-v", "-vv", "-vvv", "--verbose"}


def doc_calls(text: str) -> list[tuple[int, str]]:
    """``(line number, command line)`` of each ``vaebench ...`` call in a markdown text."""
    text = SKIPPED.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    calls: list[tuple[int, str]] = []
    in_fence, pending, start = False, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_fence, pending = not in_fence, ""
            continue
        if in_fence:
            stripped = line.strip().removeprefix("$ ")
            if pending:
                stripped, pending = pending + " " + stripped, ""
            elif not stripped.startswith("vaebench "):
                continue
            else:
                start = number
            if stripped.endswith("\\"):
                pending = stripped[:-1].strip()
                continue
            calls.append((start, stripped))
        else:
            calls += [(number, m) for m in re.findall(r"`(vaebench(?: [^`]*)?)`", line)]
    return calls


def options_of(command: click.Command) -> set[str]:
    names = {"-h", "--help"}
    for param in command.params:
        names.update(getattr(param, "opts", []))
        names.update(getattr(param, "secondary_opts", []))
    return names


def problems(call: str, commands: dict[str, click.Command]) -> list[str]:
    """What is wrong with one documented call (empty when nothing is)."""
    code = call.split(" #")[0]  # a shell comment after the call
    try:
        words = shlex.split(code)
    except ValueError:  # an unbalanced quote in a placeholder: plain words will do
        words = code.split()
    words = words[1:]
    while words and words[0] in GLOBAL_OPTIONS:
        words = words[1:]
    if not words or words[0].startswith("-") or words[0] in ("...", "|"):
        return []
    name, rest = words[0], words[1:]
    if name not in commands:
        return [f"no command {name!r} (commands: {', '.join(sorted(commands))})"]
    known = options_of(commands[name])
    found = []
    for word in rest:
        if word in ("|", "&&", ";", ">", "2>&1"):  # the call ends; a pipe or another command
            break
        option = word.split("=", 1)[0]
        if not re.fullmatch(r"--?[A-Za-z][\w-]*", option):  # a value such as -1, or "-"
            continue
        if option not in known:
            found.append(f"no option {option!r} in 'vaebench {name}'")
    return found


@pytest.fixture(scope="module")
def commands() -> dict[str, click.Command]:
    cli.load_plugin_commands()  # the built-in `mlflow` command comes through the plugin hook
    return dict(cli.commands)


def test_docs_show_only_real_commands_and_options(commands):
    wrong = []
    for path in sorted(DOCS.glob("*.md")):
        for number, call in doc_calls(path.read_text(encoding="utf-8")):
            wrong += [f"{path.name}:{number}: {call!r}: {p}" for p in problems(call, commands)]
    assert not wrong, "\n".join(wrong)


def test_the_check_finds_a_wrong_command_and_a_wrong_option(commands):
    text = (
        "Run `vaebench migrate RUN` or `vaebench -q run --epoch 3`; vaebench reads this.\n"
        "```bash\nvaebench report r --format md \\\n    --no-such-option\n```\n"
        "<!-- bad-input-table:start -->\n`vaebench run --epoch 3`\n<!-- bad-input-table:end -->\n"
    )
    calls = doc_calls(text)
    assert [n for n, _ in calls] == [1, 1, 3]
    found = [p for _, c in calls for p in problems(c, commands)]
    assert found == [
        f"no command 'migrate' (commands: {', '.join(sorted(commands))})",
        "no option '--epoch' in 'vaebench run'",
        "no option '--no-such-option' in 'vaebench report'",
    ]
    assert problems("vaebench run --epochs -1 --set vae.beta=4 --models=vae", commands) == []
