//! What the cluster says about a resource besides its events: the dead letters and retry
//! records of its keys, the timers and held records in the processors' state, and how far
//! each processor's group has read. Gathered by `read`, judged by `verdict`.

use std::collections::HashMap;

use serde::Serialize;

/// Where a record was first read, as the runtime's retry and DLQ headers say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// Catalogue name of the topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// A record a processor gave up on.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The processor whose DLQ holds it.
    pub processor: String,
    /// Its DLQ partition and offset (for `echoctl dlq show`).
    pub partition: i32,
    /// Its offset in the DLQ.
    pub offset: i64,
    /// The error class (`permanent`, `undecodable`, …).
    pub class: String,
    /// Why.
    pub reason: String,
    /// Where the record was first read.
    pub origin: Option<Origin>,
    /// The record's type, when its headers say.
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    /// When it was dead-lettered (the DLQ record's timestamp).
    pub at_ms: i64,
}

/// A record waiting in (or gone through) a retry tier.
#[derive(Debug, Clone, Serialize)]
pub struct Retrying {
    /// The processor that retries it.
    pub processor: String,
    /// Its tier, from 1.
    pub tier: usize,
    /// Attempts made so far.
    pub attempt: u32,
    /// When it runs again.
    pub due_at_ms: Option<i64>,
    /// Where the record was first read.
    pub origin: Option<Origin>,
    /// Whether the processor's group has read past it (it ran again).
    pub consumed: bool,
    /// Where the retry record itself is: catalogue topic, partition, offset.
    pub position: (String, i32, i64),
}

/// A timer pending in a processor's state.
#[derive(Debug, Clone)]
pub struct PendingTimer {
    /// The processor that keeps it.
    pub processor: String,
    /// Its name (`upload-expiry`, `chunk-3`).
    pub name: String,
    /// When it fires.
    pub due_at_ms: i64,
}

/// How far one processor's consumer group has read one partition.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    /// The next offset the group will read; `None` before its first commit there.
    pub committed: Option<i64>,
    /// The partition's end (the next offset to be written).
    pub end: i64,
}

/// One processor's consumer group.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// Members now in the group (running instances).
    pub members: usize,
    /// Its position on the partitions of the resource, by (catalogue topic, partition).
    pub positions: HashMap<(String, i32), Position>,
}

/// Everything `read` found about the resource besides its events.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Dead letters of the resource's keys, every processor.
    pub dead_letters: Vec<DeadLetter>,
    /// Retry records of the resource's keys, every processor.
    pub retries: Vec<Retrying>,
    /// Pending timers of the resource's keys, every processor.
    pub timers: Vec<PendingTimer>,
    /// Event ids held in a retry tier, per processor (later records of the key wait behind
    /// them).
    pub parked: Vec<(String, String)>,
    /// Every processor's group, by processor name.
    pub groups: HashMap<String, Group>,
    /// The chunk workers' `express_max_chunks`: which of their two groups a chunk command is
    /// for (0, the default here: the pool's).
    pub express_max_chunks: i32,
    /// Now, milliseconds since the epoch, when the evidence was read.
    pub now_ms: i64,
}
