//! `echoctl status`: how far each processor's consumer group is behind on every partition it
//! reads (sources and retry tiers), and how much waits in its retry tiers and DLQ.

use std::process::ExitCode;

use anyhow::Result;
use echo_catalog::topics::{dlq_topic, retry_topic};
use echo_catalog::{Catalogue, ProcessorSpec};
use echo_runtime::EchoConfig;
use rdkafka::consumer::Consumer;
use rdkafka::TopicPartitionList;
use serde_json::json;

use crate::topic_reader::{group_observer, group_positions, partitions_of, KAFKA_TIMEOUT};

/// `status` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Prints one JSON document instead of tables.
    #[arg(long)]
    json: bool,
}

/// Where a processor's group stands on one partition it reads.
struct PartitionLag {
    /// Real topic name.
    topic: String,
    /// Partition id.
    partition: i32,
    /// The group's committed offset; `None` before its first commit there.
    committed: Option<i64>,
    /// High watermark: the offset the next record will get.
    end: i64,
    /// Offsets between the committed one (or the start, without one) and the end.
    lag: i64,
}

/// How many offsets one topic holds (high minus low watermark, over its partitions).
struct Held {
    /// Real topic name.
    topic: String,
    /// Offsets held; transaction markers take one each, so this can exceed the records.
    records: i64,
}

/// What `status` shows of one processor.
struct ProcessorStatus {
    /// Processor name.
    name: String,
    /// Its consumer group.
    group: String,
    /// Lag on every partition of its sources, then of its retry tiers.
    partitions: Vec<PartitionLag>,
    /// Each retry tier, in order.
    retry_tiers: Vec<Held>,
    /// Its DLQ.
    dlq: Held,
}

impl ProcessorStatus {
    /// The sum of the lags of every partition.
    fn total_lag(&self) -> i64 {
        self.partitions.iter().map(|p| p.lag).sum()
    }
}

/// Runs the subcommand.
pub async fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    let catalogue = Catalogue::load()?;
    let statuses = catalogue
        .processors
        .iter()
        .map(|p| processor_status(config, p))
        .collect::<Result<Vec<_>>>()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&statuses))?);
    } else {
        print_tables(&statuses);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the group's committed offsets and the watermarks of everything `spec` reads.
fn processor_status(config: &EchoConfig, spec: &ProcessorSpec) -> Result<ProcessorStatus> {
    let group = config.topic(&format!("echo.{}", spec.name));
    let consumer = group_observer(config, &group)?;
    let tiers: Vec<String> = (1..=spec.retry_backoff_ms.len())
        .map(|tier| config.topic(&retry_topic(&spec.name, tier)))
        .collect();
    let mut tpl = TopicPartitionList::new();
    for topic in spec
        .consumes
        .iter()
        .map(|t| config.topic(t))
        .chain(tiers.clone())
    {
        for p in partitions_of(&consumer, &topic)? {
            tpl.add_partition(&topic, p);
        }
    }
    let partitions = group_positions(config, &group, tpl)?
        .into_iter()
        .map(|p| PartitionLag {
            lag: (p.end - p.committed.unwrap_or(p.start)).max(0),
            topic: p.topic,
            partition: p.partition,
            committed: p.committed,
            end: p.end,
        })
        .collect();
    let held = |topic: String| -> Result<Held> {
        let mut records = 0;
        for p in partitions_of(&consumer, &topic)? {
            let (start, end) = consumer.fetch_watermarks(&topic, p, KAFKA_TIMEOUT)?;
            records += end - start;
        }
        Ok(Held { topic, records })
    };
    Ok(ProcessorStatus {
        name: spec.name.clone(),
        group,
        partitions,
        retry_tiers: tiers.into_iter().map(held).collect::<Result<_>>()?,
        dlq: held(config.topic(&dlq_topic(&spec.name)))?,
    })
}

/// One table per processor: its partitions, then its totals.
fn print_tables(statuses: &[ProcessorStatus]) {
    let width = statuses
        .iter()
        .flat_map(|s| &s.partitions)
        .map(|p| p.topic.len())
        .max()
        .unwrap_or(0)
        .max("TOPIC".len());
    for s in statuses {
        println!("{} (group {}): lag {}", s.name, s.group, s.total_lag());
        println!(
            "  {:<width$} {:>9} {:>10} {:>10} {:>8}",
            "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"
        );
        for p in &s.partitions {
            let committed = p.committed.map_or("-".into(), |o| o.to_string());
            println!(
                "  {:<width$} {:>9} {:>10} {:>10} {:>8}",
                p.topic, p.partition, committed, p.end, p.lag
            );
        }
        for tier in &s.retry_tiers {
            println!("  waiting in {}: {}", tier.topic, tier.records);
        }
        println!("  dead letters in {}: {}", s.dlq.topic, s.dlq.records);
        println!();
    }
}

/// The statuses as one JSON document.
fn to_json(statuses: &[ProcessorStatus]) -> serde_json::Value {
    let held = |h: &Held| json!({ "topic": h.topic, "records": h.records });
    json!({
        "processors": statuses.iter().map(|s| json!({
            "processor": s.name,
            "group": s.group,
            "lag": s.total_lag(),
            "partitions": s.partitions.iter().map(|p| json!({
                "topic": p.topic,
                "partition": p.partition,
                "committed": p.committed,
                "end": p.end,
                "lag": p.lag,
            })).collect::<Vec<_>>(),
            "retry_tiers": s.retry_tiers.iter().map(held).collect::<Vec<_>>(),
            "dlq": held(&s.dlq),
        })).collect::<Vec<_>>(),
    })
}
