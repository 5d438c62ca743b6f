"""The Python API: the command line's verbs as functions (the common ones re-exported by
:mod:`vaebench`). The command line (:mod:`vaebench.cli`) parses, calls these, prints: every
command has its function here (``run``, ``resume``, ``evaluate``, ``report``, ``check``,
``bench``, the registry, tracking), and it imports nothing else of vaebench.

>>> import vaebench as vb
>>> vb.list_models("*ae")                                   # doctest: +SKIP
['ae', 'dae', 'vae']
>>> m = vb.create_model("vae", (1, 28, 28)); m.n_params     # doctest: +SKIP
>>> summary = vb.run(models="pca,vae", datasets="digits", seeds=[0, 1], out="r", epochs=5)
>>> vb.evaluate("r", metrics="elbo,active_units")           # doctest: +SKIP
>>> model = vb.load_model("r", summary.ran[0].stem)         # doctest: +SKIP
>>> df = vb.load_results("r")                               # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaebench import __version__ as __version__
from vaebench.text import printable

if TYPE_CHECKING:
    import torch

    from vaebench.config import RunConfig
    from vaebench.dataset import Dataset
    from vaebench.model import Model
    from vaebench.plugins import Registered as Registered
    from vaebench.plugins import Registry as Registry
    from vaebench.summary import RunSummary as RunSummary
    from vaebench.testing import CheckResult as CheckResult

__all__ = [
    "list_models",
    "list_datasets",
    "list_metrics",
    "create_model",
    "load_dataset",
    "load_model",
    "run",
    "resume",
    "evaluate",
    "report",
    "write_run_report",
    "check",
    "bench",
    "run_folder",
    "configure_tracking",
    "load_registry",
    "strict_plugins",
    "command_hooks",
    "interruption",
    "is_disk_full",
    "parse_count",
    "parse_track",
    "printable",
]

#: Where ``run`` writes when neither ``out`` nor the config file's ``out`` says.
DEFAULT_OUT = "results/vaebench-run"


def _registry(registry: Registry | None) -> Registry:
    from vaebench.plugins import get_registry

    return registry if registry is not None else get_registry()


def load_registry(*, strict: bool | None = None, quiet: bool = False) -> Registry:
    """Every registered model, dataset, metric and tracker with the plugin each comes from
    (:func:`vaebench.plugins.get_registry`). ``strict`` (default ``VAEBENCH_STRICT_PLUGINS``):
    raise :class:`vaebench.errors.PluginError` while any plugin problem exists; otherwise each
    problem is warned about once (not with ``quiet``: the caller lists them) and listed in
    ``Registry.problems``."""
    import warnings

    from vaebench.plugins import PluginWarning, get_registry

    if not quiet:
        return get_registry(strict=strict)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        return get_registry(strict=strict)


def strict_plugins() -> bool:
    """Whether strict plugin mode is on (``VAEBENCH_STRICT_PLUGINS``)."""
    from vaebench.plugins import strict_mode

    return strict_mode()


def command_hooks(*, strict_check: bool = True) -> list[tuple[str, Callable[..., object]]]:
    """``(plugin name, function)`` of every ``vaebench_commands`` hook implementation, in
    registration order, for a front end to call one by one (one broken plugin loses only its
    commands). With ``strict_check`` in strict plugin mode, any plugin problem raises
    :class:`vaebench.errors.PluginError` first."""
    from vaebench.plugins import get_plugin_manager, get_registry, strict_mode

    pm = get_plugin_manager()
    if strict_check and strict_mode():
        get_registry()
    return [(impl.plugin_name, impl.function) for impl in pm.hook.vaebench_commands.get_hookimpls()]


def parse_count(option: str, raw: object) -> int:
    """A ``--workers``/``--threads`` value as an integer from 1 to 1024; anything else raises
    :class:`vaebench.errors.ConfigError` naming ``option``, the value and the valid range."""
    from vaebench.options import parse_count as _parse

    return _parse(option, raw)


def parse_track(values: str | Sequence[str]) -> dict[str, str]:
    """``--track NAME=ARG`` values (repeatable) as ``{tracker name: ARG}`` (``NAME`` alone:
    ``""``, the tracker's default); a malformed item, a name given twice or a password in an
    argument raises :class:`vaebench.errors.ConfigError` naming it. Whether a plugin serves
    each name is checked by :func:`configure_tracking`."""
    from vaebench.options import parse_track as _parse

    return _parse(values)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a full disk (``ENOSPC``, :class:`vaebench.errors.DiskFullError`)."""
    from vaebench.results import is_enospc

    return is_enospc(exc)


def interruption(exc: BaseException) -> tuple[RunSummary, int] | None:
    """``(summary, signal number)`` when ``exc`` is a grid stopped by a signal (Ctrl-C,
    SIGTERM; :class:`vaebench.signals.RunInterrupted`: finished cells are saved), else
    ``None``."""
    import sys

    signals = sys.modules.get("vaebench.signals")  # raised only once the grid is imported
    if signals is None or not isinstance(exc, signals.RunInterrupted):
        return None
    return exc.summary, int(exc.signum)


def configure_tracking(
    track: Mapping[str, str] | None,
    out: str | os.PathLike[str],
    *,
    registry: Registry | None = None,
) -> None:
    """Hand ``--track NAME=ARG`` to the trackers of the ``vaebench_trackers`` hook for a run
    writing to ``out``: each registered tracker is configured once, with its ``ARG`` (``""``:
    its default) or ``None`` when not asked for. Raises :class:`vaebench.errors.ConfigError`
    for an unknown name (``unknown tracker 'x'; valid: mlflow``, before any tracker is
    configured) or a tracker's own refusal of its ``ARG``."""
    from vaebench.errors import ConfigError

    reg = _registry(registry)
    track = dict(track or {})
    for name in track:
        if name not in reg.trackers:
            valid = ", ".join(sorted(reg.trackers)) or "(none)"
            raise ConfigError(f"unknown tracker {name!r} in --track; valid: {valid}")
    for name, registered in reg.trackers.items():
        try:
            registered.spec.configure(track.get(name), str(out))
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"--track {name}: {exc}") from None


def _names(table: dict[str, Any], pattern: str | None) -> list[str]:
    names = sorted(table)
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def list_models(pattern: str | None = None, *, registry: Registry | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` filters them shell-style (``"*vae*"``)."""
    return _names(_registry(registry).models, pattern)


def list_datasets(pattern: str | None = None, *, registry: Registry | None = None) -> list[str]:
    """Registered dataset names, sorted; ``pattern`` filters them shell-style."""
    return _names(_registry(registry).datasets, pattern)


def list_metrics(pattern: str | None = None, *, registry: Registry | None = None) -> list[str]:
    """Registered metric names, sorted; ``pattern`` filters them shell-style."""
    return _names(_registry(registry).metrics, pattern)


def create_model(
    name: str,
    input_shape: Sequence[int],
    device: str | torch.device = "cpu",
    *,
    registry: Registry | None = None,
    **params: Any,
) -> Model:
    """An untrained model ``name`` for images of shape ``input_shape`` ``(C, H, W)``.

    ``params`` override its hyperparameters (``vaebench list models`` shows them). Raises
    :class:`vaebench.plugins.UnknownNameError` (``unknown model 'x'; valid: ...``) for an
    unknown name and :class:`vaebench.errors.ConfigError` for an unknown or invalid parameter
    (both are :class:`vaebench.errors.VaebenchError`).
    """
    import torch

    from vaebench.errors import ConfigError

    spec = _registry(registry).model(name).spec
    try:
        model: Model = spec.create(tuple(input_shape), device=torch.device(device), **params)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model {name!r}: {exc}") from exc
    return model


def load_dataset(
    name: str,
    subset: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    registry: Registry | None = None,
    **options: Any,
) -> Dataset:
    """A dataset as ``vaebench run`` loads it: a registered name (``"fashion-mnist"``) or the
    path of a user ``.npz`` file or image folder, with ``options`` (``binarize="fixed"``) and at
    most ``subset`` images per split (the same images a run with ``--subset`` uses). Raises
    :class:`vaebench.errors.DatasetError` naming the dataset when it cannot be loaded."""
    from vaebench.cells import load_dataset as _load

    dataset: Dataset = _load(_registry(registry), name, options,
                             None if data_dir is None else str(data_dir), subset)  # fmt: skip
    return dataset


def load_model(
    results_dir: str | os.PathLike[str],
    cell: str | os.PathLike[str] | dict[str, Any],
    device: str | torch.device = "cpu",
    *,
    registry: Registry | None = None,
) -> Model:
    """Rebuild a trained model from a results folder: its stored hyperparameters and weights
    (``states/STEM.pt``, loaded with ``weights_only=True``), ready for inference.

    ``cell``: the cell's file stem (``"ae--digits--seed0--1a2b3c4d5e6f"``, as in
    ``RunSummary.ran[i].stem`` and in ``cells/``), the path of its JSON file, or its record (a
    dict from :func:`vaebench.results.read_cell`). Raises :class:`vaebench.errors.ResultsError`
    when the cell or its state is missing or the cell did not finish.
    """
    from vaebench.errors import ResultsError
    from vaebench.results import read_cell

    folder = Path(results_dir)
    if isinstance(cell, dict):
        record = cell
    else:
        path = Path(cell)
        if path.suffix != ".json":
            path = folder / "cells" / f"{path.name}.json"
        if not path.is_file():
            raise ResultsError(f"no cell {str(cell)!r} in {folder} (looked for {path})")
        record = read_cell(path)
    stem = Path(record.get("_path", "")).stem or None
    if stem is None:
        from vaebench.results import cell_stem

        stem = cell_stem(record["model"], record["dataset"], record["seed"], record["config_hash"])
    if record.get("status") != "ok":
        raise ResultsError(f"cell {stem} did not finish (status {record.get('status')!r})")
    state = folder / "states" / f"{stem}.pt"
    if not state.is_file():
        raise ResultsError(f"no stored state for cell {stem} (looked for {state})")
    params = (record.get("config") or {}).get("params") or {}
    shape = (record.get("dataset_info") or {}).get("shape")
    if not shape:
        raise ResultsError(f"cell {stem} does not record its image shape")
    from vaebench.task import check_state

    check_state(state.read_bytes(), record, stem)  # the weights this cell was trained to
    model = create_model(record["model"], shape, device, registry=registry, **params)
    model.load(state)
    return model


def _stored_config(
    run_dir: str | os.PathLike[str], what: str, required: bool, kind: str | None = None
) -> dict[str, Any] | None:
    """The configuration in the most recently written manifest of ``run_dir`` (of a ``kind``
    command: :func:`vaebench.results.latest_manifest_config`)."""
    from vaebench.errors import ResultsError
    from vaebench.results import latest_manifest_config

    try:
        config = latest_manifest_config(run_dir, kind)
    except ResultsError as exc:
        raise ResultsError(f"cannot {what} {run_dir}: {exc}") from None
    if config is None and required:
        if kind is not None and any(Path(run_dir).glob("manifests/*.json")):
            raise ResultsError(
                f"cannot {what} {run_dir}: its manifests/ hold no manifest of a `vaebench "
                f"{kind}` (only of other commands)"
            )
        raise ResultsError(f"cannot {what} {run_dir}: no manifests/ found (not a vaebench run?)")
    return config


def run_folder(out: str | None = None, config_file: str | None = None) -> str:
    """Where :func:`run` writes: ``out``, else the ``out`` of ``config_file``, else
    :data:`DEFAULT_OUT`. Raises :class:`vaebench.errors.ConfigError` for a config file that
    cannot be read (as :func:`run` would)."""
    if out:
        return out
    if config_file:
        from vaebench.config import load_toml

        stored = load_toml(config_file).get("out")
        if isinstance(stored, str) and stored.strip():
            return stored
    return DEFAULT_OUT


def _execute(
    mode: str,
    cfg: RunConfig,
    out: str | os.PathLike[str],
    reg: Registry,
    *,
    force: bool,
    progress: bool | None,
    argv: Sequence[str] | None,
) -> RunSummary:
    """Configure the trackers of ``cfg.track``, then run (``mode="run"``) or evaluate the grid."""
    from vaebench.grid import evaluate as evaluate_grid
    from vaebench.grid import run as run_grid

    configure_tracking(cfg.track, out, registry=reg)
    args = None if argv is None else list(argv)
    if mode == "run":
        return run_grid(cfg, out, registry=reg, force=force, show_progress=progress, argv=args)
    return evaluate_grid(out, cfg, registry=reg, force=force, show_progress=progress, argv=args)


def run(
    models: str | Sequence[str] | None = None,
    datasets: str | Sequence[str] | None = None,
    seeds: str | int | Sequence[int] | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    sets: Sequence[str] = (),
    sweeps: Sequence[str] = (),
    metrics: str | Sequence[str] | None = None,
    force: bool = False,
    progress: bool | None = False,
    mlflow: str | None = None,
    track: Mapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
    registry: Registry | None = None,
    **options: Any,
) -> RunSummary:
    """Run a grid, as ``vaebench run`` does, and return its :class:`vaebench.summary.RunSummary`.

    ``out``: the results folder (default: the config file's ``out``, else
    :data:`DEFAULT_OUT`). ``options`` take every other ``run`` option by its Python name:
    ``epochs``, ``latent_dim``, ``batch_size``, ``lr``, ``arch``, ``config_file``, ``device``,
    ``data_dir``, ``subset``, ``val_fraction``, ``workers``, ``threads``, ``executor``,
    ``scheduler``, ``shard``. ``track``: ``{tracker name: ARG}`` as ``--track NAME=ARG``
    (:func:`configure_tracking`); ``mlflow``: a tracking URI, the same as
    ``track={"mlflow": URI}`` (the experiment is named after ``out``). ``argv``: the command
    line recorded in the run manifest. Raises :class:`vaebench.errors.ConfigError` for bad
    input before anything trains; :class:`vaebench.signals.RunInterrupted` (a
    ``KeyboardInterrupt``) when a signal stops the grid.
    """
    from vaebench.config import RunConfig

    reg = _registry(registry)
    cfg = RunConfig.build(reg, models=models, datasets=datasets, seeds=seeds, sets=sets,
                          sweeps=sweeps, metrics=metrics, mlflow=mlflow, track=track,
                          out=None if out is None else str(out), **options)  # fmt: skip
    return _execute("run", cfg, cfg.out or DEFAULT_OUT, reg, force=force, progress=progress,
                    argv=argv)  # fmt: skip


def resume(
    run_dir: str | os.PathLike[str],
    *,
    force: bool = False,
    progress: bool | None = False,
    mlflow: str | None = None,
    track: Mapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
    registry: Registry | None = None,
    **execution: Any,
) -> RunSummary:
    """Continue the run stored in ``run_dir`` with the configuration it was started with, as
    ``vaebench run --resume`` does. ``execution`` (``device``, ``workers``, ``threads``,
    ``executor``, ``scheduler``, ``shard``), ``mlflow`` and ``track`` override the stored
    settings. Raises :class:`vaebench.errors.ResultsError` (``cannot resume DIR: ...``) when
    the folder holds no readable manifest, :class:`vaebench.errors.ConfigError` when the
    stored configuration is no longer valid."""
    from vaebench.config import RunConfig

    reg = _registry(registry)
    stored = _stored_config(run_dir, "resume", required=True, kind="run")
    assert stored is not None
    cfg = RunConfig.from_dict(stored, reg, mlflow=mlflow, track=track, **execution)
    given = {*(track or {}), *(["mlflow"] if mlflow is not None else [])}
    missing = sorted(n for n in cfg.track if n not in reg.trackers and n not in given)
    if missing:  # from the stored run, not typed now: say so
        from vaebench.errors import ConfigError

        valid = ", ".join(sorted(reg.trackers)) or "(none)"
        raise ConfigError(
            f"cannot resume {os.fspath(run_dir)}: it was run with tracker(s) "
            f"{', '.join(map(repr, missing))} (stored in its manifest), which no installed "
            f"plugin provides; install the plugin again (installed trackers: {valid})"
        )
    _check_resumed_data(cfg, run_dir, reg)
    return _execute("run", cfg, run_dir, reg, force=force, progress=progress, argv=argv)


def _check_resumed_data(cfg: RunConfig, run_dir: str | os.PathLike[str], reg: Registry) -> None:
    """A resume continues on the data the run's cells were trained on. A dataset given by a
    path (``-d ./mine.npz``) names other data when the resume starts from another folder or
    the file changed: its cells would be new ones beside the old. Raises
    :class:`vaebench.errors.ConfigError` saying so (registered datasets are checked by their
    plugins: their content does not depend on the current folder)."""
    from vaebench.cells import load_dataset
    from vaebench.errors import ConfigError
    from vaebench.results import dataset_fingerprints

    for name in cfg.datasets:
        if name in reg.datasets:
            continue
        stored = dataset_fingerprints(run_dir, name)
        if not stored:  # no finished cell of it yet: nothing to continue
            continue
        ds = load_dataset(reg, name, cfg.dataset_options.get(name, {}), cfg.data_dir, cfg.subset)
        if ds.fingerprint() not in stored:
            raise ConfigError(
                f"cannot resume {os.fspath(run_dir)}: dataset {name!r} is not the data its "
                f"cells were trained on (content fingerprint {ds.fingerprint()} here, "
                f"{', '.join(sorted(stored))} in its cells); a relative path is found from the "
                f"current folder ({os.getcwd()}): resume from the folder the run was started "
                "in, or run the grid again without --resume to train on this data"
            )


def evaluate(
    results_dir: str | os.PathLike[str],
    metrics: str | Sequence[str] | None = None,
    *,
    sets: Sequence[str] = (),
    force: bool = False,
    progress: bool | None = False,
    mlflow: str | None = None,
    track: Mapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
    registry: Registry | None = None,
    **execution: Any,
) -> RunSummary:
    """Evaluate the stored models of ``results_dir`` without training, as ``vaebench
    evaluate`` does (``sets``: ``eval.KEY=VALUE`` options; ``execution``: ``device``,
    ``workers``, ``threads``, ``executor``, ``scheduler``, ``data_dir``; ``mlflow``/``track``
    as in :func:`run`: the tracked runs of these cells are updated). A damaged cell file is
    reported in the summary (``unreadable``), not raised. Raises
    :class:`vaebench.errors.ResultsError` when ``results_dir`` is not a results folder or its
    manifest is unreadable, :class:`vaebench.errors.ConfigError` for bad options."""
    from vaebench.config import RunConfig
    from vaebench.errors import ResultsError
    from vaebench.results import iter_cell_paths, read_cell

    reg = _registry(registry)
    cells = []
    for path in iter_cell_paths(results_dir):
        try:
            cells.append(read_cell(path))
        except ResultsError:  # damaged or foreign files are reported by the evaluation
            continue
    stored = _stored_config(results_dir, "evaluate", required=False)
    cfg = RunConfig.for_evaluation(
        reg,
        models=list(dict.fromkeys(c["model"] for c in cells)),
        datasets=list(dict.fromkeys(c["dataset"] for c in cells)),
        stored=stored,
        metrics=metrics,
        sets=sets,
        mlflow=mlflow,
        track=track,
        **execution,
    )
    return _execute("evaluate", cfg, results_dir, reg, force=force, progress=progress,
                    argv=argv)  # fmt: skip


def report(
    runs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    *,
    formats: str | Sequence[str] | None = None,
    figures: str | Sequence[str] | bool = "png,pdf",
    summary_metrics: str | Sequence[str] | None = None,
    **options: Any,
) -> list[Path]:
    """Write tables, figures and ``report.md`` from stored results, as ``vaebench report``
    does (nothing is retrained); return the paths written.

    ``out``: default the first run folder. ``formats``: table formats among ``md``, ``csv``,
    ``tex``, ``html`` (default: md,csv plus those of the previous report in ``out``);
    ``figures``: figure formats among ``png``, ``pdf`` (``False``: none); ``summary_metrics``:
    columns of the cross-dataset summary. ``options``: ``baseline``, ``ci``, ``alpha``,
    ``correction``, ``cd_test``, ``seeds_needed`` (see
    :func:`vaebench.report.build_report`). Raises :class:`vaebench.errors.ConfigError` for an
    unknown format, :class:`vaebench.errors.ResultsError` for unreadable results and
    ``OSError`` when the report cannot be written.
    """
    from vaebench.config import parse_name_list
    from vaebench.errors import ConfigError
    from vaebench.report import build_report
    from vaebench.report.build import FIGURE_FORMATS, FORMATS

    fmts = None
    if formats is not None:
        given = formats.split(",") if isinstance(formats, str) else list(formats)
        fmts = [f.strip() for f in given if f.strip()]
        bad = [f for f in fmts if f not in FORMATS]
        if bad or not fmts:
            raise ConfigError(
                f"unknown format {','.join(bad) or formats!r}; valid: {', '.join(FORMATS)}"
            )
    shown: bool | list[str] = figures if isinstance(figures, bool) else []
    if not isinstance(figures, bool):
        given = figures.split(",") if isinstance(figures, str) else list(figures)
        shown = [f.strip().lower() for f in given if f.strip()]
        bad = [f for f in shown if f not in FIGURE_FORMATS]
        if bad or not shown:
            raise ConfigError(f"unknown figure format {','.join(bad) or repr(figures)}; "
                              f"valid: {', '.join(FIGURE_FORMATS)}")  # fmt: skip
    summary = None if summary_metrics is None else parse_name_list(summary_metrics, "metrics")
    return build_report(list(runs), out_dir=out or runs[0], formats=fmts, figures=shown,
                        summary_metrics=summary, **options)  # fmt: skip


def start_report_workers() -> bool:
    """Start the worker processes that will share the drawing of the report a command writes
    after its grid (:func:`vaebench.report.drawing.start_standby`): their imports run while
    the grid trains. Only in the ``vaebench`` command on >= 2 cores (False otherwise: nothing
    started). :func:`stop_report_workers` ends them if no report took them."""
    from vaebench.report.drawing import start_standby

    return start_standby()


def stop_report_workers() -> None:
    """End the workers of :func:`start_report_workers` that no report took (a failed or
    interrupted command); nothing when none are left."""
    if "vaebench.report.drawing" in sys.modules:
        from vaebench.report.drawing import close_standby

        close_standby()


def write_run_report(out: str | os.PathLike[str]) -> list[Path]:
    """The report ``vaebench run``/``evaluate`` writes into ``out`` after the grid: tables and
    PNG figures only (the figure formats a run writes)."""
    from vaebench.report import build_report
    from vaebench.report.build import RUN_FIGURE_FORMATS

    return build_report([out], out_dir=out, figures=RUN_FIGURE_FORMATS)


def check(
    kind: str,
    name: str,
    *,
    device: str = "cpu",
    threads: int = 1,
    data_dir: str | None = None,
    registry: Registry | None = None,
) -> tuple[Registered, Iterator[CheckResult]]:
    """The conformance kit (:mod:`vaebench.testing`) on one registered ``kind`` (``"model"``,
    ``"dataset"`` or ``"metric"``) called ``name`` (a dataset also by a file or folder path a
    plugin claims, as ``--datasets`` takes it), as ``vaebench check`` runs it: the
    registration (for its origin) and the checks, run one by one as the iterator is consumed
    (a failing check is reported in its result, never raised). Raises
    :class:`vaebench.plugins.UnknownNameError` for an unknown name and
    :class:`vaebench.errors.ConfigError` for a model's ``device`` that is not one (or not
    available), at once."""
    from vaebench.errors import ConfigError
    from vaebench.testing import run_dataset_checks, run_metric_checks, run_model_checks
    from vaebench.train import select_device

    reg = _registry(registry)
    getters: dict[str, Callable[[str], Registered]] = {
        "model": reg.model, "dataset": reg.dataset_or_path, "metric": reg.metric,
    }  # fmt: skip
    registered = getters[kind](name)
    if kind == "model":
        try:
            select_device(device)
        except ValueError as exc:  # as `vaebench run --device` refuses it: one line, exit 2
            raise ConfigError(str(exc)) from None
        results = run_model_checks(registered.spec, device=device, threads=threads)
    elif kind == "dataset":
        results = run_dataset_checks(registered.spec, data_dir=data_dir, threads=threads)
    else:
        results = run_metric_checks(registered.spec, threads=threads)
    return registered, results


def bench(
    *,
    echo: Callable[[str], None] | None = None,
    json_path: str | os.PathLike[str] | None = None,
    registry: Registry | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Throughput of each model through the harness and through a plain reference, as
    ``vaebench bench`` measures it (:func:`vaebench.bench.run_bench`); return the JSON-ready
    result. ``settings``: the fields of :class:`vaebench.bench.BenchConfig` (``models``,
    ``dataset``, ``device``, ``threads``, ``batch_size``, ``eval_batch_size``, ``repeats``,
    ``train_samples``, ``latent_dim``, ``window_s``, ``clock``). ``echo`` receives the table's
    header, then one line per finished model; ``json_path``: the result so far is written there
    (atomically) after every model. Raises :class:`vaebench.errors.ConfigError` for bad
    settings, :class:`vaebench.errors.DatasetError` when the dataset cannot be loaded."""
    from vaebench.bench import BenchConfig, format_header, run_bench

    header: list[str] = [format_header()]

    def line(text: str) -> None:
        if echo is not None:
            for first in header:
                echo(first)
            header.clear()
            echo(text)

    def save(result: dict[str, Any]) -> None:  # after every model: a partial run is kept
        if json_path is not None:
            from vaebench.results import atomic_write_json

            atomic_write_json(json_path, result)

    return run_bench(BenchConfig(**settings), _registry(registry), echo=line, on_update=save)
