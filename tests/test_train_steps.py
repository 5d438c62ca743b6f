"""Training loop v3: several optimisers (an autoencoder and a critic), each loss minimised over its
own optimiser's parameters only, divergence named by optimiser, and the guards of the contract."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from vaebench.errors import DivergenceError
from vaebench.models.ae import AE
from vaebench.nn import discriminator_mlp, image_critic, reconstruction_loss
from vaebench.train import OptimizerStep, seed_everything, train_loop

SHAPE = (1, 4, 4)


class Critic(AE):
    """A toy adversarial autoencoder: a critic scores decoded images, the autoencoder is pushed
    to make the critic output 0, the critic learns to output 1 on real images and 0 on
    reconstructions."""

    def __init__(self, *args, critic_scale: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.critic = image_critic("mlp", SHAPE, 2, hidden=(8,))
        self.critic_scale = critic_scale

    def configure_optimizers(self):
        return [
            OptimizerStep("autoencoder", self.make_optimizer(self.autoencoder_parameters())),
            OptimizerStep(
                "critic", self.make_optimizer(self.critic.parameters(), lr=5e-3), "critic_loss"
            ),
        ]

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        logits = self.decoder_logits(self.code(self.encoder_outputs(x)))
        rec = reconstruction_loss(logits, x, self.recon_loss).mean()
        fake = torch.sigmoid(logits).reshape(x.shape)
        adv = self.critic(fake).pow(2).mean()
        critic = (self.critic(x) - 1).pow(2).mean() + self.critic(fake.detach()).pow(2).mean()
        return {"loss": rec + 0.5 * adv, "critic_loss": self.critic_scale * critic, "recon": rec}


def _model(**kwargs) -> Critic:
    params = {"latent_dim": 2, "hidden": (8,), "epochs": 2, "batch_size": 8, **kwargs}
    return Critic(SHAPE, **params)


def _plain_two_optimiser_loop(model: Critic, x: Tensor, epochs: int, batch_size: int) -> None:
    """What the loop must do, written out with torch.autograd.grad: one forward pass, each
    loss differentiated w.r.t. its own parameters, both Adam steps."""
    ae = [p for n in (model.encoder, model.decoder) for p in n.parameters()]
    cr = list(model.critic.parameters())
    opt_ae = torch.optim.Adam(ae, lr=model.lr)
    opt_cr = torch.optim.Adam(cr, lr=5e-3)
    n = x.shape[0]
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n)
        for lo in range(0, n, batch_size):
            batch = x[perm[lo : lo + batch_size]]
            losses = model.loss(batch)
            g_ae = torch.autograd.grad(losses["loss"], ae, retain_graph=True)
            g_cr = torch.autograd.grad(losses["critic_loss"], cr)
            for p, g in zip(ae, g_ae, strict=True):
                p.grad = g
            for p, g in zip(cr, g_cr, strict=True):
                p.grad = g
            opt_ae.step()
            opt_cr.step()
    model.eval()


def test_each_optimiser_minimises_its_own_loss_over_its_own_parameters():
    seed_everything(0)
    x = torch.rand(32, *SHAPE)
    model = _model()
    twin = copy.deepcopy(model)
    seed_everything(1)
    report = model.fit(x)
    seed_everything(1)
    _plain_two_optimiser_loop(twin, x, epochs=2, batch_size=8)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert set(report.history) == {"loss", "critic_loss", "recon"}
    assert all(len(v) == 2 for v in report.history.values())
    assert not model.training


def test_the_critic_is_not_moved_by_the_autoencoder_loss_and_vice_versa():
    seed_everything(0)
    x = torch.rand(16, *SHAPE)
    model = _model(epochs=1)
    before = copy.deepcopy(model.state_dict())
    # the critic's optimiser with lr 0: its parameters must not change although the
    # autoencoder's loss has a gradient w.r.t. them
    model.configure_optimizers = lambda: [
        OptimizerStep("autoencoder", model.make_optimizer(model.autoencoder_parameters())),
        OptimizerStep("critic", torch.optim.SGD(model.critic.parameters(), lr=0.0), "critic_loss"),
    ]
    model.fit(x)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("critic."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))


def test_divergence_in_the_critic_loss_names_the_critic():
    seed_everything(0)
    model = _model(critic_scale=float("nan"))
    with pytest.raises(
        DivergenceError,
        match=r"loss diverged at epoch 1/2 in the loss of optimiser 'critic' \(critic_loss=nan, "
        r"non-finite from batch 1 of 2\), then optimiser 'autoencoder' \(loss=nan, ",
    ):
        model.fit(torch.rand(16, *SHAPE))
    assert not model.training


def test_single_optimiser_divergence_message_is_unchanged():
    model = AE(SHAPE, latent_dim=2, hidden=(8,), epochs=1, batch_size=8, lr=1e30)
    with pytest.raises(DivergenceError, match=r"^loss diverged at epoch 1/1: "):
        model.fit(torch.rand(16, *SHAPE))


def test_contract_errors_are_clear():
    x = torch.rand(16, *SHAPE)
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match=r"belongs to optimisers 'a' and 'b'"):
        train_loop(model, x, epochs=1, batch_size=8,
                   steps=[OptimizerStep("a", opt), OptimizerStep("b", opt, "critic_loss")])  # fmt: skip
    ae = torch.optim.Adam(model.autoencoder_parameters())
    cr = torch.optim.Adam(model.critic.parameters())
    with pytest.raises(ValueError, match=r"missing: \['nope'\]"):
        train_loop(model, x, epochs=1, batch_size=8,
                   steps=[OptimizerStep("a", ae), OptimizerStep("b", cr, "nope")])  # fmt: skip
    with pytest.raises(ValueError, match=r"either steps or lr/optimizer/scheduler"):
        train_loop(model, x, epochs=1, batch_size=8, lr=1e-3, steps=[OptimizerStep("a", ae)])
    with pytest.raises(ValueError, match=r"returned no OptimizerStep"):
        train_loop(model, x, epochs=1, batch_size=8, steps=[])


def test_each_optimiser_gets_the_models_schedule():
    seed_everything(0)
    model = _model(epochs=2, schedule="step")
    seen = []
    build = model.configure_optimizers

    def remember():
        steps = build()
        seen.extend(s.optimizer for s in steps)
        return steps

    model.configure_optimizers = remember
    model.fit(torch.rand(16, *SHAPE))
    assert [o.param_groups[0]["lr"] for o in seen] == pytest.approx([1e-4, 5e-4])


def test_straight_through_and_no_grad_updates_train_in_the_loop():
    """A codebook-like buffer updated without gradient and a straight-through rounding."""

    class Rounding(AE):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.register_buffer("updates", torch.zeros(()))

        def loss(self, x: Tensor) -> dict[str, Tensor]:
            z = self.code(self.encoder_outputs(x))
            q = z + (torch.round(z) - z).detach()
            if self.training:
                with torch.no_grad():
                    self.updates += 1
            rec = reconstruction_loss(self.decoder_logits(q), x).mean()
            return {"loss": rec, "recon": rec}

    seed_everything(0)
    model = Rounding(SHAPE, latent_dim=2, hidden=(8,), epochs=2, batch_size=8)
    enc = copy.deepcopy(model.encoder.state_dict())
    model.fit(torch.rand(16, *SHAPE))
    assert model.updates.item() == 4
    assert any(not torch.equal(enc[k], v) for k, v in model.encoder.state_dict().items())


def test_discriminator_mlp_layout():
    net = discriminator_mlp(6, (5, 4))
    kinds = [type(m) for m in net]
    assert kinds == [nn.Linear, nn.LeakyReLU, nn.Linear, nn.LeakyReLU, nn.Linear]
    assert net[1].negative_slope == 0.2 and net(torch.zeros(3, 6)).shape == (3, 1)
    critic = image_critic("conv", (1, 8, 8), 4, conv_channels=(4, 8))
    assert critic(torch.zeros(2, 1, 8, 8)).shape == (2,)


def test_the_adversarial_example_in_docs_models_md_trains():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "CriticAE" in b]
    namespace: dict = {}
    exec(compile(block, "docs/models.md CriticAE", "exec"), namespace)  # noqa: S102
    seed_everything(0)
    model = namespace["CriticAE"](SHAPE, latent_dim=2, hidden=(8,), epochs=1, batch_size=8)
    report = model.fit(torch.rand(16, *SHAPE))
    assert set(report.history) == {"loss", "critic_loss", "recon"}
