"""vaebench.record: the typed schema matches what vaebench stores, and the JSON form and
checks behave as the store relies on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vaebench.errors import ResultsError, SchemaMismatchError
from vaebench.record import (
    CELL_STATUSES,
    DERIVED_FIELDS,
    CellRecord,
    Evaluation,
    Manifest,
    checked_record,
    failure_reason,
    to_json,
    value_rows,
)
from vaebench.results import iter_cells

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _keys(typed: type) -> frozenset[str]:
    return typed.__required_keys__ | typed.__optional_keys__


def test_the_typed_schema_names_every_stored_field():
    """Every field of the committed cells, evaluations and manifests is declared by
    CellRecord, Evaluation and Manifest (a new field must be added to the types)."""
    runs = sorted({p.parent.parent for p in RESULTS.glob("**/cells/*.json")})
    assert (RESULTS / "reference") in runs
    for run in runs:
        for cell in iter_cells(run):
            assert set(cell) <= _keys(CellRecord), (run, set(cell) - _keys(CellRecord))
            for name, ev in cell["evaluations"].items():
                assert set(ev) <= _keys(Evaluation), (run, name, set(ev) - _keys(Evaluation))
        for path in run.glob("manifests/*.json"):
            manifest = json.loads(path.read_text(encoding="utf-8"))
            assert set(manifest) <= _keys(Manifest), (path, set(manifest) - _keys(Manifest))
    assert set(DERIVED_FIELDS) <= _keys(CellRecord)


def test_to_json_is_the_stored_form():
    text = to_json({"b": math.nan, "a": (np.float32(0.5), np.int64(2)), "c": Path("x")})
    assert text == '{\n "a": [\n  0.5,\n  2\n ],\n "b": null,\n "c": "x"\n}\n'
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        to_json({"x": object()})


def _cell(**extra):
    return {"schema": "vaebench.cell/2", "status": "ok", "model": "ae", "dataset": "moons",
            "seed": 0, "config_hash": "abc", "evaluations": {}, **extra}  # fmt: skip


def test_checked_record_names_the_file_and_the_field():
    with pytest.raises(ResultsError, match=r"x\.json is not a vaebench result file"):
        checked_record([], "x.json")
    with pytest.raises(SchemaMismatchError, match=r"has schema 'vaebench.cell/9'"):
        checked_record({"schema": "vaebench.cell/9"}, "x.json")
    with pytest.raises(ResultsError, match=r"corrupt result file x\.json: seed is -1"):
        checked_record(_cell(seed=-1), "x.json")
    record = checked_record(_cell(metrics={"stale": 1.0}), "x.json")
    assert record["metrics"] == {}  # derived fields are recomputed, never trusted


def test_value_rows_and_failure_reason():
    ev = {"status": "ok", "values": {"psnr": 20.0, "mse": None},
          "info": {"psnr": {"metric": "reconstruction", "higher_is_better": True,
                            "decimals": 2, "unit": "dB", "order": 1}}}  # fmt: skip
    record = checked_record(_cell(evaluations={"reconstruction": ev}), "x.json")
    rows = value_rows(record)
    assert [r["metric"] for r in rows] == ["mse", "psnr"]
    assert math.isnan(rows[0]["value"]) and rows[0]["decimals"] == 3 and rows[0]["order"] is None
    assert rows[1] == {"metric": "psnr", "value": 20.0, "unit": "dB", "higher_is_better": True,
                       "decimals": 2, "source": "reconstruction", "group": "quality",
                       "order": 1}  # fmt: skip
    assert failure_reason(record) is None
    assert set(CELL_STATUSES) == {"ok", "failed", "skipped"}
    assert failure_reason({"status": "skipped", "skip_reason": "no labels"}) == "no labels"
    assert failure_reason({"status": "failed", "error": {"reason": "diverged"}}) == "diverged"
    assert failure_reason({"status": "failed"}) == ""


def test_environment_names_versions_without_importing_scikit_learn():
    """What produced a result names scikit-learn's version from its metadata: the same text
    as ``sklearn.__version__``, without the ~1.5 s import in a process that needs none (a
    grid's own process when workers train)."""
    import subprocess
    import sys

    code = (
        "import sys, json\nfrom vaebench.environment import environment\n"
        "env = environment()\nprint(json.dumps([env['scikit-learn'], 'sklearn' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    import sklearn

    assert json.loads(out.stdout) == [sklearn.__version__, False]


@pytest.mark.parametrize("order", [1.5, [1], 2**70, True, "1"])
def test_a_value_order_that_is_no_integer_is_a_corrupt_file(order):
    # the index path once truncated 1.5 to 1 where the record path raised a TypeError
    ev = {"status": "ok", "values": {"psnr": 20.0},
          "info": {"psnr": {"metric": "reconstruction", "higher_is_better": True,
                            "decimals": 2, "unit": "dB", "order": order}}}  # fmt: skip
    with pytest.raises(ResultsError, match=r"x\.json: metric_info\.psnr\.order is .*integer"):
        checked_record(_cell(evaluations={"reconstruction": ev}), "x.json")
    ev["info"]["psnr"]["order"] = 3
    assert value_rows(checked_record(_cell(evaluations={"reconstruction": ev}), "x.json"))
