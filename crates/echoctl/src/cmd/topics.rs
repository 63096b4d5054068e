//! `echoctl topics apply|describe`.

use std::process::ExitCode;

use anyhow::Result;
use echo_catalog::Catalogue;
use echo_runtime::admin::{self, Drift};
use echo_runtime::EchoConfig;

/// `topics` arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Creates or updates every catalogue topic (idempotent).
    Apply,
    /// Shows how the cluster differs from the catalogue; exits 3 on drift.
    Describe,
}

/// Runs the subcommand.
pub async fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    let catalogue = Catalogue::load()?;
    match args.action {
        Action::Apply => {
            let before = admin::apply(config, &catalogue).await?;
            let changed = before.iter().filter(|r| r.drift != Drift::InSync).count();
            for row in before.iter().filter(|r| r.drift != Drift::InSync) {
                println!("{:<44} fixed: {}", row.name, describe_drift(&row.drift));
            }
            println!("{} topics, {changed} created or updated", before.len());
            Ok(ExitCode::SUCCESS)
        }
        Action::Describe => {
            let rows = admin::describe(config, &catalogue).await?;
            for row in &rows {
                println!(
                    "{:<44} {:>3} partitions  {}",
                    row.name,
                    row.partitions,
                    describe_drift(&row.drift)
                );
            }
            let drifted = rows.iter().any(|r| r.drift != Drift::InSync);
            Ok(if drifted {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn describe_drift(drift: &Drift) -> String {
    match drift {
        Drift::InSync => "in sync".into(),
        Drift::Missing => "missing".into(),
        Drift::Partitions { actual, declared } => {
            format!("{actual} partitions, {declared} declared")
        }
        Drift::Configs(c) => c
            .iter()
            .map(|(k, actual, declared)| format!("{k}={actual} (declared {declared})"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
