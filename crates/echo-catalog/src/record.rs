//! What every event and command has in common, and the table of all of them.

use serde::{de::DeserializeOwned, Serialize};

pub use crate::events::EventMetadata;

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

/// An event or command type of the catalogue: the Rust type generated from one `.avsc` file.
pub trait Record: Serialize + DeserializeOwned + Send + Sync + 'static {
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
    /// The schema as registered: `avro/<context>/<type>.avsc` with the shared types it uses
    /// defined in it ([`crate::avsc`]).
    pub avsc: &'static str,
}
