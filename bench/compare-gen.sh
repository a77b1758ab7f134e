#!/usr/bin/env bash
# The `gen` workload in alignbox and in PyTorch + transformers, interleaved, at 2 and 1 threads, on tiny-llama-8k
# and SmolLM2-135M. Prints JSON lines (one per result) to stdout. Needs the release binary, the .venv of
# scripts/fixtures/requirements.txt and the default model (scripts/fetch-default-model.sh models-cache).
#   bench/compare-gen.sh [ROUNDS] > results.jsonl
# DEVICE=cpu|cuda runs both on that device (alignbox --device, the scripts' --device); unset: alignbox's default
# device (auto) and PyTorch on the CPU, as before.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
export OMP_WAIT_POLICY=PASSIVE
gguf=$(scripts/fetch-default-model.sh models-cache)
data=$(mktemp -d)
target/release/alignbox models import "$gguf" --name smollm2 --data-dir "$data" >&2
for round in $(seq "$rounds"); do
  for threads in 2 1; do
    target/release/alignbox ${DEVICE:+--device "$DEVICE"} bench gen --threads "$threads" --data-dir "$data"
    .venv/bin/python bench/reference/gen.py ${DEVICE:+--device "$DEVICE"} --threads "$threads" 2>/dev/null
    target/release/alignbox ${DEVICE:+--device "$DEVICE"} bench gen --model smollm2 --threads "$threads" --warmup 1 --iters 3 --data-dir "$data"
    .venv/bin/python bench/reference/gen.py ${DEVICE:+--device "$DEVICE"} --model smollm2 --threads "$threads" --warmup 1 --iters 3 2>/dev/null
  done
  echo "round $round done" >&2
done
rm -rf "$data"
