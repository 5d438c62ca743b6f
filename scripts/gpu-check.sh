#!/usr/bin/env bash
# Check vaebench's CUDA path on a GPU machine and measure it, in under 8 minutes:
#   1. the CUDA test suite (tests/gpu: a tiny grid trained through the CLI, bf16 autocast, one
#      host sync per epoch, data resident on the device, PCA on the GPU, bench on CUDA);
#   2. `vaebench bench` on CUDA (Fashion-MNIST when its files are installed, else digits),
#      batch 256, 16 latent dimensions, 5 interleaved repeats.
# Prints one table: the test summary, then the bench table. The JSON of the bench and the test
# log are written to $OUT (default: ./gpu-check-out). Paste the table into docs/performance.md.
#
# Usage: scripts/gpu-check.sh            (from anywhere; uses this checkout's vaebench)
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-$PWD/gpu-check-out}"
PY="${PYTHON:-python}"

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu-check: no CUDA device visible to torch ($("$PY" -c 'import torch; print(torch.__version__)'))" >&2
    exit 2
fi
GPU="$("$PY" -c 'import torch; print(torch.cuda.get_device_name(0))')"
mkdir -p "$OUT"

DATASET="${VAEBENCH_GPU_DATASET:-}"
if [ -z "$DATASET" ]; then
    if "$PY" -c 'from vaebench.data.idx import load_fashion_mnist as f; f(download=False)' \
        >/dev/null 2>&1; then
        DATASET=fashion-mnist
    else
        DATASET=digits
    fi
fi

start=$(date +%s)
timeout 240 "$PY" -m pytest -q -p no:cacheprovider tests/gpu -o addopts="-ra" \
    >"$OUT/tests.log" 2>&1
tests_rc=$?
tests_line="$(tail -n 1 "$OUT/tests.log")"

timeout 300 "$PY" -m vaebench.cli bench -d "$DATASET" --device cuda --batch-size 256 \
    --latent-dim 16 --repeats 5 --json "$OUT/bench-cuda.json" >"$OUT/bench.txt" 2>"$OUT/bench.err"
bench_rc=$?
took=$(( $(date +%s) - start ))

echo "== vaebench gpu-check: $GPU, torch $("$PY" -c 'import torch; print(torch.__version__)'), ${took} s =="
printf '%-10s %s\n' "tests/gpu" "$tests_line (exit $tests_rc; log $OUT/tests.log)"
printf '%-10s %s\n' "bench" "$DATASET, exit $bench_rc (JSON $OUT/bench-cuda.json)"
cat "$OUT/bench.txt"
sed 's/^/  /' "$OUT/bench.err"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
