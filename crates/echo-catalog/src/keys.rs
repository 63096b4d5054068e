//! How records are keyed: the rule each topic declares (`key` in `topics/topics.toml`) and
//! the key a record must carry under it.
//!
//! A processor keeps its state by the record key, while its handlers act on what the record
//! says (the resource in `metadata.correlation_id`, the chunk in the payload). The two must be
//! one: a record whose key names another resource than its payload would read and change the
//! state of the wrong one. State is also kept per partition, so a key is only itself on the
//! partition its rule places it on: the same key on another partition would meet an empty
//! state. The runtime checks every record's key and partition against its topic's rule before
//! handling it, and every output's key before publishing it.

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

impl KeyRule {
    /// The partition, among `partitions`, a record of this rule with key `key` and payload
    /// `value` belongs on: the Java client's partitioner for resources (what every echo
    /// producer uses, and what a client must use), the job's run of consecutive partitions for
    /// chunks (see [`chunk_partition`]).
    pub fn partition(self, key: &str, value: &Value, partitions: i32) -> Result<i32, String> {
        match self {
            KeyRule::ResourceId => Ok(partition_of(key, partitions)),
            KeyRule::ChunkId => match (field(value, "job_id"), field(value, "chunk_index")) {
                (Some(Value::String(job)), Some(Value::Int(index))) => {
                    Ok(chunk_partition(job, *index, partitions))
                }
                _ => Err("the payload has no job_id and chunk_index to place it by".into()),
            },
        }
    }
}

/// The key of a chunk's commands.
pub fn chunk_key(job_id: &str, chunk_index: i32) -> String {
    format!("{job_id}:{chunk_index}")
}

/// The partition of a chunk's commands among `partitions`: every attempt of a chunk on the same
/// one (so the worker owning it sees its earlier attempts), and one job's chunks spread over
/// the partitions from a point derived from the job, [`CHUNK_STRIDE`] apart, so the worker
/// group shares a job evenly rather than by hash chance.
pub fn chunk_partition(job_id: &str, chunk_index: i32, partitions: i32) -> i32 {
    (chunk_placement(job_id, chunk_index) % partitions.max(1) as u32) as i32
}

/// How far apart a job's consecutive chunks are placed. Whole rounds of chunks cover every
/// partition once whatever the stride; it decides where the chunks left over after them go.
/// Placed one apart, those fell on adjacent partitions, which Kafka's range assignor gives to
/// one worker: 29 chunks on 12 partitions went 17 to one worker and 12 to the other. 101 is
/// a prime above any partition count, so every count is still walked through whole, and it
/// is 5 apart on 12 partitions: the leftovers alternate between the halves and quarters a
/// group of 2 or 4 workers owns.
pub const CHUNK_STRIDE: u32 = 101;

/// [`chunk_partition`] before it is taken modulo the partition count: what a producer that
/// does not know the count asks for (`Outgoing::on_partition`).
pub fn chunk_placement(job_id: &str, chunk_index: i32) -> u32 {
    // The job's point halved, so that the sum stays below 2^32 (a wrap would shift the
    // remainder) for any job of fewer than 21 million chunks.
    (fnv1a(job_id.as_bytes()) >> 1).wrapping_add((chunk_index as u32).wrapping_mul(CHUNK_STRIDE))
}

/// 32-bit FNV-1a: a stable hash, the same in every process and release.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Kafka's murmur2 hash of `key` (the Java client's `Utils.murmur2`, which librdkafka's
/// `murmur2_random` partitioner reproduces for non-null keys).
pub fn murmur2(key: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ key.len() as u32;
    let mut words = key.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions`: the positive part of its murmur2 hash, modulo
/// the partition count, as the Java client's default partitioner computes it.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    (murmur2(key.as_bytes()) & 0x7fff_ffff) % partitions.max(1)
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
    fn murmur2_matches_the_java_clients_test_vectors() {
        for (key, hash) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key.as_bytes()), hash, "{key}");
        }
    }

    #[test]
    fn records_are_placed_by_their_rule() {
        let resource = KeyRule::ResourceId;
        assert_eq!(
            resource.partition("foobar", &chunk("j", 0), 6).unwrap(),
            partition_of("foobar", 6)
        );
        let chunks = KeyRule::ChunkId;
        let first = chunks.partition("j7:0", &chunk("j7", 0), 12).unwrap();
        let second = chunks.partition("j7:1", &chunk("j7", 1), 12).unwrap();
        assert_eq!(
            second,
            (first + 5) % 12,
            "a job's chunks are 101 (5 on 12) apart"
        );
        assert_eq!(chunk_partition("j7", 1, 12), second);
    }

    #[test]
    fn a_jobs_chunks_are_shared_evenly_by_range_assigned_workers() {
        // Any partition count is walked through whole: each gets a round's share, give or
        // take one.
        for partitions in [6, 8, 12, 16, 24, 32, 64] {
            for chunks in 1..=3 * partitions {
                for p in 0..partitions {
                    let n = (0..chunks)
                        .filter(|&i| chunk_partition("a-job", i, partitions) == p)
                        .count() as i32;
                    assert!(
                        n == chunks / partitions || n == chunks / partitions + 1,
                        "{chunks} chunks on {partitions}: partition {p} has {n}"
                    );
                }
            }
        }
        // On the chunk-commands topic's 12 partitions, 2, 3 or 4 workers each owning a range
        // of them (Kafka's range assignor) get shares within two chunks of each other, for
        // any job (one stride apart they were up to 6 apart).
        for job in (0..24).map(|j| format!("job-{j}")) {
            for workers in [2, 3, 4] {
                for chunks in 1..=60 {
                    let mut share = vec![0; workers];
                    for i in 0..chunks {
                        share[chunk_partition(&job, i, 12) as usize / (12 / workers)] += 1;
                    }
                    let (most, least) = (share.iter().max(), share.iter().min());
                    assert!(
                        most.zip(least).is_some_and(|(m, l)| m - l <= 2),
                        "{job}: {chunks} chunks over {workers} workers: {share:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_unknown_rule_is_refused() {
        assert!(KeyRule::parse("tenant").is_err());
    }
}
