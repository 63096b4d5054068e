//! The upload processor's logic as pure functions: no I/O, no clock but `ctx.now_ms`, so every
//! rule is testable with hand-made inputs and observations.
//!
//! Per resource: `upload.requested` → `quota.reserve` for the request's tenant, or
//! `upload.failed`; the quota processor's `quota.reserved` → `upload.url.generated` (plus an
//! expiry timer), its `quota.refused` → `upload.failed`; `upload.finalize` → `upload.completed`
//! or `upload.failed`; the expiry timer → `upload.expired` then `upload.failed`. Each resource
//! ends in exactly one terminal event.

use echo_catalog::events;
use echo_catalog::events::{
    QuotaLimit, QuotaRefused, QuotaReserve, QuotaReserved, TranscriptOptions, UploadCompleted,
    UploadExpired, UploadFailed, UploadFailureReason, UploadFinalize, UploadRequested,
    UploadUrlGenerated,
};
use echo_catalog::tenant;
use echo_runtime::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::UploadConfig;
use echo_storage::ObjectFacts;

/// The upload processor's decisions: which requests get a URL, which finalized objects pass.
/// Pure: built from configuration alone.
#[derive(Debug, Clone)]
pub struct UploadDecider {
    /// What is accepted, and for how long URLs are valid.
    pub config: UploadConfig,
}

impl Decider for UploadDecider {
    type State = UploadState;
    type Observation = Observation;
    type Effect = NoEffect;

    fn name(&self) -> &'static str {
        "upload"
    }

    fn handles(&self) -> &'static [&'static str] {
        &[
            events::UploadRequested::TYPE,
            events::UploadFinalize::TYPE,
            events::QuotaReserved::TYPE,
            events::QuotaRefused::TYPE,
        ]
    }

    fn emits(&self) -> &'static [&'static str] {
        &[
            events::QuotaReserve::TYPE,
            events::UploadUrlGenerated::TYPE,
            events::UploadCompleted::TYPE,
            events::UploadFailed::TYPE,
            events::UploadExpired::TYPE,
        ]
    }

    /// Decides what an input causes, given the state and what `observe` found.
    fn decide(
        &self,
        state: &UploadState,
        input: Input<'_>,
        observed: Observation,
        ctx: &Context,
    ) -> Result<Decision, HandlerError> {
        let config = &self.config;
        match input {
            Input::Record(record) if record.is::<UploadRequested>() => {
                on_requested(config, state, record, ctx)
            }
            Input::Record(record) if record.is::<QuotaReserved>() => {
                on_reserved(config, state, observed, ctx)
            }
            Input::Record(record) if record.is::<QuotaRefused>() => {
                let refused: QuotaRefused = record.decode()?;
                Ok(on_refused(state, refused, ctx))
            }
            Input::Record(record) if record.is::<UploadFinalize>() => {
                on_finalize(config, state, record, observed, ctx)
            }
            Input::Record(record) => Err(HandlerError::Permanent(format!(
                "the upload processor does not handle {}",
                record.type_name
            ))),
            Input::Timer(timer) if timer.name == EXPIRY_TIMER => Ok(on_expiry(state, ctx)),
            // A timer of an older version of this processor: nothing to do any more.
            Input::Timer(_) => Ok(Decision::default()),
        }
    }

    /// Folds a fact into the state: the first request is remembered when consumed, everything
    /// else is learned from what the processor emitted (so the state is what the events say).
    fn evolve(&self, mut state: UploadState, fact: Fact<'_>) -> UploadState {
        match fact {
            // Only the first request counts; later ones were ignored by `decide`.
            Fact::Consumed(record)
                if record.is::<UploadRequested>()
                    && state.requested.is_none()
                    && !state.is_finished() =>
            {
                if let Ok(request) = record.decode::<UploadRequested>() {
                    state.requested = Some(RequestedUpload {
                        content_type: request.content_type,
                        declared_size_bytes: request.declared_size_bytes,
                        object_key: object_key(&record.metadata.correlation_id),
                        expires_at: None,
                        options: request.options,
                        owner_token_sha256: None,
                        reply_key: request.reply_key,
                    });
                }
            }
            Fact::Emitted(out) if out.is::<UploadUrlGenerated>() => {
                state.url_issued = true;
                if let (Ok(generated), Some(requested)) =
                    (out.decode::<UploadUrlGenerated>(), state.requested.as_mut())
                {
                    requested.object_key = generated.object_key;
                    requested.content_type = generated.content_type;
                    requested.expires_at = Some(generated.expires_at);
                    requested.owner_token_sha256 = generated.owner_token_sha256;
                }
            }
            Fact::Emitted(out) if out.is::<UploadCompleted>() => state.completed = true,
            Fact::Emitted(out) if out.is::<UploadFailed>() => state.failed = true,
            Fact::Emitted(out) if out.is::<UploadExpired>() => state.expired = true,
            _ => {}
        }
        state
    }

    fn is_finished(&self, state: &UploadState) -> bool {
        state.is_finished()
    }

    /// A resource id, once issued a URL, is never issued one again: its retired state keeps
    /// how the upload ended. A request refused without a URL leaves nothing behind: it never
    /// used the id, and keeping it would let a flood of junk requests grow the state for ever.
    fn retired(&self, state: &UploadState) -> Option<UploadState> {
        state.url_issued.then(|| state.residue())
    }

    /// The residue answers every later input, so an ended upload need not wait out the topics'
    /// retention.
    fn retire_after_ms(&self, _state: &UploadState) -> Option<i64> {
        Some(self.config.retire_after_ms)
    }
}

/// The reason code a command without the resource's owner token carries in its DLQ message.
pub const OWNER_TOKEN_REFUSED: &str = "NOT_THE_OWNER";

/// Name of the per-resource timer that expires an upload nobody finalized.
pub const EXPIRY_TIMER: &str = "upload-expiry";

/// What the upload processor remembers about one resource (changelogged as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
// Missing fields take their defaults, so state changelogged by an older version still loads.
#[serde(default)]
pub struct UploadState {
    /// The first request for the resource, which all later inputs are checked against;
    /// `None` until one arrives, so a finalize without it is recognisably bogus.
    pub requested: Option<RequestedUpload>,
    /// `upload.completed` was emitted; nothing more happens to the resource.
    pub completed: bool,
    /// `upload.failed` was emitted; nothing more happens to the resource.
    pub failed: bool,
    /// `upload.expired` was emitted; kept apart from `failed` so operators can tell abandoned
    /// uploads from rejected ones.
    pub expired: bool,
    /// `upload.url.generated` was emitted: the resource id was used, for ever. State written
    /// before this was recorded reads as used, so no id it held is ever issued again.
    #[serde(default = "used_unless_recorded")]
    pub url_issued: bool,
}

/// What `url_issued` reads as in state written before it was recorded.
fn used_unless_recorded() -> bool {
    true
}

impl UploadState {
    /// The upload ended (completed, failed or expired): every later input is ignored, and
    /// its key may retire.
    pub fn is_finished(&self) -> bool {
        self.completed || self.failed || self.expired
    }

    /// What is kept of a finished upload for ever: how it ended, which is enough for every
    /// later request for the resource id to be ignored, without the request's details.
    pub fn residue(&self) -> UploadState {
        UploadState {
            requested: None,
            ..self.clone()
        }
    }
}

/// The request a resource's upload is verified against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedUpload {
    /// Content type the URL is signed for; the stored object must have it.
    pub content_type: String,
    /// Size the client declared; the stored object must have it.
    pub declared_size_bytes: i64,
    /// Server-chosen object key the URL is for, and the one finalize HEADs.
    pub object_key: String,
    /// When the issued URL stops working (ms since the epoch); `None` while no URL was
    /// issued (the request was refused), so "already has a URL" is `Some`.
    pub expires_at: Option<i64>,
    /// The request's options, handed on in `upload.completed`. Absent in state written
    /// before they existed.
    #[serde(default)]
    pub options: Option<TranscriptOptions>,
    /// SHA-256 of the owner token the URL was issued with (`echo_catalog::owner`): a
    /// finalize must present the token. `None` for a URL issued in clear, and in state
    /// written before owners existed: anyone may finalize those.
    #[serde(default)]
    pub owner_token_sha256: Option<String>,
    /// The client's key the URL and the owner token are sealed to, kept while its tenant's
    /// quota is asked (the URL is presigned once the request is admitted).
    #[serde(default)]
    pub reply_key: Option<String>,
}

/// What `observe` found out for `decide`: the I/O results a decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The input needs no I/O (refused, duplicate, terminal, or a timer).
    Nothing,
    /// A pre-signed PUT URL for the request's object key, content type and size, as it is
    /// delivered.
    PresignedUrl(DeliveredUrl),
    /// The HEAD of the object a finalize refers to; `None` when nothing is stored there.
    Object(Option<ObjectFacts>),
}

/// A pre-signed URL in the form it travels in `upload.url.generated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveredUrl {
    /// Sealed to the request's `reply_key` (see `echo_catalog::sealed`), with the resource's
    /// owner token sealed to the same key.
    Sealed {
        /// The sealed URL.
        url: String,
        /// The sealed owner token.
        owner_token: String,
        /// The owner token's SHA-256, hex (`echo_catalog::owner::digest`).
        owner_token_sha256: String,
    },
    /// In clear, for a request without `reply_key` where the deployment allows it; such a
    /// resource has no owner token, as there is no key to seal one to.
    Clear(String),
}

/// What a request deserves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestVerdict {
    /// The resource already has a request or has ended: nothing to do (idempotent).
    Ignore,
    /// Refused: emit `upload.failed` with this reason and message.
    Refuse(UploadFailureReason, String),
    /// Acceptable: ask this tenant's quota for room (`quota.reserve`).
    Reserve {
        /// The tenant the request is charged to.
        tenant: String,
    },
}

/// The object key for a resource's audio. Server-generated from the resource id alone: a
/// client-chosen file name must never pick where bytes land in the bucket.
pub fn object_key(resource_id: &str) -> String {
    echo_storage::keys::upload(resource_id)
}

/// Whether a resource id is safe inside an object key: ids are UUIDs, and anything with `/`,
/// `.` or other characters could address another resource's objects.
fn valid_resource_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Screens an `upload.requested` for the resource `resource_id` in `state`.
pub fn screen_request(
    config: &UploadConfig,
    state: &UploadState,
    resource_id: &str,
    request: &UploadRequested,
) -> RequestVerdict {
    if state.requested.is_some() || state.is_finished() {
        return RequestVerdict::Ignore;
    }
    let size = request.declared_size_bytes;
    if !valid_resource_id(resource_id) {
        return RequestVerdict::Refuse(
            UploadFailureReason::InvalidRequest,
            "the resource id must be 1-128 letters, digits, '-' or '_'".into(),
        );
    }
    if size <= 0 {
        return RequestVerdict::Refuse(
            UploadFailureReason::InvalidRequest,
            format!("declared size must be positive, got {size}"),
        );
    }
    match &request.reply_key {
        Some(key) => {
            if let Err(e) = echo_catalog::sealed::public_key(key) {
                return RequestVerdict::Refuse(UploadFailureReason::InvalidRequest, e.to_string());
            }
        }
        None if !config.allow_clear_urls => {
            return RequestVerdict::Refuse(
                UploadFailureReason::InvalidRequest,
                "reply_key is required: the upload URL is only delivered sealed to the \
                 requesting client's key"
                    .into(),
            );
        }
        None => {}
    }
    if let Some(problem) = request
        .options
        .as_ref()
        .and_then(TranscriptOptions::problem)
    {
        return RequestVerdict::Refuse(UploadFailureReason::InvalidRequest, problem);
    }
    if !config.allows(&request.content_type) {
        return RequestVerdict::Refuse(
            UploadFailureReason::UnsupportedContentType,
            format!(
                "content type {:?} is not accepted; accepted: {}",
                request.content_type,
                config.allowed_content_types.join(", ")
            ),
        );
    }
    if size > config.max_size_bytes {
        return RequestVerdict::Refuse(
            UploadFailureReason::TooLarge,
            format!(
                "declared size {size} bytes is over the limit of {} bytes",
                config.max_size_bytes
            ),
        );
    }
    match tenant_of(config, request.tenant_token.as_deref()) {
        Ok(tenant) => RequestVerdict::Reserve { tenant },
        Err(message) => RequestVerdict::Refuse(UploadFailureReason::UnknownTenant, message),
    }
}

/// The tenant a request with `token` is charged to, or why it has none.
pub fn tenant_of(config: &UploadConfig, token: Option<&str>) -> Result<String, String> {
    match token {
        Some(token) => config
            .tenant_secret
            .as_ref()
            .and_then(|secret| tenant::verify(secret.expose(), token))
            .ok_or_else(|| "the tenant token is not one this deployment issued".to_string()),
        None if config.allow_anonymous => Ok(tenant::ANONYMOUS.to_string()),
        None => {
            Err("a tenant token is required: this deployment admits no anonymous requests".into())
        }
    }
}

/// The request admitted by its tenant's quota and still waiting for its URL, if any: what
/// `observe` presigns for, and `decide` issues.
pub fn awaiting_url(state: &UploadState) -> Option<&RequestedUpload> {
    state
        .requested
        .as_ref()
        .filter(|r| r.expires_at.is_none() && !state.is_finished())
}

/// The object key a finalize must HEAD, or `None` when the finalize will be refused or ignored
/// without looking (unknown or terminal resource, or not sent by the resource's owner).
pub fn finalize_target<'s>(state: &'s UploadState, finalize: &UploadFinalize) -> Option<&'s str> {
    match &state.requested {
        Some(req)
            if !state.is_finished() && req.expires_at.is_some() && from_owner(req, finalize) =>
        {
            Some(&req.object_key)
        }
        _ => None,
    }
}

/// Whether `finalize` carries the owner token of the upload `requested` (always true for an
/// upload issued without one).
pub fn from_owner(requested: &RequestedUpload, finalize: &UploadFinalize) -> bool {
    requested
        .owner_token_sha256
        .as_deref()
        .is_none_or(|digest| {
            echo_catalog::owner::presented(digest, finalize.owner_token.as_deref())
        })
}

fn on_requested(
    config: &UploadConfig,
    state: &UploadState,
    record: &Incoming,
    ctx: &Context,
) -> Result<Decision, HandlerError> {
    let request: UploadRequested = record.decode()?;
    let resource_id = &record.metadata.correlation_id;
    Ok(match screen_request(config, state, resource_id, &request) {
        RequestVerdict::Ignore => Decision::default(),
        RequestVerdict::Refuse(reason, message) => {
            Decision::emit(vec![failed(ctx, resource_id, reason, message)])
        }
        // Keyed by the tenant: one key of the quota processor counts all its usage.
        RequestVerdict::Reserve { tenant } => Decision::emit(vec![Outgoing::new(
            tenant.as_str(),
            &QuotaReserve {
                metadata: ctx.metadata(),
                tenant: tenant.clone(),
                declared_size_bytes: request.declared_size_bytes,
            },
        )]),
    })
}

/// The request's tenant had room: issue its URL.
fn on_reserved(
    config: &UploadConfig,
    state: &UploadState,
    observed: Observation,
    ctx: &Context,
) -> Result<Decision, HandlerError> {
    let resource_id = &ctx.cause.correlation_id;
    let Some(requested) = awaiting_url(state) else {
        // Already issued, ended, or never requested here: nothing to do (idempotent).
        return Ok(Decision::default());
    };
    let Observation::PresignedUrl(url) = observed else {
        return Err(HandlerError::Permanent(format!(
            "quota.reserved for {resource_id} needs a pre-signed URL, observed {observed:?}"
        )));
    };
    let (upload_url, sealed_upload_url, sealed_owner_token, owner_token_sha256) = match url {
        DeliveredUrl::Sealed {
            url,
            owner_token,
            owner_token_sha256,
        } => (
            String::new(),
            Some(url),
            Some(owner_token),
            Some(owner_token_sha256),
        ),
        DeliveredUrl::Clear(url) => (url, None, None, None),
    };
    let expires_at = ctx.now_ms + config.url_ttl_ms();
    let generated = UploadUrlGenerated {
        metadata: ctx.metadata(),
        object_key: requested.object_key.clone(),
        upload_url,
        content_type: requested.content_type.clone(),
        expires_at,
        sealed_upload_url,
        sealed_owner_token,
        owner_token_sha256,
    };
    Ok(Decision {
        emit: vec![Outgoing::new(resource_id.as_str(), &generated)],
        schedule: vec![ctx.timer(EXPIRY_TIMER, expires_at, "")],
        ..Decision::default()
    })
}

/// The request's tenant is at a limit: the upload fails with that limit as its reason.
fn on_refused(state: &UploadState, refused: QuotaRefused, ctx: &Context) -> Decision {
    if awaiting_url(state).is_none() {
        return Decision::default();
    }
    let reason = match refused.limit {
        QuotaLimit::RequestsPerMinute => UploadFailureReason::QuotaRequestsPerMinute,
        QuotaLimit::JobsInFlight => UploadFailureReason::QuotaJobsInFlight,
        QuotaLimit::StoredBytes => UploadFailureReason::QuotaStoredBytes,
    };
    Decision::emit(vec![failed(
        ctx,
        &ctx.cause.correlation_id,
        reason,
        refused.message,
    )])
}

fn on_finalize(
    config: &UploadConfig,
    state: &UploadState,
    record: &Incoming,
    observed: Observation,
    ctx: &Context,
) -> Result<Decision, HandlerError> {
    let finalize: UploadFinalize = record.decode()?;
    let resource_id = &record.metadata.correlation_id;
    // An ended upload (its request may be retired) ignores late finalizes.
    if state.is_finished() {
        return Ok(Decision::default());
    }
    let Some(requested) = &state.requested else {
        return Err(HandlerError::Permanent(format!(
            "upload.finalize for unknown upload {resource_id}: no upload.requested was seen"
        )));
    };
    // Anyone may read the resource id off the events topic; only its requester has the token.
    if !from_owner(requested, &finalize) {
        return Err(HandlerError::Unauthorized(format!(
            "{OWNER_TOKEN_REFUSED}: upload.finalize for {resource_id} does not carry the \
             resource's owner token; the upload is untouched"
        )));
    }
    let Observation::Object(object) = observed else {
        return Err(HandlerError::Permanent(format!(
            "upload.finalize for {resource_id} needs a HEAD of the object, observed {observed:?}"
        )));
    };
    let refuse = |reason, message: String| failed(ctx, resource_id, reason, message);
    let out = match object {
        None => refuse(
            UploadFailureReason::ObjectMissing,
            format!("nothing was uploaded to {}", requested.object_key),
        ),
        Some(o) if o.size != requested.declared_size_bytes => refuse(
            UploadFailureReason::SizeMismatch,
            format!(
                "stored {} bytes, declared {}",
                o.size, requested.declared_size_bytes
            ),
        ),
        // Unreachable while the declared size was checked, but the limit may have been
        // lowered since the URL was issued.
        Some(o) if o.size > config.max_size_bytes => refuse(
            UploadFailureReason::TooLarge,
            format!(
                "stored {} bytes, over the limit of {} bytes",
                o.size, config.max_size_bytes
            ),
        ),
        Some(o) if !o.content_type.eq_ignore_ascii_case(&requested.content_type) => refuse(
            UploadFailureReason::ContentTypeMismatch,
            format!(
                "stored as {:?}, requested {:?}",
                o.content_type, requested.content_type
            ),
        ),
        Some(o) => Outgoing::new(
            resource_id.as_str(),
            &UploadCompleted {
                metadata: ctx.metadata(),
                object_key: requested.object_key.clone(),
                size_bytes: o.size,
                content_type: o.content_type,
                etag: o.etag,
                options: requested.options.clone(),
            },
        ),
    };
    Ok(Decision {
        emit: vec![out],
        schedule: Vec::new(),
        // Either way the upload has ended; it must not expire later.
        cancel: vec![EXPIRY_TIMER.to_string()],
        ..Decision::default()
    })
}

fn on_expiry(state: &UploadState, ctx: &Context) -> Decision {
    let Some(requested) = &state.requested else {
        return Decision::default();
    };
    let Some(expired_at) = requested.expires_at else {
        return Decision::default();
    };
    if state.is_finished() {
        return Decision::default();
    }
    let resource_id = &ctx.cause.correlation_id;
    let expired = UploadExpired {
        metadata: ctx.metadata(),
        object_key: requested.object_key.clone(),
        expired_at,
    };
    Decision::emit(vec![
        Outgoing::new(resource_id.as_str(), &expired),
        failed(
            ctx,
            resource_id,
            UploadFailureReason::Expired,
            "the upload URL expired before upload.finalize".into(),
        ),
    ])
}

/// An `upload.failed` for the resource.
fn failed(
    ctx: &Context,
    resource_id: &str,
    reason_code: UploadFailureReason,
    message: String,
) -> Outgoing {
    Outgoing::new(
        resource_id,
        &UploadFailed {
            metadata: ctx.metadata(),
            reason_code,
            message,
        },
    )
}
