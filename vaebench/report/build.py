"""``vaebench report``: tables, figures and report.md from stored results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vaebench.results import atomic_write_text, load_cells
from vaebench.tidy import load_results

FORMATS = ("md", "csv", "tex", "html")


def model_order(run_dirs: list[str], cells: list[dict]) -> list[str]:
    """Models in the order the runs asked for them, then any others alphabetically."""
    order: list[str] = []
    for d in run_dirs:
        for p in sorted(Path(d).glob("manifests/*.json")):
            try:
                models = json.loads(p.read_text())["config"]["models"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            order.extend(m for m in models if m not in order)
    present = {c["model"] for c in cells}
    return [m for m in order if m in present] + sorted(present - set(order))


def build_report(
    run_dirs: list[str],
    out_dir: str | None = None,
    formats: list[str] | tuple[str, ...] = ("md", "csv"),
    baseline: str | None = None,
    figures: bool = True,
) -> list[Path]:
    """Write tables (``tables/summary.{fmt}``, ``tables/tidy.csv``), figures and ``report.md``.

    Returns the written paths. Output depends only on the stored cell files.
    """
    from vaebench.report.tables import aggregate, wide_table

    out = Path(out_dir or run_dirs[0])
    cells = load_cells(*run_dirs)
    if not cells:
        raise ValueError(f"no results in {', '.join(map(str, run_dirs))}")
    frame = load_results(*run_dirs)
    models = model_order(run_dirs, cells)
    datasets = list(dict.fromkeys(c["dataset"] for c in sorted(cells, key=lambda c: c["dataset"])))
    if baseline is not None and baseline not in models:
        raise ValueError(f"unknown baseline model {baseline!r}; valid: {', '.join(models)}")
    frame["model"] = frame["model"].astype(str)
    agg = aggregate(frame)
    written: list[Path] = []

    tables_dir = out / "tables"
    tidy = frame.sort_values(["dataset", "model", "seed", "metric"], kind="stable")
    written.append(_write(tables_dir / "tidy.csv", tidy.to_csv(index=False, float_format="%.10g")))

    sections: dict[str, Any] = {}
    for ds in datasets:
        wide = wide_table(agg, ds)
        wide = wide.reindex([m for m in models if m in wide.index])
        sections[ds] = wide
        if "csv" in formats:
            sub = agg[agg["dataset"] == ds]
            written.append(_write(tables_dir / f"{_safe(ds)}.csv",
                                  sub.to_csv(index=False, float_format="%.10g")))  # fmt: skip
        if "md" in formats:
            written.append(_write(tables_dir / f"{_safe(ds)}.md", wide.to_markdown() + "\n"))
        if "html" in formats:
            written.append(_write(tables_dir / f"{_safe(ds)}.html", wide.to_html() + "\n"))

    figs: dict[str, list[Path]] = {}
    if figures:
        from vaebench.report import figures as F

        colors = F.model_colors(models)
        fig_dir = out / "figures"
        for ds in datasets:
            s = _safe(ds)
            made = []
            made += F.reconstruction_grid(cells, ds, models, fig_dir / f"{s}-reconstructions")
            made += F.interpolation_strips(cells, ds, models, fig_dir / f"{s}-interpolation")
            made += F.training_curves(cells, ds, models, colors, fig_dir / f"{s}-training")
            figs[ds] = made
            written += made

    written.append(_write(out / "report.md", _page(run_dirs, cells, sections, figs, out)))
    return written


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _write(path: Path, text: str) -> Path:
    atomic_write_text(path, text)
    return path


def _page(run_dirs, cells, sections, figs, out: Path) -> str:
    ok = [c for c in cells if c["status"] == "ok"]
    failed = [c for c in cells if c["status"] != "ok"]
    env = (ok or cells)[0].get("environment", {})
    seeds = sorted({c["seed"] for c in cells})
    lines = [
        "# vaebench report",
        "",
        f"Runs: {', '.join(Path(d).name for d in run_dirs)}. "
        f"{len(ok)} finished cell(s), {len(failed)} failed; seeds {', '.join(map(str, seeds))}.",
        "",
        "## Setup",
        "",
        f"- vaebench {env.get('vaebench')}, torch {env.get('torch')}, numpy {env.get('numpy')}, "
        f"Python {env.get('python')}",
        f"- device: {env.get('device_name', env.get('device'))}",
    ]
    git = env.get("git")
    if git:
        lines.append(f"- commit: {git['commit'][:12]}{' (dirty)' if git.get('dirty') else ''}")
    budgets = {}
    for c in ok:
        p = c["config"]["params"]
        budgets[c["model"]] = ", ".join(f"{k}={v}" for k, v in sorted(p.items()))
    if budgets:
        lines += ["- hyperparameters:"]
        lines += [f"  - `{m}`: {b}" for m, b in budgets.items()]
    lines += ["", "Values are mean ± std over seeds (std with ddof=1); ↑ higher is better, "
              "↓ lower is better.", ""]  # fmt: skip
    for ds, table in sections.items():
        first = next(c for c in cells if c["dataset"] == ds)
        info = first.get("dataset_info", {})
        lines += [f"## {ds}", ""]
        if info:
            lines += [f"{'×'.join(map(str, info.get('shape', [])))} images, "
                      f"{info.get('n_train')} train / {info.get('n_test')} test.", ""]  # fmt: skip
        lines += [table.to_markdown(), ""]
        for p in figs.get(ds, []):
            if p.suffix == ".png":
                rel = p.relative_to(out) if p.is_relative_to(out) else p
                lines += [f"![{p.stem}]({rel.as_posix()})", ""]
    if failed:
        lines += ["## Failed cells", "", "| model | dataset | seed | reason |", "|---|---|---|---|"]
        for c in sorted(failed, key=lambda c: (c["dataset"], c["model"], c["seed"])):
            reason = (c.get("error") or {}).get("reason", "?").replace("|", "\\|").splitlines()[0]
            lines.append(f"| {c['model']} | {c['dataset']} | {c['seed']} | {reason} |")
        lines.append("")
    return "\n".join(lines)
