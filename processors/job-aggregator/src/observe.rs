//! The job aggregator needs nothing from outside Kafka: it runs as a [`Pure`] processor, whose
//! `observe` reads nothing, and every verdict comes from its records and timers.

use echo_runtime::Pure;

use crate::config::JobAggregatorConfig;
use crate::decide::JobAggregatorDecider;

/// The job aggregator, run by `echo_runtime::run`.
pub type JobAggregator = Pure<JobAggregatorDecider>;

/// The job aggregator with these settings. Does no I/O and cannot fail; whoever loads the
/// settings calls [`JobAggregatorConfig::validate`] first.
pub fn job_aggregator(config: JobAggregatorConfig) -> JobAggregator {
    Pure(JobAggregatorDecider { config })
}
