"""``active-units``: how many latent units a model actually uses (Burda et al., 2016).

A unit ``u`` is active when its code varies across the data:
``A_u = Var_x(encode(x)_u) > threshold`` (``threshold = 0.01``), computed on the test split
(for a VAE, ``encode`` is the posterior mean ``E_q[z_u | x]``, as in the paper). Posterior
collapse shows as few active units. For deterministic autoencoders the code's scale is arbitrary,
so nearly every unit counts as active; compare within VAE-like models.

The metric uses the model only through ``encode`` -- like every vaebench metric.
"""

from __future__ import annotations

import torch

from vaebench.metric import EvalContext, Metric, Value


class ActiveUnits(Metric):
    """Count (and fraction) of latent units whose code variance exceeds ``threshold``."""

    name = "active-units"
    values = (
        Value("active_units", None, "units", 0, "latent units with Var_x(code) > 0.01"),
        Value("active_fraction", None, "", 2, "active units / latent_dim"),
    )

    def __init__(self, threshold: float = 0.01) -> None:
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        self.threshold = float(threshold)

    def applies_to(self, model, dataset) -> bool:
        return dataset.x_test.shape[0] >= 2

    def evaluate(self, model, dataset, ctx: EvalContext) -> dict[str, float]:
        x = dataset.x_test
        codes = []
        with torch.inference_mode():
            for i in range(0, x.shape[0], ctx.eval_batch_size):
                codes.append(model.encode(x[i : i + ctx.eval_batch_size].to(ctx.device)).cpu())
        z = torch.cat(codes).double()
        active = int((z.var(0, unbiased=True) > self.threshold).sum())
        return {"active_units": float(active), "active_fraction": active / z.shape[1]}
