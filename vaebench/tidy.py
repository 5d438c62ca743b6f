"""Stored results as a tidy pandas frame -- the data API users build their own analysis on.

>>> import vaebench
>>> df = vaebench.load_results("results/run-a", "results/run-b")   # doctest: +SKIP
>>> df[df.metric == "mse"].groupby(["dataset", "model"])["value"].agg(["mean", "std", "count"])

One row per (run, model, dataset, seed, metric). Everything a table needs travels with each row:
the value, its unit, its direction and its table precision, as the metric declared them when the
cell ran -- so no plugin has to be installed to analyse results.

Several run folders combine into one frame. When the same model was run on the same dataset with
different settings (e.g. ``epochs=5`` in one run, ``epochs=30`` in another), the ``variant`` column
tells the settings apart (``"ae (epochs=5)"``); otherwise ``variant`` equals ``model``. Reports
aggregate by ``variant``, so different settings are never averaged together.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from vaebench.index import IDENTITY_COLUMNS, update_index
from vaebench.index import enabled as index_enabled
from vaebench.record import failure_reason, value_rows
from vaebench.results import load_cells, run_name

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COLUMNS",
    "load_results",
    "load_records",
    "tidy_frame",
    "variant_labels",
    "direction",
    "format_setting",
    "sweep_values",
]

#: Columns of :func:`load_results` (``error`` is added with ``include_failed=True``).
COLUMNS = [
    "run", "model", "variant", "dataset", "seed", "config_hash", "metric", "value", "unit",
    "higher_is_better", "direction", "decimals", "source", "group", "order",
]  # fmt: skip

#: Config entries that do not make two cells different set-ups of one model (``sweep`` repeats
#: values that ``params`` holds).
_NOT_SETUP = ("seed", "schema", "model", "dataset", "sweep")


def direction(higher_is_better: bool | None) -> str:
    """``"higher"``, ``"lower"`` or ``"none"`` (a descriptive quantity such as a parameter count)."""
    if higher_is_better is None:
        return "none"
    return "higher" if higher_is_better else "lower"


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"params": {"epochs": 5}}`` -> ``{"params.epochs": 5}`` (lists stay values)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k in sorted(obj):
            out.update(_flatten(obj[k], f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def _setup(cell: dict[str, Any]) -> dict[str, Any]:
    """The cell's configuration without what varies inside one experiment (seed) or names it."""
    config = cell.get("config") or {}
    return _flatten({k: v for k, v in config.items() if k not in _NOT_SETUP})


def _setup_key(setup: dict[str, Any]) -> str:
    text = json.dumps(setup, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _short_key(key: str) -> str:
    """``params.epochs`` -> ``epochs``; other sections keep their prefix (``eval.n_pairs``)."""
    return key[len("params.") :] if key.startswith("params.") else key


def format_setting(value: Any) -> str:
    """A setting's value as a label shows it: floats in their shortest form with integral
    floats as integers (``4.0`` -> ``4``, ``0.5`` -> ``0.5``, ``1e-05`` stays), lists as
    ``[a,b]``, everything else with ``str``."""
    if isinstance(value, list):
        return "[" + ",".join(format_setting(v) for v in value) + "]"
    if (
        isinstance(value, float)
        and math.isfinite(value)
        and value.is_integer()
        and abs(value) < 1e15
    ):
        return str(int(value))
    return str(value)


def _fmt(value: Any) -> str:
    """The raw form of a setting (``4.0`` stays ``4.0``), used when :func:`format_setting`
    would make two set-ups look alike."""
    if isinstance(value, list):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    return str(value)


def _sweep_keys(cells: Sequence[dict[str, Any]]) -> dict[str, str]:
    """``{flattened setup key: sweep label}`` for every parameter some cell swept
    (``config.sweep`` = ``{"vae.beta": 4.0}`` -> ``{"params.beta": "vae.beta"}``), sorted by
    the flattened key."""
    out: dict[str, str] = {}
    for cell in cells:
        sweep = (cell.get("config") or {}).get("sweep") or {}
        if isinstance(sweep, dict):
            for label in sweep:
                out.setdefault(f"params.{str(label).rsplit('.', 1)[-1]}", str(label))
    return dict(sorted(out.items()))


def variant_labels(cells: Iterable[dict[str, Any]]) -> dict[str, str]:
    """``config_hash -> label`` for every cell: the model name, or -- when that model ran on some
    dataset with more than one set-up -- the name plus the settings that differ, e.g.
    ``"vae (beta=4)"``. The settings shown are those that differ between the model's set-ups on
    any one dataset, and they are shown on every dataset the model ran on (where they apply),
    so one set-up has one label throughout a report, even on a dataset where it ran alone.
    Swept parameters (``config.sweep``) come first, then the other differing settings, each
    part alphabetically by name; values are written by :func:`format_setting` (the raw form
    where that would make two set-ups look alike). Labels depend only on the cells, not on
    their order."""
    cells = list(cells)
    swept = _sweep_keys(cells)
    groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    members: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for cell in cells:
        key = (cell["model"], cell["dataset"])
        setup = _setup(cell)
        skey = _setup_key(setup)
        groups.setdefault(key, {})[skey] = setup
        members.setdefault(key, []).append((cell["config_hash"], skey))
    # per model: the settings that tell its set-ups apart on some dataset
    shown: dict[str, set[str]] = {}
    for (model, _), setups in groups.items():
        keys = shown.setdefault(model, set())
        if len(setups) > 1:
            all_keys = set().union(*(s.keys() for s in setups.values()))
            keys.update(
                k for k in all_keys if len({_fmt(s.get(k, "—")) for s in setups.values()}) > 1
            )

    def names_of(model: str, setups: dict[str, dict[str, Any]], fmt: Any) -> dict[str, str]:
        present = set().union(*(s.keys() for s in setups.values()))
        keys = sorted(k for k in shown[model] if k in present)
        keys = [k for k in swept if k in keys] + [k for k in keys if k not in swept]
        if not keys:
            return {skey: model for skey in setups}
        names = {}
        for skey, s in setups.items():
            parts = [f"{_short_key(k)}={fmt(s.get(k, '—'))}" for k in keys]
            names[skey] = f"{model} ({', '.join(parts)})"
        return names

    def unique(names: dict[str, str]) -> bool:
        return len(set(names.values())) == len(names)

    labels: dict[str, str] = {}
    for model in shown:
        model_groups = {k: v for k, v in groups.items() if k[0] == model}
        # one way of writing values for the model on every dataset: the short form unless it
        # makes two set-ups of one dataset look alike
        fmt = format_setting
        if not all(unique(names_of(model, g, format_setting)) for g in model_groups.values()):
            fmt = _fmt
        for key, setups in model_groups.items():
            names = names_of(model, setups, fmt)
            if not unique(names):
                names = {skey: f"{name} [{skey[:6]}]" for skey, name in names.items()}
            for config_hash, skey in members[key]:
                labels[config_hash] = names[skey]
    return labels


def sweep_values(cell: dict[str, Any]) -> dict[str, Any]:
    """The swept values of a cell as ``{short key: value}`` (``{"beta": 4.0}``) from
    ``config.sweep`` (empty when the cell was not part of a sweep)."""
    sweep = (cell.get("config") or {}).get("sweep") or {}
    if not isinstance(sweep, dict):
        return {}
    return {str(k).rsplit(".", 1)[-1]: v for k, v in sweep.items()}


def load_records(run_dirs: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """Every cell record of the given run folders, in folder then file-name order, each tagged
    with ``run`` (the folder's name); see :func:`vaebench.results.load_cells`.

    Cells of the same model, dataset and seed that ran with different settings are kept (they
    become separate variants, see :func:`variant_labels`), and so is the same cell stored in two
    folders (the aggregation counts it once); corrupt or foreign files raise
    :class:`~vaebench.results.ResultsError`.
    """
    return load_cells(*run_dirs)


def tidy_frame(
    cells: Sequence[dict[str, Any]],
    include_failed: bool = False,
    labels: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The tidy frame of :func:`load_results` built from already loaded cell records (each with
    a ``run`` entry, as :func:`vaebench.results.load_cells` returns them); ``labels``: their
    :func:`variant_labels`, where the caller has them already."""
    import pandas as pd

    labels = variant_labels(cells) if labels is None else labels
    rows = []
    for cell in cells:
        base = {
            "run": cell.get("run", ""),
            "model": cell["model"],
            "variant": labels[cell["config_hash"]],
            "dataset": cell["dataset"],
            "seed": int(cell["seed"]),
            "config_hash": cell["config_hash"],
        }
        if cell["status"] != "ok":
            if include_failed:
                what = "skipped" if cell["status"] == "skipped" else "failed"
                rows.append(
                    {**base, "metric": what, "value": math.nan, "error": failure_reason(cell)}
                )
            continue
        rows.extend({**base, **v, "direction": direction(v["higher_is_better"])}
                    for v in value_rows(cell))  # fmt: skip
    columns = COLUMNS + (["error"] if include_failed else [])
    return finish_frame(pd.DataFrame(rows, columns=columns))


def finish_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Column types and row order of a tidy frame (shared by :func:`tidy_frame` and the
    columnar index, :mod:`vaebench.index`)."""
    frame["seed"] = frame["seed"].astype("int64")
    frame["value"] = frame["value"].astype("float64")
    frame["higher_is_better"] = frame["higher_is_better"].astype(object)
    frame["order"] = frame["order"].astype("Int64")
    return frame.sort_values(
        ["run", "dataset", "model", "variant", "seed", "metric"], kind="stable"
    ).reset_index(drop=True)


def load_results(
    *run_dirs: str | os.PathLike | Sequence[str | os.PathLike],
    include_failed: bool = False,
    models: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Stored results as a tidy :class:`pandas.DataFrame`.

    ``run_dirs`` are one or more run folders (or one list of them); their cells are combined.
    One row per (run, model, dataset, seed, metric) with columns:

    - ``run`` -- the run folder's name; ``model``, ``dataset``, ``seed``, ``config_hash``;
    - ``variant`` -- ``model``, or the model plus its distinguishing settings when the same model
      ran on the same dataset with different settings (see :func:`variant_labels`);
    - ``metric``, ``value`` (float; NaN where the metric could not be computed; a value or
      metric that does not apply to the model has no row: its reason is in the cell record);
    - ``unit``, ``higher_is_better`` (True / False / None), ``direction`` (``"higher"``,
      ``"lower"`` or ``"none"`` for descriptive values such as ``n_params``), ``decimals`` (table
      precision), ``source`` (the metric plugin that produced the value), ``group`` (one of
      :data:`vaebench.record.GROUPS`, see :func:`vaebench.record.metric_group`) and ``order``
      (the value's position in its metric's declaration when stored, else missing).

    ``models``, ``datasets`` and ``metrics`` keep only those names. With ``include_failed`` each
    failed cell adds one row with ``metric="failed"`` (a cell skipped because the model does
    not support the dataset: ``"skipped"``), NaN value and the reason in ``error``.
    Rows are sorted by run, dataset, model, variant, seed and metric.
    """
    dirs: list[str | os.PathLike] = []
    for d in run_dirs:
        if isinstance(d, (list, tuple)):
            dirs.extend(d)
        else:
            dirs.append(d)  # type: ignore[arg-type]
    if dirs and index_enabled():
        frame = _indexed_frame(dirs, include_failed, models, datasets)
    else:
        cells = load_records(dirs)
        if models is not None:
            cells = [c for c in cells if c["model"] in set(models)]
        if datasets is not None:
            cells = [c for c in cells if c["dataset"] in set(datasets)]
        frame = tidy_frame(cells, include_failed=include_failed)
    if metrics is not None:
        keep = set(metrics) | ({"failed", "skipped"} if include_failed else set())
        frame = frame[frame["metric"].isin(keep)].reset_index(drop=True)
    return frame


def _indexed_frame(
    run_dirs: Sequence[str | os.PathLike],
    include_failed: bool = False,
    models: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The frame of :func:`load_results` (before its filters) from the columnar indexes of
    ``run_dirs`` (:mod:`vaebench.index`), updated first (:func:`vaebench.index.update_index`):
    the same rows, columns, types and order as building it from the cell records;
    ``models``/``datasets`` keep only those cells (before the variant labels are made, as
    there)."""
    import pandas as pd

    cell_frames, value_frames = [], []
    for i, d in enumerate(run_dirs):  # folders told apart by position: two may share a name
        cells, values = update_index(d)
        cf = cells.drop_columns(IDENTITY_COLUMNS).to_pandas()
        cf.insert(0, "run", run_name(d))
        cf["_run"] = i
        cf["_pos"] = range(len(cf))
        cell_frames.append(cf)
        value_frames.append((i, values.to_pandas()))
    cf = pd.concat(cell_frames, ignore_index=True)
    if models is not None:
        cf = cf[cf["model"].isin(set(models))]
    if datasets is not None:
        cf = cf[cf["dataset"].isin(set(datasets))]
    cf = cf.reset_index(drop=True)
    # variant labels from one representative per (model, dataset, configuration without seed)
    configs = cf["config"].map(json.loads)
    setup = [json.dumps({k: v for k, v in c.items() if k != "seed"}, sort_keys=True, default=str)
             for c in configs]  # fmt: skip
    cf["setupkey"] = setup
    reps = cf.drop_duplicates(["model", "dataset", "setupkey"])
    labels = variant_labels(
        {"model": r.model, "dataset": r.dataset, "config_hash": r.config_hash,
         "config": configs[r.Index]}
        for r in reps.itertuples()
    )  # fmt: skip
    rep_label = {(r.model, r.dataset, r.setupkey): labels[r.config_hash]
                 for r in reps.itertuples()}  # fmt: skip
    cf["variant"] = [rep_label[k] for k in zip(cf["model"], cf["dataset"], cf["setupkey"],
                                                strict=True)]  # fmt: skip
    base_cols = ["run", "model", "variant", "dataset", "seed", "config_hash"]
    parts = []
    for i, vf in value_frames:
        sub = cf[cf["_run"] == i]
        merged = vf.merge(sub[["file", "_run", "_pos", *base_cols]], on="file", how="inner",
                          sort=False)  # fmt: skip
        merged["direction"] = merged["higher_is_better"].map(direction)
        parts.append(merged)
    if include_failed:
        bad = cf[cf["status"] != "ok"].copy()
        bad["metric"] = bad["status"].where(bad["status"] == "skipped", "failed")
        bad["value"] = math.nan
        parts.append(bad[["file", "_run", "_pos", "metric", "value", "error", *base_cols]])
    columns = COLUMNS + (["error"] if include_failed else [])
    parts = [p for p in parts if len(p)]
    if not parts:
        return tidy_frame([], include_failed=include_failed)
    rows = pd.concat(parts, ignore_index=True)
    # the order of building from the records: folders as given, cells by file name (a failed
    # cell's row where its values would be), values by name; then tidy_frame's stable sort
    rows = rows.sort_values(["_run", "_pos", "metric"], kind="stable")
    frame = rows.reindex(columns=columns).reset_index(drop=True)
    return finish_frame(frame)
