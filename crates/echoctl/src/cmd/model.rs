//! `echoctl model prepare`: fetch and convert the whisper model, print its checksum.

use std::process::ExitCode;

use anyhow::Result;
use echo_runtime::EchoConfig;

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
    },
}

/// Runs the subcommand.
pub fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    match args.action {
        Action::Prepare { force } => {
            let model = echo_speech::model::prepare(&config.data_dir, force)?;
            println!("model {} sha256 {}", model.path.display(), model.sha256);
            Ok(ExitCode::SUCCESS)
        }
    }
}
