"""Hook implementations: the module named by this package's ``vaebench`` entry point."""

from __future__ import annotations

from vaebench.hookspecs import hookimpl
from vaebench.model import ModelSpec
from vaebench.nn import TorchAutoencoder
from vaebench_convae.model import conv_ae

#: The vaebench plugin API this plugin is written against (see vaebench.PLUGIN_API_VERSION).
VAEBENCH_PLUGIN_API = 2

#: The training hyperparameters of TorchAutoencoder; its built-in networks' (arch, hidden,
#: conv_channels, batch_norm) do not apply, since conv_ae passes its own.
TRAINING = {
    k: v
    for k, v in ModelSpec("", TorchAutoencoder).defaults().items()
    if k not in ("arch", "hidden", "conv_channels", "batch_norm")
}

SPEC = ModelSpec(
    "conv-ae",
    conv_ae,
    "convolutional autoencoder (3x3 stride-2 convolutions) for images of any (C, H, W)",
    params={"channels": (32, 64), **TRAINING},
    param_docs={**TorchAutoencoder.param_docs, "channels": "channels per stride-2 convolution"},
)


@hookimpl
def vaebench_models():
    return [SPEC]
