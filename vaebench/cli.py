"""The ``vaebench`` command line: a thin face over the runner and the reports.

Heavy libraries (torch, matplotlib, pandas) are imported inside commands, so ``vaebench --help``
is instant. Bad input exits with code 2 and one line naming the problem; no traceback.
"""

from __future__ import annotations

import logging
import os
import shlex
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

    Exit codes: 2 for usage errors, 1 for other errors, 130 for Ctrl-C (the commands that
    run cells add 74 disk full and 143 SIGTERM).
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
        except click.Abort:  # Ctrl-C outside a grid (click turns KeyboardInterrupt into Abort)
            click.echo("\ninterrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
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


@cli.command()
@click.option(
    "-m",
    "--models",
    metavar="NAMES",
    help="Comma-separated model names (default: pca,ae,noisy,vae). See `vaebench list models`.",
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
    help="Results folder (default: results/vaebench-run). Running the same command again "
    "resumes: finished cells are skipped, new metrics are evaluated on the stored models. "
    "Several runs may share a folder; they split the grid.",
)
@click.option("--epochs", metavar="N", help="Training epochs for every neural model [default: 30].")
@click.option("--latent-dim", metavar="N", help="Code size for every model [default: 10].")
@click.option(
    "--batch-size", metavar="N", help="Training batch size for every neural model [default: 128]."
)
@click.option("--lr", metavar="X", help="Learning rate for every neural model [default: 0.001].")
@click.option(
    "--arch",
    metavar="NAME",
    help="Network of every neural model that has one: mlp (default) or conv; "
    "--set vae.arch=conv for one model.",
)
@click.option(
    "--set",
    "sets",
    metavar="NAME.KEY=VALUE",
    multiple=True,
    help="Override one hyperparameter, dataset option or evaluation option, e.g. "
    "--set vae.beta=4 --set moons.regime=gap --set eval.n_pairs=64. Repeatable. "
    "`vaebench list` shows every key with its default.",
)
@click.option(
    "--sweep",
    "sweeps",
    metavar="[MODEL.]KEY=VALUES",
    multiple=True,
    help="Add a grid axis: --sweep vae.beta=0.5,1,4 (one model), --sweep latent_dim=2,8,32 "
    "(every model that has it), ranges lr=1e-4:1e-2:log5 or epochs=10:50:5. Repeatable; the "
    "report groups the variants (vae (beta=4)) and draws each swept parameter.",
)
@click.option(
    "-c",
    "--config",
    "config_file",
    metavar="FILE",
    help="TOML config file with any of these options (command-line values override it); "
    "see docs/config.md.",
)
@click.option(
    "--data-dir",
    metavar="DIR",
    help="Where to look for dataset files first (then $VAEBENCH_DATA, system "
    "paths, the user cache).",
)
@click.option("--subset", metavar="N", help="Use at most N images of each split (deterministic).")
@click.option(
    "--val-fraction",
    metavar="F",
    help="Hold out this share (0 to 0.5) of the training images: their reconstruction error "
    "is logged every epoch (val_mse) and used for the not-converged warning [default: 0].",
)
@click.option(
    "--metrics",
    metavar="NAMES",
    help="Metrics to evaluate (default: those on by default; `vaebench list metrics`).",
)
@click.option(
    "--device",
    metavar="DEVICE",
    help="auto (CUDA when available, else CPU), cpu, cuda, cuda:N or mps [default: auto].",
)
@click.option(
    "--workers",
    metavar="N",
    help="Cells trained at once [default: one per CPU core, one per GPU; fewer while other "
    "processes keep the cores busy].",
)
@click.option(
    "--threads",
    metavar="N",
    help="Torch CPU threads per worker [default: cores // workers]. Recorded in every result: "
    "results are identical run to run at the same thread count.",
)
@click.option(
    "--executor",
    metavar="NAME",
    help="local (worker processes on this machine; default) or dask (pip install "
    "'vaebench[dask]'; a local Dask cluster, or --scheduler ADDRESS).",
)
@click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler to use with --executor dask.")
@click.option(
    "--shard",
    metavar="K/N",
    help="Run only the K-th of N disjoint shares of the grid (array jobs without Dask; each cell "
    "belongs to one shard by its key). Shards may share one --out folder; run `vaebench report` "
    "once all have finished.",
)
@click.option("--force", is_flag=True, help="Retrain cells that already finished.")
@click.option(
    "--resume",
    "resume_dir",
    metavar="DIR",
    help="Continue the run stored in DIR with the configuration and execution settings it was "
    "started with (grid options are not allowed with it; --threads, --workers, --device, "
    "--executor, --scheduler override the stored settings).",
)
@click.option(
    "--mlflow",
    metavar="URI",
    is_flag=False,
    flag_value="sqlite:///mlruns.db",  # vaebench.tracking.mlflow.DEFAULT_URI (no import here)
    help="Log every cell as an MLflow run to URI; --mlflow alone: sqlite:///mlruns.db (a "
    "database in the current folder, which MLflow 3's tools read; they refuse file: stores) "
    "(pip install 'vaebench[mlflow]'; MLFLOW_TRACKING_URI does the same). Experiment: "
    "MLFLOW_EXPERIMENT_NAME, else the results folder's name.",
)
@click.option("--no-report", is_flag=True, help="Do not write the report after the run.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bars (default: on when stderr is a terminal).",
)
def run(**opts: Any) -> None:
    """Train and evaluate every model on every dataset for every seed (and sweep value).

    Each finished cell (model, hyperparameters, dataset, seed) is written atomically to
    OUT/cells/ as JSON; trained weights go to OUT/states/. Running the same command again
    skips finished cells, runs missing or failed ones, and evaluates new metrics (or changed
    evaluation options) on the stored models without training; --resume DIR continues a run
    with the configuration it was started with. Two runs may share one folder.

    Failed cells (diverged, raised, broke the model contract, out of memory) and failed
    metrics are recorded with their reason and the grid goes on. Exit code: 0 everything
    finished, 1 some cell or metric failed, 2 bad input, 74 disk full, 130 interrupted
    (Ctrl-C), 143 terminated (SIGTERM).
    """
    from vaebench.config import ConfigError, RunConfig

    registry = _registry()
    overrides = {k: opts[k] for k in _EXECUTION_OPTIONS}
    try:
        if opts["resume_dir"]:
            given = [
                "--" + name.replace("_", "-")
                for name in _CONFIG_OPTIONS
                if opts[name] not in (None, ())
            ]
            if given:
                raise UsageError(
                    f"--resume takes the configuration and folder of the stored run; do not "
                    f"combine it with {', '.join(given)}"
                )
            stored = _stored_config(opts["resume_dir"], "resume")
            cfg = RunConfig.from_dict(stored, registry, **overrides)
            out = opts["resume_dir"]
        else:
            cfg = RunConfig.build(
                registry,
                models=opts["models"],
                datasets=opts["datasets"],
                seeds=opts["seeds"],
                sets=opts["sets"],
                sweeps=opts["sweeps"],
                config_file=opts["config_file"],
                data_dir=opts["data_dir"],
                subset=_int_opt("--subset", opts["subset"]),
                metrics=opts["metrics"],
                val_fraction=opts["val_fraction"],
                epochs=opts["epochs"],
                latent_dim=opts["latent_dim"],
                batch_size=opts["batch_size"],
                lr=opts["lr"],
                arch=opts["arch"],
                out=opts["out"],
                **overrides,
            )
            out = cfg.out or DEFAULT_OUT
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    _use_mlflow(cfg.mlflow, out)
    _execute("run", cfg, out, registry, force=opts["force"], progress=opts["progress"],
             report=not opts["no_report"])  # fmt: skip


DEFAULT_OUT = "results/vaebench-run"
EXIT_DISK_FULL = 74  # EX_IOERR of sysexits.h

#: ``run`` options that define the grid (not allowed together with ``--resume``).
_CONFIG_OPTIONS = (
    "models", "datasets", "seeds", "epochs", "latent_dim", "batch_size", "lr", "arch", "sets",
    "sweeps", "config_file", "data_dir", "subset", "metrics", "val_fraction", "out",
)  # fmt: skip
#: Execution settings: given again, they override the stored ones (--resume, evaluate).
_EXECUTION_OPTIONS = ("device", "workers", "threads", "executor", "scheduler", "shard", "mlflow")


@cli.command()
@click.argument("run_dir", metavar="RUN_DIR")
@click.option(
    "--metrics",
    metavar="NAMES",
    help="Metrics to evaluate (default: the run's selection, else those on by default), e.g. "
    "probe,knn,cluster,active_units,elbo,iwae,fd,kid,prdc.",
)
@click.option(
    "--set",
    "sets",
    metavar="eval.KEY=VALUE",
    multiple=True,
    help="Evaluation option, e.g. --set eval.iwae_k=5000 (a changed option re-evaluates the "
    "metrics that use it). Repeatable.",
)
@click.option(
    "--sweep",
    "sweeps",
    metavar="eval.sampler=A,B",
    multiple=True,
    help="Evaluate the sample metrics (fd, kid, prdc) once per sampler, on the stored models: "
    "--sweep eval.sampler=prior,gaussian,gmm,two-stage (values named VALUE@SAMPLER). Only "
    "eval.sampler can be swept here.",
)
@click.option("--data-dir", metavar="DIR", help="Where to look for dataset files first.")
@click.option("--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--workers", metavar="N", help="Cells evaluated at once.")
@click.option("--threads", metavar="N", help="Torch CPU threads per worker.")
@click.option("--executor", metavar="NAME", help="local or dask.")
@click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler to use with --executor dask.")
@click.option("--force", is_flag=True, help="Re-evaluate the selected metrics even where stored.")
@click.option(
    "--mlflow",
    metavar="URI",
    is_flag=False,
    flag_value="sqlite:///mlruns.db",  # vaebench.tracking.mlflow.DEFAULT_URI (no import here)
    help="Log every cell as an MLflow run to URI; --mlflow alone: sqlite:///mlruns.db (a "
    "database in the current folder, which MLflow 3's tools read; they refuse file: stores) "
    "(pip install 'vaebench[mlflow]'; MLFLOW_TRACKING_URI does the same). Experiment: "
    "MLFLOW_EXPERIMENT_NAME, else the results folder's name.",
)
@click.option("--no-report", is_flag=True, help="Do not rewrite the report afterwards.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bars (default: on when stderr is a terminal).",
)
def evaluate(run_dir: str, **opts: Any) -> None:
    """Add metrics to the models stored in RUN_DIR without training them again.

    Every finished cell whose evaluation of a selected metric is missing, failed, or was made
    with another metric version or other options is evaluated from its stored state
    (OUT/states/); the cell's training record is left untouched. Exit code: 0 all evaluated,
    1 some metric or cell failed, 2 bad input, 74 disk full, 130 interrupted
    (Ctrl-C), 143 terminated (SIGTERM).
    """
    from vaebench.config import ConfigError, RunConfig
    from vaebench.results import ResultsError, iter_cell_paths, read_cell

    registry = _registry()
    cells = []
    try:
        for path in iter_cell_paths(run_dir):
            try:
                cells.append(read_cell(path))
            except ResultsError:  # damaged or foreign files are reported by the evaluation
                continue
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    stored = _stored_config(run_dir, "evaluate", required=False)
    sets = list(opts["sets"])
    for sweep in opts["sweeps"]:
        key, sep, values = sweep.partition("=")
        if key.strip() != "eval.sampler" or not sep or not values.strip():
            raise UsageError(
                f"--sweep {sweep!r}: evaluate sweeps only eval.sampler (e.g. --sweep "
                "eval.sampler=prior,gmm); set other evaluation options with --set eval.KEY=VALUE"
            )
        sets.append(f"eval.sampler={values.strip()}")
    try:
        cfg = RunConfig.for_evaluation(
            registry,
            models=list(dict.fromkeys(c["model"] for c in cells)),
            datasets=list(dict.fromkeys(c["dataset"] for c in cells)),
            stored=stored,
            metrics=opts["metrics"],
            sets=sets,
            data_dir=opts["data_dir"],
            **{k: opts[k] for k in _EXECUTION_OPTIONS if k in opts},
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    _use_mlflow(opts["mlflow"], run_dir)
    _execute("evaluate", cfg, run_dir, registry, force=opts["force"],
             progress=opts["progress"], report=not opts["no_report"])  # fmt: skip


def _use_mlflow(uri: str | None, out: str) -> None:
    """``--mlflow URI`` (or MLFLOW_TRACKING_URI): the built-in plugin vaebench.tracking.mlflow
    logs each cell; it reads the URI from the environment and names the experiment after
    ``out``."""
    from vaebench.config import ConfigError
    from vaebench.tracking.mlflow import configure

    try:
        configure(uri, out)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _int_opt(name: str, raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"invalid value {raw!r} for {name}: expected a positive integer") from None


def _stored_config(run_dir: str, what: str, required: bool = True) -> dict[str, Any] | None:
    """The configuration in the most recently written manifest of ``run_dir``."""
    from vaebench.results import ResultsError, latest_manifest_config

    try:
        config = latest_manifest_config(run_dir)
    except ResultsError as exc:
        raise UsageError(f"cannot {what} {run_dir}: {exc}") from None
    if config is None and required:
        raise UsageError(f"cannot {what} {run_dir}: no manifests/ found (not a vaebench run?)")
    return config


def _execute(
    mode: str, cfg, out: str, registry: Any, *, force: bool, progress: bool | None, report: bool
) -> None:
    from vaebench.config import ConfigError
    from vaebench.dataset import DatasetError
    from vaebench.errors import DiskFullError
    from vaebench.grid import evaluate as evaluate_grid
    from vaebench.grid import run as run_grid
    from vaebench.results import ResultsError, is_enospc
    from vaebench.signals import RunInterrupted

    argv = ["vaebench", *sys.argv[1:]]
    try:
        if mode == "run":
            summary = run_grid(cfg, out, registry=registry, force=force, show_progress=progress,
                               argv=argv)  # fmt: skip
        else:
            summary = evaluate_grid(out, cfg, registry=registry, force=force,
                                    show_progress=progress, argv=argv)  # fmt: skip
    except RunInterrupted as exc:
        s = exc.summary
        what = "interrupted" if exc.signum == signal.SIGINT else f"stopped by signal {exc.signum}"
        click.echo(
            f"\n{what}: {len(s.ran) + len(s.evaluated)} cell(s) finished in this run and saved "
            f"in {out}; cells in progress were dropped. Resume with: "
            + (f"vaebench run --resume {out}" if mode == "run" else f"vaebench evaluate {out}"),
            err=True,
        )
        sys.exit(128 + exc.signum)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted before the grid started; nothing was run in {out}", err=True)
        sys.exit(128 + signal.SIGINT)
    except DiskFullError as exc:
        click.echo(
            f"Error: {exc.strerror or exc}; finished cells are intact. Free space and run the "
            f"same command again to resume.",
            err=True,
        )
        sys.exit(EXIT_DISK_FULL)
    except (ConfigError, DatasetError, ResultsError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        if is_enospc(exc):
            click.echo(f"Error: no space left on device while writing to {out}; finished cells "
                       "are intact. Free space and run the same command again.", err=True)  # fmt: skip
            sys.exit(EXIT_DISK_FULL)
        raise UsageError(f"cannot write results to {out}: {exc}") from None
    _print_summary(summary, out, mode)
    if report:
        _write_report(out)
    for path in summary.unreadable:  # evaluate only: it never retrains a cell
        click.echo(f"Error: {path} is corrupt and was not evaluated; train its cell again with "
                   f"`vaebench run --resume {out}`", err=True)  # fmt: skip
    if summary.unreadable and not (summary.failed or summary.metric_failures):
        sys.exit(EXIT_FAILED_CELLS)
    if summary.failed or summary.metric_failures:
        if summary.failed:
            click.echo(f"{len(summary.failed)} failed cell(s):", err=True)
            for cell, reason in summary.failed:
                click.echo(f"  {cell.label}: {_line(reason)}", err=True)
        if summary.metric_failures:
            click.echo(f"{len(summary.metric_failures)} failed metric(s):", err=True)
            for line in _grouped_failures(summary.metric_failures):
                click.echo(f"  {line}", err=True)
        click.echo(
            f"(tracebacks in {os.path.join(out, 'cells')}; run the same command again to retry)",
            err=True,
        )
        sys.exit(EXIT_FAILED_CELLS)


def _grouped_failures(failures: list) -> list[str]:
    """One line per failed metric; when many cells share a metric and reason, one line for
    them all (``knn: reason (48 cells: ae / digits / seed 0, ...)``)."""
    if len(failures) <= 10:
        return [f"{cell.label}: {metric}: {_line(reason)}" for cell, metric, reason in failures]
    groups: dict[tuple[str, str], list[str]] = {}
    for cell, metric, reason in failures:
        groups.setdefault((metric, reason), []).append(cell.label)
    lines = []
    for (metric, reason), labels in groups.items():
        shown = ", ".join(labels[:2]) + (", ..." if len(labels) > 2 else "")
        lines.append(f"{metric}: {_line(reason)} ({len(labels)} cell(s): {shown})")
    return lines


def _line(text: Any) -> str:
    """One printable line: control characters (a plugin's message) shown escaped."""
    from vaebench.plugins import printable

    return printable(text)


def _print_summary(summary: Any, out: str, mode: str) -> None:
    parts = []
    if mode == "run":
        parts.append(f"{len(summary.ran)} cell(s) ran")
    if summary.evaluated or mode == "evaluate":
        parts.append(f"{len(summary.evaluated)} evaluated")
    parts.append(f"{len(summary.skipped)} already done")
    if summary.unsupported:
        parts.append(f"{len(summary.unsupported)} not supported")
    if summary.elsewhere:
        parts.append(f"{len(summary.elsewhere)} done by another run")
    parts.append(f"{len(summary.failed)} failed")
    ex = summary.execution
    how = f"{ex.get('concurrent', 1)} worker(s) x {ex.get('threads', '?')} thread(s)"
    planned = min(int(ex.get("workers", 1)), summary.n_cells)
    if int(ex.get("concurrent", 1)) < planned:  # only the machine's load lowers it (issue 19.6)
        how += (f", not {planned}: other processes keep the cores busy (1-minute load "
                "average); --workers N sets the number")  # fmt: skip
    click.echo(f"{', '.join(parts)} (of {summary.n_cells}; {how}); results in {out}", err=True)
    if mode == "evaluate":
        if summary.evaluated:
            click.echo("nothing was trained: the stored models were evaluated", err=True)
        elif not summary.no_state and not summary.unreadable:
            click.echo("nothing to evaluate: every selected metric is stored for every "
                       "finished cell", err=True)  # fmt: skip
    if summary.no_state:
        click.echo(
            f"{len(summary.no_state)} cell(s) have no stored weights in "
            f"{os.path.join(out, 'states')}: their stored evaluations were kept; a metric never "
            "evaluated on them is listed as failed (vaebench run retrains them)",
            err=True,
        )
    for cell, reason in summary.unsupported:
        click.echo(f"  skipped {cell.label}: {_line(reason)}", err=True)
    if summary.nan_values:
        click.echo(f"{len(summary.nan_values)} metric value(s) are NaN or infinite:", err=True)
        for cell, value, reason in summary.nan_values[:20]:
            click.echo(f"  {cell.label}: {value}: {_line(reason)}", err=True)
        if len(summary.nan_values) > 20:
            click.echo(f"  ... and {len(summary.nan_values) - 20} more (see report.md)", err=True)
    for cell, message in summary.warnings:
        click.echo(f"warning: {cell.label}: {_line(message)}", err=True)


def _write_report(out: str) -> None:
    from vaebench.report import build_report
    from vaebench.report.build import RUN_FIGURE_FORMATS

    log = logging.getLogger("vaebench")
    try:
        written = build_report([out], out_dir=out, figures=RUN_FIGURE_FORMATS)
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted while writing the report; the results in {out} are complete. "
            f"Write it again with: vaebench report {out}",
            err=True,
        )
        sys.exit(128 + signal.SIGINT)
    except Exception as exc:  # noqa: BLE001 - the results are safe; say why no report
        log.debug("report failed", exc_info=True)
        click.echo(f"warning: report not written: {type(exc).__name__}: {_line(exc)} "
                   f"(vaebench report {out} tries again)", err=True)  # fmt: skip
        return
    for path in written:
        log.debug("wrote %s", path)
    click.echo(f"report: {os.path.join(out, 'report.md')}", err=True)


@cli.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN_DIR...")
@click.option(
    "-o", "--out", metavar="DIR", help="Where to write the report (default: the first RUN_DIR)."
)
@click.option(
    "-f",
    "--format",
    "formats",
    metavar="FORMATS",
    help="Table formats, comma-separated: md, tex, csv, html [default: md,csv plus every format "
    "the previous report in OUT wrote, so no table is left out of date].",
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
    "--correction",
    type=click.Choice(["holm", "bh", "none"]),
    default="holm",
    show_default=True,
    help="Multiple-comparison correction of each column's tests against the best (bold) and "
    "the baseline (†): Holm (family-wise error), Benjamini-Hochberg (false discovery rate) or "
    "none.",
)
@click.option(
    "--cd-test",
    type=click.Choice(["nemenyi", "wilcoxon"]),
    default="nemenyi",
    show_default=True,
    help="Post-hoc test of the ranks across datasets and their critical-difference diagrams: "
    "Nemenyi on mean ranks, or pairwise Wilcoxon signed-rank tests with Holm's correction.",
)
@click.option(
    "--seeds-needed",
    is_flag=True,
    help="Also say, per column, how many seeds a paired t-test needs to separate the two best "
    "models at their observed difference (80 % power; tables/seeds-needed.*).",
)
@click.option(
    "--metrics",
    "summary_metrics",
    metavar="NAMES",
    help="Columns of the cross-dataset summary table, comma-separated.",
)
@click.option(
    "--figures",
    "figure_formats",
    metavar="FORMATS",
    default="png,pdf",
    show_default=True,
    help="Figure formats, comma-separated: png (always; report.md shows it), pdf (for papers). "
    "Figures whose inputs did not change since the last report in OUT are kept, not redrawn.",
)
@click.option("--no-figures", is_flag=True, help="Draw no figures (tables and report.md only).")
def report(
    runs: tuple[str, ...],
    out: str | None,
    formats: str | None,
    baseline: str | None,
    ci: bool,
    alpha: float,
    correction: str,
    cd_test: str,
    seeds_needed: bool,
    summary_metrics: str | None,
    figure_formats: str,
    no_figures: bool,
) -> None:
    """Build tables, figures and report.md from stored results (nothing is retrained)."""
    from vaebench.errors import DiskFullError
    from vaebench.report import FORMATS, build_report
    from vaebench.results import ResultsError

    again = shlex.join(["vaebench", "report", *runs, *(["--out", out] if out else [])])

    fmts = None
    if formats is not None:
        fmts = [f.strip() for f in formats.split(",") if f.strip()]
        bad = [f for f in fmts if f not in FORMATS]
        if bad or not fmts:
            raise UsageError(
                f"unknown format {','.join(bad) or formats!r}; valid: {', '.join(FORMATS)}"
            )
    from vaebench.report.build import FIGURE_FORMATS

    figures = [f.strip().lower() for f in figure_formats.split(",") if f.strip()]
    bad = [f for f in figures if f not in FIGURE_FORMATS]
    if bad or not figures:
        raise UsageError(f"unknown figure format {','.join(bad) or repr(figure_formats)}; "
                         f"valid: {', '.join(FIGURE_FORMATS)}")  # fmt: skip
    try:
        from vaebench.config import parse_name_list  # '' and ',' refused as run does

        summary = None if summary_metrics is None else parse_name_list(summary_metrics, "metrics")
        written = build_report(list(runs), out_dir=out or runs[0], formats=fmts,
                               baseline=baseline, figures=False if no_figures else figures,
                               ci=ci, alpha=alpha, summary_metrics=summary,
                               correction=correction, cd_test=cd_test,
                               seeds_needed=seeds_needed)  # fmt: skip
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted while writing the report; the stored results in "
            f"{', '.join(runs)} are intact. Write it again with: {again}",
            err=True,
        )
        sys.exit(128 + signal.SIGINT)
    except (ResultsError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        from vaebench.results import is_enospc

        if is_enospc(exc):
            if isinstance(exc, DiskFullError):  # its message names the folder
                what = exc.strerror
            else:
                where = f" while writing to {exc.filename}" if exc.filename else ""
                what = f"no space left on device{where}"
            click.echo(f"Error: {what}; the stored results are intact. Free space and write "
                       f"the report again with: {again}", err=True)  # fmt: skip
            sys.exit(EXIT_DISK_FULL)
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
    """List registered models, datasets and metrics with the plugin each comes from.

    \b
    vaebench list            one line each
    vaebench list models     also every hyperparameter: type, default and meaning
                             (set one with --set MODEL.KEY=VALUE)
    vaebench list datasets   also every option: type, default and meaning
                             (set one with --set DATASET.KEY=VALUE)
    vaebench list metrics    also whether it runs by default, its cost, its values
                             (↑ higher is better, ↓ lower is better) and its options
                             (set one with --set eval.KEY=VALUE)
    """
    from vaebench.plugins import printable

    reg = _registry()
    detailed = what is not None

    def shown(value: Any) -> str:
        """A default as it is typed after --set (lists comma-separated)."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (tuple, list)):
            return ",".join(shown(v) for v in value) if value else "(empty)"
        if value is None:
            return "none"
        if isinstance(value, str):
            return printable(value) if value else '""'
        return printable(repr(value) if isinstance(value, float) else value)

    def type_name(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, (tuple, list)):
            inner = {type_name(v) for v in value}
            return f"list[{inner.pop()}]" if len(inner) == 1 else "list"
        return printable(type(value).__name__)

    def table(rows: list[tuple[str, str, str, str]], indent: str) -> None:
        """Rows (key, type, default, meaning) in aligned columns."""
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for key, kind, default, meaning in rows:
            line = f"{key:<{widths[0]}}  {kind:<{widths[1]}}  {default:<{widths[2]}}  {meaning}"
            click.echo(indent + line.rstrip())

    def params_of(spec: Any, prefix: str) -> list[tuple[str, str, str, str]]:
        defaults, docs = spec.defaults(), spec.docs() if hasattr(spec, "docs") else {}
        return [
            (printable(prefix + k), type_name(v), shown(v), printable(docs.get(k, "") or ""))
            for k, v in defaults.items()
        ]

    def details(spec: Any, kind: str) -> None:
        """A spec's settings as an indented table ("(no options)" when none)."""
        try:
            rows = params_of(spec, "")
        except Exception as exc:  # noqa: BLE001 - a plugin's spec must not break the listing
            click.echo(f"      ({kind} unavailable: {printable(exc)})")
            return
        if rows:
            table(rows, "      ")
        else:
            click.echo(f"      (no {kind})")

    if what in (None, "models"):
        click.echo(
            "models:" if not detailed else "models (hyperparameters: --set MODEL.KEY=VALUE):"
        )
        for name, r in sorted(reg.models.items()):
            desc = printable(r.spec.description)
            click.echo(f"  {printable(name):<12} {printable(r.origin):<36} {desc}".rstrip())
            if detailed:
                details(r.spec, "hyperparameters")
    if what in (None, "datasets"):
        click.echo("datasets:" if not detailed else "datasets (options: --set DATASET.KEY=VALUE):")
        for name, r in sorted(reg.datasets.items()):
            shape = "x".join(map(str, r.spec.shape)) if r.spec.shape else "?"
            sizes = f"{r.spec.sizes[0]}/{r.spec.sizes[1]}" if r.spec.sizes else "?"
            click.echo(f"  {printable(name):<14} {printable(shape):<9} train/test "
                       f"{printable(sizes):<12} {printable(r.origin):<30} "
                       f"{printable(r.spec.description)}".rstrip())  # fmt: skip
            if detailed:
                details(r.spec, "options")
    if what in (None, "metrics"):
        click.echo(
            "metrics:"
            if not detailed
            else "metrics (options: --set eval.KEY=VALUE; opt-in metrics run with --metrics NAME):"
        )
        arrows = {True: " ↑", False: " ↓"}
        for name, r in sorted(reg.metrics.items()):
            metric = r.spec
            vals = ", ".join(
                printable(v.name) + arrows.get(v.higher_is_better, "")
                + (f" ({printable(v.unit)})" if detailed and v.unit else "")
                for v in metric.values
            )  # fmt: skip
            if not detailed:
                click.echo(f"  {printable(name):<16} {printable(r.origin):<36} {vals}".rstrip())
                continue
            runs = "default" if metric.default else f"opt-in (--metrics {printable(name)})"
            cost = printable(getattr(metric, "cost", "") or "?")
            click.echo(f"  {printable(name):<16} {printable(r.origin):<36} {runs}, cost: {cost}")
            click.echo(f"      values: {vals}")
            options = dict(getattr(metric, "options", None) or {})
            docs = dict(getattr(metric, "option_docs", None) or {})
            rows = [
                (printable(f"eval.{k}"), type_name(v), shown(v), printable(docs.get(k, "") or ""))
                for k, v in options.items()
            ]
            if rows:
                table(rows, "      ")
            else:
                click.echo("      (no options)")
    if not detailed:
        click.echo("(details: vaebench list models | datasets | metrics)")


@cli.command()
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
def plugins(show_all: bool) -> None:
    """List installed plugins: name, distribution, version and hooks, then every plugin problem
    (once each, on stderr).

    Exit code 0; 2 when a problem exists and strict plugin mode is on
    (VAEBENCH_STRICT_PLUGINS=1).
    """
    from vaebench.plugins import PluginWarning, get_registry, printable, strict_mode

    with warnings.catch_warnings():  # the problems are listed below, once each
        warnings.simplefilter("ignore", PluginWarning)
        reg = get_registry(strict=False)
    shown = [p for p in reg.plugins if show_all or not p.builtin]
    if not shown:
        click.echo("no third-party plugins installed (use --all to see the built-ins)")
    for p in shown:
        click.echo(
            f"{printable(p.name)}  ({printable(p.dist)} {printable(p.version)})  "
            f"hooks: {', '.join(p.hooks)}"
        )
    for msg in reg.problems:
        click.echo(f"problem: {printable(msg)}", err=True)
    if reg.problems and strict_mode():
        click.echo(
            f"{len(reg.problems)} plugin problem(s) in strict plugin mode (VAEBENCH_STRICT_PLUGINS)",
            err=True,
        )
        sys.exit(EXIT_USAGE)


@cli.command()
@click.argument("models", nargs=-1, metavar="[MODEL]...")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    metavar="NAME",
    help="Check a dataset (loaded with its default options). Repeatable; or comma-separated.",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME",
    help="Check a metric (on a small VAE fitted on the kit's tiny dataset). Repeatable.",
)
@click.option(
    "--device", default="cpu", show_default=True, help="Device to run the model checks on."
)
@click.option(
    "--data-dir", metavar="DIR", help="Where the dataset checks look for dataset files first."
)
@click.option(
    "--threads",
    metavar="N",
    help="Torch CPU threads of each check, 1 to 1024 [default: 1]. Shown in the summary line.",
)
def check(
    models: tuple[str, ...],
    datasets: tuple[str, ...],
    metrics: tuple[str, ...],
    device: str,
    data_dir: str | None,
    threads: str | None,
) -> None:
    """Run the conformance kit (vaebench.testing) on installed models, datasets and metrics.

    \b
    vaebench check vae my-model        the model checks of each model
    vaebench check --dataset rings     the dataset checks (shapes, range, labels, render,
                                       determinism, test images that copy training images)
    vaebench check --metric my-metric  the metric checks

    Each check prints PASS, FAIL (naming what it expected) or SKIP (it does not apply, e.g. the
    sample check of a model whose tags say it cannot sample). Model checks adapt to the model's
    tags (image sizes, channels, labels, posterior, likelihood).

    Exit code: 0 when no check fails, 1 when a check fails, 2 for an unknown name or when
    nothing is named.
    """
    from vaebench.config import ConfigError, parse_count
    from vaebench.plugins import UnknownNameError, printable
    from vaebench.testing import run_dataset_checks, run_metric_checks, run_model_checks

    try:
        n_threads = 1 if threads is None else parse_count("--threads", threads)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None

    def names(values: tuple[str, ...]) -> list[str]:
        return [n.strip() for v in values for n in v.split(",") if n.strip()]

    reg = _registry()
    wanted = [("model", n) for n in names(models)]
    wanted += [("dataset", n) for n in names(datasets)]
    wanted += [("metric", n) for n in names(metrics)]
    if not wanted:
        raise UsageError("name a model (vaebench check MODEL), --dataset NAME or --metric NAME")
    subjects = []
    for kind, name in wanted:  # every name first: a typo fails before any check runs
        try:
            subjects.append((kind, name, getattr(reg, kind)(name)))
        except UnknownNameError as exc:
            raise UsageError(str(exc)) from None
    runners = {
        "model": lambda spec: run_model_checks(spec, device=device, threads=n_threads),
        "dataset": lambda spec: run_dataset_checks(spec, data_dir=data_dir, threads=n_threads),
        "metric": lambda spec: run_metric_checks(spec, threads=n_threads),
    }
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for kind, name, registered in subjects:
        click.echo(f"{kind} {printable(name)} ({printable(registered.origin)}):")
        for result in runners[kind](registered.spec):
            mark = "FAIL" if not result.passed else "SKIP" if result.skipped else "PASS"
            counts[mark] += 1
            note = f": {printable(result.message)}" if result.message else ""
            click.echo(f"  {mark} {result.name}{note}")
    summary = (
        f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped "
        f"({n_threads} torch thread{'s' if n_threads > 1 else ''})"
    )
    click.echo(summary, err=True)
    if counts["FAIL"]:
        sys.exit(EXIT_FAILED_CELLS)


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
    help="Torch CPU threads, 1 to 1024 (default: what `vaebench run` uses per worker: 1 on "
    "the CPU).",
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
def bench(
    models: str | None, dataset: str, device: str, threads: str | None, batch_size: str,
    eval_batch_size: str, latent_dim: str | None, train_samples: str | None, repeats: str,
    window: str, clock: str, json_path: str | None,
) -> None:  # fmt: skip
    """Throughput of each model through the harness and through a plain-torch reference of the
    same network: train/encode/decode samples/s, their ratio, the matmul GFLOP/s of the
    model's shapes and the fraction reached, peak memory. Medians of interleaved repeats.

    Writes no results folder. A model that fails is reported on its row and the others still
    run (exit code 1). docs/performance.md explains the method; for regression tracking across
    commits use the pytest-benchmark suite (pytest tests/benchmarks --benchmark-enable).
    """
    from vaebench.bench import BenchConfig, format_header, run_bench
    from vaebench.config import parse_count
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

    try:  # the bounds and message of `run --threads`
        n_threads = None if threads is None else parse_count("--threads", threads)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    cfg = BenchConfig(
        models=[m.strip() for m in models.split(",") if m.strip()] if models is not None else None,
        dataset=dataset,
        device=device,
        threads=n_threads,
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
        # `vaebench plugins` lists every plugin problem itself, strict mode or not
        _add_plugin_commands(strict_check=sys.argv[1:2] != ["plugins"])
    cli.main(prog_name="vaebench")


def _add_plugin_commands(strict_check: bool = True) -> None:
    """Call each plugin's ``vaebench_commands`` on its own: one broken plugin loses only its
    commands, and the warning names it."""
    try:
        from vaebench.plugins import PluginError, get_plugin_manager, get_registry, strict_mode

        pm = get_plugin_manager()
        if strict_check and strict_mode():  # a plugin problem stops every command
            try:
                get_registry()
            except PluginError as exc:
                click.echo(f"Error: {exc}", err=True)
                sys.exit(EXIT_USAGE)
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
    # `python -m vaebench.cli` puts the current folder first on sys.path: plugins and the
    # libraries imported later (torch, ...) would load from it, which the `vaebench` command
    # never does (issue 19.6); vaebench itself is already imported
    safe = getattr(sys.flags, "safe_path", False)
    if not safe and sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.getcwd():
        del sys.path[0]
    main()
