"""The documented hook API: every hook is documented and tested, and the guide's code works."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import pytest
import tomllib
from click.testing import CliRunner

import vaebench
from vaebench import hookspecs, plugins
from vaebench.dataset import DatasetSpec
from vaebench.metric import Metric
from vaebench.model import ModelSpec
from vaebench.testing import check_metric, check_model, dataset_checks, metric_checks, model_checks

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
HOOKS = sorted(
    name
    for name in dir(hookspecs)
    if name.startswith("vaebench_") and hasattr(getattr(hookspecs, name), "vaebench_spec")
)


def _code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOCS.read_text(), flags=re.S)


def _block(lang: str, first_line: str) -> str:
    blocks = [b for b in _code_blocks(lang) if b.startswith(first_line)]
    assert len(blocks) == 1, f"docs/plugins.md should have one {lang} block starting {first_line!r}"
    return blocks[0]


def test_the_hooks_are_the_documented_seven():
    assert HOOKS == [
        "vaebench_cell_finished",
        "vaebench_commands",
        "vaebench_dataset_for_path",
        "vaebench_datasets",
        "vaebench_epoch_end",
        "vaebench_metrics",
        "vaebench_models",
        "vaebench_trackers",
    ]


@pytest.mark.parametrize("hook", HOOKS)
def test_docs_document_every_hook(hook):
    text = DOCS.read_text()
    assert f"### `{hook}(" in text, f"docs/plugins.md has no section for {hook}"
    section = text.split(f"### `{hook}(", 1)[1].split("\n### ", 1)[0]
    assert "**Arguments:**" in section and "**Returns:**" in section
    assert "Added in plugin API" in section


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_docstrings_give_return_value_and_version(hook):
    doc = getattr(hookspecs, hook).__doc__
    assert ":return:" in doc
    added = re.search(r"\.\. versionadded:: (\d+)", doc)
    assert added and 1 <= int(added.group(1)) <= vaebench.PLUGIN_API_VERSION
    text = DOCS.read_text().split(f"### `{hook}(", 1)[1].split("\n### ", 1)[0]
    assert f"Added in plugin API {added.group(1)}." in text


def test_docs_list_every_conformance_check():
    text = DOCS.read_text()
    for check in (*model_checks(), *dataset_checks(), *metric_checks()):
        assert f"`{check.__name__}`" in text, check.__name__


def test_plugin_api_version_is_documented():
    assert isinstance(vaebench.PLUGIN_API_VERSION, int) and vaebench.PLUGIN_API_VERSION >= 1
    assert f"plugin API version {vaebench.PLUGIN_API_VERSION}" in hookspecs.__doc__
    assert f"now `{vaebench.PLUGIN_API_VERSION}`" in DOCS.read_text()


# ----------------------------------------------------------------------------- each hook


@pytest.mark.parametrize(
    "hook, kind", [("vaebench_models", ModelSpec), ("vaebench_datasets", DatasetSpec),
                   ("vaebench_metrics", Metric)],
)  # fmt: skip
def test_builtins_contribute_through_the_hooks(fresh_plugins, hook, kind):
    pm = fresh_plugins.get_plugin_manager()
    results = getattr(pm.hook, hook)()
    assert results and all(isinstance(r, list) for r in results)
    specs = [s for r in results for s in r]
    assert specs and all(isinstance(s, kind) for s in specs)
    for impl in getattr(pm.hook, hook).get_hookimpls():
        if impl.plugin_name.startswith("vaebench."):
            assert impl.plugin_name in plugins.DEFAULT_PLUGINS
    table = {"vaebench_models": "models", "vaebench_datasets": "datasets",
             "vaebench_metrics": "metrics"}[hook]  # fmt: skip
    registered = getattr(fresh_plugins.get_registry(), table)
    assert {s.name for s in specs} <= set(registered) | _third_party_names(registered)


def _third_party_names(table):
    return {name for name, r in table.items() if r.dist != "vaebench"}


class _CommandPlugin:
    """A plugin object (plugins need not be modules) that adds a command."""

    @hookspecs.hookimpl
    def vaebench_commands(self, cli):
        @click.command(name="greet")
        @click.argument("who")
        def greet(who):
            click.echo(f"hello {who}")

        cli.add_command(greet)


def test_commands_hook_adds_a_subcommand(fresh_plugins):
    pm = fresh_plugins.get_plugin_manager()
    pm.register(_CommandPlugin(), name="test-commands")
    group = click.Group("vaebench")
    pm.hook.vaebench_commands(cli=group)
    result = CliRunner().invoke(group, ["greet", "world"])
    assert result.exit_code == 0 and result.output == "hello world\n"


# ----------------------------------------------------------------------------- the guide's code


@pytest.fixture
def tutorial_package(tmp_path, monkeypatch, fresh_plugins):
    """The guide's package, "installed": its module plus a dist-info built from its
    pyproject.toml block, on sys.path."""
    pyproject = tomllib.loads(_block("toml", "# pyproject.toml"))["project"]
    site = tmp_path / "site"
    (site / "my_vaebench").mkdir(parents=True)
    (site / "my_vaebench" / "__init__.py").write_text("")
    (site / "my_vaebench" / "plugin.py").write_text(_block("python", "# my_vaebench/plugin.py"))
    info = site / f"my_vaebench-{pyproject['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {pyproject['name']}\nVersion: {pyproject['version']}\n"
    )
    eps = pyproject["entry-points"]["vaebench"]
    (info / "entry_points.txt").write_text(
        "[vaebench]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("VAEBENCH_LOAD_PLUGINS", raising=False)
    monkeypatch.setenv("VAEBENCH_STRICT_PLUGINS", "1")  # the guide's plugin must load cleanly
    yield pyproject
    for mod in ("my_vaebench", "my_vaebench.plugin"):
        sys.modules.pop(mod, None)


def test_the_guides_plugin_installs_lists_and_passes_the_kit(tutorial_package):
    reg = plugins.get_registry()
    sparse = reg.model("sparse-ae")
    assert (sparse.dist, sparse.version, sparse.plugin) == ("my-vaebench", "0.1.0", "sparse")
    assert set(sparse.spec.defaults()) >= {"l1", "latent_dim", "epochs", "hidden"}
    check_model("sparse-ae")
    from vaebench.cli import cli

    result = CliRunner().invoke(cli, ["list", "models"])
    assert "my-vaebench 0.1.0 (plugin sparse)" in result.output
    result = CliRunner().invoke(cli, ["check", "sparse-ae"])
    assert result.exit_code == 0, result.output


def test_the_guides_metric_example_passes_the_kit():
    namespace: dict = {}
    exec(
        _block(
            "python",
            "import torch\n\nfrom vaebench.hookspecs import hookimpl\nfrom vaebench.metric",
        ),
        namespace,
    )  # noqa: S102
    metric = namespace["vaebench_metrics"]()[0]
    assert metric.name == "code-norm"
    check_metric(metric)


def test_the_guides_command_example_works():
    namespace: dict = {}
    exec(_block("python", "import click"), namespace)  # noqa: S102
    group = click.Group("vaebench")
    namespace["vaebench_commands"](group)
    result = CliRunner().invoke(group, ["hello"])
    assert result.output == "hello from my plugin\n"


# ----------------------------------------------------------------------------- beyond the basics


def _exec_block(lang: str, first_line: str) -> dict:
    namespace: dict = {"__name__": "docs_example"}
    exec(_block(lang, first_line), namespace)  # noqa: S102
    return namespace


def test_the_guides_composition_example_passes_the_kit():
    import torch

    ns = _exec_block("python", "# my_vaebench/convnet.py")
    spec = ns["SPEC"]
    assert "encoder" not in spec.defaults()
    model = spec.create((1, 8, 8))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 2  # the pair given, nothing else built
    check_model(spec)


def test_the_guides_tags_example():
    ns = _exec_block("python", "import dataclasses\n\nfrom vaebench.nn import TorchAutoencoder")
    model = ns["NeedsSixteen"]((1, 8, 8))
    assert model.tags.unsupported((1, 8, 8)) == "needs images of at least 16x16 pixels, got 8x8"
    assert model.tags.unsupported((1, 16, 16)) is None


def test_the_guides_training_hooks_example():
    import torch

    from vaebench.train import seed_everything

    ns = _exec_block("python", "import torch\nfrom torch import Tensor")
    seed_everything(0)
    model = ns["LateSparseAE"]((1, 8, 8), hidden=(16,), epochs=4, l1=0.1, l1_from=3, lr=0.01)
    report = model.fit(torch.rand(32, 1, 8, 8))
    assert report.history["l1_weight"] == [0.0, 0.0, 0.1, 0.1]
    assert isinstance(model.configure_optimizer(), torch.optim.SGD)
    check_model(ModelSpec("late-sparse", ns["LateSparseAE"]))


def test_the_guides_labels_example_trains_on_labels():
    import torch

    ns = _exec_block("python", "import dataclasses\n\nfrom torch import Tensor, nn")
    model = ns["LabelledAE"]((1, 8, 8), hidden=(16,), epochs=3, n_classes=2, alpha=5.0, lr=0.01)
    assert model.tags.uses_labels
    x = torch.rand(64, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > x.mean()).long()
    report = model.fit(x, y)
    assert report.history["ce"][-1] < report.history["ce"][0]


def test_the_guides_posterior_metric_passes_the_kit_and_skips_models_without_one():
    from vaebench.models.ae import AE
    from vaebench.testing import tiny_dataset

    metric = _exec_block("python", "from vaebench.metric import Metric, Value")["PosteriorStd"]()
    check_metric(metric)
    assert metric.applies_to(AE((1, 8, 8)), tiny_dataset()) == "the model has no posterior"


def test_the_guides_epoch_and_cell_hooks_example(tmp_path, monkeypatch, capsys):
    import json
    import types

    import pluggy

    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("docs_hooks")
    exec(_block("python", "import json"), module.__dict__)  # noqa: S102
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(module, name="docs-hooks")
    cell = hookspecs.CellInfo(
        model="ae", dataset="digits", seed=0, params={}, sweep={}, key="abc",
        stem="ae--digits--seed0--abc", label="ae / digits / seed 0",
    )  # fmt: skip
    pm.hook.vaebench_epoch_end(cell=cell, epoch=2, logs={"loss": 1.25})
    pm.hook.vaebench_cell_finished(cell=cell, record={"status": "ok"})
    assert capsys.readouterr().out == "ae / digits / seed 0: epoch 2, loss 1.250\n"
    lines = (tmp_path / "finished.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"cell": "ae--digits--seed0--abc", "status": "ok"}
    ]


def test_the_cell_hooks_receive_the_contracts_own_cell_type(fresh_plugins, tmp_path):
    """The runner hands the hooks a frozen :class:`hookspecs.CellInfo` (plain values, copies),
    never its own cell class, so a plugin depends on the contract alone."""
    import dataclasses

    from vaebench.config import RunConfig
    from vaebench.grid import run

    seen: list[tuple[str, object]] = []

    class Recorder:
        @hookspecs.hookimpl
        def vaebench_epoch_end(self, cell, epoch):
            seen.append(("epoch", cell))

        @hookspecs.hookimpl
        def vaebench_cell_finished(self, cell, record):
            seen.append(("finished", cell))
            cell.params["latent_dim"] = -1  # a copy: the stored cell is untouched

    fresh_plugins.get_plugin_manager().register(Recorder(), name="recorder")
    reg = fresh_plugins.get_registry()
    cfg = RunConfig.build(reg, models="pca", datasets="digits", seeds="3", subset=200,
                          sweeps=["latent_dim=2"], metrics="reconstruction", workers=1,
                          threads=1)  # fmt: skip
    summary = run(cfg, tmp_path / "r", registry=reg)
    (cell,) = summary.ran
    assert [kind for kind, _ in seen] == ["epoch", "finished"]
    for _, info in seen:
        assert type(info) is hookspecs.CellInfo
        assert (info.model, info.dataset, info.seed) == ("pca", "digits", 3)
        assert (info.key, info.stem, info.label) == (cell.key, cell.stem, cell.label)
        assert info.sweep == {"latent_dim": 2}
    assert seen[0][1].params == cell.params and cell.params["latent_dim"] == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        seen[0][1].seed = 1  # type: ignore[misc]
