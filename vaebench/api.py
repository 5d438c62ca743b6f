"""The Python API: the command line's verbs as functions (re-exported by :mod:`vaebench`).

>>> import vaebench as vb
>>> vb.list_models("*ae")                                   # doctest: +SKIP
['ae', 'dae', 'vae']
>>> m = vb.create_model("vae", (1, 28, 28)); m.n_params     # doctest: +SKIP
>>> summary = vb.run(models="pca,vae", datasets="digits", seeds=[0, 1], out="r", epochs=5)
>>> vb.evaluate("r", metrics="elbo,active_units")           # doctest: +SKIP
>>> model = vb.load_model("r", summary.ran[0].stem)         # doctest: +SKIP
>>> df = vb.load_results("r")                               # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from vaebench.dataset import Dataset
    from vaebench.model import Model
    from vaebench.plugins import Registry
    from vaebench.summary import RunSummary

__all__ = [
    "list_models",
    "list_datasets",
    "list_metrics",
    "create_model",
    "load_dataset",
    "load_model",
    "run",
    "evaluate",
]


def _registry(registry: Registry | None) -> Registry:
    from vaebench.plugins import get_registry

    return registry if registry is not None else get_registry()


def _names(table: dict[str, Any], pattern: str | None) -> list[str]:
    names = sorted(table)
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def list_models(pattern: str | None = None, *, registry: Registry | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` filters them shell-style (``"*vae*"``)."""
    return _names(_registry(registry).models, pattern)


def list_datasets(pattern: str | None = None, *, registry: Registry | None = None) -> list[str]:
    """Registered dataset names, sorted; ``pattern`` filters them shell-style."""
    return _names(_registry(registry).datasets, pattern)


def list_metrics(pattern: str | None = None, *, registry: Registry | None = None) -> list[str]:
    """Registered metric names, sorted; ``pattern`` filters them shell-style."""
    return _names(_registry(registry).metrics, pattern)


def create_model(
    name: str,
    input_shape: Sequence[int],
    device: str | torch.device = "cpu",
    *,
    registry: Registry | None = None,
    **params: Any,
) -> Model:
    """An untrained model ``name`` for images of shape ``input_shape`` ``(C, H, W)``.

    ``params`` override its hyperparameters (``vaebench list models`` shows them). Raises
    :class:`vaebench.plugins.UnknownNameError` (``unknown model 'x'; valid: ...``) for an
    unknown name and :class:`vaebench.errors.ConfigError` for an unknown or invalid parameter
    (both are :class:`vaebench.errors.VaebenchError`).
    """
    import torch

    from vaebench.errors import ConfigError

    spec = _registry(registry).model(name).spec
    try:
        return spec.create(tuple(input_shape), device=torch.device(device), **params)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model {name!r}: {exc}") from exc


def load_dataset(
    name: str,
    subset: int | None = None,
    data_dir: str | os.PathLike | None = None,
    *,
    registry: Registry | None = None,
    **options: Any,
) -> Dataset:
    """A dataset as ``vaebench run`` loads it: a registered name (``"fashion-mnist"``) or the
    path of a user ``.npz`` file or image folder, with ``options`` (``binarize="fixed"``) and at
    most ``subset`` images per split (the same images a run with ``--subset`` uses). Raises
    :class:`vaebench.errors.DatasetError` naming the dataset when it cannot be loaded."""
    from vaebench.cells import load_dataset as _load

    return _load(_registry(registry), name, options, None if data_dir is None else str(data_dir),
                 subset)  # fmt: skip


def load_model(
    results_dir: str | os.PathLike,
    cell: str | os.PathLike | dict[str, Any],
    device: str | torch.device = "cpu",
    *,
    registry: Registry | None = None,
) -> Model:
    """Rebuild a trained model from a results folder: its stored hyperparameters and weights
    (``states/STEM.pt``, loaded with ``weights_only=True``), ready for inference.

    ``cell``: the cell's file stem (``"ae--digits--seed0--1a2b3c4d5e6f"``, as in
    ``RunSummary.ran[i].stem`` and in ``cells/``), the path of its JSON file, or its record (a
    dict from :func:`vaebench.results.read_cell`). Raises :class:`vaebench.errors.ResultsError`
    when the cell or its state is missing or the cell did not finish.
    """
    from vaebench.errors import ResultsError
    from vaebench.results import read_cell

    folder = Path(results_dir)
    if isinstance(cell, dict):
        record = cell
    else:
        path = Path(cell)
        if path.suffix != ".json":
            path = folder / "cells" / f"{path.name}.json"
        if not path.is_file():
            raise ResultsError(f"no cell {str(cell)!r} in {folder} (looked for {path})")
        record = read_cell(path)
    stem = Path(record.get("_path", "")).stem or None
    if stem is None:
        from vaebench.results import cell_stem

        stem = cell_stem(record["model"], record["dataset"], record["seed"], record["config_hash"])
    if record.get("status") != "ok":
        raise ResultsError(f"cell {stem} did not finish (status {record.get('status')!r})")
    state = folder / "states" / f"{stem}.pt"
    if not state.is_file():
        raise ResultsError(f"no stored state for cell {stem} (looked for {state})")
    params = (record.get("config") or {}).get("params") or {}
    shape = (record.get("dataset_info") or {}).get("shape")
    if not shape:
        raise ResultsError(f"cell {stem} does not record its image shape")
    from vaebench.task import check_state

    check_state(state.read_bytes(), record, stem)  # the weights this cell was trained to
    model = create_model(record["model"], shape, device, registry=registry, **params)
    model.load(state)
    return model


def run(
    models: str | Sequence[str] | None = None,
    datasets: str | Sequence[str] | None = None,
    seeds: str | int | Sequence[int] | None = None,
    out: str | os.PathLike = "results/vaebench-run",
    *,
    sets: Sequence[str] = (),
    sweeps: Sequence[str] = (),
    metrics: str | Sequence[str] | None = None,
    force: bool = False,
    progress: bool | None = False,
    mlflow: str | None = None,
    registry: Registry | None = None,
    **options: Any,
) -> RunSummary:
    """Run a grid, as ``vaebench run`` does, and return its :class:`vaebench.summary.RunSummary`.

    ``options`` take every other ``run`` option by its Python name: ``epochs``, ``latent_dim``,
    ``batch_size``, ``lr``, ``arch``, ``config_file``, ``device``, ``data_dir``, ``subset``,
    ``val_fraction``, ``workers``, ``threads``, ``executor``, ``scheduler``, ``shard``.
    ``mlflow``: a tracking URI (as ``--mlflow``; the experiment is named after ``out``). Raises
    :class:`vaebench.errors.ConfigError` for bad input before anything trains.
    """
    from vaebench.config import RunConfig
    from vaebench.grid import run as run_grid
    from vaebench.tracking.mlflow import configure

    reg = _registry(registry)
    cfg = RunConfig.build(reg, models=models, datasets=datasets, seeds=seeds, sets=sets,
                          sweeps=sweeps, metrics=metrics, mlflow=mlflow, **options)  # fmt: skip
    configure(cfg.mlflow, out)
    return run_grid(cfg, out, registry=reg, force=force, show_progress=progress)


def evaluate(
    results_dir: str | os.PathLike,
    metrics: str | Sequence[str] | None = None,
    *,
    sets: Sequence[str] = (),
    force: bool = False,
    progress: bool | None = False,
    mlflow: str | None = None,
    registry: Registry | None = None,
    **execution: Any,
) -> RunSummary:
    """Evaluate the stored models of ``results_dir`` without training, as ``vaebench
    evaluate`` does (``sets``: ``eval.KEY=VALUE`` options; ``execution``: ``device``,
    ``workers``, ``threads``, ``executor``, ``scheduler``, ``data_dir``; ``mlflow``: a
    tracking URI whose runs of these cells are updated)."""
    from vaebench.config import RunConfig
    from vaebench.grid import evaluate as evaluate_grid
    from vaebench.results import iter_cells, latest_manifest_config
    from vaebench.tracking.mlflow import configure

    configure(mlflow, results_dir)

    reg = _registry(registry)
    cells = list(iter_cells(results_dir))
    cfg = RunConfig.for_evaluation(
        reg,
        models=list(dict.fromkeys(c["model"] for c in cells)),
        datasets=list(dict.fromkeys(c["dataset"] for c in cells)),
        stored=latest_manifest_config(results_dir),
        metrics=metrics,
        sets=sets,
        **execution,
    )
    return evaluate_grid(results_dir, cfg, registry=reg, force=force, show_progress=progress)
