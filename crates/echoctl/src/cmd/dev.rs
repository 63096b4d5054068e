//! `echoctl dev up|down|status`: the local stack on 127.0.0.1, started by the scripts in
//! scripts/stack/ with endpoints and credentials taken from echo's configuration.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use echo_catalog::Catalogue;
use echo_chunk_worker::ChunkWorkerConfig;
use echo_runtime::endpoints::EndpointsConfig;
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
        /// Kafka brokers: 1 (the default, on the configured port) or a cluster of N
        /// broker+controller nodes on consecutive port pairs from it, with replication
        /// factor min(N, 3). Clients then need the settings it prints.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=9))]
        brokers: Option<u8>,
        /// Also Jaeger (OTLP traces in, query API and UI out) and Prometheus (scraping the
        /// processors' metrics endpoint), built once from their Go modules.
        #[arg(long)]
        observability: bool,
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
        Action::Up {
            no_model,
            brokers,
            observability,
        } => {
            let count = brokers.map(|n| n.to_string());
            let mut env: Vec<_> = count.iter().map(|n| ("ECHO_KAFKA_BROKERS", n)).collect();
            let endpoints: EndpointsConfig = config.section("endpoints")?;
            env.push(("ECHO_METRICS_TARGETS", &endpoints.listen));
            let mut services = vec!["kafka", "registry", "s3"];
            if observability {
                services.extend(["jaeger", "prometheus"]);
            }
            script_with(config, "up.sh", &services, &env)?;
            if observability {
                println!(
                    "traces: run processors with ECHO_TRACING__OTLP_ENDPOINT=http://127.0.0.1:4318; \
                     find them at http://127.0.0.1:16686; metrics at http://127.0.0.1:9090"
                );
            }
            let config = &with_cluster_settings(config)?;
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
                // The weights the chunk workers are configured to load.
                let worker: ChunkWorkerConfig = config.section("chunk_worker")?;
                let model = echo_speech::model::prepare(
                    &config.data_dir,
                    worker.model,
                    worker.quantization,
                    false,
                )?;
                println!("model: {} (sha256 {})", model.path.display(), model.sha256);
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Down { purge } => {
            script(config, "down.sh", if purge { &["--purge"] } else { &[] })?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Status => {
            let code = script_status(config, "status.sh", &[], &[])?;
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

/// The port of a URL, or of the first `host:port` of a bootstrap list (a cluster's first node,
/// from which the scripts number the others).
fn port_of(url: &str) -> String {
    url.split(',')
        .next()
        .unwrap_or_default()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string()
}

/// A multi-broker stack records what its clients need (`kafka/clients.env`, written by
/// up.sh): every node's address, the replication factor and `min.insync.replicas`. Applies
/// them, so the topics are created replicated, and prints them for the user's shell.
fn with_cluster_settings(config: &EchoConfig) -> Result<EchoConfig> {
    let mut config = config.clone();
    let file = config.data_dir.join("kafka/clients.env");
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(config);
    };
    let mut lines = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let number = || {
            value
                .parse::<i32>()
                .with_context(|| format!("{}: {key} is not a number", file.display()))
        };
        match key {
            "ECHO_KAFKA__BOOTSTRAP_SERVERS" => config.kafka.bootstrap_servers = value.into(),
            "ECHO_KAFKA__REPLICATION_FACTOR" => config.kafka.replication_factor = number()?,
            "ECHO_KAFKA__MIN_INSYNC_REPLICAS" => config.kafka.min_insync_replicas = number()?,
            _ => continue,
        }
        lines.push(line.to_string());
    }
    println!("clients of this cluster need (also in {}):", file.display());
    for line in lines {
        println!("  export {line}");
    }
    Ok(config)
}

fn script(config: &EchoConfig, name: &str, args: &[&str]) -> Result<()> {
    script_with(config, name, args, &[])
}

fn script_with(
    config: &EchoConfig,
    name: &str,
    args: &[&str],
    env: &[(&str, &String)],
) -> Result<()> {
    match script_status(config, name, args, env)? {
        0 => Ok(()),
        code => bail!("{name} failed with exit code {code}"),
    }
}

fn script_status(
    config: &EchoConfig,
    name: &str,
    args: &[&str],
    env: &[(&str, &String)],
) -> Result<u8> {
    let status = Command::new("bash")
        .arg(scripts_dir().join(name))
        .args(args)
        .env("ECHO_DATA_DIR", &config.data_dir)
        .env("ECHO_KAFKA_PORT", port_of(&config.kafka.bootstrap_servers))
        .env("ECHO_REGISTRY_PORT", port_of(&config.registry.url))
        .env("ECHO_REGISTRY_USERNAME", &config.registry.username)
        .env("ECHO_REGISTRY_PASSWORD", config.registry.password.expose())
        .env("ECHO_S3_PORT", port_of(&config.s3.endpoint))
        .env("ECHO_S3_ACCESS_KEY", &config.s3.access_key)
        .env("ECHO_S3_SECRET_KEY", config.s3.secret_key.expose())
        .env("ECHO_REGISTRY_BIN", beside_echoctl("echo-schema-registry")?)
        .env("ECHO_S3_BIN", beside_echoctl("echo-dev-s3")?)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("running {name}"))?;
    Ok(status.code().unwrap_or(1) as u8)
}

/// A binary of this workspace, built into the same folder as echoctl.
fn beside_echoctl(name: &str) -> Result<PathBuf> {
    Ok(std::env::current_exe()?
        .parent()
        .context("echoctl has no folder")?
        .join(name))
}

#[cfg(test)]
mod tests {
    use super::port_of;

    #[test]
    fn the_port_of_a_bootstrap_list_is_its_first_node_s() {
        assert_eq!(port_of("127.0.0.1:19092,127.0.0.1:19094"), "19092");
        assert_eq!(port_of("127.0.0.1:9092"), "9092");
        assert_eq!(port_of("http://127.0.0.1:8081/"), "8081");
    }
}
