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
    /// The tenant a quota record is about, from the payload's `tenant`: a tenant's usage is
    /// one key's state, whichever resources it comes from.
    Tenant,
}

impl KeyRule {
    /// The rule a topic declares (`resource_id`, `chunk_id` or `tenant`).
    pub fn parse(declared: &str) -> Result<KeyRule> {
        match declared {
            "resource_id" => Ok(KeyRule::ResourceId),
            "chunk_id" => Ok(KeyRule::ChunkId),
            "tenant" => Ok(KeyRule::Tenant),
            other => {
                bail!("unknown key rule {other:?}: expected resource_id, chunk_id or tenant")
            }
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
            KeyRule::Tenant => tenant(value),
        }
    }
}

impl KeyRule {
    /// The partition, among `partitions`, a record of this rule with key `key` and payload
    /// `value` belongs on: the Java client's partitioner for resources (what every echo
    /// producer uses, and what a client must use), the job's spread of runs for chunks (see
    /// [`chunk_partition`]).
    pub fn partition(self, key: &str, value: &Value, partitions: i32) -> Result<i32, String> {
        match self {
            KeyRule::ResourceId => Ok(partition_of(key, partitions)),
            KeyRule::ChunkId => match (
                field(value, "job_id"),
                field(value, "chunk_index"),
                field(value, "chunk_count"),
            ) {
                (Some(Value::String(job)), Some(Value::Int(index)), Some(Value::Int(count))) => {
                    Ok(chunk_partition(job, *index, *count, partitions))
                }
                _ => Err(
                    "the payload has no job_id, chunk_index and chunk_count to place it by".into(),
                ),
            },
            KeyRule::Tenant => Ok(partition_of(&tenant(value)?, partitions)),
        }
    }
}

/// The tenant a quota record names.
fn tenant(value: &Value) -> Result<String, String> {
    match field(value, "tenant") {
        Some(Value::String(tenant)) => Ok(tenant.clone()),
        _ => Err("the payload has no tenant to key it by".into()),
    }
}

/// The key of a chunk's commands.
pub fn chunk_key(job_id: &str, chunk_index: i32) -> String {
    format!("{job_id}:{chunk_index}")
}

/// The partition of a chunk's commands among `partitions`, in a job of `chunk_count` chunks:
/// every attempt of a chunk on the same one (so the worker owning it sees its earlier
/// attempts); a job's chunks in runs of consecutive chunks on one partition (see
/// [`run_length`]), and its runs spread over the partitions from a point derived from the
/// job in [`spread`] order, so the worker group shares a job evenly rather than by hash
/// chance.
pub fn chunk_partition(job_id: &str, chunk_index: i32, chunk_count: i32, partitions: i32) -> i32 {
    let partitions = partitions.max(1) as u32;
    let run = chunk_index.div_euclid(run_length(chunk_count)) as u32 % partitions;
    ((fnv1a(job_id.as_bytes()) % partitions + spread(run, partitions)) % partitions) as i32
}

/// Where the `position`-th of `partitions` runs goes, as an offset from the job's first
/// partition: the halves of the partitions in turn, and within each half its halves, and so
/// on. Kafka's range assignor gives each worker a range of adjacent partitions, so any two
/// consecutive runs fall to different halves, any four to different quarters: two workers get
/// a job's runs within one of each other, and a round of `partitions` runs covers each
/// partition once. Placed in order, a stride apart, a job's last runs could fall to one
/// worker: 10 runs on 12 partitions went 6 to one worker and 4 to the other.
pub fn spread(position: u32, partitions: u32) -> u32 {
    if partitions % 2 == 1 || partitions < 2 {
        return position;
    }
    let half = partitions / 2;
    spread(position / 2, half) + (position % 2) * half
}

/// Most consecutive chunks of a job placed on one partition. A worker transcribes a
/// partition's commands in order and gives each chunk the text of the chunk before it as
/// whisper's prompt, as whisper does between the windows of one file: without it every chunk
/// starts cold, which cost 0.72 WER points on the benchmark's file; with the text for two
/// chunks of every three, 0.04 (docs/PERFORMANCE.md).
pub const CONTEXT_RUN: i32 = 3;

/// Fewest runs a job is cut into, so that runs do not take all parallelism from short jobs:
/// a job of fewer than `2 × MIN_RUNS` chunks (about 3 minutes of speech) is placed chunk by
/// chunk, as many workers at once. Eight runs placed chunks one by one up to 6 minutes, and a
/// 5-minute file came back 1.16 WER points worse than whisper alone on it (4.25 % with four).
pub const MIN_RUNS: i32 = 4;

/// How many consecutive chunks of a job of `chunk_count` chunks share a partition: up to
/// [`CONTEXT_RUN`], as long as the job still makes [`MIN_RUNS`] runs.
pub fn run_length(chunk_count: i32) -> i32 {
    (chunk_count / MIN_RUNS).clamp(1, CONTEXT_RUN)
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
        chunk_of(job, index, 6)
    }

    fn chunk_of(job: &str, index: i32, count: i32) -> Value {
        Value::Record(vec![
            ("job_id".into(), Value::String(job.into())),
            ("chunk_index".into(), Value::Int(index)),
            ("chunk_count".into(), Value::Int(count)),
        ])
    }

    #[test]
    fn resource_topics_are_keyed_by_the_correlation_id() {
        let rule = KeyRule::parse("resource_id").unwrap();
        assert_eq!(rule.expected("r1", &chunk("j", 0)).unwrap(), "r1");
    }

    #[test]
    fn quota_records_are_keyed_and_placed_by_their_tenant() {
        let rule = KeyRule::parse("tenant").unwrap();
        let record = Value::Record(vec![("tenant".into(), Value::String("acme".into()))]);
        assert_eq!(rule.expected("r1", &record).unwrap(), "acme");
        assert_eq!(
            rule.partition("acme", &record, 6).unwrap(),
            partition_of("acme", 6)
        );
        assert!(rule.expected("r1", &chunk("j", 0)).is_err());
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
            (first + 6) % 12,
            "a short job's next chunk is in the other half of the partitions"
        );
        assert_eq!(chunk_partition("j7", 1, 6, 12), second);
        let no_count = Value::Record(vec![
            ("job_id".into(), Value::String("j7".into())),
            ("chunk_index".into(), Value::Int(1)),
        ]);
        assert!(chunks.partition("j7:1", &no_count, 12).is_err());
    }

    #[test]
    fn a_long_jobs_chunks_go_in_runs_of_three_a_short_jobs_one_by_one() {
        assert_eq!(run_length(1), 1);
        assert_eq!(run_length(7), 1);
        assert_eq!(run_length(8), 2);
        assert_eq!(run_length(12), CONTEXT_RUN);
        assert_eq!(run_length(i32::MAX), CONTEXT_RUN);
        assert_eq!(
            run_length(-4),
            1,
            "a nonsensical count places like a short job"
        );
        let at = |i| {
            KeyRule::ChunkId
                .partition("", &chunk_of("j", i, 29), 12)
                .unwrap()
        };
        assert_eq!([at(0), at(1), at(2)], [at(0); 3], "one run, one partition");
        assert_eq!(at(3), (at(0) + 6) % 12, "the next run in the other half");
        assert_eq!(
            at(6),
            (at(0) + 3) % 12,
            "the third in the first half's other half"
        );
        assert_eq!(at(27), at(28), "the last run may be short");
    }

    #[test]
    fn from_three_minutes_on_most_chunks_hear_the_chunk_before() {
        // A worker gives a chunk the text of the chunk before only when both are on its
        // partition. A job of 8 chunks is about 3 minutes of speech.
        for chunks in 8..=200 {
            let heard = (1..chunks)
                .filter(|&i| {
                    chunk_partition("a-job", i, chunks, 12)
                        == chunk_partition("a-job", i - 1, chunks, 12)
                })
                .count() as i32;
            assert!(
                2 * heard >= chunks - 1,
                "{chunks} chunks: only {heard} follow the chunk before on its partition"
            );
        }
    }

    #[test]
    fn runs_are_spread_over_halves_then_quarters() {
        let on_12: Vec<u32> = (0..12).map(|i| spread(i, 12)).collect();
        assert_eq!(on_12, [0, 6, 3, 9, 1, 7, 4, 10, 2, 8, 5, 11]);
        for partitions in 1..=64 {
            let mut all: Vec<u32> = (0..partitions).map(|i| spread(i, partitions)).collect();
            all.sort_unstable();
            assert_eq!(all, (0..partitions).collect::<Vec<_>>(), "on {partitions}");
        }
    }

    #[test]
    fn a_jobs_chunks_are_shared_evenly_by_range_assigned_workers() {
        // Any partition count is walked through whole: each gets a round's share of runs,
        // give or take one.
        for partitions in [1, 6, 7, 8, 12, 16, 24, 32, 64] {
            for chunks in 1..=9 * partitions {
                let run = run_length(chunks);
                let runs = (chunks + run - 1) / run;
                for p in 0..partitions {
                    let n = (0..chunks)
                        .step_by(run as usize)
                        .filter(|&i| chunk_partition("a-job", i, chunks, partitions) == p)
                        .count() as i32;
                    assert!(
                        n == runs / partitions || n == runs / partitions + 1,
                        "{chunks} chunks on {partitions}: partition {p} has {n} runs"
                    );
                }
            }
        }
        // On the chunk-commands topic's 12 partitions, each worker owning a range of them
        // (Kafka's range assignor): two workers get shares within one run of each other, three
        // or four within two runs, for any job (runs a stride apart, two workers' shares were
        // up to two runs apart: 18 and 11 chunks of 29).
        for job in (0..48).map(|j| format!("job-{j}")) {
            for (workers, apart) in [(2, 1), (3, 2), (4, 2)] {
                for chunks in 1..=90 {
                    let mut share = vec![0; workers];
                    for i in 0..chunks {
                        share[chunk_partition(&job, i, chunks, 12) as usize / (12 / workers)] += 1;
                    }
                    let (most, least) = (share.iter().max(), share.iter().min());
                    assert!(
                        most.zip(least)
                            .is_some_and(|(m, l)| m - l <= apart * run_length(chunks)),
                        "{job}: {chunks} chunks over {workers} workers: {share:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_unknown_rule_is_refused() {
        assert!(KeyRule::parse("partition").is_err());
    }
}
