//! The chain and its verdict for people (a tree with a timeline) and for tools (JSON).

use std::fmt::Write;

use serde_json::{json, Value};
use time::macros::format_description;
use time::OffsetDateTime;

use super::chain::{Chain, Subject};
use super::verdict::{Finding, Stop, Verdict};

/// Width of the timeline column, in characters.
const TIMELINE_WIDTH: usize = 32;

/// The tree of the chain, each record with its producer, time, time since its cause, a bar on
/// the resource's timeline and its key facts; then the verdict.
pub fn text(resource: &str, chain: &Chain<'_>, verdict: &Verdict, now_ms: i64) -> String {
    let mut out = String::new();
    let records = &chain.records;
    if records.is_empty() {
        let _ = writeln!(out, "resource {resource}");
    } else {
        let (first, last) = (records[0].at(), records[records.len() - 1].at());
        let _ = writeln!(
            out,
            "resource {resource}: {} records, {} from first to last, started {}",
            records.len(),
            duration(last - first),
            date_time(first)
        );
        let mut rows = Vec::new();
        walk(chain, None, "", &mut rows);
        let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let producer_width = records
            .iter()
            .map(|r| r.metadata.producer.len())
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "\n{:<width$}  {:<producer_width$}  {:<12}  {:>9}  {:<tw$}  FACTS",
            "RECORD",
            "BY",
            "AT (UTC)",
            "+CAUSE",
            format!("0 .. {}", duration(last - first)),
            tw = TIMELINE_WIDTH + 2,
        );
        for (label, i) in rows {
            let r = &records[i];
            let parent_at = chain.parent(i).map(|p| records[p].at());
            let since = parent_at.map_or(String::new(), |p| format!("+{}", duration(r.at() - p)));
            let facts: Vec<String> = r.facts.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let line = format!(
                "{label:<width$}  {:<producer_width$}  {}  {since:>9}  |{}|  {}",
                r.metadata.producer,
                time_of_day(r.at()),
                bar(parent_at.unwrap_or(r.at()), r.at(), first, last),
                facts.join(" "),
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    let _ = writeln!(out);
    out.push_str(&verdict_text(chain, verdict, now_ms));
    out
}

/// Rows of the tree under `parent`, depth first, each with its drawn prefix.
fn walk(chain: &Chain<'_>, parent: Option<usize>, indent: &str, rows: &mut Vec<(String, usize)>) {
    let children = chain.children(parent);
    for (n, i) in children.iter().enumerate() {
        let last = n + 1 == children.len();
        let (branch, more) = match (parent, last) {
            (None, _) => ("", ""),
            (Some(_), true) => ("└─ ", "   "),
            (Some(_), false) => ("├─ ", "│  "),
        };
        rows.push((
            format!("{indent}{branch}{}", chain.records[*i].type_name),
            *i,
        ));
        walk(chain, Some(*i), &format!("{indent}{more}"), rows);
    }
}

/// A bar from `from` to `to` on the timeline from `first` to `last`.
fn bar(from: i64, to: i64, first: i64, last: i64) -> String {
    let span = (last - first).max(1) as f64;
    let col = |t: i64| (((t - first) as f64 / span) * (TIMELINE_WIDTH - 1) as f64).round() as usize;
    let (start, end) = (col(from), col(to).max(col(from)));
    (0..TIMELINE_WIDTH)
        .map(|c| {
            if (start..=end).contains(&c) {
                '█'
            } else {
                ' '
            }
        })
        .collect()
}

/// The verdict in words.
fn verdict_text(chain: &Chain<'_>, verdict: &Verdict, now_ms: i64) -> String {
    let records = &chain.records;
    match verdict {
        Verdict::NotFound => {
            "verdict: not found: no record of this resource in the time searched\n".into()
        }
        Verdict::Ready(i) => format!(
            "verdict: ready: {} at {}, {} after its first record\n",
            records[*i].type_name,
            time_of_day(records[*i].at()),
            duration(records[*i].at() - records[0].at())
        ),
        Verdict::Rejected {
            outcome,
            failure,
            reason,
        } => {
            let ended = if outcome == failure {
                String::new()
            } else {
                format!("; ended by {}", records[*outcome].type_name)
            };
            format!(
                "verdict: rejected: {} ({}) at {}: {reason}{ended}\n",
                records[*failure].type_name,
                records[*failure].metadata.producer,
                time_of_day(records[*failure].at()),
            )
        }
        Verdict::Stopped(stops) => {
            let mut out = format!(
                "verdict: stopped: {} open step{}\n",
                stops.len(),
                if stops.len() == 1 { "" } else { "s" }
            );
            for stop in stops {
                out.push_str(&stop_text(chain, stop, now_ms));
            }
            out
        }
    }
}

/// One open step: what it is about, the last record, what should follow and why it has not.
fn stop_text(chain: &Chain<'_>, stop: &Stop, now_ms: i64) -> String {
    let subject = match stop.subject {
        Subject::Resource => "the resource".to_string(),
        Subject::Chunk(c) => format!("chunk {c}"),
    };
    let last = match stop.last {
        Some(i) => {
            let r = &chain.records[i];
            format!(
                "last {} at {} ({} ago)",
                r.type_name,
                time_of_day(r.at()),
                duration(now_ms - r.at())
            )
        }
        None => "no record at all".into(),
    };
    let mut out = format!(
        "  {subject}: {last}\n    waits for {} from {}\n",
        stop.expected.join(" or "),
        stop.by
    );
    for finding in &stop.findings {
        let _ = writeln!(out, "    - {}", finding_text(finding, now_ms));
    }
    out
}

fn finding_text(finding: &Finding, now_ms: i64) -> String {
    match finding {
        Finding::WaitingForClient => "the client has not sent it".into(),
        Finding::DeadLettered(d) => format!(
            "dead-lettered by {} ({}{}): {} [echoctl dlq show --processor {} --partition {} --offset {}]",
            d.processor,
            d.class,
            d.type_name.as_deref().map(|t| format!(", {t}")).unwrap_or_default(),
            d.reason,
            d.processor,
            d.partition,
            d.offset
        ),
        Finding::Retrying(r) => format!(
            "in retry tier {} of {} after {} attempt{}, runs again {}",
            r.tier,
            r.processor,
            r.attempt,
            if r.attempt == 1 { "" } else { "s" },
            r.due_at_ms.map_or("when due".into(), |at| when(at, now_ms))
        ),
        Finding::Parked { processor } => {
            format!("held by {processor} behind an earlier record of its key in a retry tier")
        }
        Finding::Deadline {
            processor,
            timer,
            due_at_ms,
        } => format!("deadline: {processor}'s timer {timer} fires {}", when(*due_at_ms, now_ms)),
        Finding::NoDeadline { processor, timer } => {
            format!("no deadline: {processor} holds no timer {timer}, so nothing ends this wait")
        }
        Finding::NotConsumed {
            group,
            topic,
            partition,
            committed,
            lag,
        } => format!(
            "not read yet: group {group} is at offset {} of {topic} partition {partition}, \
             {lag} behind its end",
            committed.map_or("-".into(), |c| c.to_string())
        ),
        Finding::NothingRunning { group } => {
            format!("nothing running: group {group} has no member")
        }
        Finding::ConsumedWithoutResult { group } => format!(
            "group {group} read it and nothing followed, failed or waits: see that processor's log"
        ),
    }
}

/// The chain and verdict as one JSON document.
pub fn json(resource: &str, chain: &Chain<'_>, verdict: &Verdict, since_ms: i64) -> Value {
    let records: Vec<Value> = chain
        .records
        .iter()
        .map(|r| {
            json!({
                "type": r.type_name,
                "event_id": r.metadata.event_id,
                "causation_id": r.metadata.causation_id,
                "occurred_at": r.metadata.occurred_at,
                "producer": r.metadata.producer,
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "chunk": r.chunk,
                "facts": r.facts.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    json!({
        "resource": resource,
        "since_ms": since_ms,
        "records": records,
        "verdict": verdict_json(chain, verdict),
    })
}

fn verdict_json(chain: &Chain<'_>, verdict: &Verdict) -> Value {
    let id = |i: usize| chain.records[i].metadata.event_id.clone();
    match verdict {
        Verdict::NotFound => json!({ "status": "not_found" }),
        Verdict::Ready(i) => json!({ "status": "ready", "event_id": id(*i) }),
        Verdict::Rejected {
            outcome,
            failure,
            reason,
        } => json!({
            "status": "rejected",
            "outcome": { "type": chain.records[*outcome].type_name, "event_id": id(*outcome) },
            "failure": { "type": chain.records[*failure].type_name, "event_id": id(*failure) },
            "reason": reason,
        }),
        Verdict::Stopped(stops) => json!({
            "status": "stopped",
            "open": stops.iter().map(|s| json!({
                "chunk": match s.subject { Subject::Chunk(c) => Some(c), Subject::Resource => None },
                "last": s.last.map(|i| json!({ "type": chain.records[i].type_name, "event_id": id(i) })),
                "expected": s.expected,
                "by": s.by,
                "findings": s.findings,
            })).collect::<Vec<_>>(),
        }),
    }
}

/// `in 2m 03s` or `2m 03s ago`, from `now_ms`.
fn when(at_ms: i64, now_ms: i64) -> String {
    if at_ms >= now_ms {
        format!(
            "at {} (in {})",
            time_of_day(at_ms),
            duration(at_ms - now_ms)
        )
    } else {
        format!(
            "at {} ({} ago, overdue)",
            time_of_day(at_ms),
            duration(now_ms - at_ms)
        )
    }
}

/// A duration for people: `840 ms`, `14.2 s`, `3m 05s`, `2h 10m`, `3d 4h`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1e3),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, ms % 60_000 / 1_000),
        3_600_000..86_400_000 => format!("{}h {:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
        _ => format!("{}d {}h", ms / 86_400_000, ms % 86_400_000 / 3_600_000),
    }
}

fn utc(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `14:03:07.120`, UTC.
fn time_of_day(ms: i64) -> String {
    utc(ms)
        .format(format_description!(
            "[hour]:[minute]:[second].[subsecond digits:3]"
        ))
        .unwrap_or_default()
}

/// `2026-12-03 14:03:07 UTC`.
pub fn date_time(ms: i64) -> String {
    utc(ms)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap_or_default()
}
