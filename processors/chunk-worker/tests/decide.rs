//! The chunk worker's rules as pure functions: hand-made commands and observations in,
//! decisions and states out, with the state folded the way the runtime folds it (input, then
//! each output).

use echo_catalog::events::{
    ChunkProcess, ChunkProcessingCompleted, ChunkProcessingFailed, ChunkProcessingStarted, Segment,
    UploadFinalize, Word,
};
use echo_catalog::record::{EventMetadata, Record};
use echo_chunk_worker::decide::{chunk_range, global_segments, screen};
use echo_chunk_worker::{
    ChunkWorkerConfig, ChunkWorkerDecider, ChunkWorkerState, Lane, Observation, Verdict,
};
use echo_runtime::envelope::SourcePosition;
use echo_runtime::{testing, Context, Decider, Decision, HandlerError, Incoming, Input, Timer};
use echo_speech::model::{ModelName, Quantization};
use echo_speech::transcriber::{Segment as LocalSegment, Word as LocalWord};

const RESOURCE: &str = "3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c";
const JOB: &str = "8e7d6c5b-4a39-4281-9f0e-1d2c3b4a5f60";
const NOW: i64 = 1_700_000_000_000;

fn config() -> ChunkWorkerConfig {
    ChunkWorkerConfig {
        worker_name: "worker-7".into(),
        test_delay_ms: None,
        ..ChunkWorkerConfig::default()
    }
}

fn command(event_id: &str, attempt: i32) -> Incoming {
    incoming(&chunk_process(event_id, attempt))
}

/// Chunk 2 of a job of 4, attempt `attempt`.
fn chunk_process(event_id: &str, attempt: i32) -> ChunkProcess {
    ChunkProcess {
        metadata: EventMetadata::new(event_id, RESOURCE, "validation", NOW)
            .with_cause(Some("job-created")),
        job_id: JOB.into(),
        chunk_index: 2,
        chunk_count: 4,
        object_key: format!("resources/{RESOURCE}/upload"),
        start_ms: 58_000,
        end_ms: 88_000,
        attempt,
        etag: None,
        size_bytes: None,
        prompt: None,
        channel: None,
    }
}

fn incoming<R: Record>(record: &R) -> Incoming {
    Incoming {
        type_name: R::TYPE,
        // Commands are keyed by chunk, not by resource.
        key: format!("{JOB}:2"),
        metadata: record.metadata().clone(),
        value: apache_avro::to_value(record).unwrap(),
        source: SourcePosition {
            topic: "echo.processing.chunk-commands".into(),
            partition: 3,
            offset: 0,
        },
        attempt: 0,
    }
}

fn decode(input: &Incoming) -> ChunkProcess {
    input.decode().unwrap()
}

/// The worker's decider with `config()`.
fn worker() -> ChunkWorkerDecider {
    ChunkWorkerDecider {
        config: config(),
        lane: Lane::Standard,
    }
}

/// Handles a command at `NOW` as the runtime does, given what `observe` found.
fn handle(
    state: &ChunkWorkerState,
    input: &Incoming,
    observed: Observation,
) -> Result<(Decision, ChunkWorkerState), HandlerError> {
    testing::step(&worker(), state, Input::Record(input), observed, NOW)
}

fn segment(start_ms: i64, end_ms: i64, text: &str) -> Segment {
    Segment {
        start_ms,
        end_ms,
        text: text.into(),
        confidence: 0.9,
        words: Vec::new(),
        speaker: None,
    }
}

fn transcribed() -> Observation {
    Observation::Transcribed {
        segments: vec![
            segment(58_120, 61_000, "Hello there."),
            segment(61_400, 64_900, "General Kenobi."),
        ],
        language: Some("en".into()),
    }
}

#[test]
fn a_transcribed_chunk_emits_started_then_completed_keyed_by_the_resource() {
    let input = command("cmd-1", 1);
    let (decision, state) = handle(&ChunkWorkerState::default(), &input, transcribed()).unwrap();

    // The first is announced before the work, the second decided after it.
    assert_eq!(decision.emit.len(), 2, "{decision:?}");
    assert!(decision.schedule.is_empty() && decision.cancel.is_empty());
    for out in &decision.emit {
        assert_eq!(out.key, RESOURCE, "events are keyed by the resource id");
        assert_eq!(out.metadata.correlation_id, RESOURCE);
        assert_eq!(out.metadata.causation_id.as_deref(), Some("cmd-1"));
        assert_eq!(out.metadata.producer, "chunk-worker");
    }
    assert_ne!(
        decision.emit[0].metadata.event_id,
        decision.emit[1].metadata.event_id
    );

    let started: ChunkProcessingStarted = decision.emit[0].decode().unwrap();
    assert_eq!(started.job_id, JOB);
    assert_eq!(started.chunk_index, 2);
    assert_eq!(started.worker, "worker-7");
    assert_eq!(started.attempt, 1);

    let completed: ChunkProcessingCompleted = decision.emit[1].decode().unwrap();
    assert_eq!(completed.job_id, JOB);
    assert_eq!(completed.chunk_index, 2);
    assert_eq!((completed.start_ms, completed.end_ms), (58_000, 88_000));
    let Observation::Transcribed { segments, language } = transcribed() else {
        unreachable!()
    };
    assert_eq!(completed.segments, segments);
    assert_eq!(completed.language, language);

    assert_eq!(
        state,
        ChunkWorkerState {
            handled_attempt: None,
            completed: true,
        }
    );
}

#[test]
fn a_command_whose_work_was_cut_short_is_worked_again() {
    // The announcement was committed, then the worker died before its outcome: the state
    // learnt nothing from the announcement, so the re-delivered command is processed.
    let input = command("cmd-1", 1);
    let ctx = Context::new("chunk-worker", NOW, input.metadata.clone(), "cmd-1");
    let state = ChunkWorkerState::default();
    let announced = worker().announce(&state, Input::Record(&input), &ctx);
    assert!(announced[0].is::<ChunkProcessingStarted>());
    assert_eq!(screen(&state, &decode(&input)), Verdict::Process);
}

#[test]
fn a_command_to_ignore_announces_nothing() {
    let done = ChunkWorkerState {
        handled_attempt: None,
        completed: true,
    };
    let input = command("cmd-1", 2);
    let ctx = Context::new("chunk-worker", NOW, input.metadata.clone(), "cmd-1");
    assert!(worker()
        .announce(&done, Input::Record(&input), &ctx)
        .is_empty());
}

#[test]
fn the_same_input_decides_the_same_ids() {
    let input = command("cmd-1", 1);
    let (a, _) = handle(&ChunkWorkerState::default(), &input, transcribed()).unwrap();
    let (b, _) = handle(&ChunkWorkerState::default(), &input, transcribed()).unwrap();
    let ids = |d: &Decision| {
        d.emit
            .iter()
            .map(|o| o.metadata.event_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&a),
        ids(&b),
        "a replayed batch must emit the same event ids"
    );
}

#[test]
fn segments_are_moved_onto_the_whole_audios_time_line_and_kept_inside_the_chunk() {
    let word = |start_ms, end_ms, text: &str| LocalWord {
        start_ms,
        end_ms,
        text: text.into(),
        confidence: 0.7,
    };
    let local = |start_ms, end_ms, text: &str, words| LocalSegment {
        start_ms,
        end_ms,
        text: text.into(),
        confidence: 0.8,
        words,
    };
    let global = global_segments(
        58_000,
        88_000,
        &[
            local(0, 2_500, " first ", vec![word(100, 2_400, "first")]),
            local(2_500, 2_500, "instant", Vec::new()),
            local(3_000, 4_000, "   ", Vec::new()),
            // Whisper may end a segment (and its last word) past the audio it was given.
            local(29_000, 31_000, "last", vec![word(29_500, 30_500, "last")]),
        ],
    );
    let global_word = |start_ms, end_ms, text: &str| Word {
        start_ms,
        end_ms,
        text: text.into(),
        confidence: 0.7,
    };
    assert_eq!(
        global,
        vec![
            Segment {
                start_ms: 58_000,
                end_ms: 60_500,
                text: "first".into(),
                confidence: 0.8,
                words: vec![global_word(58_100, 60_400, "first")],
                speaker: None,
            },
            Segment {
                start_ms: 60_500,
                end_ms: 60_500,
                text: "instant".into(),
                confidence: 0.8,
                words: Vec::new(),
                speaker: None,
            },
            Segment {
                start_ms: 87_000,
                end_ms: 88_000,
                text: "last".into(),
                confidence: 0.8,
                words: vec![global_word(87_500, 88_000, "last")],
                speaker: None,
            },
        ],
        "offsets added, ends clamped to the chunk, empty texts dropped"
    );
    assert!(global_segments(0, 30_000, &[]).is_empty());
}

#[test]
fn a_failed_chunk_emits_started_then_failed_with_reason_and_attempt() {
    let input = command("cmd-2", 2);
    let observed = Observation::Failed("decoding 58000..88000 ms: corrupt".into());
    let (decision, state) = handle(&ChunkWorkerState::default(), &input, observed).unwrap();

    assert_eq!(decision.emit.len(), 2, "{decision:?}");
    let started: ChunkProcessingStarted = decision.emit[0].decode().unwrap();
    assert_eq!(started.attempt, 2);
    let failed: ChunkProcessingFailed = decision.emit[1].decode().unwrap();
    assert_eq!(failed.job_id, JOB);
    assert_eq!(failed.chunk_index, 2);
    assert_eq!(failed.attempt, 2);
    assert_eq!(failed.reason, "decoding 58000..88000 ms: corrupt");
    assert_eq!(decision.emit[1].key, RESOURCE);

    assert_eq!(
        state,
        ChunkWorkerState {
            handled_attempt: Some(2),
            completed: false,
        }
    );
}

#[test]
fn a_completed_chunk_is_not_transcribed_again_whatever_the_attempt() {
    let (_, done) = handle(
        &ChunkWorkerState::default(),
        &command("cmd-1", 1),
        transcribed(),
    )
    .unwrap();
    for (event_id, attempt) in [("cmd-1-again", 1), ("cmd-late", 2), ("cmd-old", 0)] {
        let input = command(event_id, attempt);
        assert_eq!(
            screen(&done, &decode(&input)),
            Verdict::Ignore,
            "attempt {attempt}"
        );
        // observe skips the I/O for it, and decide emits nothing.
        let (decision, state) = handle(&done, &input, Observation::Skipped).unwrap();
        assert!(decision.emit.is_empty(), "attempt {attempt}: {decision:?}");
        assert_eq!(state, done);
    }
}

#[test]
fn after_a_failure_only_a_later_attempt_is_processed() {
    let failed_at_2 = ChunkWorkerState {
        handled_attempt: Some(2),
        completed: false,
    };
    // A re-delivered command of the failed attempt, or a stale earlier one: nothing to do.
    for attempt in [1, 2] {
        let input = command("cmd-x", attempt);
        assert_eq!(screen(&failed_at_2, &decode(&input)), Verdict::Ignore);
        let (decision, _) = handle(&failed_at_2, &input, Observation::Skipped).unwrap();
        assert!(decision.emit.is_empty(), "attempt {attempt}: {decision:?}");
    }
    // The aggregator's retry.
    let retry = command("cmd-3", 3);
    assert_eq!(screen(&failed_at_2, &decode(&retry)), Verdict::Process);
    let (decision, state) = handle(&failed_at_2, &retry, transcribed()).unwrap();
    assert_eq!(decision.emit.len(), 2);
    assert!(decision.emit[1].is::<ChunkProcessingCompleted>());
    assert_eq!(
        state,
        ChunkWorkerState {
            handled_attempt: Some(2),
            completed: true,
        }
    );
}

#[test]
fn a_fresh_chunk_is_processed() {
    assert_eq!(
        screen(&ChunkWorkerState::default(), &decode(&command("c", 1))),
        Verdict::Process
    );
}

#[test]
fn a_command_that_needs_work_without_an_outcome_is_a_bug() {
    let err = handle(
        &ChunkWorkerState::default(),
        &command("cmd-1", 1),
        Observation::Skipped,
    )
    .unwrap_err();
    assert!(matches!(err, HandlerError::Permanent(_)), "{err:?}");
}

#[test]
fn other_records_are_skipped_and_timers_ignored() {
    let other = incoming(&UploadFinalize {
        metadata: command("x", 1).metadata,
        etag: None,
        owner_token: None,
    });
    // The runtime skips a type the worker does not handle before deciding anything.
    let (decision, state) =
        handle(&ChunkWorkerState::default(), &other, Observation::Skipped).unwrap();
    assert!(decision.emit.is_empty() && decision.effects.is_empty());
    assert_eq!(state, ChunkWorkerState::default());
    let input = command("cmd-1", 1);
    let ctx = Context::new("chunk-worker", NOW, input.metadata.clone(), "t");
    let timer: Timer = ctx.timer("unknown", NOW, "");
    let decision = worker()
        .decide(
            &ChunkWorkerState::default(),
            Input::Timer(&timer),
            Observation::Skipped,
            &ctx,
        )
        .unwrap();
    assert!(decision.emit.is_empty() && decision.schedule.is_empty());
}

#[test]
fn chunk_ranges_must_be_non_negative_non_empty_and_bounded() {
    let with = |start_ms, end_ms| ChunkProcess {
        start_ms,
        end_ms,
        ..decode(&command("c", 1))
    };
    let max = 30_000;
    assert_eq!(chunk_range(&with(58_000, 88_000), max), Ok(58_000..88_000));
    assert_eq!(chunk_range(&with(0, 1), max), Ok(0..1));
    assert!(chunk_range(&with(-1, 1_000), max).is_err());
    assert!(chunk_range(&with(5_000, 5_000), max).is_err());
    assert!(chunk_range(&with(6_000, 5_000), max).is_err());
    assert_eq!(
        chunk_range(&with(0, i64::MAX), max),
        Err(format!(
            "chunk range 0..{} ms is longer than the 30000 ms accepted",
            i64::MAX
        ))
    );
    assert!(chunk_range(&with(58_000, 88_001), max).is_err());
}

#[test]
fn state_changelogged_by_an_older_version_still_loads() {
    let state: ChunkWorkerState = serde_json::from_str("{}").unwrap();
    assert_eq!(state, ChunkWorkerState::default());
    let round: ChunkWorkerState = serde_json::from_str(
        &serde_json::to_string(&ChunkWorkerState {
            handled_attempt: Some(4),
            completed: true,
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(round.handled_attempt, Some(4));
}

#[test]
fn config_defaults_are_valid_and_unusable_settings_are_refused() {
    let c = ChunkWorkerConfig::default();
    c.validate().unwrap();
    assert_eq!(c.threads, 1);
    assert!(!c.worker_name.trim().is_empty());

    assert_eq!(c.quantization, Quantization::F16);

    let partial: ChunkWorkerConfig = serde_json::from_str(r#"{"threads": 2}"#).unwrap();
    assert_eq!(partial.threads, 2);
    assert_eq!(partial.worker_name, c.worker_name);
    let quantized: ChunkWorkerConfig = serde_json::from_str(r#"{"quantization": "q5_1"}"#).unwrap();
    assert_eq!(quantized.quantization, Quantization::Q5_1);
    assert!(serde_json::from_str::<ChunkWorkerConfig>(r#"{"quantization": "q4_0"}"#).is_err());

    let bad = |f: fn(&mut ChunkWorkerConfig)| {
        let mut c = ChunkWorkerConfig::default();
        f(&mut c);
        c.validate().is_err()
    };
    assert!(bad(|c| c.threads = 0));
    assert!(bad(|c| c.worker_name = " ".into()));
    assert!(bad(|c| c.cache_max_files = 0));
}

#[test]
fn the_previous_chunks_text_is_heard_with_tiny_en_unless_set_otherwise() {
    let tiny = ChunkWorkerConfig::default();
    assert!(tiny.prompts_with_previous_chunk());
    let base = ChunkWorkerConfig {
        model: ModelName::Base,
        ..ChunkWorkerConfig::default()
    };
    assert!(!base.prompts_with_previous_chunk());
    let set: ChunkWorkerConfig =
        serde_json::from_str(r#"{"model": "base", "prompt_with_previous_chunk": true}"#).unwrap();
    assert!(set.prompts_with_previous_chunk());
    let off: ChunkWorkerConfig =
        serde_json::from_str(r#"{"prompt_with_previous_chunk": false}"#).unwrap();
    assert!(!off.prompts_with_previous_chunk());
}

#[test]
fn declares_what_its_catalogue_entry_lists() {
    testing::assert_declared_as_catalogued(&worker());
}

/// The only chunk of a job of one (a clip), attempt `attempt`.
fn clip(attempt: i32) -> ChunkProcess {
    ChunkProcess {
        chunk_index: 0,
        chunk_count: 1,
        start_ms: 0,
        end_ms: 5_000,
        ..chunk_process("clip", attempt)
    }
}

#[test]
fn the_first_attempt_at_a_short_job_is_the_express_lane_and_everything_else_the_pool() {
    assert_eq!(Lane::of(&clip(1), 1), Lane::Express);
    // A retry is the pool's: a clip whose express worker is gone is still transcribed.
    assert_eq!(Lane::of(&clip(2), 1), Lane::Standard);
    assert_eq!(Lane::of(&chunk_process("c", 1), 1), Lane::Standard);
    assert_eq!(Lane::of(&chunk_process("c", 1), 4), Lane::Express);
    // 0 turns the lane off, whatever a command says of its job.
    assert_eq!(Lane::of(&clip(1), 0), Lane::Standard);
    let no_chunks = ChunkProcess {
        chunk_count: 0,
        ..clip(1)
    };
    assert_eq!(Lane::of(&no_chunks, 0), Lane::Standard);
    assert_eq!(Lane::Standard.processor(), "chunk-worker");
    assert_eq!(Lane::Express.processor(), "express-chunk-worker");
}

#[test]
fn each_group_passes_over_the_other_lanes_commands_without_a_word() {
    let pool = worker();
    let express = ChunkWorkerDecider {
        config: config(),
        lane: Lane::Express,
    };
    let state = ChunkWorkerState::default();
    for (decider, taken, passed) in [
        (&pool, command("c", 1), incoming(&clip(1))),
        (&express, incoming(&clip(1)), command("c", 1)),
    ] {
        let name = decider.name();
        assert_eq!(
            decider.screen(&state, &decode(&taken)),
            Verdict::Process,
            "{name}"
        );
        assert_eq!(
            decider.screen(&state, &decode(&passed)),
            Verdict::Ignore,
            "{name}"
        );
        let ctx = Context::new(name, NOW, passed.metadata.clone(), "p");
        assert!(
            decider
                .announce(&state, Input::Record(&passed), &ctx)
                .is_empty(),
            "{name}"
        );
        let (decision, after) = testing::step(
            decider,
            &state,
            Input::Record(&passed),
            Observation::Skipped,
            NOW,
        )
        .unwrap();
        assert!(decision.emit.is_empty(), "{name}: {decision:?}");
        assert_eq!(after, state, "{name}");
        // Nothing is kept for it past a minute; a chunk the worker did transcribe stays for
        // the runtime's retention.
        assert!(decider.is_finished(&after), "{name}");
        assert_eq!(decider.retire_after_ms(&after), Some(60_000), "{name}");
        let done = ChunkWorkerState {
            handled_attempt: None,
            completed: true,
        };
        assert!(decider.is_finished(&done));
        assert_eq!(decider.retire_after_ms(&done), None);
        let failed_once = ChunkWorkerState {
            handled_attempt: Some(1),
            completed: false,
        };
        assert!(!decider.is_finished(&failed_once));
    }
    assert_eq!(express.name(), "express-chunk-worker");
}
