//! The Kafka clients a processor runs with, and the settings that make the guarantees hold.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, ProducerContext};
use rdkafka::{ClientContext, Statistics, TopicPartitionList};
use tracing::{error, warn};

use super::txn_error::is_infrastructure;
use crate::config::EchoConfig;
use crate::dead_letter::MAX_RECORD_BYTES;
use crate::metrics::{metrics, PartitionLabels};

/// How often a consumer reports its statistics (the lag metrics' freshness).
const STATISTICS_INTERVAL_MS: &str = "5000";

/// How much a consumer fetches ahead of what it has handled, in KB. librdkafka's default
/// (64 MB) was most of a record processor's memory: restoring a 100 MB changelog, the
/// transcription processor peaked at 100 MB RSS, 44 MB with 4 MB ahead (docs/PERFORMANCE.md,
/// change 17). A batch takes at most `runtime.batch_max_records`; 8 MB holds many batches.
const PREFETCH_KBYTES: &str = "8192";

/// How long a consumer whose prefetch is full waits before fetching again. librdkafka waits
/// 1 s, and a restore that fills the bounded prefetch again and again took 16 s instead of 2.
const PREFETCH_FULL_BACKOFF_MS: &str = "5";

/// `client` with the consumer's prefetch bounded (see [`PREFETCH_KBYTES`]).
pub(super) fn bounded_prefetch(client: &mut ClientConfig) -> &mut ClientConfig {
    client
        .set("queued.max.messages.kbytes", PREFETCH_KBYTES)
        .set("fetch.queue.backoff.ms", PREFETCH_FULL_BACKOFF_MS)
}

/// Partition changes seen by the consumer, handled by the loop after each poll.
#[derive(Default)]
pub(super) struct RebalanceLog {
    /// Newly assigned `(topic, partition)`s.
    pub assigned: Vec<(String, i32)>,
    /// Revoked (or lost) `(topic, partition)`s.
    pub revoked: Vec<(String, i32)>,
    /// Assignments received (an empty one too: more members than partitions).
    pub assignments: usize,
}

/// Consumer context that records rebalances for the loop and publishes the client's
/// statistics (consumer lag per partition) as metrics of `processor`.
pub(super) struct RebalanceRecorder {
    /// Where the loop picks the rebalances up.
    pub log: Arc<Mutex<RebalanceLog>>,
    /// The processor, for the metrics' labels.
    pub processor: String,
}

impl ClientContext for RebalanceRecorder {
    fn stats(&self, statistics: Statistics) {
        let lag = &metrics().consumer_lag;
        for (topic, t) in statistics.topics {
            for (partition, p) in t.partitions {
                // Only partitions this member fetches (not -1, the internal one). The client's
                // own `consumer_lag` counts from the offsets the consumer committed, and echo
                // commits through the producer's transactions instead: the lag is what lies
                // between the fetch position and the last stable offset, plus what was
                // fetched and not yet handed over. Transaction markers sit past the last
                // record, so the fetch position, not the last record read, is the one to use.
                if partition >= 0 && p.fetch_state == "active" && p.next_offset >= 0 {
                    lag.get_or_create(&PartitionLabels {
                        processor: self.processor.clone(),
                        topic: topic.clone(),
                        partition,
                    })
                    .set((p.ls_offset - p.next_offset).max(0) + p.fetchq_cnt);
                }
            }
        }
    }
}

impl ConsumerContext for RebalanceRecorder {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut log = self.log.lock().expect("rebalance log");
        match rebalance {
            Rebalance::Assign(tpl) => {
                log.assigned.extend(tpl_entries(tpl));
                log.assignments += 1;
            }
            Rebalance::Revoke(tpl) => log.revoked.extend(tpl_entries(tpl)),
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
        }
    }
}

/// Context of consumers that read partitions to their end (the state restore, operators'
/// tools): reaching a partition's end is how such a reader knows it is done, not an error
/// worth logging.
pub struct ReadToEndContext;

impl ClientContext for ReadToEndContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let end_of_partition = matches!(
            error,
            KafkaError::PartitionEOF(_)
                | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        );
        if !end_of_partition {
            error!(error = %error, reason, "read-to-end consumer error");
        }
    }
}

impl ConsumerContext for ReadToEndContext {}

/// `(topic, partition)` of every entry.
pub(super) fn tpl_entries(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// The group member of processor group `group`.
pub(super) fn consumer(
    config: &EchoConfig,
    group: &str,
    instance: &str,
    recorder: RebalanceRecorder,
) -> Result<BaseConsumer<RebalanceRecorder>> {
    bounded_prefetch(&mut config.kafka.client_config())
        .set("group.id", group)
        .set("client.id", format!("{group}.{instance}"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        // Range keeps partition N of every co-partitioned input on the same instance,
        // which owns state partition N.
        .set("partition.assignment.strategy", "range")
        .set("session.timeout.ms", "10000")
        // A batch polls nothing while it runs; it is bounded by the transaction timeout
        // (and a restore, which also runs between polls, by its stall limit).
        .set(
            "max.poll.interval.ms",
            config.kafka.max_poll_interval_ms().to_string(),
        )
        // Records up to the broker's limit must be readable, to be moved to the DLQ.
        .set(
            "fetch.message.max.bytes",
            (2 * MAX_RECORD_BYTES).to_string(),
        )
        // Consumer lag per partition for the metrics, from the client's own statistics.
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        .create_with_context(recorder)
        .context("creating consumer")
}

/// Producer context that remembers why the broker refused a record of the open
/// transaction. A refused delivery leaves the transaction in an error state, and every later
/// call only says "erroneous state"; this keeps the cause, so the loop can tell a record the
/// broker will always refuse (replayed alone, then quarantined) from broker trouble.
#[derive(Clone, Default)]
pub(super) struct DeliveryWatch(Arc<Mutex<Option<String>>>);

impl DeliveryWatch {
    /// The first refusal that lies in a record since the last call.
    pub fn take(&self) -> Option<String> {
        self.0.lock().expect("delivery watch").take()
    }
}

impl ClientContext for DeliveryWatch {}

impl ProducerContext for DeliveryWatch {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            let lies_in_record = e
                .rdkafka_error_code()
                .is_some_and(|c| !is_infrastructure(c));
            if lies_in_record {
                self.0
                    .lock()
                    .expect("delivery watch")
                    .get_or_insert(e.to_string());
            }
        }
    }
}

/// How long the delivery thread of a [`PolledProducer`] waits for an event at a time; an
/// event (a delivery report) ends the wait at once.
const DELIVERY_POLL: Duration = Duration::from_secs(1);

/// A producer with a thread of its own that serves its delivery reports, as rdkafka's
/// `ThreadedProducer` does, but waking once a second instead of ten times. Each of the
/// client's timed polls ends by spinning through its last millisecond (the wait is passed to
/// librdkafka in whole milliseconds), so an idle `ThreadedProducer` burned about 1 % of a core.
pub(super) struct PolledProducer {
    /// The producer, shared with its delivery thread.
    producer: Arc<BaseProducer<DeliveryWatch>>,
    /// Raised on drop; the thread then ends within [`DELIVERY_POLL`], dropping its handle
    /// (nothing waits for it: the last transaction is committed or aborted by then).
    stop: Arc<AtomicBool>,
}

impl PolledProducer {
    fn start(producer: BaseProducer<DeliveryWatch>) -> Result<Self> {
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let (polled, stopped) = (producer.clone(), stop.clone());
        std::thread::Builder::new()
            .name("echo-deliveries".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    polled.poll(DELIVERY_POLL);
                }
            })
            .context("starting the delivery thread")?;
        Ok(PolledProducer { producer, stop })
    }
}

impl std::ops::Deref for PolledProducer {
    type Target = BaseProducer<DeliveryWatch>;

    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

impl Drop for PolledProducer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The transactional producer of one instance.
pub(super) fn transactional_producer(
    config: &EchoConfig,
    group: &str,
    instance: &str,
    watch: DeliveryWatch,
) -> Result<PolledProducer> {
    let producer = producer_config(config)
        .set("transactional.id", format!("{group}.{instance}"))
        .set(
            "transaction.timeout.ms",
            config.kafka.transaction_timeout_ms.to_string(),
        )
        // The coordinator answers CONCURRENT_TRANSACTIONS while it still writes the previous
        // transaction's markers (a few ms); the client retries adding the consumer offsets
        // after this backoff (doubling up to `retry.backoff.max.ms`), 100 ms by default,
        // which every back-to-back transaction waited out.
        .set("retry.backoff.ms", "10")
        .create_with_context(watch)
        .context("creating transactional producer")?;
    PolledProducer::start(producer)
}

/// Producer settings shared by processors and tools.
pub fn producer_config(config: &EchoConfig) -> ClientConfig {
    let mut c = config.kafka.client_config();
    c.set("enable.idempotence", "true")
        // The Java client's partitioner, so keys land on the same partition whichever
        // client wrote them (co-partitioning depends on it).
        .set("partitioner", "murmur2_random")
        .set("message.max.bytes", MAX_RECORD_BYTES.to_string())
        .set("linger.ms", "5");
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_fetches_ahead_a_few_megabytes_not_librdkafkas_64() {
        let mut client = ClientConfig::new();
        bounded_prefetch(&mut client);
        let ahead_kb: usize = client
            .get("queued.max.messages.kbytes")
            .expect("the prefetch is bounded")
            .parse()
            .unwrap();
        assert!(ahead_kb <= 16 * 1024, "{ahead_kb} KB ahead");
        // Still room for a whole fetch of the largest record a processor must read.
        assert!(
            ahead_kb * 1024 >= 2 * MAX_RECORD_BYTES,
            "{ahead_kb} KB ahead"
        );
        let backoff_ms: u64 = client
            .get("fetch.queue.backoff.ms")
            .expect("a full prefetch is fetched again soon")
            .parse()
            .unwrap();
        assert!(backoff_ms <= 50, "{backoff_ms} ms");
    }
}
