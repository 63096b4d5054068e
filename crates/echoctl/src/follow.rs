//! Follows one resource's events live, as a client would: reads event topics from their
//! current end (so the request published afterwards cannot be missed) and yields only the
//! records whose correlation id is the resource.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use echo_catalog::record::EventMetadata;
use echo_runtime::codec::Codec;
use echo_runtime::envelope::metadata_of;
use echo_runtime::EchoConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// One event of the followed resource.
pub struct Followed {
    /// Dotted type name.
    pub type_name: &'static str,
    /// Its metadata.
    pub metadata: EventMetadata,
    /// Its Avro value.
    pub value: apache_avro::types::Value,
}

/// A reader of one resource's events.
pub struct Follower {
    consumer: BaseConsumer,
    codec: Codec,
    resource: String,
}

impl Follower {
    /// Starts following `resource` on the given catalogue topics, from their current end.
    pub fn new(config: &EchoConfig, topics: &[&str], resource: &str) -> Result<Follower> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.kafka.bootstrap_servers)
            .set("group.id", format!("echoctl-follow-{resource}"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for name in topics {
            let topic = config.topic(name);
            let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            for p in metadata.topics()[0].partitions() {
                let (_, high) =
                    consumer.fetch_watermarks(&topic, p.id(), Duration::from_secs(10))?;
                tpl.add_partition_offset(&topic, p.id(), Offset::Offset(high))?;
            }
        }
        consumer.assign(&tpl)?;
        Ok(Follower {
            consumer,
            codec: Codec::new(&config.registry.url)?,
            resource: resource.to_string(),
        })
    }

    /// The next event of the resource, waiting at most `patience`.
    pub async fn next(&self, patience: Duration) -> Result<Followed> {
        let started = Instant::now();
        while started.elapsed() < patience {
            let Some(polled) = self.consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let message = polled?;
            let Ok(decoded) = self.codec.decode(message.payload()).await else {
                continue;
            };
            let Some(metadata) = metadata_of(&decoded.value) else {
                continue;
            };
            if metadata.correlation_id == self.resource {
                return Ok(Followed {
                    type_name: decoded.info.type_name,
                    metadata,
                    value: decoded.value,
                });
            }
        }
        bail!(
            "no event for resource {} within {patience:?}",
            self.resource
        )
    }
}
