#!/usr/bin/env bash
# Builds everything on a fresh machine of this kind, fetches the embedded default model into the data directory
# when it has none, and starts the appliance:
#   scripts/run.sh [serve options, e.g. --addr 0.0.0.0:3000 --data-dir /srv/alignbox]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh

# The data directory serve will use (same default and precedence as `alignbox serve`).
data_dir=${ALIGNBOX_DATA_DIR:-./alignbox-data}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --data-dir) data_dir=${args[$((i + 1))]:-$data_dir} ;;
    --data-dir=*) data_dir=${args[$i]#--data-dir=} ;;
  esac
done

default_model=()
if [ ! -s "$data_dir/models/default" ]; then
  gguf=$(scripts/fetch-default-model.sh "$data_dir/downloads")
  default_model=(--default-model "$gguf")
fi
exec target/release/alignbox serve "${default_model[@]}" "$@"
