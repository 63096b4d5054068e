//! The validation processor's logic as pure functions: no I/O, no clock but `ctx.now_ms`, so
//! every rule is testable with hand-made inputs and observations.
//!
//! Per resource, once: `upload.completed` → `validation.started`, announced (committed before
//! the file is examined, so that a file which kills the process while it is read is counted
//! and quarantined, not read in a loop), then either `validation.failed`, or
//! `validation.passed` + `processing.job.created`, which lists the planned chunks (the job
//! aggregator dispatches their commands). Every other upload event is ignored.

use echo_catalog::events;
use echo_catalog::events::{
    ChunkRange, ProcessingJobCreated, UploadCompleted, ValidationFailed, ValidationFailureReason,
    ValidationPassed, ValidationStarted,
};
use echo_runtime::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::ValidationConfig;
use echo_chunking::{plan_at_pauses, plan_fixed, SpeechMap};

/// The validation processor's decisions: pass or refuse examined audio, plan its chunks.
/// Pure: built from configuration alone.
#[derive(Debug, Clone)]
pub struct ValidationDecider {
    /// The limits audio is held to, and how chunks are planned.
    pub config: ValidationConfig,
}

impl Decider for ValidationDecider {
    type State = ValidationState;
    type Observation = Observation;
    type Effect = NoEffect;

    fn name(&self) -> &'static str {
        "validation"
    }

    fn handles(&self) -> &'static [&'static str] {
        &[events::UploadCompleted::TYPE]
    }

    fn emits(&self) -> &'static [&'static str] {
        &[
            events::ValidationStarted::TYPE,
            events::ValidationPassed::TYPE,
            events::ValidationFailed::TYPE,
            events::ProcessingJobCreated::TYPE,
        ]
    }

    /// `validation.started` for a first `upload.completed`: the examination of a client's file
    /// is the work a crash can cut short (a decoder's abort, an allocation past the pod's
    /// limit), so the runtime commits it, counted, before `observe` reads the file.
    fn announce(&self, state: &ValidationState, input: Input<'_>, ctx: &Context) -> Vec<Outgoing> {
        let Input::Record(record) = input else {
            return Vec::new();
        };
        if !needs_examination(state, input) {
            return Vec::new();
        }
        // One that does not decode fails in `decide`, with the reason.
        let Ok(completed) = record.decode::<UploadCompleted>() else {
            return Vec::new();
        };
        vec![Outgoing::new(
            &record.metadata.correlation_id,
            &ValidationStarted {
                metadata: ctx.metadata(),
                object_key: completed.object_key,
            },
        )]
    }

    /// Decides what an input causes, given the state and what `observe` found.
    fn decide(
        &self,
        state: &ValidationState,
        input: Input<'_>,
        observed: Observation,
        ctx: &Context,
    ) -> Result<Decision, HandlerError> {
        let config = &self.config;
        match input {
            Input::Record(record) if record.is::<UploadCompleted>() => {
                on_completed(config, state, record, observed, ctx)
            }
            // The other upload events (URL issued, failed, expired) are not Processing's business.
            Input::Record(_) => Ok(Decision::default()),
            // This processor sets no timers; one from another version has nothing left to do.
            Input::Timer(_) => Ok(Decision::default()),
        }
    }

    /// Folds a fact into the state; everything is learned from what the processor emitted, so the
    /// state is what its events say.
    fn evolve(&self, mut state: ValidationState, fact: Fact<'_>) -> ValidationState {
        match fact {
            Fact::Emitted(out) if out.is::<ValidationPassed>() => state.passed = true,
            Fact::Emitted(out) if out.is::<ValidationFailed>() => state.failed = true,
            Fact::Emitted(out) if out.is::<ProcessingJobCreated>() => {
                if let Ok(job) = out.decode::<ProcessingJobCreated>() {
                    state.job_id = Some(job.job_id);
                }
            }
            _ => {}
        }
        state
    }

    fn is_finished(&self, state: &ValidationState) -> bool {
        state.is_finished()
    }
}

/// What the validation processor remembers about one resource (changelogged as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
// Missing fields take their defaults, so state changelogged by an older version still loads.
#[serde(default)]
pub struct ValidationState {
    /// `validation.passed` was emitted: a repeated `upload.completed` causes nothing, not even
    /// a download.
    pub passed: bool,
    /// `validation.failed` was emitted: as above.
    pub failed: bool,
    /// The job planned for the resource, once `processing.job.created` was emitted; ties the
    /// resource's state to the job records that follow.
    pub job_id: Option<String>,
}

impl ValidationState {
    /// The resource was validated: its outcome was emitted.
    pub fn is_finished(&self) -> bool {
        self.passed || self.failed
    }
}

/// What the probe and the full decode found out about an uploaded file: the facts
/// `validation.passed` carries and the limits are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFacts {
    /// Container format, symphonia's short name (`wave`, `flac`, `ogg`, `mp3`…).
    pub container: String,
    /// Codec of the audio track, symphonia's short name (`pcm_s16le`, `flac`, `vorbis`…);
    /// checked against the allowed codecs.
    pub codec: String,
    /// Number of channels; checked against the limit.
    pub channels: i32,
    /// Native sample rate in Hz, reported for the record.
    pub sample_rate_hz: i32,
    /// Duration in ms: measured by decoding when the file was decoded (the truth the chunk
    /// workers will see), else what the container states (0 when it states nothing).
    pub duration_ms: i64,
    /// Where the voice-activity detector heard speech (ms ranges, ordered, not overlapping);
    /// chunks are cut at its pauses. `None` when it did not run (fixed chunking, or a file the
    /// probe alone condemned): chunks are cut at fixed marks.
    pub speech: Option<SpeechMap>,
}

/// What `observe` found out for `decide`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The input needs no I/O (not `upload.completed`, or the resource was validated already).
    Nothing,
    /// The file was probed (and decoded unless the probe alone already breaks a limit).
    Audio(AudioFacts),
    /// The file cannot be used at all (missing, empty, not audio, undecodable): the reason and a
    /// human-readable message for `validation.failed`.
    Refused(ValidationFailureReason, String),
}

/// The first limit `facts` break, as the reason and message of `validation.failed`, or `None`
/// when the audio is acceptable. Public so `observe` can skip decoding a file the probe
/// already condemns.
pub fn check_limits(
    config: &ValidationConfig,
    facts: &AudioFacts,
) -> Option<(ValidationFailureReason, String)> {
    if facts.channels > config.max_channels {
        return Some((
            ValidationFailureReason::TooManyChannels,
            format!(
                "the audio has {} channels; at most {} are accepted",
                facts.channels, config.max_channels
            ),
        ));
    }
    if !config.allows_codec(&facts.codec) {
        return Some((
            ValidationFailureReason::UnsupportedCodec,
            format!(
                "codec {:?} is not accepted; accepted: {}",
                facts.codec,
                config.allowed_codecs.join(", ")
            ),
        ));
    }
    if facts.duration_ms > config.max_duration_ms {
        return Some((
            ValidationFailureReason::TooLong,
            format!(
                "the audio lasts at least {} ms; at most {} ms are accepted",
                facts.duration_ms, config.max_duration_ms
            ),
        ));
    }
    if facts.duration_ms <= 0 {
        return Some((
            ValidationFailureReason::Empty,
            "the audio holds no samples".into(),
        ));
    }
    if facts.duration_ms < config.min_duration_ms {
        return Some((
            ValidationFailureReason::TooShort,
            format!(
                "the audio lasts {} ms; at least {} ms are needed",
                facts.duration_ms, config.min_duration_ms
            ),
        ));
    }
    None
}

/// How far the container's account of the length may be from the audio that decodes before
/// the file counts as lying: encoder delay, padding and resampling cost a few tens of ms, and a
/// container's stated length may be approximate by a fraction of a percent.
fn time_tolerance_ms(length_ms: i64) -> i64 {
    (length_ms / 100).max(250)
}

/// Why a file is refused whose container's account of time (the length its header states,
/// where it ends by its own timestamps) disagrees with the `decoded_ms` that decode, or `None`
/// when they agree:
/// - audio cut short (an interrupted transfer) decodes without error up to the cut, and
///   transcribing what is left would pass a fragment off as the recording;
/// - audio far longer than its timestamps reach is a container whose clock lies: chunks are
///   found by that clock, so a slow one would give one chunk the whole file, or nothing. A
///   clock ahead of the audio (a recorder's gaps) places chunks late, never large, and is
///   accepted.
///
/// Audio longer than its *header* states is accepted: some headers are estimates (an MP3
/// without a frame count, MP3s joined end to end, a fragmented MP4 stating 0), and the
/// decoded length, not the header's, is what chunks are planned from.
///
/// Public so `observe` can refuse the file before its facts are reported.
pub fn time_disagreement(
    stated_ms: Option<i64>,
    clock_ms: Option<i64>,
    decoded_ms: i64,
) -> Option<String> {
    if let Some(stated) =
        stated_ms.filter(|&stated| decoded_ms + time_tolerance_ms(stated) < stated)
    {
        return Some(format!(
            "the file is truncated: its header states {stated} ms of audio, \
             only {decoded_ms} ms are present"
        ));
    }
    clock_ms
        .filter(|&clock| clock + time_tolerance_ms(decoded_ms) < decoded_ms)
        .map(|clock| {
            format!(
                "the timestamps are false: they end at {clock} ms, {decoded_ms} ms of audio \
                 decode"
            )
        })
}

/// Whether an input needs the object downloaded and examined: only a first `upload.completed`.
pub fn needs_examination(state: &ValidationState, input: Input<'_>) -> bool {
    matches!(input, Input::Record(r) if r.is::<UploadCompleted>()) && !state.is_finished()
}

fn on_completed(
    config: &ValidationConfig,
    state: &ValidationState,
    record: &Incoming,
    observed: Observation,
    ctx: &Context,
) -> Result<Decision, HandlerError> {
    let completed: UploadCompleted = record.decode()?;
    if state.is_finished() {
        // Validated already (a second upload.completed): the outcome stands.
        return Ok(Decision::default());
    }
    let resource_id = record.metadata.correlation_id.as_str();
    let verdict = match observed {
        Observation::Nothing => {
            return Err(HandlerError::Permanent(format!(
                "upload.completed for {resource_id} needs the audio examined, observed nothing"
            )))
        }
        Observation::Refused(reason, message) => Err((reason, message)),
        Observation::Audio(facts) => match check_limits(config, &facts) {
            Some(refusal) => Err(refusal),
            None => Ok(facts),
        },
    };
    let emit = match verdict {
        Err((reason_code, message)) => vec![Outgoing::new(
            resource_id,
            &ValidationFailed {
                metadata: ctx.metadata(),
                reason_code,
                message,
            },
        )],
        Ok(facts) => plan_job(config, resource_id, &completed, facts, ctx)?,
    };
    Ok(Decision::emit(emit))
}

/// Channels of a recording with a speaker per channel (`options.speaker_per_channel`).
const SPEAKER_CHANNELS: i32 = 2;

/// `validation.passed`, `processing.job.created` and the chunk commands of a passing file.
fn plan_job(
    config: &ValidationConfig,
    resource_id: &str,
    completed: &UploadCompleted,
    facts: AudioFacts,
    ctx: &Context,
) -> Result<Vec<Outgoing>, HandlerError> {
    let duration_ms = facts.duration_ms;
    let chunks = match &facts.speech {
        Some(speech) => plan_at_pauses(duration_ms, speech, config.pause_cut()),
        None => plan_fixed(duration_ms, config.chunk_ms, config.overlap_ms),
    };
    let speech_ms = facts.speech.as_ref().map(SpeechMap::speech_ms);
    // A call recorded with a speaker per channel: every range once per channel, each channel
    // transcribed on its own (the ranges come from the mix, where both speakers are heard).
    let split = completed
        .options
        .as_ref()
        .is_some_and(|o| o.speaker_per_channel)
        && facts.channels == SPEAKER_CHANNELS;
    let channels: Vec<Option<i32>> = match split {
        true => (0..SPEAKER_CHANNELS).map(Some).collect(),
        false => vec![None],
    };
    let planned: Vec<ChunkRange> = chunks
        .iter()
        .flat_map(|r| {
            channels.iter().map(|&channel| ChunkRange {
                start_ms: r.start,
                end_ms: r.end,
                channel,
            })
        })
        .collect();
    let chunk_count = i32::try_from(planned.len()).map_err(|_| {
        HandlerError::Permanent(format!("{} chunks do not fit a record", planned.len()))
    })?;
    let mut out = vec![Outgoing::new(
        resource_id,
        &ValidationPassed {
            metadata: ctx.metadata(),
            container: facts.container,
            codec: facts.codec,
            channels: facts.channels,
            sample_rate_hz: facts.sample_rate_hz,
            duration_ms,
        },
    )];
    // The job's id is its creation event's id: deterministic, and unique per resource.
    let job_metadata = ctx.metadata();
    let job_id = job_metadata.event_id.clone();
    out.push(Outgoing::new(
        resource_id,
        &ProcessingJobCreated {
            metadata: job_metadata,
            job_id: job_id.clone(),
            object_key: completed.object_key.clone(),
            chunk_count,
            chunk_ms: config.chunk_ms,
            overlap_ms: config.overlap_ms,
            duration_ms,
            etag: completed.etag.clone(),
            size_bytes: Some(completed.size_bytes),
            chunks: Some(planned),
            speech_ms,
            options: completed.options.clone(),
        },
    ));
    Ok(out)
}
