"""The README's commands, links and plugin example stay true.

- the two fresh-machine commands: the test command installs the extras CI installs (so the Dask
  and MLflow tests run, not skip) and runs the command ``.ci/run`` runs;
- every ``vaebench <command> --option`` it shows is a real command and option (the check of
  ``tests/test_docs_cli.py``, applied to the README);
- every relative link points to a file of the repository;
- the plugin example builds, trains one epoch and reports its loss terms.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest
from test_docs_cli import doc_calls, problems

from vaebench.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: Links to pages that are being written while this test is; they must exist once written.
PENDING = {"docs/api.md"}


def fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)


def test_readme_opens_with_the_two_fresh_machine_commands():
    first, second = (block.strip() for block in fenced(README, "bash")[:2])
    assert first == "pip install torch==2.13.0 && pip install -e . && vaebench run"
    assert second == (
        'pip install torch==2.13.0 && pip install -e ".[test,dask,mlflow,index]" && python -m pytest -q'
    )
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 -m pytest -q" in ci
    ci_extras = set(re.search(r'pip install -q -e "\.\[([\w,]+)\]"', ci).group(1).split(","))
    readme_extras = set(re.search(r'"\.\[([\w,]+)\]"', second).group(1).split(","))
    assert ci_extras - {"dev"} == readme_extras  # dev is ruff and tox: lint, not tests


def test_readme_shows_only_real_commands_and_options():
    cli.load_plugin_commands()  # the built-in `mlflow` command comes through the plugin hook
    commands = dict(cli.commands)
    calls = doc_calls(README)
    assert len(calls) > 20
    wrong = [f"README.md:{n}: {c!r}: {p}" for n, c in calls for p in problems(c, commands)]
    assert not wrong, "\n".join(wrong)


def test_readme_links_point_to_files():
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [t for t in targets if "://" not in t]
    assert local
    missing = [t for t in local if t not in PENDING and not (ROOT / t).exists()]
    assert not missing, missing


def test_readme_plugin_example_builds_and_trains():
    torch = pytest.importorskip("torch")
    (code,) = [block for block in fenced(README, "python") if "@hookimpl" in block]
    module = types.ModuleType("readme_plugin")
    exec(compile(code, "README.md", "exec"), module.__dict__)
    (spec,) = module.vaebench_models()
    assert spec.name == "sparse-ae"
    model = spec.factory(input_shape=(1, 8, 8), device=torch.device("cpu"), epochs=1, l1=0.1)
    torch.manual_seed(0)
    model.fit(torch.rand(32, 1, 8, 8))
    terms = model.loss(torch.rand(4, 1, 8, 8))
    assert set(terms) == {"loss", "recon", "l1"}
    assert torch.isclose(terms["loss"], terms["recon"] + 0.1 * terms["l1"])
    assert model.encode(torch.rand(3, 1, 8, 8)).shape == (3, model.latent_dim)
