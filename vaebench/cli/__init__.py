"""The ``vaebench`` command line: parses, calls the Python API (:mod:`vaebench.api`), prints.

One module per family of commands: :mod:`~vaebench.cli.run` (run, evaluate: one option block
for both), :mod:`~vaebench.cli.report`, :mod:`~vaebench.cli.listing` (list, plugins, check),
:mod:`~vaebench.cli.bench`; :mod:`~vaebench.cli.common` holds the exit codes and the one-line
usage error. The command line imports only the API, :mod:`vaebench.errors` and its own parts
(tests/test_architecture.py checks it); heavy libraries load inside the API calls, so
``vaebench --help`` is instant. Bad input exits with code 2 and one line naming the problem;
no traceback.
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any, TextIO

import click

from vaebench import api
from vaebench.cli.bench import bench
from vaebench.cli.common import EXIT_INTERRUPTED, EXIT_USAGE
from vaebench.cli.finish import exit_code, finish, watchdog_seconds
from vaebench.cli.listing import check, list_, plugins
from vaebench.cli.report import report
from vaebench.cli.run import evaluate, run
from vaebench.errors import PluginError

__all__ = ["cli", "console", "main"]


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("vaebench")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    warnings.showwarning = _show_warning


def _show_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int,
    file: TextIO | None = None, line: str | None = None,
) -> None:  # fmt: skip
    """Warnings (e.g. a broken plugin) as one line, without Python's source-line noise."""
    click.echo(f"warning: {message}", err=True)


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class OneLineErrors(click.Group):
    """A click group whose every error is one line on stderr (click's own usage errors too,
    e.g. an unknown option or a missing value, which click prints with a usage block).

    Exit codes: 2 for usage errors, 1 for other errors, 130 for Ctrl-C (the commands that
    run cells add 74 disk full and 143 SIGTERM).
    """

    def main(
        self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
        standalone_mode: bool = True, **extra: Any,
    ) -> Any:  # fmt: skip
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except _NO_ARGS_IS_HELP as exc:  # `vaebench` alone: click shows the help (exit 2)
            click.echo(exc.format_message(), err=True)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            message = " ".join(exc.format_message().split("\n"))
            click.echo(f"Error: {message}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:  # Ctrl-C outside a grid (click turns KeyboardInterrupt into Abort)
            click.echo("\ninterrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)


class PluginCommands(OneLineErrors):
    """The ``vaebench`` group: built-in commands at once, plugin commands (hook
    ``vaebench_commands``) loaded on first need -- a command name that is not built in, or the
    command list (shown by ``vaebench --help`` only when :func:`main` allows it) -- so that a
    built-in command such as ``report`` loads no plugin (and no torch)."""

    #: whether :meth:`list_commands` may load the plugins (:func:`main` turns it off for
    #: ``vaebench --help``, ``--version`` and a bare ``vaebench``, which stay fast)
    list_plugins: bool = True
    _plugins_loaded: bool = False

    def load_plugin_commands(self, strict_check: bool = True) -> None:
        """Add every plugin's commands, once (see :func:`_add_plugin_commands`)."""
        if not self._plugins_loaded:
            self._plugins_loaded = True
            _add_plugin_commands(self, strict_check=strict_check)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and not self._plugins_loaded:
            self.load_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        if self.list_plugins:
            self.load_plugin_commands()
        return super().list_commands(ctx)


@click.group(
    cls=PluginCommands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(api.__version__, prog_name="vaebench")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """Benchmark autoencoder variants -- PCA, deep AE, noisy AE, VAE and plugins -- on
    reconstruction, interpolation, likelihood, representation, sample quality and throughput.

    \b
    Quick start:
      vaebench run                       # the lecture's models on digits, short budget
      vaebench evaluate results/vaebench-run --metrics iwae,fd   # add metrics, no training
      vaebench report results/vaebench-run
      vaebench list                      # models, datasets, metrics and their plugins

    More commands come from plugins and are listed here only when a command runs (so that this
    help stays fast): the built-in `vaebench mlflow RUN_DIR` logs a stored folder to MLflow;
    `vaebench plugins --all` lists every plugin and its hooks.
    """
    _setup_logging(verbose, quiet)


for _command in (run, evaluate, report, list_, plugins, check, bench):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``vaebench`` console script.

    Plugin commands (hook ``vaebench_commands``) load only when needed (see
    :class:`PluginCommands`): ``vaebench --help`` stays fast (it imports no torch) and a built-in
    command loads no plugin. In strict plugin mode every command but ``--help``/``--version``
    loads them first, so that a plugin problem stops every command.
    """
    warnings.showwarning = _show_warning
    runs_a_command = any(a not in ("-h", "--help", "--version") for a in sys.argv[1:2])
    cli.list_plugins = runs_a_command
    if runs_a_command and api.strict_plugins():
        # `vaebench plugins` lists every plugin problem itself, strict mode or not
        cli.load_plugin_commands(strict_check=sys.argv[1:2] != ["plugins"])
    cli.main(prog_name="vaebench")


def console() -> None:
    """The ``vaebench`` console script (and ``python -m vaebench.cli``): :func:`main`, ended by
    :func:`vaebench.cli.finish.finish` -- threads joined, exit handlers run, streams flushed,
    without the interpreter's teardown (~1-1.7 s after a run, docs/performance.md). Under a
    profiler, debugger or coverage tool (``sys.getprofile()``/``sys.gettrace()`` set: e.g.
    ``python -m cProfile -m vaebench.cli``) it ends as :func:`main` does, so that the tool can
    write what it collected at exit."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        main()
        return
    try:
        main()
    except SystemExit as exc:
        code = exit_code(exc.code)
        finish(code, watchdog_seconds(code))
    finish(0)


def _add_plugin_commands(group: click.Group, strict_check: bool = True) -> None:
    """Call each plugin's ``vaebench_commands`` on its own: one broken plugin loses only its
    commands, and the warning names it."""
    try:
        try:
            hooks = api.command_hooks(strict_check=strict_check)
        except PluginError as exc:  # strict plugin mode: a plugin problem stops every command
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
    except Exception as exc:  # noqa: BLE001
        click.echo(f"warning: plugins not loaded: {type(exc).__name__}: {exc}", err=True)
        return
    for plugin_name, function in hooks:
        try:
            function(cli=group)
        except Exception as exc:  # noqa: BLE001
            click.echo(
                f'warning: commands of plugin "{plugin_name}" not loaded: '
                f"{type(exc).__name__}: {exc}",
                err=True,
            )
