//! The `transcription` processor: turns a job's chunk transcripts into the resource's
//! transcript files.
//!
//! It consumes `echo.processing.events` and produces `echo.transcription.events` (see
//! `topics/topics.toml`):
//!
//! - `processing.job.created` and `chunk.processing.completed`, in any order, until every
//!   chunk of the job has a result → the transcript is assembled word by word
//!   ([`assemble`]), cleared of whisper's loops ([`guard`]), analysed ([`analysis`]),
//!   rendered ([`report`], captions cut by [`captions`]) and written to S3, then
//!   `transcription.started` and `transcription.completed` are emitted; each chunk's result
//!   is kept as an object until then ([`stored`]), not in the state;
//! - `chunk.processing.failed` for a chunk without a result → `transcription.failed`.
//!
//! Its shape is every processor's: [`config`] (its settings), [`decide`] (its `Decider`: what it
//! handles and emits, pure `decide` and `evolve`; it renders the report), [`observe`] (the
//! processor; it reads a completing job's stored chunk results) and [`effects`] (the chunk
//! results and report files written before they are relied on or announced); assembly,
//! analysis and rendering are pure functions too.

pub mod analysis;
pub mod assemble;
pub mod captions;
pub mod config;
pub mod decide;
pub mod effects;
pub mod guard;
pub mod observe;
pub mod plan;
pub mod report;
pub mod stored;

use anyhow::Result;
use echo_runtime::{EchoConfig, Instances, Registration, RunOptions};

pub use analysis::Analysis;
pub use assemble::ChunkTranscript;
pub use config::TranscriptionConfig;
pub use decide::{JobProgress, TranscriptionDecider, TranscriptionState};
pub use echo_storage::S3Service;
pub use observe::TranscriptionProcessor;
pub use plan::JobPlan;
pub use report::Transcript;

/// How `echoctl run transcription` finds and starts it.
pub const REGISTRATION: Registration = Registration {
    name: "transcription",
    summary: "Transcript assembly, analysis, report.",
    instances: Instances::One,
    start: |config, options| Box::pin(start(config, options)),
};

/// Builds it from `[transcription]`, makes sure its bucket exists, and runs it until shutdown.
async fn start(config: EchoConfig, options: RunOptions) -> Result<()> {
    let p = TranscriptionProcessor::new(&config, config.section("transcription")?)?;
    p.s3().ensure_bucket().await?;
    echo_runtime::run(config, p, options).await
}
