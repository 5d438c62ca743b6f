"""Hook implementations: the module named by this package's ``vaebench`` entry point."""

from __future__ import annotations

from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec

#: The vaebench plugin API this plugin is written against (see vaebench.PLUGIN_API_VERSION).
VAEBENCH_PLUGIN_API = 1


def _conv_ae(*args, **kwargs):
    # Import torch-heavy code only when a model is built, so `vaebench list` stays fast.
    from vaebench_convae.model import ConvAE

    return ConvAE(*args, **kwargs)


SPEC = ModelSpec(
    "conv-ae",
    _conv_ae,
    "convolutional autoencoder (stride-2 convolutions) for images of any (C, H, W)",
    params={
        "latent_dim": 10,
        "channels": (32, 64),
        "epochs": 30,
        "batch_size": 128,
        "lr": 1e-3,
        "recon_loss": "bce",
    },
)


@hookimpl
def vaebench_models():
    return [SPEC]
