//! What every event and command has in common, and the table of all of them.

use apache_avro::AvroSchema;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Metadata carried by every event and command (the `echo.common.EventMetadata` record).
///
/// It makes a chain traceable (`correlation_id`, `causation_id`) and consumers idempotent
/// (`event_id`), without any consumer having to understand the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.common")]
pub struct EventMetadata {
    /// Unique id of this record (UUID); consumers deduplicate by it.
    pub event_id: String,
    /// The resource the whole chain is about (UUID); the same on every event of one upload.
    pub correlation_id: String,
    /// `event_id` of the record that caused this one; `None` for a client's first request.
    pub causation_id: Option<String>,
    /// When the fact happened (or the command was issued), milliseconds since the Unix epoch.
    pub occurred_at: i64,
    /// Who wrote it: processor name or client, for tracing a chain across contexts.
    pub producer: String,
    /// Version of the payload schema, so a consumer can tell old records from new ones.
    pub schema_version: i32,
}

impl EventMetadata {
    /// Metadata of record `event_id`, written by `producer` at `occurred_at` (ms since the
    /// epoch) about the resource `correlation_id`, with no cause yet: a client's first request.
    /// [`EventMetadata::with_cause`] names the cause of any other record.
    pub fn new(
        event_id: impl Into<String>,
        correlation_id: impl Into<String>,
        producer: impl Into<String>,
        occurred_at: i64,
    ) -> Self {
        EventMetadata {
            event_id: event_id.into(),
            correlation_id: correlation_id.into(),
            causation_id: None,
            occurred_at,
            producer: producer.into(),
            schema_version: 1,
        }
    }

    /// The same metadata, caused by the record whose event id is `cause` (none: no cause).
    pub fn with_cause(self, cause: Option<&str>) -> Self {
        EventMetadata {
            causation_id: cause.map(str::to_string),
            ..self
        }
    }
}

/// An event or command type of the catalogue: a Rust type that mirrors one `.avsc` file.
pub trait Record: Serialize + DeserializeOwned + AvroSchema + Send + Sync + 'static {
    /// The dotted type name used in topics/ and in `ce_type` (`upload.requested`).
    const TYPE: &'static str;
    /// The metadata part of the record.
    fn metadata(&self) -> &EventMetadata;
}

/// One row of the record table: ties a type name to its schema file and Rust type.
#[derive(Debug, Clone, Copy)]
pub struct RecordInfo {
    /// The dotted type name (`upload.requested`).
    pub type_name: &'static str,
    /// The full Avro record name (`echo.upload.UploadRequested`); with the topic it forms the
    /// registry subject, and decoding maps it back to the type.
    pub record_name: &'static str,
    /// The bounded context whose `avro/<context>/` folder holds the schema.
    pub context: &'static str,
    /// The `.avsc` text, compiled in from `avro/<context>/<type>.avsc`.
    pub avsc: &'static str,
    /// The schema derived from the Rust type; a test compares it with `avsc`.
    pub derived_schema: fn() -> apache_avro::Schema,
}
