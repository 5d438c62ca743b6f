"""Per-cell harness overhead (issue 25): no full garbage collection after a successful CPU cell
unless memory grew, and the running manifest is not rewritten after every cell. Counts, never
times (the timings are in docs/performance.md and tests/benchmarks)."""

from __future__ import annotations

import gc
import json

import pytest
import torch

from vaebench import evaluation, grid
from vaebench.config import RunConfig
from vaebench.plugins import get_registry


@pytest.fixture
def full_collections():
    """A list that gets one entry per generation-2 (full) collection while the test runs."""
    seen: list[int] = []

    def callback(phase, info):
        if phase == "start" and info["generation"] == 2:
            seen.append(1)

    gc.callbacks.append(callback)
    yield seen
    gc.callbacks.remove(callback)


def test_successful_cpu_cell_skips_the_full_collection(full_collections, monkeypatch):
    # as if the last collection had been long ago with far less memory: this one collects and
    # sets the baseline
    monkeypatch.setattr(evaluation, "_last_collect_rss", [-evaluation.COLLECT_GROWTH_BYTES])
    assert evaluation.release_after_cell(torch.device("cpu"))
    assert len(full_collections) == 1
    for _ in range(5):
        assert not evaluation.release_after_cell(torch.device("cpu"))
    assert len(full_collections) == 1


def test_the_first_cell_of_a_process_sets_the_baseline_without_collecting(
    full_collections, monkeypatch
):
    """What a process grew by before its first cell is imports and data, not garbage: the
    first successful cell sets the baseline (a full collection there cost ~0.3 s of a default
    run); growth from there on collects as before."""
    monkeypatch.setattr(evaluation, "_last_collect_rss", [None])
    assert not evaluation.release_after_cell(torch.device("cpu"))
    assert evaluation._last_collect_rss[0] is not None and not full_collections
    monkeypatch.setattr(evaluation, "COLLECT_GROWTH_BYTES", 0)
    assert evaluation.release_after_cell(torch.device("cpu"))
    assert len(full_collections) == 1


def test_memory_growth_triggers_a_full_collection(full_collections, monkeypatch):
    monkeypatch.setattr(evaluation, "_last_collect_rss", [0])
    monkeypatch.setattr(evaluation, "COLLECT_GROWTH_BYTES", 0)
    assert evaluation.release_after_cell(torch.device("cpu"))
    assert evaluation.release_after_cell(torch.device("cpu"))
    assert len(full_collections) == 2


def test_unreadable_resident_set_collects_every_time(full_collections, monkeypatch):
    monkeypatch.setattr(evaluation, "_rss_bytes", lambda: None)
    assert evaluation.release_after_cell(torch.device("cpu"))
    assert evaluation.release_after_cell(torch.device("cpu"))
    assert len(full_collections) == 2


def test_failure_still_collects(full_collections):
    evaluation.free_memory(torch.device("cpu"))
    assert len(full_collections) == 1


def test_grid_writes_the_running_manifest_at_most_every_interval(tmp_path, monkeypatch):
    """A 6-cell grid with an interval longer than the test: the manifest is written at the
    start and at the end only (before: after every cell, O(N^2) over a grid), and the final
    one lists every cell."""
    writes: list[str] = []
    original = grid.atomic_write_json

    def counting(path, obj, *root):
        if "manifests" in str(path):
            writes.append(obj["status"])
        return original(path, obj, *root)

    monkeypatch.setattr(grid, "atomic_write_json", counting)
    monkeypatch.setattr(grid, "MANIFEST_INTERVAL", 3600.0)
    reg = get_registry()
    cfg = RunConfig.build(
        reg, models="pca", datasets="digits", seeds="0-5", subset=100, device="cpu",
        workers=1, threads=1, metrics="reconstruction",
    )  # fmt: skip
    summary = grid.run(cfg, tmp_path, registry=reg, show_progress=False)
    assert len(summary.ran) == 6
    assert writes == ["running", "finished"]
    (manifest,) = [json.loads(p.read_text()) for p in (tmp_path / "manifests").glob("*.json")]
    assert len(manifest["summary"]["ran"]) == 6


def test_in_process_cells_limit_blas_threads_with_one_library_search(monkeypatch):
    """In-process cells run with their BLAS pools at the task's thread count (restored after)
    and search the loaded libraries once, not once per cell (~5 ms each): again only after
    new modules were imported."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from vaebench import task

    real = threadpoolctl.ThreadpoolController
    searches: list[int] = []

    class Counting(real):
        def __init__(self) -> None:
            searches.append(1)
            super().__init__()

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", Counting)
    monkeypatch.setattr(task, "_BLAS", [None, -1])
    before = [lib["num_threads"] for lib in real().info()]
    for _ in range(3):
        with task._blas_limits(1):
            assert all(lib["num_threads"] == 1 for lib in real().info())
        assert [lib["num_threads"] for lib in real().info()] == before
    assert len(searches) == 1
    monkeypatch.setattr(task, "_BLAS", [task._BLAS[0], -1])  # as if a module were imported
    with task._blas_limits(1):
        pass
    assert len(searches) == 2
