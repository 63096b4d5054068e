//! The job aggregator's rules as pure functions: hand-made records and the timers it asked
//! for in, decisions and states out, with the state folded the way the runtime folds it
//! (input, then each output) and timers kept the way the runtime keeps them.

use echo_catalog::events::{
    ChunkProcess, ChunkProcessingCompleted, ChunkProcessingFailed, ChunkProcessingStarted,
    ChunkRange, ProcessingJobCreated, ProcessingTimeout, TranscriptOptions, ValidationPassed,
};
use echo_catalog::record::{EventMetadata, Record};
use echo_chunking::FIRST_ATTEMPT;
use echo_job_aggregator::decide::chunk_timer;
use echo_job_aggregator::{
    AggregatorState, ChunkStatus, JobAggregatorConfig, JobAggregatorDecider,
};
use echo_runtime::testing::{self, types};
use echo_runtime::{Decider, Decision, HandlerError, Incoming};

const RESOURCE: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
const JOB: &str = "job-1";
const KEY: &str = "resources/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d/upload";
const NOW: i64 = 1_700_000_000_000;
/// 65 s in 30 s chunks overlapping 1 s: three chunks.
const DURATION: i64 = 65_000;

fn meta(event_id: &str) -> EventMetadata {
    EventMetadata::new(event_id, RESOURCE, "test", NOW)
}

fn incoming<R: Record>(record: &R) -> Incoming {
    Incoming::from_record(
        &record.metadata().correlation_id,
        record,
        "echo.processing.events",
    )
}

fn job_created(job_id: &str, chunk_count: i32) -> Incoming {
    incoming(&ProcessingJobCreated {
        metadata: meta(job_id),
        job_id: job_id.into(),
        object_key: KEY.into(),
        chunk_count,
        chunk_ms: 30_000,
        overlap_ms: 1_000,
        duration_ms: DURATION,
        etag: None,
        size_bytes: None,
        chunks: None,
        speech_ms: None,
        options: None,
    })
}

/// A job whose creation event lists its chunks, as validation plans them at pauses.
fn job_with_chunks(ranges: &[(i64, i64)]) -> Incoming {
    incoming(&ProcessingJobCreated {
        metadata: meta(JOB),
        job_id: JOB.into(),
        object_key: KEY.into(),
        chunk_count: ranges.len() as i32,
        chunk_ms: 30_000,
        overlap_ms: 1_000,
        duration_ms: DURATION,
        etag: None,
        size_bytes: None,
        chunks: Some(
            ranges
                .iter()
                .map(|&(start_ms, end_ms)| ChunkRange {
                    start_ms,
                    end_ms,
                    channel: None,
                })
                .collect(),
        ),
        speech_ms: Some(20_000),
        options: None,
    })
}

fn completed(event_id: &str, job_id: &str, index: i32) -> Incoming {
    incoming(&ChunkProcessingCompleted {
        metadata: meta(event_id),
        job_id: job_id.into(),
        chunk_index: index,
        start_ms: 0,
        end_ms: 30_000,
        segments: Vec::new(),
        language: None,
    })
}

fn worker_failed(event_id: &str, index: i32) -> Incoming {
    incoming(&ChunkProcessingFailed {
        metadata: meta(event_id),
        job_id: JOB.into(),
        chunk_index: index,
        reason: "model crashed".into(),
        attempt: 1,
    })
}

/// The aggregator of one resource, stepped as the runtime steps it.
type Harness = testing::Harness<JobAggregatorDecider>;

/// An aggregator with the default settings that has seen nothing yet.
fn harness() -> Harness {
    Harness::new(JobAggregatorDecider {
        config: JobAggregatorConfig::default(),
    })
}

/// An aggregator whose job of three chunks (three runs of one) was just created at `NOW`,
/// all three dispatched at once (three runs in flight): the watchdog's view of a job.
fn with_job() -> Harness {
    let mut h = harness();
    h.decider.config.runs_in_flight = 3;
    h.record(&job_created(JOB, 3), (), NOW).unwrap();
    h
}

/// A job of `count` chunks listed in its creation event, 10 s each.
fn job_of(count: usize) -> Incoming {
    let ranges: Vec<(i64, i64)> = (0..count as i64)
        .map(|i| (i * 10_000, i * 10_000 + 10_000))
        .collect();
    job_with_chunks(&ranges)
}

fn started(event_id: &str, index: i32, attempt: i32) -> Incoming {
    incoming(&ChunkProcessingStarted {
        metadata: meta(event_id),
        job_id: JOB.into(),
        chunk_index: index,
        worker: "w-1".into(),
        attempt,
    })
}

/// The chunk indices of the `chunk.process` commands a decision dispatches.
fn dispatched(decision: &Decision) -> Vec<i32> {
    decision
        .emit
        .iter()
        .filter(|o| o.type_name == "chunk.process")
        .map(|o| o.decode::<ChunkProcess>().unwrap().chunk_index)
        .collect()
}

/// The status of chunk `index` of the tracked job.
fn status(h: &Harness, index: usize) -> ChunkStatus {
    h.state.job.as_ref().unwrap().chunks[index].status
}

fn is_empty(decision: &Decision) -> bool {
    decision.emit.is_empty() && decision.schedule.is_empty() && decision.cancel.is_empty()
}

#[test]
fn a_new_job_dispatches_its_first_runs_each_with_a_deadline_and_queues_the_rest() {
    let mut h = harness();
    let decision = h.record(&job_created(JOB, 3), (), NOW).unwrap();
    // Three chunks are three runs of one; two runs are in flight by default.
    assert_eq!(dispatched(&decision), [0, 1]);
    assert!(decision.cancel.is_empty());
    for (i, out) in decision.emit.iter().enumerate() {
        let cmd: ChunkProcess = out.decode().unwrap();
        assert_eq!(out.key, format!("{JOB}:{i}"));
        assert_eq!((cmd.chunk_index, cmd.chunk_count), (i as i32, 3));
        assert_eq!(cmd.attempt, FIRST_ATTEMPT);
        assert_eq!(cmd.object_key, KEY);
        assert_eq!(cmd.metadata.correlation_id, RESOURCE);
        assert_eq!(cmd.metadata.causation_id.as_deref(), Some(JOB));
    }
    let names: Vec<&str> = decision.schedule.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["chunk-0", "chunk-1"]);
    for t in &decision.schedule {
        // First in its run: the base deadline, no chunk of the run ahead of it.
        assert_eq!(t.due_at_ms, NOW + 120_000);
        assert_eq!(t.payload, JOB);
        assert_eq!(t.scheduled_by.event_id, JOB);
    }
    let job = h.state.job.as_ref().unwrap();
    assert_eq!((job.job_id.as_str(), job.chunk_count), (JOB, 3));
    assert_eq!(job.object_key, KEY);
    let ranges: Vec<_> = job.chunks.iter().map(|c| c.start_ms..c.end_ms).collect();
    assert_eq!(ranges, [0..30_000, 29_000..59_000, 58_000..65_000]);
    let statuses: Vec<_> = job.chunks.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            ChunkStatus::Pending,
            ChunkStatus::Pending,
            ChunkStatus::Queued
        ]
    );
    assert_eq!(JobAggregatorDecider::backlog(&h.state), 1);
}

#[test]
fn each_run_in_progress_keeps_one_chunk_waiting_for_its_worker() {
    let mut h = harness();
    // 24 chunks: runs of three, two runs in progress; each has its first chunk dispatched.
    let decision = h.record(&job_of(24), (), NOW).unwrap();
    assert_eq!(dispatched(&decision), [0, 3]);
    let due: Vec<i64> = decision
        .schedule
        .iter()
        .map(|t| t.due_at_ms - NOW)
        .collect();
    assert_eq!(due, [120_000, 120_000]);
    assert_eq!(JobAggregatorDecider::backlog(&h.state), 22);

    // A worker starts chunk 0: its deadline counts from then, and chunk 1 is dispatched to
    // wait behind it (its deadline allows for the one chunk ahead).
    let first = h.record(&started("s-0", 0, 1), (), NOW + 50_000).unwrap();
    assert_eq!(dispatched(&first), [1]);
    assert_eq!(
        h.timer("chunk-0").unwrap().due_at_ms,
        NOW + 50_000 + 120_000
    );
    assert_eq!(
        h.timer("chunk-1").unwrap().due_at_ms,
        NOW + 50_000 + 130_000
    );
    assert_eq!(
        dispatched(&h.record(&started("s-1", 1, 1), (), NOW + 53_000).unwrap()),
        [2]
    );
    // A chunk completed without its start seen (the start was lost) is taken all the same.
    assert_eq!(
        dispatched(
            &h.record(&completed("c-3", JOB, 3), (), NOW + 54_000)
                .unwrap()
        ),
        [4]
    );
    // Run 0 is all taken: the next run starts.
    let last = h.record(&started("s-2", 2, 1), (), NOW + 56_000).unwrap();
    assert_eq!(dispatched(&last), [6]);
    assert_eq!(JobAggregatorDecider::backlog(&h.state), 18);
    // A start of an attempt that is not the latest, or a repeat, moves nothing.
    assert!(is_empty(
        &h.record(&started("s-2b", 2, 1), (), NOW + 57_000).unwrap()
    ));
    assert!(is_empty(
        &h.record(&started("s-4x", 4, 2), (), NOW + 57_000).unwrap()
    ));
}

#[test]
fn more_runs_in_flight_dispatch_more_at_once() {
    let mut h = harness();
    h.decider.config.runs_in_flight = 4;
    let decision = h.record(&job_of(24), (), NOW).unwrap();
    assert_eq!(dispatched(&decision), [0, 3, 6, 9]);
}

#[test]
fn a_failed_chunk_fails_the_job_its_queued_chunks_are_never_dispatched() {
    let mut h = harness();
    h.record(&job_of(24), (), NOW).unwrap();
    let decision = h.record(&worker_failed("f-0", 0), (), NOW + 5).unwrap();
    assert!(decision.emit.is_empty(), "{decision:?}");
    assert_eq!(
        decision.cancel,
        [chunk_timer(0), chunk_timer(3)],
        "every deadline of the job"
    );
    assert!(h.state.is_finished());
    assert_eq!(JobAggregatorDecider::backlog(&h.state), 0);
    // The chunk still in the topic starts and completes: nothing is dispatched after it.
    for (i, input) in [started("s-3", 3, 1), completed("c-3", JOB, 3)]
        .iter()
        .enumerate()
    {
        let decision = h.record(input, (), NOW + 10 + i as i64).unwrap();
        assert!(decision.emit.is_empty(), "{decision:?}");
    }
}

#[test]
fn a_job_whose_chunk_count_contradicts_its_plan_is_refused() {
    let mut h = harness();
    let err = h.record(&job_created(JOB, 4), (), NOW).unwrap_err();
    assert!(matches!(err, HandlerError::Permanent(_)), "{err:?}");
}

#[test]
fn listed_chunks_are_tracked_and_reissued_as_planned_with_their_gaps() {
    let mut h = harness();
    let decision = h
        .record(
            &job_with_chunks(&[(2_000, 9_000), (25_000, 40_000)]),
            (),
            NOW,
        )
        .unwrap();
    assert_eq!(decision.schedule.len(), 2);
    let again: ChunkProcess = h.fire("chunk-1", ()).unwrap().emit[1].decode().unwrap();
    assert_eq!((again.start_ms, again.end_ms), (25_000, 40_000));
    let listed = job_with_chunks(&[(2_000, 9_000)]);
    let mut miscounted: ProcessingJobCreated = listed.decode().unwrap();
    miscounted.chunk_count = 2;
    let err = harness()
        .record(&incoming(&miscounted), (), NOW)
        .unwrap_err();
    assert!(matches!(err, HandlerError::Permanent(_)), "{err:?}");
}

#[test]
fn a_job_without_chunks_is_finished_at_once_and_sets_no_deadline() {
    let mut h = harness();
    let decision = h.record(&job_with_chunks(&[]), (), NOW).unwrap();
    assert!(is_empty(&decision), "{decision:?}");
    assert!(h.state.is_finished());
}

#[test]
fn a_second_job_for_the_resource_is_ignored() {
    let mut h = with_job();
    let before = h.state.clone();
    let decision = h.record(&job_created("job-2", 3), (), NOW + 5).unwrap();
    assert!(is_empty(&decision), "{decision:?}");
    assert_eq!(h.state, before);
}

#[test]
fn a_completed_chunk_cancels_its_deadline_and_a_duplicate_changes_nothing() {
    let mut h = with_job();
    let decision = h.record(&completed("c-1", JOB, 1), (), NOW + 5).unwrap();
    assert!(decision.emit.is_empty() && decision.schedule.is_empty());
    assert_eq!(decision.cancel, [chunk_timer(1)]);
    assert_eq!(status(&h, 1), ChunkStatus::Completed);
    assert!(h.timer("chunk-1").is_none() && h.timer("chunk-0").is_some());

    let before = h.state.clone();
    let duplicate = h.record(&completed("c-2", JOB, 1), (), NOW + 6).unwrap();
    assert!(is_empty(&duplicate), "{duplicate:?}");
    assert_eq!(h.state, before);
}

#[test]
fn a_chunk_a_worker_failed_is_settled_and_every_deadline_cancelled() {
    let mut h = with_job();
    let decision = h.record(&worker_failed("f-1", 2), (), NOW + 5).unwrap();
    assert!(decision.emit.is_empty());
    assert_eq!(
        decision.cancel,
        [chunk_timer(2), chunk_timer(0), chunk_timer(1)]
    );
    assert_eq!(status(&h, 2), ChunkStatus::Failed);
    // A later success does not overturn the first outcome.
    let late = h.record(&completed("c-1", JOB, 2), (), NOW + 6).unwrap();
    assert!(is_empty(&late));
    assert_eq!(status(&h, 2), ChunkStatus::Failed);
}

#[test]
fn a_late_chunk_times_out_and_is_reissued_with_the_next_attempt() {
    let mut h = with_job();
    let due = h.timer("chunk-1").unwrap().due_at_ms;
    let decision = h.fire("chunk-1", ()).unwrap();
    assert_eq!(types(&decision), ["processing.timeout", "chunk.process"]);

    let timeout: ProcessingTimeout = decision.emit[0].decode().unwrap();
    assert_eq!(decision.emit[0].key, RESOURCE);
    assert_eq!(
        (
            timeout.job_id.as_str(),
            timeout.chunk_index,
            timeout.attempt,
            timeout.deadline_ms
        ),
        (JOB, 1, FIRST_ATTEMPT, due)
    );

    let again: ChunkProcess = decision.emit[1].decode().unwrap();
    assert_eq!(decision.emit[1].key, format!("{JOB}:1"));
    assert_eq!(again.attempt, FIRST_ATTEMPT + 1);
    assert_eq!((again.start_ms, again.end_ms), (29_000, 59_000));
    assert_eq!((again.chunk_index, again.chunk_count), (1, 3));
    assert_eq!(again.object_key, KEY);
    assert_eq!(again.metadata.correlation_id, RESOURCE);
    assert_eq!(again.metadata.causation_id.as_deref(), Some(JOB));

    assert_eq!(decision.schedule.len(), 1);
    assert_eq!(decision.schedule[0].name, "chunk-1");
    assert_eq!(decision.schedule[0].due_at_ms, due + 120_000);
    assert_eq!(decision.schedule[0].payload, JOB);
    assert_eq!(h.state.job.as_ref().unwrap().chunks[1].attempt, 2);
    assert_eq!(status(&h, 1), ChunkStatus::Pending);
}

#[test]
fn a_reissued_chunk_carries_the_upload_prompt_like_the_first() {
    let mut job: ProcessingJobCreated = job_created(JOB, 3).decode().unwrap();
    job.options = Some(TranscriptOptions {
        prompt: Some("Xochitl Quetzalcoatl".into()),
        ..TranscriptOptions::default()
    });
    let mut h = harness();
    let first = h.record(&incoming(&job), (), NOW).unwrap();
    for out in &first.emit {
        let cmd: ChunkProcess = out.decode().unwrap();
        assert_eq!(cmd.prompt.as_deref(), Some("Xochitl Quetzalcoatl"));
    }
    let decision = h.fire("chunk-1", ()).unwrap();
    let again: ChunkProcess = decision.emit[1].decode().unwrap();
    assert_eq!(again.prompt.as_deref(), Some("Xochitl Quetzalcoatl"));
}

#[test]
fn a_reissued_chunk_keeps_its_channel() {
    let mut h = harness();
    let mut job: ProcessingJobCreated = job_with_chunks(&[(0, 20_000), (0, 20_000)])
        .decode()
        .unwrap();
    for (i, chunk) in job.chunks.as_mut().unwrap().iter_mut().enumerate() {
        chunk.channel = Some(i as i32);
    }
    h.record(&incoming(&job), (), NOW).unwrap();
    let decision = h.fire("chunk-1", ()).unwrap();
    let again: ChunkProcess = decision.emit[1].decode().unwrap();
    assert_eq!(again.channel, Some(1));
}

#[test]
fn a_chunk_fails_when_its_last_attempt_times_out() {
    let mut h = with_job();
    assert_eq!(
        types(&h.fire("chunk-0", ()).unwrap()),
        ["processing.timeout", "chunk.process"]
    );
    assert_eq!(
        types(&h.fire("chunk-0", ()).unwrap()),
        ["processing.timeout", "chunk.process"]
    );
    let last = h.fire("chunk-0", ()).unwrap();
    assert_eq!(
        types(&last),
        ["processing.timeout", "chunk.processing.failed"]
    );
    assert!(last.schedule.is_empty());
    let timeout: ProcessingTimeout = last.emit[0].decode().unwrap();
    assert_eq!(timeout.attempt, 3);
    let failed: ChunkProcessingFailed = last.emit[1].decode().unwrap();
    assert_eq!(last.emit[1].key, RESOURCE);
    assert_eq!((failed.job_id.as_str(), failed.chunk_index), (JOB, 0));
    assert_eq!(failed.reason, "timed out after 3 attempts");
    assert_eq!(failed.attempt, 3);
    assert_eq!(status(&h, 0), ChunkStatus::Failed);
    assert!(h.timer("chunk-0").is_none());

    // Its own failure comes back on the topic it reads: nothing more happens.
    let echo = incoming(&failed);
    let before = h.state.clone();
    assert!(is_empty(&h.record(&echo, (), NOW + 1).unwrap()));
    assert_eq!(h.state, before);
}

#[test]
fn the_attempt_limit_is_configurable() {
    let mut h = harness();
    h.decider.config.max_attempts = 1;
    h.record(&job_created(JOB, 3), (), NOW).unwrap();
    assert_eq!(
        types(&h.fire("chunk-1", ()).unwrap()),
        ["processing.timeout", "chunk.processing.failed"]
    );
}

#[test]
fn a_completion_of_the_timed_out_attempt_settles_the_reissued_chunk() {
    let mut h = with_job();
    h.fire("chunk-1", ()).unwrap();
    assert!(h.timer("chunk-1").is_some());
    // The first worker was only slow: its result arrives after the re-issue.
    let decision = h
        .record(&completed("c-1", JOB, 1), (), NOW + 200_000)
        .unwrap();
    assert_eq!(decision.cancel, [chunk_timer(1)]);
    assert_eq!(status(&h, 1), ChunkStatus::Completed);
    assert!(h.timer("chunk-1").is_none());
    // The re-issued attempt completes too: ignored.
    assert!(is_empty(
        &h.record(&completed("c-2", JOB, 1), (), NOW + 210_000)
            .unwrap()
    ));
}

#[test]
fn a_timer_that_fires_after_completion_does_nothing() {
    let mut h = with_job();
    // The timer was already due when the completion was handled (same batch): the driver
    // may still hand it over; it must find the chunk settled.
    let timer = h.timer("chunk-0").unwrap().clone();
    h.record(&completed("c-1", JOB, 0), (), NOW + 5).unwrap();
    let before = h.state.clone();
    let decision = h.fire_timer(&timer, ()).unwrap();
    assert!(is_empty(&decision), "{decision:?}");
    assert_eq!(h.state, before);
}

#[test]
fn unrelated_inputs_and_timers_are_ignored() {
    let mut h = with_job();
    let before = h.state.clone();
    let timeout = incoming(&ProcessingTimeout {
        metadata: meta("t-1"),
        job_id: JOB.into(),
        chunk_index: 0,
        attempt: 1,
        deadline_ms: NOW,
    });
    let passed = incoming(&ValidationPassed {
        metadata: meta("v-1"),
        container: "wave".into(),
        codec: "pcm_s16le".into(),
        channels: 1,
        sample_rate_hz: 16_000,
        duration_ms: DURATION,
    });
    for input in [&timeout, &passed] {
        assert!(
            is_empty(&h.record(input, (), NOW + 1).unwrap()),
            "{}",
            input.type_name
        );
    }
    // Results and starts of another job, or of a chunk the job does not have.
    assert!(is_empty(
        &h.record(&completed("c-x", "job-2", 0), (), NOW + 1)
            .unwrap()
    ));
    assert!(is_empty(
        &h.record(&started("s-y", 7, 1), (), NOW + 1).unwrap()
    ));
    assert!(is_empty(
        &h.record(&completed("c-y", JOB, 7), (), NOW + 1).unwrap()
    ));
    assert_eq!(h.state, before);

    // A timer of another job, and one with a foreign name.
    let mut foreign = h.timer("chunk-0").unwrap().clone();
    foreign.payload = "job-2".into();
    assert!(is_empty(&h.fire_timer(&foreign, ()).unwrap()));
    foreign.name = "upload-expiry".into();
    foreign.payload = JOB.into();
    assert!(is_empty(&h.fire_timer(&foreign, ()).unwrap()));
    assert_eq!(h.state, before);
}

#[test]
fn results_before_any_job_are_ignored() {
    let mut h = harness();
    assert!(is_empty(
        &h.record(&completed("c-1", JOB, 0), (), NOW).unwrap()
    ));
    assert_eq!(h.state, AggregatorState::default());
}

#[test]
fn a_job_is_finished_once_every_chunk_has_its_result_or_one_failed() {
    let mut h = with_job();
    assert!(!AggregatorState::default().is_finished(), "no job yet");
    assert!(!h.state.is_finished());
    h.record(&completed("c-0", JOB, 0), (), NOW + 5).unwrap();
    h.record(&completed("c-1", JOB, 1), (), NOW + 5).unwrap();
    assert!(!h.state.is_finished(), "chunk 2 is still pending");
    h.record(&completed("c-2", JOB, 2), (), NOW + 6).unwrap();
    assert!(h.state.is_finished());

    let mut h = with_job();
    h.record(&worker_failed("f-1", 1), (), NOW + 5).unwrap();
    assert!(h.state.is_finished(), "a failed chunk ends the job");
}

#[test]
fn declares_what_its_catalogue_entry_lists() {
    testing::assert_declared_as_catalogued(&harness().decider);
}
