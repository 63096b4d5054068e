//! The resource processor's logic as pure functions: no I/O, no clock but `ctx.now_ms`, so every
//! rule is testable with hand-made inputs and observations.
//!
//! Per resource, the first outcome wins and decides the whole lifecycle:
//!
//! - `transcription.completed` → `resource.ready`, and a `ttl` timer at now + retention;
//!   the timer → `resource.ttl.reached` then `cleanup.initiated` (`TTL_REACHED`);
//! - `validation.failed` or `transcription.failed` → `resource.rejected` then
//!   `cleanup.initiated` (`REJECTED`);
//! - `upload.failed` → `cleanup.initiated` (`UPLOAD_FAILED`);
//! - `upload.completed` → a `processing` timer at now + the processing deadline; if it fires
//!   before an outcome → `resource.rejected` (`TIMED_OUT`) then `cleanup.initiated`
//!   (`REJECTED`), so no resource stays in progress for ever, whatever step it waits at;
//! - `cleanup.initiated` (read back from its own topic) → the prefix is deleted (an effect)
//!   and `cleanup.completed` says how many objects `observe` found there: the end of every
//!   resource.
//!
//! What the resource held of its tenant's quota (`quota.reserved`) is released with a
//! `resource.quota.released` for the quota processor: its job when the resource reaches its
//! outcome, its bytes when its objects are deleted.
//!
//! Once an outcome is there, inputs that contradict it (a second transcript, a failure after
//! ready, a transcript after a rejection) produce nothing, so each resource ends in exactly one
//! terminal state.

use echo_catalog::events;
use echo_catalog::events::{
    CleanupCompleted, CleanupInitiated, CleanupReason, QuotaReserved, ResourceQuotaReleased,
    ResourceReady, ResourceRejected, ResourceTtlReached, TranscriptionCompleted,
    TranscriptionFailed, UploadCompleted, UploadFailed, UploadUrlGenerated, ValidationFailed,
    ValidationFailureReason,
};
use echo_runtime::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::ResourceConfig;

/// The resource processor's decisions: ready or rejected, the TTL, the cleanup of its objects.
/// Pure: built from configuration alone.
#[derive(Debug, Clone)]
pub struct ResourceDecider {
    /// How long a resource lives, and when the upload prefix is swept.
    pub config: ResourceConfig,
}

impl Decider for ResourceDecider {
    type State = ResourceState;
    type Observation = Observation;
    type Effect = ResourceEffect;

    fn name(&self) -> &'static str {
        "resource"
    }

    fn handles(&self) -> &'static [&'static str] {
        &[
            events::QuotaReserved::TYPE,
            events::UploadUrlGenerated::TYPE,
            events::UploadCompleted::TYPE,
            events::UploadFailed::TYPE,
            events::ValidationFailed::TYPE,
            events::TranscriptionCompleted::TYPE,
            events::TranscriptionFailed::TYPE,
            events::CleanupInitiated::TYPE,
        ]
    }

    fn emits(&self) -> &'static [&'static str] {
        &[
            events::ResourceReady::TYPE,
            events::ResourceRejected::TYPE,
            events::ResourceTtlReached::TYPE,
            events::CleanupInitiated::TYPE,
            events::CleanupCompleted::TYPE,
            events::ResourceQuotaReleased::TYPE,
        ]
    }

    /// Decides what an input causes, given the state and what `observe` found. Inputs of types the
    /// processor does not handle (its source topics carry many) produce nothing.
    fn decide(
        &self,
        state: &ResourceState,
        input: Input<'_>,
        observed: Observation,
        ctx: &Context,
    ) -> Result<Decision<ResourceEffect>, HandlerError> {
        let config = &self.config;
        let decision = match input {
            Input::Record(record) if record.is::<QuotaReserved>() => {
                let reserved: QuotaReserved = record.decode()?;
                return Ok(on_reserved(state, &reserved, ctx));
            }
            Input::Record(record) if record.is::<TranscriptionCompleted>() => {
                on_transcribed(config, state, record, ctx)
            }
            Input::Record(record) if record.is::<ValidationFailed>() => {
                let failed: ValidationFailed = record.decode()?;
                Ok(on_rejected(state, failed.reason_code, failed.message, ctx))
            }
            Input::Record(record) if record.is::<TranscriptionFailed>() => {
                let failed: TranscriptionFailed = record.decode()?;
                let message = format!("transcription failed: {}", failed.reason);
                Ok(on_rejected(
                    state,
                    TRANSCRIPTION_FAILED_REASON,
                    message,
                    ctx,
                ))
            }
            Input::Record(record) if record.is::<UploadFailed>() => {
                let _failed: UploadFailed = record.decode()?;
                Ok(on_upload_failed(state, record, ctx))
            }
            Input::Record(record) if record.is::<UploadCompleted>() => {
                let _completed: UploadCompleted = record.decode()?;
                Ok(on_upload_completed(config, state, ctx))
            }
            Input::Record(record) if record.is::<CleanupInitiated>() => {
                on_cleanup(config, state, record, observed, ctx)
            }
            // Other facts of the pipeline (and this processor's own other events): not ours.
            Input::Record(_) => Ok(Decision::default()),
            Input::Timer(timer) if timer.name == TTL_TIMER => Ok(on_ttl(state, timer, ctx)),
            Input::Timer(timer) if timer.name == SWEEP_TIMER => Ok(on_sweep(state, observed, ctx)),
            Input::Timer(timer) if timer.name == PROCESSING_TIMER => {
                Ok(on_processing_deadline(config, state, ctx))
            }
            // A timer of an older version of this processor: nothing to do any more.
            Input::Timer(_) => Ok(Decision::default()),
        }?;
        Ok(with_release(state, with_deadline_ended(decision), ctx))
    }

    /// Folds a fact into the state. Only what the processor emitted counts (the inputs that caused
    /// it are already summed up by the outputs, and ignored inputs must change nothing), but for
    /// the upload URL's expiry, which the sweep needs and no output of its own carries.
    fn evolve(&self, mut state: ResourceState, fact: Fact<'_>) -> ResourceState {
        let out = match fact {
            Fact::Emitted(out) => out,
            Fact::Consumed(record) if record.is::<QuotaReserved>() => {
                if let Ok(reserved) = record.decode::<QuotaReserved>() {
                    state.quota.get_or_insert(HeldQuota {
                        tenant: reserved.tenant,
                        job_released: false,
                        bytes_released: false,
                    });
                }
                return state;
            }
            Fact::Consumed(record) if record.is::<UploadUrlGenerated>() => {
                if let Ok(generated) = record.decode::<UploadUrlGenerated>() {
                    state.upload_url_expires_at =
                        state.upload_url_expires_at.max(Some(generated.expires_at));
                }
                return state;
            }
            _ => return state,
        };
        if out.is::<ResourceReady>() {
            state.outcome.get_or_insert(Outcome::Ready);
        } else if out.is::<ResourceRejected>() {
            state.outcome.get_or_insert(Outcome::Rejected);
        } else if out.is::<ResourceTtlReached>() {
            state.ttl_reached = true;
        } else if out.is::<CleanupInitiated>() {
            state.cleanup_initiated = true;
            // An upload failure has no event of its own here: its cleanup is its outcome.
            if let Ok(initiated) = out.decode::<CleanupInitiated>() {
                if initiated.reason == CleanupReason::UploadFailed {
                    state.outcome.get_or_insert(Outcome::UploadFailed);
                }
            }
        } else if out.is::<CleanupCompleted>() {
            state.cleaned = true;
        } else if out.is::<ResourceQuotaReleased>() {
            if let (Ok(release), Some(held)) =
                (out.decode::<ResourceQuotaReleased>(), state.quota.as_mut())
            {
                held.job_released |= release.job;
                held.bytes_released |= release.stored_bytes;
            }
        }
        state
    }

    fn is_finished(&self, state: &ResourceState) -> bool {
        state.is_finished()
    }

    /// A resource whose upload never completed held nothing but its cleanup (its sweep timer,
    /// if a URL was issued, keeps it until the URL is useless): it retires after the grace
    /// period rather than the topics' retention, so refused and abandoned requests do not pile
    /// up for a week. The upload processor's residue keeps its id from being used again.
    fn retire_after_ms(&self, state: &ResourceState) -> Option<i64> {
        (state.outcome == Some(Outcome::UploadFailed)).then_some(self.config.sweep_grace_ms)
    }
}

/// Name of the per-resource timer that ends a ready resource's retention.
pub const TTL_TIMER: &str = "ttl";

/// Name of the per-resource timer that deletes, once the upload URL can no longer be used,
/// whatever a client PUT under a resource already cleaned up.
pub const SWEEP_TIMER: &str = "sweep";

/// Name of the per-resource timer that ends processing that never reached an outcome.
pub const PROCESSING_TIMER: &str = "processing";

/// The reason code `resource.rejected` carries for a failed transcription. The code set is
/// validation's; of its symbols, "echo cannot decode this into speech" is the closest to a
/// transcription that gave up on audio that had passed validation. The failure's own reason
/// goes into the message, so nothing is lost for operators.
pub const TRANSCRIPTION_FAILED_REASON: ValidationFailureReason =
    ValidationFailureReason::Undecodable;

/// How a resource's processing ended: the one outcome its lifecycle follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `resource.ready` was emitted: the transcript is downloadable until the TTL.
    Ready,
    /// `resource.rejected` was emitted: the audio (or its transcription) failed.
    Rejected,
    /// The upload never completed; cleaned up without a `resource.rejected`, since nothing
    /// was ever accepted.
    UploadFailed,
}

/// What the resource processor remembers about one resource (changelogged as JSON). Everything
/// but the upload URL's expiry is learned from what the processor emitted, so the state is what
/// its events say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
// Missing fields take their defaults, so state changelogged by an older version still loads.
#[serde(default)]
pub struct ResourceState {
    /// The first outcome; `None` while processing is still going on. Later outcomes are
    /// ignored, which is what makes the terminal state unique.
    pub outcome: Option<Outcome>,
    /// `resource.ttl.reached` was emitted; the TTL timer must not act twice.
    pub ttl_reached: bool,
    /// `cleanup.initiated` was emitted: the objects are going, so nothing may make the
    /// resource ready any more.
    pub cleanup_initiated: bool,
    /// `cleanup.completed` was emitted: the resource is gone; every later input is ignored.
    pub cleaned: bool,
    /// When the resource's upload URL stops working (from `upload.url.generated`): until
    /// then (and a grace period) a client can still PUT under the resource, so a cleanup
    /// before it is followed by a sweep.
    pub upload_url_expires_at: Option<i64>,
    /// What the resource holds of its tenant's quota (from `quota.reserved`), and what of it
    /// was released; `None` for a resource admitted before quotas existed.
    pub quota: Option<HeldQuota>,
}

/// A resource's reservation in its tenant's quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldQuota {
    /// The tenant charged.
    pub tenant: String,
    /// `resource.quota.released` freed its job in flight.
    pub job_released: bool,
    /// `resource.quota.released` freed its stored bytes.
    pub bytes_released: bool,
}

impl ResourceState {
    /// The resource is gone (`cleanup.completed`): every later input is ignored.
    pub fn is_finished(&self) -> bool {
        self.cleaned
    }
}

impl ResourceState {
    /// Whether the resource's fate is decided (an outcome, or a cleanup of any origin), after
    /// which inputs that would decide it again produce nothing.
    pub fn is_settled(&self) -> bool {
        self.outcome.is_some() || self.cleanup_initiated || self.cleaned
    }
}

/// What `observe` found out for `decide`: the I/O results a decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The input needs no I/O (not a cleanup, or the resource is already cleaned).
    Nothing,
    /// There are this many objects under the resource's prefix, which the cleanup (or the
    /// sweep after it) is about to delete.
    Found(u32),
}

/// What the resource processor does outside Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceEffect {
    /// Delete every object under this prefix (one resource's own): idempotent, a second
    /// delete finds nothing.
    DeletePrefix(String),
}

/// The prefix the sweep timer deletes: the resource's own, once it is cleaned up; `None`
/// otherwise (nothing to sweep, the cleanup has not happened).
pub fn sweep_target(state: &ResourceState, resource_id: &str) -> Option<String> {
    state
        .cleaned
        .then(|| echo_storage::keys::prefix(resource_id))
}

/// The prefix a `cleanup.initiated` asks to delete, or `None` when the resource is already
/// cleaned and the input will be ignored without any I/O. A prefix other than the resource's
/// own is refused (permanently): a cleanup must never reach another resource's objects.
pub fn cleanup_target(
    state: &ResourceState,
    record: &Incoming,
) -> Result<Option<String>, HandlerError> {
    let initiated: CleanupInitiated = record.decode()?;
    if state.cleaned {
        return Ok(None);
    }
    let resource_id = &record.metadata.correlation_id;
    let expected = echo_storage::keys::prefix(resource_id);
    if initiated.prefix != expected {
        return Err(HandlerError::Permanent(format!(
            "cleanup.initiated for {resource_id} names prefix {:?}, expected {expected:?}",
            initiated.prefix
        )));
    }
    Ok(Some(expected))
}

fn on_transcribed(
    config: &ResourceConfig,
    state: &ResourceState,
    record: &Incoming,
    ctx: &Context,
) -> Result<Decision<ResourceEffect>, HandlerError> {
    let completed: TranscriptionCompleted = record.decode()?;
    if state.is_settled() {
        return Ok(Decision::default());
    }
    let resource_id = &record.metadata.correlation_id;
    let ready = ResourceReady {
        metadata: ctx.metadata(),
        artifacts: completed.artifacts,
    };
    // Saturating: a validated retention cannot overflow, but a clock gone mad must not panic.
    let expires_at = ctx.now_ms.saturating_add(config.retention_ms);
    Ok(Decision {
        emit: vec![Outgoing::new(resource_id.as_str(), &ready)],
        schedule: vec![ctx.timer(TTL_TIMER, expires_at, "")],
        cancel: Vec::new(),
        ..Decision::default()
    })
}

/// The resource is rejected for `reason_code` and its objects deleted, unless its fate is
/// already decided.
fn on_rejected(
    state: &ResourceState,
    reason_code: ValidationFailureReason,
    message: String,
    ctx: &Context,
) -> Decision<ResourceEffect> {
    if state.is_settled() {
        return Decision::default();
    }
    let resource_id = &ctx.cause.correlation_id;
    let rejected = ResourceRejected {
        metadata: ctx.metadata(),
        reason_code,
        message,
    };
    Decision::emit(vec![
        Outgoing::new(resource_id.as_str(), &rejected),
        cleanup(ctx, resource_id, CleanupReason::Rejected),
    ])
}

/// The upload is verified and processing begins: from now on the resource has
/// `processing_deadline_ms` to reach an outcome.
fn on_upload_completed(
    config: &ResourceConfig,
    state: &ResourceState,
    ctx: &Context,
) -> Decision<ResourceEffect> {
    if state.is_settled() {
        return Decision::default();
    }
    let due = ctx.now_ms.saturating_add(config.processing_deadline_ms);
    Decision {
        schedule: vec![ctx.timer(PROCESSING_TIMER, due, "")],
        ..Decision::default()
    }
}

/// Processing outlived its deadline (a step waits on something dead-lettered, or on nothing
/// at all): the resource is rejected and its objects deleted, so the client hears an end.
fn on_processing_deadline(
    config: &ResourceConfig,
    state: &ResourceState,
    ctx: &Context,
) -> Decision<ResourceEffect> {
    let message = format!(
        "processing did not end within {} minutes of the upload; the file may be submitted again",
        config.processing_deadline_ms / 60_000
    );
    on_rejected(state, ValidationFailureReason::TimedOut, message, ctx)
}

/// A decision that settles the resource ends its processing deadline.
fn with_deadline_ended(mut decision: Decision<ResourceEffect>) -> Decision<ResourceEffect> {
    let settles = decision.emit.iter().any(|out| {
        out.is::<ResourceReady>() || out.is::<ResourceRejected>() || out.is::<CleanupInitiated>()
    });
    if settles {
        decision.cancel.push(PROCESSING_TIMER.to_string());
    }
    decision
}

fn on_upload_failed(
    state: &ResourceState,
    record: &Incoming,
    ctx: &Context,
) -> Decision<ResourceEffect> {
    if state.is_settled() {
        return Decision::default();
    }
    let resource_id = &record.metadata.correlation_id;
    Decision::emit(vec![cleanup(ctx, resource_id, CleanupReason::UploadFailed)])
}

fn on_ttl(state: &ResourceState, timer: &Timer, ctx: &Context) -> Decision<ResourceEffect> {
    // Only a ready resource has a retention; one already cleaning up keeps its first cleanup.
    if state.outcome != Some(Outcome::Ready)
        || state.ttl_reached
        || state.cleanup_initiated
        || state.cleaned
    {
        return Decision::default();
    }
    let resource_id = &ctx.cause.correlation_id;
    let reached = ResourceTtlReached {
        metadata: ctx.metadata(),
        expires_at: timer.due_at_ms,
    };
    Decision::emit(vec![
        Outgoing::new(resource_id.as_str(), &reached),
        cleanup(ctx, resource_id, CleanupReason::TtlReached),
    ])
}

/// Any `cleanup.initiated` for a resource not yet cleaned is carried out, also one this
/// processor has no record of emitting (an operator's, or state lost): deleting what the
/// event names is what it asks for, and the prefix was checked to be the resource's own.
fn on_cleanup(
    config: &ResourceConfig,
    state: &ResourceState,
    record: &Incoming,
    observed: Observation,
    ctx: &Context,
) -> Result<Decision<ResourceEffect>, HandlerError> {
    let Some(prefix) = cleanup_target(state, record)? else {
        return Ok(Decision::default());
    };
    let resource_id = &record.metadata.correlation_id;
    let Observation::Found(found) = observed else {
        return Err(HandlerError::Permanent(format!(
            "cleanup.initiated for {resource_id} needs the prefix listed, observed {observed:?}"
        )));
    };
    let completed = CleanupCompleted {
        metadata: ctx.metadata(),
        // A resource has a handful of objects; saturate rather than fail on absurd counts.
        deleted_objects: i32::try_from(found).unwrap_or(i32::MAX),
    };
    // A client may still PUT with its URL until the URL expires: sweep once more after that.
    let sweep_at = state
        .upload_url_expires_at
        .map(|at| at.saturating_add(config.sweep_grace_ms))
        .filter(|at| *at > ctx.now_ms);
    Ok(Decision {
        emit: vec![Outgoing::new(resource_id.as_str(), &completed)],
        schedule: sweep_at
            .map(|at| ctx.timer(SWEEP_TIMER, at, ""))
            .into_iter()
            .collect(),
        // The objects are gone; a pending retention deadline has nothing left to end.
        cancel: vec![TTL_TIMER.to_string()],
        effects: vec![ResourceEffect::DeletePrefix(prefix)],
    })
}

/// What a client PUT under a resource already cleaned up is deleted too, when `observe` found
/// anything there.
fn on_sweep(
    state: &ResourceState,
    observed: Observation,
    ctx: &Context,
) -> Decision<ResourceEffect> {
    match (sweep_target(state, &ctx.cause.correlation_id), observed) {
        (Some(prefix), Observation::Found(found)) if found > 0 => Decision {
            effects: vec![ResourceEffect::DeletePrefix(prefix)],
            ..Decision::default()
        },
        _ => Decision::default(),
    }
}

/// A `cleanup.initiated` for every object of the resource.
fn cleanup(ctx: &Context, resource_id: &str, reason: CleanupReason) -> Outgoing {
    Outgoing::new(
        resource_id,
        &CleanupInitiated {
            metadata: ctx.metadata(),
            reason,
            prefix: echo_storage::keys::prefix(resource_id),
        },
    )
}

/// The resource was admitted by its tenant's quota. What it holds is released as its life
/// goes on; if it already reached its outcome or was cleaned up (the answer was read after
/// the events it caused), that part is released now.
fn on_reserved(
    state: &ResourceState,
    reserved: &QuotaReserved,
    ctx: &Context,
) -> Decision<ResourceEffect> {
    if state.quota.is_some() {
        return Decision::default();
    }
    let job = state.is_settled();
    let stored_bytes = state.cleaned;
    if !job && !stored_bytes {
        return Decision::default();
    }
    Decision::emit(vec![release(ctx, &reserved.tenant, job, stored_bytes)])
}

/// `decision` with the `resource.quota.released` its outputs call for: the job once the
/// resource's fate is decided (ready, rejected, or a cleanup of any origin), the bytes once its
/// objects are deleted; each once.
fn with_release(
    state: &ResourceState,
    mut decision: Decision<ResourceEffect>,
    ctx: &Context,
) -> Decision<ResourceEffect> {
    let Some(held) = &state.quota else {
        return decision;
    };
    let emits = |is: fn(&Outgoing) -> bool| decision.emit.iter().any(is);
    let job = !held.job_released
        && emits(|o| {
            o.is::<ResourceReady>() || o.is::<ResourceRejected>() || o.is::<CleanupInitiated>()
        });
    let stored_bytes = !held.bytes_released && emits(|o| o.is::<CleanupCompleted>());
    if job || stored_bytes {
        decision
            .emit
            .push(release(ctx, &held.tenant, job, stored_bytes));
    }
    decision
}

/// A `resource.quota.released` for the quota processor, keyed by the tenant.
fn release(ctx: &Context, tenant: &str, job: bool, stored_bytes: bool) -> Outgoing {
    Outgoing::new(
        tenant,
        &ResourceQuotaReleased {
            metadata: ctx.metadata(),
            tenant: tenant.to_string(),
            job,
            stored_bytes,
        },
    )
}
