"""Samplers as a grid axis of the sample-quality metrics (issue 22): prior, gaussian, gmm and
two-stage; each fitted on the training codes only, each with its own random stream, so adding a
sampler changes no other sampler's values."""

from __future__ import annotations

import math

import pytest
import torch
from test_metrics_samples import SHAPE, Blobs, Deterministic

from vaebench.evaluation import evaluate_metrics
from vaebench.metric import EvalContext
from vaebench.metrics import samples as samples_mod
from vaebench.metrics.samples import (
    FrechetDistance,
    KernelDistance,
    PrecisionRecall,
    TwoStageVAE,
    draw_gmm,
    fit_gmm,
    fit_two_stage,
    parse_samplers,
    sampler_seed,
)
from vaebench.testing import tiny_dataset

FAST = {
    "feature_steps": 100,
    "feature_train_n": 300,
    "sample_n": 150,
    "kid_subsets": 10,
    "two_stage_steps": 150,
    "two_stage_width": 32,
    "gmm_components": 3,
}


@pytest.fixture(scope="module")
def data():
    return tiny_dataset(SHAPE, n_train=300, n_test=200)


def ctx(options=None, metric="fd", cache=None, seed=0) -> EvalContext:
    c = EvalContext(
        seed=seed, device=torch.device("cpu"), eval_batch_size=128,
        options={**FAST, **(options or {})}, metric=metric,
    )  # fmt: skip
    if cache is not None:
        c.cache = cache
    return c


def test_sampler_names_lists_and_old_names():
    assert parse_samplers("prior, gmm,two-stage") == ["prior", "gmm", "two-stage"]
    assert parse_samplers("expost") == ["gaussian"]
    assert parse_samplers("gaussian,expost") == ["gaussian"]
    with pytest.raises(ValueError, match="invalid value 'prior,gan' for eval.sampler; valid: "):
        parse_samplers("prior,gan")
    # prior and gaussian keep the stream of earlier versions; the others have their own
    assert sampler_seed(3, "prior") == sampler_seed(3, "gaussian")
    assert len({sampler_seed(3, s) for s in ("gaussian", "gmm", "two-stage")}) == 3


def test_gmm_draws_follow_the_fitted_mixture():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(600, 2, generator=g, dtype=torch.float64) * 0.1
    z = torch.cat([a + torch.tensor([2.0, 0.0]), a - torch.tensor([2.0, 0.0])])
    w, means, chol = fit_gmm(z, 2, seed=1)
    assert torch.allclose(w, torch.tensor([0.5, 0.5], dtype=torch.float64), atol=0.01)
    assert sorted(float(m) for m in means[:, 0]) == pytest.approx([-2.0, 2.0], abs=0.02)
    draws = draw_gmm((w, means, chol), 4000, torch.Generator().manual_seed(2))
    assert float((draws[:, 0] > 0).double().mean()) == pytest.approx(0.5, abs=0.03)
    assert float(draws[draws[:, 0] > 0, 1].std()) == pytest.approx(0.1, abs=0.01)
    # components are capped at the number of codes
    assert fit_gmm(z[:2], 10, seed=0)[0].shape == (2,)


def test_two_stage_vae_has_pythae_s_layout_and_the_gaussian_objective():
    """pythae's TwoStageVAESampler (src/pythae/samplers/two_stage_vae_sampler/
    two_stage_sampler.py): ``second_stage_depth`` = 2 layers of ``second_layers_dim`` units with
    ReLU in encoder and decoder, latent size = the first model's, a learned ``gamma_z``."""
    net = TwoStageVAE(3, 16)
    linears = [m for m in net.encoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3, 16), (16, 16), (16, 6)]
    linears = [m for m in net.decoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3, 16), (16, 16), (16, 3)]
    # the loss by hand: |z - mu(u)|^2 / (2 gamma^2) + d log gamma + KL(q(u|z) || N(0, I))
    with torch.no_grad():
        net.log_gamma.fill_(math.log(0.5))
        z = torch.randn(5, 3)
        eps = torch.randn(5, 3)
        h = net.encoder(z)
        m, lv = h[:, :3], h[:, 3:]
        mu = net.decoder(m + torch.exp(0.5 * lv) * eps)
        kl = 0.5 * (lv.exp() - 1 - lv + m**2).sum(1)
        want = ((z - mu).pow(2).sum(1) / (2 * 0.25) + 3 * math.log(0.5) + kl).mean()
        assert float(net.loss(z, eps)) == pytest.approx(float(want), rel=1e-6)


def test_two_stage_learns_a_gaussian_of_codes_and_leaves_the_global_stream_alone():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(512, 2, generator=g) * torch.tensor([2.0, 0.5]) + torch.tensor([1.0, -1.0])
    before = torch.random.get_rng_state()
    net = fit_two_stage(z, steps=2000, width=32, seed=5)  # the default number of steps
    assert torch.equal(torch.random.get_rng_state(), before)
    draws = net.draw(4000, torch.Generator().manual_seed(1)).float()
    assert draws.mean(0).tolist() == pytest.approx([1.0, -1.0], abs=0.25)
    assert draws.std(0).tolist() == pytest.approx([2.0, 0.5], rel=0.3)
    a, b = (fit_two_stage(z, steps=50, width=8, seed=5) for _ in range(2))
    draw = [n.draw(5, torch.Generator().manual_seed(1)) for n in (a, b)]
    assert torch.equal(draw[0], draw[1])


class Recording(Deterministic):
    """Records every image batch it encodes."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def encode(self, x):
        self.seen.append(x.clone())
        return super().encode(x)


@pytest.mark.parametrize("sampler", ["gaussian", "gmm", "two-stage"])
def test_ex_post_samplers_are_fitted_on_training_codes_only(data, sampler, monkeypatch):
    model = Recording()
    fitted = {}
    real_fit_gmm, real_fit_two = samples_mod.fit_gmm, samples_mod.fit_two_stage
    real_gauss = samples_mod.expost_gaussian

    def spy(fn, name):
        def wrapped(z, *args, **kwargs):
            fitted[name] = z.clone()
            return fn(z, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(samples_mod, "fit_gmm", spy(real_fit_gmm, "gmm"))
    monkeypatch.setattr(samples_mod, "fit_two_stage", spy(real_fit_two, "two-stage"))
    monkeypatch.setattr(samples_mod, "expost_gaussian", spy(real_gauss, "gaussian"))
    c = ctx({"sampler": sampler})
    FrechetDistance().evaluate(model, data, c)
    encoded = torch.cat(model.seen)
    assert torch.equal(encoded, data.x_train)  # the training split, nothing else
    assert torch.equal(fitted[sampler], Deterministic().encode(data.x_train))
    assert c.details["sampler"] == sampler and c.details["fit_split"] == "train"
    assert c.details["n_fit"] == data.x_train.shape[0]


def test_adding_a_sampler_changes_no_other_sampler_s_values(data):
    def run(samplers):
        cache: dict = {}
        out = {}
        for metric in (FrechetDistance(), KernelDistance(), PrecisionRecall()):
            c = ctx({"sampler": samplers}, metric.name, cache)
            out.update(metric.evaluate(Blobs(), data, c))
        return out

    alone = run("gmm")
    two = run("gmm,two-stage")
    four = run("prior,gaussian,gmm,two-stage")
    for name in ("fd", "kid", "prdc_precision", "prdc_recall", "prdc_density", "prdc_coverage"):
        assert two[f"{name}@gmm"] == alone[name] == four[f"{name}@gmm"], name
        assert two[f"{name}@two-stage"] == four[f"{name}@two-stage"], name
    assert run("prior")["fd"] == four["fd@prior"] and run("gaussian")["fd"] == four["fd@gaussian"]
    # a sampler that draws from the model's prior beats a Gaussian or one-component mixture?
    # not asserted: which sampler wins is what the benchmark measures


def test_a_model_without_a_prior_gets_a_reasoned_not_applicable_value(data):
    metric = FrechetDistance()
    c = EvalContext(seed=0, device=torch.device("cpu"), eval_batch_size=128,
                    options={**FAST, "sampler": "prior,gmm"})  # fmt: skip
    got = evaluate_metrics(Deterministic(), data, [metric], c)["fd"]
    assert got["status"] == "ok"
    assert got["values"] == {"fd@gmm": got["values"]["fd@gmm"]} and got["values"]["fd@gmm"] > 0
    assert "has no prior" in got["not_applicable"]["fd@prior"]
    assert got["nan"] == {} and got["nonfinite"] == {}  # not a NaN value
    assert got["details"]["samplers"]["prior"]["not_applicable"].startswith("sampler 'prior'")
    assert got["details"]["n_real"] == 150 and "nan_reasons" not in got["details"]
    assert set(got["info"]) == {"fd@prior", "fd@gmm"}
    assert got["artifacts"]["samples@gmm"]


def test_kid_stores_no_std_when_the_subsets_are_the_whole_sets(data):
    c = ctx({"sample_n": 150, "kid_subset_size": 150}, "kid")
    KernelDistance().evaluate(Blobs(), data, c)
    assert c.details["kid_std"] is None and c.details["kid_subsets"] == 1
    assert "whole sets" in c.details["estimator"]
    c = ctx({"sample_n": 150, "kid_subset_size": 50}, "kid")
    KernelDistance().evaluate(Blobs(), data, c)
    assert c.details["kid_std"] > 0 and "10 random subset pairs" in c.details["estimator"]


def test_evaluate_sweeps_only_the_sampler_and_names_a_bad_one(tmp_path):
    from click.testing import CliRunner

    from vaebench.cli import cli

    (tmp_path / "cells").mkdir()  # an (empty) results folder
    runner = CliRunner()
    got = runner.invoke(cli, ["evaluate", str(tmp_path), "--sweep", "eval.iwae_k=1,2"])
    assert got.exit_code == 2 and "evaluate sweeps only eval.sampler" in got.output
    got = runner.invoke(
        cli, ["evaluate", str(tmp_path), "--metrics", "fd", "--sweep", "eval.sampler=prior,gan"]
    )
    assert got.exit_code == 2
    assert "invalid value 'prior,gan' for eval.sampler; valid: auto, prior, gaussian" in got.output


def test_prior_of_a_model_without_one_is_not_applicable_in_cell_tidy_frame_and_report(
    data, tmp_path
):
    """rae (no prior) and vae (a prior) with sampler=prior,gaussian: rae's fd@prior is stored
    as not applicable with the reason (no NaN, no nan_value warning), has no tidy row, and the
    report's model x sampler table shows the not-applicable marker with the reason, not NaN."""
    import json

    from test_report_cells import write_cell

    from vaebench.evaluation import cell_warnings
    from vaebench.report import build_report
    from vaebench.results import atomic_write_json, read_cell
    from vaebench.tidy import load_results

    run = tmp_path / "run"
    for model_name, model in (("vae", Blobs()), ("rae", Deterministic())):
        c = EvalContext(seed=0, device=torch.device("cpu"), eval_batch_size=128,
                        options={**FAST, "sampler": "prior,gaussian"})  # fmt: skip
        ev = evaluate_metrics(model, data, [FrechetDistance()], c)["fd"]
        path = write_cell(run, model_name, "toy", 0, {"mse": 0.1})
        cell = json.loads(path.read_text())
        cell["evaluations"]["fd"] = ev
        cell["warnings"] = cell_warnings(cell)
        atomic_write_json(path, cell)
        stored = read_cell(path)  # the schema check accepts the new field
        if model_name == "rae":
            assert stored["evaluations"]["fd"]["not_applicable"] == {
                "fd@prior": "sampler 'prior': Deterministic has no prior to sample from "
                "(tags.can_sample is false)"
            }
            assert "fd@prior" not in stored["metrics"] and stored["metrics"]["fd@gaussian"] > 0
            assert not [w for w in stored["warnings"] if w["kind"] == "nan_value"]
        else:
            assert "not_applicable" not in stored["evaluations"]["fd"]
    frame = load_results(run)
    fd = frame[frame.metric.str.startswith("fd@")].set_index(["model", "metric"])["value"]
    assert sorted(fd.index) == [("rae", "fd@gaussian"), ("vae", "fd@gaussian"),
                                ("vae", "fd@prior")]  # fmt: skip
    assert fd.notna().all()
    build_report([run], formats=["md"], figures=False)
    page = (run / "report.md").read_text()
    table = next(p.read_text() for p in (run / "tables").glob("*.md") if "fd@prior" in
                 p.read_text())  # fmt: skip
    assert "NaN" not in table and "‡" not in table
    row = next(line for line in table.splitlines() if line.startswith("| rae "))
    header = next(line for line in table.splitlines() if "fd@prior" in line)
    cols = [c.strip() for c in header.split("|")]
    entries = [c.strip() for c in row.split("|")]
    assert entries[cols.index(next(c for c in cols if c.startswith("fd@prior")))] == "–"
    assert entries[cols.index(next(c for c in cols if c.startswith("fd@gaussian")))] != "–"
    assert "Not applicable (–): fd@prior of rae: sampler 'prior': Deterministic has no prior" in (
        table
    )
    assert "## NaN and infinite values" not in page
    assert "| fd (fd@prior) | rae | toy | sampler 'prior': Deterministic has no prior" in page
