//! How records are keyed: the rule each topic declares (`key` in `topics/topics.toml`) and
//! the key a record must carry under it.
//!
//! A processor keeps its state by the record key, while its handlers act on what the record
//! says (the resource in `metadata.correlation_id`, the chunk in the payload). The two must be
//! one: a record whose key names another resource than its payload would read and change the
//! state of the wrong one. The runtime checks every record against its topic's rule before
//! handling it, and every output before publishing it.

use anyhow::{bail, Result};
use apache_avro::types::Value;

/// What a topic's records are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRule {
    /// The resource id, which every record carries as `metadata.correlation_id`.
    ResourceId,
    /// One chunk of a job, `"{job_id}:{chunk_index}"` from the payload, so a job's chunks
    /// spread over partitions while every attempt of one chunk stays on one.
    ChunkId,
}

impl KeyRule {
    /// The rule a topic declares (`resource_id` or `chunk_id`).
    pub fn parse(declared: &str) -> Result<KeyRule> {
        match declared {
            "resource_id" => Ok(KeyRule::ResourceId),
            "chunk_id" => Ok(KeyRule::ChunkId),
            other => bail!("unknown key rule {other:?}: expected resource_id or chunk_id"),
        }
    }

    /// The key a record with this correlation id and payload must carry, or why none can be
    /// derived (a chunk command without its job and index).
    pub fn expected(self, correlation_id: &str, value: &Value) -> Result<String, String> {
        match self {
            KeyRule::ResourceId => Ok(correlation_id.to_string()),
            KeyRule::ChunkId => match (field(value, "job_id"), field(value, "chunk_index")) {
                (Some(Value::String(job)), Some(Value::Int(index))) => Ok(chunk_key(job, *index)),
                _ => Err("the payload has no job_id and chunk_index to key it by".into()),
            },
        }
    }
}

/// The key of a chunk's commands.
pub fn chunk_key(job_id: &str, chunk_index: i32) -> String {
    format!("{job_id}:{chunk_index}")
}

/// A top-level field of a record value.
fn field<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    match value {
        Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(job: &str, index: i32) -> Value {
        Value::Record(vec![
            ("job_id".into(), Value::String(job.into())),
            ("chunk_index".into(), Value::Int(index)),
        ])
    }

    #[test]
    fn resource_topics_are_keyed_by_the_correlation_id() {
        let rule = KeyRule::parse("resource_id").unwrap();
        assert_eq!(rule.expected("r1", &chunk("j", 0)).unwrap(), "r1");
    }

    #[test]
    fn chunk_commands_are_keyed_by_job_and_index() {
        let rule = KeyRule::parse("chunk_id").unwrap();
        assert_eq!(rule.expected("r1", &chunk("j7", 3)).unwrap(), "j7:3");
        assert!(rule.expected("r1", &Value::Record(vec![])).is_err());
    }

    #[test]
    fn an_unknown_rule_is_refused() {
        assert!(KeyRule::parse("tenant").is_err());
    }
}
