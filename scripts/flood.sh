#!/usr/bin/env bash
# Flood benchmark (docs/RELIABILITY.md, "Bounded state"): 100,000 junk upload requests from one
# client, half refused, half given URLs nobody uses; the upload processor's restore time and
# resident memory before, right after, and once the requests have retired. Release build,
# against the local stack; not part of the test command. With the defaults it waits the URLs'
# 15 minutes and the 10 minutes of `upload.retire_after_ms` (about 30 minutes in all);
# `--url-ttl-secs 60 --retire-after-ms 60000` makes it a few minutes.
#   bash scripts/flood.sh [--requests N] [--url-ttl-secs S] [--retire-after-ms MS]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/stack/install.sh
bash scripts/examples/install.sh
cargo build --quiet --release -p echoctl -p echo-schema-registry -p echo-dev-s3 --bins
target/release/echoctl dev up >/dev/null
exec examples/python/.venv/bin/python scripts/bench/flood.py "$@"
