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
        bad = {m for m in imported if m.startswith(("vaebench.models", "vaebench.runner",
                                                    "vaebench.nn", "vaebench.train"))}  # fmt: skip
        assert not bad, f"{path.name} imports {bad}"


def test_nothing_imports_the_cli():
    for path in PACKAGE.rglob("*.py"):
        if path.name == "cli.py":
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


def test_report_content_sits_below_the_modules_that_write_draw_and_render():
    """report/content.py (what a report shows) is read by the writer, the drawers and the page
    and imports none of them, not even for type checkers: no cycle through the report."""
    above = {f"vaebench.report.{m}" for m in ("build", "page", "ranks", "figures", "html",
                                                "interpolation_figures", "tables", "sweeps")}  # fmt: skip
    assert not _all_vaebench_imports(PACKAGE / "report" / "content.py") & above
    for name in ("page", "ranks", "interpolation_figures"):
        assert "vaebench.report.build" not in _all_vaebench_imports(PACKAGE / "report" /
                                                                   f"{name}.py")  # fmt: skip
