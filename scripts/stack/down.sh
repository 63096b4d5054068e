#!/usr/bin/env bash
# Stops the services started by up.sh, by their recorded pids only.
# --purge also deletes their data (Kafka log dirs and cluster id, S3 objects, registry file)
# but keeps the installed jars, so the next up.sh starts clean without re-downloading.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

purge=no
for a in "$@"; do
  case "$a" in
    --purge) purge=yes ;;
    *) die "usage: down.sh [--purge]" ;;
  esac
done

take_lock
# Clients first, brokers last (their controlled shutdown is the slowest), all nodes together.
for s in "${OPTIONAL_SERVICES[@]}" registry s3; do stop_service "$s"; done
stop_service "${KAFKA_NODES[@]}"

if [[ $purge == yes ]]; then
  # The whole registry folder: the registry may keep temp/backup files beside schemas.json.
  # Every node's storage and config (a single broker's under kafka/, a cluster's under
  # kafka/node<i>/), so the next up.sh may start a cluster of another size.
  rm -rf "$KAFKA_DIR/data" "$KAFKA_DIR/server.properties" "$KAFKA_DIR"/node[1-9] \
    "$CLUSTER_ID_FILE" "$BROKERS_FILE" "$CLIENTS_ENV" "$S3_DATA" "$REGISTRY_DIR" "$PROMETHEUS_DATA"
  echo "purged data under $ECHO_DATA_DIR (kept $JARS_DIR)"
fi
