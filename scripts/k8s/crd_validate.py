"""Validates the custom resources of rendered manifests (YAML documents on stdin) against their
CustomResourceDefinitions (the folder of scripts/k8s/crds.sh, first argument), as the API
server would: the version must be served by the CRD, the object must match the version's
OpenAPI v3 schema with unknown fields refused (what `kubectl apply --validate=strict` does with
a structural schema), and every CEL rule of the schema (`x-kubernetes-validations`) must hold.
A custom resource whose CRD is not in the folder is an error too: nothing is waved through.
Then what the CRDs cannot say: a KEDA Kafka trigger scales a processor on its own consumer
group and topic, never past that topic's partitions (its KafkaTopic), with lag of stuck
partitions excluded, and the StatefulSet leaves `replicas` to the autoscaler; every pod signs
in to Kafka as its own KafkaUser.
Prints one line per violation and exits 1 if there is any."""

import pathlib
import sys

import celpy
import jsonschema
import yaml

# Kinds the Kubernetes schemas (kubernetes-validate) already cover.
BUILTIN_GROUPS = {"", "apps", "batch", "policy", "networking.k8s.io", "autoscaling", "rbac.authorization.k8s.io"}


def json_schema(node):
    """A Kubernetes structural schema as JSON Schema: objects with declared properties refuse
    unknown ones unless the schema preserves them; int-or-string and nullable widen the type."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: json_schema(s) for name, s in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = json_schema(value)
        elif key in ("oneOf", "anyOf", "allOf"):
            out[key] = [json_schema(s) for s in value]
        elif key in ("type", "required", "enum", "minimum", "maximum", "exclusiveMinimum",
                     "exclusiveMaximum", "pattern", "minItems", "maxItems", "minLength",
                     "maxLength", "minProperties", "maxProperties", "uniqueItems", "multipleOf"):
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        out["type"] = (out["type"] if isinstance(out["type"], list) else [out["type"]]) + ["null"]
    preserves = node.get("x-kubernetes-preserve-unknown-fields")
    if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node and not preserves:
        out["additionalProperties"] = False
    return out


def cel_problems(value, schema, path, env):
    """Every CEL rule of `schema` and the schemas below it that `value` breaks."""
    if not isinstance(schema, dict):
        return []
    problems = []
    for rule in schema.get("x-kubernetes-validations") or []:
        program = env.program(env.compile(rule["rule"]))
        result = program.evaluate({"self": celpy.json_to_cel(value)})
        # An evaluation error comes back as a value, not an exception: it fails the rule too.
        if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            problems.append(f"{path}: {rule.get('message') or rule['rule']} ({result!r})")
    if isinstance(value, dict):
        for name, child in value.items():
            sub = (schema.get("properties") or {}).get(name)
            if sub is None and isinstance(schema.get("additionalProperties"), dict):
                sub = schema["additionalProperties"]
            problems += cel_problems(child, sub, f"{path}.{name}", env)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, child in enumerate(value):
            problems += cel_problems(child, schema["items"], f"{path}[{i}]", env)
    return problems


def load_crds(folder):
    """`(group, kind)` -> `{version: schema}` of the served versions of every CRD in `folder`."""
    crds = {}
    for path in sorted(pathlib.Path(folder).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            crds[(spec["group"], spec["names"]["kind"])] = {
                v["name"]: v["schema"]["openAPIV3Schema"] for v in spec["versions"] if v.get("served")
            }
    return crds


def scaling_problems(docs):
    """What is wrong with how the ScaledObjects scale their processors."""
    topics = {d["spec"]["topicName"]: d for d in docs if d["kind"] == "KafkaTopic"}
    sets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StatefulSet"}
    problems = []
    for scaled in (d for d in docs if d["kind"] == "ScaledObject"):
        where = f"ScaledObject/{scaled['metadata']['name']}"
        target = sets.get(scaled["spec"]["scaleTargetRef"]["name"])
        if target is None:
            problems.append(f"{where}: its target is not a StatefulSet of the manifests")
            continue
        if "replicas" in target["spec"]:
            problems.append(f"{where}: StatefulSet/{target['metadata']['name']} sets replicas, which the autoscaler owns")
        args = target["spec"]["template"]["spec"]["containers"][0].get("args") or []
        group = f"echo.{args[1]}" if args[:1] == ["run"] else None
        for trigger in scaled["spec"]["triggers"]:
            meta = trigger.get("metadata") or {}
            if trigger["type"] != "kafka":
                continue
            if meta.get("consumerGroup") != group:
                problems.append(f"{where}: consumerGroup {meta.get('consumerGroup')} is not the target's group {group}")
            topic = topics.get(meta.get("topic"))
            if topic is None:
                problems.append(f"{where}: topic {meta.get('topic')} has no KafkaTopic")
            elif scaled["spec"].get("maxReplicaCount", 100) > topic["spec"]["partitions"]:
                problems.append(f"{where}: maxReplicaCount {scaled['spec'].get('maxReplicaCount', 100)} is above the {topic['spec']['partitions']} partitions of {meta['topic']}")
            if meta.get("allowIdleConsumers", "false") != "false":
                problems.append(f"{where}: allowIdleConsumers would scale past the partitions")
            if meta.get("excludePersistentLag") != "true":
                problems.append(f"{where}: excludePersistentLag is not true")
    return problems


def identity_problems(docs):
    """What is wrong with how echo's pods sign in to Kafka: every processor as its own user
    (`echo-<processor>`), the Job as `echo-bootstrap`, each with its user's own Secret, and
    every user one that a KafkaUser creates."""
    users = {d["metadata"]["name"] for d in docs if d["kind"] == "KafkaUser"}
    problems = []
    for workload in (d for d in docs if d["kind"] in ("StatefulSet", "Job")):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        container = workload["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container.get("env") or []}
        args = container.get("args") or []
        expected = f"echo-{args[1]}" if args[:1] == ["run"] else "echo-bootstrap"
        username = (env.get("ECHO_KAFKA__SASL__USERNAME") or {}).get("value")
        secret = (((env.get("ECHO_KAFKA__SASL__PASSWORD") or {}).get("valueFrom") or {}).get("secretKeyRef") or {})
        if username != expected:
            problems.append(f"{where}: signs in to Kafka as {username}, not {expected}")
        elif username not in users:
            problems.append(f"{where}: no KafkaUser {username}")
        if secret.get("name") != username or secret.get("key") != "password":
            problems.append(f"{where}: its Kafka password is not the password of Secret {username}")
    return problems


def main():
    crds = load_crds(sys.argv[1])
    env = celpy.Environment()
    docs = [doc for doc in yaml.safe_load_all(sys.stdin) if doc]
    problems, checked = scaling_problems(docs) + identity_problems(docs), 0
    for doc in docs:
        group, _, version = doc["apiVersion"].rpartition("/")
        if group in BUILTIN_GROUPS or group.endswith(".k8s.io"):
            continue
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        versions = crds.get((group, doc["kind"]))
        if versions is None:
            problems.append(f"{where}: no CRD for {group} {doc['kind']}")
            continue
        if version not in versions:
            problems.append(f"{where}: {doc['apiVersion']} is not served (served: {', '.join(versions)})")
            continue
        schema = versions[version]
        # The API server checks metadata itself; the CRD's schema says only `type: object`.
        body = {k: v for k, v in doc.items() if k != "metadata"}
        body_schema = json_schema(schema)
        body_schema.setdefault("properties", {})["metadata"] = {"type": "object"}
        for error in jsonschema.Draft7Validator(body_schema).iter_errors(dict(body, metadata={})):
            location = ".".join(str(p) for p in error.absolute_path) or "(root)"
            problems.append(f"{where}: {location}: {error.message}")
        problems += cel_problems(body, schema, where, env)
        checked += 1
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{checked} custom resources match their CRDs")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
