"""Results you can trust (issue 10), end to end through ``vaebench run``: every input of the
issue as a test holding the right value -- a model that breaks the output contract fails its
cell with the reason, a raising metric fails only its own values, reloaded models reproduce the
stored numbers, links are never written through, files honour the umask, a full disk and
Ctrl-C stop cleanly with the documented exit codes.

The failing models and the metric are a small plugin registered in the test; the dataset is 8x8
images whose first two training and test images are dark (the pre-training sanity check looks at
two training images only, so a model must be checked on every evaluated output as well).
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vaebench.dataset import Dataset, DatasetSpec
from vaebench.hookspecs import hookimpl
from vaebench.metric import Metric, Value
from vaebench.model import FitReport, Model, ModelSpec
from vaebench.results import read_cell

SIDE = 8


class PixelCode(Model):
    """The code is the image itself (``latent_dim = C*H*W``), decoded by one learned gain
    (exactly 1 after ``fit``): a perfect 'autoencoder' with nothing to train, so that each
    subclass breaks exactly one rule of the contract."""

    def __init__(self, input_shape=(1, SIDE, SIDE), device="cpu") -> None:
        self.input_shape = tuple(input_shape)
        self.latent_dim = int(np.prod(self.input_shape))
        self.gain = torch.ones((), device=device)

    def fit(self, x, y=None, progress=None):
        return FitReport({"loss": [0.0]}, 0.0, int(x.shape[0]), 1)

    def encode(self, x):
        return x.reshape(x.shape[0], -1).clone()

    def decode(self, z):
        return (z * self.gain).reshape(z.shape[0], *self.input_shape)

    @property
    def device(self):
        return self.gain.device

    def to(self, device):
        self.gain = self.gain.to(device)
        return self

    @property
    def n_params(self):
        return 1

    def state_dict(self):
        return {"gain": self.gain}

    def load_state_dict(self, state):
        self.gain = state["gain"]


class NaNOnBright(PixelCode):
    """Decodes every image that has a bright pixel (> 0.5) to NaN: dark images decode fine."""

    def decode(self, z):
        out = super().decode(z)
        bright = out.flatten(1).amax(1) > 0.5
        return torch.where(bright[:, None, None, None], torch.full_like(out, float("nan")), out)


class TanhOutput(PixelCode):
    """A tanh output layer: values in (-1, 1), so dark pixels decode below 0."""

    def decode(self, z):
        return torch.tanh(4.0 * (super().decode(z) - 0.5))


class Brittle(Metric):
    """A metric plugin with a bug: it raises ValueError."""

    name = "brittle"
    values = (Value("brittle_score", True, "", 3, "never computed"),)

    def evaluate(self, model, dataset, ctx):
        raise ValueError("brittle cannot handle 8x8 images")


class HalfNaN(Metric):
    """A metric one of whose values is undefined (NaN) on every model."""

    name = "halfnan"
    values = (Value("undefined", False, "", 3, "always NaN"), Value("defined", False, "", 3))

    def evaluate(self, model, dataset, ctx):
        return {"undefined": float("nan"), "defined": 1.0}


def dark_first(n_train: int = 48, n_test: int = 24) -> Dataset:
    """8x8 images in [0, 0.4] with one bright pixel (1.0) each, except the first two of each
    split, which are black."""
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> torch.Tensor:
        x = torch.rand(n, 1, SIDE, SIDE, generator=g) * 0.4
        for i in range(n):
            x[i, 0, i % SIDE, (3 * i) % SIDE] = 1.0
        x[:2] = 0.0
        return x

    return Dataset("darkfirst", x_train=split(n_train), x_test=split(n_test))


class IntegrityPlugin:
    @hookimpl
    def vaebench_models(self):
        return [
            ModelSpec("pixels", PixelCode, "the image is the code"),
            ModelSpec("nanbright", NaNOnBright, "NaN for images with a bright pixel"),
            ModelSpec("tanh", TanhOutput, "tanh outputs, below 0 for dark pixels"),
        ]

    @hookimpl
    def vaebench_datasets(self):
        return [DatasetSpec("darkfirst", dark_first, "first two images dark", (1, 8, 8), (48, 24))]

    @hookimpl
    def vaebench_metrics(self):
        return [Brittle(), HalfNaN()]


@pytest.fixture
def reg(fresh_plugins):
    fresh_plugins.get_plugin_manager().register(IntegrityPlugin(), name="integrity-test")
    return fresh_plugins.get_registry()


FAST = ["--set", "eval.throughput_seconds=0.01", "--set", "eval.n_pairs=16"]


def invoke(*args: str) -> CliRunner:
    """``vaebench ARGS`` in this process (the same code path as the command)."""
    from vaebench.cli import cli

    return CliRunner().invoke(cli, list(args))


def run_args(out: Path, models: str, *extra: str, dataset: str = "darkfirst") -> list[str]:
    return ["run", "--models", models, "--datasets", dataset, "--seeds", "0", "--threads", "1",
            "--workers", "1", "--no-progress", "--out", str(out), *FAST, *extra]  # fmt: skip


def cells(out: Path) -> dict[str, dict]:
    return {p.stem: read_cell(p) for p in sorted((out / "cells").glob("*.json"))}


def by_model(out: Path) -> dict[str, dict]:
    return {rec["model"]: rec for rec in cells(out).values()}


# ----------------------------------------------------------------------------- 1, 2: outputs


def test_nan_for_bright_images_fails_the_cell_with_method_and_count(reg, tmp_path):
    out = tmp_path / "run"
    result = invoke(*run_args(out, "nanbright,pixels", "--metrics", "reconstruction",
                                "--no-report"))  # fmt: skip
    assert result.exit_code == 1, result.output
    rec = by_model(out)["nanbright"]
    reason = rec["error"]["reason"]
    assert rec["status"] == "failed"
    assert reason.startswith("model contract: model.decode returned NaN")
    assert "22 of 24" in reason  # every evaluated image checked, not two
    assert "nanbright / darkfirst / seed 0: model contract: model.decode returned NaN" in (
        result.stderr
    )
    assert by_model(out)["pixels"]["status"] == "ok"
    assert by_model(out)["pixels"]["metrics"]["mse"] == 0.0
    report = invoke("report", str(out), "--no-figures")
    assert report.exit_code == 0, report.output
    page = (out / "report.md").read_text()
    assert "Failed cells" in page and "model.decode returned NaN" in page


def test_outputs_below_zero_fail_the_cell_as_check_flags_them(reg, tmp_path):
    out = tmp_path / "run"
    result = invoke(*run_args(out, "tanh,pixels", "--metrics", "reconstruction",
                                "--no-report"))  # fmt: skip
    assert result.exit_code == 1, result.output
    rec = by_model(out)["tanh"]
    assert rec["status"] == "failed" and "outside [0, 1]" in rec["error"]["reason"]
    assert "model.decode" in rec["error"]["reason"]
    assert not (out / "states" / f"{Path(rec['_path']).stem}.pt").exists()
    # never ranked: the report has no value of it, only the failure
    assert "metrics" not in rec or not rec["metrics"]
    check = invoke("check", "tanh")
    assert check.exit_code == 1, check.output
    assert "FAIL" in check.output and "[0, 1]" in check.output


# ----------------------------------------------------------------------------- 3: a metric


def test_a_raising_metric_fails_only_its_values_and_is_named_with_its_plugin(reg, tmp_path):
    out = tmp_path / "run"
    result = invoke(*run_args(out, "pixels", "--metrics", "reconstruction,brittle",
                                "--no-report"))  # fmt: skip
    assert result.exit_code == 1, result.output
    (rec,) = cells(out).values()
    assert rec["status"] == "ok"  # the model and the other metric are kept
    ev = rec["evaluations"]["brittle"]
    assert ev["status"] == "failed"
    assert ev["reason"] == "evaluate raised ValueError: brittle cannot handle 8x8 images"
    assert "integrity-test" in ev["plugin"]
    assert rec["evaluations"]["reconstruction"]["status"] == "ok"
    assert rec["metrics"]["mse"] == 0.0
    assert (out / "states" / f"{Path(rec['_path']).stem}.pt").is_file()
    line = next(ln for ln in result.stderr.splitlines() if "brittle" in ln)
    assert "pixels / darkfirst / seed 0: brittle: evaluate raised ValueError" in line


def test_nan_metric_values_are_stored_null_with_the_reason_and_counted(reg, tmp_path):
    out = tmp_path / "run"
    result = invoke(*run_args(out, "pixels", "--metrics", "reconstruction,halfnan",
                                "--no-report"))  # fmt: skip
    assert result.exit_code == 0, result.output
    (rec,) = cells(out).values()
    ev = rec["evaluations"]["halfnan"]
    assert ev["values"] == {"undefined": None, "defined": 1.0}
    assert "nan" in ev["nan"]["undefined"].lower()
    assert any(w["kind"] == "nan_value" for w in rec["warnings"])
    assert "1 metric value(s) are NaN or infinite:" in result.stderr
    assert "pixels / darkfirst / seed 0: undefined:" in result.stderr


def test_report_lists_failed_metrics_with_their_plugin_and_nan_values(reg, tmp_path):
    out = tmp_path / "run"
    result = invoke(*run_args(out, "pixels", "--metrics", "reconstruction,brittle,halfnan",
                                "--no-report"))  # fmt: skip
    assert result.exit_code == 1, result.output
    page_result = invoke("report", str(out), "--no-figures")
    assert page_result.exit_code == 0, page_result.output
    page = (out / "report.md").read_text()
    assert "brittle cannot handle 8x8 images" in page and "integrity-test" in page
    assert "undefined" in page and "returned nan" in page.lower()


def test_the_failed_metric_line_names_the_plugin(reg, tmp_path):
    out = tmp_path / "run"
    result = invoke(*run_args(out, "pixels", "--metrics", "brittle", "--no-report"))
    line = next(ln for ln in result.stderr.splitlines() if "brittle" in ln)
    assert "integrity-test" in line


# ----------------------------------------------------------------------------- 4, 5: batches


def test_batch_norm_models_train_on_a_last_batch_of_one_and_reload_exactly(reg, tmp_path):
    """129 training images with batch 128 (and 33 with 16): the last batch of one joins the
    previous one; the reloaded BatchNorm model (eval mode) reproduces the stored numbers."""
    import vaebench
    from vaebench.cells import load_dataset
    from vaebench.evaluation import evaluate_metrics
    from vaebench.metric import EvalContext

    for n, batch in ((129, 128), (33, 16)):
        out = tmp_path / f"n{n}"
        result = invoke(*run_args(
            out, "ae,vae", "--subset", str(n), "--batch-size", str(batch), "--epochs", "2",
            "--set", "ae.batch_norm=true", "--set", "vae.batch_norm=true",
            "--metrics", "reconstruction", "--no-report", dataset="digits",
        ))  # fmt: skip
        assert result.exit_code == 0, result.output
        recs = by_model(out)
        assert {m: r["status"] for m, r in recs.items()} == {"ae": "ok", "vae": "ok"}
        assert all(r["dataset_info"]["n_train"] == n for r in recs.values())

    rec = by_model(tmp_path / "n129")["ae"]
    stem = Path(rec["_path"]).stem
    model = vaebench.load_model(tmp_path / "n129", stem)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ds = load_dataset(reg, "digits", {}, None, 129)
    ctx = EvalContext(seed=0, device=torch.device("cpu"), options={})
    again = evaluate_metrics(model, ds, [reg.metric("reconstruction").spec], ctx)
    stored = rec["evaluations"]["reconstruction"]
    assert again["reconstruction"]["values"] == stored["values"]  # exactly, every value
    assert again["reconstruction"]["artifacts"]["latent_2d"] == stored["artifacts"]["latent_2d"]
    # one image encodes on its own (in training mode BatchNorm would refuse it or use the
    # batch's statistics); equal up to float rounding of a different batch size
    one = model.encode(ds.x_test[:1])
    torch.testing.assert_close(one, model.encode(ds.x_test[:64])[:1], rtol=1e-5, atol=1e-6)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm stats unchanged


# ----------------------------------------------------------------------------- 6: 0/1 data


def test_binary_integer_npz_is_read_as_0_1_end_to_end(reg, tmp_path):
    rng = np.random.default_rng(0)
    images = np.zeros((80, SIDE, SIDE), dtype=np.uint8)
    for img in images:  # a filled rectangle per image: structure PCA can partly capture
        r, c = rng.integers(0, SIDE - 2, size=2)
        h, w = rng.integers(2, SIDE - 2, size=2)
        img[r : r + h, c : c + w] = 1
    path = tmp_path / "binary.npz"
    np.savez(path, x_train=images[:64], x_test=images[64:])
    out = tmp_path / "run"
    result = invoke(*run_args(out, "pca", "--metrics", "reconstruction", "--no-report",
                                dataset=str(path)))  # fmt: skip
    assert result.exit_code == 0, result.output
    (rec,) = cells(out).values()
    assert "binary" in json.dumps(rec["dataset_info"]["info"]["scaled_from"])
    # divided by 255 the images would be almost black and PCA would score ~55 dB
    assert rec["metrics"]["psnr"] < 30 and rec["metrics"]["mse"] > 1e-3


# ----------------------------------------------------------------------------- 9, 10: links


def _stem(reg, model: str, dataset: str = "darkfirst") -> str:
    from vaebench.cells import plan
    from vaebench.config import RunConfig

    cfg = RunConfig.build(reg, models=model, datasets=dataset, seeds="0")
    (cell,) = plan(cfg, reg)
    return cell.stem


def test_links_at_lock_state_and_report_paths_are_never_written_through(reg, tmp_path):
    out, outside = tmp_path / "run", tmp_path / "outside"
    outside.mkdir()
    stem = _stem(reg, "pixels")
    victims = {}
    for rel in (f"cells/{stem}.lock", f"states/{stem}.pt"):
        target = outside / Path(rel).name
        target.write_bytes(b"precious")
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).symlink_to(target)
        victims[rel] = target
    result = invoke(*run_args(out, "pixels", "--metrics", "reconstruction", "--no-report"))
    assert result.exit_code == 0, result.output
    assert all(t.read_bytes() == b"precious" for t in victims.values())
    state = out / "states" / f"{stem}.pt"
    assert not state.is_symlink()
    assert torch.load(state, weights_only=True) == {"gain": torch.ones(())}
    assert not (out / "cells" / f"{stem}.lock").exists()

    first = invoke("report", str(out))  # with figures
    assert first.exit_code == 0, first.output
    figures = sorted((out / "figures").glob("*.png"))
    assert figures
    for path in (figures[0], out / "report.md"):
        target = outside / f"victim-{path.name}"
        target.write_bytes(b"precious")
        path.unlink()
        path.symlink_to(target)
        victims[path.name] = target
    again = invoke("report", str(out))
    assert again.exit_code == 0, again.output
    assert all(t.read_bytes() == b"precious" for t in victims.values())
    assert figures[0].read_bytes()[:4] == b"\x89PNG" and not figures[0].is_symlink()
    assert not list(out.rglob("*.tmp"))  # figures are written to a temp file, then renamed


# ----------------------------------------------------------------------------- 12: modes


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask022", "umask027"])
def test_result_files_honour_the_umask(reg, tmp_path, umask):
    out = tmp_path / "run"
    old = os.umask(umask)
    try:
        result = invoke(*run_args(out, "pixels", "--metrics", "reconstruction"))  # + report
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    files = [p for p in out.rglob("*") if p.is_file()]
    kinds = {p.relative_to(out).parts[0] for p in files}
    assert {"cells", "states", "manifests", "report.md", "tables", "figures"} <= kinds
    modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in files}
    assert set(modes.values()) == {0o666 & ~umask}, modes
    folders = {stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_dir()}
    assert folders == {0o777 & ~umask}


# ----------------------------------------------------------------------------- 13, 14: stops


def test_disk_full_while_saving_weights_stops_the_grid_with_exit_74(reg, tmp_path, monkeypatch):
    import vaebench.grid as grid_module

    real_write = grid_module.atomic_write_bytes
    states: list[Path] = []

    def write(path, data, *root):
        states.append(Path(path))
        if len(states) < 2:
            return real_write(path, data, *root)

        def full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        with monkeypatch.context() as m:  # the real writer meets a full disk at fsync
            m.setattr(os, "fsync", full)
            return real_write(path, data, *root)

    monkeypatch.setattr(grid_module, "atomic_write_bytes", write)
    out = tmp_path / "run"
    args = run_args(out, "pixels", "--metrics", "reconstruction", "--no-report")
    args[args.index("--seeds") + 1] = "0,1,2"
    result = invoke(*args)
    assert result.exit_code == 74, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"Error: no space left on device while writing to {out / 'states'}; finished cells are "
        "intact"
    )
    assert "Traceback" not in result.stderr and "inline_container" not in result.stderr
    assert len(states) == 2  # the grid stopped: the third cell never ran
    assert [r["seed"] for r in cells(out).values()] == [0]
    assert sorted(p.name for p in (out / "states").iterdir()) == [states[0].name]
    (manifest,) = [json.loads(p.read_text()) for p in (out / "manifests").glob("*.json")]
    assert manifest["status"] == "aborted"


def test_ctrl_c_while_the_report_is_written_exits_130_with_a_hint(reg, tmp_path, monkeypatch):
    import vaebench.report as report_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module, "build_report", interrupted)
    out = tmp_path / "run"
    result = invoke(*run_args(out, "pixels", "--metrics", "reconstruction"))
    assert result.exit_code == 130, result.output
    assert f"Write it again with: vaebench report {out}" in result.stderr
    assert "Aborted!" not in result.output and "Traceback" not in result.stderr
    assert [r["status"] for r in cells(out).values()] == ["ok"]


# ----------------------------------------------------------------------------- datasets declare


def _factor_dataset(decl: dict, names=("angle",)) -> Dataset:
    x = torch.rand(6, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    f = torch.linspace(0.0, 6.0, 6).reshape(-1, 1).repeat(1, len(names))
    return Dataset("rings", x, x, factors_train=f, factors_test=f, factor_names=tuple(names),
                   render=lambda v: x[: len(v)], info={"factors": decl})  # fmt: skip


@pytest.mark.parametrize(
    ("decl", "message"),
    [
        ({"angle": {"range": [0, 6.28]}},
         "info['factors']['angle'] has unknown key(s) 'range'; valid: bank_size, discrete, high, "
         "low, periodic, unit, values"),
        ({"angle": {"low": 0, "high": 6.28, "min": 0}}, "unknown key(s) 'min'"),
        ({"angel": {"low": 0, "high": 1}}, "declares 'angel', which is not one of the dataset's "
                                           "factor_names ('angle')"),
        ({"angle": {"low": 0}}, "lacks 'high': a factor's range is required"),
        ({"angle": {"low": 1, "high": 0}}, "low 1 is above high 0"),
        ({"angle": {"low": 0, "high": float("inf")}}, "['high'] must be a finite number"),
        ({"angle": {"low": 0, "high": 1, "periodic": "yes"}}, "must be true or false"),
        ({"angle": {"low": 0, "high": 1, "bank_size": 1}}, "must be an integer >= 2"),
        ({"angle": [0, 1]}, "must be a dict with keys bank_size, discrete, high, low, periodic, unit, values"),
    ],
)  # fmt: skip
def test_factor_declarations_with_unknown_keys_or_bad_values_are_named(decl, message):
    from vaebench.errors import DatasetError

    with pytest.raises(DatasetError) as err:
        _factor_dataset(decl)
    assert message in str(err.value) and "dataset 'rings'" in str(err.value)


def test_a_declared_factor_reaches_the_ground_truth_metrics_and_a_typo_is_no_silent_skip():
    from types import SimpleNamespace

    from vaebench.errors import DatasetError
    from vaebench.metrics.acai import FactorSpec, factor_spec

    ds = _factor_dataset({"angle": {"low": 0.0, "high": 6.0, "periodic": True, "bank_size": 50,
                                    "unit": "rad"}})  # fmt: skip
    assert factor_spec(ds) == FactorSpec("angle", 0.0, 6.0, True, 50, "rad")
    ds = _factor_dataset({}, names=("size",))  # unknown factor without a range: not applicable
    assert factor_spec(ds) is None
    # a dataset-like object that skipped Dataset's checks is held to the same keys
    fake = SimpleNamespace(
        name="fake",
        has_factors=True,
        factors_test=torch.zeros(4, 1),
        factor_names=("angle",),
        info={"factors": {"angle": {"range": 1}}},
    )
    with pytest.raises(DatasetError, match="unknown key\\(s\\) 'range'"):
        factor_spec(fake)


def test_built_in_synthetic_datasets_declare_known_factor_keys_only(reg):
    from vaebench.dataset import FACTOR_KEYS

    for name in ("lines", "moons"):
        ds = reg.dataset(name).spec.load(n_train=20, n_test=10)
        for decl in ds.info["factors"].values():
            assert set(decl) <= set(FACTOR_KEYS)


def _overlap(ds: Dataset):
    from vaebench.testing import run_dataset_checks

    spec = DatasetSpec("copies", lambda: ds, "test images copied from training")
    return next(run_dataset_checks(spec, checks=["check_dataset_overlap"]))


def _copies(k: int, info: dict) -> Dataset:
    x = torch.rand(40, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    return Dataset("copies", x[:20], torch.cat([x[:k], x[20 : 40 - k]]), info=info)


def test_declared_test_overlap_is_reported_with_its_reason_and_bounded():
    reason = "a coarse renderer draws nearby factor values alike"
    ok = _overlap(_copies(8, {"test_overlap": {"max_fraction": 0.5, "reason": reason}}))
    assert ok.passed
    assert ok.message == (f"8 of 20 test images (40.0%) are exact copies of training images; "
                          f"declared up to 50%: {reason}")  # fmt: skip
    over = _overlap(_copies(12, {"test_overlap": {"max_fraction": 0.5, "reason": reason}}))
    assert not over.passed and "expected at most 50%" in over.message
    assert "12 of 20 test images (60.0%)" in over.message and reason in over.message
    undeclared = _overlap(_copies(8, {}))
    assert not undeclared.passed and "declared with info['test_overlap']" in undeclared.message
    for bad in ({"max_fraction": 0.5}, {"max_fraction": 2, "reason": "x"},
                {"max_fraction": 0.5, "reason": " "}, "50%"):  # fmt: skip
        result = _overlap(_copies(8, {"test_overlap": bad}))
        assert not result.passed and "info['test_overlap']" in result.message


@pytest.mark.parametrize(("name", "copies"), [("moons", "369 of 1000"),
                                              ("moons-lecture", "160 of 1000")])  # fmt: skip
def test_moons_declares_its_inherent_copies_and_the_check_says_so(reg, name, copies):
    """The phase is continuous but renders to about 14000 distinct images: test images equal to
    training images are part of the data, declared and reported -- the stored images are the
    ones the committed results used."""
    result = _overlap(reg.dataset(name).spec.load())
    assert result.passed
    assert result.message.startswith(f"{copies} test images")
    assert "declared up to 50%: the phase is continuous" in result.message
