//! Reading topics as operators' commands need them: the partitions of a topic, every
//! committed record up to the current end, or the one record at a position. Reads see only
//! committed transactions (`read_committed`), as every echo consumer does.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use echo_runtime::driver::ReadToEndContext;
use echo_runtime::EchoConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

/// How long a command waits on the broker (an answer, or the next record) before giving up.
pub const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// The partition ids of `topic`; fails when the topic does not exist.
pub fn partitions_of<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), KAFKA_TIMEOUT)
        .with_context(|| format!("fetching metadata of {topic}"))?;
    match metadata.topics().first() {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            Ok(t.partitions().iter().map(|p| p.id()).collect())
        }
        _ => bail!("topic {topic} does not exist (create it with `echoctl topics apply`)"),
    }
}

/// A consumer that sees committed records only and reports each partition's end, so a read
/// knows when it has everything. It assigns partitions itself and never commits, so its group
/// id only satisfies the client and no group state is ever stored.
fn committed_reader(config: &EchoConfig) -> Result<BaseConsumer<ReadToEndContext>> {
    config
        .kafka
        .client_config()
        .set("group.id", "echoctl-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        // An empty partition's end is known only when a fetch returns; do not let the
        // broker hold it back waiting for data.
        .set("fetch.wait.max.ms", "20")
        .create_with_context(ReadToEndContext)
        .context("creating Kafka consumer")
}

/// A consumer that reads the committed offsets of consumer group `group` (and describes it).
/// It never subscribes, so it never joins the group.
pub fn group_observer(config: &EchoConfig, group: &str) -> Result<BaseConsumer> {
    config
        .kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .context("creating Kafka consumer")
}

/// Where consumer group `group` stands on one partition.
pub struct GroupPosition {
    /// Real topic name.
    pub topic: String,
    /// Partition id.
    pub partition: i32,
    /// The group's committed offset; `None` before its first commit there.
    pub committed: Option<i64>,
    /// Low watermark: the first offset still held.
    pub start: i64,
    /// High watermark (last stable offset for read_committed): the next offset written.
    pub end: i64,
}

/// The committed offsets of `group` on `partitions`, each with the partition's watermarks.
pub fn group_positions(
    config: &EchoConfig,
    group: &str,
    partitions: TopicPartitionList,
) -> Result<Vec<GroupPosition>> {
    let consumer = group_observer(config, group)?;
    let committed = consumer
        .committed_offsets(partitions, KAFKA_TIMEOUT)
        .with_context(|| format!("fetching the committed offsets of {group}"))?;
    committed
        .elements()
        .iter()
        .map(|e| {
            let (start, end) =
                consumer.fetch_watermarks(e.topic(), e.partition(), KAFKA_TIMEOUT)?;
            Ok(GroupPosition {
                topic: e.topic().to_string(),
                partition: e.partition(),
                committed: match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                },
                start,
                end,
            })
        })
        .collect()
}

/// Every committed record of `topics`, from the beginning of each partition to its end as it
/// was when the read got there.
pub fn read_to_end(config: &EchoConfig, topics: &[String]) -> Result<Vec<OwnedMessage>> {
    read_from(config, &partitions_of_topics(config, topics)?, None)
}

/// Every partition of each of `topics`; fails when one does not exist.
pub fn partitions_of_topics(
    config: &EchoConfig,
    topics: &[String],
) -> Result<Vec<(String, Vec<i32>)>> {
    let consumer = committed_reader(config)?;
    topics
        .iter()
        .map(|t| Ok((t.clone(), partitions_of(&consumer, t)?)))
        .collect()
}

/// The committed record at `offset` of `partition` of `topic`.
pub fn read_one(
    config: &EchoConfig,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<OwnedMessage> {
    let consumer = committed_reader(config)?;
    if !partitions_of(&consumer, topic)?.contains(&partition) {
        bail!("{topic} has no partition {partition}");
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    consumer.assign(&tpl)?;
    let started = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.offset() == offset => return Ok(m.detach()),
            // The next readable record is a later one, or there is none: nothing committed
            // sits at that offset (out of range, an aborted write or a transaction marker).
            Some(Ok(_)) | Some(Err(KafkaError::PartitionEOF(_))) => {
                bail!("{topic} partition {partition} has no committed record at offset {offset}")
            }
            Some(Err(e)) => return Err(e).with_context(|| format!("reading {topic}")),
            None if started.elapsed() > KAFKA_TIMEOUT => {
                bail!("reading {topic} partition {partition}: nothing for {KAFKA_TIMEOUT:?}")
            }
            None => {}
        }
    }
}

/// Every committed record of `partitions` of each topic, from the first one written at or
/// after `since_ms` (milliseconds since the epoch, found with the broker's time index) to the
/// partition's end as it was when the read got there. Topics are read side by side, one
/// consumer each.
pub fn read_since(
    config: &EchoConfig,
    partitions: &[(String, Vec<i32>)],
    since_ms: i64,
) -> Result<Vec<OwnedMessage>> {
    read_from(config, partitions, Some(since_ms))
}

/// Every committed record of `partitions` of each topic, from the first one written at or
/// after `since_ms` (none: from the beginning) to the end.
fn read_from(
    config: &EchoConfig,
    partitions: &[(String, Vec<i32>)],
    since_ms: Option<i64>,
) -> Result<Vec<OwnedMessage>> {
    std::thread::scope(|scope| {
        let readers: Vec<_> = partitions
            .iter()
            .map(|(topic, ps)| scope.spawn(move || read_topic_from(config, topic, ps, since_ms)))
            .collect();
        let mut records = Vec::new();
        for reader in readers {
            records.extend(reader.join().expect("a topic reader panicked")?);
        }
        Ok(records)
    })
}

/// [`read_from`] for one topic.
fn read_topic_from(
    config: &EchoConfig,
    topic: &str,
    partitions: &[i32],
    since_ms: Option<i64>,
) -> Result<Vec<OwnedMessage>> {
    let consumer = committed_reader(config)?;
    let mut query = TopicPartitionList::new();
    for p in partitions {
        query.add_partition_offset(
            topic,
            *p,
            since_ms.map_or(Offset::Beginning, Offset::Offset),
        )?;
    }
    let starts = match since_ms {
        Some(at) => consumer
            .offsets_for_times(query, KAFKA_TIMEOUT)
            .with_context(|| format!("finding the offsets of {topic} at {at}"))?,
        None => query,
    };
    let mut tpl = TopicPartitionList::new();
    let mut open = HashSet::new();
    for start in starts.elements() {
        if let Some(e) = start.error().err() {
            return Err(e).with_context(|| format!("{topic} partition {}", start.partition()));
        }
        // `End`: nothing was written there since then.
        if start.offset() != Offset::End {
            tpl.add_partition_offset(topic, start.partition(), start.offset())?;
            open.insert(start.partition());
        }
    }
    if open.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&tpl)?;
    let mut records = Vec::new();
    let mut last_progress = Instant::now();
    while !open.is_empty() {
        match consumer.poll(Duration::from_millis(20)) {
            Some(Ok(m)) => {
                records.push(m.detach());
                last_progress = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
                last_progress = Instant::now();
            }
            Some(Err(e)) => return Err(e).with_context(|| format!("reading {topic}")),
            None if last_progress.elapsed() > KAFKA_TIMEOUT => {
                bail!("reading {topic}: partitions {open:?} sent nothing for {KAFKA_TIMEOUT:?}")
            }
            None => {}
        }
    }
    Ok(records)
}
