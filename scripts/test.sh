#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine of this kind: installs what the tests need (Chromium and
# chromedriver for the browser tests, the embedded default model), builds the client bundle and the release
# binary, then runs every test of the workspace in the release profile (the same profile as the build, so burn
# compiles once).
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

scripts/build.sh

log "running the test suite"
cargo test --release --workspace "$@"
