//! The job aggregator needs nothing from outside Kafka: its `observe` reads nothing, and every
//! verdict comes from its records and timers.

use anyhow::Result;
use echo_runtime::prelude::*;

use crate::config::JobAggregatorConfig;
use crate::decide::{AggregatorState, JobAggregatorDecider};

/// The job aggregator, run by `echo_runtime::run`.
#[derive(Debug, Clone)]
pub struct JobAggregator {
    /// Its decisions, over deadlines and the attempt limit.
    decider: JobAggregatorDecider,
}

impl JobAggregator {
    /// An aggregator with these settings. Does no I/O and cannot fail; whoever loads the
    /// settings calls [`JobAggregatorConfig::validate`] first.
    pub fn new(config: JobAggregatorConfig) -> Self {
        JobAggregator {
            decider: JobAggregatorDecider { config },
        }
    }

    /// Its settings.
    pub fn config(&self) -> &JobAggregatorConfig {
        &self.decider.config
    }
}

impl Processor for JobAggregator {
    type Decider = JobAggregatorDecider;

    fn decider(&self) -> &JobAggregatorDecider {
        &self.decider
    }

    async fn observe(
        &self,
        _state: &AggregatorState,
        _input: Input<'_>,
        _ctx: &Context,
    ) -> Result<(), HandlerError> {
        Ok(())
    }

    /// It writes nothing outside Kafka.
    async fn effect(&self, effect: &NoEffect) -> Result<(), HandlerError> {
        match *effect {}
    }
}
