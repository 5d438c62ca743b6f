"""Text that is safe to show: one :func:`printable` for the terminal and for every report format.

Imports nothing else of vaebench, so the plugin manager, the command line and the reports share it.
"""

from __future__ import annotations

import unicodedata

__all__ = ["printable"]


def printable(text: object) -> str:
    """``str(text)`` as one line that is safe to print on a terminal or to put in a report.

    Control characters (C0 and C1, DEL, e.g. an ANSI escape ``\\x1b[2J``), line and paragraph
    separators, bidirectional overrides and other invisible format characters are written as
    Python escapes (``\\x1b``, ``\\n``, ``\\u202e``); every other character, non-ASCII letters,
    symbols and spaces included, is kept. Used for every name, description and message that
    comes from a plugin or a results folder, so none can corrupt the terminal, forge output
    lines, or end a line of a Markdown/LaTeX/CSV/HTML report.
    """
    s = str(text)
    if s.isprintable():
        return s
    return "".join(
        ch
        if ch.isprintable() or unicodedata.category(ch) == "Zs"
        else ch.encode("unicode_escape").decode("ascii")
        for ch in s
    )
