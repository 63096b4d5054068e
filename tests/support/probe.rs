//! Reading what really landed on a topic, as a downstream consumer would.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use echo_catalog::record::{EventMetadata, Record};
use echo_runtime::codec::Codec;
use echo_runtime::envelope::metadata_of;
use echo_runtime::headers::HeaderList;
use echo_runtime::EchoConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::de::DeserializeOwned;

use crate::TestEnv;

/// Which records a reader sees.
#[derive(Debug, Clone, Copy)]
pub enum Isolation {
    /// Only committed transactions (what every echo consumer uses).
    Committed,
    /// Everything written, aborted transactions included.
    Uncommitted,
}

/// One record as read back.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Partition.
    pub partition: i32,
    /// Key as text.
    pub key: String,
    /// Headers.
    pub headers: HeaderList,
    /// The catalogue type, if the value decoded.
    pub type_name: Option<&'static str>,
    /// Metadata, if the value decoded.
    pub metadata: Option<EventMetadata>,
    /// The Avro value, if it decoded.
    pub value: Option<apache_avro::types::Value>,
    /// Raw bytes.
    pub payload: Vec<u8>,
}

/// Reads a whole topic from the beginning to its current end.
pub async fn read_topic(
    config: &EchoConfig,
    topic: &str,
    isolation: Isolation,
) -> Result<Vec<Seen>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set("group.id", "echo-tests-probe")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set(
            "isolation.level",
            match isolation {
                Isolation::Committed => "read_committed",
                Isolation::Uncommitted => "read_uncommitted",
            },
        )
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let codec = Codec::new(&config.registry.url)?;
    let mut open: HashSet<i32> = partitions.into_iter().collect();
    let mut raw = Vec::new();
    let started = Instant::now();
    while !open.is_empty() {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("reading {topic} did not reach the end of {open:?}");
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => raw.push(m.detach()),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => bail!("reading {topic}: {e}"),
            None => {}
        }
    }
    let mut seen = Vec::new();
    for m in raw {
        let payload = m.payload().unwrap_or_default().to_vec();
        let decoded = codec.decode(Some(&payload)).await.ok();
        seen.push(Seen {
            partition: m.partition(),
            key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            headers: HeaderList::from_kafka(m.headers()),
            type_name: decoded.as_ref().map(|d| d.info.type_name),
            metadata: decoded.as_ref().and_then(|d| metadata_of(&d.value)),
            value: decoded.map(|d| d.value),
            payload,
        });
    }
    Ok(seen)
}

/// Reads `topic` until `done` holds for its records, or fails after `patience`.
pub async fn wait_for(
    config: &EchoConfig,
    topic: &str,
    patience: Duration,
    done: impl Fn(&[Seen]) -> bool,
) -> Result<Vec<Seen>> {
    let started = Instant::now();
    loop {
        let seen = read_topic(config, topic, Isolation::Committed).await?;
        if done(&seen) {
            return Ok(seen);
        }
        if started.elapsed() > patience {
            bail!(
                "gave up waiting on {topic}; it holds {} records: {:?}",
                seen.len(),
                seen.iter().map(|s| s.type_name).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The committed records of type `R` on their topic in `env`: about `resource` only, or all.
pub async fn records_of<R: Record + DeserializeOwned>(
    env: &TestEnv,
    resource: Option<&str>,
) -> Vec<R> {
    let topic = env.topic(&env.catalogue.topic_of(R::TYPE).unwrap().name);
    read_topic(&env.config, &topic, Isolation::Committed)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.type_name == Some(R::TYPE))
        .filter(|s| {
            resource.is_none() || s.metadata.as_ref().map(|m| m.correlation_id.as_str()) == resource
        })
        .map(|s| apache_avro::from_value(s.value.as_ref().unwrap()).unwrap())
        .collect()
}
