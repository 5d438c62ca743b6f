"""The layering rules of docs/architecture.md, checked at run time and in the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import vaebench

PACKAGE = Path(vaebench.__file__).parent


def _loaded_after_import(module: str) -> set[str]:
    code = (
        "import sys\n"
        f"import {module}\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('vaebench'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(out.stdout.split())


def _runtime_vaebench_imports(path: Path) -> set[str]:
    """vaebench modules a file imports outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, typing_only)
            return
        if not typing_only:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vaebench"):
                found.add(node.module)
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("vaebench"))
        for child in ast.iter_child_nodes(node):
            visit(child, typing_only)

    visit(tree, False)
    return found


#: What each contract module may import of vaebench: only the small I/O module (one atomic
#: writer and lock, issue 19), which itself imports nothing of vaebench.
CONTRACT_ALLOWED = {
    "vaebench.model": {"vaebench.fileio"},
    "vaebench.hookspecs": set(),
    "vaebench.fileio": set(),
}


@pytest.mark.parametrize("module", sorted(CONTRACT_ALLOWED))
def test_contract_modules_import_nothing_else_of_vaebench(module):
    allowed = CONTRACT_ALLOWED[module]
    assert _loaded_after_import(module) == {"vaebench", module, *allowed}
    assert _runtime_vaebench_imports(PACKAGE / f"{module.split('.')[1]}.py") == allowed


@pytest.mark.parametrize("module", ["vaebench.dataset", "vaebench.metric"])
def test_other_contract_modules_import_only_errors(module):
    assert _loaded_after_import(module) <= {"vaebench", "vaebench.errors", module}


def test_moved_names_still_import_from_the_contract():
    from vaebench import model, nn
    from vaebench.errors import DivergenceError

    assert model.TorchAutoencoder is nn.TorchAutoencoder
    assert model.reconstruction_loss is nn.reconstruction_loss
    assert model.DivergenceError is DivergenceError
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        model.nope  # noqa: B018


def test_report_and_tidy_never_import_a_model_or_the_runner():
    for path in [*sorted((PACKAGE / "report").glob("*.py")), PACKAGE / "tidy.py"]:
        imported = _runtime_vaebench_imports(path)
        bad = {m for m in imported if m.startswith(("vaebench.models", "vaebench.grid", "vaebench.task",
                                                    "vaebench.nn", "vaebench.train"))}  # fmt: skip
        assert not bad, f"{path.name} imports {bad}"


def test_nothing_imports_the_cli():
    for path in PACKAGE.rglob("*.py"):
        if PACKAGE / "cli" in path.parents:  # the command line's own modules
            continue
        assert "vaebench.cli" not in _runtime_vaebench_imports(path), path


def test_every_vaebench_error_has_one_base():
    from vaebench import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.VaebenchError), name
    assert vaebench.VaebenchError is errors.VaebenchError
    # the familiar built-in types still catch them
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.DivergenceError, RuntimeError)
    assert issubclass(errors.DiskFullError, OSError)


def test_the_package_ships_type_information():
    assert (PACKAGE / "py.typed").is_file()


def test_metric_modules_register_themselves_without_a_circle():
    from vaebench.plugins import DEFAULT_PLUGINS, get_registry

    assert "vaebench.metrics.acai" in DEFAULT_PLUGINS
    registered = get_registry().metrics
    assert registered["acai"].plugin == registered["midpoint"].plugin == "vaebench.metrics.acai"
    assert "vaebench.metrics.acai" not in _runtime_vaebench_imports(
        PACKAGE / "metrics" / "interpolation.py"
    )


def test_the_hook_contract_names_no_vaebench_module_even_for_type_checkers():
    """hookspecs describes what a hook receives with its own types (``CellInfo``): no import of
    vaebench anywhere in its source, ``if TYPE_CHECKING:`` blocks included."""
    tree = ast.parse((PACKAGE / "hookspecs.py").read_text())
    imported = {
        name
        for node in ast.walk(tree)
        for name in (
            [node.module or ""] if isinstance(node, ast.ImportFrom)
            else [a.name for a in node.names] if isinstance(node, ast.Import)
            else []
        )
    }  # fmt: skip
    assert not {m for m in imported if m.split(".")[0] == "vaebench"}, imported
    assert "pluggy" in imported


def test_the_conformance_kit_is_a_package_of_small_modules():
    """vaebench.testing (once one 2000-line file) stays split: no module over 800 lines, no
    function over 80, and every public name still imports from ``vaebench.testing``."""
    import vaebench.testing as kit

    folder = PACKAGE / "testing"
    assert (folder / "__init__.py").is_file() and not (PACKAGE / "testing.py").exists()
    for path in sorted(folder.glob("*.py")):
        text = path.read_text()
        assert text.count("\n") <= 800, f"{path.name}: {text.count(chr(10))} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 80, f"{path.name}:{node.lineno} {node.name} has {length} lines"
    assert all(hasattr(kit, name) for name in kit.__all__)
    assert kit.check_interface.__module__ == "vaebench.testing"


def test_docs_architecture_lists_every_module():
    """docs/architecture.md has one table row per module of vaebench/ (a plugin folder counts
    once), and one per module of the conformance kit."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = set()
    for path in PACKAGE.iterdir():
        if path.suffix == ".py":
            rows.add(f"| `{path.name}` |")
        elif path.is_dir() and (path / "__init__.py").is_file() and path.name != "testing":
            rows.add(f"| `{path.name}/` |")
    rows |= {f"| `testing/{p.name}` |" for p in (PACKAGE / "testing").glob("*.py")}
    missing = sorted(row for row in rows if row not in text)
    assert not missing, f"docs/architecture.md has no row for {missing}"


def test_bench_compares_with_the_models_own_step_not_a_built_in():
    """``vaebench bench`` gets every model from the registry: it imports no built-in model
    module, not even for type checkers, and copies no loss (issue 20)."""
    source = (PACKAGE / "bench.py").read_text()
    tree = ast.parse(source)
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not {m for m in imported if m.startswith(("vaebench.models", "vaebench.metrics"))}
    assert "reconstruction_loss" not in source and "binary_cross_entropy" not in source


#: The store: cell files, their record, their index, the tidy frame, file I/O, environment.
STORE_MODULES = ("results", "record", "index", "fileio", "environment", "tidy")
#: Training code the store never imports (a prefix matches its submodules).
TRAINING_CODE = ("torch", "vaebench.train", "vaebench.grid", "vaebench.task",
                 "vaebench.cells", "vaebench.models", "vaebench.nn", "vaebench.metrics")  # fmt: skip


def _every_import(path: Path, package: tuple[str, ...] | None = None) -> set[str]:
    """Every module a file imports anywhere: at module level or inside functions, at run time
    or under ``if TYPE_CHECKING:`` (``from vaebench import nn`` counts as ``vaebench.nn``;
    relative imports are resolved against ``package``, by default the file's own)."""
    if package is None:
        package = path.parent.relative_to(PACKAGE.parent).parts
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(package[: len(package) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def _is_training_code(module: str) -> bool:
    return any(module == t or module.startswith(f"{t}.") for t in TRAINING_CODE)


def test_the_store_imports_no_training_code():
    """results, record, index, fileio, environment and tidy import nothing of torch, the
    training loop, the runner's modules, the models, nn or the metrics -- in any form."""
    for name in STORE_MODULES:
        path = PACKAGE / f"{name}.py"
        bad = sorted(m for m in _every_import(path) if _is_training_code(m))
        assert not bad, f"vaebench/{name}.py imports {bad}"


def test_the_store_rule_sees_every_form_of_import(tmp_path):
    """The rule above catches imports inside functions, under TYPE_CHECKING and by ``from``."""
    sample = tmp_path / "sample.py"
    code = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch.nn\n"
            "def f():\n    from vaebench import nn\n    from . import train\n")  # fmt: skip
    sample.write_text(code, encoding="utf-8")
    found = {m for m in _every_import(sample, ("vaebench",)) if _is_training_code(m)}
    assert {"torch.nn", "vaebench.nn", "vaebench.train"} <= found
    assert not _is_training_code("vaebench.tidy") and not _is_training_code("torchvision")


def test_importing_the_store_loads_no_torch():
    code = ("import sys\n" + "".join(f"import vaebench.{m}\n" for m in STORE_MODULES)
            + "print('torch' in sys.modules)")  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


def test_the_configuration_imports_no_built_in_plugin_and_declares_no_model_bound():
    """Bounds belong to the model specs (``param_limits``), path datasets to the plugin that
    claims them (``vaebench_dataset_for_path``): config, options and sweeps import no built-in
    plugin module (data, models, metrics, tracking), not even lazily, and name no parameter."""
    plugin_packages = ("vaebench.data", "vaebench.models", "vaebench.metrics", "vaebench.tracking")
    for name in ("config.py", "options.py", "sweeps.py"):
        imported = _runtime_vaebench_imports(PACKAGE / name)
        assert not [m for m in imported if m.startswith(plugin_packages)], (name, imported)
        source = (PACKAGE / name).read_text()
        for parameter in ("kl_warmup_epochs", "conv_channels", "disc_hidden", "codebook_size"):
            assert parameter not in source, (name, parameter)


def _imports_with_names(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import in a file: module level, inside functions and in
    ``if TYPE_CHECKING:`` blocks alike (``names`` empty for ``import x``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            found.append((node.module or "", [a.name for a in node.names]))
    return found


def test_the_cli_imports_only_the_api_errors_and_its_own_parts():
    """The command line parses, calls the Python API, prints: of vaebench it imports only
    vaebench.api, vaebench.errors and vaebench.cli's own modules; besides, click and the
    standard library."""
    files = sorted((PACKAGE / "cli").glob("*.py"))
    assert {p.name for p in files} >= {"__init__.py", "__main__.py"}
    assert not (PACKAGE / "cli.py").exists()
    allowed = {"vaebench.api", "vaebench.errors"}
    wrong = []
    for path in files:
        for module, names in _imports_with_names(path):
            top = module.split(".")[0]
            if module == "vaebench":
                bad = [n for n in names if f"vaebench.{n}" not in allowed]
            elif top == "vaebench":
                ok = (
                    module in allowed
                    or module == "vaebench.cli"
                    or module.startswith("vaebench.cli.")
                )
                bad = [] if ok else [module]
            else:
                bad = (
                    []
                    if top in sys.stdlib_module_names or top in ("click", "__future__")
                    else [module]
                )
            wrong += [f"{path.name}: {b}" for b in bad]
    assert not wrong, wrong


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_builtin_plugin_module_is_imported_by_core_modules():
    """The built-in plugins (DEFAULT_PLUGINS) are registered through the hooks like any other
    plugin; no core module imports one (not even for type checkers). Exempt: the plugin modules
    themselves, plugins.py which lists them by name, and the conformance kit, whose metric
    checks fit a small built-in VAE."""
    from vaebench.plugins import DEFAULT_PLUGINS

    builtin = set(DEFAULT_PLUGINS)
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        if name in builtin or name == "vaebench.plugins" or name.startswith("vaebench.testing"):
            continue
        for module, names in _imports_with_names(path):
            hits = {module, *(f"{module}.{n}" for n in names)} & builtin
            wrong += [f"{name} imports {hit}" for hit in sorted(hits)]
    assert not wrong, wrong


def _all_vaebench_imports(path: Path) -> set[str]:
    """vaebench modules a file imports, ``if TYPE_CHECKING:`` blocks and functions included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vaebench"):
            found.add(node.module or "")
            if node.module == "vaebench.report":
                found.update(f"vaebench.report.{a.name}" for a in node.names)
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("vaebench"))
    return found


#: The run modules (issue 20): a parameter walks down config -> cells -> grid -> task -> the
#: model -> results. Each may import only the run modules listed for it (runtime, lazy or
#: type-only imports alike), so none returns to a module the walk has left.
RUN_MODULES_ALLOWED = {
    "cells": set(),
    "summary": {"cells"},
    "signals": {"summary"},
    "task": {"cells"},
    "grid": {"cells", "summary", "signals", "task"},
}


@pytest.mark.parametrize("name", sorted(RUN_MODULES_ALLOWED))
def test_the_run_modules_import_downward_only(name):
    imported = {m.split(".")[1] for m in _all_vaebench_imports(PACKAGE / f"{name}.py") if "." in m}
    run_modules = imported & (set(RUN_MODULES_ALLOWED) | {"runner"})
    assert run_modules <= RUN_MODULES_ALLOWED[name], f"{name}.py imports {run_modules}"


def test_no_module_below_the_grid_imports_the_run_modules():
    """The contract, the store, the evaluation framework, models and metrics know no cell
    object, task or grid (only ``config_hash`` of :mod:`vaebench.cells` is shared, by the
    evaluation keys)."""
    above = {"vaebench.grid", "vaebench.task", "vaebench.signals", "vaebench.summary"}
    for path in [
        *(PACKAGE / n for n in ("model.py", "metric.py", "dataset.py", "hookspecs.py",
                                "results.py", "evaluation.py", "train.py", "nn.py")),
        *(PACKAGE / "models").glob("*.py"),
        *(PACKAGE / "metrics").glob("*.py"),
    ]:  # fmt: skip
        bad = _all_vaebench_imports(path) & above
        assert not bad, f"{path.name} imports {bad}"
    assert not (PACKAGE / "runner.py").exists()


def test_report_content_sits_below_the_modules_that_write_draw_and_render():
    """report/content.py (what a report shows) is read by the writer, the drawers and the page
    and imports none of them, not even for type checkers: no cycle through the report."""
    above = {f"vaebench.report.{m}" for m in ("build", "page", "ranks", "figures", "html",
                                                "interpolation_figures", "tables", "sweeps")}  # fmt: skip
    assert not _all_vaebench_imports(PACKAGE / "report" / "content.py") & above
    for name in ("page", "ranks", "interpolation_figures"):
        assert "vaebench.report.build" not in _all_vaebench_imports(PACKAGE / "report" /
                                                                   f"{name}.py")  # fmt: skip


def _docstring_lines(node: ast.AST) -> int:
    body = getattr(node, "body", [])
    first = body[0] if body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first.end_lineno - first.lineno + 1
    return 0


def test_no_module_over_800_lines_and_no_function_over_80():
    """Issue 20: no file a newcomer must read whole -- every module of vaebench/ has at most 800
    lines and every function at most 80 (its docstring not counted)."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        where = path.relative_to(PACKAGE)
        if text.count("\n") > 800:
            long.append(f"{where}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1 - _docstring_lines(node)
                if length > 80:
                    long.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    assert not long, long


def _module_graph() -> dict[str, set[str]]:
    """vaebench module -> the vaebench modules it imports in any form (module level, in
    functions, under ``if TYPE_CHECKING:``); a module's own parent packages are not edges."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(f"{target}."):
                    edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every circle a depth-first walk of ``graph`` closes, as ``a -> b -> a``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for nxt in sorted(graph[name]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_no_import_cycle_among_vaebench_modules():
    """Issue 20: imports run one way -- no circle among vaebench's modules, whether the imports
    run at module level, inside functions or only for type checkers."""
    assert not _cycles(_module_graph())


def test_the_cycle_check_sees_circles_and_every_form_of_import():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a -> b -> c -> a"]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    graph = _module_graph()
    assert "vaebench.grid" in graph["vaebench.api"]  # a function-level import is an edge
    assert "vaebench.summary" in graph["vaebench.api"]  # so is a TYPE_CHECKING one
    assert "vaebench" not in graph["vaebench.plugins"]  # the parent package is not
