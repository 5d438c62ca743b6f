"""Plugin hook specifications (plugin API version 2: adds the training and cell hooks).

A vaebench plugin is a module (or object) with functions named like the hooks below, marked with
:data:`hookimpl`; it is found through the ``vaebench`` entry-point group::

    [project.entry-points.vaebench]
    my_models = "my_package.plugin"

Every hook returns a list of specs; the built-in models, datasets and metrics are contributed
through exactly these hooks (see ``vaebench/models/``, ``vaebench/data/``, ``vaebench/metrics/``).
A name must be unique across all plugins: on a clash the first registration (built-ins come
first, then plugins in order of distribution name) is kept and the clash is reported naming both
plugins.

A plugin module may set ``VAEBENCH_PLUGIN_API = 2`` (an int): a plugin that needs a newer API
than :data:`vaebench.PLUGIN_API_VERSION` is not loaded, with a message saying so. The hook
reference with examples is ``docs/plugins.md``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # for type checkers only; the contract names no vaebench module at all
    from collections.abc import Callable

    import click

    ModelSpec = Any  # a vaebench.model.ModelSpec
    DatasetSpec = Any  # a vaebench.dataset.DatasetSpec
    Metric = Any  # a vaebench.metric.Metric instance

PROJECT_NAME = "vaebench"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Decorate your hook implementations with this marker.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@dataclasses.dataclass(frozen=True)
class CellInfo:
    """What the cell hooks (:func:`vaebench_epoch_end`, :func:`vaebench_cell_finished`) receive:
    one (model, hyperparameters, dataset, seed) combination of a grid, as plain values.

    :ivar model: the registered model name, e.g. ``"vae"``.
    :ivar dataset: the dataset name (or the path it was given as).
    :ivar seed: the cell's seed.
    :ivar params: the model's hyperparameters for this cell, ``{name: value}`` (a copy).
    :ivar sweep: each swept parameter's label (``"vae.beta"``, ``"latent_dim"``) to this cell's
        value (a copy; empty without a sweep).
    :ivar key: the training key (a hash of the cell's training configuration).
    :ivar stem: the cell's file name in the results folder, without ``.json``.
    :ivar label: how logs and trackers name the cell, ``"vae (beta=4) / digits / seed 0"``.

    .. versionadded:: 2
    """

    model: str
    dataset: str
    seed: int
    params: dict[str, Any]
    sweep: dict[str, Any]
    key: str
    stem: str
    label: str


@hookspec
def vaebench_models() -> list[ModelSpec]:
    """Contribute models.

    :return: a list of :class:`vaebench.model.ModelSpec`. Each spec has a unique ``name`` (no
        commas, slashes or spaces; it is what users type in ``--models``), a ``factory``
        called as ``factory(input_shape=(C, H, W), device=torch.device, **params)`` that returns
        a :class:`vaebench.model.Model`, a one-line ``description`` (shown by ``vaebench list``)
        and optionally ``params``, the user-settable hyperparameters with their defaults
        (otherwise read from the factory's keyword defaults; ``--set NAME.key=value``).

    Called once per process when the registry is built; keep it cheap (no training, no
    downloads). Check your models with :func:`vaebench.testing.check_model`.

    .. versionadded:: 1
    """
    raise NotImplementedError  # a specification: pluggy calls the implementations


@hookspec
def vaebench_datasets() -> list[DatasetSpec]:
    """Contribute datasets.

    :return: a list of :class:`vaebench.dataset.DatasetSpec`. Each spec has a unique ``name``,
        a ``loader`` called as ``loader(data_dir=None, **options)`` (``data_dir`` only if the
        loader accepts it) that returns a :class:`vaebench.dataset.Dataset` of float32 images
        ``(N, C, H, W)`` in ``[0, 1]``, and optionally ``shape`` and ``sizes`` so that
        ``vaebench list`` can show them without loading anything.

    Loading happens only when a run uses the dataset. Check yours with
    :func:`vaebench.testing.check_dataset`.

    .. versionadded:: 1
    """
    raise NotImplementedError  # a specification: pluggy calls the implementations


@hookspec
def vaebench_metrics() -> list[Metric]:
    """Contribute metrics.

    :return: a list of :class:`vaebench.metric.Metric` *instances*. A metric declares a unique
        ``name`` and its ``values`` (:class:`vaebench.metric.Value`: name, direction, unit,
        decimals); ``evaluate(model, dataset, ctx)`` returns ``{value name: float}`` for exactly
        the declared values, using the model only through ``encode``/``decode``/``sample``.
        Value names share one namespace across all metrics: a metric whose value names are
        already taken is ignored with a warning.

    Check yours with :func:`vaebench.testing.check_metric`.

    .. versionadded:: 1
    """
    raise NotImplementedError  # a specification: pluggy calls the implementations


@hookspec
def vaebench_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``vaebench`` command line.

    :param cli: the ``vaebench`` :class:`click.Group`; call ``cli.add_command(my_command)``.
    :return: ignored.

    Called by the ``vaebench`` console script before it parses its arguments (not for
    ``--help``/``--version`` alone). Import heavy libraries inside your command, not at module
    level, so that ``vaebench --help`` stays fast.

    .. versionadded:: 1
    """


@hookspec
def vaebench_epoch_end(cell: CellInfo, epoch: int, logs: dict[str, float]) -> None:
    """Called after every training epoch of every cell, in the process that trains it.

    :param cell: the :class:`CellInfo` of the cell being trained (``model``, ``dataset``,
        ``seed``, ``params``, ``sweep``, ``key``, ``stem``, ``label``).
    :param epoch: the epoch just finished, 1-based (``logs`` are its mean losses; a closed-form
        model such as ``pca`` reports one epoch).
    :param logs: ``{name: value}`` of that epoch, ``"loss"`` first.
    :return: ignored.

    For live monitoring (TensorBoard, W&B, a custom logger). It is called defensively: an
    exception is reported once per cell naming the plugin, and training goes on. Keep it cheap:
    it runs inside the training loop's once-per-epoch host sync.

    .. versionadded:: 2
    """


@hookspec
def vaebench_cell_finished(cell: CellInfo, record: dict[str, Any]) -> None:
    """Called once a cell's result has been written (trained, skipped, failed, or re-evaluated),
    in the process that writes results (the one that ran ``vaebench run``/``evaluate``).

    :param cell: the cell's :class:`CellInfo`.
    :param record: the cell's stored record as written (``status``, ``config``, ``history``,
        ``evaluations`` with their values; see :mod:`vaebench.results`). Treat it as read-only.
    :return: ignored.

    What tracking plugins need (MLflow -- the built-in ``vaebench.tracking.mlflow`` --,
    TensorBoard, W&B): the record holds the per-epoch ``history``, every metric value and the
    cell's key. Called defensively: an exception is reported naming the plugin; the stored
    cell is never lost.

    .. versionadded:: 2
    """


@hookspec(firstresult=True)
def vaebench_dataset_for_path(path: str) -> DatasetSpec | None:
    """Claim a dataset given as a path where a dataset name goes (``--datasets data/x.npz``,
    ``--datasets ./photos``).

    :param path: the text as the user gave it; decide from the text alone (it is asked while
        the configuration is checked, before anything is read).
    :return: a :class:`vaebench.dataset.DatasetSpec` named ``path`` whose ``loader`` loads it
        (its options are what ``--set PATH.KEY=VALUE`` sets), or ``None`` to leave the path to
        other plugins. The first spec returned wins; a name no plugin claims is looked up among
        the registered datasets.

    The built-in :mod:`vaebench.data.user` claims names that end in ``.npz``, contain ``/`` or
    start with ``.`` (``.npz`` files and folders of images).

    .. versionadded:: 2
    """


@dataclasses.dataclass(frozen=True)
class Tracker:
    """An experiment tracker a plugin offers (hook :func:`vaebench_trackers`), chosen on the
    command line with ``--track NAME=ARG`` (``vaebench.run(track={NAME: ARG})`` in Python).

    :ivar name: what ``--track`` calls it, e.g. ``"mlflow"`` (unique across plugins).
    :ivar configure: ``configure(arg, out)``, called once per ``run``/``evaluate``, before any
        cell runs, in the process that writes results (where :func:`vaebench_cell_finished` is
        called). ``arg`` is the ``ARG`` of ``--track NAME=ARG`` (``""`` for ``--track NAME``
        alone: the tracker's default), or ``None`` when this tracker was not asked for (it may
        still be active through its own environment, e.g. ``MLFLOW_TRACKING_URI``); ``out`` is
        the results folder. Raise ``ValueError`` (e.g. :class:`vaebench.errors.ConfigError`)
        with one line for a bad ``arg``: the command stops with exit code 2 before anything
        trains. The tracker then logs through the cell hooks.
    :ivar description: one line for listings.

    .. versionadded:: 2
    """

    name: str
    configure: Callable[[str | None, str], None]
    description: str = ""


@hookspec
def vaebench_trackers() -> list[Tracker]:
    """Return the experiment trackers this plugin provides.

    :return: a list of :class:`Tracker` (name, ``configure(arg, out)``, description).

    ``--track NAME=ARG`` (repeatable) activates tracker ``NAME``; an unknown name stops the
    command with one line naming the valid ones. Built in: ``mlflow``
    (:mod:`vaebench.tracking.mlflow`; ``--mlflow URI`` is an alias of ``--track mlflow=URI``).
    A W&B or TensorBoard plugin implements this hook and :func:`vaebench_cell_finished` (and
    :func:`vaebench_epoch_end` for live curves); nothing in vaebench names it.

    .. versionadded:: 2
    """
    raise NotImplementedError  # a specification: pluggy calls the implementations
