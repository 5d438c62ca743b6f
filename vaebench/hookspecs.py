"""Plugin hook specifications (plugin API version 1).

A vaebench plugin is a module (or object) with functions named like the hooks below, marked with
:data:`hookimpl`; it is found through the ``vaebench`` entry-point group::

    [project.entry-points.vaebench]
    my_models = "my_package.plugin"

Every hook returns a list of specs; the built-in models, datasets and metrics are contributed
through exactly these hooks (see ``vaebench/models/``, ``vaebench/data/``, ``vaebench/metrics/``).
A name must be unique across all plugins: a clash is reported naming both plugins and neither
registration is used.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "vaebench"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Decorate your hook implementations with this marker.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def vaebench_models():
    """Return a list of :class:`vaebench.model.ModelSpec` this plugin contributes.

    .. versionadded:: 1
    """


@hookspec
def vaebench_datasets():
    """Return a list of :class:`vaebench.dataset.DatasetSpec` this plugin contributes.

    .. versionadded:: 1
    """


@hookspec
def vaebench_metrics():
    """Return a list of :class:`vaebench.metric.Metric` instances this plugin contributes.

    .. versionadded:: 1
    """


@hookspec
def vaebench_commands(cli):
    """Add click commands to the ``vaebench`` command group ``cli`` (``cli.add_command(cmd)``).

    Return value is ignored.

    .. versionadded:: 1
    """
