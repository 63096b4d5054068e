//! echo's catalogue: the topics (`topics/topics.toml`) and the Avro schemas (`avro/`) as
//! Rust values, so that code, tools and docs derive from one source of truth.

pub mod asyncapi;
pub mod avsc;
pub mod docs;
pub mod events;
pub mod flow;
pub mod keys;
pub mod owner;
pub mod record;
pub mod sealed;
pub mod strimzi;
pub mod tenant;
pub mod topics;

pub use docs::events_markdown;
pub use events::Annotations;
pub use keys::KeyRule;
pub use record::{EventMetadata, Record, RecordInfo};
pub use topics::{Catalogue, ProcessorSpec, TopicKind, TopicSpec};
