//! The chunk worker's logic as pure functions: no I/O, so every rule is testable with
//! hand-made commands and observations.
//!
//! Per chunk (the command key `"{job_id}:{chunk_index}"`): a `chunk.process` →
//! `chunk.processing.started`, announced (committed) before the work, then
//! `chunk.processing.completed` (segments on the whole audio's time line) or
//! `chunk.processing.failed`, all keyed by the resource id. A command
//! for a chunk already completed, or for an attempt already handled, is ignored.

use std::ops::Range;

use echo_catalog::events;
use echo_catalog::events::{
    ChunkProcess, ChunkProcessingCompleted, ChunkProcessingFailed, ChunkProcessingStarted, Segment,
    Word,
};
use echo_runtime::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::ChunkWorkerConfig;
use crate::lane::Lane;

/// The chunk worker's decisions: announce a chunk, report what whisper made of it.
/// Pure: built from configuration alone.
#[derive(Debug, Clone)]
pub struct ChunkWorkerDecider {
    /// The worker's name (announced with each chunk) and its limits.
    pub config: ChunkWorkerConfig,
    /// The lane whose commands it takes; it passes over the other's.
    pub lane: Lane,
}

impl Decider for ChunkWorkerDecider {
    type State = ChunkWorkerState;
    type Observation = Observation;
    type Effect = NoEffect;

    fn name(&self) -> &'static str {
        self.lane.processor()
    }

    fn handles(&self) -> &'static [&'static str] {
        &[events::ChunkProcess::TYPE]
    }

    fn emits(&self) -> &'static [&'static str] {
        &[
            events::ChunkProcessingStarted::TYPE,
            events::ChunkProcessingCompleted::TYPE,
            events::ChunkProcessingFailed::TYPE,
        ]
    }

    /// `chunk.processing.started` (keyed by the resource) for a command the worker will work on;
    /// nothing for anything else. Published and committed before the work, stamped when it began.
    fn announce(&self, state: &ChunkWorkerState, input: Input<'_>, ctx: &Context) -> Vec<Outgoing> {
        let config = &self.config;
        let Input::Record(record) = input else {
            return Vec::new();
        };
        let Ok(command) = record.decode::<ChunkProcess>() else {
            return Vec::new();
        };
        if self.screen(state, &command) == Verdict::Ignore {
            return Vec::new();
        }
        let started = ChunkProcessingStarted {
            metadata: ctx.metadata(),
            job_id: command.job_id,
            chunk_index: command.chunk_index,
            worker: config.worker_name.clone(),
            attempt: command.attempt,
        };
        vec![Outgoing::new(
            record.metadata.correlation_id.as_str(),
            &started,
        )]
    }

    /// Decides what an input causes, given the state and what `observe` found.
    fn decide(
        &self,
        state: &ChunkWorkerState,
        input: Input<'_>,
        observed: Observation,
        ctx: &Context,
    ) -> Result<Decision, HandlerError> {
        match input {
            Input::Record(record) if record.is::<ChunkProcess>() => {
                self.on_command(state, record, observed, ctx)
            }
            Input::Record(record) => Err(HandlerError::Permanent(format!(
                "the chunk worker does not handle {}",
                record.type_name
            ))),
            // The worker sets no timers; one from another version has nothing to do.
            Input::Timer(_) => Ok(Decision::default()),
        }
    }

    /// Folds a fact into the state, learning only from what the worker emitted (so the state is
    /// what the events say): the attempt from `failed`, completion from `completed`. The
    /// announced `started` is no fact here: work cut short by a crash must be done again.
    fn evolve(&self, mut state: ChunkWorkerState, fact: Fact<'_>) -> ChunkWorkerState {
        match fact {
            Fact::Emitted(out) if out.is::<ChunkProcessingFailed>() => {
                if let Ok(failed) = out.decode::<ChunkProcessingFailed>() {
                    state.handled_attempt = state.handled_attempt.max(Some(failed.attempt));
                }
            }
            Fact::Emitted(out) if out.is::<ChunkProcessingCompleted>() => state.completed = true,
            _ => {}
        }
        state
    }

    /// Finished once its result is published, or when the worker never took the chunk (a
    /// command it passed over as the other lane's): nothing is kept for a chunk another group
    /// transcribes.
    fn is_finished(&self, state: &ChunkWorkerState) -> bool {
        state.is_finished() || state.is_blank()
    }

    /// A chunk the worker never took retires within a minute ([`PASSED_OVER_RETIRE_MS`]);
    /// one it transcribed stays for the runtime's retention, so a late re-issue is not redone.
    fn retire_after_ms(&self, state: &ChunkWorkerState) -> Option<i64> {
        state.is_blank().then_some(PASSED_OVER_RETIRE_MS)
    }
}

/// How long a chunk the worker passed over is remembered: long enough that a redelivery of
/// the command finds it, short enough that a group does not keep a key for every chunk the
/// other group transcribes.
pub const PASSED_OVER_RETIRE_MS: i64 = 60_000;

/// What the worker remembers about one chunk (changelogged as JSON), so a command that was
/// already handled costs no second transcription.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
// Missing fields take their defaults, so state changelogged by an older version still loads.
#[serde(default)]
pub struct ChunkWorkerState {
    /// Highest attempt this worker finished as failed; a command with this attempt or a
    /// lower one is a re-delivery or a stale retry.
    pub handled_attempt: Option<i32>,
    /// `chunk.processing.completed` was emitted: the result is published, consumers keep the
    /// first one, so a later attempt (the aggregator re-issuing a late chunk) is not redone.
    pub completed: bool,
}

impl ChunkWorkerState {
    /// The chunk's result is published; later attempts are not redone.
    pub fn is_finished(&self) -> bool {
        self.completed
    }

    /// Nothing was learnt of the chunk: the worker never took it.
    pub fn is_blank(&self) -> bool {
        *self == ChunkWorkerState::default()
    }
}

/// What `observe` found out for `decide`.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// Nothing was looked at: the input is ignored, not a command, or a timer.
    Skipped,
    /// The chunk was transcribed.
    Transcribed {
        /// Segments on the whole audio's time line (see [`global_segments`]).
        segments: Vec<Segment>,
        /// The language a multilingual model detected; `None` with a one-language model.
        language: Option<String>,
    },
    /// The chunk cannot be transcribed (undecodable range, whisper error): why, for operators.
    /// An outcome, not an error, so the aggregator sees `chunk.processing.failed` and decides
    /// about a retry.
    Failed(String),
}

/// What a command deserves, decided before any I/O so `observe` transcribes only when the
/// result will be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Already completed, or this attempt (or a later one) was already handled.
    Ignore,
    /// Transcribe the chunk and report the outcome.
    Process,
}

impl ChunkWorkerDecider {
    /// Screens a `chunk.process`: the other lane's is passed over, then [`screen`].
    pub fn screen(&self, state: &ChunkWorkerState, command: &ChunkProcess) -> Verdict {
        if Lane::of(command, self.config.express_max_chunks) != self.lane {
            return Verdict::Ignore;
        }
        screen(state, command)
    }

    fn on_command(
        &self,
        state: &ChunkWorkerState,
        record: &Incoming,
        observed: Observation,
        ctx: &Context,
    ) -> Result<Decision, HandlerError> {
        let command: ChunkProcess = record.decode()?;
        if self.screen(state, &command) == Verdict::Ignore {
            return Ok(Decision::default());
        }
        Ok(Decision::emit(vec![outcome(
            record, command, observed, ctx,
        )?]))
    }
}

/// Screens a `chunk.process` against what the chunk's state says was done.
pub fn screen(state: &ChunkWorkerState, command: &ChunkProcess) -> Verdict {
    let handled = state
        .handled_attempt
        .is_some_and(|done| command.attempt <= done);
    if state.completed || handled {
        Verdict::Ignore
    } else {
        Verdict::Process
    }
}

/// The chunk's time range for the decoder, or why it is unusable: negative, empty, or longer
/// than `max_ms` (the decoded range is held in memory, so its length is bounded).
pub fn chunk_range(command: &ChunkProcess, max_ms: u64) -> Result<Range<u64>, String> {
    match (
        u64::try_from(command.start_ms),
        u64::try_from(command.end_ms),
    ) {
        (Ok(start), Ok(end)) if start < end && end - start <= max_ms => Ok(start..end),
        (Ok(start), Ok(end)) if start < end => Err(format!(
            "chunk range {start}..{end} ms is longer than the {max_ms} ms accepted"
        )),
        _ => Err(format!(
            "invalid chunk range {}..{} ms",
            command.start_ms, command.end_ms
        )),
    }
}

/// Whisper's segments of a chunk, and their words, moved onto the whole audio's time line
/// (`+ start_ms`) and kept inside the chunk `[start_ms, end_ms]` (whisper may place an end
/// past the audio it was given). Segments without text carry nothing for the transcript and
/// are dropped.
pub fn global_segments(
    start_ms: i64,
    end_ms: i64,
    local: &[echo_speech::transcriber::Segment],
) -> Vec<Segment> {
    let to_global = |offset: u64| {
        start_ms
            .saturating_add(i64::try_from(offset).unwrap_or(i64::MAX))
            .clamp(start_ms, end_ms.max(start_ms))
    };
    local
        .iter()
        .filter(|s| !s.text.trim().is_empty())
        .map(|s| {
            let start = to_global(s.start_ms);
            Segment {
                start_ms: start,
                end_ms: to_global(s.end_ms).max(start),
                text: s.text.trim().to_string(),
                confidence: s.confidence.clamp(0.0, 1.0),
                words: s
                    .words
                    .iter()
                    .map(|w| {
                        let start = to_global(w.start_ms);
                        Word {
                            start_ms: start,
                            end_ms: to_global(w.end_ms).max(start),
                            text: w.text.clone(),
                            confidence: w.confidence.clamp(0.0, 1.0),
                        }
                    })
                    .collect(),
                speaker: None,
            }
        })
        .collect()
}

/// What a worker reports of the chunk `command` names, from what `observe` found.
fn outcome(
    record: &Incoming,
    command: ChunkProcess,
    observed: Observation,
    ctx: &Context,
) -> Result<Outgoing, HandlerError> {
    // Events are keyed by the resource, not by the command's chunk key.
    let resource_id = record.metadata.correlation_id.as_str();
    Ok(match observed {
        Observation::Transcribed { segments, language } => Outgoing::new(
            resource_id,
            &ChunkProcessingCompleted {
                metadata: ctx.metadata(),
                job_id: command.job_id,
                chunk_index: command.chunk_index,
                start_ms: command.start_ms,
                end_ms: command.end_ms,
                segments,
                language,
            },
        ),
        Observation::Failed(reason) => Outgoing::new(
            resource_id,
            &ChunkProcessingFailed {
                metadata: ctx.metadata(),
                job_id: command.job_id,
                chunk_index: command.chunk_index,
                reason,
                attempt: command.attempt,
            },
        ),
        Observation::Skipped => {
            return Err(HandlerError::Permanent(format!(
                "chunk {}:{} needs a transcription outcome, observed none",
                command.job_id, command.chunk_index
            )))
        }
    })
}
