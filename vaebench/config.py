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
its default and the documented bounds (:data:`PARAM_LIMITS`); errors raise :class:`ConfigError`
with a message naming the bad value and the valid choices. docs/config.md documents every key,
the precedence and the bounds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from vaebench.errors import ConfigError

__all__ = [
    "ConfigError",
    "RunConfig",
    "EVAL_DEFAULTS",
    "COMMON_KEYS",
    "parse_name_list",
    "parse_seeds",
    "parse_value",
    "parse_count",
    "parse_assignment",
    "parse_sweep",
    "load_toml",
    "eval_defaults",
    "Sweep",
]


#: Evaluation options of the harness itself (``--set eval.KEY=VALUE``); every metric adds the
#: options it declares (:attr:`vaebench.metric.Metric.options`), see :func:`eval_defaults`.
#: ``eval_batch_size`` changes how many images go through the model at once, not the numbers,
#: so it is not part of any evaluation's key.
EVAL_DEFAULTS: dict[str, Any] = {"eval_batch_size": 1024}

#: Shorthand options applied to every model that has the parameter.
COMMON_KEYS = ("latent_dim", "epochs", "batch_size", "lr", "arch")

#: Executors of ``--executor``.
EXECUTORS = ("local", "dask")
#: At most this many cells in one grid (a sweep typo must not plan a billion cells).
MAX_CELLS = 100_000
#: At most this many values on one sweep axis.
MAX_SWEEP_VALUES = 1_000

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def parse_name_list(text: str | Sequence[str], what: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``; empty items and duplicates are errors."""
    if isinstance(text, str):
        items: list[Any] = text.split(",")
    elif isinstance(text, (list, tuple)):
        items = list(text)
    else:
        raise ConfigError(f"{what}: expected comma-separated names, got {text!r}")
    out: list[str] = []
    for raw in items:
        if not isinstance(raw, str):
            raise ConfigError(f"{what}: expected names, got {raw!r}")
        name = raw.strip()
        if not name:
            raise ConfigError(f"{what}: empty name in {text!r}")
        if name in out:
            raise ConfigError(f"{what}: {name!r} given twice")
        out.append(name)
    if not out:
        raise ConfigError(f"{what}: no names given")
    return out


#: Seeds are below 2**32 (NumPy's limit) and a grid has at most this many of them.
MAX_SEED = 2**32 - 1
MAX_SEEDS = 10_000


def parse_seeds(text: str | int | Sequence[Any]) -> list[int]:
    """``"0,1,2"``, ``"0-4"`` (inclusive range) or a list of ints; seeds are unique integers in
    ``[0, 2**32 - 1]``, at most :data:`MAX_SEEDS` of them."""
    usage = "use e.g. 0,1,2 or 0-4"
    if isinstance(text, bool):
        raise ConfigError(f"invalid seeds {text!r}: expected non-negative integers ({usage})")
    if isinstance(text, int):
        items: list[Any] = [text]
    elif isinstance(text, str):
        items = []
        for part in text.split(","):
            part = part.strip()
            m = re.fullmatch(r"([0-9]+)-([0-9]+)", part)
            if m:
                a, b = int(m.group(1)), int(m.group(2))
                if b < a:
                    raise ConfigError(f"invalid seed range {part!r}: end is before start")
                if b - a + 1 > MAX_SEEDS or b > MAX_SEED:
                    raise ConfigError(
                        f"invalid seed range {part!r}: at most {MAX_SEEDS} seeds in [0, {MAX_SEED}]"
                    )
                items.extend(range(a, b + 1))
            elif re.fullmatch(r"[0-9]+", part):
                items.append(int(part))
            else:
                raise ConfigError(
                    f"invalid seeds {text!r}: {part!r} is not a non-negative integer ({usage})"
                )
    elif isinstance(text, (list, tuple)):
        items = list(text)
    else:
        raise ConfigError(f"invalid seeds {text!r}: expected non-negative integers ({usage})")
    seeds: list[int] = []
    seen: set[int] = set()
    for s in items:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ConfigError(f"invalid seed {s!r}: seeds are non-negative integers")
        if s > MAX_SEED:
            raise ConfigError(f"invalid seed {s}: seeds are at most {MAX_SEED}")
        if s in seen:
            raise ConfigError(f"invalid seeds: {s} given twice")
        seen.add(s)
        seeds.append(s)
    if not seeds:
        raise ConfigError(f"no seeds given ({usage})")
    if len(seeds) > MAX_SEEDS:
        raise ConfigError(f"too many seeds ({len(seeds)}); at most {MAX_SEEDS}")
    return seeds


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_SCALARS = (str, int, float, bool)


def parse_value(key: str, raw: Any, default: Any) -> Any:
    """Coerce ``raw`` (a string from the CLI, or a TOML value) to the type of ``default``.

    Booleans take true/false/yes/no/on/off/1/0; integers take ``[+-]digits``; floats must be
    finite; tuples take comma-separated items of the type of their first default element.
    Anything else raises :class:`ConfigError` naming ``key``, the value and the expected type.
    """

    def bad(expected: str) -> ConfigError:
        shown = raw if not isinstance(raw, str) or len(raw) <= 80 else raw[:77] + "..."
        return ConfigError(f"invalid value {shown!r} for {key}: expected {expected}")

    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise bad("true or false")
    if isinstance(default, int):
        if isinstance(raw, bool):
            raise bad("an integer")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str) and re.fullmatch(r"[+-]?[0-9]+", raw.strip()):
            return int(raw.strip())
        raise bad("an integer")
    if isinstance(default, float):
        if isinstance(raw, bool):
            raise bad("a number")
        try:
            if not isinstance(raw, (int, float, str)):
                raise bad("a number")
            value = float(raw)
        except (ValueError, OverflowError):
            raise bad("a number") from None
        if not math.isfinite(value):
            raise bad("a finite number")
        return value
    if isinstance(default, str):
        if isinstance(raw, str):
            return raw
        raise bad("a string")
    if isinstance(default, (tuple, list)):
        elem = default[0] if default else 0
        if isinstance(raw, str):
            parts = [p for p in (s.strip() for s in raw.split(",")) if p]
        elif isinstance(raw, (list, tuple)):
            parts = list(raw)
        else:
            raise bad("a comma-separated list")
        return tuple(parse_value(key, p, elem) for p in parts)
    if default is None:
        if isinstance(raw, _SCALARS):
            return raw
        raise bad("a string, number or boolean")
    raise bad(type(default).__name__)


_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_assignment(text: str) -> tuple[str, str, str]:
    """``"vae.beta=4"`` -> ``("vae", "beta", "4")`` (scope, key, raw value; whitespace around
    each part is dropped). The key is a Python identifier; the scope a model, dataset or
    ``eval``."""
    usage = "expected NAME.KEY=VALUE, e.g. vae.beta=4"
    if not isinstance(text, str):
        raise ConfigError(f"invalid --set {text!r}: {usage}")
    if "=" not in text:
        raise ConfigError(f"invalid --set {text!r}: {usage}")
    lhs, value = text.split("=", 1)
    if "." not in lhs:
        raise ConfigError(
            f"invalid --set {text!r}: expected NAME.KEY=VALUE where NAME is a model, a dataset "
            "or 'eval', e.g. vae.beta=4"
        )
    scope, key = (s.strip() for s in lhs.strip().rsplit(".", 1))
    if not scope or not key:
        raise ConfigError(f"invalid --set {text!r}: {usage}")
    if not _KEY_RE.fullmatch(key):
        raise ConfigError(f"invalid --set {text!r}: {key!r} is not a valid key name")
    return scope, key, value.strip()


@dataclasses.dataclass(frozen=True)
class Sweep:
    """One grid axis: ``scope.key`` takes each of ``values``. ``scope`` is a model name, or
    ``None`` for a shorthand option (:data:`COMMON_KEYS`) applied to every model that has it."""

    scope: str | None
    key: str
    values: tuple[Any, ...]

    @property
    def label(self) -> str:
        return self.key if self.scope is None else f"{self.scope}.{self.key}"

    def applies_to(self, model: str, defaults: Mapping[str, Any]) -> bool:
        return (self.scope == model or self.scope is None) and self.key in defaults

    def to_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "key": self.key, "values": list(self.values)}


_RANGE_RE = re.compile(r"^\s*([^:]+):([^:]+):(log)?([0-9]+)\s*$")


def parse_sweep(text: str) -> tuple[str | None, str, list[str]]:
    """``"vae.beta=0.5,1,4"`` -> ``("vae", "beta", ["0.5", "1", "4"])``; ``"latent_dim=2,8"``
    -> ``(None, "latent_dim", ...)``; ranges ``"lr=1e-4:1e-2:log5"`` (5 log-spaced values,
    ends included) and ``"epochs=10:50:5"`` (5 evenly spaced values) are expanded here.
    Values stay strings; :meth:`RunConfig.build` types them by the parameter's default."""
    usage = "expected [MODEL.]KEY=V1,V2,... or KEY=A:B:N / A:B:logN, e.g. vae.beta=0.5,1,4"
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"invalid --sweep {text!r}: {usage}")
    lhs, rhs = (part.strip() for part in text.split("=", 1))
    scope, _, key = lhs.rpartition(".")
    scope = scope.strip() or None
    key = key.strip()
    if not _KEY_RE.fullmatch(key):
        raise ConfigError(f"invalid --sweep {text!r}: {key!r} is not a valid key name ({usage})")
    m = _RANGE_RE.match(rhs)
    if m:
        try:
            a, b = float(m.group(1)), float(m.group(2))
        except ValueError:
            raise ConfigError(f"invalid --sweep {text!r}: range ends must be numbers") from None
        n = int(m.group(4))
        if not 2 <= n <= MAX_SWEEP_VALUES:
            raise ConfigError(
                f"invalid --sweep {text!r}: a range takes 2 to {MAX_SWEEP_VALUES} values"
            )
        if m.group(3):
            if not (a > 0 and b > 0):
                raise ConfigError(f"invalid --sweep {text!r}: a log range needs positive ends")
            ratio = (b / a) ** (1 / (n - 1))
            nums = [a * ratio**i for i in range(n)]
            nums[-1] = b
        else:
            nums = [a + (b - a) * i / (n - 1) for i in range(n)]
        values = [f"{v:.12g}" for v in nums]
    elif ":" in rhs and "," not in rhs:  # meant as a range, but not one (issue 19.6)
        raise ConfigError(
            f"invalid --sweep {text!r}: a range is A:B:N (N evenly spaced values) or A:B:logN "
            "(N log-spaced values), ends included, e.g. lr=1e-4:1e-2:log5 or epochs=10:50:5"
        )
    else:
        values = [v.strip() for v in rhs.split(",")]
        if not rhs or any(not v for v in values):
            raise ConfigError(f"invalid --sweep {text!r}: empty value ({usage})")
    if len(values) > MAX_SWEEP_VALUES:
        raise ConfigError(f"invalid --sweep {text!r}: at most {MAX_SWEEP_VALUES} values")
    return scope, key, values


def parse_shard(text: Any) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``: this process runs the second of four disjoint shares of the grid
    (for array jobs without Dask). Cells are assigned by their training key, so a shard keeps
    its cells when the grid grows."""
    m = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", text) if isinstance(text, str) else None
    if m is None or not 1 <= int(m.group(1)) <= int(m.group(2)) <= MAX_CELLS:
        raise ConfigError(
            f"invalid shard {text!r}: expected K/N with 1 <= K <= N, e.g. --shard 2/4"
        )
    return int(m.group(1)), int(m.group(2))


#: Top-level keys of a TOML config file.
FILE_KEYS = (
    "models", "datasets", "seeds", "device", "data_dir", "subset", "metrics", "val_fraction",
    "workers", "threads", "executor", "scheduler", "shard", "out", "mlflow",
    "model", "dataset", "eval", "sweep", *COMMON_KEYS,
)  # fmt: skip


def _check_file_keys(data: Mapping[str, Any], origin: str) -> None:
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(
            f"{origin}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(FILE_KEYS))}"
        )
    for section in ("model", "dataset", "eval", "sweep"):
        if section in data and not isinstance(data[section], dict):
            raise ConfigError(f"{origin}: [{section}] must be a table")


#: Nesting a config file needs at most (``[model.vae]`` tables, lists of values).
MAX_TOML_DEPTH = 4


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of lists and tables in ``value`` (counted up to ``limit + 1``)."""
    if limit < 0 or not isinstance(value, (list, dict)):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, limit - 1) for v in items), default=0)


#: A config file larger than this is refused (it is a list of settings, not data).
MAX_CONFIG_BYTES = 1_000_000


def load_toml(path: str) -> dict[str, Any]:
    """Read a TOML config file; a missing or malformed file raises :class:`ConfigError`."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        import stat

        mode = os.stat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise ConfigError(
                f"config file {path} is not a regular file (a FIFO, device or socket would "
                "block or never end)"
            )
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES} bytes")
        if raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark some editors write
            raw = raw[3:]
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:  # the reader recurses once per level of arrays or inline tables
        raise ConfigError(
            f"config file {path} nests arrays or inline tables too deeply to read (a config "
            f"needs at most {MAX_TOML_DEPTH} levels)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    _check_file_keys(data, f"config file {path}")
    if _depth(data, MAX_TOML_DEPTH) > MAX_TOML_DEPTH:
        raise ConfigError(
            f"config file {path} nests arrays or tables more than {MAX_TOML_DEPTH} levels deep; "
            "values are names, numbers or lists of them (see docs/config.md)"
        )
    return data


_DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")

#: Execution settings: how a grid runs, never what it computes. Stored in the manifest (resume
#: reuses them) and in every cell's ``execution``; not part of any key.
EXECUTION_KEYS = ("device", "workers", "threads", "executor", "scheduler", "shard")


def eval_defaults(registry: Any) -> dict[str, Any]:
    """Every evaluation option with its default: :data:`EVAL_DEFAULTS` plus each registered
    metric's declared ``options`` (a key declared by several metrics is one shared option; the
    first declaration -- built-ins come first -- sets its default)."""
    out = dict(EVAL_DEFAULTS)
    for reg in registry.metrics.values():
        for key, value in (getattr(reg.spec, "options", None) or {}).items():
            out.setdefault(key, value)
    return out


def default_metrics(registry: Any) -> list[str]:
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
    :data:`EXECUTION_KEYS`); ``mlflow`` is the MLflow tracking URI every cell is logged to
    (``--mlflow``; checked for reachability when the command applies it). :meth:`to_dict` and :meth:`from_dict` round-trip (run manifests
    store ``to_dict()`` so that ``vaebench run --resume`` rebuilds the same grid with the same
    execution settings).
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
    mlflow: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (the ``config`` of a run manifest)."""
        return dataclasses.asdict(self)

    def execution(self) -> dict[str, Any]:
        """The execution settings (:data:`EXECUTION_KEYS`)."""
        return {k: getattr(self, k) for k in EXECUTION_KEYS}

    def shard_of(self) -> tuple[int, int] | None:
        """``(k, n)`` of ``--shard K/N`` (1-based ``k``), or ``None``."""
        return None if self.shard is None else parse_shard(self.shard)

    def sweep_axes(self) -> list[Sweep]:
        return [Sweep(d["scope"], d["key"], tuple(d["values"])) for d in self.sweeps]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], registry: Any, **overrides: Any) -> RunConfig:
        """Rebuild and re-validate a config stored by :meth:`to_dict` (e.g. in a manifest).

        ``overrides``: execution settings given again on the command line (``threads``,
        ``workers``, ``executor``, ``scheduler``, ``device``, ``mlflow``), which win over the
        stored ones.
        Raises :class:`ConfigError` when ``data`` is malformed or no longer valid (a model
        plugin was uninstalled, a parameter renamed).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"stored config must be an object, got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
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
                        "out", "mlflow")
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
        sweeps = data.get("sweeps") or []
        if not isinstance(sweeps, list) or not all(
            isinstance(d, Mapping) and {"scope", "key", "values"} <= set(d) for d in sweeps
        ):
            raise ConfigError("stored config: 'sweeps' must be a list of {scope, key, values}")
        file["sweep"] = {
            (d["key"] if d["scope"] is None else f"{d['scope']}.{d['key']}"): list(d["values"])
            for d in sweeps
        }
        _check_file_keys(file, "stored config")
        cli = {k: v for k, v in overrides.items() if v is not None}
        return cls._build(registry, file, cli, (), (), origin="stored config")

    @classmethod
    def build(
        cls,
        registry: Any,
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
        mlflow: str | None = None,
        **common: Any,
    ) -> RunConfig:
        """Merge defaults < config file < CLI values, and validate against the registry.

        ``common`` takes the shorthand options :data:`COMMON_KEYS` (strings from the CLI or
        typed values); ``sets`` the ``NAME.KEY=VALUE`` overrides; ``sweeps`` the
        ``[MODEL.]KEY=V1,V2`` grid axes. Every problem raises :class:`ConfigError` naming the
        bad value and the valid choices.
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
        registry: Any,
        file: Mapping[str, Any],
        cli: Mapping[str, Any],
        sets: Sequence[str],
        sweep_texts: Sequence[str],
        origin: str,
    ) -> RunConfig:
        from vaebench.plugins import UnknownNameError

        def pick(key: str, default: Any) -> Any:
            value = cli.get(key)
            return value if value is not None else file.get(key, default)

        @contextlib.contextmanager
        def blame(key: str) -> Iterator[None]:
            """Prefix errors about a value that came from the file with the file's name."""
            try:
                yield
            except ConfigError as exc:
                if cli.get(key) is None and key in file:
                    raise ConfigError(f"{origin}: {exc}") from None
                raise

        def names(key: str, default: str | None, kind: str, lookup: Any) -> list[str] | None:
            raw = pick(key, default)
            if raw is None:
                return None
            with blame(key):
                out = parse_name_list(raw, key)
                for name in out:
                    if kind == "dataset" and _is_path_dataset(name):
                        continue
                    try:
                        lookup(name)
                    except UnknownNameError as exc:
                        raise ConfigError(str(exc)) from None
            return out

        model_names = names("models", "pca,ae,noisy,vae", "model", registry.model)
        dataset_names = names("datasets", "digits", "dataset", registry.dataset)
        assert model_names is not None and dataset_names is not None
        with blame("seeds"):
            seed_list = parse_seeds(pick("seeds", "0"))
        metric_names = names("metrics", None, "metric", registry.metric)

        dev = pick("device", "auto")
        with blame("device"):
            if not isinstance(dev, str) or not _DEVICE_RE.fullmatch(dev.strip()):
                raise ConfigError(f"invalid device {dev!r}; valid: auto, cpu, cuda, cuda:N, mps")
        dev = dev.strip()
        ddir = pick("data_dir", None)
        with blame("data_dir"):
            if ddir is not None and (not isinstance(ddir, str) or not ddir.strip()):
                raise ConfigError(f"invalid data_dir {ddir!r}: expected a folder path")
        sub = pick("subset", None)
        with blame("subset"):
            if sub is not None and (isinstance(sub, bool) or not isinstance(sub, int) or sub <= 0):
                raise ConfigError(f"invalid subset {sub!r}: expected a positive integer")
        with blame("val_fraction"):
            val = parse_value("val_fraction", pick("val_fraction", 0.0), 0.0)
            if not 0.0 <= val <= 0.5:
                raise ConfigError(f"invalid val_fraction {val!r}: expected a number in [0, 0.5]")
        execution: dict[str, Any] = {}
        for key in ("workers", "threads"):
            raw = pick(key, None)
            with blame(key):
                if raw is not None:
                    raw = parse_count(f"--{key}", raw)
            execution[key] = raw
        with blame("executor"):
            ex = pick("executor", "local")
            if ex not in EXECUTORS:
                raise ConfigError(f"invalid executor {ex!r}; valid: {', '.join(EXECUTORS)}")
        shard = pick("shard", None)
        with blame("shard"):
            if shard is not None:
                parse_shard(shard)
                shard = str(shard).strip()
        out_dir = pick("out", None)
        with blame("out"):
            if out_dir is not None and (not isinstance(out_dir, str) or not out_dir.strip()):
                raise ConfigError(f"invalid out {out_dir!r}: expected a folder path")
        tracking = pick("mlflow", None)
        with blame("mlflow"):
            if tracking is not None and (not isinstance(tracking, str) or not tracking.strip()):
                raise ConfigError(
                    f"invalid mlflow {tracking!r}: expected a tracking URI, e.g. "
                    "sqlite:///mlflow.db or file:./mlruns"
                )
            if tracking is not None and _has_password(tracking):
                # the URI is stored in the run manifest (and so in results/ and git): no secrets
                raise ConfigError(
                    "the mlflow URI contains a password; it would be stored in the run manifest. "
                    "Give the URI without it and set MLFLOW_TRACKING_USERNAME / "
                    "MLFLOW_TRACKING_PASSWORD (or a database's own credential file) instead"
                )
        sched = pick("scheduler", None)
        with blame("scheduler"):
            if sched is not None:
                if not isinstance(sched, str) or not sched.strip():
                    raise ConfigError(f"invalid scheduler {sched!r}: expected an address")
                if ex != "dask":
                    raise ConfigError("--scheduler needs --executor dask")

        model_defaults = {n: registry.model(n).spec.defaults() for n in model_names}
        dataset_defaults = {
            n: (
                _user_dataset_defaults()
                if _is_path_dataset(n)
                else registry.dataset(n).spec.defaults()
            )
            for n in dataset_names
        }

        # shorthand options (--epochs, --latent-dim, ...) apply to models that have them
        common_values: dict[str, Any] = {}
        for key in COMMON_KEYS:
            raw = pick(key, None)
            if raw is None:
                continue
            holders = [n for n in model_names if key in model_defaults[n]]
            ref = model_defaults[holders[0]][key] if holders else _COMMON_TYPES[key]
            with blame(key):
                value = parse_value(key, raw, ref)
                _check_param(key, value)
            common_values[key] = value

        model_params: dict[str, dict[str, Any]] = {n: {} for n in model_names}
        dataset_options: dict[str, dict[str, Any]] = {n: {} for n in dataset_names}
        eval_known = eval_defaults(registry)
        eval_opts = dict(eval_known)
        eval_origin: dict[str, str] = {}

        def assign(scope: str, key: str, raw: Any, where: str) -> None:
            try:
                _assign(scope, key, raw, where)
            except ConfigError as exc:
                if where.startswith("--set") or str(exc).startswith(where):
                    raise
                raise ConfigError(f"{where}: {exc}") from None

        def _assign(scope: str, key: str, raw: Any, where: str) -> None:
            if scope == "eval":
                if key not in eval_known:
                    raise ConfigError(
                        f"{where}: unknown key {key!r} for eval; "
                        f"valid: {', '.join(sorted(eval_known))}"
                    )
                eval_opts[key] = parse_value(f"eval.{key}", raw, eval_known[key])
                eval_origin[key] = where
                return
            if scope in model_defaults:
                table, defaults, kind = model_params[scope], model_defaults[scope], "model"
            elif scope in dataset_defaults:
                table, defaults, kind = dataset_options[scope], dataset_defaults[scope], "dataset"
            else:
                valid = sorted({*model_names, *dataset_names, "eval"})
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
            _check_param(f"{scope}.{key}", value)
            table[key] = value

        for section, known_names, known in (
            ("model", model_defaults, registry.models),
            ("dataset", dataset_defaults, registry.datasets),
        ):
            for scope, values in file.get(section, {}).items():
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
                    assign(scope, key, raw, f"{origin} [{section}.{scope}]")
        for key, raw in file.get("eval", {}).items():
            assign("eval", key, raw, f"{origin} [eval]")
        for text in sets:
            scope, key, raw = parse_assignment(text)
            assign(scope, key, raw, f"--set {text}")

        sweep_specs: list[tuple[str, str, Any]] = [
            (f"{origin} [sweep]", k, v) for k, v in _sweep_table_items(file.get("sweep", {}))
        ]
        sweep_specs += [("--sweep", t, None) for t in sweep_texts]
        sweeps = _build_sweeps(sweep_specs, model_names, model_defaults)
        for sw in sweeps:  # a value both set and swept: the sweep would silently win
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

        selected = metric_names if metric_names is not None else default_metrics(registry)
        _check_metric_options(registry, selected, eval_opts, eval_origin)
        n_cells = (
            len(dataset_names)
            * len(seed_list)
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

        return cls(
            models=model_names,
            datasets=dataset_names,
            seeds=seed_list,
            common=common_values,
            model_params={k: v for k, v in model_params.items() if v},
            dataset_options={k: v for k, v in dataset_options.items() if v},
            eval=eval_opts,
            device=dev,
            data_dir=ddir,
            subset=sub,
            metrics=metric_names,
            sweeps=[sw.to_dict() for sw in sweeps],
            val_fraction=val,
            workers=execution["workers"],
            threads=execution["threads"],
            executor=ex,
            scheduler=sched.strip() if isinstance(sched, str) else None,
            shard=shard,
            out=out_dir,
            mlflow=tracking.strip() if isinstance(tracking, str) else None,
        )

    @classmethod
    def for_evaluation(
        cls,
        registry: Any,
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

    def selected_metrics(self, registry: Any) -> list[str]:
        """The metric names this grid evaluates (``metrics``, or the default-on ones)."""
        return list(self.metrics) if self.metrics is not None else default_metrics(registry)

    def resolved_params(
        self, registry: Any, model: str, sweep: Mapping[str, Any] | None = None
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

    def variants(self, registry: Any, model: str) -> list[dict[str, Any]]:
        """The sweep values of each variant of ``model``: ``[{label: value}, ...]`` in grid
        order (one empty dict when no sweep applies to it)."""
        defaults = registry.model(model).spec.defaults()
        axes = [sw for sw in self.sweep_axes() if sw.applies_to(model, defaults)]
        return [
            {sw.label: v for sw, v in zip(axes, combo, strict=True)}
            for combo in itertools.product(*(sw.values for sw in axes))
        ]


#: Upper bound of --workers and --threads: the largest single machines have a few hundred
#: hardware threads; far above, torch's thread pool fails to start (``--threads 100000`` made a
#: shared-library load fail and then hung).
_MAX_WORKERS_THREADS = 1024


def _has_password(uri: str) -> bool:
    """Whether ``uri`` carries a password in its user-info part (``scheme://user:pw@host``)."""
    import urllib.parse

    try:
        return urllib.parse.urlsplit(uri.strip()).password is not None
    except ValueError:
        return False


def parse_count(option: str, raw: Any) -> int:
    """A ``--workers`` or ``--threads`` value (a string from the CLI or a TOML value) as an
    integer from 1 to 1024; anything else raises :class:`ConfigError` naming ``option``, the
    value and the valid range. Shared by ``run``, ``evaluate``, ``bench`` and ``check``."""
    value = parse_value(option, raw, 1)
    if not 1 <= value <= _MAX_WORKERS_THREADS:
        raise ConfigError(
            f"invalid value {raw!r} for {option}: expected an integer from 1 to "
            f"{_MAX_WORKERS_THREADS}"
        )
    return value


#: Upper bounds of model hyperparameters, by parameter name, for every model that has the
#: parameter (built-ins and plugins alike): above them a run would never end or never fit in
#: memory, and the value is almost certainly a typo. Documented in docs/config.md.
PARAM_LIMITS: dict[str, int] = {
    "epochs": 100_000,
    "kl_warmup_epochs": 100_000,
    "latent_dim": 100_000,
    "batch_size": 1_000_000,
    "hidden": 100_000,
    "conv_channels": 100_000,
    "disc_hidden": 100_000,
    "codebook_size": 1_000_000,
}
PARAM_LIMIT_WHY = {
    "epochs": "training time grows with it",
    "kl_warmup_epochs": "an epoch count",
    "latent_dim": "code size: the networks grow with it",
    "batch_size": "images per step; a batch larger than the data is the whole data",
    "hidden": "layer width: the weights grow with its square",
    "conv_channels": "channels per stage: the weights grow with its square",
    "disc_hidden": "discriminator layer width: the weights grow with its square",
    "codebook_size": "codebook vectors: the distance matrix grows with it",
}
#: At most this many entries in a list of layer sizes (``hidden``, ``conv_channels``).
MAX_LAYERS = 100
#: Types of the shorthand options when no selected model has them.
_COMMON_TYPES: dict[str, Any] = {
    "latent_dim": 1, "epochs": 1, "batch_size": 1, "lr": 1.0, "arch": "",
}  # fmt: skip


def _sweep_table_items(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """The ``[sweep]`` table as ``(label, values)`` pairs: TOML reads ``vae.beta = [...]`` as
    the nested table ``{"vae": {"beta": [...]}}``, and a quoted ``"vae.beta"`` as one key."""
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _sweep_table_items(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


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


def _build_sweeps(
    specs: Sequence[tuple[str, Any, Any]],
    model_names: Sequence[str],
    model_defaults: Mapping[str, Mapping[str, Any]],
) -> list[Sweep]:
    """Parse and type the sweep axes. ``specs``: ``(where, text or key, file values or None)``."""
    sweeps: list[Sweep] = []
    for where, text, file_values in specs:
        if file_values is None:
            scope, key, raw_values = parse_sweep(text)
            shown = f"--sweep {text}"
        elif isinstance(file_values, str):  # the command line's syntax: "1e-4:1e-2:log5"
            scope, key, raw_values = parse_sweep(f"{text}={file_values}")
            shown = f"{where} {text}"
        else:
            scope, _, key = str(text).rpartition(".")
            scope = scope or None
            if not isinstance(file_values, list) or not file_values:
                raise ConfigError(
                    f"{where}: {text} must be a non-empty list of values or a range string "
                    '(e.g. "1e-4:1e-2:log5")'
                )
            raw_values = file_values
            shown = f"{where} {text}"
        if scope is None:
            if key not in COMMON_KEYS:
                raise ConfigError(
                    f"{shown}: {key!r} is not a shorthand option; sweep MODEL.{key} for one "
                    f"model, or one of {', '.join(COMMON_KEYS)} for every model"
                )
            holders = [m for m in model_names if key in model_defaults[m]]
            if not holders:
                raise ConfigError(f"{shown}: no model of this run has {key!r}")
            ref = model_defaults[holders[0]][key]
        else:
            if scope not in model_defaults:
                raise ConfigError(
                    f"{shown}: {scope!r} is not a model of this run (sweeps vary model "
                    f"hyperparameters; list dataset variants as datasets); valid: "
                    f"{', '.join(model_names)}"
                )
            if key not in model_defaults[scope]:
                raise ConfigError(
                    f"{shown}: unknown key {key!r} for model {scope!r}; valid: "
                    f"{', '.join(sorted(model_defaults[scope])) or '(none)'}"
                )
            ref = model_defaults[scope][key]
        label = key if scope is None else f"{scope}.{key}"
        values = []
        for raw in raw_values:
            value = parse_value(label, raw, ref)
            _check_param(label, value)
            if value in values:
                raise ConfigError(f"{shown}: value {value!r} given twice")
            values.append(value)
        if any(sw.scope == scope and sw.key == key for sw in sweeps):
            raise ConfigError(f"{shown}: {label} is swept twice")
        for sw in sweeps:  # a shorthand axis and a model's own axis on one parameter
            if sw.key == key and None in (sw.scope, scope):
                both = [m for m in model_names if key in model_defaults[m]
                        and sw.scope in (None, m) and scope in (None, m)]  # fmt: skip
                if both:
                    raise ConfigError(
                        f"{shown}: {label} and {sw.label} both sweep {key!r} of model "
                        f"{both[0]!r}; sweep it once"
                    )
        sweeps.append(Sweep(scope, key, tuple(values)))
    return sweeps


def _check_metric_options(
    registry: Any, selected: Sequence[str], opts: dict[str, Any], origins: Mapping[str, str]
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


def _is_path_dataset(name: str) -> bool:
    return name.endswith(".npz") or "/" in name or name.startswith(".")


def _check_param(key: str, value: Any) -> None:
    """Bounds of a model hyperparameter by its name (``key`` may be ``MODEL.NAME``): the
    shorthand options are positive, and :data:`PARAM_LIMITS` caps the parameters whose size is
    work or memory. Every other check is the model's own (it is built on the ``meta`` device
    before any training)."""
    base = key.rsplit(".", 1)[-1]
    if base == "arch":
        return  # each model validates its architectures (built on the meta device)
    if base == "lr":
        if not value > 0:
            raise ConfigError(f"invalid value {value!r} for {key}: must be > 0")
        return
    limit = PARAM_LIMITS.get(base)
    if base in COMMON_KEYS and not value >= 1:
        raise ConfigError(f"invalid value {value!r} for {key}: must be a positive integer")
    if limit is None or isinstance(value, bool):
        return
    if isinstance(value, (int, float)) and value > limit:
        raise ConfigError(
            f"invalid value {value!r} for {key}: at most {limit} ({PARAM_LIMIT_WHY[base]})"
        )
    if isinstance(value, tuple):
        if len(value) > MAX_LAYERS:
            raise ConfigError(f"invalid value for {key}: {len(value)} layers, at most {MAX_LAYERS}")
        big = [v for v in value if isinstance(v, int) and not isinstance(v, bool) and v > limit]
        if big:
            raise ConfigError(
                f"invalid value {big[0]!r} in {key}: each entry is at most {limit} "
                f"({PARAM_LIMIT_WHY[base]})"
            )


def _user_dataset_defaults() -> dict[str, Any]:
    from vaebench.data.user import user_dataset_defaults

    return user_dataset_defaults()
