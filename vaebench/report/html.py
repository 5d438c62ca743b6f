"""``report.html``: report.md as one self-contained page.

The Markdown is rendered by markdown-it-py (CommonMark with GitHub tables) with raw HTML turned
off, so every name that reached report.md -- already escaped for Markdown by
:mod:`vaebench.report.escape` -- comes out as text, never as markup. Figures referenced by
report.md are read from the report folder and inlined as ``data:`` URIs (a path that leaves the
folder or is a symbolic link is not read; such an image keeps its relative link). A small inline
script makes every table sortable by clicking a column header (numbers compare as numbers, the
leading ``mean`` of ``mean ± std``); nothing is loaded from the network (no external scripts,
styles or fonts), so the page works offline and from a mail attachment. The output is a pure
function of report.md and the figure files: the same inputs give the same bytes.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING, cast
from urllib.parse import unquote

if TYPE_CHECKING:
    from markdown_it.renderer import RendererHTML

__all__ = ["render", "SORT_SCRIPT", "STYLE"]

STYLE = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;"
    "max-width:75em;padding:0 1em;line-height:1.45;color:#111}"
    "table{border-collapse:collapse;margin:1em 0;border-top:2px solid #000;"
    "border-bottom:2px solid #000}"
    "th,td{padding:.2em .7em;text-align:right}th:first-child,td:first-child{text-align:left}"
    "thead th{border-bottom:1px solid #000;cursor:pointer;user-select:none}"
    "thead th[aria-sort=ascending]::after{content:' \\25B2'}"
    "thead th[aria-sort=descending]::after{content:' \\25BC'}"
    "tbody tr:nth-child(even){background:#f4f4f4}"
    "img{max-width:100%;height:auto}code{background:#f0f0f0;padding:0 .2em}"
    "pre{background:#f0f0f0;padding:.6em;overflow-x:auto}"
)

#: Sorts a table by the clicked header: numbers (the first number of a cell) before text; a
#: second click reverses. Marks the page ``data-sort-ready`` once set up (the browser test
#: reads it).
SORT_SCRIPT = r"""
(function () {
  function key(cell) {
    var t = cell.textContent.trim();
    var m = t.match(/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?/i);
    return m ? [0, parseFloat(m[0]), t] : [1, 0, t];
  }
  function cmp(a, b) {
    if (a[0] !== b[0]) return a[0] - b[0];
    if (a[0] === 0 && a[1] !== b[1]) return a[1] - b[1];
    return a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0;
  }
  document.querySelectorAll("table").forEach(function (table) {
    var body = table.tBodies[0];
    if (!table.tHead || !body) return;
    var heads = table.tHead.rows[table.tHead.rows.length - 1].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.title = "sort by this column";
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var r = cmp(key(a.cells[col]), key(b.cells[col]));
          return asc ? r : -r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.documentElement.setAttribute("data-sort-ready", "1");
})();
"""

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def _inline(src: str, out: Path) -> str:
    """A ``data:`` URI of the figure ``src`` (relative to ``out``), or ``src`` unchanged when it
    is not a regular file inside ``out`` (absolute, ``..``, a link) or of an unknown type."""
    rel = unquote(src)
    mime = _MIME.get(Path(rel).suffix.lower())
    if mime is None or rel.startswith("/") or ":" in rel:
        return src
    root = out.resolve()
    path = out / rel
    try:
        if path.is_symlink() or not path.resolve().is_relative_to(root) or not path.is_file():
            return src
        data = path.read_bytes()
    except OSError:
        return src
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def render(markdown: str, out: str | Path, title: str = "vaebench report") -> str:
    """The HTML page of report.md text ``markdown`` whose figures live under ``out``."""
    from markdown_it import MarkdownIt

    from vaebench.report.escape import escape_html

    out = Path(out)
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    html_renderer = cast("RendererHTML", md.renderer)  # the "commonmark" preset's
    default_image = html_renderer.rules["image"]

    def image(renderer, tokens, idx, options, env):  # noqa: ANN001, ANN202 - markdown-it API
        token = tokens[idx]
        token.attrSet("src", _inline(str(token.attrGet("src") or ""), out))
        return default_image(tokens, idx, options, env)

    md.add_render_rule("image", image)
    body = md.render(markdown)
    head = escape_html(title)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{head}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}"
        f"<script>{SORT_SCRIPT}</script>\n</body>\n</html>\n"
    )
