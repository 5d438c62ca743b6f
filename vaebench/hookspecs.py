"""Plugin hook specifications (plugin API version 1).

A vaebench plugin is a module (or object) with functions named like the hooks below, marked with
:data:`hookimpl`; it is found through the ``vaebench`` entry-point group::

    [project.entry-points.vaebench]
    my_models = "my_package.plugin"

Every hook returns a list of specs; the built-in models, datasets and metrics are contributed
through exactly these hooks (see ``vaebench/models/``, ``vaebench/data/``, ``vaebench/metrics/``).
A name must be unique across all plugins: on a clash the first registration (built-ins come
first, then plugins in order of distribution name) is kept and the clash is reported naming both
plugins.

A plugin module may set ``VAEBENCH_PLUGIN_API = 1`` (an int): a plugin that needs a newer API
than :data:`vaebench.PLUGIN_API_VERSION` is not loaded, with a message saying so. The hook
reference with examples is ``docs/plugins.md``.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "vaebench"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Decorate your hook implementations with this marker.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def vaebench_models() -> list:
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


@hookspec
def vaebench_datasets() -> list:
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


@hookspec
def vaebench_metrics() -> list:
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


@hookspec
def vaebench_commands(cli) -> None:  # noqa: ANN001 - a click.Group; click is not imported here
    """Add sub-commands to the ``vaebench`` command line.

    :param cli: the ``vaebench`` :class:`click.Group`; call ``cli.add_command(my_command)``.
    :return: ignored.

    Called by the ``vaebench`` console script before it parses its arguments (not for
    ``--help``/``--version`` alone). Import heavy libraries inside your command, not at module
    level, so that ``vaebench --help`` stays fast.

    .. versionadded:: 1
    """
