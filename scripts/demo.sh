#!/usr/bin/env bash
# The README's first command: sets up the local stack and runs echo's upload round trip on
# it — a spoken sample is requested, uploaded to its pre-signed URL, finalized and verified.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/stack/install.sh
cargo build --workspace --quiet
echoctl=target/debug/echoctl
"$echoctl" dev up

data_dir="${ECHO_DATA_DIR:-$HOME/.local/share/echo}"
sample="$data_dir/samples/hello.wav"
mkdir -p "$(dirname "$sample")"
[[ -s "$sample" ]] || flite -voice slt -t "Hello from echo. This file travels through Kafka, the schema registry and S3." -o "$sample"

"$echoctl" run upload --instance demo &
processor=$!
trap 'kill -TERM $processor 2>/dev/null; wait $processor 2>/dev/null || true' EXIT

"$echoctl" topology
"$echoctl" submit "$sample"
