//! Reading one resource from the cluster. Only the partitions its keys map to are read, from
//! the first record written at or after a time bound: the resource's partition of every topic
//! keyed by resource, the partitions of its job's chunks, and the same partitions of every
//! processor's changelog, retry tiers and DLQ. A busy cluster costs no more than a quiet one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use anyhow::{Context, Result};
use echo_catalog::keys::{chunk_key, chunk_partition, partition_of};
use echo_catalog::topics::{changelog_topic, dlq_topic, retry_topic};
use echo_catalog::{Catalogue, KeyRule, ProcessorSpec, TopicKind};
use echo_runtime::codec::Codec;
use echo_runtime::envelope::metadata_of;
use echo_runtime::headers::{ce, echo, HeaderList};
use echo_runtime::state::decode_changelog;
use echo_runtime::EchoConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::TopicPartitionList;

use super::chain::Traced;
use super::evidence::{DeadLetter, Evidence, Group, Origin, PendingTimer, Position, Retrying};
use crate::topic_reader::{group_observer, group_positions, read_since, KAFKA_TIMEOUT};

/// The resource's records and what the cluster says about them.
pub struct Found {
    /// Every record of the resource on its topics.
    pub records: Vec<Traced>,
    /// Dead letters, retries, timers and group positions of its keys.
    pub evidence: Evidence,
}

/// The keys and partitions of one resource, per partition count.
struct Placement<'a> {
    resource: &'a str,
    /// Each job of the resource and its chunk count.
    jobs: Vec<(String, i32)>,
    /// The tenant the resource was charged to, once a quota answer names it.
    tenants: Vec<String>,
}

impl Placement<'_> {
    /// Whether topics keyed by `rule` hold the resource's records in `partitions` partitions,
    /// and on which.
    fn partitions(&self, rule: KeyRule, partitions: i32) -> Vec<i32> {
        let set: HashSet<i32> = match rule {
            KeyRule::ResourceId => HashSet::from([partition_of(self.resource, partitions)]),
            KeyRule::ChunkId => self
                .jobs
                .iter()
                .flat_map(|(job, count)| {
                    (0..*count).map(move |i| chunk_partition(job, i, *count, partitions))
                })
                .collect(),
            // Before an answer names the tenant, its reservation may be on any partition.
            KeyRule::Tenant if self.tenants.is_empty() => (0..partitions).collect(),
            KeyRule::Tenant => self
                .tenants
                .iter()
                .map(|t| partition_of(t, partitions))
                .collect(),
        };
        let mut list: Vec<i32> = set.into_iter().collect();
        list.sort_unstable();
        list
    }

    /// The keys of the resource's records under `rule`.
    fn keys(&self, rule: KeyRule) -> HashSet<String> {
        match rule {
            KeyRule::ResourceId => HashSet::from([self.resource.to_string()]),
            KeyRule::ChunkId => self
                .jobs
                .iter()
                .flat_map(|(job, count)| (0..*count).map(move |i| chunk_key(job, i)))
                .collect(),
            KeyRule::Tenant => self.tenants.iter().cloned().collect(),
        }
    }
}

/// Reads everything about `resource` written since `since_ms`.
pub async fn read(
    config: &EchoConfig,
    catalogue: &Catalogue,
    resource: &str,
    since_ms: i64,
) -> Result<Found> {
    let codec = Codec::new(&config.registry.url)?;
    let mut placement = Placement {
        resource,
        jobs: Vec::new(),
        tenants: Vec::new(),
    };
    // The resource's own topics first: they say which jobs (and so which chunk partitions)
    // there are.
    let mut records = events(
        config,
        catalogue,
        &codec,
        &placement,
        KeyRule::ResourceId,
        since_ms,
    )
    .await?;
    placement.jobs = records
        .iter()
        .filter(|r| r.type_name == "processing.job.created")
        .filter_map(|r| Some((r.job.clone()?, r.fact("chunks")?.parse().ok()?)))
        .collect();
    placement.tenants = records
        .iter()
        .filter_map(|r| r.fact("tenant").map(str::to_string))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for rule in [KeyRule::ChunkId, KeyRule::Tenant] {
        records.extend(events(config, catalogue, &codec, &placement, rule, since_ms).await?);
    }
    let mut evidence = internal(config, catalogue, &placement, since_ms)?;
    evidence.groups = groups(config, catalogue, &placement)?;
    for retry in &mut evidence.retries {
        retry.consumed = consumed(&evidence.groups, retry);
    }
    Ok(Found { records, evidence })
}

/// The records of the resource on the events and commands topics keyed by `rule`.
async fn events(
    config: &EchoConfig,
    catalogue: &Catalogue,
    codec: &Codec,
    placement: &Placement<'_>,
    rule: KeyRule,
    since_ms: i64,
) -> Result<Vec<Traced>> {
    let mut wanted = Vec::new();
    for topic in &catalogue.topics {
        if matches!(topic.kind, TopicKind::Events | TopicKind::Commands)
            && topic.key_rule()? == rule
        {
            let partitions = placement.partitions(rule, catalogue.partitions_of(topic));
            if !partitions.is_empty() {
                wanted.push((config.topic(&topic.name), partitions));
            }
        }
    }
    let mut records = Vec::new();
    for m in read_since(config, &wanted, since_ms)? {
        // Records of other resources share the partition; records that do not decode are not
        // part of any chain (the processors dead-letter them, which the evidence shows).
        let Ok(decoded) = codec.decode(m.payload()).await else {
            continue;
        };
        let Some(metadata) = metadata_of(&decoded.value) else {
            continue;
        };
        if metadata.correlation_id == placement.resource {
            let at = (catalogue_name(config, m.topic()), m.partition(), m.offset());
            records.push(Traced::new(
                decoded.info.type_name,
                metadata,
                &decoded.value,
                at,
            ));
        }
    }
    Ok(records)
}

/// The key rule of what `processor` reads (every topic it reads shares one rule: the
/// catalogue co-partitions them).
fn rule_of(catalogue: &Catalogue, processor: &ProcessorSpec) -> Result<KeyRule> {
    catalogue.topic(&processor.consumes[0])?.key_rule()
}

/// Dead letters, retry records, timers and held records of the resource's keys in every
/// processor's internal topics.
fn internal(
    config: &EchoConfig,
    catalogue: &Catalogue,
    placement: &Placement<'_>,
    since_ms: i64,
) -> Result<Evidence> {
    let mut wanted = Vec::new();
    let mut owner: HashMap<String, (&ProcessorSpec, HashSet<String>)> = HashMap::new();
    for p in &catalogue.processors {
        let rule = rule_of(catalogue, p)?;
        let partitions = placement.partitions(rule, catalogue.processor_partitions(p)?);
        if partitions.is_empty() {
            continue;
        }
        let tiers = (1..=p.retry_backoff_ms.len()).map(|t| retry_topic(&p.name, t));
        for topic in [changelog_topic(&p.name), dlq_topic(&p.name)]
            .into_iter()
            .chain(tiers)
        {
            owner.insert(topic.clone(), (p, placement.keys(rule)));
            wanted.push((config.topic(&topic), partitions.clone()));
        }
    }
    let chunk_worker: echo_chunk_worker::ChunkWorkerConfig = config.section("chunk_worker")?;
    let mut evidence = Evidence {
        now_ms: echo_runtime::driver::now_ms(),
        express_max_chunks: chunk_worker.express_max_chunks,
        ..Evidence::default()
    };
    // The latest changelog record per (processor, key): the key's state now.
    let mut states: BTreeMap<(String, String), Option<Vec<u8>>> = BTreeMap::new();
    let mut messages = read_since(config, &wanted, since_ms)?;
    messages.sort_by_key(|m| m.offset());
    for m in messages {
        let topic = catalogue_name(config, m.topic());
        let Some((processor, keys)) = owner.get(&topic) else {
            continue;
        };
        let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
        let headers = HeaderList::from_kafka(m.headers());
        let ours = key.as_ref().is_some_and(|k| keys.contains(k))
            || headers.get(ce::CORRELATION_ID) == Some(placement.resource);
        if !ours {
            continue;
        }
        let kind = catalogue.topic(&topic)?.kind;
        match kind {
            TopicKind::Changelog => {
                let key = key.unwrap_or_default();
                states.insert(
                    (processor.name.clone(), key),
                    m.payload().map(<[u8]>::to_vec),
                );
            }
            TopicKind::Dlq => evidence.dead_letters.push(DeadLetter {
                processor: processor.name.clone(),
                partition: m.partition(),
                offset: m.offset(),
                class: headers.get(echo::ERROR_CLASS).unwrap_or("?").to_string(),
                reason: headers.get(echo::ERROR_MESSAGE).unwrap_or("").to_string(),
                origin: origin(&headers),
                type_name: headers.get(ce::TYPE).map(str::to_string),
                at_ms: m.timestamp().to_millis().unwrap_or_default(),
            }),
            TopicKind::Retry => evidence.retries.push(Retrying {
                processor: processor.name.clone(),
                tier: topic
                    .rsplit('.')
                    .next()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_default(),
                attempt: headers
                    .get(echo::ATTEMPT)
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_default(),
                due_at_ms: headers.get(echo::DUE_AT).and_then(|d| d.parse().ok()),
                origin: origin(&headers),
                consumed: false,
                position: (topic.clone(), m.partition(), m.offset()),
            }),
            _ => {}
        }
    }
    for ((processor, _key), state) in states {
        // The runtime's own decoding: a large state is written deflated.
        let Some(key_state) = state.and_then(|s| decode_changelog::<serde_json::Value>(&s).ok())
        else {
            continue;
        };
        for timer in key_state.timers.into_values() {
            evidence.timers.push(PendingTimer {
                processor: processor.clone(),
                name: timer.name,
                due_at_ms: timer.due_at_ms,
            });
        }
        if let Some(parked) = key_state.parked {
            evidence.parked.push((processor.clone(), parked));
        }
    }
    Ok(evidence)
}

/// Where a retried or dead-lettered record was first read, from its headers.
fn origin(headers: &HeaderList) -> Option<Origin> {
    Some(Origin {
        topic: headers.get(echo::ORIGINAL_TOPIC)?.to_string(),
        partition: headers.get(echo::ORIGINAL_PARTITION)?.parse().ok()?,
        offset: headers.get(echo::ORIGINAL_OFFSET)?.parse().ok()?,
    })
}

/// Every processor's group: its members, and its position on the partitions of the
/// resource it reads (sources and retry tiers).
fn groups(
    config: &EchoConfig,
    catalogue: &Catalogue,
    placement: &Placement<'_>,
) -> Result<HashMap<String, Group>> {
    let mut groups = HashMap::new();
    for p in &catalogue.processors {
        let name = config.topic(&format!("echo.{}", p.name));
        let consumer = group_observer(config, &name)?;
        let partitions =
            placement.partitions(rule_of(catalogue, p)?, catalogue.processor_partitions(p)?);
        let tiers = (1..=p.retry_backoff_ms.len()).map(|t| retry_topic(&p.name, t));
        let mut tpl = TopicPartitionList::new();
        for topic in p.consumes.iter().cloned().chain(tiers) {
            for partition in &partitions {
                tpl.add_partition(&config.topic(&topic), *partition);
            }
        }
        let positions = group_positions(config, &name, tpl)?
            .into_iter()
            .map(|p| {
                let at = (catalogue_name(config, &p.topic), p.partition);
                (
                    at,
                    Position {
                        committed: p.committed,
                        end: p.end,
                    },
                )
            })
            .collect();
        let members = consumer
            .fetch_group_list(Some(&name), KAFKA_TIMEOUT)
            .with_context(|| format!("describing group {name}"))?
            .groups()
            .first()
            .map_or(0, |g| g.members().len());
        groups.insert(
            p.name.clone(),
            Group {
                name,
                members,
                positions,
            },
        );
    }
    Ok(groups)
}

/// Whether the processor's group has read past a retry record.
fn consumed(groups: &HashMap<String, Group>, retry: &Retrying) -> bool {
    let (topic, partition, offset) = &retry.position;
    groups
        .get(&retry.processor)
        .and_then(|g| g.positions.get(&(topic.clone(), *partition)))
        .and_then(|p| p.committed)
        .is_some_and(|c| c > *offset)
}

/// The catalogue name of a real topic name (without the deployment's prefix).
fn catalogue_name(config: &EchoConfig, topic: &str) -> String {
    topic
        .strip_prefix(&config.kafka.topic_prefix)
        .unwrap_or(topic)
        .to_string()
}
