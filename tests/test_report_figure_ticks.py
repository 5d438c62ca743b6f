"""Report figures never use matplotlib's offset or scientific multiplier text on an axis: tick
labels carry the whole number, even for values close together or tiny."""

from __future__ import annotations

import pandas as pd
import pytest

from vaebench.report import figures as F


def offsets(fig) -> list[str]:
    """The offset text of every axis of ``fig`` after drawing it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return [axis.get_major_formatter().get_offset()
            for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)]  # fmt: skip


def curve_cells(base: float) -> list[dict]:
    """Two seeds of a model whose loss changes in the seventh digit around ``base``."""
    return [{"dataset": "toy", "model": "ae", "status": "ok", "seed": s,
             "history": {"loss": [base * (1 + 1e-6 * (3 - e + s)) for e in range(3)]}}
            for s in (0, 1)]  # fmt: skip


@pytest.mark.parametrize("base", [0.0988, 1e-6, 3.0e7])
def test_close_values_get_no_offset_text(base: float) -> None:
    fig = F.training_curves(curve_cells(base), "toy", ["ae"])
    assert fig is not None
    assert offsets(fig) and set(offsets(fig)) == {""}

    rows = [{"line": "ae", "model": "ae", "value": v, "label": str(v), "seed": s,
             "y": base * (1 + 1e-6 * (v + s))} for v in (1, 2, 4) for s in (0, 1)]  # fmt: skip
    frame = pd.DataFrame(rows)
    fig = F.sweep_lines(
        {"mse": frame}, "latent_dim", {"mse": {"unit": "", "higher_is_better": False}}
    )
    assert fig is not None
    assert set(offsets(fig)) == {""}


def test_the_style_is_what_turns_the_offset_off(monkeypatch) -> None:
    """Without the report's setting, matplotlib would write an offset for the same data."""
    style = {k: v for k, v in F._STYLE.items() if not k.startswith("axes.formatter.")}
    monkeypatch.setattr(F, "_STYLE", style)
    fig = F.training_curves(curve_cells(0.0988), "toy", ["ae"])
    assert any(offsets(fig))
