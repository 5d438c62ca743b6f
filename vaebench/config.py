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
its default; errors raise :class:`ConfigError` with a message naming the bad value and the valid
choices.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
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
    "parse_assignment",
    "load_toml",
    "config_hash",
]




#: Options of the evaluation protocol (``--set eval.KEY=VALUE``).
EVAL_DEFAULTS: dict[str, Any] = {
    "n_pairs": 256,  # interpolation pairs per cell (ACAI: 256)
    "n_steps": 16,  # points per interpolation, endpoints included (ACAI: 16)
    "interpolation": "linear",  # or "slerp"
    "throughput_seconds": 0.25,  # minimum timed duration per throughput measurement
    "eval_batch_size": 1024,
}

#: Shorthand options applied to every model that has the parameter.
COMMON_KEYS = ("latent_dim", "epochs", "batch_size", "lr")

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


#: Top-level keys of a TOML config file.
FILE_KEYS = (
    "models", "datasets", "seeds", "device", "data_dir", "subset", "metrics",
    "model", "dataset", "eval", *COMMON_KEYS,
)  # fmt: skip


def _check_file_keys(data: Mapping[str, Any], origin: str) -> None:
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(
            f"{origin}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(FILE_KEYS))}"
        )
    for section in ("model", "dataset", "eval"):
        if section in data and not isinstance(data[section], dict):
            raise ConfigError(f"{origin}: [{section}] must be a table")


def load_toml(path: str) -> dict[str, Any]:
    """Read a TOML config file; a missing or malformed file raises :class:`ConfigError`."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    _check_file_keys(data, f"config file {path}")
    return data


def config_hash(obj: Mapping[str, Any]) -> str:
    """Stable hash of a JSON-able config (sorted keys); 12 hex digits."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


_DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")


@dataclasses.dataclass
class RunConfig:
    """A validated grid: models x datasets x seeds plus their settings.

    ``common`` holds the shorthand options (``--epochs`` ...) applied to every model that has
    them; ``model_params`` / ``dataset_options`` the per-name overrides (``--set``); ``eval``
    the full evaluation options. :meth:`to_dict` and :meth:`from_dict` round-trip (run
    manifests store ``to_dict()`` so that ``vaebench run --resume`` rebuilds the same grid).
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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (the ``config`` of a run manifest)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], registry: Any) -> RunConfig:
        """Rebuild and re-validate a config stored by :meth:`to_dict` (e.g. in a manifest).

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
        file = {
            key: data[key]
            for key in ("models", "datasets", "seeds", "device", "data_dir", "subset", "metrics")
            if data.get(key) is not None
        }
        file.update(common)
        file["model"] = data.get("model_params") or {}
        file["dataset"] = data.get("dataset_options") or {}
        file["eval"] = data.get("eval") or {}
        _check_file_keys(file, "stored config")
        return cls._build(registry, file, {}, (), origin="stored config")

    @classmethod
    def build(
        cls,
        registry: Any,
        *,
        models: str | Sequence[str] | None = None,
        datasets: str | Sequence[str] | None = None,
        seeds: str | Sequence[int] | int | None = None,
        sets: Sequence[str] = (),
        config_file: str | None = None,
        device: str | None = None,
        data_dir: str | None = None,
        subset: int | None = None,
        metrics: str | Sequence[str] | None = None,
        **common: Any,
    ) -> RunConfig:
        """Merge defaults < config file < CLI values, and validate against the registry.

        ``common`` takes the shorthand options :data:`COMMON_KEYS` (strings from the CLI or
        typed values). Every problem raises :class:`ConfigError` naming the bad value and the
        valid choices.
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
        }
        extra = sorted(set(common) - set(COMMON_KEYS))
        if extra:
            raise ConfigError(f"unknown option(s) {', '.join(extra)}")
        cli.update(common)
        if isinstance(sets, str) or not isinstance(sets, (list, tuple)):
            raise ConfigError(f"--set: expected a list of NAME.KEY=VALUE, got {sets!r}")
        origin = f"config file {config_file}" if config_file else "config"
        return cls._build(registry, file, cli, sets, origin=origin)

    @classmethod
    def _build(
        cls,
        registry: Any,
        file: Mapping[str, Any],
        cli: Mapping[str, Any],
        sets: Sequence[str],
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
            ref = model_defaults[holders[0]][key] if holders else (1.0 if key == "lr" else 1)
            with blame(key):
                value = parse_value(key, raw, ref)
                _check_common(key, value)
            common_values[key] = value

        model_params: dict[str, dict[str, Any]] = {n: {} for n in model_names}
        dataset_options: dict[str, dict[str, Any]] = {n: {} for n in dataset_names}
        eval_opts = dict(EVAL_DEFAULTS)
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
                if key not in EVAL_DEFAULTS:
                    raise ConfigError(
                        f"{where}: unknown key {key!r} for eval; "
                        f"valid: {', '.join(sorted(EVAL_DEFAULTS))}"
                    )
                eval_opts[key] = parse_value(f"eval.{key}", raw, EVAL_DEFAULTS[key])
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
            if key in COMMON_KEYS:
                _check_common(f"{scope}.{key}", value)
            table[key] = value

        for section, names, known in (
            ("model", model_defaults, registry.models),
            ("dataset", dataset_defaults, registry.datasets),
        ):
            for scope, values in file.get(section, {}).items():
                if not isinstance(values, dict):
                    raise ConfigError(f"{origin}: [{section}.{scope}] must be a table")
                if scope not in names:
                    if scope in known:
                        continue  # settings for a registered name this run does not use
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
        _check_eval(eval_opts, eval_origin)

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
        )

    def resolved_params(self, registry: Any, model: str) -> dict[str, Any]:
        """Full hyperparameters of ``model``: defaults < shorthand options < ``--set``."""
        params = registry.model(model).spec.defaults()
        for k, v in self.common.items():
            if k in params:
                params[k] = v
        params.update(self.model_params.get(model, {}))
        return params


def _is_path_dataset(name: str) -> bool:
    return name.endswith(".npz") or "/" in name or name.startswith(".")


def _check_common(key: str, value: Any) -> None:
    base = key.rsplit(".", 1)[-1]
    if base == "lr":
        if not value > 0:
            raise ConfigError(f"invalid value {value!r} for {key}: must be > 0")
    elif not value >= 1:
        raise ConfigError(f"invalid value {value!r} for {key}: must be a positive integer")


def _check_eval(opts: dict[str, Any], origins: Mapping[str, str]) -> None:
    """Range checks of the eval options; ``origins`` says where each set key came from."""

    def bad(key: str, rule: str) -> ConfigError:
        msg = f"invalid value {opts[key]!r} for eval.{key}: {rule}"
        where = origins.get(key, "")
        return ConfigError(f"{where}: {msg}" if where and not where.startswith("--set") else msg)

    if opts["n_pairs"] < 1:
        raise bad("n_pairs", "must be >= 1")
    if opts["n_steps"] < 3:
        raise bad("n_steps", "must be >= 3")
    if opts["interpolation"] not in ("linear", "slerp"):
        raise bad("interpolation", "valid: linear, slerp")
    if opts["throughput_seconds"] <= 0:
        raise bad("throughput_seconds", "must be > 0")
    if opts["eval_batch_size"] < 1:
        raise bad("eval_batch_size", "must be >= 1")


def _user_dataset_defaults() -> dict[str, Any]:
    from vaebench.data.user import user_dataset_defaults

    return user_dataset_defaults()
