"""vaebench-betavae: a beta-VAE with KL warm-up (model ``beta-vae``) and the active-units
metric (``active-units``) as a vaebench plugin."""

__version__ = "0.1.0"
