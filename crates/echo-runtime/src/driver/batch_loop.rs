//! The batch loop: collect records, run them (and the due work of their keys) in one
//! transaction, and react to how it ended. A transaction that fails for broker or network
//! reasons is replayed after a backoff; one that fails for a reason that may lie in what it
//! carried is replayed a unit at a time, and a unit that keeps failing alone is quarantined
//! ([`crate::replay_guard`]), so nothing can hold a partition forever. One that failed
//! because a dependency does not answer is waited out ([`super::wait_out`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::Producer;
use rdkafka::Offset;
use tracing::{debug, info, warn};

use super::txn_error::{TxnError, KAFKA_TIMEOUT};
use super::{now_ms, Driver, Due, Exit};
use crate::handler::Processor;
use crate::metrics::{metrics, processor};
use crate::replay_guard::Unit;

/// How long a starting processor waits for the transaction coordinator (a broker that has
/// just restarted loads its transaction state first).
const COORDINATOR_PATIENCE: Duration = Duration::from_secs(120);

impl<P: Processor> Driver<P> {
    pub(super) fn run(&mut self) -> Result<(), Exit> {
        self.init_transactions()?;
        let mut sources: Vec<String> = self
            .spec
            .consumes
            .iter()
            .map(|t| self.config.topic(t))
            .collect();
        sources.extend(self.retry_tiers.keys().cloned());
        let source_refs: Vec<&str> = sources.iter().map(String::as_str).collect();
        self.wait_for_topics(&source_refs)?;
        self.consumer.subscribe(&source_refs)?;
        info!(processor = %self.spec.name, ?sources, "processor started");
        let mut backoff = Duration::from_millis(200);
        while !self.shutdown.is_requested() {
            self.resume_due_partitions()?;
            let (batch, due) = self.next_work()?;
            if batch.is_empty() && due.is_empty() {
                continue;
            }
            let units = units_of(&batch, &due);
            let poison = match units.as_slice() {
                [unit] => self.guard.poison(unit).map(|(n, why)| (n, why.to_string())),
                _ => None,
            };
            self.refusals.take();
            let started = Instant::now();
            let outcome = match poison {
                Some((count, reason)) => self.quarantine(&batch, &due, count, &reason),
                None => self.transact(&batch, &due),
            };
            match outcome {
                Ok(done) => {
                    let m = metrics();
                    m.transaction(&self.spec.name, "committed");
                    m.transaction_seconds
                        .get_or_create(&processor(&self.spec.name))
                        .observe(started.elapsed().as_secs_f64());
                    debug!(
                        records = done.records,
                        due = done.due_run,
                        ms = started.elapsed().as_millis() as u64,
                        "transaction committed"
                    );
                    self.store.commit();
                    let labels = processor(&self.spec.name);
                    metrics()
                        .timers_pending
                        .get_or_create(&labels)
                        .set(self.store.pending_timers() as i64);
                    metrics()
                        .backlog
                        .get_or_create(&labels)
                        .set(self.store.backlog() as i64);
                    self.guard
                        .committed(&units_of(&batch[..done.records], &due[..done.due_run]));
                    // A batch closed early by its time budget: the rest is read again
                    // (a held partition is already positioned at its held record).
                    let rest: Vec<OwnedMessage> = batch[done.records..]
                        .iter()
                        .filter(|m| !done.held.contains(&(m.topic().to_string(), m.partition())))
                        .cloned()
                        .collect();
                    self.seek_back(&rest)?;
                    backoff = Duration::from_millis(200);
                }
                Err(TxnError::Fatal(e)) => {
                    metrics().transaction(&self.spec.name, "aborted");
                    let _ = self.producer.abort_transaction(KAFKA_TIMEOUT);
                    return Err(Exit::Stop(e));
                }
                Err(failed) => {
                    metrics().transaction(&self.spec.name, "aborted");
                    self.producer
                        .abort_transaction(KAFKA_TIMEOUT)
                        .context("aborting transaction")?;
                    self.store.rollback();
                    // What an announcement committed is not read again.
                    let settled = std::mem::take(&mut self.settled).min(batch.len());
                    self.seek_back(&batch[settled..])?;
                    if let TxnError::Unavailable(down) = failed {
                        self.wait_out(down)?;
                        backoff = Duration::from_millis(200);
                        continue;
                    }
                    let suspect = matches!(failed, TxnError::Suspect(_));
                    let e = failed.into_inner();
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    // After a refused delivery every call reports only an erroneous state;
                    // the refusal itself (reported by now) says whether a record is at fault.
                    let refused = self.refusals.take();
                    let reason = refused.clone().unwrap_or_else(|| format!("{e:#}"));
                    let suspect = suspect || refused.is_some();
                    warn!(error = %reason, suspect, units = units.len(), "transaction aborted; replaying");
                    if suspect {
                        self.guard.failed(&units, &reason);
                    }
                }
            }
        }
        info!(processor = %self.spec.name, "processor stopping");
        self.consumer.unsubscribe();
        Ok(())
    }

    /// Waits until the broker knows every topic in `topics`. A consumer subscribed to a topic
    /// the broker does not know yet (just created, its metadata still on the way) is assigned
    /// nothing and looks again only at its next metadata refresh, minutes later; so the
    /// processor subscribes once its topics are there (and starts over if they never come).
    fn wait_for_topics(&self, topics: &[&str]) -> anyhow::Result<()> {
        let started = Instant::now();
        for topic in topics {
            loop {
                let known = self
                    .consumer
                    .fetch_metadata(Some(topic), KAFKA_TIMEOUT)
                    .ok()
                    .and_then(|m| {
                        m.topics()
                            .first()
                            .map(|t| t.error().is_none() && !t.partitions().is_empty())
                    })
                    .unwrap_or(false);
                if known {
                    break;
                }
                if started.elapsed() > COORDINATOR_PATIENCE {
                    anyhow::bail!(
                        "topic {topic} does not exist (create the topics with `echoctl topics apply`)"
                    );
                }
                warn!(topic, "topic not known to the broker yet; waiting");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        Ok(())
    }

    /// Registers the transactional id (fencing a predecessor's open transaction). Right after
    /// a broker restart the transaction coordinator may not be ready yet; that is waited out
    /// rather than ending the processor.
    fn init_transactions(&self) -> anyhow::Result<()> {
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

    /// What the next transaction carries: a batch and the due work of the owned keys, or,
    /// while the replay guard isolates, one unit of either (due work first, since records
    /// keep coming and would starve it).
    fn next_work(&mut self) -> anyhow::Result<(Vec<OwnedMessage>, Vec<Due>)> {
        if !self.guard.isolating() {
            let batch = self.collect_batch(self.config.runtime.batch_max_records)?;
            return Ok((batch, self.store.due(now_ms())));
        }
        let mut due = self.store.due(now_ms());
        if !due.is_empty() {
            due.truncate(1);
            return Ok((Vec::new(), due));
        }
        Ok((self.collect_batch(1)?, Vec::new()))
    }

    /// Polls up to `max` records: waits for the first, then takes what has already arrived
    /// and, for at most `batch_linger_ms` after the first, what arrives meanwhile. A lone
    /// record is handled at once (each hop of the flow would otherwise wait out the linger),
    /// while under load the batch fills from what the consumer has already fetched.
    fn collect_batch(&mut self, max: usize) -> anyhow::Result<Vec<OwnedMessage>> {
        let linger = Duration::from_millis(self.config.runtime.batch_linger_ms);
        let mut batch: Vec<OwnedMessage> = Vec::new();
        let mut first_at: Option<Instant> = None;
        loop {
            let wait = match first_at {
                None => Duration::from_millis(200),
                Some(t) => linger.saturating_sub(t.elapsed()),
            };
            let arrived = match self.consumer.poll(wait) {
                None => false,
                Some(Ok(m)) => {
                    batch.push(m.detach());
                    first_at.get_or_insert_with(Instant::now);
                    true
                }
                Some(Err(e)) => {
                    warn!(error = %e, "consumer error");
                    false
                }
            };
            self.apply_rebalances(&mut batch)?;
            let full = batch.len() >= max;
            let lingered = first_at.is_some_and(|t| t.elapsed() >= linger);
            if (batch.is_empty() && first_at.is_none()) || full || (lingered && !arrived) {
                return Ok(batch);
            }
        }
    }

    /// Seeks every partition of `records` back to its first record in it, so they are read
    /// again (after an abort, or when a batch was closed before its end).
    pub(super) fn seek_back(&mut self, records: &[OwnedMessage]) -> anyhow::Result<()> {
        let mut first: HashMap<(String, i32), i64> = HashMap::new();
        for m in records {
            first
                .entry((m.topic().to_string(), m.partition()))
                .or_insert(m.offset());
        }
        for ((topic, p), offset) in first {
            self.consumer
                .seek(&topic, p, Offset::Offset(offset), KAFKA_TIMEOUT)
                .with_context(|| format!("rewinding {topic}/{p}"))?;
        }
        Ok(())
    }
}

/// The units of work of a transaction, as the replay guard knows them.
fn units_of(batch: &[OwnedMessage], due: &[Due]) -> Vec<Unit> {
    let records = batch.iter().map(|m| Unit::Record {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
    });
    let due = due.iter().map(|(p, key, work)| Unit::Due {
        partition: *p,
        key: key.clone(),
        work: work.name().to_string(),
    });
    records.chain(due).collect()
}
