//! The infrastructure processors depend on besides Kafka (the object store, the schema
//! registry), and what it means for one to be unavailable.
//!
//! A dependency that does not answer is no input's fault: failing inputs for it (through the
//! retry tiers into the DLQ) would turn a few minutes of outage into lost work. So after a
//! transient failure the runtime asks the processor to [`probe`](crate::Processor::probe) its
//! dependencies; one that does not answer is waited out (the transaction aborts, the
//! processor pauses, reports not ready and retries the same input once it answers again).

/// The schema registry, whose schemas every record is read and written with.
pub const SCHEMA_REGISTRY: &str = "schema-registry";

/// The S3 object store the audio and reports live in.
pub const OBJECT_STORE: &str = "object-store";

/// A dependency that does not answer, and what it answered instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{dependency} unavailable: {error}")]
pub struct Unavailable {
    /// Which: [`SCHEMA_REGISTRY`], [`OBJECT_STORE`], or a processor's own.
    pub dependency: &'static str,
    /// What the probe got instead of an answer, for operators.
    pub error: String,
}

impl Unavailable {
    /// `dependency` did not answer, with `error`.
    pub fn new(dependency: &'static str, error: impl Into<String>) -> Unavailable {
        Unavailable {
            dependency,
            error: error.into(),
        }
    }
}
