//! The `observe` step of `UploadProcessor`: which inputs cause S3 calls. Uses an endpoint
//! nothing listens on, so any call that reaches the network shows up as a transient error;
//! pre-signing is local computation and works without a server.

use std::sync::LazyLock;

use echo_catalog::events::{QuotaReserved, UploadFinalize, UploadRequested, UploadUrlGenerated};
use echo_catalog::record::{EventMetadata, Record};
use echo_catalog::sealed::ReplyKey;
use echo_runtime::{
    testing, Context, Decider, EchoConfig, Fact, HandlerError, Incoming, Input, Processor,
};
use echo_upload::{DeliveredUrl, Observation, UploadConfig, UploadProcessor, UploadState};

const RESOURCE: &str = "7d0c9a52-31f4-4b8e-8a61-0c2f3e4d5b6a";

fn processor() -> UploadProcessor {
    let mut config = EchoConfig::default();
    // Port 1 on loopback: connection refused at once.
    config.s3.endpoint = "http://127.0.0.1:1".into();
    UploadProcessor::new(&config, UploadConfig::default()).unwrap()
}

fn incoming<R: Record>(record: &R) -> Incoming {
    Incoming::from_record(
        &record.metadata().correlation_id,
        record,
        "echo.upload.requests",
    )
}

fn meta(event_id: &str) -> EventMetadata {
    EventMetadata::new(event_id, RESOURCE, "client", 0)
}

/// The requesting client's key pair: the URL comes back sealed to it.
static CLIENT: LazyLock<ReplyKey> = LazyLock::new(ReplyKey::generate);

fn request(content_type: &str) -> Incoming {
    incoming(&UploadRequested {
        metadata: meta("req-1"),
        filename: "talk.wav".into(),
        content_type: content_type.into(),
        declared_size_bytes: 10,
        reply_key: Some(CLIENT.public()),
        options: None,
        tenant_token: None,
    })
}

/// The quota processor's admission of the request.
fn reserved() -> Incoming {
    incoming(&QuotaReserved {
        metadata: meta("reserved-1"),
        tenant: echo_catalog::tenant::ANONYMOUS.into(),
        reserved_bytes: 10,
    })
}

/// The state after `request` was handled: admitted by nothing yet.
async fn requested(p: &UploadProcessor, request: &Incoming) -> UploadState {
    testing::handle(p, &UploadState::default(), Input::Record(request), 0)
        .await
        .unwrap()
        .1
}

fn ctx(input: &Incoming) -> Context {
    Context::for_input("upload", 0, Input::Record(input))
}

#[test]
fn new_refuses_unusable_settings() {
    let bad = UploadConfig {
        url_ttl_secs: 0,
        ..UploadConfig::default()
    };
    assert!(UploadProcessor::new(&EchoConfig::default(), bad).is_err());
    assert_eq!(processor().decider().name(), "upload");
}

#[tokio::test]
async fn an_admitted_request_is_presigned_for_its_key_and_content_type() {
    let p = processor();
    let input = request("audio/flac");
    let observed = p
        .observe(&UploadState::default(), Input::Record(&input), &ctx(&input))
        .await
        .unwrap();
    assert_eq!(
        observed,
        Observation::Nothing,
        "not before its quota admits it"
    );
    let state = requested(&p, &input).await;
    let admitted = reserved();
    let observed = p
        .observe(&state, Input::Record(&admitted), &ctx(&admitted))
        .await
        .unwrap();
    let Observation::PresignedUrl(DeliveredUrl::Sealed { url: sealed, .. }) = observed else {
        panic!("expected a sealed URL, got {observed:?}");
    };
    assert!(!sealed.contains("X-Amz"), "the URL travels sealed");
    let url = CLIENT.open(&sealed).unwrap();
    assert!(
        url.starts_with(&format!(
            "http://127.0.0.1:1/echo/resources/{RESOURCE}/upload?"
        )),
        "path-style URL for the server-chosen key: {url}"
    );
    assert!(url.contains("X-Amz-Expires=900"), "{url}");
    let signed = url
        .split('&')
        .find(|p| p.starts_with("X-Amz-SignedHeaders="))
        .unwrap();
    assert!(signed.contains("content-type"), "{signed}");
    assert!(signed.contains("content-length"), "{signed}");
}

#[tokio::test]
async fn refused_and_duplicate_requests_cost_no_s3_call() {
    let p = processor();
    let refused = request("video/mp4");
    let observed = p
        .observe(
            &UploadState::default(),
            Input::Record(&refused),
            &ctx(&refused),
        )
        .await
        .unwrap();
    assert_eq!(observed, Observation::Nothing);

    let first = request("audio/wav");
    let state = p
        .decider()
        .evolve(UploadState::default(), Fact::Consumed(&first));
    let observed = p
        .observe(&state, Input::Record(&first), &ctx(&first))
        .await
        .unwrap();
    assert_eq!(observed, Observation::Nothing);

    // An admission for a request that already has its URL, or that nobody made.
    let req = request("audio/wav");
    let state = requested(&p, &req).await;
    let (_, issued) = testing::handle(&p, &state, Input::Record(&reserved()), 0)
        .await
        .unwrap();
    for state in [issued, UploadState::default()] {
        let again = reserved();
        let observed = p
            .observe(&state, Input::Record(&again), &ctx(&again))
            .await
            .unwrap();
        assert_eq!(observed, Observation::Nothing);
    }
}

#[tokio::test]
async fn finalize_of_an_unknown_upload_costs_no_s3_call() {
    let p = processor();
    let fin = incoming(&UploadFinalize {
        metadata: meta("fin-1"),
        etag: None,
        owner_token: None,
    });
    let observed = p
        .observe(&UploadState::default(), Input::Record(&fin), &ctx(&fin))
        .await
        .unwrap();
    assert_eq!(observed, Observation::Nothing);
}

#[tokio::test]
async fn finalize_of_a_pending_upload_heads_and_an_unreachable_store_is_transient() {
    let p = processor();
    let req = request("audio/wav");
    let state = requested(&p, &req).await;
    let (decision, state) = testing::handle(&p, &state, Input::Record(&reserved()), 0)
        .await
        .unwrap();
    let url: UploadUrlGenerated = decision.emit[0].decode().unwrap();
    let sealed = url.sealed_owner_token.as_deref().expect("an owner token");
    let token = CLIENT.open(sealed).unwrap();
    assert_eq!(
        url.owner_token_sha256,
        Some(echo_catalog::owner::digest(&token))
    );
    assert!(
        ReplyKey::generate().open(sealed).is_err(),
        "only the requester opens the token"
    );

    // Anyone else's finalize costs no S3 call.
    let foreign = incoming(&UploadFinalize {
        metadata: meta("fin-0"),
        etag: None,
        owner_token: None,
    });
    let observed = p
        .observe(&state, Input::Record(&foreign), &ctx(&foreign))
        .await
        .unwrap();
    assert_eq!(observed, Observation::Nothing);

    let fin = incoming(&UploadFinalize {
        metadata: meta("fin-1"),
        etag: None,
        owner_token: Some(token),
    });
    let err = p
        .observe(&state, Input::Record(&fin), &ctx(&fin))
        .await
        .unwrap_err();
    assert!(matches!(err, HandlerError::Transient(_)), "{err:?}");
}
