//! The `observe` step of `ResourceProcessor`: which inputs cause S3 calls. Uses an endpoint
//! nothing listens on, so any call that reaches the network shows up as a transient error.

use echo_catalog::events::{CleanupInitiated, CleanupReason, TranscriptionFailed};
use echo_catalog::record::{EventMetadata, Record};
use echo_resource::{Observation, ResourceConfig, ResourceProcessor, ResourceState};
use echo_runtime::{Context, Decider, EchoConfig, HandlerError, Incoming, Input, Processor};
use echo_storage::keys;

const RESOURCE: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

fn processor() -> ResourceProcessor {
    let mut config = EchoConfig::default();
    // Port 1 on loopback: connection refused at once.
    config.s3.endpoint = "http://127.0.0.1:1".into();
    ResourceProcessor::new(&config, ResourceConfig::default()).unwrap()
}

fn meta(event_id: &str) -> EventMetadata {
    EventMetadata::new(event_id, RESOURCE, "test", 0)
}

fn incoming<R: Record>(record: &R) -> Incoming {
    Incoming::from_record(&record.metadata().correlation_id, record, "test")
}

fn cleanup(prefix: &str) -> Incoming {
    incoming(&CleanupInitiated {
        metadata: meta("ci-1"),
        reason: CleanupReason::Rejected,
        prefix: prefix.into(),
    })
}

/// What `p` observes for `input` in `state`, as the runtime would call it.
async fn observe(
    p: &ResourceProcessor,
    state: &ResourceState,
    input: &Incoming,
) -> Result<Observation, HandlerError> {
    let ctx = Context::for_input("resource", 0, Input::Record(input));
    p.observe(state, Input::Record(input), &ctx).await
}

#[test]
fn new_refuses_unusable_settings() {
    let bad = ResourceConfig {
        retention_ms: 0,
        ..ResourceConfig::default()
    };
    assert!(ResourceProcessor::new(&EchoConfig::default(), bad).is_err());
    let p = processor();
    assert_eq!(p.decider().name(), "resource");
    assert_eq!(p.config(), &ResourceConfig::default());
}

#[tokio::test]
async fn only_a_pending_cleanup_reaches_the_store() {
    let p = processor();
    let failed = incoming(&TranscriptionFailed {
        metadata: meta("tf-1"),
        job_id: "job-1".into(),
        reason: "boom".into(),
    });
    let observed = observe(&p, &ResourceState::default(), &failed).await;
    assert_eq!(observed, Ok(Observation::Nothing));

    let input = cleanup(&keys::prefix(RESOURCE));
    let cleaned = ResourceState {
        cleaned: true,
        ..ResourceState::default()
    };
    let observed = observe(&p, &cleaned, &input).await;
    assert_eq!(observed, Ok(Observation::Nothing));

    // Not cleaned yet: the delete is attempted, and a store that is down is transient.
    let observed = observe(&p, &ResourceState::default(), &input).await;
    assert!(
        matches!(observed, Err(HandlerError::Transient(_))),
        "{observed:?}"
    );
}

#[tokio::test]
async fn a_foreign_prefix_is_refused_before_any_io() {
    let p = processor();
    let input = cleanup(&keys::prefix("someone-else"));
    let observed = observe(&p, &ResourceState::default(), &input).await;
    assert!(
        matches!(observed, Err(HandlerError::Permanent(_))),
        "{observed:?}"
    );
}
