//! `echoctl dev up|down|status`: the local stack on 127.0.0.1, started by the scripts in
//! scripts/stack/ with endpoints and credentials taken from echo's configuration.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use echo_catalog::Catalogue;
use echo_runtime::{admin, registry, EchoConfig};

/// `dev` arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Installs what is missing, starts Kafka, the registry and S3, creates topics,
    /// registers schemas and prepares the model. Idempotent.
    Up {
        /// Skip preparing the whisper model.
        #[arg(long)]
        no_model: bool,
    },
    /// Stops the services by their recorded pids.
    Down {
        /// Also delete their data (topics, objects, schemas); installs are kept.
        #[arg(long)]
        purge: bool,
    },
    /// One line per service; exits 3 if any is down.
    Status,
}

/// Runs the subcommand.
pub async fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    match args.action {
        Action::Up { no_model } => {
            script(config, "up.sh", &[])?;
            let catalogue = Catalogue::load()?;
            let before = admin::apply(config, &catalogue).await?;
            println!("topics: {} in the catalogue, all applied", before.len());
            let outcomes = registry::register(config, &catalogue, false).await?;
            let refused: Vec<_> = outcomes
                .iter()
                .filter(|o| matches!(o.status, registry::SubjectStatus::Incompatible(_)))
                .collect();
            if !refused.is_empty() {
                bail!("schemas refused by the registry: {refused:?}");
            }
            println!("schemas: {} subjects registered", outcomes.len());
            if !no_model {
                let model = echo_speech::model::prepare(&config.data_dir, false)?;
                println!("model: {} (sha256 {})", model.path.display(), model.sha256);
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Down { purge } => {
            script(config, "down.sh", if purge { &["--purge"] } else { &[] })?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Status => {
            let code = script_status(config, "status.sh", &[])?;
            Ok(ExitCode::from(code))
        }
    }
}

/// The scripts folder: `ECHO_STACK_SCRIPTS`, else the repository this binary was built from.
fn scripts_dir() -> PathBuf {
    std::env::var_os("ECHO_STACK_SCRIPTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/stack"))
        })
}

fn port_of(url: &str) -> String {
    url.rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string()
}

fn script(config: &EchoConfig, name: &str, args: &[&str]) -> Result<()> {
    match script_status(config, name, args)? {
        0 => Ok(()),
        code => bail!("{name} failed with exit code {code}"),
    }
}

fn script_status(config: &EchoConfig, name: &str, args: &[&str]) -> Result<u8> {
    let registry_bin = std::env::current_exe()?
        .parent()
        .context("echoctl has no folder")?
        .join("echo-schema-registry");
    let status = Command::new("bash")
        .arg(scripts_dir().join(name))
        .args(args)
        .env("ECHO_DATA_DIR", &config.data_dir)
        .env("ECHO_KAFKA_PORT", port_of(&config.kafka.bootstrap_servers))
        .env("ECHO_REGISTRY_PORT", port_of(&config.registry.url))
        .env("ECHO_S3_PORT", port_of(&config.s3.endpoint))
        .env("ECHO_S3_ACCESS_KEY", &config.s3.access_key)
        .env("ECHO_S3_SECRET_KEY", config.s3.secret_key.expose())
        .env("ECHO_REGISTRY_BIN", registry_bin)
        .status()
        .with_context(|| format!("running {name}"))?;
    Ok(status.code().unwrap_or(1) as u8)
}
