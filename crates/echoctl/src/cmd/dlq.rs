//! `echoctl dlq list|show|redrive`: what each processor gave up on, one dead letter in full,
//! and re-publishing dead letters to where they came from, each exactly once.
//!
//! Redrive is exactly once through one transactional producer per processor: each batch of
//! re-published records and a marker per record (in `echo.<P>.dlq-redriven`) commit in one
//! transaction, and a record with a marker is never redriven again. The producer's fixed
//! transactional id fences any earlier run before the markers are read, so a killed or
//! concurrent run can neither commit later nor leave half a batch visible.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use echo_catalog::topics::{dlq_redriven_topic, dlq_topic};
use echo_catalog::{Catalogue, ProcessorSpec};
use echo_runtime::codec::{Codec, DecodeError};
use echo_runtime::driver::{now_ms, producer_config};
use echo_runtime::headers::{ce, echo, HeaderList};
use echo_runtime::operations::{self, Filter, RedriveTarget};
use echo_runtime::EchoConfig;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::topic_reader::{read_one, read_to_end, KAFKA_TIMEOUT};

/// `dlq` arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

/// What to do with the dead-letter topics.
#[derive(clap::Subcommand)]
enum Action {
    /// Counts each processor's dead letters by error class and original topic, with how
    /// many were already redriven; `--records` lists them one by one instead.
    List {
        /// Only this processor's DLQ.
        #[arg(long)]
        processor: Option<String>,
        /// One row per dead letter (its DLQ position for `dlq show`, class, type, whether
        /// redriven, reason) instead of counts.
        #[arg(long)]
        records: bool,
        /// Prints a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Prints one dead letter: its type, why it failed, its headers and its value.
    Show {
        /// The processor whose DLQ holds it.
        #[arg(long)]
        processor: String,
        /// Its DLQ partition.
        #[arg(long)]
        partition: i32,
        /// Its offset in that partition.
        #[arg(long)]
        offset: i64,
    },
    /// Re-publishes dead letters to their original topic and partition, each exactly once.
    Redrive {
        /// The processor whose DLQ to redrive.
        #[arg(long)]
        processor: String,
        /// Only records of this error class (`transient`, `permanent`, `undecodable`,
        /// `wrong_topic`, `key_mismatch`, `poison`).
        #[arg(long)]
        class: Option<String>,
        /// Only records of this type (`ce_type`, such as `upload.finalize`).
        #[arg(long = "type")]
        record_type: Option<String>,
        /// Prints what would be redriven and publishes nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// How many records one redrive transaction re-publishes.
const REDRIVE_BATCH: usize = 500;

/// How many leading payload bytes `show` prints of a record it cannot decode.
const PREVIEW_BYTES: usize = 64;

/// Runs the subcommand.
pub async fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    let catalogue = Catalogue::load()?;
    match args.action {
        Action::List {
            processor,
            records,
            json,
        } => {
            let processors = match processor {
                Some(name) => vec![catalogue.processor(&name)?],
                None => catalogue.processors.iter().collect(),
            };
            let dead = read_dead_letters(config, processors)?;
            if records {
                list_records(&dead, json)?
            } else {
                list_groups(&dead, json)?
            }
        }
        Action::Show {
            processor,
            partition,
            offset,
        } => show(config, catalogue.processor(&processor)?, partition, offset).await?,
        Action::Redrive {
            processor,
            class,
            record_type,
            dry_run,
        } => {
            let filter = Filter { class, record_type };
            redrive(
                config,
                &catalogue,
                catalogue.processor(&processor)?,
                &filter,
                dry_run,
            )?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One processor's dead letters as they stand now.
struct DeadLetters<'a> {
    /// The processor whose DLQ this is.
    processor: &'a ProcessorSpec,
    /// Every committed record of its DLQ.
    records: Vec<OwnedMessage>,
    /// DLQ positions (`partition`, `offset`) of the records already redriven.
    redriven: HashSet<(i32, i64)>,
}

impl DeadLetters<'_> {
    /// Whether the DLQ record `m` was already redriven.
    fn was_redriven(&self, m: &OwnedMessage) -> bool {
        self.redriven.contains(&(m.partition(), m.offset()))
    }
}

/// Reads the DLQ and the redrive markers of each of `processors`, all in one pass.
fn read_dead_letters<'a>(
    config: &EchoConfig,
    processors: Vec<&'a ProcessorSpec>,
) -> Result<Vec<DeadLetters<'a>>> {
    let dlq_of = |p: &ProcessorSpec| config.topic(&dlq_topic(&p.name));
    let markers_of = |p: &ProcessorSpec| config.topic(&dlq_redriven_topic(&p.name));
    let topics: Vec<String> = processors
        .iter()
        .flat_map(|p| [dlq_of(p), markers_of(p)])
        .collect();
    let mut by_topic: HashMap<String, Vec<OwnedMessage>> = HashMap::new();
    for m in read_to_end(config, &topics)? {
        by_topic.entry(m.topic().to_string()).or_default().push(m);
    }
    Ok(processors
        .into_iter()
        .map(|processor| DeadLetters {
            records: by_topic.remove(&dlq_of(processor)).unwrap_or_default(),
            redriven: redriven_positions(
                by_topic.remove(&markers_of(processor)).unwrap_or_default(),
            ),
            processor,
        })
        .collect())
}

/// The DLQ positions that marker records name, read in order: a marker adds its position, a
/// tombstone withdraws it (how an operator allows one record to go again).
fn redriven_positions(markers: Vec<OwnedMessage>) -> HashSet<(i32, i64)> {
    let mut positions = HashSet::new();
    for marker in markers {
        let Some(position) = marker
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(operations::parse_marker_key)
        else {
            continue;
        };
        if marker.payload().is_some() {
            positions.insert(position);
        } else {
            positions.remove(&position);
        }
    }
    positions
}

/// Prints the record counts per processor, error class and original topic.
fn list_groups(dead_letters: &[DeadLetters], json: bool) -> Result<()> {
    let mut rows = Vec::new();
    for dead in dead_letters {
        let records: Vec<(HeaderList, bool)> = dead
            .records
            .iter()
            .map(|m| (HeaderList::from_kafka(m.headers()), dead.was_redriven(m)))
            .collect();
        let groups = operations::group(records.iter().map(|(h, r)| (h, *r)));
        rows.extend(
            groups
                .into_iter()
                .map(|(key, count)| (&dead.processor.name, key, count)),
        );
    }
    if json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(processor, key, count)| {
                serde_json::json!({
                    "processor": processor,
                    "class": key.class,
                    "original_topic": key.original_topic,
                    "records": count.total,
                    "redriven": count.redriven,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("no dead letters");
    } else {
        println!(
            "{:<16} {:<12} {:<36} {:>8} {:>9}",
            "PROCESSOR", "CLASS", "ORIGINAL TOPIC", "RECORDS", "REDRIVEN"
        );
        for (processor, key, count) in &rows {
            println!(
                "{:<16} {:<12} {:<36} {:>8} {:>9}",
                processor, key.class, key.original_topic, count.total, count.redriven
            );
        }
    }
    Ok(())
}

/// One row of `dlq list --records`: a dead letter, where it sits and where it came from.
#[derive(serde::Serialize)]
struct DeadLetterRow<'a> {
    /// The processor that gave up on it.
    processor: &'a str,
    /// Its DLQ partition and offset: what `dlq show` takes.
    partition: i32,
    offset: i64,
    /// `echo_error_class`, `?` when missing.
    class: String,
    /// `ce_type`; none for a record that was never a catalogue record.
    #[serde(rename = "type")]
    record_type: Option<String>,
    /// Where it was first read (`echo_original_*`), `?` when missing.
    original_topic: String,
    original_partition: String,
    original_offset: String,
    /// Whether a redrive already re-published it.
    redriven: bool,
    /// `echo_error_message`, for people.
    reason: String,
}

/// Prints every dead letter, oldest first per DLQ partition: where it sits (what `dlq show`
/// takes), where it came from, its class, type and reason, and whether it was redriven.
fn list_records(dead_letters: &[DeadLetters], json: bool) -> Result<()> {
    let mut rows = Vec::new();
    for dead in dead_letters {
        for m in &dead.records {
            let headers = HeaderList::from_kafka(m.headers());
            let header = |name: &str| headers.get(name).unwrap_or("?").to_string();
            rows.push(DeadLetterRow {
                processor: &dead.processor.name,
                partition: m.partition(),
                offset: m.offset(),
                class: header(echo::ERROR_CLASS),
                record_type: headers.get(ce::TYPE).map(str::to_string),
                original_topic: header(echo::ORIGINAL_TOPIC),
                original_partition: header(echo::ORIGINAL_PARTITION),
                original_offset: header(echo::ORIGINAL_OFFSET),
                redriven: dead.was_redriven(m),
                reason: header(echo::ERROR_MESSAGE),
            });
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("no dead letters");
    } else {
        println!(
            "{:<16} {:>9} {:>8} {:<12} {:<22} {:<8} REASON",
            "PROCESSOR", "PARTITION", "OFFSET", "CLASS", "TYPE", "REDRIVEN"
        );
        for row in &rows {
            println!(
                "{:<16} {:>9} {:>8} {:<12} {:<22} {:<8} {}",
                row.processor,
                row.partition,
                row.offset,
                row.class,
                row.record_type.as_deref().unwrap_or("-"),
                if row.redriven { "yes" } else { "no" },
                row.reason,
            );
        }
    }
    Ok(())
}

/// Prints one dead letter of `processor`.
async fn show(
    config: &EchoConfig,
    processor: &ProcessorSpec,
    partition: i32,
    offset: i64,
) -> Result<()> {
    let topic = config.topic(&dlq_topic(&processor.name));
    let record = read_one(config, &topic, partition, offset)?;
    let headers = HeaderList::from_kafka(record.headers());
    let markers = read_to_end(
        config,
        &[config.topic(&dlq_redriven_topic(&processor.name))],
    )?;
    let was_redriven = redriven_positions(markers).contains(&(partition, offset));
    let key = record
        .key()
        .map_or("(none)".into(), String::from_utf8_lossy);
    println!("record    {topic} partition {partition} offset {offset}");
    println!(
        "type      {}",
        headers.get(ce::TYPE).unwrap_or("(no ce_type)")
    );
    println!("key       {key}");
    println!(
        "class     {}",
        headers.get(echo::ERROR_CLASS).unwrap_or("(none)")
    );
    println!(
        "reason    {}",
        headers.get(echo::ERROR_MESSAGE).unwrap_or("(none)")
    );
    println!("redriven  {}", if was_redriven { "yes" } else { "no" });
    println!("headers");
    for (name, value) in &headers.0 {
        println!("  {name}: {}", String::from_utf8_lossy(value));
    }
    let codec = Codec::new(&config.registry.url)?;
    match codec.decode(record.payload()).await {
        Ok(decoded) => {
            let value = serde_json::Value::try_from(decoded.value)
                .context("rendering the Avro value as JSON")?;
            println!("value     {}", decoded.info.type_name);
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        Err(DecodeError::RegistryUnavailable(e)) => bail!("schema registry unavailable: {e}"),
        Err(e) => {
            let payload = record.payload().unwrap_or_default();
            println!("value     {e}");
            println!(
                "bytes     {} in all: {}",
                payload.len(),
                operations::hex_preview(payload, PREVIEW_BYTES)
            );
        }
    }
    Ok(())
}

/// A dead letter a redrive re-publishes, and where to.
struct Redrivable {
    /// The DLQ record.
    record: OwnedMessage,
    /// Its headers, error headers included (stripped when re-published).
    headers: HeaderList,
    /// Its original topic and partition.
    target: RedriveTarget,
}

/// Re-publishes the matching dead letters of `processor` not redriven yet.
fn redrive(
    config: &EchoConfig,
    catalogue: &Catalogue,
    processor: &ProcessorSpec,
    filter: &Filter,
    dry_run: bool,
) -> Result<()> {
    // Fence earlier runs before reading the markers: from here on none of them can commit,
    // so the markers read next are final.
    let producer = if dry_run {
        None
    } else {
        Some(fencing_producer(config, &processor.name)?)
    };
    let dead = read_dead_letters(config, vec![processor])?
        .pop()
        .context("reading the DLQ")?;
    let partitions = catalogue.processor_partitions(processor)?;
    let (mut before, mut unmatched, mut refused) = (0, 0, 0);
    let mut pending = Vec::new();
    for record in dead.records {
        let headers = HeaderList::from_kafka(record.headers());
        if dead
            .redriven
            .contains(&(record.partition(), record.offset()))
        {
            before += 1;
        } else if !filter.matches(&headers) {
            unmatched += 1;
        } else {
            match operations::redrive_target(&headers, processor, partitions) {
                Ok(target) => pending.push(Redrivable {
                    record,
                    headers,
                    target,
                }),
                Err(why) => {
                    refused += 1;
                    println!(
                        "cannot redrive {}/{}: {why}",
                        record.partition(),
                        record.offset()
                    );
                }
            }
        }
    }
    match &producer {
        None => pending
            .iter()
            .for_each(|r| print_redrive("would redrive", r)),
        Some(producer) => {
            for batch in pending.chunks(REDRIVE_BATCH) {
                publish(config, producer, &processor.name, batch)?;
                batch.iter().for_each(|r| print_redrive("redriven", r));
            }
        }
    }
    println!(
        "{} {}; {before} redriven earlier, {unmatched} not matching the filter, {refused} \
         without a valid origin",
        if dry_run { "would redrive" } else { "redriven" },
        pending.len()
    );
    Ok(())
}

/// The transactional producer of `processor`'s redrives, initialised: any earlier redrive of
/// the same processor is fenced and its open transaction aborted.
fn fencing_producer(
    config: &EchoConfig,
    processor: &str,
) -> Result<ThreadedProducer<DefaultProducerContext>> {
    let producer: ThreadedProducer<DefaultProducerContext> = producer_config(config)
        .set(
            "transactional.id",
            config.topic(&operations::redrive_transactional_id(processor)),
        )
        .set(
            "transaction.timeout.ms",
            config.kafka.transaction_timeout_ms.to_string(),
        )
        .create()
        .context("creating transactional producer")?;
    producer
        .init_transactions(KAFKA_TIMEOUT)
        .context("initialising redrive transactions")?;
    Ok(producer)
}

/// Re-publishes `batch` and its markers in one transaction.
fn publish(
    config: &EchoConfig,
    producer: &ThreadedProducer<DefaultProducerContext>,
    processor: &str,
    batch: &[Redrivable],
) -> Result<()> {
    producer.begin_transaction()?;
    let sent = send_with_markers(config, producer, processor, batch)
        .and_then(|()| Ok(producer.commit_transaction(KAFKA_TIMEOUT)?));
    if let Err(e) = sent {
        // Best effort: the next run's fencing aborts the transaction anyway.
        let _ = producer.abort_transaction(KAFKA_TIMEOUT);
        return Err(e.context(
            "redrive transaction aborted: nothing of this batch was published; run again to \
             resume",
        ));
    }
    Ok(())
}

/// Sends each record of `batch` to its original topic and partition, and its marker.
fn send_with_markers(
    config: &EchoConfig,
    producer: &ThreadedProducer<DefaultProducerContext>,
    processor: &str,
    batch: &[Redrivable],
) -> Result<()> {
    let markers = config.topic(&dlq_redriven_topic(processor));
    for r in batch {
        let topic = config.topic(&r.target.topic);
        let mut record = BaseRecord::<[u8], [u8]>::to(&topic)
            .partition(r.target.partition)
            .headers(operations::strip_error_headers(&r.headers).to_kafka());
        if let Some(key) = r.record.key() {
            record = record.key(key);
        }
        if let Some(payload) = r.record.payload() {
            record = record.payload(payload);
        }
        producer
            .send(record)
            .map_err(|(e, _)| e)
            .with_context(|| format!("re-publishing to {topic}"))?;
        let key = operations::marker_key(r.record.partition(), r.record.offset());
        let marker = serde_json::json!({
            "topic": r.target.topic,
            "partition": r.target.partition,
            "redriven_at_ms": now_ms(),
        })
        .to_string();
        producer
            .send(BaseRecord::to(&markers).key(&key).payload(&marker))
            .map_err(|(e, _)| e)
            .with_context(|| format!("writing marker to {markers}"))?;
    }
    Ok(())
}

/// One line per redriven (or, on a dry run, redrivable) record.
fn print_redrive(verb: &str, r: &Redrivable) {
    println!(
        "{verb} {}/{} -> {} partition {} ({}, {})",
        r.record.partition(),
        r.record.offset(),
        r.target.topic,
        r.target.partition,
        r.headers.get(echo::ERROR_CLASS).unwrap_or("?"),
        r.headers.get(ce::TYPE).unwrap_or("no ce_type"),
    );
}
