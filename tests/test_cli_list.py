"""``vaebench list`` (issue 11.9): models with their hyperparameters (type, default, meaning),
metrics with default/cost/values/options, and text from plugins printed safely."""

from __future__ import annotations

import re
import warnings

import pytest
from click.testing import CliRunner

from vaebench.cli import cli
from vaebench.hookspecs import hookimpl
from vaebench.metric import Metric, Value
from vaebench.model import ModelSpec
from vaebench.plugins import printable
from vaebench.testing import tiny_dataset

# ----------------------------------------------------------------------------- models


def _rows(output: str, header: str) -> dict[str, list[str]]:
    """Lines under each entry of a section: {entry name: [its indented lines]}."""
    rows: dict[str, list[str]] = {}
    current = None
    inside = False
    for line in output.splitlines():
        if not line.startswith(" "):
            inside = line.startswith(header)
            continue
        if not inside:
            continue
        if line.startswith("  ") and not line.startswith("   "):
            current = line.split()[0]
            rows[current] = [line]
        elif current is not None:
            rows[current].append(line)
    return rows


def test_list_models_shows_every_hyperparameter_with_type_and_default(registry):
    result = CliRunner().invoke(cli, ["list", "models"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("models (hyperparameters: --set MODEL.KEY=VALUE):\n")
    rows = _rows(result.stdout, "models")
    assert set(rows) == set(registry.models)
    for name, reg in registry.models.items():
        params = {ln.split()[0]: ln.split()[1:] for ln in rows[name][1:]}
        assert set(params) == set(reg.spec.defaults()), name
    vae = {ln.split()[0]: ln.split()[1:] for ln in rows["vae"][1:]}
    assert vae["beta"][:2] == ["float", "1.0"]
    assert vae["latent_dim"][:2] == ["int", "10"]
    assert vae["hidden"][:2] == ["list[int]", "512,256"]  # as typed after --set vae.hidden=
    assert vae["recon_loss"][:2] == ["str", "bce"]
    noisy = {ln.split()[0]: ln.split()[1:] for ln in rows["noisy"][1:]}
    assert noisy["noise_std"][:2] == ["float", "1.0"]
    pca = rows["pca"]
    assert pca[0].split()[1:3] == ["vaebench", "0.1.0"]
    pca_params = {ln.split()[0]: ln.split()[1:] for ln in pca[1:]}
    assert pca_params["latent_dim"][:2] == ["int", "10"]
    assert pca_params["clip"][:2] == ["bool", "true"] and "clips" in " ".join(pca_params["clip"])
    assert pca_params["solver"][:2] == ["str", "auto"]


def test_plain_list_stays_one_line_per_entry():
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0
    # no hyperparameter lines (model names such as beta-vae and beta-tcvae contain "beta": only a
    # lone `beta` counts)
    assert not re.search(r"^\s+beta\s", result.stdout, re.M)
    assert "kl_warmup_epochs" not in result.stdout and "noise_std" not in result.stdout
    assert result.stdout.rstrip().endswith("(details: vaebench list models | datasets | metrics)")


class _DocumentedModel:
    """A plugin whose model documents some hyperparameters and not others."""

    @hookimpl
    def vaebench_models(self):
        from vaebench.nn import TorchAutoencoder

        return [
            ModelSpec(
                "documented",
                TorchAutoencoder,
                "a model with parameter docs",
                params={"latent_dim": 4, "temperature": 0.5, "use_bias": True, "tag": ""},
                param_docs={"temperature": "softmax temperature of the codebook"},
            )
        ]


class _ListedMetric(Metric):
    name = "listed"
    values = (Value("nll", False, unit="nats"), Value("count", None))
    options = {"listed_k": 5000, "listed_method": "fast"}
    option_docs = {"listed_k": "importance samples per test image"}
    default = False
    cost = "expensive"

    def evaluate(self, model, dataset, ctx):
        return {"nll": 0.0, "count": 1.0}


class _ListedPlugin:
    @hookimpl
    def vaebench_metrics(self):
        return [_ListedMetric()]


@pytest.fixture
def with_plugin(fresh_plugins):
    def register(*objs):
        pm = fresh_plugins.get_plugin_manager()
        for i, obj in enumerate(objs):
            pm.register(obj, name=f"list-test-{i}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fresh_plugins.get_registry()

    return register


def test_parameter_docs_are_shown_and_a_missing_one_is_left_blank(with_plugin):
    with_plugin(_DocumentedModel())
    result = CliRunner().invoke(cli, ["list", "models"])
    assert result.exit_code == 0, result.output
    lines = _rows(result.stdout, "models")["documented"][1:]
    by_key = {ln.split()[0]: ln for ln in lines}
    assert by_key["temperature"].split(None, 3) == [
        "temperature", "float", "0.5", "softmax temperature of the codebook",
    ]  # fmt: skip
    assert by_key["latent_dim"].split() == ["latent_dim", "int", "4"]  # no meaning: blank
    assert by_key["use_bias"].split() == ["use_bias", "bool", "true"]
    assert by_key["tag"].split() == ["tag", "str", '""']
    # columns line up
    assert len({ln.index(ln.split()[1]) for ln in lines}) == 1


def test_list_metrics_shows_default_cost_values_and_options(with_plugin):
    with_plugin(_ListedPlugin())
    result = CliRunner().invoke(cli, ["list", "metrics"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "metrics (options: --set eval.KEY=VALUE; opt-in metrics run with --metrics NAME):\n"
    )
    rows = _rows(result.stdout, "metrics")
    listed = rows["listed"]
    assert listed[0].endswith("opt-in (--metrics listed), cost: expensive")
    assert listed[1].strip() == "values: nll ↓ (nats), count"
    options = {ln.split()[0]: ln.split(None, 3)[1:] for ln in listed[2:]}
    assert options == {
        "eval.listed_k": ["int", "5000", "importance samples per test image"],
        "eval.listed_method": ["str", "fast"],
    }
    recon = rows["reconstruction"]
    assert recon[0].endswith("default, cost: cheap")
    assert "mse ↓ (per pixel)" in recon[1] and "psnr ↑ (dB)" in recon[1]


# ----------------------------------------------------------------------------- safe printing


class _Hostile:
    """A plugin whose texts carry terminal control sequences and forged lines."""

    @hookimpl
    def vaebench_models(self):
        from vaebench.nn import TorchAutoencoder

        return [
            ModelSpec(
                "hostile",
                TorchAutoencoder,
                "clears the screen\x1b[2J\nmodels:\n  fake  forged line",
                params={"latent_dim": 2},
                param_docs={"latent_dim": "code size\r\x07\u202eevil"},
            ),
            ModelSpec("bad\x1bname", TorchAutoencoder, "", params={"latent_dim": 2}),
        ]

    @hookimpl
    def vaebench_datasets(self):
        from vaebench.dataset import DatasetSpec

        return [DatasetSpec("hostile-data", tiny_dataset, "line one\nline two\x9b")]


def test_control_characters_from_plugins_are_escaped(with_plugin):
    reg = with_plugin(_Hostile())
    assert "bad\x1bname" not in reg.models  # such a name is refused at registration
    assert any("invalid model name 'bad\\x1bname'" in p for p in reg.problems)
    for what in ("models", "datasets", None):
        result = CliRunner().invoke(cli, ["list", *([what] if what else [])])
        assert result.exit_code == 0
        for bad in ("\x1b", "\r", "\x07", "\u202e", "\x9b"):
            assert bad not in result.output
    result = CliRunner().invoke(cli, ["list", "models"])
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("  hostile "))
    assert line.endswith("clears the screen\\x1b[2J\\nmodels:\\n  fake  forged line")
    assert "code size\\r\\x07\\u202eevil" in result.stdout
    assert "  fake" not in result.stdout.replace("\\n  fake", "")  # no forged entry line
    result = CliRunner().invoke(cli, ["plugins", "--all"])
    assert "\x1b" not in result.output
    assert "invalid model name 'bad\\x1bname'" in result.stderr


@pytest.mark.parametrize(
    "text, shown",
    [
        ("plain ünïcödé → ok", "plain ünïcödé → ok"),
        ("tab\there", "tab\\there"),
        ("esc\x1b[31mred", "esc\\x1b[31mred"),
        ("c1\x9bcsi", "c1\\x9bcsi"),
        ("line\u2028sep", "line\\u2028sep"),
        ("rtl\u202eoverride", "rtl\\u202eoverride"),
        ("non\u00a0breaking space", "non\u00a0breaking space"),
        (42, "42"),
    ],
)
def test_printable_escapes_only_what_could_corrupt_a_terminal(text, shown):
    assert printable(text) == shown


# ----------------------------------------------------------------------------- datasets


def test_list_datasets_shows_every_option_with_type_default_and_meaning(registry):
    result = CliRunner().invoke(cli, ["list", "datasets"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("datasets (options: --set DATASET.KEY=VALUE):\n")
    rows = _rows(result.stdout, "datasets")
    assert set(rows) == set(registry.datasets)
    for name, reg in registry.datasets.items():
        options = {ln.split()[0]: ln.split()[1:] for ln in rows[name][1:]}
        assert set(options) == set(reg.spec.defaults()), name
        assert all(len(v) > 2 for v in options.values()), f"{name}: an option has no meaning"
    digits = {ln.split()[0]: ln.split()[1:] for ln in rows["digits"][1:]}
    assert digits["test_fraction"][:2] == ["float", "0.2"]
    assert digits["binarize"][:2] == ["str", "none"]
    moons = {ln.split()[0]: ln.split()[1:] for ln in rows["moons-gap"][1:]}
    assert moons["regime"][:2] == ["str", "gap"]  # the spec's own default, not the loader's
    # the short listing stays one line per dataset
    short = CliRunner().invoke(cli, ["list"]).stdout
    assert "test_fraction" not in short


def test_a_dataset_without_options_or_docs_is_listed(registry):
    from vaebench.dataset import DatasetSpec

    spec = DatasetSpec("plain", lambda: tiny_dataset(), "no options")
    assert spec.defaults() == {} and spec.docs() == {}
    documented = DatasetSpec("opt", lambda n=3: tiny_dataset(), option_docs={"n": "images"})
    assert documented.docs() == {"n": "images"}
