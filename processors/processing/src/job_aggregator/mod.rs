//! The `job-aggregator` processor: the watchdog of transcription jobs.
//!
//! It consumes `echo.processing.events` (keyed by resource) and produces
//! `echo.processing.events` and `echo.processing.chunk-commands` (see `topics/topics.toml`).
//! A chunk worker that dies mid-chunk leaves no trace but silence; the aggregator gives every
//! chunk of a job a deadline (a durable timer of the resource's key), re-issues the chunk's
//! `chunk.process` when it passes (`processing.timeout` says so), and fails the chunk
//! (`chunk.processing.failed`) once [`JobAggregatorConfig::max_attempts`] attempts timed out.
//!
//! Split like every processor: [`config`] (settings) and [`decide`] (pure `decide`/`evolve`);
//! it needs no I/O, so its observation is `()`.

pub mod config;
pub mod decide;

use anyhow::Result;
use echo_runtime::{Context, EchoConfig, HandlerError, Input, Processor, Registration, RunOptions};

pub use config::JobAggregatorConfig;
pub use decide::{AggregatorState, ChunkStatus, ChunkTrack, JobAggregatorDecider, TrackedJob};

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

/// How `echoctl run job-aggregator` finds and starts it.
pub const REGISTRATION: Registration = Registration {
    name: "job-aggregator",
    summary: "Chunk deadlines, re-issues and failures.",
    pooled: false,
    start: |config, options| Box::pin(start(config, options)),
};

/// Builds it from `[job_aggregator]` and runs it until shutdown.
async fn start(config: EchoConfig, options: RunOptions) -> Result<()> {
    let aggregator: JobAggregatorConfig = config.section("job_aggregator")?;
    aggregator.validate()?;
    echo_runtime::run(config, JobAggregator::new(aggregator), options).await
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
}
