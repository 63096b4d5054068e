#!/usr/bin/env bash
# Installs what the local stack and the project's builds need, reusing whatever is already
# there, so it is cheap to run every time (up.sh does). Idempotent; quiet when nothing to do.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---- apt packages -------------------------------------------------------------------------
# clang/libclang-dev/cmake: whisper-rs build; libopenblas-dev: whisper.cpp's matrix products;
# libssl-dev/pkg-config: librdkafka's TLS and SCRAM; flite/sox: test audio (espeak-ng: speech
# in other languages, for the multilingual model); java+maven: Kafka.
apt_missing=()
for pkg in clang libclang-dev cmake libopenblas-dev libssl-dev pkg-config flite espeak-ng sox libsox-fmt-all; do
  # No pipe into grep -q: with pipefail an early grep exit could read as "missing".
  st="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  [[ "$st" == "install ok installed" ]] || apt_missing+=("$pkg")
done
# Any JDK/JRE >= 17 on PATH will do; only pull one in when there is none.
command -v java >/dev/null || apt_missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || apt_missing+=(maven)

if ((${#apt_missing[@]})); then
  command -v apt-get >/dev/null || die "missing packages (${apt_missing[*]}) and no apt-get: install them by hand"
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "need root or sudo to install: ${apt_missing[*]}"
    sudo=(sudo)
  fi
  log "installing apt packages: ${apt_missing[*]}"
  # update only now: it is slow and needs the network.
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
fi

# ---- Kafka jars ---------------------------------------------------------------------------
# The stamp records the pom's checksum: a changed pom (new Kafka version) re-resolves.
pom="$STACK_DIR/kafka.pom.xml"
want="$(sha256sum "$pom" | cut -d' ' -f1)"
have="$(cat "$JARS_DIR/.pom.sha256" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
  log "resolving Kafka jars into $JARS_DIR"
  mkdir -p "$KAFKA_DIR"
  # Copy into a fresh folder then swap: the classpath is a wildcard, so stale jars of an
  # older version left beside new ones would be loaded too; and a failed download must not
  # leave a half-filled folder behind a valid stamp.
  tmp="$(mktemp -d "$KAFKA_DIR/jars.tmp.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  # Output kept for failures only (Maven 3.8 prints stray colour codes even with -q -B).
  if ! mvn -q -B -f "$pom" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp/.mvn.log" 2>&1; then
    cat "$tmp/.mvn.log" >&2
    die "maven could not resolve the Kafka jars (see above)"
  fi
  rm -f "$tmp/.mvn.log"
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "maven produced no kafka_2.13 jar in $tmp"
  echo "$want" >"$tmp/.pom.sha256"
  rm -rf "$JARS_DIR"
  mv "$tmp" "$JARS_DIR"
  trap - EXIT
  log "Kafka jars: $(find "$JARS_DIR" -name '*.jar' | wc -l) files"
fi
