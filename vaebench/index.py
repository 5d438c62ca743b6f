"""A columnar index of a results folder's values, beside the cell files: ``OUT/index/``.

Reading 100 000 cell files means parsing every one whole (their image strips included) on
every :func:`vaebench.load_results`: ~0.8 ms and ~80 KB of Python objects a cell. The index
keeps what a tidy frame needs -- one row per (cell, value), and per cell its identity and
configuration -- in two Parquet files (:mod:`pyarrow`, the ``vaebench[index]`` extra; without
it :func:`vaebench.load_results` reads the cell files as before):

- ``OUT/index/cells.parquet``: per cell file its name, size, modification time and inode, the
  model, dataset, seed, configuration hash, status, failure reason and configuration (JSON),
  and the record without its image strips and training curves (:func:`light_record`: what
  ``vaebench report --no-figures`` reads, through :func:`load_records`; a load of values
  alone never reads that column);
- ``OUT/index/values.parquet``: per value of an ok cell the columns of
  :data:`vaebench.tidy.COLUMNS` that come from the cell (not ``run`` nor ``variant``, which
  depend on the folders loaded together).

**The cell files stay the source of truth.** Every load lists ``OUT/cells/`` (one ``stat`` a
file) and re-reads, with the full checks of :func:`vaebench.results.read_cell`, exactly the
files that are new or whose size, modification time, inode or status-change time changed (a
cell file is replaced atomically, so a changed cell is a new inode; a file edited in place has
a new status-change time even when its modification time is put back); rows of files that are gone are
dropped. A corrupt cell raises as before. The updated index is written atomically (temp file,
``fsync``, rename), both files tagged with one random generation: several processes loading or
writing the same folder at once, or a process killed at any point, leave either a consistent
pair or a pair of two generations, which is rebuilt from the files; any index is only a cache
checked against the files on every load -- deleting ``OUT/index/`` is always safe. A
folder that cannot be written to is read without saving the index.

Cost: listing the folder and reading the index grow linearly with the cells (a few
microseconds and ~150 bytes of memory per value row); only changed cells are parsed. Memory is
that of the tidy frame itself, so a folder of 1 000 000 cells is bounded by the disk (cell
files of ~20-80 KB each), not by the memory of a load.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaebench.record import failure_reason, value_rows

__all__ = ["available", "enabled", "INDEX_VERSION", "light_record", "load_records", "update_index"]

log = logging.getLogger(__name__)

#: Bump when the index's columns or their meaning change: an index of another version is
#: rebuilt from the cell files.
INDEX_VERSION = 3

#: What tells a cell file unchanged: size, modification time, inode and status-change time
#: (``ctime``: a file edited in place with its modification time put back with ``utime``
#: still gets a new one; no call sets it back).
IDENTITY_COLUMNS = ["size", "mtime_ns", "ino", "ctime_ns"]

CELL_COLUMNS = ["file", *IDENTITY_COLUMNS, "model", "dataset", "seed", "config_hash",
                "status", "error", "config", "record", "shared"]  # fmt: skip
#: The columns of the light records (:func:`light_record`), read only by :func:`load_records`.
RECORD_COLUMNS = ["record", "shared"]
VALUE_COLUMNS = ["file", "metric", "value", "unit", "higher_is_better", "decimals", "source",
                 "group", "order"]  # fmt: skip


def available() -> bool:
    """Whether :mod:`pyarrow` (the ``index`` extra) can be imported."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def enabled() -> bool:
    """Whether loads go through the index: :func:`available`, and the environment variable
    ``VAEBENCH_NO_INDEX`` unset, empty or ``0``."""
    return available() and os.environ.get("VAEBENCH_NO_INDEX", "") in ("", "0")


#: Fields of a cell record that no report without figures reads: image strips, training curves
#: and the loader's own tags (put back by :func:`load_records`).
HEAVY_FIELDS = ("artifacts", "history", "_path", "run", "variant", "metrics", "metric_info")
#: Record parts that differ from cell to cell: parsed for each cell, never shared.
_OWN_PARTS = frozenset({"values", "evaluated", "seconds", "started", "finished", "config_hash",
                        "seed", "wall_seconds", "state_sha256", "key", "config", "details",
                        "run_id", "error", "skip_reason"})  # fmt: skip


def light_record(cell: dict[str, Any]) -> tuple[str, str]:
    """``cell`` without :data:`HEAVY_FIELDS` (nor each evaluation's ``artifacts``), as the two
    JSON texts :func:`load_records` reads back: ``(own, shared)``. ``own`` holds the parts that
    differ from cell to cell (:data:`_OWN_PARTS`, top-level and per evaluation); ``shared``
    the order of the keys and every other part, each as its own JSON text -- the same text
    for the cells of one set-up, stored once (Parquet's dictionary encoding) and parsed once."""
    own: dict[str, Any] = {}
    shared: dict[str, str] = {}
    evs: list[Any] = []
    own_evs: list[Any] = []
    keys = [k for k in cell if k not in HEAVY_FIELDS]
    for key in keys:
        value = cell[key]
        if key == "evaluations" and isinstance(value, dict):
            for name, ev in value.items():
                ekeys = [k for k in ev if k != "artifacts"]
                own_evs.append({k: ev[k] for k in ekeys if k in _OWN_PARTS})
                evs.append([name, ekeys, {k: json.dumps(ev[k], default=str) for k in ekeys
                                          if k not in _OWN_PARTS}])  # fmt: skip
        elif key in _OWN_PARTS:
            own[key] = value
        else:
            shared[key] = json.dumps(value, default=str)
    return (json.dumps({"o": own, "e": own_evs}, default=str),
            json.dumps({"k": keys, "s": shared, "e": evs}))  # fmt: skip


def _shared(text: str, memo: dict[str, Any]) -> tuple[list[str], dict[str, Any], list[Any]]:
    """The parsed ``shared`` text of :func:`light_record`: each part parsed once (``memo``)."""

    def part(t: str) -> Any:
        got = memo.get(t)
        if got is None:
            got = memo[t] = json.loads(t)
        return got

    d = json.loads(text)
    evs = [(name, ekeys, {k: part(t) for k, t in es.items()}) for name, ekeys, es in d["e"]]
    return d["k"], {k: part(t) for k, t in d["s"].items()}, evs


def _from_light(own_text: str, shared: tuple[list[str], dict[str, Any], list[Any]]) -> dict:
    from vaebench.record import flat_views

    keys, parts, evs = shared
    d = json.loads(own_text)
    own = d["o"]
    rec: dict[str, Any] = {}
    for key in keys:
        if key in own:
            rec[key] = own[key]
        elif key in parts:
            rec[key] = parts[key]
        else:  # the evaluations
            rec[key] = {name: {k: eo[k] if k in eo else es[k] for k in ekeys}
                        for (name, ekeys, es), eo in zip(evs, d["e"], strict=True)}  # fmt: skip
    rec.update(flat_views(rec))
    return rec


def _listing(run: Path) -> dict[str, tuple[int, int, int, int]]:
    """``{file name: (size, mtime_ns, inode, ctime_ns)}`` of the cell files, as
    :func:`vaebench.results.iter_cell_paths` selects them."""
    from vaebench.results import ResultsError, checked_cell_name

    if not run.is_dir():  # the errors of iter_cell_paths
        raise ResultsError(f"results folder not found: {run}")
    if not (run / "cells").is_dir():
        raise ResultsError(f"{run} is not a vaebench results folder (no cells/ inside)")
    out = {}
    with os.scandir(run / "cells") as entries:  # one stat a file, no Path objects
        for entry in entries:
            name = entry.name
            if not name.endswith(".json") or name.startswith("."):
                continue
            try:
                if not entry.is_file():
                    continue
                st = entry.stat()
            except FileNotFoundError:  # removed since the listing
                continue
            out[checked_cell_name(name, run / "cells")] = (
                st.st_size,
                st.st_mtime_ns,
                st.st_ino,
                st.st_ctime_ns,
            )
    return out


def _cell_rows(name: str, ident: tuple[int, ...], cell: dict[str, Any]) -> tuple[dict, list]:
    status = cell["status"]
    row = {
        "file": name, **dict(zip(IDENTITY_COLUMNS, ident, strict=True)),
        "model": cell["model"], "dataset": cell["dataset"], "seed": int(cell["seed"]),
        "config_hash": cell["config_hash"], "status": status, "error": failure_reason(cell),
        "config": json.dumps(cell.get("config") or {}, sort_keys=True, default=str),
    }  # fmt: skip
    row["record"], row["shared"] = light_record(cell)
    values = []
    if status == "ok":
        for v in value_rows(cell):  # Arrow's types: a bool or null, an integer or null
            hib, order = v["higher_is_better"], v["order"]
            values.append({**v, "file": name, "higher_is_better": None if hib is None else bool(hib),
                           "order": None if order is None else int(order)})  # fmt: skip
    return row, values


def _read(path: Path, columns: Sequence[str] | None = None, dictionary: bool = False) -> Any:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=None if columns is None else list(columns),
                          read_dictionary=["shared"] if dictionary else None)  # fmt: skip
    meta = table.schema.metadata or {}
    if meta.get(b"vaebench_index") != str(INDEX_VERSION).encode():
        raise ValueError("another index version")
    return table


def _write(path: Path, table: Any, generation: str) -> None:
    import pyarrow.parquet as pq

    from vaebench.results import atomic_write_bytes

    table = table.replace_schema_metadata(
        {"vaebench_index": str(INDEX_VERSION), "vaebench_generation": generation}
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    atomic_write_bytes(path, buf.getvalue())


def _schemas() -> tuple[Any, Any]:
    import pyarrow as pa

    cells = pa.schema([("file", pa.string()), *((c, pa.int64()) for c in IDENTITY_COLUMNS),
                       ("model", pa.string()), ("dataset", pa.string()),
                       ("seed", pa.int64()), ("config_hash", pa.string()),
                       ("status", pa.string()), ("error", pa.string()),
                       ("config", pa.string()), ("record", pa.string()),
                       ("shared", pa.string())])  # fmt: skip
    values = pa.schema([("file", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
                        ("unit", pa.string()), ("higher_is_better", pa.bool_()),
                        ("decimals", pa.int64()), ("source", pa.string()),
                        ("group", pa.string()), ("order", pa.int64())])  # fmt: skip
    return cells, values


def _stored(run: Path, records: bool) -> tuple[Any, Any]:
    """The stored ``(cells, values)`` tables of ``run``'s index (cells with the
    :data:`RECORD_COLUMNS`, ``shared`` dictionary-encoded, only when ``records``), or two empty
    tables where there is none, or it is of another version, schema or generation."""
    import pyarrow as pa

    where = run / "index"
    cells_schema, values_schema = _schemas()
    slim_schema = pa.schema([f for f in cells_schema if f.name not in RECORD_COLUMNS])
    dict_schema = cells_schema.set(cells_schema.get_field_index("shared"),
                                   pa.field("shared", pa.dictionary(pa.int32(), pa.string())))  # fmt: skip
    try:
        old_cells = _read(where / "cells.parquet", None if records else slim_schema.names,
                          dictionary=records)  # fmt: skip
        old_values = _read(where / "values.parquet")
        # two processes saving at once may leave one's cells beside the other's values
        if old_cells.schema.metadata.get(b"vaebench_generation") != old_values.schema.metadata.get(
            b"vaebench_generation"
        ):
            raise ValueError("cells and values of different generations")
        if old_cells.schema.remove_metadata() != (dict_schema if records else slim_schema):
            raise ValueError("schema")
        if old_values.schema.remove_metadata() != values_schema:
            raise ValueError("schema")
    except (OSError, ValueError, Exception) as exc:  # noqa: BLE001 - any bad index: rebuild
        if not isinstance(exc, FileNotFoundError):
            log.debug("index of %s not used: %s", run, exc)
        return cells_schema.empty_table(), values_schema.empty_table()
    return old_cells, old_values


def update_index(run_dir: str | os.PathLike, records: bool = False) -> tuple[Any, Any]:
    """The up-to-date ``(cells, values)`` :class:`pyarrow.Table` pair of ``run_dir`` (see the
    module docstring): the stored index where it matches the files, the changed files read
    again; saved when anything changed and the folder is writable. The cells table has the
    :data:`RECORD_COLUMNS` (:func:`light_record`; ``shared`` dictionary-encoded where it
    comes from the stored index) only when ``records`` is true (they are the largest columns:
    a load of values alone does not read them). Raises
    :class:`vaebench.results.ResultsError` as :func:`vaebench.results.load_cells` does."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from vaebench.results import read_cell

    run = Path(run_dir)
    listing = _listing(run)
    where = run / "index"
    cells_schema, values_schema = _schemas()
    old_cells, old_values = _stored(run, records)
    generation = (old_cells.schema.metadata or {}).get(b"vaebench_generation")
    files = old_cells.column("file").to_pylist()
    idents = zip(*(old_cells.column(c).to_pylist() for c in IDENTITY_COLUMNS), strict=True)
    stored = dict(zip(files, idents, strict=True))
    keep = [name for name in files if listing.get(name) == stored[name]]
    fresh = sorted(name for name in listing if stored.get(name) != listing[name])
    changed = bool(fresh) or len(keep) != len(files)
    if not changed:
        return old_cells.replace_schema_metadata(None), old_values
    if "record" in old_cells.column_names and len(old_cells):  # plain strings, to add rows to
        i = old_cells.schema.get_field_index("shared")
        old_cells = old_cells.set_column(i, "shared", old_cells.column(i).cast(pa.string()))
    elif "record" not in old_cells.column_names:  # the kept rows' records, of the same generation
        try:
            full = _read(where / "cells.parquet")
            if (full.schema.metadata or {}).get(b"vaebench_generation") != generation:
                raise ValueError("index replaced since it was read")
            old_cells = full
        except (OSError, ValueError, Exception) as exc:  # noqa: BLE001 - rebuild from the files
            log.debug("index of %s not used: %s", run, exc)
            old_cells, old_values = cells_schema.empty_table(), values_schema.empty_table()
            keep = []
            fresh = sorted(listing)
    new_cells, new_values = [], []
    cell_parts, value_parts = [], []  # Arrow tables of 4096 cells: no Python rows held longer
    for i, name in enumerate(fresh):
        row, values = _cell_rows(name, listing[name], read_cell(run / "cells" / name))
        new_cells.append(row)
        new_values.extend(values)
        if len(new_cells) == 4096 or i == len(fresh) - 1:
            cell_parts.append(pa.Table.from_pylist(new_cells, schema=cells_schema))
            value_parts.append(pa.Table.from_pylist(new_values, schema=values_schema))
            new_cells, new_values = [], []
    keep_set = pa.array(keep, pa.string())
    cells = pa.concat_tables([
        old_cells.filter(pc.is_in(old_cells.column("file"), value_set=keep_set)),
        *cell_parts,
    ]).replace_schema_metadata(None)  # fmt: skip
    values = pa.concat_tables([
        old_values.filter(pc.is_in(old_values.column("file"), value_set=keep_set)),
        *value_parts,
    ]).replace_schema_metadata(None)  # fmt: skip
    cells = cells.sort_by("file")
    try:
        where.mkdir(exist_ok=True)
        generation = secrets.token_hex(8)  # both files carry it: a mixed pair is rebuilt
        _write(where / "values.parquet", values, generation)
        _write(where / "cells.parquet", cells, generation)
    except OSError as exc:
        log.debug("index of %s not saved: %s", run, exc)
    return (cells if records else cells.drop_columns(RECORD_COLUMNS)), values


def load_records(run_dirs: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """The cell records of :func:`vaebench.results.load_cells` (folder, then file-name order,
    each tagged with ``run``) from the indexes of ``run_dirs`` (updated first, see
    :func:`update_index`), without :data:`HEAVY_FIELDS` (no image strips, no training
    curves): what a report without figures reads. Parts that many cells hold alike (their
    environment, declarations, options) are one shared object -- treat the records as
    read-only. Raises :class:`vaebench.results.ResultsError` as
    :func:`vaebench.results.load_cells` does."""
    import pyarrow as pa

    out: list[dict[str, Any]] = []
    memo: dict[str, Any] = {}
    parsed: dict[str, Any] = {}
    from vaebench.results import run_name

    for d in run_dirs:
        run = run_name(d)
        cells, _ = update_index(d, records=True)
        shared = cells.column("shared")
        if not pa.types.is_dictionary(shared.type):
            shared = shared.dictionary_encode()
        own = cells.column("record")
        start = 0
        for chunk in shared.chunks:  # each distinct shared text parsed once
            texts = chunk.dictionary.to_pylist()
            for t in texts:
                if t not in parsed:
                    parsed[t] = _shared(t, memo)
            parts = [parsed[t] for t in texts]
            idx = chunk.indices.to_pylist()
            mine = own.slice(start, len(chunk))
            start += len(chunk)
            pos = 0
            for own_chunk in mine.chunks:
                for text in own_chunk.to_pylist():
                    rec = _from_light(text, parts[idx[pos]])
                    rec["run"] = run
                    out.append(rec)
                    pos += 1
        del cells, shared, own
    return out
