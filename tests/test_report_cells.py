"""Synthetic result folders for the report and tidy tests (written in the schema of
vaebench.record with vaebench.results.atomic_write_json), plus checks that they read back as
real cells."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from vaebench.record import SCHEMA, encode_images, migrate_v1
from vaebench.results import atomic_write_json, cell_stem, read_cell

#: name -> (higher_is_better, unit, decimals, metric plugin)
INFO: dict[str, tuple[bool | None, str, int, str]] = {
    "mse": (False, "per pixel", 4, "reconstruction"),
    "psnr": (True, "dB", 2, "reconstruction"),
    "smoothness": (False, "", 3, "acai"),
    "smoothness_se": (None, "", 3, "acai"),
    "encode_samples_per_s": (True, "samples/s", 0, "throughput"),
    "n_params": (None, "", 0, "throughput"),
    "path_step_ratio": (False, "", 3, "interpolation"),  # as declared before version 3
    "midpoint_nn_ratio": (False, "", 3, "interpolation"),
}

ENV = {
    "vaebench": "0.1.0",
    "torch": "2.13.0+cpu",
    "numpy": "2.4.6",
    "scikit-learn": "1.9.1",
    "python": "3.11.7",
    "device": "cpu",
    "device_name": "cpu (test machine)",
    "platform": "Linux-test",
    "cpu_count": 2,
    "torch_threads": 2,
    "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": True},
}


def write_cell(
    run: Path,
    model: str,
    dataset: str,
    seed: int,
    metrics: dict[str, float | None],
    *,
    params: dict[str, Any] | None = None,
    status: str = "ok",
    reason: str = "",
    artifacts: dict[str, Any] | None = None,
    history: dict[str, list[float]] | None = None,
    sweep: dict[str, Any] | None = None,
    evaluations: dict[str, dict[str, Any]] | None = None,
    warnings: list[dict[str, str]] | None = None,
) -> Path:
    """Write one cell file into ``run/cells`` and return its path.

    ``metrics`` are written flat (schema 1, declared by :data:`INFO`) and migrated to schema 2;
    ``evaluations`` adds schema-2 evaluations as they are (see :func:`evaluation`);
    ``sweep`` is stored as ``config.sweep``; ``status="skipped"`` writes a skipped cell with
    ``reason`` as its ``skip_reason``."""
    params = {"latent_dim": 2, **(params or {})}
    config = {
        "schema": SCHEMA,
        "model": model,
        "params": params,
        "dataset": dataset,
        "dataset_options": {},
        "subset": None,
        "seed": seed,
        "eval": {"n_pairs": 8},
        "metrics": None,
    }
    if sweep:
        config["sweep"] = dict(sweep)
    chash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    record: dict[str, Any] = {
        "schema": "vaebench.cell/1",  # written flat, stored as schema 2 (one evaluation a metric)
        "model": model,
        "dataset": dataset,
        "seed": seed,
        "config_hash": chash,
        "config": config,
        "environment": ENV,
        "dataset_info": {"shape": [1, 2, 2], "n_train": 40, "n_test": 10, "citation": "synthetic"},
        "status": status,
        "wall_seconds": 1.5,
    }
    if status == "ok":
        record["metrics"] = metrics
        record["metric_info"] = {
            k: {"higher_is_better": INFO[k][0], "unit": INFO[k][1], "decimals": INFO[k][2],
                "metric": INFO[k][3], "name": k, "description": ""}
            for k in metrics
        }  # fmt: skip
        record["history"] = history if history is not None else {"loss": [3.0, 2.0, 1.5]}
        record["artifacts"] = artifacts or {}
        record["model_info"] = {"n_params": 10, "latent_dim": 2, "can_sample": False}
    elif status == "skipped":
        record["skip_reason"] = reason
        record["dataset_info"] = {"shape": [1, 2, 2]}
        del record["environment"], record["wall_seconds"]
    else:
        record["error"] = {"reason": reason, "type": "RuntimeError", "traceback": "..."}
    path = run / "cells" / f"{cell_stem(model, dataset, seed, chash)}.json"
    stored = migrate_v1(record)
    del stored["migrated_from"]
    if status != "ok":
        stored["evaluations"] = {}
    stored["evaluations"].update(evaluations or {})
    if warnings:
        stored["warnings"] = list(warnings)
    atomic_write_json(path, stored)
    return path


#: Declarations of the values :func:`evaluation` can write: name -> (higher_is_better, unit,
#: decimals, group).
DECLARED: dict[str, tuple[bool | None, str, int, str]] = {
    "elbo": (True, "nats/image", 2, "likelihood"),
    "elbo_kl": (None, "nats/image", 2, "likelihood"),
    "iwae_nll": (False, "nats/image", 2, "likelihood"),
    "probe_acc": (True, "%", 1, "representation"),
    "active_fraction": (None, "fraction", 2, "representation"),
    "fd": (False, "", 2, "samples"),
    "prdc_density": (None, "", 3, "samples"),
    "mse": (False, "per pixel", 4, "quality"),
    "psnr": (True, "dB", 2, "quality"),
    "midpoint_nn_ratio": (False, "", 3, "interpolation"),
    "path_step_ratio": (None, "", 3, "interpolation"),
}


def evaluation(
    metric: str,
    values: dict[str, float | None],
    *,
    status: str = "ok",
    reason: str = "",
    details: dict[str, Any] | None = None,
    nan: dict[str, str] | None = None,
    plugin: str = "vaebench 0.1.0 (vaebench.metrics.test)",
) -> dict[str, Any]:
    """A schema-2 evaluation record as the runner stores it (values declared by
    :data:`DECLARED`, with a description and a reference for the glossary)."""
    ev: dict[str, Any] = {"status": status, "version": 1, "key": "k", "options": {},
                          "plugin": plugin, "metric": metric}  # fmt: skip
    if status != "ok":
        ev["reason"] = reason
        return ev
    ev["values"] = dict(values)
    ev["nan"] = dict(nan or {})
    ev["details"] = dict(details or {})
    ev["artifacts"] = {}
    ev["info"] = {
        name: {"name": name, "higher_is_better": DECLARED[name][0], "unit": DECLARED[name][1],
               "decimals": DECLARED[name][2], "group": DECLARED[name][3], "metric": metric,
               "order": i, "description": f"definition of {name}",
               "reference": f"Paper about {name}, 2020"}
        for i, name in enumerate(values)
    }  # fmt: skip
    return ev


def write_manifest(run: Path, models: list[str], datasets: list[str]) -> None:
    """A manifest naming the requested model and dataset order (and the command)."""
    atomic_write_json(
        run / "manifests" / "2026-01-01T000000+0000-1.json",
        {
            "schema": "vaebench.manifest/1",
            "argv": ["vaebench", "run", "--models", ",".join(models), "--out", run.name],
            "config": {"models": models, "datasets": datasets},
        },
    )


def image_artifacts(seed: int) -> dict[str, Any]:
    """Tiny reconstruction, interpolation and 3-D latent artifacts."""
    rng = np.random.default_rng(seed)
    imgs = rng.random((4, 1, 2, 2))
    z = rng.normal(size=(30, 3))
    return {
        "recon_originals": encode_images(imgs),
        "recon_outputs": encode_images(imgs * 0.5),
        "interp_strip": encode_images(np.linspace(0, 1, 5 * 4).reshape(5, 1, 2, 2)),
        "latent_2d": {"z": z.round(4).tolist(), "labels": [i % 3 for i in range(30)]},
    }


#: The standard synthetic run: values chosen so that the statistics are easy to check by hand.
#: mse (lower is better): ae best; noisy tied with it (noisy values); vae clearly worse;
#: pca deterministic. psnr (higher is better) mirrors it.
STANDARD = {
    ("pca", 0): {"mse": 0.030, "psnr": 15.0},
    ("pca", 1): {"mse": 0.030, "psnr": 15.0},
    ("pca", 2): {"mse": 0.030, "psnr": 15.0},
    ("ae", 0): {"mse": 0.010, "psnr": 20.0},
    ("ae", 1): {"mse": 0.012, "psnr": 19.0},
    ("ae", 2): {"mse": 0.014, "psnr": 18.0},
    ("noisy", 0): {"mse": 0.009, "psnr": 19.5},
    ("noisy", 1): {"mse": 0.016, "psnr": 17.0},
    ("noisy", 2): {"mse": 0.012, "psnr": 20.5},
    ("vae_x", 0): {"mse": 0.040, "psnr": 12.0},
    ("vae_x", 1): {"mse": 0.041, "psnr": 12.1},
    ("vae_x", 2): {"mse": 0.042, "psnr": 12.2},
}


def standard_run(root: Path, name: str = "run", *, figures: bool = False) -> Path:
    """A run folder with 4 models x 1 dataset x 3 seeds (all metrics of :data:`INFO`) and one
    failed cell of a fifth model."""
    run = root / name
    models = ["pca", "ae", "noisy", "vae_x"]
    write_manifest(run, models + ["broken"], ["toy"])
    for (model, seed), vals in STANDARD.items():
        k = models.index(model)
        metrics = {
            **vals,
            "smoothness": 0.1 * (k + 1) + 0.01 * seed,
            "smoothness_se": 0.005,
            "encode_samples_per_s": 1000.0 * (4 - k) + seed,
            "n_params": 100.0 * (k + 1),
        }
        write_cell(run, model, "toy", seed, metrics,
                   artifacts=image_artifacts(seed) if figures else None,
                   history={"loss": [4.0 - k * 0.1, 2.0, 1.0 + seed * 0.1]})  # fmt: skip
    write_cell(run, "broken", "toy", 0, {}, status="failed", reason="diverged: loss is NaN | x")
    return run


def test_synthetic_cells_are_valid_cells(tmp_path: Path) -> None:
    run = standard_run(tmp_path, figures=True)
    paths = sorted((run / "cells").glob("*.json"))
    assert len(paths) == 13
    cells = [read_cell(p) for p in paths]
    assert {c["status"] for c in cells} == {"ok", "failed"}
    ok = next(c for c in cells if c["model"] == "ae" and c["seed"] == 1)
    assert ok["metrics"]["mse"] == 0.012
    assert ok["metric_info"]["psnr"]["higher_is_better"] is True
