//! Follows one resource's events live, as a client would: reads event topics from their
//! current end (so the request published afterwards cannot be missed) and yields only the
//! records whose correlation id is the resource.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use echo_catalog::record::EventMetadata;
use echo_runtime::codec::{Codec, DecodeError};
use echo_runtime::envelope::metadata_of;
use echo_runtime::EchoConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

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
        let consumer: BaseConsumer = config
            .kafka
            .client_config()
            .set("group.id", format!("echoctl-follow-{resource}"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()?;
        let tpl = retry_while_broker_unavailable(|| end_offsets(&consumer, config, topics))?;
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
            // Consumer errors (a broker restarting, a leader moving) are reported here but
            // recovered by the client library itself: wait them out.
            let message = match polled {
                Ok(message) => message,
                Err(e) => {
                    tracing::debug!(error = %e, "consumer error; the client reconnects");
                    continue;
                }
            };
            let decoded = loop {
                match self.codec.decode(message.payload()).await {
                    Ok(decoded) => break Some(decoded),
                    // Not the event's fault: it is decoded once the registry answers again,
                    // never skipped (it may be the resource's outcome).
                    Err(DecodeError::RegistryUnavailable(e)) if started.elapsed() < patience => {
                        tracing::debug!(error = %e, "the schema registry does not answer");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(DecodeError::RegistryUnavailable(e)) => {
                        bail!("the schema registry did not answer within {patience:?}: {e}")
                    }
                    Err(_) => break None,
                }
            };
            let Some(decoded) = decoded else {
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

/// The current end of every partition of `topics`.
fn end_offsets(
    consumer: &BaseConsumer,
    config: &EchoConfig,
    topics: &[&str],
) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for name in topics {
        let topic = config.topic(name);
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        for p in metadata.topics()[0].partitions() {
            let (_, high) = consumer.fetch_watermarks(&topic, p.id(), Duration::from_secs(10))?;
            tpl.add_partition_offset(&topic, p.id(), Offset::Offset(high))?;
        }
    }
    Ok(tpl)
}

/// How long a client waits out a broker that is restarting or electing leaders before it
/// gives up.
const BROKER_PATIENCE: Duration = Duration::from_secs(120);

/// Runs `attempt` until it succeeds or [`BROKER_PATIENCE`] is spent: metadata requests fail
/// outright (not after a retry) while a broker restarts, and a client should ride that out
/// as the producer does.
fn retry_while_broker_unavailable<T>(mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let started = Instant::now();
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(e) if started.elapsed() < BROKER_PATIENCE => {
                tracing::warn!(error = %format!("{e:#}"), "broker not ready; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(e.context("the broker stayed unavailable")),
        }
    }
}
