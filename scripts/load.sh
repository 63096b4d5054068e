#!/usr/bin/env bash
# Load benchmark (docs/PERFORMANCE.md, "Many clients at once"): clients submitting a seeded mix
# of 5-second clips, 5-minute files, 46-minute files and a 3-hour file at once, on 2 and 4
# chunk workers; per class the latency p50/p95/p99 against the same file alone, the long
# files' throughput against running alone, the workers' utilisation, what was rejected or
# stuck, and a chart of latency over time. Release build, against the local stack; not part of
# the test command, and no figure is asserted: the targets are printed as met or missed.
# The full mix takes about an hour on two cores; `--scale 0.25` makes the long files a quarter
# as long (about 20 minutes).
#   bash scripts/load.sh                          # the whole benchmark
#   bash scripts/load.sh --workers 2 --scale 0.25 # a quicker run
#   bash scripts/load.sh --help                   # options
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/stack/install.sh
cargo build --quiet --release -p echoctl -p echo-schema-registry -p echo-dev-s3 --bins
target/release/echoctl dev up >/dev/null
RUST_LOG=warn target/release/echoctl model prepare >/dev/null

data_dir="${ECHO_DATA_DIR:-$HOME/.local/share/echo}"
venv="$data_dir/bench/venv"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/bench/requirements.txt
exec "$venv/bin/python" scripts/bench/load.py "$@"
