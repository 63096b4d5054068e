//! Records as a handler sees them: decoded inputs and the outputs it asks for.

use apache_avro::types::Value;
use echo_catalog::record::{EventMetadata, Record};

use crate::handler::HandlerError;

/// Where an input record was first read from (retries keep the original position).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourcePosition {
    /// Catalogue name of the topic (without the environment prefix).
    pub topic: String,
    /// Partition it was read from.
    pub partition: i32,
    /// Offset it was read at.
    pub offset: i64,
}

/// A decoded input record.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Dotted type name (`upload.requested`).
    pub type_name: &'static str,
    /// The record key (the resource id for most topics).
    pub key: String,
    /// The record's metadata, already decoded since every handler needs it.
    pub metadata: EventMetadata,
    /// The whole Avro value; decode it with [`Incoming::decode`].
    pub value: Value,
    /// Where it came from.
    pub source: SourcePosition,
    /// How many times it failed before (0 on first delivery).
    pub attempt: u32,
}

impl Incoming {
    /// An input as the runtime would hand it over after reading `record` under `key` from
    /// offset 0 of `topic` on its first delivery: for tests and tools that drive a handler
    /// directly.
    pub fn from_record<R: Record>(key: &str, record: &R, topic: &str) -> Incoming {
        Incoming {
            type_name: R::TYPE,
            key: key.to_string(),
            metadata: record.metadata().clone(),
            value: apache_avro::to_value(record).expect("catalogue records always serialize"),
            source: SourcePosition {
                topic: topic.to_string(),
                partition: 0,
                offset: 0,
            },
            attempt: 0,
        }
    }

    /// Whether this input is of record type `R`.
    pub fn is<R: Record>(&self) -> bool {
        self.type_name == R::TYPE
    }

    /// The payload as its Rust type; a mismatch is a permanent error.
    pub fn decode<R: Record>(&self) -> Result<R, HandlerError> {
        from_value(&self.value)
    }
}

/// An event or command a handler decided to emit.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Dotted type name; the catalogue says which topic it goes to.
    pub type_name: &'static str,
    /// The record key.
    pub key: String,
    /// Its metadata.
    pub metadata: EventMetadata,
    /// Its Avro value.
    pub value: Value,
}

impl Outgoing {
    /// Wraps a record to emit under `key`.
    pub fn new<R: Record>(key: impl Into<String>, record: &R) -> Outgoing {
        let (metadata, value) = written_form(record);
        Outgoing {
            type_name: R::TYPE,
            key: key.into(),
            metadata,
            value,
        }
    }

    /// Whether this output is of record type `R`.
    pub fn is<R: Record>(&self) -> bool {
        self.type_name == R::TYPE
    }

    /// The payload as its Rust type.
    pub fn decode<R: Record>(&self) -> Result<R, HandlerError> {
        from_value(&self.value)
    }
}

fn from_value<R: Record>(value: &Value) -> Result<R, HandlerError> {
    apache_avro::from_value(value)
        .map_err(|e| HandlerError::Permanent(format!("record does not decode as {}: {e}", R::TYPE)))
}

/// A record as it is written: its metadata and Avro value, with `metadata.schema_version` set
/// to the version of the schema it is written with (the catalogue's `x-versions`), whatever
/// the producer put there, so a consumer can tell the versions apart.
pub fn written_form<R: Record>(record: &R) -> (EventMetadata, Value) {
    let version = echo_catalog::events::info(R::TYPE).map_or(1, |i| i.schema_version());
    let mut value = apache_avro::to_value(record).expect("catalogue records always serialize");
    if let Value::Record(fields) = &mut value {
        for (name, field) in fields.iter_mut() {
            if let (true, Value::Record(metadata)) = (name == "metadata", field) {
                for (name, field) in metadata.iter_mut() {
                    if name == "schema_version" {
                        *field = Value::Int(version);
                    }
                }
            }
        }
    }
    let metadata = EventMetadata {
        schema_version: version,
        ..record.metadata().clone()
    };
    (metadata, value)
}

/// Reads the `metadata` field of any catalogue record.
pub fn metadata_of(value: &Value) -> Option<EventMetadata> {
    match value {
        Value::Record(fields) => fields
            .iter()
            .find(|(name, _)| name == "metadata")
            .and_then(|(_, v)| apache_avro::from_value(v).ok()),
        _ => None,
    }
}
