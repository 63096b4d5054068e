//! `echoctl trace RESOURCE_ID`: the resource's events as a tree with a timeline, and how its
//! chain ended or where it stopped.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use echo_catalog::Catalogue;
use echo_runtime::driver::now_ms;
use echo_runtime::EchoConfig;

use crate::trace::chain::Chain;
use crate::trace::verdict::{judge, Verdict};
use crate::trace::{read, render};

/// `trace` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The resource id (the key of its records).
    resource_id: String,
    /// How far back to look (`7d`, `12h`, `30m`): records written before are not read.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    since: Duration,
    /// Prints one JSON document instead of the tree.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand. Exits 0 for a ready resource, 1 when it was not found, 2 when it
/// was rejected and 3 when its chain stopped.
pub async fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    let catalogue = Catalogue::load()?;
    let since_ms = now_ms() - args.since.as_millis() as i64;
    let found = read::read(config, &catalogue, &args.resource_id, since_ms).await?;
    let chain = Chain::new(found.records, &catalogue.flow);
    let verdict = judge(&chain, &catalogue.flow, &found.evidence);
    if args.json {
        let doc = render::json(&args.resource_id, &chain, &verdict, since_ms);
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!(
            "{}",
            render::text(&args.resource_id, &chain, &verdict, found.evidence.now_ms)
        );
    }
    Ok(ExitCode::from(match verdict {
        Verdict::Ready(_) => 0,
        Verdict::NotFound => 1,
        Verdict::Rejected { .. } => 2,
        Verdict::Stopped(_) => 3,
    }))
}
