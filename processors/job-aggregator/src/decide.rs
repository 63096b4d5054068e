//! The job aggregator's logic as pure functions: no I/O, no clock but `ctx.now_ms`, so every
//! rule is testable with hand-made inputs and timers.
//!
//! Per resource (its job): `processing.job.created` → one deadline timer per chunk;
//! `chunk.processing.completed` / `chunk.processing.failed` → the chunk is settled and its
//! timer cancelled; a timer of a chunk still pending → `processing.timeout`, then either the
//! chunk's `chunk.process` again (next attempt, new deadline) or, past the attempt limit,
//! `chunk.processing.failed`. A chunk's first settlement wins; anything later is ignored.

use std::ops::Range;

use echo_catalog::events;
use echo_catalog::events::{
    ChunkProcess, ChunkProcessingCompleted, ChunkProcessingFailed, ProcessingJobCreated,
    ProcessingTimeout,
};
use echo_runtime::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::JobAggregatorConfig;
use echo_chunking::{chunk_command, plan_fixed, FIRST_ATTEMPT};

/// The job aggregator's decisions: a deadline per chunk, re-issues, failures past the limit.
/// Pure: built from configuration alone.
#[derive(Debug, Clone)]
pub struct JobAggregatorDecider {
    /// Chunk deadlines and the re-issue limit.
    pub config: JobAggregatorConfig,
}

impl Decider for JobAggregatorDecider {
    type State = AggregatorState;
    type Observation = ();
    type Effect = NoEffect;

    fn name(&self) -> &'static str {
        "job-aggregator"
    }

    fn handles(&self) -> &'static [&'static str] {
        &[
            events::ProcessingJobCreated::TYPE,
            events::ChunkProcessingCompleted::TYPE,
            events::ChunkProcessingFailed::TYPE,
        ]
    }

    fn emits(&self) -> &'static [&'static str] {
        &[
            events::ProcessingTimeout::TYPE,
            events::ChunkProcess::TYPE,
            events::ChunkProcessingFailed::TYPE,
        ]
    }

    /// Decides what an input causes. Needs no observation: everything is in the state.
    fn decide(
        &self,
        state: &AggregatorState,
        input: Input<'_>,
        _observed: (),
        ctx: &Context,
    ) -> Result<Decision, HandlerError> {
        let config = &self.config;
        match input {
            Input::Record(record) if record.is::<ProcessingJobCreated>() => {
                on_job_created(config, state, record, ctx)
            }
            Input::Record(record) if record.is::<ChunkProcessingCompleted>() => {
                let done: ChunkProcessingCompleted = record.decode()?;
                Ok(settle(state, &done.job_id, done.chunk_index))
            }
            Input::Record(record) if record.is::<ChunkProcessingFailed>() => {
                let failed: ChunkProcessingFailed = record.decode()?;
                Ok(settle(state, &failed.job_id, failed.chunk_index))
            }
            // Validation events, chunk starts and timeouts (including its own) need no reaction.
            Input::Record(_) => Ok(Decision::default()),
            Input::Timer(timer) => match timer_chunk(&timer.name) {
                Some(index) => Ok(on_deadline(config, state, timer, index, ctx)),
                // A timer of an older version of this processor: nothing to do any more.
                None => Ok(Decision::default()),
            },
        }
    }

    /// Folds a fact into the state: the job and chunk results from what was consumed, re-issued
    /// attempts and given-up chunks from what was emitted. Its own `chunk.processing.failed`
    /// comes back on the topic it reads; folding it twice changes nothing.
    fn evolve(&self, mut state: AggregatorState, fact: Fact<'_>) -> AggregatorState {
        match fact {
            Fact::Consumed(record)
                if record.is::<ProcessingJobCreated>() && state.job.is_none() =>
            {
                if let Ok(job) = record
                    .decode::<ProcessingJobCreated>()
                    .and_then(|j| track(&j))
                {
                    state.job = Some(job);
                }
            }
            Fact::Consumed(record) if record.is::<ChunkProcessingCompleted>() => {
                if let Ok(done) = record.decode::<ChunkProcessingCompleted>() {
                    state.conclude(&done.job_id, done.chunk_index, ChunkStatus::Completed);
                }
            }
            Fact::Consumed(record) if record.is::<ChunkProcessingFailed>() => {
                if let Ok(failed) = record.decode::<ChunkProcessingFailed>() {
                    state.conclude(&failed.job_id, failed.chunk_index, ChunkStatus::Failed);
                }
            }
            Fact::Emitted(out) if out.is::<ChunkProcess>() => {
                if let Ok(command) = out.decode::<ChunkProcess>() {
                    if let Some(chunk) = state.chunk_mut(&command.job_id, command.chunk_index) {
                        chunk.attempt = command.attempt;
                    }
                }
            }
            Fact::Emitted(out) if out.is::<ChunkProcessingFailed>() => {
                if let Ok(failed) = out.decode::<ChunkProcessingFailed>() {
                    state.conclude(&failed.job_id, failed.chunk_index, ChunkStatus::Failed);
                }
            }
            _ => {}
        }
        state
    }

    fn is_finished(&self, state: &AggregatorState) -> bool {
        state.is_finished()
    }
}

/// Prefix of a chunk's deadline timer; the full name is `chunk-{index}` (unique per resource,
/// as a resource has one job), its payload the job id.
pub const CHUNK_TIMER_PREFIX: &str = "chunk-";

/// The name of chunk `index`'s deadline timer.
pub fn chunk_timer(index: i32) -> String {
    format!("{CHUNK_TIMER_PREFIX}{index}")
}

/// The chunk index a timer name stands for, if it is a chunk deadline.
pub fn timer_chunk(name: &str) -> Option<i32> {
    name.strip_prefix(CHUNK_TIMER_PREFIX)?.parse().ok()
}

/// What the aggregator remembers about one resource (changelogged as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
// Missing fields take their defaults, so state changelogged by an older version still loads.
#[serde(default)]
pub struct AggregatorState {
    /// The resource's job, from its `processing.job.created`; `None` before. Validation plans
    /// one job per resource, so a second one is ignored rather than tracked.
    pub job: Option<TrackedJob>,
}

impl AggregatorState {
    /// Every chunk of the job has its result (completed or failed): no deadline is left.
    pub fn is_finished(&self) -> bool {
        self.job
            .as_ref()
            .is_some_and(|job| job.chunks.iter().all(|c| c.status != ChunkStatus::Pending))
    }
}

/// A job being watched: enough to re-issue any of its chunks without other input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedJob {
    /// Id of the job; chunk records of other jobs are not this job's business.
    pub job_id: String,
    /// The audio a re-issued command points the worker at.
    pub object_key: String,
    /// Number of chunks; a re-issued command repeats it.
    pub chunk_count: i32,
    /// The verified version of the audio (its ETag), which a re-issued command pins.
    #[serde(default)]
    pub etag: Option<String>,
    /// The verified size of the audio, which caps a re-issued command's download.
    #[serde(default)]
    pub size_bytes: Option<i64>,
    /// The upload's prompt, which a re-issued command carries like the first.
    #[serde(default)]
    pub prompt: Option<String>,
    /// One entry per chunk, by index.
    pub chunks: Vec<ChunkTrack>,
}

/// Where one chunk stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkTrack {
    /// Start of the chunk in ms, for the re-issued command.
    pub start_ms: i64,
    /// End of the chunk in ms (exclusive), for the re-issued command.
    pub end_ms: i64,
    /// The one channel transcribed (a speaker per channel), for the re-issued command.
    #[serde(default)]
    pub channel: Option<i32>,
    /// The attempt of the latest command issued for it (from 1); compared with the limit.
    pub attempt: i32,
    /// Whether it is still awaited.
    pub status: ChunkStatus,
}

/// How a chunk ended, if it did; only a pending chunk reacts to anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkStatus {
    /// No result yet: its deadline timer is running.
    Pending,
    /// A worker transcribed it.
    Completed,
    /// A worker gave up on it, or its last attempt timed out.
    Failed,
}

impl AggregatorState {
    /// Chunk `index` of job `job_id`, if that is the tracked job and the index exists.
    pub fn chunk(&self, job_id: &str, index: i32) -> Option<&ChunkTrack> {
        let job = self.job.as_ref().filter(|j| j.job_id == job_id)?;
        job.chunks.get(usize::try_from(index).ok()?)
    }

    fn chunk_mut(&mut self, job_id: &str, index: i32) -> Option<&mut ChunkTrack> {
        let job = self.job.as_mut().filter(|j| j.job_id == job_id)?;
        job.chunks.get_mut(usize::try_from(index).ok()?)
    }

    fn is_pending(&self, job_id: &str, index: i32) -> bool {
        self.chunk(job_id, index)
            .is_some_and(|c| c.status == ChunkStatus::Pending)
    }
}

/// The chunks a job consists of: the ranges its creation event lists, or, in events from
/// before those were listed, the fixed plan re-derived with validation's planner; a
/// disagreement with its `chunk_count` means a broken record.
fn track(job: &ProcessingJobCreated) -> Result<TrackedJob, HandlerError> {
    let plan: Vec<(Range<i64>, Option<i32>)> = match &job.chunks {
        Some(chunks) => chunks
            .iter()
            .map(|c| (c.start_ms..c.end_ms, c.channel))
            .collect(),
        None => plan_fixed(job.duration_ms, job.chunk_ms, job.overlap_ms)
            .into_iter()
            .map(|r| (r, None))
            .collect(),
    };
    if i32::try_from(plan.len()).ok() != Some(job.chunk_count) {
        return Err(HandlerError::Permanent(format!(
            "job {} says {} chunks, but its plan has {}",
            job.job_id,
            job.chunk_count,
            plan.len()
        )));
    }
    Ok(TrackedJob {
        job_id: job.job_id.clone(),
        object_key: job.object_key.clone(),
        chunk_count: job.chunk_count,
        etag: job.etag.clone(),
        size_bytes: job.size_bytes,
        prompt: job.options.as_ref().and_then(|o| o.prompt.clone()),
        chunks: plan
            .into_iter()
            .map(|(r, channel)| ChunkTrack {
                start_ms: r.start,
                end_ms: r.end,
                channel,
                attempt: FIRST_ATTEMPT,
                status: ChunkStatus::Pending,
            })
            .collect(),
    })
}

fn on_job_created(
    config: &JobAggregatorConfig,
    state: &AggregatorState,
    record: &Incoming,
    ctx: &Context,
) -> Result<Decision, HandlerError> {
    let created: ProcessingJobCreated = record.decode()?;
    if state.job.is_some() {
        return Ok(Decision::default());
    }
    let job = track(&created)?;
    let schedule = (0..job.chunk_count)
        .map(|i| {
            ctx.timer(
                &chunk_timer(i),
                config.first_deadline(ctx.now_ms, i),
                job.job_id.clone(),
            )
        })
        .collect();
    Ok(Decision {
        schedule,
        ..Decision::default()
    })
}

/// A result arrived for a chunk: its deadline no longer matters. Only the first result of a
/// pending chunk counts; duplicates and results for unknown jobs or chunks change nothing.
fn settle(state: &AggregatorState, job_id: &str, index: i32) -> Decision {
    if !state.is_pending(job_id, index) {
        return Decision::default();
    }
    Decision {
        cancel: vec![chunk_timer(index)],
        ..Decision::default()
    }
}

fn on_deadline(
    config: &JobAggregatorConfig,
    state: &AggregatorState,
    timer: &Timer,
    index: i32,
    ctx: &Context,
) -> Decision {
    let job_id = timer.payload.as_str();
    let (Some(job), Some(chunk)) = (state.job.as_ref(), state.chunk(job_id, index)) else {
        return Decision::default();
    };
    if chunk.status != ChunkStatus::Pending {
        return Decision::default();
    }
    let resource_id = ctx.cause.correlation_id.as_str();
    let mut emit = vec![Outgoing::new(
        resource_id,
        &ProcessingTimeout {
            metadata: ctx.metadata(),
            job_id: job.job_id.clone(),
            chunk_index: index,
            attempt: chunk.attempt,
            deadline_ms: timer.due_at_ms,
        },
    )];
    let mut schedule = Vec::new();
    if chunk.attempt < config.max_attempts {
        emit.push(chunk_command(&ChunkProcess {
            metadata: ctx.metadata(),
            job_id: job.job_id.clone(),
            chunk_index: index,
            chunk_count: job.chunk_count,
            object_key: job.object_key.clone(),
            start_ms: chunk.start_ms,
            end_ms: chunk.end_ms,
            attempt: chunk.attempt + 1,
            etag: job.etag.clone(),
            size_bytes: job.size_bytes,
            prompt: job.prompt.clone(),
            channel: chunk.channel,
        }));
        schedule.push(ctx.timer(
            &timer.name,
            config.retry_deadline(ctx.now_ms),
            job.job_id.clone(),
        ));
    } else {
        emit.push(Outgoing::new(
            resource_id,
            &ChunkProcessingFailed {
                metadata: ctx.metadata(),
                job_id: job.job_id.clone(),
                chunk_index: index,
                reason: format!("timed out after {} attempts", chunk.attempt),
                attempt: chunk.attempt,
            },
        ));
    }
    Decision {
        emit,
        schedule,
        cancel: Vec::new(),
        ..Decision::default()
    }
}

impl AggregatorState {
    /// Settles a pending chunk; a settled one keeps its first outcome.
    fn conclude(&mut self, job_id: &str, index: i32, status: ChunkStatus) {
        if let Some(chunk) = self.chunk_mut(job_id, index) {
            if chunk.status == ChunkStatus::Pending {
                chunk.status = status;
            }
        }
    }
}
