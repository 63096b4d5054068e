//! The chunk worker end to end through its public API (`observe` then `decide`), against the
//! real local S3 server (127.0.0.1:9000, started by `scripts/stack/up.sh`) and the real
//! whisper model of the data dir. Fails, never skips, when either is missing.

use std::time::Instant;

use echo_catalog::events::{
    ChunkProcess, ChunkProcessingCompleted, ChunkProcessingFailed, ChunkProcessingStarted,
};
use echo_catalog::record::{EventMetadata, Record};
use echo_chunk_worker::{ChunkWorker, ChunkWorkerConfig, ChunkWorkerState, Lane};
use echo_runtime::envelope::SourcePosition;
use echo_runtime::{testing, Decision, EchoConfig, HandlerError, Incoming, Input};
use echo_storage::{keys, Pin};
use echo_tests::pipeline::{convert, speak};

/// Two sentences, about 7.6 s with flite's `slt` voice: the first ends before 5 s, the second
/// lies in the second chunk.
const SPEECH: &str =
    "Please call Stella and ask her to bring these things with her from the store. \
    The weather was cold, and the river ran fast under the old bridge.";

fn worker(test_delay_ms: Option<u64>) -> ChunkWorker {
    worker_with(ChunkWorkerConfig {
        test_delay_ms,
        ..ChunkWorkerConfig::default()
    })
}

fn worker_with(settings: ChunkWorkerConfig) -> ChunkWorker {
    let config = EchoConfig::default();
    let settings = ChunkWorkerConfig {
        worker_name: "test-worker".into(),
        ..settings
    };
    ChunkWorker::new(&config, settings, Lane::Standard).expect("the whisper model must load")
}

async fn ready(worker: &ChunkWorker) {
    if let Err(e) = worker.s3().ensure_bucket().await {
        panic!("S3 is not usable ({e:#}); start the stack with scripts/stack/up.sh");
    }
}

/// A fresh resource whose upload is the spoken `SPEECH`; returns (resource id, key, ms).
async fn uploaded_speech(worker: &ChunkWorker) -> (String, String, i64) {
    let resource = uuid::Uuid::new_v4().to_string();
    let wav = speak(
        &std::env::temp_dir(),
        &format!("echo-chunk-worker-{resource}.wav"),
        SPEECH,
    )
    .expect("flite must be installed");
    let duration = echo_speech::audio::probe(&wav)
        .unwrap()
        .duration
        .expect("a WAV states its duration");
    let bytes = std::fs::read(&wav).unwrap();
    let _ = std::fs::remove_file(&wav);
    let key = keys::upload(&resource);
    worker
        .s3()
        .put_bytes(&key, &bytes, "audio/wav")
        .await
        .unwrap();
    (resource, key, duration.as_millis() as i64)
}

fn command(resource: &str, key: &str, index: i32, start_ms: i64, end_ms: i64) -> Incoming {
    let record = ChunkProcess {
        metadata: EventMetadata::new(uuid::Uuid::new_v4().to_string(), resource, "validation", 0),
        job_id: format!("job-of-{resource}"),
        chunk_index: index,
        chunk_count: 2,
        object_key: key.into(),
        start_ms,
        end_ms,
        attempt: 1,
        etag: None,
        size_bytes: None,
        prompt: None,
        channel: None,
    };
    Incoming {
        type_name: ChunkProcess::TYPE,
        key: format!("{}:{index}", record.job_id),
        metadata: record.metadata().clone(),
        value: apache_avro::to_value(&record).unwrap(),
        source: SourcePosition {
            topic: "echo.processing.chunk-commands".into(),
            partition: 0,
            offset: 0,
        },
        attempt: 0,
    }
}

/// The worker's handling of one record at time 0, `observe` (the download and whisper) included.
async fn handle(
    worker: &ChunkWorker,
    state: &ChunkWorkerState,
    input: &Incoming,
) -> Result<(Decision, ChunkWorkerState), HandlerError> {
    testing::handle(worker, state, Input::Record(input), 0).await
}

/// Lowercase words, punctuation removed.
fn words(completed: &ChunkProcessingCompleted) -> String {
    completed
        .segments
        .iter()
        .map(|s| s.text.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn completed(decision: &Decision, resource: &str) -> ChunkProcessingCompleted {
    assert_eq!(decision.emit.len(), 2, "{decision:?}");
    assert!(decision.emit.iter().all(|o| o.key == resource));
    let started: ChunkProcessingStarted = decision.emit[0].decode().unwrap();
    assert_eq!(started.worker, "test-worker");
    decision.emit[1]
        .decode()
        .unwrap_or_else(|e| panic!("expected chunk.processing.completed: {e:?} {decision:?}"))
}

fn assert_inside(chunk: &ChunkProcessingCompleted) {
    assert!(!chunk.segments.is_empty(), "{chunk:?}");
    for s in &chunk.segments {
        assert!(
            chunk.start_ms <= s.start_ms && s.start_ms <= s.end_ms && s.end_ms <= chunk.end_ms,
            "segment {s:?} outside the chunk {}..{}",
            chunk.start_ms,
            chunk.end_ms
        );
    }
}

#[tokio::test]
async fn two_overlapping_chunks_are_transcribed_with_global_timestamps() {
    let worker = worker(None);
    ready(&worker).await;
    let (resource, key, duration_ms) = uploaded_speech(&worker).await;
    assert!(
        (6_000..10_000).contains(&duration_ms),
        "flite made {duration_ms} ms"
    );

    let first = command(&resource, &key, 0, 0, 5_000);
    let (decision, state) = handle(&worker, &ChunkWorkerState::default(), &first)
        .await
        .unwrap();
    let chunk0 = completed(&decision, &resource);
    assert_eq!((chunk0.start_ms, chunk0.end_ms), (0, 5_000));
    assert_inside(&chunk0);
    let text0 = words(&chunk0);
    for word in ["please", "call", "stella", "store"] {
        assert!(
            text0.contains(word),
            "{word:?} missing from chunk 0: {text0:?}"
        );
    }
    assert!(state.completed);
    assert!(
        worker.cache_path(&key, &Pin::default()).is_file(),
        "the source is cached for the job's other chunks"
    );

    let second = command(&resource, &key, 1, 4_000, duration_ms);
    let (decision, _) = handle(&worker, &ChunkWorkerState::default(), &second)
        .await
        .unwrap();
    let chunk1 = completed(&decision, &resource);
    assert_inside(&chunk1);
    // The speech ends about 3.4 s into the chunk: chunk-relative ends would be near 3_400
    // (and clamping could not lift them past the chunk's start), global ones near 7_400.
    let last_end = chunk1.segments.last().unwrap().end_ms;
    assert!(
        last_end > duration_ms - 1_500,
        "timestamps are global, not chunk-relative: {chunk1:?}"
    );
    let text1 = words(&chunk1);
    for word in ["weather", "river", "bridge"] {
        assert!(
            text1.contains(word),
            "{word:?} missing from chunk 1: {text1:?}"
        );
    }
    assert!(
        !text1.contains("stella"),
        "chunk 1 starts after the first sentence: {text1:?}"
    );

    // A re-delivered command of the completed chunk is not transcribed again.
    let again = command(&resource, &key, 0, 0, 5_000);
    let (decision, _) = handle(&worker, &state, &again).await.unwrap();
    assert!(decision.emit.is_empty(), "{decision:?}");
}

/// The decoded `chunk.process` of an input, to ask the worker about it.
fn decoded(input: &Incoming) -> ChunkProcess {
    apache_avro::from_value(&input.value).unwrap()
}

#[tokio::test]
async fn the_next_chunk_hears_the_text_of_the_chunk_before() {
    let worker = worker(None);
    ready(&worker).await;
    let (resource, key, duration_ms) = uploaded_speech(&worker).await;
    let mut second = decoded(&command(&resource, &key, 1, 5_000, duration_ms));
    assert_eq!(worker.prompt_for(&second), None, "nothing heard yet");

    let first = command(&resource, &key, 0, 0, 5_000);
    let (decision, _) = handle(&worker, &ChunkWorkerState::default(), &first)
        .await
        .unwrap();
    let said = completed(&decision, &resource).segments[0].text.clone();
    let prompt = worker.prompt_for(&second).expect("chunk 0 was heard");
    assert!(
        prompt.contains(&said) && prompt.to_lowercase().contains("stella"),
        "{prompt:?} is not chunk 0's {said:?}"
    );

    // The upload's own prompt comes first; another job's chunk 1, or chunk 2, hears none of it.
    second.prompt = Some("Stella, Kafka.".into());
    let prompt = worker.prompt_for(&second).unwrap();
    assert!(prompt.starts_with("Stella, Kafka. ") && prompt.contains(&said));
    let mut other_job = second.clone();
    other_job.job_id = "another-job".into();
    other_job.prompt = None;
    assert_eq!(worker.prompt_for(&other_job), None);
    let mut third = other_job;
    third.job_id = second.job_id.clone();
    third.chunk_index = 2;
    assert_eq!(worker.prompt_for(&third), None);
}

#[tokio::test]
async fn a_worker_set_not_to_hears_only_the_uploads_prompt() {
    let worker = worker_with(ChunkWorkerConfig {
        prompt_with_previous_chunk: Some(false),
        ..ChunkWorkerConfig::default()
    });
    ready(&worker).await;
    let (resource, key, duration_ms) = uploaded_speech(&worker).await;
    let first = command(&resource, &key, 0, 0, 5_000);
    let (decision, _) = handle(&worker, &ChunkWorkerState::default(), &first)
        .await
        .unwrap();
    completed(&decision, &resource);
    let mut second = decoded(&command(&resource, &key, 1, 5_000, duration_ms));
    assert_eq!(worker.prompt_for(&second), None);
    second.prompt = Some("Stella, Kafka.".into());
    assert_eq!(
        worker.prompt_for(&second).as_deref(),
        Some("Stella, Kafka.")
    );
}

/// A fresh resource whose upload is the two sentences of `SPEECH` spoken 1 s in, with 8 s of
/// silence between them; returns (resource id, key, where the silence starts, where it ends).
async fn uploaded_speech_with_a_pause(worker: &ChunkWorker) -> (String, String, i64, i64) {
    let resource = uuid::Uuid::new_v4().to_string();
    let dir = std::env::temp_dir();
    let name = |part: &str| format!("echo-chunk-worker-{resource}-{part}.wav");
    let (first, second) = SPEECH.split_once(". ").unwrap();
    let first = speak(&dir, &name("a"), first).expect("flite must be installed");
    let second = speak(&dir, &name("b"), second).unwrap();
    let padded = dir.join(name("a-padded"));
    convert(&first, &padded, &["pad", "1", "8"]).expect("sox must be installed");
    let joined = dir.join(name("joined"));
    let status = std::process::Command::new("sox")
        .args([&padded, &second, &joined])
        .status()
        .unwrap();
    assert!(status.success());
    let ms = |path: &std::path::Path| {
        echo_speech::audio::probe(path)
            .unwrap()
            .duration
            .unwrap()
            .as_millis() as i64
    };
    let silence_start = 1_000 + ms(&first);
    let bytes = std::fs::read(&joined).unwrap();
    for path in [first, second, padded, joined] {
        let _ = std::fs::remove_file(path);
    }
    let key = keys::upload(&resource);
    worker
        .s3()
        .put_bytes(&key, &bytes, "audio/wav")
        .await
        .unwrap();
    (resource, key, silence_start, silence_start + 8_000)
}

#[tokio::test]
async fn silence_inside_a_chunk_is_left_out_and_times_stay_on_the_audio_time_line() {
    let worker = worker(None);
    ready(&worker).await;
    let (resource, key, silence_start, silence_end) = uploaded_speech_with_a_pause(&worker).await;
    // The range starts in the leading second of silence and spans the 8 s pause, which the
    // worker squeezes to 400 ms before whisper hears it.
    let input = command(&resource, &key, 0, 500, silence_end + 6_000);
    let (decision, _) = handle(&worker, &ChunkWorkerState::default(), &input)
        .await
        .unwrap();
    let chunk = completed(&decision, &resource);
    assert_inside(&chunk);
    let text = words(&chunk);
    for word in ["stella", "store", "weather", "bridge"] {
        assert!(text.contains(word), "{word:?} missing: {text:?}");
    }
    assert!(
        chunk
            .segments
            .windows(2)
            .all(|p| p[0].end_ms <= p[1].start_ms),
        "{chunk:?}"
    );
    // Unmapped times would put the second sentence about 7.6 s early, in the silence.
    let said = |word: &str| {
        chunk
            .segments
            .iter()
            .find(|s| s.text.to_lowercase().contains(word))
            .unwrap_or_else(|| panic!("{word:?} in no segment: {chunk:?}"))
    };
    assert!(
        said("stella").start_ms >= 500 && said("stella").end_ms <= silence_start + 500,
        "{chunk:?}"
    );
    assert!(said("weather").start_ms >= silence_end - 500, "{chunk:?}");
    assert!(said("bridge").end_ms > silence_end + 2_000, "{chunk:?}");

    // A range of silence only: completed with nothing said.
    let quiet = command(
        &resource,
        &key,
        1,
        silence_start + 1_000,
        silence_end - 1_000,
    );
    let (decision, _) = handle(&worker, &ChunkWorkerState::default(), &quiet)
        .await
        .unwrap();
    let chunk = completed(&decision, &resource);
    assert!(chunk.segments.is_empty(), "{chunk:?}");
}

#[tokio::test]
async fn a_command_for_a_missing_object_is_a_transient_error() {
    let worker = worker(None);
    ready(&worker).await;
    let resource = uuid::Uuid::new_v4().to_string();
    let key = keys::upload(&resource);
    let input = command(&resource, &key, 0, 0, 5_000);
    let err = handle(&worker, &ChunkWorkerState::default(), &input)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HandlerError::Transient(m) if m.contains("no object")),
        "{err:?}"
    );
    assert!(
        !worker.cache_path(&key, &Pin::default()).exists(),
        "nothing cached for a missing object"
    );
}

#[tokio::test]
async fn a_range_beyond_the_end_fails_the_chunk() {
    let worker = worker(None);
    ready(&worker).await;
    let (resource, key, duration_ms) = uploaded_speech(&worker).await;
    let input = command(
        &resource,
        &key,
        3,
        duration_ms + 10_000,
        duration_ms + 40_000,
    );
    let (decision, state) = handle(&worker, &ChunkWorkerState::default(), &input)
        .await
        .unwrap();
    assert_eq!(decision.emit.len(), 2, "{decision:?}");
    assert!(decision.emit[0].is::<ChunkProcessingStarted>());
    let failed: ChunkProcessingFailed = decision.emit[1].decode().unwrap();
    assert_eq!(failed.chunk_index, 3);
    assert_eq!(failed.attempt, 1);
    assert!(failed.reason.contains("beyond the end"), "{failed:?}");
    assert_eq!(decision.emit[1].key, resource);
    assert!(!state.completed);
    assert_eq!(state.handled_attempt, Some(1));
}

#[tokio::test]
async fn the_test_only_delay_holds_the_chunk_back() {
    let worker = worker(Some(1_500));
    ready(&worker).await;
    let (resource, key, duration_ms) = uploaded_speech(&worker).await;
    // Beyond the end: no whisper time, so the elapsed time is the delay.
    let input = command(&resource, &key, 0, duration_ms + 1_000, duration_ms + 2_000);
    let started = Instant::now();
    let (decision, _) = handle(&worker, &ChunkWorkerState::default(), &input)
        .await
        .unwrap();
    assert!(
        started.elapsed().as_millis() >= 1_500,
        "{:?}",
        started.elapsed()
    );
    assert!(decision.emit[1].is::<ChunkProcessingFailed>());
}

/// `input` pinned to the version `etag` of its object, as validation issues it.
fn pinned(input: &Incoming, etag: &str) -> Incoming {
    let mut record: ChunkProcess = input.decode().unwrap();
    record.etag = Some(etag.into());
    Incoming {
        value: apache_avro::to_value(&record).unwrap(),
        ..input.clone()
    }
}

#[tokio::test]
async fn a_command_pinned_to_a_replaced_object_fails_the_chunk_as_object_changed() {
    let worker = worker(None);
    ready(&worker).await;
    let (resource, key, _) = uploaded_speech(&worker).await;
    let verified = worker.s3().head(&key).await.unwrap().unwrap();
    let etag = verified.etag.expect("the store names the version");
    // Replaced after it was verified: same size, other bytes.
    let mut other = worker.s3().get_bytes(&key).await.unwrap().unwrap();
    other[44..].reverse();
    worker
        .s3()
        .put_bytes(&key, &other, "audio/wav")
        .await
        .unwrap();
    let input = pinned(&command(&resource, &key, 0, 0, 5_000), &etag);
    let (decision, _) = handle(&worker, &ChunkWorkerState::default(), &input)
        .await
        .unwrap();
    let failed: ChunkProcessingFailed = decision.emit[1].decode().unwrap();
    assert!(failed.reason.starts_with("OBJECT_CHANGED"), "{failed:?}");
    let pin = Pin {
        etag: Some(etag),
        max_bytes: None,
    };
    assert!(
        !worker.cache_path(&key, &pin).exists(),
        "the other version is not cached as the pinned one"
    );
}
