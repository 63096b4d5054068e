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

use echo_runtime::{Context, Decision, Fact, HandlerError, Input, Processor};

pub use config::JobAggregatorConfig;
pub use decide::{AggregatorState, ChunkStatus, ChunkTrack, TrackedJob};

/// The job aggregator, run by `echo_runtime::run`.
#[derive(Debug, Clone)]
pub struct JobAggregator {
    /// Deadlines and the attempt limit.
    config: JobAggregatorConfig,
}

impl JobAggregator {
    /// An aggregator with these settings. Does no I/O and cannot fail; whoever loads the
    /// settings calls [`JobAggregatorConfig::validate`] first.
    pub fn new(config: JobAggregatorConfig) -> Self {
        JobAggregator { config }
    }

    /// Its settings.
    pub fn config(&self) -> &JobAggregatorConfig {
        &self.config
    }
}

impl Processor for JobAggregator {
    type State = AggregatorState;
    type Observation = ();

    fn name(&self) -> &'static str {
        "job-aggregator"
    }

    fn handles(&self) -> &'static [&'static str] {
        decide::HANDLES
    }

    fn emits(&self) -> &'static [&'static str] {
        decide::EMITS
    }

    async fn observe(
        &self,
        _state: &AggregatorState,
        _input: Input<'_>,
        _ctx: &Context,
    ) -> Result<(), HandlerError> {
        Ok(())
    }

    fn decide(
        &self,
        state: &AggregatorState,
        input: Input<'_>,
        _observed: (),
        ctx: &Context,
    ) -> Result<Decision, HandlerError> {
        decide::decide(&self.config, state, input, ctx)
    }

    fn evolve(&self, state: AggregatorState, fact: Fact<'_>) -> AggregatorState {
        decide::evolve(state, fact)
    }

    fn is_finished(&self, state: &AggregatorState) -> bool {
        state.is_finished()
    }
}
