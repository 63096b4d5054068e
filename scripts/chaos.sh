#!/usr/bin/env bash
# The chaos run (docs/RELIABILITY.md): builds echoctl and the chaos driver, makes sure the
# local stack is up, then submits a seeded batch of uploads while killing processors and
# restarting the broker, and prints the figures. Arguments go to the driver
# (`--seed N`, `--uploads N`, `--help`). Exits non-zero unless nothing is stuck, lost or
# duplicated. Takes several minutes; not part of the test command.
# With `--brokers 3` the stack is a three-broker cluster (`echoctl dev up --brokers 3`) and
# the run kills the leader of the busiest partition instead of restarting the one broker.
set -euo pipefail
cd "$(dirname "$0")/.."

brokers=1
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --brokers) brokers="${args[i + 1]:-1}" ;;
    --brokers=*) brokers="${args[i]#--brokers=}" ;;
  esac
done

# The stack's own servers (registry, S3) too: `dev up` starts them from this build.
cargo build --quiet -p echoctl -p echo-tests -p echo-schema-registry -p echo-dev-s3 --bins
if [[ "$brokers" == 1 ]]; then
  cargo run --quiet -p echoctl -- dev up
else
  cargo run --quiet -p echoctl -- dev up --brokers "$brokers"
  # Every broker's address and the replication settings, for the driver and the processes
  # it starts (written by `dev up`; see scripts/stack/lib.sh).
  set -a
  # shellcheck source=/dev/null
  source "${ECHO_DATA_DIR:-$HOME/.local/share/echo}/kafka/clients.env"
  set +a
fi
exec "${CARGO_TARGET_DIR:-target}/debug/echo-chaos" "$@"
