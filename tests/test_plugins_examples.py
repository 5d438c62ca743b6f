"""The example plugin packages under plugins/, installed with pip (into a temporary target, so
the environment other tests see is unchanged), show up with their distribution and run."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vaebench import plugins

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {
    "vaebench-convae": {"plugin": "convae", "models": ["conv-ae"], "metrics": []},
    "vaebench-betavae": {
        "plugin": "betavae",
        "models": ["beta-vae-warmup"],
        "metrics": ["kl-per-unit"],
    },
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """pip-install every example package (no dependencies, offline) into its own target."""
    targets = {}
    for dist in EXAMPLES:
        target = tmp_path_factory.mktemp(dist)
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
        if importlib.util.find_spec("hatchling") is not None:
            cmd.append("--no-build-isolation")  # stay offline: use the installed build backend
        proc = subprocess.run(
            [*cmd, str(ROOT / "plugins" / dist)], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
        targets[dist] = target
    return targets


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models train faster on one thread than on two contended ones."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def with_example(installed, monkeypatch):
    """Put one installed example on sys.path and rebuild the registry around the test."""
    added: list[str] = []

    def use(dist: str) -> plugins.Registry:
        monkeypatch.syspath_prepend(str(installed[dist]))
        added.append(dist.replace("-", "_"))
        plugins.reset()
        return plugins.get_registry()

    monkeypatch.delenv("VAEBENCH_LOAD_PLUGINS", raising=False)
    monkeypatch.setenv("VAEBENCH_STRICT_PLUGINS", "1")  # the examples must load cleanly
    yield use
    plugins.reset()
    for mod in list(sys.modules):
        if mod.split(".")[0] in added:
            del sys.modules[mod]


@pytest.mark.parametrize("dist", sorted(EXAMPLES))
def test_installed_example_registers_with_its_distribution(with_example, dist):
    reg = with_example(dist)
    expected = EXAMPLES[dist]
    for name in expected["models"]:
        assert (reg.model(name).dist, reg.model(name).version) == (dist, "0.1.0")
        assert reg.model(name).plugin == expected["plugin"]
    for name in expected["metrics"]:
        assert reg.metric(name).dist == dist
    info = {p.name: p for p in reg.plugins}[expected["plugin"]]
    assert (info.dist, info.builtin) == (dist, False)
    assert reg.problems == []
    assert reg.model("vae").dist == "vaebench"


@pytest.mark.parametrize("dist", sorted(EXAMPLES))
def test_installed_example_appears_in_list_and_passes_check(with_example, dist):
    from vaebench.cli import cli

    with_example(dist)
    model = EXAMPLES[dist]["models"][0]
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0
    line = next(ln for ln in result.output.splitlines() if ln.strip().startswith(model + " "))
    assert f"{dist} 0.1.0 (plugin {EXAMPLES[dist]['plugin']})" in line
    result = CliRunner().invoke(cli, ["check", model])
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output


@pytest.mark.parametrize("dist", sorted(EXAMPLES))
def test_installed_example_runs_next_to_a_builtin(with_example, dist, tmp_path):
    from vaebench.config import RunConfig
    from vaebench.grid import run

    reg = with_example(dist)
    model = EXAMPLES[dist]["models"][0]
    metrics = ["reconstruction", *EXAMPLES[dist]["metrics"]]
    models = [model, "vae", "pca"] if dist == "vaebench-betavae" else [model, "vae"]
    cfg = RunConfig.build(
        reg, models=models, datasets="digits", subset=150, epochs="2",
        metrics=metrics, device="cpu",
    )  # fmt: skip
    summary = run(cfg, tmp_path / "run", registry=reg, show_progress=False, save_states=False)
    assert summary.failed == [] and summary.metric_failures == []
    assert sorted(c.model for c in summary.ran) == sorted(models)
    from vaebench.results import read_cell

    records = [read_cell(p) for p in (tmp_path / "run" / "cells").glob("*.json")]
    mine = next(r for r in records if r["model"] == model)
    assert mine["plugins"]["model"] == f"{dist} 0.1.0 (plugin {EXAMPLES[dist]['plugin']})"
    assert "mse" in mine["metrics"]
    if dist == "vaebench-betavae":
        for rec in records:  # the plugin's metric runs on every model that has a posterior
            ev = rec["evaluations"]["kl-per-unit"]
            if rec["model"] == "pca":
                assert ev["status"] == "not_applicable" and "tags.has_posterior" in ev["reason"]
                continue
            assert ev["status"] == "ok" and ev["plugin"].startswith("vaebench-betavae 0.1.0")
            assert 0 <= rec["metrics"]["collapsed_units"] <= 10
            assert rec["metrics"]["max_unit_kl"] > 0
            assert len(ev["details"]["unit_kl_nats"]) == 10
        assert mine["history"]["kl_weight"] == pytest.approx([0.4, 0.8])
