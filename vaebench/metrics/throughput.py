"""Throughput and size: training samples/s (from fit), encode and decode samples/s, parameters.

Encode and decode are timed under ``torch.inference_mode`` (the models' own) on large batches of
test images moved to the device beforehand, after one warm-up call: the best of five windows
that together last about ``min_seconds`` (as :mod:`timeit` does); CUDA is synchronised before
reading the clock. Training throughput is epochs x N / wall time of ``fit``, a single
measurement: on a shared machine compare it within one run only.
"""

from __future__ import annotations

import time

import torch

from vaebench.hookspecs import hookimpl
from vaebench.metric import EvalContext, Metric, Value


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def samples_per_second(
    fn, batch, device: torch.device, min_seconds: float = 0.25, repeats: int = 5
) -> float:
    """Best rate of ``fn(batch)`` over ``repeats`` timed windows, in samples per second.

    One warm-up call, then the number of calls per window is calibrated so that all windows
    together last about ``min_seconds``; as with :mod:`timeit`, the best window is reported,
    because interference from other processes only ever slows a window down.
    """
    fn(batch)
    _sync(device)
    start = time.perf_counter()
    fn(batch)
    _sync(device)
    one = max(time.perf_counter() - start, 1e-9)
    calls = max(1, int(min_seconds / repeats / one))
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn(batch)
        _sync(device)
        elapsed = max(time.perf_counter() - start, 1e-12)
        best = max(best, calls * batch.shape[0] / elapsed)
    return best


class Throughput(Metric):
    name = "throughput"
    group = "cost"
    options = {"throughput_seconds": 0.25}
    option_docs = {
        "throughput_seconds": "minimum timed duration per encode/decode measurement, seconds "
        "(0.001 to 60)"
    }
    guarded = False  # times the model itself; its outputs are checked by the other metrics
    values = (
        Value("train_samples_per_s", True, "samples/s", 0, "training examples per second in fit"),
        Value("encode_samples_per_s", True, "samples/s", 0, "images encoded per second"),
        Value("decode_samples_per_s", True, "samples/s", 0, "codes decoded per second"),
        Value("fit_seconds", False, "s", 2, "wall time of fit"),
        Value("n_params", None, "", 0, "learned parameters"),
    )

    def check_options(self, options: dict) -> None:
        seconds = options.get("throughput_seconds", 0.25)
        if not 0.001 <= seconds <= 60:
            raise ValueError(
                f"invalid value {seconds!r} for eval.throughput_seconds: expected 0.001 to 60"
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
