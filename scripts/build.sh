#!/usr/bin/env bash
# Builds everything the appliance needs on a fresh machine of this kind:
#   1. the wasm32 target and the wasm-bindgen CLI that matches Cargo.lock (installed once),
#   2. the hydrating client bundle into target/site/pkg (wasm + js + css),
#   3. the release `alignbox` binary, which embeds that bundle (skipped with --client-only: `cargo test` builds it).
# Idempotent: steps that are already done are skipped by cargo/rustup.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[build]\033[0m %s\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen's CLI must be exactly the version of the wasm-bindgen crate in Cargo.lock.
wbg_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wbg_version" ]; then
  log "installing wasm-bindgen-cli $wbg_version (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "=$wbg_version"
fi

log "building the client (wasm, hydrate)"
cargo build -p app --lib --target wasm32-unknown-unknown --profile wasm-release --no-default-features --features hydrate

site=target/site
mkdir -p "$site/pkg"
wasm-bindgen --target web --no-typescript --out-dir "$site/pkg" --out-name alignbox \
  target/wasm32-unknown-unknown/wasm-release/app.wasm
cp assets/alignbox.css "$site/pkg/alignbox.css"

if [ "${1:-}" = "--client-only" ]; then
  exit 0
fi
log "building the server (release)"
cargo build --release --workspace --bins
log "done: target/release/alignbox"
