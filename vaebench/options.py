"""Parsing and checking of single option values: names, seeds, typed values, ``--set``
assignments, ``--shard``, ``--workers``/``--threads``, ``--track`` and TOML config files.

Each function takes what a user typed (a string from the command line) or what a TOML file holds,
and returns the typed value or raises :class:`~vaebench.errors.ConfigError` with one line naming
the bad value and the valid choices. :mod:`vaebench.config` assembles them into a
:class:`~vaebench.config.RunConfig`; :mod:`vaebench.sweeps` builds the sweep axes.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from vaebench.errors import ConfigError

__all__ = [
    "COMMON_KEYS",
    "FILE_KEYS",
    "MAX_CELLS",
    "MAX_SEED",
    "MAX_SEEDS",
    "MAX_LAYERS",
    "check_param",
    "check_file_keys",
    "check_track",
    "has_password",
    "load_toml",
    "parse_assignment",
    "parse_count",
    "parse_name_list",
    "parse_seeds",
    "parse_shard",
    "parse_track",
    "parse_value",
]

#: Shorthand options applied to every model that has the parameter.
COMMON_KEYS = ("latent_dim", "epochs", "batch_size", "lr", "arch")

#: At most this many cells in one grid (a sweep typo must not plan a billion cells).
MAX_CELLS = 100_000

#: A tracker's name (``--track NAME=ARG``).
NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
#: A key of ``--set NAME.KEY=VALUE`` or ``--sweep [MODEL.]KEY=...``: a Python identifier.
KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    if not KEY_RE.fullmatch(key):
        raise ConfigError(f"invalid --set {text!r}: {key!r} is not a valid key name")
    return scope, key, value.strip()


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
    "workers", "threads", "executor", "scheduler", "shard", "out", "mlflow", "track",
    "model", "dataset", "eval", "sweep", *COMMON_KEYS,
)  # fmt: skip


def check_file_keys(data: Mapping[str, Any], origin: str) -> None:
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(
            f"{origin}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(FILE_KEYS))}"
        )
    for section in ("model", "dataset", "eval", "sweep", "track"):
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
    check_file_keys(data, f"config file {path}")
    if _depth(data, MAX_TOML_DEPTH) > MAX_TOML_DEPTH:
        raise ConfigError(
            f"config file {path} nests arrays or tables more than {MAX_TOML_DEPTH} levels deep; "
            "values are names, numbers or lists of them (see docs/config.md)"
        )
    return data


#: Upper bound of --workers and --threads: the largest single machines have a few hundred
#: hardware threads; far above, torch's thread pool fails to start (``--threads 100000`` made a
#: shared-library load fail and then hung).
_MAX_WORKERS_THREADS = 1024


def has_password(uri: str) -> bool:
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


def parse_track(texts: str | Sequence[str]) -> dict[str, str]:
    """``--track NAME=ARG`` values (repeatable) as ``{tracker name: argument}``, e.g.
    ``["mlflow=sqlite:///m.db"]`` -> ``{"mlflow": "sqlite:///m.db"}``: which tracking plugin
    logs the run, and its argument (a URI, a project name); ``NAME`` alone (or ``NAME=``) is
    ``""``, the tracker's default. The argument is split at the first ``=``; names and arguments
    are then checked by :func:`check_track`. A malformed item or a name given twice raises
    :class:`ConfigError` naming it."""
    items = [texts] if isinstance(texts, str) else texts
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"--track: expected NAME=ARG values, got {texts!r}")
    out: dict[str, str] = {}
    for text in items:
        name, _, arg = text.partition("=") if isinstance(text, str) else ("", "", "")
        name = name.strip()
        if not name:
            raise ConfigError(
                f"invalid --track {text!r}: expected NAME=ARG, e.g. --track mlflow=URI"
            )
        if name in out:
            raise ConfigError(f"--track {name} is given twice; give each tracker once")
        out[name] = arg.strip()
    return check_track(out)


def check_track(track: Any) -> dict[str, str]:
    """Check ``{tracker name: argument}`` syntactically (whether a plugin serves the name is the
    command's business): names are letters, digits, ``_``, ``.`` and ``-``; an argument is a
    string (``""``: the tracker's default) without a password (it is stored in the run manifest, and so in results
    folders kept in git). Returns it with the arguments stripped; raises :class:`ConfigError`
    naming the bad name or argument."""
    if not isinstance(track, Mapping):
        raise ConfigError(
            f"invalid track {track!r}: expected a table of tracker name = argument, e.g. "
            'track = {mlflow = "sqlite:///mlruns.db"}'
        )
    out: dict[str, str] = {}
    for name, arg in track.items():
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise ConfigError(
                f"invalid tracker name {name!r}: expected letters, digits, '_', '.' or '-', "
                "e.g. mlflow"
            )
        if not isinstance(arg, str):
            raise ConfigError(f"invalid track {name}={arg!r}: expected a string argument")
        if has_password(arg):
            raise ConfigError(_password_message(name))
        out[name] = arg.strip()
    return out


def _password_message(name: str) -> str:
    if name == "mlflow":
        return (
            "the mlflow URI contains a password; it would be stored in the run manifest. "
            "Give the URI without it and set MLFLOW_TRACKING_USERNAME / "
            "MLFLOW_TRACKING_PASSWORD (or a database's own credential file) instead"
        )
    return (
        f"the argument of tracker {name!r} contains a password; it would be stored in the run "
        "manifest. Give it without the password and pass credentials through the tracker's own "
        "settings (environment variables, credential files) instead"
    )


#: At most this many entries in a tuple of layer sizes (a network's widths).
MAX_LAYERS = 100


def check_param(key: str, value: Any, limits: Mapping[str, tuple[int, str]]) -> None:
    """Bounds of a model hyperparameter (``key`` is ``NAME`` or ``MODEL.NAME``): the shorthand
    options (:data:`COMMON_KEYS`) are positive, ``lr`` is > 0, and ``limits`` -- the model's
    declared bounds, ``{name: (largest value, why)}`` (:meth:`vaebench.model.ModelSpec.limits`)
    -- caps the parameters whose size is work or memory: a number, or each entry of a tuple of
    layer sizes (at most :data:`MAX_LAYERS` entries). Every other check is the model's own (it
    is built on the ``meta`` device before any training). Raises :class:`ConfigError` naming
    the value, the bound and why."""
    base = key.rsplit(".", 1)[-1]
    if base == "arch":
        return  # each model validates its architectures (built on the meta device)
    if base == "lr":
        if not value > 0:
            raise ConfigError(f"invalid value {value!r} for {key}: must be > 0")
        return
    if base in COMMON_KEYS and not value >= 1:
        raise ConfigError(f"invalid value {value!r} for {key}: must be a positive integer")
    if base not in limits or isinstance(value, bool):
        return
    limit, why = limits[base]
    if isinstance(value, (int, float)) and value > limit:
        raise ConfigError(f"invalid value {value!r} for {key}: at most {limit} ({why})")
    if isinstance(value, tuple):
        if len(value) > MAX_LAYERS:
            raise ConfigError(f"invalid value for {key}: {len(value)} layers, at most {MAX_LAYERS}")
        big = [v for v in value if isinstance(v, int) and not isinstance(v, bool) and v > limit]
        if big:
            raise ConfigError(
                f"invalid value {big[0]!r} in {key}: each entry is at most {limit} ({why})"
            )
