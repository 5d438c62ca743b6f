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

import dataclasses
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

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


class ConfigError(ValueError):
    """Invalid configuration; the message names the problem and the valid choices."""


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
    """``"a,b"`` -> ``["a", "b"]``; empty items, duplicates and odd characters are errors."""
    items = text.split(",") if isinstance(text, str) else list(text)
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


def parse_seeds(text: str | int | Sequence[Any]) -> list[int]:
    """``"0,1,2"``, ``"0-4"`` (inclusive range) or a list of ints; seeds are >= 0 and unique."""
    if isinstance(text, bool):
        raise ConfigError(f"invalid seeds {text!r}: expected non-negative integers like 0,1,2")
    if isinstance(text, int):
        items: list[Any] = [text]
    elif isinstance(text, str):
        items = []
        for part in text.split(","):
            part = part.strip()
            m = re.fullmatch(r"(\d+)-(\d+)", part)
            if m:
                a, b = int(m.group(1)), int(m.group(2))
                if b < a:
                    raise ConfigError(f"invalid seed range {part!r}: end is before start")
                items.extend(range(a, b + 1))
            elif re.fullmatch(r"\d+", part):
                items.append(int(part))
            else:
                raise ConfigError(
                    f"invalid seeds {text!r}: {part!r} is not a non-negative integer "
                    "(use e.g. 0,1,2 or 0-4)"
                )
    else:
        items = list(text)
    seeds: list[int] = []
    for s in items:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ConfigError(f"invalid seed {s!r}: seeds are non-negative integers")
        if s in seeds:
            raise ConfigError(f"invalid seeds: {s} given twice")
        seeds.append(s)
    if not seeds:
        raise ConfigError("no seeds given")
    return seeds


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_value(key: str, raw: Any, default: Any) -> Any:
    """Coerce ``raw`` (a string from the CLI, or a TOML value) to the type of ``default``."""

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"invalid value {raw!r} for {key}: expected {expected}")

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
        if isinstance(raw, str) and re.fullmatch(r"[+-]?\d+", raw.strip()):
            return int(raw)
        raise bad("an integer")
    if isinstance(default, float):
        if isinstance(raw, bool):
            raise bad("a number")
        if isinstance(raw, (int, float)):
            value = float(raw)
        elif isinstance(raw, str):
            try:
                value = float(raw)
            except ValueError:
                raise bad("a number") from None
        else:
            raise bad("a number")
        if value != value or value in (float("inf"), float("-inf")):
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
        return raw
    raise bad(type(default).__name__)


def parse_assignment(text: str) -> tuple[str, str, str]:
    """``"vae.beta=4"`` -> ``("vae", "beta", "4")``."""
    if "=" not in text:
        raise ConfigError(f"invalid --set {text!r}: expected NAME.KEY=VALUE, e.g. vae.beta=4")
    lhs, value = text.split("=", 1)
    if "." not in lhs:
        raise ConfigError(
            f"invalid --set {text!r}: expected NAME.KEY=VALUE where NAME is a model, a dataset "
            "or 'eval', e.g. vae.beta=4"
        )
    scope, key = lhs.strip().rsplit(".", 1)
    if not scope or not key:
        raise ConfigError(f"invalid --set {text!r}: expected NAME.KEY=VALUE, e.g. vae.beta=4")
    return scope, key.strip(), value.strip()


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
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    allowed = {
        "models", "datasets", "seeds", "device", "data_dir", "subset", "metrics",
        "model", "dataset", "eval", *COMMON_KEYS,
    }  # fmt: skip
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(allowed))}"
        )
    for section in ("model", "dataset", "eval"):
        if section in data and not isinstance(data[section], dict):
            raise ConfigError(f"config file {path}: [{section}] must be a table")
    return data


def config_hash(obj: Mapping[str, Any]) -> str:
    """Stable hash of a JSON-able config (sorted keys); 12 hex digits."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclasses.dataclass
class RunConfig:
    """A validated grid: models x datasets x seeds plus their settings."""

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
        return dataclasses.asdict(self)

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
        """Merge defaults < config file < CLI values, and validate against the registry."""
        from vaebench.plugins import UnknownNameError

        file = load_toml(config_file) if config_file else {}

        def pick(cli_value: Any, key: str, default: Any) -> Any:
            return cli_value if cli_value is not None else file.get(key, default)

        model_names = parse_name_list(pick(models, "models", "pca,ae,noisy,vae"), "models")
        dataset_names = parse_name_list(pick(datasets, "datasets", "digits"), "datasets")
        seed_list = parse_seeds(pick(seeds, "seeds", "0"))
        for name in model_names:
            try:
                registry.model(name)
            except UnknownNameError as exc:
                raise ConfigError(str(exc)) from None
        for name in dataset_names:
            if _is_path_dataset(name):
                continue
            try:
                registry.dataset(name)
            except UnknownNameError as exc:
                raise ConfigError(str(exc)) from None
        metric_names = None
        m = pick(metrics, "metrics", None)
        if m is not None:
            metric_names = parse_name_list(m, "metrics")
            for name in metric_names:
                try:
                    registry.metric(name)
                except UnknownNameError as exc:
                    raise ConfigError(str(exc)) from None

        model_defaults = {n: registry.model(n).spec.defaults() for n in model_names}
        dataset_defaults = {
            n: ({} if _is_path_dataset(n) else registry.dataset(n).spec.defaults())
            for n in dataset_names
        }

        # shorthand options (--epochs, --latent-dim, ...) apply to models that have them
        common_values: dict[str, Any] = {}
        for key in COMMON_KEYS:
            raw = common.get(key)
            if raw is None:
                raw = file.get(key)
            if raw is None:
                continue
            holders = [n for n in model_names if key in model_defaults[n]]
            ref = model_defaults[holders[0]][key] if holders else (1.0 if key == "lr" else 1)
            value = parse_value(key, raw, ref)
            _check_common(key, value)
            common_values[key] = value
        extra = sorted(set(common) - set(COMMON_KEYS))
        if extra:
            raise ConfigError(f"unknown option(s) {', '.join(extra)}")

        model_params: dict[str, dict[str, Any]] = {n: {} for n in model_names}
        dataset_options: dict[str, dict[str, Any]] = {n: {} for n in dataset_names}
        eval_opts = dict(EVAL_DEFAULTS)

        def assign(scope: str, key: str, raw: Any, origin: str) -> None:
            if scope == "eval":
                if key not in EVAL_DEFAULTS:
                    raise ConfigError(
                        f"{origin}: unknown key {key!r} for eval; "
                        f"valid: {', '.join(sorted(EVAL_DEFAULTS))}"
                    )
                eval_opts[key] = parse_value(f"eval.{key}", raw, EVAL_DEFAULTS[key])
                return
            if scope in model_defaults:
                table, defaults, kind = model_params[scope], model_defaults[scope], "model"
            elif scope in dataset_defaults:
                table, defaults, kind = dataset_options[scope], dataset_defaults[scope], "dataset"
            else:
                valid = sorted({*model_names, *dataset_names, "eval"})
                raise ConfigError(
                    f"{origin}: {scope!r} is not a model or dataset of this run; "
                    f"valid: {', '.join(valid)}"
                )
            if key not in defaults:
                raise ConfigError(
                    f"{origin}: unknown key {key!r} for {kind} {scope!r}; "
                    f"valid: {', '.join(sorted(defaults)) or '(none)'}"
                )
            value = parse_value(f"{scope}.{key}", raw, defaults[key])
            if key in COMMON_KEYS:
                _check_common(f"{scope}.{key}", value)
            table[key] = value

        for section, names in (("model", model_defaults), ("dataset", dataset_defaults)):
            for scope, values in file.get(section, {}).items():
                if scope not in names:
                    continue  # sections for models/datasets not in this run are allowed
                if not isinstance(values, dict):
                    raise ConfigError(f"config file: [{section}.{scope}] must be a table")
                for key, raw in values.items():
                    assign(scope, key, raw, f"config [{section}.{scope}]")
        for key, raw in file.get("eval", {}).items():
            assign("eval", key, raw, "config [eval]")
        for text in sets:
            scope, key, raw = parse_assignment(text)
            assign(scope, key, raw, f"--set {text}")
        _check_eval(eval_opts)

        sub = pick(subset, "subset", None)
        if sub is not None and (isinstance(sub, bool) or not isinstance(sub, int) or sub <= 0):
            raise ConfigError(f"invalid subset {sub!r}: expected a positive integer")
        return cls(
            models=model_names,
            datasets=dataset_names,
            seeds=seed_list,
            common=common_values,
            model_params={k: v for k, v in model_params.items() if v},
            dataset_options={k: v for k, v in dataset_options.items() if v},
            eval=eval_opts,
            device=pick(device, "device", "auto"),
            data_dir=pick(data_dir, "data_dir", None),
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


def _check_eval(opts: dict[str, Any]) -> None:
    if opts["n_pairs"] < 1:
        raise ConfigError(f"invalid value {opts['n_pairs']!r} for eval.n_pairs: must be >= 1")
    if opts["n_steps"] < 3:
        raise ConfigError(f"invalid value {opts['n_steps']!r} for eval.n_steps: must be >= 3")
    if opts["interpolation"] not in ("linear", "slerp"):
        raise ConfigError(
            f"invalid value {opts['interpolation']!r} for eval.interpolation; valid: linear, slerp"
        )
    if opts["throughput_seconds"] <= 0:
        raise ConfigError("eval.throughput_seconds must be > 0")
    if opts["eval_batch_size"] < 1:
        raise ConfigError("eval.eval_batch_size must be >= 1")
