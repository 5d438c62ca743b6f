"""vaebench: a plugin-based benchmarking suite for autoencoder variants.

The public API is small and lazy, so ``import vaebench`` (and ``vaebench --help``) does not
import torch or matplotlib:

- :func:`load_results` -- stored results as a tidy pandas frame (see :mod:`vaebench.tidy`);
- :mod:`vaebench.model` -- the model interface every plugin implements;
- :mod:`vaebench.hookspecs` -- the plugin hooks;
- :mod:`vaebench.testing` -- the conformance kit for plugin authors.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: Version of the plugin API (the hooks and the Model/Dataset/Metric contracts).
#: Bumped on any incompatible change; plugins may check it.
PLUGIN_API_VERSION = 2

__all__ = ["__version__", "PLUGIN_API_VERSION", "load_results"]


def load_results(*run_dirs, **kwargs):
    """Load stored results as a tidy frame; see :func:`vaebench.tidy.load_results`."""
    from vaebench.tidy import load_results as _load

    return _load(*run_dirs, **kwargs)
