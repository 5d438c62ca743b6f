"""Sweeps as grid axes (``--sweep``, the TOML ``[sweep]`` table): values, ranges, shorthand
keys over several models, stored and resumed configs, shards, errors, and the acceptance grid
run end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from vaebench.cells import plan, shard_cells
from vaebench.config import ConfigError, RunConfig
from vaebench.options import MAX_CELLS
from vaebench.sweeps import parse_sweep

FAST = ["eval.throughput_seconds=0.01"]


def build(registry, **kw):
    return RunConfig.build(registry, **kw)


def variants(registry, cfg):
    return {m: cfg.variants(registry, m) for m in cfg.models}


# ----------------------------------------------------------------------------- the grid


def test_beta_sweep_makes_six_cells_each_carrying_its_value(registry):
    cfg = build(registry, models="vae", sweeps=["vae.beta=0.5,1,4"], datasets="digits",
                seeds="0,1", epochs="3")  # fmt: skip
    cells = plan(cfg, registry)
    assert [(c.sweep["vae.beta"], c.seed) for c in cells] == [
        (0.5, 0), (0.5, 1), (1.0, 0), (1.0, 1), (4.0, 0), (4.0, 1),
    ]  # fmt: skip
    for c in cells:
        assert c.config["sweep"] == {"vae.beta": c.sweep["vae.beta"]}
        assert c.params["beta"] == c.sweep["vae.beta"] and c.params["epochs"] == 3
    assert len({c.hash for c in cells}) == 6  # six trainings, six keys
    assert cells[0].label == "vae (beta=0.5) / digits / seed 0"
    # the keys do not depend on how the grid was spelled
    same = build(registry, models="vae", sweeps=["vae.beta=4,0.5,1"], seeds="1,0", epochs="3")
    assert {c.hash for c in plan(same, registry)} == {c.hash for c in cells}


def test_a_swept_value_equal_to_the_default_is_still_its_own_labelled_cell(registry):
    cfg = build(registry, models="vae", sweeps=["vae.beta=1,4"])
    plain = build(registry, models="vae")
    (default_cell,) = plan(plain, registry)
    swept = plan(cfg, registry)
    assert swept[0].params == default_cell.params and swept[0].sweep == {"vae.beta": 1.0}


def test_log_and_linear_ranges(registry):
    cfg = build(registry, models="vae", sweeps=["vae.lr=1e-4:1e-2:log5"])
    lrs = [v["vae.lr"] for v in cfg.variants(registry, "vae")]
    assert lrs == pytest.approx(np.logspace(-4, -2, 5).tolist(), rel=1e-10)
    assert lrs[0] == 1e-4 and lrs[-1] == 1e-2  # the ends exactly
    cfg = build(registry, models="vae", sweeps=["epochs=10:50:5"])
    epochs = [v["epochs"] for v in cfg.variants(registry, "vae")]
    assert epochs == [10, 20, 30, 40, 50] and all(isinstance(e, int) for e in epochs)
    # descending ranges are kept in the order given
    assert parse_sweep("lr=1e-2:1e-4:log3") == (None, "lr", ["0.01", "0.001", "0.0001"])


def test_shorthand_sweeps_apply_to_every_model_that_has_the_key(registry):
    cfg = build(registry, models="pca,ae,vae", sweeps=["latent_dim=2,8"], seeds="0")
    for model, vs in variants(registry, cfg).items():
        assert vs == [{"latent_dim": 2}, {"latent_dim": 8}], model
    cells = plan(cfg, registry)
    assert len(cells) == 6 and {c.params["latent_dim"] for c in cells} == {2, 8}
    # pca has no epochs: it is not multiplied by an epochs sweep
    cfg = build(registry, models="pca,ae", sweeps=["epochs=1,2"])
    assert variants(registry, cfg) == {"pca": [{}], "ae": [{"epochs": 1}, {"epochs": 2}]}


def test_two_axes_multiply(registry):
    cfg = build(registry, models="ae,vae", sweeps=["vae.beta=1,4", "latent_dim=2,8"])
    vs = variants(registry, cfg)
    assert len(vs["vae"]) == 4 and len(vs["ae"]) == 2
    assert {(v["vae.beta"], v["latent_dim"]) for v in vs["vae"]} == {
        (1.0, 2), (1.0, 8), (4.0, 2), (4.0, 8),
    }  # fmt: skip


def test_toml_sweep_table(registry, tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(
        'models = ["vae", "ae"]\nseeds = [0, 1]\n[sweep]\n"vae.beta" = [0.5, 1, 4]\n'
        'latent_dim = [2, 8]\n"vae.hidden" = [[64, 32], [128]]\n'
    )
    cfg = build(registry, config_file=str(path))
    vs = variants(registry, cfg)
    assert len(vs["vae"]) == 3 * 2 * 2 and len(vs["ae"]) == 2
    assert {v["vae.hidden"] for v in vs["vae"]} == {(64, 32), (128,)}
    assert len(plan(cfg, registry)) == (12 + 2) * 2
    # the command line adds axes to the file's
    more = build(registry, config_file=str(path), sweeps=["ae.lr=1e-3,1e-2"])
    assert len(variants(registry, more)["ae"]) == 4


def test_toml_sweep_table_takes_dotted_keys(registry, tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('models = ["vae"]\n[sweep]\nvae.beta = [0.5, 1, 4]\n')
    cfg = build(registry, config_file=str(path))
    assert [v["vae.beta"] for v in cfg.variants(registry, "vae")] == [0.5, 1.0, 4.0]


def test_toml_sweep_table_takes_ranges(registry, tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('models = ["vae"]\n[sweep]\n"vae.lr" = "1e-4:1e-2:log3"\n')
    cfg = build(registry, config_file=str(path))
    assert [v["vae.lr"] for v in cfg.variants(registry, "vae")] == [1e-4, 1e-3, 1e-2]


def test_sweeps_survive_the_manifest_round_trip(registry):
    """--resume rebuilds the grid from the manifest's config: the same cells, same keys."""
    cfg = build(registry, models="ae,vae", sweeps=["vae.beta=0.5,4", "latent_dim=2:8:2"],
                seeds="0,1")  # fmt: skip
    stored = json.loads(json.dumps(cfg.to_dict()))
    again = RunConfig.from_dict(stored, registry)
    assert [c.hash for c in plan(again, registry)] == [c.hash for c in plan(cfg, registry)]


def test_shards_partition_a_swept_grid(registry):
    cfg = build(registry, models="vae", sweeps=["vae.beta=0.5,1,4", "latent_dim=2,8"],
                seeds="0,1,2")  # fmt: skip
    cells = plan(cfg, registry)
    shards = [shard_cells(cells, k, 4) for k in range(1, 5)]
    stems = [c.stem for s in shards for c in s]
    assert sorted(stems) == sorted(c.stem for c in cells) and len(set(stems)) == len(cells)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("sweeps", "models", "message"),
    [
        (
            ["vae.betta=1,2"],
            "vae",
            "--sweep vae.betta=1,2: unknown key 'betta' for model 'vae'; "
            "valid: arch, batch_norm, batch_size, beta,",
        ),
        (
            ["digits.size=1,2"],
            "vae",
            "'digits' is not a model of this run (sweeps vary model "
            "hyperparameters; list dataset variants as datasets)",
        ),
        (["vae.beta=1,2"], "ae", "'vae' is not a model of this run"),
        (
            ["beta=1,2"],
            "vae",
            "'beta' is not a shorthand option; sweep MODEL.beta for one model, "
            "or one of latent_dim, epochs, batch_size, lr, arch",
        ),
        (["epochs=1,2"], "pca", "no model of this run has 'epochs'"),
        (["vae.beta=1,1.0"], "vae", "--sweep vae.beta=1,1.0: value 1.0 given twice"),
        (["vae.beta=1,2", "vae.beta=3"], "vae", "vae.beta is swept twice"),
        (["vae.beta=1,,2"], "vae", "empty value"),
        (["vae.beta=0:1:log3"], "vae", "a log range needs positive ends"),
        (["vae.beta=a:1:3"], "vae", "range ends must be numbers"),
        (["vae.beta=1:2:1"], "vae", "a range takes 2 to 1000 values"),
        (["epochs=1:2:3"], "vae", "invalid value '1.5' for epochs: expected an integer"),
        (["vae.beta=nan,1"], "vae", "invalid value 'nan' for vae.beta: expected a finite number"),
        (["vae.lr=-1,1"], "vae", "invalid value -1.0 for vae.lr: must be > 0"),
        (["eval.n_pairs=1,2"], "vae", "'eval' is not a model of this run"),
        (["vae.beta"], "vae", "expected [MODEL.]KEY=V1,V2,..."),
    ],
)
def test_bad_sweeps_name_the_problem(registry, sweeps, models, message):
    with pytest.raises(ConfigError) as info:
        build(registry, models=models, sweeps=sweeps)
    assert message in str(info.value)


def test_too_many_cells_is_refused_before_anything_loads(registry):
    with pytest.raises(ConfigError) as info:
        build(registry, models="vae", seeds="0-199", sweeps=["vae.beta=1:1000:1000"])
    assert str(info.value) == (
        f"the grid has 200000 cells, more than the limit of {MAX_CELLS}; split it into several "
        "runs (--sweep values x models x datasets x seeds)"
    )


def test_one_parameter_swept_by_two_axes_is_refused(registry):
    with pytest.raises(ConfigError, match="latent_dim"):
        build(registry, models="vae", sweeps=["latent_dim=2,8", "vae.latent_dim=4,16"])


def test_cli_sweep_errors_exit_2_with_one_line(tmp_path):
    from vaebench.cli import cli

    res = CliRunner().invoke(
        cli, ["run", "--models", "vae", "--sweep", "vae.betta=1,2", "--out", str(tmp_path / "r")]
    )
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert res.output.startswith("Error: --sweep vae.betta=1,2: unknown key 'betta'")
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- end to end


def test_acceptance_grid_runs_six_cells_with_their_values(tmp_path):
    """`vaebench run --models vae --sweep vae.beta=0.5,1,4 --datasets digits --seeds 0,1
    --epochs 3` (on a subset, two metrics): six stored cells, each with its beta."""
    from vaebench.cli import cli
    from vaebench.results import iter_cells

    out = tmp_path / "beta"
    args = ["-q", "run", "--models", "vae", "--sweep", "vae.beta=0.5,1,4", "--datasets",
            "digits", "--seeds", "0,1", "--epochs", "3", "--subset", "150", "--threads", "1",
            "--workers", "1", "--metrics", "reconstruction,knn", "--no-report", "--out",
            str(out)]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "6 cell(s) ran" in res.output
    cells = list(iter_cells(out))
    assert sorted((c["config"]["sweep"]["vae.beta"], c["seed"]) for c in cells) == [
        (0.5, 0), (0.5, 1), (1.0, 0), (1.0, 1), (4.0, 0), (4.0, 1),
    ]  # fmt: skip
    for c in cells:
        assert c["config"]["params"]["beta"] == c["config"]["sweep"]["vae.beta"]
        assert len(c["history"]["loss"]) == 3 and math.isfinite(c["metrics"]["mse"])
    (manifest,) = (out / "manifests").glob("*.json")
    stored = json.loads(manifest.read_text())["config"]["sweeps"]
    assert stored == [{"scope": "vae", "key": "beta", "values": [0.5, 1.0, 4.0]}]
    # the same command again trains nothing
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0 and "0 cell(s) ran, 6 already done" in res.output
