#!/usr/bin/env bash
# Starts the local stack (Kafka KRaft broker, schema registry, S3) on 127.0.0.1, each only if
# it is not already running, and waits until each answers. Safe to run repeatedly.
# Usage: up.sh [SERVICE...]   (default: kafka registry s3; also jaeger, prometheus)
# With ECHO_KAFKA_BROKERS=N (N > 1) `kafka` means the N nodes kafka-1…kafka-N (see lib.sh),
# and the settings their clients need are written to $ECHO_DATA_DIR/kafka/clients.env.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

asked=("$@")
((${#asked[@]})) || asked=(kafka registry s3)
wanted=()
for s in "${asked[@]}"; do
  case "$s" in
    kafka) wanted+=("${KAFKA_NODES[@]}") ;;
    registry | s3 | jaeger | prometheus) wanted+=("$s") ;;
    *)
      for n in "${KAFKA_NODES[@]}"; do [[ "$s" == "$n" ]] && { wanted+=("$s"); continue 2; }; done
      die "unknown service '$s' (${SERVICES[*]})"
      ;;
  esac
done

take_lock
check_broker_count
"$STACK_DIR/install.sh"
for s in "${wanted[@]}"; do
  case "$s" in jaeger | prometheus) "$STACK_DIR/install-observability.sh" "$s" >/dev/null ;; esac
done

# Decide everything before starting anything, so a missing registry binary does not leave
# a half-started stack behind.
to_start=()
for s in "${wanted[@]}"; do
  if pid="$(service_pid "$s")"; then
    : # ours and alive: at most still starting; waited for below, never started twice
  else
    rm -f "$(pid_file "$s")"
    to_start+=("$s")
  fi
done
for s in "${to_start[@]}"; do
  if [[ "$s" == registry && ! -x "$ECHO_REGISTRY_BIN" ]]; then
    die "schema registry binary not found at $ECHO_REGISTRY_BIN: run 'cargo build -p echo-schema-registry' (or set ECHO_REGISTRY_BIN)"
  fi
  if [[ "$s" == s3 && ! -x "$ECHO_S3_BIN" ]]; then
    die "S3 server binary not found at $ECHO_S3_BIN: run 'cargo build -p echo-dev-s3' (or set ECHO_S3_BIN)"
  fi
done

# Start all first, then wait: the JVM's start-up overlaps with the others'.
for s in "${to_start[@]}"; do start_service "$s"; done

failed=0
for s in "${wanted[@]}"; do
  started=no
  for t in "${to_start[@]}"; do [[ "$t" == "$s" ]] && started=yes; done
  if [[ $started == no ]] && pid="$(service_pid "$s")" && port_open "$(service_port "$s")"; then
    echo "$s already running on $(service_endpoint "$s") (pid $pid)"
  elif pid="$(wait_service "$s")"; then
    if [[ $started == yes ]]; then
      echo "$s up on $(service_endpoint "$s") (pid $pid)"
    else
      echo "$s already running on $(service_endpoint "$s") (pid $pid)"
    fi
  else
    failed=1
  fi
done
if ((ECHO_KAFKA_BROKERS > 1 && !failed)); then
  write_clients_env
  echo "kafka cluster: $ECHO_KAFKA_BROKERS brokers, bootstrap $(kafka_bootstrap), replication factor $KAFKA_REPLICATION, min.insync.replicas $KAFKA_MIN_ISR (client settings in $CLIENTS_ENV)"
fi
exit "$failed"
