"""``vaebench run`` and ``vaebench evaluate``: one option block for both, the grid through
:func:`vaebench.api.run` / :func:`~vaebench.api.resume` / :func:`~vaebench.api.evaluate`, and
the summary, failures and report printed afterwards."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from vaebench import api
from vaebench.cli.common import (
    EXIT_DISK_FULL,
    EXIT_FAILED_CELLS,
    UsageError,
    exit_interrupted,
    int_opt,
    line,
    registry,
)
from vaebench.errors import ConfigError, DatasetError, DiskFullError, ResultsError

if TYPE_CHECKING:
    from vaebench.api import RunSummary

F = TypeVar("F", bound=Callable[..., Any])

#: ``--mlflow`` alone: vaebench.tracking.mlflow.DEFAULT_URI (not imported: --help stays light).
_MLFLOW_DEFAULT = "sqlite:///mlruns.db"


Option = tuple[tuple[str, ...], dict[str, Any], dict[str, str]]


def _opt(*decls: str, run: str, evaluate: str = "", **settings: Any) -> Option:
    """One shared option: its declarations, settings, and help for ``run`` and ``evaluate``
    (the same text when ``evaluate`` is not given)."""
    return decls, settings, {"run": run, "evaluate": evaluate or run}


#: The options ``run`` and ``evaluate`` share, once. A ``metavar`` given as a dict is per command.
GRID_OPTIONS: list[Option] = [
    _opt("--metrics", metavar="NAMES",
         run="Metrics to evaluate (default: those on by default; `vaebench list metrics`).",
         evaluate="Metrics to evaluate (default: the run's selection, else those on by "
         "default), e.g. probe,knn,cluster,active_units,elbo,iwae,fd,kid,prdc."),
    _opt("--set", "sets", multiple=True,
         metavar={"run": "NAME.KEY=VALUE", "evaluate": "eval.KEY=VALUE"},
         run="Override one hyperparameter, dataset option or evaluation option, e.g. "
         "--set vae.beta=4 --set moons.regime=gap --set eval.n_pairs=64. Repeatable. "
         "`vaebench list` shows every key with its default.",
         evaluate="Evaluation option, e.g. --set eval.iwae_k=5000 (a changed option "
         "re-evaluates the metrics that use it). Repeatable."),
    _opt("--sweep", "sweeps", multiple=True,
         metavar={"run": "[MODEL.]KEY=VALUES", "evaluate": "eval.sampler=A,B"},
         run="Add a grid axis: --sweep vae.beta=0.5,1,4 (one model), --sweep latent_dim=2,8,32 "
         "(every model that has it), ranges lr=1e-4:1e-2:log5 or epochs=10:50:5. Repeatable; "
         "the report groups the variants (vae (beta=4)) and draws each swept parameter.",
         evaluate="Evaluate the sample metrics (fd, kid, prdc) once per sampler, on the stored "
         "models: --sweep eval.sampler=prior,gaussian,gmm,two-stage (values named "
         "VALUE@SAMPLER). Only eval.sampler can be swept here."),
    _opt("--data-dir", metavar="DIR", evaluate="Where to look for dataset files first.",
         run="Where to look for dataset files first (then $VAEBENCH_DATA, system paths, the "
         "user cache)."),
    _opt("--device", metavar="DEVICE", evaluate="auto, cpu, cuda, cuda:N or mps.",
         run="auto (CUDA when available, else CPU), cpu, cuda, cuda:N or mps [default: auto]."),
    _opt("--workers", metavar="N", evaluate="Cells evaluated at once.",
         run="Cells trained at once [default: one per CPU core, one per GPU; fewer while other "
         "processes keep the cores busy]."),
    _opt("--threads", metavar="N", evaluate="Torch CPU threads per worker.",
         run="Torch CPU threads per worker [default: cores // workers]. Recorded in every "
         "result: results are identical run to run at the same thread count."),
    _opt("--executor", metavar="NAME", evaluate="local or dask.",
         run="local (worker processes on this machine; default) or dask (pip install "
         "'vaebench[dask]'; a local Dask cluster, or --scheduler ADDRESS)."),
    _opt("--scheduler", metavar="ADDRESS", run="Dask scheduler to use with --executor dask."),
    _opt("--force", is_flag=True, run="Retrain cells that already finished.",
         evaluate="Re-evaluate the selected metrics even where stored."),
    _opt("--track", "tracks", multiple=True, metavar="NAME[=ARG]",
         run="Log every cell to the experiment tracker NAME of a tracking plugin, e.g. --track "
         "mlflow=URI (ARG left out: the tracker's default). Repeatable; `vaebench plugins "
         "--all` shows the plugins with the vaebench_trackers hook."),
    _opt("--mlflow", metavar="URI", is_flag=False, flag_value=_MLFLOW_DEFAULT,
         run="Alias of --track mlflow=URI: log every cell as an MLflow run to URI; --mlflow "
         "alone: sqlite:///mlruns.db (a database in the current folder, which MLflow 3's tools "
         "read; they refuse file: stores) (pip install 'vaebench[mlflow]'; MLFLOW_TRACKING_URI "
         "does the same). Experiment: MLFLOW_EXPERIMENT_NAME, else the results folder's name."),
    _opt("--no-report", is_flag=True, run="Do not write the report after the run.",
         evaluate="Do not rewrite the report afterwards."),
    _opt("--progress/--no-progress", default=None,
         run="Progress bars (default: on when stderr is a terminal)."),
]  # fmt: skip


def grid_options(command: str) -> Callable[[F], F]:
    """Apply :data:`GRID_OPTIONS` to ``command`` (``"run"`` or ``"evaluate"``), in order."""

    def decorate(fn: F) -> F:
        for decls, settings, helps in reversed(GRID_OPTIONS):
            chosen = {k: v[command] if isinstance(v, dict) else v for k, v in settings.items()}
            fn = click.option(*decls, help=helps[command], **chosen)(fn)
        return fn

    return decorate


#: ``run`` options that define the grid (not allowed together with ``--resume``).
_CONFIG_OPTIONS = (
    "models", "datasets", "seeds", "epochs", "latent_dim", "batch_size", "lr", "arch", "sets",
    "sweeps", "config_file", "data_dir", "subset", "metrics", "val_fraction", "out",
)  # fmt: skip
#: Execution settings: given again, they override the stored ones (--resume, evaluate).
_EXECUTION_OPTIONS = ("device", "workers", "threads", "executor", "scheduler", "shard", "mlflow")


@click.command()
@click.option("-m", "--models", metavar="NAMES",
              help="Comma-separated model names (default: pca,ae,noisy,vae). "
              "See `vaebench list models`.")  # fmt: skip
@click.option("-d", "--datasets", metavar="NAMES", help="Comma-separated dataset names, or paths "
              "to .npz files / image folders (default: digits).")  # fmt: skip
@click.option("-s", "--seeds", metavar="SEEDS", help="Seeds: 0,1,2 or a range 0-4 (default: 0). "
              "Each seed is one cell per model and dataset.")  # fmt: skip
@click.option("-o", "--out", metavar="DIR", help="Results folder (default: results/vaebench-run). "
              "Running the same command again resumes: finished cells are skipped, new metrics "
              "are evaluated on the stored models. Several runs may share a folder; they split "
              "the grid.")  # fmt: skip
@click.option("--epochs", metavar="N", help="Training epochs for every neural model [default: 30].")
@click.option("--latent-dim", metavar="N", help="Code size for every model [default: 10].")
@click.option("--batch-size", metavar="N",
              help="Training batch size for every neural model [default: 128].")  # fmt: skip
@click.option("--lr", metavar="X", help="Learning rate for every neural model [default: 0.001].")
@click.option("--arch", metavar="NAME", help="Network of every neural model that has one: mlp "
              "(default) or conv; --set vae.arch=conv for one model.")  # fmt: skip
@click.option("-c", "--config", "config_file", metavar="FILE", help="TOML config file with any "
              "of these options (command-line values override it); see docs/config.md.")  # fmt: skip
@click.option(
    "--subset", metavar="N", help="Use at most N (>= 2) images of each split (deterministic)."
)
@click.option("--val-fraction", metavar="F", help="Hold out this share (0 to 0.5) of the "
              "training images: their reconstruction error is logged every epoch (val_mse) and "
              "used for the not-converged warning [default: 0].")  # fmt: skip
@click.option("--shard", metavar="K/N", help="Run only the K-th of N disjoint shares of the grid "
              "(array jobs without Dask; each cell belongs to one shard by its key). Shards may "
              "share one --out folder; run `vaebench report` once all have finished.")  # fmt: skip
@click.option("--resume", "resume_dir", metavar="DIR", help="Continue the run stored in DIR with "
              "the configuration and execution settings it was started with (grid options are "
              "not allowed with it; --threads, --workers, --device, --executor, --scheduler, "
              "--track override the stored settings).")  # fmt: skip
@grid_options("run")
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
    if not opts["no_report"]:  # the report's drawing workers import while the grid trains
        api.start_report_workers()
    try:
        _run(opts)
    finally:
        api.stop_report_workers()


def _flag(name: str) -> str:
    """The command-line form of the option whose parameter is ``name`` (``sets``: ``--set``,
    ``config_file``: ``--config``), as the running command declares it."""
    ctx = click.get_current_context(silent=True)
    for param in ctx.command.params if ctx is not None else ():
        if param.name == name:
            longs = [o for o in param.opts if o.startswith("--")]
            return max(longs, key=len) if longs else param.opts[0]
    return "--" + name.replace("_", "-")


def _run(opts: dict[str, Any]) -> None:
    reg = registry()
    track = _tracks(opts["tracks"])
    overrides = {k: opts[k] for k in _EXECUTION_OPTIONS}
    common: dict[str, Any] = dict(registry=reg, force=opts["force"], progress=opts["progress"],
                                  track=track, argv=["vaebench", *sys.argv[1:]])  # fmt: skip
    if opts["resume_dir"]:
        given = [_flag(n) for n in _CONFIG_OPTIONS if opts[n] not in (None, ())]
        if given:
            raise UsageError(
                f"--resume takes the configuration and folder of the stored run; do not "
                f"combine it with {', '.join(given)}"
            )
        out = opts["resume_dir"]
        summary = _guarded("run", out, lambda: api.resume(out, **common, **overrides))
    else:
        grid = {k: opts[k] for k in _CONFIG_OPTIONS if k not in ("subset", "sets", "sweeps")}
        grid.update(subset=int_opt("--subset", opts["subset"]), sets=opts["sets"],
                    sweeps=opts["sweeps"])  # fmt: skip
        try:
            out = api.run_folder(opts["out"], opts["config_file"])
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        summary = _guarded("run", out, lambda: api.run(**grid, **common, **overrides))
    _finish(summary, out, "run", report=not opts["no_report"])


def _tracks(values: Sequence[str]) -> dict[str, str] | None:
    """``--track NAME=ARG`` values as ``{NAME: ARG}`` (``None``: none given); exit 2 naming a
    malformed one."""
    try:
        return api.parse_track(list(values)) or None
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


@click.command()
@click.argument("run_dir", metavar="RUN_DIR")
@grid_options("evaluate")
def evaluate(run_dir: str, **opts: Any) -> None:
    """Add metrics to the models stored in RUN_DIR without training them again.

    Every finished cell whose evaluation of a selected metric is missing, failed, or was made
    with another metric version or other options is evaluated from its stored state
    (OUT/states/); the cell's training record is left untouched. Exit code: 0 all evaluated,
    1 some metric or cell failed, 2 bad input, 74 disk full, 130 interrupted
    (Ctrl-C), 143 terminated (SIGTERM).
    """
    if not opts["no_report"]:
        api.start_report_workers()
    try:
        _evaluate(run_dir, opts)
    finally:
        api.stop_report_workers()


def _evaluate(run_dir: str, opts: dict[str, Any]) -> None:
    reg = registry()
    sets = list(opts["sets"])
    for sweep in opts["sweeps"]:
        key, sep, values = sweep.partition("=")
        if key.strip() != "eval.sampler" or not sep or not values.strip():
            raise UsageError(
                f"--sweep {sweep!r}: evaluate sweeps only eval.sampler (e.g. --sweep "
                "eval.sampler=prior,gmm); set other evaluation options with --set eval.KEY=VALUE"
            )
        sets.append(f"eval.sampler={values.strip()}")
    track = _tracks(opts["tracks"])
    execution = {k: opts[k] for k in _EXECUTION_OPTIONS if k in opts}
    summary = _guarded("evaluate", run_dir, lambda: api.evaluate(
        run_dir, opts["metrics"], sets=sets, data_dir=opts["data_dir"], registry=reg,
        force=opts["force"], progress=opts["progress"], track=track,
        argv=["vaebench", *sys.argv[1:]], **execution))  # fmt: skip
    _finish(summary, run_dir, "evaluate", report=not opts["no_report"])


def _guarded(mode: str, out: str, call: Callable[[], RunSummary]) -> RunSummary:
    """``call()`` with every failure as one line and its exit code (signal, disk full, bad
    input)."""
    try:
        return call()
    except KeyboardInterrupt as exc:
        stopped = api.interruption(exc)
        if stopped is None:
            exit_interrupted(f"interrupted before the grid started; nothing was run in {out}")
        s, signum = stopped
        what = "interrupted" if signum == signal.SIGINT else f"stopped by signal {signum}"
        click.echo(
            f"\n{what}: {len(s.ran) + len(s.evaluated)} cell(s) finished in this run and saved "
            f"in {out}; cells in progress were dropped. Resume with: "
            + (f"vaebench run --resume {out}" if mode == "run" else f"vaebench evaluate {out}"),
            err=True,
        )
        sys.exit(128 + signum)
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
        if api.is_disk_full(exc):
            click.echo(f"Error: no space left on device while writing to {out}; finished cells "
                       "are intact. Free space and run the same command again.", err=True)  # fmt: skip
            sys.exit(EXIT_DISK_FULL)
        raise UsageError(f"cannot write results to {out}: {exc}") from None


def _finish(summary: RunSummary, out: str, mode: str, *, report: bool) -> None:
    """Print the summary, write the report, list the failures; exit 1 when any."""
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
                click.echo(f"  {cell.label}: {line(reason)}", err=True)
        if summary.metric_failures:
            click.echo(f"{len(summary.metric_failures)} failed metric(s):", err=True)
            for text in _grouped_failures(summary.metric_failures):
                click.echo(f"  {text}", err=True)
        click.echo(
            f"(tracebacks in {os.path.join(out, 'cells')}; run the same command again to retry)",
            err=True,
        )
        sys.exit(EXIT_FAILED_CELLS)


def _grouped_failures(failures: list[Any]) -> list[str]:
    """One line per failed metric; when many cells share a metric and reason, one line for
    them all (``knn: reason (48 cells: ae / digits / seed 0, ...)``)."""
    if len(failures) <= 10:
        return [f"{cell.label}: {metric}: {line(reason)}" for cell, metric, reason in failures]
    groups: dict[tuple[str, str], list[str]] = {}
    for cell, metric, reason in failures:
        groups.setdefault((metric, reason), []).append(cell.label)
    lines = []
    for (metric, reason), labels in groups.items():
        shown = ", ".join(labels[:2]) + (", ..." if len(labels) > 2 else "")
        lines.append(f"{metric}: {line(reason)} ({len(labels)} cell(s): {shown})")
    return lines


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
        click.echo(f"  skipped {cell.label}: {line(reason)}", err=True)
    if summary.nan_values:
        click.echo(f"{len(summary.nan_values)} metric value(s) are NaN or infinite:", err=True)
        for cell, value, reason in summary.nan_values[:20]:
            click.echo(f"  {cell.label}: {value}: {line(reason)}", err=True)
        if len(summary.nan_values) > 20:
            click.echo(f"  ... and {len(summary.nan_values) - 20} more (see report.md)", err=True)
    for cell, message in summary.warnings:
        click.echo(f"warning: {cell.label}: {line(message)}", err=True)


def _write_report(out: str) -> None:
    log = logging.getLogger("vaebench")
    try:
        written = api.write_run_report(out)
    except KeyboardInterrupt:
        exit_interrupted(f"interrupted while writing the report; the results in {out} are "
                         f"complete. Write it again with: vaebench report {out}")  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - the results are safe; say why no report
        log.debug("report failed", exc_info=True)
        click.echo(f"warning: report not written: {type(exc).__name__}: {line(exc)} "
                   f"(vaebench report {out} tries again)", err=True)  # fmt: skip
        return
    for path in written:
        log.debug("wrote %s", path)
    click.echo(f"report: {os.path.join(out, 'report.md')}", err=True)
