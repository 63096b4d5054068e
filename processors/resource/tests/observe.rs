//! The `observe` step of `ResourceProcessor`. Which inputs cause S3 calls, against an endpoint
//! nothing listens on (any call that reaches the network shows up as a transient error); and
//! the cleanup against the real object store of the local stack (`EchoConfig::default()`):
//! `observe` counts a resource's objects, `decide` reports how many and asks for their delete,
//! the effect deletes them, and another resource's objects survive. Fails, never skips, when
//! the store is down.

use echo_catalog::events::{
    CleanupCompleted, CleanupInitiated, CleanupReason, TranscriptionFailed,
};
use echo_catalog::record::{EventMetadata, Record};
use echo_resource::{
    Observation, ResourceConfig, ResourceEffect, ResourceProcessor, ResourceState,
};
use echo_runtime::envelope::SourcePosition;
use echo_runtime::testing::handle;
use echo_runtime::{Context, Decider, EchoConfig, HandlerError, Incoming, Input, Processor};
use echo_storage::keys;
use s3::creds::Credentials;
use s3::{Bucket, Region};

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

    // Not cleaned yet: the listing is attempted, and a store that is down is transient.
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

/// A bucket handle of its own, to put objects: the processor only ever deletes.
fn raw_bucket(config: &EchoConfig) -> Box<Bucket> {
    let s3 = &config.s3;
    let region = Region::Custom {
        region: s3.region.clone(),
        endpoint: s3.endpoint.clone(),
    };
    let credentials = Credentials::new(
        Some(&s3.access_key),
        Some(s3.secret_key.expose()),
        None,
        None,
        None,
    )
    .unwrap();
    Bucket::new(&s3.bucket, region, credentials)
        .unwrap()
        .with_path_style()
}

fn cleanup_for(resource: &str, event_id: &str) -> Incoming {
    let record = CleanupInitiated {
        metadata: EventMetadata::new(event_id, resource, "resource", 0),
        reason: CleanupReason::TtlReached,
        prefix: keys::prefix(resource),
    };
    Incoming {
        type_name: CleanupInitiated::TYPE,
        key: resource.into(),
        metadata: record.metadata.clone(),
        value: apache_avro::to_value(&record).unwrap(),
        source: SourcePosition {
            topic: "echo.resource.events".into(),
            partition: 0,
            offset: 0,
        },
        attempt: 0,
    }
}

const NOW: i64 = 1_700_000_000_000;

fn ctx(input: &Incoming) -> Context {
    Context::for_input("resource", NOW, Input::Record(input))
}

async fn exists(p: &ResourceProcessor, key: &str) -> bool {
    p.s3().head(key).await.unwrap().is_some()
}

#[tokio::test]
async fn cleanup_deletes_every_object_of_the_resource_and_nothing_else() {
    let config = EchoConfig::default();
    let p = ResourceProcessor::new(&config, ResourceConfig::default()).unwrap();
    p.s3().ensure_bucket().await.unwrap();
    let bucket = raw_bucket(&config);

    let resource = uuid::Uuid::new_v4().to_string();
    let other = uuid::Uuid::new_v4().to_string();
    let own_keys = [
        keys::upload(&resource),
        keys::report(&resource, "transcript.txt"),
        keys::report(&resource, "transcript.json"),
    ];
    for key in &own_keys {
        bucket
            .put_object_with_content_type(key, b"bytes", "application/octet-stream")
            .await
            .unwrap();
    }
    // Another resource whose id extends this one's: a prefix without the trailing `/`
    // would take it too.
    let neighbour = format!("{resource}0");
    let other_keys = [keys::upload(&other), keys::upload(&neighbour)];
    for key in &other_keys {
        bucket
            .put_object_with_content_type(key, b"other", "audio/wav")
            .await
            .unwrap();
    }

    let input = cleanup_for(&resource, "ci-1");
    let state = ResourceState::default();
    let c = ctx(&input);
    // `observe` only counts: every object is still there after it.
    let observed = p.observe(&state, Input::Record(&input), &c).await.unwrap();
    assert_eq!(observed, Observation::Found(3));
    for key in &own_keys {
        assert!(exists(&p, key).await, "{key} was deleted by observe");
    }
    // The decision asks for the delete, which the runtime carries out as an effect.
    let (decision, _) = handle(&p, &state, Input::Record(&input), NOW)
        .await
        .unwrap();
    assert_eq!(
        decision.effects,
        [ResourceEffect::DeletePrefix(keys::prefix(&resource))]
    );
    assert_eq!(decision.emit.len(), 1);
    let completed: CleanupCompleted = decision.emit[0].decode().unwrap();
    assert_eq!(completed.deleted_objects, 3);
    assert_eq!(decision.emit[0].key, resource);

    for key in &own_keys {
        assert!(!exists(&p, key).await, "{key} survived the cleanup");
    }
    for key in &other_keys {
        assert!(
            exists(&p, key).await,
            "{key} of another resource was deleted"
        );
    }

    // The same cleanup again from the same state (a retry after an aborted transaction):
    // nothing is left, and it says so.
    let (decision, cleaned) = handle(&p, &state, Input::Record(&input), NOW)
        .await
        .unwrap();
    let completed: CleanupCompleted = decision.emit[0].decode().unwrap();
    assert_eq!(completed.deleted_objects, 0);

    // Once the completion is folded in, another cleanup costs no S3 call and emits nothing.
    let again = cleanup_for(&resource, "ci-2");
    let c = ctx(&again);
    let observed = p
        .observe(&cleaned, Input::Record(&again), &c)
        .await
        .unwrap();
    assert_eq!(observed, Observation::Nothing);
    let (decision, _) = handle(&p, &cleaned, Input::Record(&again), NOW)
        .await
        .unwrap();
    assert!(decision.emit.is_empty() && decision.effects.is_empty());

    for id in [&other, &neighbour] {
        assert_eq!(p.s3().delete_prefix(&keys::prefix(id)).await.unwrap(), 1);
    }
}

#[tokio::test]
async fn delete_prefix_refuses_anything_but_one_resource() {
    let p = ResourceProcessor::new(&EchoConfig::default(), ResourceConfig::default()).unwrap();
    for prefix in ["", keys::ROOT, "resources/a/b/", "resources/../"] {
        assert!(
            matches!(
                p.s3().delete_prefix(prefix).await,
                Err(HandlerError::Permanent(_))
            ),
            "{prefix:?} accepted"
        );
    }
}

#[tokio::test]
async fn a_cleanup_larger_than_one_listing_page_deletes_everything() {
    let config = EchoConfig::default();
    let p = ResourceProcessor::new(&config, ResourceConfig::default()).unwrap();
    p.s3().ensure_bucket().await.unwrap();
    let bucket = raw_bucket(&config);
    let resource = uuid::Uuid::new_v4().to_string();
    // One more than a listing page (1000 keys), so the count and the delete list again.
    for i in 0..1001 {
        bucket
            .put_object(keys::report(&resource, &format!("part-{i:04}")), b"x")
            .await
            .unwrap();
    }
    assert_eq!(
        p.s3().count_prefix(&keys::prefix(&resource)).await.unwrap(),
        1001
    );
    let deleted = p
        .s3()
        .delete_prefix(&keys::prefix(&resource))
        .await
        .unwrap();
    assert_eq!(
        p.s3().count_prefix(&keys::prefix(&resource)).await.unwrap(),
        0
    );
    assert_eq!(deleted, 1001);
    assert_eq!(
        p.s3()
            .delete_prefix(&keys::prefix(&resource))
            .await
            .unwrap(),
        0
    );
}
