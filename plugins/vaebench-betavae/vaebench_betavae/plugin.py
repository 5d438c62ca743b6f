"""Hook implementations: the module named by this package's ``vaebench`` entry point."""

from __future__ import annotations

from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench_betavae.metrics import ActiveUnits

#: The vaebench plugin API this plugin is written against (see vaebench.PLUGIN_API_VERSION).
VAEBENCH_PLUGIN_API = 1


def _beta_vae(*args, **kwargs):
    from vaebench_betavae.model import BetaVAE

    return BetaVAE(*args, **kwargs)


SPEC = ModelSpec(
    "beta-vae",
    _beta_vae,
    "beta-VAE (beta=4 by default) with a linear KL warm-up over warmup_epochs",
    params={
        "latent_dim": 10,
        "hidden": (512, 256),
        "epochs": 30,
        "batch_size": 128,
        "lr": 1e-3,
        "recon_loss": "bce",
        "beta": 4.0,
        "warmup_epochs": 10,
    },
)


@hookimpl
def vaebench_models():
    return [SPEC]


@hookimpl
def vaebench_metrics():
    return [ActiveUnits()]
