# shellcheck shell=bash
# Shared settings and helpers for the scripts in scripts/stack/. Sourced, never run.
# Everything the local stack owns lives under ECHO_DATA_DIR so that one `rm -rf` (or
# `down.sh --purge`) resets it, and nothing here depends on where the repo is checked out.

STACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$STACK_DIR/../.." && pwd)"

: "${ECHO_DATA_DIR:=$HOME/.local/share/echo}"
: "${ECHO_KAFKA_PORT:=9092}"
: "${ECHO_KAFKA_CONTROLLER_PORT:=9093}"
: "${ECHO_REGISTRY_PORT:=8081}"
: "${ECHO_S3_PORT:=9000}"
: "${ECHO_S3_ACCESS_KEY:=echo-dev-access}"
: "${ECHO_S3_SECRET_KEY:=echo-dev-secret-key-000000000000}"
: "${ECHO_REGISTRY_BIN:=$REPO_ROOT/target/debug/echo-schema-registry}"
# Seconds to wait for a service to become ready (Kafka's first start formats and creates
# nothing, but a cold JVM on a busy 2-core machine can take a while).
: "${ECHO_STACK_TIMEOUT:=120}"
# Test runs create thousands of partitions (every test has its own topics, deleted by the
# next run); 512 MB ran out of heap with a few parallel test processes.
: "${ECHO_KAFKA_HEAP:=-Xmx1g}"
export ECHO_DATA_DIR ECHO_KAFKA_PORT ECHO_KAFKA_CONTROLLER_PORT ECHO_REGISTRY_PORT ECHO_S3_PORT \
  ECHO_S3_ACCESS_KEY ECHO_S3_SECRET_KEY ECHO_REGISTRY_BIN ECHO_STACK_TIMEOUT ECHO_KAFKA_HEAP

# A relative ECHO_REGISTRY_BIN given by the caller means relative to where they stand.
case "$ECHO_REGISTRY_BIN" in /*) ;; *) ECHO_REGISTRY_BIN="$PWD/$ECHO_REGISTRY_BIN" ;; esac

# Only loopback: this stack has no auth on Kafka or the registry.
HOST=127.0.0.1

KAFKA_DIR="$ECHO_DATA_DIR/kafka"
JARS_DIR="$KAFKA_DIR/jars"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_CONFIG="$KAFKA_DIR/server.properties"
CLUSTER_ID_FILE="$KAFKA_DIR/cluster-id"
S3_DATA="$ECHO_DATA_DIR/s3/data"
REGISTRY_DIR="$ECHO_DATA_DIR/registry"
REGISTRY_FILE="$REGISTRY_DIR/schemas.json"
RUN_DIR="$ECHO_DATA_DIR/run"
LOG_DIR="$ECHO_DATA_DIR/logs"

# cargo install puts s3s-fs here; a non-login shell may not have it on PATH.
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in *":$CARGO_BIN:"*) ;; *) PATH="$PATH:$CARGO_BIN" ;; esac

# shellcheck disable=SC2034 # used by the scripts that source this file
SERVICES=(kafka registry s3)

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

service_port() {
  case "$1" in
    kafka) echo "$ECHO_KAFKA_PORT" ;;
    registry) echo "$ECHO_REGISTRY_PORT" ;;
    s3) echo "$ECHO_S3_PORT" ;;
  esac
}

service_endpoint() {
  case "$1" in
    kafka) echo "$HOST:$ECHO_KAFKA_PORT" ;;
    *) echo "http://$HOST:$(service_port "$1")" ;;
  esac
}

# A word that must appear in the process's command line: a pid file left over from a
# previous boot can point at an unrelated process that reused the pid.
service_marker() {
  case "$1" in
    kafka) echo "kafka.Kafka" ;;
    registry) basename "$ECHO_REGISTRY_BIN" ;;
    s3) echo "s3s-fs" ;;
  esac
}

# Prints the recorded pid if that process is alive and is the service; else nothing, status 1.
service_pid() {
  local f pid
  f="$(pid_file "$1")"
  [[ -f "$f" ]] || return 1
  pid="$(<"$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$(service_marker "$1")" || return 1
  echo "$pid"
}

port_open() {
  # bash's /dev/tcp avoids depending on nc; timeout guards against a filtered port.
  timeout 1 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# Running = our recorded process is alive and its port answers.
service_running() {
  service_pid "$1" >/dev/null && port_open "$(service_port "$1")"
}

show_log_tail() {
  local f
  f="$(log_file "$1")"
  if [[ -f "$f" ]]; then
    log "---- last 40 lines of $f ----"
    tail -n 40 "$f" >&2
    log "----"
  fi
}

# Java classpath for Kafka and its tools; a wildcard so jar names don't matter.
kafka_classpath() {
  [[ -f "$JARS_DIR/.pom.sha256" ]] || die "Kafka jars missing in $JARS_DIR: run scripts/stack/install.sh"
  printf '%s/*' "$JARS_DIR"
}

# Serialises up/down/restart so two callers (e.g. parallel tests) don't both start a broker.
# fd 9 must not leak into the daemons (they would hold the lock for their whole life):
# start_daemon closes it.
take_lock() {
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/stack.lock"
  flock -w 300 9 || die "another stack script holds $RUN_DIR/stack.lock"
}

# start_daemon NAME CMD... : detached from this shell (own session, no stdin, no SIGHUP),
# output appended to the service log, pid recorded.
start_daemon() {
  local name="$1"; shift
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  printf '\n==== %s starting %s ====\n' "$(date -Is)" "$name" >>"$(log_file "$name")"
  # In a non-interactive shell a background job is not a process-group leader, so setsid
  # execs in place instead of forking and $! is the service's own pid.
  nohup setsid "$@" </dev/null >>"$(log_file "$name")" 2>&1 9>&- &
  echo $! >"$(pid_file "$name")"
}

# stop_service NAME: TERM, up to 20 s for a clean exit (Kafka's controlled shutdown), then KILL.
stop_service() {
  local name="$1" pid i
  if pid="$(service_pid "$name")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) did not stop in 20 s: killing"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    echo "$name stopped (pid $pid)"
  else
    echo "$name not running"
  fi
  rm -f "$(pid_file "$name")"
}

# wait_until SECONDS CMD... : polls CMD every 0.5 s; status 1 on timeout.
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# ---- Kafka / tools ----------------------------------------------------------------------------

# Runs a Kafka CLI class in the foreground, warnings on stderr only.
kafka_tool() {
  local cp
  cp="$(kafka_classpath)"
  java -Xmx256m -Dlog4j2.configurationFile="$STACK_DIR/tools-log4j2.properties" -cp "$cp" "$@"
}

write_kafka_config() {
  mkdir -p "$KAFKA_DATA"
  # Regenerated on every start so port changes in the environment take effect.
  cat >"$KAFKA_CONFIG" <<PROPS
# Generated by scripts/stack (lib.sh); edits are overwritten on the next start.
# Single-node KRaft: this process is both broker and controller.
process.roles=broker,controller
node.id=1
# Static quorum (kraft.version 0): storage is formatted WITHOUT --standalone.
controller.quorum.voters=1@$HOST:$ECHO_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$ECHO_KAFKA_PORT,CONTROLLER://$HOST:$ECHO_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$ECHO_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DATA

# Topics are created explicitly from topics/; a typo must fail, not create a topic.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1

# One broker: internal topics cannot have more than one replica. Few partitions so that
# the first consumer group / transaction does not wait for 50 partitions to be created.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Tests start consumers and expect assignment at once.
group.initial.rebalance.delay.ms=0

# The cleaner's dedupe buffer defaults to 128 MiB of heap; the JVM only has 512 MiB.
log.cleaner.dedupe.buffer.size=33554432
PROPS
}

format_kafka_if_needed() {
  [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
  local cid
  if [[ -s "$CLUSTER_ID_FILE" ]]; then
    cid="$(<"$CLUSTER_ID_FILE")"
  else
    cid="$(kafka_tool kafka.tools.StorageTool random-uuid)"
    echo "$cid" >"$CLUSTER_ID_FILE"
  fi
  log "formatting Kafka storage in $KAFKA_DATA (cluster id $cid)"
  kafka_tool kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_CONFIG" >>"$(log_file kafka)" 2>&1 \
    || { show_log_tail kafka; die "kafka storage format failed"; }
}

# ---- starting and waiting ---------------------------------------------------------------------

# Refuses to start when something else already listens on a port we need.
check_port_free() {
  local name="$1" port="$2"
  if port_open "$port"; then
    die "$name: port $port on $HOST is already in use by another process (not ours: no live pid in $(pid_file "$name"))"
  fi
}

start_service() {
  local name="$1" cp heap
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  case "$name" in
    kafka)
      check_port_free kafka "$ECHO_KAFKA_PORT"
      check_port_free kafka "$ECHO_KAFKA_CONTROLLER_PORT"
      cp="$(kafka_classpath)"
      # ECHO_KAFKA_HEAP may hold several JVM options: split on spaces on purpose.
      read -r -a heap <<<"$ECHO_KAFKA_HEAP"
      write_kafka_config
      format_kafka_if_needed
      start_daemon kafka java "${heap[@]}" -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$STACK_DIR/log4j2.properties" \
        -cp "$cp" kafka.Kafka "$KAFKA_CONFIG"
      ;;
    registry)
      check_port_free registry "$ECHO_REGISTRY_PORT"
      mkdir -p "$REGISTRY_DIR"
      start_daemon registry "$ECHO_REGISTRY_BIN" --host "$HOST" --port "$ECHO_REGISTRY_PORT" \
        --data-file "$REGISTRY_FILE"
      ;;
    s3)
      check_port_free s3 "$ECHO_S3_PORT"
      command -v s3s-fs >/dev/null || die "s3s-fs not found: run scripts/stack/install.sh"
      mkdir -p "$S3_DATA"
      # Both keys, always: without them s3s-fs serves anonymous requests.
      start_daemon s3 s3s-fs --host "$HOST" --port "$ECHO_S3_PORT" \
        --access-key "$ECHO_S3_ACCESS_KEY" --secret-key "$ECHO_S3_SECRET_KEY" "$S3_DATA"
      ;;
  esac
}

# Service-specific readiness once the port answers.
service_ready() {
  case "$1" in
    kafka)
      # The port opens before the broker has caught up with the metadata log; a topic
      # listing proves the request path works end to end.
      timeout 60 java -Xmx256m -Dlog4j2.configurationFile="$STACK_DIR/tools-log4j2.properties" \
        -cp "$(kafka_classpath)" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "$HOST:$ECHO_KAFKA_PORT" --list >/dev/null 2>&1
      ;;
    registry) curl -sf -o /dev/null --max-time 2 "http://$HOST:$ECHO_REGISTRY_PORT/" ;;
    s3) port_open "$ECHO_S3_PORT" ;;
  esac
}

# Waits until NAME is ready; fails fast if its process dies. On failure prints the log tail,
# stops what is left of it and returns 1.
wait_service() {
  local name="$1" deadline=$((SECONDS + ECHO_STACK_TIMEOUT)) pid raw
  raw="$(cat "$(pid_file "$name")" 2>/dev/null || true)"
  while :; do
    if ! pid="$(service_pid "$name")"; then
      # Right after start_daemon the pid may still be nohup/setsid, not yet exec'ed into the
      # service (so the command-line check fails): alive means keep waiting.
      if [[ -z "$raw" ]] || ! kill -0 "$raw" 2>/dev/null; then
        log "error: $name exited during startup"
        show_log_tail "$name"
        rm -f "$(pid_file "$name")"
        return 1
      fi
    elif port_open "$(service_port "$name")" && service_ready "$name"; then
      echo "$pid"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      log "error: $name not ready after ${ECHO_STACK_TIMEOUT}s"
      show_log_tail "$name"
      stop_service "$name" >&2
      # Still spawning (never matched its command line)? Kill the pid we started.
      [[ -n "$raw" ]] && kill -KILL "$raw" 2>/dev/null || true
      rm -f "$(pid_file "$name")"
      return 1
    fi
    sleep 0.5
  done
}
