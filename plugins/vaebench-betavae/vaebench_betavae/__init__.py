"""vaebench-betavae: a beta-VAE with KL warm-up (model ``beta-vae-warmup``) and the per-unit KL metric
(``kl-per-unit``: collapsed latent units, read from the posterior) as a vaebench plugin."""

__version__ = "0.1.0"
