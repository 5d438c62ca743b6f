"""Property-based tests of config and CLI parsing: valid input round-trips, anything else raises
:class:`ConfigError` -- never another exception."""

from __future__ import annotations

import json
import math
import string
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaebench.cells import plan
from vaebench.config import ConfigError, RunConfig, eval_defaults
from vaebench.options import (
    MAX_SEED,
    parse_assignment,
    parse_name_list,
    parse_seeds,
    parse_value,
)
from vaebench.plugins import get_registry

LECTURE_MODELS = ["pca", "ae", "noisy", "vae"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# anything a TOML file or a caller could hand us
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
anything = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
seed_values = st.integers(min_value=0, max_value=MAX_SEED)


# ----------------------------------------------------------------------------- parse_seeds


@SETTINGS
@given(st.lists(seed_values, min_size=1, max_size=20, unique=True), st.sampled_from(["", " "]))
def test_seed_lists_round_trip(seeds: list[int], pad: str) -> None:
    text = ",".join(f"{pad}{s}{pad}" for s in seeds)
    assert parse_seeds(text) == seeds
    assert parse_seeds(seeds) == seeds


@SETTINGS
@given(st.integers(min_value=0, max_value=MAX_SEED - 100), st.integers(min_value=0, max_value=99))
def test_seed_ranges_are_inclusive(start: int, length: int) -> None:
    assert parse_seeds(f"{start}-{start + length}") == list(range(start, start + length + 1))


@SETTINGS
@given(st.one_of(st.text(max_size=30), anything))
def test_parse_seeds_accepts_or_raises_config_error(raw: object) -> None:
    try:
        seeds = parse_seeds(raw)  # type: ignore[arg-type]
    except ConfigError as exc:
        assert str(exc)
        return
    assert seeds and all(isinstance(s, int) and 0 <= s <= MAX_SEED for s in seeds)
    assert len(set(seeds)) == len(seeds)


@SETTINGS
@given(st.text(alphabet="0123456789,- ab", max_size=25))
def test_seed_like_text_accepts_or_raises_config_error(raw: str) -> None:
    try:
        seeds = parse_seeds(raw)
    except ConfigError:
        return
    assert all(0 <= s <= MAX_SEED for s in seeds)


@pytest.mark.parametrize(
    "raw", ["", "1,,2", "a", "-1", "3-1", "0,0", "1.5", "0-99999999", str(MAX_SEED + 1), "٣"]
)
def test_malformed_seeds_are_config_errors(raw: str) -> None:
    with pytest.raises(ConfigError):
        parse_seeds(raw)


# ----------------------------------------------------------------------------- parse_value


@SETTINGS
@given(st.integers(min_value=-(2**80), max_value=2**80))
def test_integers_round_trip(value: int) -> None:
    assert parse_value("k", str(value), 1) == value
    assert parse_value("k", value, 1) == value


@SETTINGS
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip(value: float) -> None:
    assert parse_value("k", repr(value), 1.0) == value
    assert parse_value("k", value, 1.0) == value


@SETTINGS
@given(
    st.booleans(), st.sampled_from([str, lambda b: str(b).lower(), lambda b: "yes" if b else "no"])
)
def test_booleans_round_trip(value: bool, spell) -> None:
    assert parse_value("k", spell(value), False) is value


@SETTINGS
@given(st.text(max_size=30))
def test_strings_round_trip(value: str) -> None:
    assert parse_value("k", value, "default") == value


@SETTINGS
@given(st.lists(st.integers(min_value=1, max_value=10_000), max_size=5))
def test_int_tuples_round_trip(values: list[int]) -> None:
    assert parse_value("k", ",".join(map(str, values)), (512, 256)) == tuple(values)
    assert parse_value("k", values, (512, 256)) == tuple(values)


@SETTINGS
@given(anything, st.sampled_from([1, 1.0, True, "s", (1, 2), (), None]))
def test_parse_value_accepts_or_raises_config_error(raw: object, default: object) -> None:
    try:
        value = parse_value("some.key", raw, default)
    except ConfigError as exc:
        assert "some.key" in str(exc)
        return
    if isinstance(default, bool):
        assert isinstance(value, bool)
    elif isinstance(default, int):
        assert isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        assert isinstance(value, float) and math.isfinite(value)
    elif isinstance(default, str):
        assert isinstance(value, str)
    elif isinstance(default, tuple):
        assert isinstance(value, tuple)
    else:
        json.dumps(value)  # whatever is accepted must be storable


@pytest.mark.parametrize(
    ("raw", "default"),
    [
        ("nan", 1.0),
        ("inf", 1.0),
        ("1e999", 1.0),
        (10**400, 1.0),
        ("1.5", 1),
        ("maybe", True),
        (3, "s"),
        ("1,x", (1, 2)),
        ({"a": 1}, None),
    ],  # fmt: skip
)
def test_bad_values_are_config_errors(raw: object, default: object) -> None:
    with pytest.raises(ConfigError, match="some.key"):
        parse_value("some.key", raw, default)


# ----------------------------------------------------------------------------- parse_assignment

scopes = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,12}", fullmatch=True).filter(
    lambda s: not s.endswith(".")
)
keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
values = st.text(max_size=20).map(str.strip)


@SETTINGS
@given(scopes, keys, values, st.sampled_from(["", " "]))
def test_assignments_round_trip(scope: str, key: str, value: str, pad: str) -> None:
    text = f"{pad}{scope}{pad}.{pad}{key}{pad}={pad}{value}{pad}"
    assert parse_assignment(text) == (scope, key, value)


@SETTINGS
@given(st.one_of(st.text(max_size=30), st.text(alphabet="ab.= ", max_size=12), anything))
def test_parse_assignment_accepts_or_raises_config_error(raw: object) -> None:
    try:
        scope, key, value = parse_assignment(raw)  # type: ignore[arg-type]
    except ConfigError:
        return
    assert scope and key.isidentifier() and isinstance(value, str)


@SETTINGS
@given(st.one_of(st.text(max_size=30), anything))
def test_parse_name_list_accepts_or_raises_config_error(raw: object) -> None:
    try:
        names = parse_name_list(raw, "models")  # type: ignore[arg-type]
    except ConfigError:
        return
    assert names and all(isinstance(n, str) and n == n.strip() and n for n in names)
    assert len(set(names)) == len(names)


# ----------------------------------------------------------------------------- RunConfig.build

valid_sets = st.lists(
    st.one_of(
        st.floats(min_value=0, max_value=100, allow_nan=False).map(lambda b: f"vae.beta={b!r}"),
        st.floats(min_value=0, max_value=5, allow_nan=False).map(lambda s: f"noisy.noise_std={s}"),
        st.sampled_from(["bce", "mse"]).map(lambda r: f"ae.recon_loss={r}"),
        st.integers(min_value=1, max_value=512).map(lambda n: f"eval.n_pairs={n}"),
        st.sampled_from(["linear", "slerp"]).map(lambda k: f"eval.interpolation={k}"),
        st.lists(st.integers(1, 64), min_size=1, max_size=3).map(
            lambda h: "ae.hidden=" + ",".join(map(str, h))
        ),
    ),
    max_size=4,
)


@SETTINGS
@given(
    models=st.permutations(LECTURE_MODELS).flatmap(
        lambda p: st.integers(1, 4).map(lambda n: p[:n])
    ),
    seeds=st.lists(st.integers(0, 1000), min_size=1, max_size=4, unique=True),
    epochs=st.one_of(st.none(), st.integers(1, 100)),
    latent=st.one_of(st.none(), st.integers(1, 32)),
    lr=st.one_of(st.none(), st.floats(min_value=1e-6, max_value=10)),
    subset=st.one_of(st.none(), st.integers(2, 5000)),
    sets=valid_sets,
)
def test_valid_configs_build_and_round_trip(models, seeds, epochs, latent, lr, subset, sets):
    registry = get_registry()
    sets = [s for s in sets if s.split(".")[0] in (*models, "eval")]
    cfg = RunConfig.build(
        registry,
        models=",".join(models),
        seeds=",".join(map(str, seeds)),
        epochs=None if epochs is None else str(epochs),
        latent_dim=latent,
        lr=None if lr is None else repr(lr),
        subset=subset,
        sets=sets,
    )
    assert cfg.models == list(models) and cfg.seeds == seeds and cfg.subset == subset
    if epochs is not None and set(models) - {"pca"}:
        assert all(
            cfg.resolved_params(registry, m)["epochs"] == epochs for m in models if m != "pca"
        )
    # a run manifest stores to_dict() as JSON; --resume rebuilds the same grid from it
    stored = json.loads(json.dumps(cfg.to_dict()))
    again = RunConfig.from_dict(stored, registry)
    assert again == cfg
    assert [c.hash for c in plan(again, registry)] == [c.hash for c in plan(cfg, registry)]


@SETTINGS
@given(
    models=st.one_of(st.none(), st.text(max_size=15), st.sampled_from(["pca", "ae,vae", "nope"])),
    seeds=st.one_of(st.none(), st.text(max_size=10)),
    epochs=st.one_of(st.none(), st.text(max_size=6), st.integers(-5, 5)),
    latent=st.one_of(st.none(), st.text(max_size=6)),
    lr=st.one_of(st.none(), st.text(max_size=8)),
    subset=st.one_of(st.none(), st.integers(-3, 3)),
    device=st.one_of(st.none(), st.text(max_size=8), st.sampled_from(["cpu", "cuda:x", "tpu"])),
    sets=st.lists(st.text(max_size=15), max_size=3),
)
def test_any_cli_values_build_or_raise_config_error(
    models, seeds, epochs, latent, lr, subset, device, sets
):
    try:
        cfg = RunConfig.build(
            get_registry(),
            models=models,
            seeds=seeds,
            epochs=epochs,
            latent_dim=latent,
            lr=lr,
            subset=subset,
            device=device,
            sets=sets,
        )
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    json.dumps(cfg.to_dict())


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


toml_values = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(alphabet=string.ascii_letters + string.digits + ",.-_ ", max_size=10),
    ),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=5,
)
top_keys = st.sampled_from(
    [
        "models",
        "datasets",
        "seeds",
        "epochs",
        "latent_dim",
        "lr",
        "batch_size",
        "subset",
        "device",
        "data_dir",
        "metrics",
        "bogus",
    ]  # fmt: skip
)
section_keys = st.tuples(
    st.sampled_from(["model.vae", "model.ae", "model.nope", "dataset.digits", "eval"]),
    st.sampled_from(["beta", "epochs", "hidden", "n_pairs", "interpolation", "bogus", "lr"]),
)


@SETTINGS
@given(
    top=st.dictionaries(top_keys, toml_values, max_size=5),
    sections=st.dictionaries(section_keys, toml_values, max_size=4),
)
def test_any_toml_config_builds_or_raises_config_error(tmp_path_factory, top, sections):
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    tables: dict[str, list[str]] = {}
    for (table, key), value in sections.items():
        tables.setdefault(table, []).append(f"{key} = {_toml_value(value)}")
    for table, body in tables.items():
        lines += [f"[{table}]", *body]
    path = tmp_path_factory.mktemp("toml") / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        cfg = RunConfig.build(get_registry(), config_file=str(path))
    except ConfigError as exc:
        assert "\n" not in str(exc)
        assert str(path) in str(exc)  # every problem in the file names the file
        return
    assert cfg.eval.keys() == eval_defaults(get_registry()).keys()


stored_keys = st.sampled_from(
    ["models", "seeds", "common", "model_params", "eval", "device", "subset", "extra"]
)


@SETTINGS
@given(st.dictionaries(stored_keys, anything, max_size=6))
def test_any_stored_config_loads_or_raises_config_error(data):
    base = {"models": ["pca"], "datasets": ["digits"], "seeds": [0]}
    try:
        cfg = RunConfig.from_dict({**base, **data}, get_registry())
    except ConfigError as exc:
        assert str(exc)
        return
    assert cfg.models and cfg.seeds


# ----------------------------------------------------------------------------- docs/config.md


def _doc_examples() -> list[str]:
    """The ```toml blocks of docs/config.md, in order."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()
    return re.findall(r"```toml\n(.*?)```", text, flags=re.S)


def test_the_documented_config_example_builds_and_sets_every_key(tmp_path) -> None:
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

    from vaebench.options import FILE_KEYS

    full, dask = _doc_examples()[:2]
    data = tomllib.loads(full)
    # scheduler: shown in the Dask example; latent_dim: swept in [sweep] (set or swept, not both);
    # mlflow, track: need a tracking plugin's extra and create a store, so only the keys table
    # shows them
    assert set(FILE_KEYS) - set(data) == {"scheduler", "latent_dim", "mlflow", "track"}
    assert set(tomllib.loads(dask)) == {"executor", "scheduler"}
    path = tmp_path / "grid.toml"
    path.write_text(full)
    reg = get_registry()
    cfg = RunConfig.build(reg, config_file=str(path))
    assert (cfg.models, cfg.datasets, cfg.seeds) == (["pca", "ae", "vae"], ["digits", "moons"],
                                                     [0, 1, 2])  # fmt: skip
    assert cfg.metrics == ["reconstruction", "interpolation", "acai", "throughput"]
    assert cfg.common == {"epochs": 20, "batch_size": 128, "lr": 0.001, "arch": "mlp"}
    assert (cfg.subset, cfg.val_fraction, cfg.data_dir, cfg.out) == (
        1000, 0.1, "data", "results/grid")  # fmt: skip
    assert cfg.execution() == {"device": "cpu", "workers": 2, "threads": 1,
                               "executor": "local", "scheduler": None, "shard": "1/1"}  # fmt: skip
    assert cfg.model_params == {"vae": {"kl_warmup_epochs": 5},
                                "ae": {"hidden": (256, 128), "batch_norm": True}}  # fmt: skip
    assert cfg.dataset_options == {"moons": {"n_train": 1000, "n_test": 200}}
    assert (cfg.eval["n_pairs"], cfg.eval["throughput_seconds"]) == (64, 0.5)
    variants = {m: len(cfg.variants(reg, m)) for m in cfg.models}
    assert variants == {"pca": 2, "ae": 2, "vae": 6}
    assert sum(variants.values()) * len(cfg.datasets) * len(cfg.seeds) == 60  # as the doc says
    # the Dask settings replace the local ones
    path.write_text(full.replace('executor = "local"', dask))
    cfg = RunConfig.build(reg, config_file=str(path))
    assert (cfg.executor, cfg.scheduler) == ("dask", "tcp://scheduler.example.org:8786")


def test_precedence_is_defaults_then_file_then_command_line(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('models = ["ae", "vae"]\nepochs = 20\n[model.vae]\nepochs = 50\nbeta = 2.0\n')
    reg = get_registry()
    cfg = RunConfig.build(reg, config_file=str(path))
    assert cfg.resolved_params(reg, "ae")["epochs"] == 20  # file shorthand over the default
    assert cfg.resolved_params(reg, "vae")["epochs"] == 50  # [model.vae] over the shorthand
    cfg = RunConfig.build(reg, config_file=str(path), epochs="5", sets=["vae.beta=3"])
    assert cfg.resolved_params(reg, "ae")["epochs"] == 5  # command line over the file
    assert cfg.resolved_params(reg, "vae")["beta"] == 3.0
    # ... over the file's [model.vae] too (it once kept 50 for the vae alone)
    assert cfg.resolved_params(reg, "vae")["epochs"] == 5
    cfg = RunConfig.build(reg, config_file=str(path), epochs="5")
    assert cfg.resolved_params(reg, "vae")["beta"] == 2.0  # the table's other keys stay
    cfg = RunConfig.build(reg, config_file=str(path), epochs="5", sets=["vae.epochs=7"])
    assert [cfg.resolved_params(reg, m)["epochs"] for m in ("ae", "vae")] == [5, 7]
    assert RunConfig.build(reg, config_file=str(path), models="pca").models == ["pca"]
    with pytest.raises(ConfigError, match="swept twice"):
        path.write_text('[sweep]\n"vae.beta" = [1.0, 2.0]\n')
        RunConfig.build(reg, config_file=str(path), sweeps=["vae.beta=3,4"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epochs": "100001"}, "100001 for epochs: at most 100000"),
        ({"latent_dim": "100001"}, "100001 for latent_dim: at most 100000"),
        ({"batch_size": "1000001"}, "1000001 for batch_size: at most 1000000"),
        ({"sets": ["ae.hidden=512,100001"]}, "100001 in ae.hidden: each entry is at most 100000"),
        ({"sets": ["ae.hidden=" + ",".join(["8"] * 101)]}, "101 layers, at most 100"),
        ({"sets": ["vae.kl_warmup_epochs=100001"]}, "for vae.kl_warmup_epochs: at most 100000"),
        ({"sweeps": ["epochs=10,1000000"]}, "1000000 for epochs: at most 100000"),
        ({"threads": "1025"}, "from 1 to 1024"),
    ],
)
def test_documented_bounds_are_refused_naming_the_bound(options, message) -> None:
    with pytest.raises(ConfigError) as err:
        RunConfig.build(get_registry(), models="ae,vae", **options)
    assert message in str(err.value)


def test_the_bounds_themselves_are_accepted() -> None:
    cfg = RunConfig.build(get_registry(), models="ae", epochs="100000", latent_dim="100000",
                          batch_size="1000000", sets=["ae.hidden=100000"], threads="1024")  # fmt: skip
    assert cfg.common["epochs"] == 100_000 and cfg.model_params["ae"]["hidden"] == (100_000,)


@pytest.mark.parametrize("depth", [5, 200, 5000])
def test_deeply_nested_config_files_are_one_config_error(tmp_path, depth) -> None:
    for text in ("models = " + "[" * depth + "]" * depth,
                 "models = " + "{a = " * depth + "1" + "}" * depth):  # fmt: skip
        path = tmp_path / "deep.toml"
        path.write_text(text + "\n")
        with pytest.raises(ConfigError, match=r"deep\.toml (nests|:)"):
            RunConfig.build(get_registry(), config_file=str(path))
