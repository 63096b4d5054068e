#!/usr/bin/env bash
# Stops Kafka and starts it again on the same data, waiting until it serves requests (for
# chaos tests). Other services are left alone. No install step: fast.
# Usage: restart-kafka.sh [--kill] [--down SECONDS] [NODE...]
#   NODE      node ids to restart (1…ECHO_KAFKA_BROKERS); default every node
#   --kill    SIGKILL instead of a clean shutdown, as if the machine died
#   --down    how long the nodes stay down before they are started again (default 0)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage="usage: restart-kafka.sh [--kill] [--down SECONDS] [NODE...]"
kill=no
down=0
nodes=()
while (($#)); do
  case "$1" in
    --kill) kill=yes ;;
    --down)
      [[ "${2:-}" =~ ^[0-9]+$ ]] || die "$usage"
      down="$2"
      shift
      ;;
    *)
      [[ "$1" =~ ^[1-9]$ ]] && (($1 <= ECHO_KAFKA_BROKERS)) \
        || die "no Kafka node '$1' (this cluster has nodes 1 to $ECHO_KAFKA_BROKERS); $usage"
      nodes+=("$(kafka_service "$1")")
      ;;
  esac
  shift
done
((${#nodes[@]})) || nodes=("${KAFKA_NODES[@]}")

take_lock
if [[ $kill == yes ]]; then
  for n in "${nodes[@]}"; do kill_service "$n"; done
else
  stop_service "${nodes[@]}"
fi
sleep "$down"
for n in "${nodes[@]}"; do start_service "$n"; done
for n in "${nodes[@]}"; do
  pid="$(wait_service "$n")"
  echo "$n up on $(service_endpoint "$n") (pid $pid)"
done
