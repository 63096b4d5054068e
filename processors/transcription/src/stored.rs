//! A job's chunk results kept outside the changelog: each chunk's first result is written as
//! an object under its resource's prefix when it arrives (an effect), and the state keeps only
//! where it is. A three-hour job heard on two channels is tens of thousands of timed words:
//! kept in the state, they outgrew the one record a key's state is changelogged as, and the
//! job could never complete. The input that completes a job reads them back (`observe`).

use std::collections::BTreeMap;

use echo_catalog::events::Segment;

use crate::assemble::ChunkTranscript;
use crate::decide::ReadyJob;
use crate::report::Artifact;

/// What `observe` read back for the input that completes a job: the segments of its stored
/// chunk results, by chunk index, and the chunks whose object is gone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredResults {
    /// Segments by chunk index.
    pub segments: BTreeMap<i32, Vec<Segment>>,
    /// Chunks whose object was not found or did not read back: the job cannot complete.
    pub missing: Vec<i32>,
}

/// Where the result of chunk `index` of job `job_id` of a resource is kept.
pub fn key(resource_id: &str, job_id: &str, index: i32) -> String {
    format!(
        "{}chunks/{job_id}/{index}.json",
        echo_storage::keys::prefix(resource_id)
    )
}

/// The object `chunk`'s result is kept as: its segments, as JSON.
pub fn object(resource_id: &str, job_id: &str, chunk: &ChunkTranscript) -> Artifact {
    Artifact {
        key: key(resource_id, job_id, chunk.index),
        body: serde_json::to_string(&chunk.segments).expect("segments serialize"),
        content_type: "application/json",
    }
}

/// `chunk` as the state keeps it once its object is written: where it is, no segments.
pub fn kept(resource_id: &str, job_id: &str, chunk: ChunkTranscript) -> ChunkTranscript {
    ChunkTranscript {
        segments: Vec::new(),
        stored_at: Some(key(resource_id, job_id, chunk.index)),
        ..chunk
    }
}

/// What the stored chunks of `ready` read back as, given each one's object (`None`: not
/// found), by chunk index.
pub fn read_back(ready: &ReadyJob, mut objects: BTreeMap<i32, Option<Vec<u8>>>) -> StoredResults {
    let mut found = StoredResults::default();
    for chunk in ready.chunks.iter().filter(|c| c.stored_at.is_some()) {
        let segments = objects
            .remove(&chunk.index)
            .flatten()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        match segments {
            Some(segments) => {
                found.segments.insert(chunk.index, segments);
            }
            None => found.missing.push(chunk.index),
        }
    }
    found
}

/// `ready`'s chunks with their segments: read back for those kept as objects.
pub fn with_segments(ready: &ReadyJob, stored: &StoredResults) -> Vec<ChunkTranscript> {
    ready
        .chunks
        .iter()
        .map(|chunk| match stored.segments.get(&chunk.index) {
            Some(segments) if chunk.stored_at.is_some() => ChunkTranscript {
                segments: segments.clone(),
                stored_at: None,
                ..chunk.clone()
            },
            _ => chunk.clone(),
        })
        .collect()
}
