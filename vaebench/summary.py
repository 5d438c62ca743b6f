"""What a grid run did with each cell: :class:`RunSummary` (returned by
:func:`vaebench.grid.run` and :func:`vaebench.grid.evaluate`, carried by
:class:`vaebench.signals.RunInterrupted`) and the one-line text of an evaluate step.

Pure bookkeeping over :class:`~vaebench.cells.Cell` values and stored records: nothing here
trains, evaluates or writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vaebench.cells import Cell

__all__ = ["RunSummary", "evaluation_summary"]


@dataclasses.dataclass
class RunSummary:
    """What a call of :func:`run` or :func:`evaluate` did with each cell.

    ``ran``: trained by this call; ``evaluated``: stored model, metrics added or recomputed;
    ``skipped``: already complete before; ``unsupported``: ``(cell, reason)`` the model's tags
    do not support the dataset; ``elsewhere``: finished by another process while this one
    waited; ``busy``: still claimed by another process (only while the grid is in progress);
    ``failed``: ``(cell, reason)``; ``metric_failures``: ``(cell, metric, reason)``;
    ``nan_values``: ``(cell, value, reason)``; ``warnings``: ``(cell, message)``;
    ``no_state``: cells that could not be evaluated because their weights are not stored (their
    stored evaluations are kept).
    """

    out_dir: Path
    ran: list[Cell] = dataclasses.field(default_factory=list)
    evaluated: list[Cell] = dataclasses.field(default_factory=list)
    skipped: list[Cell] = dataclasses.field(default_factory=list)
    unsupported: list[tuple[Cell, str]] = dataclasses.field(default_factory=list)
    busy: list[Cell] = dataclasses.field(default_factory=list)
    failed: list[tuple[Cell, str]] = dataclasses.field(default_factory=list)
    elsewhere: list[Cell] = dataclasses.field(default_factory=list)
    metric_failures: list[tuple[Cell, str, str]] = dataclasses.field(default_factory=list)
    no_state: list[Cell] = dataclasses.field(default_factory=list)
    nan_values: list[tuple[Cell, str, str]] = dataclasses.field(default_factory=list)
    warnings: list[tuple[Cell, str]] = dataclasses.field(default_factory=list)
    run_id: str = ""
    execution: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: cell files ``evaluate`` could not read (truncated, corrupt): never evaluated, exit 1
    unreadable: list[Path] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.metric_failures and not self.unreadable

    @property
    def n_cells(self) -> int:
        return (
            len(self.ran)
            + len(self.evaluated)
            + len(self.skipped)
            + len(self.unsupported)
            + len(self.busy)
            + len(self.failed)
            + len(self.elsewhere)
        )

    def to_dict(self) -> dict[str, Any]:
        """Cell stems per outcome (the ``summary`` of a run manifest)."""
        return {
            "ran": [c.stem for c in self.ran],
            "evaluated": [c.stem for c in self.evaluated],
            "skipped": [c.stem for c in self.skipped],
            "unsupported": {c.stem: reason for c, reason in self.unsupported},
            "elsewhere": [c.stem for c in self.elsewhere],
            "busy": [c.stem for c in self.busy],
            "failed": {c.stem: reason for c, reason in self.failed},
            "metric_failures": [[c.stem, m, r] for c, m, r in self.metric_failures],
            "nan_values": [[c.stem, v, r] for c, v, r in self.nan_values],
            "warnings": [[c.stem, m] for c, m in self.warnings],
            "no_state": [c.stem for c in self.no_state],
        }

    def book(self, cell: Cell, record: Mapping[str, Any]) -> None:
        """Count a written record's metric failures, NaN values and warnings."""
        for name, ev in (record.get("evaluations") or {}).items():
            if ev.get("status") == "failed":
                plugin = ev.get("plugin") or ""
                note = "" if not plugin or plugin.startswith("vaebench ") else f" [{plugin}]"
                self.metric_failures.append((cell, name, ev.get("reason", "") + note))
            for value, reason in (ev.get("nan") or {}).items():
                self.nan_values.append((cell, value, reason))
        for w in record.get("warnings") or []:
            if w.get("kind") not in ("metric_failed", "nan_value"):
                self.warnings.append((cell, w.get("message", "")))


def evaluation_summary(evaluations: Mapping[str, Mapping[str, Any]]) -> str:
    """What one evaluate step did, for its log line: the metrics evaluated, then those that did
    not apply and those that failed (``"fd, kid; not applicable: iwae; failed: knn"``)."""
    by_status: dict[str, list[str]] = {}
    for name, ev in evaluations.items():
        by_status.setdefault(str(ev.get("status", "ok")), []).append(name)
    parts = [", ".join(by_status.get("ok", [])) or "no metric"]
    for status, label in (("not_applicable", "not applicable"), ("failed", "failed")):
        if by_status.get(status):
            parts.append(f"{label}: {', '.join(by_status[status])}")
    return "; ".join(parts)
