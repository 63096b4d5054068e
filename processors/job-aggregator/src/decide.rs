//! The job aggregator's logic as pure functions: no I/O, no clock but `ctx.now_ms`, so every
//! rule is testable with hand-made inputs and timers.
//!
//! Per resource (its job): `processing.job.created` → the job's chunks queued here, and the
//! first chunk of each of its first `runs_in_flight` runs dispatched (`chunk.process`, a
//! deadline timer each); a chunk's `chunk.processing.started` → its deadline counts from then,
//! and the next chunk of its run is dispatched (of the next run, once the run is all taken), so
//! a job has one chunk per run in progress waiting in the chunk-commands topic and a job that
//! arrives later is not queued behind all of an earlier one; `chunk.processing.completed` /
//! `failed` → the chunk is settled and its timer cancelled; a timer of a chunk still pending →
//! `processing.timeout`, then either the chunk's `chunk.process` again (next attempt, new
//! deadline) or, past the attempt limit, `chunk.processing.failed`. A failed chunk fails the
//! job: its chunks still queued are never dispatched and its timers are cleared. A chunk's
//! first settlement wins; anything later is ignored.

use std::ops::Range;

use echo_catalog::events;
use echo_catalog::events::{
    ChunkProcess, ChunkProcessingCompleted, ChunkProcessingFailed, ChunkProcessingStarted,
    ProcessingJobCreated, ProcessingTimeout,
};
use echo_catalog::keys::run_length;
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
            events::ChunkProcessingStarted::TYPE,
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
            Input::Record(record) if record.is::<ChunkProcessingStarted>() => {
                let started: ChunkProcessingStarted = record.decode()?;
                Ok(on_started(config, state, record, &started, ctx))
            }
            Input::Record(record) if record.is::<ChunkProcessingCompleted>() => {
                let done: ChunkProcessingCompleted = record.decode()?;
                Ok(on_settled(
                    config,
                    state,
                    record,
                    &done.job_id,
                    done.chunk_index,
                    ctx,
                ))
            }
            Input::Record(record) if record.is::<ChunkProcessingFailed>() => {
                let failed: ChunkProcessingFailed = record.decode()?;
                Ok(on_settled(
                    config,
                    state,
                    record,
                    &failed.job_id,
                    failed.chunk_index,
                    ctx,
                ))
            }
            // Validation events and timeouts (including its own) need no reaction.
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
            Fact::Consumed(record) => state = state.consume(record),
            Fact::Emitted(out) if out.is::<ChunkProcess>() => {
                if let Ok(command) = out.decode::<ChunkProcess>() {
                    if let Some(chunk) = state.chunk_mut(&command.job_id, command.chunk_index) {
                        chunk.attempt = command.attempt;
                        chunk.status = ChunkStatus::Pending;
                        chunk.started = false;
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

    /// The job's chunks that no topic shows yet: queued here until dispatched.
    fn backlog(state: &AggregatorState) -> usize {
        state.job.as_ref().map_or(0, |job| {
            if job.has_failed() {
                0
            } else {
                job.chunks
                    .iter()
                    .filter(|c| c.status == ChunkStatus::Queued)
                    .count()
            }
        })
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
    /// Every chunk of the job has its result, or one failed and so did the job: no deadline
    /// is left, and nothing will be dispatched.
    pub fn is_finished(&self) -> bool {
        self.job.as_ref().is_some_and(|job| {
            job.has_failed()
                || job
                    .chunks
                    .iter()
                    .all(|c| matches!(c.status, ChunkStatus::Completed | ChunkStatus::Failed))
        })
    }

    /// The state after consuming `record`: the job and the chunks' starts and results.
    fn consume(mut self, record: &Incoming) -> AggregatorState {
        if record.is::<ProcessingJobCreated>() && self.job.is_none() {
            if let Ok(job) = record
                .decode::<ProcessingJobCreated>()
                .and_then(|j| track(&j))
            {
                self.job = Some(job);
            }
        } else if record.is::<ChunkProcessingStarted>() {
            if let Ok(started) = record.decode::<ChunkProcessingStarted>() {
                if let Some(chunk) = self.chunk_mut(&started.job_id, started.chunk_index) {
                    if chunk.status == ChunkStatus::Pending && chunk.attempt == started.attempt {
                        chunk.started = true;
                    }
                }
            }
        } else if record.is::<ChunkProcessingCompleted>() {
            if let Ok(done) = record.decode::<ChunkProcessingCompleted>() {
                self.conclude(&done.job_id, done.chunk_index, ChunkStatus::Completed);
            }
        } else if record.is::<ChunkProcessingFailed>() {
            if let Ok(failed) = record.decode::<ChunkProcessingFailed>() {
                self.conclude(&failed.job_id, failed.chunk_index, ChunkStatus::Failed);
            }
        }
        self
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

impl TrackedJob {
    /// A chunk failed, so the job has: the rest of it is not worth any whisper time.
    pub fn has_failed(&self) -> bool {
        self.chunks.iter().any(|c| c.status == ChunkStatus::Failed)
    }

    /// The chunks to dispatch now. A job's runs (the consecutive chunks one partition gets,
    /// `echo_catalog::keys::run_length`) are worked through in order, `runs_in_flight` at a
    /// time, and a run in progress has one chunk waiting in the topic: the next is dispatched
    /// as soon as a worker starts the one before, so the worker never waits for it (and hands
    /// it the text of the one before), while a job that arrives later queues behind one chunk
    /// of each run in progress, not behind whole files. None once the job has failed.
    pub fn to_dispatch(&self, runs_in_flight: usize) -> Vec<usize> {
        if self.has_failed() {
            return Vec::new();
        }
        let run = run_length(self.chunk_count) as usize;
        let mut out = Vec::new();
        let mut in_progress = 0;
        for (r, chunks) in self.chunks.chunks(run).enumerate() {
            let next = chunks.iter().position(|c| c.status == ChunkStatus::Queued);
            let waiting = chunks
                .iter()
                .any(|c| c.status == ChunkStatus::Pending && !c.started);
            let begun = chunks.iter().any(|c| c.status != ChunkStatus::Queued);
            match next {
                // Every chunk dispatched: in progress while its last one waits for a worker.
                None => in_progress += usize::from(waiting),
                Some(i) if begun => {
                    in_progress += 1;
                    if !waiting {
                        out.push(r * run + i);
                    }
                }
                Some(i) if in_progress < runs_in_flight => {
                    in_progress += 1;
                    out.push(r * run + i);
                }
                Some(_) => break,
            }
        }
        out
    }
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
    /// A worker announced it started the latest attempt (`chunk.processing.started`): it no
    /// longer waits in the topic, and its deadline counts from then.
    #[serde(default)]
    pub started: bool,
}

/// Where a chunk is, and how it ended if it did; only a pending chunk reacts to results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkStatus {
    /// Not dispatched yet: held here until its run's turn.
    Queued,
    /// Dispatched, no result yet: its deadline timer is running.
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
                status: ChunkStatus::Queued,
                started: false,
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
    Ok(dispatch(config, &job, ctx, Decision::default()))
}

/// `decision` with the chunks of `job` that are due for dispatch added: a first-attempt
/// `chunk.process` each, and its deadline, which allows for the chunk of its run ahead of it.
fn dispatch(
    config: &JobAggregatorConfig,
    job: &TrackedJob,
    ctx: &Context,
    mut decision: Decision,
) -> Decision {
    let run = run_length(job.chunk_count) as usize;
    for index in job.to_dispatch(config.runs_in_flight) {
        let chunk = &job.chunks[index];
        // Past a run's first chunk, the one before it is running on the same worker.
        let ahead = usize::from(index % run != 0);
        let index = index as i32;
        decision
            .emit
            .push(command(ctx, job, index, chunk, FIRST_ATTEMPT));
        decision.schedule.push(ctx.timer(
            &chunk_timer(index),
            config.dispatch_deadline(ctx.now_ms, ahead),
            job.job_id.clone(),
        ));
    }
    decision
}

/// The `chunk.process` of attempt `attempt` of chunk `index` of `job`.
fn command(
    ctx: &Context,
    job: &TrackedJob,
    index: i32,
    chunk: &ChunkTrack,
    attempt: i32,
) -> Outgoing {
    chunk_command(&ChunkProcess {
        metadata: ctx.metadata(),
        job_id: job.job_id.clone(),
        chunk_index: index,
        chunk_count: job.chunk_count,
        object_key: job.object_key.clone(),
        start_ms: chunk.start_ms,
        end_ms: chunk.end_ms,
        attempt,
        etag: job.etag.clone(),
        size_bytes: job.size_bytes,
        prompt: job.prompt.clone(),
        channel: chunk.channel,
    })
}

/// A worker took a chunk: its deadline now counts from this moment, and the next chunk of its
/// run (or, once the run is all taken, of the next run) is dispatched.
fn on_started(
    config: &JobAggregatorConfig,
    state: &AggregatorState,
    record: &Incoming,
    started: &ChunkProcessingStarted,
    ctx: &Context,
) -> Decision {
    let Some(chunk) = state.chunk(&started.job_id, started.chunk_index) else {
        return Decision::default();
    };
    if chunk.status != ChunkStatus::Pending || chunk.attempt != started.attempt || chunk.started {
        return Decision::default();
    }
    let Some(job) = state.clone().consume(record).job else {
        return Decision::default();
    };
    let moved = Decision {
        schedule: vec![ctx.timer(
            &chunk_timer(started.chunk_index),
            config.retry_deadline(ctx.now_ms),
            job.job_id.clone(),
        )],
        ..Decision::default()
    };
    dispatch(config, &job, ctx, moved)
}

/// A result arrived for a chunk: its deadline no longer matters, and the next run may be
/// due. Only the first result of a pending chunk counts; duplicates and results for unknown
/// jobs or chunks change nothing. A failure fails the job: every other deadline is cleared
/// and nothing more is dispatched.
fn on_settled(
    config: &JobAggregatorConfig,
    state: &AggregatorState,
    record: &Incoming,
    job_id: &str,
    index: i32,
    ctx: &Context,
) -> Decision {
    if !state.is_pending(job_id, index) {
        return Decision::default();
    }
    let Some(job) = state.clone().consume(record).job else {
        return Decision::default();
    };
    if job.has_failed() {
        let mut cancel = vec![chunk_timer(index)];
        cancel.extend(pending_timers(&job, None));
        return Decision {
            cancel,
            ..Decision::default()
        };
    }
    let settled = Decision {
        cancel: vec![chunk_timer(index)],
        ..Decision::default()
    };
    dispatch(config, &job, ctx, settled)
}

/// The deadline timers of `job`'s pending chunks, but `except`'s.
fn pending_timers(job: &TrackedJob, except: Option<i32>) -> Vec<String> {
    (0..job.chunk_count)
        .filter(|&i| Some(i) != except && job.chunks[i as usize].status == ChunkStatus::Pending)
        .map(chunk_timer)
        .collect()
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
    if chunk.attempt < config.max_attempts {
        emit.push(command(ctx, job, index, chunk, chunk.attempt + 1));
        return Decision {
            emit,
            schedule: vec![ctx.timer(
                &timer.name,
                config.retry_deadline(ctx.now_ms),
                job.job_id.clone(),
            )],
            ..Decision::default()
        };
    }
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
    // The job has failed with its chunk: the other chunks' deadlines no longer matter.
    Decision {
        emit,
        cancel: pending_timers(job, Some(index)),
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
