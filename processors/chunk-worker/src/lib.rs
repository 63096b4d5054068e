//! The `chunk-worker` and `express-chunk-worker` processors: the two consumer groups on
//! `echo.processing.chunk-commands`, one code.
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
//! text of the one before it; [`lane`] says which of its two groups (the pool, the express
//! worker of short jobs) takes a command; [`niced`] runs the pool's whisper below everything
//! else.

pub mod config;
pub mod context;
pub mod decide;
pub mod lane;
pub mod niced;
pub mod observe;
pub mod squeeze;

use anyhow::Result;
use echo_runtime::{EchoConfig, Instances, Registration, RunOptions};

pub use config::ChunkWorkerConfig;
pub use decide::{ChunkWorkerDecider, ChunkWorkerState, Observation, Verdict};
pub use lane::Lane;
pub use observe::ChunkWorker;

/// How `echoctl run chunk-worker` finds and starts the pool.
pub const REGISTRATION: Registration = Registration {
    name: "chunk-worker",
    summary: "Transcribes chunks (a consumer group: run as many as there are cores).",
    instances: Instances::Pool,
    start: |config, options| Box::pin(start(config, options, Lane::Standard)),
};

/// How `echoctl run express-chunk-worker` finds and starts the worker of short jobs.
pub const EXPRESS_REGISTRATION: Registration = Registration {
    name: "express-chunk-worker",
    summary:
        "Transcribes short jobs' chunks beside the pool, so clips never wait behind long files.",
    instances: Instances::BesideThePool,
    start: |config, options| Box::pin(start(config, options, Lane::Express)),
};

/// Builds a worker of `lane` from `[chunk_worker]` (whose `batch_max_records` replaces the
/// runtime's) and runs it until shutdown. Without a configured name, each instance is named
/// after the host, its lane and its instance, so workers of one process tell apart in
/// `chunk.processing.started`.
async fn start(mut config: EchoConfig, options: RunOptions, lane: Lane) -> Result<()> {
    let mut worker: ChunkWorkerConfig = config.section("chunk_worker")?;
    if worker.worker_name == ChunkWorkerConfig::default().worker_name {
        worker.worker_name = match lane {
            Lane::Standard => format!("{}-{}", worker.worker_name, options.instance),
            Lane::Express => format!("{}-express-{}", worker.worker_name, options.instance),
        };
    }
    config.runtime.batch_max_records = worker.batch_max_records;
    let p = ChunkWorker::new(&config, worker, lane)?;
    echo_runtime::run(config, p, options).await
}
