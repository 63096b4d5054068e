//! `echoctl resources`: the resources requested recently, newest first, with how each
//! ended (or that it has not yet), how long it took, how long its audio is and why it failed.
//! Read from the few small topics that carry a resource's beginning and end: the requests,
//! the upload facts, the transcription facts and the resource lifecycle, never the chunks.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use apache_avro::types::Value;
use echo_catalog::Catalogue;
use echo_runtime::codec::Codec;
use echo_runtime::driver::now_ms;
use echo_runtime::envelope::metadata_of;
use echo_runtime::EchoConfig;
use rdkafka::message::Message;
use serde_json::json;

use crate::topic_reader::{partitions_of_topics, read_since};
use crate::trace::render::{date_time, duration};

/// `resources` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Only resources in this state: `ready`, `rejected`, `failed` (the upload), `expired`
    /// (past its retention) or `in-progress`.
    #[arg(long)]
    status: Option<String>,
    /// How far back to look for requests (`24h`, `7d`, `30m`).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    since: Duration,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Prints a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// The states a resource can be in, as `--status` names them.
const STATUSES: &[&str] = &["ready", "rejected", "failed", "expired", "in-progress"];

/// What the list shows of one resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Its id.
    pub resource: String,
    /// When it was requested, ms since the epoch.
    pub requested_at: i64,
    /// The file name the client gave.
    pub filename: String,
    /// One of [`STATUSES`].
    pub status: &'static str,
    /// When it reached that status (none while in progress).
    pub settled_at: Option<i64>,
    /// Length of its audio, once transcribed.
    pub audio_ms: Option<i64>,
    /// Why it was rejected or failed.
    pub reason: Option<String>,
}

/// Folds a resource's records (type and value, any order) into its summary; `None` for a
/// resource with no request among them (its request is older than the time searched).
pub fn summarize(resource: &str, records: &[(&str, i64, &Value)]) -> Option<Summary> {
    let (_, requested_at, request) = records.iter().find(|(t, _, _)| *t == "upload.requested")?;
    let mut summary = Summary {
        resource: resource.to_string(),
        requested_at: *requested_at,
        filename: text(request, "filename").unwrap_or_default(),
        status: "in-progress",
        ..Summary::default()
    };
    let mut sorted: Vec<_> = records.to_vec();
    sorted.sort_by_key(|(_, at, _)| *at);
    for (type_name, at, value) in sorted {
        let reason = || {
            let parts: Vec<String> = ["reason_code", "message"]
                .iter()
                .filter_map(|f| text(value, f))
                .collect();
            Some(parts.join(": "))
        };
        match type_name {
            "transcription.completed" => summary.audio_ms = long(value, "duration_ms"),
            "resource.ready" => (summary.status, summary.settled_at) = ("ready", Some(at)),
            "resource.rejected" => {
                (summary.status, summary.settled_at) = ("rejected", Some(at));
                summary.reason = reason();
            }
            "upload.failed" => {
                (summary.status, summary.settled_at) = ("failed", Some(at));
                summary.reason = reason();
            }
            "resource.ttl.reached" => summary.status = "expired",
            _ => {}
        }
    }
    Some(summary)
}

/// A string or enum field as text.
fn text(value: &Value, name: &str) -> Option<String> {
    match field(value, name)? {
        Value::String(s) | Value::Enum(_, s) => Some(s.clone()),
        _ => None,
    }
}

/// A long field.
fn long(value: &Value, name: &str) -> Option<i64> {
    match field(value, name)? {
        Value::Long(l) => Some(*l),
        _ => None,
    }
}

fn field<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    match value {
        Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    }
}

/// The topics a resource's beginning and end are on.
const TOPICS: &[&str] = &[
    "echo.upload.requests",
    "echo.upload.events",
    "echo.transcription.events",
    "echo.resource.events",
];

/// Runs the subcommand.
pub async fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    if let Some(s) = &args.status {
        if !STATUSES.contains(&s.as_str()) {
            bail!("unknown status {s:?}: one of {}", STATUSES.join(", "));
        }
    }
    let catalogue = Catalogue::load()?;
    for topic in TOPICS {
        catalogue.topic(topic)?;
    }
    let since_ms = now_ms() - args.since.as_millis() as i64;
    let topics: Vec<String> = TOPICS.iter().map(|t| config.topic(t)).collect();
    let messages = read_since(config, &partitions_of_topics(config, &topics)?, since_ms)?;
    let codec = Codec::new(&config.registry.url)?;
    let mut by_resource: HashMap<String, Vec<(&'static str, i64, Value)>> = HashMap::new();
    for m in &messages {
        let Ok(decoded) = codec.decode(m.payload()).await else {
            continue;
        };
        if let Some(meta) = metadata_of(&decoded.value) {
            by_resource.entry(meta.correlation_id).or_default().push((
                decoded.info.type_name,
                meta.occurred_at,
                decoded.value,
            ));
        }
    }
    let mut summaries: Vec<Summary> = by_resource
        .iter()
        .filter_map(|(id, records)| {
            let records: Vec<(&str, i64, &Value)> =
                records.iter().map(|(t, at, v)| (*t, *at, v)).collect();
            summarize(id, &records)
        })
        .filter(|s| args.status.as_deref().is_none_or(|want| s.status == want))
        .collect();
    summaries.sort_by_key(|s| std::cmp::Reverse(s.requested_at));
    summaries.truncate(args.limit);
    if args.json {
        let rows: Vec<_> = summaries
            .iter()
            .map(|s| {
                json!({
                    "resource_id": s.resource,
                    "requested_at": s.requested_at,
                    "filename": s.filename,
                    "status": s.status,
                    "duration_ms": s.settled_at.map(|at| at - s.requested_at),
                    "audio_ms": s.audio_ms,
                    "reason": s.reason,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&summaries);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(summaries: &[Summary]) {
    println!(
        "{:<36}  {:<23}  {:<11}  {:>9}  {:>9}  FILE / REASON",
        "RESOURCE", "REQUESTED", "STATUS", "TOOK", "AUDIO"
    );
    for s in summaries {
        let took = s
            .settled_at
            .map_or("-".into(), |at| duration(at - s.requested_at));
        let audio = s.audio_ms.map_or("-".into(), duration);
        let about = match &s.reason {
            Some(reason) => format!("{}  {reason}", s.filename),
            None => s.filename.clone(),
        };
        println!(
            "{:<36}  {:<23}  {:<11}  {:>9}  {:>9}  {about}",
            s.resource,
            date_time(s.requested_at),
            s.status,
            took,
            audio
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[(&str, Value)]) -> Value {
        Value::Record(
            fields
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn a_transcribed_resource_is_ready_with_its_audio_length() {
        let request = record(&[("filename", Value::String("call.wav".into()))]);
        let done = record(&[("duration_ms", Value::Long(61_000))]);
        let empty = record(&[]);
        let s = summarize(
            "r",
            &[
                ("resource.ready", 9_000, &empty),
                ("upload.requested", 1_000, &request),
                ("transcription.completed", 8_900, &done),
            ],
        )
        .unwrap();
        assert_eq!(
            (s.status, s.settled_at, s.audio_ms, s.filename.as_str()),
            ("ready", Some(9_000), Some(61_000), "call.wav")
        );
    }

    #[test]
    fn a_rejection_carries_its_reason_and_a_resource_without_request_is_left_out() {
        let request = record(&[]);
        let rejected = record(&[
            ("reason_code", Value::Enum(3, "TOO_LONG".into())),
            ("message", Value::String("3 h".into())),
        ]);
        let s = summarize(
            "r",
            &[
                ("upload.requested", 1, &request),
                ("resource.rejected", 2, &rejected),
            ],
        )
        .unwrap();
        assert_eq!(
            (s.status, s.reason.as_deref()),
            ("rejected", Some("TOO_LONG: 3 h"))
        );
        assert!(summarize("r", &[("resource.rejected", 2, &rejected)]).is_none());
        let pending = summarize("r", &[("upload.requested", 1, &request)]).unwrap();
        assert_eq!((pending.status, pending.settled_at), ("in-progress", None));
    }
}
