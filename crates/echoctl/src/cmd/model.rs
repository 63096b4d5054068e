//! `echoctl model prepare`: fetch and convert the whisper model, print its checksum.

use std::process::ExitCode;

use anyhow::Result;
use echo_processing::chunk_worker::ChunkWorkerConfig;
use echo_runtime::EchoConfig;
use echo_speech::model::Quantization;

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
    },
}

/// Runs the subcommand.
pub fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    match args.action {
        Action::Prepare {
            force,
            quantization,
            all,
        } => {
            let chosen = if all {
                Quantization::ALL.to_vec()
            } else if let Some(q) = quantization {
                vec![q]
            } else {
                vec![
                    config
                        .section::<ChunkWorkerConfig>("chunk_worker")?
                        .quantization,
                ]
            };
            for quantization in chosen {
                let model = echo_speech::model::prepare(&config.data_dir, quantization, force)?;
                println!(
                    "model {} ({quantization}) sha256 {}",
                    model.path.display(),
                    model.sha256
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
