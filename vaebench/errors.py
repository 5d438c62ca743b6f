"""vaebench's exceptions: one base class, :class:`VaebenchError`, for every error vaebench raises
on purpose.

``except vaebench.VaebenchError`` catches them all; each also derives from the built-in type a
caller would expect (``ValueError`` for bad input, ``RuntimeError`` for a failed computation), so
existing ``except ValueError`` code keeps working. This module imports nothing: the contract
modules (:mod:`vaebench.dataset`, :mod:`vaebench.metric`) may use it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "VaebenchError",
    "ConfigError",
    "DatasetError",
    "ResultsError",
    "SchemaMismatchError",
    "DivergenceError",
    "ModelContractError",
    "MetricError",
    "NotApplicableError",
    "PluginError",
    "DiskFullError",
]


class VaebenchError(Exception):
    """Base class of every error vaebench raises on purpose."""


class ConfigError(VaebenchError, ValueError):
    """Invalid configuration; the message names the problem and the valid choices."""


class DatasetError(VaebenchError, ValueError):
    """A dataset could not be loaded or is malformed; the message names the file or value."""


class ResultsError(VaebenchError, ValueError):
    """A results folder or file is missing, corrupt or of an incompatible schema."""


class SchemaMismatchError(ResultsError):
    """A result file or folder written by a vaebench with another schema version."""


class DivergenceError(VaebenchError, RuntimeError):
    """Raised by a training loop when the loss turns NaN or infinite."""


class ModelContractError(VaebenchError, RuntimeError):
    """A model broke the model contract while being checked or evaluated: an output of the wrong
    shape, NaN/infinite values, or images outside ``[0, 1]``. The cell fails with this reason."""


class MetricError(VaebenchError, RuntimeError):
    """A metric failed or returned values it did not declare; only its own values are lost."""


class NotApplicableError(VaebenchError):
    """Raised by a metric's ``evaluate`` when it finds it cannot apply to this model and data
    (too few images for its options, say) -- something ``applies_to`` could not see. The
    evaluation is stored as ``not_applicable`` with the message as its reason, not as a
    failure."""


class PluginError(VaebenchError, RuntimeError):
    """A plugin could not be loaded or registered something invalid (strict mode)."""


class DiskFullError(VaebenchError, OSError):
    """No space left on the device holding the results folder; finished cells are intact."""


def import_extra(module: str, what: str, package: str, install: str) -> Any:
    """(A helper of the harness, not an exception: not in ``__all__``.) Import the optional dependency ``module`` (e.g. ``"mlflow"``) for ``what`` (the feature
    that needs it, e.g. ``"--executor dask"``) and return it. Raises :class:`ConfigError`
    ``"WHAT needs PACKAGE, which is not installed: INSTALL"`` when it is missing."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{what} needs {package}, which is not installed: {install}") from None
