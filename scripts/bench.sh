#!/usr/bin/env bash
# Speed benchmark (docs/PERFORMANCE.md): echo end to end beside echo's transcriber alone and
# faster-whisper, on synthesised speech (or FILE), plus the pipeline's own cost, the event
# path, idle load, scale-out, quantized weights, other models and how cost grows with the
# audio's length.
# Release build, one run, against the local stack; not part of the test command, and no
# figure is asserted: the targets are printed as met or missed. Takes about 30 minutes.
#   bash scripts/bench.sh                       # the whole benchmark
#   bash scripts/bench.sh FILE --text TEXT      # on your own recording (TEXT for the WER)
#   bash scripts/bench.sh --help                # sections and options
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/stack/install.sh
cargo build --quiet --release -p echoctl -p echo-schema-registry -p echo-dev-s3 --bins
cargo build --quiet --release -p echo-tests --bin echo-relay-bench
target/release/echoctl dev up >/dev/null
RUST_LOG=warn target/release/echoctl model prepare --all >/dev/null
RUST_LOG=warn target/release/echoctl model prepare --model base >/dev/null

# The peers and the script's own needs, pinned, in a virtual environment of the data dir.
data_dir="${ECHO_DATA_DIR:-$HOME/.local/share/echo}"
venv="$data_dir/bench/venv"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/bench/requirements.txt
exec "$venv/bin/python" scripts/bench/bench.py --python "$venv/bin/python" "$@"
