"""The shared training loop: batching policy, training configuration (optimiser, weight decay,
schedule, clipping), the per-epoch hooks, train/eval modes, labels and the KL warm-up."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from vaebench.errors import DivergenceError
from vaebench.models.ae import AE
from vaebench.models.vae import VAE
from vaebench.nn import SGD_MOMENTUM
from vaebench.train import batch_bounds, seed_everything, train_loop

SHAPE = (1, 4, 4)


class Recording(AE):
    """Records batch sizes, modes, epoch hooks and learning rates as it trains."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []
        self.modes: list[bool] = []
        self.events: list[tuple] = []
        self.lrs: list[float] = []

    def configure_optimizer(self):
        self.opt = super().configure_optimizer()
        return self.opt

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self.events.append(("start", epoch, epochs, self.training))
        self.lrs.append(self.opt.param_groups[0]["lr"])

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.events.append(("end", epoch, sorted(logs)))
        logs["twice_loss"] = 2 * logs["loss"]

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        self.batches.append(x.shape[0])
        self.modes.append(self.training)
        return super().loss(x)


def _recording(**kwargs) -> Recording:
    params = {"latent_dim": 2, "hidden": (8,), "epochs": 2, "batch_size": 16, **kwargs}
    return Recording(SHAPE, **params)


# ----------------------------------------------------------------------------- batching


@pytest.mark.parametrize(
    "n, batch_size, bounds",
    [(129, 128, [(0, 129)]), (33, 16, [(0, 16), (16, 33)]), (128, 128, [(0, 128)]),
     (2, 128, [(0, 2)]), (130, 128, [(0, 128), (128, 130)]), (3, 2, [(0, 3)]),
     (257, 128, [(0, 128), (128, 257)])],
)  # fmt: skip
def test_a_last_batch_of_one_joins_the_previous_batch(n, batch_size, bounds):
    assert batch_bounds(n, batch_size) == bounds


@pytest.mark.parametrize("n, batch_size", [(129, 128), (33, 16)])
def test_batch_norm_trains_when_n_mod_batch_size_is_one(n, batch_size):
    seed_everything(0)
    model = _recording(batch_size=batch_size, batch_norm=True, arch="conv", conv_channels=(4,))
    report = model.fit(torch.rand(n, *SHAPE))
    assert min(model.batches) >= 2
    assert sum(model.batches) == 2 * n  # every example in every epoch
    assert report.samples_seen == 2 * n
    assert all(math.isfinite(v) for v in report.history["loss"])


def test_fewer_than_two_images_or_a_batch_of_one_is_refused():
    with pytest.raises(ValueError, match=r"cannot fit on 1 training example\(s\).*at least 2"):
        _recording().fit(torch.rand(1, *SHAPE))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
        train_loop(_recording(), torch.rand(8, *SHAPE), epochs=1, batch_size=1)


# ----------------------------------------------------------------------------- hooks and modes


def test_hooks_run_every_epoch_in_order_and_logs_they_add_are_stored():
    model = _recording(epochs=3)
    seen = []
    report = model.fit(torch.rand(20, *SHAPE), progress=lambda e, t, logs: seen.append(dict(logs)))
    assert model.events == [
        ("start", 1, 3, True), ("end", 1, ["loss", "recon"]),
        ("start", 2, 3, True), ("end", 2, ["loss", "recon"]),
        ("start", 3, 3, True), ("end", 3, ["loss", "recon"]),
    ]  # fmt: skip
    assert report.history["twice_loss"] == [2 * v for v in report.history["loss"]]
    assert [s["twice_loss"] for s in seen] == report.history["twice_loss"]


def test_every_epoch_trains_in_train_mode_even_after_inference_in_progress():
    model = _recording(epochs=3, batch_norm=True)
    x = torch.rand(20, *SHAPE)

    def progress(epoch, epochs, logs):
        model.eval()  # e.g. a validation pass of the runner between epochs
        model.encode(x[:3])

    model.fit(x, progress=progress)
    assert all(model.modes) and len(model.modes) == 6
    assert not model.training  # left in eval mode


def test_eval_mode_after_divergence():
    class Diverges(AE):
        def loss(self, x):
            out = super().loss(x)
            return {"loss": out["loss"] * float("nan")}

    model = Diverges(SHAPE, latent_dim=2, hidden=(4,), epochs=3)
    with pytest.raises(DivergenceError, match="loss diverged at epoch 1/3: loss=nan"):
        model.fit(torch.rand(10, *SHAPE))
    assert not model.training


# ----------------------------------------------------------------------------- configuration


def test_optimizers_are_built_from_the_hyperparameters():
    adam = _recording(weight_decay=0.01).configure_optimizer()
    assert type(adam) is torch.optim.Adam and adam.defaults["weight_decay"] == 0.01
    adamw = _recording(optimizer="adamw", weight_decay=0.05, lr=0.02).configure_optimizer()
    assert type(adamw) is torch.optim.AdamW
    assert (adamw.defaults["weight_decay"], adamw.defaults["lr"]) == (0.05, 0.02)
    sgd = _recording(optimizer="sgd").configure_optimizer()
    assert type(sgd) is torch.optim.SGD and sgd.defaults["momentum"] == SGD_MOMENTUM == 0.9


@pytest.mark.parametrize(
    "schedule, epochs, factors",
    [("none", 4, [1, 1, 1, 1]),
     ("cosine", 4, [(1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]),
     ("step", 8, [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01]),
     ("step", 3, [1, 0.1, 0.01]),
     ("step", 1, [1])],
)  # fmt: skip
def test_learning_rate_schedules(schedule, epochs, factors):
    model = _recording(schedule=schedule, epochs=epochs, lr=0.1)
    model.fit(torch.rand(8, *SHAPE))
    assert model.lrs == pytest.approx([0.1 * f for f in factors])


def _first_step_size(grad_clip: float) -> float:
    seed_everything(0)
    model = AE(SHAPE, latent_dim=2, hidden=(8,), epochs=1, batch_size=16, optimizer="sgd",
               lr=1.0, grad_clip=grad_clip)  # fmt: skip
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    seed_everything(1)
    model.fit(torch.rand(16, *SHAPE))  # one batch: one step, lr * gradient (momentum is empty)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return float((after - before).norm())


def test_grad_clip_bounds_the_global_gradient_norm():
    free = _first_step_size(0.0)
    assert free > 0.2
    assert _first_step_size(0.1) == pytest.approx(0.1, rel=1e-4)
    assert _first_step_size(1e6) == pytest.approx(free, rel=1e-6)


def test_weight_decay_shrinks_weights_that_get_no_gradient():
    class NoGradient(AE):
        def loss(self, x):  # depends on nothing trainable: only weight decay moves the weights
            zero = sum(p.sum() for p in self.parameters()) * 0.0
            return {"loss": zero}

    model = NoGradient(SHAPE, latent_dim=2, hidden=(4,), epochs=1, batch_size=4,
                       optimizer="adamw", lr=0.1, weight_decay=0.5)  # fmt: skip
    w = model.encoder[0].weight.detach().clone()
    model.fit(torch.rand(4, *SHAPE))
    torch.testing.assert_close(model.encoder[0].weight.detach(), w * (1 - 0.1 * 0.5))


# ----------------------------------------------------------------------------- labels


class UsesLabels(AE):
    """Checks that every batch's labels belong to its images (the label is in the pixels)."""

    @property
    def tags(self):
        import dataclasses

        return dataclasses.replace(super().tags, uses_labels=True)

    def loss(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        assert torch.equal(x[:, 0, 0, 0].round().long(), y)
        self.label_batches = getattr(self, "label_batches", 0) + 1
        return super().loss(x)


def test_labels_reach_models_that_use_them_and_no_others():
    y = torch.arange(20) % 2
    x = torch.rand(20, *SHAPE)
    x[:, 0, 0, 0] = y.float()
    model = UsesLabels(SHAPE, latent_dim=2, hidden=(4,), epochs=2, batch_size=8)
    model.fit(x, y)
    assert model.label_batches == 6  # 8 + 8 + 4, twice
    AE(SHAPE, latent_dim=2, hidden=(4,), epochs=1).fit(x, y)  # a built-in ignores them
    with pytest.raises(ValueError, match=r"labels y must have shape \(20,\)"):
        model.fit(x, y[:5])


# ----------------------------------------------------------------------------- KL warm-up


def test_kl_warm_up_raises_the_weight_linearly_and_logs_it():
    seed_everything(0)
    model = VAE(SHAPE, latent_dim=2, hidden=(8,), epochs=6, batch_size=8, beta=2.0,
                kl_warmup_epochs=4)  # fmt: skip
    report = model.fit(torch.rand(24, *SHAPE))
    assert report.history["kl_weight"] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0, 2.0])
    for loss, rec, kl, w in zip(report.history["loss"], report.history["recon"],
                                report.history["kl"], report.history["kl_weight"], strict=True):  # fmt: skip
        assert loss == pytest.approx(rec + w * kl, rel=1e-5)
    assert model.kl_weight == 2.0


def test_without_warm_up_the_weight_is_beta_and_not_logged():
    seed_everything(0)
    model = VAE(SHAPE, latent_dim=2, hidden=(8,), epochs=2, batch_size=8, beta=3.0)
    report = model.fit(torch.rand(24, *SHAPE))
    assert "kl_weight" not in report.history
    for loss, rec, kl in zip(report.history["loss"], report.history["recon"],
                             report.history["kl"], strict=True):  # fmt: skip
        assert loss == pytest.approx(rec + 3.0 * kl, rel=1e-5)
