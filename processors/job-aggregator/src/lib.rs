//! The `job-aggregator` processor: the watchdog of transcription jobs.
//!
//! It consumes `echo.processing.events` (keyed by resource) and produces
//! `echo.processing.events` and `echo.processing.chunk-commands` (see `topics/topics.toml`).
//! A chunk worker that dies mid-chunk leaves no trace but silence; the aggregator gives every
//! chunk of a job a deadline (a durable timer of the resource's key), re-issues the chunk's
//! `chunk.process` when it passes (`processing.timeout` says so), and fails the chunk
//! (`chunk.processing.failed`) once [`JobAggregatorConfig::max_attempts`] attempts timed out.
//!
//! Its shape is every processor's: [`config`] (its settings), [`decide`] (its `Decider`: what it
//! handles and emits, pure `decide` and `evolve`), [`observe`] (the I/O its decisions need);
//! it needs none, so it runs as `echo_runtime::Pure` over its decider.

pub mod config;
pub mod decide;
pub mod observe;

use anyhow::Result;
use echo_runtime::{EchoConfig, Instances, Registration, RunOptions};

pub use config::JobAggregatorConfig;
pub use decide::{AggregatorState, ChunkStatus, ChunkTrack, JobAggregatorDecider, TrackedJob};
pub use observe::{job_aggregator, JobAggregator};

/// How `echoctl run job-aggregator` finds and starts it.
pub const REGISTRATION: Registration = Registration {
    name: "job-aggregator",
    summary: "Chunk deadlines, re-issues and failures.",
    instances: Instances::One,
    start: |config, options| Box::pin(start(config, options)),
};

/// Builds it from `[job_aggregator]` and runs it until shutdown.
async fn start(config: EchoConfig, options: RunOptions) -> Result<()> {
    let aggregator: JobAggregatorConfig = config.section("job_aggregator")?;
    aggregator.validate()?;
    echo_runtime::run(config, job_aggregator(aggregator), options).await
}
