//! No record, batch, rebalance or broker failure can stop a processor: proven against the
//! real local stack with a plain Kafka client sending what a careless or malicious producer
//! would, and with processors frozen, expelled and rebalanced. Each test has its own topics.

use std::time::Duration;

use echo_catalog::events::{UploadExpired, UploadUrlGenerated};
use echo_catalog::record::Record;
use echo_runtime::headers::echo;
use echo_runtime::publisher::Publisher;
use echo_runtime::{EchoConfig, RunOptions, Shutdown};
use echo_tests::partition::partition_of;
use echo_tests::running::{child_config, signal, spawn_child, start};
use echo_tests::stack::PATIENCE;
use echo_tests::test_processor::{
    request, TestProcessor, ANNOUNCED, FINISH, HUGE, PANIC, SLOW, SLOW_IO, TRANSIENT,
};
use echo_tests::{read_topic, wait_for, Isolation, Seen, TestEnv};
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use sha2::{Digest, Sha256};

const REQUESTS: &str = "echo.upload.requests";
const COMMANDS: &str = "echo.upload.commands";
const EVENTS: &str = "echo.upload.events";
const DLQ: &str = "echo.upload.dlq";

/// A plain client, not echo's: it writes any bytes, up to twice a record's usual limit.
fn hostile_producer(
    config: &EchoConfig,
) -> ThreadedProducer<rdkafka::producer::DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set("message.max.bytes", "2000000")
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap()
}

fn produce(
    producer: &ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    key: &str,
    value: &[u8],
    headers: OwnedHeaders,
) {
    producer
        .send(
            BaseRecord::to(topic)
                .key(key)
                .payload(value)
                .headers(headers),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn urls_caused_by(seen: &[Seen], event_id: &str) -> Vec<String> {
    seen.iter()
        .filter(|s| s.type_name == Some(UploadUrlGenerated::TYPE))
        .filter(|s| s.metadata.as_ref().unwrap().causation_id.as_deref() == Some(event_id))
        .map(|s| {
            apache_avro::from_value::<UploadUrlGenerated>(s.value.as_ref().unwrap())
                .unwrap()
                .upload_url
        })
        .collect()
}

async fn wait_for_url(env: &TestEnv, event_id: &str) -> Vec<Seen> {
    wait_for(&env.config, &env.topic(EVENTS), PATIENCE, |s| {
        !urls_caused_by(s, event_id).is_empty()
    })
    .await
    .unwrap()
}

fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    // Not even the Confluent magic byte.
    v[0] = 0xff;
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_record_on_any_source_goes_to_the_dlq_and_the_partition_flows_on() {
    let env = TestEnv::new("oversized").await.unwrap();
    let upload = start(&env.config, TestProcessor::named("upload"), "0");
    let validation = start(&env.config, TestProcessor::named("validation"), "0");
    let producer = hostile_producer(&env.config);
    let key = "res-big";
    let big = random_bytes(1_040_000);
    // A request, a command, an event (validation's source) and a retry tier, each followed
    // by a small bad record on the same partition.
    let due_now = OwnedHeaders::new().insert(Header {
        key: echo::DUE_AT,
        value: Some("0"),
    });
    let sources = [
        (REQUESTS, DLQ),
        (COMMANDS, DLQ),
        ("echo.upload.retry.1", DLQ),
        (EVENTS, "echo.validation.dlq"),
    ];
    for (topic, _) in sources {
        produce(&producer, &env.topic(topic), key, &big, due_now.clone());
        produce(
            &producer,
            &env.topic(topic),
            key,
            b"small and bad",
            due_now.clone(),
        );
    }
    let good = request(key, "good.wav", None);
    Publisher::new(&env.config)
        .unwrap()
        .publish(key, &good)
        .await
        .unwrap();
    wait_for_url(&env, &good.metadata.event_id).await;
    let upload_dlq = wait_for(&env.config, &env.topic(DLQ), PATIENCE, |s| s.len() >= 6)
        .await
        .unwrap();
    let validation_dlq = wait_for(
        &env.config,
        &env.topic("echo.validation.dlq"),
        PATIENCE,
        |s| s.len() >= 2,
    )
    .await
    .unwrap();
    upload.stop().await;
    validation.stop().await;
    let sha = hex::encode(Sha256::digest(&big));
    for (topic, dlq) in sources {
        let letters = if dlq == DLQ {
            &upload_dlq
        } else {
            &validation_dlq
        };
        let from_topic: Vec<&Seen> = letters
            .iter()
            .filter(|l| l.headers.get(echo::ERROR_CLASS) == Some("undecodable"))
            .filter(|l| {
                let original = l.headers.get(echo::ORIGINAL_TOPIC).unwrap_or_default();
                // A record put straight on a retry tier has no origin of its own.
                original == topic || (topic.contains(".retry.") && original.is_empty())
            })
            .collect();
        assert_eq!(
            from_topic.len(),
            2,
            "{topic}: {:?}",
            letters.iter().map(|l| &l.headers).collect::<Vec<_>>()
        );
        let (oversized, small) = (from_topic[0], from_topic[1]);
        assert_eq!(
            oversized.headers.get(echo::ERROR_CLASS),
            Some("undecodable"),
            "{topic}"
        );
        assert_eq!(
            oversized.headers.get(echo::VALUE_BYTES),
            Some("1040000"),
            "{topic}"
        );
        assert_eq!(
            oversized.headers.get(echo::VALUE_SHA256),
            Some(sha.as_str()),
            "{topic}"
        );
        let truncated = oversized.headers.get(echo::TRUNCATED).unwrap();
        assert!(truncated.starts_with("value: kept"), "{topic}: {truncated}");
        assert!(oversized.payload.len() < big.len() && big.starts_with(&oversized.payload));
        assert_eq!(small.payload, b"small and bad", "{topic}");
        assert_eq!(small.headers.get(echo::TRUNCATED), None, "{topic}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_output_too_large_or_a_panic_sends_the_input_to_the_dlq() {
    let env = TestEnv::new("bigoutput").await.unwrap();
    let running = start(&env.config, TestProcessor::default(), "0");
    let publisher = Publisher::new(&env.config).unwrap();
    let key = "res-huge";
    let huge = request(key, &format!("{HUGE}1100000-x.wav"), None);
    let panics = request(key, &format!("{PANIC}.wav"), None);
    let good = request(key, "good.wav", None);
    for r in [&huge, &panics, &good] {
        publisher.publish(key, r).await.unwrap();
    }
    wait_for_url(&env, &good.metadata.event_id).await;
    let dlq = wait_for(&env.config, &env.topic(DLQ), PATIENCE, |s| s.len() >= 2)
        .await
        .unwrap();
    running.stop().await;
    let message_of = |id: &str| {
        let letter = dlq
            .iter()
            .find(|l| l.metadata.as_ref().map(|m| m.event_id.as_str()) == Some(id))
            .unwrap();
        assert_eq!(letter.headers.get(echo::ERROR_CLASS), Some("permanent"));
        letter.headers.get(echo::ERROR_MESSAGE).unwrap().to_string()
    };
    let too_large = message_of(&huge.metadata.event_id);
    assert!(
        too_large.contains("output upload.url.generated would be"),
        "{too_large}"
    );
    let panicked = message_of(&panics.metadata.event_id);
    assert!(
        panicked.contains("handler panicked in decide: a bug in the handler"),
        "{panicked}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_whose_transaction_keeps_failing_is_quarantined() {
    let env = TestEnv::new("poison").await.unwrap();
    // The broker refuses records over 20 kB on the output topic; echo's producer does not
    // know it, so the failure shows only when the transaction commits, every time.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &env.config.kafka.bootstrap_servers)
        .create()
        .unwrap();
    let events = env.topic(EVENTS);
    let limit =
        AlterConfig::new(ResourceSpecifier::Topic(&events)).set("max.message.bytes", "20000");
    for result in admin
        .alter_configs(&[limit], &AdminOptions::new())
        .await
        .unwrap()
    {
        result.unwrap();
    }
    let running = start(&env.config, TestProcessor::default(), "0");
    let publisher = Publisher::new(&env.config).unwrap();
    let key = "res-poison";
    let before = request(key, "before.wav", None);
    let refused = request(key, &format!("{HUGE}50000-x.wav"), None);
    let after = request(key, "after.wav", None);
    for r in [&before, &refused, &after] {
        publisher.publish(key, r).await.unwrap();
    }
    let seen = wait_for_url(&env, &after.metadata.event_id).await;
    let dlq = wait_for(&env.config, &env.topic(DLQ), PATIENCE, |s| !s.is_empty())
        .await
        .unwrap();
    running.stop().await;
    assert_eq!(urls_caused_by(&seen, &before.metadata.event_id).len(), 1);
    assert!(urls_caused_by(&seen, &refused.metadata.event_id).is_empty());
    assert_eq!(dlq.len(), 1);
    let letter = &dlq[0];
    assert_eq!(
        letter.metadata.as_ref().unwrap().event_id,
        refused.metadata.event_id
    );
    assert_eq!(letter.headers.get(echo::ERROR_CLASS), Some("poison"));
    let message = letter.headers.get(echo::ERROR_MESSAGE).unwrap();
    assert!(
        message.starts_with("failed 3 times on replay, alone"),
        "{message}"
    );
    assert!(message.to_lowercase().contains("too large"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_is_closed_before_its_transaction_times_out_and_slow_io_is_bounded() {
    let env = TestEnv::new("budget").await.unwrap();
    let mut config = env.config.clone();
    // Budget 5 s, observe bounded at 2.5 s; 16 records of 1.5 s each are 24 s of work.
    config.kafka.transaction_timeout_ms = 10_000;
    let running = start(&config, TestProcessor::default(), "0");
    let publisher = Publisher::new(&config).unwrap();
    let slow: Vec<_> = (0..16)
        .map(|i| {
            request(
                &format!("res-slow-{i}"),
                &format!("{SLOW}1500-{i}.wav"),
                None,
            )
        })
        .collect();
    for r in &slow {
        publisher
            .publish(&r.metadata.correlation_id, r)
            .await
            .unwrap();
    }
    let hung = request("res-hung", &format!("{SLOW}60000-x.wav"), None);
    publisher.publish("res-hung", &hung).await.unwrap();
    // Reads and writes of 1.5 s each: within the bound one by one, past it together.
    let both = request("res-both", &format!("{SLOW_IO}1500-x.wav"), None);
    publisher.publish("res-both", &both).await.unwrap();
    // Announced work runs in a transaction of its own, bounded by the poll interval: 4 s of
    // it is fine under this transaction timeout.
    let announced = request("res-announced", &format!("{ANNOUNCED}4000-x.wav"), None);
    publisher
        .publish("res-announced", &announced)
        .await
        .unwrap();
    let seen = wait_for(&config, &env.topic(EVENTS), PATIENCE * 2, |s| {
        slow.iter()
            .chain([&announced])
            .all(|r| !urls_caused_by(s, &r.metadata.event_id).is_empty())
    })
    .await
    .unwrap();
    let dlq = wait_for(&config, &env.topic(DLQ), PATIENCE * 2, |s| s.len() >= 2)
        .await
        .unwrap();
    running.stop().await;
    for r in &slow {
        assert_eq!(
            urls_caused_by(&seen, &r.metadata.event_id).len(),
            1,
            "{}",
            r.filename
        );
    }
    let letter = |r: &echo_catalog::events::UploadRequested| {
        dlq.iter()
            .find(|l| l.metadata.as_ref().unwrap().event_id == r.metadata.event_id)
            .unwrap_or_else(|| panic!("{} is not in the DLQ", r.filename))
    };
    let message = letter(&hung).headers.get(echo::ERROR_MESSAGE).unwrap();
    assert_eq!(letter(&hung).headers.get(echo::ATTEMPT), Some("4"));
    assert!(
        message.contains("observe ran past the input's I/O budget of 2500 ms"),
        "{message}"
    );
    let message = letter(&both).headers.get(echo::ERROR_MESSAGE).unwrap();
    assert!(
        message.contains("an effect ran past the input's I/O budget of 2500 ms"),
        "{message}"
    );
    assert!(urls_caused_by(&seen, &both.metadata.event_id).is_empty());
    assert_eq!(urls_caused_by(&seen, &announced.metadata.event_id).len(), 1);
    assert!(
        dlq.iter()
            .all(|l| l.metadata.as_ref().unwrap().event_id != announced.metadata.event_id),
        "the announced work was dead-lettered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_retry_partition_is_resumed_after_a_rebalance() {
    let env = TestEnv::new("pause").await.unwrap();
    let mut config = env.config.clone();
    // The first retry tier holds a record for 8 s: time for a rebalance in between.
    config.runtime.retry_backoff_scale = 8.0;
    let running = start(&config, TestProcessor::default(), "0");
    let flaky = request("res-pause", &format!("{TRANSIENT}1-x.wav"), None);
    Publisher::new(&config)
        .unwrap()
        .publish("res-pause", &flaky)
        .await
        .unwrap();
    wait_for(&config, &env.topic("echo.upload.retry.1"), PATIENCE, |s| {
        !s.is_empty()
    })
    .await
    .unwrap();
    // A second member joins the group and leaves again: two rebalances while the record
    // is held; every partition ends up back with the processor.
    let group = config.topic("echo.upload");
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", "range")
        .create()
        .unwrap();
    let topics: Vec<String> = [
        REQUESTS,
        COMMANDS,
        "echo.upload.retry.1",
        "echo.upload.retry.2",
        "echo.upload.retry.3",
    ]
    .iter()
    .map(|t| config.topic(t))
    .collect();
    member
        .subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    let joined = std::time::Instant::now();
    while member.assignment().unwrap().count() == 0 {
        assert!(
            joined.elapsed() < PATIENCE,
            "the second member got no partitions"
        );
        member.poll(Duration::from_millis(100));
    }
    member.unsubscribe();
    drop(member);
    let seen = wait_for(&config, &env.topic(EVENTS), PATIENCE, |s| {
        !urls_caused_by(s, &flaky.metadata.event_id).is_empty()
    })
    .await
    .unwrap();
    running.stop().await;
    assert_eq!(urls_caused_by(&seen, &flaky.metadata.event_id).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn later_records_of_a_key_wait_for_its_record_in_a_retry_tier() {
    let env = TestEnv::new("order").await.unwrap();
    let mut config = env.config.clone();
    config.runtime.retry_backoff_scale = 0.5;
    let running = start(&config, TestProcessor::default(), "0");
    let publisher = Publisher::new(&config).unwrap();
    let key = "res-order";
    let first = request(key, &format!("{TRANSIENT}1-a.wav"), None);
    let second = request(key, "b.wav", None);
    let third = request(key, "c.wav", None);
    for r in [&first, &second, &third] {
        publisher.publish(key, r).await.unwrap();
    }
    let seen = wait_for_url(&env, &third.metadata.event_id).await;
    running.stop().await;
    // The key's state counts requests in the order it handled them.
    let url =
        |r: &echo_catalog::events::UploadRequested| urls_caused_by(&seen, &r.metadata.event_id);
    assert_eq!(
        url(&first),
        ["http://example.invalid/1"],
        "the first request was overtaken"
    );
    assert_eq!(url(&second), ["http://example.invalid/2"]);
    assert_eq!(url(&third), ["http://example.invalid/3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_key_is_deleted_after_its_grace_period() {
    let env = TestEnv::new("retire").await.unwrap();
    let mut config = env.config.clone();
    config.runtime.retire_after_ms = 1_000;
    let running = start(&config, TestProcessor::default(), "0");
    let publisher = Publisher::new(&config).unwrap();
    let key = "res-done";
    let last = request(key, &format!("{FINISH}.wav"), None);
    publisher.publish(key, &last).await.unwrap();
    wait_for_url(&env, &last.metadata.event_id).await;
    let changelog = env.topic("echo.upload.changelog");
    let records = wait_for(&config, &changelog, PATIENCE, |s| {
        s.iter().any(|r| r.key == key && r.payload.is_empty())
    })
    .await
    .unwrap();
    assert!(
        !records[0].payload.is_empty(),
        "the key's state was written first"
    );
    // The key starts over: a new request is the first its new state counts.
    let again = request(key, "again.wav", None);
    publisher.publish(key, &again).await.unwrap();
    let seen = wait_for_url(&env, &again.metadata.event_id).await;
    running.stop().await;
    assert_eq!(
        urls_caused_by(&seen, &again.metadata.event_id),
        ["http://example.invalid/1"]
    );
}

/// Entry point of the child process of the zombie test (not a test on its own).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by a_zombie_instance_cannot_commit_a_timer_its_successor_fired"]
async fn child_processor() {
    let Some(config) = child_config() else {
        return;
    };
    let options = RunOptions {
        instance: "a".into(),
        shutdown: Shutdown::new(),
    };
    echo_runtime::run(config, TestProcessor::default(), options)
        .await
        .unwrap();
}

fn expirations(seen: &[Seen]) -> usize {
    seen.iter()
        .filter(|s| s.type_name == Some(UploadExpired::TYPE))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zombie_instance_cannot_commit_a_timer_its_successor_fired() {
    let env = TestEnv::new("zombie").await.unwrap();
    let publisher = Publisher::new(&env.config).unwrap();
    let partitions = env
        .catalogue
        .partitions_of(env.catalogue.topic(REQUESTS).unwrap());
    let key = "res-zombie";
    let elsewhere = (0..)
        .map(|i| format!("res-elsewhere-{i}"))
        .find(|k| partition_of(k, partitions) != partition_of(key, partitions))
        .unwrap();
    // A first run leaves the key with a timer due in 25 s in the changelog.
    let first = start(&env.config, TestProcessor::default(), "a");
    let timed = request(key, "timer-25000-x.wav", None);
    publisher.publish(key, &timed).await.unwrap();
    wait_for_url(&env, &timed.metadata.event_id).await;
    first.stop().await;
    // Instance a starts again: it restores the timer, and commits nothing on its partition.
    let mut zombie = spawn_child(&env, "child_processor", &[]);
    let marker = request(&elsewhere, "marker.wav", None);
    publisher.publish(&elsewhere, &marker).await.unwrap();
    wait_for_url(&env, &marker.metadata.event_id).await;
    // Frozen (a long GC pause, a stalled VM), it is expelled; instance b takes over and
    // fires the timer when it is due.
    signal(&zombie, "STOP");
    let successor = start(&env.config, TestProcessor::default(), "b");
    wait_for(&env.config, &env.topic(EVENTS), PATIENCE, |s| {
        expirations(s) >= 1
    })
    .await
    .unwrap();
    // The zombie wakes with the timer due and its old group membership.
    signal(&zombie, "CONT");
    tokio::time::sleep(Duration::from_secs(8)).await;
    zombie.kill().unwrap();
    zombie.wait().unwrap();
    successor.stop().await;
    let seen = read_topic(&env.config, &env.topic(EVENTS), Isolation::Committed)
        .await
        .unwrap();
    assert_eq!(expirations(&seen), 1, "the zombie committed the timer too");
}
