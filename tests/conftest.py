"""Shared fixtures. Tests run on CPU unless VAEBENCH_TEST_DEVICE says otherwise."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("VAEBENCH_STRICT_PLUGINS", "0")

# Tests use tiny models, for which intra-op threads cost far more than they bring on a small,
# shared machine (measured ~16x slower with 2 threads under load). Results do not depend on it.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _restore_vaebench_logger():
    """The CLI configures the "vaebench" logger (its own handler, no propagation); restore it
    after each test so that caplog sees vaebench's log records whatever ran before."""
    import logging

    logger = logging.getLogger("vaebench")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]


@pytest.fixture
def device() -> torch.device:
    return torch.device(os.environ.get("VAEBENCH_TEST_DEVICE", "cpu"))


@pytest.fixture
def registry():
    from vaebench.plugins import get_registry

    return get_registry()


@pytest.fixture(scope="session")
def digits():
    from vaebench.data.digits import load_digits

    return load_digits()


@pytest.fixture
def fresh_plugins():
    """Reset the plugin manager before and after a test that changes what is installed."""
    from vaebench import plugins

    plugins.reset()
    yield plugins
    plugins.reset()
