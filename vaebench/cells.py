"""Cell identity and planning: what a grid is made of, before anything runs.

A :class:`Cell` is one (model, hyperparameters, dataset, seed) combination. Its *training key*
(:func:`training_key`, the ``config_hash`` of every record) hashes only what changes the trained
weights (:func:`training_config`: the resolved hyperparameters, the dataset, its options and
content fingerprint, the split, the seed and :data:`TRAINING_VERSION`); each evaluation is keyed
by its metric's name, version and options (:func:`vaebench.evaluation.evaluation_key`). See
``docs/architecture.md``.

:func:`plan` lists a :class:`~vaebench.config.RunConfig`'s cells in run order,
:func:`shard_cells` splits them into disjoint shards by key, :func:`check_models` builds each
distinct model once on the ``meta`` device before any training, and :class:`DatasetRef` says how
a worker loads (and checks) a cell's dataset. Nothing here trains, evaluates or writes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vaebench.config import ConfigError, RunConfig
from vaebench.errors import DatasetError
from vaebench.hookspecs import CellInfo
from vaebench.record import SCHEMA
from vaebench.results import cell_stem

if TYPE_CHECKING:
    from vaebench.dataset import Dataset
    from vaebench.model import ModelSpec
    from vaebench.plugins import Registry

log = logging.getLogger("vaebench.cells")

__all__ = [
    "MAX_PARAMS",
    "TRAINING_VERSION",
    "Cell",
    "DatasetRef",
    "cell_label",
    "check_models",
    "config_hash",
    "load_dataset",
    "plan",
    "shard_cells",
    "training_config",
    "training_key",
]

#: A model with more parameters than this is refused before the grid starts (it could only fail
#: every cell by running out of memory).
MAX_PARAMS = 2_000_000_000

#: Version of what vaebench does to train a model (the shared loop, seeding, batching, data
#: splits). Part of every training key: bump it when a change alters trained weights.
TRAINING_VERSION = 3  # 3: fused Adam/AdamW kernels


def config_hash(obj: Mapping[str, Any]) -> str:
    """Stable hash of a JSON-able config (sorted keys); 12 hex digits."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclasses.dataclass
class Cell:
    """One (model, hyperparameters, dataset, seed) combination of a grid.

    ``config`` is its training identity (:func:`training_config`) and ``hash`` the training
    key; ``sweep`` maps each swept parameter's label (``"vae.beta"``, ``"latent_dim"``) to this
    cell's value.
    """

    model: str
    dataset: str
    seed: int
    config: dict[str, Any]
    hash: str
    sweep: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of_record(cls, record: Mapping[str, Any]) -> Cell:
        """The cell a stored record belongs to (its ``config``, training key and sweep)."""
        config = record.get("config") or {}
        return cls(
            record["model"],
            record["dataset"],
            record["seed"],
            config,
            record["config_hash"],
            dict(config.get("sweep") or {}),
        )

    @property
    def key(self) -> str:
        return self.hash

    @property
    def params(self) -> dict[str, Any]:
        return self.config.get("params", {})

    @functools.cached_property
    def stem(self) -> str:
        """The cell's file name without extension, ``MODEL--DATASET--seedS--KEY`` (computed
        once: every manifest write lists every cell so far)."""
        return cell_stem(self.model, self.dataset, self.seed, self.hash)

    @property
    def label(self) -> str:
        """``"vae (beta=4) / digits / seed 0"``, printable whatever the names hold (control
        characters of a path or a plugin's name are shown escaped)."""
        return cell_label(self.model, self.dataset, self.seed, self.sweep)

    def identity(self) -> dict[str, Any]:
        """The fields that open every record of this cell, in their stored order: ``schema``,
        ``model``, ``dataset``, ``seed``, ``config_hash`` (the training key) and ``config``."""
        return {
            "schema": SCHEMA,
            "model": self.model,
            "dataset": self.dataset,
            "seed": self.seed,
            "config_hash": self.hash,
            "config": self.config,
        }

    def info(self) -> CellInfo:
        """The plain :class:`~vaebench.hookspecs.CellInfo` the cell hooks receive."""
        return CellInfo(
            self.model, self.dataset, self.seed, dict(self.params), dict(self.sweep),
            self.key, self.stem, self.label,
        )  # fmt: skip


def cell_label(model: str, dataset: str, seed: int, sweep: Mapping[str, Any]) -> str:
    """``"vae (beta=4) / digits / seed 0"``: how logs, summaries and trackers name a cell."""
    from vaebench.plugins import printable

    swept = ", ".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in sweep.items())
    name = f"{model} ({swept})" if swept else model
    return printable(f"{name} / {dataset} / seed {seed}")


def _short(value: Any) -> str:
    """A swept value as labels show it: ``4.0`` -> ``4``, ``0.001`` -> ``0.001``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


# ----------------------------------------------------------------------------- datasets


@dataclasses.dataclass(frozen=True)
class DatasetRef:
    """How to load a dataset anywhere (a worker reloads it and checks the fingerprint)."""

    name: str
    options: tuple[tuple[str, Any], ...]
    data_dir: str | None
    subset: int | None
    fingerprint: str = ""

    @classmethod
    def of(
        cls, name: str, options: Mapping[str, Any], data_dir: str | None, subset: int | None
    ) -> DatasetRef:
        return cls(name, tuple(sorted(options.items())), data_dir, subset)

    @classmethod
    def of_cell(cls, cell: Cell, data_dir: str | None) -> DatasetRef:
        """How to load the dataset a stored cell was trained on (its options, subset and
        content fingerprint), from ``data_dir``."""
        opts = cell.config.get("dataset_options") or {}
        return cls(
            cell.dataset,
            tuple(sorted(opts.items())),
            data_dir,
            cell.config.get("subset"),
            cell.config.get("dataset_fingerprint", ""),
        )


_DATASETS: dict[tuple[Any, ...], Dataset] = {}


def load_dataset(
    registry: Registry,
    name: str,
    options: Mapping[str, Any],
    data_dir: str | None,
    subset: int | None,
) -> Dataset:
    """Load a registered dataset (or a user file/folder path) and apply ``subset``.

    Any failure raises :class:`vaebench.errors.DatasetError` naming the dataset (a loader's own
    exception is chained as its cause).
    """
    try:
        spec = registry.dataset_or_path(name).spec
        ds = spec.load(data_dir=data_dir, **options)
        if subset is not None:
            ds = ds.subset(subset)
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - a loader's bug or a bad file: one clear line
        log.debug("loading dataset %s failed", name, exc_info=True)
        raise DatasetError(f"cannot load dataset {name!r}: {type(exc).__name__}: {exc}") from exc
    return ds


def _cache_key(registry: Registry, ref: DatasetRef) -> tuple[Any, ...]:
    return (id(registry), ref.name, ref.options, ref.data_dir, ref.subset)


def remember_dataset(registry: Registry, ref: DatasetRef, ds: Dataset) -> None:
    """Keep ``ds`` (loaded by the grid) as this process's dataset of ``ref``: in-process tasks
    reuse it instead of loading it again."""
    _DATASETS[_cache_key(registry, ref)] = ds


def dataset_for_ref(registry: Registry, ref: DatasetRef) -> Dataset:
    """The dataset of ``ref``, loaded once per process (one dataset kept at a time: datasets can
    be large). Raises :class:`~vaebench.errors.DatasetError` when it cannot be loaded or its
    content fingerprint is not the one the cell was planned on."""
    key = _cache_key(registry, ref)
    ds = _DATASETS.get(key)
    if ds is None:
        ds = load_dataset(registry, ref.name, dict(ref.options), ref.data_dir, ref.subset)
        _DATASETS.clear()  # keep one dataset per process: datasets can be large
        _DATASETS[key] = ds
    if ref.fingerprint and ds.fingerprint() != ref.fingerprint:
        raise DatasetError(
            f"dataset {ref.name!r} loaded here has content {ds.fingerprint()}, but the cell was "
            f"planned (or trained) on {ref.fingerprint}: the data files differ"
        )
    return ds


# ----------------------------------------------------------------------------- planning


def training_config(
    cfg: RunConfig,
    registry: Registry,
    model: str,
    dataset: str,
    ds: Dataset,
    seed: int,
    sweep: Mapping[str, Any],
) -> dict[str, Any]:
    """The training identity of a cell: everything that changes the trained weights."""
    return {
        "schema": SCHEMA,
        "training_version": TRAINING_VERSION,
        "model": model,
        "params": cfg.resolved_params(registry, model, sweep),
        "dataset": dataset,
        # the options the user set; the content fingerprint covers what the defaults produce,
        # so a new dataset option with a default does not retrain every stored cell
        "dataset_options": dict(cfg.dataset_options.get(dataset, {})),
        "dataset_fingerprint": ds.fingerprint(),
        "subset": cfg.subset,
        "val_fraction": cfg.val_fraction,
        "seed": seed,
        "sweep": dict(sweep),
    }


def training_key(config: Mapping[str, Any]) -> str:
    """The training key of a cell's config: its hash without ``sweep``, which only repeats
    values ``params`` holds (a swept and a plainly set latent size of 5 train the same
    weights: one cell)."""
    return config_hash({k: v for k, v in config.items() if k != "sweep"})


def plan(
    cfg: RunConfig, registry: Registry, datasets: Mapping[str, Dataset] | None = None
) -> list[Cell]:
    """The grid's cells in run order (dataset-major, then model, sweep values, seed).
    ``datasets`` maps each dataset name of ``cfg`` to its loaded :class:`Dataset` (loaded here
    when not given: the content fingerprint is part of every key)."""
    if datasets is None:
        datasets = {
            name: load_dataset(
                registry, name, cfg.dataset_options.get(name, {}), cfg.data_dir, cfg.subset
            )  # fmt: skip
            for name in cfg.datasets
        }
    cells = []
    for dataset in cfg.datasets:
        ds = datasets[dataset]
        for model in cfg.models:
            for sweep in cfg.variants(registry, model):
                for seed in cfg.seeds:
                    config = training_config(cfg, registry, model, dataset, ds, seed, sweep)
                    cells.append(Cell(model, dataset, seed, config, training_key(config), sweep))
    return cells


def shard_cells(cells: Sequence[Cell], k: int, n: int) -> list[Cell]:
    """The cells of shard ``k`` of ``n`` (1-based): those whose training key, read as a number,
    is ``k - 1`` modulo ``n``. Disjoint, together the whole grid, and stable when the grid
    grows (a cell's shard depends on its key alone)."""
    return [c for c in cells if int(c.hash, 16) % n == k - 1]


def check_models(
    registry: Registry, cells: Sequence[Cell], datasets: Mapping[str, Dataset]
) -> dict[str, str]:
    """Build every distinct (model, params, image shape) once on the ``meta`` device, before
    any training: invalid hyperparameters raise :class:`ConfigError` naming the model and the
    problem. Returns ``{cell stem: reason}`` for cells whose model does not support the dataset
    (its tags)."""
    import torch

    unsupported: dict[str, str] = {}
    seen: dict[tuple[Any, ...], str | None] = {}
    for cell in cells:
        ds = datasets[cell.dataset]
        key = (cell.model, config_hash(cell.params), tuple(ds.shape), ds.y_train is not None)
        if key not in seen:
            spec = registry.model(cell.model).spec
            try:
                model = spec.create(ds.shape, device=torch.device("meta"), **cell.params)
                tags = model.tags
                n_params = int(model.n_params)
            except (ValueError, TypeError, NotImplementedError) as exc:
                raise ConfigError(
                    f"model {cell.model!r} with {_params_text(cell, spec)}: {exc}"
                ) from None
            except Exception as exc:  # noqa: BLE001 - a factory that cannot build on meta
                log.debug("model %s not checked on the meta device: %s", cell.model, exc)
                seen[key] = None
                continue
            if n_params > MAX_PARAMS:
                raise ConfigError(
                    f"model {cell.model!r} with {_params_text(cell, spec)} has {n_params:,} "
                    f"parameters, more than the limit of {MAX_PARAMS:,} (check hidden sizes and "
                    "latent_dim)"
                )
            seen[key] = tags.unsupported(ds.shape, has_labels=ds.y_train is not None)
        if seen[key]:
            unsupported[cell.stem] = f"model {cell.model!r} {seen[key]}"
    return unsupported


def _params_text(cell: Cell, spec: ModelSpec) -> str:
    """The hyperparameters of ``cell`` that differ from the model's defaults (or a phrase)."""
    defaults = spec.defaults()
    changed = {k: v for k, v in cell.params.items() if defaults.get(k, object()) != v}
    if not changed:
        return "its default parameters"
    return ", ".join(f"{k}={v!r}" for k, v in sorted(changed.items()))
