//! `echoctl trace` against the real stack: the tree and verdict of a ready resource, of each
//! way a resource is refused, of a record the upload processor dead-lettered, of an upload
//! the client never finished, of a job whose chunk worker was stopped midway (and which then
//! fails on its deadlines), and of a resource id that never existed. The records that lead
//! there are sent by `echoctl submit` or by a plain client, as in production.

use std::collections::HashSet;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use echo_catalog::events::{
    ChunkProcessingCompleted, ChunkProcessingStarted, UploadFinalize, UploadRequested,
    UploadUrlGenerated,
};
use echo_catalog::record::{EventMetadata, Record};
use echo_catalog::sealed::ReplyKey;
use echo_runtime::driver::now_ms;
use echo_runtime::publisher::Publisher;
use echo_tests::pipeline::{echoctl, speak, submit, Pipeline};
use echo_tests::stack::PATIENCE;
use echo_tests::{wait_for, TestEnv};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_echoctl");

/// Long enough to be planned as several chunks at the test's 5 s chunk size.
const SPEECH: &str = "The morning train left the station a few minutes late. Most of the \
passengers were reading or looking out of the windows at the fields. A small dog slept under \
one of the seats near the door. When the conductor came through the car, he checked every \
ticket with great care. Outside, the clouds were moving slowly across the sky.";

// Async-aware: a test holds its turn across awaits, and each test has its own runtime.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn bin() -> &'static Path {
    Path::new(BIN)
}

/// `echoctl trace ID --json`: its exit code and document.
fn trace(env: &TestEnv, resource: &str) -> (i32, Value) {
    let output = run_trace(env, &[resource, "--json"]);
    let doc = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "trace printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), doc)
}

fn run_trace(env: &TestEnv, args: &[&str]) -> Output {
    echoctl(bin(), env, &[])
        .arg("trace")
        .args(args)
        .output()
        .expect("running echoctl trace")
}

/// Traces `resource` until `done(exit code, document)` holds, or patience runs out; the last
/// document either way (the caller's assertions say what was missing).
async fn until(env: &TestEnv, resource: &str, done: impl Fn(i32, &Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (code, doc) = trace(env, resource);
        if done(code, &doc) || started.elapsed() > PATIENCE {
            return doc;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The trace's verdict is `rejected`, naming a `failure` record whose reason starts with
/// `reason`.
fn assert_rejected(doc: &Value, failure: &str, reason: &str) {
    let verdict = &doc["verdict"];
    assert_eq!(verdict["status"], "rejected", "{doc:#}");
    assert_eq!(verdict["failure"]["type"], failure, "{doc:#}");
    let said = verdict["reason"].as_str().unwrap_or_default();
    assert!(
        said.starts_with(reason),
        "{said:?} is not {reason}: {doc:#}"
    );
}

/// The types of a trace's records, oldest first.
fn types(doc: &Value) -> Vec<String> {
    doc["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap().to_string())
        .collect()
}

/// The first record of type `type_name`.
fn record<'d>(doc: &'d Value, type_name: &str) -> &'d Value {
    doc["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == type_name)
        .unwrap_or_else(|| panic!("no {type_name} in {:?}", types(doc)))
}

/// Every record but the client's first one has its cause in the trace: one tree.
fn assert_one_tree(doc: &Value) {
    let records = doc["records"].as_array().unwrap();
    let ids: HashSet<&str> = records
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    let roots: Vec<&str> = records
        .iter()
        .filter(|r| r["causation_id"].as_str().is_none_or(|c| !ids.contains(c)))
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(roots.len(), 1, "one root, not {roots:?}");
}

/// The findings of the verdict's open steps, as (chunk, by, finding kinds).
fn open_steps(doc: &Value) -> Vec<(Option<i64>, String, Vec<String>)> {
    assert_eq!(doc["verdict"]["status"], "stopped", "{:#}", doc["verdict"]);
    doc["verdict"]["open"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["chunk"].as_i64(),
                o["by"].as_str().unwrap().to_string(),
                o["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["kind"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

/// Metadata of a record the plain client issues itself.
fn client_metadata(resource: &str) -> EventMetadata {
    EventMetadata::new(
        uuid::Uuid::new_v4().to_string(),
        resource,
        "plain-client",
        now_ms(),
    )
}

/// Waits until the record of type `R` about `resource` is committed.
async fn committed<R: Record>(env: &TestEnv, resource: &str) {
    let topic = env.topic(&env.catalogue.topic_of(R::TYPE).unwrap().name);
    wait_for(&env.config, &topic, Duration::from_secs(90), |seen| {
        seen.iter().any(|s| {
            s.type_name == Some(R::TYPE)
                && s.metadata.as_ref().map(|m| m.correlation_id.as_str()) == Some(resource)
        })
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_tells_a_ready_resource_each_refusal_a_dead_letter_and_an_unknown_id() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::new("trace").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _pipeline = Pipeline::start(bin(), &env, 1, &[("ECHO_UPLOAD__URL_TTL_SECS", "6")]).unwrap();
    let client = Publisher::new(&env.config).unwrap();

    // Ready: the whole flow as one tree, ending in the verdict.
    let wav = speak(
        dir.path(),
        "speech.wav",
        "Please call Stella and ask her to bring these things.",
    )
    .unwrap();
    let report = submit(bin(), &env, &wav, &[]).unwrap();
    assert_eq!(report["status"], "ready", "{report:#}");
    let ready = report["resource_id"].as_str().unwrap();
    let (code, doc) = trace(&env, ready);
    assert_eq!(
        (code, &doc["verdict"]["status"]),
        (0, &Value::from("ready")),
        "{doc:#}"
    );
    assert_one_tree(&doc);
    for step in [
        "upload.requested",
        "upload.url.generated",
        "upload.finalize",
        "upload.completed",
        "validation.passed",
        "processing.job.created",
        "chunk.process",
        "chunk.processing.started",
        "chunk.processing.completed",
        "transcription.completed",
        "resource.ready",
    ] {
        record(&doc, step);
    }
    let completed = record(&doc, "chunk.processing.completed");
    assert_eq!(completed["facts"]["chunk"], "0");
    assert_eq!(
        completed["causation_id"],
        record(&doc, "chunk.process")["event_id"],
        "a chunk's result hangs under its command"
    );
    let text = String::from_utf8(run_trace(&env, &[ready]).stdout).unwrap();
    assert!(text.contains("└─ upload.url.generated"), "{text}");
    assert!(text.contains("verdict: ready"), "{text}");

    // Refused by validation: the verdict names validation.failed and its reason.
    let noise: Vec<u8> = (0..48_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let bogus = dir.path().join("noise.wav");
    std::fs::write(&bogus, noise).unwrap();
    let report = submit(bin(), &env, &bogus, &[]).unwrap();
    assert_eq!(report["status"], "rejected", "{report:#}");
    let refused = report["resource_id"].as_str().unwrap().to_string();
    let (code, doc) = trace(&env, &refused);
    assert_eq!(code, 2, "{doc:#}");
    assert_rejected(&doc, "validation.failed", "UNDECODABLE");
    assert_eq!(doc["verdict"]["outcome"]["type"], "resource.rejected");

    // An upload the client never finished: first the chain waits for it, with the URL's
    // expiry as its deadline; then it fails as expired.
    let key = ReplyKey::generate();
    let abandoned = uuid::Uuid::new_v4().to_string();
    let request = UploadRequested {
        metadata: client_metadata(&abandoned),
        filename: "speech.wav".into(),
        content_type: "audio/wav".into(),
        declared_size_bytes: 1000,
        reply_key: Some(key.public()),
        tenant_token: None,
        options: None,
    };
    client.publish(&abandoned, &request).await.unwrap();
    committed::<UploadUrlGenerated>(&env, &abandoned).await;
    let (code, doc) = trace(&env, &abandoned);
    assert_eq!(code, 3, "{doc:#}");
    assert_eq!(
        open_steps(&doc),
        [(
            None,
            "client".into(),
            vec!["waiting_for_client".into(), "deadline".into()]
        )]
    );
    let deadline = &doc["verdict"]["open"][0]["findings"][1];
    assert_eq!(deadline["timer"], "upload-expiry");
    let expires = record(&doc, "upload.url.generated")["occurred_at"]
        .as_i64()
        .unwrap()
        + 6_000;
    assert!(
        (deadline["due_at_ms"].as_i64().unwrap() - expires).abs() < 1_000,
        "{deadline:#}"
    );
    let doc = until(&env, &abandoned, |code, _| code == 2).await;
    assert_rejected(&doc, "upload.failed", "EXPIRED");

    // A request over the size limit: refused before any URL.
    let huge = uuid::Uuid::new_v4().to_string();
    let request = UploadRequested {
        metadata: client_metadata(&huge),
        declared_size_bytes: 1 << 40,
        ..request
    };
    client.publish(&huge, &request).await.unwrap();
    let doc = until(&env, &huge, |code, _| code == 2).await;
    assert_rejected(&doc, "upload.failed", "TOO_LARGE");
    assert_eq!(types(&doc)[..2], ["upload.requested", "upload.failed"]);

    // A finalize for an upload nobody requested: the upload processor dead-letters it, and
    // the trace says so at the record it could not handle.
    let unknown = uuid::Uuid::new_v4().to_string();
    let finalize = UploadFinalize {
        metadata: client_metadata(&unknown),
        etag: None,
        owner_token: None,
    };
    client.publish(&unknown, &finalize).await.unwrap();
    let doc = until(&env, &unknown, |_, doc| {
        doc["verdict"]["open"][0]["findings"][0]["kind"] == "dead_lettered"
    })
    .await;
    assert_eq!(
        open_steps(&doc),
        [(None, "upload".into(), vec!["dead_lettered".into()])]
    );
    let letter = &doc["verdict"]["open"][0]["findings"][0];
    assert_eq!(letter["processor"], "upload");
    assert_eq!(letter["class"], "permanent");
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("unknown upload"),
        "{letter:#}"
    );

    // An id that never existed.
    let (code, doc) = trace(&env, &uuid::Uuid::new_v4().to_string());
    assert_eq!(
        (code, &doc["verdict"]["status"]),
        (1, &Value::from("not_found"))
    );
    assert!(types(&doc).is_empty());

    // The list of recent resources tells the same endings; the finalize nobody requested
    // is no resource.
    let listed = resources(&env, &[]);
    let row = |id: &str| -> Value {
        listed
            .iter()
            .find(|r| r["resource_id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(row(ready)["status"], "ready", "{listed:#?}");
    assert!(row(ready)["audio_ms"].as_i64().unwrap() > 1_000);
    assert!(row(ready)["duration_ms"].as_i64().unwrap() > 0);
    assert_eq!(row(&refused)["status"], "rejected");
    assert!(row(&refused)["reason"]
        .as_str()
        .unwrap()
        .starts_with("UNDECODABLE"));
    assert_eq!(row(&abandoned)["status"], "failed");
    assert!(row(&abandoned)["reason"]
        .as_str()
        .unwrap()
        .starts_with("EXPIRED"));
    assert!(row(&huge)["reason"]
        .as_str()
        .unwrap()
        .starts_with("TOO_LARGE"));
    assert_eq!(row(&unknown), Value::Null);
    let times: Vec<i64> = listed
        .iter()
        .map(|r| r["requested_at"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let rejected = resources(&env, &["--status", "rejected"]);
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert_eq!(rejected[0]["resource_id"], refused.as_str());
}

/// `echoctl resources --json` with `args`: its rows.
fn resources(env: &TestEnv, args: &[&str]) -> Vec<Value> {
    let output = echoctl(bin(), env, &[])
        .args(["resources", "--json"])
        .args(args)
        .output()
        .expect("running echoctl resources");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Value>(&output.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_names_the_chunks_a_stopped_worker_left_and_their_deadlines() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let env = TestEnv::new("trace-stuck").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wav = speak(dir.path(), "speech.wav", SPEECH).unwrap();
    let settings = [
        ("ECHO_VALIDATION__CHUNK_MS", "5000"),
        ("ECHO_JOB_AGGREGATOR__CHUNK_DEADLINE_MS", "30000"),
        ("ECHO_JOB_AGGREGATOR__QUEUE_ALLOWANCE_MS", "1000"),
        ("ECHO_JOB_AGGREGATOR__MAX_ATTEMPTS", "1"),
    ];
    let _pipeline = Pipeline::start(bin(), &env, 0, &settings).unwrap();
    let worker = Pipeline::start_processor(
        bin(),
        &env,
        "chunk-worker",
        "w1",
        &[("ECHO_CHUNK_WORKER_TEST_DELAY_MS", "1500")],
    )
    .unwrap();
    // The client waits in its own process while the worker is stopped under it.
    let mut client = echoctl(bin(), &env, &[]);
    client
        .args(["submit", "--wait", "--json", "--timeout-secs", "180"])
        .arg(&wav);
    let submitted = tokio::task::spawn_blocking(move || client.output().unwrap());
    // A chunk's start is committed when the work starts, not with its result.
    let topic = env.topic(
        &env.catalogue
            .topic_of(ChunkProcessingCompleted::TYPE)
            .unwrap()
            .name,
    );
    let seen = wait_for(&env.config, &topic, Duration::from_secs(90), |seen| {
        seen.iter()
            .any(|s| s.type_name == Some(ChunkProcessingStarted::TYPE))
    })
    .await
    .unwrap();
    let started: ChunkProcessingStarted = seen
        .iter()
        .find(|s| s.type_name == Some(ChunkProcessingStarted::TYPE))
        .map(|s| apache_avro::from_value(s.value.as_ref().unwrap()).unwrap())
        .unwrap();
    let finished = seen.iter().any(|s| {
        s.type_name == Some(ChunkProcessingCompleted::TYPE)
            && apache_avro::from_value::<ChunkProcessingCompleted>(s.value.as_ref().unwrap())
                .unwrap()
                .chunk_index
                == started.chunk_index
    });
    assert!(
        !finished,
        "chunk {} was visible only once done",
        started.chunk_index
    );

    // The worker finishes one chunk, then stops.
    let seen = wait_for(&env.config, &topic, Duration::from_secs(90), |seen| {
        seen.iter()
            .any(|s| s.type_name == Some(ChunkProcessingCompleted::TYPE))
    })
    .await
    .unwrap();
    drop(worker);
    let resource = seen
        .iter()
        .find_map(|s| s.metadata.as_ref().map(|m| m.correlation_id.clone()))
        .unwrap();

    let (code, doc) = trace(&env, &resource);
    assert_eq!(code, 3, "{doc:#}");
    let open = open_steps(&doc);
    let chunks = record(&doc, "processing.job.created")["facts"]["chunks"]
        .as_str()
        .unwrap()
        .parse::<usize>()
        .unwrap();
    let done = types(&doc)
        .iter()
        .filter(|t| *t == "chunk.processing.completed")
        .count();
    assert!(chunks > 1 && done >= 1, "{chunks} chunks, {done} done");
    assert_eq!(
        open.len(),
        chunks - done,
        "every pending chunk, nothing else: {open:?}"
    );
    // Dispatched chunks wait for the stopped worker, each with its deadline; the rest wait
    // for the job aggregator to dispatch them (a job is dispatched a few chunks at a time).
    assert!(
        open.iter().any(|(_, by, _)| by == "chunk-worker"),
        "{open:?}"
    );
    for (i, (chunk, by, findings)) in open.iter().enumerate() {
        assert!(chunk.is_some(), "a chunk, not the resource: {open:?}");
        if by == "job-aggregator" {
            assert!(findings.is_empty(), "not dispatched yet: {findings:?}");
            continue;
        }
        assert_eq!(by, "chunk-worker");
        assert!(
            findings.contains(&"nothing_running".to_string()),
            "{findings:?}"
        );
        let deadline = doc["verdict"]["open"][i]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == "deadline")
            .unwrap_or_else(|| panic!("no deadline for chunk {chunk:?}: {findings:?}"));
        assert_eq!(deadline["processor"], "job-aggregator");
        assert_eq!(deadline["timer"], format!("chunk-{}", chunk.unwrap()));
        assert!(
            deadline["due_at_ms"].as_i64().unwrap() > now_ms(),
            "{deadline:#}"
        );
    }
    let text = String::from_utf8(run_trace(&env, &[&resource]).stdout).unwrap();
    assert!(text.contains("verdict: stopped"), "{text}");
    assert!(text.contains("job-aggregator's timer chunk-"), "{text}");

    // Past the deadlines, with one attempt allowed, the job fails and the trace says why.
    let output = submitted.await.unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["status"], "rejected", "{report:#}");
    let (code, doc) = trace(&env, &resource);
    assert_eq!(code, 2, "{doc:#}");
    assert_rejected(&doc, "transcription.failed", "");
    record(&doc, "processing.timeout");
}
