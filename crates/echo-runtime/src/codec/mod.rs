//! Avro through the Schema Registry in Confluent wire format (magic 0, 4-byte schema id,
//! Avro body). Subjects follow TopicRecordNameStrategy (`<topic>-<record full name>`), since
//! one topic carries several event types.
//!
//! A record is written with the schema this build was compiled with, under the id the
//! registry has for exactly that schema ([`writer_ids`]): registering a newer version ahead
//! of a deployment changes nothing until the code that writes it runs. Processors never
//! register; only `echoctl schemas register` writes to the registry. A record is read with
//! the schema its id names ([`writer_schemas`]). Registry errors are never cached, except a
//! definitive "no schema has this id", briefly and for a bounded number of ids.
//!
//! A body is measured against its writer schema before it is decoded ([`decoded_size`]), so a
//! small record cannot decode into hundreds of MB; the Avro library's own per-allocation
//! limit is set to the same bound for the whole process, as a second line.

mod writer_ids;
mod writer_schemas;

use std::collections::HashMap;
use std::sync::OnceLock;

use anyhow::ensure;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use echo_catalog::events;
use echo_catalog::record::RecordInfo;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{get_payload, RawError};

use crate::decoded_size;
use crate::dependency::{Unavailable, SCHEMA_REGISTRY};
use writer_ids::WriterIds;
use writer_schemas::WriterSchemas;

/// Why a record could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The schema this build writes with is not registered under the subject: the
    /// environment's schemas were never registered (or were deleted), or this build was
    /// deployed before its schemas were. No record of the type can be written until they are.
    #[error("subject {0} has no version with the schema this build writes: run `echoctl schemas register` of this build before deploying it (processors only read schemas, they never register them)")]
    Unregistered(String),
    /// The registry could not be reached; the record itself may be fine.
    #[error("schema registry unavailable: {0}")]
    RegistryUnavailable(String),
    /// The value does not fit the schema this build writes with.
    #[error("{0}")]
    Invalid(String),
}

/// Confluent's code for "no schema has this id" (or "this schema is not under the subject").
const SCHEMA_NOT_FOUND: u32 = 40403;

/// Confluent's codes for a subject without versions and for a schema not under the subject:
/// what looking up a schema that was never registered answers.
const SUBJECT_OR_SCHEMA_NOT_FOUND: [u32; 2] = [40401, SCHEMA_NOT_FOUND];

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
    writer_ids: WriterIds,
    writer_schemas: WriterSchemas,
    /// The registry's URL and the client that looks up ids, also asked whether it answers.
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
        let url = url.trim_end_matches('/').to_string();
        let timeout = std::time::Duration::from_secs(10);
        let settings = SrSettings::new_builder(url.clone())
            .no_proxy()
            .set_timeout(timeout)
            .build()?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .build()?;
        Ok(Codec {
            writer_ids: WriterIds::new(&url, http.clone()),
            writer_schemas: WriterSchemas::new(settings),
            http,
            url,
        })
    }

    /// Whether the registry answers: it lists its subjects.
    pub async fn probe(&self) -> Result<(), Unavailable> {
        let down = |e: String| Unavailable::new(SCHEMA_REGISTRY, e);
        let response = self
            .http
            .get(format!("{}/subjects", self.url))
            .timeout(std::time::Duration::from_secs(3))
            .send()
            .await
            .map_err(|e| down(e.without_url().to_string()))?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(down(format!("GET /subjects answered {status}"))),
        }
    }

    /// Encodes `value` of record type `info` for `topic` (the environment's real name) with
    /// the schema this build has for it, under the id the registry gives that schema.
    pub async fn encode(
        &self,
        topic: &str,
        info: &RecordInfo,
        value: Value,
    ) -> Result<Vec<u8>, EncodeError> {
        let schema = writer_schema(info)?;
        let subject = format!("{topic}-{}", info.record_name);
        let id = self.writer_ids.id_of(&subject, info.avsc).await?;
        let body = GenericDatumWriter::builder(schema)
            .build()
            .and_then(|writer| writer.write_value_to_vec(value))
            .map_err(|e| EncodeError::Invalid(format!("{subject}: {e}")))?;
        Ok(get_payload(id, body))
    }

    /// Decodes Confluent-framed bytes into a catalogue record, unless decoded it would weigh
    /// more than [`MAX_DECODED_BYTES`] (or claims more bytes than it has).
    pub async fn decode(&self, bytes: Option<&[u8]>) -> Result<Decoded, DecodeError> {
        let (id, mut body) = match bytes {
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
        let schema = self.writer_schemas.get(id).await?;
        decoded_size::measure(&schema, body, MAX_DECODED_BYTES)
            .map_err(|e| DecodeError::Undecodable(e.to_string()))?;
        let value = GenericDatumReader::builder(&schema)
            .build()
            .and_then(|reader| reader.read_value(&mut body))
            .map_err(|e| DecodeError::Undecodable(format!("schema {id}: {e}")))?;
        let Schema::Record(record) = schema.as_ref() else {
            return Err(DecodeError::Undecodable(format!(
                "schema {id} is not a record"
            )));
        };
        let name = record.name.fullname(None);
        let info = events::by_record_name(&name).ok_or(DecodeError::UnknownType(name))?;
        Ok(Decoded { info, value })
    }
}

/// The schema this build writes records of `info`'s type with, parsed once.
fn writer_schema(info: &RecordInfo) -> Result<&'static Schema, EncodeError> {
    static PARSED: OnceLock<HashMap<&'static str, Schema>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        events::all()
            .iter()
            .filter_map(|i| Some((i.type_name, i.schema().ok()?)))
            .collect()
    });
    parsed.get(info.type_name).ok_or_else(|| {
        EncodeError::Invalid(format!("{}: its schema does not parse", info.type_name))
    })
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
