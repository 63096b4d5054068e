//! The topic catalogue, parsed from `topics/topics.toml` (embedded at build time).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::flow::{Flow, Outcomes, Step};
use crate::keys::KeyRule;

/// The catalogue text, compiled in so every binary agrees with the repository it was built from.
const CATALOGUE_TOML: &str = include_str!("../../../topics/topics.toml");

/// What a topic is for; decides its configs and who may write to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopicKind {
    /// Facts, past tense, read by any number of consumer groups.
    Events,
    /// Requests to one context, imperative, never mixed with events.
    Commands,
    /// Compacted per-key state of one processor.
    Changelog,
    /// One retry tier of one processor; records wait there until due.
    Retry,
    /// Records a processor gave up on, with the reason in headers.
    Dlq,
    /// Compacted markers of the DLQ records of one processor that `echoctl dlq redrive`
    /// already re-published, so no record is redriven twice.
    Redriven,
}

/// One topic: its name, partitions, configs and the record types it carries.
#[derive(Debug, Clone, Deserialize)]
pub struct TopicSpec {
    /// Full topic name, `echo.<context>.<what>`.
    pub name: String,
    /// Events, commands or an internal topic.
    pub kind: TopicKind,
    /// The bounded context that owns (writes) the topic.
    pub context: String,
    /// What the record key is; the partitioner keeps one key's records in order. For
    /// events and commands one of the [`KeyRule`]s, which consumers check every record
    /// against.
    pub key: String,
    /// Partition count; `None` takes the catalogue default.
    #[serde(default)]
    pub partitions: Option<i32>,
    /// One line for humans, shown by `topics describe` and docs.
    pub description: String,
    /// Event or command types published to this topic.
    #[serde(default)]
    pub carries: Vec<String>,
}

impl TopicSpec {
    /// The rule its records are keyed by; declared for every events and commands topic (the
    /// catalogue refuses to load otherwise), derived from the source topic for internal ones.
    pub fn key_rule(&self) -> Result<KeyRule> {
        KeyRule::parse(&self.key)
    }
}

/// One processor (one consumer group): what it handles and emits, and the topics that follow.
#[derive(Debug, Clone, Deserialize)]
pub struct ProcessorSpec {
    /// Name of the processor, also its consumer group and the stem of its internal topics.
    pub name: String,
    /// The bounded context the processor belongs to.
    pub context: String,
    /// One line for humans.
    pub description: String,
    /// The event and command types it reacts to; the runtime passes it no other.
    pub handles: Vec<String>,
    /// The types it publishes; the runtime refuses to publish any other.
    pub emits: Vec<String>,
    /// Source topics: those carrying a type it handles, in catalogue order (derived).
    #[serde(skip)]
    pub consumes: Vec<String>,
    /// Sink topics besides its internal ones: those carrying a type it emits (derived).
    #[serde(skip)]
    pub produces: Vec<String>,
    /// Delay before each retry tier; its length is the number of tiers.
    pub retry_backoff_ms: Vec<u64>,
}

impl ProcessorSpec {
    /// Whether a processor's code (the types it declares it handles and emits) keeps within
    /// this entry; otherwise every type it declares beyond it.
    pub fn admits(&self, handles: &[&str], emits: &[&str]) -> Result<()> {
        let beyond = |declared: &[&str], listed: &[String]| -> Vec<String> {
            declared
                .iter()
                .filter(|t| !listed.iter().any(|l| l == *t))
                .map(|t| t.to_string())
                .collect()
        };
        let (handled, emitted) = (beyond(handles, &self.handles), beyond(emits, &self.emits));
        if handled.is_empty() && emitted.is_empty() {
            return Ok(());
        }
        let mut problems = Vec::new();
        if !handled.is_empty() {
            problems.push(format!("handles {}", handled.join(", ")));
        }
        if !emitted.is_empty() {
            problems.push(format!("emits {}", emitted.join(", ")));
        }
        bail!(
            "processor {}'s code {}, which its entry in topics/topics.toml does not declare",
            self.name,
            problems.join(" and ")
        )
    }
}

/// What a client (a producer outside echo) may publish and what it reads back.
#[derive(Debug, Clone, Deserialize)]
pub struct ClientSpec {
    /// The types a client publishes (requests and commands to echo).
    pub emits: Vec<String>,
    /// The types a client reads about its resources.
    pub handles: Vec<String>,
}

/// Catalogue-wide defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct Defaults {
    /// Partition count of topics that do not set one.
    pub partitions: i32,
    /// Retention of events and commands.
    pub retention_ms: i64,
}

/// The whole catalogue: declared topics, processors, and the internal topics derived from them.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// Catalogue-wide defaults.
    pub defaults: Defaults,
    /// Declared topics followed by every processor's internal topics.
    pub topics: Vec<TopicSpec>,
    /// Processors in declaration order.
    pub processors: Vec<ProcessorSpec>,
    /// What clients publish and read.
    pub client: ClientSpec,
    /// What must follow each record of a resource, and who brings it about.
    pub flow: Flow,
}

#[derive(Deserialize)]
struct RawCatalogue {
    defaults: Defaults,
    topic: Vec<TopicSpec>,
    client: ClientSpec,
    #[serde(default)]
    processor: Vec<ProcessorSpec>,
    outcome: Outcomes,
    #[serde(default)]
    step: Vec<Step>,
    #[serde(default)]
    dispatch: Option<Step>,
}

impl Catalogue {
    /// The catalogue this binary was built with.
    pub fn load() -> Result<Catalogue> {
        Catalogue::parse(CATALOGUE_TOML)
    }

    /// Parses and validates a catalogue, deriving internal topics.
    pub fn parse(text: &str) -> Result<Catalogue> {
        let raw: RawCatalogue = toml::from_str(text).context("parsing topics catalogue")?;
        let mut catalogue = Catalogue {
            defaults: raw.defaults,
            topics: raw.topic,
            processors: raw.processor,
            client: raw.client,
            flow: Flow {
                outcomes: raw.outcome,
                steps: raw.step,
                dispatch: raw.dispatch,
            },
        };
        let mut processors = std::mem::take(&mut catalogue.processors);
        for p in &mut processors {
            p.consumes = catalogue.topics_carrying(&p.handles, &p.name)?;
            p.produces = catalogue.topics_carrying(&p.emits, &p.name)?;
        }
        catalogue.processors = processors;
        let mut internal = Vec::new();
        for p in &catalogue.processors {
            internal.extend(catalogue.internal_topics_of(p)?);
        }
        catalogue.topics.extend(internal);
        catalogue.validate()?;
        Ok(catalogue)
    }

    /// The declared topics carrying any of `types` (what `who` handles or emits), in
    /// catalogue order; fails on a type no topic carries.
    fn topics_carrying(&self, types: &[String], who: &str) -> Result<Vec<String>> {
        for ty in types {
            if !self.topics.iter().any(|t| t.carries.contains(ty)) {
                bail!("{who} names {ty}, which no topic carries");
            }
        }
        Ok(self
            .topics
            .iter()
            .filter(|t| t.carries.iter().any(|c| types.contains(c)))
            .map(|t| t.name.clone())
            .collect())
    }

    fn internal_topics_of(&self, p: &ProcessorSpec) -> Result<Vec<TopicSpec>> {
        let partitions = self.processor_partitions(p)?;
        let internal = |name: String, kind, description: String| TopicSpec {
            name,
            kind,
            context: p.context.clone(),
            key: "same key as the input record".into(),
            partitions: Some(partitions),
            description,
            carries: vec![],
        };
        let mut topics = vec![internal(
            changelog_topic(&p.name),
            TopicKind::Changelog,
            format!(
                "State of processor `{}`: handler state, dedup ids, timers.",
                p.name
            ),
        )];
        for (i, backoff) in p.retry_backoff_ms.iter().enumerate() {
            topics.push(internal(
                retry_topic(&p.name, i + 1),
                TopicKind::Retry,
                format!(
                    "Retry tier {} of `{}`: records wait {backoff} ms, then run again.",
                    i + 1,
                    p.name
                ),
            ));
        }
        topics.push(internal(
            dlq_topic(&p.name),
            TopicKind::Dlq,
            format!(
                "Records `{}` gave up on, with the reason in headers.",
                p.name
            ),
        ));
        topics.push(TopicSpec {
            key: "`<partition>:<offset>` of the DLQ record".into(),
            ..internal(
                dlq_redriven_topic(&p.name),
                TopicKind::Redriven,
                format!(
                    "DLQ records of `{}` already redriven, one marker each, written in the \
                     redrive's transaction.",
                    p.name
                ),
            )
        });
        Ok(topics)
    }

    /// The partition count shared by every topic a processor reads (co-partitioning).
    pub fn processor_partitions(&self, p: &ProcessorSpec) -> Result<i32> {
        let mut counts = p
            .consumes
            .iter()
            .map(|t| self.topic(t).map(|t| self.partitions_of(t)));
        let first = counts
            .next()
            .with_context(|| format!("processor {} consumes nothing", p.name))??;
        for count in counts {
            if count? != first {
                bail!(
                    "processor {} reads topics with different partition counts",
                    p.name
                );
            }
        }
        Ok(first)
    }

    fn validate(&self) -> Result<()> {
        let mut seen_topics = BTreeMap::new();
        for t in &self.topics {
            if seen_topics.insert(t.name.as_str(), ()).is_some() {
                bail!("topic {} is declared twice", t.name);
            }
        }
        let mut seen_types = BTreeMap::new();
        for t in &self.topics {
            if matches!(t.kind, TopicKind::Events | TopicKind::Commands) {
                t.key_rule().with_context(|| format!("topic {}", t.name))?;
            }
            for ty in &t.carries {
                if let Some(other) = seen_types.insert(ty.as_str(), t.name.as_str()) {
                    bail!("{ty} is carried by both {other} and {}", t.name);
                }
            }
        }
        self.topics_carrying(&self.client.emits, "the client")?;
        self.topics_carrying(&self.client.handles, "the client")?;
        for t in &self.topics {
            for ty in &t.carries {
                if self.producers_of(ty).is_empty() {
                    bail!("{ty} is carried by {} but nobody emits it", t.name);
                }
            }
        }
        let names: Vec<&str> = self.processors.iter().map(|p| p.name.as_str()).collect();
        self.flow.validate(&names)
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Result<&TopicSpec> {
        self.topics
            .iter()
            .find(|t| t.name == name)
            .with_context(|| format!("topic {name} is not in the catalogue"))
    }

    /// A processor by name.
    pub fn processor(&self, name: &str) -> Result<&ProcessorSpec> {
        self.processors
            .iter()
            .find(|p| p.name == name)
            .with_context(|| format!("processor {name} is not in the catalogue"))
    }

    /// Who publishes a record type: the processors that emit it, and `client` when clients do.
    pub fn producers_of(&self, record_type: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .processors
            .iter()
            .filter(|p| p.emits.iter().any(|t| t == record_type))
            .map(|p| p.name.as_str())
            .collect();
        if self.client.emits.iter().any(|t| t == record_type) {
            names.push(crate::flow::CLIENT);
        }
        names
    }

    /// Who reacts to a record type: the processors that handle it, and `client` when clients
    /// read it.
    pub fn consumers_of(&self, record_type: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .processors
            .iter()
            .filter(|p| p.handles.iter().any(|t| t == record_type))
            .map(|p| p.name.as_str())
            .collect();
        if self.client.handles.iter().any(|t| t == record_type) {
            names.push(crate::flow::CLIENT);
        }
        names
    }

    /// The topic an event or command type is published to.
    pub fn topic_of(&self, record_type: &str) -> Result<&TopicSpec> {
        self.topics
            .iter()
            .find(|t| t.carries.iter().any(|c| c == record_type))
            .with_context(|| format!("no topic carries {record_type}"))
    }

    /// Partition count of a topic, with the default applied.
    pub fn partitions_of(&self, topic: &TopicSpec) -> i32 {
        topic.partitions.unwrap_or(self.defaults.partitions)
    }

    /// Topic configs `topics apply` sets, by kind.
    pub fn configs_of(&self, topic: &TopicSpec) -> Vec<(&'static str, String)> {
        match topic.kind {
            TopicKind::Events | TopicKind::Commands | TopicKind::Retry => vec![
                ("cleanup.policy", "delete".into()),
                ("retention.ms", self.defaults.retention_ms.to_string()),
            ],
            // The DLQ is kept until an operator redrives or discards it.
            TopicKind::Dlq => vec![
                ("cleanup.policy", "delete".into()),
                ("retention.ms", "-1".into()),
            ],
            // Compaction keeps the latest state (or marker) per key forever; a tombstone
            // deletes it.
            TopicKind::Changelog | TopicKind::Redriven => vec![
                ("cleanup.policy", "compact".into()),
                ("min.compaction.lag.ms", "0".into()),
            ],
        }
    }
}

/// Name of a processor's state changelog topic.
pub fn changelog_topic(processor: &str) -> String {
    format!("echo.{processor}.changelog")
}

/// Name of a processor's retry tier `tier` (1-based).
pub fn retry_topic(processor: &str, tier: usize) -> String {
    format!("echo.{processor}.retry.{tier}")
}

/// Name of a processor's dead-letter topic.
pub fn dlq_topic(processor: &str) -> String {
    format!("echo.{processor}.dlq")
}

/// Name of the topic marking which of a processor's DLQ records were redriven.
pub fn dlq_redriven_topic(processor: &str) -> String {
    format!("echo.{processor}.dlq-redriven")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalogue_is_valid_and_derives_internal_topics() {
        let c = Catalogue::load().unwrap();
        let upload = c.processor("upload").unwrap();
        assert_eq!(c.processor_partitions(upload).unwrap(), 6);
        assert_eq!(
            c.topic("echo.upload.changelog").unwrap().kind,
            TopicKind::Changelog
        );
        assert_eq!(
            c.topic("echo.upload.retry.3").unwrap().kind,
            TopicKind::Retry
        );
        assert_eq!(c.topic("echo.upload.dlq").unwrap().kind, TopicKind::Dlq);
        assert_eq!(
            c.topic("echo.upload.dlq-redriven").unwrap().kind,
            TopicKind::Redriven
        );
        assert_eq!(
            c.topic_of("upload.requested").unwrap().name,
            "echo.upload.requests"
        );
    }

    #[test]
    fn what_a_processor_handles_and_emits_decides_its_topics() {
        let c = Catalogue::load().unwrap();
        let resource = c.processor("resource").unwrap();
        assert_eq!(
            resource.consumes,
            [
                "echo.upload.events",
                "echo.upload.quota-events",
                "echo.processing.events",
                "echo.transcription.events",
                "echo.resource.events"
            ]
        );
        assert_eq!(
            resource.produces,
            ["echo.resource.events", "echo.resource.quota-releases"]
        );
        let validation = c.processor("validation").unwrap();
        assert_eq!(validation.produces, ["echo.processing.events"]);
        let aggregator = c.processor("job-aggregator").unwrap();
        assert_eq!(
            aggregator.produces,
            ["echo.processing.events", "echo.processing.chunk-commands"]
        );
        assert_eq!(c.producers_of("chunk.process"), ["job-aggregator"]);
        assert_eq!(c.producers_of("upload.requested"), ["client"]);
        assert_eq!(
            c.consumers_of("upload.url.generated"),
            ["resource", "client"]
        );
        assert_eq!(
            c.consumers_of("processing.job.created"),
            ["job-aggregator", "transcription"]
        );
    }

    #[test]
    fn code_declaring_more_than_its_entry_is_refused() {
        let c = Catalogue::load().unwrap();
        let upload = c.processor("upload").unwrap();
        upload
            .admits(&["upload.requested"], &["upload.url.generated"])
            .unwrap();
        let err = upload
            .admits(
                &["upload.requested", "chunk.process"],
                &["upload.failed", "resource.ready"],
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("handles chunk.process and emits resource.ready"),
            "{err}"
        );
    }

    #[test]
    fn a_type_nobody_emits_is_refused() {
        let text = CATALOGUE_TOML.replace(
            "emits = [\"upload.requested\", \"upload.finalize\"]",
            "emits = [\"upload.requested\"]",
        );
        let err = Catalogue::parse(&text).unwrap_err().to_string();
        assert!(err.contains("upload.finalize is carried by"), "{err}");
    }

    #[test]
    fn a_handled_type_no_topic_carries_is_refused() {
        let text = CATALOGUE_TOML.replace(
            "handles = [\"upload.completed\"]",
            "handles = [\"upload.completed\", \"upload.done\"]",
        );
        let err = Catalogue::parse(&text).unwrap_err().to_string();
        assert!(err.contains("validation names upload.done"), "{err}");
    }

    #[test]
    fn a_type_on_two_topics_is_refused() {
        let text = CATALOGUE_TOML.replace(
            "carries = [\"upload.finalize\"]",
            "carries = [\"upload.finalize\", \"upload.requested\"]",
        );
        let err = Catalogue::parse(&text).unwrap_err().to_string();
        assert!(err.contains("upload.requested"), "{err}");
    }

    #[test]
    fn a_flow_step_by_an_unknown_processor_is_refused() {
        let text = CATALOGUE_TOML.replace("by = \"validation\"", "by = \"validator\"");
        let err = Catalogue::parse(&text).unwrap_err().to_string();
        assert!(err.contains("validator, which is no processor"), "{err}");
    }

    #[test]
    fn a_flow_naming_an_unknown_type_is_refused() {
        let text = CATALOGUE_TOML.replace(
            "after = \"upload.finalize\"",
            "after = \"upload.finalised\"",
        );
        let err = Catalogue::parse(&text).unwrap_err().to_string();
        assert!(err.contains("upload.finalised"), "{err}");
    }

    #[test]
    fn a_processor_reading_unequal_partitions_is_refused() {
        let text = CATALOGUE_TOML.replace(
            "handles = [\"upload.requested\", \"upload.finalize\",",
            "handles = [\"upload.requested\", \"chunk.process\",",
        );
        let err = Catalogue::parse(&text).unwrap_err().to_string();
        assert!(err.contains("different partition counts"), "{err}");
    }
}
