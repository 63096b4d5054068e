//! A resource's records as a chain: who caused whom (the tree `trace` draws) and, held against
//! the target flow, where each part of the chain stands. Pure: built from records already read.

use std::collections::{BTreeMap, HashSet};

use apache_avro::types::Value;
use echo_catalog::flow::{Flow, Step};
use echo_catalog::record::EventMetadata;

/// One record of the resource, where it was found and what it says in brief.
#[derive(Debug, Clone)]
pub struct Traced {
    /// Dotted type name.
    pub type_name: &'static str,
    /// Its metadata: ids, cause, time, producer.
    pub metadata: EventMetadata,
    /// Catalogue name of the topic it is on.
    pub topic: String,
    /// Its partition there.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The chunk it is about, for records of one chunk.
    pub chunk: Option<i32>,
    /// The job it belongs to, for records of a job.
    pub job: Option<String>,
    /// The key facts of its payload, for people (`chunk`, `range`, `reason`, …).
    pub facts: Vec<(&'static str, String)>,
}

impl Traced {
    /// A record read from `topic` at `partition`/`offset`, with the facts of its `value`.
    pub fn new(
        type_name: &'static str,
        metadata: EventMetadata,
        value: &Value,
        (topic, partition, offset): (String, i32, i64),
    ) -> Traced {
        let chunk = match field(value, "chunk_index") {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        };
        let job = match field(value, "job_id") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        Traced {
            type_name,
            metadata,
            topic,
            partition,
            offset,
            chunk,
            job,
            facts: facts_of(value),
        }
    }

    /// When it happened, milliseconds since the epoch.
    pub fn at(&self) -> i64 {
        self.metadata.occurred_at
    }

    /// The value of fact `name`, if the record has it.
    pub fn fact(&self, name: &str) -> Option<&str> {
        self.facts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Payload fields worth a glance, in the order they are shown, and how each reads.
fn facts_of(value: &Value) -> Vec<(&'static str, String)> {
    let mut facts = Vec::new();
    if let Some(Value::Int(i)) = field(value, "chunk_index") {
        facts.push(("chunk", i.to_string()));
    }
    if let (Some(Value::Long(start)), Some(Value::Long(end))) =
        (field(value, "start_ms"), field(value, "end_ms"))
    {
        facts.push((
            "range",
            format!("{:.1}-{:.1} s", *start as f64 / 1e3, *end as f64 / 1e3),
        ));
    }
    for (name, label) in [
        ("attempt", "attempt"),
        ("chunk_count", "chunks"),
        ("worker", "worker"),
        ("word_count", "words"),
        ("deleted_objects", "deleted"),
        ("filename", "file"),
        ("tenant", "tenant"),
        ("limit", "limit"),
    ] {
        if let Some(v) = field(value, name).and_then(text) {
            facts.push((label, v));
        }
    }
    if let Some(Value::Long(ms)) = field(value, "duration_ms") {
        facts.push(("audio", format!("{:.1} s", *ms as f64 / 1e3)));
    }
    for name in ["reason_code", "reason", "message"] {
        if let Some(v) = field(value, name).and_then(text) {
            facts.push((name, v));
        }
    }
    facts
}

/// A field's value as short text (an enum symbol, a string, a number, a present option).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) | Value::Enum(_, s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Long(l) => Some(l.to_string()),
        Value::Union(_, inner) => text(inner),
        _ => None,
    }
}

/// A top-level field of a record value.
fn field<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    match value {
        Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    }
}

/// What a chain is about: the resource itself, or one chunk of its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// The resource's own records.
    Resource,
    /// The records of one chunk.
    Chunk(i32),
}

/// Where a chain stands when its last record asks for a step nobody has taken yet.
#[derive(Debug, Clone)]
pub struct Open<'f> {
    /// What the chain is about.
    pub subject: Subject,
    /// Index (into the records) of its last record; `None` for a chunk of the job that has
    /// no record at all (not dispatched yet: `step` is then the dispatch it waits for).
    pub last: Option<usize>,
    /// The step that has not happened.
    pub step: &'f Step,
}

/// The records of one resource, sorted by time, with the flow they are held against.
pub struct Chain<'f> {
    /// Every record, oldest first (same millisecond: in flow order).
    pub records: Vec<Traced>,
    flow: &'f Flow,
}

impl<'f> Chain<'f> {
    /// The chain of `records` (duplicates of one event id, a replay, are kept once).
    pub fn new(mut records: Vec<Traced>, flow: &'f Flow) -> Chain<'f> {
        let mut seen = HashSet::new();
        records.retain(|r| seen.insert(r.metadata.event_id.clone()));
        records.sort_by_key(|r| (r.at(), flow.rank(r.type_name)));
        Chain { records, flow }
    }

    /// Indices of the records caused by record `parent` (none: the roots, whose cause is not
    /// among the records), oldest first.
    pub fn children(&self, parent: Option<usize>) -> Vec<usize> {
        let ids: HashSet<&str> = self
            .records
            .iter()
            .map(|r| r.metadata.event_id.as_str())
            .collect();
        self.records
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                let cause = r.metadata.causation_id.as_deref();
                match parent {
                    Some(p) => cause == Some(self.records[p].metadata.event_id.as_str()),
                    None => cause.is_none_or(|c| !ids.contains(c)),
                }
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The record that caused record `i`, if it is in the chain.
    pub fn parent(&self, i: usize) -> Option<usize> {
        let cause = self.records[i].metadata.causation_id.as_deref()?;
        self.records
            .iter()
            .position(|r| r.metadata.event_id == cause)
    }

    /// The first record of type `type_name`.
    pub fn first_of(&self, type_name: &str) -> Option<usize> {
        self.records.iter().position(|r| r.type_name == type_name)
    }

    /// Every part of the chain whose last record waits for a step: the resource's own chain
    /// and each chunk of its (latest) job. A step that waits for the job's chunks is open only
    /// once every chunk has settled.
    pub fn open(&self) -> Vec<Open<'f>> {
        let job = self
            .records
            .iter()
            .rev()
            .find(|r| r.type_name == "processing.job.created");
        let mut last: BTreeMap<Subject, usize> = BTreeMap::new();
        for (i, r) in self.records.iter().enumerate() {
            let subject = match (r.chunk, &r.job, job) {
                (Some(c), Some(j), Some(job)) if Some(j) == job.job.as_ref() => Subject::Chunk(c),
                // A chunk record of another job than the latest: not part of where it stands.
                (Some(_), _, _) => continue,
                _ => Subject::Resource,
            };
            last.insert(subject, i);
        }
        let mut open = Vec::new();
        if let Some(count) = job.and_then(|j| j.fact("chunks")?.parse::<i32>().ok()) {
            // A chunk with no record at all waits for its dispatch (its command).
            let planned = self.flow.dispatch.as_ref();
            for c in 0..count {
                match last.get(&Subject::Chunk(c)) {
                    Some(&i) => open.extend(self.open_at(Subject::Chunk(c), i)),
                    None => open.extend(planned.map(|step| Open {
                        subject: Subject::Chunk(c),
                        last: None,
                        step,
                    })),
                }
            }
        }
        let chunks_open = !open.is_empty();
        if let Some(&i) = last.get(&Subject::Resource) {
            if let Some(o) = self.open_at(Subject::Resource, i) {
                if !(o.step.after_chunks && chunks_open) {
                    open.push(o);
                }
            }
        }
        open
    }

    fn open_at(&self, subject: Subject, i: usize) -> Option<Open<'f>> {
        self.flow
            .step_after(self.records[i].type_name)
            .map(|step| Open {
                subject,
                last: Some(i),
                step,
            })
    }
}
