//! `echoctl run PROCESSOR|all`: runs processors until SIGTERM or ctrl-c. `all` runs every
//! processor of the pipeline in one process (the local default); in Kubernetes each runs as
//! its own deployment. Every process serves its metrics and health (`[endpoints]`).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::builder::{PossibleValue, PossibleValuesParser};
use echo_runtime::{EchoConfig, Instances, Registration, RunOptions, Shutdown};
use tokio::task::JoinSet;

use crate::processors::{self, PROCESSORS};

/// What `run` starts every registered processor with.
const ALL: &str = "all";

/// `run` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Which processor (`echoctl processors` lists them), or `all`.
    #[arg(value_parser = processor_names())]
    processor: String,
    /// Stable instance name (pod name); part of the transactional id.
    #[arg(long, env = "ECHO_INSTANCE", default_value = "0")]
    instance: String,
    /// With `all`: how many chunk workers to run side by side.
    #[arg(long, default_value = "1")]
    chunk_workers: usize,
}

/// `all` and every registered processor, with its summary as help.
fn processor_names() -> PossibleValuesParser {
    let all = PossibleValue::new(ALL).help("Every processor below, in one process");
    let each = PROCESSORS
        .iter()
        .map(|r| PossibleValue::new(r.name).help(r.summary));
    PossibleValuesParser::new(std::iter::once(all).chain(each))
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
        &args.processor,
        args.chunk_workers,
    )?;
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

/// Spawns the processor called `which` (or every registered one for `all`: the pool `pool`
/// times, its helpers once if `pool` is not 0) onto `set`.
fn spawn_selected(
    set: &mut JoinSet<Result<()>>,
    config: &EchoConfig,
    options: &RunOptions,
    which: &str,
    pool: usize,
) -> Result<()> {
    let start = |set: &mut JoinSet<Result<()>>, r: &Registration, options: RunOptions| {
        set.spawn((r.start)(config.clone(), options));
    };
    if which != ALL {
        let r = processors::find(which).with_context(|| format!("no processor {which}"))?;
        start(set, r, options.clone());
        return Ok(());
    }
    for r in PROCESSORS {
        match r.instances {
            Instances::One => start(set, r, options.clone()),
            Instances::BesideThePool if pool > 0 => start(set, r, options.clone()),
            Instances::BesideThePool => {}
            Instances::Pool => {
                for i in 0..pool {
                    let mut member = options.clone();
                    member.instance = format!("{}-w{i}", options.instance);
                    start(set, r, member);
                }
            }
        }
    }
    Ok(())
}
