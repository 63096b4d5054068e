#!/usr/bin/env bash
# Fetches the CustomResourceDefinitions of the CRD-based objects in k8s/ from their publishers'
# artifacts, so scripts/k8s/check.sh validates those objects against the schemas a cluster
# would: KEDA's ScaledObject and TriggerAuthentication from KEDA's Go module (its
# config/crd/bases, checksum-verified by the Go module proxy's sum database), the Prometheus
# Operator's PrometheusRule from its Go module (example/prometheus-operator-crd), Strimzi's
# KafkaTopic and KafkaUser generated from Strimzi's API model on Maven Central by Strimzi's
# own CRD generator, with the arguments of Strimzi's build (the output is byte for byte the
# CRDs of its release). Prints the folder holding them. Idempotent: fetches only when a
# version changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

keda_version=v2.21.0
prometheus_operator_version=v0.94.0
pom="$here/crds.pom.xml"
out="${ECHO_DATA_DIR:-$HOME/.local/share/echo}/tools/crds"
stamp="$keda_version $prometheus_operator_version $(sha256sum "$pom" | cut -d' ' -f1)"
if [[ "$(cat "$out/.stamp" 2>/dev/null || true)" == "$stamp" ]]; then
  echo "$out"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/crds"

# KEDA: the module's source tree, as the Go command verifies it.
keda="$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "github.com/kedacore/keda/v2@$keda_version" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["Error"]) if "Error" in d else print(d["Dir"])')"
cp "$keda/config/crd/bases/keda.sh_scaledobjects.yaml" "$keda/config/crd/bases/keda.sh_triggerauthentications.yaml" "$tmp/crds/"

# The Prometheus Operator's PrometheusRule (the alert rules), from its Go module the same way.
operator="$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "github.com/prometheus-operator/prometheus-operator@$prometheus_operator_version" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["Error"]) if "Error" in d else print(d["Dir"])')"
cp "$operator/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" "$tmp/crds/"

# Strimzi's generator is built for Java 21 or newer; the machine's default Java may be older.
java=java
if ! java -version 2>&1 | grep -Eq 'version "(2[1-9]|[3-9][0-9])'; then
  java="$(for j in "${JAVA21_HOME:-/nonexistent}" /usr/lib/jvm/*; do
    [[ -x "$j/bin/java" ]] && "$j/bin/java" -version 2>&1 | grep -Eq 'version "(2[1-9]|[3-9][0-9])' && echo "$j/bin/java" && break
  done || true)"
  [[ -n "$java" ]] || { echo "k8s: Strimzi's CRD generator needs Java 21 or newer (set JAVA21_HOME)" >&2; exit 1; }
fi
if ! mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$tmp/jars" \
  -DincludeScope=runtime >"$tmp/mvn.log" 2>&1; then
  cat "$tmp/mvn.log" >&2
  echo "k8s: maven could not resolve Strimzi's API model and CRD generator" >&2
  exit 1
fi
"$java" -cp "$tmp/jars/*" io.strimzi.crdgenerator.CrdGenerator \
  --label app:strimzi --label strimzi.io/crd-install:true --target-kube 1.16+ \
  --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml \
  "io.strimzi.api.kafka.model.topic.KafkaTopic=$tmp/crds/kafka.strimzi.io_kafkatopics.yaml" \
  "io.strimzi.api.kafka.model.user.KafkaUser=$tmp/crds/kafka.strimzi.io_kafkausers.yaml" >"$tmp/gen.log" 2>&1 ||
  { cat "$tmp/gen.log" >&2; exit 1; }

echo "$stamp" >"$tmp/crds/.stamp"
rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$tmp/crds" "$out"
echo "$out"
