#!/usr/bin/env bash
# The device check for a machine with a GPU: takes an already-built alignbox binary (stripped, built on another
# machine; nothing is compiled here), runs the same work on the CPU and on the GPU device, and writes JSON lines to
# a folder:
#   - greedy generation on the tiny HF fixture: the same tokens, log-probs within 1e-4;
#   - 3 steps of `train rm`, `train sft`, `train dpo` (full, --lora, --qlora) and 2 PPO iterations (--qlora): the
#     per-step losses of both devices side by side (within 1e-3 expected), with the wall time of each run.
# Usage: scripts/gpu-check.sh [BINARY] [OUT_DIR]   (env GPU_DEVICE: cuda by default; vulkan checks lavapipe)
# Needs: bash, python3 (for the comparison), the repository's trainer/tests/fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/release/alignbox}")
OUT=$(mkdir -p "${2:-${OUT:-gpu-check-out}}" && realpath "${2:-${OUT:-gpu-check-out}}")
GPU=${GPU_DEVICE:-cuda}
FIXTURE=trainer/tests/fixtures/tiny-llama-gqa-tied
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export ALIGNBOX_PASSWORD=gpu-check-password
log() { printf '[gpu-check] %s\n' "$*" >&2; }

"$BIN" --version >&2
if ! "$BIN" --device "$GPU" models list --data-dir "$WORK/probe" >/dev/null 2>"$OUT/device-error.txt"; then
  log "device $GPU is not usable: $(cat "$OUT/device-error.txt")"
  exit 1
fi

# Rankings, demonstrations and prompts over a few words (the better answer has more "good").
python3 - "$WORK/data.jsonl" <<'PY'
import json, random, sys
random.seed(7)
words = ["the", "cat", "sat", "on", "a", "mat", "and", "ran"]
lines = []
for i in range(48):
    prompt = " ".join(random.choice(words) for _ in range(4)) + f" {i}"
    answers = []
    for good in random.sample(range(4), 3):
        w = [random.choice(words) for _ in range(5)]
        w[:good] = ["good"] * good
        answers.append((good, " ".join(w)))
    answers.sort(key=lambda a: -a[0])
    lines.append({"prompt": prompt, "responses": [a[1] for a in answers], "tiers": [[0], [1], [2]]})
    lines.append({"prompt": f"repeat {prompt}", "completion": prompt})
open(sys.argv[1], "w").write("\n".join(json.dumps(l) for l in lines))
PY

seed_dir() {  # a data dir with the tiny model as default base and the data imported
  local dir=$1
  "$BIN" --device cpu models import "$FIXTURE" --name tiny --data-dir "$dir" >/dev/null
  "$BIN" --device cpu import "$WORK/data.jsonl" --data-dir "$dir" >/dev/null
}

run_train() {  # device, stage, name, extra args…
  local device=$1 stage=$2 name=$3; shift 3
  local dir="$WORK/$device"
  local start end
  start=$(date +%s.%N)
  if "$BIN" --device "$device" train "$stage" --name "$name" --steps 3 --batch 8 --max-tokens 64 --lr 3e-3 \
      --data-dir "$dir" "$@" >"$OUT/$name-$device.log" 2>&1; then
    end=$(date +%s.%N)
    python3 - "$dir/runs/$name/metrics.jsonl" "$device" "$stage" "$name" "$start" "$end" >>"$OUT/runs.jsonl" <<'PY'
import json, sys
path, device, stage, name, start, end = sys.argv[1:]
steps = [json.loads(l) for l in open(path)]
loss = [e["metrics"]["loss"] for e in steps if e["kind"] == "step" and "loss" in e["metrics"]]
print(json.dumps({"check": "train", "stage": stage, "run": name, "device": device, "losses": loss,
                  "seconds": float(end) - float(start)}))
PY
  else
    log "train $stage $name on $device failed (see $OUT/$name-$device.log)"
    echo "{\"check\": \"train\", \"stage\": \"$stage\", \"run\": \"$name\", \"device\": \"$device\", \"failed\": true}" >>"$OUT/runs.jsonl"
  fi
}

: >"$OUT/runs.jsonl"
for device in cpu "$GPU"; do
  seed_dir "$WORK/$device"
  "$BIN" --device "$device" generate -p "the cat sat" --greedy --json --max-new-tokens 16 --data-dir "$WORK/$device" \
    >"$OUT/generate-$device.json"
  for tuning in full lora qlora; do
    case $tuning in full) flag=() ;; lora) flag=(--lora 8) ;; qlora) flag=(--qlora) ;; esac
    run_train "$device" rm "rm-$tuning" "${flag[@]}"
    run_train "$device" sft "sft-$tuning" "${flag[@]}"
    run_train "$device" dpo "dpo-$tuning" "${flag[@]}"
  done
  run_train "$device" ppo "ppo-qlora" --qlora --reward rm-full --max-new-tokens 8 --temperature 1.0
done

python3 - "$OUT" "$GPU" <<'PY' | tee "$OUT/summary.jsonl"
import json, sys, pathlib
out, gpu = pathlib.Path(sys.argv[1]), sys.argv[2]
g = {d: json.loads(open(out / f"generate-{d}.json").readline()) for d in ("cpu", gpu)}
lp = max((abs(a - b) for a, b in zip(g["cpu"]["logprobs"], g[gpu]["logprobs"])), default=0.0)
print(json.dumps({"check": "generate", "same_tokens": g["cpu"]["tokens"] == g[gpu]["tokens"], "max_logprob_diff": lp}))
runs = [json.loads(l) for l in open(out / "runs.jsonl")]
by = {(r["run"], r["device"]): r for r in runs}
for (name, device), r in sorted(by.items()):
    if device != "cpu":
        continue
    other = by.get((name, gpu), {})
    if r.get("failed") or other.get("failed") or not other:
        print(json.dumps({"check": "train", "run": name, "failed": True}))
        continue
    # PPO samples: its losses need not match once a sampled token differs; the others must within 1e-3.
    d = max(abs(a - b) for a, b in zip(r["losses"], other["losses"]))
    print(json.dumps({"check": "train", "run": name, "max_loss_diff": d, "cpu_s": r["seconds"],
                      f"{gpu}_s": other["seconds"], "ok": d < 1e-3 or name.startswith("ppo")}))
PY
log "results in $OUT"
