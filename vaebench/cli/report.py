"""``vaebench report``: tables, figures and report.md from stored results, through
:func:`vaebench.api.report`."""

from __future__ import annotations

import logging
import shlex
import sys

import click

from vaebench import api
from vaebench.cli.common import EXIT_DISK_FULL, UsageError, exit_interrupted
from vaebench.errors import DiskFullError, ResultsError


@click.command()
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
    again = shlex.join(["vaebench", "report", *runs, *(["--out", out] if out else [])])
    try:
        written = api.report(
            runs, out, formats=formats, figures=False if no_figures else figure_formats,
            summary_metrics=summary_metrics, baseline=baseline, ci=ci, alpha=alpha,
            correction=correction, cd_test=cd_test, seeds_needed=seeds_needed,
        )  # fmt: skip
    except KeyboardInterrupt:
        exit_interrupted(f"interrupted while writing the report; the stored results in "
                         f"{', '.join(runs)} are intact. Write it again with: {again}")  # fmt: skip
    except (ResultsError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        _write_failed(exc, again)
    except Exception as exc:  # noqa: BLE001 - a bug, not bad input: one line, traceback with -vv
        logging.getLogger("vaebench").debug("report failed", exc_info=True)
        raise click.ClickException(
            f"report failed: {type(exc).__name__}: {exc} (this is a bug; "
            "`vaebench -vv report ...` shows the traceback)"
        ) from None
    for path in written:
        click.echo(path)


def _write_failed(exc: OSError, again: str) -> None:
    """Exit 74 for a full disk (naming the command that writes the report again), else 2."""
    if api.is_disk_full(exc):
        if isinstance(exc, DiskFullError):  # its message names the folder
            what = exc.strerror
        else:
            where = f" while writing to {exc.filename}" if exc.filename else ""
            what = f"no space left on device{where}"
        click.echo(f"Error: {what}; the stored results are intact. Free space and write "
                   f"the report again with: {again}", err=True)  # fmt: skip
        sys.exit(EXIT_DISK_FULL)
    raise UsageError(f"cannot write the report: {exc}") from None
