//! What the processors of this process count and measure, in one registry the telemetry
//! server exposes to Prometheus (`/metrics`). Every series carries the `processor` label, so
//! `echoctl run all` (every processor in one process) and one processor per pod read alike.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A processor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcessorLabels {
    /// The processor's name in `topics/topics.toml`.
    pub processor: String,
}

/// Labels of a dependency a processor waits for.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DependencyLabels {
    /// The processor's name.
    pub processor: String,
    /// The dependency (`crate::dependency`).
    pub dependency: String,
}

/// A record type a processor handled, and how that ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecordLabels {
    /// The processor.
    pub processor: String,
    /// The record's type (`upload.requested`), or `unknown` when it did not decode.
    pub r#type: String,
    /// `handled`, `duplicate`, `held` (behind its key's record in a retry tier), `retried` or
    /// `dead_lettered`.
    pub outcome: String,
}

/// A record type a processor handled.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    /// The processor.
    pub processor: String,
    /// The record's type.
    pub r#type: String,
}

/// How a transaction ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransactionLabels {
    /// The processor.
    pub processor: String,
    /// `committed` or `aborted`.
    pub outcome: String,
}

/// Where a failed record went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RerouteLabels {
    /// The processor.
    pub processor: String,
    /// The catalogue name of the retry tier or DLQ topic.
    pub destination: String,
    /// The error class (`transient`, `permanent`, `undecodable`, …).
    pub class: String,
}

/// One partition a processor's group reads.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// The processor.
    pub processor: String,
    /// The real topic name.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

/// A histogram family whose buckets suit seconds from a millisecond to a minute.
type Seconds<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every instrument of the runtime and the processors.
pub struct Metrics {
    /// `echo_records_total`: records handled, by type and outcome.
    pub records: Family<RecordLabels, Counter>,
    /// `echo_transactions_total`: transactions committed or aborted.
    pub transactions: Family<TransactionLabels, Counter>,
    /// `echo_transaction_seconds`: from a batch's first record to its commit.
    pub transaction_seconds: Seconds<ProcessorLabels>,
    /// `echo_handler_seconds`: `observe` and `decide` of one record, by type.
    pub handler_seconds: Seconds<TypeLabels>,
    /// `echo_rerouted_total`: records sent to a retry tier or the DLQ.
    pub rerouted: Family<RerouteLabels, Counter>,
    /// `echo_consumer_lag`: records the group has not read, per partition (the client's
    /// statistics, every few seconds).
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// `echo_restore_seconds`: restoring the state of newly assigned partitions.
    pub restore_seconds: Seconds<ProcessorLabels>,
    /// `echo_timers_pending`: timers waiting in the owned partitions' state.
    pub timers_pending: Family<ProcessorLabels, Gauge>,
    /// `echo_backlog`: work the owned keys hold back that no topic shows yet
    /// (`Decider::backlog`: a job's chunks waiting for dispatch).
    pub backlog: Family<ProcessorLabels, Gauge>,
    /// `echo_audio_seconds_total`: audio a chunk worker transcribed.
    pub audio_seconds: Family<ProcessorLabels, Counter<f64, AtomicU64>>,
    /// `echo_whisper_seconds_total`: time a chunk worker spent in whisper.
    pub whisper_seconds: Family<ProcessorLabels, Counter<f64, AtomicU64>>,
    /// `echo_real_time_factor`: whisper time over audio time of the last chunk.
    pub real_time_factor: Family<ProcessorLabels, Gauge<f64, AtomicU64>>,
    /// `echo_dependency_unavailable`: 1 while a processor waits for a dependency that does
    /// not answer (`crate::dependency`), 0 once it answers again.
    pub dependency_unavailable: Family<DependencyLabels, Gauge>,
    registry: Registry,
}

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            records: Family::default(),
            transactions: Family::default(),
            transaction_seconds: Family::new_with_constructor(seconds),
            handler_seconds: Family::new_with_constructor(seconds),
            rerouted: Family::default(),
            consumer_lag: Family::default(),
            restore_seconds: Family::new_with_constructor(seconds),
            timers_pending: Family::default(),
            backlog: Family::default(),
            audio_seconds: Family::default(),
            whisper_seconds: Family::default(),
            real_time_factor: Family::default(),
            dependency_unavailable: Family::default(),
            registry: Registry::with_prefix("echo"),
        };
        let r = &mut m.registry;
        r.register(
            "records",
            "Records handled, by type and outcome",
            m.records.clone(),
        );
        r.register(
            "transactions",
            "Transactions committed or aborted",
            m.transactions.clone(),
        );
        r.register(
            "transaction_seconds",
            "From a batch's first record to its commit",
            m.transaction_seconds.clone(),
        );
        r.register(
            "handler_seconds",
            "observe and decide of one record",
            m.handler_seconds.clone(),
        );
        r.register(
            "rerouted",
            "Records sent to a retry tier or the DLQ",
            m.rerouted.clone(),
        );
        r.register(
            "consumer_lag",
            "Records the group has not read, per partition",
            m.consumer_lag.clone(),
        );
        r.register(
            "restore_seconds",
            "Restoring the state of newly assigned partitions",
            m.restore_seconds.clone(),
        );
        r.register(
            "timers_pending",
            "Timers waiting in the owned partitions' state",
            m.timers_pending.clone(),
        );
        r.register(
            "backlog",
            "Work the owned keys hold back that no topic shows yet",
            m.backlog.clone(),
        );
        r.register(
            "audio_seconds",
            "Audio transcribed",
            m.audio_seconds.clone(),
        );
        r.register(
            "whisper_seconds",
            "Time spent in whisper",
            m.whisper_seconds.clone(),
        );
        r.register(
            "real_time_factor",
            "Whisper time over audio time of the last chunk",
            m.real_time_factor.clone(),
        );
        r.register(
            "dependency_unavailable",
            "1 while a processor waits for a dependency that does not answer",
            m.dependency_unavailable.clone(),
        );
        m
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// Counts one record of `type_name` handled by `processor` with `outcome`.
    pub fn record(&self, processor: &str, type_name: &str, outcome: &str) {
        self.records
            .get_or_create(&RecordLabels {
                processor: processor.into(),
                r#type: type_name.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts one transaction of `processor` ending in `outcome`.
    pub fn transaction(&self, processor: &str, outcome: &str) {
        self.transactions
            .get_or_create(&TransactionLabels {
                processor: processor.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts a chunk of `audio_s` seconds that whisper took `whisper_s` for.
    pub fn transcribed(&self, processor: &str, audio_s: f64, whisper_s: f64) {
        let labels = ProcessorLabels {
            processor: processor.into(),
        };
        self.audio_seconds.get_or_create(&labels).inc_by(audio_s);
        self.whisper_seconds
            .get_or_create(&labels)
            .inc_by(whisper_s);
        if audio_s > 0.0 {
            self.real_time_factor
                .get_or_create(&labels)
                .set(whisper_s / audio_s);
        }
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The `processor` label set.
pub fn processor(name: &str) -> ProcessorLabels {
    ProcessorLabels {
        processor: name.into(),
    }
}
