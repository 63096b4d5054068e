#!/usr/bin/env bash
# Runs one of Kafka's CLI tool classes from the installed jars, e.g.
#   scripts/stack/kafka-tool.sh org.apache.kafka.tools.TopicCommand \
#     --bootstrap-server 127.0.0.1:9092 --list
# (4.x tool classes live in org.apache.kafka.tools.*; StorageTool is kafka.tools.StorageTool.)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($#)) || die "usage: kafka-tool.sh CLASS [ARGS...]"
cp="$(kafka_classpath)"
exec java -Xmx256m -Dlog4j2.configurationFile="$STACK_DIR/tools-log4j2.properties" -cp "$cp" "$@"
