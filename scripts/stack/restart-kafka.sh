#!/usr/bin/env bash
# Stops only the Kafka broker and starts it again on the same data, waiting until it serves
# requests (for chaos tests). Other services are left alone. No install step: fast.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

take_lock
stop_service kafka
start_service kafka
pid="$(wait_service kafka)"
echo "kafka up on $(service_endpoint kafka) (pid $pid)"
