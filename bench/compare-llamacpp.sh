#!/usr/bin/env bash
# The `gen` workloads on the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) in alignbox (f32 and the Q8 serving
# decoder: `bench gen` rows gen*, gen_q8*) and in llama.cpp (bench/reference/llamacpp_gen.py), interleaved, at
# 2 threads. Prints JSON lines to stdout. Needs the release binary, the default model
# (scripts/fetch-default-model.sh models-cache) and a venv with llama-cpp-python:
#   python3 -m venv .venv-llama && .venv-llama/bin/pip install llama-cpp-python numpy   # builds llama.cpp, ~7 min
#   bench/compare-llamacpp.sh [ROUNDS] > results.jsonl
# OMP_WAIT_POLICY is left unset: PASSIVE slows llama.cpp about 4x.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
unset OMP_WAIT_POLICY
gguf=$(scripts/fetch-default-model.sh models-cache)
data=$(mktemp -d)
target/release/alignbox models import "$gguf" --name smollm2 --data-dir "$data" >&2
for round in $(seq "$rounds"); do
  target/release/alignbox --device cpu bench gen --model smollm2 --threads 2 --warmup 1 --iters 3 --data-dir "$data"
  .venv-llama/bin/python bench/reference/llamacpp_gen.py "$gguf" --threads 2 --warmup 1 --iters 3 2>/dev/null
  echo "round $round done" >&2
done
rm -rf "$data"
