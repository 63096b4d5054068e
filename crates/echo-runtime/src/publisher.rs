//! Publishing catalogue records from outside a processor: clients (`echoctl submit`),
//! operators' tools and tests. Records go to the topic the catalogue assigns to their type,
//! Avro-encoded through the registry, with CloudEvents headers.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use echo_catalog::record::Record;
use echo_catalog::{events, Catalogue};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::codec::Codec;
use crate::config::EchoConfig;
use crate::driver::producer_config;
use crate::headers;
use crate::spans::TraceParent;

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
            .codec
            .encode(&topic, info, value)
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
