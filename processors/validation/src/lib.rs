//! The `validation` processor: the entry point of the Processing context.
//!
//! It consumes `echo.upload.events` and produces `echo.processing.events` (see
//! `topics/topics.toml`). On the first
//! `upload.completed` of a resource it downloads the audio (no more bytes than were finalized),
//! probes it and decodes it packet by packet without keeping the samples (proof that the chunk
//! workers will be able to, and its true length; with `speech` chunking a voice-activity
//! detector listens along, for the pauses chunks are cut at), checks it against
//! [`ValidationConfig`], and either fails it (`validation.failed`) or plans the transcription
//! job: `validation.passed` and `processing.job.created`, which lists the chunks (none when no
//! speech was heard: the job is complete, and empty, at once); the job aggregator dispatches
//! their commands.
//!
//! Its shape is every processor's: [`config`] (its settings), [`decide`] (its `Decider`: what it
//! handles and emits, pure `decide` and `evolve`), [`observe`] (the I/O its decisions need).

pub mod config;
pub mod decide;
pub mod observe;

use anyhow::Result;
use echo_runtime::{EchoConfig, Instances, Registration, RunOptions};

pub use config::ValidationConfig;
pub use decide::{AudioFacts, Observation, ValidationDecider, ValidationState};
pub use observe::ValidationProcessor;

/// How `echoctl run validation` finds and starts it.
pub const REGISTRATION: Registration = Registration {
    name: "validation",
    summary: "Audio validation and chunk planning.",
    instances: Instances::One,
    start: |config, options| Box::pin(start(config, options)),
};

/// Builds it from `[validation]` and runs it until shutdown.
async fn start(config: EchoConfig, options: RunOptions) -> Result<()> {
    let p = ValidationProcessor::new(&config, config.section("validation")?)?;
    echo_runtime::run(config, p, options).await
}
