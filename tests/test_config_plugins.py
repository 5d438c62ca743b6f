"""What the configuration takes from plugins rather than from its own tables (issue 20): tracking
as ``{tracker name: argument}``, parameter bounds declared by the model specs, and datasets given
as a path, claimed through the hook ``vaebench_dataset_for_path``."""

from __future__ import annotations

import dataclasses
import json

import pytest

from vaebench.config import ConfigError, RunConfig
from vaebench.dataset import DatasetSpec
from vaebench.hookspecs import hookimpl
from vaebench.model import Model, ModelSpec
from vaebench.nn import TorchAutoencoder
from vaebench.options import check_param, check_track, parse_track
from vaebench.plugins import Registered, UnknownNameError, get_plugin_manager, get_registry

#: The manifest's ``config`` keys, in order, of every run stored before ``track`` existed.
STORED_KEYS = [
    "models", "datasets", "seeds", "common", "model_params", "dataset_options", "eval", "device",
    "data_dir", "subset", "metrics", "sweeps", "val_fraction", "workers", "threads", "executor",
    "scheduler", "shard", "out", "mlflow",
]  # fmt: skip


# ----------------------------------------------------------------------------- tracking


def test_a_run_without_tracking_stores_the_same_config_as_before():
    cfg = RunConfig.build(get_registry(), models="pca")
    assert cfg.track == {}
    assert list(cfg.to_dict()) == STORED_KEYS and cfg.to_dict()["mlflow"] is None


def test_mlflow_is_the_mlflow_tracker_and_is_stored_as_before():
    cfg = RunConfig.build(get_registry(), models="pca", mlflow=" sqlite:///m.db ")
    assert cfg.track == {"mlflow": "sqlite:///m.db"}
    stored = cfg.to_dict()
    assert list(stored) == STORED_KEYS and stored["mlflow"] == "sqlite:///m.db"
    assert RunConfig.from_dict(json.loads(json.dumps(stored)), get_registry()) == cfg
    same = RunConfig.build(get_registry(), models="pca", track={"mlflow": "sqlite:///m.db"})
    assert same == cfg


def test_other_trackers_are_stored_under_track_and_round_trip():
    reg = get_registry()
    cfg = RunConfig.build(reg, models="pca", track=parse_track(["wandb=team/proj", "mlflow=a"]))
    assert cfg.track == {"wandb": "team/proj", "mlflow": "a"}
    stored = json.loads(json.dumps(cfg.to_dict()))
    assert stored["mlflow"] == "a" and stored["track"] == {"wandb": "team/proj"}
    assert RunConfig.from_dict(stored, reg) == cfg
    # a resume's option wins per tracker name
    again = RunConfig.from_dict(stored, reg, track={"wandb": "other"})
    assert again.track == {"wandb": "other", "mlflow": "a"}


def test_the_command_line_wins_per_tracker_over_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('models = "pca"\nmlflow = "file:./a"\n[track]\nwandb = "p"\ntb = "runs"\n')
    cfg = RunConfig.build(get_registry(), config_file=str(path), track={"wandb": "q"})
    assert cfg.track == {"mlflow": "file:./a", "wandb": "q", "tb": "runs"}
    cfg = RunConfig.build(get_registry(), config_file=str(path), mlflow="file:./b")
    assert cfg.track["mlflow"] == "file:./b"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["=x"], "invalid --track '=x': expected NAME=ARG"),
        (["wandb=a", "wandb=b"], "--track wandb is given twice"),
        (["bad name=x"], "invalid tracker name 'bad name'"),
    ],
)
def test_bad_track_values_are_one_line_naming_them(given, message):
    """(``NAME`` alone and ``NAME=`` are the tracker's default: ``""``, see the next test.)"""
    with pytest.raises(ConfigError) as err:
        parse_track(given)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_tracker_name_alone_is_its_default_argument():
    assert parse_track(["wandb", "mlflow= ", "demo=x=y"]) == {
        "wandb": "",
        "mlflow": "",
        "demo": "x=y",
    }


def test_a_password_in_a_tracker_argument_is_refused_without_echoing_it():
    with pytest.raises(ConfigError) as err:
        check_track({"wandb": "https://bob:s3cret@wandb.example"})
    assert "tracker 'wandb' contains a password" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_a_bad_track_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('models = "pca"\n[track]\nwandb = 3\n')
    with pytest.raises(ConfigError, match=r"c\.toml: invalid track wandb=3"):
        RunConfig.build(get_registry(), config_file=str(path))
    path.write_text('models = "pca"\ntrack = 3\n')
    with pytest.raises(ConfigError, match=r"c\.toml: \[track\] must be a table"):
        RunConfig.build(get_registry(), config_file=str(path))
    path.write_text('models = "pca"\nmlflow = "file:./a"\n[track]\nmlflow = "file:./b"\n')
    with pytest.raises(ConfigError, match="mlflow given twice"):
        RunConfig.build(get_registry(), config_file=str(path))


# ----------------------------------------------------------------------------- bounds


class _Wide(TorchAutoencoder):
    """A model that bounds the parameter it adds, and tightens a base's bound."""

    param_docs = {"width": "a made-up width"}
    param_limits = {"width": (64, "a made-up bound"), "hidden": (1000, "tightened here")}

    def __init__(self, *args, width: int = 8, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.width = width


def _with_model(spec: ModelSpec):
    reg = get_registry()
    entry = Registered(spec.name, spec, "test", "test", "0")
    return dataclasses.replace(reg, models={**reg.models, spec.name: entry})


def test_limits_merge_the_contract_the_class_hierarchy_and_the_spec():
    limits = ModelSpec("wide", _Wide).limits()
    assert limits["epochs"] == Model.param_limits["epochs"]
    assert limits["conv_channels"] == TorchAutoencoder.param_limits["conv_channels"]
    assert limits["width"] == (64, "a made-up bound") and limits["hidden"][0] == 1000
    spec = ModelSpec("wide", _Wide, param_limits={"width": (32, "the spec's own")})
    assert spec.limits()["width"] == (32, "the spec's own")
    # only the parameters a model has: pca has a code size, no epochs
    assert set(get_registry().model("pca").spec.limits()) == {"latent_dim"}
    assert "kl_warmup_epochs" in get_registry().model("beta-tcvae").spec.limits()


@pytest.mark.parametrize(
    ("spec", "sets", "message"),
    [
        (ModelSpec("wide", _Wide), ["wide.width=65"], "65 for wide.width: at most 64 (a made-up"),
        (ModelSpec("wide", _Wide), ["wide.hidden=1001"], "1001 in wide.hidden: each entry is at "
         "most 1000 (tightened here)"),
        (ModelSpec("wide", _Wide, param_limits={"width": (9, "why")}), ["wide.width=10"],
         "10 for wide.width: at most 9 (why)"),
    ],
)  # fmt: skip
def test_a_models_declared_bounds_are_enforced(spec, sets, message):
    with pytest.raises(ConfigError) as err:
        RunConfig.build(_with_model(spec), models="wide", sets=sets)
    assert message in str(err.value)
    RunConfig.build(_with_model(spec), models="wide", sets=[s.split("=")[0] + "=8" for s in sets])


def test_a_swept_shorthand_option_is_checked_against_each_model_that_has_it():
    reg = _with_model(ModelSpec("wide", _Wide, param_limits={"latent_dim": (20, "small code")}))
    with pytest.raises(ConfigError, match="21 for latent_dim: at most 20 \\(small code\\)"):
        RunConfig.build(reg, models="ae,wide", sweeps=["latent_dim=2,21"])
    with pytest.raises(ConfigError, match="21 for latent_dim: at most 20"):
        RunConfig.build(reg, models="ae,wide", latent_dim="21")
    assert RunConfig.build(reg, models="ae", latent_dim="21").common == {"latent_dim": 21}


def test_check_param_without_bounds_checks_only_the_shorthand_rules():
    check_param("m.hidden", (10**9,), {})  # no bound declared: the model checks it
    with pytest.raises(ConfigError, match="must be a positive integer"):
        check_param("epochs", 0, {})
    with pytest.raises(ConfigError, match="must be > 0"):
        check_param("m.lr", 0.0, {})


# ----------------------------------------------------------------------------- path datasets


class _ClaimsMemory:
    """A plugin that claims dataset names of the form ``mem:NAME`` (no file involved)."""

    @hookimpl
    def vaebench_dataset_for_path(self, path):
        if not path.startswith("mem:"):
            return None
        from vaebench.testing import tiny_dataset

        def load(seed: int = 0):
            return dataclasses.replace(tiny_dataset(seed=seed), name=path)

        return DatasetSpec(path, load, "in memory")


@pytest.fixture
def claims_memory():
    pm = get_plugin_manager()
    plugin = _ClaimsMemory()
    pm.register(plugin, name="test-claims-memory")
    try:
        yield
    finally:
        pm.unregister(plugin)


def test_a_plugin_claims_a_path_through_the_hook(claims_memory):
    from vaebench.cells import load_dataset

    reg = get_registry()
    cfg = RunConfig.build(reg, models="pca", datasets="mem:toy,digits", sets=["mem:toy.seed=3"])
    assert cfg.datasets == ["mem:toy", "digits"]
    assert cfg.dataset_options == {"mem:toy": {"seed": 3}}
    ds = load_dataset(reg, "mem:toy", {"seed": 3}, None, None)
    assert ds.name == "mem:toy" and ds.x_train.shape[1:] == (1, 8, 8)
    with pytest.raises(ConfigError, match="unknown key 'size' for dataset 'mem:toy'"):
        RunConfig.build(reg, models="pca", datasets="mem:toy", sets=["mem:toy.size=3"])


def test_without_a_claim_a_name_is_looked_up_among_the_registered_datasets():
    from vaebench.data.user import user_dataset_defaults

    reg = get_registry()
    assert reg.dataset_for_path("digits") is None and reg.dataset_for_path("mem:toy") is None
    spec = reg.dataset_for_path("data/x.npz")
    assert spec.name == "data/x.npz" and spec.defaults() == user_dataset_defaults()
    with pytest.raises(ConfigError, match="unknown dataset 'mem:toy'; valid: "):
        RunConfig.build(reg, models="pca", datasets="mem:toy")


class _WrapsThePathHook:
    """A plugin that only watches the hook (a new-style wrapper): it claims nothing."""

    seen: list[str] = []

    @hookimpl(wrapper=True)
    def vaebench_dataset_for_path(self, path):
        self.seen.append(path)
        return (yield)


def test_dataset_or_path_names_the_claiming_plugin_and_lets_wrappers_be(
    claims_memory, tmp_path, monkeypatch
):
    pm = get_plugin_manager()
    wrapper = _WrapsThePathHook()
    pm.register(wrapper, name="test-wraps-path-hook")
    try:
        reg = get_registry()
        claimed = reg.dataset_or_path("mem:toy")
        assert (claimed.name, claimed.plugin) == ("mem:toy", "test-claims-memory")
        assert claimed.spec.description == "in memory"
        npz = reg.dataset_or_path("data/x.npz")
        assert npz.plugin == "vaebench.data.user" and npz.origin.startswith("vaebench ")
        digits = reg.dataset_or_path("digits")  # the wrapper's generator is no spec
        assert digits is reg.datasets["digits"] and reg.dataset_for_path("digits") is None
        assert "digits" in _WrapsThePathHook.seen
    finally:
        pm.unregister(wrapper)
    # a name that is also a file or folder here: the error says how to use it as data
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    with pytest.raises(UnknownNameError, match=r"a folder 'photos' exists here: write ./photos"):
        reg.dataset_or_path("photos")


def test_mlflow_and_track_mlflow_may_agree_but_not_differ():
    reg = get_registry()
    same = RunConfig.build(reg, models="pca", mlflow="file:./a", track={"mlflow": "file:./a"})
    assert same.track == {"mlflow": "file:./a"}
    with pytest.raises(ConfigError) as err:
        RunConfig.build(reg, models="pca", mlflow="file:./a", track={"mlflow": "file:./b"})
    assert str(err.value) == "mlflow given twice (as mlflow and as track.mlflow): give it once"
