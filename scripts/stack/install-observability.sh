#!/usr/bin/env bash
# Builds Jaeger, Prometheus or promtool (which checks and unit-tests the alert rules) from its
# Go module (the Go module proxy is the source), pinned to the version lib.sh names, into
# $ECHO_DATA_DIR/observability/. Reuses a binary already built. Each tool gets a module of its
# own, so their dependency versions never mix.
# Usage: install-observability.sh jaeger|prometheus|promtool; prints the binary's path.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tool="${1:-}"
case "$tool" in
  jaeger) bin="$JAEGER_BIN" pkg=github.com/jaegertracing/jaeger/cmd/jaeger version="$JAEGER_VERSION" ;;
  prometheus) bin="$PROMETHEUS_BIN" pkg=github.com/prometheus/prometheus/cmd/prometheus version="$PROMETHEUS_VERSION" ;;
  promtool) bin="$PROMTOOL_BIN" pkg=github.com/prometheus/prometheus/cmd/promtool version="$PROMETHEUS_VERSION" ;;
  *) die "usage: install-observability.sh jaeger|prometheus|promtool" ;;
esac
[[ -x "$bin" ]] && { echo "$bin"; exit 0; }
# Go's own installer puts it in /usr/local/go, which a non-login shell may not have on PATH.
command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || die "$tool is built with Go (1.26 or newer on PATH), which is missing"

dir="$(dirname "$bin")"
mkdir -p "$dir"
log "building $tool $version from the Go module proxy (a few minutes, once)"
tmp="$(mktemp -d "$dir/build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
(
  cd "$tmp"
  go mod init "echo-stack-$tool" >/dev/null 2>&1
  go get -tool "$pkg@$version" >"$tmp/build.log" 2>&1
  go build -o "$tmp/$tool" "$pkg" >>"$tmp/build.log" 2>&1
) || {
  tail -n 30 "$tmp/build.log" >&2
  die "building $tool $version failed (see above)"
}
mv "$tmp/$tool" "$bin"
log "$tool: $bin"
echo "$bin"
