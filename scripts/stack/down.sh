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
# Clients first, broker last (its controlled shutdown is the slowest).
for s in registry s3 kafka; do stop_service "$s"; done

if [[ $purge == yes ]]; then
  # The whole registry folder: the registry may keep temp/backup files beside schemas.json.
  rm -rf "$KAFKA_DATA" "$CLUSTER_ID_FILE" "$KAFKA_CONFIG" "$S3_DATA" "$REGISTRY_DIR"
  echo "purged data under $ECHO_DATA_DIR (kept $JARS_DIR)"
fi
