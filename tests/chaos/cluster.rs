//! The Kafka cluster of a run with several brokers, seen through its metadata: how many
//! brokers it has, and which one leads the busiest partition (the one the run kills).

use std::time::Duration;

use anyhow::{Context, Result};
use echo_runtime::EchoConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A partition and the broker leading it.
pub struct Partition {
    pub topic: String,
    pub partition: i32,
    /// Node id of the leader (`-1` while there is none).
    pub leader: i32,
    /// Records on it so far (high watermark minus low, transaction markers included).
    pub records: i64,
}

fn client(config: &EchoConfig) -> Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .create()
        .context("creating a metadata client")
}

/// Node ids of the cluster's brokers, sorted.
pub async fn brokers(config: &EchoConfig) -> Result<Vec<i32>> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let metadata = client(&config)?
            .fetch_metadata(None, TIMEOUT)
            .context("fetching cluster metadata")?;
        let mut ids: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    })
    .await?
}

/// Of the topics whose names start with `prefix`, the partition holding the most records.
pub async fn busiest(config: &EchoConfig, prefix: &str) -> Result<Partition> {
    let config = config.clone();
    let prefix = prefix.to_string();
    tokio::task::spawn_blocking(move || {
        let client = client(&config)?;
        let metadata = client
            .fetch_metadata(None, TIMEOUT)
            .context("fetching cluster metadata")?;
        let mut busiest: Option<Partition> = None;
        for topic in metadata.topics() {
            if !topic.name().starts_with(&prefix) {
                continue;
            }
            for p in topic.partitions() {
                let (low, high) = client
                    .fetch_watermarks(topic.name(), p.id(), TIMEOUT)
                    .with_context(|| format!("watermarks of {}[{}]", topic.name(), p.id()))?;
                if busiest.as_ref().is_none_or(|b| high - low > b.records) {
                    busiest = Some(Partition {
                        topic: topic.name().to_string(),
                        partition: p.id(),
                        leader: p.leader(),
                        records: high - low,
                    });
                }
            }
        }
        busiest.with_context(|| format!("no topic starts with {prefix}"))
    })
    .await?
}

/// The current leader of one partition (`-1` while there is none).
pub async fn leader_of(config: &EchoConfig, topic: &str, partition: i32) -> Result<i32> {
    let config = config.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let metadata = client(&config)?
            .fetch_metadata(Some(&topic), TIMEOUT)
            .with_context(|| format!("fetching the metadata of {topic}"))?;
        metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .find(|p| p.id() == partition)
            .map(|p| p.leader())
            .with_context(|| format!("{topic} has no partition {partition}"))
    })
    .await?
}
