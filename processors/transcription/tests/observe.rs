//! The I/O of `TranscriptionProcessor` against the real local S3 (the shared dev stack; these
//! tests fail when it is down): each chunk's first result is kept as an object, the input
//! completing a job reads them back and has its four files written by the effects, no other
//! input reads anything, a kept result that is gone fails the job, and an unreachable store is
//! transient.

use echo_catalog::events::{
    ChunkProcessingCompleted, ProcessingJobCreated, Segment, TranscriptionCompleted,
    TranscriptionFailed,
};
use echo_catalog::record::{EventMetadata, Record};
use echo_runtime::{
    testing, Context, Decider, EchoConfig, Fact, HandlerError, Incoming, Input, Processor,
};
use echo_transcription::{TranscriptionConfig, TranscriptionProcessor, TranscriptionState};

fn meta(resource: &str, event_id: &str) -> EventMetadata {
    EventMetadata::new(event_id, resource, "processing", 0)
}

fn incoming<R: Record>(record: &R) -> Incoming {
    Incoming::from_record(
        &record.metadata().correlation_id,
        record,
        "echo.processing.events",
    )
}

fn seg(start_ms: i64, end_ms: i64, text: &str) -> Segment {
    Segment {
        start_ms,
        end_ms,
        text: text.into(),
        confidence: 0.5,
        words: Vec::new(),
        speaker: None,
    }
}

/// A two-chunk job whose chunks both heard "brown fox" in their 1 s overlap.
fn job_inputs(resource: &str) -> (Incoming, Incoming, Incoming) {
    let job = incoming(&ProcessingJobCreated {
        metadata: meta(resource, "created"),
        job_id: "job-1".into(),
        object_key: format!("resources/{resource}/upload"),
        chunk_count: 2,
        chunk_ms: 30_000,
        overlap_ms: 1_000,
        duration_ms: 40_000,
        etag: None,
        size_bytes: None,
        chunks: None,
        speech_ms: Some(9_000),
        options: None,
    });
    let chunk0 = incoming(&ChunkProcessingCompleted {
        metadata: meta(resource, "c0"),
        job_id: "job-1".into(),
        chunk_index: 0,
        start_ms: 0,
        end_ms: 30_000,
        segments: vec![
            seg(1_000, 3_000, " The quick"),
            seg(28_000, 29_800, " brown fox"),
        ],
        language: None,
    });
    let chunk1 = incoming(&ChunkProcessingCompleted {
        metadata: meta(resource, "c1"),
        job_id: "job-1".into(),
        chunk_index: 1,
        start_ms: 29_000,
        end_ms: 40_000,
        segments: vec![seg(29_200, 31_000, " Brown fox jumps.")],
        language: None,
    });
    (job, chunk0, chunk1)
}

/// Folds inputs that do not complete the job into a state, the runtime's way.
fn fold(p: &TranscriptionProcessor, inputs: &[&Incoming]) -> TranscriptionState {
    inputs.iter().fold(TranscriptionState::default(), |s, i| {
        p.decider().evolve(s, Fact::Consumed(i))
    })
}

/// A processor on the local S3, and a resource id of its own.
async fn on_local_store() -> (TranscriptionProcessor, String) {
    let p = TranscriptionProcessor::new(&EchoConfig::default(), TranscriptionConfig::default())
        .unwrap();
    p.s3()
        .ensure_bucket()
        .await
        .expect("the local S3 must be up");
    (p, uuid::Uuid::new_v4().to_string())
}

fn unreachable_store() -> TranscriptionProcessor {
    let mut config = EchoConfig::default();
    // Port 1 on loopback: connection refused at once.
    config.s3.endpoint = "http://127.0.0.1:1".into();
    TranscriptionProcessor::new(&config, TranscriptionConfig::default()).unwrap()
}

#[test]
fn new_refuses_unusable_settings() {
    let bad = TranscriptionConfig {
        language: String::new(),
        ..TranscriptionConfig::default()
    };
    assert!(TranscriptionProcessor::new(&EchoConfig::default(), bad).is_err());
    assert_eq!(unreachable_store().decider().name(), "transcription");
}

#[tokio::test]
async fn the_completing_input_writes_the_four_artifacts_and_completes_the_job() {
    let (p, resource) = on_local_store().await;
    let (job, chunk0, chunk1) = job_inputs(&resource);
    let mut state = TranscriptionState::default();
    for input in [&job, &chunk0] {
        state = testing::handle(&p, &state, Input::Record(input), 0)
            .await
            .unwrap()
            .1;
    }
    // The first chunk's words are kept as an object, not in the state.
    let kept = &state.jobs["job-1"].chunks[&0];
    assert!(kept.segments.is_empty());
    let key = kept.stored_at.clone().unwrap();
    assert_eq!(key, format!("resources/{resource}/chunks/job-1/0.json"));
    assert!(p.s3().get_bytes(&key).await.unwrap().is_some());

    // Run twice, as a retried transaction would: rewriting the same objects is harmless.
    let mut decision = None;
    for _ in 0..2 {
        let (decided, _) = testing::handle(&p, &state, Input::Record(&chunk1), 0)
            .await
            .unwrap();
        decision = Some(decided);
    }
    let decision = decision.unwrap();
    let completed: TranscriptionCompleted = decision.emit[1].decode().unwrap();
    assert_eq!(completed.word_count, 5);
    assert_eq!(completed.duration_ms, 40_000);

    let read = |key: String| {
        let s3 = p.s3().clone();
        async move {
            let bytes = s3.get_bytes(&key).await.unwrap();
            String::from_utf8(bytes.unwrap_or_else(|| panic!("{key} was not written"))).unwrap()
        }
    };
    let a = &completed.artifacts;
    assert_eq!(
        a.txt_key.as_deref(),
        Some(format!("resources/{resource}/report/transcript.txt").as_str())
    );
    // One sentence across a chunk seam: one paragraph, and the caption after the long pause
    // holds the sentence's end whole.
    assert_eq!(
        read(a.txt_key.clone().unwrap()).await,
        "The quick brown fox jumps.\n"
    );
    assert_eq!(
        read(a.srt_key.clone().unwrap()).await,
        "1\n00:00:01,000 --> 00:00:03,000\nThe quick\n\n\
         2\n00:00:28,000 --> 00:00:31,000\nbrown fox jumps.\n\n"
    );
    let vtt = read(a.vtt_key.clone().unwrap()).await;
    assert!(vtt.starts_with("WEBVTT\n\n00:00:01.000 --> 00:00:03.000\nThe quick\n"));
    let report: serde_json::Value = serde_json::from_str(&read(a.json_key.clone()).await).unwrap();
    assert_eq!(report["job_id"], "job-1");
    assert_eq!(report["analysis"]["word_count"], 5);
    assert_eq!(report["analysis"]["language"], "en");
    // Speech and silence as the detector measured them, not the segments' coverage (5.8 s).
    assert_eq!(report["analysis"]["speech_ms"], 9_000);
    assert_eq!(report["analysis"]["silence_ms"], 31_000);
    assert_eq!(report["segments"].as_array().unwrap().len(), 3);
    // Every word with its times (spread over its segment: these records carry none).
    assert_eq!(report["segments"][0]["words"][1]["text"], "quick");
    // Stored with their types, so a pre-signed GET serves them properly.
    let head = p
        .s3()
        .head(a.vtt_key.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.content_type, "text/vtt; charset=utf-8");
    let head = p.s3().head(&a.json_key).await.unwrap().unwrap();
    assert_eq!(head.content_type, "application/json");
}

#[tokio::test]
async fn inputs_that_complete_nothing_read_nothing() {
    let p = unreachable_store();
    let (job, chunk0, chunk1) = job_inputs("r-quiet");
    let cases = [
        (TranscriptionState::default(), &job),
        (fold(&p, &[&job]), &chunk0),
        (TranscriptionState::default(), &chunk1),
    ];
    for (state, input) in cases {
        let ctx = Context::for_input("transcription", 0, Input::Record(input));
        let observed = p.observe(&state, Input::Record(input), &ctx).await;
        assert_eq!(observed.unwrap(), Default::default());
    }
}

#[tokio::test]
async fn a_kept_result_gone_from_the_store_fails_the_job() {
    let (p, resource) = on_local_store().await;
    let (job, chunk0, chunk1) = job_inputs(&resource);
    // Its result was kept by an earlier instance, and deleted since.
    let state = fold(&p, &[&job, &chunk0]);
    let (decision, _) = testing::handle(&p, &state, Input::Record(&chunk1), 0)
        .await
        .unwrap();
    let failed: TranscriptionFailed = decision.emit[0].decode().unwrap();
    assert!(failed.reason.contains("chunks [0]"), "{}", failed.reason);
    assert!(decision.effects.is_empty(), "{decision:?}");
}

#[tokio::test]
async fn an_unreachable_store_on_the_completing_input_is_transient() {
    let p = unreachable_store();
    let (job, chunk0, chunk1) = job_inputs("r-down");
    let state = fold(&p, &[&chunk0, &chunk1]);
    let err = testing::handle(&p, &state, Input::Record(&job), 0)
        .await
        .unwrap_err();
    assert!(matches!(err, HandlerError::Transient(_)), "{err:?}");
}
