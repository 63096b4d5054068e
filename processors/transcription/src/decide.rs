//! The transcription processor's logic as pure functions: no I/O, so every rule is testable
//! with hand-made inputs and observations.
//!
//! Per resource and job: chunk results are collected (first result per chunk wins) until
//! every chunk of the job has one, in whatever order they and `processing.job.created`
//! arrive, each kept as an object ([`crate::stored`]: its write is the effect of the input
//! that brings it) with only its key in the state; the input that completes the set, given
//! the kept results read back by `observe`, emits `transcription.started` and
//! `transcription.completed`, and asks for the report files it rendered to be written (the
//! effects, carried out before the events are published). A failed chunk without a result,
//! or a kept result that is gone, emits `transcription.failed`. Each job ends in exactly one
//! terminal event.

use std::collections::BTreeMap;

use echo_catalog::events;
use echo_catalog::events::{
    ChunkProcessingCompleted, ChunkProcessingFailed, ProcessingJobCreated, TranscriptionCompleted,
    TranscriptionFailed, TranscriptionStarted,
};
use echo_runtime::prelude::*;
use serde::{Deserialize, Serialize};

use crate::assemble::ChunkTranscript;
use crate::config::TranscriptionConfig;
use crate::plan::JobPlan;
use crate::report::{artifact_keys, render, Artifact, Transcript};
use crate::stored::{self, StoredResults};

/// The transcription processor's decisions: when a job's chunks are all in, what its report says.
/// Pure: built from configuration alone; the report files it renders are its effects.
#[derive(Debug, Clone, Default)]
pub struct TranscriptionDecider {
    /// The language transcripts are described in and the caption rules of uploads that set
    /// none.
    pub config: TranscriptionConfig,
}

impl Decider for TranscriptionDecider {
    type State = TranscriptionState;
    type Observation = StoredResults;
    type Effect = Artifact;

    fn name(&self) -> &'static str {
        "transcription"
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
            events::TranscriptionStarted::TYPE,
            events::TranscriptionCompleted::TYPE,
            events::TranscriptionFailed::TYPE,
        ]
    }

    /// Decides what an input causes: a chunk's first result is kept as an object; for the
    /// input that completes a job, the transcript is assembled (from the kept results read
    /// back, `stored`) and analyzed, its files rendered (the effects: written before the
    /// outputs are produced) and `transcription.started` and `transcription.completed`
    /// announced.
    fn decide(
        &self,
        state: &TranscriptionState,
        input: Input<'_>,
        stored: StoredResults,
        ctx: &Context,
    ) -> Result<Decision<Artifact>, HandlerError> {
        let Input::Record(record) = input else {
            // This processor sets no timers; one from an older version has nothing to do.
            return Ok(Decision::default());
        };
        if record.is::<ProcessingJobCreated>() {
            let job: ProcessingJobCreated = record.decode()?;
            if let Some(problem) = JobPlan::of(&job).problem() {
                return Err(HandlerError::Permanent(format!(
                    "job {} has {problem}",
                    job.job_id
                )));
            }
        } else if record.is::<ChunkProcessingCompleted>() {
            check_chunk(state, record)?;
        } else if record.is::<ChunkProcessingFailed>() {
            return on_chunk_failed(state, record, ctx);
        } else {
            // The topic also carries validation and other chunk facts, none of them ours.
            return Ok(Decision::default());
        }

        let Some(ready) = ready_job(state, record)? else {
            return keep_result(state, record);
        };
        let resource = resource_id(record)?;
        if !stored.missing.is_empty() {
            let failed = TranscriptionFailed {
                metadata: ctx.metadata(),
                job_id: ready.job_id,
                reason: format!(
                    "the kept results of chunks {:?} are gone from the object store",
                    stored.missing
                ),
            };
            return Ok(Decision::emit(vec![Outgoing::new(resource, &failed)]));
        }
        let transcript = Transcript::build(
            &ready.job_id,
            &ready.plan,
            &stored::with_segments(&ready, &stored),
            &self.config.language,
        );
        let options = ready.plan.options();
        let files = render(resource, &transcript, &self.config.captions, &options);
        let started = TranscriptionStarted {
            metadata: ctx.metadata(),
            job_id: ready.job_id.clone(),
            chunk_count: ready.plan.chunk_count,
        };
        let completed = TranscriptionCompleted {
            metadata: ctx.metadata(),
            job_id: ready.job_id,
            artifacts: artifact_keys(resource, &options),
            word_count: transcript.analysis.word_count,
            duration_ms: transcript.analysis.duration_ms,
        };
        Ok(Decision {
            effects: files,
            ..Decision::emit(vec![
                Outgoing::new(resource, &started),
                Outgoing::new(resource, &completed),
            ])
        })
    }

    /// Folds a fact into the state: plans and chunk results are remembered when consumed, the
    /// job's progress is learned from what the processor emitted.
    fn evolve(&self, mut state: TranscriptionState, fact: Fact<'_>) -> TranscriptionState {
        match fact {
            Fact::Consumed(record) if record.is::<ProcessingJobCreated>() => {
                if let Ok(job) = record.decode::<ProcessingJobCreated>() {
                    let progress = state.jobs.entry(job.job_id.clone()).or_default();
                    if progress.plan.is_none() {
                        progress.plan = Some(JobPlan::of(&job));
                    }
                }
            }
            Fact::Consumed(record) if record.is::<ChunkProcessingCompleted>() => {
                if let Ok(chunk) = record.decode::<ChunkProcessingCompleted>() {
                    let resource = record.metadata.correlation_id.as_str();
                    let progress = state.jobs.entry(chunk.job_id.clone()).or_default();
                    if is_first_result(progress, &chunk) {
                        let job_id = chunk.job_id.clone();
                        progress.chunks.insert(
                            chunk.chunk_index,
                            stored::kept(resource, &job_id, chunk_transcript(chunk)),
                        );
                    }
                }
            }
            Fact::Emitted(out) if out.is::<TranscriptionStarted>() => {
                if let Ok(started) = out.decode::<TranscriptionStarted>() {
                    state.jobs.entry(started.job_id).or_default().started = true;
                }
            }
            Fact::Emitted(out) if out.is::<TranscriptionCompleted>() => {
                if let Ok(completed) = out.decode::<TranscriptionCompleted>() {
                    let progress = state.jobs.entry(completed.job_id).or_default();
                    progress.completed = true;
                    progress.chunks.clear();
                }
            }
            Fact::Emitted(out) if out.is::<TranscriptionFailed>() => {
                if let Ok(failed) = out.decode::<TranscriptionFailed>() {
                    let progress = state.jobs.entry(failed.job_id).or_default();
                    progress.failed = true;
                    progress.chunks.clear();
                }
            }
            _ => {}
        }
        state
    }

    fn is_finished(&self, state: &TranscriptionState) -> bool {
        state.is_finished()
    }
}

/// What the transcription processor remembers about one resource (changelogged as JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
// Missing fields take their defaults, so state changelogged by an older version still loads.
#[serde(default)]
pub struct TranscriptionState {
    /// Progress per job id: a resource may be processed more than once, and chunk results
    /// of one job must never complete another.
    pub jobs: BTreeMap<String, JobProgress>,
}

impl TranscriptionState {
    /// Every job of the resource ended (`transcription.completed` or `.failed`).
    pub fn is_finished(&self) -> bool {
        !self.jobs.is_empty() && self.jobs.values().all(|j| j.completed || j.failed)
    }
}

/// Everything known about one job of the resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobProgress {
    /// The plan from `processing.job.created`; `None` while chunk results arrived first, so
    /// completeness cannot be judged yet.
    pub plan: Option<JobPlan>,
    /// The first result of each chunk by index (where it is kept as an object; its segments
    /// only in state written before results were kept so); later ones are re-issues and
    /// ignored. Cleared once the job ends, as nothing reads it after that.
    pub chunks: BTreeMap<i32, ChunkTranscript>,
    /// `transcription.started` was emitted.
    pub started: bool,
    /// `transcription.completed` was emitted; nothing more happens to the job.
    pub completed: bool,
    /// `transcription.failed` was emitted; nothing more happens to the job.
    pub failed: bool,
}

impl JobProgress {
    /// Whether the job reached its end, after which every input about it is ignored.
    pub fn is_terminal(&self) -> bool {
        self.completed || self.failed
    }
}

/// A job whose every chunk has a result: what `observe` assembles and writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyJob {
    /// The job's id.
    pub job_id: String,
    /// Its plan.
    pub plan: JobPlan,
    /// One result per chunk, in index order.
    pub chunks: Vec<ChunkTranscript>,
}

/// The resource an input is about; it names the S3 prefix written to, so it must not be able
/// to address anything outside its own (ids are UUIDs).
pub fn resource_id(record: &Incoming) -> Result<&str, HandlerError> {
    safe_id(record.metadata.correlation_id.as_str())
}

/// `id` (a resource's or a job's), which names part of an object key: 1-128 letters, digits,
/// '-' or '_', so that no key derived from it leaves its place (ids are UUIDs).
fn safe_id(id: &str) -> Result<&str, HandlerError> {
    let ok = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id)
    } else {
        Err(HandlerError::Permanent(format!(
            "id {id:?} is not 1-128 letters, digits, '-' or '_'"
        )))
    }
}

/// The job `record` completes, if it does: the input supplies the last missing piece (the
/// plan or the last chunk result) of a job that has not ended. `observe` and `decide` both
/// ask, so the I/O happens exactly for the inputs that emit `transcription.completed`.
pub fn ready_job(
    state: &TranscriptionState,
    record: &Incoming,
) -> Result<Option<ReadyJob>, HandlerError> {
    let (job_id, plan, new_chunk) = if record.is::<ProcessingJobCreated>() {
        let job: ProcessingJobCreated = record.decode()?;
        let known = state.jobs.get(&job.job_id).and_then(|p| p.plan.clone());
        if known.is_some() {
            // A second job.created for the same job: the first already decided.
            return Ok(None);
        }
        let plan = JobPlan::of(&job);
        (job.job_id, plan, None)
    } else if record.is::<ChunkProcessingCompleted>() {
        let chunk: ChunkProcessingCompleted = record.decode()?;
        let Some(plan) = state.jobs.get(&chunk.job_id).and_then(|p| p.plan.clone()) else {
            return Ok(None);
        };
        (chunk.job_id.clone(), plan, Some(chunk_transcript(chunk)))
    } else {
        return Ok(None);
    };

    if plan.problem().is_some() {
        // Refused by `decide`; never ready, so nothing is written for it.
        return Ok(None);
    }
    let empty = JobProgress::default();
    let progress = state.jobs.get(&job_id).unwrap_or(&empty);
    if progress.is_terminal() || progress.started {
        return Ok(None);
    }
    if let Some(c) = &new_chunk {
        if progress.chunks.contains_key(&c.index) || !(0..plan.chunk_count).contains(&c.index) {
            return Ok(None);
        }
    }
    let mut chunks = Vec::new();
    for index in 0..plan.chunk_count {
        let found = progress
            .chunks
            .get(&index)
            .or(new_chunk.as_ref().filter(|c| c.index == index));
        match found {
            Some(c) => chunks.push(c.clone()),
            None => return Ok(None),
        }
    }
    Ok(Some(ReadyJob {
        job_id,
        plan,
        chunks,
    }))
}

/// Whether `chunk` is the first result of its chunk for a job still open (and within its
/// plan, when known): the result that counts, kept as an object.
fn is_first_result(progress: &JobProgress, chunk: &ChunkProcessingCompleted) -> bool {
    let in_range = chunk.chunk_index >= 0
        && progress
            .plan
            .as_ref()
            .is_none_or(|p| chunk.chunk_index < p.chunk_count);
    in_range && !progress.is_terminal() && !progress.chunks.contains_key(&chunk.chunk_index)
}

/// A chunk result that does not complete its job: kept as an object when it is its chunk's
/// first (the state keeps only its key), otherwise nothing.
fn keep_result(
    state: &TranscriptionState,
    record: &Incoming,
) -> Result<Decision<Artifact>, HandlerError> {
    if !record.is::<ChunkProcessingCompleted>() {
        return Ok(Decision::default());
    }
    let chunk: ChunkProcessingCompleted = record.decode()?;
    let empty = JobProgress::default();
    let progress = state.jobs.get(&chunk.job_id).unwrap_or(&empty);
    if !is_first_result(progress, &chunk) {
        return Ok(Decision::default());
    }
    let resource = resource_id(record)?;
    let job_id = safe_id(&chunk.job_id)?.to_string();
    let object = stored::object(resource, &job_id, &chunk_transcript(chunk));
    Ok(Decision {
        effects: vec![object],
        ..Decision::default()
    })
}

/// A chunk result with an impossible index is a bug upstream: refused (to the DLQ) rather
/// than silently waited on forever.
fn check_chunk(state: &TranscriptionState, record: &Incoming) -> Result<(), HandlerError> {
    let chunk: ChunkProcessingCompleted = record.decode()?;
    let count = state
        .jobs
        .get(&chunk.job_id)
        .and_then(|p| p.plan.as_ref())
        .map(|p| p.chunk_count);
    let in_range = chunk.chunk_index >= 0 && count.is_none_or(|n| chunk.chunk_index < n);
    if in_range {
        Ok(())
    } else {
        Err(HandlerError::Permanent(format!(
            "chunk {} of job {} is outside the job's {count:?} chunks",
            chunk.chunk_index, chunk.job_id
        )))
    }
}

fn on_chunk_failed(
    state: &TranscriptionState,
    record: &Incoming,
    ctx: &Context,
) -> Result<Decision<Artifact>, HandlerError> {
    let failed: ChunkProcessingFailed = record.decode()?;
    if let Some(progress) = state.jobs.get(&failed.job_id) {
        // An ended job stays ended; a chunk that already has a result (a re-issued copy
        // failed after the first succeeded) does not fail the job: first result wins.
        if progress.is_terminal() || progress.chunks.contains_key(&failed.chunk_index) {
            return Ok(Decision::default());
        }
    }
    let resource = resource_id(record)?;
    let out = TranscriptionFailed {
        metadata: ctx.metadata(),
        job_id: failed.job_id,
        reason: format!(
            "chunk {} failed on attempt {}: {}",
            failed.chunk_index, failed.attempt, failed.reason
        ),
    };
    Ok(Decision::emit(vec![Outgoing::new(resource, &out)]))
}

fn chunk_transcript(chunk: ChunkProcessingCompleted) -> ChunkTranscript {
    ChunkTranscript {
        index: chunk.chunk_index,
        start_ms: chunk.start_ms,
        end_ms: chunk.end_ms,
        segments: chunk.segments,
        language: chunk.language,
        stored_at: None,
    }
}
