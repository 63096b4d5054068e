//! `echoctl run PROCESSOR`: runs one processor until SIGTERM or ctrl-c.

use std::process::ExitCode;

use anyhow::Result;
use echo_runtime::{EchoConfig, RunOptions, Shutdown};

/// `run` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Which processor.
    #[arg(value_enum)]
    processor: Which,
    /// Stable instance name (pod name); part of the transactional id.
    #[arg(long, env = "ECHO_INSTANCE", default_value = "0")]
    instance: String,
}

/// The processors this binary can run.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Which {
    /// Pre-signed URLs, upload verification, expiry.
    Upload,
}

/// Runs the processor.
pub async fn run(config: EchoConfig, args: Args) -> Result<ExitCode> {
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let options = RunOptions {
        instance: args.instance,
        shutdown,
    };
    match args.processor {
        Which::Upload => {
            let processor = echo_upload::UploadProcessor::new(&config, Default::default())?;
            processor.s3().ensure_bucket().await?;
            echo_runtime::run(config, processor, options).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
