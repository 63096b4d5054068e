//! What a chaos run left on the topics, judged: pure, so the judgement itself is unit-tested.
//!
//! The audit reads every event and command of the run as a downstream consumer would
//! (read_committed) and checks each submitted upload against what was expected of it.

use std::collections::{BTreeMap, HashMap, HashSet};

/// One record read back, reduced to what the audit needs.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// Catalogue type (`resource.ready`).
    pub type_name: String,
    /// Record key.
    pub key: String,
    /// `metadata.event_id`.
    pub event_id: String,
    /// `metadata.correlation_id`: the resource.
    pub resource: String,
    /// `metadata.causation_id`.
    pub cause: Option<String>,
    /// `metadata.occurred_at`, ms.
    pub occurred_at: i64,
    /// `filename` of an `upload.requested`: ties a resource to the corpus file it carries.
    pub filename: Option<String>,
    /// `chunk_index` of chunk commands and events.
    pub chunk_index: Option<i32>,
    /// `chunk_count` of `processing.job.created`.
    pub chunk_count: Option<i32>,
    /// `attempt` of `chunk.process`: a re-issued chunk is a new command, not a duplicate.
    pub attempt: Option<i32>,
}

/// What a corpus file should come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Speech: exactly one `resource.ready`.
    Ready,
    /// Bad input: a named failure, cleanup, and no `resource.ready`.
    Rejected,
}

/// The figures of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Uploads whose `upload.requested` is on the topic.
    pub submitted: usize,
    /// Of those, the ones that reached their terminal event.
    pub terminal: usize,
    /// Submitted but not terminal: the number that must be 0.
    pub stuck: Vec<String>,
    /// Good uploads with exactly one `resource.ready`.
    pub ready_once: usize,
    /// Good uploads that were rejected instead (a wrong outcome, e.g. a deadline missed).
    pub good_rejected: Vec<String>,
    /// Bad uploads that became ready.
    pub bad_ready: Vec<String>,
    /// Resources with more than one `resource.ready`.
    pub ready_more_than_once: Vec<String>,
    /// Effects recorded twice: the same event id on two records, or two records of one type
    /// caused by the same record for the same key (and chunk attempt).
    pub duplicates: Vec<String>,
    /// Events missing from a chain: a cause that is nowhere, or a step a terminal resource
    /// must have passed through.
    pub lost: Vec<String>,
    /// Time from `upload.requested` to the terminal event, ms, per terminal resource.
    pub time_to_terminal_ms: Vec<i64>,
}

impl Figures {
    /// Largest time to terminal.
    pub fn max_ms(&self) -> i64 {
        self.time_to_terminal_ms.iter().copied().max().unwrap_or(0)
    }

    /// 95th percentile of time to terminal (nearest rank).
    pub fn p95_ms(&self) -> i64 {
        let mut sorted = self.time_to_terminal_ms.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0;
        }
        let rank = (sorted.len() * 95).div_ceil(100);
        sorted[rank.max(1) - 1]
    }

    /// True when nothing is stuck, lost, duplicated or wrongly decided.
    pub fn clean(&self) -> bool {
        self.stuck.is_empty()
            && self.lost.is_empty()
            && self.duplicates.is_empty()
            && self.good_rejected.is_empty()
            && self.bad_ready.is_empty()
            && self.ready_more_than_once.is_empty()
    }
}

/// Steps every ready resource passed through, one of each.
const READY_CHAIN: &[&str] = &[
    "upload.requested",
    "upload.url.generated",
    "upload.finalize",
    "upload.completed",
    "validation.started",
    "validation.passed",
    "processing.job.created",
    "transcription.started",
    "transcription.completed",
];

/// Steps every rejected resource ends with once its cleanup is done.
const CLEANUP_CHAIN: &[&str] = &["upload.requested", "cleanup.initiated"];

/// The event that ends a resource's story: `resource.ready` for speech, `cleanup.completed`
/// after a named failure.
fn terminal_type(expect: Expect) -> &'static str {
    match expect {
        Expect::Ready => "resource.ready",
        Expect::Rejected => "cleanup.completed",
    }
}

/// Judges the run. `expected` maps corpus file names to what they should come to.
pub fn audit(events: &[Event], expected: &HashMap<String, Expect>) -> Figures {
    let mut figures = Figures::default();
    let ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    figures.duplicates = duplicates(events);
    for e in events {
        if let Some(cause) = &e.cause {
            if !ids.contains(cause.as_str()) {
                figures.lost.push(format!(
                    "{} {} of {}: its cause {cause} is on no topic",
                    e.type_name, e.event_id, e.resource
                ));
            }
        }
    }
    let mut by_resource: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in events {
        by_resource.entry(&e.resource).or_default().push(e);
    }
    for (resource, chain) in by_resource {
        let Some(request) = chain.iter().find(|e| e.type_name == "upload.requested") else {
            continue;
        };
        let Some(expect) = request
            .filename
            .as_ref()
            .and_then(|f| expected.get(f))
            .copied()
        else {
            continue;
        };
        figures.submitted += 1;
        let count = |t: &str| chain.iter().filter(|e| e.type_name == t).count();
        let ready = count("resource.ready");
        let failed = count("resource.rejected") + count("upload.failed");
        if ready > 1 {
            figures.ready_more_than_once.push(resource.to_string());
        }
        match expect {
            Expect::Ready if ready == 1 => figures.ready_once += 1,
            Expect::Ready if failed > 0 => figures.good_rejected.push(resource.to_string()),
            Expect::Rejected if ready > 0 => figures.bad_ready.push(resource.to_string()),
            _ => {}
        }
        let outcome = match (ready, failed) {
            (1.., _) => Expect::Ready,
            (0, 1..) => Expect::Rejected,
            _ => expect,
        };
        let Some(end) = chain
            .iter()
            .filter(|e| e.type_name == terminal_type(outcome))
            .min_by_key(|e| e.occurred_at)
        else {
            figures.stuck.push(format!(
                "{resource} ({}): last {}",
                request.filename.as_deref().unwrap_or("?"),
                chain
                    .iter()
                    .max_by_key(|e| e.occurred_at)
                    .map(|e| e.type_name.as_str())
                    .unwrap_or("?")
            ));
            continue;
        };
        figures.terminal += 1;
        figures
            .time_to_terminal_ms
            .push(end.occurred_at - request.occurred_at);
        let required = match outcome {
            Expect::Ready => READY_CHAIN,
            Expect::Rejected => CLEANUP_CHAIN,
        };
        for step in required {
            if count(step) == 0 {
                figures.lost.push(format!("{resource}: no {step}"));
            }
        }
        match outcome {
            Expect::Ready => figures.lost.extend(missing_chunks(resource, &chain)),
            Expect::Rejected if failed == 0 => figures
                .lost
                .push(format!("{resource}: cleaned up without a named failure")),
            Expect::Rejected => {}
        }
    }
    figures
}

/// Records written twice: the same event id more than once, or two different records of
/// one type with the same cause, key and chunk attempt (a decision taken twice).
fn duplicates(events: &[Event]) -> Vec<String> {
    let mut out = Vec::new();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for e in events {
        *by_id.entry(&e.event_id).or_default() += 1;
    }
    for e in events {
        if by_id.get(e.event_id.as_str()) > Some(&1) {
            out.push(format!("{} {} written twice", e.type_name, e.event_id));
            by_id.remove(e.event_id.as_str());
        }
    }
    let mut by_step: HashMap<(&str, &str, &str, Option<i32>), HashSet<&str>> = HashMap::new();
    for e in events {
        let Some(cause) = &e.cause else { continue };
        by_step
            .entry((&e.type_name, cause, &e.key, e.attempt))
            .or_default()
            .insert(&e.event_id);
    }
    for ((type_name, cause, key, _), ids) in by_step {
        if ids.len() > 1 {
            out.push(format!(
                "{type_name} for {key} caused by {cause}: {} different records",
                ids.len()
            ));
        }
    }
    out.sort();
    out
}

/// Chunks of a ready resource that were never commanded or never completed.
fn missing_chunks(resource: &str, chain: &[&Event]) -> Vec<String> {
    let Some(count) = chain
        .iter()
        .find(|e| e.type_name == "processing.job.created")
        .and_then(|e| e.chunk_count)
    else {
        return Vec::new();
    };
    let indices = |t: &str| -> HashSet<i32> {
        chain
            .iter()
            .filter(|e| e.type_name == t)
            .filter_map(|e| e.chunk_index)
            .collect()
    };
    let (commanded, completed) = (
        indices("chunk.process"),
        indices("chunk.processing.completed"),
    );
    (0..count)
        .flat_map(|i| {
            let mut gaps = Vec::new();
            if !commanded.contains(&i) {
                gaps.push(format!("{resource}: no chunk.process for chunk {i}"));
            }
            if !completed.contains(&i) {
                gaps.push(format!(
                    "{resource}: no chunk.processing.completed for chunk {i}"
                ));
            }
            gaps
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a chain of events for one resource, each caused by the one before.
    struct Chain {
        resource: String,
        events: Vec<Event>,
        clock: i64,
    }

    impl Chain {
        fn new(resource: &str, filename: &str) -> Chain {
            let mut chain = Chain {
                resource: resource.into(),
                events: Vec::new(),
                clock: 1_000,
            };
            chain.push("upload.requested", |e| e.filename = Some(filename.into()));
            chain
        }

        fn push(&mut self, type_name: &str, edit: impl FnOnce(&mut Event)) -> &mut Chain {
            self.clock += 100;
            let mut e = Event {
                type_name: type_name.into(),
                key: self.resource.clone(),
                event_id: format!("{}-{}", self.resource, self.events.len()),
                resource: self.resource.clone(),
                cause: self.events.last().map(|e| e.event_id.clone()),
                occurred_at: self.clock,
                ..Event::default()
            };
            edit(&mut e);
            self.events.push(e);
            self
        }

        fn then(&mut self, type_name: &str) -> &mut Chain {
            self.push(type_name, |_| {})
        }
    }

    fn ready_chain(resource: &str, filename: &str, chunks: i32) -> Vec<Event> {
        let mut c = Chain::new(resource, filename);
        for step in &READY_CHAIN[1..7] {
            c.then(step);
        }
        c.events.last_mut().unwrap().chunk_count = Some(chunks);
        for i in 0..chunks {
            c.push("chunk.process", |e| {
                e.chunk_index = Some(i);
                e.attempt = Some(1);
                e.key = format!("job:{i}");
            });
            c.push("chunk.processing.completed", |e| e.chunk_index = Some(i));
        }
        c.then("transcription.started")
            .then("transcription.completed")
            .then("resource.ready");
        c.events
    }

    fn rejected_chain(resource: &str, filename: &str) -> Vec<Event> {
        let mut c = Chain::new(resource, filename);
        c.then("upload.url.generated")
            .then("upload.finalize")
            .then("upload.completed")
            .then("validation.failed")
            .then("resource.rejected")
            .then("cleanup.initiated")
            .then("cleanup.completed");
        c.events
    }

    fn expected() -> HashMap<String, Expect> {
        HashMap::from([
            ("good.wav".into(), Expect::Ready),
            ("bad.wav".into(), Expect::Rejected),
        ])
    }

    #[test]
    fn complete_chains_are_clean() {
        let mut events = ready_chain("r1", "good.wav", 3);
        events.extend(rejected_chain("r2", "bad.wav"));
        let f = audit(&events, &expected());
        assert!(f.clean(), "{f:#?}");
        assert_eq!((f.submitted, f.terminal, f.ready_once), (2, 2, 1));
        assert_eq!(f.time_to_terminal_ms, vec![1_500, 700]);
        assert_eq!((f.max_ms(), f.p95_ms()), (1_500, 1_500));
    }

    #[test]
    fn a_missing_chunk_completion_is_lost() {
        let mut events = ready_chain("r1", "good.wav", 3);
        events
            .retain(|e| !(e.type_name == "chunk.processing.completed" && e.chunk_index == Some(1)));
        let f = audit(&events, &expected());
        assert!(
            f.lost.iter().any(|l| l.contains("completed for chunk 1")),
            "{f:#?}"
        );
    }

    #[test]
    fn a_dangling_cause_is_lost() {
        let mut events = ready_chain("r1", "good.wav", 1);
        events.retain(|e| e.type_name != "upload.completed");
        let f = audit(&events, &expected());
        assert!(
            f.lost.iter().any(|l| l.contains("is on no topic")),
            "{f:#?}"
        );
        assert!(
            f.lost.iter().any(|l| l.contains("no upload.completed")),
            "{f:#?}"
        );
    }

    #[test]
    fn a_record_written_twice_and_a_decision_taken_twice_are_duplicates() {
        let mut events = ready_chain("r1", "good.wav", 1);
        let ready = events.last().unwrap().clone();
        events.push(ready.clone());
        let f = audit(&events, &expected());
        assert!(
            f.duplicates.iter().any(|d| d.contains("written twice")),
            "{f:#?}"
        );
        assert_eq!(f.ready_more_than_once, vec!["r1".to_string()]);

        let mut events = ready_chain("r1", "good.wav", 1);
        let mut again = events.last().unwrap().clone();
        again.event_id = "other".into();
        events.push(again);
        let f = audit(&events, &expected());
        assert!(
            f.duplicates
                .iter()
                .any(|d| d.contains("2 different records")),
            "{f:#?}"
        );
    }

    #[test]
    fn a_reissued_chunk_is_not_a_duplicate() {
        let mut events = ready_chain("r1", "good.wav", 1);
        let mut reissue = events
            .iter()
            .find(|e| e.type_name == "chunk.process")
            .unwrap()
            .clone();
        reissue.event_id = "reissue".into();
        reissue.attempt = Some(2);
        events.push(reissue);
        assert!(audit(&events, &expected()).duplicates.is_empty());
    }

    #[test]
    fn unfinished_chains_are_stuck_and_wrong_outcomes_are_counted() {
        let mut events = ready_chain("r1", "good.wav", 1);
        events.pop();
        let mut rejected = rejected_chain("r2", "good.wav");
        rejected.pop();
        events.extend(rejected);
        let mut bad = ready_chain("r3", "bad.wav", 1);
        bad.retain(|e| e.type_name != "transcription.started");
        events.extend(bad);
        let f = audit(&events, &expected());
        assert_eq!(f.submitted, 3);
        assert_eq!(f.stuck.len(), 2, "{f:#?}");
        assert_eq!(f.good_rejected, vec!["r2".to_string()]);
        assert_eq!(f.bad_ready, vec!["r3".to_string()]);
        assert!(f
            .lost
            .iter()
            .any(|l| l.contains("r3: no transcription.started")));
    }
}
