"""What the tables alone do not say, read from the stored cells: skipped cells, failed metrics,
NaN values, warnings, and the provenance a table's caption must state.

Every function here takes the report's cell records (deduplicated, each with its ``variant``
label; see :func:`vaebench.report.content.collect`) and returns plain data; nothing is drawn or
formatted here except the caption sentences of :func:`table_notes`.

Marks in table entries (explained in the caption of every table that has them):

- :data:`NAN_MARK` ``‡``: at least one seed gave NaN or an infinite value for this value (the
  "NaN and infinite values" section of report.md lists each with its reason); the entry is the
  mean of the finite values, or -- when none is finite -- what they were (``NaN``, ``inf``,
  ``-inf``; ``not finite`` when the seeds disagree), see :func:`nonfinite_text`;
- :data:`EXPOST_MARK` ``°``: sample scores of a model that cannot sample, from an ex-post
  Gaussian fitted to its training codes (Ghosh et al. 2020);
- :data:`APART_MARK` ``§``: sample scores from another number of real/generated images or
  another feature network than the rest of the column: shown, never ranked with the others.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from vaebench.record import NONFINITE_TEXT, metric_group
from vaebench.report.stats import format_number

__all__ = [
    "NAN_MARK",
    "EXPOST_MARK",
    "APART_MARK",
    "MARK_LEGEND",
    "NanValue",
    "FailedMetric",
    "NotApplicable",
    "CellWarning",
    "Skipped",
    "nan_values",
    "failed_metrics",
    "not_applicable",
    "stored_warnings",
    "skipped",
    "SampleComparison",
    "sample_comparison",
    "table_notes",
    "flags",
    "nonfinite_text",
    "evaluation_group",
]

NAN_MARK = "‡"
EXPOST_MARK = "°"
APART_MARK = "§"

#: Caption sentence for each mark (in the order marks are written after an entry).
MARK_LEGEND = {
    NAN_MARK: "‡ NaN or infinite for some seeds (each listed with its reason under NaN and "
    "infinite values in report.md); the entry is the mean of the finite values, n gives their "
    "number.",
    EXPOST_MARK: "° the model cannot sample: images drawn from a Gaussian fitted to its training "
    "codes and decoded (ex-post density estimation, Ghosh et al. 2020), not from a prior.",
    APART_MARK: "§ scored on other sample counts or another feature network than the rest of "
    "the column (see below): shown, not ranked with the others.",
}

#: Warning kinds listed in their own sections (failed metrics, NaN values), not as warnings.
LISTED_ELSEWHERE = ("metric_failed", "nan_value")

#: Names of the warning kinds in report.md.
WARNING_KINDS = {
    "not_converged": "not converged",
    "few_active_units": "few active units",
    "hook": "plugin hook error",
}


@dataclasses.dataclass(frozen=True)
class NanValue:
    """A value stored as null (NaN or infinite) in one cell, with the metric's reason."""

    dataset: str
    variant: str
    seed: int
    metric: str  # the metric plugin
    value: str
    reason: str
    kind: str = "nan"  # "nan", "inf" or "-inf" (files written before it was stored: "nan")


@dataclasses.dataclass(frozen=True)
class _Cells:
    """The cells (``seeds``) of one model (``variant``) on one dataset."""

    dataset: str
    variant: str
    seeds: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class FailedMetric(_Cells):
    """A metric that raised in the cells (seeds) of one model on one dataset."""

    metric: str
    plugin: str
    reason: str


@dataclasses.dataclass(frozen=True)
class NotApplicable:
    """A metric that does not apply to a model on some datasets, and why; ``values`` names the
    values that do not apply when the metric's other values do (``fd@prior``), else empty."""

    metric: str
    variant: str
    datasets: tuple[str, ...]
    reason: str
    values: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class CellWarning:
    """A stored warning of one cell (not converged, few active units, hook error, ...)."""

    dataset: str
    variant: str
    seed: int
    kind: str
    message: str


@dataclasses.dataclass(frozen=True)
class Skipped(_Cells):
    """Cells of a model on a dataset that the model does not support (its tags)."""

    reason: str


def _key(cell: dict[str, Any]) -> tuple[str, str, int]:
    return (cell["dataset"], cell.get("variant", cell["model"]), int(cell["seed"]))


def _ok(cells: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((c for c in cells if c.get("status") == "ok"), key=_key)


def nan_values(cells: Iterable[dict[str, Any]]) -> list[NanValue]:
    """Every value of a finished cell stored as null, with the reason its evaluation recorded
    (``evaluations[metric].nan``; cells written before reasons were stored: "no reason
    stored")."""
    out = []
    for cell in _ok(cells):
        for name, ev in sorted((cell.get("evaluations") or {}).items()):
            if ev.get("status") != "ok":
                continue
            reasons = ev.get("nan") or {}
            kinds = ev.get("nonfinite") or {}
            for value, number in (ev.get("values") or {}).items():
                if number is None:
                    reason = str(reasons.get(value) or "no reason stored (older result file)")
                    kind = str(kinds.get(value, "nan"))
                    out.append(NanValue(*_key(cell), name, value, reason, kind))
    return out


def nonfinite_text(nan: Sequence[NanValue]) -> dict[tuple[str, str, str], str]:
    """``{(dataset, variant, value): text}``: what a table entry whose seeds are all non-finite
    reads -- ``NaN``, ``inf`` or ``-inf`` when every seed gave the same, else ``not finite``."""
    kinds: dict[tuple[str, str, str], set[str]] = {}
    for n in nan:
        kinds.setdefault((n.dataset, n.variant, n.value), set()).add(n.kind)
    return {
        key: NONFINITE_TEXT.get(next(iter(ks)), "NaN") if len(ks) == 1 else "not finite"
        for key, ks in kinds.items()
    }


def _seeds_grouped(items: Iterable[tuple[tuple, int]]) -> dict[tuple, tuple[int, ...]]:
    grouped: dict[tuple, list[int]] = {}
    for key, seed in items:
        grouped.setdefault(key, []).append(seed)
    return {k: tuple(sorted(set(v))) for k, v in grouped.items()}


def failed_metrics(cells: Iterable[dict[str, Any]]) -> list[FailedMetric]:
    """Metrics that raised, grouped by model, dataset, metric, plugin and reason (the seeds
    listed); the model and the other metrics of those cells were kept."""
    items = []
    for cell in _ok(cells):
        ds, variant, seed = _key(cell)
        for name, ev in sorted((cell.get("evaluations") or {}).items()):
            if ev.get("status") == "failed":
                reason = (str(ev.get("reason") or "?").strip().splitlines() or ["?"])[0]
                items.append(((ds, variant, name, str(ev.get("plugin") or ""), reason), seed))
    return [FailedMetric(k[0], k[1], seeds, k[2], k[3], k[4])
            for k, seeds in sorted(_seeds_grouped(items).items())]  # fmt: skip


def not_applicable(cells: Iterable[dict[str, Any]]) -> list[NotApplicable]:
    """Metrics that do not apply, grouped by metric, model and reason (the datasets listed),
    and the values of an evaluated metric that do not apply (``evaluations[m].not_applicable``,
    e.g. ``fd@prior`` of a model without a prior), grouped likewise with the values named."""
    grouped: dict[tuple[str, str, str, tuple[str, ...]], set[str]] = {}
    for cell in _ok(cells):
        ds, variant, _ = _key(cell)
        for name, ev in (cell.get("evaluations") or {}).items():
            if ev.get("status") == "not_applicable":
                reason = str(ev.get("reason") or "?").strip()
                grouped.setdefault((name, variant, reason, ()), set()).add(ds)
            elif ev.get("status") == "ok" and ev.get("not_applicable"):
                by_reason: dict[str, list[str]] = {}
                for value, reason in ev["not_applicable"].items():
                    by_reason.setdefault(str(reason or "?").strip(), []).append(value)
                for reason, values in by_reason.items():
                    grouped.setdefault((name, variant, reason, tuple(values)), set()).add(ds)
    return [NotApplicable(m, v, tuple(sorted(d)), r, vs)
            for (m, v, r, vs), d in sorted(grouped.items())]  # fmt: skip


def stored_warnings(cells: Iterable[dict[str, Any]]) -> list[CellWarning]:
    """Stored warnings of finished cells, except failed metrics and NaN values (listed in
    their own sections)."""
    out = []
    for cell in _ok(cells):
        for w in cell.get("warnings") or []:
            kind = str(w.get("kind") or "other")
            if kind in LISTED_ELSEWHERE:
                continue
            out.append(CellWarning(*_key(cell), kind, str(w.get("message") or "").strip()))
    return out


def skipped(cells: Iterable[dict[str, Any]]) -> list[Skipped]:
    """Skipped cells (the model's tags do not support the dataset), grouped by model, dataset
    and reason."""
    items = [
        ((c["dataset"], c.get("variant", c["model"]), str(c.get("skip_reason") or "?")),
         int(c["seed"]))
        for c in cells if c.get("status") == "skipped"
    ]  # fmt: skip
    return [Skipped(k[0], k[1], seeds, k[2]) for k, seeds in sorted(_seeds_grouped(items).items())]


def evaluation_group(ev: dict[str, Any], name: str) -> str:
    """The group of a stored evaluation: its values' declared group, else the built-in one."""
    for meta in (ev.get("info") or {}).values():
        if isinstance(meta, dict) and meta.get("group"):
            return metric_group(name, str(meta["group"]))
    return metric_group(name)


# ----------------------------------------------------------------------------- samples


@dataclasses.dataclass
class SampleComparison:
    """Which sample scores can be ranked together (see :func:`sample_comparison`).

    ``reference[(dataset, plugin)]``: the ``(n_real, n_generated, feature weights sha256)`` most
    cells used; ``apart``: ``(dataset, variant, value)`` entries scored otherwise (never ranked
    with the reference ones); ``expost``: entries drawn by ex-post density estimation;
    ``used[(dataset, plugin)]``: ``{(n_real, n_generated, sha256): variants}``;
    ``nets[(dataset, sha256)]``: the feature network's record (test accuracy, ...)."""

    reference: dict[tuple[str, str], tuple[Any, Any, str]] = dataclasses.field(default_factory=dict)
    apart: set[tuple[str, str, str]] = dataclasses.field(default_factory=set)
    expost: set[tuple[str, str, str]] = dataclasses.field(default_factory=set)
    used: dict[tuple[str, str], dict[tuple[Any, Any, str], list[str]]] = dataclasses.field(
        default_factory=dict
    )
    nets: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)


def _count(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def sample_comparison(cells: Iterable[dict[str, Any]]) -> SampleComparison:
    """Group the sample-quality scores (metrics of group ``samples`` whose details record
    ``n_real``/``n_generated``) by what they were computed on. Per dataset and metric plugin the
    most common ``(n_real, n_generated, feature net sha256)`` is the reference (ties: the
    larger counts); a model with any cell scored otherwise is set apart. FD and KID depend on
    the sample count (FD is biased upwards for small sets) and on the feature space, so only
    scores on equal terms are ranked together."""
    out = SampleComparison()
    per: dict[tuple[str, str], dict[str, set[tuple[Any, Any, str]]]] = {}
    values: dict[tuple[str, str], set[str]] = {}
    for cell in _ok(cells):
        ds, variant, _ = _key(cell)
        for name, ev in (cell.get("evaluations") or {}).items():
            if ev.get("status") != "ok" or evaluation_group(ev, name) != "samples":
                continue
            details = ev.get("details") or {}
            if "n_real" not in details and "n_generated" not in details:
                continue
            net = details.get("feature_net") or {}
            sha = str(net.get("sha256") or "")
            term = (_count(details.get("n_real")), _count(details.get("n_generated")), sha)
            per.setdefault((ds, name), {}).setdefault(variant, set()).add(term)
            values.setdefault((ds, name), set()).update((ev.get("values") or {}).keys())
            if sha:
                out.nets.setdefault((ds, sha), dict(net))
            if details.get("sampler") in ("expost", "gaussian"):
                out.expost.update((ds, variant, v) for v in (ev.get("values") or {}))
    for key, by_variant in sorted(per.items()):
        counts = Counter(t for terms in by_variant.values() for t in terms)
        ref = max(counts, key=lambda t: (counts[t], t[0] or 0, t[1] or 0, t[2]))
        out.reference[key] = ref
        used: dict[tuple[Any, Any, str], list[str]] = {}
        for variant, terms in by_variant.items():
            for t in sorted(terms, key=str):
                used.setdefault(t, []).append(variant)
            if terms != {ref}:
                out.apart.update((key[0], variant, v) for v in values[key])
        out.used[key] = used
    return out


def _models(names: Sequence[str]) -> str:
    return ", ".join(dict.fromkeys(names))


def _net_text(net: dict[str, Any], sha: str) -> str:
    acc = net.get("test_accuracy")
    parts = []
    if isinstance(acc, (int, float)):
        parts.append(f"test accuracy {format_number(100 * float(acc), 1)} %")
    parts.append(f"weights sha256 {sha[:12]}")
    return ", ".join(parts)


def _samples_notes(
    comparison: SampleComparison, dataset: str, plugins: Sequence[str], rows: Sequence[str]
) -> list[str]:
    notes: list[str] = []
    refs: dict[tuple[Any, Any, str], list[str]] = {}
    for plugin in plugins:
        ref = comparison.reference.get((dataset, plugin))
        if ref is not None:
            refs.setdefault(ref, []).append(plugin)
    for (n_real, n_gen, sha), which in refs.items():
        scope = f" ({', '.join(which)})" if len(refs) > 1 else ""
        text = (f"Sample scores{scope} from {n_real} real test images and {n_gen} generated "
                "images, in the feature space of vaebench's classifier trained on the "
                "training split")  # fmt: skip
        net = comparison.nets.get((dataset, sha)) if sha else None
        text += f" ({_net_text(net, sha)})." if net is not None else "."
        notes.append(text)
    apart: dict[tuple[str, str], list[str]] = {}  # (models, what) -> plugins
    for plugin in plugins:
        ref = comparison.reference.get((dataset, plugin))
        for term, variants in (comparison.used.get((dataset, plugin)) or {}).items():
            shown = [v for v in variants if v in rows]
            if term == ref or not shown:
                continue
            n_real, n_gen, sha = term
            what = f"{n_real} real / {n_gen} generated images"
            if sha != (ref[2] if ref else ""):
                net = comparison.nets.get((dataset, sha))
                what += f", feature net {_net_text(net, sha) if net else sha[:12] or 'unknown'}"
            apart.setdefault((_models(shown), what), []).append(plugin)
    for (models, what), which in apart.items():
        notes.append(f"§ {models} ({', '.join(which)}): {what}.")
    notes.append("Scores of different sample counts are not comparable (FD is biased upwards "
                 "for small sets), nor are scores of different feature networks.")  # fmt: skip
    return notes


def _details_by_plugin(
    cells: Iterable[dict[str, Any]], dataset: str, plugins: Sequence[str], rows: Sequence[str]
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for cell in _ok(cells):
        ds, variant, _ = _key(cell)
        if ds != dataset or variant not in rows:
            continue
        for plugin in plugins:
            ev = (cell.get("evaluations") or {}).get(plugin) or {}
            if ev.get("status") == "ok":
                out.setdefault(plugin, []).append((variant, ev.get("details") or {}))
    return out


def _grouped_by_text(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """``[(text, [variants])]`` in first-seen order of the texts."""
    out: dict[str, list[str]] = {}
    for variant, text in pairs:
        names = out.setdefault(text, [])
        if variant not in names:
            names.append(variant)
    return list(out.items())


def _likelihood_notes(details: dict[str, list[tuple[str, dict[str, Any]]]]) -> list[str]:
    notes: list[str] = []
    every = [(v, d) for pairs in details.values() for v, d in pairs]
    models = _grouped_by_text(
        (v, f"{d['likelihood']}") for v, d in every if isinstance(d.get("likelihood"), str)
    )
    if models:
        notes.append("Likelihood p(x|z): " + "; ".join(
            f"{lik} ({_models(vs)})" for lik, vs in models) + ".")  # fmt: skip
    for text, vs in _grouped_by_text((v, str(d["note"])) for v, d in every if d.get("note")):
        notes.append(f"{_models(vs)}: {text.rstrip('.')}.")
    for plugin, pairs in details.items():
        for text, vs in _grouped_by_text((v, str(d["bound"])) for v, d in pairs if d.get("bound")):
            notes.append(f"{plugin} ({_models(vs)}): {text.rstrip('.')}.")
        samples = _grouped_by_text(
            (v, str(d["elbo_samples"])) for v, d in pairs if d.get("elbo_samples") is not None
        )
        for k, vs in samples:
            notes.append(f"{plugin} ({_models(vs)}): E_q[log p(x|z)] from {k} draws of z per "
                         "test image, the KL term in closed form.")  # fmt: skip
    return notes


def _representation_notes(details: dict[str, list[tuple[str, dict[str, Any]]]]) -> list[str]:
    every = [(v, d) for pairs in details.values() for v, d in pairs]
    codes = _grouped_by_text((v, str(d["codes"])) for v, d in every if d.get("codes"))
    if not codes:
        return []
    return ["Codes scored: " + "; ".join(f"{c} ({_models(vs)})" for c, vs in codes) + "."]


def table_notes(
    cells: Sequence[dict[str, Any]],
    dataset: str,
    plugins: Sequence[str],
    group: str,
    rows: Sequence[str],
    comparison: SampleComparison | None = None,
) -> list[str]:
    """Caption sentences a table of ``group`` (the values of metric ``plugins`` on ``dataset``
    for the models ``rows``) needs beyond its numbers: the likelihood model and whether it is
    a normalised density (Loaiza-Ganem & Cunningham 2019), the bound and its K; the codes a
    representation was scored on; the sample counts and feature network of sample scores and
    the models scored otherwise."""
    details = _details_by_plugin(cells, dataset, plugins, rows)
    skipped_values = _values_not_applicable(cells, dataset, plugins, rows)
    if group == "likelihood":
        return _likelihood_notes(details) + skipped_values
    if group == "representation":
        return _representation_notes(details) + skipped_values
    if (
        group == "samples"
        and comparison is not None
        and any((dataset, p) in comparison.reference for p in plugins)
    ):
        notes = _samples_notes(comparison, dataset, plugins, rows) + _sampler_notes(details)
        return notes + skipped_values
    return skipped_values


def _values_not_applicable(
    cells: Sequence[dict[str, Any]], dataset: str, plugins: Sequence[str], rows: Sequence[str]
) -> list[str]:
    """One caption sentence per reason for the values of ``plugins`` that do not apply to
    some of the models ``rows`` (their entries read ``–``), naming values and models."""
    grouped: dict[str, tuple[list[str], list[str]]] = {}
    for r in not_applicable(cells):
        if r.values and r.metric in plugins and r.variant in rows and dataset in r.datasets:
            values, models = grouped.setdefault(r.reason, ([], []))
            values.extend(v for v in r.values if v not in values)
            models.append(r.variant)
    return [f"Not applicable (–): {', '.join(values)} of {_models(models)}: "
            f"{reason.rstrip('.')}." for reason, (values, models) in grouped.items()]  # fmt: skip


def _sampler_notes(details: dict[str, list[tuple[str, dict[str, Any]]]]) -> list[str]:
    """How each sampler drew its images and which KID estimator was used (from the details of
    single- and several-sampler evaluations)."""
    samplers: dict[str, str] = {}
    estimators: list[str] = []
    for plugin, pairs in details.items():
        for _, d in pairs:
            for one in [d, *(d.get("samplers") or {}).values()]:
                if not isinstance(one, dict):
                    continue
                name, text = one.get("sampler"), one.get("description")
                if isinstance(name, str) and isinstance(text, str):
                    samplers.setdefault(name, text)
                est = one.get("estimator")
                if plugin == "kid" and isinstance(est, str) and est not in estimators:
                    estimators.append(est)
    notes = []
    if samplers:
        notes.append("Samplers: " + "; ".join(f"{k}: {v}" for k, v in samplers.items()) + ".")
    if estimators:
        notes.append("KID: " + "; ".join(estimators) + ".")
    return notes


def flags(nan: Sequence[NanValue], comparison: SampleComparison) -> dict[tuple[str, str, str], str]:
    """``{(dataset, variant, value): marks}`` for table entries (see the module docstring)."""
    out: dict[tuple[str, str, str], str] = {}

    def add(key: tuple[str, str, str], mark: str) -> None:
        if mark not in out.get(key, ""):
            out[key] = out.get(key, "") + mark

    for n in nan:
        add((n.dataset, n.variant, n.value), NAN_MARK)
    for key in sorted(comparison.expost):
        add(key, EXPOST_MARK)
    for key in sorted(comparison.apart):
        add(key, APART_MARK)
    return out
