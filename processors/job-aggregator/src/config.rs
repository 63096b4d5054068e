//! Settings of the job aggregator, loaded from the `job_aggregator` section of echo's
//! configuration.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// How a job's chunks are dispatched, how long one may take before it is presumed lost, and
/// how often it is re-issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobAggregatorConfig {
    /// How long one attempt of a chunk may take, in ms, from the moment a worker announced it
    /// started it (`chunk.processing.started`), or from its dispatch while no worker has;
    /// past it the worker is presumed lost and the chunk re-issued. Default 2 minutes: a 30 s
    /// window costs a worker 2–6 s, so this leaves room for a busy cluster.
    pub chunk_deadline_ms: i64,
    /// Extra time before a dispatched chunk is presumed lost for the chunk of its run ahead of
    /// it (dispatched when that one started, it waits for it to end), in ms. Default 10 s, a
    /// slow worker's time for one chunk.
    pub queue_allowance_ms: i64,
    /// Most attempts of one chunk, counting the first; when the last one times out the chunk
    /// fails. Default 3.
    pub max_attempts: i32,
    /// How many runs of a job's chunks (the consecutive chunks one partition gets,
    /// `echo_catalog::keys::run_length`) are in progress at once, each with one chunk waiting
    /// in the chunk-commands topic (the next is dispatched when a worker starts it). Workers
    /// take commands first in, first out, so this bounds how long a job that arrives later
    /// waits behind an earlier one (a chunk per run in progress), while every worker busy with
    /// the job has its next chunk at hand. Set it to the number of chunk workers a single job
    /// should keep busy. Default 2, the local stack's two workers.
    pub runs_in_flight: usize,
}

impl Default for JobAggregatorConfig {
    fn default() -> Self {
        JobAggregatorConfig {
            chunk_deadline_ms: 120_000,
            queue_allowance_ms: 10_000,
            max_attempts: 3,
            runs_in_flight: 2,
        }
    }
}

impl JobAggregatorConfig {
    /// Fails on settings that would time out every chunk at once or never try one, so a bad
    /// config stops the processor at startup.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.chunk_deadline_ms > 0,
            "job_aggregator.chunk_deadline_ms must be positive, got {}",
            self.chunk_deadline_ms
        );
        ensure!(
            self.queue_allowance_ms >= 0,
            "job_aggregator.queue_allowance_ms must not be negative, got {}",
            self.queue_allowance_ms
        );
        ensure!(
            self.max_attempts >= 1,
            "job_aggregator.max_attempts must be at least 1, got {}",
            self.max_attempts
        );
        ensure!(
            self.runs_in_flight >= 1,
            "job_aggregator.runs_in_flight must be at least 1, got {}",
            self.runs_in_flight
        );
        Ok(())
    }

    /// When a chunk dispatched at `now_ms` with `ahead` chunks of its run before it is late
    /// if no worker starts it.
    pub fn dispatch_deadline(&self, now_ms: i64, ahead: usize) -> i64 {
        now_ms
            .saturating_add(self.chunk_deadline_ms)
            .saturating_add(self.queue_allowance_ms.saturating_mul(ahead as i64))
    }

    /// When an attempt re-issued or started at `now_ms` is late.
    pub fn retry_deadline(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(self.chunk_deadline_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_partial_sections_keep_them() {
        let c = JobAggregatorConfig::default();
        c.validate().unwrap();
        assert_eq!(c.dispatch_deadline(1_000, 0), 121_000);
        assert_eq!(c.dispatch_deadline(1_000, 2), 141_000);
        assert_eq!(c.retry_deadline(1_000), 121_000);
        let partial: JobAggregatorConfig = serde_json::from_str(r#"{"max_attempts": 5}"#).unwrap();
        assert_eq!(partial.max_attempts, 5);
        assert_eq!(partial.chunk_deadline_ms, c.chunk_deadline_ms);
    }

    #[test]
    fn unusable_settings_are_refused() {
        let bad = |f: fn(&mut JobAggregatorConfig)| {
            let mut c = JobAggregatorConfig::default();
            f(&mut c);
            c.validate().is_err()
        };
        assert!(bad(|c| c.chunk_deadline_ms = 0));
        assert!(bad(|c| c.queue_allowance_ms = -1));
        assert!(bad(|c| c.max_attempts = 0));
        assert!(bad(|c| c.runs_in_flight = 0));
    }
}
