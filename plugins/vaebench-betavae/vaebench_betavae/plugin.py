"""Hook implementations: the module named by this package's ``vaebench`` entry point."""

from __future__ import annotations

from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench_betavae.metrics import KlPerUnit
from vaebench_betavae.model import BetaVAE

#: The vaebench plugin API this plugin is written against (see vaebench.PLUGIN_API_VERSION).
VAEBENCH_PLUGIN_API = 2

# The hyperparameters are read from BetaVAE's signature and its bases' (beta=4, the warm-up,
# then everything vaebench's VAE and TorchAutoencoder take).
SPEC = ModelSpec(
    "beta-vae-warmup",
    BetaVAE,
    "beta-VAE (beta=4 by default) with a linear KL warm-up over kl_warmup_epochs",
)


@hookimpl
def vaebench_models():
    return [SPEC]


@hookimpl
def vaebench_metrics():
    return [KlPerUnit()]
