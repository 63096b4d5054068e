//! Partition ownership: on assignment, the state of the new partitions is restored from the
//! changelog and their committed offsets are loaded (every transaction that writes their
//! state carries them); on revocation, what was revoked is dropped.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use echo_catalog::topics::changelog_topic;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use super::clients::{bounded_prefetch, tpl_entries, ReadToEndContext};
use super::txn_error::KAFKA_TIMEOUT;
use super::Driver;
use crate::config::EchoConfig;
use crate::handler::{Processor, StateOf};
use crate::health::{health, Status};
use crate::metrics::{metrics, processor};
use crate::state::{decode_changelog, KeyState};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A restore that reads nothing for this long has stalled (the broker is gone); one that
/// makes progress may take as long as the changelog needs.
const RESTORE_STALL: Duration = Duration::from_secs(60);

impl<P: Processor> Driver<P> {
    /// Restores state for newly assigned partitions and drops what was revoked.
    pub(super) fn apply_rebalances(&mut self, batch: &mut Vec<OwnedMessage>) -> Result<()> {
        let log = std::mem::take(&mut *self.rebalances.lock().expect("rebalance log"));
        let revoked_any = !log.revoked.is_empty();
        if revoked_any {
            let revoked: HashSet<_> = log.revoked.into_iter().collect();
            batch.retain(|m| !revoked.contains(&(m.topic().to_string(), m.partition())));
            self.paused.retain(|tp, _| !revoked.contains(tp));
            self.committed.retain(|tp, _| !revoked.contains(tp));
            self.guard.forget();
            let owned = self.assigned_partitions()?;
            for p in self.store.partitions() {
                if !owned.contains(&p) {
                    self.store.drop_partition(p);
                }
            }
        }
        if !log.assigned.is_empty() {
            self.resume_assigned(&log.assigned)?;
            self.load_committed(&log.assigned)?;
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
        // Ready once an assignment (even an empty one) is restored; not while a rebalance
        // has taken partitions and given none yet.
        let ready = match (log.assignments, revoked_any) {
            (0, false) => return Ok(()),
            (0, true) => false,
            _ => true,
        };
        health().set(&self.health_name, Status { alive: true, ready });
        Ok(())
    }

    fn assigned_partitions(&self) -> Result<HashSet<i32>> {
        Ok(tpl_entries(&self.consumer.assignment()?)
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    /// Where each newly assigned partition stands: its committed offset, or its start when
    /// the group never committed one.
    fn load_committed(&mut self, assigned: &[(String, i32)]) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in assigned {
            tpl.add_partition(topic, *p);
        }
        let committed = self
            .consumer
            .committed_offsets(tpl, KAFKA_TIMEOUT)
            .context("reading committed offsets")?;
        for e in committed.elements() {
            let next = match e.offset() {
                Offset::Offset(n) => n,
                _ => {
                    self.consumer
                        .fetch_watermarks(e.topic(), e.partition(), KAFKA_TIMEOUT)
                        .with_context(|| format!("watermarks of {}/{}", e.topic(), e.partition()))?
                        .0
                }
            };
            self.committed
                .insert((e.topic().to_string(), e.partition()), next);
        }
        Ok(())
    }

    /// Restores `partitions` from the changelog (read_committed, to its end).
    pub(super) fn restore(&mut self, partitions: &[i32]) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let topic = self.config.topic(&changelog_topic(&self.spec.name));
        let restored = read_changelog::<StateOf<P>>(&self.config, &topic, partitions)?;
        metrics()
            .restore_seconds
            .get_or_create(&processor(&self.spec.name))
            .observe(started.elapsed().as_secs_f64());
        let keys: usize = restored.keys.values().map(HashMap::len).sum();
        for (p, map) in restored.keys {
            self.store.install(p, map);
        }
        info!(
            ?partitions,
            records = restored.records,
            keys,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state restored"
        );
        Ok(())
    }
}

/// What a changelog holds for some partitions.
pub struct Restored<S> {
    /// The live keys of each partition (tombstoned ones are gone).
    pub keys: HashMap<i32, HashMap<String, KeyState<S>>>,
    /// Changelog records read.
    pub records: usize,
}

/// Reads changelog `topic`'s `partitions` from the start to their end (read_committed): the
/// state of every key not tombstoned. Only each key's last record is decoded, once the end is
/// reached: until compaction runs, a changelog holds every state a key went through (a job's
/// transcript is rewritten with each chunk, inflated and parsed at megabytes a record), and
/// decoding each of them made a restart take seconds per hundred records. Fails when the
/// read stalls, not after a fixed time, so a large state restores however long it takes.
pub fn read_changelog<S: Serialize + DeserializeOwned>(
    config: &EchoConfig,
    topic: &str,
    partitions: &[i32],
) -> Result<Restored<S>> {
    let reader: BaseConsumer<ReadToEndContext> =
        bounded_prefetch(&mut config.kafka.client_config())
            .set("group.id", format!("{topic}.restore"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .create_with_context(ReadToEndContext)
            .context("creating restore consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    reader.assign(&tpl)?;
    // Each key's last record so far, still encoded; a tombstone removes the key.
    let mut latest: HashMap<i32, HashMap<String, Vec<u8>>> =
        partitions.iter().map(|p| (*p, HashMap::new())).collect();
    let mut open: HashSet<i32> = partitions.iter().copied().collect();
    let mut records = 0usize;
    let mut progress_at = Instant::now();
    while !open.is_empty() {
        if progress_at.elapsed() > RESTORE_STALL {
            bail!(
                "restoring {topic} partitions {open:?} stalled: nothing read for {RESTORE_STALL:?}"
            );
        }
        match reader.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                progress_at = Instant::now();
                records += 1;
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                let map = latest.entry(m.partition()).or_default();
                match m.payload() {
                    None => {
                        map.remove(key);
                    }
                    Some(bytes) => {
                        map.insert(key.to_string(), bytes.to_vec());
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                progress_at = Instant::now();
                open.remove(&p);
            }
            Some(Err(e)) => warn!(error = %e, "restore consumer error"),
            None => {}
        }
    }
    let mut keys: HashMap<i32, HashMap<String, KeyState<S>>> = HashMap::new();
    for (p, map) in latest {
        let mut states = HashMap::with_capacity(map.len());
        for (key, bytes) in map {
            let state = decode_changelog(&bytes)
                .with_context(|| format!("corrupt changelog record for {key}"))?;
            states.insert(key, state);
        }
        keys.insert(p, states);
    }
    Ok(Restored { keys, records })
}
