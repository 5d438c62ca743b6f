"""The cell record: its schema, validation, migration, flat views, JSON form and image codec.

A cell record is one JSON object per finished cell (``RUN/cells/STEM.json``, written and read by
:mod:`vaebench.results`). This module says what such an object holds and nothing about files:

- the schema, as types (:class:`CellRecord`, :class:`Evaluation`, :class:`Manifest`) and as
  the constants :data:`SCHEMA`, :data:`READABLE_SCHEMAS`, :data:`CELL_STATUSES`,
  :data:`EVALUATION_STATUSES`, :data:`DERIVED_FIELDS`;
- :func:`checked_record`: a parsed JSON object as a checked schema-2 record (schema-1 records
  migrated in memory by :func:`migrate_v1`, the flat views of :func:`flat_views` added), or
  :class:`vaebench.errors.ResultsError` naming the file and the bad field;
- :func:`to_json`: the stored text of a record (sorted keys, NaN and inf as null; the kind of
  a non-finite value is kept apart by :func:`nonfinite_kind`);
- :func:`encode_images` / :func:`decode_images`: small 8-bit image artifacts (a PNG strip);
- :func:`metric_group`: the kind of question a stored value answers (one of :data:`GROUPS`).

Imports nothing of vaebench but :mod:`vaebench.errors`; no torch (``encode_images`` takes any
array-like, a tensor included, without importing torch). See ``docs/architecture.md`` for every
field.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from vaebench.errors import ResultsError, SchemaMismatchError

__all__ = [
    "CELL_STATUSES",
    "DERIVED_FIELDS",
    "EVALUATION_STATUSES",
    "GROUPS",
    "MANIFEST_SCHEMA",
    "MAX_SEED",
    "NONFINITE_TEXT",
    "READABLE_MANIFEST_SCHEMAS",
    "READABLE_SCHEMAS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SOURCE_GROUPS",
    "CellRecord",
    "Evaluation",
    "FlatViews",
    "Manifest",
    "checked_record",
    "decode_images",
    "encode_images",
    "failure_reason",
    "flat_views",
    "metric_group",
    "migrate_v1",
    "nonfinite_kind",
    "to_json",
    "value_rows",
]
#: Largest seed a cell may hold (``vaebench.config.MAX_SEED``: NumPy's limit, 2**32 - 1).
MAX_SEED = 2**32 - 1
SCHEMA_VERSION = 2
SCHEMA = f"vaebench.cell/{SCHEMA_VERSION}"
MANIFEST_SCHEMA = f"vaebench.manifest/{SCHEMA_VERSION}"
#: Older schemas this vaebench still reads (cells are migrated in memory by :func:`checked_record`).
READABLE_SCHEMAS = ("vaebench.cell/1", SCHEMA)
READABLE_MANIFEST_SCHEMAS = ("vaebench.manifest/1", MANIFEST_SCHEMA)
#: Statuses of a cell and of one evaluation.
CELL_STATUSES = ("ok", "failed", "skipped")
EVALUATION_STATUSES = ("ok", "failed", "not_applicable")
#: Fields :func:`vaebench.results.read_cell` derives from ``evaluations`` (and the loaders add); never stored.
DERIVED_FIELDS = ("metrics", "metric_info", "artifacts", "_path", "run", "variant")


class Evaluation(TypedDict, total=False):
    """One metric plugin's evaluation of a cell (``record["evaluations"][NAME]``)."""

    #: one of :data:`EVALUATION_STATUSES`; a ``failed`` or ``not_applicable`` one has ``reason``
    status: str
    reason: str
    #: the metric's declared version, its options and ``key`` (hash of name, version, options;
    #: ``""`` for a migrated schema-1 evaluation, which never matches)
    version: int
    options: dict[str, Any]
    key: str
    #: value name -> number (``None`` where it was NaN or infinite: see ``nan``/``nonfinite``)
    values: dict[str, float | None]
    #: value name -> declaration (``metric``, ``unit``, ``higher_is_better``, ``decimals``,
    #: ``group``, ``order``, ``description``)
    info: dict[str, dict[str, Any]]
    #: value name -> why it is NaN; value name -> ``"nan"``, ``"inf"`` or ``"-inf"``
    nan: dict[str, str]
    nonfinite: dict[str, str]
    #: value name -> why it does not apply (such values are not in ``values``)
    not_applicable: dict[str, str]
    #: name -> small artifact (an encoded image: :func:`encode_images`)
    artifacts: dict[str, Any]
    details: dict[str, Any]
    #: the metric's name; ``plugin``: the plugin (module or distribution) that provided it
    metric: str
    plugin: str
    seconds: float
    evaluated: str
    run_id: str
    environment: dict[str, Any]


class _Provenance(TypedDict, total=False):
    """What a cell record and a manifest both carry: their schema, the run that wrote them, its
    time span, configuration, execution settings and environment."""

    schema: str
    run_id: str
    #: ISO 8601 times (:func:`vaebench.environment.now_iso`)
    started: str
    finished: str
    config: dict[str, Any]
    #: device, threads, workers, executor (not part of any key)
    execution: dict[str, Any]
    #: versions, machine, device, git commit (:func:`vaebench.environment.environment`)
    environment: dict[str, Any]


class CellRecord(_Provenance, total=False):
    """A cell record as stored (``vaebench.cell/2``) plus, when read, the derived fields."""

    #: one of :data:`CELL_STATUSES`; ``failed`` has ``error.reason``, ``skipped`` ``skip_reason``
    status: str
    model: str
    dataset: str
    #: 0 .. :data:`MAX_SEED`
    seed: int
    #: the training key: hash of ``config`` (what changes the weights, nothing else)
    config_hash: str
    #: where the model and dataset plugins came from
    plugins: dict[str, str | None]
    dataset_info: dict[str, Any]
    model_info: dict[str, Any]
    wall_seconds: float
    #: when ``vaebench evaluate`` last added evaluations to the cell
    evaluated: str
    #: curve name -> one number (or null) per epoch
    history: dict[str, list[float | None]]
    fit: dict[str, Any]
    evaluations: dict[str, Evaluation]
    #: ``[{kind, message}]``
    warnings: list[dict[str, Any]]
    error: dict[str, Any]
    skip_reason: str
    state_sha256: str
    #: the schema a migrated record was read from (:func:`migrate_v1`)
    migrated_from: str
    # derived on read (:data:`DERIVED_FIELDS`), never stored
    metrics: dict[str, float | None]
    metric_info: dict[str, dict[str, Any]]
    artifacts: dict[str, Any]
    _path: str
    run: str
    variant: str


class FlatViews(TypedDict):
    """The flat views of a record's ok evaluations (:func:`flat_views`)."""

    metrics: dict[str, Any]
    metric_info: dict[str, Any]
    artifacts: dict[str, Any]


class Manifest(_Provenance, total=False):
    """One ``vaebench run``/``evaluate`` invocation (``RUN/manifests/RUNID.json``); its
    ``config`` is the run configuration (what ``--resume`` continues)."""

    #: ``"run"`` or ``"evaluate"``
    kind: str
    #: ``"running"``, then ``"finished"``, ``"interrupted"`` (with ``signal``) or ``"aborted"``
    #: (with ``error``)
    status: str
    signal: int
    error: str
    host: str
    pid: int
    argv: list[str]
    force: bool
    #: model, dataset and metric name -> the plugin that provided it
    plugins: dict[str, dict[str, str | None]]
    #: the stems of the planned cells
    cells: list[str]
    summary: dict[str, Any]


# ----------------------------------------------------------------------------- JSON


def nonfinite_kind(v: float) -> str:
    """``"nan"``, ``"inf"`` or ``"-inf"``: what a non-finite value was (stored in an
    evaluation's ``nonfinite``, since JSON stores all three as null)."""
    if math.isnan(v):
        return "nan"
    return "inf" if v > 0 else "-inf"


#: How each :func:`nonfinite_kind` is written in tables and messages.
NONFINITE_TEXT = {"nan": "NaN", "inf": "inf", "-inf": "-inf"}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (tuple, set)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean_floats(obj: Any) -> Any:
    """NaN/inf are not JSON: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_floats(v) for v in obj]
    return obj


def to_json(obj: Any) -> str:
    """The stored text of a record or manifest: JSON with sorted keys, one space of indent,
    NaN and inf as null, NumPy scalars as numbers, tuples and sets as lists, paths as strings,
    and a final newline. Raises ``TypeError`` naming any other type."""
    return json.dumps(_clean_floats(obj), indent=1, sort_keys=True, default=_json_default) + "\n"


def checked_record(data: Any, path: str | Path) -> dict[str, Any]:
    """``data`` (a parsed cell file) as a checked schema-2 record with the flat views of
    :func:`flat_views` added (derived fields stored by mistake are dropped first).

    Schema-1 records are migrated in memory (:func:`migrate_v1`). Raises
    :class:`vaebench.errors.ResultsError` naming ``path`` and the bad field for a corrupt or
    foreign object, :class:`vaebench.errors.SchemaMismatchError` for a schema this vaebench
    cannot read (the readable ones: :data:`READABLE_SCHEMAS`)."""
    path = Path(path)
    if not isinstance(data, dict) or "schema" not in data:
        raise ResultsError(f"{path} is not a vaebench result file (no schema field)")
    if data["schema"] not in READABLE_SCHEMAS:
        raise SchemaMismatchError(
            f"{path} has schema {data['schema']!r}; this vaebench reads "
            f"{', '.join(map(repr, READABLE_SCHEMAS))} (re-run the cells, or use the vaebench "
            "version that wrote them)"
        )
    if data["schema"] != SCHEMA:
        for key in ("metrics", "metric_info", "artifacts"):
            if key in data and not isinstance(data[key], dict):
                raise ResultsError(f"corrupt result file {path}: {key} must be an object")
        data = migrate_v1(data)
    else:
        for key in DERIVED_FIELDS:
            data.pop(key, None)
    _check_evaluations(data, path)
    data.update(flat_views(data))
    _check_cell(data, path)
    return data


# ----------------------------------------------------------------------------- value groups

#: The groups a value can belong to, in the order reports show them: the kind of question it
#: answers (see docs/reports.md).
GROUPS = (
    "quality", "interpolation", "likelihood", "representation", "disentanglement", "samples",
    "cost",
)  # fmt: skip


#: Kind of question a built-in metric plugin answers; others count as "quality" unless their
#: stored declaration names a ``group`` (one of :data:`GROUPS`).
SOURCE_GROUPS = {
    "reconstruction": "quality",
    "interpolation": "interpolation",
    "acai": "interpolation",
    "midpoint": "interpolation",
    "elbo": "likelihood",
    "iwae": "likelihood",
    "probe": "representation",
    "knn": "representation",
    "cluster": "representation",
    "active_units": "representation",
    "fd": "samples",
    "kid": "samples",
    "prdc": "samples",
    "throughput": "cost",
    "betavae_score": "disentanglement",
    "factorvae_score": "disentanglement",
    "mig": "disentanglement",
    "dci": "disentanglement",
    "sap": "disentanglement",
    "modularity": "disentanglement",
    "traversal": "disentanglement",
}


def metric_group(source: str, stored: str | None = None) -> str:
    """The group (one of :data:`GROUPS`: ``"quality"``, ``"interpolation"``, ``"likelihood"``,
    ``"representation"``, ``"samples"`` or ``"cost"`` -- throughput, time, size) of a value
    produced by metric plugin ``source``; a ``group`` stored with the value wins."""
    if stored in GROUPS:
        return stored
    return SOURCE_GROUPS.get(source or "", "quality")


def failure_reason(record: dict[str, Any]) -> str | None:
    """Why a cell has no values: ``skip_reason`` of a skipped cell, ``error.reason`` of a failed
    one (``""`` where the record lacks it); ``None`` for an ok cell."""
    if record["status"] == "skipped":
        return str(record.get("skip_reason", ""))
    if record["status"] != "ok":
        return str((record.get("error") or {}).get("reason", ""))
    return None


def value_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per value of a read record's flat views (:func:`flat_views`), by value name:
    ``metric`` (the value's name), ``value`` (float; NaN for null), ``unit``,
    ``higher_is_better`` and ``order`` as stored (``None`` where missing), ``decimals`` (int,
    default 3), ``source`` (the metric plugin) and ``group`` (:func:`metric_group`)."""
    info = record.get("metric_info", {})
    rows = []
    for name, value in sorted(record.get("metrics", {}).items()):
        meta = info.get(name, {})
        rows.append({
            "metric": name,
            "value": math.nan if value is None else float(value),
            "unit": meta.get("unit", ""),
            "higher_is_better": meta.get("higher_is_better"),
            "decimals": int(meta.get("decimals", 3)),
            "source": meta.get("metric", ""),
            "group": metric_group(meta.get("metric", ""), meta.get("group")),
            "order": meta.get("order"),
        })  # fmt: skip
    return rows


# ----------------------------------------------------------------------------- images


def encode_images(x: Any) -> dict[str, Any]:
    """Images in [0, 1] ``(N, C, H, W)`` -> compact JSON: quantised to 8 bits and stored as one
    lossless PNG strip (``png_b64``; 1 or 3 channels), else as raw bytes (``uint8_b64``).

    PNG keeps result files small (the simple images of moons and lines compress 5-20x), and
    both encodings decode to exactly the same 8-bit values (:func:`decode_images`).
    """
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    q = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    if q.ndim == 4 and q.shape[1] in (1, 3) and q.size:
        from PIL import Image

        n, c, h, w = q.shape
        strip = q.transpose(2, 0, 3, 1).reshape(h, n * w, c)  # images side by side
        img = Image.fromarray(strip[:, :, 0] if c == 1 else strip, mode="L" if c == 1 else "RGB")
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=9)
        return {"shape": list(q.shape), "png_b64": base64.b64encode(buf.getvalue()).decode("ascii")}
    return {"shape": list(q.shape), "uint8_b64": base64.b64encode(q.tobytes()).decode("ascii")}


def _png_pixels(obj: dict[str, Any]) -> np.ndarray:
    """The ``(N, C, H, W)`` uint8 pixels of a ``png_b64`` artifact; ``ValueError`` when the PNG
    is broken or its size does not match ``shape`` (checked before decoding the pixels)."""
    from PIL import Image

    n, c, h, w = obj["shape"]
    raw = base64.b64decode(obj["png_b64"], validate=True)
    with Image.open(io.BytesIO(raw)) as img:
        mode = "L" if c == 1 else "RGB"
        if img.format != "PNG" or img.size != (n * w, h) or img.mode != mode:
            raise ValueError(
                f"PNG of {img.size[0]}x{img.size[1]} {img.mode}, shape {obj['shape']} needs "
                f"{n * w}x{h} {mode}"
            )
        strip = np.asarray(img.convert(mode), dtype=np.uint8).reshape(h, n, w, c)
    return strip.transpose(1, 3, 0, 2)


def decode_images(obj: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_images`: float32 array ``(N, C, H, W)`` in [0, 1].

    Anything that is not an encoded image raises :class:`ResultsError`.
    """
    problem = _check_image(obj) if isinstance(obj, dict) else "not an object"
    if problem:
        raise ResultsError(f"stored image artifact is broken: {problem} ({str(obj)[:60]})")
    if "png_b64" in obj:
        return _png_pixels(obj).astype(np.float32) / 255.0
    raw = base64.b64decode(obj["uint8_b64"])
    return np.frombuffer(raw, dtype=np.uint8).reshape(obj["shape"]).astype(np.float32) / 255.0


# ----------------------------------------------------------------------------- checks


def _number_or_null(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_SCALAR = (str, int, float, bool, type(None))

#: Known keys of nested objects and the test their values must pass (absent keys are fine:
#: older or hand-made files may lack them; unknown keys are allowed for plugins' extras).
_FIELDS: dict[str, dict[str, tuple[Any, str]]] = {
    "config": {
        "params": (lambda v: isinstance(v, dict), "an object"),
        "dataset_options": (lambda v: isinstance(v, dict), "an object"),
        "eval": (lambda v: isinstance(v, dict), "an object"),
        "metrics": (lambda v: v is None or isinstance(v, list), "a list or null"),
    },
    "dataset_info": {
        "shape": (lambda v: isinstance(v, list) and all(_is_int(x) and x > 0 for x in v),
                  "a list of positive integers"),
        "n_train": (_is_int, "an integer"),
        "n_test": (_is_int, "an integer"),
        "citation": (lambda v: isinstance(v, str), "a string"),
        "info": (lambda v: isinstance(v, dict), "an object"),
    },
    "environment": {
        "git": (lambda v: v is None or (isinstance(v, dict) and isinstance(v.get("commit"), str)
                                        and isinstance(v.get("dirty", False), bool)),
                "null or an object with a commit string"),
    },
    "model_info": {
        "n_params": (_is_int, "an integer"),
        "latent_dim": (_is_int, "an integer"),
        "can_sample": (lambda v: isinstance(v, bool), "true or false"),
        "unused_params": (
            lambda v: isinstance(v, list) and all(isinstance(p, str) for p in v),
            "a list of parameter names",
        ),
    },
    "metric_info.*": {
        "name": (lambda v: isinstance(v, str), "a string"),
        "metric": (lambda v: isinstance(v, str), "a string"),
        "unit": (lambda v: isinstance(v, str), "a string"),
        "description": (lambda v: isinstance(v, str), "a string"),
        "higher_is_better": (lambda v: v is None or isinstance(v, bool), "true, false or null"),
        "decimals": (lambda v: _is_int(v) and 0 <= v <= 20, "an integer in [0, 20]"),
        "order": (lambda v: v is None or (_is_int(v) and abs(v) < 2**31),
                  "an integer in (-2**31, 2**31) or null"),
    },
    "error": {
        "reason": (lambda v: isinstance(v, str), "a string"),
        "type": (lambda v: isinstance(v, str), "a string"),
        "traceback": (lambda v: isinstance(v, str), "a string"),
    },
}  # fmt: skip


def _check_image(obj: dict[str, Any]) -> str | None:
    """Why an encoded image artifact is broken, or None."""
    shape = obj.get("shape")
    if not (isinstance(shape, list) and shape and all(_is_int(x) and x >= 0 for x in shape)):
        return "shape must be a list of non-negative integers"
    if "png_b64" in obj:
        if not isinstance(obj["png_b64"], str):
            return "png_b64 must be a string"
        if len(shape) != 4 or shape[1] not in (1, 3):
            return "a PNG artifact needs shape (N, 1 or 3, H, W)"
        try:
            _png_pixels(obj)
        except Exception as exc:  # noqa: BLE001 - a damaged file: say what is wrong
            return f"png_b64 is not a valid PNG strip: {exc}"
        return None
    if not isinstance(obj.get("uint8_b64"), str):
        return "uint8_b64 must be a string"
    try:
        raw = base64.b64decode(obj["uint8_b64"], validate=True)
    except ValueError:
        return "uint8_b64 is not base64"
    if len(raw) != math.prod(shape):
        return f"holds {len(raw)} bytes, shape {shape} needs {math.prod(shape)}"
    return None


def _check_cell(data: dict[str, Any], path: Path) -> None:
    """Types of every field reports rely on; anything else is a corrupt file."""

    def bad(what: str) -> ResultsError:
        return ResultsError(f"corrupt result file {path}: {what}")

    for key in ("status", "model", "dataset", "seed", "config_hash"):
        if key not in data:
            raise bad(f"missing field {key!r}")
    if data["status"] not in CELL_STATUSES:
        raise bad(f"status is {data['status']!r}, expected one of {', '.join(CELL_STATUSES)}")
    for key in ("model", "dataset", "config_hash"):
        if not isinstance(data[key], str) or not data[key]:
            raise bad(f"{key} is {data[key]!r}, expected a non-empty string")
    if not _is_int(data["seed"]) or not 0 <= data["seed"] <= MAX_SEED:
        raise bad(f"seed is {data['seed']!r}, expected an integer from 0 to {MAX_SEED}")
    metrics = data.get("metrics", {})
    if not isinstance(metrics, dict) or not all(
        isinstance(k, str) and _number_or_null(v) for k, v in metrics.items()
    ):
        raise bad("metrics must map names to numbers")
    history = data.get("history", {})
    if not isinstance(history, dict) or not all(
        isinstance(v, list) and all(_number_or_null(x) for x in v) for v in history.values()
    ):
        raise bad("history must map names to lists of numbers")
    for key in ("artifacts", "config", "environment", "dataset_info", "metric_info",
                "model_info", "plugins"):  # fmt: skip
        if key in data and not isinstance(data[key], dict):
            raise bad(f"{key} must be an object")
    for key in ("run_id", "started", "finished"):
        if key in data and not isinstance(data[key], str):
            raise bad(f"{key} must be a string")
    if "wall_seconds" in data and not _number_or_null(data["wall_seconds"]):
        raise bad("wall_seconds must be a number")
    if data["status"] == "failed" and not (
        isinstance(data.get("error"), dict) and "reason" in data["error"]
    ):
        raise bad("a failed cell needs error.reason")
    if data["status"] == "skipped" and not isinstance(data.get("skip_reason"), str):
        raise bad("a skipped cell needs skip_reason (a string)")
    nested = [
        (key, data[key])
        for key in ("config", "dataset_info", "environment", "model_info", "error")
        if isinstance(data.get(key), dict)
    ]
    for name, value in data.get("metric_info", {}).items():
        if not isinstance(value, dict):
            raise bad(f"metric_info.{name} must be an object")
        nested.append((f"metric_info.{name}", value))
    for where, obj in nested:
        rules = _FIELDS["metric_info.*" if where.startswith("metric_info.") else where]
        for key, (ok, expected) in rules.items():
            if key in obj and not ok(obj[key]):
                raise bad(f"{where}.{key} is {obj[key]!r}, expected {expected}")
    env_values = [v for v in data.get("environment", {}).values() if not isinstance(v, dict)]
    if not all(isinstance(v, _SCALAR) for v in env_values):
        raise bad("environment values must be strings, numbers or null")
    if not all(isinstance(v, (str, type(None))) for v in data.get("plugins", {}).values()):
        raise bad("plugins must map names to strings")
    for name, value in data.get("artifacts", {}).items():
        if isinstance(value, dict) and ({"uint8_b64", "png_b64", "shape"} & set(value)):
            problem = _check_image(value)
            if problem:
                raise bad(f"image artifact {name!r}: {problem}")


def _check_evaluations(data: dict[str, Any], path: Path) -> None:
    """Types of the ``evaluations`` of a schema-2 record."""

    def bad(what: str) -> ResultsError:
        return ResultsError(f"corrupt result file {path}: {what}")

    evaluations = data.get("evaluations", {})
    if not isinstance(evaluations, dict):
        raise bad("evaluations must be an object")
    for name, ev in evaluations.items():
        where = f"evaluations.{name}"
        if not isinstance(ev, dict):
            raise bad(f"{where} must be an object")
        if ev.get("status") not in EVALUATION_STATUSES:
            raise bad(
                f"{where}.status is {ev.get('status')!r}, expected one of "
                f"{', '.join(EVALUATION_STATUSES)}"
            )
        for key in ("values", "info", "nan", "nonfinite", "artifacts", "options", "details",
                    "not_applicable"):  # fmt: skip
            if key in ev and not isinstance(ev[key], dict):
                raise bad(f"{where}.{key} must be an object")
        for key in ("reason", "key", "plugin", "evaluated", "run_id"):
            if key in ev and not isinstance(ev[key], str):
                raise bad(f"{where}.{key} must be a string")
        if ev["status"] != "ok" and not isinstance(ev.get("reason"), str):
            raise bad(f"{where}: a {ev['status']} evaluation needs a reason")
        values = ev.get("values", {})
        if not all(isinstance(k, str) and _number_or_null(v) for k, v in values.items()):
            raise bad(f"{where}.values must map names to numbers")
        if not all(isinstance(v, str) for v in ev.get("nan", {}).values()):
            raise bad(f"{where}.nan must map value names to reasons")
        if not all(v in NONFINITE_TEXT for v in ev.get("nonfinite", {}).values()):
            raise bad(f"{where}.nonfinite must map value names to {', '.join(NONFINITE_TEXT)}")
        if not all(isinstance(v, str) for v in ev.get("not_applicable", {}).values()):
            raise bad(f"{where}.not_applicable must map value names to reasons")
    warnings = data.get("warnings", [])
    if not isinstance(warnings, list) or not all(
        isinstance(w, dict) and isinstance(w.get("message"), str) for w in warnings
    ):
        raise bad("warnings must be a list of objects with a message")


#: Which metric plugin produced each artifact of a schema-1 cell (for the migration).
_V1_ARTIFACT_SOURCES = {
    "recon_originals": "reconstruction",
    "recon_outputs": "reconstruction",
    "latent_2d": "reconstruction",
    "interp_strip": "interpolation",
    "midpoint_strip": "midpoint",
    "midpoint_truth": "midpoint",
}


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    """``data[key]`` where it is an object, else ``{}`` (a schema-1 field to migrate)."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 cell record as a schema-2 one (in memory; the file is not touched).

    Schema 1 stored one flat ``metrics``/``metric_info``/``artifacts`` set per cell; schema 2
    stores one evaluation per metric plugin. Each value goes to the evaluation of the plugin its
    ``metric_info`` names; the evaluations get the stored eval options and an empty ``key`` (so
    ``vaebench evaluate`` recomputes them under the current definitions when asked).
    ``config_hash`` and the file name stay as they were.
    """
    out = {k: v for k, v in data.items() if k not in ("metrics", "metric_info", "artifacts")}
    out["schema"] = SCHEMA
    out["migrated_from"] = data.get("schema")
    metrics = _object(data, "metrics")
    info = _object(data, "metric_info")
    artifacts = _object(data, "artifacts")
    options = _object(_object(data, "config"), "eval")
    evaluations: dict[str, Evaluation] = {}

    def evaluation(name: str) -> Evaluation:
        return evaluations.setdefault(
            name,
            {"status": "ok", "version": 0, "key": "", "options": dict(options), "values": {},
             "info": {}, "nan": {}, "artifacts": {}},
        )  # fmt: skip

    for value, number in metrics.items():
        meta = info.get(value, {})
        source = meta.get("metric") if isinstance(meta, dict) else None
        ev = evaluation(source if isinstance(source, str) and source else "unknown")
        ev["values"][value] = number
        ev["info"][value] = meta
    for name, art in artifacts.items():
        source = _V1_ARTIFACT_SOURCES.get(name)
        target = source if source in evaluations else next(iter(evaluations), "unknown")
        evaluation(target)["artifacts"][name] = art
    out["evaluations"] = evaluations
    out.setdefault("warnings", [])
    return out


def flat_views(record: dict[str, Any]) -> FlatViews:
    """``metrics`` (value -> number or None), ``metric_info`` (value -> declaration) and
    ``artifacts`` (name -> artifact) of a record, from its ok evaluations in stored order."""
    metrics: dict[str, Any] = {}
    info: dict[str, Any] = {}
    artifacts: dict[str, Any] = {}
    for ev in record.get("evaluations", {}).values():
        if ev.get("status") != "ok":
            continue
        for value, number in ev.get("values", {}).items():
            metrics[value] = number
            info[value] = ev.get("info", {}).get(value, {})
        artifacts.update(ev.get("artifacts", {}))
    return {"metrics": metrics, "metric_info": info, "artifacts": artifacts}
