//! Short jobs beside long ones (`run all`): while the pool's only worker transcribes a long
//! file, a clip is taken by the express worker at once, not after the pool's chunk in progress
//! and the chunks queued before it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use echo_catalog::events::{ChunkProcessingCompleted, ChunkProcessingStarted};
use echo_tests::pipeline::{speak, submit, submit_command, Pipeline};
use echo_tests::{records_of, TestEnv};

const BIN: &str = env!("CARGO_BIN_EXE_echoctl");

/// About thirty seconds of speech: six chunks or more at 5 s.
const LONG: &str = "The morning train left the station a few minutes late. Most of the \
passengers were reading or looking out of the windows at the fields. A conductor walked \
slowly through the carriages and checked every ticket twice. Near the river the train slowed \
down, and a flock of birds rose from the water. In the last carriage a child counted the \
bridges aloud, and her father pretended to lose count. The sun came out as they reached the \
city, and everybody stood up at once to take their bags.";

/// A sentence of a few seconds: one chunk.
const CLIP: &str = "Please call Stella and ask her to bring these things.";

#[tokio::test(flavor = "multi_thread")]
async fn a_clip_is_transcribed_while_the_pool_is_busy_with_a_long_file() {
    let env = TestEnv::new("express").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let long = speak(dir.path(), "long.wav", LONG).unwrap();
    let clip = speak(dir.path(), "clip.wav", CLIP).unwrap();
    // One pool worker; every chunk takes at least 3 s, so the pool is busy for the whole
    // long file.
    let settings = [
        ("ECHO_VALIDATION__CHUNK_MS", "5000"),
        ("ECHO_CHUNK_WORKER__TEST_DELAY_MS", "3000"),
    ];
    let _pipeline = Pipeline::start(Path::new(BIN), &env, 1, &settings).unwrap();

    let long_job = submit_command(Path::new(BIN), &env, &long, &[], &[])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The clip arrives once the pool has begun the long file.
    let mut waited = Duration::ZERO;
    while records_of::<ChunkProcessingStarted>(&env, None)
        .await
        .is_empty()
    {
        assert!(
            waited < Duration::from_secs(120),
            "the long file never started"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        waited += Duration::from_millis(200);
    }
    let report = submit(Path::new(BIN), &env, &clip, &[]).unwrap();
    assert_eq!(report["status"], "ready", "{report:#}");
    let clip_id = report["resource_id"].as_str().unwrap().to_string();
    let output = long_job.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["status"], "ready", "{report:#}");
    let long_id = report["resource_id"].as_str().unwrap().to_string();

    let clip_started = records_of::<ChunkProcessingStarted>(&env, Some(&clip_id)).await;
    assert_eq!(clip_started.len(), 1, "{clip_started:?}");
    let clip_started = &clip_started[0];
    // The pool's worker was in the middle of a long chunk when the clip's began: one worker
    // transcribes one chunk at a time, so only a worker beside it could have begun the clip.
    let at = clip_started.metadata.occurred_at;
    let long_started = records_of::<ChunkProcessingStarted>(&env, Some(&long_id)).await;
    let long_completed = records_of::<ChunkProcessingCompleted>(&env, Some(&long_id)).await;
    assert!(long_completed.len() >= 6, "{} chunks", long_completed.len());
    let overlapping = long_started.iter().find(|s| {
        s.metadata.occurred_at < at
            && long_completed
                .iter()
                .any(|c| c.chunk_index == s.chunk_index && c.metadata.occurred_at > at)
    });
    assert!(
        overlapping.is_some(),
        "no long chunk was being transcribed when the clip's began at {at}: {:?}",
        long_started
            .iter()
            .map(|s| (s.chunk_index, s.metadata.occurred_at))
            .collect::<Vec<_>>()
    );
    assert!(
        clip_started.worker.contains("express"),
        "taken by {}",
        clip_started.worker
    );
}
