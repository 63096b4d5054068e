//! Operators' commands against the real local stack: `echoctl dlq list|show|redrive` on dead
//! letters a real processor produced, redrive's exactly-once guarantee across a run that died
//! mid-transaction, and `echoctl status` reporting a stopped group's lag. Each test has its
//! own topic prefix.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use echo_catalog::events::UploadFinalize;
use echo_catalog::record::EventMetadata;
use echo_runtime::driver::{now_ms, producer_config};
use echo_runtime::headers::{ce, echo, HeaderList, TRACEPARENT};
use echo_runtime::operations::{marker_key, redrive_transactional_id};
use echo_runtime::publisher::Publisher;
use echo_tests::pipeline::echoctl;
use echo_tests::stack::PATIENCE;
use echo_tests::{read_topic, wait_for, Isolation, Seen, TestEnv};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_echoctl");
const REQUESTS: &str = "echo.upload.requests";
const COMMANDS: &str = "echo.upload.commands";
const DLQ: &str = "echo.upload.dlq";
const REDRIVEN: &str = "echo.upload.dlq-redriven";

/// `echoctl ARGS` on the test's prefix; its stdout, after asserting it succeeded.
fn echoctl_ok(env: &TestEnv, args: &[&str]) -> String {
    let output = echoctl(Path::new(BIN), env, &[])
        .args(args)
        .output()
        .expect("running echoctl");
    assert!(
        output.status.success(),
        "echoctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// `echoctl ARGS --json`, parsed.
fn echoctl_json(env: &TestEnv, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&echoctl_ok(env, &args)).expect("JSON output")
}

/// `dlq list --processor upload --json` as (class, original topic) → (records, redriven).
fn dlq_groups(env: &TestEnv) -> HashMap<(String, String), (u64, u64)> {
    let rows = echoctl_json(env, &["dlq", "list", "--processor", "upload"]);
    rows.as_array()
        .expect("an array")
        .iter()
        .map(|r| {
            assert_eq!(r["processor"], "upload");
            (
                (
                    r["class"].as_str().unwrap().to_string(),
                    r["original_topic"].as_str().unwrap().to_string(),
                ),
                (
                    r["records"].as_u64().unwrap(),
                    r["redriven"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

fn group(class: &str, topic: &str) -> (String, String) {
    (class.to_string(), topic.to_string())
}

/// The `redriven N;` (or `would redrive N;`) count of a redrive's summary line.
fn redriven_count(output: &str, verb: &str) -> usize {
    let summary = output.lines().last().expect("a summary line");
    summary
        .strip_prefix(&format!("{verb} "))
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no '{verb} N;' summary in {output}"))
}

async fn read(env: &TestEnv, topic: &str) -> Vec<Seen> {
    read_topic(&env.config, &env.topic(topic), Isolation::Committed)
        .await
        .unwrap()
}

/// A record's partition, key, payload and headers: all but its offset.
type Identity = (i32, String, Vec<u8>, Vec<(String, Vec<u8>)>);

/// What identifies a record apart from its offset.
fn identity(s: &Seen) -> Identity {
    (
        s.partition,
        s.key.clone(),
        s.payload.clone(),
        s.headers.0.clone(),
    )
}

/// How often each distinct record occurs on a topic.
fn occurrences(seen: &[Seen]) -> HashMap<Identity, usize> {
    let mut counts = HashMap::new();
    for s in seen {
        *counts.entry(identity(s)).or_default() += 1;
    }
    counts
}

/// `echoctl run upload` in a child process, stopped with SIGTERM when dropped.
struct UploadProcessor(Child);

impl UploadProcessor {
    fn start(env: &TestEnv) -> UploadProcessor {
        let child = echoctl(Path::new(BIN), env, &[])
            .args(["run", "upload", "--instance", "ops"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting echoctl run upload");
        UploadProcessor(child)
    }
}

impl Drop for UploadProcessor {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_of_a_real_processor_are_listed_shown_and_redriven_exactly_once() {
    let env = TestEnv::new("dlq-ops").await.unwrap();
    let publisher = Publisher::new(&env.config).unwrap();
    let mut tagged = HeaderList::default();
    tagged.set("x-sent-by", "operations-test");
    for key in ["garbage-a", "garbage-b"] {
        publisher
            .publish_raw(
                &env.topic(REQUESTS),
                key,
                b"\x07not avro at all",
                tagged.clone(),
            )
            .await
            .unwrap();
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    let finalize = UploadFinalize {
        metadata: EventMetadata::new(
            uuid::Uuid::new_v4().to_string(),
            unknown.clone(),
            "test-client",
            now_ms(),
        ),
        etag: None,
        owner_token: None,
    };
    publisher.publish(&unknown, &finalize).await.unwrap();

    let processor = UploadProcessor::start(&env);
    wait_for(&env.config, &env.topic(DLQ), PATIENCE, |s| s.len() >= 3)
        .await
        .unwrap();
    drop(processor);
    let requests_before = read(&env, REQUESTS).await;
    let commands_before = read(&env, COMMANDS).await;
    assert_eq!((requests_before.len(), commands_before.len()), (2, 1));

    // The stopped processor had committed past everything it read.
    let status = echoctl_json(&env, &["status"]);
    let upload = status["processors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["processor"] == "upload")
        .expect("upload in status");
    assert_eq!(upload["lag"], 0, "{upload:#}");
    assert!(
        upload["dlq"]["records"].as_i64().unwrap() >= 3,
        "{upload:#}"
    );

    let groups = dlq_groups(&env);
    assert_eq!(
        groups,
        HashMap::from([
            (group("undecodable", REQUESTS), (2, 0)),
            (group("permanent", COMMANDS), (1, 0)),
        ])
    );
    let table = echoctl_ok(&env, &["dlq", "list"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("upload") && l.contains("permanent") && l.contains(COMMANDS)),
        "{table}"
    );

    // A dry run lists each record with its DLQ position and changes nothing.
    let dry = echoctl_ok(
        &env,
        &["dlq", "redrive", "--processor", "upload", "--dry-run"],
    );
    assert_eq!(redriven_count(&dry, "would redrive"), 3, "{dry}");
    // `dlq list --records` gives each dead letter's position, for `dlq show`.
    let records = echoctl_json(&env, &["dlq", "list", "--processor", "upload", "--records"]);
    let records = records.as_array().expect("an array");
    assert_eq!(records.len(), 3, "{records:#?}");
    assert!(records.iter().all(|r| r["redriven"] == false));
    let position_of = |class: &str| -> (String, String) {
        let record = records
            .iter()
            .find(|r| r["class"] == class)
            .unwrap_or_else(|| panic!("no {class} record in {records:#?}"));
        assert!(
            dry.contains(&format!(
                "would redrive {}/{} ",
                record["partition"], record["offset"]
            )),
            "the dry run names the same record: {dry}"
        );
        (
            record["partition"].to_string(),
            record["offset"].to_string(),
        )
    };
    let finalize_record = records.iter().find(|r| r["class"] == "permanent").unwrap();
    assert_eq!(finalize_record["type"], "upload.finalize");
    assert_eq!(finalize_record["original_topic"], COMMANDS);
    assert!(
        finalize_record["reason"]
            .as_str()
            .unwrap()
            .contains(&unknown),
        "{finalize_record:#}"
    );
    let table = echoctl_ok(&env, &["dlq", "list", "--processor", "upload", "--records"]);
    assert_eq!(
        table.lines().count(),
        4,
        "a header and a row per record: {table}"
    );
    assert_eq!(read(&env, REQUESTS).await.len(), 2);
    assert_eq!(read(&env, COMMANDS).await.len(), 1);
    assert!(read(&env, REDRIVEN).await.is_empty());

    let (partition, offset) = position_of("permanent");
    let shown = echoctl_ok(
        &env,
        &[
            "dlq",
            "show",
            "--processor",
            "upload",
            "--partition",
            &partition,
            "--offset",
            &offset,
        ],
    );
    assert!(
        shown.contains(&format!(
            "reason    upload.finalize for unknown upload {unknown}: no upload.requested was seen"
        )),
        "{shown}"
    );
    assert!(shown.contains("type      upload.finalize"), "{shown}");
    assert!(shown.contains("value     upload.finalize"), "{shown}");
    assert!(
        shown.contains(&format!("\"correlation_id\": \"{unknown}\"")),
        "{shown}"
    );
    assert!(
        shown.contains("echo_original_topic: echo.upload.commands"),
        "{shown}"
    );
    assert!(shown.contains("redriven  no"), "{shown}");

    let (partition, offset) = position_of("undecodable");
    let shown = echoctl_ok(
        &env,
        &[
            "dlq",
            "show",
            "--processor",
            "upload",
            "--partition",
            &partition,
            "--offset",
            &offset,
        ],
    );
    assert!(shown.contains("class     undecodable"), "{shown}");
    assert!(shown.contains("value     undecodable record"), "{shown}");
    assert!(shown.contains("07 6e 6f 74 20 61 76 72 6f"), "{shown}");
    assert!(shown.contains("x-sent-by: operations-test"), "{shown}");
    let missing = echoctl(Path::new(BIN), &env, &[])
        .args([
            "dlq",
            "show",
            "--processor",
            "upload",
            "--partition",
            &partition,
            "--offset",
            "9999",
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success(), "no record at offset 9999");

    // A filtered redrive, then an unfiltered one: every record goes exactly once.
    let permanent_only = echoctl_ok(
        &env,
        &[
            "dlq",
            "redrive",
            "--processor",
            "upload",
            "--class",
            "permanent",
        ],
    );
    assert_eq!(
        redriven_count(&permanent_only, "redriven"),
        1,
        "{permanent_only}"
    );
    assert_eq!(read(&env, COMMANDS).await.len(), 2);
    assert_eq!(read(&env, REQUESTS).await.len(), 2);
    let rest = echoctl_ok(&env, &["dlq", "redrive", "--processor", "upload"]);
    assert_eq!(redriven_count(&rest, "redriven"), 2, "{rest}");
    assert!(rest.contains("1 redriven earlier"), "{rest}");
    let again = echoctl_ok(&env, &["dlq", "redrive", "--processor", "upload"]);
    assert_eq!(redriven_count(&again, "redriven"), 0, "{again}");
    assert!(again.contains("3 redriven earlier"), "{again}");

    // Each original now has exactly one copy: same partition, key, payload and headers (the
    // originals carried no error headers, so the copies' were stripped).
    for (topic, before) in [(REQUESTS, &requests_before), (COMMANDS, &commands_before)] {
        let after = read(&env, topic).await;
        assert_eq!(after.len(), 2 * before.len(), "{topic}");
        let counts = occurrences(&after);
        for original in before {
            assert_eq!(counts[&identity(original)], 2, "{topic}: {original:?}");
        }
        assert!(after
            .iter()
            .all(|s| s.headers.0.iter().all(|(k, _)| !k.starts_with("echo_"))));
    }
    assert_eq!(read(&env, REDRIVEN).await.len(), 3);
    assert_eq!(
        dlq_groups(&env),
        HashMap::from([
            (group("undecodable", REQUESTS), (2, 2)),
            (group("permanent", COMMANDS), (1, 1)),
        ])
    );
    let records = echoctl_json(&env, &["dlq", "list", "--processor", "upload", "--records"]);
    assert!(
        records
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["redriven"] == true),
        "{records:#}"
    );
    let shown = echoctl_ok(
        &env,
        &[
            "dlq",
            "show",
            "--processor",
            "upload",
            "--partition",
            &partition,
            "--offset",
            &offset,
        ],
    );
    assert!(shown.contains("redriven  yes"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redrive_that_died_mid_transaction_is_undone_and_the_next_run_redrives_once() {
    let env = TestEnv::new("dlq-fence").await.unwrap();
    let publisher = Publisher::new(&env.config).unwrap();
    let mut original = HeaderList::default();
    original.set(ce::TYPE, "upload.requested");
    original.set(
        TRACEPARENT,
        "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01",
    );
    let mut dead = original.clone();
    dead.set(echo::ERROR_CLASS, "permanent");
    dead.set(echo::ERROR_MESSAGE, "refused by the handler");
    dead.set(echo::ORIGINAL_TOPIC, REQUESTS);
    dead.set(echo::ORIGINAL_OFFSET, 0);
    dead.set(echo::PROCESSOR, "upload");
    dead.set(echo::ATTEMPT, 1);
    let payload = b"any bytes; redrive does not decode".as_slice();
    // The DLQ partition follows the key; the original partition is another one, which the
    // redrive must honour.
    let (dlq_partition, _) = publisher
        .publish_raw(&env.topic(DLQ), "res-f", payload, dead.clone())
        .await
        .unwrap();
    let original_partition = (dlq_partition + 1) % 6;
    let mut dead_with_partition = dead.clone();
    dead_with_partition.set(echo::ORIGINAL_PARTITION, original_partition);
    let (dlq_partition, dlq_offset) = publisher
        .publish_raw(&env.topic(DLQ), "res-f", payload, dead_with_partition)
        .await
        .unwrap();

    // A redrive that wrote its records and markers and died before committing.
    let died: ThreadedProducer<DefaultProducerContext> = producer_config(&env.config)
        .set(
            "transactional.id",
            env.topic(&redrive_transactional_id("upload")),
        )
        .set("transaction.timeout.ms", "60000")
        .create()
        .unwrap();
    died.init_transactions(Duration::from_secs(30)).unwrap();
    died.begin_transaction().unwrap();
    let requests = env.topic(REQUESTS);
    died.send(
        BaseRecord::to(&requests)
            .partition(original_partition)
            .key("res-f")
            .payload(payload)
            .headers(original.to_kafka()),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    let markers = env.topic(REDRIVEN);
    let key = marker_key(dlq_partition, dlq_offset);
    died.send(BaseRecord::to(&markers).key(&key).payload("{}"))
        .map_err(|(e, _)| e)
        .unwrap();
    died.flush(Duration::from_secs(30)).unwrap();
    drop(died);
    let written = read_topic(&env.config, &requests, Isolation::Uncommitted)
        .await
        .unwrap();
    assert_eq!(written.len(), 1, "the dead run's record is on the broker");

    let output = echoctl_ok(&env, &["dlq", "redrive", "--processor", "upload"]);
    assert_eq!(redriven_count(&output, "redriven"), 1, "{output}");
    assert!(
        output.contains("1 without a valid origin"),
        "the record without echo_original_partition is refused: {output}"
    );
    let redriven = read(&env, REQUESTS).await;
    assert_eq!(redriven.len(), 1, "{redriven:?}");
    assert_eq!(redriven[0].partition, original_partition);
    assert_eq!(redriven[0].key, "res-f");
    assert_eq!(redriven[0].payload, payload);
    assert_eq!(redriven[0].headers, original, "error headers are stripped");
    let again = echoctl_ok(&env, &["dlq", "redrive", "--processor", "upload"]);
    assert_eq!(redriven_count(&again, "redriven"), 0, "{again}");
    assert_eq!(read(&env, REQUESTS).await.len(), 1);
    assert_eq!(
        read_topic(&env.config, &requests, Isolation::Uncommitted)
            .await
            .unwrap()
            .len(),
        2,
        "the dead run's copy was aborted, not committed"
    );
    assert_eq!(
        dlq_groups(&env),
        HashMap::from([(group("permanent", REQUESTS), (2, 1))])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_the_lag_of_a_group_whose_processor_is_not_running() {
    let env = TestEnv::new("status").await.unwrap();
    let publisher = Publisher::new(&env.config).unwrap();
    for i in 0..5 {
        publisher
            .publish_raw(
                &env.topic(REQUESTS),
                &format!("res-{i}"),
                b"waiting",
                HeaderList::default(),
            )
            .await
            .unwrap();
    }
    let status = echoctl_json(&env, &["status"]);
    let processors = status["processors"].as_array().unwrap();
    assert_eq!(processors.len(), env.catalogue.processors.len());
    let upload = processors
        .iter()
        .find(|p| p["processor"] == "upload")
        .unwrap();
    assert_eq!(upload["group"], env.topic("echo.upload"));
    let partitions = upload["partitions"].as_array().unwrap();
    let requests: Vec<&Value> = partitions
        .iter()
        .filter(|p| p["topic"] == env.topic(REQUESTS).as_str())
        .collect();
    assert_eq!(requests.len(), 6, "every partition of the source");
    assert_eq!(
        requests
            .iter()
            .map(|p| p["lag"].as_i64().unwrap())
            .sum::<i64>(),
        5
    );
    assert_eq!(
        requests
            .iter()
            .map(|p| p["end"].as_i64().unwrap())
            .sum::<i64>(),
        5
    );
    assert!(partitions.iter().all(|p| p["committed"].is_null()));
    assert!(partitions
        .iter()
        .any(|p| p["topic"] == env.topic("echo.upload.retry.3").as_str()));
    assert_eq!(upload["lag"], 5);
    assert_eq!(
        upload["retry_tiers"],
        json!([1, 2, 3]
            .iter()
            .map(|t| json!({"topic": env.topic(&format!("echo.upload.retry.{t}")), "records": 0}))
            .collect::<Vec<_>>())
    );
    assert_eq!(
        upload["dlq"],
        json!({"topic": env.topic(DLQ), "records": 0})
    );
    let table = echoctl_ok(&env, &["status"]);
    assert!(
        table.contains(&format!(
            "upload (group {}): lag 5",
            env.topic("echo.upload")
        )),
        "{table}"
    );
}
