"""``vaebench list``, ``vaebench plugins`` and ``vaebench check``: what is installed and whether
it keeps the contract."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from vaebench import api
from vaebench.cli.common import EXIT_FAILED_CELLS, EXIT_USAGE, UsageError, registry
from vaebench.errors import ConfigError, VaebenchError

if TYPE_CHECKING:
    from vaebench.api import Registered

printable = api.printable
Row = tuple[str, str, str, str]


def _shown(value: Any) -> str:
    """A default as it is typed after --set (lists comma-separated)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(_shown(v) for v in value) if value else "(empty)"
    if value is None:
        return "none"
    if isinstance(value, str):
        return printable(value) if value else '""'
    return printable(repr(value) if isinstance(value, float) else value)


def _type_name(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (tuple, list)):
        inner = {_type_name(v) for v in value}
        return f"list[{inner.pop()}]" if len(inner) == 1 else "list"
    return printable(type(value).__name__)


def _table(rows: list[Row], indent: str) -> None:
    """Rows (key, type, default, meaning) in aligned columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for key, kind, default, meaning in rows:
        text = f"{key:<{widths[0]}}  {kind:<{widths[1]}}  {default:<{widths[2]}}  {meaning}"
        click.echo(indent + text.rstrip())


def _params_of(spec: Any, prefix: str) -> list[Row]:
    defaults, docs = spec.defaults(), spec.docs() if hasattr(spec, "docs") else {}
    return [
        (printable(prefix + k), _type_name(v), _shown(v), printable(docs.get(k, "") or ""))
        for k, v in defaults.items()
    ]


def _details(spec: Any, kind: str) -> None:
    """A spec's settings as an indented table ("(no options)" when none)."""
    try:
        rows = _params_of(spec, "")
    except Exception as exc:  # noqa: BLE001 - a plugin's spec must not break the listing
        click.echo(f"      ({kind} unavailable: {printable(exc)})")
        return
    if rows:
        _table(rows, "      ")
    else:
        click.echo(f"      (no {kind})")


def _list_models(models: dict[str, Registered], detailed: bool) -> None:
    click.echo("models:" if not detailed else "models (hyperparameters: --set MODEL.KEY=VALUE):")
    for name, r in sorted(models.items()):
        desc = printable(r.spec.description)
        click.echo(f"  {printable(name):<12} {printable(r.origin):<36} {desc}".rstrip())
        if detailed:
            _details(r.spec, "hyperparameters")


def _list_datasets(datasets: dict[str, Registered], detailed: bool) -> None:
    click.echo("datasets:" if not detailed else "datasets (options: --set DATASET.KEY=VALUE):")
    for name, r in sorted(datasets.items()):
        shape = "x".join(map(str, r.spec.shape)) if r.spec.shape else "?"
        sizes = f"{r.spec.sizes[0]}/{r.spec.sizes[1]}" if r.spec.sizes else "?"
        click.echo(f"  {printable(name):<14} {printable(shape):<9} train/test "
                   f"{printable(sizes):<12} {printable(r.origin):<30} "
                   f"{printable(r.spec.description)}".rstrip())  # fmt: skip
        if detailed:
            _details(r.spec, "options")


def _list_metrics(metrics: dict[str, Registered], detailed: bool) -> None:
    click.echo(
        "metrics:"
        if not detailed
        else "metrics (options: --set eval.KEY=VALUE; opt-in metrics run with --metrics NAME):"
    )
    arrows = {True: " ↑", False: " ↓"}
    for name, r in sorted(metrics.items()):
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
            (printable(f"eval.{k}"), _type_name(v), _shown(v), printable(docs.get(k, "") or ""))
            for k, v in options.items()
        ]
        if rows:
            _table(rows, "      ")
        else:
            click.echo("      (no options)")


@click.command(name="list")
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
    reg = registry()
    detailed = what is not None
    if what in (None, "models"):
        _list_models(reg.models, detailed)
    if what in (None, "datasets"):
        _list_datasets(reg.datasets, detailed)
    if what in (None, "metrics"):
        _list_metrics(reg.metrics, detailed)
    if not detailed:
        click.echo("(details: vaebench list models | datasets | metrics)")


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
def plugins(show_all: bool) -> None:
    """List installed plugins: name, distribution, version and hooks, then every plugin problem
    (once each, on stderr).

    Exit code 0; 2 when a problem exists and strict plugin mode is on
    (VAEBENCH_STRICT_PLUGINS=1).
    """
    reg = api.load_registry(strict=False, quiet=True)  # the problems are listed below, once each
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
    if reg.problems and api.strict_plugins():
        click.echo(
            f"{len(reg.problems)} plugin problem(s) in strict plugin mode (VAEBENCH_STRICT_PLUGINS)",
            err=True,
        )
        sys.exit(EXIT_USAGE)


@click.command()
@click.argument("models", nargs=-1, metavar="[MODEL]...")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    metavar="NAME",
    help="Check a dataset (loaded with its default options), by name or, as --datasets takes "
    "it, by the path of a .npz file or image folder. Repeatable; or comma-separated.",
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
    vaebench check --dataset my.npz    the same on your own data file (or image folder)
    vaebench check --metric my-metric  the metric checks

    Each check prints PASS, FAIL (naming what it expected) or SKIP (it does not apply, e.g. the
    sample check of a model whose tags say it cannot sample). Model checks adapt to the model's
    tags (image sizes, channels, labels, posterior, likelihood).

    Exit code: 0 when no check fails, 1 when a check fails, 2 for an unknown name or when
    nothing is named.
    """
    try:
        n_threads = 1 if threads is None else api.parse_count("--threads", threads)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None

    def names(values: tuple[str, ...]) -> list[str]:
        return [n.strip() for v in values for n in v.split(",") if n.strip()]

    reg = registry()
    wanted = [("model", n) for n in names(models)]
    wanted += [("dataset", n) for n in names(datasets)]
    wanted += [("metric", n) for n in names(metrics)]
    if not wanted:
        raise UsageError("name a model (vaebench check MODEL), --dataset NAME or --metric NAME")
    subjects = []
    for kind, name in wanted:  # every name first: a typo fails before any check runs
        try:
            subjects.append((kind, name, *api.check(kind, name, device=device, threads=n_threads,
                                                    data_dir=data_dir, registry=reg)))  # fmt: skip
        except VaebenchError as exc:  # an unknown name
            raise UsageError(str(exc)) from None
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for kind, name, registered, results in subjects:
        click.echo(f"{kind} {printable(name)} ({printable(registered.origin)}):")
        for result in results:
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
