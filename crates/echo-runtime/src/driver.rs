//! The processor loop, written once: consume a batch with `read_committed`, hand each record
//! to the processor, and commit outputs, reroutes, state changes and consumer offsets in
//! one Kafka transaction. A failed transaction is aborted and the batch replayed from the
//! last committed state, so every input has its effects exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use echo_catalog::topics::{changelog_topic, retry_topic};
use echo_catalog::{events, Catalogue, ProcessorSpec};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tracing::{debug, error, info, info_span, warn};

use crate::codec::{Codec, DecodeError};
use crate::config::EchoConfig;
use crate::envelope::{metadata_of, Incoming, Outgoing, SourcePosition};
use crate::handler::{Context, Decision, Fact, HandlerError, Input, Processor, Timer};
use crate::headers::{self, echo, HeaderList};
use crate::retry::{reroute, ErrorClass, Failure};
use crate::shutdown::Shutdown;
use crate::state::{decode_changelog, KeyState, StateStore};

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
    loop {
        let (config, processor, options, handle) = (
            config.clone(),
            processor.clone(),
            options.clone(),
            handle.clone(),
        );
        let shutdown = options.shutdown.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut driver = Driver::new(config, processor, options, handle).map_err(Exit::Stop)?;
            driver.run()
        })
        .await
        .context("processor thread panicked")?;
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

/// Partition changes seen by the consumer, handled by the loop after each poll.
#[derive(Default)]
struct RebalanceLog {
    assigned: Vec<(String, i32)>,
    revoked: Vec<(String, i32)>,
}

/// Consumer context that records rebalances for the loop.
struct RebalanceRecorder(Arc<Mutex<RebalanceLog>>);

impl ClientContext for RebalanceRecorder {}

impl ConsumerContext for RebalanceRecorder {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut log = self.0.lock().expect("rebalance log");
        match rebalance {
            Rebalance::Assign(tpl) => log.assigned.extend(tpl_entries(tpl)),
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

fn tpl_entries(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// A failure of one transaction attempt.
enum TxnError {
    /// Abort, rewind, back off and try again (broker or registry trouble).
    Retry(anyhow::Error),
    /// This instance must stop (fenced by a newer one, or a bug).
    Fatal(anyhow::Error),
}

impl From<KafkaError> for TxnError {
    fn from(e: KafkaError) -> TxnError {
        let fatal = matches!(&e, KafkaError::Transaction(t) if t.is_fatal());
        if fatal {
            TxnError::Fatal(e.into())
        } else {
            TxnError::Retry(e.into())
        }
    }
}

struct Driver<P: Processor> {
    config: EchoConfig,
    catalogue: Catalogue,
    spec: ProcessorSpec,
    processor: Arc<P>,
    handle: Handle,
    codec: Codec,
    consumer: BaseConsumer<RebalanceRecorder>,
    producer: ThreadedProducer<DefaultProducerContext>,
    rebalances: Arc<Mutex<RebalanceLog>>,
    store: StateStore<P::State>,
    /// Real topic name → retry tier (1-based) for this processor's retry topics.
    retry_tiers: HashMap<String, usize>,
    /// Paused retry partitions and when their head record comes due.
    paused: HashMap<(String, i32), i64>,
    /// Next offset committed per input partition; sent with timer-only transactions so a
    /// fenced (zombie) instance cannot commit them.
    committed: HashMap<(String, i32), i64>,
    /// Test-only: sleep between producing and committing, to kill a process mid-transaction.
    delay_before_commit: Option<Duration>,
    shutdown: Shutdown,
}

const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a starting processor waits for the transaction coordinator (a broker that has
/// just restarted loads its transaction state first).
const COORDINATOR_PATIENCE: Duration = Duration::from_secs(120);

impl<P: Processor> Driver<P> {
    fn new(
        config: EchoConfig,
        processor: Arc<P>,
        options: RunOptions,
        handle: Handle,
    ) -> Result<Self> {
        let catalogue = Catalogue::load()?;
        let mut spec = catalogue.processor(processor.name())?.clone();
        for backoff in &mut spec.retry_backoff_ms {
            *backoff = (*backoff as f64 * config.runtime.retry_backoff_scale) as u64;
        }
        let group = config.topic(&format!("echo.{}", spec.name));
        let rebalances = Arc::new(Mutex::new(RebalanceLog::default()));
        let consumer: BaseConsumer<RebalanceRecorder> = ClientConfig::new()
            .set("bootstrap.servers", &config.kafka.bootstrap_servers)
            .set("group.id", &group)
            .set("client.id", format!("{group}.{}", options.instance))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            // Range keeps partition N of every co-partitioned input on the same instance,
            // which owns state partition N.
            .set("partition.assignment.strategy", "range")
            .set("session.timeout.ms", "10000")
            .create_with_context(RebalanceRecorder(rebalances.clone()))
            .context("creating consumer")?;
        let producer: ThreadedProducer<DefaultProducerContext> = producer_config(&config)
            .set("transactional.id", format!("{group}.{}", options.instance))
            .set(
                "transaction.timeout.ms",
                config.kafka.transaction_timeout_ms.to_string(),
            )
            .create()
            .context("creating transactional producer")?;
        let retry_tiers = (1..=spec.retry_backoff_ms.len())
            .map(|tier| (config.topic(&retry_topic(&spec.name, tier)), tier))
            .collect();
        let delay_before_commit = std::env::var("ECHO_TEST_DELAY_BEFORE_COMMIT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis);
        Ok(Driver {
            codec: Codec::new(&config.registry.url)?,
            config,
            catalogue,
            spec,
            processor,
            handle,
            consumer,
            producer,
            rebalances,
            store: StateStore::new(),
            retry_tiers,
            paused: HashMap::new(),
            committed: HashMap::new(),
            delay_before_commit,
            shutdown: options.shutdown,
        })
    }

    fn run(&mut self) -> Result<(), Exit> {
        self.init_transactions()?;
        let mut sources: Vec<String> = self
            .spec
            .consumes
            .iter()
            .map(|t| self.config.topic(t))
            .collect();
        sources.extend(self.retry_tiers.keys().cloned());
        let source_refs: Vec<&str> = sources.iter().map(String::as_str).collect();
        self.consumer.subscribe(&source_refs)?;
        info!(processor = %self.spec.name, ?sources, "processor started");
        let mut backoff = Duration::from_millis(200);
        while !self.shutdown.is_requested() {
            self.resume_due_partitions()?;
            let batch = self.collect_batch()?;
            let timers = self.store.due_timers(now_ms());
            if batch.is_empty() && timers.is_empty() {
                continue;
            }
            match self.transact(&batch, timers) {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(TxnError::Fatal(e)) => {
                    let _ = self.producer.abort_transaction(KAFKA_TIMEOUT);
                    return Err(Exit::Stop(e));
                }
                Err(TxnError::Retry(e)) => {
                    warn!(error = %format!("{e:#}"), "transaction aborted; replaying batch");
                    self.producer
                        .abort_transaction(KAFKA_TIMEOUT)
                        .context("aborting transaction")?;
                    self.rewind(&batch)?;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        info!(processor = %self.spec.name, "processor stopping");
        self.consumer.unsubscribe();
        Ok(())
    }

    /// Registers the transactional id (fencing a predecessor's open transaction). Right after
    /// a broker restart the transaction coordinator may not be ready yet; that is waited out
    /// rather than ending the processor.
    fn init_transactions(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            match self.producer.init_transactions(KAFKA_TIMEOUT) {
                Ok(()) => return Ok(()),
                Err(KafkaError::Transaction(e))
                    if !e.is_fatal() && started.elapsed() < COORDINATOR_PATIENCE =>
                {
                    warn!(error = %e, "transaction coordinator not ready; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => return Err(e).context("initialising transactions"),
            }
        }
    }

    /// Polls up to `batch_max_records`, waiting at most `batch_linger_ms` once one arrived.
    fn collect_batch(&mut self) -> Result<Vec<OwnedMessage>> {
        let linger = Duration::from_millis(self.config.runtime.batch_linger_ms);
        let mut batch: Vec<OwnedMessage> = Vec::new();
        let mut first_at: Option<Instant> = None;
        loop {
            let wait = match first_at {
                None => Duration::from_millis(200),
                Some(t) => linger.saturating_sub(t.elapsed()),
            };
            let polled = self.consumer.poll(wait);
            match polled {
                None => {}
                Some(Ok(m)) => {
                    batch.push(m.detach());
                    first_at.get_or_insert_with(Instant::now);
                }
                Some(Err(e)) => warn!(error = %e, "consumer error"),
            }
            self.apply_rebalances(&mut batch)?;
            let full = batch.len() >= self.config.runtime.batch_max_records;
            let lingered = first_at.is_some_and(|t| t.elapsed() >= linger);
            if polled_nothing(&batch, first_at) || full || lingered {
                return Ok(batch);
            }
        }
    }

    /// Restores state for newly assigned partitions and drops what was revoked.
    fn apply_rebalances(&mut self, batch: &mut Vec<OwnedMessage>) -> Result<()> {
        let log = std::mem::take(&mut *self.rebalances.lock().expect("rebalance log"));
        if !log.revoked.is_empty() {
            let revoked: HashSet<_> = log.revoked.into_iter().collect();
            batch.retain(|m| !revoked.contains(&(m.topic().to_string(), m.partition())));
            self.paused.retain(|tp, _| !revoked.contains(tp));
            self.committed.retain(|tp, _| !revoked.contains(tp));
            let owned = self.assigned_partitions()?;
            for p in self.store.partitions() {
                if !owned.contains(&p) {
                    self.store.drop_partition(p);
                }
            }
        }
        if !log.assigned.is_empty() {
            let new: Vec<i32> = log
                .assigned
                .iter()
                .map(|(_, p)| *p)
                .collect::<HashSet<_>>()
                .into_iter()
                .filter(|p| !self.store.owns(*p))
                .collect();
            self.restore(&new)?;
        }
        Ok(())
    }

    fn assigned_partitions(&self) -> Result<HashSet<i32>> {
        Ok(tpl_entries(&self.consumer.assignment()?)
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    /// Reads the changelog partitions from the start to the end (read_committed).
    fn restore(&mut self, partitions: &[i32]) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let topic = self.config.topic(&changelog_topic(&self.spec.name));
        let reader: BaseConsumer<ReadToEndContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.config.kafka.bootstrap_servers)
            .set("group.id", format!("{topic}.restore"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .create_with_context(ReadToEndContext)
            .context("creating restore consumer")?;
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition_offset(&topic, *p, Offset::Beginning)?;
        }
        reader.assign(&tpl)?;
        let mut keys: HashMap<i32, HashMap<String, KeyState<P::State>>> =
            partitions.iter().map(|p| (*p, HashMap::new())).collect();
        let mut open: HashSet<i32> = partitions.iter().copied().collect();
        let mut records = 0usize;
        while !open.is_empty() {
            if started.elapsed() > Duration::from_secs(120) {
                bail!("restoring {topic} partitions {open:?} timed out");
            }
            match reader.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                        continue;
                    };
                    let map = keys.entry(m.partition()).or_default();
                    match m.payload() {
                        None => {
                            map.remove(key);
                        }
                        Some(bytes) => {
                            let state = decode_changelog(bytes)
                                .with_context(|| format!("corrupt changelog record for {key}"))?;
                            map.insert(key.to_string(), state);
                        }
                    }
                    records += 1;
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    open.remove(&p);
                }
                Some(Err(e)) => warn!(error = %e, "restore consumer error"),
                None => {}
            }
        }
        for (p, map) in keys {
            self.store.install(p, map);
        }
        info!(
            ?partitions,
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state restored"
        );
        Ok(())
    }

    /// Resumes paused retry partitions whose head record is due.
    fn resume_due_partitions(&mut self) -> Result<()> {
        let now = now_ms();
        let due: Vec<_> = self
            .paused
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in due {
            self.paused.remove(&tp);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&tp.0, tp.1);
            self.consumer.resume(&tpl)?;
        }
        Ok(())
    }

    /// One transaction: every record of the batch, the due timers, the changelog, the offsets.
    fn transact(
        &mut self,
        batch: &[OwnedMessage],
        timers: Vec<(i32, String, Timer)>,
    ) -> Result<(), TxnError> {
        self.producer.begin_transaction()?;
        let mut offsets: HashMap<(String, i32), i64> = HashMap::new();
        let mut held: HashSet<(String, i32)> = HashSet::new();
        for msg in batch {
            let tp = (msg.topic().to_string(), msg.partition());
            if held.contains(&tp) {
                continue;
            }
            if let Some(due) = self.not_yet_due(msg) {
                self.hold(msg, due)?;
                held.insert(tp);
                continue;
            }
            self.handle_record(msg)?;
            offsets.insert(tp, msg.offset() + 1);
        }
        for (p, key, timer) in timers {
            self.fire_timer(p, &key, timer)?;
            for (tp, next) in &self.committed {
                if tp.1 == p {
                    offsets.entry(tp.clone()).or_insert(*next);
                }
            }
        }
        let changelog = self.config.topic(&changelog_topic(&self.spec.name));
        for (p, key, json) in self.store.take_dirty() {
            self.send(
                BaseRecord::to(&changelog)
                    .partition(p)
                    .key(&key)
                    .payload(&json),
            )?;
        }
        if !offsets.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for ((topic, p), next) in &offsets {
                tpl.add_partition_offset(topic, *p, Offset::Offset(*next))
                    .map_err(TxnError::from)?;
            }
            let group = self
                .consumer
                .group_metadata()
                .ok_or_else(|| TxnError::Retry(anyhow!("no consumer group metadata yet")))?;
            self.producer
                .send_offsets_to_transaction(&tpl, &group, KAFKA_TIMEOUT)?;
        }
        if let Some(delay) = self.delay_before_commit {
            std::thread::sleep(delay);
        }
        self.producer.commit_transaction(KAFKA_TIMEOUT)?;
        self.committed.extend(offsets);
        Ok(())
    }

    /// For a retry-tier record, its due time if that is still in the future.
    fn not_yet_due(&self, msg: &OwnedMessage) -> Option<i64> {
        if !self.retry_tiers.contains_key(msg.topic()) {
            return None;
        }
        let headers = HeaderList::from_kafka(msg.headers());
        let due: i64 = headers.get(echo::DUE_AT)?.parse().ok()?;
        (due > now_ms()).then_some(due)
    }

    /// Pauses a retry partition at `msg` until `due`, without blocking other partitions.
    fn hold(&mut self, msg: &OwnedMessage, due: i64) -> Result<(), TxnError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(msg.topic(), msg.partition());
        self.consumer.pause(&tpl)?;
        self.consumer.seek(
            msg.topic(),
            msg.partition(),
            Offset::Offset(msg.offset()),
            KAFKA_TIMEOUT,
        )?;
        self.paused
            .insert((msg.topic().to_string(), msg.partition()), due);
        Ok(())
    }

    /// Where a record really comes from, and how often it failed before.
    fn source_of(&self, msg: &OwnedMessage, headers: &HeaderList) -> (SourcePosition, u32) {
        let prefix = &self.config.kafka.topic_prefix;
        if self.retry_tiers.contains_key(msg.topic()) {
            let source = SourcePosition {
                topic: headers
                    .get(echo::ORIGINAL_TOPIC)
                    .unwrap_or_default()
                    .to_string(),
                partition: parse_or(headers.get(echo::ORIGINAL_PARTITION), msg.partition()),
                offset: parse_or(headers.get(echo::ORIGINAL_OFFSET), msg.offset()),
            };
            return (source, parse_or(headers.get(echo::ATTEMPT), 0));
        }
        let topic = msg
            .topic()
            .strip_prefix(prefix.as_str())
            .unwrap_or(msg.topic());
        let source = SourcePosition {
            topic: topic.to_string(),
            partition: msg.partition(),
            offset: msg.offset(),
        };
        (source, 0)
    }

    fn handle_record(&mut self, msg: &OwnedMessage) -> Result<(), TxnError> {
        let headers = HeaderList::from_kafka(msg.headers());
        let (source, attempt) = self.source_of(msg, &headers);
        let decoded = match self.handle.block_on(self.codec.decode(msg.payload())) {
            Ok(d) => d,
            Err(DecodeError::RegistryUnavailable(e)) => {
                return Err(TxnError::Retry(anyhow!("schema registry unavailable: {e}")))
            }
            Err(e) => {
                let failure = Failure {
                    class: ErrorClass::Undecodable,
                    message: e.to_string(),
                };
                return self.reroute(msg, &failure, attempt, &source, &headers);
            }
        };
        let type_name = decoded.info.type_name;
        let carried = self
            .catalogue
            .topic(&source.topic)
            .is_ok_and(|t| t.carries.iter().any(|c| c == type_name));
        if !carried {
            let failure = Failure {
                class: ErrorClass::WrongTopic,
                message: format!("{type_name} does not belong on {}", source.topic),
            };
            return self.reroute(msg, &failure, attempt, &source, &headers);
        }
        let Some(metadata) = metadata_of(&decoded.value) else {
            let failure = Failure {
                class: ErrorClass::Undecodable,
                message: "record has no readable metadata".into(),
            };
            return self.reroute(msg, &failure, attempt, &source, &headers);
        };
        let key = msg
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or(&metadata.correlation_id)
            .to_string();
        let span = info_span!("handle", processor = %self.spec.name, event_type = type_name,
            correlation_id = %metadata.correlation_id, event_id = %metadata.event_id);
        let _entered = span.enter();
        let partition = msg.partition();
        let key_state = self.store.get(partition, &key);
        if key_state.has_seen(&metadata.event_id) {
            debug!("duplicate event skipped");
            return Ok(());
        }
        let incoming = Incoming {
            type_name,
            key: key.clone(),
            metadata: metadata.clone(),
            value: decoded.value,
            source: source.clone(),
            attempt,
        };
        let ctx = Context::new(
            &self.spec.name,
            now_ms(),
            metadata.clone(),
            &metadata.event_id,
        );
        match self.decide(&key_state, Input::Record(&incoming), &ctx) {
            Ok(decision) => self.apply(
                partition,
                &key,
                key_state,
                Fact::Consumed(&incoming),
                decision,
                Some(&metadata.event_id),
            ),
            Err(e) => {
                warn!(error = %e, attempt, "handler failed");
                self.reroute(msg, &e.into(), attempt, &source, &headers)
            }
        }
    }

    fn fire_timer(&mut self, partition: i32, key: &str, timer: Timer) -> Result<(), TxnError> {
        let mut key_state = self.store.get(partition, key);
        if key_state.timers.get(&timer.name) != Some(&timer) {
            return Ok(());
        }
        key_state.timers.remove(&timer.name);
        let seed = format!(
            "{}/timer/{}/{}",
            timer.scheduled_by.event_id, timer.name, timer.due_at_ms
        );
        let ctx = Context::new(&self.spec.name, now_ms(), timer.scheduled_by.clone(), &seed);
        let span = info_span!("timer", processor = %self.spec.name, timer = %timer.name,
            correlation_id = %timer.scheduled_by.correlation_id);
        let _entered = span.enter();
        match self.decide(&key_state, Input::Timer(&timer), &ctx) {
            Ok(decision) => self.apply(
                partition,
                key,
                key_state,
                Fact::TimerFired(&timer),
                decision,
                None,
            ),
            Err(HandlerError::Transient(e)) => {
                let backoff = self.spec.retry_backoff_ms.first().copied().unwrap_or(1000);
                warn!(error = %e, backoff, "timer handler failed; rescheduled");
                let mut again = timer.clone();
                again.due_at_ms = now_ms() + backoff as i64;
                key_state.timers.insert(again.name.clone(), again);
                self.store.put(partition, key, key_state);
                Ok(())
            }
            Err(HandlerError::Permanent(e)) => {
                error!(error = %e, "timer handler failed permanently; timer dropped");
                self.store.put(partition, key, key_state);
                Ok(())
            }
        }
    }

    fn decide(
        &self,
        key_state: &KeyState<P::State>,
        input: Input<'_>,
        ctx: &Context,
    ) -> Result<Decision, HandlerError> {
        let observed =
            self.handle
                .block_on(self.processor.observe(&key_state.state, input, ctx))?;
        self.processor
            .decide(&key_state.state, input, observed, ctx)
    }

    /// Carries out a decision: evolves the state over the fact and every output, updates
    /// timers and dedup memory, and produces the outputs (all inside the open transaction).
    fn apply(
        &mut self,
        partition: i32,
        key: &str,
        mut key_state: KeyState<P::State>,
        fact: Fact<'_>,
        decision: Decision,
        processed_id: Option<&str>,
    ) -> Result<(), TxnError> {
        let mut state = self.processor.evolve(key_state.state, fact);
        for out in &decision.emit {
            state = self.processor.evolve(state, Fact::Emitted(out));
            self.produce(out)?;
        }
        for name in &decision.cancel {
            key_state.timers.remove(name);
        }
        for timer in decision.schedule {
            key_state.timers.insert(timer.name.clone(), timer);
        }
        key_state.state = state;
        if let Some(id) = processed_id {
            key_state.remember(id, self.config.runtime.dedup_window);
        }
        self.store.put(partition, key, key_state);
        Ok(())
    }

    fn produce(&self, out: &Outgoing) -> Result<(), TxnError> {
        let info = events::info(out.type_name)
            .ok_or_else(|| TxnError::Fatal(anyhow!("{} is not in the catalogue", out.type_name)))?;
        let topic_spec = self
            .catalogue
            .topic_of(out.type_name)
            .map_err(TxnError::Fatal)?;
        let topic = self.config.topic(&topic_spec.name);
        let bytes = self
            .handle
            .block_on(self.codec.encode(&topic, info, out.value.clone()))
            .map_err(|e| TxnError::Retry(anyhow!("encoding {} for {topic}: {e}", out.type_name)))?;
        let headers = headers::cloud_event(&out.metadata, out.type_name).to_kafka();
        let mut record = BaseRecord::to(&topic)
            .key(&out.key)
            .payload(&bytes)
            .headers(headers);
        if let Some(p) = out.partition {
            let count = self.catalogue.partitions_of(topic_spec) as u32;
            record = record.partition((p % count) as i32);
        }
        self.send(record)
    }

    /// Sends a failed record, unchanged, to its retry tier or the DLQ.
    fn reroute(
        &self,
        msg: &OwnedMessage,
        failure: &Failure,
        attempt: u32,
        source: &SourcePosition,
        headers: &HeaderList,
    ) -> Result<(), TxnError> {
        let route = reroute(
            &self.spec.name,
            &self.spec.retry_backoff_ms,
            failure,
            attempt,
            source,
            headers,
            now_ms(),
        );
        warn!(to = %route.topic, class = failure.class.as_str(), message = %failure.message,
            "record rerouted");
        let topic = self.config.topic(&route.topic);
        let mut record = BaseRecord::<[u8], [u8]>::to(&topic)
            .partition(msg.partition())
            .headers(route.headers.to_kafka());
        if let Some(k) = msg.key() {
            record = record.key(k);
        }
        if let Some(p) = msg.payload() {
            record = record.payload(p);
        }
        self.send(record)
    }

    fn send<K, V>(&self, mut record: BaseRecord<'_, K, V>) -> Result<(), TxnError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        V: rdkafka::message::ToBytes + ?Sized,
    {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// After an abort: seek every partition of the batch back to its first record and
    /// reload state from the changelog, so the replay starts from committed state.
    fn rewind(&mut self, batch: &[OwnedMessage]) -> Result<()> {
        let mut first: HashMap<(String, i32), i64> = HashMap::new();
        for m in batch {
            first
                .entry((m.topic().to_string(), m.partition()))
                .or_insert(m.offset());
        }
        for ((topic, p), offset) in first {
            self.consumer
                .seek(&topic, p, Offset::Offset(offset), KAFKA_TIMEOUT)
                .with_context(|| format!("rewinding {topic}/{p}"))?;
        }
        let owned = self.store.partitions();
        for p in &owned {
            self.store.drop_partition(*p);
        }
        self.restore(&owned)
    }
}

fn polled_nothing(batch: &[OwnedMessage], first_at: Option<Instant>) -> bool {
    batch.is_empty() && first_at.is_none()
}

fn parse_or<T: std::str::FromStr>(v: Option<&str>, default: T) -> T {
    v.and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Producer settings shared by processors and tools.
pub fn producer_config(config: &EchoConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set("enable.idempotence", "true")
        // The Java client's partitioner, so keys land on the same partition whichever
        // client wrote them (co-partitioning depends on it).
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5");
    c
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
