//! Publishing catalogue records from outside a processor: clients (`echoctl submit`),
//! operators' tools and tests. Records go to the topic the catalogue assigns to their type,
//! Avro-encoded through the registry, with CloudEvents headers.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use apache_avro::types::Value;
use echo_catalog::record::{Record, RecordInfo};
use echo_catalog::{events, Catalogue};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::codec::{Codec, EncodeError};
use crate::config::EchoConfig;
use crate::driver::producer_config;
use crate::headers;
use crate::spans::TraceParent;
use tracing::warn;

/// How long a client waits for a schema registry that does not answer before it gives up on
/// a record.
pub const REGISTRY_PATIENCE: Duration = Duration::from_secs(600);

/// An idempotent (not transactional) producer of catalogue records.
pub struct Publisher {
    config: EchoConfig,
    catalogue: Catalogue,
    codec: Codec,
    producer: FutureProducer,
}

impl Publisher {
    /// A publisher for the environment in `config`.
    pub fn new(config: &EchoConfig) -> Result<Publisher> {
        Ok(Publisher {
            config: config.clone(),
            catalogue: Catalogue::load()?,
            codec: Codec::new(&config.registry.url)?,
            producer: producer_config(config).create()?,
        })
    }

    /// Publishes `record` under `key`; returns `(partition, offset)` once the broker has it.
    pub async fn publish<R: Record>(&self, key: &str, record: &R) -> Result<(i32, i64)> {
        let info = events::info(R::TYPE).ok_or_else(|| anyhow!("{} unknown", R::TYPE))?;
        let topic = self.config.topic(&self.catalogue.topic_of(R::TYPE)?.name);
        let (metadata, value) = crate::envelope::written_form(record);
        let bytes = self
            .encoded(&topic, info, value)
            .await
            .with_context(|| format!("encoding {}", R::TYPE))?;
        self.publish_raw(
            &topic,
            key,
            &bytes,
            headers::cloud_event(&metadata, R::TYPE, &TraceParent::own(&metadata)),
        )
        .await
    }

    /// `value` encoded for `topic`, waiting out a schema registry that does not answer (for
    /// up to [`REGISTRY_PATIENCE`]), as the processors wait it out: a client that starts
    /// during an outage of minutes publishes once the registry is back, not never.
    async fn encoded(
        &self,
        topic: &str,
        info: &RecordInfo,
        value: Value,
    ) -> Result<Vec<u8>, EncodeError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(500);
        loop {
            match self.codec.encode(topic, info, value.clone()).await {
                Err(EncodeError::RegistryUnavailable(e))
                    if started.elapsed() + pause < REGISTRY_PATIENCE =>
                {
                    if pause == Duration::from_millis(500) {
                        warn!(error = %e, "the schema registry does not answer; waiting for it");
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
                encoded => return encoded,
            }
        }
    }

    /// Publishes raw bytes (already encoded, or deliberately not) to a real topic name.
    pub async fn publish_raw(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: headers::HeaderList,
    ) -> Result<(i32, i64)> {
        let delivery = self
            .producer
            .send(
                FutureRecord::to(topic)
                    .key(key)
                    .payload(payload)
                    .headers(headers.to_kafka()),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| anyhow!("publishing to {topic}: {e}"))?;
        Ok((delivery.partition, delivery.offset))
    }
}
