//! The transcription rules as pure functions: hand-made inputs in, decisions and states out,
//! with the state folded the way the runtime folds it (input, then each output); the chunk
//! results and report files an input asks to be written are in its decision, as effects, and
//! the kept chunk results are read back from a map standing in for the object store.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use echo_catalog::events::{
    CaptionRules, ChunkProcessingCompleted, ChunkProcessingFailed, ChunkProcessingStarted,
    ProcessingJobCreated, Segment, TranscriptOptions, TranscriptionCompleted, TranscriptionFailed,
    TranscriptionStarted, ValidationPassed, Word,
};
use echo_catalog::record::{EventMetadata, Record};
use echo_runtime::dead_letter::{fits, MAX_RECORD_BYTES};
use echo_runtime::headers::HeaderList;
use echo_runtime::state::{encode_changelog, KeyState};
use echo_runtime::{testing, Decision, HandlerError, Incoming, Input};
use echo_transcription::decide::{ready_job, TranscriptionDecider};
use echo_transcription::report::Artifact;
use echo_transcription::stored::{read_back, StoredResults};
use echo_transcription::{ChunkTranscript, TranscriptionState};

const RESOURCE: &str = "3f6e2b1a-9c8d-4e7f-a1b2-c3d4e5f60718";
const JOB: &str = "job-1";
const NOW: i64 = 1_700_000_000_000;

fn meta(event_id: &str) -> EventMetadata {
    EventMetadata::new(event_id, RESOURCE, "processing", NOW)
}

fn incoming<R: Record>(record: &R) -> Incoming {
    Incoming::from_record(
        &record.metadata().correlation_id,
        record,
        "echo.processing.events",
    )
}

fn job_created(job_id: &str, chunk_count: i32, duration_ms: i64) -> Incoming {
    incoming(&ProcessingJobCreated {
        metadata: meta(&format!("created-{job_id}")),
        job_id: job_id.into(),
        object_key: format!("resources/{RESOURCE}/upload"),
        chunk_count,
        chunk_ms: 30_000,
        overlap_ms: 1_000,
        duration_ms,
        etag: None,
        size_bytes: None,
        chunks: None,
        speech_ms: None,
        options: None,
    })
}

/// Chunk `index` of a 30 s / 1 s-overlap plan, saying `text` in one segment.
fn chunk_done(event_id: &str, job_id: &str, index: i32, text: &str) -> Incoming {
    let start_ms = i64::from(index) * 29_000;
    incoming(&ChunkProcessingCompleted {
        metadata: meta(event_id),
        job_id: job_id.into(),
        chunk_index: index,
        start_ms,
        end_ms: start_ms + 30_000,
        segments: vec![Segment {
            start_ms: start_ms + 5_000,
            end_ms: start_ms + 8_000,
            text: text.into(),
            confidence: 0.9,
            words: Vec::new(),
            speaker: None,
        }],
        language: None,
    })
}

fn chunk_failed(event_id: &str, job_id: &str, index: i32) -> Incoming {
    incoming(&ChunkProcessingFailed {
        metadata: meta(event_id),
        job_id: job_id.into(),
        chunk_index: index,
        reason: "decoder exploded".into(),
        attempt: 3,
    })
}

/// What the transcription processor decides, with the default settings.
type Decided = Decision<Artifact>;

thread_local! {
    /// The objects this test's decisions wrote (each test runs on a thread of its own).
    static STORE: RefCell<HashMap<String, String>> = RefCell::default();
}

/// What `observe` reads back for `input`: the kept results of the job it completes.
fn observed(state: &TranscriptionState, input: &Incoming) -> StoredResults {
    let Some(ready) = ready_job(state, input).unwrap() else {
        return StoredResults::default();
    };
    let objects: BTreeMap<i32, Option<Vec<u8>>> = ready
        .chunks
        .iter()
        .filter_map(|c| Some((c.index, c.stored_at.as_ref()?)))
        .map(|(index, key)| {
            let body = STORE.with(|s| s.borrow().get(key).map(|b| b.clone().into_bytes()));
            (index, body)
        })
        .collect();
    read_back(&ready, objects)
}

/// The segments kept for `chunk` in the store.
fn kept_segments(chunk: &ChunkTranscript) -> Vec<Segment> {
    let key = chunk.stored_at.as_ref().expect("a kept result");
    let body = STORE.with(|s| s.borrow()[key].clone());
    serde_json::from_str(&body).unwrap()
}

/// Handles a record at `NOW` as the runtime does: observes what it would read back, decides,
/// and carries out the effects into the store.
fn try_handle(
    state: &TranscriptionState,
    input: &Incoming,
) -> Result<(Decided, TranscriptionState), HandlerError> {
    let decider = TranscriptionDecider::default();
    let observed = observed(state, input);
    let handled = testing::step(&decider, state, Input::Record(input), observed, NOW)?;
    STORE.with(|s| {
        for artifact in &handled.0.effects {
            s.borrow_mut()
                .insert(artifact.key.clone(), artifact.body.clone());
        }
    });
    Ok(handled)
}

fn handle(state: &TranscriptionState, input: &Incoming) -> (Decided, TranscriptionState) {
    try_handle(state, input).unwrap()
}

/// Whether `decision` emits nothing and writes nothing but kept chunk results.
fn keeps_results_only(decision: &Decided) -> bool {
    decision.emit.is_empty()
        && decision
            .effects
            .iter()
            .all(|a| a.key.starts_with(&format!("resources/{RESOURCE}/chunks/")))
}

/// Feeds inputs in order, asserting none but the last emits anything; returns the last
/// decision and the final state.
fn feed(inputs: &[Incoming]) -> (Decided, TranscriptionState) {
    let mut state = TranscriptionState::default();
    let (last, init) = inputs.split_last().unwrap();
    for input in init {
        let (decision, next) = handle(&state, input);
        assert!(
            decision.emit.is_empty(),
            "{} emitted {decision:?}",
            input.type_name
        );
        state = next;
    }
    handle(&state, last)
}

fn assert_completed(decision: &Decided, job_id: &str, chunk_count: i32, words: i32) {
    assert_eq!(decision.emit.len(), 2, "{decision:?}");
    let started: TranscriptionStarted = decision.emit[0].decode().unwrap();
    let completed: TranscriptionCompleted = decision.emit[1].decode().unwrap();
    assert_eq!(started.job_id, job_id);
    assert_eq!(started.chunk_count, chunk_count);
    assert_eq!(completed.job_id, job_id);
    assert_eq!(completed.word_count, words);
    assert_eq!(
        completed.artifacts.txt_key,
        Some(format!("resources/{RESOURCE}/report/transcript.txt"))
    );
    assert_eq!(
        completed.artifacts.json_key,
        format!("resources/{RESOURCE}/report/report.json")
    );
    for out in &decision.emit {
        assert_eq!(out.key, RESOURCE);
        assert_eq!(out.metadata.correlation_id, RESOURCE);
    }
    assert_ne!(started.metadata.event_id, completed.metadata.event_id);
    // The files it announces are the files it asks to be written first.
    let written: Vec<&str> = decision.effects.iter().map(|a| a.key.as_str()).collect();
    let announced = [
        completed.artifacts.txt_key.as_deref(),
        completed.artifacts.srt_key.as_deref(),
        completed.artifacts.vtt_key.as_deref(),
        Some(completed.artifacts.json_key.as_str()),
    ];
    assert_eq!(written, announced.into_iter().flatten().collect::<Vec<_>>());
}

#[test]
fn job_first_then_chunks_in_any_order_completes_on_the_last_chunk() {
    let (decision, state) = feed(&[
        job_created(JOB, 3, 80_000),
        chunk_done("c2", JOB, 2, "three words here"),
        chunk_done("c0", JOB, 0, "one"),
        chunk_done("c1", JOB, 1, "two words"),
    ]);
    assert_completed(&decision, JOB, 3, 6);
    let completed: TranscriptionCompleted = decision.emit[1].decode().unwrap();
    assert_eq!(completed.duration_ms, 80_000);
    assert_eq!(completed.metadata.causation_id.as_deref(), Some("c1"));
    let progress = &state.jobs[JOB];
    assert!(progress.started && progress.completed && !progress.failed);
    assert!(
        progress.chunks.is_empty(),
        "results are dropped once the job ended"
    );
}

#[test]
fn chunks_before_the_job_complete_when_the_job_arrives() {
    let (decision, _) = feed(&[
        chunk_done("c1", JOB, 1, "later"),
        chunk_done("c0", JOB, 0, "first"),
        job_created(JOB, 2, 50_000),
    ]);
    assert_completed(&decision, JOB, 2, 2);
}

#[test]
fn a_one_chunk_job_completes_on_its_only_chunk() {
    let (decision, _) = feed(&[job_created(JOB, 1, 10_000), chunk_done("c0", JOB, 0, "hi")]);
    assert_completed(&decision, JOB, 1, 1);
}

#[test]
fn the_first_result_of_a_chunk_wins_and_duplicates_change_nothing() {
    let mut state = TranscriptionState::default();
    for input in [
        job_created(JOB, 2, 50_000),
        chunk_done("c0", JOB, 0, "first result"),
        chunk_done("c0-again", JOB, 0, "a much longer second result"),
        job_created(JOB, 2, 50_000),
    ] {
        let (decision, next) = handle(&state, &input);
        assert!(decision.emit.is_empty());
        state = next;
    }
    assert_eq!(
        kept_segments(&state.jobs[JOB].chunks[&0])[0].text,
        "first result"
    );

    let (decision, state) = handle(&state, &chunk_done("c1", JOB, 1, "end"));
    assert_completed(&decision, JOB, 2, 3);

    // After completion nothing about the job emits again, not even its completing inputs.
    for input in [
        chunk_done("c1-again", JOB, 1, "end"),
        chunk_done("c0-third", JOB, 0, "x"),
        job_created(JOB, 2, 50_000),
        chunk_failed("f1", JOB, 1),
    ] {
        let (decision, next) = handle(&state, &input);
        assert!(
            decision.emit.is_empty() && decision.effects.is_empty(),
            "{decision:?}"
        );
        assert_eq!(next, state);
    }
}

#[test]
fn a_failed_chunk_fails_the_job_once_and_nothing_follows() {
    let mut state = TranscriptionState::default();
    for input in [job_created(JOB, 3, 80_000), chunk_done("c0", JOB, 0, "a")] {
        state = handle(&state, &input).1;
    }
    let (decision, state) = handle(&state, &chunk_failed("f2", JOB, 2));
    assert_eq!(decision.emit.len(), 1);
    let failed: TranscriptionFailed = decision.emit[0].decode().unwrap();
    assert_eq!(failed.job_id, JOB);
    assert!(failed.reason.contains("chunk 2"), "{}", failed.reason);
    assert!(
        failed.reason.contains("decoder exploded"),
        "{}",
        failed.reason
    );
    assert_eq!(failed.metadata.causation_id.as_deref(), Some("f2"));
    assert_eq!(decision.emit[0].key, RESOURCE);
    assert!(state.jobs[JOB].failed);

    // Later failures and even the chunks that would have completed the job: nothing.
    let mut state = state;
    for input in [
        chunk_failed("f1", JOB, 1),
        chunk_done("c1", JOB, 1, "b"),
        chunk_done("c2", JOB, 2, "c"),
    ] {
        let (decision, next) = handle(&state, &input);
        assert!(
            decision.emit.is_empty() && decision.effects.is_empty(),
            "{decision:?}"
        );
        state = next;
    }
    assert!(!state.jobs[JOB].completed && !state.jobs[JOB].started);
}

#[test]
fn a_failure_before_the_job_is_known_still_fails_it() {
    let (decision, state) = feed(&[chunk_failed("f0", JOB, 0)]);
    let failed: TranscriptionFailed = decision.emit[0].decode().unwrap();
    assert_eq!(failed.job_id, JOB);
    let (decision, _) = handle(&state, &job_created(JOB, 1, 10_000));
    assert!(decision.emit.is_empty());
}

#[test]
fn a_failed_copy_of_a_chunk_that_already_has_a_result_is_ignored() {
    let mut state = TranscriptionState::default();
    for input in [
        job_created(JOB, 2, 50_000),
        chunk_done("c0", JOB, 0, "kept"),
        chunk_failed("f0", JOB, 0),
    ] {
        let (decision, next) = handle(&state, &input);
        assert!(keeps_results_only(&decision), "{decision:?}");
        state = next;
    }
    let (decision, _) = handle(&state, &chunk_done("c1", JOB, 1, "done"));
    assert_completed(&decision, JOB, 2, 2);
}

#[test]
fn jobs_of_one_resource_are_kept_apart() {
    let mut state = TranscriptionState::default();
    for input in [
        job_created("job-a", 2, 50_000),
        job_created("job-b", 1, 10_000),
        chunk_done("a0", "job-a", 0, "a"),
        // Chunk 1 of another job must not complete job-a.
        chunk_done("b1", "job-b", 1, "wrong"),
    ] {
        let outcome = try_handle(&state, &input);
        match outcome {
            Ok((decision, next)) => {
                assert!(keeps_results_only(&decision), "{decision:?}");
                state = next;
            }
            // job-b has one chunk: index 1 is refused.
            Err(HandlerError::Permanent(_)) => assert_eq!(input.metadata.event_id, "b1"),
            Err(e) => panic!("{e:?}"),
        }
    }
    let (decision, state) = handle(&state, &chunk_done("b0", "job-b", 0, "bee"));
    assert_completed(&decision, "job-b", 1, 1);
    let (decision, _) = handle(&state, &chunk_done("a1", "job-a", 1, "aye"));
    assert_completed(&decision, "job-a", 2, 2);
}

#[test]
fn impossible_chunk_indices_and_counts_are_permanent() {
    let state = handle(&TranscriptionState::default(), &job_created(JOB, 2, 50_000)).1;
    for bad in [
        chunk_done("c5", JOB, 5, "x"),
        chunk_done("cm", JOB, -1, "x"),
    ] {
        let err = try_handle(&state, &bad).unwrap_err();
        assert!(matches!(err, HandlerError::Permanent(_)), "{err:?}");
    }
    let negative = job_created("job-n", -1, 1_000);
    let err = try_handle(&TranscriptionState::default(), &negative).unwrap_err();
    assert!(matches!(err, HandlerError::Permanent(_)), "{err:?}");
    // Caption rules the upload processor would have refused: wrapping with them could cost
    // without bound, so the job is refused before anything is written.
    let mut unusable: ProcessingJobCreated = job_created("job-o", 1, 1_000).decode().unwrap();
    unusable.options = Some(TranscriptOptions {
        caption: Some(CaptionRules {
            max_lines: 40,
            ..CaptionRules::default()
        }),
        ..TranscriptOptions::default()
    });
    let unusable = incoming(&unusable);
    let err = try_handle(&TranscriptionState::default(), &unusable).unwrap_err();
    assert!(err.to_string().contains("max_lines"), "{err}");
}

#[test]
fn other_processing_facts_are_ignored() {
    let passed = incoming(&ValidationPassed {
        metadata: meta("v1"),
        container: "wav".into(),
        codec: "pcm".into(),
        channels: 1,
        sample_rate_hz: 16_000,
        duration_ms: 10_000,
    });
    let started = incoming(&ChunkProcessingStarted {
        metadata: meta("s1"),
        job_id: JOB.into(),
        chunk_index: 0,
        worker: "w1".into(),
        attempt: 1,
    });
    for input in [passed, started] {
        let (decision, state) = handle(&TranscriptionState::default(), &input);
        assert!(decision.emit.is_empty());
        assert_eq!(state, TranscriptionState::default());
    }
}

#[test]
fn state_survives_its_json_changelog() {
    let mut state = TranscriptionState::default();
    for input in [job_created(JOB, 2, 50_000), chunk_done("c0", JOB, 0, "a")] {
        state = handle(&state, &input).1;
    }
    let json = serde_json::to_string(&state).unwrap();
    let back: TranscriptionState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state);
    let old: TranscriptionState = serde_json::from_str("{}").unwrap();
    assert_eq!(old, TranscriptionState::default());
}

#[test]
fn a_resource_is_finished_once_every_job_ended() {
    use echo_transcription::decide::JobProgress;
    let mut state = TranscriptionState::default();
    assert!(!state.is_finished(), "no job yet");
    let ended = |completed, failed| JobProgress {
        completed,
        failed,
        ..JobProgress::default()
    };
    state.jobs.insert("j1".into(), ended(true, false));
    state.jobs.insert("j2".into(), ended(false, false));
    assert!(!state.is_finished(), "j2 is still running");
    state.jobs.insert("j2".into(), ended(false, true));
    assert!(state.is_finished());
}

#[test]
fn declares_what_its_catalogue_entry_lists() {
    testing::assert_declared_as_catalogued(&TranscriptionDecider::default());
}

/// Chunk `index` of a 30 s / 1 s-overlap plan as whisper reports speech: segments of about
/// 20 timed words, 3 words a second (a fast talker), words and confidences varied the way
/// real ones are (`seed` drives a small generator, so the test is repeatable).
fn spoken_chunk(index: i32, seed: &mut u64) -> Incoming {
    const VOCABULARY: [&str; 24] = [
        "the", "harbor", "master", "walks", "along", "pier,", "checking", "ropes", "and",
        "calling", "out", "to", "crews", "who", "are", "still", "at", "work.", "a", "storm",
        "arrives", "faster", "than", "expected",
    ];
    let mut next = || {
        *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        *seed >> 33
    };
    let start_ms = i64::from(index) * 29_000;
    let mut segments = Vec::new();
    for s in 0..5 {
        let segment_start = start_ms + s * 6_000;
        let words: Vec<Word> = (0..18)
            .map(|w| {
                let at = segment_start + w * 333 + (next() % 40) as i64;
                Word {
                    start_ms: at,
                    end_ms: at + 200 + (next() % 130) as i64,
                    text: VOCABULARY[next() as usize % VOCABULARY.len()].into(),
                    confidence: 0.3 + (next() % 7_000_000) as f32 / 10_000_000.0,
                }
            })
            .collect();
        segments.push(Segment {
            start_ms: segment_start,
            end_ms: segment_start + 6_000,
            text: words
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            confidence: 0.3 + (next() % 7_000_000) as f32 / 10_000_000.0,
            words,
            speaker: None,
        });
    }
    incoming(&ChunkProcessingCompleted {
        metadata: meta(&format!("spoken-{index}")),
        job_id: JOB.into(),
        chunk_index: index,
        start_ms,
        end_ms: start_ms + 30_000,
        segments,
        language: None,
    })
}

/// A key's state is changelogged as one record, and the longest upload validation accepts
/// (3 h) heard on two channels (a speaker each: every range planned twice) is some 750
/// chunks of fast speech. Its words are kept as objects, so the state of the job with all
/// but its last chunk in stays small enough for one record; with them in the state (before)
/// it was over 5 MB of JSON and did not fit, so the job could never complete.
#[test]
fn the_state_of_a_three_hour_job_on_two_channels_fits_one_changelog_record() {
    let duration_ms = 3 * 60 * 60 * 1000;
    let chunk_count = 2 * ((duration_ms / 29_000) as i32 + 1);
    let mut state = handle(
        &TranscriptionState::default(),
        &job_created(JOB, chunk_count, duration_ms),
    )
    .1;
    let mut seed = 7;
    let mut kept = 0;
    for index in 0..chunk_count - 1 {
        let (decision, next) = handle(&state, &spoken_chunk(index, &mut seed));
        kept += decision.effects.iter().map(|a| a.body.len()).sum::<usize>();
        state = next;
    }
    // As many words as a real job's: 17 KB of JSON per minute of speech was measured.
    assert!(kept > 2 * 180 * 15_000, "{kept} bytes kept for 3 hours");
    let key_state = KeyState {
        state: state.clone(),
        ..Default::default()
    };
    let json = serde_json::to_vec(&key_state).unwrap().len();
    let record = encode_changelog(&key_state);
    assert!(
        fits(
            Some(RESOURCE.as_bytes()),
            Some(&record),
            &HeaderList::default()
        ),
        "{json} bytes of JSON written as {} bytes, over the {MAX_RECORD_BYTES} a record may hold",
        record.len()
    );
    // The last chunk completes the job from the kept words.
    let (decision, _) = handle(&state, &spoken_chunk(chunk_count - 1, &mut seed));
    let completed: TranscriptionCompleted = decision.emit[1].decode().unwrap();
    assert!(
        completed.word_count > 2 * 180 * 60 * 2,
        "{}",
        completed.word_count
    );
}
