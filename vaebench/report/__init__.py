"""Reports: tables, figures and report.md, computed from stored results only.

Nothing here trains or imports a model; everything comes from the cell files written by the
runner (see :mod:`vaebench.results`). :func:`build_report` writes everything; for a notebook,
:func:`vaebench.report.content.collect` gives the aggregated results and every drawing function
of :mod:`vaebench.report.figures` returns a :class:`matplotlib.figure.Figure` (see
docs/reports.md).
"""

from __future__ import annotations

from vaebench.report.build import FORMATS, build_report

__all__ = ["FORMATS", "build_report"]
