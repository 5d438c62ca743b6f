"""The ``vaebench`` command line: a thin face over the runner and the reports.

Heavy libraries (torch, matplotlib, pandas) are imported inside commands, so ``vaebench --help``
is instant. Bad input exits with code 2 and one line naming the problem; no traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from typing import Any

import click

from vaebench import __version__

EXIT_USAGE = 2
EXIT_FAILED_CELLS = 1
EXIT_INTERRUPTED = 130


class UsageError(click.ClickException):
    """One line on stderr, exit code 2."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        message = " ".join(self.format_message().split("\n"))
        click.echo(f"Error: {message}", err=True)


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("vaebench")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Warnings (e.g. a broken plugin) as one line, without Python's source-line noise."""
    click.echo(f"warning: {message}", err=True)


def _registry():
    from vaebench.plugins import PluginError, get_registry

    try:
        return get_registry()
    except PluginError as exc:
        raise UsageError(str(exc)) from None


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class OneLineErrors(click.Group):
    """A click group whose every error is one line on stderr (click's own usage errors too,
    e.g. an unknown option or a missing value, which click prints with a usage block).

    Exit codes stay click's: 2 for usage errors, 1 for other errors and "Aborted!".
    """

    def main(  # type: ignore[override]
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
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(
    cls=OneLineErrors,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="vaebench")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """Benchmark autoencoder variants -- PCA, deep AE, noisy AE, VAE and plugins -- on
    reconstruction, interpolation smoothness and throughput.

    \b
    Quick start:
      vaebench run                       # all built-in models on digits, short budget
      vaebench report results/vaebench-run
      vaebench list                      # models, datasets, metrics and their plugins
    """
    _setup_logging(verbose, quiet)


@cli.command()
@click.option(
    "-m",
    "--models",
    metavar="NAMES",
    help="Comma-separated model names (default: pca,ae,noisy,vae). See `vaebench list`.",
)
@click.option(
    "-d",
    "--datasets",
    metavar="NAMES",
    help="Comma-separated dataset names, or paths to .npz files / image folders (default: digits).",
)
@click.option(
    "-s",
    "--seeds",
    metavar="SEEDS",
    help="Seeds: 0,1,2 or a range 0-4 (default: 0). Each seed is one cell per model and dataset.",
)
@click.option(
    "-o",
    "--out",
    metavar="DIR",
    default="results/vaebench-run",
    show_default=True,
    help="Results folder. Running the same command again resumes: finished cells are skipped. "
    "Several runs may share a folder; they split the grid.",
)
@click.option("--epochs", metavar="N", help="Training epochs for every neural model.")
@click.option("--latent-dim", metavar="N", help="Code size for every model.")
@click.option("--batch-size", metavar="N", help="Training batch size for every neural model.")
@click.option("--lr", metavar="X", help="Adam learning rate for every neural model.")
@click.option(
    "--set",
    "sets",
    metavar="NAME.KEY=VALUE",
    multiple=True,
    help="Override one hyperparameter, dataset option or eval option, e.g. "
    "--set vae.beta=4 --set moons.regime=gap --set eval.n_pairs=64. Repeatable.",
)
@click.option(
    "-c",
    "--config",
    "config_file",
    metavar="FILE",
    help="TOML config file (command-line values override it).",
)
@click.option(
    "--device",
    metavar="DEVICE",
    help="auto (CUDA when available, else CPU), cpu, cuda, cuda:N or mps.",
)
@click.option(
    "--data-dir",
    metavar="DIR",
    help="Where to look for dataset files first (then $VAEBENCH_DATA, system "
    "paths, the user cache).",
)
@click.option("--subset", metavar="N", help="Use at most N images of each split (deterministic).")
@click.option("--metrics", metavar="NAMES", help="Only these metric plugins (default: all).")
@click.option("--force", is_flag=True, help="Rerun cells that already finished.")
@click.option(
    "--resume",
    "resume_dir",
    metavar="DIR",
    help="Continue the run stored in DIR with the configuration it was started with "
    "(grid options are not allowed with it; --force, --no-report and --progress are).",
)
@click.option("--no-report", is_flag=True, help="Do not write report tables after the run.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bars (default: on when stderr is a terminal).",
)
@click.option(
    "--threads",
    metavar="N",
    help="CPU threads for torch (default: torch's choice). Small models on a shared or small "
    "machine often run several times faster with --threads 1. Recorded in every result.",
)
def run(**opts: Any) -> None:
    """Train and evaluate every model on every dataset for every seed.

    Each finished cell (model, dataset, seed, config) is written atomically to
    OUT/cells/ as JSON; trained weights go to OUT/states/. Running the same command again
    skips finished cells and runs missing or failed ones; --resume DIR continues a run with the
    configuration it was started with. Two runs may share one folder: each cell runs once.

    Failed cells (diverged, raised, out of memory) are recorded with their reason and the grid
    goes on. Exit code: 0 all cells finished, 1 some cell failed, 2 bad input, 130 interrupted
    (Ctrl-C), 143 terminated (SIGTERM).
    """
    from vaebench.config import ConfigError, RunConfig

    ctx = click.get_current_context()
    _set_threads(opts["threads"])
    registry = _registry()
    out = opts["out"]
    if opts["resume_dir"]:
        given = [
            "--" + name.replace("_", "-")
            for name in _CONFIG_OPTIONS
            if opts[name] not in (None, ())
        ]
        if ctx.get_parameter_source("out") is not click.core.ParameterSource.DEFAULT:
            given.append("--out")
        if given:
            raise UsageError(
                f"--resume takes the configuration and folder of the stored run; do not combine "
                f"it with {', '.join(given)}"
            )
        cfg = _config_from_run(opts["resume_dir"], registry)
        out = opts["resume_dir"]
    else:
        try:
            cfg = RunConfig.build(
                registry,
                models=opts["models"],
                datasets=opts["datasets"],
                seeds=opts["seeds"],
                sets=opts["sets"],
                config_file=opts["config_file"],
                device=opts["device"],
                data_dir=opts["data_dir"],
                subset=_int_opt("--subset", opts["subset"]),
                metrics=opts["metrics"],
                epochs=opts["epochs"],
                latent_dim=opts["latent_dim"],
                batch_size=opts["batch_size"],
                lr=opts["lr"],
            )
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    _execute(cfg, out, registry, force=opts["force"], progress=opts["progress"],
             report=not opts["no_report"])  # fmt: skip


def _set_threads(raw: str | None) -> None:
    if raw is None:
        return
    n = _int_opt("--threads", raw)
    if n is None or n < 1:
        raise UsageError(f"invalid value {raw!r} for --threads: expected a positive integer")
    import torch

    torch.set_num_threads(n)


#: ``run`` options that define the grid (not allowed together with ``--resume``).
_CONFIG_OPTIONS = (
    "models", "datasets", "seeds", "epochs", "latent_dim", "batch_size", "lr", "sets",
    "config_file", "device", "data_dir", "subset", "metrics",
)  # fmt: skip


def _int_opt(name: str, raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"invalid value {raw!r} for {name}: expected a positive integer") from None


def _config_from_run(run_dir: str, registry: Any):
    """The configuration of the most recently written manifest of ``run_dir``, re-validated."""
    import json
    from pathlib import Path

    from vaebench.config import ConfigError, RunConfig
    from vaebench.results import MANIFEST_SCHEMA

    folder = Path(run_dir)
    if not folder.is_dir():
        raise UsageError(f"cannot resume {run_dir}: no such folder")
    manifests = [p for p in folder.glob("manifests/*.json") if not p.name.startswith(".")]
    if not manifests:
        raise UsageError(f"cannot resume {run_dir}: no manifests/ found (not a vaebench run?)")
    newest = max(manifests, key=lambda p: (p.stat().st_mtime, p.name))  # the last active run
    try:
        data = json.loads(newest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot resume {run_dir}: unreadable manifest {newest} ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        schema = data.get("schema") if isinstance(data, dict) else None
        raise UsageError(
            f"cannot resume {run_dir}: manifest {newest.name} has schema {schema!r}, this "
            f"vaebench reads {MANIFEST_SCHEMA!r}"
        )
    try:
        return RunConfig.from_dict(data.get("config"), registry)
    except ConfigError as exc:
        raise UsageError(f"cannot resume {run_dir}: {exc}") from None


def _execute(
    cfg, out: str, registry: Any, *, force: bool, progress: bool | None, report: bool
) -> None:
    from vaebench.dataset import DatasetError
    from vaebench.results import ResultsError, is_enospc
    from vaebench.runner import RunInterrupted
    from vaebench.runner import run as run_grid

    log = logging.getLogger("vaebench")
    argv = ["vaebench", *sys.argv[1:]]
    try:
        summary = run_grid(cfg, out, registry=registry, force=force, show_progress=progress,
                           argv=argv)  # fmt: skip
    except RunInterrupted as exc:
        s = exc.summary
        what = "interrupted" if exc.signum == signal.SIGINT else f"stopped by signal {exc.signum}"
        click.echo(
            f"\n{what}: {len(s.ran)} cell(s) finished in this run and saved in {out}; the cell in "
            f"progress was dropped. Resume with: vaebench run --resume {out}",
            err=True,
        )
        sys.exit(128 + exc.signum)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted before the grid started; nothing was run in {out}", err=True)
        sys.exit(128 + signal.SIGINT)
    except (DatasetError, ResultsError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        if is_enospc(exc):
            raise click.ClickException(
                f"disk full while writing to {out}; finished cells are intact. Free space and "
                f"run the same command again to resume."
            ) from None
        raise UsageError(f"cannot write results to {out}: {exc}") from None
    parts = [f"{len(summary.ran)} cell(s) ran", f"{len(summary.skipped)} already done"]
    if summary.elsewhere:
        parts.append(f"{len(summary.elsewhere)} done by another run")
    parts.append(f"{len(summary.failed)} failed")
    click.echo(f"{', '.join(parts)} (of {summary.n_cells}); results in {out}", err=True)
    if report:
        from vaebench.report import build_report

        try:
            written = build_report([out], out_dir=out)
            for path in written:
                log.debug("wrote %s", path)
            click.echo(f"report: {os.path.join(out, 'report.md')}", err=True)
        except Exception as exc:  # noqa: BLE001 - the results are safe; say why no report
            click.echo(f"warning: report not written: {type(exc).__name__}: {exc}", err=True)
    if summary.failed:
        click.echo(f"{len(summary.failed)} failed cell(s):", err=True)
        for cell, reason in summary.failed:
            click.echo(f"  {cell.label}: {reason}", err=True)
        click.echo(
            f"(tracebacks in {os.path.join(out, 'cells')}; run the same command again to retry)",
            err=True,
        )
        sys.exit(EXIT_FAILED_CELLS)


@cli.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN_DIR...")
@click.option(
    "-o", "--out", metavar="DIR", help="Where to write the report (default: the first RUN_DIR)."
)
@click.option(
    "-f",
    "--format",
    "formats",
    default="md,csv",
    show_default=True,
    help="Table formats, comma-separated: md, tex, csv, html.",
)
@click.option(
    "--baseline",
    metavar="MODEL",
    help="Mark (†) models significantly different from MODEL: paired t-test over seeds when "
    "the seeds match, else Welch's t-test (two-sided, at --alpha).",
)
@click.option(
    "--ci",
    is_flag=True,
    help="Show mean ± half-width of the 95 % t-based confidence interval instead of mean ± std.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Level of the tests behind bold entries and † marks.",
)
@click.option(
    "--metrics",
    "summary_metrics",
    metavar="NAMES",
    help="Columns of the cross-dataset summary table, comma-separated.",
)
@click.option(
    "--figures/--no-figures",
    default=True,
    show_default=True,
    help="Also draw the figures (PNG and PDF).",
)
def report(
    runs: tuple[str, ...],
    out: str | None,
    formats: str,
    baseline: str | None,
    ci: bool,
    alpha: float,
    summary_metrics: str | None,
    figures: bool,
) -> None:
    """Build tables, figures and report.md from stored results (nothing is retrained)."""
    from vaebench.report import FORMATS, build_report
    from vaebench.results import ResultsError

    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise UsageError(
            f"unknown format {','.join(bad) or formats!r}; valid: {', '.join(FORMATS)}"
        )
    try:
        summary = (
            [m.strip() for m in summary_metrics.split(",") if m.strip()]
            if summary_metrics
            else None
        )
        written = build_report(list(runs), out_dir=out or runs[0], formats=fmts,
                               baseline=baseline, figures=figures, ci=ci, alpha=alpha,
                               summary_metrics=summary)  # fmt: skip
    except (ResultsError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write the report: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a bug, not bad input: one line, traceback with -vv
        logging.getLogger("vaebench").debug("report failed", exc_info=True)
        raise click.ClickException(
            f"report failed: {type(exc).__name__}: {exc} (this is a bug; "
            "`vaebench -vv report ...` shows the traceback)"
        ) from None
    for path in written:
        click.echo(path)


@cli.command(name="list")
@click.argument("what", required=False, type=click.Choice(["models", "datasets", "metrics"]))
def list_(what: str | None) -> None:
    """List registered models, datasets and metrics with the plugin each comes from."""
    reg = _registry()
    if what in (None, "models"):
        click.echo("models:")
        for name, r in sorted(reg.models.items()):
            desc = r.spec.description
            click.echo(f"  {name:<12} {r.origin:<36} {desc}")
    if what in (None, "datasets"):
        click.echo("datasets:")
        for name, r in sorted(reg.datasets.items()):
            shape = "x".join(map(str, r.spec.shape)) if r.spec.shape else "?"
            sizes = f"{r.spec.sizes[0]}/{r.spec.sizes[1]}" if r.spec.sizes else "?"
            click.echo(f"  {name:<14} {shape:<9} train/test {sizes:<12} {r.origin:<30} "
                       f"{r.spec.description}")  # fmt: skip
    if what in (None, "metrics"):
        click.echo("metrics:")
        for name, r in sorted(reg.metrics.items()):
            vals = ", ".join(
                v.name + {True: " ↑", False: " ↓", None: ""}[v.higher_is_better]
                for v in r.spec.values
            )
            click.echo(f"  {name:<16} {r.origin:<36} {vals}")


@cli.command()
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
def plugins(show_all: bool) -> None:
    """List installed plugins: name, distribution, version and hooks."""
    reg = _registry()
    shown = [p for p in reg.plugins if show_all or not p.builtin]
    if not shown:
        click.echo("no third-party plugins installed (use --all to see the built-ins)")
    for p in shown:
        click.echo(f"{p.name}  ({p.dist} {p.version})  hooks: {', '.join(p.hooks)}")
    for msg in reg.problems:
        click.echo(f"problem: {msg}", err=True)


@cli.command()
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option("--device", default="cpu", show_default=True, help="Device to run the checks on.")
def check(models: tuple[str, ...], device: str) -> None:
    """Run the conformance kit (vaebench.testing) on installed model plugins.

    Exit code 0 when every check passes, 1 when one fails (each failure names the check and
    what it expected), 2 for an unknown model.
    """
    from vaebench.plugins import UnknownNameError
    from vaebench.testing import run_model_checks

    reg = _registry()
    failed = 0
    for name in models:
        try:
            registered = reg.model(name)
        except UnknownNameError as exc:
            raise UsageError(str(exc)) from None
        click.echo(f"{name} ({registered.origin}):")
        for result in run_model_checks(registered.spec, device=device):
            mark = "PASS" if result.passed else "FAIL"
            if result.passed and result.message.startswith("not applicable"):
                mark = "SKIP"
            note = f": {result.message}" if result.message else ""
            click.echo(f"  {mark} {result.name}{note}")
            failed += not result.passed
    if failed:
        click.echo(f"{failed} check(s) failed", err=True)
        sys.exit(1)


@cli.command()
@click.option(
    "-m", "--models", metavar="NAMES", help="Comma-separated models (default: built-ins)."
)
@click.option(
    "-d",
    "--dataset",
    default="digits",
    metavar="NAME",
    show_default=True,
    help="Dataset to time on.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N, mps.")
@click.option(
    "--threads",
    metavar="N",
    help="Torch CPU threads (default: what `vaebench run` uses per worker: 1 on the CPU).",
)
@click.option(
    "--batch-size", default="256", metavar="N", show_default=True, help="Training batch size."
)
@click.option(
    "--eval-batch-size",
    default="1024",
    metavar="N",
    show_default=True,
    help="Batch of encode/decode calls.",
)
@click.option("--latent-dim", metavar="K", help="Code size of every model (default: its own).")
@click.option(
    "--train-samples", metavar="N", help="Train on the first N images (default: all: one epoch)."
)
@click.option(
    "--repeats",
    default="5",
    metavar="N",
    show_default=True,
    help="Interleaved repeats (at least 3).",
)
@click.option(
    "--window",
    default="1.0",
    metavar="SECONDS",
    show_default=True,
    help="Minimum seconds of one timed window.",
)
@click.option(
    "--clock",
    type=click.Choice(["wall", "cpu"]),
    default="wall",
    show_default=True,
    help="wall: elapsed time; cpu: process CPU time (CPU device; less disturbed by other load).",
)
@click.option("--json", "json_path", metavar="FILE", help="Also write the full result as JSON.")
@click.option("--seconds", hidden=True, help="Deprecated alias of --window.")
@click.option("--epochs", hidden=True, help="Deprecated; ignored.")
def bench(
    models: str | None, dataset: str, device: str, threads: str | None, batch_size: str,
    eval_batch_size: str, latent_dim: str | None, train_samples: str | None, repeats: str,
    window: str, clock: str, json_path: str | None, seconds: str | None, epochs: str | None,
) -> None:  # fmt: skip
    """Throughput of each model through the harness and through a plain-torch reference of the
    same network: train/encode/decode samples/s, their ratio, the matmul GFLOP/s of the
    model's shapes and the fraction reached, peak memory. Medians of interleaved repeats.

    Writes no results folder. A model that fails is reported on its row and the others still
    run (exit code 1). docs/performance.md explains the method; for regression tracking across
    commits use the pytest-benchmark suite (pytest tests/benchmarks --benchmark-enable).
    """
    from vaebench.bench import BenchConfig, format_header, run_bench
    from vaebench.dataset import DatasetError
    from vaebench.errors import ConfigError

    def number(name: str, raw: str | None, kind: type = int) -> Any:
        if raw is None:
            return None
        try:
            return kind(raw)
        except ValueError:
            what = "a positive integer" if kind is int else "a number of seconds"
            raise UsageError(f"invalid value {raw!r} for {name}: expected {what}") from None

    if seconds is not None:
        click.echo("warning: bench --seconds is deprecated; use --window", err=True)
        window = seconds
    if epochs is not None:
        click.echo(
            "warning: bench --epochs is ignored: a train window is whole epochs lasting at "
            "least --window seconds",
            err=True,
        )
    cfg = BenchConfig(
        models=[m.strip() for m in models.split(",") if m.strip()] if models is not None else None,
        dataset=dataset,
        device=device,
        threads=number("--threads", threads),
        batch_size=number("--batch-size", batch_size),
        eval_batch_size=number("--eval-batch-size", eval_batch_size),
        repeats=number("--repeats", repeats),
        train_samples=number("--train-samples", train_samples),
        latent_dim=number("--latent-dim", latent_dim),
        window_s=number("--window", window, float),
        clock=clock,
    )
    if json_path is not None:
        folder = os.path.dirname(os.path.abspath(json_path))
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write --json {json_path}: folder {folder} does not exist")
    header = [False]

    def echo(line: str) -> None:
        if not header[0]:
            click.echo(format_header())
            header[0] = True
        click.echo(line)

    def save(result: dict[str, Any]) -> None:  # after every model: a partial run is kept
        if json_path is not None:
            from vaebench.results import atomic_write_json

            atomic_write_json(json_path, result)

    try:
        result = run_bench(cfg, _registry(), echo=echo, on_update=save)
    except (ConfigError, DatasetError) as exc:
        raise UsageError(str(exc)) from None
    for rec in result["models"]:
        if rec["status"] == "ok" and rec.get("reference_note"):
            click.echo(f"note: {rec['model']}: {rec['reference_note']}")
    click.echo(
        f"{result['dataset']} {tuple(result['image_shape'])} on {result['device']}, "
        f"{result['threads']} thread(s), batch {result['batch_size']}; medians of "
        f"{result['repeats']} interleaved repeats ({result['clock']} clock); "
        "ratio = harness / reference (± half-range)"
    )
    sys.stdout.flush()
    for w in result["warnings"]:
        click.echo(f"warning: {w}", err=True)
    if any(r["status"] != "ok" for r in result["models"]):
        sys.exit(EXIT_FAILED_CELLS)


def main() -> None:
    """Entry point of the ``vaebench`` console script.

    Plugin commands (hook ``vaebench_commands``) are added unless the first argument asks only
    for help or the version, so that ``vaebench --help`` stays fast (it imports no torch).
    """
    warnings.showwarning = _show_warning
    if any(a not in ("-h", "--help", "--version") for a in sys.argv[1:2]):
        _add_plugin_commands()
    cli.main(prog_name="vaebench")


def _add_plugin_commands() -> None:
    """Call each plugin's ``vaebench_commands`` on its own: one broken plugin loses only its
    commands, and the warning names it."""
    try:
        from vaebench.plugins import get_plugin_manager

        pm = get_plugin_manager()
    except Exception as exc:  # noqa: BLE001
        click.echo(f"warning: plugins not loaded: {type(exc).__name__}: {exc}", err=True)
        return
    for impl in pm.hook.vaebench_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as exc:  # noqa: BLE001
            click.echo(
                f'warning: commands of plugin "{impl.plugin_name}" not loaded: '
                f"{type(exc).__name__}: {exc}",
                err=True,
            )


if __name__ == "__main__":  # pragma: no cover
    main()
