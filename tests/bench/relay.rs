//! `echo-relay-bench`: the event path alone, on the local broker. It produces N
//! `upload.requested` records (Avro, registry wire format, each its own resource, on its
//! key's partition) with a plain idempotent producer and measures that rate; then runs a
//! processor over them through echo's runtime — consume read-committed, decode, dedup, state,
//! decide, encode, produce one event per record, changelog and offsets in one transaction —
//! and measures the rate at which its outputs become visible to a read-committed consumer.
//! The ratio is what exactly-once costs on this broker. Run by `scripts/bench.sh`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use echo_catalog::events::{self, UploadRequested};
use echo_catalog::record::Record;
use echo_runtime::codec::Codec;
use echo_runtime::driver::producer_config;
use echo_runtime::spans::TraceParent;
use echo_runtime::{headers, EchoConfig};
use echo_tests::running::start;
use echo_tests::stack::prune;
use echo_tests::test_processor::{request, TestProcessor};
use echo_tests::TestEnv;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// Command-line arguments.
#[derive(Parser)]
#[command(
    name = "echo-relay-bench",
    about = "Raw produce rate vs exactly-once relay rate"
)]
struct Args {
    /// Records to produce and relay.
    #[arg(long, default_value = "20000")]
    records: usize,
    /// Prints one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

/// Where the benchmark's topics start; deleted before and after.
const PREFIX: &str = "bench.relay.";

fn main() -> Result<()> {
    let args = Args::parse();
    echo_runtime::telemetry::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(args))
}

async fn bench(args: Args) -> Result<()> {
    let config = EchoConfig::load(None)?;
    prune(&config, |n| n.starts_with(PREFIX)).await?;
    let env = TestEnv::at(&format!("{PREFIX}{}.", std::process::id())).await?;
    let input = env.topic("echo.upload.requests");
    let output = env.topic("echo.upload.events");

    // Encoded up front: the rate measured is the broker's and the client's, not the encoder's.
    let codec = Codec::new(&env.config.registry.url)?;
    let info = events::info(UploadRequested::TYPE).context("upload.requested unknown")?;
    let mut records = Vec::with_capacity(args.records);
    for i in 0..args.records {
        let resource = uuid::Uuid::new_v4().to_string();
        let request = request(&resource, &format!("relay-{i}.wav"), None);
        let bytes = codec
            .encode(&input, info, apache_avro::to_value(&request)?)
            .await?;
        let headers = headers::cloud_event(
            request.metadata(),
            UploadRequested::TYPE,
            &TraceParent::own(request.metadata()),
        );
        records.push((resource, bytes, headers.to_kafka()));
    }

    let producer: ThreadedProducer<DefaultProducerContext> =
        producer_config(&env.config).create()?;
    let started = Instant::now();
    for (key, value, headers) in &records {
        let mut record = BaseRecord::to(&input)
            .key(key.as_str())
            .payload(value.as_slice())
            .headers(headers.clone());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("producing: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let produce_s = started.elapsed().as_secs_f64();

    let relay = start(&env.config, TestProcessor::named("upload"), "relay");
    let (first, last) = read_outputs(&env.config, &output, args.records)?;
    relay.stop().await;
    let relay_s = (last - first).as_secs_f64();
    let produce_per_s = args.records as f64 / produce_s;
    // From the first output to the last: the processor's startup (group join, restore) is
    // not the event path's cost.
    let relay_per_s = (args.records - 1) as f64 / relay_s;
    prune(&config, |n| n.starts_with(PREFIX)).await?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "records": args.records,
                "produce_per_s": produce_per_s,
                "relay_per_s": relay_per_s,
            })
        );
    } else {
        println!(
            "{} records: raw produce {produce_per_s:.0}/s, exactly-once relay {relay_per_s:.0}/s \
             ({:.0} %)",
            args.records,
            100.0 * relay_per_s / produce_per_s
        );
    }
    Ok(())
}

/// Reads `topic` (read-committed) until `count` records arrived: when the first and the last
/// became visible.
fn read_outputs(config: &EchoConfig, topic: &str, count: usize) -> Result<(Instant, Instant)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set("group.id", format!("{topic}.reader"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut assignment = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        assignment.add_partition_offset(topic, p.id(), Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut seen, mut first, mut last) = (0, None, Instant::now());
    while seen < count {
        if Instant::now() > deadline {
            bail!("only {seen} of {count} outputs arrived");
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m?.payload();
            seen += 1;
            last = Instant::now();
            first.get_or_insert(last);
        }
    }
    Ok((first.unwrap_or(last), last))
}
