"""Scale benchmarks (issue 25), pytest-benchmark: ratios from one run, never timed asserts.

    pytest tests/benchmarks/test_scale.py --benchmark-enable --benchmark-group-by=group

- ``cell-overhead``: a grid of trivial cells (``pca`` on ``digits``, ``reconstruction``) run in
  this process, as shipped and with the previous housekeeping (a full ``gc.collect()`` after
  every cell) patched back in; ``extra_info`` holds the harness time per cell outside the
  cells' own work (``wall_seconds``);
- ``iwae``: the IWAE bound (K samples per image) next to the bare decoder pass + log-likelihood
  over the same number of codes (the speed of the network);
- ``report`` (enabled only): ``vaebench report`` of a copy of results/reference with unchanged
  figures, next to the same with ``--no-figures``; ``report-command``: the whole command in a
  new process (imports included), figures kept or drawn anew as PNG;
- ``scale`` (enabled only): ``load_results`` and ``report --no-figures`` of a synthetic folder
  of ``VAEBENCH_SCALE_CELLS`` cells (default 100 000, made by :mod:`make_cells`) through the
  index and, for ``load_results`` with ``VAEBENCH_SCALE_RECORDS=1``, from the records.

With ``--benchmark-disable`` (the normal test run) the first two run once on a few cells and
codes, as smoke tests, and the others are skipped.
"""

from __future__ import annotations

import gc
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _enabled(request) -> bool:
    return bool(request.config.getoption("benchmark_enable", False))


@pytest.fixture
def enabled(request) -> bool:
    return _enabled(request)


def _grid(tmp: Path, n: int) -> dict:
    from vaebench import grid
    from vaebench.config import RunConfig
    from vaebench.plugins import get_registry
    from vaebench.results import load_cells

    reg = get_registry()
    cfg = RunConfig.build(reg, models="pca", datasets="digits", seeds=f"0-{n - 1}",
                          device="cpu", workers=1, threads=1,
                          metrics="reconstruction")  # fmt: skip
    out = tmp / f"grid-{time.monotonic_ns()}"
    t0 = time.perf_counter()
    grid.run(cfg, out, registry=reg, show_progress=False, save_states=False)
    wall = time.perf_counter() - t0
    own = sum(c["wall_seconds"] for c in load_cells(out))
    shutil.rmtree(out, ignore_errors=True)
    return {"cells": n, "wall_s": round(wall, 3),
            "overhead_ms_per_cell": round(1000 * (wall - own) / n, 2)}  # fmt: skip


@pytest.mark.parametrize("housekeeping", ["shipped", "gc-every-cell"])
def test_cell_overhead(benchmark, tmp_path, enabled, monkeypatch, housekeeping):
    from vaebench import evaluation, task

    if housekeeping == "gc-every-cell":
        monkeypatch.setattr(task, "_release_after_cell", evaluation.free_memory)
    n = int(os.environ.get("VAEBENCH_OVERHEAD_CELLS", "200")) if enabled else 2
    benchmark.group = "cell-overhead"
    info = benchmark.pedantic(_grid, args=(tmp_path, n), rounds=3 if enabled else 1)
    benchmark.extra_info.update(info)
    assert info["cells"] == n


@pytest.mark.parametrize("what", ["iwae", "decoder"])
def test_iwae_against_the_bare_decoder(benchmark, enabled, what):
    from vaebench.metrics.likelihood import iwae_log_likelihood
    from vaebench.models.vae import VAE

    n, k = (200, 1000) if enabled else (2, 16)
    torch.manual_seed(0)
    model = VAE((1, 28, 28), latent_dim=10)
    x = torch.rand(n, 1, 28, 28).round()
    mean, logvar = model.posterior(x)
    z = torch.randn(1024, 10)

    def iwae():
        return iwae_log_likelihood(model, x, mean, logvar, k, torch.Generator().manual_seed(0))

    def decoder():  # the same n * k codes through decoder + log p(x|z), 1024 at a time
        with torch.inference_mode():
            for i in range(0, n * k, 1024):
                m = min(1024, n * k - i)
                model.log_likelihood(x[:1].expand(m, 1, 28, 28), z[:m])

    benchmark.group = "iwae"
    benchmark.extra_info.update({"images": n, "k": k})
    benchmark.pedantic(iwae if what == "iwae" else decoder, rounds=3 if enabled else 1)


@pytest.mark.parametrize("figures", ["unchanged-figures", "no-figures"])
def test_report_reference(benchmark, tmp_path, enabled, figures):
    if not enabled:
        pytest.skip("a benchmark of a minute: run with --benchmark-enable")
    from vaebench.report import build_report

    run = tmp_path / "reference"
    shutil.copytree(ROOT / "results" / "reference" / "cells", run / "cells")
    shutil.copytree(ROOT / "results" / "reference" / "manifests", run / "manifests")
    if figures == "unchanged-figures":
        build_report([run])  # draws them once
    benchmark.group = "report"
    benchmark.pedantic(build_report, args=([run],),
                       kwargs={"figures": figures != "no-figures"}, rounds=3)  # fmt: skip


@pytest.mark.parametrize("figures", ["unchanged-figures", "new-png-figures"])
def test_report_command_reference(benchmark, tmp_path, enabled, figures):
    """The whole ``vaebench report`` process (start-up imports included: a built-in command
    loads no plugin and no torch) on a copy of results/reference, its figures kept; or, as
    ``run``'s own report does, drawn anew as PNG (shared with a worker process on >= 2 cores)."""
    if not enabled:
        pytest.skip("a benchmark of a minute: run with --benchmark-enable")
    import subprocess
    import sys

    run = tmp_path / "reference"
    shutil.copytree(ROOT / "results" / "reference" / "cells", run / "cells")
    shutil.copytree(ROOT / "results" / "reference" / "manifests", run / "manifests")
    command = [sys.executable, "-c", "from vaebench.cli import console; console()", "-q", "report"]
    if figures == "unchanged-figures":
        subprocess.run([*command, str(run)], check=True)  # draws them once

    def setup():
        if figures == "new-png-figures":
            shutil.rmtree(run / "figures", ignore_errors=True)
        return (), {}

    def report():
        extra = ["--figures", "png"] if figures == "new-png-figures" else []
        subprocess.run([*command, *extra, str(run)], check=True, capture_output=True)

    benchmark.group = "report-command"
    benchmark.pedantic(report, setup=setup, rounds=3)


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory):
    from benchmarks.make_cells import make_folder

    n = int(os.environ.get("VAEBENCH_SCALE_CELLS", "100000"))
    return make_folder(tmp_path_factory.mktemp("scale"), n)


def test_load_results_at_scale(benchmark, request, enabled):
    if not enabled:
        pytest.skip("minutes to make the folder: run with --benchmark-enable")
    import resource

    import vaebench

    run = request.getfixturevalue("big_folder")
    t0 = time.perf_counter()
    first = vaebench.load_results(run)  # builds the index
    build = time.perf_counter() - t0
    gc.collect()
    benchmark.group = "scale"
    frame = benchmark.pedantic(vaebench.load_results, args=(run,), rounds=3)
    benchmark.extra_info.update({
        "cells": len(list((run / "cells").iterdir())), "rows": len(frame),
        "index_build_s": round(build, 2),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    })  # fmt: skip
    assert len(frame) == len(first)


def test_report_at_scale(benchmark, request, enabled, tmp_path):
    """``report --no-figures`` of the big folder: the cells read from the index
    (:func:`vaebench.index.load_records`; the first report builds it)."""
    if not enabled:
        pytest.skip("minutes to make the folder: run with --benchmark-enable")
    import resource

    from vaebench.report import build_report

    run = request.getfixturevalue("big_folder")
    t0 = time.perf_counter()
    build_report([run], tmp_path / "first", figures=False)  # builds the index if needed
    build = time.perf_counter() - t0
    gc.collect()
    benchmark.group = "scale"
    benchmark.pedantic(build_report, args=([run], tmp_path / "report"),
                       kwargs={"figures": False}, rounds=3)  # fmt: skip
    benchmark.extra_info.update({
        "cells": len(list((run / "cells").iterdir())), "first_report_s": round(build, 2),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    })  # fmt: skip
    assert (tmp_path / "report" / "report.md").read_bytes() == (
        tmp_path / "first" / "report.md"
    ).read_bytes()
