"""docs/api.md: every Python block runs, top to bottom in one namespace (as a reader would
paste them), and the page covers the whole public API and every error class."""

from __future__ import annotations

import re
from pathlib import Path

import vaebench
import vaebench.errors

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)


def test_every_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # tempfile.mkdtemp() in the examples
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code = blocks()
    assert len(code) >= 7
    namespace: dict = {"__name__": "api_md"}
    for i, block in enumerate(code):
        exec(compile(block, f"docs/api.md block {i + 1}", "exec"), namespace)  # noqa: S102


def test_the_page_covers_the_public_api_and_every_error():
    text = DOCS.read_text(encoding="utf-8")
    for name in vaebench.__all__:
        if name.startswith("__") or name == "PLUGIN_API_VERSION":
            continue
        assert f"{name}" in text, f"docs/api.md does not mention vaebench.{name}"
    errors = [n for n, v in vars(vaebench.errors).items()
              if isinstance(v, type) and issubclass(v, vaebench.errors.VaebenchError)]  # fmt: skip
    for name in errors:
        assert f"`{name}`" in text, f"docs/api.md does not list {name}"


def test_architecture_links_the_api_page():
    arch = (DOCS.parent / "architecture.md").read_text(encoding="utf-8")
    assert "(api.md)" in arch
