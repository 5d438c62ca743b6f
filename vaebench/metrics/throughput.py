"""Throughput and size: training samples/s (from fit), encode and decode samples/s, parameters.

Encode and decode are timed under ``torch.inference_mode`` (the models' own) on large batches of
test images moved to the device beforehand, after one warm-up call, repeating until at least
``min_seconds`` have passed; CUDA is synchronised before reading the clock.
"""

from __future__ import annotations

import time

import torch

from vaebench.hookspecs import hookimpl
from vaebench.metric import EvalContext, Metric, Value


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def samples_per_second(fn, batch, device: torch.device, min_seconds: float = 0.25) -> float:
    """Calls of ``fn(batch)`` per second times the batch size (after one warm-up call)."""
    fn(batch)
    _sync(device)
    n_calls = 0
    start = time.perf_counter()
    while True:
        fn(batch)
        n_calls += 1
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return n_calls * batch.shape[0] / elapsed


class Throughput(Metric):
    name = "throughput"
    values = (
        Value("train_samples_per_s", True, "samples/s", 0, "training examples per second in fit"),
        Value("encode_samples_per_s", True, "samples/s", 0, "images encoded per second"),
        Value("decode_samples_per_s", True, "samples/s", 0, "codes decoded per second"),
        Value("fit_seconds", False, "s", 2, "wall time of fit"),
        Value("n_params", None, "", 0, "learned parameters"),
    )

    def evaluate(self, model, dataset, ctx: EvalContext) -> dict[str, float]:
        bs = min(ctx.eval_batch_size, dataset.x_test.shape[0])
        x = dataset.x_test[:bs].to(ctx.device)
        min_seconds = float(ctx.options.get("throughput_seconds", 0.25))
        with torch.inference_mode():
            z = model.encode(x)
        fit = ctx.fit
        return {
            "train_samples_per_s": fit.samples_per_second if fit else float("nan"),
            "encode_samples_per_s": samples_per_second(model.encode, x, ctx.device, min_seconds),
            "decode_samples_per_s": samples_per_second(model.decode, z, ctx.device, min_seconds),
            "fit_seconds": fit.seconds if fit else float("nan"),
            "n_params": float(model.n_params),
        }


@hookimpl
def vaebench_metrics():
    return [Throughput()]
