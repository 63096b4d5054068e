//! The catalogue as Strimzi resources, for a Kafka cluster run by the Strimzi operator: one
//! `KafkaTopic` per topic (declared and internal, with the partitions and configs
//! `echoctl topics apply` would set), and one `KafkaUser` per processor whose ACLs allow
//! exactly what the catalogue says it reads and writes, its own consumer groups and
//! transactional ids — so a processor's credentials cannot write a topic it does not own.
//! Three more users: `echo-operator` (`echoctl status`, `trace` and `dlq`), `echo-bootstrap`
//! (`echoctl topics apply`) and `echo-autoscaler` (KEDA reading the processors' lag). Derived from topics/, never written by hand.

use serde_json::{json, Value};

use crate::topics::{
    changelog_topic, dlq_redriven_topic, dlq_topic, retry_topic, Catalogue, ProcessorSpec,
};

/// Strimzi's API version of `KafkaTopic` and `KafkaUser`.
const API_VERSION: &str = "kafka.strimzi.io/v1";

/// What the resources depend on besides the catalogue: the deployment's cluster and settings.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Name of the Strimzi `Kafka` resource (the `strimzi.io/cluster` label).
    pub cluster: String,
    /// The deployment's topic prefix (`kafka.topic_prefix`), in front of every topic, group
    /// and transactional id.
    pub topic_prefix: String,
    /// Replicas of every topic (`kafka.replication_factor`).
    pub replicas: i32,
    /// `min.insync.replicas` of every topic (`kafka.min_insync_replicas`).
    pub min_insync_replicas: i32,
}

/// Every `KafkaTopic`, then every `KafkaUser`.
pub fn resources(catalogue: &Catalogue, settings: &ClusterSettings) -> Vec<Value> {
    let mut out: Vec<Value> = catalogue
        .topics
        .iter()
        .map(|t| {
            let mut config = serde_json::Map::new();
            for (key, value) in catalogue.configs_of(t) {
                config.insert(key.into(), config_value(&value));
            }
            config.insert(
                "min.insync.replicas".into(),
                settings.min_insync_replicas.into(),
            );
            json!({
                "apiVersion": API_VERSION,
                "kind": "KafkaTopic",
                "metadata": metadata(settings, &resource_name(&settings.topic(&t.name))),
                "spec": {
                    "topicName": settings.topic(&t.name),
                    "partitions": catalogue.partitions_of(t),
                    "replicas": settings.replicas,
                    "config": config,
                },
            })
        })
        .collect();
    for p in &catalogue.processors {
        let name = settings.processor_user(&p.name);
        out.push(user(settings, &name, processor_acls(settings, p)));
    }
    let operator = settings.user("echo-operator");
    out.push(user(
        settings,
        &operator,
        operator_acls(catalogue, settings),
    ));
    let bootstrap = settings.user("echo-bootstrap");
    out.push(user(settings, &bootstrap, bootstrap_acls(settings)));
    let autoscaler = settings.user("echo-autoscaler");
    out.push(user(
        settings,
        &autoscaler,
        autoscaler_acls(catalogue, settings),
    ));
    out
}

/// The resources as one YAML stream (each document is JSON, which is YAML).
pub fn yaml_stream(catalogue: &Catalogue, settings: &ClusterSettings) -> String {
    resources(catalogue, settings)
        .iter()
        .map(|r| serde_json::to_string_pretty(r).expect("JSON values serialise"))
        .collect::<Vec<_>>()
        .join("\n---\n")
        + "\n"
}

impl ClusterSettings {
    fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    /// The principal (and `KafkaUser` name) of one of echo's users in this environment: the
    /// topic prefix keeps environments sharing a cluster apart.
    pub fn user(&self, name: &str) -> String {
        resource_name(&self.topic(name))
    }

    /// The principal processor `processor` signs in as: `echo-<processor>`.
    pub fn processor_user(&self, processor: &str) -> String {
        self.user(&format!("echo-{processor}"))
    }
}

/// The ACLs of processor `p`: read its sources, write its sinks, both on its own internal
/// topics; its consumer group (and its changelog restore's); its transactional ids, one per
/// instance (`echo.<p>.<instance>`).
fn processor_acls(settings: &ClusterSettings, p: &ProcessorSpec) -> Vec<Value> {
    let mut acls = Vec::new();
    for topic in &p.consumes {
        acls.push(acl(
            "topic",
            &settings.topic(topic),
            "literal",
            &["Read", "Describe"],
        ));
    }
    for topic in &p.produces {
        acls.push(acl(
            "topic",
            &settings.topic(topic),
            "literal",
            &["Write", "Describe"],
        ));
    }
    let changelog = settings.topic(&changelog_topic(&p.name));
    acls.push(acl(
        "topic",
        &changelog,
        "literal",
        &["Read", "Write", "Describe"],
    ));
    for tier in 1..=p.retry_backoff_ms.len() {
        let retry = settings.topic(&retry_topic(&p.name, tier));
        acls.push(acl(
            "topic",
            &retry,
            "literal",
            &["Read", "Write", "Describe"],
        ));
    }
    let dlq = settings.topic(&dlq_topic(&p.name));
    acls.push(acl("topic", &dlq, "literal", &["Write", "Describe"]));
    let group = settings.topic(&format!("echo.{}", p.name));
    acls.push(acl("group", &group, "literal", &["Read"]));
    acls.push(acl(
        "group",
        &format!("{changelog}.restore"),
        "literal",
        &["Read"],
    ));
    acls.push(acl(
        "transactionalId",
        &format!("{group}."),
        "prefix",
        &["Write", "Describe"],
    ));
    acls
}

/// The operator's ACLs: read every topic and describe every group (status, trace, DLQ
/// listing); redrive a processor's dead letters to its sources, with the markers and the
/// transactional id of the redrive.
fn operator_acls(catalogue: &Catalogue, settings: &ClusterSettings) -> Vec<Value> {
    let everything = settings.topic("echo.");
    let mut acls = vec![
        acl("topic", &everything, "prefix", &["Read", "Describe"]),
        acl("group", &everything, "prefix", &["Describe"]),
        acl("group", "echoctl-", "prefix", &["Read"]),
    ];
    for p in &catalogue.processors {
        for topic in &p.consumes {
            acls.push(acl("topic", &settings.topic(topic), "literal", &["Write"]));
        }
        let redriven = settings.topic(&dlq_redriven_topic(&p.name));
        acls.push(acl("topic", &redriven, "literal", &["Write"]));
        let redrive = settings.topic(&format!("echo.{}.dlq-redrive", p.name));
        acls.push(acl(
            "transactionalId",
            &redrive,
            "literal",
            &["Write", "Describe"],
        ));
    }
    acls
}

/// The bootstrap Job's ACLs: `echoctl topics apply` creates the topics and sets their configs.
fn bootstrap_acls(settings: &ClusterSettings) -> Vec<Value> {
    let operations = [
        "Create",
        "Alter",
        "AlterConfigs",
        "DescribeConfigs",
        "Describe",
    ];
    vec![acl(
        "topic",
        &settings.topic("echo."),
        "prefix",
        &operations,
    )]
}

/// The autoscaler's ACLs: the lag of every processor group on its sources, nothing else.
fn autoscaler_acls(catalogue: &Catalogue, settings: &ClusterSettings) -> Vec<Value> {
    let mut acls = Vec::new();
    for p in &catalogue.processors {
        let group = settings.topic(&format!("echo.{}", p.name));
        acls.push(acl("group", &group, "literal", &["Describe"]));
    }
    let mut sources: Vec<&String> = catalogue
        .processors
        .iter()
        .flat_map(|p| &p.consumes)
        .collect();
    sources.sort();
    sources.dedup();
    for topic in sources {
        acls.push(acl(
            "topic",
            &settings.topic(topic),
            "literal",
            &["Describe"],
        ));
    }
    acls
}

fn user(settings: &ClusterSettings, name: &str, acls: Vec<Value>) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "KafkaUser",
        "metadata": metadata(settings, name),
        "spec": {
            // The operator writes the password into a Secret of the user's name.
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": acls},
        },
    })
}

fn acl(kind: &str, name: &str, pattern: &str, operations: &[&str]) -> Value {
    json!({
        "resource": {"type": kind, "name": name, "patternType": pattern},
        "operations": operations,
    })
}

fn metadata(settings: &ClusterSettings, name: &str) -> Value {
    json!({"name": name, "labels": {"strimzi.io/cluster": settings.cluster}})
}

/// A Kubernetes object name for a topic or user: lowercase, with the characters a topic may
/// have and a name may not (`_`) replaced; a KafkaTopic's `spec.topicName` keeps the real name.
fn resource_name(topic: &str) -> String {
    topic.to_ascii_lowercase().replace('_', "-")
}

/// A topic config as Strimzi's examples write it: numbers as numbers.
fn config_value(value: &str) -> Value {
    value
        .parse::<i64>()
        .map_or_else(|_| value.into(), Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClusterSettings {
        ClusterSettings {
            cluster: "kafka".into(),
            topic_prefix: "prod.".into(),
            replicas: 3,
            min_insync_replicas: 2,
        }
    }

    #[test]
    fn every_topic_is_a_kafka_topic_with_its_partitions_and_configs() {
        let catalogue = Catalogue::load().unwrap();
        let resources = resources(&catalogue, &settings());
        let topics: Vec<&Value> = resources
            .iter()
            .filter(|r| r["kind"] == "KafkaTopic")
            .collect();
        assert_eq!(topics.len(), catalogue.topics.len());
        let chunks = topics
            .iter()
            .find(|t| t["spec"]["topicName"] == "prod.echo.processing.chunk-commands")
            .unwrap();
        assert_eq!(chunks["spec"]["partitions"], 12);
        assert_eq!(chunks["spec"]["replicas"], 3);
        assert_eq!(chunks["spec"]["config"]["min.insync.replicas"], 2);
        let changelog = topics
            .iter()
            .find(|t| t["spec"]["topicName"] == "prod.echo.upload.changelog")
            .unwrap();
        assert_eq!(changelog["spec"]["config"]["cleanup.policy"], "compact");
    }

    #[test]
    fn a_processor_may_write_only_what_it_produces_and_its_own_topics() {
        let catalogue = Catalogue::load().unwrap();
        let resources = resources(&catalogue, &settings());
        let upload = resources
            .iter()
            .find(|r| r["metadata"]["name"] == "prod.echo-upload")
            .unwrap();
        let writable: Vec<&str> = upload["spec"]["authorization"]["acls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["resource"]["type"] == "topic")
            .filter(|a| {
                a["operations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|o| o == "Write")
            })
            .map(|a| a["resource"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            writable,
            [
                "prod.echo.upload.events",
                "prod.echo.upload.quota",
                "prod.echo.upload.changelog",
                "prod.echo.upload.retry.1",
                "prod.echo.upload.retry.2",
                "prod.echo.upload.retry.3",
                "prod.echo.upload.dlq",
            ]
        );
        // No prefix ACL on `echo.upload.`, which would also cover the clients' topics.
        assert!(
            upload["spec"]["authorization"]["acls"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["resource"]["type"] != "topic"
                    || a["resource"]["patternType"] == "literal")
        );
    }
}
