//! One transaction: the records of a batch (until its time budget is spent), the due work of
//! its keys, the changelog of every key that changed, and the consumer offsets of every
//! partition whose state it writes, committed together.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use echo_catalog::topics::changelog_topic;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode as Code;
use rdkafka::{Offset, TopicPartitionList};
use tracing::info;

use super::pipeline::RecordIn;
use super::txn_error::{TxnError, KAFKA_TIMEOUT};
use super::{Driver, Due};
use crate::handler::Processor;

/// What the open transaction has handled so far, committed with it.
#[derive(Debug, Default)]
pub(super) struct OpenTxn {
    /// Next offset to commit per input partition read.
    pub offsets: HashMap<(String, i32), i64>,
    /// Partitions whose state it writes.
    pub touched: HashSet<i32>,
    /// Announced work it ends (handled, or sent on to a DLQ): forgotten as begun in this
    /// life once it commits, not before, since an abort replays it in this life.
    pub ended: Vec<String>,
}

/// How far a committed transaction got.
pub(super) struct Done {
    /// Records of the batch it covered, from the start (the rest is read again).
    pub records: usize,
    /// Due work it ran, from the start of the due list.
    pub due_run: usize,
    /// Retry partitions it paused at a record not yet due (already positioned there).
    pub held: HashSet<(String, i32)>,
}

impl<P: Processor> Driver<P> {
    /// Runs the batch and then the due work in one transaction, closing it early once the
    /// time budget is spent.
    pub(super) fn transact(
        &mut self,
        batch: &[OwnedMessage],
        due: &[Due],
    ) -> Result<Done, TxnError> {
        self.begin()?;
        self.settled = 0;
        let mut held: HashSet<(String, i32)> = HashSet::new();
        let mut records = 0;
        for msg in batch {
            if records > 0 && self.budget_spent() {
                info!(
                    records,
                    of = batch.len(),
                    "time budget spent; batch closed early"
                );
                break;
            }
            records += 1;
            let tp = (msg.topic().to_string(), msg.partition());
            if held.contains(&tp) {
                continue;
            }
            if let Some(at) = self.not_yet_due(msg) {
                self.hold(msg, at)?;
                held.insert(tp);
                continue;
            }
            let announced_before = self.announcements;
            self.handle_record(&RecordIn::of(msg))?;
            self.open.offsets.insert(tp, msg.offset() + 1);
            self.open.touched.insert(msg.partition());
            if self.announcements != announced_before {
                // The records before it were committed with its announcement, and the work
                // itself may take up to the announced work's budget: the batch ends here, so
                // the loop polls again, and an abort reads only this record again.
                self.settled = records - 1;
                break;
            }
        }
        let mut due_run = 0;
        if records == batch.len() {
            for (p, key, work) in due {
                if (records > 0 || due_run > 0) && self.budget_spent() {
                    break;
                }
                self.run_due(*p, key, work)?;
                self.open.touched.insert(*p);
                due_run += 1;
            }
        }
        let open = std::mem::take(&mut self.open);
        self.finish(open)?;
        Ok(Done {
            records,
            due_run,
            held,
        })
    }

    /// Opens a transaction with a fresh time budget and nothing in it yet.
    pub(super) fn begin(&mut self) -> Result<(), TxnError> {
        self.budget_ends = Some(Instant::now() + self.config.kafka.batch_budget());
        self.open = OpenTxn::default();
        self.producer.begin_transaction()?;
        Ok(())
    }

    /// Whether the open transaction's time budget is spent (a drain stops there).
    pub(super) fn budget_spent(&self) -> bool {
        self.budget_ends.is_some_and(|at| Instant::now() >= at)
    }

    /// Writes the changelog of every changed key, the offsets, and commits what `open` holds.
    pub(super) fn finish(&mut self, open: OpenTxn) -> Result<(), TxnError> {
        let OpenTxn {
            mut offsets,
            touched,
            ended,
        } = open;
        let changelog = self.config.topic(&changelog_topic(&self.spec.name));
        for (p, key, json) in self.store.take_dirty() {
            let record = BaseRecord::<str, [u8]>::to(&changelog)
                .partition(p)
                .key(&key);
            self.send(match &json {
                Some(json) => record.payload(json),
                None => record,
            })?;
        }
        // Every partition whose state this transaction writes carries its offsets, even if
        // none of its records was read: a member expelled from the group fails here instead
        // of committing state its successor owns (group metadata fencing, KIP-447).
        for (tp, next) in &self.committed {
            if touched.contains(&tp.1) {
                offsets.entry(tp.clone()).or_insert(*next);
            }
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
                .ok_or_else(|| TxnError::Infra(anyhow!("no consumer group metadata yet")))?;
            self.producer
                .send_offsets_to_transaction(&tpl, &group, KAFKA_TIMEOUT)?;
        }
        if let Some(delay) = self.delay_before_commit {
            std::thread::sleep(delay);
        }
        self.wait_delivered();
        self.producer.commit_transaction(KAFKA_TIMEOUT)?;
        self.committed.extend(offsets);
        let mut begun = self.begun.lock().expect("begun");
        for event_id in ended {
            begun.remove(&event_id);
        }
        Ok(())
    }

    /// Waits (at most [`KAFKA_TIMEOUT`]) until the broker has acknowledged every record of the
    /// open transaction and the producer's thread has handled their reports. The client's
    /// commit flushes first, but it waits by polling in steps of 100 ms that always run to
    /// their end (rust-rdkafka 0.39), so every transaction that produced a record took at
    /// least 100 ms; acknowledgements on a local broker take 1-5 ms.
    fn wait_delivered(&self) {
        let until = Instant::now() + KAFKA_TIMEOUT;
        while self.producer.in_flight_count() > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Produces one record into the open transaction, waiting while the queue is full.
    pub(super) fn send<K, V>(&self, mut record: BaseRecord<'_, K, V>) -> Result<(), TxnError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        V: rdkafka::message::ToBytes + ?Sized,
    {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(Code::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
}
