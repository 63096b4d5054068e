//! A dependency that does not answer is waited out: the processor stops taking records,
//! stays in its group, reports not ready and probes the dependency with a growing backoff
//! until it answers; then it replays what the aborted transaction carried. No input is
//! failed for it, however long it lasts.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::TopicPartitionList;
use tracing::{debug, info, warn};

use super::{Driver, Exit};
use crate::dependency::Unavailable;
use crate::handler::Processor;
use crate::health::health;
use crate::metrics::{metrics, DependencyLabels};

/// The longest pause between two probes of a dependency that does not answer.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(15);

impl<P: Processor> Driver<P> {
    /// Pauses every partition until `down` answers its probe again (or the processor is
    /// asked to stop), keeping the group membership meanwhile. Logs once when the wait begins
    /// and once when it ends; `echo_dependency_unavailable` and `/readyz` show it meanwhile.
    pub(super) fn wait_out(&mut self, down: Unavailable) -> Result<(), Exit> {
        let dependency = down.dependency;
        warn!(processor = %self.spec.name, dependency, error = %down.error,
            "dependency unavailable: waiting until it answers (no input is failed for it)");
        let labels = DependencyLabels {
            processor: self.spec.name.clone(),
            dependency: dependency.to_string(),
        };
        metrics()
            .dependency_unavailable
            .get_or_create(&labels)
            .set(1);
        health().wait_for(&self.health_name, Some(dependency));
        let started = Instant::now();
        let waited = self.wait_until_answered(dependency);
        // Whatever ended the wait (an answer, a stop, the clients failing), it is over.
        health().wait_for(&self.health_name, None);
        metrics()
            .dependency_unavailable
            .get_or_create(&labels)
            .set(0);
        if waited? {
            info!(processor = %self.spec.name, dependency,
                waited_s = started.elapsed().as_secs(), "dependency answers again: resuming");
        }
        Ok(())
    }

    /// Pauses every partition and probes `dependency` until it answers (true) or the
    /// processor is asked to stop (false); then resumes what it paused.
    fn wait_until_answered(&mut self, dependency: &'static str) -> Result<bool, Exit> {
        self.consumer.pause(&self.consumer.assignment()?)?;
        let mut interval = Duration::from_secs(1);
        let mut answered = false;
        while !self.shutdown.is_requested() {
            self.stay_in_group(interval)?;
            match self.probe(Some(dependency)) {
                Ok(()) => {
                    answered = true;
                    break;
                }
                Err(still) => debug!(dependency, error = %still.error, "still unavailable"),
            }
            interval = (interval * 2).min(MAX_PROBE_INTERVAL);
        }
        self.resume_unheld()?;
        Ok(answered)
    }

    /// Polls for `period` without taking records, so the group keeps this member and its
    /// rebalances are applied. A partition assigned meanwhile is resumed by the rebalance;
    /// what it delivers is put back and the partition paused.
    fn stay_in_group(&mut self, period: Duration) -> Result<(), Exit> {
        let until = Instant::now() + period;
        while Instant::now() < until && !self.shutdown.is_requested() {
            let mut delivered: Vec<OwnedMessage> = Vec::new();
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(200)) {
                delivered.push(m.detach());
            }
            self.apply_rebalances(&mut delivered)?;
            if !delivered.is_empty() {
                self.seek_back(&delivered)?;
                let mut tpl = TopicPartitionList::new();
                for m in &delivered {
                    tpl.add_partition(m.topic(), m.partition());
                }
                self.consumer.pause(&tpl)?;
            }
        }
        Ok(())
    }

    /// Resumes every assigned partition but the retry partitions held until their head
    /// record is due.
    fn resume_unheld(&mut self) -> Result<(), Exit> {
        let mut tpl = TopicPartitionList::new();
        for e in self.consumer.assignment()?.elements() {
            if !self
                .paused
                .contains_key(&(e.topic().to_string(), e.partition()))
            {
                tpl.add_partition(e.topic(), e.partition());
            }
        }
        self.consumer.resume(&tpl)?;
        Ok(())
    }
}
