//! The upload rules as pure functions: hand-made inputs and observations in, decisions and
//! states out, with the state folded the way the runtime folds it (input, then each output).

use echo_catalog::events::{
    CaptionRules, QuotaLimit, QuotaRefused, QuotaReserve, QuotaReserved, TranscriptFormat,
    TranscriptOptions, UploadCompleted, UploadExpired, UploadFailed, UploadFailureReason,
    UploadFinalize, UploadRequested, UploadUrlGenerated,
};
use echo_catalog::record::{EventMetadata, Record};
use echo_runtime::{testing, Decider, Decision, HandlerError, Incoming, Input, Outgoing, Timer};
use echo_upload::decide::{self, DeliveredUrl, Observation, UploadDecider, EXPIRY_TIMER};
use echo_upload::{ObjectFacts, UploadConfig, UploadState};

const RESOURCE: &str = "0b7f3c1e-5d2a-4c4e-9f1a-2d3c4b5a6f70";
const NOW: i64 = 1_700_000_000_000;
const SIZE: i64 = 1_000_000;
/// A client's X25519 public key (any 32 bytes), in base64 as `reply_key` carries it.
const CLIENT_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn meta(event_id: &str, resource: &str) -> EventMetadata {
    EventMetadata::new(event_id, resource, "client", NOW)
}

fn incoming<R: Record>(record: &R) -> Incoming {
    Incoming::from_record(
        &record.metadata().correlation_id,
        record,
        "echo.upload.requests",
    )
}

fn request_for(resource: &str, event_id: &str, content_type: &str, size: i64) -> Incoming {
    incoming(&UploadRequested {
        metadata: meta(event_id, resource),
        // A hostile name: it must have no influence on where the bytes go.
        filename: "../../other/uploads/x/source.wav".into(),
        content_type: content_type.into(),
        declared_size_bytes: size,
        reply_key: Some(CLIENT_KEY.into()),
        options: None,
        tenant_token: None,
    })
}

/// A valid request carrying `options`.
fn request_with_options(options: TranscriptOptions) -> Incoming {
    let mut request: UploadRequested = request("audio/wav", SIZE).decode().unwrap();
    request.options = Some(options);
    incoming(&request)
}

fn request(content_type: &str, size: i64) -> Incoming {
    request_for(RESOURCE, "req-1", content_type, size)
}

/// The owner token `url()` delivered (sealed) to the requester.
const OWNER_TOKEN: &str = "dGhlIG93bmVyIHRva2Vu";

/// The requester's finalize: it carries the owner token.
fn finalize() -> Incoming {
    finalize_presenting(Some(OWNER_TOKEN))
}

/// A finalize presenting `owner_token`.
fn finalize_presenting(owner_token: Option<&str>) -> Incoming {
    incoming(&UploadFinalize {
        metadata: meta("fin-1", RESOURCE),
        etag: None,
        owner_token: owner_token.map(str::to_string),
    })
}

/// Handles an input at `NOW` as the runtime does, given what `observe` found.
fn handle(
    config: &UploadConfig,
    state: &UploadState,
    input: Input<'_>,
    observed: Observation,
) -> Result<(Decision, UploadState), HandlerError> {
    let decider = UploadDecider {
        config: config.clone(),
    };
    testing::step(&decider, state, input, observed, NOW)
}

/// The tenant of requests without a token.
const ANONYMOUS: &str = echo_catalog::tenant::ANONYMOUS;

/// What the quota processor answers for a request of `tenant` with room.
fn reserved(tenant: &str) -> Incoming {
    Incoming::from_record(
        RESOURCE,
        &QuotaReserved {
            metadata: EventMetadata::new("reserved-1", RESOURCE, "quota", NOW),
            tenant: tenant.into(),
            reserved_bytes: SIZE,
        },
        "echo.upload.quota-events",
    )
}

/// What the quota processor answers for a request of a tenant at `limit`.
fn quota_refused(limit: QuotaLimit) -> Incoming {
    Incoming::from_record(
        RESOURCE,
        &QuotaRefused {
            metadata: EventMetadata::new("refused-1", RESOURCE, "quota", NOW),
            tenant: ANONYMOUS.into(),
            limit,
            message: "tenant anonymous: at its limit".into(),
        },
        "echo.upload.quota-events",
    )
}

/// Handles a request that passes every check: it asks the anonymous tenant's quota for room
/// (`quota.reserve`, keyed by the tenant); then the quota processor's `quota.reserved`, given
/// what `observe` found for it. Returns what the answer decided and the state after it.
fn issue(
    config: &UploadConfig,
    state: &UploadState,
    request: &Incoming,
    observed: Observation,
) -> Result<(Decision, UploadState), HandlerError> {
    let (decision, state) = handle(config, state, Input::Record(request), Observation::Nothing)?;
    let reserve: QuotaReserve = only(&decision);
    assert_eq!(reserve.tenant, ANONYMOUS);
    assert_eq!(decision.emit[0].key, ANONYMOUS, "keyed by tenant");
    assert!(decision.schedule.is_empty(), "no URL, so no expiry, yet");
    handle(
        config,
        &state,
        Input::Record(&reserved(ANONYMOUS)),
        observed,
    )
}

fn url() -> Observation {
    Observation::PresignedUrl(DeliveredUrl::Sealed {
        url: "c2VhbGVk".into(),
        owner_token: "c2VhbGVkIHRva2Vu".into(),
        owner_token_sha256: echo_catalog::owner::digest(OWNER_TOKEN),
    })
}

fn object(size: i64, content_type: &str) -> Observation {
    Observation::Object(Some(ObjectFacts {
        size,
        content_type: content_type.into(),
        etag: None,
    }))
}

/// A request refused without a URL (a content type echo does not take): the state after it.
fn refused() -> UploadState {
    handle(
        &UploadConfig::default(),
        &UploadState::default(),
        Input::Record(&request("video/mp4", SIZE)),
        Observation::Nothing,
    )
    .unwrap()
    .1
}

/// A resource whose URL was issued: the state after a valid `upload.requested`.
fn pending() -> (UploadState, Timer) {
    let config = UploadConfig::default();
    let (decision, state) = issue(
        &config,
        &UploadState::default(),
        &request("audio/wav", SIZE),
        url(),
    )
    .unwrap();
    (state, decision.schedule[0].clone())
}

fn only<R: Record>(decision: &Decision) -> R {
    assert_eq!(decision.emit.len(), 1, "{decision:?}");
    decision.emit[0].decode::<R>().unwrap()
}

fn failure(decision: &Decision) -> UploadFailed {
    only::<UploadFailed>(decision)
}

#[test]
fn a_valid_request_gets_a_url_for_a_server_chosen_key_and_an_expiry_timer() {
    let config = UploadConfig::default();
    let input = request("audio/wav", SIZE);
    let (decision, state) = issue(&config, &UploadState::default(), &input, url()).unwrap();

    let generated: UploadUrlGenerated = only(&decision);
    assert_eq!(generated.object_key, format!("resources/{RESOURCE}/upload"));
    assert_eq!(generated.sealed_upload_url.as_deref(), Some("c2VhbGVk"));
    assert_eq!(generated.upload_url, "", "never in clear when sealed");
    assert_eq!(generated.content_type, "audio/wav");
    assert_eq!(generated.expires_at, NOW + 900_000);
    assert_eq!(generated.metadata.correlation_id, RESOURCE);
    assert_eq!(
        generated.metadata.causation_id.as_deref(),
        Some("reserved-1"),
        "issued on the quota's answer"
    );
    assert_eq!(decision.emit[0].key, RESOURCE);

    assert_eq!(decision.schedule.len(), 1);
    assert_eq!(decision.schedule[0].name, EXPIRY_TIMER);
    assert_eq!(decision.schedule[0].due_at_ms, generated.expires_at);
    assert!(decision.cancel.is_empty());

    let requested = state.requested.as_ref().unwrap();
    assert_eq!(requested.object_key, generated.object_key);
    assert_eq!(requested.content_type, "audio/wav");
    assert_eq!(requested.declared_size_bytes, SIZE);
    assert_eq!(requested.expires_at, Some(generated.expires_at));
    assert!(!state.is_finished());
}

#[test]
fn the_object_key_ignores_the_client_filename() {
    let (state, _) = pending();
    let key = &state.requested.unwrap().object_key;
    assert_eq!(key, &decide::object_key(RESOURCE));
    assert!(!key.contains("..") && !key.contains(".wav"), "{key}");
}

#[test]
fn an_unsupported_content_type_is_refused() {
    let config = UploadConfig::default();
    for content_type in ["video/mp4", "", "audio/wav; x=../"] {
        let (decision, state) = handle(
            &config,
            &UploadState::default(),
            Input::Record(&request(content_type, SIZE)),
            Observation::Nothing,
        )
        .unwrap();
        let failed = failure(&decision);
        assert_eq!(
            failed.reason_code,
            UploadFailureReason::UnsupportedContentType
        );
        assert!(decision.schedule.is_empty());
        assert!(state.failed && state.is_finished());
    }
}

#[test]
fn content_types_are_matched_case_insensitively() {
    let (decision, _) = issue(
        &UploadConfig::default(),
        &UploadState::default(),
        &request("Audio/FLAC", SIZE),
        url(),
    )
    .unwrap();
    assert_eq!(
        only::<UploadUrlGenerated>(&decision).content_type,
        "Audio/FLAC"
    );
}

#[test]
fn a_declared_size_over_the_limit_is_too_large() {
    let config = UploadConfig {
        max_size_bytes: 100,
        ..UploadConfig::default()
    };
    let ok = issue(
        &config,
        &UploadState::default(),
        &request("audio/ogg", 100),
        url(),
    )
    .unwrap();
    assert!(ok.0.emit[0].is::<UploadUrlGenerated>());

    let (decision, _) = handle(
        &config,
        &UploadState::default(),
        Input::Record(&request("audio/ogg", 101)),
        Observation::Nothing,
    )
    .unwrap();
    assert_eq!(
        failure(&decision).reason_code,
        UploadFailureReason::TooLarge
    );
}

#[test]
fn a_size_of_zero_or_less_is_an_invalid_request() {
    for size in [0, -1, i64::MIN] {
        let (decision, _) = handle(
            &UploadConfig::default(),
            &UploadState::default(),
            Input::Record(&request("audio/wav", size)),
            Observation::Nothing,
        )
        .unwrap();
        assert_eq!(
            failure(&decision).reason_code,
            UploadFailureReason::InvalidRequest
        );
    }
}

#[test]
fn a_resource_id_unfit_for_an_object_key_is_an_invalid_request() {
    for resource in ["", "a/../b", "../x", "a.b", &"x".repeat(129)] {
        let (decision, _) = handle(
            &UploadConfig::default(),
            &UploadState::default(),
            Input::Record(&request_for(resource, "req-x", "audio/wav", SIZE)),
            Observation::Nothing,
        )
        .unwrap();
        assert_eq!(
            failure(&decision).reason_code,
            UploadFailureReason::InvalidRequest,
            "{resource:?}"
        );
    }
}

#[test]
fn a_second_request_for_a_resource_with_a_url_is_ignored() {
    let (state, _) = pending();
    let again = request_for(RESOURCE, "req-2", "audio/mpeg", 5);
    assert_eq!(
        decide::screen_request(
            &UploadConfig::default(),
            &state,
            RESOURCE,
            &again.decode().unwrap()
        ),
        decide::RequestVerdict::Ignore
    );
    let (decision, next) = handle(
        &UploadConfig::default(),
        &state,
        Input::Record(&again),
        Observation::Nothing,
    )
    .unwrap();
    assert!(decision.emit.is_empty() && decision.schedule.is_empty());
    assert_eq!(
        next, state,
        "the first request stays the one verified against"
    );
}

#[test]
fn a_request_for_a_refused_resource_is_ignored() {
    let (_, refused) = handle(
        &UploadConfig::default(),
        &UploadState::default(),
        Input::Record(&request("video/mp4", SIZE)),
        Observation::Nothing,
    )
    .unwrap();
    let (decision, _) = handle(
        &UploadConfig::default(),
        &refused,
        Input::Record(&request_for(RESOURCE, "req-2", "audio/wav", SIZE)),
        url(),
    )
    .unwrap();
    assert!(decision.emit.is_empty());
}

#[test]
fn finalize_for_an_unknown_upload_is_permanent() {
    let err = handle(
        &UploadConfig::default(),
        &UploadState::default(),
        Input::Record(&finalize()),
        Observation::Nothing,
    )
    .unwrap_err();
    match err {
        HandlerError::Permanent(m) => assert!(m.contains("upload.finalize for unknown upload")),
        e => panic!("expected a permanent error, got {e:?}"),
    }
}

#[test]
fn finalize_after_the_end_is_ignored() {
    let config = UploadConfig::default();
    let (state, timer) = pending();
    let (_, completed) = handle(
        &config,
        &state,
        Input::Record(&finalize()),
        object(SIZE, "audio/wav"),
    )
    .unwrap();
    let (_, failed) = handle(
        &config,
        &state,
        Input::Record(&finalize()),
        Observation::Object(None),
    )
    .unwrap();
    let (_, expired) = handle(&config, &state, Input::Timer(&timer), Observation::Nothing).unwrap();
    let refused = refused();

    for ended in [completed, failed, expired, refused] {
        assert!(ended.is_finished());
        assert_eq!(
            decide::finalize_target(&ended, &finalize().decode().unwrap()),
            None,
            "no HEAD for {ended:?}"
        );
        let (decision, next) = handle(
            &config,
            &ended,
            Input::Record(&finalize()),
            Observation::Nothing,
        )
        .unwrap();
        assert!(
            decision.emit.is_empty() && decision.cancel.is_empty(),
            "{ended:?}"
        );
        assert_eq!(next, ended);
    }
}

/// Finalize of a pending upload, returning the decision after checking the timer is cancelled
/// and the upload has ended.
fn finalize_with(config: &UploadConfig, observed: Observation) -> Decision {
    let (state, _) = pending();
    assert_eq!(
        decide::finalize_target(&state, &finalize().decode().unwrap()),
        Some(decide::object_key(RESOURCE).as_str())
    );
    let (decision, next) = handle(config, &state, Input::Record(&finalize()), observed).unwrap();
    assert_eq!(decision.cancel, vec![EXPIRY_TIMER.to_string()]);
    assert!(decision.schedule.is_empty());
    assert!(next.is_finished());
    decision
}

#[test]
fn a_finalize_without_the_owner_token_is_refused_and_touches_nothing() {
    let (state, _) = pending();
    let generated = state.requested.as_ref().unwrap();
    assert_eq!(
        generated.owner_token_sha256.as_deref(),
        Some(echo_catalog::owner::digest(OWNER_TOKEN).as_str()),
        "the state keeps the token's digest from upload.url.generated"
    );
    let digest = echo_catalog::owner::digest(OWNER_TOKEN);
    for presented in [
        None,
        Some("c2VhbGVkIHRva2Vu"),
        Some(""),
        Some(digest.as_str()),
    ] {
        let forged = finalize_presenting(presented);
        assert_eq!(
            decide::finalize_target(&state, &forged.decode().unwrap()),
            None,
            "no HEAD for a finalize presenting {presented:?}"
        );
        let err = handle(
            &UploadConfig::default(),
            &state,
            Input::Record(&forged),
            Observation::Object(None),
        )
        .unwrap_err();
        let HandlerError::Unauthorized(message) = err else {
            panic!("a finalize presenting {presented:?}: {err:?}");
        };
        assert!(
            message.starts_with(decide::OWNER_TOKEN_REFUSED),
            "{message}"
        );
    }
    // The owner's finalize still goes through afterwards (the refusals left no trace).
    let (decision, _) = handle(
        &UploadConfig::default(),
        &state,
        Input::Record(&finalize()),
        object(SIZE, "audio/wav"),
    )
    .unwrap();
    only::<UploadCompleted>(&decision);
}

#[test]
fn finalize_without_an_object_fails_object_missing() {
    let decision = finalize_with(&UploadConfig::default(), Observation::Object(None));
    assert_eq!(
        failure(&decision).reason_code,
        UploadFailureReason::ObjectMissing
    );
}

#[test]
fn finalize_with_another_size_fails_size_mismatch() {
    for size in [SIZE - 1, SIZE + 1, 0] {
        let decision = finalize_with(&UploadConfig::default(), object(size, "audio/wav"));
        assert_eq!(
            failure(&decision).reason_code,
            UploadFailureReason::SizeMismatch
        );
    }
}

#[test]
fn finalize_over_a_lowered_limit_fails_too_large() {
    let lowered = UploadConfig {
        max_size_bytes: SIZE - 1,
        ..UploadConfig::default()
    };
    let decision = finalize_with(&lowered, object(SIZE, "audio/wav"));
    assert_eq!(
        failure(&decision).reason_code,
        UploadFailureReason::TooLarge
    );
}

#[test]
fn finalize_with_another_content_type_fails_content_type_mismatch() {
    for stored in ["audio/mpeg", "", "application/octet-stream"] {
        let decision = finalize_with(&UploadConfig::default(), object(SIZE, stored));
        assert_eq!(
            failure(&decision).reason_code,
            UploadFailureReason::ContentTypeMismatch
        );
    }
}

#[test]
fn finalize_of_the_expected_object_completes() {
    let decision = finalize_with(&UploadConfig::default(), object(SIZE, "audio/wav"));
    let completed: UploadCompleted = only(&decision);
    assert_eq!(completed.object_key, decide::object_key(RESOURCE));
    assert_eq!(completed.size_bytes, SIZE);
    assert_eq!(completed.content_type, "audio/wav");
    assert_eq!(completed.metadata.causation_id.as_deref(), Some("fin-1"));
    assert_eq!(decision.emit[0].key, RESOURCE);
}

#[test]
fn the_expiry_timer_expires_and_fails_a_pending_upload() {
    let (state, timer) = pending();
    let (decision, next) = handle(
        &UploadConfig::default(),
        &state,
        Input::Timer(&timer),
        Observation::Nothing,
    )
    .unwrap();
    assert_eq!(decision.emit.len(), 2, "{decision:?}");
    let expired: UploadExpired = decision.emit[0].decode().unwrap();
    assert_eq!(expired.object_key, decide::object_key(RESOURCE));
    assert_eq!(expired.expired_at, NOW + 900_000);
    let failed: UploadFailed = decision.emit[1].decode().unwrap();
    assert_eq!(failed.reason_code, UploadFailureReason::Expired);
    assert!(decision.emit.iter().all(|o: &Outgoing| o.key == RESOURCE));
    assert_ne!(expired.metadata.event_id, failed.metadata.event_id);
    assert!(next.expired && next.failed);
}

#[test]
fn the_expiry_timer_does_nothing_after_the_end() {
    let config = UploadConfig::default();
    let (state, timer) = pending();
    let (_, completed) = handle(
        &config,
        &state,
        Input::Record(&finalize()),
        object(SIZE, "audio/wav"),
    )
    .unwrap();
    let (decision, next) = handle(
        &config,
        &completed,
        Input::Timer(&timer),
        Observation::Nothing,
    )
    .unwrap();
    assert!(decision.emit.is_empty());
    assert_eq!(next, completed);

    let (_, expired) = handle(&config, &state, Input::Timer(&timer), Observation::Nothing).unwrap();
    let (again, _) = handle(
        &config,
        &expired,
        Input::Timer(&timer),
        Observation::Nothing,
    )
    .unwrap();
    assert!(again.emit.is_empty(), "expires only once");
}

#[test]
fn unknown_timers_and_timers_of_unknown_uploads_do_nothing() {
    let (state, timer) = pending();
    let other = Timer {
        name: "something-else".into(),
        ..timer.clone()
    };
    let (decision, _) = handle(
        &UploadConfig::default(),
        &state,
        Input::Timer(&other),
        Observation::Nothing,
    )
    .unwrap();
    assert!(decision.emit.is_empty());
    let (decision, _) = handle(
        &UploadConfig::default(),
        &UploadState::default(),
        Input::Timer(&timer),
        Observation::Nothing,
    )
    .unwrap();
    assert!(decision.emit.is_empty());
}

#[test]
fn a_missing_observation_is_a_permanent_error_not_a_guess() {
    let config = UploadConfig::default();
    let err = issue(
        &config,
        &UploadState::default(),
        &request("audio/wav", SIZE),
        Observation::Nothing,
    )
    .unwrap_err();
    assert!(matches!(err, HandlerError::Permanent(_)), "{err:?}");
    let (state, _) = pending();
    let err = handle(
        &config,
        &state,
        Input::Record(&finalize()),
        Observation::Nothing,
    )
    .unwrap_err();
    assert!(matches!(err, HandlerError::Permanent(_)), "{err:?}");
}

#[test]
fn records_the_processor_does_not_consume_are_skipped() {
    let stray = incoming(&UploadCompleted {
        metadata: meta("x", RESOURCE),
        object_key: "k".into(),
        size_bytes: 1,
        content_type: "audio/wav".into(),
        etag: None,
        options: None,
    });
    // The runtime skips a type the processor does not handle before deciding anything.
    let (decision, state) = handle(
        &UploadConfig::default(),
        &UploadState::default(),
        Input::Record(&stray),
        Observation::Nothing,
    )
    .unwrap();
    assert!(decision.emit.is_empty() && decision.schedule.is_empty());
    assert_eq!(state, UploadState::default());
}

#[test]
fn decisions_are_deterministic() {
    let config = UploadConfig::default();
    let input = request("audio/wav", SIZE);
    let a = issue(&config, &UploadState::default(), &input, url()).unwrap();
    let b = issue(&config, &UploadState::default(), &input, url()).unwrap();
    assert_eq!(a.0.emit[0].metadata, b.0.emit[0].metadata);
    assert_eq!(a.0.schedule, b.0.schedule);
    assert_eq!(a.1, b.1);
}

#[test]
fn the_state_round_trips_through_json() {
    let (state, _) = pending();
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<UploadState>(&json).unwrap(), state);
    assert_eq!(
        serde_json::from_str::<UploadState>("{}").unwrap(),
        UploadState {
            // Unknown then: read as used, so that no id is ever freed by an upgrade.
            url_issued: true,
            ..UploadState::default()
        },
        "state written before a field existed still loads"
    );
}

/// A request whose `reply_key` is `reply_key`.
fn request_with_key(reply_key: Option<&str>) -> Incoming {
    incoming(&UploadRequested {
        metadata: meta("req-1", RESOURCE),
        filename: "talk.wav".into(),
        content_type: "audio/wav".into(),
        declared_size_bytes: SIZE,
        reply_key: reply_key.map(String::from),
        options: None,
        tenant_token: None,
    })
}

#[test]
fn a_request_without_a_key_to_seal_the_url_to_is_refused() {
    let config = UploadConfig::default();
    for key in [None, Some("not base64!"), Some("AAAA")] {
        let (decision, _) = handle(
            &config,
            &UploadState::default(),
            Input::Record(&request_with_key(key)),
            Observation::Nothing,
        )
        .unwrap();
        let failed = failure(&decision);
        assert_eq!(failed.reason_code, UploadFailureReason::InvalidRequest);
        assert!(failed.message.contains("reply_key"), "{}", failed.message);
    }
}

#[test]
fn a_request_with_options_no_transcription_could_use_is_refused() {
    let cases = [
        (
            TranscriptOptions {
                prompt: Some("word ".repeat(101)),
                ..TranscriptOptions::default()
            },
            "prompt has 505 characters",
        ),
        (
            TranscriptOptions {
                prompt: Some("names\u{1b}[2J".into()),
                ..TranscriptOptions::default()
            },
            "control characters",
        ),
        (
            TranscriptOptions {
                caption: Some(CaptionRules {
                    max_chars_per_line: 5,
                    ..CaptionRules::default()
                }),
                ..TranscriptOptions::default()
            },
            "caption: max_chars_per_line",
        ),
        (
            TranscriptOptions {
                caption: Some(CaptionRules {
                    min_duration_ms: -1,
                    ..CaptionRules::default()
                }),
                ..TranscriptOptions::default()
            },
            "caption: durations",
        ),
    ];
    for (options, says) in cases {
        let (decision, _) = handle(
            &UploadConfig::default(),
            &UploadState::default(),
            Input::Record(&request_with_options(options)),
            Observation::Nothing,
        )
        .unwrap();
        let failed = failure(&decision);
        assert_eq!(failed.reason_code, UploadFailureReason::InvalidRequest);
        assert!(failed.message.contains(says), "{}", failed.message);
    }
}

#[test]
fn the_options_of_the_request_reach_upload_completed() {
    let options = TranscriptOptions {
        prompt: Some("Aoife, Siobhán and Kafka.".into()),
        formats: Some(vec![TranscriptFormat::Srt]),
        caption: Some(CaptionRules {
            max_lines: 1,
            ..CaptionRules::default()
        }),
        speaker_per_channel: false,
    };
    let config = UploadConfig::default();
    let (_, state) = issue(
        &config,
        &UploadState::default(),
        &request_with_options(options.clone()),
        url(),
    )
    .unwrap();
    let (decision, _) = handle(
        &config,
        &state,
        Input::Record(&finalize()),
        object(SIZE, "audio/wav"),
    )
    .unwrap();
    let completed: UploadCompleted = only(&decision);
    assert_eq!(completed.options, Some(options));
}

#[test]
fn a_deployment_may_allow_clear_urls_for_requests_without_a_key_which_have_no_owner() {
    let config = UploadConfig {
        allow_clear_urls: true,
        ..UploadConfig::default()
    };
    let (decision, state) = issue(
        &config,
        &UploadState::default(),
        &request_with_key(None),
        Observation::PresignedUrl(DeliveredUrl::Clear("http://s3/presigned".into())),
    )
    .unwrap();
    let generated: UploadUrlGenerated = only(&decision);
    assert_eq!(generated.upload_url, "http://s3/presigned");
    assert_eq!(generated.sealed_upload_url, None);
    // No key to seal an owner token to: any finalize counts.
    assert_eq!(generated.sealed_owner_token, None);
    assert_eq!(generated.owner_token_sha256, None);
    let (decision, _) = handle(
        &config,
        &state,
        Input::Record(&finalize_presenting(None)),
        object(SIZE, "audio/wav"),
    )
    .unwrap();
    only::<UploadCompleted>(&decision);
}

#[test]
fn a_retired_upload_still_refuses_every_later_request_and_finalize() {
    let config = UploadConfig::default();
    let (state, _) = pending();
    let (_, ended) = handle(
        &config,
        &state,
        Input::Record(&finalize()),
        object(SIZE, "audio/wav"),
    )
    .unwrap();
    let residue = ended.residue();
    assert!(
        residue.requested.is_none(),
        "the request's details are dropped"
    );
    assert!(residue.is_finished());
    let again = request_for(RESOURCE, "req-2", "audio/wav", SIZE);
    let (decision, _) = handle(&config, &residue, Input::Record(&again), url()).unwrap();
    assert!(decision.emit.is_empty(), "{decision:?}");
    let (decision, _) = handle(
        &config,
        &residue,
        Input::Record(&finalize()),
        Observation::Nothing,
    )
    .unwrap();
    assert!(decision.emit.is_empty(), "{decision:?}");
}

#[test]
fn an_ended_upload_retires_soon_and_only_a_used_id_leaves_a_residue() {
    let config = UploadConfig::default();
    let decider = UploadDecider {
        config: config.clone(),
    };
    // Refused without a URL: the id was never used; nothing is kept once it retires.
    let refused = refused();
    assert!(refused.is_finished() && !refused.url_issued);
    assert_eq!(decider.retired(&refused), None);
    assert_eq!(
        decider.retire_after_ms(&refused),
        Some(config.retire_after_ms)
    );
    // Issued a URL, then expired: the residue keeps the id used, and is kept in turn.
    let (state, timer) = pending();
    let (_, expired) = handle(&config, &state, Input::Timer(&timer), Observation::Nothing).unwrap();
    let residue = decider.retired(&expired).expect("a residue");
    assert!(residue.url_issued && residue.is_finished());
    assert_eq!(decider.retired(&residue), Some(residue.clone()));
    // State written before `url_issued` existed reads as used: no old id is ever freed.
    let old: UploadState = serde_json::from_str(r#"{"failed": true}"#).unwrap();
    assert!(old.url_issued);
}

#[test]
fn declares_what_its_catalogue_entry_lists() {
    testing::assert_declared_as_catalogued(&UploadDecider {
        config: UploadConfig::default(),
    });
}

/// A deployment that issues tenant tokens under this secret.
const TENANT_SECRET: &str = "the deployment's tenant secret, 32+ bytes";

fn with_tenants(allow_anonymous: bool) -> UploadConfig {
    UploadConfig {
        tenant_secret: Some(echo_runtime::config::Secret(TENANT_SECRET.into())),
        allow_anonymous,
        ..UploadConfig::default()
    }
}

/// A valid request presenting `token`.
fn request_with_token(token: Option<&str>) -> Incoming {
    let mut request: UploadRequested = request("audio/wav", SIZE).decode().unwrap();
    request.tenant_token = token.map(String::from);
    incoming(&request)
}

#[test]
fn a_request_is_charged_to_the_tenant_its_token_names() {
    let token = echo_catalog::tenant::issue(TENANT_SECRET, "acme").unwrap();
    let (decision, state) = handle(
        &with_tenants(false),
        &UploadState::default(),
        Input::Record(&request_with_token(Some(&token))),
        Observation::Nothing,
    )
    .unwrap();
    let reserve: QuotaReserve = only(&decision);
    assert_eq!(reserve.tenant, "acme");
    assert_eq!(reserve.declared_size_bytes, SIZE);
    assert_eq!(reserve.metadata.correlation_id, RESOURCE);
    assert_eq!(decision.emit[0].key, "acme");
    let (decision, _) = handle(
        &with_tenants(false),
        &state,
        Input::Record(&reserved("acme")),
        url(),
    )
    .unwrap();
    only::<UploadUrlGenerated>(&decision);
}

#[test]
fn a_token_the_deployment_did_not_issue_is_refused_unknown_tenant() {
    let foreign =
        echo_catalog::tenant::issue("another deployment's secret, 32+ b", "acme").unwrap();
    let forged = format!("globex.{}", foreign.split_once('.').unwrap().1);
    for (config, token) in [
        (with_tenants(true), Some(foreign.as_str())),
        (with_tenants(true), Some(forged.as_str())),
        (with_tenants(false), None),
        // No secret: no token is valid.
        (UploadConfig::default(), Some(foreign.as_str())),
    ] {
        let (decision, state) = handle(
            &config,
            &UploadState::default(),
            Input::Record(&request_with_token(token)),
            Observation::Nothing,
        )
        .unwrap();
        assert_eq!(
            failure(&decision).reason_code,
            UploadFailureReason::UnknownTenant,
            "{token:?}"
        );
        assert!(!state.url_issued);
    }
}

#[test]
fn a_request_its_tenant_has_no_room_for_fails_with_the_limit_and_leaves_nothing() {
    let config = UploadConfig::default();
    for (limit, reason) in [
        (
            QuotaLimit::RequestsPerMinute,
            UploadFailureReason::QuotaRequestsPerMinute,
        ),
        (
            QuotaLimit::JobsInFlight,
            UploadFailureReason::QuotaJobsInFlight,
        ),
        (
            QuotaLimit::StoredBytes,
            UploadFailureReason::QuotaStoredBytes,
        ),
    ] {
        let (_, state) = handle(
            &config,
            &UploadState::default(),
            Input::Record(&request("audio/wav", SIZE)),
            Observation::Nothing,
        )
        .unwrap();
        let (decision, state) = handle(
            &config,
            &state,
            Input::Record(&quota_refused(limit)),
            Observation::Nothing,
        )
        .unwrap();
        let failed = failure(&decision);
        assert_eq!(failed.reason_code, reason);
        assert!(
            failed.message.contains("at its limit"),
            "{}",
            failed.message
        );
        assert!(decision.schedule.is_empty());
        assert!(state.is_finished() && !state.url_issued);
        assert_eq!(
            UploadDecider {
                config: config.clone()
            }
            .retired(&state),
            None,
            "a refused request leaves no residue"
        );
    }
}

#[test]
fn the_quota_answer_for_an_upload_with_a_url_or_an_end_changes_nothing() {
    let config = UploadConfig::default();
    let (state, _) = pending();
    let (decision, next) =
        handle(&config, &state, Input::Record(&reserved(ANONYMOUS)), url()).unwrap();
    assert!(decision.emit.is_empty() && decision.schedule.is_empty());
    assert_eq!(next, state);
    let (decision, _) = handle(
        &config,
        &state,
        Input::Record(&quota_refused(QuotaLimit::JobsInFlight)),
        Observation::Nothing,
    )
    .unwrap();
    assert!(
        decision.emit.is_empty(),
        "a URL once issued is not taken back"
    );
    let (decision, _) = handle(
        &config,
        &UploadState::default(),
        Input::Record(&reserved(ANONYMOUS)),
        url(),
    )
    .unwrap();
    assert!(decision.emit.is_empty(), "no request, no URL");
}
