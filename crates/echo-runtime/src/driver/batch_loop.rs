//! The batch loop: collect records, run them (and the due work of their keys) in one
//! transaction, and react to how it ended. A transaction that fails for broker or network
//! reasons is replayed after a backoff; one that fails for a reason that may lie in what it
//! carried is replayed a unit at a time, and a unit that keeps failing alone is quarantined
//! ([`crate::replay_guard`]), so nothing can hold a partition forever.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::Producer;
use rdkafka::Offset;
use tracing::{info, warn};

use super::transaction::{Done, TxnError, KAFKA_TIMEOUT};
use super::{now_ms, Driver, Exit};
use crate::handler::Processor;
use crate::replay_guard::Unit;
use crate::state::DueWork;

/// How long a starting processor waits for the transaction coordinator (a broker that has
/// just restarted loads its transaction state first).
const COORDINATOR_PATIENCE: Duration = Duration::from_secs(120);

/// Due work of a key: `(partition, key, work)`.
pub(super) type Due = (i32, String, DueWork);

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
        self.consumer.subscribe(&source_refs)?;
        info!(processor = %self.spec.name, ?sources, "processor started");
        let mut backoff = Duration::from_millis(200);
        while !self.shutdown.is_requested() {
            self.resume_due_partitions()?;
            let alone = self.guard.isolating();
            let batch = self.collect_batch(if alone {
                1
            } else {
                self.config.runtime.batch_max_records
            })?;
            let mut due = if alone && !batch.is_empty() {
                Vec::new()
            } else {
                self.store.due(now_ms())
            };
            if alone {
                due.truncate(1);
            }
            if batch.is_empty() && due.is_empty() {
                continue;
            }
            let units = units_of(&batch, &due);
            let poison = match self.guard.poison() {
                Some((unit, count, reason)) if units.len() == 1 && &units[0] == unit => {
                    Some((count, reason.to_string()))
                }
                _ => None,
            };
            let outcome = match poison {
                Some((count, reason)) => self.quarantine(&batch, &due, count, &reason),
                None => self.transact(&batch, &due),
            };
            match outcome {
                Ok(done) => {
                    self.store.commit();
                    self.guard.committed(done.units);
                    // A batch closed early by its time budget: the rest is read again.
                    self.seek_back(&batch[done.records..])?;
                    backoff = Duration::from_millis(200);
                }
                Err(TxnError::Fatal(e)) => {
                    let _ = self.producer.abort_transaction(KAFKA_TIMEOUT);
                    return Err(Exit::Stop(e));
                }
                Err(failed) => {
                    let suspect = matches!(failed, TxnError::Suspect(_));
                    let e = failed.into_inner();
                    warn!(error = %format!("{e:#}"), suspect, units = units.len(),
                        "transaction aborted; replaying");
                    self.producer
                        .abort_transaction(KAFKA_TIMEOUT)
                        .context("aborting transaction")?;
                    self.store.rollback();
                    self.seek_back(&batch)?;
                    if suspect {
                        self.guard.failed(&units, &format!("{e:#}"));
                    }
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

    /// Polls up to `max` records, waiting at most `batch_linger_ms` once one arrived.
    fn collect_batch(&mut self, max: usize) -> anyhow::Result<Vec<OwnedMessage>> {
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
            let full = batch.len() >= max;
            let lingered = first_at.is_some_and(|t| t.elapsed() >= linger);
            if (batch.is_empty() && first_at.is_none()) || full || lingered {
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

impl Done {
    /// A transaction that handled `records` records of its batch and `units` units in all.
    pub(super) fn new(records: usize, units: usize) -> Done {
        Done { records, units }
    }
}
