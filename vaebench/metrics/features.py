"""The feature space of the sample-quality metrics: a small classifier vaebench trains itself.

Fréchet and kernel distances are usually measured in the features of an Inception network
trained on ImageNet (Heusel et al. 2017; Bińkowski et al. 2018). vaebench downloads nothing, and
ImageNet features say little about 8x8 digits, so it trains a small convolutional classifier on
the dataset's own training split and uses its penultimate layer (``feature_dim`` ReLU units,
as Inception's pool3 features are post-ReLU), divided by one scale: the root mean square of
the features of the training images, so that their values are of order 1 whatever the net (as
Inception's are, which the KID kernel ``(a.b / d + 1)^3`` assumes). The classes are the dataset's labels or, for a
dataset with a ground-truth factor but no labels, ten bins of the first factor (cut at the
deciles of its training values).

Training is deterministic: at most ``train_n`` training images (a fixed choice), a fixed seed,
on the CPU, under ``torch.random.fork_rng`` (the caller's random state is untouched). The net is
trained once per dataset and configuration: it is kept in memory for the process and, when a
folder is given (``ctx.cache_dir``, the results folder's ``features/``), written there
atomically as ``DATASET--FINGERPRINT--CONFIG.pt`` and loaded with ``weights_only=True``. A file
whose fingerprint, configuration or weight hash does not match is ignored and replaced. The
weights' sha256 and the net's test accuracy are recorded with every score that uses it
(:attr:`FeatureExtractor.info`), so two scores are comparable only when these agree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vaebench.fileio import atomic_writer
from vaebench.metrics.codes import subset_indices

__all__ = [
    "FeatureNetConfig",
    "FeatureNet",
    "FeatureExtractor",
    "feature_labels",
    "dataset_fingerprint",
    "weights_sha256",
    "train_feature_net",
    "raw_features",
    "feature_scale",
    "feature_extractor",
    "FEATURE_NET_VERSION",
]

log = logging.getLogger("vaebench.metrics.features")

#: Bump when the architecture or the training procedure changes (part of the file name).
FEATURE_NET_VERSION = 1
#: Bins of the first ground-truth factor used as classes when a dataset has no labels.
FACTOR_BINS = 10
#: Feature nets kept in memory per process (most recently used last).
_MEMORY_SLOTS = 4
_memory: dict[str, FeatureExtractor] = {}
#: What a stored feature net's metadata holds beyond its identity.
_STORED_KEYS = ("sha256", "feature_scale", "test_accuracy", "train_seconds", "device")


@dataclasses.dataclass(frozen=True)
class FeatureNetConfig:
    """Architecture and training of the feature network (every field enters the cache key)."""

    steps: int = 1000
    train_n: int = 10000
    width: int = 16
    feature_dim: int = 128
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    version: int = FEATURE_NET_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """12 hex digits identifying this configuration."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class FeatureNet(nn.Module):
    """``conv3x3/2 (width) - conv3x3/2 (2 width) - conv3x3 (2 width) - avgpool to 4x4 -
    linear (feature_dim) - ReLU`` = features; a linear layer on them gives the class logits.
    Any image size works (the pooling is adaptive)."""

    def __init__(self, channels: int, n_classes: int, width: int = 16, feature_dim: int = 128):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(channels, w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(32 * w, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Images ``(N, C, H, W)`` in [0, 1] -> features ``(N, feature_dim)``."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def feature_labels(dataset: Any) -> tuple[Tensor, Tensor, str] | None:
    """``(y_train, y_test, source)`` the feature net learns, class indices ``0 .. K-1`` of
    shapes ``(N_train,)`` and ``(N_test,)``: the labels (their rank among the distinct labels of
    both splits, so labels 0..9 are unchanged and any values work), or else
    :data:`FACTOR_BINS` bins of the first factor cut at the deciles of its training values;
    ``None`` when the dataset has neither."""
    if dataset.y_train is not None and dataset.y_test is not None:
        # Class indices 0..K-1 of the distinct labels (0..9 stay 0..9; 10**12 costs nothing).
        y_train, y_test = dataset.y_train.reshape(-1), dataset.y_test.reshape(-1)
        _, idx = torch.unique(torch.cat([y_train, y_test]), return_inverse=True)
        return idx[: len(y_train)].long(), idx[len(y_train) :].long(), "labels"
    if dataset.factors_train is not None and dataset.factors_test is not None:
        f_train = dataset.factors_train[:, 0].double().numpy()
        f_test = dataset.factors_test[:, 0].double().numpy()
        edges = np.unique(np.quantile(f_train, np.linspace(0, 1, FACTOR_BINS + 1)[1:-1]))
        name = dataset.factor_names[0] if dataset.factor_names else "factor 0"
        return (
            torch.from_numpy(np.searchsorted(edges, f_train, side="right")).long(),
            torch.from_numpy(np.searchsorted(edges, f_test, side="right")).long(),
            f"{len(edges) + 1} bins of the first factor ({name}) at its training deciles",
        )
    return None


def dataset_fingerprint(x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor) -> str:
    """sha256 of the images and classes the net is trained and tested on (hex)."""
    h = hashlib.sha256()
    for t in (x_train, y_train, x_test, y_test):
        a = np.ascontiguousarray(t.detach().cpu().numpy())
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def weights_sha256(state: dict[str, Tensor]) -> str:
    """sha256 of a state dict: names, dtypes, shapes and values, in sorted name order (hex)."""
    h = hashlib.sha256()
    for k in sorted(state):
        a = np.ascontiguousarray(state[k].detach().cpu().numpy())
        h.update(f"{k}:{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@dataclasses.dataclass
class FeatureExtractor:
    """A trained feature net and what to record about it (``info``: JSON-able)."""

    net: FeatureNet
    info: dict[str, Any]

    def features(self, x: Tensor, device: torch.device, batch_size: int = 1024) -> Tensor:
        """Features ``(N, feature_dim)`` float64 on the CPU of images ``(N, C, H, W)``,
        divided by ``info["feature_scale"]``."""
        return raw_features(self.net, x, device, batch_size) / self.info["feature_scale"]


def raw_features(net: FeatureNet, x: Tensor, device: Any, batch_size: int = 1024) -> Tensor:
    """``net.features`` of images ``(N, C, H, W)`` in batches: ``(N, feature_dim)`` float64 on
    the CPU."""
    net = net.to(device).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch_size):
            out.append(net.features(x[i : i + batch_size].to(device).float()).double().cpu())
    return torch.cat(out)


def feature_scale(features: Tensor) -> float:
    """Root mean square of features ``(N, F)`` over images and units (1.0 if all are 0)."""
    scale = float(features.double().pow(2).mean().sqrt())
    return scale if scale > 0 else 1.0


def _accuracy(net: FeatureNet, x: Tensor, y: Tensor, batch_size: int = 1024) -> float:
    net.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch_size):
            pred = net(x[i : i + batch_size]).argmax(1)
            correct += int((pred == y[i : i + batch_size]).sum())
    return correct / x.shape[0]


def train_feature_net(
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    n_classes: int,
    config: FeatureNetConfig,
) -> tuple[FeatureNet, float, float]:
    """Train a :class:`FeatureNet` on the CPU with Adam and cross-entropy for ``config.steps``
    mini-batch updates (shuffled epochs of ``config.batch_size``); deterministic for a
    given ``config.seed`` (the global random state is restored afterwards). Returns the net
    (evaluation mode), its test accuracy (fraction) and the training seconds."""
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = FeatureNet(x_train.shape[1], n_classes, config.width, config.feature_dim)
        opt = torch.optim.Adam(net.parameters(), lr=config.lr)
        g = torch.Generator().manual_seed(config.seed)
        x, y = x_train.float().cpu(), y_train.long().cpu()
        net.train()
        step = 0
        while step < config.steps:  # epochs of shuffled mini-batches until ``steps`` updates
            order = torch.randperm(x.shape[0], generator=g)
            for i in range(0, x.shape[0], config.batch_size):
                if step == config.steps:
                    break
                idx = order[i : i + config.batch_size]
                loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
    acc = _accuracy(net, x_test.float().cpu(), y_test.long().cpu())
    return net.eval(), acc, time.perf_counter() - start


def _atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`vaebench.fileio.atomic_writer`, inside the cache folder's
    parent (the results folder) through no linked folder."""
    with atomic_writer(path, path.parent.parent) as fh:
        torch.save(obj, fh)


def _load(path: Path, meta: dict[str, Any], n_classes: int, channels: int, config) -> Any:
    """The net stored at ``path`` if it matches ``meta``, else ``None`` (with the reason logged)."""
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        got = stored["meta"]
        for key in ("fingerprint", "config", "n_classes", "label_source"):
            if got.get(key) != meta[key]:
                raise ValueError(f"{key} differs")
        missing = [k for k in _STORED_KEYS if k not in got]
        if missing:
            raise ValueError(f"lacks {', '.join(missing)}")
        state = stored["state"]
        if weights_sha256(state) != got["sha256"]:
            raise ValueError("weights do not match their stored sha256")
        net = FeatureNet(channels, n_classes, config.width, config.feature_dim)
        net.load_state_dict(state)
        return net.eval(), got
    except Exception as exc:  # noqa: BLE001 - any unusable file is retrained and replaced
        log.warning(
            "ignoring feature net %s (%s: %s); training it again", path, type(exc).__name__, exc
        )
        return None


def feature_extractor(
    dataset: Any, config: FeatureNetConfig, cache_dir: str | os.PathLike | None = None
) -> FeatureExtractor:
    """The feature net of ``dataset`` under ``config``: from memory, from ``cache_dir``, or
    trained now (and stored there). Raises ``ValueError`` for a dataset with neither labels nor
    ground-truth factors. See the module docstring."""
    labels = feature_labels(dataset)
    if labels is None:
        raise ValueError(
            f"dataset {dataset.name!r} has neither labels nor ground-truth factors to train the "
            "feature network on"
        )
    y_train, y_test, source = labels
    idx = subset_indices(dataset.x_train.shape[0], config.train_n)
    x_train, y_train = dataset.x_train[idx], y_train[idx]
    n_classes = int(max(int(y_train.max()), int(y_test.max())) + 1)
    fingerprint = dataset_fingerprint(x_train, y_train, dataset.x_test, y_test)
    safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", dataset.name) or "dataset"
    file_name = f"{safe_name}--{fingerprint[:16]}--{config.key()}.pt"
    if file_name in _memory:
        kept = _memory.pop(file_name)
        _memory[file_name] = kept  # most recently used last
        return FeatureExtractor(kept.net, {**kept.info, "source": "kept in memory"})
    meta: dict[str, Any] = {
        "fingerprint": fingerprint,
        "config": config.to_dict(),
        "n_classes": n_classes,
        "label_source": source,
        "dataset": dataset.name,
        "image_shape": list(dataset.shape),
        "n_train": len(idx),
        "n_test": int(dataset.x_test.shape[0]),
    }
    channels = int(dataset.shape[0])
    path = Path(cache_dir) / file_name if cache_dir is not None else None
    loaded = _load(path, meta, n_classes, channels, config) if path and path.is_file() else None
    if loaded is not None:
        net, stored = loaded
        meta.update({k: stored[k] for k in _STORED_KEYS})
        meta["source"] = "loaded from the cache folder"
    else:
        net, acc, seconds = train_feature_net(
            x_train, y_train, dataset.x_test, y_test, n_classes, config
        )
        state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        meta.update(
            {
                "sha256": weights_sha256(state),
                "feature_scale": feature_scale(raw_features(net, x_train, "cpu")),
                "test_accuracy": acc,
                "train_seconds": round(seconds, 3),
                "device": "cpu",
                "source": "trained now",
            }
        )
        if path is not None:
            stored_meta = {k: v for k, v in meta.items() if k != "source"}
            _atomic_save({"state": state, "meta": stored_meta}, path)
    meta["file"] = file_name
    extractor = FeatureExtractor(net, meta)
    _memory[file_name] = extractor
    while len(_memory) > _MEMORY_SLOTS:
        _memory.pop(next(iter(_memory)))
    return extractor


def clear_memory() -> None:
    """Forget the feature nets kept in memory (tests)."""
    _memory.clear()
