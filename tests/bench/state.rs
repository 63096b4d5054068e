//! `echo-state-bench`: what a processor's state costs as keys pile up, measured against the
//! local stack. For each key count it fills a changelog topic (one record per key: a small
//! handler state, 8 remembered event ids, one pending timer), then prints the restore time,
//! the resident memory the restored state takes, and what finding due timers costs per loop
//! iteration (the due-time index, beside the full scan over every key it replaced); then it
//! tombstones 90 % of the keys, as retirement does, and measures the restore again. Run it
//! with `scripts/bench-state.sh` (release build); one run, figures printed side by side.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use echo_catalog::record::EventMetadata;
use echo_runtime::driver::read_changelog;
use echo_runtime::state::{encode_changelog, KeyState, StateStore};
use echo_runtime::{EchoConfig, Timer};
use echo_tests::stack::prune;
use echo_tests::test_processor::Counter;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

/// Command-line arguments.
#[derive(Parser)]
#[command(
    name = "echo-state-bench",
    about = "State size benchmark against the local stack"
)]
struct Args {
    /// Key counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    keys: Vec<usize>,
    /// Partitions of the changelog (a processor's default).
    #[arg(long, default_value = "6")]
    partitions: i32,
    /// Internal: measure this already filled topic in this (fresh) process and print one
    /// line of figures, so each measurement's resident memory is its own.
    #[arg(long, hide = true)]
    measure: Option<String>,
}

/// Where the benchmark's topics start; deleted at the end.
const PREFIX: &str = "bench.state.";

/// One row of the table.
struct Row {
    keys: usize,
    live: usize,
    restore: Duration,
    rss_mb: f64,
    index_us: f64,
    scan_us: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let config = EchoConfig::load(None)?;
    if let Some(topic) = &args.measure {
        let r = measure(&config, topic, args.partitions)?;
        println!(
            "{} {} {} {} {}",
            r.live,
            r.restore.as_secs_f64(),
            r.rss_mb,
            r.index_us,
            r.scan_us
        );
        return Ok(());
    }
    runtime.block_on(prune(&config, |n| n.starts_with(PREFIX)))?;
    let mut rows = Vec::new();
    for &keys in &args.keys {
        let topic = format!("{PREFIX}{keys}.changelog");
        runtime.block_on(create_topic(&config, &topic, args.partitions))?;
        fill(&config, &topic, keys, |_| true)?;
        rows.push(measure_apart(&topic, args.partitions, keys)?);
        // Retirement: 90 % of the keys are finished and tombstoned.
        fill(&config, &topic, keys, |i| i % 10 == 0)?;
        rows.push(measure_apart(&topic, args.partitions, 2 * keys)?);
    }
    runtime.block_on(prune(&config, |n| n.starts_with(PREFIX)))?;
    println!();
    println!(
        "{:>9} {:>9} {:>11} {:>12} {:>18} {:>22}",
        "records",
        "live keys",
        "restore s",
        "state RSS MB",
        "due index µs/loop",
        "full scan µs/loop (old)"
    );
    for r in &rows {
        println!(
            "{:>9} {:>9} {:>11.2} {:>12.1} {:>18.2} {:>22.1}",
            r.keys,
            r.live,
            r.restore.as_secs_f64(),
            r.rss_mb,
            r.index_us,
            r.scan_us
        );
    }
    Ok(())
}

async fn create_topic(config: &EchoConfig, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact");
    for result in admin.create_topics(&[new], &AdminOptions::new()).await? {
        result.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

/// Measures `topic` in a child process: `records` is how many records it holds.
fn measure_apart(topic: &str, partitions: i32, records: usize) -> Result<Row> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["--measure", topic, "--partitions", &partitions.to_string()])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "measuring {topic}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout)?;
    let f: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(f.len() == 5, "unexpected figures: {line}");
    Ok(Row {
        keys: records,
        live: f[0] as usize,
        restore: Duration::from_secs_f64(f[1]),
        rss_mb: f[2],
        index_us: f[3],
        scan_us: f[4],
    })
}

/// Writes one changelog record per key `k-<i>`: its state where `live(i)`, else a tombstone.
fn fill(config: &EchoConfig, topic: &str, keys: usize, live: impl Fn(usize) -> bool) -> Result<()> {
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "50")
        .set("compression.type", "lz4")
        .create()?;
    let started = Instant::now();
    for i in 0..keys {
        let key = format!("k-{i}");
        let json = live(i).then(|| encode_changelog(&key_state(i)));
        let mut record = BaseRecord::<str, [u8]>::to(topic).key(&key);
        if let Some(json) = &json {
            record = record.payload(json);
        }
        let mut record = Some(record);
        while let Some(r) = record.take() {
            if let Err((_, r)) = producer.send(r) {
                producer.poll(Duration::from_millis(10));
                record = Some(r);
            }
        }
    }
    producer.flush(Duration::from_secs(300))?;
    eprintln!(
        "wrote {keys} records to {topic} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A key's state as the runtime keeps it: handler state, remembered ids, one timer.
fn key_state(i: usize) -> KeyState<Counter> {
    let cause = EventMetadata::new(format!("e-{i}"), format!("r-{i}"), "bench", 0);
    let timer = Timer {
        name: "deadline".into(),
        // Far in the future: nothing is due, as on most loops.
        due_at_ms: 4_000_000_000_000 + i as i64,
        payload: String::new(),
        scheduled_by: cause,
    };
    KeyState {
        state: Counter {
            requests: 3,
            finished: false,
        },
        seen: (0..8)
            .map(|n| format!("{i:08}-{n:04}-4bcd-9ef0-123456789abc"))
            .collect::<VecDeque<_>>(),
        timers: BTreeMap::from([("deadline".to_string(), timer)]),
        ..KeyState::default()
    }
}

fn measure(config: &EchoConfig, topic: &str, partitions: i32) -> Result<Row> {
    let all: Vec<i32> = (0..partitions).collect();
    let before = rss_mb()?;
    let started = Instant::now();
    let restored = read_changelog::<Counter>(config, topic, &all)?;
    let restore = started.elapsed();
    let mut store = StateStore::<Counter>::new();
    let mut live = 0;
    for (p, map) in restored.keys {
        live += map.len();
        store.install(p, map);
    }
    let rss = rss_mb()? - before;
    let records = restored.records;
    let now = 1_000;
    let loops = 200;
    let t = Instant::now();
    for _ in 0..loops {
        assert!(store.due_timers(now).is_empty());
    }
    let index_us = t.elapsed().as_secs_f64() * 1e6 / loops as f64;
    let scan_us = scan_cost(&store, &all, now);
    eprintln!("measured {topic}: {live} live keys of {records} records");
    drop(store);
    Ok(Row {
        keys: records,
        live,
        restore,
        rss_mb: rss,
        index_us,
        scan_us,
    })
}

/// What the loop paid before the index: every key's timers looked at on every iteration.
fn scan_cost(store: &StateStore<Counter>, partitions: &[i32], now: i64) -> f64 {
    let loops = 5;
    let t = Instant::now();
    for _ in 0..loops {
        let due = partitions
            .iter()
            .flat_map(|p| store.keys_of(*p))
            .flat_map(|(_, ks)| ks.timers.values())
            .filter(|t| t.due_at_ms <= now)
            .count();
        assert_eq!(due, 0);
    }
    t.elapsed().as_secs_f64() * 1e6 / loops as f64
}

/// Resident memory of this process, MB.
fn rss_mb() -> Result<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").context("reading /proc/self/statm")?;
    let pages: f64 = statm.split_whitespace().nth(1).context("statm")?.parse()?;
    Ok(pages * 4096.0 / 1e6)
}
