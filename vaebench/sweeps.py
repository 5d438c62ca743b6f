"""Sweep axes: ``--sweep [MODEL.]KEY=V1,V2,...`` (or a range) and a config file's ``[sweep]``
table, parsed, typed by each parameter's default and checked against the model's bounds.

A grid is models x datasets x the product of the axes that apply to each model x seeds;
:class:`Sweep` is one axis. :mod:`vaebench.config` stores the axes in
:attr:`vaebench.config.RunConfig.sweeps`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from vaebench.errors import ConfigError
from vaebench.options import COMMON_KEYS, KEY_RE, check_param, parse_value

__all__ = ["MAX_SWEEP_VALUES", "Sweep", "build_sweeps", "parse_sweep", "sweep_table_items"]

#: At most this many values on one sweep axis.
MAX_SWEEP_VALUES = 1_000

#: A model's declared bounds, ``{parameter: (largest value, why)}``.
Limits = Mapping[str, tuple[int, str]]


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
    prefix, _, key = lhs.rpartition(".")
    scope = prefix.strip() or None
    key = key.strip()
    if not KEY_RE.fullmatch(key):
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


def sweep_table_items(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """The ``[sweep]`` table as ``(label, values)`` pairs: TOML reads ``vae.beta = [...]`` as
    the nested table ``{"vae": {"beta": [...]}}``, and a quoted ``"vae.beta"`` as one key."""
    for key, value in table.items():
        if isinstance(value, dict):
            yield from sweep_table_items(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def build_sweeps(
    specs: Sequence[tuple[str, str, Any]],
    model_names: Sequence[str],
    model_defaults: Mapping[str, Mapping[str, Any]],
    model_limits: Mapping[str, Limits],
) -> list[Sweep]:
    """Parse and type the sweep axes. ``specs``: ``(where, text or key, file values or None)``
    (``None``: ``text`` is a whole ``--sweep`` value); ``model_defaults`` / ``model_limits``:
    each model's parameters with their defaults / declared bounds. Raises :class:`ConfigError`
    naming the axis: an unknown model or key, a value of the wrong type or out of bounds, a
    value or an axis given twice."""
    sweeps: list[Sweep] = []
    for where, text, file_values in specs:
        scope, key, raw_values, shown = _axis_source(where, text, file_values)
        holders = _holders(shown, scope, key, model_names, model_defaults)
        ref = model_defaults[holders[0]][key]
        label = key if scope is None else f"{scope}.{key}"
        values: list[Any] = []
        for raw in raw_values:
            value = parse_value(label, raw, ref)
            for m in holders:
                check_param(label, value, model_limits[m])
            if value in values:
                raise ConfigError(f"{shown}: value {value!r} given twice")
            values.append(value)
        _check_new_axis(shown, scope, key, sweeps, model_names, model_defaults)
        sweeps.append(Sweep(scope, key, tuple(values)))
    return sweeps


def _axis_source(where: str, text: str, file_values: Any) -> tuple[str | None, str, list[Any], str]:
    """``(scope, key, raw values, how errors show the axis)`` of one sweep spec."""
    if file_values is None:
        scope, key, raw_values = parse_sweep(text)
        return scope, key, list(raw_values), f"--sweep {text}"
    if isinstance(file_values, str):  # the command line's syntax: "1e-4:1e-2:log5"
        scope, key, raw_values = parse_sweep(f"{text}={file_values}")
        return scope, key, list(raw_values), f"{where} {text}"
    prefix, _, key = str(text).rpartition(".")
    if not isinstance(file_values, list) or not file_values:
        raise ConfigError(
            f"{where}: {text} must be a non-empty list of values or a range string "
            '(e.g. "1e-4:1e-2:log5")'
        )
    return prefix or None, key, file_values, f"{where} {text}"


def _holders(
    shown: str,
    scope: str | None,
    key: str,
    model_names: Sequence[str],
    model_defaults: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """The models of this run the axis varies (the first one's default types the values)."""
    if scope is None:
        if key not in COMMON_KEYS:
            raise ConfigError(
                f"{shown}: {key!r} is not a shorthand option; sweep MODEL.{key} for one "
                f"model, or one of {', '.join(COMMON_KEYS)} for every model"
            )
        holders = [m for m in model_names if key in model_defaults[m]]
        if not holders:
            raise ConfigError(f"{shown}: no model of this run has {key!r}")
        return holders
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
    return [scope]


def _check_new_axis(
    shown: str,
    scope: str | None,
    key: str,
    sweeps: Sequence[Sweep],
    model_names: Sequence[str],
    model_defaults: Mapping[str, Mapping[str, Any]],
) -> None:
    """An axis swept twice, or a shorthand axis and a model's own axis on one parameter."""
    label = key if scope is None else f"{scope}.{key}"
    if any(sw.scope == scope and sw.key == key for sw in sweeps):
        raise ConfigError(f"{shown}: {label} is swept twice")
    for sw in sweeps:
        if sw.key == key and None in (sw.scope, scope):
            both = [m for m in model_names if key in model_defaults[m]
                    and sw.scope in (None, m) and scope in (None, m)]  # fmt: skip
            if both:
                raise ConfigError(
                    f"{shown}: {label} and {sw.label} both sweep {key!r} of model "
                    f"{both[0]!r}; sweep it once"
                )
