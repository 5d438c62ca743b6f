"""MLflow tracking: every finished cell becomes one MLflow run (a built-in plugin on the
``vaebench_cell_finished`` hook; install ``pip install 'vaebench[mlflow]'``).

**When.** The plugin is active while a tracking URI is set: ``vaebench run --track mlflow=URI``
(or its alias ``--mlflow URI``; the same for ``vaebench evaluate``; the core passes it to the
``mlflow`` tracker of the ``vaebench_trackers`` hook) sets ``MLFLOW_TRACKING_URI`` for the
process, which is also
how MLflow itself reads it; a ``MLFLOW_TRACKING_URI`` already in the environment works the
same. A local store needs no server: ``--mlflow`` alone is :data:`DEFAULT_URI`
(``sqlite:///mlruns.db``, a database in the current folder: what MLflow recommends and what
``mlflow ui``/``mlflow server --backend-store-uri sqlite:///mlruns.db`` and
``MlflowClient`` read). A folder ``file:./mlruns`` still works for logging (the plugin sets
``MLFLOW_ALLOW_FILE_STORE=true`` for a URI you chose) but MLflow 3 keeps its file store in
maintenance mode and its own tools refuse to open it, so vaebench warns and names the
sqlite URI instead.

**Where.** The experiment is ``MLFLOW_EXPERIMENT_NAME`` when set, else the results folder's
name (the command line tells the plugin through :func:`configure`), else ``vaebench``.

**What.** One run per training of a cell, named after the cell (``vae (beta=4) / digits /
seed 0``):

- params: ``model``, ``dataset``, ``seed``, ``training_key`` (the cell's key), ``sweep.LABEL``
  for each swept value, ``hp.NAME`` for every resolved hyperparameter, ``dataset.OPTION``,
  ``subset``, ``val_fraction``, ``training_version``, ``dataset_fingerprint``;
- metrics: the per-epoch losses as ``train/NAME`` (``val/NAME`` for validation curves) with the
  epoch as step, and every final metric value (``mse``, ``knn_acc``, ...) plus
  ``wall_seconds``;
- tags: ``vaebench.cell`` (the cell file's stem), ``vaebench.key``, ``vaebench.training_run``
  (the vaebench run id that trained it), ``vaebench.status``, the execution settings, and
  ``vaebench.error`` for a failed cell; the run's status is FINISHED or FAILED;
- artifact: the cell record as ``cell/STEM.json``.

**Identity.** Before creating a run the plugin searches the experiment for the cell's key and
training run: running the same command again logs nothing new (finished cells are not trained
again, and the hook is not called for them), ``vaebench evaluate`` adds or updates the metric
values of the same run, and a cell trained again (``--force``, a failed cell retried) is a new
training and gets a new run. :func:`log_folder` (the ``vaebench mlflow RUN_DIR`` command) logs
a whole results folder, e.g. cells stored while the tracking server was down.

**Failures.** A store that cannot be reached or written is reported once per process (a
warning naming the URI and the error); later cells are not sent; the results folder is never
affected. For HTTP stores the plugin lowers MLflow's retry defaults (``MLFLOW_HTTP_REQUEST_*``,
unless set) so that an unreachable server costs seconds, not minutes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from vaebench.errors import ConfigError, import_extra
from vaebench.hookspecs import Tracker, hookimpl

log = logging.getLogger("vaebench.tracking.mlflow")

__all__ = [
    "MLFLOW_INSTALL",
    "configure",
    "tracking_uri",
    "experiment_name",
    "log_cell",
    "log_folder",
    "cell_params",
    "cell_metrics",
    "vaebench_cell_finished",
    "vaebench_commands",
    "vaebench_trackers",
]

#: What to install for MLflow tracking.
MLFLOW_INSTALL = "pip install 'vaebench[mlflow]'"
#: Experiment used when neither MLFLOW_EXPERIMENT_NAME nor a results folder is known.
DEFAULT_EXPERIMENT = "vaebench"
#: Tracking URI of ``--mlflow`` given alone (and of ``vaebench mlflow`` without one): a SQLite
#: database in the current folder, a backend MLflow 3 supports (its file store it refuses).
DEFAULT_URI = "sqlite:///mlruns.db"
#: MLflow's limits (mlflow.utils.validation): values are cut to fit, batches split.
_MAX_PARAM = 6000
_MAX_TAG = 8000
_BATCH_PARAMS_TAGS = 100
_BATCH_METRICS = 1000

#: Set by :func:`configure` (the results folder's name).
_folder_experiment: str | None = None
#: URIs that failed in this process (reported once; nothing more is sent to them).
_failed: dict[str, str] = {}
_experiments: dict[tuple[str, str], str] = {}


# ----------------------------------------------------------------------------- configuration


def configure(uri: str | None, out_dir: str | os.PathLike | None = None) -> None:
    """Apply ``--mlflow URI`` for this process: set ``MLFLOW_TRACKING_URI`` (checking that
    MLflow is installed) and remember the results folder, whose name is the default
    experiment. ``uri=None`` keeps whatever the environment says. Raises
    :class:`ConfigError` for an empty URI, a store MLflow cannot open or reach, or when MLflow
    is not installed."""
    global _folder_experiment
    if uri is not None:
        if not isinstance(uri, str) or not uri.strip():
            raise ConfigError(f"invalid --mlflow {uri!r}: expected a tracking URI, e.g. "
                              "sqlite:///mlflow.db or file:./mlruns")  # fmt: skip
        mlflow = _import_mlflow("--mlflow")
        uri = uri.strip()
        if _is_file_store(uri):
            log.warning(
                "MLflow 3 keeps file stores such as %s in maintenance mode: `mlflow ui` and "
                "MlflowClient refuse to open them unless MLFLOW_ALLOW_FILE_STORE=true; prefer "
                "--mlflow %s", uri, DEFAULT_URI,
            )  # fmt: skip
        _prepare_environment(uri)
        try:  # reach the store now: a typo must stop the run before anything trains
            mlflow.tracking.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        except Exception as exc:  # noqa: BLE001 - MLflow raises many types for a bad store
            text = " ".join(str(exc).split())[:300]
            raise ConfigError(
                f"cannot use the MLflow tracking store {uri!r}: {type(exc).__name__}: {text} "
                "(e.g. sqlite:///mlflow.db, file:./mlruns or http://host:5000)"
            ) from None
        os.environ["MLFLOW_TRACKING_URI"] = uri
    _folder_experiment = Path(out_dir).resolve().name if out_dir is not None else None


def tracking_uri() -> str | None:
    """The tracking URI the plugin logs to (``MLFLOW_TRACKING_URI``), or ``None``: inactive."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return uri or None


def experiment_name() -> str:
    """``MLFLOW_EXPERIMENT_NAME``, else the results folder's name, else ``vaebench``."""
    return (
        os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip()
        or _folder_experiment
        or DEFAULT_EXPERIMENT
    )


def _import_mlflow(what: str) -> Any:
    return import_extra("mlflow", what, "MLflow", MLFLOW_INSTALL)


def _is_file_store(uri: str) -> bool:
    """Whether ``uri`` names a folder (MLflow's file store) rather than a database or server."""
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def _prepare_environment(uri: str) -> None:
    """Settings MLflow reads from the environment, for the store the user chose."""
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if _is_file_store(uri):  # a folder
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    elif scheme in ("http", "https"):  # fail in seconds, not after minutes of retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


# ----------------------------------------------------------------------------- what is logged


def _stem(record: Mapping[str, Any]) -> str:
    from vaebench.results import cell_stem

    return cell_stem(record["model"], record["dataset"], record["seed"], record["config_hash"])


def _label(record: Mapping[str, Any]) -> str:
    from vaebench.cells import cell_label

    sweep = (record.get("config") or {}).get("sweep") or {}
    return cell_label(record["model"], record["dataset"], record["seed"], sweep)


def _text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cell_params(record: Mapping[str, Any]) -> dict[str, str]:
    """The MLflow params of a cell record (see the module docstring), as strings."""
    config = record.get("config") or {}
    params: dict[str, Any] = {
        "model": record["model"],
        "dataset": record["dataset"],
        "seed": record["seed"],
        "training_key": record["config_hash"],
    }
    for label, value in (config.get("sweep") or {}).items():
        params[f"sweep.{label}"] = value
    for name, value in (config.get("params") or {}).items():
        params[f"hp.{name}"] = value
    for name, value in (config.get("dataset_options") or {}).items():
        params[f"dataset.{name}"] = value
    for key in ("subset", "val_fraction", "training_version", "dataset_fingerprint"):
        if key in config:
            params[key] = config[key]
    return {k[:250]: _text(v, _MAX_PARAM) for k, v in params.items()}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def cell_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """The final metric values of a cell record (NaN values, stored as null, are left out)
    and its ``wall_seconds``."""
    from vaebench.record import flat_views

    values = {k: float(v) for k, v in flat_views(dict(record))["metrics"].items() if _finite(v)}
    if _finite(record.get("wall_seconds")):
        values.setdefault("wall_seconds", float(record["wall_seconds"]))
    return values


def _history(record: Mapping[str, Any]) -> Iterator[tuple[str, int, float]]:
    """``(metric name, epoch, value)`` of the per-epoch curves."""
    for name, curve in (record.get("history") or {}).items():
        if not isinstance(curve, list):
            continue
        key = f"val/{name[4:]}" if name.startswith("val_") else f"train/{name}"
        for epoch, value in enumerate(curve, start=1):
            if _finite(value):
                yield key, epoch, float(value)


def _tags(record: Mapping[str, Any]) -> dict[str, str]:
    execution = record.get("execution") or {}
    tags = {
        "vaebench.cell": _stem(record),
        "vaebench.key": record["config_hash"],
        "vaebench.training_run": str(record.get("run_id", "")),
        "vaebench.status": record.get("status", ""),
        "vaebench.model": record["model"],
        "vaebench.dataset": record["dataset"],
        "vaebench.seed": str(record["seed"]),
    }
    for key in ("executor", "workers", "threads", "device", "scheduler"):
        if execution.get(key) is not None:
            tags[f"vaebench.{key}"] = str(execution[key])
    if record.get("status") == "failed":
        tags["vaebench.error"] = (record.get("error") or {}).get("reason", "")
    return {k: _text(v, _MAX_TAG) for k, v in tags.items()}


def _ms(iso: Any) -> int | None:
    """Milliseconds since the epoch of an ISO timestamp (``None`` when absent or unreadable)."""
    try:
        return int(datetime.fromisoformat(str(iso)).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- the store

_clients: dict[str, Any] = {}


def _client(uri: str) -> Any:
    if uri not in _clients:
        _prepare_environment(uri)
        mlflow = _import_mlflow("MLflow tracking")
        _clients[uri] = mlflow.MlflowClient(tracking_uri=uri)
    return _clients[uri]


def _experiment_id(client: Any, uri: str, name: str) -> str:
    key = (uri, name)
    if key in _experiments:
        return _experiments[key]
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            exp_id = client.create_experiment(name)
        except Exception:  # another process created it first (two shards, say)
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            exp_id = exp.experiment_id
    else:
        if exp.lifecycle_stage != "active":
            raise RuntimeError(
                f"MLflow experiment {name!r} is deleted in {uri}: restore it "
                "(mlflow experiments restore) or set MLFLOW_EXPERIMENT_NAME to another name"
            )
        exp_id = exp.experiment_id
    _experiments[key] = exp_id
    return exp_id


def _find_run(client: Any, exp_id: str, record: Mapping[str, Any]) -> Any:
    """The run of this training of this cell, or ``None``. (The key is hex, safe to quote in
    a filter; cell and training run are compared here.)"""
    runs = client.search_runs(
        [exp_id], filter_string=f"tags.`vaebench.key` = '{record['config_hash']}'"
    )
    stem, training = _stem(record), str(record.get("run_id", ""))
    for run in runs:
        tags = run.data.tags
        if tags.get("vaebench.cell") == stem and tags.get("vaebench.training_run") == training:
            return run
    return None


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def log_cell(
    record: Mapping[str, Any], uri: str | None = None, experiment: str | None = None
) -> tuple[str, str]:
    """Log one cell record as an MLflow run (or bring its run up to date); return
    ``(run id, what happened)``: ``created``, ``updated`` or ``unchanged``.

    ``uri`` defaults to :func:`tracking_uri` and ``experiment`` to :func:`experiment_name`.
    Raises :class:`ConfigError` without a URI or without MLflow, and MLflow's own exceptions
    when the store fails.
    """
    from mlflow.entities import Metric, Param, RunTag

    uri = uri or tracking_uri()
    if uri is None:
        raise ConfigError("no MLflow tracking URI: use --mlflow URI or set MLFLOW_TRACKING_URI")
    client = _client(uri)
    exp_id = _experiment_id(client, uri, experiment or experiment_name())
    run = _find_run(client, exp_id, record)
    created = run is None
    if created:
        run = client.create_run(
            exp_id, start_time=_ms(record.get("started")), run_name=_label(record),
            tags={"vaebench.cell": _stem(record)},
        )  # fmt: skip
    run_id = run.info.run_id
    stored_params = {} if created else run.data.params
    stored_metrics = {} if created else run.data.metrics
    stored_tags = {} if created else run.data.tags
    when = _ms(record.get("evaluated") or record.get("finished")) or int(
        datetime.now().timestamp() * 1000
    )

    params = [Param(k, v) for k, v in cell_params(record).items() if k not in stored_params]
    tags = [RunTag(k, v) for k, v in _tags(record).items() if stored_tags.get(k) != v]
    metrics = [
        Metric(k, v, when, 0) for k, v in cell_metrics(record).items() if stored_metrics.get(k) != v
    ]
    if stored_tags.get("vaebench.history") != "logged":
        start = _ms(record.get("started")) or when
        metrics += [Metric(k, v, start, step) for k, step, v in _history(record)]
        tags.append(RunTag("vaebench.history", "logged"))
    changed = bool(params or metrics or tags)
    for chunk in _chunks(params, _BATCH_PARAMS_TAGS):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks(tags, _BATCH_PARAMS_TAGS):
        client.log_batch(run_id, tags=chunk)
    for chunk in _chunks(metrics, _BATCH_METRICS):
        client.log_batch(run_id, metrics=chunk)
    if changed:
        _log_record(client, run_id, record)
    status = "FINISHED" if record.get("status") == "ok" else "FAILED"
    if created or run.info.status != status:
        client.set_terminated(run_id, status=status, end_time=_ms(record.get("finished")))
        changed = True
    return run_id, "created" if created else ("updated" if changed else "unchanged")


def _log_record(client: Any, run_id: str, record: Mapping[str, Any]) -> None:
    """The cell record as the artifact ``cell/STEM.json`` (replaced on update)."""
    from vaebench.record import DERIVED_FIELDS

    stored = {k: v for k, v in record.items() if k not in DERIVED_FIELDS and k != "_path"}
    with tempfile.TemporaryDirectory(prefix="vaebench-mlflow-") as tmp:
        path = Path(tmp) / f"{_stem(record)}.json"
        path.write_text(json.dumps(stored, indent=1, sort_keys=True, default=str))
        client.log_artifact(run_id, str(path), artifact_path="cell")


def log_folder(
    run_dir: str | os.PathLike, uri: str | None = None, experiment: str | None = None
) -> dict[str, int]:
    """Log every ok or failed cell of a results folder (:func:`log_cell`); the experiment
    defaults to ``MLFLOW_EXPERIMENT_NAME``, else the folder's name. Returns how many runs were
    ``created``, ``updated`` and ``unchanged``. Raises :class:`ConfigError` without a URI or
    MLflow, :class:`vaebench.errors.ResultsError` for a folder that is not a results folder."""
    from vaebench.results import iter_cells

    experiment = (
        experiment
        or os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip()
        or Path(run_dir).resolve().name
    )
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for record in iter_cells(run_dir):
        if record.get("status") in ("ok", "failed"):
            counts[log_cell(record, uri, experiment)[1]] += 1
    return counts


# ----------------------------------------------------------------------------- the hooks


def _configure_tracker(arg: str | None, out: str) -> None:
    """``--track mlflow=URI`` (``--mlflow URI``); ``--track mlflow`` alone: :data:`DEFAULT_URI`;
    not asked for (``None``): ``MLFLOW_TRACKING_URI`` decides, the experiment is still named
    after ``out``."""
    configure(DEFAULT_URI if arg == "" else arg, out)


@hookimpl
def vaebench_trackers() -> list[Tracker]:
    """The ``mlflow`` tracker: ``--track mlflow=URI`` (alias ``--mlflow URI``)."""
    return [Tracker("mlflow", _configure_tracker, "every cell as an MLflow run (vaebench[mlflow])")]


@hookimpl
def vaebench_cell_finished(cell: Any, record: dict[str, Any]) -> None:
    """Log the cell that was just written, when a tracking URI is set. Never raises: a store
    that fails is reported once (see the module docstring)."""
    uri = tracking_uri()
    if uri is None or uri in _failed or record.get("status") not in ("ok", "failed"):
        return
    try:
        log_cell(record, uri)
    except Exception as exc:  # noqa: BLE001 - tracking must never cost a stored cell
        _failed[uri] = (
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        )
        log.debug("MLflow tracking failed", exc_info=True)
        log.warning(
            "MLflow tracking to %s failed (%s); the results folder is complete as always, and "
            "no further cells are sent to MLflow by this process. Log them later with: "
            "vaebench mlflow RUN_DIR --mlflow %s",
            uri,
            _failed[uri],
            uri,
        )


@hookimpl
def vaebench_commands(cli: Any) -> None:
    """``vaebench mlflow RUN_DIR``: log a stored results folder to MLflow."""
    import click

    @cli.command(name="mlflow")
    @click.argument("run_dir", metavar="RUN_DIR")
    @click.option(
        "--mlflow",
        "uri",
        metavar="URI",
        is_flag=False,
        flag_value=DEFAULT_URI,
        help=f"Tracking URI [default: MLFLOW_TRACKING_URI, else {DEFAULT_URI}].",
    )
    @click.option(
        "--experiment",
        metavar="NAME",
        help="MLflow experiment [default: MLFLOW_EXPERIMENT_NAME, else the folder's name].",
    )
    def mlflow_command(run_dir: str, uri: str | None, experiment: str | None) -> None:
        """Log every cell of RUN_DIR as an MLflow run (pip install 'vaebench[mlflow]').

        Cells already logged are brought up to date, never duplicated: use it for a folder
        trained without --mlflow, or after the tracking server was down.
        """
        from vaebench.errors import ResultsError

        class Bad(click.ClickException):
            exit_code = 2  # bad input, like every vaebench command

        try:
            if uri is None and tracking_uri() is None:
                uri = DEFAULT_URI  # a backend MLflow 3 reads (issue 19.7)
            configure(uri, run_dir)
            counts = log_folder(run_dir, tracking_uri(), experiment)
        except (ConfigError, ResultsError) as exc:
            raise Bad(str(exc)) from None
        name = experiment or experiment_name()
        click.echo(
            f"{counts['created']} run(s) created, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged in experiment {name!r} of {tracking_uri()}",
            err=True,
        )
