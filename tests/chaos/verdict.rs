//! Reading a chaos run back and printing its figures: the I/O around the pure audit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use apache_avro::types::Value;
use echo_catalog::topics::dlq_topic;
use echo_storage::S3Service;
use echo_tests::pipeline::word_error_rate;
use echo_tests::{read_topic, Isolation, Seen, TestEnv};
use echo_transcription::analysis::count_words;

use crate::audit::{audit, Event, Expect, Figures};
use crate::corpus::Upload;

/// Audits the run until nothing is stuck or `patience` is spent, and returns the last
/// figures.
pub async fn settle(
    env: &TestEnv,
    expected: &HashMap<String, Expect>,
    patience: Duration,
) -> Result<Figures> {
    // Every client is done, so every upload that will ever be submitted is on the topic.
    let started = Instant::now();
    loop {
        let figures = audit(&read_events(env).await?, expected);
        if figures.stuck.is_empty() || started.elapsed() > patience {
            return Ok(figures);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Every event and command of the run, as a downstream consumer reads them.
async fn read_events(env: &TestEnv) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    for topic in &env.catalogue.topics {
        for seen in read_topic(&env.config, &env.topic(&topic.name), Isolation::Committed).await? {
            events.extend(event_of(&seen));
        }
    }
    Ok(events)
}

/// The audit's view of a record; `None` for a record that is not a decodable event.
fn event_of(seen: &Seen) -> Option<Event> {
    let (type_name, metadata, value) = (
        seen.type_name?,
        seen.metadata.as_ref()?,
        seen.value.as_ref()?,
    );
    let int = |name: &str| match field(value, name) {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    };
    Some(Event {
        type_name: type_name.to_string(),
        key: seen.key.clone(),
        event_id: metadata.event_id.clone(),
        resource: metadata.correlation_id.clone(),
        cause: metadata.causation_id.clone(),
        occurred_at: metadata.occurred_at,
        filename: text(value, "filename").map(str::to_string),
        chunk_index: int("chunk_index"),
        chunk_count: int("chunk_count"),
        attempt: int("attempt"),
    })
}

/// A field of an Avro record.
fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Record(fields) => fields.iter().find(|(k, _)| k == name).map(|(_, v)| v),
        _ => None,
    }
}

/// A string field of an Avro record, also where the schema lets it be null (a union).
fn text<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    match field(value, name) {
        Some(Value::String(s)) => Some(s),
        Some(Value::Union(_, inner)) => match inner.as_ref() {
            Value::String(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// How the written transcripts compare with what was spoken and announced.
#[derive(Debug, Default)]
pub struct Quality {
    /// Transcripts read back.
    pub checked: usize,
    /// Transcripts whose word count differs from the one `transcription.completed`
    /// announced: a second, different write of the artifact.
    pub mismatched: Vec<String>,
    /// Word error rate against the spoken text, per transcript.
    pub wer: Vec<f64>,
}

/// Reads back the transcript of every ready upload.
pub async fn artifacts(env: &TestEnv, uploads: &[Upload]) -> Result<Quality> {
    let s3 = S3Service::new(&env.config)?;
    let spoken: HashMap<String, &str> = uploads
        .iter()
        .filter_map(|u| Some((u.filename(), u.text.as_deref()?)))
        .collect();
    let mut filenames: HashMap<String, String> = HashMap::new();
    let mut completed: Vec<(String, i32, Option<String>)> = Vec::new();
    for topic in ["echo.upload.requests", "echo.transcription.events"] {
        for seen in read_topic(&env.config, &env.topic(topic), Isolation::Committed).await? {
            let (Some(metadata), Some(value)) = (&seen.metadata, &seen.value) else {
                continue;
            };
            if let Some(name) = text(value, "filename") {
                filenames.insert(metadata.correlation_id.clone(), name.to_string());
            }
            if seen.type_name == Some("transcription.completed") {
                let words = match field(value, "word_count") {
                    Some(Value::Int(n)) => *n,
                    _ => -1,
                };
                let key = field(value, "artifacts").and_then(|a| text(a, "txt_key"));
                completed.push((
                    metadata.correlation_id.clone(),
                    words,
                    key.map(str::to_string),
                ));
            }
        }
    }
    let mut quality = Quality::default();
    for (resource, announced, key) in completed {
        // Every upload of the run asks for every format, so a transcript without one is a bug.
        let Some(key) = key else {
            quality.mismatched.push(format!(
                "{resource}: transcription.completed names no txt_key"
            ));
            continue;
        };
        let body = s3
            .get_bytes(&key)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let transcript = String::from_utf8_lossy(&body.unwrap_or_default()).into_owned();
        quality.checked += 1;
        if count_words(&transcript) as i32 != announced {
            quality.mismatched.push(format!(
                "{resource}: {key} has {} words, transcription.completed said {announced}",
                count_words(&transcript)
            ));
        }
        if let Some(said) = filenames.get(&resource).and_then(|f| spoken.get(f)) {
            quality.wer.push(word_error_rate(said, &transcript));
        }
    }
    Ok(quality)
}

/// Records in each processor's DLQ.
pub async fn dlq_counts(env: &TestEnv) -> Result<Vec<(String, usize)>> {
    let mut counts = Vec::new();
    for p in &env.catalogue.processors {
        let seen = read_topic(
            &env.config,
            &env.topic(&dlq_topic(&p.name)),
            Isolation::Committed,
        )
        .await?;
        counts.push((p.name.clone(), seen.len()));
    }
    Ok(counts)
}

/// Prints the figures, and the evidence behind any that is not zero.
pub fn print(seed: u64, command: &str, f: &Figures, q: &Quality, dlq: &[(String, usize)]) {
    let good = f.ready_once + f.good_rejected.len();
    println!();
    println!("chaos figures (seed {seed})");
    println!(
        "  uploads submitted / terminal / stuck: {} / {} / {}",
        f.submitted,
        f.terminal,
        f.stuck.len()
    );
    println!(
        "  resource.ready exactly once per good upload: {} of {good}",
        f.ready_once
    );
    println!("  good uploads rejected: {}", f.good_rejected.len());
    println!("  bad uploads made ready: {}", f.bad_ready.len());
    println!(
        "  resources with more than one resource.ready: {}",
        f.ready_more_than_once.len()
    );
    println!(
        "  duplicate effects: {}",
        f.duplicates.len() + q.mismatched.len()
    );
    println!("  lost events: {}", f.lost.len());
    println!(
        "  time to terminal: max {:.1} s, p95 {:.1} s",
        f.max_ms() as f64 / 1000.0,
        f.p95_ms() as f64 / 1000.0
    );
    let mean = q.wer.iter().sum::<f64>() / q.wer.len().max(1) as f64;
    let worst = q.wer.iter().copied().fold(0.0, f64::max);
    println!(
        "  transcripts read back: {} (word error rate mean {mean:.3}, max {worst:.3})",
        q.checked
    );
    let dlq_line: Vec<String> = dlq.iter().map(|(p, n)| format!("{p} {n}")).collect();
    println!("  DLQ records: {}", dlq_line.join(", "));
    for (label, list) in [
        ("stuck", &f.stuck),
        ("good rejected", &f.good_rejected),
        ("bad made ready", &f.bad_ready),
        ("ready more than once", &f.ready_more_than_once),
        ("duplicate", &f.duplicates),
        ("artifact differs", &q.mismatched),
        ("lost", &f.lost),
    ] {
        for line in list.iter().take(20) {
            println!("  {label}: {line}");
        }
    }
    println!("  repeat with: {command}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `txt_key` became nullable (a union): read as a plain string, every key read back was
    /// empty and every transcript "differed".
    #[test]
    fn a_nullable_string_field_is_read_through_its_union() {
        let artifacts = Value::Record(vec![
            (
                "txt_key".into(),
                Value::Union(1, Box::new(Value::String("r/transcript.txt".into()))),
            ),
            ("srt_key".into(), Value::Union(0, Box::new(Value::Null))),
            ("json_key".into(), Value::String("r/report.json".into())),
        ]);
        assert_eq!(text(&artifacts, "txt_key"), Some("r/transcript.txt"));
        assert_eq!(text(&artifacts, "srt_key"), None);
        assert_eq!(text(&artifacts, "json_key"), Some("r/report.json"));
    }
}
