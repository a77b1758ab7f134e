#!/usr/bin/env bash
# Builds everything on a fresh machine of this kind and starts the appliance:
#   scripts/run.sh [serve options, e.g. --addr 0.0.0.0:3000 --data-dir /srv/alignbox]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec target/release/alignbox serve "$@"
