#!/usr/bin/env bash
# The README's first command: sets up the local stack and runs the whole pipeline on it.
# A minute of speech (spoken by flite from sample.txt) is uploaded as a client would; each
# event of the resource is printed as it happens, then the transcript.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."

bash scripts/stack/install.sh
cargo build --workspace --quiet
echoctl=target/debug/echoctl
"$echoctl" dev up

data_dir="${ECHO_DATA_DIR:-$HOME/.local/share/echo}"
sample="$data_dir/samples/sample.wav"
mkdir -p "$(dirname "$sample")"
if [[ ! -s "$sample" || "$here/sample.txt" -nt "$sample" ]]; then
  flite -voice slt -f "$here/sample.txt" -o "$sample"
fi

log="$data_dir/logs/demo-processors.log"
"$echoctl" run all --instance demo --chunk-workers 2 >"$log" 2>&1 &
processors=$!
trap 'kill -TERM $processors 2>/dev/null; wait $processors 2>/dev/null || true' EXIT

"$echoctl" topology
echo
# The time below is the pipeline's, not its start's: wait until every processor has its
# partitions and state (/readyz), as a deployment's readiness probe does.
for _ in $(seq 120); do
  curl -fs http://127.0.0.1:9464/readyz >/dev/null 2>&1 && break
  sleep 0.5
done
started_ms=$(($(date +%s%N) / 1000000))
"$echoctl" submit "$sample" --wait
elapsed_ms=$(($(date +%s%N) / 1000000 - started_ms))
echo
echo "end to end: ${elapsed_ms} ms for $(soxi -D "$sample") s of audio (processor logs: $log)"
