#!/usr/bin/env bash
# The `rm` workload (reward-model training steps) in alignbox, in PyTorch + transformers (+ peft for LoRA) and
# through TRL's RewardTrainer, interleaved, at 2 and 1 threads; then SmolLM2-135M (the embedded default) at 2
# threads, 1 warm-up + 2 timed steps each. Prints JSON lines. Needs the release binary, the .venv of
# scripts/fixtures/requirements.txt and, for SmolLM2, the default model (scripts/fetch-default-model.sh).
#   bench/compare-rm.sh > results.jsonl          (SMOLLM2=0 skips the SmolLM2 part)
# DEVICE=cpu|cuda runs both on that device (alignbox --device, the scripts' --device); unset: alignbox's default
# device (auto) and PyTorch on the CPU, as before.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
data=$(mktemp -d)
for threads in 2 1; do
  target/release/alignbox ${DEVICE:+--device "$DEVICE"} bench rm --threads "$threads" --data-dir "$data"
  .venv/bin/python bench/reference/rm.py ${DEVICE:+--device "$DEVICE"} --variant full --threads "$threads" 2>/dev/null
  .venv/bin/python bench/reference/rm_trl.py ${DEVICE:+--device "$DEVICE"} --variant full --threads "$threads" 2>/dev/null
  target/release/alignbox ${DEVICE:+--device "$DEVICE"} bench rm --lora --threads "$threads" --data-dir "$data"
  .venv/bin/python bench/reference/rm.py ${DEVICE:+--device "$DEVICE"} --variant lora --threads "$threads" 2>/dev/null
  .venv/bin/python bench/reference/rm_trl.py ${DEVICE:+--device "$DEVICE"} --variant lora --threads "$threads" 2>/dev/null
done
if [ "${SMOLLM2:-1}" != 0 ]; then
  gguf=$(scripts/fetch-default-model.sh models-cache)
  target/release/alignbox models import "$gguf" --name smollm2 --data-dir "$data" >&2
  target/release/alignbox ${DEVICE:+--device "$DEVICE"} bench rm --model smollm2 --threads 2 --warmup 1 --iters 2 --data-dir "$data"
  .venv/bin/python bench/reference/rm.py ${DEVICE:+--device "$DEVICE"} --model smollm2 --threads 2 --warmup 1 --iters 2 2>/dev/null
  target/release/alignbox ${DEVICE:+--device "$DEVICE"} bench rm --model smollm2 --lora --threads 2 --warmup 1 --iters 2 --data-dir "$data"
  target/release/alignbox ${DEVICE:+--device "$DEVICE"} bench rm --model smollm2 --qlora --threads 2 --warmup 1 --iters 2 --data-dir "$data"
fi
rm -rf "$data"
