#!/usr/bin/env bash
# The `rm` workload (reward-model training steps) in alignbox and in PyTorch + transformers (+ peft for LoRA),
# interleaved, at 2 and 1 threads. Prints JSON lines. Needs the release binary and the .venv of
# scripts/fixtures/requirements.txt.
#   bench/compare-rm.sh > results.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
data=$(mktemp -d)
for threads in 2 1; do
  target/release/alignbox bench rm --threads "$threads" --data-dir "$data"
  .venv/bin/python bench/reference/rm.py --variant full --threads "$threads" 2>/dev/null
  target/release/alignbox bench rm --lora --threads "$threads" --data-dir "$data"
  .venv/bin/python bench/reference/rm.py --variant lora --threads "$threads" 2>/dev/null
done
rm -rf "$data"
