//! The metrics and health endpoints of a running pipeline (`echoctl run all`), scraped as
//! Prometheus and the kubelet would, and the counts held against the events of the run.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use echo_catalog::events::{ChunkProcess, ChunkProcessingCompleted};
use echo_tests::endpoints::{free_port, get};
use echo_tests::pipeline::{speak, submit, Pipeline};
use echo_tests::{records_of, TestEnv};

const BIN: &str = env!("CARGO_BIN_EXE_echoctl");

/// About ten seconds of speech: two chunks or more at 5 s.
const SPEECH: &str = "The morning train left the station a few minutes late. Most of the \
passengers were reading or looking out of the windows at the fields.";

/// The samples of a scrape: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the series named `name` whose labels include every one of `labels`.
fn value(samples: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(series, _)| {
            series.split('{').next() == Some(name)
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| *v)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_endpoints_count_what_the_events_say() {
    let env = TestEnv::new("endpoints").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wav = speak(dir.path(), "speech.wav", SPEECH).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let settings = [
        ("ECHO_ENDPOINTS__LISTEN", listen.as_str()),
        ("ECHO_VALIDATION__CHUNK_MS", "5000"),
    ];
    let _pipeline = Pipeline::start(Path::new(BIN), &env, 1, &settings).unwrap();
    let processors = env.processor_names();

    // Ready once every processor has its partitions and their state.
    let started = Instant::now();
    let mut ready = get(port, "/readyz").await;
    while ready.0 != 200 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ready = get(port, "/readyz").await;
    }
    assert_eq!(ready.0, 200, "{}", ready.1);
    for processor in &processors {
        assert!(ready.1.contains(&format!("{processor}/")), "{}", ready.1);
    }
    assert_eq!(get(port, "/healthz").await.0, 200);

    let report = submit(Path::new(BIN), &env, &wav, &[]).unwrap();
    assert_eq!(report["status"], "ready", "{report:#}");
    let resource = report["resource_id"].as_str().unwrap();
    let commands = records_of::<ChunkProcess>(&env, Some(resource)).await;
    let completed = records_of::<ChunkProcessingCompleted>(&env, Some(resource)).await;
    let chunks = commands.len() as f64;
    assert!(chunks >= 2.0, "{chunks} chunks");

    // The client's statistics (consumer lag) come every few seconds.
    let started = Instant::now();
    let mut scraped = samples(&get(port, "/metrics").await.1);
    while value(
        &scraped,
        "echo_consumer_lag",
        &[("processor", "chunk-worker")],
    )
    .is_none()
        && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        scraped = samples(&get(port, "/metrics").await.1);
    }
    let handled = |processor: &str, type_name: &str| {
        value(
            &scraped,
            "echo_records_total",
            &[
                ("processor", processor),
                ("type", type_name),
                ("outcome", "handled"),
            ],
        )
    };
    assert_eq!(handled("upload", "upload.requested"), Some(1.0));
    assert_eq!(handled("upload", "upload.finalize"), Some(1.0));
    assert_eq!(handled("validation", "upload.completed"), Some(1.0));
    assert_eq!(handled("chunk-worker", "chunk.process"), Some(chunks));
    assert_eq!(
        handled("transcription", "chunk.processing.completed"),
        Some(chunks)
    );
    assert_eq!(
        handled("job-aggregator", "chunk.processing.completed"),
        Some(chunks)
    );
    assert_eq!(handled("resource", "transcription.completed"), Some(1.0));
    assert_eq!(
        value(
            &scraped,
            "echo_handler_seconds_count",
            &[("processor", "chunk-worker"), ("type", "chunk.process")]
        ),
        Some(chunks)
    );
    for processor in &processors {
        let committed = value(
            &scraped,
            "echo_transactions_total",
            &[("processor", processor), ("outcome", "committed")],
        );
        assert!(
            committed.unwrap_or(0.0) >= 1.0,
            "{processor}: {committed:?}"
        );
        assert_eq!(
            value(
                &scraped,
                "echo_transactions_total",
                &[("processor", processor), ("outcome", "aborted")]
            ),
            None,
            "{processor} aborted a transaction"
        );
        assert!(
            value(
                &scraped,
                "echo_restore_seconds_count",
                &[("processor", processor)]
            )
            .is_some(),
            "{processor} restored nothing"
        );
        assert!(
            value(&scraped, "echo_consumer_lag", &[("processor", processor)]).is_some(),
            "no lag of {processor}"
        );
    }
    // The audio of every chunk, and a real-time factor for it.
    let audio: f64 = completed
        .iter()
        .map(|c| (c.end_ms - c.start_ms) as f64 / 1e3)
        .sum();
    let counted = value(
        &scraped,
        "echo_audio_seconds_total",
        &[("processor", "chunk-worker")],
    )
    .unwrap();
    assert!(
        (counted - audio).abs() < 0.01,
        "{counted} s counted, {audio} s in the chunks"
    );
    assert!(
        value(
            &scraped,
            "echo_whisper_seconds_total",
            &[("processor", "chunk-worker")]
        )
        .unwrap()
            > 0.0
    );
    assert!(
        value(
            &scraped,
            "echo_real_time_factor",
            &[("processor", "chunk-worker")]
        )
        .unwrap()
            > 0.0
    );
    // The ready resource waits for its retention timer.
    assert_eq!(
        value(
            &scraped,
            "echo_timers_pending",
            &[("processor", "resource")]
        ),
        Some(1.0)
    );
}
