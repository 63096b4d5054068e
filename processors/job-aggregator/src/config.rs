//! Settings of the job aggregator, loaded from the `job_aggregator` section of echo's
//! configuration.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// How long a chunk may take before it is presumed lost, and how often it is re-issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobAggregatorConfig {
    /// How long one attempt of a chunk may take, in ms, from the moment its command was issued;
    /// past it the worker is presumed lost and the chunk re-issued. Default 2 minutes: a 30 s
    /// window costs a worker 2–6 s, so this leaves room for a busy cluster.
    pub chunk_deadline_ms: i64,
    /// Extra time for a chunk's first attempt per chunk ahead of it in its job, in ms. All of a
    /// job's commands are issued at once, so chunk `i` may wait behind `i` others before a
    /// worker takes it; without this a long job on few workers would time out (and be re-issued,
    /// adding load) only for queueing. Default 10 s, a slow worker's time for one chunk.
    pub queue_allowance_ms: i64,
    /// Most attempts of one chunk, counting the first; when the last one times out the chunk
    /// fails. Default 3.
    pub max_attempts: i32,
}

impl Default for JobAggregatorConfig {
    fn default() -> Self {
        JobAggregatorConfig {
            chunk_deadline_ms: 120_000,
            queue_allowance_ms: 10_000,
            max_attempts: 3,
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
        Ok(())
    }

    /// When the first attempt of chunk `chunk_index` of a job created at `now_ms` is late.
    pub fn first_deadline(&self, now_ms: i64, chunk_index: i32) -> i64 {
        now_ms
            .saturating_add(self.chunk_deadline_ms)
            .saturating_add(
                self.queue_allowance_ms
                    .saturating_mul(i64::from(chunk_index)),
            )
    }

    /// When a re-issued attempt, issued at `now_ms`, is late.
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
        assert_eq!(c.first_deadline(1_000, 0), 121_000);
        assert_eq!(c.first_deadline(1_000, 3), 151_000);
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
    }
}
