#!/usr/bin/env bash
# State benchmark (docs/RELIABILITY.md): restore time, resident memory and per-loop timer
# cost of a processor's state at 10k, 100k and 1M keys, before and after 90 % of them are
# retired (tombstoned). Release build, one run, against the local stack; not part of the
# test command. Arguments go to the benchmark (`--keys 10000,100000`, `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --release -p echo-tests --bin echo-state-bench
# The stack's own servers (registry, S3): `dev up` starts them from the debug build.
cargo build --quiet -p echoctl -p echo-schema-registry -p echo-dev-s3 --bins
cargo run --quiet -p echoctl -- dev up
exec target/release/echo-state-bench "$@"
