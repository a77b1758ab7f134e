#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine of this kind: installs what the tests need (Chromium and
# chromedriver for the browser tests, the embedded default model for the SmolLM2 tests), builds the client
# bundle, then builds and runs every test of the workspace in the release profile (the profile scripts/build.sh
# uses, so burn compiles once).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[test]\033[0m %s\n' "$*" >&2; }

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  log "installing chromium and chromium-driver (browser tests)"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get install -y chromium chromium-driver >/dev/null \
    || { $sudo_cmd apt-get update >/dev/null && $sudo_cmd apt-get install -y chromium chromium-driver >/dev/null; }
fi

# The GPU code paths run on a Vulkan device: Mesa's lavapipe (a Vulkan 1.3 driver on the CPU) where there is no
# GPU. Those tests must run: a missing Vulkan device is a failure, not a skip.
if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  log "installing mesa-vulkan-drivers (lavapipe) and libvulkan1 (the GPU-backend tests)"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get install -y mesa-vulkan-drivers libvulkan1 >/dev/null \
    || { $sudo_cmd apt-get update >/dev/null && $sudo_cmd apt-get install -y mesa-vulkan-drivers libvulkan1 >/dev/null; }
fi
export ALIGNBOX_REQUIRE_VULKAN=1
# The Vulkan loader wants a runtime directory (it prints an error per device query without one).
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d)
  export XDG_RUNTIME_DIR
fi

# The SmolLM2 tests must run: a missing model is a failure, not a skip.
ALIGNBOX_SMOLLM2_GGUF=$(scripts/fetch-default-model.sh models-cache)
export ALIGNBOX_SMOLLM2_GGUF ALIGNBOX_REQUIRE_MODELS=1

# With the PyTorch reference environment (scripts/fixtures/requirements.txt in .venv), exports are also checked in
# HuggingFace transformers and PEFT; without it those checks are skipped (the committed fixtures still run).
if [ -x .venv/bin/python ] && .venv/bin/python -c "import transformers, peft" 2>/dev/null; then
  export ALIGNBOX_REFERENCE_PYTHON="$PWD/.venv/bin/python"
fi

scripts/build.sh --client-only

log "running the test suite"
cargo test --release --workspace "$@"
