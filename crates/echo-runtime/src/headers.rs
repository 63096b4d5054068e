//! Kafka headers echo writes: the CloudEvents Kafka binding (binary mode), W3C trace
//! context, and echo's own retry/DLQ bookkeeping.

use echo_catalog::record::EventMetadata;

use crate::spans::TraceParent;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// CloudEvents attributes, as the Kafka protocol binding names them.
pub mod ce {
    /// Always `1.0`.
    pub const SPECVERSION: &str = "ce_specversion";
    /// The event id (our `event_id`).
    pub const ID: &str = "ce_id";
    /// The dotted type name (`upload.requested`).
    pub const TYPE: &str = "ce_type";
    /// Who produced it (`/echo/<processor>`).
    pub const SOURCE: &str = "ce_source";
    /// When it happened, RFC 3339.
    pub const TIME: &str = "ce_time";
    /// The resource the event is about.
    pub const SUBJECT: &str = "ce_subject";
    /// Extension: the chain the event belongs to.
    pub const CORRELATION_ID: &str = "ce_correlationid";
    /// Extension: the event that caused this one.
    pub const CAUSATION_ID: &str = "ce_causationid";
    /// Body encoding.
    pub const CONTENT_TYPE: &str = "content-type";
}

/// W3C trace context header: the resource's trace, and the span that produced the record.
pub const TRACEPARENT: &str = "traceparent";

/// Headers echo's runtime adds when it moves a record to a retry tier or the DLQ.
pub mod echo {
    /// Attempts already made (1 after the first failure).
    pub const ATTEMPT: &str = "echo_retry_attempt";
    /// Milliseconds since the epoch before which the record must not run again.
    pub const DUE_AT: &str = "echo_retry_due_at";
    /// `transient`, `permanent`, `undecodable`, `wrong_topic`, `key_mismatch` or `poison`.
    pub const ERROR_CLASS: &str = "echo_error_class";
    /// Human-readable reason.
    pub const ERROR_MESSAGE: &str = "echo_error_message";
    /// Catalogue name of the topic the record was first read from.
    pub const ORIGINAL_TOPIC: &str = "echo_original_topic";
    /// Partition of the first read.
    pub const ORIGINAL_PARTITION: &str = "echo_original_partition";
    /// Offset of the first read.
    pub const ORIGINAL_OFFSET: &str = "echo_original_offset";
    /// Processor that gave up on the record.
    pub const PROCESSOR: &str = "echo_processor";
    /// Size in bytes of the value the record arrived with (DLQ records).
    pub const VALUE_BYTES: &str = "echo_value_bytes";
    /// SHA-256 (hex) of the value the record arrived with (DLQ records), so a dead letter
    /// whose value had to be cut can still be matched with the original.
    pub const VALUE_SHA256: &str = "echo_value_sha256";
    /// Present when a dead letter does not carry the whole original record: says what was
    /// cut (`value: kept 998000 of 1040000 bytes`). Such a record cannot be redriven.
    pub const TRUNCATED: &str = "echo_truncated";
}

/// An owned, ordered header list that is easy to read and extend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderList(pub Vec<(String, Vec<u8>)>);

impl HeaderList {
    /// Copies the headers of a Kafka message.
    pub fn from_kafka<H: Headers>(headers: Option<&H>) -> HeaderList {
        let Some(headers) = headers else {
            return HeaderList::default();
        };
        HeaderList(
            headers
                .iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect(),
        )
    }

    /// The value of the last header named `name`, as text.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Replaces (or adds) a header.
    pub fn set(&mut self, name: &str, value: impl ToString) {
        self.0.retain(|(k, _)| k != name);
        self.0
            .push((name.to_string(), value.to_string().into_bytes()));
    }

    /// The headers in rdkafka's form.
    pub fn to_kafka(&self) -> OwnedHeaders {
        self.0.iter().fold(
            OwnedHeaders::new_with_capacity(self.0.len()),
            |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v),
                })
            },
        )
    }
}

/// The CloudEvents headers of a record, and its `traceparent`: `trace` names the span that
/// produced it ([`TraceParent::own`] for a client's record, which no span produced).
pub fn cloud_event(metadata: &EventMetadata, type_name: &str, trace: &TraceParent) -> HeaderList {
    let mut h = HeaderList::default();
    h.set(ce::SPECVERSION, "1.0");
    h.set(ce::ID, &metadata.event_id);
    h.set(ce::TYPE, type_name);
    h.set(ce::SOURCE, format!("/echo/{}", metadata.producer));
    h.set(ce::TIME, rfc3339(metadata.occurred_at));
    h.set(ce::SUBJECT, &metadata.correlation_id);
    h.set(ce::CORRELATION_ID, &metadata.correlation_id);
    if let Some(cause) = &metadata.causation_id {
        h.set(ce::CAUSATION_ID, cause);
    }
    h.set(ce::CONTENT_TYPE, "application/avro");
    h.set(TRACEPARENT, trace.header());
    h
}

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> EventMetadata {
        EventMetadata::new(
            "6f1c2b3a-0000-4000-8000-00000000abcd",
            "11111111-2222-4333-8444-555555555555",
            "upload",
            1_700_000_000_123,
        )
        .with_cause(Some("c"))
    }

    #[test]
    fn cloud_event_headers_follow_the_kafka_binding() {
        let h = cloud_event(&meta(), "upload.url.generated", &TraceParent::own(&meta()));
        assert_eq!(h.get(ce::SPECVERSION), Some("1.0"));
        assert_eq!(h.get(ce::TYPE), Some("upload.url.generated"));
        assert_eq!(h.get(ce::SOURCE), Some("/echo/upload"));
        assert_eq!(h.get(ce::TIME), Some("2023-11-14T22:13:20.123Z"));
        assert_eq!(
            h.get(TRACEPARENT),
            Some("00-11111111222243338444555555555555-6f1c2b3a00004000-01")
        );
    }

    #[test]
    fn set_replaces_and_survives_a_kafka_round_trip() {
        let mut h = HeaderList::default();
        h.set("a", 1);
        h.set("a", 2);
        let back = HeaderList::from_kafka(Some(&h.to_kafka()));
        assert_eq!(back.get("a"), Some("2"));
        assert_eq!(back.0.len(), 1);
    }
}
