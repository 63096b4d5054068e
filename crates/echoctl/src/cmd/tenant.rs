//! `echoctl tenant token NAME`: the token a tenant's clients put in `upload.requested`, issued
//! under the deployment's `upload.tenant_secret` (see `echo_catalog::tenant`). Run it where the
//! upload processor's secret is (`ECHO_UPLOAD__TENANT_SECRET`) and hand the token to the
//! tenant as a credential.

use std::process::ExitCode;

use anyhow::{Context, Result};
use echo_runtime::EchoConfig;
use echo_upload::UploadConfig;

/// `tenant` arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Prints the token of tenant NAME (1-64 lower-case letters, digits or '-').
    Token {
        /// The tenant's name: its record key, the name its limits are configured under
        /// (`[quota.tenants.NAME]`) and the label it is counted by.
        name: String,
    },
}

/// Runs the subcommand.
pub fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    match args.command {
        Command::Token { name } => {
            let upload: UploadConfig = config.section("upload")?;
            let secret = upload
                .tenant_secret
                .context("no upload.tenant_secret is set (ECHO_UPLOAD__TENANT_SECRET)")?;
            println!("{}", echo_catalog::tenant::issue(secret.expose(), &name)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
