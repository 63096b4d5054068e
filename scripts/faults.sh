#!/usr/bin/env bash
# The fault run (docs/RELIABILITY.md): the chaos driver without kills, while the object store
# is frozen (SIGSTOP: a hung server, a partitioned network) for three minutes in the middle
# of 30 uploads, then thawed. Prints the chaos figures: submitted / terminal / stuck, good
# uploads rejected, duplicate effects, DLQ records, and how soon an upload ended after the
# thaw. Exits non-zero unless nothing is stuck, lost, duplicated or wrongly rejected.
# Arguments go to the driver (`--seed N`, `--freeze-store-secs N`, `--uploads N`). Takes
# about ten minutes; not part of the test command.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p echoctl -p echo-tests -p echo-schema-registry -p echo-dev-s3 --bins
cargo run --quiet -p echoctl -- dev up
exec "${CARGO_TARGET_DIR:-target}/debug/echo-chaos" --uploads 30 --freeze-store-secs 180 "$@"
