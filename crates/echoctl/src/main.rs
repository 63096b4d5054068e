//! `echoctl`: one command line for echo — the local stack, the catalogue (topics, schemas,
//! topology), the model, and the processors. Named `echoctl`, never `echo`, which is a shell
//! builtin.

mod cmd;
mod follow;
mod processors;
mod topic_reader;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use echo_runtime::EchoConfig;

/// Command-line arguments.
#[derive(Parser)]
#[command(name = "echoctl", version, about = "Run and operate the echo pipeline")]
struct Cli {
    /// Configuration file (TOML); defaults to ./echo.toml if present. `ECHO_*` variables
    /// override it (`ECHO_KAFKA__BOOTSTRAP_SERVERS=…`).
    #[arg(long, global = true, env = "ECHO_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Top-level commands.
#[derive(Subcommand)]
enum Command {
    /// The local stack: Kafka, Schema Registry, S3, model.
    Dev(cmd::dev::Args),
    /// Topics of the catalogue on the cluster.
    Topics(cmd::topics::Args),
    /// Avro schemas of the catalogue in the registry.
    Schemas(cmd::schemas::Args),
    /// The whisper model.
    Model(cmd::model::Args),
    /// Prints the processor topology derived from topics/.
    Topology,
    /// Lists the processors this binary runs (`name<TAB>summary`).
    Processors,
    /// Runs a processor.
    Run(cmd::run::Args),
    /// Uploads a file as a client would and follows its events.
    Submit(cmd::submit::Args),
    /// Tenants: the tokens that charge a client's uploads to its tenant's limits.
    Tenant(cmd::tenant::Args),
    /// Transcribes a file with the whisper model alone, outside the pipeline.
    Transcribe(cmd::transcribe::Args),
    /// Dead letters: count, inspect and redrive them.
    Dlq(cmd::dlq::Args),
    /// Consumer lag of every processor, and what waits in its retry tiers and DLQ.
    Status(cmd::status::Args),
    /// One resource's events as a tree with a timeline, and where its chain stopped.
    Trace(cmd::trace::Args),
    /// Recent resources, newest first: status, time taken, audio length, failure reason.
    Resources(cmd::resources::Args),
}

fn main() -> ExitCode {
    // Before any thread starts: it may restart the process.
    echo_speech::blas::use_kernels_for_this_cpu();
    echo_runtime::telemetry::init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = EchoConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Dev(args) => cmd::dev::run(&config, args).await,
        Command::Topics(args) => cmd::topics::run(&config, args).await,
        Command::Schemas(args) => cmd::schemas::run(&config, args).await,
        Command::Model(args) => cmd::model::run(&config, args),
        Command::Topology => {
            let names: Vec<&str> = processors::PROCESSORS.iter().map(|r| r.name).collect();
            print!(
                "{}",
                echo_runtime::topology::describe(&echo_catalog::Catalogue::load()?, &names)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Processors => Ok(cmd::processors::run()),
        Command::Run(args) => cmd::run::run(config, args).await,
        Command::Submit(args) => cmd::submit::run(&config, args).await,
        Command::Tenant(args) => cmd::tenant::run(&config, args),
        Command::Transcribe(args) => cmd::transcribe::run(&config, args),
        Command::Dlq(args) => cmd::dlq::run(&config, args).await,
        Command::Status(args) => cmd::status::run(&config, args).await,
        Command::Trace(args) => cmd::trace::run(&config, args).await,
        Command::Resources(args) => cmd::resources::run(&config, args).await,
    }
}
