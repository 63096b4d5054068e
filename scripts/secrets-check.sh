#!/usr/bin/env bash
# Checks that the local stack's S3 server gets its keys without putting them on its command
# line, which every user of the machine can read (`ps`, /proc/<pid>/cmdline), and that it still
# refuses anonymous requests and accepts signed ones. Starts a second server through
# scripts/stack/lib.sh on a data dir and port of its own and stops it afterwards; the running
# stack is not touched.
set -euo pipefail
cd "$(dirname "$0")/.."

ECHO_DATA_DIR="$(mktemp -d)"
ECHO_S3_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ECHO_S3_ACCESS_KEY="secrets-check-access"
ECHO_S3_SECRET_KEY="secrets-check-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
# The server of this checkout's build (`cargo build -p echo-dev-s3`).
target="${CARGO_TARGET_DIR:-target}"
[[ "$target" == /* ]] || target="$PWD/$target"
: "${ECHO_S3_BIN:=$target/debug/echo-dev-s3}"
export ECHO_DATA_DIR ECHO_S3_PORT ECHO_S3_ACCESS_KEY ECHO_S3_SECRET_KEY ECHO_S3_BIN
source scripts/stack/lib.sh
trap 'stop_service s3 >/dev/null; rm -rf "$ECHO_DATA_DIR"' EXIT

[[ -x "$ECHO_S3_BIN" ]] || die "$ECHO_S3_BIN not found: run 'cargo build -p echo-dev-s3'"
start_service s3
pid="$(wait_service s3)" || die "the S3 server did not start"

failed=0
# The pattern from a file, so that not even grep has the key on its command line.
if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qFf <(printf '%s\n' "$ECHO_S3_SECRET_KEY"); then
  log "secrets: the S3 secret key is on the server's command line: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
  failed=1
fi
url="http://$HOST:$ECHO_S3_PORT/"
anonymous="$(curl -s -o /dev/null -w '%{http_code}' "$url")"
if [[ "$anonymous" != 403 ]]; then
  log "secrets: an anonymous request got HTTP $anonymous, not 403"
  failed=1
fi
# The credentials reach curl through its config on stdin, not its command line; S3 wants the
# payload's hash (here of the empty body) in a signed header.
empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
signed="$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
  -H "x-amz-content-sha256: $empty_sha256" -K - "$url" \
  <<<"user = \"$ECHO_S3_ACCESS_KEY:$ECHO_S3_SECRET_KEY\"")"
if [[ "$signed" != 200 ]]; then
  log "secrets: a signed request got HTTP $signed, not 200"
  failed=1
fi
((failed == 0)) && echo "secrets: the S3 server's keys are not on its command line; it refuses anonymous requests"
exit "$failed"
