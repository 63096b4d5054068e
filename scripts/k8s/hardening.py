"""Checks the hardening of rendered manifests (YAML documents on stdin, `kubectl kustomize`
output): every pod runs under the runtime's default seccomp profile without a service account
token; every container, init containers included, runs as non-root with no privilege
escalation, no capabilities and a read-only root filesystem; every emptyDir has a size limit;
every workload is selected by a NetworkPolicy that restricts both directions and admits no
ingress but to the metrics port, from named peers. Prints one line per violation and exits 1 if
there is any."""

import sys

import yaml

WORKLOADS = {"StatefulSet", "Deployment", "DaemonSet", "ReplicaSet", "Job"}


def pod_template(doc):
    """The pod template of a workload, or None for anything else."""
    if doc.get("kind") in WORKLOADS:
        return doc["spec"]["template"]
    if doc.get("kind") == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    return None


def selects(selector, labels):
    """Whether a label selector (matchLabels and matchExpressions) matches labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pod_problems(spec):
    """What is missing from one pod spec's own settings."""
    problems = []
    pod_security = spec.get("securityContext") or {}
    if (pod_security.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append("seccompProfile is not RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken is not false")
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        security = container.get("securityContext") or {}
        where = f"container {container['name']}"
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{where}: capabilities do not drop ALL")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem is not true")
        if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
    for volume in spec.get("volumes", []):
        if "emptyDir" in volume and not (volume["emptyDir"] or {}).get("sizeLimit"):
            problems.append(f"emptyDir {volume['name']} has no sizeLimit")
    return problems


def network_problems(namespace, labels, policies):
    """What is wrong with the NetworkPolicies that select a pod with these labels."""
    selecting = [
        p
        for p in policies
        if p["metadata"].get("namespace") == namespace
        and selects(p["spec"].get("podSelector") or {}, labels)
    ]
    if not any({"Ingress", "Egress"} <= set(p["spec"].get("policyTypes") or []) for p in selecting):
        return ["no NetworkPolicy with policyTypes [Ingress, Egress] selects it"]
    # Policies add up: one open ingress rule anywhere would open the pod.
    return [
        f"NetworkPolicy {p['metadata']['name']} admits ingress beyond the metrics port"
        for p in selecting
        for rule in p["spec"].get("ingress") or []
        if not metrics_only(rule)
    ]


METRICS_PORT = 9464


def metrics_only(rule):
    """An ingress rule that admits only TCP to the metrics port, and only from named peers."""
    ports = rule.get("ports") or []
    return (
        bool(rule.get("from"))
        and bool(ports)
        and all(p.get("port") == METRICS_PORT and p.get("protocol", "TCP") == "TCP" for p in ports)
    )


def main():
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    failed = False
    for doc in docs:
        template = pod_template(doc)
        if template is None:
            continue
        namespace = doc["metadata"].get("namespace")
        labels = (template.get("metadata") or {}).get("labels") or {}
        problems = pod_problems(template["spec"]) + network_problems(namespace, labels, policies)
        for problem in problems:
            print(f"{doc['kind']}/{doc['metadata']['name']}: {problem}")
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
