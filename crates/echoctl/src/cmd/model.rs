//! `echoctl model prepare`: fetch and convert a whisper model, print its checksum.

use std::process::ExitCode;

use anyhow::Result;
use echo_chunk_worker::ChunkWorkerConfig;
use echo_runtime::EchoConfig;
use echo_speech::model::{ModelName, Quantization};

/// `model` arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Builds the ggml model under the data dir (cached; byte-for-byte reproducible).
    Prepare {
        /// Rebuild even if a verified model is cached.
        #[arg(long)]
        force: bool,
        /// Which weights: f16, q8_0, q5_0 or q5_1. Defaults to `chunk_worker.quantization`
        /// (f16 unless configured), the file the chunk workers load.
        #[arg(long, conflicts_with = "all")]
        quantization: Option<Quantization>,
        /// Every quantization, one file each.
        #[arg(long)]
        all: bool,
        /// Which model: tiny.en or base. Defaults to `chunk_worker.model` (tiny.en unless
        /// configured).
        #[arg(long)]
        model: Option<ModelName>,
    },
}

/// Runs the subcommand.
pub fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    match args.action {
        Action::Prepare {
            force,
            quantization,
            all,
            model,
        } => {
            let worker = config.section::<ChunkWorkerConfig>("chunk_worker")?;
            let model = model.unwrap_or(worker.model);
            let chosen = if all {
                Quantization::ALL.to_vec()
            } else if let Some(q) = quantization {
                vec![q]
            } else {
                vec![worker.quantization]
            };
            for quantization in chosen {
                let prepared =
                    echo_speech::model::prepare(&config.data_dir, model, quantization, force)?;
                println!(
                    "model {} ({model}, {quantization}) sha256 {}",
                    prepared.path.display(),
                    prepared.sha256
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
