"""Escaping for every format a report writes: names and stored strings are data, never markup.

Every string a report shows -- dataset, model, variant, metric and unit names, and anything read
from a results folder (manifest arguments, ``config.subset``, hyperparameter values, citations,
error reasons) -- goes through one function here for its format:

- :func:`printable` first turns control characters (``\\n``, ``\\r``, ``\\t``, ``\\x00``, line
  and paragraph separators, bidirectional overrides) into their visible Python escapes (``\\n``),
  so no name can end a line: it cannot leave a LaTeX ``%`` comment, start a Markdown heading or
  table row, or close a code block;
- :func:`escape_markdown` backslash-escapes the characters that GitHub Markdown reads as markup
  (``< >`` too, so ``<img onerror=...>`` is shown as text, never as a tag), :func:`md_code` and
  :func:`md_code_block` wrap text in a code span or fence longer than any backtick run inside;
- :func:`escape_latex` maps LaTeX specials and the symbols tables use to LaTeX, so any name
  compiles with pdflatex and none can run a command (``\\input``);
- :func:`escape_html` is :func:`html.escape` after :func:`printable`;
- :func:`csv_cell` neutralises spreadsheet formulas (OWASP "CSV injection"): a text cell that
  starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``.
  Numbers are never changed (only ``str`` values are touched);
- :func:`plot_text` escapes ``$`` so matplotlib never parses a name as mathtext.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Iterable
from typing import Any

from vaebench.text import printable

__all__ = [
    "printable",
    "escape_markdown",
    "md_code",
    "md_code_block",
    "escape_latex",
    "latex_comment",
    "escape_html",
    "csv_cell",
    "csv_safe_frame",
    "plot_text",
    "CSV_FORMULA_STARTS",
]

#: First characters that make a spreadsheet read a cell as a formula (OWASP).
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# ----------------------------------------------------------------------------- Markdown

#: Characters GitHub Markdown may read as markup inside a line (all ASCII punctuation may be
#: backslash-escaped in CommonMark, so escaping them is always safe).
_MD_SPECIAL = set("\\|*_`<>[]&$~#")


def escape_markdown(text: Any) -> str:
    """Text for a Markdown paragraph, heading or table cell: :func:`printable`, then every
    character in ``\\ | * _ ` < > [ ] & $ ~ #`` backslash-escaped."""
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in printable(text))


def _longest_backtick_run(text: str) -> int:
    best = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        best = max(best, run)
    return best


def md_code(text: Any) -> str:
    """An inline code span holding ``text`` verbatim (after :func:`printable`): delimited by
    more backticks than any run inside, padded when the text starts or ends with one. Not for
    table cells (GitHub splits cells at ``|`` even inside code)."""
    s = printable(text)
    fence = "`" * (_longest_backtick_run(s) + 1)
    pad = " " if s.startswith(("`", " ")) or s.endswith(("`", " ")) or not s else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def md_code_block(lines: Iterable[Any], info: str = "") -> list[str]:
    """A fenced code block (list of lines) holding ``lines`` verbatim: each line made
    :func:`printable` (so none can break out), the fence longer than any backtick run inside."""
    body = [printable(line) for line in lines]
    n = max([3] + [_longest_backtick_run(line) + 1 for line in body])
    return ["`" * n + info, *body, "`" * n]


# ----------------------------------------------------------------------------- LaTeX

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "±": r"$\pm$",
    "–": "--",
    "—": "---",
    "−": "$-$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "†": r"$^\dagger$",
    "‡": r"$^\ddagger$",
    "×": r"$\times$",
    "·": r"$\cdot$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "≈": r"$\approx$",
    "∞": r"$\infty$",
    "°": r"$^\circ$",
    "§": r"\S{}",
    "µ": r"$\mu$",
    "½": r"$\frac{1}{2}$",
    "¼": r"$\frac{1}{4}$",
    "¾": r"$\frac{3}{4}$",
    "‘": "`",
    "’": "'",
    "“": "``",
    "”": "''",
}
_SUPERSCRIPTS = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ", "0123456789+-=()ni", strict=True))
_SUBSCRIPTS = dict(zip("₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎", "0123456789+-=()", strict=True))


def _latex_char(ch: str) -> str:
    if ch in _LATEX_SPECIAL:
        return _LATEX_SPECIAL[ch]
    if ord(ch) < 128:
        return ch
    name = unicodedata.name(ch, "")
    greek = name.startswith(("GREEK SMALL LETTER ", "GREEK CAPITAL LETTER "))
    if greek and len(name.split()) == 4:
        letter = name.rsplit(" ", 1)[-1].lower()
        if name.startswith("GREEK CAPITAL"):
            letter = letter.capitalize()
        return f"$\\{letter}$"
    if unicodedata.category(ch).startswith("L") and ord(ch) < 0x250:
        return ch  # Latin letters with accents: LaTeX's UTF-8 input handles them
    plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    # no ASCII form (CJK, Cyrillic, symbols): its code point, so distinct names stay distinct
    return "".join(_LATEX_SPECIAL.get(c, c) for c in plain) or f"{{[}}U+{ord(ch):04X}{{]}}"


def escape_latex(text: Any) -> str:
    """Text for LaTeX: :func:`printable` (no line breaks), LaTeX specials
    (``_ & % $ # { } ~ ^ \\ < > |``) escaped and the symbols tables use (``± ↑ ↓ † × – ⁻³`` and
    Greek letters) mapped to LaTeX, so that any name or unit compiles with pdflatex and none
    runs a command; other characters outside Latin script fall back to their ASCII form, or
    where they have none to their code point (``{[}U+6A21{]}``, braced so that no ``\\`` takes
    it for its optional argument: names that differ stay apart)."""
    text = printable(text)
    out: list[str] = []
    i = 0
    while i < len(text):
        for table, command in ((_SUPERSCRIPTS, "textsuperscript"), (_SUBSCRIPTS, "textsubscript")):
            if text[i] in table:
                j = i
                while j < len(text) and text[j] in table:
                    j += 1
                out.append(f"\\{command}{{{''.join(table[c] for c in text[i:j])}}}")
                i = j
                break
        else:
            out.append(_latex_char(text[i]))
            i += 1
    return "".join(out)


def latex_comment(text: Any) -> str:
    """A ``%`` comment line holding ``text`` (which cannot end the comment: no line breaks)."""
    return "% " + printable(text)


# ----------------------------------------------------------------------------- HTML


def escape_html(text: Any) -> str:
    """:func:`html.escape` (quotes too) after :func:`printable`."""
    return html.escape(printable(text), quote=True)


# ----------------------------------------------------------------------------- CSV


def csv_cell(value: Any) -> Any:
    """A CSV value that no spreadsheet runs as a formula: a ``str`` starting with ``=``, ``+``,
    ``-``, ``@``, tab or carriage return gets a leading ``'``; other values are returned as is
    (numbers are never changed)."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_STARTS):
        return "'" + value
    return value


def csv_safe_frame(frame: Any) -> Any:
    """A copy of a pandas frame with :func:`csv_cell` applied to every text value (and column
    name) of its non-numeric columns; numeric and boolean columns are untouched."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    out = frame.copy()
    for col in out.columns:
        if not (is_numeric_dtype(out[col].dtype) or is_bool_dtype(out[col].dtype)):
            out[col] = out[col].map(csv_cell)
    out.columns = [csv_cell(c) for c in out.columns]
    return out


# ----------------------------------------------------------------------------- figures


def plot_text(text: Any) -> str:
    """Text for a matplotlib label: :func:`printable`, ``$`` escaped (never mathtext)."""
    return printable(text).replace("$", r"\$")
