"""Third-party plugins through entry points: good ones load, broken ones are reported by name.

Each test writes tiny distributions (a module plus a ``*.dist-info`` with ``entry_points.txt``)
into a temporary folder put on ``sys.path``; ``importlib.metadata`` finds their entry points there
exactly as it finds pip-installed ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from vaebench import PLUGIN_API_VERSION, hookspecs, plugins
from vaebench.plugins import PluginError, PluginWarning

KNOWN_HOOKS = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("vaebench_")))

TOY_MODEL = """
from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec, TorchAutoencoder


class ToyAE(TorchAutoencoder):
    '''A small MLP autoencoder.'''


@hookimpl
def vaebench_models():
    return [ModelSpec({name!r}, ToyAE, "toy autoencoder from a test plugin",
                      params={{"latent_dim": 4, "hidden": (16,), "epochs": 2}})]
"""

MakeDist = Callable[..., Path]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models train faster on one thread than on two contended ones."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeDist:
    """``make_dist(dist, version, {ep_name: "module"}, {module: source})`` writes an installed
    distribution into a folder on ``sys.path``; the plugin manager is reset around the test."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("VAEBENCH_LOAD_PLUGINS", raising=False)
    monkeypatch.setenv("VAEBENCH_STRICT_PLUGINS", "0")
    created: list[str] = []

    def make(
        dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]
    ) -> Path:
        for mod, source in modules.items():
            (site / f"{mod}.py").write_text(textwrap.dedent(source))
            created.append(mod)
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[vaebench]\n{lines}")
        return site

    plugins.reset()
    yield make
    plugins.reset()
    for mod in created:
        sys.modules.pop(mod, None)


def _registry_with_warnings() -> tuple[plugins.Registry, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = plugins.get_registry()
    return reg, [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


def _assert_builtins_work(reg: plugins.Registry) -> None:
    for name in ("pca", "ae", "noisy", "vae"):
        assert reg.model(name).dist == "vaebench"
    assert reg.dataset("digits").dist == "vaebench"
    assert reg.metric("reconstruction").dist == "vaebench"
    model = reg.model("pca").spec.create((1, 8, 8), latent_dim=2)
    import torch

    model.fit(torch.rand(16, 1, 8, 8))
    assert model.decode(model.encode(torch.rand(3, 1, 8, 8))).shape == (3, 1, 8, 8)


# ----------------------------------------------------------------------------- good plugins


def test_a_plugin_model_is_registered_with_its_distribution(make_dist: MakeDist) -> None:
    make_dist(
        "vaebench-toy",
        "1.2.3",
        {"toy": "toy_plugin"},
        {"toy_plugin": TOY_MODEL.format(name="toy-ae")},
    )
    reg, msgs = _registry_with_warnings()
    assert msgs == []
    toy = reg.model("toy-ae")
    assert (toy.plugin, toy.dist, toy.version) == ("toy", "vaebench-toy", "1.2.3")
    assert toy.origin == "vaebench-toy 1.2.3 (plugin toy)"
    info = {p.name: p for p in reg.plugins}["toy"]
    assert (info.dist, info.version, info.builtin, info.hooks) == (
        "vaebench-toy",
        "1.2.3",
        False,
        ("vaebench_models",),
    )
    _assert_builtins_work(reg)


def test_list_and_plugins_commands_show_the_distribution(make_dist: MakeDist) -> None:
    from vaebench.cli import cli

    make_dist(
        "vaebench-toy",
        "1.2.3",
        {"toy": "toy_plugin"},
        {"toy_plugin": TOY_MODEL.format(name="toy-ae")},
    )
    runner = CliRunner()
    out = runner.invoke(cli, ["list", "models"])
    assert out.exit_code == 0, out.output
    line = next(ln for ln in out.output.splitlines() if "toy-ae" in ln)
    assert "vaebench-toy 1.2.3 (plugin toy)" in line
    assert any(ln.strip().startswith("pca") for ln in out.output.splitlines())
    out = runner.invoke(cli, ["plugins"])
    assert out.exit_code == 0
    assert "toy  (vaebench-toy 1.2.3)  hooks: vaebench_models" in out.output


def test_load_plugins_env_limits_what_loads(make_dist: MakeDist, monkeypatch) -> None:
    make_dist(
        "vaebench-toy",
        "1.0",
        {"toy": "toy_plugin"},
        {"toy_plugin": TOY_MODEL.format(name="toy-ae")},
    )
    make_dist(
        "vaebench-other",
        "1.0",
        {"other": "other_plugin"},
        {"other_plugin": TOY_MODEL.format(name="other-ae")},
    )
    monkeypatch.setenv("VAEBENCH_LOAD_PLUGINS", "other")
    reg = plugins.get_registry()
    assert "other-ae" in reg.models and "toy-ae" not in reg.models
    plugins.reset()
    monkeypatch.setenv("VAEBENCH_LOAD_PLUGINS", "")
    reg = plugins.get_registry()
    assert "other-ae" not in reg.models and "toy-ae" not in reg.models
    _assert_builtins_work(reg)


# ----------------------------------------------------------------------------- broken plugins


def test_import_error_names_plugin_and_distribution(make_dist: MakeDist) -> None:
    make_dist(
        "vaebench-broken",
        "0.1",
        {"broken": "broken_plugin"},
        {"broken_plugin": "import a_dependency_that_is_not_installed\n"},
    )
    make_dist(
        "vaebench-toy",
        "1.0",
        {"toy": "toy_plugin"},
        {"toy_plugin": TOY_MODEL.format(name="toy-ae")},
    )
    reg, msgs = _registry_with_warnings()
    assert len(msgs) == 1, msgs
    assert 'error loading plugin "broken" (broken_plugin) from vaebench-broken 0.1' in msgs[0]
    assert "ModuleNotFoundError" in msgs[0]
    assert "a_dependency_that_is_not_installed" in msgs[0]
    assert reg.problems == msgs
    # the other plugin and the built-ins still load
    assert reg.model("toy-ae").dist == "vaebench-toy"
    _assert_builtins_work(reg)


def test_strict_mode_raises_instead(make_dist: MakeDist, monkeypatch) -> None:
    make_dist("vaebench-broken", "0.1", {"broken": "broken_plugin"}, {"broken_plugin": "1 / 0\n"})
    monkeypatch.setenv("VAEBENCH_STRICT_PLUGINS", "1")
    with pytest.raises(
        PluginError, match=r'plugin "broken" .*vaebench-broken 0\.1.*ZeroDivisionError'
    ):
        plugins.get_registry()


def test_strict_mode_raises_on_every_call_not_only_the_first(
    make_dist: MakeDist, monkeypatch
) -> None:
    make_dist("vaebench-broken", "0.1", {"broken": "broken_plugin"}, {"broken_plugin": "1 / 0\n"})
    make_dist(
        "vaebench-typo", "0.2", {"typo": "typo_plugin"},
        {"typo_plugin": "from vaebench.hookspecs import hookimpl\n"
                        "@hookimpl\ndef vaebench_model():\n    return []\n"},
    )  # fmt: skip
    monkeypatch.setenv("VAEBENCH_STRICT_PLUGINS", "1")
    messages = []
    for _ in range(3):
        with pytest.raises(PluginError) as info:
            plugins.get_registry()
        messages.append(str(info.value))
        assert len(info.value.problems) == 2
    assert messages[0] == messages[1] == messages[2]
    assert "\n" not in messages[0]
    assert messages[0].endswith(
        "(and 1 more problem(s): `vaebench plugins` lists them) [strict plugin mode: "
        "VAEBENCH_STRICT_PLUGINS]"
    )
    # the problems stay on record: outside strict mode the same registry is returned, with them
    monkeypatch.setenv("VAEBENCH_STRICT_PLUGINS", "0")
    reg, msgs = _registry_with_warnings()
    assert len(reg.problems) == 2 and msgs == reg.problems
    with pytest.raises(PluginError):
        plugins.get_registry(strict=True)


def test_a_load_plugins_name_that_matches_nothing_is_a_problem(
    make_dist: MakeDist, monkeypatch
) -> None:
    make_dist(
        "vaebench-toy",
        "1.0",
        {"toy": "toy_plugin"},
        {"toy_plugin": TOY_MODEL.format(name="toy-ae")},
    )
    monkeypatch.setenv("VAEBENCH_LOAD_PLUGINS", "toy, tyop")
    reg, msgs = _registry_with_warnings()
    assert msgs == [
        "VAEBENCH_LOAD_PLUGINS names 'tyop', but no installed plugin has that entry-point name; "
        "installed: toy"
    ]
    assert "toy-ae" in reg.models  # the names that match still load
    _assert_builtins_work(reg)


def _run_cli(site: Path, *args: str, **env_vars: str) -> subprocess.CompletedProcess:
    """The ``vaebench`` console script's entry point in a fresh process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    for key in ("VAEBENCH_STRICT_PLUGINS", "VAEBENCH_LOAD_PLUGINS"):
        env.pop(key, None)
    env.update(env_vars)
    return subprocess.run(
        [sys.executable, "-c", "from vaebench.cli import console; console()", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_strict_typo_in_load_plugins_exits_2_with_one_line(make_dist: MakeDist) -> None:
    site = make_dist(
        "vaebench-toy",
        "1.0",
        {"toy": "toy_plugin"},
        {"toy_plugin": TOY_MODEL.format(name="toy-ae")},
    )
    proc = _run_cli(
        site, "list", "models", VAEBENCH_STRICT_PLUGINS="1", VAEBENCH_LOAD_PLUGINS="typo"
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        "Error: VAEBENCH_LOAD_PLUGINS names 'typo', but no installed plugin has that entry-point "
        "name; installed: toy [strict plugin mode: VAEBENCH_STRICT_PLUGINS]\n"
    )
    # not strict: a warning, and the listing
    proc = _run_cli(site, "list", "models", VAEBENCH_LOAD_PLUGINS="typo")
    assert proc.returncode == 0
    assert proc.stderr.count("warning: VAEBENCH_LOAD_PLUGINS names 'typo'") == 1
    assert "pca " in proc.stdout and "toy-ae" not in proc.stdout


BROKEN_HOOKS = {
    "hook-typo": "@hookimpl\ndef vaebench_model():\n    return []\n",
    "no-marker": "def vaebench_models():\n    return []\n",
}


@pytest.mark.parametrize("body", sorted(BROKEN_HOOKS))
@pytest.mark.parametrize(
    "command", [["list", "models"], ["check", "pca"], ["run", "--models", "pca", "--no-report"]]
)
def test_strict_mode_stops_every_command_with_exit_2_and_one_line(
    make_dist: MakeDist, monkeypatch, tmp_path: Path, body: str, command: list[str]
) -> None:
    from vaebench.cli import cli

    source = "from vaebench.hookspecs import hookimpl\n" + BROKEN_HOOKS[body]
    make_dist("vaebench-bad", "0.1", {"bad": "bad_plugin"}, {"bad_plugin": source})
    monkeypatch.setenv("VAEBENCH_STRICT_PLUGINS", "1")
    out = tmp_path / "run"
    args = [*command, "--out", str(out)] if command[0] == "run" else command
    for _ in range(2):  # every time, not only the first
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert result.stdout == ""  # nothing listed, no check ran
        assert result.stderr.startswith('Error: plugin "bad" (bad_plugin) from vaebench-bad 0.1 ')
        assert result.stderr.count("\n") == 1
    assert not out.exists()  # run did not go on


def test_plugins_command_prints_each_problem_once(make_dist: MakeDist) -> None:
    site = make_dist(
        "vaebench-broken",
        "0.1",
        {"broken": "broken_plugin"},
        {"broken_plugin": "raise ImportError('no foo')\n"},
    )
    message = 'error loading plugin "broken" (broken_plugin) from vaebench-broken 0.1: ImportError'
    proc = _run_cli(site, "plugins")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(message) == 1
    assert proc.stderr.startswith(f"problem: {message}")
    proc = _run_cli(site, "plugins", VAEBENCH_STRICT_PLUGINS="1")
    assert proc.returncode == 2
    assert proc.stderr.count(message) == 1
    assert proc.stderr.endswith(
        "1 plugin problem(s) in strict plugin mode (VAEBENCH_STRICT_PLUGINS)\n"
    )


def test_command_line_warns_and_builtins_still_work(make_dist: MakeDist) -> None:
    site = make_dist(
        "vaebench-broken",
        "0.1",
        {"broken": "broken_plugin"},
        {"broken_plugin": "raise ImportError('no foo')\n"},
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    env.pop("VAEBENCH_STRICT_PLUGINS", None)
    env.pop("VAEBENCH_LOAD_PLUGINS", None)
    proc = subprocess.run(
        [sys.executable, "-c", "from vaebench.cli import console; console()", "list", "models"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    msg = 'error loading plugin "broken" (broken_plugin) from vaebench-broken 0.1: ImportError: no foo'
    assert msg in proc.stderr
    assert "vae " in proc.stdout and "pca " in proc.stdout


def test_model_name_clash_with_a_builtin_keeps_the_builtin(make_dist: MakeDist) -> None:
    make_dist(
        "vaebench-clash",
        "0.2",
        {"clash": "clash_plugin"},
        {"clash_plugin": TOY_MODEL.format(name="vae")},
    )
    reg, msgs = _registry_with_warnings()
    assert msgs == [
        'model name clash: "vae" from plugin "clash" (vaebench-clash 0.2) is ignored; it is '
        'already registered by plugin "vaebench.models.vae" (vaebench 0.1.0)'
    ]
    assert reg.model("vae").dist == "vaebench"
    _assert_builtins_work(reg)


def test_model_name_clash_between_two_plugins_names_both(make_dist: MakeDist) -> None:
    make_dist(
        "vaebench-aaa", "1.0", {"aaa": "aaa_plugin"}, {"aaa_plugin": TOY_MODEL.format(name="dup")}
    )
    make_dist(
        "vaebench-bbb", "2.0", {"bbb": "bbb_plugin"}, {"bbb_plugin": TOY_MODEL.format(name="dup")}
    )
    reg, msgs = _registry_with_warnings()
    assert len(msgs) == 1
    assert 'model name clash: "dup" from plugin "bbb" (vaebench-bbb 2.0) is ignored' in msgs[0]
    assert 'already registered by plugin "aaa" (vaebench-aaa 1.0)' in msgs[0]
    assert reg.model("dup").dist == "vaebench-aaa"


def test_entry_point_name_clash_names_both_distributions(make_dist: MakeDist) -> None:
    make_dist(
        "vaebench-aaa", "1.0", {"same": "aaa_plugin"}, {"aaa_plugin": TOY_MODEL.format(name="a-ae")}
    )
    make_dist(
        "vaebench-bbb", "2.0", {"same": "bbb_plugin"}, {"bbb_plugin": TOY_MODEL.format(name="b-ae")}
    )
    reg, msgs = _registry_with_warnings()
    assert len(msgs) == 1
    assert 'plugin "same" (bbb_plugin) from vaebench-bbb 2.0 not loaded' in msgs[0]
    assert "already registered by vaebench-aaa 1.0" in msgs[0]
    assert "a-ae" in reg.models and "b-ae" not in reg.models


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            "@hookimpl\ndef vaebench_models():\n    raise RuntimeError('boom')\n",
            'plugin "bad" (vaebench-bad 0.1) failed in vaebench_models(): RuntimeError: boom',
        ),
        (
            "@hookimpl\ndef vaebench_models():\n    return {'x': 1}\n",
            'plugin "bad" (vaebench-bad 0.1): vaebench_models() must return a list, got dict',
        ),
        (
            "@hookimpl\ndef vaebench_models():\n    return ['not a spec']\n",
            "vaebench_models() returned a str, expected vaebench.model.ModelSpec",
        ),
        (
            "VAEBENCH_PLUGIN_API = 99\n@hookimpl\ndef vaebench_models():\n    return []\n",
            f"needs plugin API 99, this vaebench 0.1.0 provides {PLUGIN_API_VERSION}",
        ),
        (
            "VAEBENCH_PLUGIN_API = '1'\n",
            "VAEBENCH_PLUGIN_API must be a positive integer, got '1'",
        ),
        (
            "@hookimpl\ndef vaebench_model():\n    return []\n",
            f"implements unknown hook(s) vaebench_model; known hooks: {KNOWN_HOOKS}",
        ),
        (
            "def vaebench_models():\n    return []\n",
            "defines vaebench_models without the @hookimpl marker",
        ),
        (
            "@hookimpl\ndef vaebench_models(extra):\n    return []\n",
            "PluginValidationError",
        ),
    ],
    ids=["hook-raises", "not-a-list", "wrong-type", "api-too-new", "api-not-int", "hook-typo",
         "no-marker", "bad-signature"],
)  # fmt: skip
def test_broken_hooks_are_reported_by_plugin_and_distribution(
    make_dist: MakeDist, body: str, expected: str
) -> None:
    source = "from vaebench.hookspecs import hookimpl\n" + body
    make_dist("vaebench-bad", "0.1", {"bad": "bad_plugin"}, {"bad_plugin": source})
    reg, msgs = _registry_with_warnings()
    assert len(msgs) == 1, msgs
    assert expected in msgs[0]
    assert '"bad"' in msgs[0] and "vaebench-bad 0.1" in msgs[0]
    _assert_builtins_work(reg)


def test_metric_value_name_clash_ignores_the_later_metric(make_dist: MakeDist) -> None:
    source = """
    from vaebench.hookspecs import hookimpl
    from vaebench.metric import Metric, Value

    class MyMSE(Metric):
        name = "my-mse"
        values = (Value("mse", False),)

        def evaluate(self, model, dataset, ctx):
            return {"mse": 0.0}

    @hookimpl
    def vaebench_metrics():
        return [MyMSE()]
    """
    make_dist("vaebench-mse", "0.3", {"mse": "mse_plugin"}, {"mse_plugin": source})
    reg, msgs = _registry_with_warnings()
    assert len(msgs) == 1
    assert 'metric "my-mse" from plugin "mse" (vaebench-mse 0.3) is ignored' in msgs[0]
    assert 'already reported by metric "reconstruction"' in msgs[0]
    assert "my-mse" not in reg.metrics


# ----------------------------------------------------------------------------- in a run

BROKEN_MODELS = """
import torch
from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec, TorchAutoencoder


class Boom(TorchAutoencoder):
    def fit(self, x, progress=None):
        raise RuntimeError("exploded in fit")


class Flat(TorchAutoencoder):
    '''decode forgets to reshape: returns (N, D) instead of (N, C, H, W).'''

    def decode(self, z):
        with torch.inference_mode():
            return torch.sigmoid(self.decoder_logits(z))


@hookimpl
def vaebench_models():
    small = {"latent_dim": 2, "hidden": (8,), "epochs": 1}
    return [ModelSpec("boom", Boom, "raises in fit", params=small),
            ModelSpec("flat", Flat, "wrong decode shape", params=small)]
"""


def test_failing_plugin_models_fail_their_cells_and_the_grid_goes_on(
    make_dist: MakeDist, tmp_path: Path
) -> None:
    from vaebench.config import RunConfig
    from vaebench.grid import run

    make_dist("vaebench-broken-models", "0.4", {"brk": "brk_plugin"}, {"brk_plugin": BROKEN_MODELS})
    reg = plugins.get_registry()
    cfg = RunConfig.build(
        reg, models="boom,flat,pca", datasets="digits", subset=120, metrics="reconstruction",
        device="cpu", latent_dim="2",
    )  # fmt: skip
    out = tmp_path / "run"
    summary = run(cfg, out, registry=reg, show_progress=False, save_states=False)
    assert [c.model for c in summary.ran] == ["pca"]
    failed = dict((c.model, reason) for c, reason in summary.failed)
    assert failed["boom"].startswith("RuntimeError: exploded in fit")
    assert "decode returned shape (2, 64), expected (2, 1, 8, 8)" in failed["flat"]
    # each failed cell's record names the plugin and distribution the model came from
    records = {}
    for path in (out / "cells").glob("*.json"):
        rec = json.loads(path.read_text())
        records[rec["model"]] = rec
    assert records["boom"]["status"] == "failed"
    assert records["boom"]["plugins"]["model"] == "vaebench-broken-models 0.4 (plugin brk)"
    assert records["flat"]["plugins"]["model"] == "vaebench-broken-models 0.4 (plugin brk)"
    assert records["pca"]["status"] == "ok"


def test_check_command_reports_the_failing_check_of_a_plugin_model(make_dist: MakeDist) -> None:
    from vaebench.cli import cli

    make_dist("vaebench-broken-models", "0.4", {"brk": "brk_plugin"}, {"brk_plugin": BROKEN_MODELS})
    result = CliRunner().invoke(cli, ["check", "flat"])
    assert result.exit_code == 1, result.output
    assert "flat (vaebench-broken-models 0.4 (plugin brk)):" in result.output
    assert "PASS check_encode_shape" in result.output
    assert (
        "FAIL check_decode_shape: expected decode(encode(x)) to have shape (5, 1, 8, 8) "
        "(codes (5, 2)), got (5, 64)" in result.output
    )
    result = CliRunner().invoke(cli, ["check", "boom"])
    assert result.exit_code == 1
    assert "FAIL check_encode_shape: expected that encode returns float32 codes" in result.output
    assert "RuntimeError: exploded in fit" in result.output
