//! Lanes: which of the two worker groups takes a chunk command.
//!
//! Every chunk command goes to one topic, read by two consumer groups of this processor's
//! code: `chunk-worker`, the pool that transcribes long jobs, and `express-chunk-worker`, a
//! worker of its own for the first attempt of jobs of at most
//! `chunk_worker.express_max_chunks` chunks (a clip). Each group takes its lane's commands and
//! passes over the other's. A clip that arrives while the pool is busy with long files is
//! transcribed at once, beside them, instead of after the chunk in progress and the chunks
//! queued before it: on a machine whose cores the pool keeps busy, the clip shares a core for
//! the second its whisper run takes, and the long jobs lose that second, not the clip the
//! minutes of theirs. A retry (attempt 2 on) is the pool's, so a clip whose express worker
//! is gone or slow is still transcribed once its deadline passes.

use echo_catalog::events::ChunkProcess;

/// Which group of workers takes a chunk command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The pool: long jobs' chunks, and every retry.
    Standard,
    /// The worker that keeps short jobs from waiting behind long ones.
    Express,
}

impl Lane {
    /// The lane of `command`: express for the first attempt at a chunk of a job of at most
    /// `express_max_chunks` chunks (0: no job is), the pool's for everything else.
    pub fn of(command: &ChunkProcess, express_max_chunks: i32) -> Lane {
        Lane::for_attempt(command.attempt, command.chunk_count, express_max_chunks)
    }

    /// The lane of attempt `attempt` at a chunk of a job of `chunk_count` chunks.
    pub fn for_attempt(attempt: i32, chunk_count: i32, express_max_chunks: i32) -> Lane {
        if express_max_chunks > 0 && attempt <= 1 && chunk_count <= express_max_chunks {
            Lane::Express
        } else {
            Lane::Standard
        }
    }

    /// The processor (catalogue entry and consumer group) whose workers take this lane.
    pub fn processor(self) -> &'static str {
        match self {
            Lane::Standard => "chunk-worker",
            Lane::Express => "express-chunk-worker",
        }
    }
}
