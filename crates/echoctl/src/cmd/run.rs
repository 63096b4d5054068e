//! `echoctl run PROCESSOR|all`: runs processors until SIGTERM or ctrl-c. `all` runs every
//! processor of the pipeline in one process (the local default); in Kubernetes each runs as
//! its own deployment. Every process serves its metrics and health (`[endpoints]`).

use std::process::ExitCode;

use anyhow::{Context, Result};
use echo_processing::chunk_worker::{ChunkWorker, ChunkWorkerConfig};
use echo_processing::job_aggregator::{JobAggregator, JobAggregatorConfig};
use echo_processing::validation::ValidationProcessor;
use echo_resource::ResourceProcessor;
use echo_runtime::{EchoConfig, RunOptions, Shutdown};
use echo_transcription::TranscriptionProcessor;
use echo_upload::UploadProcessor;
use tokio::task::JoinSet;

/// `run` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Which processor, or `all`.
    #[arg(value_enum)]
    processor: Which,
    /// Stable instance name (pod name); part of the transactional id.
    #[arg(long, env = "ECHO_INSTANCE", default_value = "0")]
    instance: String,
    /// With `all`: how many chunk workers to run side by side.
    #[arg(long, default_value = "1")]
    chunk_workers: usize,
}

/// The processors this binary can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// Every processor below, in one process.
    All,
    /// Pre-signed URLs, upload verification, expiry.
    Upload,
    /// Audio validation and chunk planning.
    Validation,
    /// Transcribes chunks (a consumer group: run as many as needed).
    ChunkWorker,
    /// Chunk deadlines, re-issues and failures.
    JobAggregator,
    /// Transcript assembly, analysis, report.
    Transcription,
    /// Resource lifecycle, TTL, cleanup.
    Resource,
}

/// Runs the selected processors.
pub async fn run(config: EchoConfig, args: Args) -> Result<ExitCode> {
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    echo_runtime::endpoints::serve(&config.section("endpoints")?).await?;
    let options = RunOptions {
        instance: args.instance.clone(),
        shutdown: shutdown.clone(),
    };
    let mut set = JoinSet::new();
    spawn_selected(
        &mut set,
        &config,
        &options,
        args.processor,
        args.chunk_workers,
    );
    // The first processor to stop (an error, or shutdown) stops the others.
    let mut outcome = Ok(());
    while let Some(joined) = set.join_next().await {
        let result = joined.context("processor task panicked").and_then(|r| r);
        if result.is_err() && outcome.is_ok() {
            outcome = result;
        }
        shutdown.trigger();
    }
    // Spans still in the exporter's buffer go out before the process does.
    tokio::task::spawn_blocking(echo_runtime::spans::flush).await?;
    outcome.map(|()| ExitCode::SUCCESS)
}

/// Spawns `which` (or every processor for `all`) onto `set`.
pub fn spawn_selected(
    set: &mut JoinSet<Result<()>>,
    config: &EchoConfig,
    options: &RunOptions,
    which: Which,
    chunk_workers: usize,
) {
    let selected = match which {
        Which::All => vec![
            Which::Upload,
            Which::Validation,
            Which::JobAggregator,
            Which::Transcription,
            Which::Resource,
        ],
        one => vec![one],
    };
    for w in selected {
        set.spawn(start(w, config.clone(), options.clone()));
    }
    if which == Which::All {
        for i in 0..chunk_workers {
            let mut worker = options.clone();
            worker.instance = format!("{}-w{i}", options.instance);
            set.spawn(start(Which::ChunkWorker, config.clone(), worker));
        }
    }
}

/// Builds one processor from its configuration section and runs it.
async fn start(which: Which, mut config: EchoConfig, options: RunOptions) -> Result<()> {
    match which {
        Which::All => unreachable!("`all` is expanded by spawn_selected"),
        Which::Upload => {
            let p = UploadProcessor::new(&config, config.section("upload")?)?;
            p.s3().ensure_bucket().await?;
            echo_runtime::run(config, p, options).await
        }
        Which::Validation => {
            let p = ValidationProcessor::new(&config, config.section("validation")?)?;
            echo_runtime::run(config, p, options).await
        }
        Which::ChunkWorker => {
            let mut worker: ChunkWorkerConfig = config.section("chunk_worker")?;
            if worker.worker_name == ChunkWorkerConfig::default().worker_name {
                worker.worker_name = format!("{}-{}", worker.worker_name, options.instance);
            }
            // One chunk is seconds of CPU: batching buys nothing and would stretch the
            // transaction over several transcriptions.
            config.runtime.batch_max_records = 1;
            let p = ChunkWorker::new(&config, worker)?;
            echo_runtime::run(config, p, options).await
        }
        Which::JobAggregator => {
            let aggregator: JobAggregatorConfig = config.section("job_aggregator")?;
            aggregator.validate()?;
            echo_runtime::run(config, JobAggregator::new(aggregator), options).await
        }
        Which::Transcription => {
            let p = TranscriptionProcessor::new(&config, config.section("transcription")?)?;
            p.s3().ensure_bucket().await?;
            echo_runtime::run(config, p, options).await
        }
        Which::Resource => {
            let p = ResourceProcessor::new(&config, config.section("resource")?)?;
            p.s3().ensure_bucket().await?;
            echo_runtime::run(config, p, options).await
        }
    }
}
