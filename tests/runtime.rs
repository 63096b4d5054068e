//! The runtime's guarantees, proven against the real local stack: transactions, exactly-once
//! across a SIGKILL, dedup, state and timers across restarts, retry tiers and the DLQ.
//! Run with the stack up (`echoctl dev up`); every test has its own topic prefix.

use std::time::Duration;

use echo_catalog::events::{UploadExpired, UploadFinalize, UploadRequested, UploadUrlGenerated};
use echo_catalog::record::Record;
use echo_catalog::topics::changelog_topic;
use echo_runtime::driver::read_changelog;
use echo_runtime::headers::{echo, HeaderList};
use echo_runtime::publisher::Publisher;
use echo_runtime::registry::{self, SubjectStatus};
use echo_runtime::state::{encode_changelog, KeyState};
use echo_runtime::{EchoConfig, RunOptions, Shutdown};
use echo_tests::running::{child_config, Running};
use echo_tests::stack::PATIENCE;
use echo_tests::test_processor::{
    request, Counter, TestProcessor, PERMANENT, TRANSIENT, UNDECLARED, WITH_TIMER,
};
use echo_tests::{read_topic, wait_for, Isolation, Seen, TestEnv};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

const REQUESTS: &str = "echo.upload.requests";
const EVENTS: &str = "echo.upload.events";

fn start(config: &EchoConfig, processor: TestProcessor) -> Running {
    echo_tests::running::start(config, processor, "0")
}

fn of_type<R: Record>(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| s.type_name == Some(R::TYPE))
        .collect()
}

fn caused_by<'a, R: Record>(seen: &'a [Seen], event_id: &str) -> Vec<&'a Seen> {
    of_type::<R>(seen)
        .into_iter()
        .filter(|s| s.metadata.as_ref().unwrap().causation_id.as_deref() == Some(event_id))
        .collect()
}

/// What the test processor sent to its DLQ so far.
async fn dead_letters(env: &TestEnv) -> Vec<Seen> {
    read_topic(
        &env.config,
        &env.topic("echo.upload.dlq"),
        Isolation::Committed,
    )
    .await
    .unwrap()
}

/// Waits until the output caused by `input` is committed; returns the whole topic.
async fn url_generated_for(env: &TestEnv, input: &UploadRequested) -> Vec<Seen> {
    let cause = input.metadata.event_id.as_str();
    wait_for(&env.config, &env.topic(EVENTS), PATIENCE, |s| {
        !caused_by::<UploadUrlGenerated>(s, cause).is_empty()
    })
    .await
    .unwrap()
}

fn url_of(seen: &Seen) -> String {
    let value = seen.value.clone().unwrap();
    apache_avro::from_value::<UploadUrlGenerated>(&value)
        .unwrap()
        .upload_url
}

#[tokio::test(flavor = "multi_thread")]
async fn read_committed_sees_committed_transactions_and_never_aborted_ones() {
    let env = TestEnv::new("txn").await.unwrap();
    let topic = env.topic(EVENTS);
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", &env.config.kafka.bootstrap_servers)
        .set("transactional.id", format!("{topic}.probe"))
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    for (payload, commit) in [("kept", true), ("dropped", false)] {
        producer.begin_transaction().unwrap();
        producer
            .send(BaseRecord::to(&topic).key("k").payload(payload))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
        if commit {
            producer
                .commit_transaction(Duration::from_secs(30))
                .unwrap();
        } else {
            producer.abort_transaction(Duration::from_secs(30)).unwrap();
        }
    }
    let committed = read_topic(&env.config, &topic, Isolation::Committed)
        .await
        .unwrap();
    let everything = read_topic(&env.config, &topic, Isolation::Uncommitted)
        .await
        .unwrap();
    let payloads = |s: &[Seen]| s.iter().map(|r| r.payload.clone()).collect::<Vec<_>>();
    assert_eq!(payloads(&committed), vec![b"kept".to_vec()]);
    assert_eq!(
        payloads(&everything),
        vec![b"kept".to_vec(), b"dropped".to_vec()]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_processor_started_before_its_topics_exist_handles_them_once_they_do() {
    let prefix = TestEnv::fresh_prefix("late-topics").await.unwrap();
    let mut config = EchoConfig::load(None).unwrap();
    config.kafka.topic_prefix = prefix.clone();
    let processor = TestProcessor::default();
    let running = start(&config, processor.clone());
    // Subscribed to topics the broker did not know, a consumer would be assigned nothing until
    // its next metadata refresh (five minutes): far past the patience below.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let env = TestEnv::at(&prefix).await.unwrap();
    let input = request("res-late", "a.wav", None);
    Publisher::new(&env.config)
        .unwrap()
        .publish("res-late", &input)
        .await
        .unwrap();
    let seen = url_generated_for(&env, &input).await;
    running.stop().await;
    assert_eq!(
        caused_by::<UploadUrlGenerated>(&seen, &input.metadata.event_id).len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_input_event_has_no_second_effect() {
    let env = TestEnv::new("dedup").await.unwrap();
    let publisher = Publisher::new(&env.config).unwrap();
    let processor = TestProcessor::default();
    let running = start(&env.config, processor.clone());
    let twice = request("res-1", "a.wav", Some("dup-event-1"));
    publisher.publish("res-1", &twice).await.unwrap();
    publisher.publish("res-1", &twice).await.unwrap();
    let marker = request("res-1", "b.wav", None);
    publisher.publish("res-1", &marker).await.unwrap();
    let seen = url_generated_for(&env, &marker).await;
    running.stop().await;
    assert_eq!(
        caused_by::<UploadUrlGenerated>(&seen, "dup-event-1").len(),
        1
    );
    assert_eq!(processor.calls.lock().unwrap()["dup-event-1"], 1);
    // The marker is the second request the key's state counted, not the third.
    let marker_out = caused_by::<UploadUrlGenerated>(&seen, &marker.metadata.event_id);
    assert_eq!(url_of(marker_out[0]), "http://example.invalid/2");
    // Downstream consumers get CloudEvents headers and a trace context.
    let headers = &marker_out[0].headers;
    assert_eq!(headers.get("ce_type"), Some("upload.url.generated"));
    assert_eq!(
        headers.get("ce_causationid"),
        Some(marker.metadata.event_id.as_str())
    );
    assert!(headers.get("traceparent").unwrap().starts_with("00-"));
}

#[tokio::test(flavor = "multi_thread")]
async fn state_and_a_pending_timer_survive_a_restart_and_the_timer_fires_once() {
    let env = TestEnv::new("timers").await.unwrap();
    let publisher = Publisher::new(&env.config).unwrap();
    let first = request("res-t", &format!("{WITH_TIMER}.wav"), None);
    let running = start(&env.config, TestProcessor::default());
    publisher.publish("res-t", &first).await.unwrap();
    url_generated_for(&env, &first).await;
    // Stopped before the timer (2 s) is due; it must fire after the restart.
    running.stop().await;
    let seen = read_topic(&env.config, &env.topic(EVENTS), Isolation::Committed)
        .await
        .unwrap();
    assert!(
        of_type::<UploadExpired>(&seen).is_empty(),
        "timer fired too early"
    );

    let running = start(&env.config, TestProcessor::default());
    let second = request("res-t", "plain.wav", None);
    publisher.publish("res-t", &second).await.unwrap();
    let seen = wait_for(&env.config, &env.topic(EVENTS), PATIENCE, |s| {
        !of_type::<UploadExpired>(s).is_empty()
            && !caused_by::<UploadUrlGenerated>(s, &second.metadata.event_id).is_empty()
    })
    .await
    .unwrap();
    // Give a second firing every chance to happen before stopping.
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.stop().await;
    let seen_after = read_topic(&env.config, &env.topic(EVENTS), Isolation::Committed)
        .await
        .unwrap();
    let expired = of_type::<UploadExpired>(&seen_after);
    assert_eq!(expired.len(), 1, "the timer must fire exactly once");
    assert_eq!(
        expired[0]
            .metadata
            .as_ref()
            .unwrap()
            .causation_id
            .as_deref(),
        Some(first.metadata.event_id.as_str())
    );
    let second_out = caused_by::<UploadUrlGenerated>(&seen, &second.metadata.event_id);
    assert_eq!(
        url_of(second_out[0]),
        "http://example.invalid/2",
        "state was lost"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_climb_the_retry_tiers_then_succeed() {
    let env = TestEnv::new("retry").await.unwrap();
    let publisher = Publisher::new(&env.config).unwrap();
    let processor = TestProcessor::default();
    let running = start(&env.config, processor.clone());
    let flaky = request("res-r", &format!("{TRANSIENT}2-x.wav"), None);
    publisher.publish("res-r", &flaky).await.unwrap();
    let seen = url_generated_for(&env, &flaky).await;
    running.stop().await;
    assert_eq!(
        caused_by::<UploadUrlGenerated>(&seen, &flaky.metadata.event_id).len(),
        1
    );
    assert_eq!(processor.calls.lock().unwrap()[&flaky.metadata.event_id], 3);
    for (tier, attempt) in [(1, "1"), (2, "2")] {
        let retried = read_topic(
            &env.config,
            &env.topic(&format!("echo.upload.retry.{tier}")),
            Isolation::Committed,
        )
        .await
        .unwrap();
        assert_eq!(retried.len(), 1, "tier {tier}");
        assert_eq!(retried[0].headers.get(echo::ATTEMPT), Some(attempt));
        assert_eq!(retried[0].headers.get(echo::ERROR_CLASS), Some("transient"));
        assert_eq!(retried[0].headers.get(echo::ORIGINAL_TOPIC), Some(REQUESTS));
    }
    let dlq = dead_letters(&env).await;
    assert!(dlq.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn permanent_failures_exhausted_retries_and_garbage_land_in_the_dlq_and_the_partition_flows_on(
) {
    let env = TestEnv::new("dlq").await.unwrap();
    let publisher = Publisher::new(&env.config).unwrap();
    let processor = TestProcessor::default();
    let calls = processor.calls.clone();
    let running = start(&env.config, processor);
    let key = "res-d";
    let permanent = request(key, &format!("{PERMANENT}.wav"), None);
    publisher.publish(key, &permanent).await.unwrap();
    let hopeless = request(key, &format!("{TRANSIENT}9-x.wav"), None);
    publisher.publish(key, &hopeless).await.unwrap();
    let (_, garbage_offset) = publisher
        .publish_raw(
            &env.topic(REQUESTS),
            key,
            b"\x07not avro at all",
            HeaderList::default(),
        )
        .await
        .unwrap();
    // A known record type on a topic that does not carry it.
    let wrong = UploadUrlGenerated {
        metadata: request(key, "w", None).metadata,
        object_key: "k".into(),
        upload_url: "u".into(),
        content_type: "audio/wav".into(),
        expires_at: 0,
        sealed_upload_url: None,
        sealed_owner_token: None,
        owner_token_sha256: None,
    };
    let encoded = echo_runtime::codec::Codec::new(&env.config.registry.url)
        .unwrap()
        .encode(
            &env.topic(EVENTS),
            echo_catalog::events::info(UploadUrlGenerated::TYPE).unwrap(),
            apache_avro::to_value(&wrong).unwrap(),
        )
        .await
        .unwrap();
    publisher
        .publish_raw(&env.topic(REQUESTS), key, &encoded, HeaderList::default())
        .await
        .unwrap();
    // A type the processor's code does not declare it emits: refused at publish.
    let undeclared = request(key, &format!("{UNDECLARED}.wav"), None);
    publisher.publish(key, &undeclared).await.unwrap();
    // A type its source topics carry but it does not handle: never reaches its handler.
    let finalize = UploadFinalize {
        metadata: request(key, "f", None).metadata,
        etag: None,
        owner_token: None,
    };
    publisher.publish(key, &finalize).await.unwrap();
    let good = request(key, "good.wav", None);
    publisher.publish(key, &good).await.unwrap();

    let dlq = wait_for(&env.config, &env.topic("echo.upload.dlq"), PATIENCE, |s| {
        s.len() >= 5
    })
    .await
    .unwrap();
    let events = url_generated_for(&env, &good).await;
    let skipped =
        r#"echo_records_total{processor="upload",type="upload.finalize",outcome="skipped"} 1"#;
    let deadline = std::time::Instant::now() + PATIENCE;
    while !echo_runtime::metrics::metrics().encode().contains(skipped) {
        assert!(
            std::time::Instant::now() < deadline,
            "the finalize was not skipped:\n{}",
            echo_runtime::metrics::metrics().encode()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop().await;
    assert!(
        !calls
            .lock()
            .unwrap()
            .contains_key(&finalize.metadata.event_id),
        "the handler saw an upload.finalize"
    );
    assert!(dlq
        .iter()
        .all(|r| r.metadata.as_ref().map(|m| &m.event_id) != Some(&finalize.metadata.event_id)));
    assert_eq!(
        of_type::<UploadUrlGenerated>(&events).len(),
        1,
        "only the good record succeeds"
    );

    let class_of = |id: Option<&str>, class: &str| {
        dlq.iter()
            .find(|r| {
                r.headers.get(echo::ERROR_CLASS) == Some(class)
                    && id.is_none_or(|id| {
                        r.metadata.as_ref().map(|m| m.event_id.as_str()) == Some(id)
                    })
            })
            .unwrap_or_else(|| {
                panic!(
                    "no {class} record in the DLQ: {:?}",
                    dlq.iter().map(|r| &r.headers).collect::<Vec<_>>()
                )
            })
            .clone()
    };
    let p = class_of(Some(&permanent.metadata.event_id), "permanent");
    assert_eq!(
        p.headers.get(echo::ERROR_MESSAGE),
        Some("this request can never work")
    );
    assert_eq!(p.headers.get(echo::ORIGINAL_TOPIC), Some(REQUESTS));
    let h = class_of(Some(&hopeless.metadata.event_id), "transient");
    assert_eq!(
        h.headers.get(echo::ATTEMPT),
        Some("4"),
        "three retry tiers, then the DLQ"
    );
    let g = class_of(None, "undecodable");
    assert_eq!(g.payload, b"\x07not avro at all");
    assert_eq!(
        g.headers.get(echo::ORIGINAL_OFFSET),
        Some(garbage_offset.to_string().as_str())
    );
    let u = class_of(Some(&undeclared.metadata.event_id), "permanent");
    assert!(
        u.headers
            .get(echo::ERROR_MESSAGE)
            .unwrap()
            .contains("may not emit upload.completed"),
        "{:?}",
        u.headers
    );
    assert!(
        of_type::<echo_catalog::events::UploadCompleted>(&events).is_empty(),
        "an undeclared type was published"
    );
    let w = class_of(None, "wrong_topic");
    assert!(w
        .headers
        .get(echo::ERROR_MESSAGE)
        .unwrap()
        .contains("upload.url.generated"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incompatible_schema_change_is_refused_by_the_registry() {
    let env = TestEnv::new("compat").await.unwrap();
    let subjects = registry::subjects(&env.config, &env.catalogue).unwrap();
    let (subject, schema) = subjects
        .iter()
        .find(|(s, _)| s.ends_with("echo.upload.UploadRequested"))
        .unwrap();
    let mut changed: serde_json::Value = serde_json::from_str(schema).unwrap();
    // A new required field: old records cannot be read with it (not BACKWARD compatible).
    changed["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "bitrate", "type": "int"}));
    let client = reqwest::Client::new();
    let status =
        registry::register_one(&client, &env.config.registry, subject, &changed.to_string())
            .await
            .unwrap();
    assert!(
        matches!(status, SubjectStatus::Incompatible(_)),
        "{status:?}"
    );
    // The same change with a default is compatible.
    changed["fields"]
        .as_array_mut()
        .unwrap()
        .last_mut()
        .unwrap()["default"] = 0.into();
    let status =
        registry::register_one(&client, &env.config.registry, subject, &changed.to_string())
            .await
            .unwrap();
    assert!(matches!(status, SubjectStatus::Registered(_)), "{status:?}");
    // And the shipped catalogue, checked again, is still compatible with what is registered.
    let outcomes = registry::register(&env.config, &env.catalogue, true)
        .await
        .unwrap();
    assert!(outcomes
        .iter()
        .all(|o| !matches!(o.status, SubjectStatus::Incompatible(_))));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_processor_whose_output_subject_is_not_registered_stops_and_registers_nothing() {
    let env = TestEnv::new("unregistered").await.unwrap();
    let info = echo_catalog::events::info(UploadUrlGenerated::TYPE).unwrap();
    let subject = format!("{}-{}", env.topic(EVENTS), info.record_name);
    echo_tests::stack::prune(&env.config, |name| name == subject)
        .await
        .unwrap();
    let key = "res-u";
    Publisher::new(&env.config)
        .unwrap()
        .publish(key, &request(key, "a.wav", None))
        .await
        .unwrap();

    let shutdown = Shutdown::new();
    let options = RunOptions {
        instance: "0".into(),
        shutdown: shutdown.clone(),
    };
    let mut run = tokio::spawn(echo_runtime::run(
        env.config.clone(),
        TestProcessor::default(),
        options,
    ));
    let Ok(outcome) = tokio::time::timeout(PATIENCE, &mut run).await else {
        shutdown.trigger();
        let _ = run.await;
        panic!("the processor kept running without its output's schema");
    };
    let error = format!("{:#}", outcome.unwrap().expect_err("the processor fails"));
    assert!(
        error.contains(&subject) && error.contains("has no version with the schema this build"),
        "{error}"
    );

    // It registered nothing, and the input is not dead-lettered: it waits for the schemas.
    let subjects: Vec<String> = reqwest::get(format!("{}/subjects", env.config.registry.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!subjects.contains(&subject), "{subject} was registered");
    let dlq = dead_letters(&env).await;
    assert!(dlq.is_empty(), "dead-lettered: {dlq:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_processor_whose_code_declares_more_than_its_catalogue_entry_does_not_start() {
    let env = TestEnv::new("undeclared").await.unwrap();
    let beyond = TestProcessor::default().declaring(
        &[UploadRequested::TYPE, "upload.completed"],
        &[UploadUrlGenerated::TYPE, "resource.ready"],
    );
    let options = RunOptions {
        instance: "0".into(),
        shutdown: Shutdown::new(),
    };
    let outcome = tokio::time::timeout(
        PATIENCE,
        echo_runtime::run(env.config.clone(), beyond, options),
    )
    .await
    .expect("it ran instead of refusing to start");
    let error = format!("{:#}", outcome.expect_err("it refuses to start"));
    assert!(
        error.contains("handles upload.completed and emits resource.ready"),
        "{error}"
    );
}

/// Entry point of the child process used by the SIGKILL test (not a test on its own).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by processor_killed_mid_transaction_produces_each_output_once"]
async fn child_processor() {
    let Some(mut config) = child_config() else {
        return;
    };
    config.runtime.batch_max_records = 4;
    let options = RunOptions {
        instance: "0".into(),
        shutdown: Shutdown::new(),
    };
    echo_runtime::run(config, TestProcessor::default(), options)
        .await
        .unwrap();
}

fn spawn_child(env: &TestEnv) -> std::process::Child {
    // Commits held back 2 s: time to kill the child while a transaction is open.
    let vars = [("ECHO_TEST_DELAY_BEFORE_COMMIT_MS", "2000")];
    echo_tests::running::spawn_child(env, "child_processor", &vars)
}

#[tokio::test(flavor = "multi_thread")]
async fn processor_killed_mid_transaction_produces_each_output_once() {
    let env = TestEnv::new("sigkill").await.unwrap();
    let publisher = Publisher::new(&env.config).unwrap();
    let inputs: Vec<UploadRequested> = (0..24)
        .map(|i| request(&format!("res-{}", i % 6), &format!("f{i}.wav"), None))
        .collect();
    for r in &inputs {
        publisher
            .publish(&r.metadata.correlation_id, r)
            .await
            .unwrap();
    }
    let topic = env.topic(EVENTS);
    let mut child = spawn_child(&env);
    // Kill while a transaction is open: its records are written but not yet committed.
    let started = std::time::Instant::now();
    loop {
        // Written first, committed second: records written before and still uncommitted
        // after belong to an open transaction (the commit is held back 2 s).
        let written = read_topic(&env.config, &topic, Isolation::Uncommitted)
            .await
            .unwrap()
            .len();
        let committed = read_topic(&env.config, &topic, Isolation::Committed)
            .await
            .unwrap()
            .len();
        if written > committed && committed > 0 {
            break;
        }
        // The child joins a group and restores before its first commit: on a loaded
        // machine (the whole suite running) that alone has taken most of a minute.
        assert!(
            started.elapsed() < PATIENCE * 2,
            "never saw an open transaction"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = spawn_child(&env);
    let seen = wait_for(&env.config, &topic, PATIENCE * 2, |s| {
        of_type::<UploadUrlGenerated>(s).len() >= inputs.len()
    })
    .await;
    // Let a would-be duplicate arrive before judging.
    tokio::time::sleep(Duration::from_secs(2)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    seen.unwrap();
    let committed = read_topic(&env.config, &topic, Isolation::Committed)
        .await
        .unwrap();
    let everything = read_topic(&env.config, &topic, Isolation::Uncommitted)
        .await
        .unwrap();
    for r in &inputs {
        assert_eq!(
            caused_by::<UploadUrlGenerated>(&committed, &r.metadata.event_id).len(),
            1,
            "input {} must have exactly one committed output",
            r.filename
        );
    }
    assert_eq!(committed.len(), inputs.len());
    assert!(
        everything.len() > committed.len(),
        "the kill interrupted no transaction"
    );
}

/// Work announced before it is done (a chunk worker's `chunk.processing.started`) and cut
/// short by a SIGKILL: the input is delivered again to the next instance, which does the work
/// but does not announce it a second time. Before the announcement was recorded in the key's
/// state, the same announcement (same event id) was published twice.
#[tokio::test(flavor = "multi_thread")]
async fn work_announced_then_killed_is_announced_once() {
    let env = TestEnv::new("announce-kill").await.unwrap();
    let publisher = Publisher::new(&env.config).unwrap();
    let input = request("res-announced", "announced-4000-x.wav", None);
    publisher
        .publish(&input.metadata.correlation_id, &input)
        .await
        .unwrap();
    let topic = env.topic(EVENTS);
    let mut child = spawn_child(&env);
    // The announcement is committed; the work (4 s) is under way.
    let announced = wait_for(&env.config, &topic, PATIENCE * 2, |s| {
        !caused_by::<UploadExpired>(s, &input.metadata.event_id).is_empty()
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    announced.unwrap();
    let mut child = spawn_child(&env);
    let done = wait_for(&env.config, &topic, PATIENCE * 2, |s| {
        !caused_by::<UploadUrlGenerated>(s, &input.metadata.event_id).is_empty()
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let seen = done.unwrap();
    assert_eq!(
        caused_by::<UploadExpired>(&seen, &input.metadata.event_id).len(),
        1,
        "the announcement was published again after the restart"
    );
    assert_eq!(
        caused_by::<UploadUrlGenerated>(&seen, &input.metadata.event_id).len(),
        1
    );
}

/// A record whose work kills the processor (an abort, as an out-of-memory kill would) is
/// counted durably before each attempt: after `poison_after_failures` deaths it is
/// quarantined with the evidence, and the next record of its partition is handled.
#[tokio::test(flavor = "multi_thread")]
async fn work_that_kills_the_processor_is_quarantined_after_three_deaths() {
    let env = TestEnv::new("crash-loop").await.unwrap();
    let publisher = Publisher::new(&env.config).unwrap();
    let deadly = request("res-deadly", "crashing-x.wav", None);
    let after = request("res-deadly", "after.wav", None);
    for input in [&deadly, &after] {
        publisher
            .publish(&input.metadata.correlation_id, input)
            .await
            .unwrap();
    }
    let mut deaths = 0;
    let handled = loop {
        let mut child = spawn_child(&env);
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            let seen = read_topic(&env.config, &env.topic(EVENTS), Isolation::Committed)
                .await
                .unwrap();
            if !caused_by::<UploadUrlGenerated>(&seen, &after.metadata.event_id).is_empty() {
                break None;
            }
            if started.elapsed() > PATIENCE * 2 {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        match status {
            Some(_) => deaths += 1,
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                break true;
            }
        }
        if deaths > 5 {
            break false;
        }
    };
    assert!(
        handled,
        "the processor died {deaths} times on the same record"
    );
    assert_eq!(
        deaths, 3,
        "quarantined after a number of deaths other than 3"
    );
    let dlq = dead_letters(&env).await;
    let quarantined: Vec<_> = dlq
        .iter()
        .filter(|r| {
            r.metadata.as_ref().map(|m| m.event_id.as_str()) == Some(&deadly.metadata.event_id)
        })
        .collect();
    assert_eq!(quarantined.len(), 1, "{dlq:?}");
    assert_eq!(
        quarantined[0].headers.get(echo::ERROR_CLASS),
        Some("poison")
    );
    assert!(
        quarantined[0]
            .headers
            .get(echo::ERROR_MESSAGE)
            .is_some_and(|m| m.contains("began 3 times")),
        "{:?}",
        quarantined[0].headers
    );
}

/// A restart reads a changelog that compaction has not cleaned yet: every state a key went
/// through is there, and only the last counts. Only the last is decoded, so a superseded
/// record that no longer decodes (here, garbage) does not stop the restore.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_takes_each_keys_last_record_and_decodes_only_that() {
    let env = TestEnv::new("restore-latest").await.unwrap();
    let topic = env.topic(&changelog_topic("upload"));
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", &env.config.kafka.bootstrap_servers)
        .create()
        .unwrap();
    let counted = |requests| {
        encode_changelog(&KeyState {
            state: Counter {
                requests,
                finished: false,
            },
            ..KeyState::default()
        })
    };
    let records: [(&str, Option<Vec<u8>>); 5] = [
        ("a", Some(b"not a state".to_vec())),
        ("b", Some(counted(1))),
        ("a", Some(counted(2))),
        ("b", None),
        ("c", Some(counted(3))),
    ];
    for (key, payload) in &records {
        let record = BaseRecord::<str, [u8]>::to(&topic).partition(0).key(*key);
        let record = match payload {
            Some(bytes) => record.payload(bytes.as_slice()),
            None => record,
        };
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let config = env.config.clone();
    let restored =
        tokio::task::spawn_blocking(move || read_changelog::<Counter>(&config, &topic, &[0]))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(restored.records, records.len());
    let requests: std::collections::BTreeMap<&str, u32> = restored.keys[&0]
        .iter()
        .map(|(key, state)| (key.as_str(), state.state.requests))
        .collect();
    assert_eq!(requests, [("a", 2), ("c", 3)].into());
}
