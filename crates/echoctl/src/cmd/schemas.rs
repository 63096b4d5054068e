//! `echoctl schemas register|check [--avro DIR]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use echo_catalog::Catalogue;
use echo_runtime::registry::{self, SubjectStatus};
use echo_runtime::EchoConfig;

/// `schemas` arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// Schemas from this directory (laid out as avro/: `<context>/<type>.avsc`) instead of
    /// the ones built into echoctl: checks or registers a proposed change.
    #[arg(long, global = true)]
    avro: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Registers every schema of avro/ under its subjects; fails on an incompatible change.
    Register,
    /// Reports what `register` would do, without writing; fails on an incompatible change.
    Check,
}

/// Runs the subcommand.
pub async fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    let catalogue = Catalogue::load()?;
    let dry_run = matches!(args.action, Action::Check);
    let subjects = match &args.avro {
        Some(dir) => registry::subjects_in(config, &catalogue, dir)?,
        None => registry::subjects(config, &catalogue)?,
    };
    let outcomes = registry::register_subjects(config, subjects, dry_run).await?;
    let mut incompatible = 0;
    for o in &outcomes {
        let status = match &o.status {
            SubjectStatus::Registered(id) => format!("registered (id {id})"),
            SubjectStatus::UpToDate => "up to date".into(),
            SubjectStatus::WouldRegister => "would register a new version".into(),
            SubjectStatus::Incompatible(why) => {
                incompatible += 1;
                format!("INCOMPATIBLE: {why}")
            }
        };
        println!("{:<80} {status}", o.subject);
    }
    println!("{} subjects, {incompatible} incompatible", outcomes.len());
    Ok(if incompatible > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
