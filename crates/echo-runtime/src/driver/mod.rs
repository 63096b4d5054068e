//! The processor loop, written once: consume a batch with `read_committed`, hand each record
//! to the processor, and commit outputs, reroutes, state changes and consumer offsets in
//! one Kafka transaction. A failed transaction is aborted and the batch replayed from the
//! last committed state, so every input has its effects exactly once.
//!
//! One concept a file: [`clients`] (the Kafka clients and their settings), [`batch_loop`]
//! (collect, transact, react to failures), [`transaction`] (one transaction and what it
//! commits), [`pipeline`] (one record: decode → dedup → decide → apply, and timers),
//! [`announce`] (work announced and committed before it is done),
//! [`txn_error`] (what a failure asks of the loop), [`retry_hold`] (retry-tier partitions
//! paused until their head record is due), [`quarantine`] (poison),
//! [`restore`] (state from the changelog on assignment), [`wait_out`] (a dependency that does
//! not answer).

mod announce;
mod batch_loop;
mod clients;
mod pipeline;
mod quarantine;
mod restore;
mod retry_hold;
mod transaction;
mod txn_error;
mod wait_out;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use echo_catalog::topics::retry_topic;
use echo_catalog::{Catalogue, ProcessorSpec};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use tokio::runtime::Handle;
use tracing::warn;

pub use clients::{producer_config, ReadToEndContext};
pub use restore::{read_changelog, Restored};

use crate::codec::Codec;
use crate::config::EchoConfig;
use crate::handler::{Decider, Processor, StateOf};
use crate::health::{health, Status};
use crate::replay_guard::ReplayGuard;
use crate::shutdown::Shutdown;
use crate::spans::{RecordSpan, Spans};
use crate::state::StateStore;
use clients::{DeliveryWatch, PolledProducer, RebalanceLog, RebalanceRecorder};

/// How one processor instance runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stable name of this instance (pod name in Kubernetes). It makes the transactional id,
    /// so a restarted instance fences its predecessor's open transaction at once.
    pub instance: String,
    /// Raised to stop after the current transaction.
    pub shutdown: Shutdown,
}

/// Runs `processor` until shutdown is requested or it must stop (fenced by a newer instance,
/// a bug). When the transaction state becomes unknown (a broker restart in the middle of a
/// commit), it starts over with new clients, as a restarted process would: the new
/// transactional producer completes or aborts what was left open, and the consumer resumes
/// from the committed offsets.
pub async fn run<P: Processor>(
    config: EchoConfig,
    processor: P,
    options: RunOptions,
) -> Result<()> {
    let handle = Handle::current();
    let processor = Arc::new(processor);
    let mut backoff = Duration::from_secs(1);
    let begun = Arc::new(Mutex::new(HashSet::new()));
    loop {
        let (config, processor, options, handle, begun) = (
            config.clone(),
            processor.clone(),
            options.clone(),
            handle.clone(),
            begun.clone(),
        );
        let shutdown = options.shutdown.clone();
        let instance = health_name(processor.decider().name(), &options.instance);
        health().set(
            &instance,
            Status {
                alive: true,
                ready: false,
            },
        );
        let outcome = tokio::task::spawn_blocking(move || {
            let mut driver =
                Driver::new(config, processor, options, handle, begun).map_err(Exit::Stop)?;
            driver.run()
        })
        .await
        .context("processor thread panicked");
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => Err(Exit::Stop(e)),
        };
        if matches!(outcome, Ok(()) | Err(Exit::Stop(_))) {
            health().set(&instance, Status::default());
        }
        match outcome {
            Ok(()) => return Ok(()),
            Err(Exit::Stop(e)) => return Err(e.context("processor stopped")),
            Err(Exit::Recover(e)) if shutdown.is_requested() => return Err(e),
            Err(Exit::Recover(e)) => {
                warn!(error = %format!("{e:#}"), ?backoff, "processor restarting with new clients");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Why a driver stopped before shutdown was requested.
enum Exit {
    /// The clients are in an unknown state; new ones recover it.
    Recover(anyhow::Error),
    /// Starting over would not help: fenced by a newer instance, or a bug.
    Stop(anyhow::Error),
}

impl From<anyhow::Error> for Exit {
    fn from(e: anyhow::Error) -> Exit {
        Exit::Recover(e)
    }
}

impl From<KafkaError> for Exit {
    fn from(e: KafkaError) -> Exit {
        Exit::Recover(e.into())
    }
}

/// Due work of a key: `(partition, key, work)`.
type Due = (i32, String, crate::state::DueWork);

/// One processor instance's clients, state and bookkeeping; lives on one blocking thread.
struct Driver<P: Processor> {
    /// Endpoints and tuning.
    config: EchoConfig,
    /// Topics and processors, to check what a record is and where an output goes.
    catalogue: Catalogue,
    /// This processor's entry (sources, retry backoffs scaled by the configuration).
    spec: ProcessorSpec,
    /// The handler.
    processor: Arc<P>,
    /// The async runtime `observe` and the codec run on.
    handle: Handle,
    /// Avro through the registry.
    codec: Codec,
    /// The group member reading the sources and retry tiers.
    consumer: BaseConsumer<RebalanceRecorder>,
    /// The transactional producer of outputs, reroutes, changelog and offsets.
    producer: PolledProducer,
    /// Why the broker refused a record of the open transaction, if it did.
    refusals: DeliveryWatch,
    /// Partition changes recorded by the consumer's rebalance callback.
    rebalances: Arc<Mutex<RebalanceLog>>,
    /// The owned partitions' state.
    store: StateStore<StateOf<P>>,
    /// Real topic name → retry tier (1-based) for this processor's retry topics.
    retry_tiers: HashMap<String, usize>,
    /// Paused retry partitions and when their head record comes due.
    paused: HashMap<(String, i32), i64>,
    /// Next offset to commit per assigned input partition: what was last committed, or the
    /// partition's start if nothing was. Every transaction that writes a partition's state
    /// carries these offsets, so a fenced (zombie) instance cannot commit it.
    committed: HashMap<(String, i32), i64>,
    /// What keeps failing on replay, to isolate and quarantine it.
    guard: ReplayGuard,
    /// Event ids of announced work this process has begun (and counted in the key's
    /// `work_began`) and not ended: replaying it in the same life (after an abort, a wait, a
    /// retry tier, a start over with new clients) is no sign that it kills the process.
    begun: Arc<Mutex<HashSet<String>>>,
    /// When the open transaction's time budget runs out.
    budget_ends: Option<std::time::Instant>,
    /// Announcements committed since the batch began: a batch ends at its announced input.
    announcements: u64,
    /// Records at the head of the current batch that an announcement committed: an abort of
    /// the rest reads only the rest again.
    settled: usize,
    /// What the open transaction has handled so far.
    open: transaction::OpenTxn,
    /// Test-only: sleep between producing and committing, to kill a process mid-transaction.
    delay_before_commit: Option<Duration>,
    /// Raised to stop after the current transaction.
    shutdown: Shutdown,
    /// This instance's name in the process's health.
    health_name: String,
    /// Where this processor's spans go.
    spans: Spans,
    /// The span of the record or timer being handled; its outputs name it as their parent.
    span: Option<RecordSpan>,
}

/// The name of a processor instance in the process's health: `processor/instance`.
fn health_name(processor: &str, instance: &str) -> String {
    format!("{processor}/{instance}")
}

impl<P: Processor> Driver<P> {
    fn new(
        config: EchoConfig,
        processor: Arc<P>,
        options: RunOptions,
        handle: Handle,
        begun: Arc<Mutex<HashSet<String>>>,
    ) -> Result<Self> {
        let catalogue = Catalogue::load()?;
        let decider = processor.decider();
        let mut spec = catalogue.processor(decider.name())?.clone();
        spec.admits(decider.handles(), decider.emits())?;
        for backoff in &mut spec.retry_backoff_ms {
            *backoff = (*backoff as f64 * config.runtime.retry_backoff_scale) as u64;
        }
        let group = config.topic(&format!("echo.{}", spec.name));
        let rebalances = Arc::new(Mutex::new(RebalanceLog::default()));
        let recorder = RebalanceRecorder {
            log: rebalances.clone(),
            processor: spec.name.clone(),
        };
        let consumer = clients::consumer(&config, &group, &options.instance, recorder)?;
        let refusals = DeliveryWatch::default();
        let producer =
            clients::transactional_producer(&config, &group, &options.instance, refusals.clone())?;
        let retry_tiers = (1..=spec.retry_backoff_ms.len())
            .map(|tier| (config.topic(&retry_topic(&spec.name, tier)), tier))
            .collect();
        let delay_before_commit = std::env::var("ECHO_TEST_DELAY_BEFORE_COMMIT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis);
        let spans = Spans::for_processor(&config.section("tracing")?, &spec.name)?;
        Ok(Driver {
            health_name: health_name(&spec.name, &options.instance),
            spans,
            span: None,
            codec: Codec::new(&config.registry.url)?,
            guard: ReplayGuard::new(config.runtime.poison_after_failures),
            begun,
            budget_ends: None,
            announcements: 0,
            settled: 0,
            open: transaction::OpenTxn::default(),
            refusals,
            config,
            catalogue,
            spec,
            processor,
            handle,
            consumer,
            producer,
            rebalances,
            store: StateStore::weighing(<P::Decider as Decider>::backlog),
            retry_tiers,
            paused: HashMap::new(),
            committed: HashMap::new(),
            delay_before_commit,
            shutdown: options.shutdown,
        })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
