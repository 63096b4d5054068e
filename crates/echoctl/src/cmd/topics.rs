//! `echoctl topics apply|describe|strimzi`.

use std::process::ExitCode;

use anyhow::Result;
use echo_catalog::strimzi::{self, ClusterSettings};
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
    /// Prints the catalogue as Strimzi resources for this configuration's topic prefix and
    /// replication: a KafkaTopic per topic, a KafkaUser with its ACLs per processor.
    Strimzi {
        /// Name of the Strimzi `Kafka` resource the topics and users belong to.
        #[arg(long, default_value = "kafka")]
        cluster: String,
    },
}

/// Runs the subcommand.
pub async fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    let catalogue = Catalogue::load()?;
    match args.action {
        Action::Strimzi { cluster } => {
            let settings = ClusterSettings {
                cluster,
                topic_prefix: config.kafka.topic_prefix.clone(),
                replicas: config.kafka.replication_factor,
                min_insync_replicas: config.kafka.min_insync_replicas,
            };
            print!("{}", strimzi::yaml_stream(&catalogue, &settings));
            Ok(ExitCode::SUCCESS)
        }
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
