//! Avro through the Schema Registry in Confluent wire format (magic 0, 4-byte schema id,
//! Avro body). Subjects follow TopicRecordNameStrategy (`<topic>-<record full name>`), since
//! one topic carries several event types. Schemas are cached by the converter.

use apache_avro::types::Value;
use echo_catalog::events;
use echo_catalog::record::RecordInfo;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::SubjectNameStrategy;

/// Why bytes could not be turned into a catalogue record.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not Confluent-framed Avro, an unknown schema id, or a body that does not match.
    #[error("undecodable record: {0}")]
    Undecodable(String),
    /// A record type echo does not know.
    #[error("unknown record type {0}")]
    UnknownType(String),
    /// The registry could not be reached; the record itself may be fine.
    #[error("schema registry unavailable: {0}")]
    RegistryUnavailable(String),
}

/// A decoded record: which catalogue type it is and its value.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The catalogue entry of its type.
    pub info: &'static RecordInfo,
    /// The Avro value.
    pub value: Value,
}

/// Encoder and decoder sharing one registry configuration.
pub struct Codec {
    encoder: AvroEncoder,
    decoder: AvroDecoder,
}

impl Codec {
    /// A codec talking to the registry at `url`.
    pub fn new(url: &str) -> anyhow::Result<Codec> {
        let settings = || {
            SrSettings::new_builder(url.to_string())
                .no_proxy()
                .set_timeout(std::time::Duration::from_secs(10))
                .build()
        };
        Ok(Codec {
            encoder: AvroEncoder::new(settings()?),
            decoder: AvroDecoder::new(settings()?),
        })
    }

    /// Encodes `value` of record type `info` for `topic` (the environment's real name).
    pub async fn encode(
        &self,
        topic: &str,
        info: &RecordInfo,
        value: Value,
    ) -> Result<Vec<u8>, SRCError> {
        let strategy = SubjectNameStrategy::TopicRecordNameStrategy(
            topic.to_string(),
            info.record_name.to_string(),
        );
        self.encoder.encode_value(value, &strategy).await
    }

    /// Decodes Confluent-framed bytes into a catalogue record.
    pub async fn decode(&self, bytes: Option<&[u8]>) -> Result<Decoded, DecodeError> {
        match bytes {
            Some(b) if b.len() > 5 && b[0] == 0 => {}
            _ => {
                return Err(DecodeError::Undecodable(
                    "not Confluent-framed Avro (magic byte 0 + schema id)".into(),
                ))
            }
        }
        let result = self.decoder.decode(bytes).await.map_err(|e| {
            if e.retriable {
                DecodeError::RegistryUnavailable(e.to_string())
            } else {
                DecodeError::Undecodable(e.to_string())
            }
        })?;
        let name = result
            .name
            .map(|n| n.fullname(None))
            .ok_or_else(|| DecodeError::Undecodable("schema is not a named record".into()))?;
        let info = events::by_record_name(&name).ok_or(DecodeError::UnknownType(name))?;
        Ok(Decoded {
            info,
            value: result.value,
        })
    }
}
