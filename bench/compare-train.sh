#!/usr/bin/env bash
# The training workloads — `sft` (full, LoRA) and `ppo` (four models; alignbox also with LoRA roles on one shared
# base) — in alignbox and in PyTorch + transformers (+ peft), interleaved, at 2 and 1 threads. Prints JSON lines.
# Needs the release binary and the .venv of scripts/fixtures/requirements.txt.
#   bench/compare-train.sh > results.jsonl
# DEVICE=cpu|cuda runs both on that device (alignbox --device, the scripts' --device); unset: alignbox's default
# device (auto) and PyTorch on the CPU, as before. THREADS="2 1" by default.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
data=$(mktemp -d)
for threads in ${THREADS:-2 1}; do
  target/release/alignbox ${DEVICE:+--device "$DEVICE"} bench sft --threads "$threads" --data-dir "$data"
  .venv/bin/python bench/reference/sft.py ${DEVICE:+--device "$DEVICE"} --variant full --threads "$threads" 2>/dev/null
  target/release/alignbox ${DEVICE:+--device "$DEVICE"} bench sft --lora --threads "$threads" --data-dir "$data"
  .venv/bin/python bench/reference/sft.py ${DEVICE:+--device "$DEVICE"} --variant lora --threads "$threads" 2>/dev/null
  target/release/alignbox ${DEVICE:+--device "$DEVICE"} bench ppo --threads "$threads" --data-dir "$data"
  .venv/bin/python bench/reference/ppo.py ${DEVICE:+--device "$DEVICE"} --threads "$threads" 2>/dev/null
  target/release/alignbox ${DEVICE:+--device "$DEVICE"} bench ppo --lora --threads "$threads" --data-dir "$data"
done
rm -rf "$data"
