#!/usr/bin/env bash
# One line per service: running/stopped, pid, endpoint. Exit 0 if all run, else 3.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rc=0
# The optional services are listed only when started once (they have a pid file).
shown=("${SERVICES[@]}")
for s in "${OPTIONAL_SERVICES[@]}"; do [[ -f "$(pid_file "$s")" ]] && shown+=("$s"); done
for s in "${shown[@]}"; do
  ep="$(service_endpoint "$s")"
  if pid="$(service_pid "$s")"; then
    if port_open "$(service_port "$s")"; then
      printf '%-8s running  pid %-7s %s\n' "$s" "$pid" "$ep"
    else
      printf '%-8s starting pid %-7s %s (port not answering yet)\n' "$s" "$pid" "$ep"
      rc=3
    fi
  else
    note=""
    port_open "$(service_port "$s")" && note=" (port in use by another process)"
    printf '%-8s stopped  pid %-7s %s%s\n' "$s" "-" "$ep" "$note"
    rc=3
  fi
done
exit "$rc"
