"""Run configuration: CLI values, ``--set`` overrides and TOML config files, validated.

A TOML config file mirrors the CLI::

    models = ["pca", "ae", "noisy", "vae"]
    datasets = ["digits"]
    seeds = [0, 1, 2]
    epochs = 20          # applied to every model that has the parameter
    latent_dim = 16
    device = "auto"

    [model.vae]          # per-model hyperparameters (like --set vae.beta=4)
    beta = 4.0

    [dataset.moons]      # per-dataset options (like --set moons.regime=gap)
    size = 32

    [eval]               # evaluation options (like --set eval.n_pairs=256)
    n_pairs = 256

Values given on the command line override the file. Every value is checked against the type of
its default and the bounds its model declares (:meth:`vaebench.model.ModelSpec.limits`); errors
raise :class:`ConfigError` with a message naming the bad value and the valid choices.
docs/config.md documents every key, the precedence and the bounds. Single values are parsed by
:mod:`vaebench.options`, sweep axes by :mod:`vaebench.sweeps`; a dataset given as a path is the
one a plugin claims for it (hook ``vaebench_dataset_for_path``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vaebench.errors import ConfigError
from vaebench.options import (
    COMMON_KEYS,
    MAX_CELLS,
    check_file_keys,
    check_param,
    check_track,
    load_toml,
    parse_assignment,
    parse_count,
    parse_name_list,
    parse_seeds,
    parse_shard,
    parse_value,
)
from vaebench.sweeps import Limits, Sweep, build_sweeps, sweep_table_items

if TYPE_CHECKING:
    from vaebench.dataset import DatasetSpec
    from vaebench.plugins import Registry

__all__ = [
    "ConfigError",
    "RunConfig",
    "EVAL_DEFAULTS",
    "EXECUTION_KEYS",
    "eval_defaults",
    "default_metrics",
]


#: Evaluation options of the harness itself (``--set eval.KEY=VALUE``); every metric adds the
#: options it declares (:attr:`vaebench.metric.Metric.options`), see :func:`eval_defaults`.
#: ``eval_batch_size`` changes how many images go through the model at once, not the numbers,
#: so it is not part of any evaluation's key.
EVAL_DEFAULTS: dict[str, Any] = {"eval_batch_size": 1024}

#: Executors of ``--executor``.
EXECUTORS = ("local", "dask")


_DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")

#: Execution settings: how a grid runs, never what it computes. Stored in the manifest (resume
#: reuses them) and in every cell's ``execution``; not part of any key.
EXECUTION_KEYS = ("device", "workers", "threads", "executor", "scheduler", "shard")


def eval_defaults(registry: Registry) -> dict[str, Any]:
    """Every evaluation option with its default: :data:`EVAL_DEFAULTS` plus each registered
    metric's declared ``options`` (a key declared by several metrics is one shared option; the
    first declaration -- built-ins come first -- sets its default)."""
    out = dict(EVAL_DEFAULTS)
    for reg in registry.metrics.values():
        for key, value in (getattr(reg.spec, "options", None) or {}).items():
            out.setdefault(key, value)
    return out


def default_metrics(registry: Registry) -> list[str]:
    """Metrics that run when ``--metrics`` is not given (those declaring ``default = True``)."""
    return sorted(n for n, r in registry.metrics.items() if getattr(r.spec, "default", True))


@dataclasses.dataclass
class RunConfig:
    """A validated grid: models x datasets x sweep values x seeds, plus their settings.

    ``common`` holds the shorthand options (``--epochs`` ...) applied to every model that has
    them; ``model_params`` / ``dataset_options`` the per-name overrides (``--set``); ``eval``
    every evaluation option (resolved: defaults, then the user's values); ``sweeps`` the grid
    axes beyond models, datasets and seeds (:class:`Sweep` as dicts); ``val_fraction`` the
    share of training images held out for validation checks. ``device``, ``workers``,
    ``threads``, ``executor`` and ``scheduler`` say how the grid runs (see
    :data:`EXECUTION_KEYS`); ``track`` maps a tracking plugin's name to its argument
    (``--track NAME=ARG``; ``{"mlflow": URI}`` for ``--mlflow URI``), every cell is logged to
    each (the command checks that a plugin serves the name). :meth:`to_dict` and
    :meth:`from_dict` round-trip (run manifests store ``to_dict()`` so that
    ``vaebench run --resume`` rebuilds the same grid with the same execution settings).
    """

    models: list[str]
    datasets: list[str]
    seeds: list[int]
    common: dict[str, Any] = dataclasses.field(default_factory=dict)
    model_params: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    dataset_options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    eval: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(EVAL_DEFAULTS))
    device: str = "auto"
    data_dir: str | None = None
    subset: int | None = None
    metrics: list[str] | None = None
    sweeps: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    val_fraction: float = 0.0
    workers: int | None = None
    threads: int | None = None
    executor: str = "local"
    scheduler: str | None = None
    shard: str | None = None
    out: str | None = None
    track: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (the ``config`` of a run manifest). The MLflow tracker is stored
        as ``mlflow`` (its URI, or ``None``: the manifest format of runs without ``--track``
        is unchanged); other trackers, when given, as ``track``."""
        out = dataclasses.asdict(self)
        track = out.pop("track")
        out["mlflow"] = track.pop("mlflow", None)
        if track:
            out["track"] = track
        return out

    def execution(self) -> dict[str, Any]:
        """The execution settings (:data:`EXECUTION_KEYS`)."""
        return {k: getattr(self, k) for k in EXECUTION_KEYS}

    def shard_of(self) -> tuple[int, int] | None:
        """``(k, n)`` of ``--shard K/N`` (1-based ``k``), or ``None``."""
        return None if self.shard is None else parse_shard(self.shard)

    def sweep_axes(self) -> list[Sweep]:
        return [Sweep(d["scope"], d["key"], tuple(d["values"])) for d in self.sweeps]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], registry: Registry, **overrides: Any) -> RunConfig:
        """Rebuild and re-validate a config stored by :meth:`to_dict` (e.g. in a manifest).

        ``overrides``: execution settings given again on the command line (``threads``,
        ``workers``, ``executor``, ``scheduler``, ``device``, ``track``, ``mlflow``), which win
        over the stored ones.
        Raises :class:`ConfigError` when ``data`` is malformed or no longer valid (a model
        plugin was uninstalled, a parameter renamed).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"stored config must be an object, got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)} | {"mlflow"}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(f"stored config: unknown field(s) {', '.join(unknown)}")
        for key in ("models", "datasets", "seeds"):
            if key not in data:
                raise ConfigError(f"stored config: missing field {key!r}")
        common = data.get("common") or {}
        if not isinstance(common, Mapping):
            raise ConfigError("stored config: 'common' must be an object")
        unknown = sorted(set(common) - set(COMMON_KEYS))
        if unknown:
            raise ConfigError(f"stored config: unknown common option(s) {', '.join(unknown)}")
        file: dict[str, Any] = {
            key: data[key]
            for key in ("models", "datasets", "seeds", "device", "data_dir", "subset", "metrics",
                        "val_fraction", "workers", "threads", "executor", "scheduler", "shard",
                        "out", "mlflow", "track")
            if data.get(key) is not None
        }  # fmt: skip
        file.update(common)
        file["model"] = data.get("model_params") or {}
        file["dataset"] = data.get("dataset_options") or {}
        stored_eval = data.get("eval") or {}
        if not isinstance(stored_eval, Mapping):
            raise ConfigError("stored config: 'eval' must be an object")
        # options of metrics that are no longer registered are dropped, not an error
        known = eval_defaults(registry)
        file["eval"] = {k: v for k, v in stored_eval.items() if k in known}
        file["sweep"] = _stored_sweeps(data.get("sweeps") or [])
        check_file_keys(file, "stored config")
        cli = {k: v for k, v in overrides.items() if v is not None}
        return cls._build(registry, file, cli, (), (), origin="stored config")

    @classmethod
    def build(
        cls,
        registry: Registry,
        *,
        models: str | Sequence[str] | None = None,
        datasets: str | Sequence[str] | None = None,
        seeds: str | Sequence[int] | int | None = None,
        sets: Sequence[str] = (),
        sweeps: Sequence[str] = (),
        config_file: str | None = None,
        device: str | None = None,
        data_dir: str | None = None,
        subset: int | None = None,
        metrics: str | Sequence[str] | None = None,
        val_fraction: float | str | None = None,
        workers: int | str | None = None,
        threads: int | str | None = None,
        executor: str | None = None,
        scheduler: str | None = None,
        shard: str | None = None,
        out: str | None = None,
        track: Mapping[str, str] | None = None,
        mlflow: str | None = None,
        **common: Any,
    ) -> RunConfig:
        """Merge defaults < config file < CLI values, and validate against the registry.

        ``common`` takes the shorthand options :data:`~vaebench.options.COMMON_KEYS` (strings
        from the CLI or typed values); ``sets`` the ``NAME.KEY=VALUE`` overrides; ``sweeps``
        the ``[MODEL.]KEY=V1,V2`` grid axes; ``track`` ``{tracker name: argument}`` (``--track
        NAME=ARG``, see :func:`vaebench.options.parse_track`), per name over the file's;
        ``mlflow=URI`` is ``track={"mlflow": URI}``. Every problem raises
        :class:`ConfigError` naming the bad value and the valid choices.
        """
        file = load_toml(config_file) if config_file else {}
        cli = {
            "models": models,
            "datasets": datasets,
            "seeds": seeds,
            "device": device,
            "data_dir": data_dir,
            "subset": subset,
            "metrics": metrics,
            "val_fraction": val_fraction,
            "workers": workers,
            "threads": threads,
            "executor": executor,
            "scheduler": scheduler,
            "shard": shard,
            "out": out,
            "track": track,
            "mlflow": mlflow,
        }
        extra = sorted(set(common) - set(COMMON_KEYS))
        if extra:
            raise ConfigError(f"unknown option(s) {', '.join(extra)}")
        cli.update(common)
        for name, given in (("--set", sets), ("--sweep", sweeps)):
            if isinstance(given, str) or not isinstance(given, (list, tuple)):
                raise ConfigError(f"{name}: expected a list of strings, got {given!r}")
        origin = f"config file {config_file}" if config_file else "config"
        return cls._build(registry, file, cli, sets, sweeps, origin=origin)

    @classmethod
    def _build(
        cls,
        registry: Registry,
        file: Mapping[str, Any],
        cli: Mapping[str, Any],
        sets: Sequence[str],
        sweep_texts: Sequence[str],
        origin: str,
    ) -> RunConfig:
        """The steps of :meth:`build`: names, settings, each model's and dataset's parameters,
        the sweep axes, then the checks across them (metric options, grid size)."""
        src = _Sources(file, cli, origin)
        model_names, dataset_names, seed_list, metric_names = _grid_names(src, registry)
        settings = {**_data_settings(src), **_execution_settings(src), "track": _track(src)}
        specs = {n: registry.model(n).spec for n in model_names}
        tables = _Tables(
            model_defaults={n: spec.defaults() for n, spec in specs.items()},
            model_limits={n: spec.limits() for n, spec in specs.items()},
            dataset_defaults={n: _dataset_spec(registry, n).defaults() for n in dataset_names},
            eval_known=eval_defaults(registry),
        )
        common_values = _common_values(src, model_names, tables)
        tables.apply(src, sets, registry)
        sweep_specs: list[tuple[str, str, Any]] = [
            (f"{origin} [sweep]", k, v) for k, v in sweep_table_items(file.get("sweep", {}))
        ]
        sweep_specs += [("--sweep", t, None) for t in sweep_texts]
        sweeps = build_sweeps(sweep_specs, model_names, tables.model_defaults, tables.model_limits)
        _check_set_and_swept(sweeps, common_values, tables.model_params, model_names)
        selected = metric_names if metric_names is not None else default_metrics(registry)
        _check_metric_options(registry, selected, tables.eval_opts, tables.eval_origin)
        _check_grid_size(dataset_names, seed_list, model_names, sweeps, tables.model_defaults)
        return cls(
            models=model_names,
            datasets=dataset_names,
            seeds=seed_list,
            common=common_values,
            model_params={k: v for k, v in tables.model_params.items() if v},
            dataset_options={k: v for k, v in tables.dataset_options.items() if v},
            eval=tables.eval_opts,
            metrics=metric_names,
            sweeps=[sw.to_dict() for sw in sweeps],
            **settings,
        )

    @classmethod
    def for_evaluation(
        cls,
        registry: Registry,
        *,
        models: Sequence[str],
        datasets: Sequence[str],
        stored: Mapping[str, Any] | None = None,
        metrics: str | Sequence[str] | None = None,
        sets: Sequence[str] = (),
        **execution: Any,
    ) -> RunConfig:
        """The configuration ``vaebench evaluate`` works with: the metric selection, the
        evaluation options (defaults < ``stored`` -- the folder's last manifest config -- <
        ``--set eval.KEY=VALUE``) and the execution settings (``device``, ``workers``,
        ``threads``, ``executor``, ``scheduler``, ``data_dir``: given < stored). ``models`` and
        ``datasets`` name the stored cells' (recorded in the manifest, not validated: a stored
        cell of an uninstalled plugin is reported, not an error)."""
        bad = [t for t in sets if not (isinstance(t, str) and t.strip().startswith("eval."))]
        if bad:
            raise ConfigError(
                f"evaluate takes only evaluation options (--set eval.KEY=VALUE), got {bad[0]!r}: "
                "the models are stored; train other settings with vaebench run"
            )
        stored = dict(stored or {})
        known = eval_defaults(registry)
        file: dict[str, Any] = {
            "eval": {
                k: v for k, v in (stored.get("eval") or {}).items() if k in known
            },
            "models": sorted(registry.models)[:1],
            "datasets": ["digits"] if "digits" in registry.datasets else sorted(registry.datasets)[:1],
        }  # fmt: skip
        for key in ("device", "workers", "threads", "executor", "scheduler", "data_dir"):
            if stored.get(key) is not None:
                file[key] = stored[key]
        if metrics is None and stored.get("metrics") is not None:
            metrics = stored["metrics"]
        cli = {k: v for k, v in execution.items() if v is not None}
        cli["metrics"] = metrics
        cfg = cls._build(registry, file, cli, sets, (), origin="stored config")
        return dataclasses.replace(cfg, models=list(models), datasets=list(datasets))

    def selected_metrics(self, registry: Registry) -> list[str]:
        """The metric names this grid evaluates (``metrics``, or the default-on ones)."""
        return list(self.metrics) if self.metrics is not None else default_metrics(registry)

    def resolved_params(
        self, registry: Registry, model: str, sweep: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Full hyperparameters of ``model``: defaults < shorthand options < ``--set`` < the
        cell's sweep values (``{label: value}``, see :meth:`variants`)."""
        params = registry.model(model).spec.defaults()
        for k, v in self.common.items():
            if k in params:
                params[k] = v
        params.update(self.model_params.get(model, {}))
        for label, value in (sweep or {}).items():
            params[label.rsplit(".", 1)[-1]] = value
        return params

    def variants(self, registry: Registry, model: str) -> list[dict[str, Any]]:
        """The sweep values of each variant of ``model``: ``[{label: value}, ...]`` in grid
        order (one empty dict when no sweep applies to it)."""
        defaults = registry.model(model).spec.defaults()
        axes = [sw for sw in self.sweep_axes() if sw.applies_to(model, defaults)]
        return [
            {sw.label: v for sw, v in zip(axes, combo, strict=True)}
            for combo in itertools.product(*(sw.values for sw in axes))
        ]


class _Sources:
    """Where :meth:`RunConfig.build`'s values come from: the command line (``cli``, wins when
    not ``None``) over a config file or stored config (``file``, named ``origin`` in errors)."""

    def __init__(self, file: Mapping[str, Any], cli: Mapping[str, Any], origin: str) -> None:
        self.file, self.cli, self.origin = file, cli, origin

    def pick(self, key: str, default: Any) -> Any:
        value = self.cli.get(key)
        return value if value is not None else self.file.get(key, default)

    @contextlib.contextmanager
    def blame(self, key: str) -> Iterator[None]:
        """Prefix errors about a value that came from the file with the file's name."""
        try:
            yield
        except ConfigError as exc:
            if self.cli.get(key) is None and key in self.file:
                raise ConfigError(f"{self.origin}: {exc}") from None
            raise


def _dataset_spec(registry: Registry, name: str) -> DatasetSpec:
    """The registered dataset ``name``, or the one a plugin claims for ``name`` given as a path
    (:meth:`vaebench.plugins.Registry.dataset_for_path`)."""
    return registry.dataset_or_path(name).spec


def _names(src: _Sources, key: str, default: str | None, lookup: Any) -> list[str] | None:
    """The names of ``key`` (``models``, ``datasets``, ``metrics``), each one known."""
    from vaebench.plugins import UnknownNameError

    raw = src.pick(key, default)
    if raw is None:
        return None
    with src.blame(key):
        out = parse_name_list(raw, key)
        for name in out:
            try:
                lookup(name)
            except UnknownNameError as exc:
                raise ConfigError(str(exc)) from None
    return out


def _grid_names(
    src: _Sources, registry: Registry
) -> tuple[list[str], list[str], list[int], list[str] | None]:
    """Models, datasets, seeds and the selected metrics (``None``: the default ones)."""
    model_names = _names(src, "models", "pca,ae,noisy,vae", registry.model)
    dataset_names = _names(src, "datasets", "digits", lambda n: _dataset_spec(registry, n))
    assert model_names is not None and dataset_names is not None
    with src.blame("seeds"):
        seed_list = parse_seeds(src.pick("seeds", "0"))
    metric_names = _names(src, "metrics", None, registry.metric)
    return model_names, dataset_names, seed_list, metric_names


def _folder(src: _Sources, key: str) -> str | None:
    """``data_dir`` or ``out``: a non-empty path, or ``None``."""
    value = src.pick(key, None)
    with src.blame(key):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"invalid {key} {value!r}: expected a folder path")
    return value


def _data_settings(src: _Sources) -> dict[str, Any]:
    """``device``, ``data_dir``, ``subset`` and ``val_fraction``, checked."""
    dev = src.pick("device", "auto")
    with src.blame("device"):
        if not isinstance(dev, str) or not _DEVICE_RE.fullmatch(dev.strip()):
            raise ConfigError(f"invalid device {dev!r}; valid: auto, cpu, cuda, cuda:N, mps")
    data_dir = _folder(src, "data_dir")
    sub = src.pick("subset", None)
    with src.blame("subset"):
        if sub is not None and (isinstance(sub, bool) or not isinstance(sub, int) or sub < 2):
            raise ConfigError(  # one image cannot be split, fitted on, nor interpolated between
                f"invalid subset {sub!r}: expected an integer >= 2 (images per split)"
            )
    with src.blame("val_fraction"):
        val = parse_value("val_fraction", src.pick("val_fraction", 0.0), 0.0)
        if not 0.0 <= val <= 0.5:
            raise ConfigError(f"invalid val_fraction {val!r}: expected a number in [0, 0.5]")
    return {"device": dev.strip(), "data_dir": data_dir, "subset": sub, "val_fraction": val}


def _execution_settings(src: _Sources) -> dict[str, Any]:
    """``workers``, ``threads``, ``executor``, ``shard``, ``out`` and ``scheduler``, checked."""
    out: dict[str, Any] = {}
    for key in ("workers", "threads"):
        raw = src.pick(key, None)
        with src.blame(key):
            out[key] = parse_count(f"--{key}", raw) if raw is not None else None
    with src.blame("executor"):
        ex = src.pick("executor", "local")
        if ex not in EXECUTORS:
            raise ConfigError(f"invalid executor {ex!r}; valid: {', '.join(EXECUTORS)}")
    shard = src.pick("shard", None)
    with src.blame("shard"):
        if shard is not None:
            parse_shard(shard)
            shard = str(shard).strip()
    out.update(executor=ex, shard=shard, out=_folder(src, "out"))
    sched = src.pick("scheduler", None)
    with src.blame("scheduler"):
        if sched is not None:
            if not isinstance(sched, str) or not sched.strip():
                raise ConfigError(f"invalid scheduler {sched!r}: expected an address")
            if ex != "dask":
                raise ConfigError("--scheduler needs --executor dask")
    out["scheduler"] = sched.strip() if isinstance(sched, str) else None
    return out


def _given_track(source: Mapping[str, Any]) -> dict[str, Any]:
    """``track`` of one source with its ``mlflow`` (the first interface's key) folded in."""
    given = source.get("track")
    if given is None:
        given = {}
    elif not isinstance(given, Mapping):
        check_track(given)  # raises, naming the value
    mlflow = source.get("mlflow")
    if mlflow is not None and (not isinstance(mlflow, str) or not mlflow.strip()):
        raise ConfigError(
            f"invalid mlflow {mlflow!r}: expected a tracking URI, e.g. "
            "sqlite:///mlflow.db or file:./mlruns"
        )
    if mlflow is not None and given.get("mlflow", mlflow) != mlflow:
        raise ConfigError("mlflow given twice (as mlflow and as track.mlflow): give it once")
    return {**given, **({"mlflow": mlflow} if mlflow is not None else {})}


def _track(src: _Sources) -> dict[str, str]:
    """``{tracker name: argument}``: the file's, then the command line's per name (see
    :func:`vaebench.options.check_track`); a bad value from the file names the file."""
    from_cli = _given_track(src.cli)
    try:
        from_file = _given_track(src.file)
        kept = check_track({k: v for k, v in from_file.items() if k not in from_cli})
    except ConfigError as exc:
        raise ConfigError(f"{src.origin}: {exc}") from None
    return {**kept, **check_track(from_cli)}


def _common_values(src: _Sources, model_names: Sequence[str], tables: _Tables) -> dict[str, Any]:
    """The shorthand options (``--epochs``, ``--latent-dim``, ...), typed by the first model
    that has the option and checked against the bounds of each (of the contract when none)."""
    from vaebench.model import Model

    values: dict[str, Any] = {}
    for key in COMMON_KEYS:
        raw = src.pick(key, None)
        if raw is None:
            continue
        holders = [n for n in model_names if key in tables.model_defaults[n]]
        ref = tables.model_defaults[holders[0]][key] if holders else _COMMON_TYPES[key]
        limits = [tables.model_limits[n] for n in holders] or [Model.param_limits]
        with src.blame(key):
            value = parse_value(key, raw, ref)
            for bounds in limits:
                check_param(key, value, bounds)
        values[key] = value
    return values


#: Types of the shorthand options when no selected model has them.
_COMMON_TYPES: dict[str, Any] = {
    "latent_dim": 1, "epochs": 1, "batch_size": 1, "lr": 1.0, "arch": "",
}  # fmt: skip


@dataclasses.dataclass
class _Tables:
    """Each model's and dataset's parameters (defaults, bounds, the values given) and the
    evaluation options, filled from the file's tables, ``[eval]`` and ``--set``."""

    model_defaults: dict[str, dict[str, Any]]
    model_limits: dict[str, Limits]
    dataset_defaults: dict[str, dict[str, Any]]
    eval_known: dict[str, Any]
    model_params: dict[str, dict[str, Any]] = dataclasses.field(init=False)
    dataset_options: dict[str, dict[str, Any]] = dataclasses.field(init=False)
    eval_opts: dict[str, Any] = dataclasses.field(init=False)
    eval_origin: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model_params = {n: {} for n in self.model_defaults}
        self.dataset_options = {n: {} for n in self.dataset_defaults}
        self.eval_opts = dict(self.eval_known)

    def apply(self, src: _Sources, sets: Sequence[str], registry: Registry) -> None:
        """The file's ``[model.NAME]``, ``[dataset.NAME]`` and ``[eval]`` tables, then
        ``--set`` (later wins); a shorthand option given on the command line (``--epochs``)
        removes the file's per-model values of it (order: defaults < the file's shorthand <
        ``[model.NAME]`` < the command line's shorthand < ``--set``)."""
        origin = src.origin
        for section, known_names, known in (
            ("model", self.model_defaults, registry.models),
            ("dataset", self.dataset_defaults, registry.datasets),
        ):
            for scope, values in src.file.get(section, {}).items():
                if not isinstance(values, dict):
                    raise ConfigError(f"{origin}: [{section}.{scope}] must be a table")
                if scope not in known_names:
                    if scope in known:  # settings for a registered name this run does not use:
                        _check_unused_keys(known[scope].spec, section, scope, values, origin)
                        continue
                    raise ConfigError(
                        f"{origin}: [{section}.{scope}]: unknown {section} {scope!r}; "
                        f"valid: {', '.join(sorted(known)) or '(none)'}"
                    )
                for key, raw in values.items():
                    self.assign(scope, key, raw, f"{origin} [{section}.{scope}]")
        # a shorthand option typed now (--epochs) beats the file's [model.NAME] values of it:
        # the command line beats the file, whatever the file's table
        for key in COMMON_KEYS:
            if src.cli.get(key) is not None:
                for table in self.model_params.values():
                    table.pop(key, None)
        for key, raw in src.file.get("eval", {}).items():
            self.assign("eval", key, raw, f"{origin} [eval]")
        for text in sets:
            scope, key, raw = parse_assignment(text)
            self.assign(scope, key, raw, f"--set {text}")

    def assign(self, scope: str, key: str, raw: Any, where: str) -> None:
        """Set ``scope.key`` (a model's, a dataset's or ``eval``) from ``raw``; errors name
        ``where`` the value came from."""
        try:
            self._assign(scope, key, raw, where)
        except ConfigError as exc:
            if where.startswith("--set") or str(exc).startswith(where):
                raise
            raise ConfigError(f"{where}: {exc}") from None

    def _assign(self, scope: str, key: str, raw: Any, where: str) -> None:
        if scope == "eval":
            if key not in self.eval_known:
                raise ConfigError(
                    f"{where}: unknown key {key!r} for eval; "
                    f"valid: {', '.join(sorted(self.eval_known))}"
                )
            self.eval_opts[key] = parse_value(f"eval.{key}", raw, self.eval_known[key])
            self.eval_origin[key] = where
            return
        if scope in self.model_defaults:
            table, defaults, kind = self.model_params[scope], self.model_defaults[scope], "model"
            limits = self.model_limits[scope]
        elif scope in self.dataset_defaults:
            table, defaults = self.dataset_options[scope], self.dataset_defaults[scope]
            kind, limits = "dataset", {}
        else:
            valid = sorted({*self.model_defaults, *self.dataset_defaults, "eval"})
            raise ConfigError(
                f"{where}: {scope!r} is not a model or dataset of this run; "
                f"valid: {', '.join(valid)}"
            )
        if key not in defaults:
            raise ConfigError(
                f"{where}: unknown key {key!r} for {kind} {scope!r}; "
                f"valid: {', '.join(sorted(defaults)) or '(none)'}"
            )
        value = parse_value(f"{scope}.{key}", raw, defaults[key])
        check_param(f"{scope}.{key}", value, limits)
        table[key] = value


def _check_set_and_swept(
    sweeps: Sequence[Sweep],
    common_values: Mapping[str, Any],
    model_params: Mapping[str, Mapping[str, Any]],
    model_names: Sequence[str],
) -> None:
    """A value both set and swept is an error: the sweep would silently win."""
    for sw in sweeps:
        if sw.scope is None and sw.key in common_values:
            raise ConfigError(
                f"{sw.key} is both set ({sw.key}={common_values[sw.key]!r}) and swept "
                f"(--sweep {sw.key}=...): give it one way"
            )
        holders = [sw.scope] if sw.scope is not None else model_names
        for m in holders:
            if sw.key in model_params.get(m, {}):
                raise ConfigError(
                    f"{m}.{sw.key} is both set ({m}.{sw.key}={model_params[m][sw.key]!r}) "
                    f"and swept ({sw.label}): give it one way"
                )


def _check_grid_size(
    dataset_names: Sequence[str],
    seeds: Sequence[int],
    model_names: Sequence[str],
    sweeps: Sequence[Sweep],
    model_defaults: Mapping[str, Mapping[str, Any]],
) -> None:
    """At most :data:`~vaebench.options.MAX_CELLS` cells in one grid."""
    n_cells = (
        len(dataset_names)
        * len(seeds)
        * sum(
            math.prod(len(sw.values) for sw in sweeps if sw.applies_to(m, model_defaults[m]))
            for m in model_names
        )
    )
    if n_cells > MAX_CELLS:
        raise ConfigError(
            f"the grid has {n_cells} cells, more than the limit of {MAX_CELLS}; split it "
            "into several runs (--sweep values x models x datasets x seeds)"
        )


def _stored_sweeps(sweeps: Any) -> dict[str, list[Any]]:
    """A stored config's ``sweeps`` (:meth:`Sweep.to_dict` each) as a ``[sweep]`` table."""
    if not isinstance(sweeps, list) or not all(
        isinstance(d, Mapping) and {"scope", "key", "values"} <= set(d) for d in sweeps
    ):
        raise ConfigError("stored config: 'sweeps' must be a list of {scope, key, values}")
    return {
        (d["key"] if d["scope"] is None else f"{d['scope']}.{d['key']}"): list(d["values"])
        for d in sweeps
    }


def _check_unused_keys(
    spec: Any, section: str, scope: str, values: Mapping[str, Any], origin: str
) -> None:
    """Keys of a config table for a model or dataset this run does not use must still exist
    (a typo there would go unnoticed until the day the name is used)."""
    try:
        defaults = spec.defaults()
    except Exception:  # noqa: BLE001 - a plugin's spec that cannot list its options
        return
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ConfigError(
            f"{origin} [{section}.{scope}]: unknown key(s) {', '.join(unknown)} for {section} "
            f"{scope!r}; valid: {', '.join(sorted(defaults)) or '(none)'}"
        )


def _check_metric_options(
    registry: Registry, selected: Sequence[str], opts: dict[str, Any], origins: Mapping[str, str]
) -> None:
    """Each selected metric checks its resolved options (and ``eval_batch_size`` is >= 1)."""
    if not 1 <= opts["eval_batch_size"] <= 1_000_000:
        raise ConfigError(
            f"invalid value {opts['eval_batch_size']!r} for eval.eval_batch_size: expected an "
            "integer from 1 to 1000000"
        )
    for name in selected:
        metric = registry.metric(name).spec
        own = {k: opts[k] for k in (getattr(metric, "options", None) or {})}
        try:
            metric.check_options(own)
        except (ValueError, TypeError) as exc:
            text = str(exc)
            where = next((origins[k] for k in own if k in text and k in origins), "")
            prefix = f"{where}: " if where and not where.startswith("--set") else ""
            raise ConfigError(f"{prefix}metric {name!r}: {text}") from None
