"""The glossary at the end of report.md: one line per value shown in the report's tables.

Each line gives the value's definition, direction, unit, the metric plugin that computed it and
its source paper, all from the declaration stored with the results (``Value.description``,
``Value.reference``, ...; see :class:`vaebench.metric.Value`), so no plugin has to be installed
to read it. Cells written by different versions may carry different declarations of a value;
the one most cells carry is shown.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["Term", "terms", "DIRECTIONS"]

#: How a direction is written in the glossary.
DIRECTIONS = {True: "↑ higher is better", False: "↓ lower is better", None: "descriptive"}


@dataclasses.dataclass(frozen=True)
class Term:
    """The stored declaration of one value, as the glossary shows it."""

    name: str
    metric: str
    higher_is_better: bool | None
    unit: str
    description: str
    reference: str

    @property
    def direction(self) -> str:
        return DIRECTIONS[self.higher_is_better]


def _direction(value: Any) -> bool | None:
    return None if value is None or value != value else bool(value)


def terms(cells: Iterable[dict[str, Any]], names: Sequence[str]) -> list[Term]:
    """A :class:`Term` for each of ``names`` (in that order, each once) that some finished cell
    declares, from the evaluations' stored value declarations (``evaluations[m].info``)."""
    seen: dict[str, Counter] = {}
    for cell in cells:
        if cell.get("status") != "ok":
            continue
        for metric, ev in sorted((cell.get("evaluations") or {}).items()):
            if ev.get("status") != "ok":
                continue
            for value, meta in (ev.get("info") or {}).items():
                if not isinstance(meta, dict):
                    continue
                term = Term(
                    name=str(value),
                    metric=str(meta.get("metric") or metric),
                    higher_is_better=_direction(meta.get("higher_is_better")),
                    unit=str(meta.get("unit") or ""),
                    description=str(meta.get("description") or "").strip(),
                    reference=str(meta.get("reference") or "").strip(),
                )
                seen.setdefault(str(value), Counter())[term] += 1
    out = []
    for name in dict.fromkeys(names):
        if name in seen:
            counts = seen[name]
            best = max(counts.values())
            out.append(min((t for t, n in counts.items() if n == best), key=repr))
    return out
