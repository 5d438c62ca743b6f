"""``kl-per-unit``: how much information each latent unit carries, read from the model's
posterior.

For a model with a diagonal-Gaussian posterior ``q(z|x) = N(mu(x), diag(sigma^2(x)))`` and the
standard-normal prior, unit ``u`` costs

    KL_u(x) = KL(q(z_u|x) || N(0, 1)) = (mu_u^2 + sigma_u^2 - log sigma_u^2 - 1) / 2   [nats]

for image ``x`` (Kingma & Welling, 2014, appendix B). The metric averages it over the test
images, ``KL_u = mean_x KL_u(x)``; the sum over the units is the KL term of the ELBO (vaebench's
``elbo_kl``). A unit is *collapsed* when ``KL_u`` is below ``eval.kl_collapse_nats`` (0.01
nats): its posterior is the prior for practically every image, so it carries no information
about ``x`` -- the posterior collapse a large ``beta`` causes and a KL warm-up counters. This is
the ``epsilon = 0.01`` collapse of Lucas et al. (2019), "Don't Blame the ELBO! A Linear VAE
Perspective on Posterior Collapse", NeurIPS, applied to the test-set mean instead of per image.

It complements vaebench's built-in ``active_units`` (Burda et al., 2016), which thresholds the
*variance of the posterior mean* across images and works for every model: ``kl-per-unit`` reads
the posterior's variance as well, so a unit whose mean varies but whose variance stays near 1 is
seen for what it is.

The capability API at work: the metric applies only to models whose tags state
``has_posterior`` and calls nothing but ``model.posterior``; for other models it records why it
does not apply. The per-unit KL values are stored in the evaluation's ``details``.
"""

from __future__ import annotations

from typing import Any

import torch

from vaebench.metric import EvalContext, Metric, Value

REF = (
    "J. Lucas, G. Tucker, R. Grosse, M. Norouzi, Don't Blame the ELBO! A Linear VAE Perspective "
    "on Posterior Collapse, NeurIPS 2019 (epsilon-collapse, epsilon = 0.01 nats)"
)


def unit_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, exp(logvar)) || N(0, 1))`` per element, in nats (float64), same shape."""
    mean, logvar = mean.double(), logvar.double()
    return 0.5 * (mean.square() + logvar.exp() - logvar - 1.0)


class KlPerUnit(Metric):
    """Mean KL to the prior of each latent unit over the test set; collapsed units and the most
    informative unit (see the module docstring)."""

    name = "kl-per-unit"
    group = "representation"
    cost = "cheap"
    version = 1
    options = {"kl_collapse_nats": 0.01}
    option_docs = {
        "kl_collapse_nats": "a latent unit whose mean KL to the prior over the test set is "
        "below this (nats) counts as collapsed (Lucas et al. 2019: 0.01)",
    }
    values = (
        Value("collapsed_units", None, "units", 0,
              "latent units with mean KL(q(z_u|x) || N(0, 1)) over the test set below "
              "eval.kl_collapse_nats", REF),
        Value("collapsed_fraction", None, "fraction", 2, "collapsed units / latent_dim", REF),
        Value("max_unit_kl", None, "nats", 3,
              "mean KL to the prior of the most informative latent unit", REF),
    )  # fmt: skip

    def applies_to(self, model: Any, dataset: Any) -> bool | str:
        if not model.tags.has_posterior:
            return (
                f"needs a posterior q(z|x) (tags.has_posterior), which {type(model).__name__} "
                "does not state"
            )
        return True

    def check_options(self, options: dict[str, Any]) -> None:
        value = options.get("kl_collapse_nats", self.options["kl_collapse_nats"])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(
                f"invalid value {value!r} for eval.kl_collapse_nats: expected a number > 0 (nats)"
            )

    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> dict[str, float]:
        self.check_options(ctx.options)
        threshold = float(ctx.options.get("kl_collapse_nats", self.options["kl_collapse_nats"]))
        x = dataset.x_test
        total = torch.zeros(model.latent_dim, dtype=torch.float64)
        with torch.inference_mode():
            for i in range(0, x.shape[0], ctx.eval_batch_size):
                mean, logvar = model.posterior(x[i : i + ctx.eval_batch_size].to(ctx.device))
                total += unit_kl(mean, logvar).sum(0).cpu()
        kl = total / x.shape[0]
        collapsed = int((kl < threshold).sum())
        ctx.details.update(
            {
                "unit_kl_nats": [float(f"{v:.4g}") for v in kl.tolist()],
                "threshold_nats": threshold,
                "n_test": int(x.shape[0]),
            }
        )
        return {
            "collapsed_units": float(collapsed),
            "collapsed_fraction": collapsed / kl.numel(),
            "max_unit_kl": float(kl.max()),
        }
