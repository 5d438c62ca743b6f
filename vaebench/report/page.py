"""``report.md``: the page a user opens first -- setup, tables, figures and failed cells.

Everything on the page comes from the stored cells and manifests; it carries no generation time,
so regenerating it from the same files gives the same bytes.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaebench.report.escape import escape_markdown, md_code, md_code_block
from vaebench.report.tables import to_markdown
from vaebench.results import run_name

if TYPE_CHECKING:
    from vaebench.report.content import Report
    from vaebench.report.tables import Table

__all__ = ["render"]

ENV_KEYS = (
    ("vaebench", "vaebench"),
    ("torch", "torch"),
    ("numpy", "numpy"),
    ("scikit-learn", "scikit-learn"),
    ("Python", "python"),
    ("device", "device_name"),
    ("platform", "platform"),
    ("CPU cores / torch threads", None),
    ("git commit", None),
)


def _md(text: Any) -> str:
    return escape_markdown(str(text))


def _counted(values: list[str]) -> str:
    """``"a"`` when all agree, else ``"a (8 cells), b (4 cells)"``."""
    counts = Counter(values)
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{v} ({n} cells)" for v, n in sorted(counts.items()))


def _env_value(env: dict[str, Any], label: str, key: str | None) -> str:
    if label == "git commit":
        git = env.get("git")
        if not git:
            return "not a git checkout"
        return (
            f"{git.get('commit', '?')[:12]}{' (uncommitted changes)' if git.get('dirty') else ''}"
        )
    if label == "CPU cores / torch threads":
        return f"{env.get('cpu_count', '?')} / {env.get('torch_threads', '?')}"
    if key is None:  # every label without a key is handled above
        return "?"
    if label == "device" and not env.get(key):
        return str(env.get("device", "?"))
    return str(env.get(key, "?"))


def _fmt_value(v: Any) -> str:
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def _params(cell: dict[str, Any]) -> str:
    """The cell's hyperparameters, without those its model stated it does not use
    (``model_info.unused_params``, e.g. ``hidden`` of a conv network)."""
    params = (cell.get("config") or {}).get("params") or {}
    unused = set((cell.get("model_info") or {}).get("unused_params") or ())
    shown = sorted((k, v) for k, v in params.items() if k not in unused)
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in shown) or "(none)"


def _commands(run_dirs: Sequence[str]) -> list[str]:
    out: list[str] = []
    for d in run_dirs:
        for p in sorted(Path(d).glob("manifests/*.json")):
            try:
                argv = json.loads(p.read_text(encoding="utf-8")).get("argv")
            except (OSError, ValueError, AttributeError, RecursionError):
                continue
            if isinstance(argv, list) and argv:
                cmd = " ".join(shlex.quote(str(a)) for a in argv)
                if argv and Path(str(argv[0])).name == "vaebench":
                    cmd = "vaebench " + " ".join(shlex.quote(str(a)) for a in argv[1:])
                if cmd not in out:
                    out.append(cmd)
    return out


def _seconds(s: float) -> str:
    if s < 10:
        return f"{s:.2g} s"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _models_table(rep: Report) -> list[str]:
    """Models: hyperparameters (per variant; per dataset where they differ) and compute."""
    cells = rep.cells
    lines = ["| model | hyperparameters | cells (failed) | wall time |", "|:--|:--|--:|--:|"]
    for m in rep.models:
        mine = [c for c in cells if c["variant"] == m]
        ran = [c for c in mine if c["status"] != "skipped"] or mine
        by_params: dict[str, list[str]] = {}
        for c in sorted(ran, key=lambda c: c["dataset"]):
            ds = by_params.setdefault(_params(c), [])
            if c["dataset"] not in ds:
                ds.append(c["dataset"])
        n_failed = sum(c["status"] == "failed" for c in mine)
        n_skipped = sum(c["status"] == "skipped" for c in mine)
        count = f"{len(mine)} ({n_failed})" if n_failed else str(len(mine))
        if n_skipped:
            count += f", {n_skipped} skipped"
        wall = _seconds(sum(float(c.get("wall_seconds") or 0) for c in mine))
        for i, (params, dss) in enumerate(by_params.items()):
            where = f" ({', '.join(dss)})" if len(by_params) > 1 else ""
            first = i == 0
            lines.append(_row(_md(m) if first else "", _md(params + where),
                              count if first else "", wall if first else ""))  # fmt: skip
    lines.append("")
    return lines


def _datasets_table(rep: Report) -> list[str]:
    """Datasets: image shape, sizes, subset, source."""
    cells = rep.cells
    lines = ["| dataset | image shape | train / test | subset (per split) | source |",
             "|:--|:--|--:|--:|:--|"]  # fmt: skip
    for ds in rep.datasets:
        mine = [c for c in cells if c["dataset"] == ds]
        first = next((c for c in mine if c["status"] == "ok"), mine[0])
        info = first.get("dataset_info") or {}
        shape = info.get("shape")
        shape = "×".join(map(str, shape)) if isinstance(shape, list) and shape else "?"
        sizes = f"{info.get('n_train', '?')} / {info.get('n_test', '?')}"
        subset = (first.get("config") or {}).get("subset")
        opts = (first.get("config") or {}).get("dataset_options") or {}
        name = ds + (f" ({', '.join(f'{k}={_fmt_value(v)}' for k, v in sorted(opts.items()))})"
                     if opts else "")  # fmt: skip
        cite = str(info.get("citation") or "").strip()
        subset = f"≤ {_fmt_value(subset)}" if subset else "all"
        lines.append(_row(_md(name), _md(shape), _md(sizes), _md(subset), _md(cite)))
    lines.append("")
    return lines


def _setup(rep: Report) -> list[str]:
    cells = rep.cells
    ok = rep.ok()
    lines = ["## Setup", ""]
    commands = _commands(rep.run_dirs)
    if commands:
        lines += ["Produced by:", "", *md_code_block(commands, "sh"), ""]
    envs = [c.get("environment") or {} for c in cells]
    lines += ["| environment | |", "|:--|:--|"]
    for label, key in ENV_KEYS:
        lines.append(f"| {label} | {_md(_counted([_env_value(e, label, key) for e in envs]))} |")
    lines.append("")

    lines += _models_table(rep)
    lines += _datasets_table(rep)

    evals = sorted({json.dumps((c.get("config") or {}).get("eval") or {}, sort_keys=True)
                    for c in cells})  # fmt: skip
    for e in evals:
        opts = json.loads(e)
        if opts:
            text = ", ".join(f"{k}={_fmt_value(v)}" for k, v in sorted(opts.items()))
            lines.append(f"Evaluation options: {_md(text)}.")
    seeds = sorted({c["seed"] for c in cells})
    wall = sum(float(c.get("wall_seconds") or 0) for c in cells)
    n_skipped = len(rep.skipped())
    skipped = f", {n_skipped} skipped: model does not support the dataset" if n_skipped else ""
    lines += [
        "",
        f"Seeds: {_md(', '.join(map(str, seeds)))}. Compute: {_seconds(wall)} of wall time over "
        f"{len(cells)} cells ({len(ok)} finished, {len(rep.failed())} failed{skipped}).",
        "",
    ]
    kept = {c["config_hash"] for c in rep.cells}
    stored_twice = [c for c in rep.duplicates if c["config_hash"] in kept]
    same_seed = [c for c in rep.duplicates if c["config_hash"] not in kept]
    if stored_twice:
        lines += [
            f"{len(stored_twice)} cell(s) are stored in more than one of the given runs; "
            "each counts once (the first run given).",
            "",
        ]
    if same_seed:
        names = ", ".join(
            _md(f"{c['variant']} / {c['dataset']} / seed {c['seed']} ({c['config_hash']})")
            for c in same_seed[:5]
        ) + (f" and {len(same_seed) - 5} more" if len(same_seed) > 5 else "")
        lines += [
            f"{len(same_seed)} finished cell(s) repeat the set-up and seed of another with a "
            "different configuration hash (settings no label shows, e.g. the result schema) "
            f"and are left out; the first given counts: {names}.",
            "",
        ]
    if len({m for m in rep.models}) != len(rep.base_models):
        lines += [
            "Some models ran with different settings; each setting is its own row, labelled "
            "with the settings that differ (swept parameters first). They are never averaged "
            "together.",
            "",
        ]
    return lines


#: How the page's reading guide names each ``--correction``.
_CORRECTED = {
    "holm": "the p-values of each column's comparisons with the best Holm-corrected",
    "bh": "the p-values of each column's comparisons with the best Benjamini-Hochberg-corrected",
    "none": "without correction for multiple comparisons",
}


def _statistics(rep: Report) -> list[str]:
    what = (f"mean ± half-width of the {rep.confidence * 100:g} % t-based confidence interval"
            if rep.interval == "ci" else "mean ± sample standard deviation (ddof = 1)")  # fmt: skip
    text = (
        f"How to read the tables: each entry is the {what} over seeds. ↑ higher is better, "
        "↓ lower is better; columns without an arrow are descriptive. Bold marks the best mean "
        "of a column and every model not significantly different from it: a two-sided paired "
        "t-test over seeds when both models ran the same seeds, Welch's t-test otherwise, at "
        f"α = {rep.alpha:g}, {_CORRECTED[rep.correction]}. With fewer than two "
        "seeds no test is possible and only the best mean is bold -- with few seeds a single "
        "winner misleads, so read the bold set, not a ranking. Each caption states what was "
        "actually tested. Throughput and timing depend on the machine and its load (see the "
        "setup): compare them within one report only."
    )
    if rep.baseline:
        text += f" † marks a significant difference from the baseline {rep.baseline}."
    lines = [_md(text), ""]
    for metric, kinds in rep.conflicts.items():
        lines += [
            _md(f"Note: the stored cells declare {metric} differently ({'; '.join(kinds)}), "
                "probably because they were written by different vaebench versions; the tables "
                "use the declaration most cells carry."),
            "",
        ]  # fmt: skip
    return lines


def _figure(path: Path, out: Path, alt: str) -> str:
    from urllib.parse import quote

    rel = path.relative_to(out) if path.is_relative_to(out) else path
    return f"![{_md(alt)}]({quote(rel.as_posix(), safe='/-_.~')})"


def _seeds(seeds: Sequence[int]) -> str:
    return ", ".join(map(str, seeds))


def _first_line(text: str) -> str:
    lines = str(text or "?").strip().splitlines()
    return lines[0] if lines else "?"


def _row(*cells: str) -> str:
    """One Markdown table row of already escaped ``cells``."""
    return "| " + " | ".join(cells) + " |"


def _section(title: str, intro: str, header: Sequence[str], align: str,
             rows: Iterable[Sequence[str]]) -> list[str]:  # fmt: skip
    """A report.md section: ``## title``, an ``intro`` paragraph (if any) and a table of
    ``rows`` (Markdown-escaped cells) under ``header`` with the ``align`` row."""
    lines = [f"## {title}", ""] + ([intro, ""] if intro else [])
    return lines + [_row(*header), align] + [_row(*row) for row in rows] + [""]


def _skipped(rep: Report) -> list[str]:
    from vaebench.report.notes import skipped

    rows = skipped(rep.cells)
    if not rows:
        return []
    return _section("Skipped", "Model and dataset combinations the model does not support (its "
                    "tags); nothing was trained.", ("model", "dataset", "seeds", "reason"),
                    "|:--|:--|:--|:--|",
                    ((_md(r.variant), _md(r.dataset), _seeds(r.seeds), _md(_first_line(r.reason)))
                     for r in rows))  # fmt: skip


def _failed_cells(rep: Report) -> list[str]:
    failed = rep.failed()
    if not failed:
        return []
    rows = ((_md(c["variant"]), _md(c["dataset"]), str(c["seed"]),
             _md(_first_line((c.get("error") or {}).get("reason") or "?")))
            for c in sorted(failed, key=lambda c: (c["dataset"], c["variant"], c["seed"])))  # fmt: skip
    return _section("Failed cells", "", ("model", "dataset", "seed", "reason"),
                    "|:--|:--|--:|:--|", rows) + [
        "Full tracebacks are in the cell files (`cells/*.json`, field `error`).", ""]  # fmt: skip


def _failed_metrics(rep: Report) -> list[str]:
    from vaebench.report.notes import failed_metrics

    rows = failed_metrics(rep.cells)
    if not rows:
        return []
    return _section("Failed metrics",
                    "Metrics that raised: only their own values are missing; the model and the "
                    "other metrics of those cells were kept. Tracebacks are in the cell files "
                    "(`evaluations.METRIC.traceback`).",
                    ("model", "dataset", "seeds", "metric", "plugin", "reason"),
                    "|:--|:--|:--|:--|:--|:--|",
                    ((_md(r.variant), _md(r.dataset), _seeds(r.seeds), _md(r.metric),
                      _md(r.plugin or "?"), _md(r.reason)) for r in rows))  # fmt: skip


def _nan_values(rep: Report) -> list[str]:
    if not rep.nan:
        return []
    return _section("NaN and infinite values",
                    "Values that came back NaN or infinite (the reason says which), stored as "
                    "null with the metric's reason; in the tables their entries carry ‡ and "
                    "average the finite seeds only (an entry with no finite seed reads NaN, inf "
                    "or -inf).", ("model", "dataset", "seed", "value", "metric", "reason"),
                    "|:--|:--|--:|:--|:--|:--|",
                    ((_md(n.variant), _md(n.dataset), str(n.seed), _md(n.value), _md(n.metric),
                      _md(_first_line(n.reason))) for n in rep.nan))  # fmt: skip


def _warnings(rep: Report) -> list[str]:
    from vaebench.report.notes import WARNING_KINDS, stored_warnings

    rows = stored_warnings(rep.cells)
    if not rows:
        return []
    return _section("Warnings", "", ("model", "dataset", "seed", "warning", "message"),
                    "|:--|:--|--:|:--|:--|",
                    ((_md(w.variant), _md(w.dataset), str(w.seed),
                      _md(WARNING_KINDS.get(w.kind, w.kind)), _md(_first_line(w.message)))
                     for w in rows))  # fmt: skip


def _not_applicable(rep: Report) -> list[str]:
    from vaebench.report.notes import not_applicable

    rows = not_applicable(rep.cells)
    if not rows:
        return []
    return _section("Metrics that do not apply", "", ("metric", "model", "datasets", "reason"),
                    "|:--|:--|:--|:--|",
                    ((_md(f"{r.metric} ({', '.join(r.values)})" if r.values else r.metric),
                      _md(r.variant), _md(", ".join(r.datasets)), _md(_first_line(r.reason)))
                     for r in rows))  # fmt: skip


def _glossary(rep: Report, shown: Sequence[str]) -> list[str]:
    from vaebench.report.glossary import terms

    found = terms(rep.cells, shown)
    if not found:
        return []
    lines = ["## Glossary", "",
             "Every value shown above, as the metric declared it (stored with the results).",
             ""]  # fmt: skip
    for t in found:
        unit = f"unit: {t.unit}" if t.unit else "no unit"
        definition = (t.description.rstrip(".") + ".") if t.description else (
            "(no definition stored).")  # fmt: skip
        source = f" Source: {t.reference.rstrip('.')}." if t.reference else (
            " Source: not stated by the metric.")  # fmt: skip
        lines.append(f"- **{_md(t.name)}** ({_md(t.metric)}; {t.direction}; {_md(unit)}): "
                     f"{_md(definition)}{_md(source)}")  # fmt: skip
    return lines + [""]


def _sweeps(
    rep: Report, ds: str, ablations: dict[str, list[Table]], pngs: list[Path], stem: str, out: Path
) -> list[str]:
    tables = ablations.get(ds, [])
    sweep_figs = [p for p in pngs if p.stem.startswith(f"{stem}-sweep-")]
    if not tables and not sweep_figs:
        return []
    lines = ["#### Sweeps", "",
             "Each swept parameter against the headline metrics (one line per model and other "
             "swept settings), then ablation tables: the parameter's values as columns.", ""]  # fmt: skip
    for p in sweep_figs:
        lines += [_figure(p, out, p.stem), ""]
    for t in tables:
        head = t.title[len(ds) + 2 :] if t.title.startswith(f"{ds}: ") else t.title
        lines += [f"##### {_md(head)}", "", to_markdown(t)]
    return lines


def _files(formats: Sequence[str], figures: bool) -> list[str]:
    """The section that lists the files of the report."""
    files = []
    if "csv" in formats:
        files.append("`tables/tidy.csv` -- every stored value, one row per cell and metric")
        files.append("`tables/aggregate.csv` -- mean, std, CI and tests per dataset, model and "
                     "metric")  # fmt: skip
    if "tex" in formats:
        files.append("`tables/*.tex` -- LaTeX tables (booktabs; `tables/tables.tex` compiles "
                     "on its own)")  # fmt: skip
    if "html" in formats:
        files.append("`tables/*.html` -- HTML tables (`tables/tables.html`: all in one page)")
    if "md" in formats:
        files.append("`tables/*.md` -- the tables above, one file each")
    if figures:
        files.append("`figures/*.png`, `figures/*.pdf` -- the figures above (PDF for papers)")
    files.append("`report.html` -- this page as one self-contained HTML file (figures inlined, "
                 "tables sortable)")  # fmt: skip
    return ["## Files", "", *(f"- {f}" for f in files), ""]


def render(
    rep: Report,
    tables: dict[str, list[Table]],
    figs: dict[str, list[Path]],
    out: Path,
    formats: Sequence[str],
    ablations: dict[str, list[Table]] | None = None,
    across: str = "",
) -> str:
    """The Markdown text of ``report.md``: setup, results per dataset (tables, figures,
    sweeps), the summary across datasets, ``across`` (Markdown: the ranks across datasets of
    :func:`vaebench.report.ranks.write`), then skipped cells, failed cells, failed metrics,
    NaN values, warnings, metrics that do not apply, the files written and, last, the glossary
    of every value shown."""
    ablations = ablations or {}
    ok, failed = rep.ok(), rep.failed()
    n_skipped = len(rep.skipped())
    runs = ", ".join(md_code(run_name(d)) for d in rep.run_dirs)
    skipped = f", {n_skipped} skipped" if n_skipped else ""
    lines = [
        "# vaebench report",
        "",
        f"Results of {runs}: models {', '.join(_md(m) for m in rep.models)} on "
        f"{', '.join(_md(d) for d in rep.datasets)}; {len(ok)} cells finished, {len(failed)} "
        f"failed{skipped}. Generated by `vaebench report` from the stored cell files; nothing "
        "was retrained.",
        "",
    ]
    lines += _setup(rep)
    lines += ["## Results", ""]
    lines += _statistics(rep)
    shown: list[str] = []
    for ds in rep.datasets:
        lines += [f"### {_md(ds)}", ""]
        stem = rep.stems.get(ds, ds)
        if not any(c["dataset"] == ds for c in ok):
            lines += ["No cell of this dataset finished: no tables or figures (see Skipped and "
                      "Failed cells below).", ""]  # fmt: skip
        pngs = [p for p in figs.get(ds, []) if p.suffix == ".png"]
        for t in tables.get(ds, []):
            shown += [c.metric for c in t.columns]
            head = t.title[len(ds) + 2 :] if t.title.startswith(f"{ds}: ") else t.title
            lines += [f"#### {_md(head)}", "", to_markdown(t)]
            src = t.name[len(stem) + 1 :] if t.name.startswith(f"{stem}-") else t.name
            for p in pngs:
                if p.stem == f"{stem}-bars-{src}":
                    lines += [_figure(p, out, p.stem), ""]
        other = [p for p in pngs if not p.stem.startswith((f"{stem}-bars-", f"{stem}-sweep-"))]
        if other:
            lines += ["#### Figures", ""]
            for p in other:
                lines += [_figure(p, out, p.stem), ""]
        lines += _sweeps(rep, ds, ablations, pngs, stem, out)
    if "summary" in tables:
        lines += ["### All datasets", ""]
        for t in tables["summary"]:
            shown += [c.metric for c in t.columns]
            lines += [to_markdown(t)]
    if across:
        lines += [across]
    lines += _skipped(rep)
    lines += _failed_cells(rep)
    lines += _failed_metrics(rep)
    lines += _nan_values(rep)
    lines += _warnings(rep)
    lines += _not_applicable(rep)
    lines += _files(formats, any(figs.values()))
    lines += _glossary(rep, shown)
    return "\n".join(lines)
