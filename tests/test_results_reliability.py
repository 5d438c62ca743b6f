"""results.py under stress: atomic writes, temp-file clean-up, cell locks across processes and
after SIGKILL, and strict reading of cell files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from vaebench.fileio import HOST_TAG
from vaebench.record import MANIFEST_SCHEMA, SCHEMA
from vaebench.results import (
    CellLock,
    ResultsError,
    SchemaMismatchError,
    atomic_write_json,
    atomic_write_text,
    check_results_folder,
    iter_cell_paths,
    load_cells,
    read_cell,
    remove_stale_locks,
    remove_stale_temp_files,
    staging_dir,
)


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def minimal_cell(**changes: object) -> dict:
    cell = {
        "schema": SCHEMA,
        "status": "ok",
        "model": "pca",
        "dataset": "digits",
        "seed": 0,
        "config_hash": "0123456789ab",
        "evaluations": {
            "reconstruction": {
                "status": "ok",
                "values": {"mse": 0.1, "psnr": None},
                "info": {"mse": {"unit": "per pixel"}},
                "nan": {"psnr": "the metric returned nan"},
            }
        },
        "history": {"loss": [1.0, 0.5]},
    }
    cell.update(changes)
    return cell


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_keeps_old_content_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "cell.json"
    atomic_write_json(target, {"v": 1})

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(target, {"v": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.json"]  # temp file removed


@pytest.mark.parametrize("where", ["open", "fchmod", "fsync", "replace"])
def test_a_signal_anywhere_in_the_atomic_write_leaves_no_temp_file(tmp_path, monkeypatch, where):
    """A signal arriving at any point of the write -- even the instant the temp file has been
    created, before its descriptor is returned -- removes the temp file (it once stayed in
    manifests/ after a Ctrl-C: the file was created by tempfile.mkstemp before the cleanup
    block knew its name)."""
    target = tmp_path / "manifests" / "m.json"
    atomic_write_json(target, {"v": 1})
    real = getattr(os, where)

    def signal_at(*args: object, **kwargs: object) -> object:
        if where == "open" and not str(args[0]).endswith(".tmp"):
            return real(*args, **kwargs)  # not the temp file
        if where != "replace":
            real(*args, **kwargs)  # the call happened (the temp file exists) ...
        raise KeyboardInterrupt  # ... and SIGINT arrived before it returned

    monkeypatch.setattr(os, where, signal_at)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(target, {"v": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.json"]


def test_temp_files_name_their_writer(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src: str, dst: str, **kwargs: object) -> None:
        seen.append(Path(src).name)
        real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write_text(tmp_path / "a.json", "{}")
    (name,) = seen
    assert name.startswith(f".a.json.{os.getpid()}.{HOST_TAG}.") and name.endswith(".tmp")


def test_stale_temp_files_and_staging_dirs_are_removed(tmp_path):
    gone = dead_pid()
    cells = tmp_path / "cells"
    cells.mkdir()
    stale = cells / f".x.json.{gone}.{HOST_TAG}.abc123.tmp"
    live = cells / f".y.json.{os.getpid()}.{HOST_TAG}.abc123.tmp"
    other_host = cells / f".z.json.{gone}.deadbeef.abc123.tmp"
    unrelated = cells / ".notes.tmp"
    for p in (stale, live, other_host, unrelated):
        p.write_text("partial")
    stale_stage = tmp_path / "states" / f".staging.{gone}.{HOST_TAG}"
    stale_stage.mkdir(parents=True)
    (stale_stage / "tmp123.tmp").write_bytes(b"half a state")
    live_stage = staging_dir(tmp_path / "states")

    removed = remove_stale_temp_files(tmp_path)

    assert sorted(removed) == sorted([stale, stale_stage])
    assert live.exists() and other_host.exists() and unrelated.exists() and live_stage.exists()
    assert not stale.exists() and not stale_stage.exists()


# ----------------------------------------------------------------------------- cell locks


def test_lock_is_exclusive_and_released(tmp_path):
    path = tmp_path / "c.lock"
    first, second = CellLock(path), CellLock(path)
    assert first.acquire()
    assert f":{os.getpid()}" in first.owner()
    assert not second.acquire()
    first.release()
    assert not path.exists()
    assert second.acquire()
    second.release()


def test_leftover_lock_file_is_taken_over(tmp_path):
    path = tmp_path / "c.lock"
    path.write_text(f"some-host:{dead_pid()}\n")  # what a killed process leaves behind
    lock = CellLock(path)
    assert lock.acquire()
    lock.release()
    path.write_text("")  # killed between creating and writing the file
    assert lock.acquire()
    lock.release()


def test_only_unheld_lock_files_are_swept(tmp_path):
    held, orphan = CellLock(tmp_path / "a.lock"), tmp_path / "b.lock"
    assert held.acquire()
    orphan.write_text("host:1\n")
    assert remove_stale_locks(tmp_path) == [orphan]
    assert held.path.exists() and not orphan.exists()
    held.release()


def test_lock_of_a_sigkilled_process_is_free(tmp_path):
    path = tmp_path / "c.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom vaebench.results import CellLock\n"
         f"assert CellLock({str(path)!r}).acquire()\nprint('held', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not CellLock(path).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert path.exists()  # the file stays, the lock does not
        lock = CellLock(path)
        assert lock.acquire()
        lock.release()
    finally:
        holder.kill()
        holder.wait()


def test_blocking_acquire_waits_for_the_holder(tmp_path):
    path = tmp_path / "c.lock"
    holder = CellLock(path)
    assert holder.acquire()
    got = threading.Event()

    def waiter() -> None:
        lock = CellLock(path)
        lock.acquire(blocking=True)
        got.set()
        lock.release()

    t = threading.Thread(target=waiter)
    t.start()
    assert not got.wait(0.3)  # still held
    holder.release()
    t.join(30)
    assert got.is_set()


STRESS = """
import os, sys, time
from vaebench.results import CellLock
lock_path, marker, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
count = attempts = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    lock = CellLock(lock_path)
    attempts += 1
    if not lock.acquire(blocking=attempts % 2 == 0):
        continue
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # fails if another holder is in
    except FileExistsError:
        print("VIOLATION", flush=True)
        sys.exit(3)
    os.close(fd)
    time.sleep(0.0005)
    os.unlink(marker)
    lock.release()
    count += 1
print(count)
"""


def test_lock_gives_mutual_exclusion_across_processes(tmp_path):
    """Four processes hammer one lock (blocking and not, the file deleted on every release):
    never two holders at once."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STRESS, str(tmp_path / "c.lock"), str(tmp_path / "in"), "1.5"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    assert sum(int(o) for o in outs) > 0


# ----------------------------------------------------------------------------- reading cells


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"schema": "vaebench.cell/1", "status": "ok"', "corrupt result file"),
        ("", "corrupt result file"),
        ("[1, 2]", "not a vaebench result file"),
        (json.dumps(minimal_cell(schema="vaebench.cell/0")), "has schema 'vaebench.cell/0'"),
        (json.dumps({k: v for k, v in minimal_cell().items() if k != "seed"}), "missing field"),
        (json.dumps(minimal_cell(seed="zero")), "seed is 'zero'"),
        (json.dumps(minimal_cell(status="done")), "status is 'done'"),
        (
            json.dumps(minimal_cell(evaluations={"m": {"status": "ok", "values": {"x": "low"}}})),
            r"evaluations\.m\.values must map",
        ),
        (json.dumps(minimal_cell(evaluations={"m": {"status": "failed"}})), "needs a reason"),
        (json.dumps(minimal_cell(status="skipped")), "skip_reason"),
        (json.dumps(minimal_cell(history={"loss": "down"})), "history must map"),
        (json.dumps(minimal_cell(status="failed")), "error.reason"),
        (json.dumps(minimal_cell(config=[])), "config must be an object"),
        ("[" * 100_000, "corrupt result file"),
    ],
)
def test_bad_cell_files_raise_results_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "cells" / "pca--digits--seed0--0123456789ab.json"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(ResultsError, match=message) as info:
        read_cell(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ResultsError):
        load_cells(tmp_path)


def test_binary_garbage_is_a_results_error(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ResultsError, match=str(path)):
        read_cell(path)


def test_valid_cells_load_and_temp_or_lock_files_are_ignored(tmp_path):
    cells = tmp_path / "cells"
    atomic_write_json(cells / "pca--digits--seed0--0123456789ab.json", minimal_cell())
    atomic_write_json(
        cells / "pca--digits--seed0--ba9876543210.json", minimal_cell(config_hash="ba9876543210")
    )
    (cells / ".pca--digits--seed1--x.json.123.abcdef01.zz.tmp").write_text("{")
    (cells / "pca--digits--seed1--x.lock").write_text("host:1")
    assert [p.name for p in iter_cell_paths(tmp_path)] == [
        "pca--digits--seed0--0123456789ab.json",
        "pca--digits--seed0--ba9876543210.json",
    ]
    loaded = load_cells(tmp_path)  # two variants of one cell are both kept
    assert [c["config_hash"] for c in loaded] == ["0123456789ab", "ba9876543210"]
    assert all(c["run"] == tmp_path.name for c in loaded)


# ----------------------------------------------------------------------------- folder checks


def test_folder_of_another_schema_is_refused(tmp_path):
    atomic_write_json(tmp_path / "manifests" / "m.json", {"schema": "vaebench.manifest/0"})
    with pytest.raises(SchemaMismatchError, match="use a new --out folder"):
        check_results_folder(tmp_path)
    atomic_write_json(tmp_path / "manifests" / "m.json", {"schema": MANIFEST_SCHEMA})
    atomic_write_json(tmp_path / "cells" / "a.json", minimal_cell(schema="vaebench.cell/9"))
    with pytest.raises(SchemaMismatchError, match="vaebench.cell/9"):
        check_results_folder(tmp_path)


def test_folder_check_lists_corrupt_cells_and_refuses_a_file(tmp_path):
    good = tmp_path / "cells" / "good.json"
    atomic_write_json(good, minimal_cell())
    bad = tmp_path / "cells" / "bad.json"
    bad.write_text('{"schema": ')
    assert check_results_folder(tmp_path) == [bad]
    assert check_results_folder(tmp_path / "new") == []
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ResultsError, match="is not a folder"):
        check_results_folder(afile)


# ----------------------------------------------------------------------------- image artifacts


@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (3, 3, 16, 16), (2, 2, 4, 4), (1, 1, 1, 7)])
def test_image_artifacts_round_trip_exactly_at_8_bits(shape):
    import numpy as np

    from vaebench.record import decode_images, encode_images

    x = np.random.default_rng(0).random(shape)
    encoded = encode_images(x)
    assert ("png_b64" in encoded) == (shape[1] in (1, 3))  # PNG for grey and colour images
    expected = np.clip(np.rint(x * 255.0), 0, 255) / 255.0
    assert np.array_equal(decode_images(encoded), expected.astype(np.float32))


def test_png_artifacts_compress_simple_images_and_refuse_a_wrong_size():
    import base64

    import numpy as np

    from vaebench.record import decode_images, encode_images

    moons_like = np.zeros((16, 1, 32, 32))
    moons_like[:, :, 8:24, 8:24] = 1.0
    encoded = encode_images(moons_like)
    assert len(base64.b64decode(encoded["png_b64"])) < 16 * 32 * 32 / 10  # > 10x smaller
    with pytest.raises(ResultsError, match="PNG of 512x32 L, shape"):
        decode_images({**encoded, "shape": [8, 1, 32, 32]})
    with pytest.raises(ResultsError, match="not a valid PNG"):
        decode_images({**encoded, "png_b64": base64.b64encode(b"GIF89a...").decode()})


@pytest.mark.parametrize("where", ["open", "fsync", "replace"])
def test_a_signal_anywhere_in_model_save_leaves_no_temp_file(tmp_path, monkeypatch, where):
    """Model.save writes weights the same way: old weights or the whole new ones, and no temp
    file left by a signal at any point of the write."""
    from vaebench.models.pca import PCA

    model = PCA((1, 4, 4), torch.device("cpu"), latent_dim=2)
    model.fit(torch.rand(16, 1, 4, 4))
    target = tmp_path / "states" / "m.pt"
    model.save(target)
    before = target.read_bytes()
    real = getattr(os, where)

    def signal_at(*args: object, **kwargs: object) -> object:
        if where == "open" and not str(args[0]).endswith(".tmp"):
            return real(*args, **kwargs)
        if where != "replace":
            real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, where, signal_at)
    with pytest.raises(KeyboardInterrupt):
        model.save(target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.pt"]
