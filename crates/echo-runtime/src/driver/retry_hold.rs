//! Retry tiers without sleeping: a retry-tier partition whose head record is not yet due is
//! paused at that record and resumed when it comes due; other partitions flow meanwhile.

use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

use super::txn_error::{TxnError, KAFKA_TIMEOUT};
use super::{now_ms, Driver};
use crate::handler::Processor;
use crate::headers::{echo, HeaderList};

impl<P: Processor> Driver<P> {
    /// For a retry-tier record, its due time if that is still in the future.
    pub(super) fn not_yet_due(&self, msg: &OwnedMessage) -> Option<i64> {
        if !self.retry_tiers.contains_key(msg.topic()) {
            return None;
        }
        let headers = HeaderList::from_kafka(msg.headers());
        let due: i64 = headers.get(echo::DUE_AT)?.parse().ok()?;
        (due > now_ms()).then_some(due)
    }

    /// Pauses a retry partition at `msg` until `due`, without blocking other partitions.
    pub(super) fn hold(&mut self, msg: &OwnedMessage, due: i64) -> Result<(), TxnError> {
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

    /// Resumes paused retry partitions whose head record is due.
    pub(super) fn resume_due_partitions(&mut self) -> anyhow::Result<()> {
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

    /// Resumes newly assigned partitions. A partition this member paused, revoked and then
    /// assigned back keeps its pause flag in the client, while the loop forgot it on revoke:
    /// without this its records would never be read again. A record that is still not due
    /// is simply held again when it is read.
    pub(super) fn resume_assigned(&mut self, assigned: &[(String, i32)]) -> anyhow::Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in assigned {
            self.paused.remove(&(topic.clone(), *p));
            tpl.add_partition(topic, *p);
        }
        if tpl.count() > 0 {
            self.consumer.resume(&tpl)?;
        }
        Ok(())
    }
}
