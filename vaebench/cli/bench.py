"""``vaebench bench``: throughput of each model through the harness against a plain reference,
through :func:`vaebench.api.bench`."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from vaebench import api
from vaebench.cli.common import EXIT_FAILED_CELLS, UsageError, registry
from vaebench.errors import ConfigError, DatasetError


def _number(name: str, raw: str | None, kind: type = int) -> Any:
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        what = "a positive integer" if kind is int else "a number of seconds"
        raise UsageError(f"invalid value {raw!r} for {name}: expected {what}") from None


# fmt: off
@click.command()
@click.option("-m", "--models", metavar="NAMES", help="Comma-separated models (default: built-ins).")
@click.option("-d", "--dataset", default="digits", metavar="NAME", show_default=True,
              help="Dataset to time on.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N, mps.")
@click.option("--threads", metavar="N", help="Torch CPU threads, 1 to 1024 (default: what "
              "`vaebench run` uses per worker: 1 on the CPU).")
@click.option("--batch-size", default="256", metavar="N", show_default=True,
              help="Training batch size.")
@click.option("--eval-batch-size", default="1024", metavar="N", show_default=True,
              help="Batch of encode/decode calls.")
@click.option("--latent-dim", metavar="K", help="Code size of every model (default: its own).")
@click.option("--train-samples", metavar="N",
              help="Train on the first N images (default: all: one epoch).")
@click.option("--repeats", default="5", metavar="N", show_default=True,
              help="Interleaved repeats (at least 3).")
@click.option("--window", default="1.0", metavar="SECONDS", show_default=True,
              help="Minimum seconds of one timed window.")
@click.option("--clock", type=click.Choice(["wall", "cpu"]), default="wall", show_default=True,
              help="wall: elapsed time; cpu: process CPU time (CPU device; less disturbed by "
              "other load).")
@click.option("--json", "json_path", metavar="FILE", help="Also write the full result as JSON.")
def bench(
    models: str | None, dataset: str, device: str, threads: str | None, batch_size: str,
    eval_batch_size: str, latent_dim: str | None, train_samples: str | None, repeats: str,
    window: str, clock: str, json_path: str | None,
) -> None:
    # fmt: on
    """Throughput of each model through the harness and through a plain-torch reference of the
    same network: train/encode/decode samples/s, their ratio, the matmul GFLOP/s of the
    model's shapes and the fraction reached, peak memory. Medians of interleaved repeats.

    Writes no results folder. A model that fails is reported on its row and the others still
    run (exit code 1). docs/performance.md explains the method; for regression tracking across
    commits use the pytest-benchmark suite (pytest tests/benchmarks --benchmark-enable).
    """
    try:  # the bounds and message of `run --threads`
        n_threads = None if threads is None else api.parse_count("--threads", threads)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    settings = dict(
        models=[m.strip() for m in models.split(",") if m.strip()] if models is not None else None,
        dataset=dataset,
        device=device,
        threads=n_threads,
        batch_size=_number("--batch-size", batch_size),
        eval_batch_size=_number("--eval-batch-size", eval_batch_size),
        repeats=_number("--repeats", repeats),
        train_samples=_number("--train-samples", train_samples),
        latent_dim=_number("--latent-dim", latent_dim),
        window_s=_number("--window", window, float),
        clock=clock,
    )
    if json_path is not None:
        folder = os.path.dirname(os.path.abspath(json_path))
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write --json {json_path}: folder {folder} does not exist")
    try:
        result = api.bench(echo=click.echo, json_path=json_path, registry=registry(), **settings)
    except (ConfigError, DatasetError) as exc:
        raise UsageError(str(exc)) from None
    _print_footer(result)
    if any(r["status"] != "ok" for r in result["models"]):
        sys.exit(EXIT_FAILED_CELLS)


def _print_footer(result: dict[str, Any]) -> None:
    """Notes, the conditions of the measurement, and warnings (on stderr)."""
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
