"""report.html in a real browser: Debian's chromium, headless (marker ``browser``).

Loads the page of a small two-dataset report, checks that its script ran (the sortable tables
mark the page ``data-sort-ready``) and that the page wrote nothing to the console (an uncaught
error or a failed load would), and saves a screenshot for the test log (in
``$VAEBENCH_TEST_ARTIFACTS`` when set, else the test's temporary folder). Skips when no chromium
is installed -- unless ``VAEBENCH_REQUIRE_BROWSER=1`` (CI sets it), where a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_report_cells import write_cell

from vaebench.report import build_report

pytestmark = pytest.mark.browser

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("VAEBENCH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"no browser found ({', '.join(BROWSERS)}) but VAEBENCH_REQUIRE_BROWSER=1")
    pytest.skip(f"no headless browser installed ({', '.join(BROWSERS)})")


def _run(browser: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-extensions", "--disable-background-networking", "--enable-logging=stderr",
           "--v=0", f"--user-data-dir={profile}", *args, page.as_uri()]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _console(stderr: str, page: Path) -> list[str]:
    """Console lines the page wrote (chromium logs them as ``CONSOLE`` with their source)."""
    return [ln for ln in stderr.splitlines() if "CONSOLE" in ln and page.as_uri() in ln]


def test_report_html_renders_in_headless_chromium_without_console_errors(
    tmp_path: Path,
) -> None:
    browser = _browser()
    run = tmp_path / "r"
    rng = np.random.default_rng(1)
    for ds in ("toy", "<i>other</i>"):
        for model, base in (("a", 0.1), ("b", 0.13), ("c", 0.2)):
            for seed in range(3):
                write_cell(run, model, ds, seed, {"mse": base + rng.normal(0, 0.01)})
    build_report([run])
    page = run / "report.html"

    # the check can fail: a page with an error is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>undefinedFn();</script></body></html>")
    caught = _console(_run(browser, bad, tmp_path / "p0", "--dump-dom").stderr, bad)
    assert any("undefinedFn" in ln for ln in caught), caught

    dom = _run(browser, page, tmp_path / "p1", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console(dom.stderr, page) == []
    assert 'data-sort-ready="1"' in dom.stdout  # the inline script ran to its end
    assert "<table>" in dom.stdout and "&lt;i&gt;other&lt;/i&gt;" in dom.stdout

    where = Path(os.environ.get("VAEBENCH_TEST_ARTIFACTS", tmp_path))
    where.mkdir(parents=True, exist_ok=True)
    shot = where / "report-html.png"
    res = _run(browser, page, tmp_path / "p2", f"--screenshot={shot}", "--window-size=1280,2400",
               "--hide-scrollbars")  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert _console(res.stderr, page) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    print(f"screenshot of report.html: {shot}")
