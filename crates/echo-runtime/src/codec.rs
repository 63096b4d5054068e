//! Avro through the Schema Registry in Confluent wire format (magic 0, 4-byte schema id,
//! Avro body). Subjects follow TopicRecordNameStrategy (`<topic>-<record full name>`), since
//! one topic carries several event types. Schemas are cached by the converter.
//!
//! A body is measured against its writer schema before it is decoded ([`decoded_size`]), so a
//! small record cannot decode into hundreds of MB; the Avro library's own per-allocation
//! limit is set to the same bound for the whole process, as a second line.
//!
//! Encoding writes with the latest version registered under the subject and never
//! registers one: only `echoctl schemas register` writes to the registry.

use anyhow::ensure;
use apache_avro::types::Value;
use echo_catalog::events;
use echo_catalog::record::RecordInfo;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{RawError, SubjectNameStrategy};

/// Why a record could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Nothing is registered under the subject: the environment's schemas were never
    /// registered (or were deleted). No record of the type can be written until they are.
    #[error("subject {0} is not registered in the schema registry: run `echoctl schemas register` (processors only read schemas, they never register them)")]
    Unregistered(String),
    /// The registry could not be reached; the record itself may be fine.
    #[error("schema registry unavailable: {0}")]
    RegistryUnavailable(String),
    /// The value does not fit the registered schema, or the registry refused the lookup.
    #[error("{0}")]
    Invalid(String),
}

/// Confluent's codes for a subject without versions and for a missing version.
const SUBJECT_NOT_FOUND: [u32; 2] = [40401, 40402];

use crate::decoded_size;
use crate::dependency::{Unavailable, SCHEMA_REGISTRY};

/// The most one record may weigh decoded, in bytes. echo's largest record (a chunk's
/// segments) decodes to tens of KB, and its schemas have no arrays of tiny items that could
/// make a 1 MB record (the broker's limit) weigh more; a record claiming more (a 2 GB string, a
/// billion items) is refused undecoded.
pub const MAX_DECODED_BYTES: usize = 16 * 1024 * 1024;

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
    /// The registry's URL and a client of its own, to ask whether it answers at all.
    url: String,
    http: reqwest::Client,
}

impl Codec {
    /// A codec talking to the registry at `url`. Also bounds every allocation the Avro library
    /// makes while decoding, in this whole process, by [`MAX_DECODED_BYTES`]: the library keeps
    /// the first bound it is given, so this fails if something decoded with its default
    /// (512 MiB) first.
    pub fn new(url: &str) -> anyhow::Result<Codec> {
        let bound = apache_avro::util::max_allocation_bytes(MAX_DECODED_BYTES);
        ensure!(
            bound == MAX_DECODED_BYTES,
            "the Avro allocation limit is already {bound} bytes, not {MAX_DECODED_BYTES}"
        );
        let settings = || {
            SrSettings::new_builder(url.to_string())
                .no_proxy()
                .set_timeout(std::time::Duration::from_secs(10))
                .build()
        };
        Ok(Codec {
            encoder: AvroEncoder::new(settings()?),
            decoder: AvroDecoder::new(settings()?),
            url: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(std::time::Duration::from_secs(3))
                .build()?,
        })
    }

    /// Whether the registry answers: it lists its subjects.
    pub async fn probe(&self) -> Result<(), Unavailable> {
        let down = |e: String| Unavailable::new(SCHEMA_REGISTRY, e);
        let response = self
            .http
            .get(format!("{}/subjects", self.url))
            .send()
            .await
            .map_err(|e| down(e.without_url().to_string()))?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(down(format!("GET /subjects answered {status}"))),
        }
    }

    /// Encodes `value` of record type `info` for `topic` (the environment's real name) with
    /// the latest schema registered under its subject.
    pub async fn encode(
        &self,
        topic: &str,
        info: &RecordInfo,
        value: Value,
    ) -> Result<Vec<u8>, EncodeError> {
        let strategy = SubjectNameStrategy::TopicRecordNameStrategy(
            topic.to_string(),
            info.record_name.to_string(),
        );
        self.encoder
            .encode_value(value, &strategy)
            .await
            .map_err(|e| match registry_code(&e) {
                Some(code) if SUBJECT_NOT_FOUND.contains(&code) => {
                    EncodeError::Unregistered(format!("{topic}-{}", info.record_name))
                }
                _ if e.retriable => EncodeError::RegistryUnavailable(e.to_string()),
                _ => EncodeError::Invalid(e.to_string()),
            })
    }

    /// Decodes Confluent-framed bytes into a catalogue record, unless decoded it would weigh
    /// more than [`MAX_DECODED_BYTES`] (or claims more bytes than it has).
    pub async fn decode(&self, bytes: Option<&[u8]>) -> Result<Decoded, DecodeError> {
        let (id, body) = match bytes {
            Some([0, id @ ..]) if id.len() > 4 => {
                let (id, body) = id.split_at(4);
                (u32::from_be_bytes([id[0], id[1], id[2], id[3]]), body)
            }
            _ => {
                return Err(DecodeError::Undecodable(
                    "not Confluent-framed Avro (magic byte 0 + schema id)".into(),
                ))
            }
        };
        let registry_error = |e: SRCError| {
            if e.retriable {
                DecodeError::RegistryUnavailable(e.to_string())
            } else {
                DecodeError::Undecodable(e.to_string())
            }
        };
        // The converter caches the schema, so decoding below fetches nothing again.
        let schema = self.decoder.get_schema(id).await.map_err(registry_error)?;
        decoded_size::measure(&schema.parsed, body, MAX_DECODED_BYTES)
            .map_err(|e| DecodeError::Undecodable(e.to_string()))?;
        let result = self.decoder.decode(bytes).await.map_err(registry_error)?;
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

/// The registry's `error_code` behind a converter error, when the registry answered one.
fn registry_code(error: &SRCError) -> Option<u32> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(raw) = cause.downcast_ref::<RawError>() {
            return Some(raw.error_code);
        }
        source = cause.source();
    }
    None
}
