//! How a resource's chain ended, or where it stands and why: the chain held against the
//! target flow, and each open point against the evidence. Pure.

use echo_catalog::events::{ChunkProcess, ChunkProcessingStarted};
use echo_catalog::flow::{Flow, CLIENT};
use echo_catalog::record::Record;
use echo_chunk_worker::Lane;
use serde::Serialize;

use super::chain::{Chain, Open, Subject, Traced};
use super::evidence::{DeadLetter, Evidence, Origin, Retrying};

/// The outcome `trace` ends with.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// No record of the resource since the time bound.
    NotFound,
    /// The chain reached its ready record (index into the chain's records).
    Ready(usize),
    /// The chain ended in a refusal: the outcome record, the record that failed, and why.
    Rejected {
        /// The record that ends the chain (`resource.rejected`, `upload.failed`).
        outcome: usize,
        /// The failure it answers (`validation.failed`, …); the outcome itself when it has no
        /// cause in the chain.
        failure: usize,
        /// The failure's reason, as its payload says.
        reason: String,
    },
    /// The chain has not ended: where each open part stands, and why.
    Stopped(Vec<Stop>),
}

/// One open point of the chain, diagnosed.
#[derive(Debug, Clone)]
pub struct Stop {
    /// What the stopped chain is about.
    pub subject: Subject,
    /// Its last record (none: a chunk with no record at all).
    pub last: Option<usize>,
    /// What should have followed.
    pub expected: Vec<String>,
    /// Who must bring it about: a processor, or the client.
    pub by: String,
    /// Why it has not, as far as the cluster tells.
    pub findings: Vec<Finding>,
}

/// One reason a step has not happened; as JSON, tagged by `kind`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The client has not sent its next record.
    WaitingForClient,
    /// The processor gave up on the record: it is in its DLQ.
    DeadLettered(DeadLetter),
    /// The record waits in a retry tier.
    Retrying(Retrying),
    /// The record is held while an earlier record of its key is being retried.
    Parked {
        /// The processor holding it.
        processor: String,
    },
    /// The deadline of the step is pending.
    Deadline {
        /// The processor keeping it.
        processor: String,
        /// The timer's name.
        timer: String,
        /// When it fires.
        due_at_ms: i64,
    },
    /// The step has a deadline, but no such timer is pending: nothing will end the wait.
    NoDeadline {
        /// The processor that should keep it.
        processor: String,
        /// The timer's name.
        timer: String,
    },
    /// The processor's group has not read the record yet.
    NotConsumed {
        /// Its group.
        group: String,
        /// Catalogue name of the topic the record is on.
        topic: String,
        /// Its partition.
        partition: i32,
        /// The group's position on the record's partition (`None`: never committed).
        committed: Option<i64>,
        /// How many offsets it is behind the partition's end.
        lag: i64,
    },
    /// No instance of the processor is running (its group has no member).
    NothingRunning {
        /// Its group.
        group: String,
    },
    /// The group read the record, and nothing followed, failed or waits: the processor's log
    /// is the next place to look.
    ConsumedWithoutResult {
        /// Its group.
        group: String,
    },
}

/// The verdict on `chain` given `evidence`.
pub fn judge(chain: &Chain<'_>, flow: &Flow, evidence: &Evidence) -> Verdict {
    if chain.records.is_empty() {
        return Verdict::NotFound;
    }
    if let Some(ready) = chain.first_of(&flow.outcomes.ready) {
        return Verdict::Ready(ready);
    }
    let outcome = chain
        .records
        .iter()
        .position(|r| flow.outcomes.rejected.iter().any(|t| t == r.type_name));
    if let Some(outcome) = outcome {
        // The failure an outcome answers is its cause when that says why (validation.failed
        // under resource.rejected); an outcome caused by a plain record (upload.failed under
        // the request whose URL expired) is the failure itself.
        let failure = chain
            .parent(outcome)
            .filter(|&p| !reason_of(&chain.records[p]).is_empty())
            .unwrap_or(outcome);
        let reason = reason_of(&chain.records[failure]);
        return Verdict::Rejected {
            outcome,
            failure,
            reason,
        };
    }
    Verdict::Stopped(
        chain
            .open()
            .iter()
            .map(|open| diagnose(chain, open, evidence))
            .collect(),
    )
}

/// What a failure record says about why: its reason code, reason and message.
fn reason_of(record: &Traced) -> String {
    ["reason_code", "reason", "message"]
        .iter()
        .filter_map(|f| record.fact(f))
        .collect::<Vec<_>>()
        .join(": ")
}

/// Why the step after `open` has not happened.
fn diagnose(chain: &Chain<'_>, open: &Open<'_>, evidence: &Evidence) -> Stop {
    let step = open.step;
    let record = open.last.map(|i| &chain.records[i]);
    let by = responsible(&step.by, record, evidence);
    let chunk = match open.subject {
        Subject::Chunk(c) => Some(c),
        Subject::Resource => None,
    };
    let mut findings = Vec::new();
    let since = record.map_or(i64::MIN, |r| r.at());
    if by == CLIENT {
        findings.push(Finding::WaitingForClient);
        // What the client did send may have been refused before it became part of the chain.
        findings.extend(
            evidence
                .dead_letters
                .iter()
                .filter(|d| d.at_ms >= since)
                .cloned()
                .map(Finding::DeadLettered),
        );
    } else if let Some(record) = record {
        let at = Origin {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
        };
        let mine = |processor: &str, origin: &Option<Origin>| {
            processor == by && origin.as_ref() == Some(&at)
        };
        findings.extend(
            evidence
                .dead_letters
                .iter()
                .filter(|d| mine(&d.processor, &d.origin))
                .cloned()
                .map(Finding::DeadLettered),
        );
        findings.extend(
            evidence
                .retries
                .iter()
                .filter(|r| !r.consumed && mine(&r.processor, &r.origin))
                .cloned()
                .map(Finding::Retrying),
        );
        if evidence
            .parked
            .iter()
            .any(|(p, id)| *p == by && *id == record.metadata.event_id)
        {
            findings.push(Finding::Parked {
                processor: by.clone(),
            });
        }
        if findings.is_empty() {
            findings.extend(reading(evidence, &by, &at));
        }
    }
    if let Some(deadline) = &step.deadline {
        let name = deadline.timer_name(chunk);
        match evidence
            .timers
            .iter()
            .find(|t| t.processor == deadline.processor && t.name == name)
        {
            Some(t) => findings.push(Finding::Deadline {
                processor: t.processor.clone(),
                timer: t.name.clone(),
                due_at_ms: t.due_at_ms,
            }),
            None => findings.push(Finding::NoDeadline {
                processor: deadline.processor.clone(),
                timer: name,
            }),
        }
    }
    Stop {
        subject: open.subject,
        last: open.last,
        expected: step.next.clone(),
        by,
        findings,
    }
}

/// Who takes the step after `record`: the flow's processor `by`, except that a chunk command
/// in the express lane is the express worker's (the pool passes over it), and a chunk a worker
/// started is that worker's group's (`producer` of `chunk.processing.started`).
fn responsible(by: &str, record: Option<&Traced>, evidence: &Evidence) -> String {
    if let Some(r) = record.filter(|r| r.type_name == ChunkProcessingStarted::TYPE) {
        return r.metadata.producer.clone();
    }
    let number = |name: &str| record.and_then(|r| r.fact(name)?.parse::<i32>().ok());
    match (record, number("attempt"), number("chunks")) {
        (Some(r), Some(attempt), Some(chunks))
            if r.type_name == ChunkProcess::TYPE
                && Lane::for_attempt(attempt, chunks, evidence.express_max_chunks)
                    == Lane::Express =>
        {
            Lane::Express.processor().to_string()
        }
        _ => by.to_string(),
    }
}

/// What the group of `processor` has done with the record at `at`.
fn reading(evidence: &Evidence, processor: &str, at: &Origin) -> Vec<Finding> {
    let Some(group) = evidence.groups.get(processor) else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    match group.positions.get(&(at.topic.clone(), at.partition)) {
        Some(p) if p.committed.is_none_or(|c| c <= at.offset) => {
            findings.push(Finding::NotConsumed {
                group: group.name.clone(),
                topic: at.topic.clone(),
                partition: at.partition,
                committed: p.committed,
                lag: p.end - p.committed.unwrap_or(0).min(at.offset),
            })
        }
        Some(_) => findings.push(Finding::ConsumedWithoutResult {
            group: group.name.clone(),
        }),
        None => {}
    }
    if group.members == 0 {
        findings.push(Finding::NothingRunning {
            group: group.name.clone(),
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use apache_avro::types::Value;
    use echo_catalog::record::EventMetadata;
    use echo_catalog::Catalogue;

    use super::*;
    use crate::trace::evidence::{Group, PendingTimer, Position};

    fn record(
        type_name: &'static str,
        id: &str,
        cause: Option<&str>,
        at: i64,
        fields: Vec<(&str, Value)>,
    ) -> Traced {
        let metadata = EventMetadata::new(id, "r", "p", at).with_cause(cause);
        let value = Value::Record(
            fields
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
        );
        let topic = Catalogue::load()
            .unwrap()
            .topic_of(type_name)
            .unwrap()
            .name
            .clone();
        Traced::new(type_name, metadata, &value, (topic, 0, at))
    }

    fn chunk(type_name: &'static str, id: &str, cause: &str, at: i64, index: i32) -> Traced {
        record(
            type_name,
            id,
            Some(cause),
            at,
            vec![
                ("job_id", Value::String("j".into())),
                ("chunk_index", Value::Int(index)),
            ],
        )
    }

    /// The failure a rejected chain names, and its reason.
    fn rejection(chain: &Chain<'_>, flow: &Flow) -> (&'static str, String) {
        match judge(chain, flow, &Evidence::default()) {
            Verdict::Rejected {
                failure, reason, ..
            } => (chain.records[failure].type_name, reason),
            other => panic!("not rejected: {other:?}"),
        }
    }

    /// An upload completed at 5 and its job of `chunks` chunks created at 10.
    fn job_created(chunks: i32) -> Vec<Traced> {
        vec![
            record("upload.completed", "c", None, 5, vec![]),
            record(
                "processing.job.created",
                "j",
                Some("c"),
                10,
                vec![
                    ("job_id", Value::String("j".into())),
                    ("chunk_count", Value::Int(chunks)),
                ],
            ),
        ]
    }

    /// A job of two chunks, created at 10; chunk 0 completed at 20; chunk 1 commanded only.
    fn job_with_a_pending_chunk() -> Vec<Traced> {
        let mut records = job_created(2);
        records.extend([
            chunk("chunk.process", "p0", "c", 10, 0),
            chunk("chunk.process", "p1", "c", 10, 1),
            chunk("chunk.processing.started", "s0", "p0", 12, 0),
            chunk("chunk.processing.completed", "d0", "p0", 20, 0),
        ]);
        records
    }

    #[test]
    fn a_chunk_nobody_read_is_where_the_chain_stopped_with_its_deadline() {
        let flow = Catalogue::load().unwrap().flow;
        let chain = Chain::new(job_with_a_pending_chunk(), &flow);
        let mut evidence = Evidence::default();
        evidence.timers.push(PendingTimer {
            processor: "job-aggregator".into(),
            name: "chunk-1".into(),
            due_at_ms: 99,
        });
        let pending = &chain.records[chain.first_of("chunk.process").unwrap() + 1];
        evidence.groups.insert(
            "chunk-worker".into(),
            Group {
                name: "echo.chunk-worker".into(),
                members: 0,
                positions: HashMap::from([(
                    (pending.topic.clone(), pending.partition),
                    Position {
                        committed: Some(pending.offset),
                        end: pending.offset + 1,
                    },
                )]),
            },
        );
        let Verdict::Stopped(stops) = judge(&chain, &flow, &evidence) else {
            panic!("not stopped")
        };
        // The job's own step waits for its chunks, so only chunk 1 is where it stands.
        assert_eq!(stops.len(), 1, "{stops:?}");
        let stop = &stops[0];
        assert_eq!(stop.subject, Subject::Chunk(1));
        assert_eq!(stop.by, "chunk-worker");
        assert_eq!(chain.records[stop.last.unwrap()].metadata.event_id, "p1");
        assert!(matches!(
            stop.findings[0],
            Finding::NotConsumed { lag: 1, .. }
        ));
        assert!(matches!(stop.findings[1], Finding::NothingRunning { .. }));
        assert!(matches!(
            &stop.findings[2],
            Finding::Deadline { timer, due_at_ms: 99, .. } if timer == "chunk-1"
        ));
    }

    #[test]
    fn a_clip_s_chunk_waits_for_the_express_worker_and_its_retry_for_the_pool() {
        let flow = Catalogue::load().unwrap().flow;
        let command = |id: &str, attempt: i32| {
            record(
                "chunk.process",
                id,
                Some("c"),
                10,
                vec![
                    ("job_id", Value::String("j".into())),
                    ("chunk_index", Value::Int(0)),
                    ("chunk_count", Value::Int(1)),
                    ("attempt", Value::Int(attempt)),
                ],
            )
        };
        let job = |records: Vec<Traced>| {
            let mut all = job_created(1);
            all.extend(records);
            all
        };
        let evidence = Evidence {
            express_max_chunks: 1,
            ..Evidence::default()
        };
        let by = |records: Vec<Traced>, evidence: &Evidence| {
            let chain = Chain::new(job(records), &flow);
            let Verdict::Stopped(stops) = judge(&chain, &flow, evidence) else {
                panic!("not stopped")
            };
            stops[0].by.clone()
        };
        assert_eq!(by(vec![command("p", 1)], &evidence), "express-chunk-worker");
        // Once started, the chunk is its starter's, whatever the lane says.
        let mut started = chunk("chunk.processing.started", "s", "p", 12, 0);
        started.metadata.producer = "express-chunk-worker".into();
        assert_eq!(
            by(vec![command("p", 1), started], &Evidence::default()),
            "express-chunk-worker"
        );
        assert_eq!(by(vec![command("p", 2)], &evidence), "chunk-worker");
        // The lane off: every command is the pool's.
        assert_eq!(
            by(vec![command("p", 1)], &Evidence::default()),
            "chunk-worker"
        );
    }

    #[test]
    fn a_chunk_not_dispatched_yet_waits_for_the_job_aggregator() {
        let flow = Catalogue::load().unwrap().flow;
        let mut records = job_with_a_pending_chunk();
        // Chunk 1 was never commanded: the aggregator holds it for its turn.
        records.retain(|r| r.metadata.event_id != "p1");
        let chain = Chain::new(records, &flow);
        let Verdict::Stopped(stops) = judge(&chain, &flow, &Evidence::default()) else {
            panic!("not stopped")
        };
        assert_eq!(stops.len(), 1, "{stops:?}");
        let stop = &stops[0];
        assert_eq!(stop.subject, Subject::Chunk(1));
        assert_eq!(stop.last, None, "no record of it yet");
        assert_eq!(stop.by, "job-aggregator");
        assert_eq!(stop.expected, ["chunk.process"]);
        assert!(
            !stop
                .findings
                .iter()
                .any(|f| matches!(f, Finding::NoDeadline { .. })),
            "waiting for its turn is not stuck: {:?}",
            stop.findings
        );
    }

    #[test]
    fn once_every_chunk_settled_the_job_waits_for_transcription() {
        let flow = Catalogue::load().unwrap().flow;
        let mut records = job_with_a_pending_chunk();
        records.push(chunk("chunk.processing.started", "s1", "p1", 13, 1));
        records.push(chunk("chunk.processing.failed", "f1", "s1", 21, 1));
        let chain = Chain::new(records, &flow);
        let Verdict::Stopped(stops) = judge(&chain, &flow, &Evidence::default()) else {
            panic!("not stopped")
        };
        assert_eq!(stops.len(), 1, "{stops:?}");
        assert_eq!(stops[0].subject, Subject::Resource);
        assert_eq!(stops[0].by, "transcription");
    }

    #[test]
    fn a_retry_issued_with_its_timeout_is_the_chunk_s_last_step() {
        let flow = Catalogue::load().unwrap().flow;
        let mut records = job_with_a_pending_chunk();
        // The deadline fired at 40: the timeout and the next attempt carry the same time.
        records.push(chunk("chunk.process", "p1b", "c", 40, 1));
        records.push(chunk("processing.timeout", "t1", "c", 40, 1));
        let chain = Chain::new(records, &flow);
        let Verdict::Stopped(stops) = judge(&chain, &flow, &Evidence::default()) else {
            panic!("not stopped")
        };
        assert_eq!(
            chain.records[stops[0].last.unwrap()].metadata.event_id,
            "p1b"
        );
    }

    #[test]
    fn an_upload_that_failed_is_its_own_failure() {
        let flow = Catalogue::load().unwrap().flow;
        let chain = Chain::new(
            vec![
                record("upload.requested", "q", None, 5, vec![]),
                record(
                    "upload.failed",
                    "f",
                    Some("q"),
                    9,
                    vec![("reason_code", Value::Enum(0, "EXPIRED".into()))],
                ),
            ],
            &flow,
        );
        assert_eq!(
            rejection(&chain, &flow),
            ("upload.failed", "EXPIRED".into())
        );
    }

    #[test]
    fn a_rejection_names_the_failure_it_answers() {
        let flow = Catalogue::load().unwrap().flow;
        let failed = record(
            "validation.failed",
            "v",
            Some("c"),
            6,
            vec![
                ("reason_code", Value::Enum(0, "TOO_LONG".into())),
                ("message", Value::String("3 h of audio".into())),
            ],
        );
        let chain = Chain::new(
            vec![
                record("upload.completed", "c", None, 5, vec![]),
                failed,
                record("resource.rejected", "x", Some("v"), 7, vec![]),
            ],
            &flow,
        );
        assert_eq!(
            rejection(&chain, &flow),
            ("validation.failed", "TOO_LONG: 3 h of audio".into())
        );
    }
}
