# shellcheck shell=bash
# Shared settings and helpers for the scripts in scripts/stack/. Sourced, never run.
# Everything the local stack owns lives under ECHO_DATA_DIR so that one `rm -rf` (or
# `down.sh --purge`) resets it, and nothing here depends on where the repo is checked out.

STACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$STACK_DIR/../.." && pwd)"

: "${ECHO_DATA_DIR:=$HOME/.local/share/echo}"
: "${ECHO_KAFKA_PORT:=9092}"
: "${ECHO_KAFKA_CONTROLLER_PORT:=9093}"
# A second client listener that signs clients in (SASL SCRAM-SHA-512) and holds them to their
# ACLs, as a production cluster does; 9092 stays open to everything (its principal,
# ANONYMOUS, is a super user), which the tools and most tests use.
: "${ECHO_KAFKA_SASL_PORT:=9192}"
# Brokers of the local Kafka cluster (see "Kafka nodes" below); empty = what the data dir
# was formatted for, else 1.
: "${ECHO_KAFKA_BROKERS:=}"
: "${ECHO_REGISTRY_PORT:=8081}"
: "${ECHO_S3_PORT:=9000}"
# Observability (`echoctl dev up --observability`): Jaeger takes OTLP/HTTP on its OTLP port
# and answers queries (API and UI) on its query port; Prometheus scrapes the processors'
# metrics endpoint (`endpoints.listen` of `echoctl run`, 9464 by default).
: "${ECHO_JAEGER_OTLP_PORT:=4318}"
: "${ECHO_JAEGER_QUERY_PORT:=16686}"
: "${ECHO_JAEGER_QUERY_GRPC_PORT:=16685}"
: "${ECHO_JAEGER_HEALTH_PORT:=13133}"
: "${ECHO_PROMETHEUS_PORT:=9090}"
: "${ECHO_METRICS_TARGETS:=127.0.0.1:9464}"
# The S3 server (crates/echo-dev-s3); it takes both keys from the environment.
: "${ECHO_S3_BIN:=$REPO_ROOT/target/debug/echo-dev-s3}"
export ECHO_S3_BIN
: "${ECHO_S3_ACCESS_KEY:=echo-dev-access}"
: "${ECHO_S3_SECRET_KEY:=echo-dev-secret-key-000000000000}"
: "${ECHO_REGISTRY_BIN:=$REPO_ROOT/target/debug/echo-schema-registry}"
# The registry's writer (`echoctl schemas register` signs in as it; reads need nothing).
: "${ECHO_REGISTRY_USERNAME:=echo-dev}"
: "${ECHO_REGISTRY_PASSWORD:=echo-dev-registry-password}"
# Seconds to wait for a service to become ready (Kafka's first start formats and creates
# nothing, but a cold JVM on a busy 2-core machine can take a while).
: "${ECHO_STACK_TIMEOUT:=120}"
# Test runs create thousands of partitions (every test has its own topics, deleted by the
# next run); 512 MB ran out of heap with a few parallel test processes.
: "${ECHO_KAFKA_HEAP:=-Xmx1g}"
export ECHO_DATA_DIR ECHO_KAFKA_PORT ECHO_KAFKA_CONTROLLER_PORT ECHO_KAFKA_SASL_PORT ECHO_REGISTRY_PORT ECHO_S3_PORT \
  ECHO_S3_ACCESS_KEY ECHO_S3_SECRET_KEY ECHO_REGISTRY_BIN ECHO_STACK_TIMEOUT ECHO_KAFKA_HEAP
export ECHO_REGISTRY_USERNAME ECHO_REGISTRY_PASSWORD
export ECHO_JAEGER_OTLP_PORT ECHO_JAEGER_QUERY_PORT ECHO_JAEGER_QUERY_GRPC_PORT \
  ECHO_JAEGER_HEALTH_PORT ECHO_PROMETHEUS_PORT ECHO_METRICS_TARGETS

# A relative ECHO_REGISTRY_BIN given by the caller means relative to where they stand.
case "$ECHO_REGISTRY_BIN" in /*) ;; *) ECHO_REGISTRY_BIN="$PWD/$ECHO_REGISTRY_BIN" ;; esac

# Only loopback: this stack has no auth on Kafka, and the registry's reads are open.
HOST=127.0.0.1

KAFKA_DIR="$ECHO_DATA_DIR/kafka"
JARS_DIR="$KAFKA_DIR/jars"
CLUSTER_ID_FILE="$KAFKA_DIR/cluster-id"
# How many nodes the cluster under KAFKA_DIR was formatted for (absent for a single broker).
BROKERS_FILE="$KAFKA_DIR/brokers"
# What clients of a multi-broker cluster need (bootstrap list, replication settings), as
# ECHO_* assignments; written by up.sh.
CLIENTS_ENV="$KAFKA_DIR/clients.env"
S3_DATA="$ECHO_DATA_DIR/s3/data"
REGISTRY_DIR="$ECHO_DATA_DIR/registry"
REGISTRY_FILE="$REGISTRY_DIR/schemas.json"
# Jaeger, Prometheus and promtool, built from their Go modules (install-observability.sh),
# pinned.
JAEGER_VERSION=v1.75.0
PROMETHEUS_VERSION=v0.316.0
OBSERVABILITY_DIR="$ECHO_DATA_DIR/observability"
JAEGER_BIN="$OBSERVABILITY_DIR/jaeger-$JAEGER_VERSION/jaeger"
PROMETHEUS_BIN="$OBSERVABILITY_DIR/prometheus-$PROMETHEUS_VERSION/prometheus"
PROMTOOL_BIN="$OBSERVABILITY_DIR/prometheus-$PROMETHEUS_VERSION/promtool"
PROMETHEUS_DATA="$OBSERVABILITY_DIR/prometheus-data"
RUN_DIR="$ECHO_DATA_DIR/run"
LOG_DIR="$ECHO_DATA_DIR/logs"

# ---- Kafka nodes ------------------------------------------------------------------------------
# One broker (the default): service `kafka`, node 1, ports ECHO_KAFKA_PORT and
# ECHO_KAFKA_CONTROLLER_PORT, storage in $KAFKA_DIR/data.
# N brokers (ECHO_KAFKA_BROKERS=N, `echoctl dev up --brokers N`): services kafka-1…kafka-N,
# every one a combined broker+controller in a static quorum of all N; node i listens on
# ECHO_KAFKA_PORT + 2(i-1) and ECHO_KAFKA_CONTROLLER_PORT + 2(i-1) (9092/9093, 9094/9095,
# 9096/9097 by default) with its storage and config in $KAFKA_DIR/node<i>/.
# A cluster's storage is formatted for its quorum, so the count belongs to the data dir: it
# is recorded in BROKERS_FILE, and down/status/restart read it back.
recorded_brokers() {
  if [[ -s "$BROKERS_FILE" ]]; then
    cat "$BROKERS_FILE"
  elif [[ -f "$KAFKA_DIR/data/meta.properties" ]]; then
    echo 1
  fi
}
if [[ -z "$ECHO_KAFKA_BROKERS" ]]; then
  ECHO_KAFKA_BROKERS="$(recorded_brokers)"
  : "${ECHO_KAFKA_BROKERS:=1}"
fi
[[ "$ECHO_KAFKA_BROKERS" =~ ^[1-9]$ ]] || {
  printf 'error: ECHO_KAFKA_BROKERS must be 1 to 9, not %s\n' "$ECHO_KAFKA_BROKERS" >&2
  exit 1
}
export ECHO_KAFKA_BROKERS

if ((ECHO_KAFKA_BROKERS == 1)); then
  KAFKA_NODES=(kafka)
else
  KAFKA_NODES=()
  for ((i = 1; i <= ECHO_KAFKA_BROKERS; i++)); do KAFKA_NODES+=("kafka-$i"); done
fi
# Replicas of every topic: 3 once there are three brokers; a write needs all but one of them.
KAFKA_REPLICATION=$((ECHO_KAFKA_BROKERS < 3 ? ECHO_KAFKA_BROKERS : 3))
KAFKA_MIN_ISR=$((KAFKA_REPLICATION > 1 ? KAFKA_REPLICATION - 1 : 1))

# shellcheck disable=SC2034 # used by the scripts that source this file
SERVICES=("${KAFKA_NODES[@]}" registry s3)
# Started only when asked for (`up.sh jaeger prometheus`); stopped by down.sh like the rest.
OPTIONAL_SERVICES=(jaeger prometheus)

is_kafka() { [[ "$1" == kafka || "$1" == kafka-[1-9] ]]; }
# Node id of a Kafka service: `kafka` is node 1, `kafka-<i>` node i.
kafka_node() { if [[ "$1" == kafka ]]; then echo 1; else echo "${1#kafka-}"; fi; }
# The service name of node i.
kafka_service() { if ((ECHO_KAFKA_BROKERS == 1)); then echo kafka; else echo "kafka-$1"; fi; }
kafka_port() { echo $((ECHO_KAFKA_PORT + 2 * ($(kafka_node "$1") - 1))); }
kafka_controller_port() { echo $((ECHO_KAFKA_CONTROLLER_PORT + 2 * ($(kafka_node "$1") - 1))); }
kafka_sasl_port() { echo $((ECHO_KAFKA_SASL_PORT + 2 * ($(kafka_node "$1") - 1))); }
kafka_node_dir() { if [[ "$1" == kafka ]]; then echo "$KAFKA_DIR"; else echo "$KAFKA_DIR/node$(kafka_node "$1")"; fi; }
kafka_data() { echo "$(kafka_node_dir "$1")/data"; }
kafka_config() { echo "$(kafka_node_dir "$1")/server.properties"; }
# Every node's client address, comma-separated: what clients bootstrap from.
kafka_bootstrap() {
  local n out=""
  for n in "${KAFKA_NODES[@]}"; do out+="${out:+,}$HOST:$(kafka_port "$n")"; done
  echo "$out"
}

# Refuses to run a data dir's cluster with another number of nodes than it was formatted for.
check_broker_count() {
  local have
  have="$(recorded_brokers)"
  if [[ -n "$have" && "$have" != "$ECHO_KAFKA_BROKERS" ]]; then
    die "$KAFKA_DIR holds a $have-broker cluster, not $ECHO_KAFKA_BROKERS: stop it and purge it first ('echoctl dev down --purge'), or use another ECHO_DATA_DIR"
  fi
}

# Records what clients of a multi-broker cluster need; a single broker needs nothing beyond
# echo's defaults, so it has no such file.
write_clients_env() {
  if ((ECHO_KAFKA_BROKERS == 1)); then
    rm -f "$CLIENTS_ENV"
    return
  fi
  cat >"$CLIENTS_ENV" <<ENV
# Generated by scripts/stack/up.sh: what echo's clients and processors need to use this
# $ECHO_KAFKA_BROKERS-broker cluster. Load with: set -a; . $CLIENTS_ENV; set +a
ECHO_KAFKA__BOOTSTRAP_SERVERS=$(kafka_bootstrap)
ECHO_KAFKA__REPLICATION_FACTOR=$KAFKA_REPLICATION
ECHO_KAFKA__MIN_INSYNC_REPLICAS=$KAFKA_MIN_ISR
ENV
}

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

service_port() {
  case "$1" in
    kafka | kafka-[1-9]) kafka_port "$1" ;;
    registry) echo "$ECHO_REGISTRY_PORT" ;;
    s3) echo "$ECHO_S3_PORT" ;;
    jaeger) echo "$ECHO_JAEGER_QUERY_PORT" ;;
    prometheus) echo "$ECHO_PROMETHEUS_PORT" ;;
  esac
}

service_endpoint() {
  case "$1" in
    kafka | kafka-[1-9]) echo "$HOST:$(kafka_port "$1")" ;;
    *) echo "http://$HOST:$(service_port "$1")" ;;
  esac
}

# A word that must appear in the process's command line: a pid file left over from a
# previous boot can point at an unrelated process that reused the pid. A Kafka node is told
# apart from the others by its config file.
service_marker() {
  case "$1" in
    kafka | kafka-[1-9]) kafka_config "$1" ;;
    registry) basename "$ECHO_REGISTRY_BIN" ;;
    s3) basename "$ECHO_S3_BIN" ;;
    jaeger) echo "$JAEGER_BIN" ;;
    prometheus) echo "$PROMETHEUS_BIN" ;;
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

# stop_service NAME...: TERM, up to 20 s for a clean exit (Kafka's controlled shutdown), then
# KILL. Several names are stopped together: the nodes of a Kafka cluster stopped one by one
# would leave the last ones without a controller quorum to shut down cleanly with.
stop_service() {
  local name pid i alive
  local -A pids=()
  for name in "$@"; do
    if pid="$(service_pid "$name")"; then
      pids[$name]="$pid"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < 200; i++)); do
    alive=no
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=yes; done
    [[ $alive == no ]] && break
    sleep 0.1
  done
  for name in "$@"; do
    if [[ -n "${pids[$name]:-}" ]]; then
      pid="${pids[$name]}"
      if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) did not stop in 20 s: killing"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid"
      fi
      echo "$name stopped (pid $pid)"
    else
      echo "$name not running"
    fi
    rm -f "$(pid_file "$name")"
  done
}

# wait_gone PID: waits up to 5 s for the process to be gone.
wait_gone() {
  local i
  for ((i = 0; i < 50; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
}

# kill_service NAME: SIGKILL, as a machine failure would (no controlled shutdown), and waits
# until the process is gone.
kill_service() {
  local name="$1" pid
  if pid="$(service_pid "$name")"; then
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid"
    echo "$name killed (pid $pid)"
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

# write_kafka_config NODE
write_kafka_config() {
  local name="$1" node data config voters="" n
  node="$(kafka_node "$name")"
  data="$(kafka_data "$name")"
  config="$(kafka_config "$name")"
  for n in "${KAFKA_NODES[@]}"; do
    voters+="${voters:+,}$(kafka_node "$n")@$HOST:$(kafka_controller_port "$n")"
  done
  mkdir -p "$data"
  # Regenerated on every start so port changes in the environment take effect.
  cat >"$config" <<PROPS
# Generated by scripts/stack (lib.sh); edits are overwritten on the next start.
# KRaft, $ECHO_KAFKA_BROKERS node(s): every process is both broker and controller.
process.roles=broker,controller
node.id=$node
# Static quorum (kraft.version 0): storage is formatted WITHOUT --standalone.
controller.quorum.voters=$voters
listeners=PLAINTEXT://$HOST:$(kafka_port "$name"),CONTROLLER://$HOST:$(kafka_controller_port "$name"),SASL_PLAINTEXT://$HOST:$(kafka_sasl_port "$name")
advertised.listeners=PLAINTEXT://$HOST:$(kafka_port "$name"),SASL_PLAINTEXT://$HOST:$(kafka_sasl_port "$name")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
log.dirs=$data

# The SASL listener: SCRAM users (created with kafka-configs) held to their ACLs, the way a
# Strimzi cluster holds echo's KafkaUsers (k8s/base/kafka.yaml). The other listeners sign no
# one in: their principal, ANONYMOUS, is a super user.
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
allow.everyone.if.no.acl.found=false

# Topics are created explicitly from topics/; a typo must fail, not create a topic.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=$KAFKA_REPLICATION
min.insync.replicas=$KAFKA_MIN_ISR

# Internal topics have as many replicas as echo's (one on a single broker, which cannot
# have more). Few partitions so that the first consumer group / transaction does not wait
# for 50 partitions to be created.
offsets.topic.replication.factor=$KAFKA_REPLICATION
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$KAFKA_REPLICATION
transaction.state.log.min.isr=$KAFKA_MIN_ISR
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=$KAFKA_REPLICATION
share.coordinator.state.topic.min.isr=$KAFKA_MIN_ISR

# Tests start consumers and expect assignment at once.
group.initial.rebalance.delay.ms=0

# The cleaner's dedupe buffer defaults to 128 MiB of heap; the JVM only has 512 MiB.
log.cleaner.dedupe.buffer.size=33554432
PROPS
}

# format_kafka_if_needed NODE: every node of a cluster is formatted with the same cluster id.
format_kafka_if_needed() {
  local name="$1" data cid
  data="$(kafka_data "$name")"
  [[ -f "$data/meta.properties" ]] && return 0
  if [[ -s "$CLUSTER_ID_FILE" ]]; then
    cid="$(<"$CLUSTER_ID_FILE")"
  else
    cid="$(kafka_tool kafka.tools.StorageTool random-uuid)"
    echo "$cid" >"$CLUSTER_ID_FILE"
  fi
  ((ECHO_KAFKA_BROKERS == 1)) || echo "$ECHO_KAFKA_BROKERS" >"$BROKERS_FILE"
  log "formatting Kafka storage in $data (cluster id $cid)"
  kafka_tool kafka.tools.StorageTool format -t "$cid" -c "$(kafka_config "$name")" >>"$(log_file "$name")" 2>&1 \
    || { show_log_tail "$name"; die "kafka storage format failed"; }
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
    kafka | kafka-[1-9])
      check_broker_count
      check_port_free "$name" "$(kafka_port "$name")"
      check_port_free "$name" "$(kafka_controller_port "$name")"
      check_port_free "$name" "$(kafka_sasl_port "$name")"
      cp="$(kafka_classpath)"
      # ECHO_KAFKA_HEAP may hold several JVM options: split on spaces on purpose.
      read -r -a heap <<<"$ECHO_KAFKA_HEAP"
      write_kafka_config "$name"
      format_kafka_if_needed "$name"
      start_daemon "$name" java "${heap[@]}" -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$STACK_DIR/log4j2.properties" \
        -cp "$cp" kafka.Kafka "$(kafka_config "$name")"
      ;;
    registry)
      check_port_free registry "$ECHO_REGISTRY_PORT"
      mkdir -p "$REGISTRY_DIR"
      # The writer's password goes in the environment, not on the command line (seen by `ps`).
      ECHO_SCHEMA_REGISTRY_USER_INFO="$ECHO_REGISTRY_USERNAME:$ECHO_REGISTRY_PASSWORD" \
        start_daemon registry "$ECHO_REGISTRY_BIN" --host "$HOST" --port "$ECHO_REGISTRY_PORT" \
        --data-file "$REGISTRY_FILE"
      ;;
    s3)
      check_port_free s3 "$ECHO_S3_PORT"
      mkdir -p "$S3_DATA"
      # The keys go through the (exported) environment: a command line is readable by every
      # user of the machine (ps, /proc/<pid>/cmdline). Both are required: never anonymous.
      start_daemon s3 "$ECHO_S3_BIN" --host "$HOST" --port "$ECHO_S3_PORT" "$S3_DATA"
      ;;
    jaeger)
      for port in "$ECHO_JAEGER_QUERY_PORT" "$ECHO_JAEGER_QUERY_GRPC_PORT" \
        "$ECHO_JAEGER_OTLP_PORT" "$ECHO_JAEGER_HEALTH_PORT"; do
        check_port_free jaeger "$port"
      done
      start_daemon jaeger "$JAEGER_BIN" --config="file:$STACK_DIR/jaeger.yaml"
      ;;
    prometheus)
      check_port_free prometheus "$ECHO_PROMETHEUS_PORT"
      mkdir -p "$PROMETHEUS_DATA"
      write_prometheus_config
      start_daemon prometheus "$PROMETHEUS_BIN" \
        --config.file="$OBSERVABILITY_DIR/prometheus.yml" \
        --storage.tsdb.path="$PROMETHEUS_DATA" \
        --web.listen-address="$HOST:$ECHO_PROMETHEUS_PORT"
      ;;
  esac
}

# Prometheus scrapes every processor process in ECHO_METRICS_TARGETS (comma-separated
# host:port) every 5 s.
write_prometheus_config() {
  local targets
  targets="$(printf '"%s", ' ${ECHO_METRICS_TARGETS//,/ })"
  cat >"$OBSERVABILITY_DIR/prometheus.yml" <<EOF_PROM
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: echo
    static_configs:
      - targets: [${targets%, }]
EOF_PROM
}

# Service-specific readiness once the port answers.
service_ready() {
  case "$1" in
    kafka | kafka-[1-9])
      # The port opens before the broker has caught up with the metadata log; a topic
      # listing proves the request path works end to end.
      timeout 60 java -Xmx256m -Dlog4j2.configurationFile="$STACK_DIR/tools-log4j2.properties" \
        -cp "$(kafka_classpath)" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "$HOST:$(kafka_port "$1")" --list >/dev/null 2>&1
      ;;
    registry) curl -sf -o /dev/null --max-time 2 "http://$HOST:$ECHO_REGISTRY_PORT/" ;;
    s3) port_open "$ECHO_S3_PORT" ;;
    jaeger) curl -sf -o /dev/null --max-time 2 "http://$HOST:$ECHO_JAEGER_HEALTH_PORT/status" ;;
    prometheus) curl -sf -o /dev/null --max-time 2 "http://$HOST:$ECHO_PROMETHEUS_PORT/-/ready" ;;
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
