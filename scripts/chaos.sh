#!/usr/bin/env bash
# The chaos run (docs/RELIABILITY.md): builds echoctl and the chaos driver, makes sure the
# local stack is up, then submits a seeded batch of uploads while killing processors and
# restarting the broker, and prints the figures. Arguments go to the driver
# (`--seed N`, `--uploads N`, `--help`). Exits non-zero unless nothing is stuck, lost or
# duplicated. Takes several minutes; not part of the test command.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p echoctl -p echo-tests --bins
cargo run --quiet -p echoctl -- dev up
exec target/debug/echo-chaos "$@"
