"""The columnar index beside the cell files (issue 25): load_results through it equals
load_results from the cell records, rows for rows; it follows every change of the files."""

from __future__ import annotations

import pandas as pd
import pytest
from test_report_cells import write_cell

from vaebench import index, results
from vaebench.errors import ResultsError
from vaebench.tidy import load_records, load_results, tidy_frame

pytest.importorskip("pyarrow")


def folder(root, name="r"):
    run = root / name
    for seed in (0, 1, 2):
        write_cell(run, "ae", "one", seed, {"mse": 0.1 + seed, "psnr": None, "n_params": 5})
        write_cell(run, "ae", "one", seed, {"mse": 0.3 + seed}, params={"epochs": 7})
        write_cell(run, "vae_x", "two", seed, {"smoothness": 0.2, "smoothness_se": 0.01},
                   sweep={"vae_x.beta": seed % 2})  # fmt: skip
        write_cell(run, "pca", "two", seed, {"mse": float("inf"), "encode_samples_per_s": 3})
    write_cell(run, "broken", "one", 0, {}, status="failed", reason="boom")
    write_cell(run, "pca", "three", 0, {}, status="skipped", reason="too small")
    return run


def from_records(dirs, include_failed=False, models=None, datasets=None):
    cells = load_records(dirs)
    if models is not None:
        cells = [c for c in cells if c["model"] in models]
    if datasets is not None:
        cells = [c for c in cells if c["dataset"] in datasets]
    return tidy_frame(cells, include_failed=include_failed)


@pytest.mark.parametrize("include_failed", [False, True])
def test_index_equals_the_records(tmp_path, include_failed):
    a, b = folder(tmp_path, "a"), folder(tmp_path, "b")
    write_cell(b, "ae", "one", 9, {"mse": 0.5})
    for dirs in ([a], [a, b], [b, a]):
        got = load_results(dirs, include_failed=include_failed)
        pd.testing.assert_frame_equal(got, from_records(dirs, include_failed))
    kw = {"models": ["ae", "pca"], "datasets": ["one"]}
    pd.testing.assert_frame_equal(load_results(a, include_failed=include_failed, **kw),
                                  from_records([a], include_failed, **kw))  # fmt: skip
    assert (a / "index" / "cells.parquet").is_file() and (a / "index" / "values.parquet").is_file()
    frame = load_results(a)
    assert frame[frame.model == "ae"]["variant"].nunique() == 2  # two set-ups, two labels


@pytest.mark.parametrize("include_failed", [False, True])
def test_folders_of_one_name_or_one_folder_twice_give_the_rows_of_the_records(
    tmp_path, include_failed
):
    # the index path once joined each folder's values to the cells of every folder of the
    # same name: a/r and b/r (or a folder given twice) gave each value 2x too often
    a, b = folder(tmp_path / "a"), folder(tmp_path / "b")
    write_cell(b, "ae", "one", 9, {"mse": 0.5})
    for dirs in ([a, b], [b, a], [a, a]):
        got = load_results(dirs, include_failed=include_failed)
        pd.testing.assert_frame_equal(got, from_records(dirs, include_failed))
        one = load_results(dirs[0], include_failed=include_failed)
        two = load_results(dirs[1], include_failed=include_failed)
        assert len(got) == len(one) + len(two)


def test_a_cell_edited_in_place_with_its_mtime_put_back_is_read_again(tmp_path):
    # same size, same inode, modification time restored: only the status-change time tells
    import os
    import time

    run = folder(tmp_path)
    load_results(run)
    path = next((run / "cells").glob("ae--one--seed0*.json"))
    text = path.read_text()
    st = path.stat()
    assert '"mse": 0.1' in text
    time.sleep(0.01)
    with open(path, "r+") as f:  # in place: same inode, same size
        f.write(text.replace('"mse": 0.1', '"mse": 0.9', 1))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    got = load_results(run)
    pd.testing.assert_frame_equal(got, from_records([run]))
    assert 0.9 in set(got[(got.model == "ae") & (got.metric == "mse")]["value"])


def test_only_changed_cells_are_read_again(tmp_path, monkeypatch):
    run = folder(tmp_path)
    load_results(run)
    reads = []
    original = results.read_cell
    monkeypatch.setattr(results, "read_cell", lambda p: reads.append(p.name) or original(p))
    load_results(run)
    assert reads == []  # nothing changed: nothing parsed
    changed = write_cell(run, "ae", "one", 1, {"mse": 42.0, "psnr": None, "n_params": 5})
    new = write_cell(run, "ae", "one", 5, {"mse": 0.0})
    (gone,) = [p for p in (run / "cells").glob("pca--two--seed2*")]
    gone.unlink()
    frame = load_results(run)
    assert sorted(reads) == sorted([changed.name, new.name])
    pd.testing.assert_frame_equal(frame, from_records([run]))
    assert 42.0 in set(frame["value"]) and not ((frame.model == "pca") & (frame.seed == 2)).any()


def test_a_damaged_or_foreign_index_is_rebuilt(tmp_path):
    run = folder(tmp_path)
    load_results(run)
    (run / "index" / "cells.parquet").write_bytes(b"not parquet")
    pd.testing.assert_frame_equal(load_results(run), from_records([run]))
    (run / "index" / "values.parquet").unlink()
    pd.testing.assert_frame_equal(load_results(run), from_records([run]))


def test_a_corrupt_cell_still_raises_naming_the_file(tmp_path):
    run = folder(tmp_path)
    load_results(run)
    bad = next((run / "cells").glob("ae--one--seed0*"))
    bad.write_text("{ not json")
    with pytest.raises(ResultsError, match=bad.name):
        load_results(run)


def test_without_pyarrow_the_records_are_read(tmp_path, monkeypatch):
    run = folder(tmp_path)
    monkeypatch.setattr(index, "available", lambda: False)
    pd.testing.assert_frame_equal(load_results(run, include_failed=True),
                                  from_records([run], True))  # fmt: skip
    assert not (run / "index").exists()


def test_cells_and_values_of_two_saves_are_never_mixed(tmp_path):
    """Two processes saving at once can leave one's cells.parquet beside the other's
    values.parquet (each file is replaced atomically, the pair is not): such a pair is rebuilt,
    never served, even when its cells table matches the files."""
    run = folder(tmp_path)
    load_results(run)
    stale_values = (run / "index" / "values.parquet").read_bytes()
    write_cell(run, "ae", "one", 0, {"mse": 42.0, "psnr": None, "n_params": 5})
    load_results(run)  # a second save: cells and values of the new state
    (run / "index" / "values.parquet").write_bytes(stale_values)  # the other process's values
    frame = load_results(run)
    pd.testing.assert_frame_equal(frame, from_records([run]))
    assert 42.0 in set(frame["value"])


def test_a_cell_file_name_that_is_not_utf8_is_refused_alike_on_both_paths(tmp_path, monkeypatch):
    # the index path once crashed with a UnicodeEncodeError where the record path read it
    import os

    run = folder(tmp_path)
    path = next((run / "cells").glob("ae--one--seed0*.json"))
    os.rename(path, os.path.join(os.fsencode(run / "cells"), b"bad-\xff-name.json"))
    for no_index in ("1", ""):
        monkeypatch.setenv("VAEBENCH_NO_INDEX", no_index)
        with pytest.raises(ResultsError, match=r"cell file name 'bad-\\udcff-name.json' is not"):
            load_results(run)
