//! The `chunk-worker` processor: the consumer group on `echo.processing.chunk-commands`.
//!
//! Each `chunk.process` names a time range of a job's audio. The worker fetches the audio
//! (once per file: a local cache, since one worker gets many chunks of the same file),
//! decodes only that range, leaves its silence out ([`crate::squeeze`]), transcribes the
//! speech with whisper and emits `chunk.processing.started`
//! followed by `chunk.processing.completed` (segments on the whole audio's time line) or
//! `chunk.processing.failed`, in one transaction, keyed by the resource id.
//!
//! Its shape is every processor's: [`config`] (its settings), [`decide`] (its `Decider`: what it
//! handles and emits, pure `decide` and `evolve`), [`observe`] (the I/O its decisions need);
//! [`squeeze`] leaves a chunk's pauses out of what whisper hears; [`context`] gives a chunk the
//! text of the one before it.

pub mod config;
pub mod context;
pub mod decide;
pub mod observe;
pub mod squeeze;

use anyhow::Result;
use echo_runtime::{EchoConfig, Registration, RunOptions};

pub use config::ChunkWorkerConfig;
pub use decide::{ChunkWorkerDecider, ChunkWorkerState, Observation, Verdict};
pub use observe::ChunkWorker;

/// How `echoctl run chunk-worker` finds and starts it.
pub const REGISTRATION: Registration = Registration {
    name: "chunk-worker",
    summary: "Transcribes chunks (a consumer group: run as many as there are cores).",
    pooled: true,
    start: |config, options| Box::pin(start(config, options)),
};

/// Builds it from `[chunk_worker]` (whose `batch_max_records` replaces the runtime's) and
/// runs it until shutdown. Without a configured name, each instance is named after the host
/// and its instance, so two workers of one process tell apart in `chunk.processing.started`.
async fn start(mut config: EchoConfig, options: RunOptions) -> Result<()> {
    let mut worker: ChunkWorkerConfig = config.section("chunk_worker")?;
    if worker.worker_name == ChunkWorkerConfig::default().worker_name {
        worker.worker_name = format!("{}-{}", worker.worker_name, options.instance);
    }
    config.runtime.batch_max_records = worker.batch_max_records;
    let p = ChunkWorker::new(&config, worker)?;
    echo_runtime::run(config, p, options).await
}
