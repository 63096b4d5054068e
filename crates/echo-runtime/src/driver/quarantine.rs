//! Quarantine: the one unit of work that kept failing alone on replay is taken out of the
//! way in a transaction of its own: a record goes to the DLQ (class `poison`, with the last
//! error), a timer or a held record of a key is dropped with a dead letter, and the offsets
//! move past it, so the partition flows on.

use std::collections::HashSet;

use rdkafka::message::{Message, OwnedMessage};
use tracing::error;

use super::pipeline::RecordIn;
use super::transaction::Done;
use super::txn_error::TxnError;
use super::Driver;
use super::Due;
use crate::handler::Processor;
use crate::retry::{ErrorClass, Failure};
use crate::state::DueWork;

impl<P: Processor> Driver<P> {
    /// Quarantines the single unit of `batch` and `due` (the loop only calls this for one).
    pub(super) fn quarantine(
        &mut self,
        batch: &[OwnedMessage],
        due: &[Due],
        failures: u32,
        reason: &str,
    ) -> Result<Done, TxnError> {
        let message = format!("failed {failures} times on replay, alone: {reason}");
        self.begin()?;
        if let Some(msg) = batch.first() {
            error!(topic = msg.topic(), partition = msg.partition(), offset = msg.offset(),
                %message, "record quarantined to the DLQ");
            let rec = RecordIn::of(msg);
            let (source, attempt) = self.source_of(&rec);
            let failure = Failure::new(ErrorClass::Poison, &message);
            self.reroute(&rec, &failure, attempt, &source)?;
            self.unpark_record(msg);
            self.open
                .offsets
                .insert((msg.topic().to_string(), msg.partition()), msg.offset() + 1);
            self.open.touched.insert(msg.partition());
        } else if let Some((p, key, work)) = due.first() {
            error!(partition = p, key, work = work.name(), %message, "due work quarantined");
            let mut key_state = self.store.get(*p, key);
            match work {
                DueWork::Timer(name) => {
                    if let Some(timer) = key_state.timers.remove(name) {
                        let value = serde_json::to_vec(&timer).expect("timers serialize");
                        self.dead_letter_due(*p, key, name, &message, &value)?;
                    }
                }
                DueWork::Drain => {
                    if let Some(held) = key_state.waiting.pop_front() {
                        let rec = RecordIn::held(&held);
                        let failure = Failure::new(ErrorClass::Poison, &message);
                        self.reroute(&rec, &failure, 0, &held.source)?;
                    }
                }
                DueWork::Retire => key_state.retire_at_ms = None,
            }
            self.store.put(*p, key, key_state);
            self.open.touched.insert(*p);
        }
        let open = std::mem::take(&mut self.open);
        self.finish(open)?;
        Ok(Done {
            records: batch.len(),
            due_run: due.len(),
            held: HashSet::new(),
        })
    }

    /// A quarantined retry-tier record was its key's parked record: the key's held records
    /// may follow now. Only a record whose key passed the pipeline's key check is ever
    /// parked, so its Kafka key is the key.
    fn unpark_record(&mut self, msg: &OwnedMessage) {
        if !self.retry_tiers.contains_key(msg.topic()) {
            return;
        }
        if let Some(key) = msg.key().and_then(|k| std::str::from_utf8(k).ok()) {
            self.unpark(msg.partition(), key, None);
        }
    }
}
