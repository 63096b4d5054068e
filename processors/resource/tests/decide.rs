//! The resource lifecycle as pure functions: hand-made inputs and observations in, decisions
//! and states out, with the state folded the way the runtime folds it (input, then each
//! output) and the processor's own `cleanup.initiated` fed back to it as the topic would.

use echo_catalog::events::{
    CleanupCompleted, CleanupInitiated, CleanupReason, QuotaReserved, ResourceQuotaReleased,
    ResourceReady, ResourceRejected, ResourceTtlReached, TranscriptArtifacts,
    TranscriptionCompleted, TranscriptionFailed, UploadCompleted, UploadFailed,
    UploadFailureReason, UploadUrlGenerated, ValidationFailed, ValidationFailureReason,
    ValidationPassed,
};
use echo_catalog::record::{EventMetadata, Record};
use echo_resource::decide::{
    self, Observation, Outcome, ResourceDecider, ResourceEffect, ResourceState, PROCESSING_TIMER,
    SWEEP_TIMER, TTL_TIMER,
};
use echo_resource::ResourceConfig;
use echo_runtime::envelope::SourcePosition;
use echo_runtime::testing::{self, types};
use echo_runtime::{Decider, HandlerError, Incoming, Input, Outgoing, Timer};
use echo_storage::keys;

/// What the resource processor decides: outputs, timers and the deletes it asks for.
type Decision = echo_runtime::Decision<ResourceEffect>;

const RESOURCE: &str = "3f6c2a10-8e4b-4d2f-9c1a-5b6d7e8f9a0b";
const NOW: i64 = 1_700_000_000_000;
const WEEK_MS: i64 = 7 * 24 * 60 * 60 * 1000;

fn meta(event_id: &str) -> EventMetadata {
    EventMetadata::new(event_id, RESOURCE, "test", NOW)
}

fn incoming<R: Record>(record: &R) -> Incoming {
    Incoming::from_record(&record.metadata().correlation_id, record, "test")
}

/// An output read back from its topic, as the processor sees its own events.
fn read_back(out: &Outgoing) -> Incoming {
    Incoming {
        type_name: out.type_name,
        key: out.key.clone(),
        metadata: out.metadata.clone(),
        value: out.value.clone(),
        source: SourcePosition {
            topic: "echo.resource.events".into(),
            partition: 0,
            offset: 0,
        },
        attempt: 0,
    }
}

/// Builds an input from its event id.
type MakeInput = fn(&str) -> Incoming;

fn artifacts() -> TranscriptArtifacts {
    TranscriptArtifacts {
        txt_key: Some(keys::report(RESOURCE, "transcript.txt")),
        srt_key: Some(keys::report(RESOURCE, "transcript.srt")),
        vtt_key: Some(keys::report(RESOURCE, "transcript.vtt")),
        json_key: keys::report(RESOURCE, "transcript.json"),
    }
}

fn transcribed(event_id: &str) -> Incoming {
    incoming(&TranscriptionCompleted {
        metadata: meta(event_id),
        job_id: "job-1".into(),
        artifacts: artifacts(),
        word_count: 42,
        duration_ms: 61_000,
    })
}

fn validation_failed(event_id: &str) -> Incoming {
    incoming(&ValidationFailed {
        metadata: meta(event_id),
        reason_code: ValidationFailureReason::TooLong,
        message: "4 h is over the limit of 3 h".into(),
    })
}

fn transcription_failed(event_id: &str) -> Incoming {
    incoming(&TranscriptionFailed {
        metadata: meta(event_id),
        job_id: "job-1".into(),
        reason: "chunk 3 failed 3 times".into(),
    })
}

fn upload_completed(event_id: &str) -> Incoming {
    incoming(&UploadCompleted {
        metadata: meta(event_id),
        object_key: keys::upload(RESOURCE),
        size_bytes: 10,
        content_type: "audio/wav".into(),
        etag: None,
        options: None,
    })
}

fn upload_failed(event_id: &str) -> Incoming {
    incoming(&UploadFailed {
        metadata: meta(event_id),
        reason_code: UploadFailureReason::Expired,
        message: "the upload URL expired before upload.finalize".into(),
    })
}

fn cleanup_initiated(event_id: &str, prefix: &str) -> Incoming {
    incoming(&CleanupInitiated {
        metadata: meta(event_id),
        reason: CleanupReason::TtlReached,
        prefix: prefix.into(),
    })
}

/// Handles an input as the runtime does, given what `observe` found: a record at `NOW`, a
/// timer when it is due.
fn handle(
    state: &ResourceState,
    input: Input<'_>,
    observed: Observation,
) -> Result<(Decision, ResourceState), HandlerError> {
    let now = match input {
        Input::Record(_) => NOW,
        Input::Timer(timer) => timer.due_at_ms,
    };
    let decider = ResourceDecider {
        config: ResourceConfig::default(),
    };
    testing::step(&decider, state, input, observed, now)
}

/// Handles a record that needs no I/O.
fn handle_record(state: &ResourceState, input: &Incoming) -> (Decision, ResourceState) {
    handle(state, Input::Record(input), Observation::Nothing).unwrap()
}

fn only<R: Record>(decision: &Decision) -> R {
    let found: Vec<R> = decision
        .emit
        .iter()
        .filter(|o| o.is::<R>())
        .map(|o| o.decode::<R>().unwrap())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {} in {:?}",
        R::TYPE,
        types(decision)
    );
    found.into_iter().next().unwrap()
}

fn is_empty(decision: &Decision) -> bool {
    decision.emit.is_empty()
        && decision.schedule.is_empty()
        && decision.cancel.is_empty()
        && decision.effects.is_empty()
}

/// The state of a resource whose `cleanup.initiated` has been carried out.
fn cleaned_after(state: &ResourceState, initiated: &Outgoing, deleted: u32) -> ResourceState {
    let input = read_back(initiated);
    let (decision, next) =
        handle(state, Input::Record(&input), Observation::Found(deleted)).expect("cleanup decides");
    assert_eq!(types(&decision), ["cleanup.completed"]);
    assert_eq!(
        decision.effects,
        [ResourceEffect::DeletePrefix(keys::prefix(RESOURCE))]
    );
    next
}

#[test]
fn a_transcript_makes_the_resource_ready_and_starts_its_retention() {
    let input = transcribed("tc-1");
    let (decision, state) = handle_record(&ResourceState::default(), &input);

    assert_eq!(types(&decision), ["resource.ready"]);
    let ready: ResourceReady = only(&decision);
    assert_eq!(ready.artifacts, artifacts());
    assert_eq!(ready.metadata.correlation_id, RESOURCE);
    assert_eq!(ready.metadata.causation_id.as_deref(), Some("tc-1"));
    assert_eq!(ready.metadata.producer, "resource");
    assert_eq!(decision.emit[0].key, RESOURCE);

    assert_eq!(decision.schedule.len(), 1);
    let ttl = &decision.schedule[0];
    assert_eq!(ttl.name, TTL_TIMER);
    assert_eq!(ttl.due_at_ms, NOW + WEEK_MS);
    assert_eq!(ttl.scheduled_by.event_id, "tc-1");
    assert_eq!(state.outcome, Some(Outcome::Ready));
    assert!(!state.cleanup_initiated && !state.cleaned);
}

#[test]
fn the_retention_comes_from_the_config() {
    let config = ResourceConfig {
        retention_ms: 60_000,
        ..ResourceConfig::default()
    };
    let input = transcribed("tc-1");
    let (decision, _) = testing::step(
        &ResourceDecider { config },
        &ResourceState::default(),
        Input::Record(&input),
        Observation::Nothing,
        NOW,
    )
    .unwrap();
    assert_eq!(decision.schedule[0].due_at_ms, NOW + 60_000);
}

#[test]
fn a_ready_resource_is_cleaned_when_its_ttl_is_reached() {
    let (decision, ready) = handle_record(&ResourceState::default(), &transcribed("tc-1"));
    let timer: Timer = decision.schedule[0].clone();

    let (fired, state) = handle(&ready, Input::Timer(&timer), Observation::Nothing).unwrap();
    assert_eq!(types(&fired), ["resource.ttl.reached", "cleanup.initiated"]);
    let reached: ResourceTtlReached = only(&fired);
    assert_eq!(reached.expires_at, NOW + WEEK_MS);
    // The timer's cause keeps the chain: the ttl events are caused by the transcript.
    assert_eq!(reached.metadata.causation_id.as_deref(), Some("tc-1"));
    assert_eq!(reached.metadata.correlation_id, RESOURCE);
    let initiated: CleanupInitiated = only(&fired);
    assert_eq!(initiated.reason, CleanupReason::TtlReached);
    assert_eq!(initiated.prefix, keys::prefix(RESOURCE));
    assert!(state.ttl_reached && state.cleanup_initiated && !state.cleaned);

    // The cleanup comes back from the topic; observe deleted 5 objects.
    let back = read_back(&fired.emit[1]);
    let (done, state) = handle(&state, Input::Record(&back), Observation::Found(5)).unwrap();
    assert_eq!(types(&done), ["cleanup.completed"]);
    let completed: CleanupCompleted = only(&done);
    assert_eq!(completed.deleted_objects, 5);
    assert_eq!(
        completed.metadata.causation_id,
        Some(back.metadata.event_id)
    );
    assert_eq!(done.cancel, [TTL_TIMER]);
    assert!(state.cleaned);
    assert_eq!(state.outcome, Some(Outcome::Ready));

    // The same timer firing again (a replay) changes nothing.
    let (again, _) = handle(&state, Input::Timer(&timer), Observation::Nothing).unwrap();
    assert!(is_empty(&again));
}

#[test]
fn failed_validation_rejects_the_resource_then_cleans_it() {
    let (decision, state) = handle_record(&ResourceState::default(), &validation_failed("vf-1"));
    assert_eq!(types(&decision), ["resource.rejected", "cleanup.initiated"]);
    assert!(decision.schedule.is_empty());
    let rejected: ResourceRejected = only(&decision);
    assert_eq!(rejected.reason_code, ValidationFailureReason::TooLong);
    assert_eq!(rejected.message, "4 h is over the limit of 3 h");
    assert_eq!(rejected.metadata.causation_id.as_deref(), Some("vf-1"));
    let initiated: CleanupInitiated = only(&decision);
    assert_eq!(initiated.reason, CleanupReason::Rejected);
    assert_eq!(initiated.prefix, keys::prefix(RESOURCE));
    // Two outputs of one input get distinct ids.
    assert_ne!(rejected.metadata.event_id, initiated.metadata.event_id);
    assert_eq!(state.outcome, Some(Outcome::Rejected));

    let state = cleaned_after(&state, &decision.emit[1], 1);
    assert!(state.cleaned);
}

#[test]
fn failed_transcription_rejects_the_resource_with_its_reason() {
    let (decision, state) = handle_record(&ResourceState::default(), &transcription_failed("tf-1"));
    assert_eq!(types(&decision), ["resource.rejected", "cleanup.initiated"]);
    let rejected: ResourceRejected = only(&decision);
    assert_eq!(rejected.reason_code, decide::TRANSCRIPTION_FAILED_REASON);
    assert_eq!(rejected.reason_code, ValidationFailureReason::Undecodable);
    assert!(
        rejected.message.contains("chunk 3 failed 3 times"),
        "{}",
        rejected.message
    );
    let initiated: CleanupInitiated = only(&decision);
    assert_eq!(initiated.reason, CleanupReason::Rejected);
    assert_eq!(state.outcome, Some(Outcome::Rejected));
}

#[test]
fn a_failed_upload_is_cleaned_without_a_rejection() {
    let (decision, state) = handle_record(&ResourceState::default(), &upload_failed("uf-1"));
    assert_eq!(types(&decision), ["cleanup.initiated"]);
    let initiated: CleanupInitiated = only(&decision);
    assert_eq!(initiated.reason, CleanupReason::UploadFailed);
    assert_eq!(initiated.prefix, keys::prefix(RESOURCE));
    assert_eq!(state.outcome, Some(Outcome::UploadFailed));

    let state = cleaned_after(&state, &decision.emit[0], 0);
    assert!(state.cleaned);
}

#[test]
fn a_second_cleanup_of_a_cleaned_resource_produces_nothing() {
    let (decision, state) = handle_record(&ResourceState::default(), &upload_failed("uf-1"));
    let state = cleaned_after(&state, &decision.emit[0], 2);

    let again = cleanup_initiated("ci-other", &keys::prefix(RESOURCE));
    // No I/O is asked for ...
    assert_eq!(decide::cleanup_target(&state, &again), Ok(None));
    // ... and nothing is emitted.
    let (decision, after) = handle_record(&state, &again);
    assert!(is_empty(&decision));
    assert_eq!(after, state);
}

#[test]
fn a_cleanup_deletes_only_the_resources_own_prefix() {
    let state = ResourceState::default();
    let own = cleanup_initiated("ci-1", &keys::prefix(RESOURCE));
    assert_eq!(
        decide::cleanup_target(&state, &own),
        Ok(Some(keys::prefix(RESOURCE)))
    );
    let foreign = [
        String::new(),
        keys::ROOT.to_string(),
        keys::prefix("another-resource"),
        // Part of the resource is not the resource: a cleanup removes all of it or nothing.
        format!("{}report/", keys::prefix(RESOURCE)),
    ];
    for foreign in &foreign {
        let input = cleanup_initiated("ci-2", foreign);
        assert!(
            matches!(
                decide::cleanup_target(&state, &input),
                Err(HandlerError::Permanent(_))
            ),
            "{foreign:?} accepted"
        );
        assert!(matches!(
            handle(&state, Input::Record(&input), Observation::Found(1)),
            Err(HandlerError::Permanent(_))
        ));
    }
}

#[test]
fn a_cleanup_without_a_deletion_is_a_bug_not_a_completion() {
    let input = cleanup_initiated("ci-1", &keys::prefix(RESOURCE));
    assert!(matches!(
        handle(
            &ResourceState::default(),
            Input::Record(&input),
            Observation::Nothing
        ),
        Err(HandlerError::Permanent(_))
    ));
}

#[test]
fn a_cleanup_nobody_recorded_is_still_carried_out_and_settles_the_resource() {
    // An operator's cleanup (or state lost): the resource goes, and a transcript arriving
    // afterwards must not declare ready a resource whose objects are deleted.
    let input = cleanup_initiated("ci-op", &keys::prefix(RESOURCE));
    let (done, state) = handle(
        &ResourceState::default(),
        Input::Record(&input),
        Observation::Found(3),
    )
    .unwrap();
    assert_eq!(only::<CleanupCompleted>(&done).deleted_objects, 3);
    assert!(state.cleaned && state.is_settled());

    let (late, _) = handle_record(&state, &transcribed("tc-late"));
    assert!(is_empty(&late));
}

#[test]
fn a_repeated_transcript_does_not_make_the_resource_ready_twice() {
    let (_, ready) = handle_record(&ResourceState::default(), &transcribed("tc-1"));
    // A different event (a re-run job), so the runtime's dedup does not catch it.
    let (again, after) = handle_record(&ready, &transcribed("tc-2"));
    assert!(is_empty(&again), "second transcript: {:?}", types(&again));
    assert_eq!(after, ready);
}

#[test]
fn the_ttl_only_ends_a_ready_resource_once() {
    let (decision, ready) = handle_record(&ResourceState::default(), &transcribed("tc-1"));
    let timer = decision.schedule[0].clone();

    // Not ready (rejected): the timer, if any, does nothing.
    let (_, rejected) = handle_record(&ResourceState::default(), &validation_failed("vf-1"));
    let (fired, _) = handle(&rejected, Input::Timer(&timer), Observation::Nothing).unwrap();
    assert!(is_empty(&fired));

    // TTL already reached: no second cleanup.
    let (first, reached) = handle(&ready, Input::Timer(&timer), Observation::Nothing).unwrap();
    assert_eq!(first.emit.len(), 2);
    let (second, _) = handle(&reached, Input::Timer(&timer), Observation::Nothing).unwrap();
    assert!(is_empty(&second));

    // Cleaned by an operator before the TTL: the TTL has nothing left to do.
    let op = cleanup_initiated("ci-op", &keys::prefix(RESOURCE));
    let (_, cleaned) = handle(&ready, Input::Record(&op), Observation::Found(5)).unwrap();
    let (late, _) = handle(&cleaned, Input::Timer(&timer), Observation::Nothing).unwrap();
    assert!(is_empty(&late));

    // A timer of another name (an older version's) is ignored.
    let stale = Timer {
        name: "retired".into(),
        ..timer
    };
    let (ignored, _) = handle(&ready, Input::Timer(&stale), Observation::Nothing).unwrap();
    assert!(is_empty(&ignored));
}

#[test]
fn contradicting_inputs_after_an_outcome_produce_nothing() {
    let outcomes: [(&str, MakeInput); 4] = [
        ("transcription.completed", transcribed),
        ("validation.failed", validation_failed),
        ("transcription.failed", transcription_failed),
        ("upload.failed", upload_failed),
    ];
    for (first_name, first) in outcomes {
        let (decision, settled) = handle_record(&ResourceState::default(), &first("first"));
        let cleanups: Vec<&Outgoing> = decision
            .emit
            .iter()
            .filter(|o| o.is::<CleanupInitiated>())
            .collect();
        // Before and after the cleanup completed, nothing contradicts the first outcome.
        let mut states = vec![settled.clone()];
        if let Some(initiated) = cleanups.first() {
            states.push(cleaned_after(&settled, initiated, 1));
        }
        for state in &states {
            for (later_name, later) in outcomes {
                let (d, after) = handle_record(state, &later("later"));
                assert!(
                    is_empty(&d),
                    "{later_name} after {first_name} emitted {:?}",
                    types(&d)
                );
                assert_eq!(&after, state);
            }
        }
    }
}

/// Runs a whole lifecycle for inputs in this order, feeding every `cleanup.initiated` back and
/// firing every scheduled TTL timer, and returns everything emitted.
fn lifecycle(order: &[Incoming]) -> (Vec<Outgoing>, ResourceState) {
    let mut state = ResourceState::default();
    let mut emitted = Vec::new();
    let mut timers = Vec::new();
    for input in order {
        let (d, next) = handle_record(&state, input);
        state = next;
        timers.extend(d.schedule.clone());
        emitted.extend(d.emit);
    }
    for timer in &timers {
        let (d, next) = handle(&state, Input::Timer(timer), Observation::Nothing).unwrap();
        state = next;
        emitted.extend(d.emit);
    }
    // Every cleanup comes back twice (a replay under another id must not clean twice).
    let initiated: Vec<Outgoing> = emitted
        .iter()
        .filter(|o| o.is::<CleanupInitiated>())
        .cloned()
        .collect();
    for out in initiated.iter().chain(&initiated) {
        let back = read_back(out);
        let observed = match decide::cleanup_target(&state, &back).unwrap() {
            Some(_) => Observation::Found(1),
            None => Observation::Nothing,
        };
        let (d, next) = handle(&state, Input::Record(&back), observed).unwrap();
        state = next;
        emitted.extend(d.emit);
    }
    (emitted, state)
}

#[test]
fn every_order_of_outcomes_ends_in_exactly_one_terminal_state() {
    let makers: [MakeInput; 4] = [
        transcribed,
        validation_failed,
        transcription_failed,
        upload_failed,
    ];
    // All 24 orders of the four outcome inputs.
    let mut orders = vec![vec![]];
    for _ in 0..makers.len() {
        orders = orders
            .into_iter()
            .flat_map(|order: Vec<usize>| {
                (0..makers.len())
                    .filter(|i| !order.contains(i))
                    .map(|i| [order.clone(), vec![i]].concat())
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    assert_eq!(orders.len(), 24);
    for order in orders {
        let inputs: Vec<Incoming> = order
            .iter()
            .map(|&i| makers[i](&format!("in-{i}")))
            .collect();
        let (emitted, state) = lifecycle(&inputs);
        let count = |t: &str| emitted.iter().filter(|o| o.type_name == t).count();
        let expected_outcome = match order[0] {
            0 => Outcome::Ready,
            1 | 2 => Outcome::Rejected,
            _ => Outcome::UploadFailed,
        };
        assert_eq!(state.outcome, Some(expected_outcome), "order {order:?}");
        assert_eq!(
            count("resource.ready") + count("resource.rejected"),
            usize::from(expected_outcome != Outcome::UploadFailed),
            "order {order:?}"
        );
        assert_eq!(
            count("resource.ttl.reached"),
            usize::from(expected_outcome == Outcome::Ready)
        );
        assert_eq!(count("cleanup.initiated"), 1, "order {order:?}");
        assert_eq!(count("cleanup.completed"), 1, "order {order:?}");
        assert!(state.cleaned);
    }
}

#[test]
fn inputs_the_processor_does_not_handle_produce_nothing() {
    let unrelated = [
        incoming(&ValidationPassed {
            metadata: meta("vp-1"),
            container: "wav".into(),
            codec: "pcm_s16le".into(),
            channels: 1,
            sample_rate_hz: 16_000,
            duration_ms: 1_000,
        }),
        // Its own events other than cleanup.initiated come back too.
        incoming(&ResourceReady {
            metadata: meta("rr-1"),
            artifacts: artifacts(),
        }),
        incoming(&CleanupCompleted {
            metadata: meta("cc-1"),
            deleted_objects: 1,
        }),
    ];
    for input in &unrelated {
        let (d, state) = handle_record(&ResourceState::default(), input);
        assert!(is_empty(&d), "{} emitted {:?}", input.type_name, types(&d));
        assert_eq!(state, ResourceState::default(), "{}", input.type_name);
    }
}

#[test]
fn a_payload_of_the_wrong_shape_is_permanent() {
    // Says it is a transcript, carries a failure: a bug upstream, for the DLQ.
    let mut bogus = validation_failed("vf-1");
    bogus.type_name = TranscriptionCompleted::TYPE;
    assert!(matches!(
        handle(
            &ResourceState::default(),
            Input::Record(&bogus),
            Observation::Nothing
        ),
        Err(HandlerError::Permanent(_))
    ));
}

#[test]
fn state_survives_the_changelog_and_old_states_load() {
    let (_, state) = handle_record(&ResourceState::default(), &transcribed("tc-1"));
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<ResourceState>(&json).unwrap(), state);
    // A state written before a field existed.
    let old: ResourceState = serde_json::from_str(r#"{"outcome":"rejected"}"#).unwrap();
    assert_eq!(old.outcome, Some(Outcome::Rejected));
    assert!(!old.cleaned && old.is_settled());
}

#[test]
fn only_whole_resource_prefixes_may_be_deleted() {
    assert!(keys::is_resource_prefix(&keys::prefix(RESOURCE)));
    for bad in [
        "",
        "resources/",
        "resources//",
        "resources/a/b/",
        "resources/../",
        "resources/a",
        "other/a/",
    ] {
        assert!(!keys::is_resource_prefix(bad), "{bad:?} accepted");
    }
}

fn url_generated(event_id: &str, expires_at: i64) -> Incoming {
    incoming(&UploadUrlGenerated {
        metadata: meta(event_id),
        object_key: keys::upload(RESOURCE),
        upload_url: "http://127.0.0.1:9000/echo/resources/x/upload?X-Amz-Signature=0".into(),
        content_type: "audio/wav".into(),
        expires_at,
        sealed_upload_url: None,
        sealed_owner_token: None,
        owner_token_sha256: None,
    })
}

#[test]
fn a_cleanup_before_the_upload_url_expired_is_followed_by_a_sweep() {
    let expires_at = NOW + 60_000;
    let (_, state) = handle_record(
        &ResourceState::default(),
        &url_generated("url-1", expires_at),
    );
    assert_eq!(state.upload_url_expires_at, Some(expires_at));
    let (decision, state) = handle_record(&state, &upload_failed("uf-1"));
    let input = read_back(&decision.emit[0]);
    let (decision, state) = handle(&state, Input::Record(&input), Observation::Found(1)).unwrap();
    assert_eq!(types(&decision), ["cleanup.completed"]);
    let grace = ResourceConfig::default().sweep_grace_ms;
    let sweep: Vec<&Timer> = decision
        .schedule
        .iter()
        .filter(|t| t.name == SWEEP_TIMER)
        .collect();
    assert_eq!(sweep.len(), 1, "{:?}", decision.schedule);
    assert_eq!(sweep[0].due_at_ms, expires_at + grace);
    assert_eq!(
        decide::sweep_target(&state, RESOURCE),
        Some(keys::prefix(RESOURCE)),
        "the sweep deletes the resource's prefix"
    );
    let (decision, _) = handle(&state, Input::Timer(sweep[0]), Observation::Found(1)).unwrap();
    assert!(decision.emit.is_empty(), "the sweep itself says nothing");
    assert_eq!(
        decision.effects,
        [ResourceEffect::DeletePrefix(keys::prefix(RESOURCE))],
        "the sweep deletes what was PUT after the cleanup"
    );
    let (decision, _) = handle(&state, Input::Timer(sweep[0]), Observation::Found(0)).unwrap();
    assert!(is_empty(&decision), "nothing to sweep, nothing to delete");
}

#[test]
fn a_resource_whose_upload_failed_retires_after_the_grace_period_not_the_retention() {
    let decider = ResourceDecider {
        config: ResourceConfig::default(),
    };
    let (decision, state) = handle_record(&ResourceState::default(), &upload_failed("uf-1"));
    let (_, cleaned) = handle(
        &state,
        Input::Record(&read_back(&decision.emit[0])),
        Observation::Found(0),
    )
    .unwrap();
    assert!(cleaned.is_finished());
    assert_eq!(
        decider.retire_after_ms(&cleaned),
        Some(ResourceConfig::default().sweep_grace_ms)
    );
    // A resource that was ready keeps the runtime's retention.
    let ready = ResourceState {
        outcome: Some(Outcome::Ready),
        cleaned: true,
        ..ResourceState::default()
    };
    assert_eq!(decider.retire_after_ms(&ready), None);
}

#[test]
fn a_cleanup_after_the_upload_url_expired_needs_no_sweep() {
    let (_, state) = handle_record(
        &ResourceState::default(),
        &url_generated("url-1", NOW - 3_600_000),
    );
    let (decision, state) = handle_record(&state, &upload_failed("uf-1"));
    let input = read_back(&decision.emit[0]);
    let (decision, _) = handle(&state, Input::Record(&input), Observation::Found(1)).unwrap();
    assert!(decision.schedule.is_empty(), "{:?}", decision.schedule);
    assert_eq!(
        decide::sweep_target(&ResourceState::default(), RESOURCE),
        None
    );
}

#[test]
fn declares_what_its_catalogue_entry_lists() {
    testing::assert_declared_as_catalogued(&ResourceDecider {
        config: ResourceConfig::default(),
    });
}

fn quota_reserved(event_id: &str) -> Incoming {
    incoming(&QuotaReserved {
        metadata: meta(event_id),
        tenant: "acme".into(),
        reserved_bytes: 1_000,
    })
}

/// The `resource.quota.released` records of a decision, as (job, stored bytes), checked to go
/// to the tenant.
fn releases(decision: &Decision) -> Vec<(bool, bool)> {
    decision
        .emit
        .iter()
        .filter(|o| o.is::<ResourceQuotaReleased>())
        .map(|o| {
            let release: ResourceQuotaReleased = o.decode().unwrap();
            assert_eq!(release.tenant, "acme");
            assert_eq!(o.key, "acme", "keyed by the tenant");
            assert_eq!(release.metadata.correlation_id, RESOURCE);
            (release.job, release.stored_bytes)
        })
        .collect()
}

/// The `cleanup.initiated` that `decision` emitted, read back and carried out with `found`
/// objects under the prefix: what that decides, and the state after it.
fn cleanup_carried_out(
    state: &ResourceState,
    decision: &Decision,
    found: u32,
) -> (Decision, ResourceState) {
    let initiated = decision
        .emit
        .iter()
        .find(|o| o.is::<CleanupInitiated>())
        .expect("a cleanup.initiated");
    handle(
        state,
        Input::Record(&read_back(initiated)),
        Observation::Found(found),
    )
    .unwrap()
}

#[test]
fn a_ready_resource_releases_its_job_then_its_bytes_once_deleted() {
    let (decision, state) = handle_record(&ResourceState::default(), &quota_reserved("q-1"));
    assert!(is_empty(&decision), "nothing to release yet");
    let (decision, state) = handle_record(&state, &transcribed("tc-1"));
    assert_eq!(releases(&decision), [(true, false)]);
    let ttl = decision.schedule[0].clone();
    let (decision, state) = handle(&state, Input::Timer(&ttl), Observation::Nothing).unwrap();
    assert_eq!(releases(&decision), [], "the job was released already");
    let (decision, state) = cleanup_carried_out(&state, &decision, 3);
    assert_eq!(releases(&decision), [(false, true)]);
    let held = state.quota.as_ref().unwrap();
    assert!(held.job_released && held.bytes_released);
}

#[test]
fn a_rejected_or_failed_resource_releases_its_job_with_its_cleanup() {
    for failure in [
        validation_failed as MakeInput,
        transcription_failed,
        upload_failed,
    ] {
        let (_, state) = handle_record(&ResourceState::default(), &quota_reserved("q-1"));
        let (decision, state) = handle_record(&state, &failure("f-1"));
        assert_eq!(releases(&decision), [(true, false)]);
        let (decision, _) = cleanup_carried_out(&state, &decision, 1);
        assert_eq!(releases(&decision), [(false, true)]);
    }
}

#[test]
fn an_admission_read_after_the_end_releases_at_once_and_only_once() {
    // The outcome came first: the job is released on the admission.
    let (_, state) = handle_record(&ResourceState::default(), &transcribed("tc-1"));
    let (decision, state) = handle_record(&state, &quota_reserved("q-1"));
    assert_eq!(releases(&decision), [(true, false)]);
    let (decision, _) = handle_record(&state, &quota_reserved("q-2"));
    assert_eq!(
        releases(&decision),
        [],
        "a second admission changes nothing"
    );

    // Everything was cleaned up first: both at once.
    let (decision, state) = handle_record(&ResourceState::default(), &upload_failed("u-1"));
    let state = cleaned_after(&state, &decision.emit[0], 0);
    let (decision, _) = handle_record(&state, &quota_reserved("q-1"));
    assert_eq!(releases(&decision), [(true, true)]);

    // A resource admitted before quotas existed releases nothing.
    let (decision, _) = handle_record(&ResourceState::default(), &transcribed("tc-1"));
    assert_eq!(releases(&decision), []);
}

#[test]
fn processing_that_never_ends_is_rejected_at_its_deadline_and_cleaned() {
    let (started, state) = handle_record(&ResourceState::default(), &upload_completed("uc-1"));
    assert!(started.emit.is_empty());
    let [deadline] = started.schedule.as_slice() else {
        panic!("one timer expected: {:?}", started.schedule)
    };
    assert_eq!(deadline.name, PROCESSING_TIMER);
    let six_hours = 6 * 60 * 60 * 1000;
    assert_eq!(deadline.due_at_ms, NOW + six_hours);

    // Nothing came (a step's input was dead-lettered): the deadline ends it.
    let (fired, state) = handle(&state, Input::Timer(deadline), Observation::Nothing).unwrap();
    assert_eq!(types(&fired), ["resource.rejected", "cleanup.initiated"]);
    let rejected: ResourceRejected = only(&fired);
    assert_eq!(rejected.reason_code, ValidationFailureReason::TimedOut);
    assert!(
        rejected.message.contains("360 minutes"),
        "{}",
        rejected.message
    );
    assert_eq!(rejected.metadata.causation_id.as_deref(), Some("uc-1"));
    let initiated: CleanupInitiated = only(&fired);
    assert_eq!(initiated.reason, CleanupReason::Rejected);
    assert_eq!(state.outcome, Some(Outcome::Rejected));

    // A transcript arriving after that changes nothing: one terminal state.
    let (late, _) = handle_record(&state, &transcribed("tc-1"));
    assert!(is_empty(&late), "{:?}", types(&late));
}

#[test]
fn an_outcome_before_the_deadline_ends_it() {
    let (started, state) = handle_record(&ResourceState::default(), &upload_completed("uc-1"));
    let deadline = started.schedule[0].clone();
    for outcome in [
        transcribed("tc-1"),
        validation_failed("vf-1"),
        transcription_failed("tf-1"),
    ] {
        let (settled, state) = handle_record(&state, &outcome);
        assert!(
            settled.cancel.contains(&PROCESSING_TIMER.to_string()),
            "{} leaves the deadline running",
            outcome.type_name
        );
        let (fired, _) = handle(&state, Input::Timer(&deadline), Observation::Nothing).unwrap();
        assert!(
            is_empty(&fired),
            "{}: {:?}",
            outcome.type_name,
            types(&fired)
        );
    }
    // An upload completed again (a replay) after the outcome starts no new deadline.
    let (ready, state) = handle_record(&state, &transcribed("tc-1"));
    assert_eq!(types(&ready), ["resource.ready"]);
    let (again, _) = handle_record(&state, &upload_completed("uc-2"));
    assert!(is_empty(&again), "{:?}", again.schedule);
}
