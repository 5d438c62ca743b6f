"""The evaluation engine: every output checked, each metric isolated, NaN values explained,
evaluations keyed by metric name, version and options, independent random streams."""

from __future__ import annotations

import json

import pytest
import torch

from vaebench.dataset import Dataset
from vaebench.errors import ModelContractError
from vaebench.evaluation import (
    GuardedModel,
    cell_warnings,
    evaluate_metrics,
    evaluation_key,
    metric_options,
)
from vaebench.metric import EvalContext, Metric, Value, metric_seed
from vaebench.model import FitReport, Model


class Linear(Model):
    """A fixed linear 'autoencoder' for 1x4x4 images with a switchable fault."""

    latent_dim = 2
    input_shape = (1, 4, 4)

    def __init__(self, fault: str = "") -> None:
        self.fault = fault
        g = torch.Generator().manual_seed(0)
        self.w = torch.randn(16, 2, generator=g) * 0.1

    def fit(self, x, y=None, progress=None):
        return FitReport({"loss": [0.0]}, 0.0, 0, 1)

    def encode(self, x):
        return x.reshape(x.shape[0], -1) @ self.w

    def decode(self, z):
        out = torch.sigmoid(z @ self.w.T).reshape(z.shape[0], 1, 4, 4)
        if self.fault == "nan-on-bright":
            bright = (z.abs().sum(1) > 0.05).nonzero().flatten()
            out = out.clone()
            out[bright] = float("nan")
        if self.fault == "tanh":
            out = torch.tanh(z @ self.w.T * 20).reshape(z.shape[0], 1, 4, 4)
        if self.fault == "shape":
            out = out[:, :, :3]
        if self.fault == "raise":
            raise RuntimeError("decoder exploded")
        return out

    @property
    def device(self):
        return torch.device("cpu")

    def to(self, device):
        return self

    @property
    def n_params(self):
        return 32

    def state_dict(self):
        return {"w": self.w}

    def load_state_dict(self, state):
        self.w = state["w"]


def _dataset(n: int = 40) -> Dataset:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, 4, 4, generator=g)
    x[:2] = 0.0  # the first two test images are dark (the original check looked only at them)
    return Dataset("tiny", x_train=x.clone(), x_test=x)


class MeanDecoded(Metric):
    name = "mean_decoded"
    values = (Value("mean_pixel", None, "", 4),)

    def evaluate(self, model, dataset, ctx):
        return {"mean_pixel": float(model.decode(model.encode(dataset.x_test)).mean())}


class Raises(Metric):
    name = "raises"
    values = (Value("never", False),)

    def evaluate(self, model, dataset, ctx):
        raise ValueError("this metric is broken")


class ReturnsNaN(Metric):
    name = "returns_nan"
    values = (Value("undefined", False), Value("defined", False))

    def evaluate(self, model, dataset, ctx):
        return {"undefined": float("nan"), "defined": 1.0}


class Draws(Metric):
    name = "draws"
    values = (Value("draw", None, "", 6),)
    options = {"scale": 1.0}

    def evaluate(self, model, dataset, ctx):
        return {"draw": float(torch.rand(1, generator=ctx.generator)) * ctx.options["scale"]}


def _ctx() -> EvalContext:
    return EvalContext(seed=3, device=torch.device("cpu"), options={"scale": 1.0})


def test_nan_on_some_inputs_fails_the_cell_with_the_reason():
    with pytest.raises(ModelContractError, match=r"model\.decode returned NaN .* for \d+ of 40"):
        evaluate_metrics(Linear("nan-on-bright"), _dataset(), [MeanDecoded()], _ctx())


def test_out_of_range_images_fail_the_cell():
    with pytest.raises(ModelContractError, match=r"outside \[0, 1\].*mean_decoded"):
        evaluate_metrics(Linear("tanh"), _dataset(), [MeanDecoded()], _ctx())


def test_wrong_shape_and_raising_model_are_blamed_on_the_model():
    with pytest.raises(ModelContractError, match=r"decode returned shape \(40, 1, 3, 4\)"):
        evaluate_metrics(Linear("shape"), _dataset(), [MeanDecoded()], _ctx())
    with pytest.raises(ModelContractError, match="model.decode raised RuntimeError: decoder"):
        evaluate_metrics(Linear("raise"), _dataset(), [MeanDecoded()], _ctx())


def test_a_raising_metric_fails_only_its_own_values():
    out = evaluate_metrics(
        Linear(), _dataset(), [Raises(), MeanDecoded()], _ctx(), origins={"raises": "pkg 1.0"}
    )
    assert out["raises"]["status"] == "failed"
    assert "ValueError: this metric is broken" in out["raises"]["reason"]
    assert out["raises"]["plugin"] == "pkg 1.0"
    assert "Traceback" in out["raises"]["traceback"]
    assert out["mean_decoded"]["status"] == "ok"
    assert 0 < out["mean_decoded"]["values"]["mean_pixel"] < 1


def test_nan_values_are_stored_as_null_with_a_reason():
    out = evaluate_metrics(Linear(), _dataset(), [ReturnsNaN()], _ctx())["returns_nan"]
    assert out["status"] == "ok"
    assert out["values"] == {"undefined": None, "defined": 1.0}
    assert set(out["nan"]) == {"undefined"} and "nan" in out["nan"]["undefined"]
    record = {"status": "ok", "evaluations": {"returns_nan": out}}
    assert [w["kind"] for w in cell_warnings(record)] == ["nan_value"]


class ReturnsInf(Metric):
    name = "returns_inf"
    values = (Value("up", False), Value("down", False), Value("undefined", False))

    def evaluate(self, model, dataset, ctx):
        return {"up": float("inf"), "down": float("-inf"), "undefined": float("nan")}


def test_infinite_values_are_recorded_and_reported_as_infinite_not_nan(tmp_path):
    from test_report_cells import write_cell

    from vaebench.report import build_report
    from vaebench.results import atomic_write_json

    out = evaluate_metrics(Linear(), _dataset(), [ReturnsInf()], _ctx())["returns_inf"]
    assert out["values"] == {"up": None, "down": None, "undefined": None}
    assert out["nonfinite"] == {"up": "inf", "down": "-inf", "undefined": "nan"}
    assert "returned inf" in out["nan"]["up"]
    record = {"status": "ok", "evaluations": {"returns_inf": out}}
    messages = [w["message"] for w in cell_warnings(record)]
    assert [m.split(":")[0] for m in messages] == [
        "up (returns_inf) is inf",
        "down (returns_inf) is -inf",
        "undefined (returns_inf) is NaN",
    ]
    # stored, then reported: the table entry says inf, not NaN
    run = tmp_path / "r"
    path = write_cell(run, "ae", "toy", 0, {"mse": 0.1})
    cell = json.loads(path.read_text())
    cell["evaluations"]["returns_inf"] = {**out, "metric": "returns_inf", "key": "k",
                                          "version": 1, "options": {},
                                          "plugin": "vaebench 0.1.0 (test)"}  # fmt: skip
    atomic_write_json(path, cell)
    build_report([run], formats=["md"], figures=False)
    tables = "".join(p.read_text() for p in (run / "tables").glob("*.md"))
    assert "inf‡" in tables and "-inf‡" in tables and "NaN‡" in tables
    page = (run / "report.md").read_text()
    assert "## NaN and infinite values" in page and "the metric returned inf" in page
    assert "‡ NaN or infinite for some seeds" in tables


def test_undeclared_or_missing_values_fail_the_metric():
    class Wrong(Metric):
        name = "wrong"
        values = (Value("a", False),)

        def evaluate(self, model, dataset, ctx):
            return {"b": 1.0}

    out = evaluate_metrics(Linear(), _dataset(), [Wrong()], _ctx())["wrong"]
    assert out["status"] == "failed" and "missing ['a'], undeclared ['b']" in out["reason"]


def test_a_metric_finding_it_does_not_apply_is_not_applicable_not_failed():
    from vaebench.errors import NotApplicableError

    class Picky(MeanDecoded):
        name = "picky"

        def evaluate(self, model, dataset, ctx):
            raise NotApplicableError("needs 1000 test images for its options, got 40")

    out = evaluate_metrics(Linear(), _dataset(), [Picky()], _ctx())["picky"]
    assert out["status"] == "not_applicable" and out["reason"].startswith("needs 1000")


def test_not_applicable_is_recorded_with_the_reason():
    class NeedsLabels(MeanDecoded):
        name = "needs_labels"

        def applies_to(self, model, dataset):
            return "needs labels"

    out = evaluate_metrics(Linear(), _dataset(), [NeedsLabels()], _ctx())["needs_labels"]
    assert out == {**out, "status": "not_applicable", "reason": "needs labels"}


def test_each_metric_has_its_own_random_stream():
    """Selecting a subset of metrics never changes another metric's numbers."""

    class Other(Draws):
        name = "other"

    alone = evaluate_metrics(Linear(), _dataset(), [Draws()], _ctx())["draws"]["values"]
    after = evaluate_metrics(Linear(), _dataset(), [Other(), Draws()], _ctx())
    assert after["draws"]["values"] == alone
    assert after["other"]["values"] != alone  # a different stream
    assert metric_seed(3, "draws") != metric_seed(3, "other") != metric_seed(4, "draws")


def test_evaluation_key_changes_with_options_and_version_only():
    m = Draws()
    k = evaluation_key(m, metric_options(m, {"scale": 1.0, "eval_batch_size": 7}))
    assert k == evaluation_key(m, metric_options(m, {"scale": 1.0, "eval_batch_size": 99}))
    assert k != evaluation_key(m, metric_options(m, {"scale": 2.0}))
    m.version = 2
    assert k != evaluation_key(m, metric_options(m, {"scale": 1.0}))


def test_guarded_model_refuses_to_change_the_model():
    guard = GuardedModel(Linear(), "m")
    for call in (lambda: guard.fit(torch.zeros(1)), lambda: guard.to("cpu"),
                 lambda: guard.load_state_dict({})):  # fmt: skip
        with pytest.raises(ModelContractError, match="metrics may not"):
            call()
    assert guard.fault == ""  # other attributes pass through
    assert guard.latent_dim == 2 and guard.input_shape == (1, 4, 4)


def test_warnings_for_unconverged_training_and_collapsed_posteriors():
    falling = {"status": "ok", "history": {"loss": [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]}}
    assert cell_warnings(falling)[0]["kind"] == "not_converged"
    flat = {"status": "ok", "history": {"loss": [10, 5, 3, 2, 2, 2, 2, 2, 2, 2]}}
    assert cell_warnings(flat) == []
    # with a validation curve, that is what is monitored
    val = {**flat, "history": {**flat["history"], "val_mse": [5, 4, 3, 2.5, 2, 1.5]}}
    assert "val_mse fell" in cell_warnings(val)[0]["message"]
    collapsed = {
        "status": "ok",
        "model_info": {"tags": {"has_posterior": True}},
        "evaluations": {"active_units": {"status": "ok", "values": {"active_fraction": 0.0}}},
    }
    assert [w["kind"] for w in cell_warnings(collapsed)] == ["few_active_units"]
    deterministic = {**collapsed, "model_info": {"tags": {"has_posterior": False}}}
    assert cell_warnings(deterministic) == []


class PartlyApplicable(Metric):
    """Two values; ``b`` does not apply (declared through the context), returned as ``b``
    says: NaN, left out or a number (a contradiction)."""

    name = "partly"
    values = (Value("a", False), Value("b", False))

    def __init__(self, b=float("nan"), declare=("b",)) -> None:
        self.b, self.declare = b, declare

    def evaluate(self, model, dataset, ctx):
        for name in self.declare:
            ctx.value_not_applicable(name, f"{name} needs a prior;\n  this model has none")
        out = {"a": 0.5}
        if self.b != "omit":
            out["b"] = self.b
        return out


@pytest.mark.parametrize("b", [float("nan"), "omit"])
def test_a_value_declared_not_applicable_is_stored_so_not_as_nan(b):
    out = evaluate_metrics(Linear(), _dataset(), [PartlyApplicable(b)], _ctx())["partly"]
    assert out["status"] == "ok" and out["values"] == {"a": 0.5}
    assert out["not_applicable"] == {"b": "b needs a prior; this model has none"}
    assert out["nan"] == {} and out["nonfinite"] == {}
    assert set(out["info"]) == {"a", "b"}  # still declared: the glossary can define it
    assert cell_warnings({"status": "ok", "evaluations": {"partly": out}}) == []


def test_declaring_values_not_applicable_is_checked():
    def run(metric):
        return evaluate_metrics(Linear(), _dataset(), [metric], _ctx())["partly"]

    out = run(PartlyApplicable(b=1.0))  # a number for a value said not to apply
    assert (
        out["status"] == "failed" and "'b' is declared not applicable but is 1.0" in out["reason"]
    )
    out = run(PartlyApplicable(declare=("c",)))
    assert (
        out["status"] == "failed"
        and "not applicable ['c'], which are not declared" in out["reason"]
    )
    out = run(PartlyApplicable(declare=("a", "b")))  # nothing applies: the whole metric
    assert out["status"] == "not_applicable"
    assert (
        out["reason"] == "a needs a prior; this model has none; b needs a prior; this model "
        "has none"
    )
    assert "values" not in out
    # metrics that declare nothing store no not_applicable field (older records unchanged)
    assert "not_applicable" not in evaluate_metrics(Linear(), _dataset(), [MeanDecoded()],
                                                    _ctx())["mean_decoded"]  # fmt: skip
