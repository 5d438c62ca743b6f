"""vaebench: a plugin-based benchmarking suite for autoencoder variants.

The public API is small and lazy, so ``import vaebench`` (and ``vaebench --help``) does not
import torch or matplotlib:

- :func:`run`, :func:`evaluate`, :func:`list_models`, :func:`create_model`,
  :func:`load_model` -- the command line's verbs as functions (:mod:`vaebench.api`);
- :func:`load_results` -- stored results as a tidy pandas frame (see :mod:`vaebench.tidy`);
- :class:`VaebenchError` -- the base class of every error vaebench raises on purpose;
- :mod:`vaebench.model` -- the model interface every plugin implements;
- :mod:`vaebench.hookspecs` -- the plugin hooks;
- :mod:`vaebench.testing` -- the conformance kit for plugin authors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__version__ = "0.1.0"

#: Version of the plugin API (the hooks and the Model/Dataset/Metric contracts).
#: Bumped on any incompatible change; plugins may check it.
PLUGIN_API_VERSION = 2

#: The API functions (:mod:`vaebench.api`) the package exposes, imported on first use.
_API = ("list_models", "list_datasets", "list_metrics", "create_model", "load_dataset",
        "load_model", "run", "evaluate")  # fmt: skip

__all__ = ["__version__", "PLUGIN_API_VERSION", "VaebenchError", *_API, "load_results"]


def load_results(
    *run_dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], **kwargs: Any
) -> pd.DataFrame:
    """Load stored results as a tidy frame; see :func:`vaebench.tidy.load_results`."""
    from vaebench.tidy import load_results as _load

    return _load(*run_dirs, **kwargs)


def __getattr__(name: str) -> Any:
    """The API functions (:mod:`vaebench.api`) and :class:`VaebenchError`, imported on first
    use so that ``import vaebench`` stays light."""
    if name in _API:
        from vaebench import api

        return getattr(api, name)
    if name == "VaebenchError":
        from vaebench.errors import VaebenchError

        return VaebenchError
    raise AttributeError(f"module 'vaebench' has no attribute {name!r}")
