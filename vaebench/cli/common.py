"""What every ``vaebench`` command shares: the exit codes, the one-line usage error, the
registry as the commands see it, and text made safe to print."""

from __future__ import annotations

import signal
import sys
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click

from vaebench import api
from vaebench.errors import PluginError

if TYPE_CHECKING:
    from vaebench.api import Registry

EXIT_USAGE = 2
EXIT_FAILED_CELLS = 1
EXIT_DISK_FULL = 74  # EX_IOERR of sysexits.h
EXIT_INTERRUPTED = 130


class UsageError(click.ClickException):
    """One line on stderr, exit code 2."""

    exit_code = EXIT_USAGE

    def show(self, file: IO[Any] | None = None) -> None:
        message = " ".join(self.format_message().split("\n"))
        click.echo(f"Error: {message}", err=True)


def registry() -> Registry:
    """The plugin registry; a plugin problem in strict plugin mode is a usage error."""
    try:
        return api.load_registry()
    except PluginError as exc:
        raise UsageError(str(exc)) from None


def line(text: object) -> str:
    """One printable line: control characters (a plugin's message) shown escaped."""
    return api.printable(text)


def int_opt(name: str, raw: str | None) -> int | None:
    """An optional positive integer option; anything else is a usage error naming it."""
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"invalid value {raw!r} for {name}: expected a positive integer") from None


def exit_interrupted(message: str) -> NoReturn:
    """Ctrl-C: ``message`` on stderr after a line break, exit code 130."""
    click.echo(f"\n{message}", err=True)
    sys.exit(128 + signal.SIGINT)
