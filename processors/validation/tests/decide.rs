//! The validation rules as pure functions: hand-made inputs and observations in, decisions and
//! states out, with the state folded the way the runtime folds it (input, then each output).

use echo_catalog::events::{
    ProcessingJobCreated, TranscriptFormat, TranscriptOptions, UploadCompleted, UploadFailed,
    UploadFailureReason, ValidationFailed, ValidationFailureReason, ValidationPassed,
    ValidationStarted,
};
use echo_catalog::keys::chunk_partition;
use echo_catalog::record::{EventMetadata, Record};
use echo_chunking::{plan_fixed, SpeechMap};
use echo_runtime::testing::{self, types};
use echo_runtime::{Context, Decider, Decision, HandlerError, Incoming, Input};
use echo_validation::decide::{check_limits, needs_examination, time_disagreement};
use echo_validation::{
    AudioFacts, Observation, ValidationConfig, ValidationDecider, ValidationState,
};

const RESOURCE: &str = "3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b";
const KEY: &str = "resources/3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b/upload";
const NOW: i64 = 1_700_000_000_000;

fn meta(event_id: &str) -> EventMetadata {
    EventMetadata::new(event_id, RESOURCE, "upload", NOW)
}

fn incoming<R: Record>(record: &R) -> Incoming {
    Incoming::from_record(
        &record.metadata().correlation_id,
        record,
        "echo.upload.events",
    )
}

fn completed(event_id: &str) -> Incoming {
    incoming(&UploadCompleted {
        metadata: meta(event_id),
        object_key: KEY.into(),
        size_bytes: 96_044,
        content_type: "audio/wav".into(),
        etag: None,
        options: None,
    })
}

fn facts(duration_ms: i64) -> AudioFacts {
    AudioFacts {
        container: "wave".into(),
        codec: "pcm_s16le".into(),
        channels: 1,
        sample_rate_hz: 8_000,
        duration_ms,
        speech: None,
    }
}

/// Handles an input at `NOW` as the runtime does, given what `observe` found.
fn handle(
    config: &ValidationConfig,
    state: &ValidationState,
    input: &Incoming,
    observed: Observation,
) -> Result<(Decision, ValidationState), HandlerError> {
    let decider = ValidationDecider {
        config: config.clone(),
    };
    testing::step(&decider, state, Input::Record(input), observed, NOW)
}

/// What validation decides for `upload` once the audio was examined as `facts`.
fn passing(upload: &UploadCompleted, facts: AudioFacts) -> Decision {
    let config = ValidationConfig::default();
    let state = ValidationState::default();
    handle(
        &config,
        &state,
        &incoming(upload),
        Observation::Audio(facts),
    )
    .unwrap()
    .0
}

/// The reason and message of a decision that must be `validation.started` + `validation.failed`.
fn failure(decision: &Decision) -> ValidationFailed {
    assert_eq!(
        types(decision),
        ["validation.started", "validation.failed"],
        "{decision:?}"
    );
    decision.emit[1].decode().unwrap()
}

// ------------------------------------------------------------------ chunk planner

#[test]
fn chunks_cover_the_file_and_consecutive_chunks_overlap_by_the_overlap() {
    for duration in [1, 499, 29_999, 30_000, 30_001, 59_000, 95_123, 3_600_000] {
        let chunks = plan_fixed(duration, 30_000, 1_000);
        assert_eq!(chunks[0].start, 0, "{duration}");
        assert_eq!(chunks.last().unwrap().end, duration, "{duration}");
        for c in &chunks {
            assert!(
                c.start < c.end && c.end - c.start <= 30_000,
                "{duration}: {c:?}"
            );
        }
        for pair in chunks.windows(2) {
            assert_eq!(pair[0].end - pair[1].start, 1_000, "{duration}: {pair:?}");
            assert_eq!(
                pair[1].start - pair[0].start,
                29_000,
                "{duration}: {pair:?}"
            );
        }
        // Only the last chunk may be short, and it must not lie inside its predecessor.
        for c in &chunks[..chunks.len() - 1] {
            assert_eq!(c.end - c.start, 30_000, "{duration}: {c:?}");
        }
        if chunks.len() > 1 {
            assert!(chunks[chunks.len() - 2].end < duration, "{duration}");
        }
    }
}

#[test]
fn a_file_shorter_than_a_chunk_is_one_short_chunk() {
    assert_eq!(plan_fixed(3_000, 30_000, 1_000), vec![0..3_000]);
    assert_eq!(plan_fixed(30_000, 30_000, 1_000), vec![0..30_000]);
}

#[test]
fn an_exact_multiple_of_the_step_ends_with_a_full_chunk() {
    // 30 s + 2 steps of 29 s: three full chunks, no sliver after them.
    assert_eq!(
        plan_fixed(88_000, 30_000, 1_000),
        vec![0..30_000, 29_000..59_000, 58_000..88_000]
    );
    // One ms more needs a fourth chunk, starting where the step puts it.
    assert_eq!(plan_fixed(88_001, 30_000, 1_000)[3], 87_000..88_001);
    // Without overlap the chunks tile the file.
    assert_eq!(
        plan_fixed(60_000, 30_000, 0),
        vec![0..30_000, 30_000..60_000]
    );
}

#[test]
fn nothing_is_planned_for_an_empty_file_or_a_nonsensical_plan() {
    assert!(plan_fixed(0, 30_000, 1_000).is_empty());
    assert!(plan_fixed(-5, 30_000, 1_000).is_empty());
    assert!(plan_fixed(10_000, 0, 0).is_empty());
    // An overlap as long as the chunk would never advance; the planner still terminates.
    assert_eq!(plan_fixed(3, 2, 2), vec![0..2, 1..3]);
}

// ------------------------------------------------------------------ decide

#[test]
fn a_valid_file_passes_and_its_job_lists_the_planned_chunks() {
    let config = ValidationConfig::default();
    let input = completed("up-1");
    let (decision, state) = handle(
        &config,
        &ValidationState::default(),
        &input,
        Observation::Audio(facts(65_000)),
    )
    .unwrap();

    assert_eq!(
        types(&decision),
        [
            "validation.started",
            "validation.passed",
            "processing.job.created",
        ]
    );
    assert!(decision.schedule.is_empty() && decision.cancel.is_empty());
    let started: ValidationStarted = decision.emit[0].decode().unwrap();
    assert_eq!(started.object_key, KEY);

    let passed: ValidationPassed = decision.emit[1].decode().unwrap();
    assert_eq!(
        (
            passed.container.as_str(),
            passed.codec.as_str(),
            passed.channels,
            passed.sample_rate_hz,
            passed.duration_ms
        ),
        ("wave", "pcm_s16le", 1, 8_000, 65_000)
    );

    let job: ProcessingJobCreated = decision.emit[2].decode().unwrap();
    assert_eq!(
        job.job_id, job.metadata.event_id,
        "job id = its creation event's id"
    );
    assert_eq!(job.object_key, KEY);
    assert_eq!(
        (
            job.chunk_count,
            job.chunk_ms,
            job.overlap_ms,
            job.duration_ms
        ),
        (3, 30_000, 1_000, 65_000)
    );

    // The job aggregator dispatches the chunks' commands from this list.
    let planned: Vec<_> = job
        .chunks
        .unwrap()
        .iter()
        .map(|c| c.start_ms..c.end_ms)
        .collect();
    assert_eq!(planned, plan_fixed(65_000, 30_000, 1_000));

    // Events are keyed by the resource and chained to the upload; every id is distinct.
    let mut ids: Vec<&str> = decision
        .emit
        .iter()
        .map(|o| o.metadata.event_id.as_str())
        .collect();
    for out in &decision.emit {
        assert_eq!(out.key, RESOURCE);
    }
    for out in &decision.emit {
        assert_eq!(out.metadata.correlation_id, RESOURCE);
        assert_eq!(out.metadata.causation_id.as_deref(), Some("up-1"));
        assert_eq!(out.metadata.producer, "validation");
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), decision.emit.len());

    assert!(state.passed && !state.failed && state.is_finished());
    assert_eq!(state.job_id.as_deref(), Some(job.job_id.as_str()));
}

#[test]
fn the_upload_options_go_to_the_job() {
    let options = TranscriptOptions {
        prompt: Some("Xochitl Quetzalcoatl".into()),
        formats: Some(vec![TranscriptFormat::Srt]),
        caption: None,
        speaker_per_channel: false,
    };
    let mut upload: UploadCompleted = completed("up-o").decode().unwrap();
    upload.options = Some(options.clone());
    let decision = passing(&upload, facts(65_000));
    let job: ProcessingJobCreated = decision.emit[2].decode().unwrap();
    assert_eq!(job.options, Some(options));
}

#[test]
fn a_call_with_a_speaker_per_channel_gets_each_range_once_per_channel() {
    let mut upload: UploadCompleted = completed("up-s").decode().unwrap();
    upload.options = Some(TranscriptOptions {
        speaker_per_channel: true,
        ..TranscriptOptions::default()
    });
    let stereo = AudioFacts {
        channels: 2,
        ..facts(65_000)
    };
    let decision = passing(&upload, stereo);
    let job: ProcessingJobCreated = decision.emit[2].decode().unwrap();
    assert_eq!(job.chunk_count, 6, "three ranges, two channels");
    let planned = job.chunks.unwrap();
    for (i, chunk) in planned.iter().enumerate() {
        assert_eq!(chunk.channel, Some(i as i32 % 2));
    }
    assert_eq!(planned[0].start_ms, planned[1].start_ms);

    // One channel: the option has nothing to split.
    let decision = passing(&upload, facts(65_000));
    let job: ProcessingJobCreated = decision.emit[2].decode().unwrap();
    assert_eq!(job.chunk_count, 3);
    assert!(job.chunks.unwrap().iter().all(|c| c.channel.is_none()));
}

#[test]
fn handling_the_same_upload_again_yields_the_same_job_id() {
    let config = ValidationConfig::default();
    let run = || {
        let (decision, _) = handle(
            &config,
            &ValidationState::default(),
            &completed("up-1"),
            Observation::Audio(facts(3_000)),
        )
        .unwrap();
        decision.emit[2]
            .decode::<ProcessingJobCreated>()
            .unwrap()
            .job_id
    };
    assert_eq!(run(), run());
}

#[test]
fn a_file_the_decoder_refuses_fails_with_the_observed_reason() {
    let config = ValidationConfig::default();
    let (decision, state) = handle(
        &config,
        &ValidationState::default(),
        &completed("up-1"),
        Observation::Refused(
            ValidationFailureReason::Undecodable,
            "not a recognised audio format".into(),
        ),
    )
    .unwrap();
    let failed = failure(&decision);
    assert_eq!(failed.reason_code, ValidationFailureReason::Undecodable);
    assert_eq!(failed.message, "not a recognised audio format");
    assert_eq!(decision.emit[1].key, RESOURCE);
    assert!(state.failed && !state.passed && state.is_finished() && state.job_id.is_none());
}

#[test]
fn each_limit_fails_with_its_reason() {
    let config = ValidationConfig {
        allowed_codecs: vec!["pcm_s16le".into(), "flac".into()],
        ..ValidationConfig::default()
    };
    let reason = |f: AudioFacts| {
        let (decision, _) = handle(
            &config,
            &ValidationState::default(),
            &completed("up-1"),
            Observation::Audio(f),
        )
        .unwrap();
        let failed = failure(&decision);
        assert!(!failed.message.is_empty());
        failed.reason_code
    };
    use ValidationFailureReason as R;
    assert_eq!(reason(facts(10_800_001)), R::TooLong);
    assert_eq!(reason(facts(499)), R::TooShort);
    assert_eq!(reason(facts(0)), R::Empty);
    assert_eq!(
        reason(AudioFacts {
            channels: 9,
            ..facts(3_000)
        }),
        R::TooManyChannels
    );
    assert_eq!(
        reason(AudioFacts {
            codec: "vorbis".into(),
            ..facts(3_000)
        }),
        R::UnsupportedCodec
    );
    // The limits themselves are inclusive.
    assert_eq!(check_limits(&config, &facts(500)), None);
    assert_eq!(check_limits(&config, &facts(10_800_000)), None);
    assert_eq!(
        check_limits(
            &config,
            &AudioFacts {
                channels: 8,
                codec: "FLAC".into(),
                ..facts(3_000)
            }
        ),
        None
    );
}

#[test]
fn a_second_upload_completed_causes_nothing_and_needs_no_download() {
    let config = ValidationConfig::default();
    let first = completed("up-1");
    assert!(needs_examination(
        &ValidationState::default(),
        Input::Record(&first)
    ));
    let (_, state) = handle(
        &config,
        &ValidationState::default(),
        &first,
        Observation::Audio(facts(3_000)),
    )
    .unwrap();

    let again = completed("up-2");
    assert!(!needs_examination(&state, Input::Record(&again)));
    let (decision, after) = handle(&config, &state, &again, Observation::Nothing).unwrap();
    assert!(decision.emit.is_empty(), "{decision:?}");
    assert_eq!(after, state);

    // A failed validation is final too.
    let (_, failed) = handle(
        &config,
        &ValidationState::default(),
        &first,
        Observation::Refused(ValidationFailureReason::Empty, "empty".into()),
    )
    .unwrap();
    assert!(!needs_examination(&failed, Input::Record(&again)));
    let (decision, _) = handle(&config, &failed, &again, Observation::Nothing).unwrap();
    assert!(decision.emit.is_empty());
}

/// The examination of a client's file is announced: `validation.started` is committed before
/// `observe` reads the file, so the runtime counts each life that began it and quarantines a
/// file that killed the processor `runtime.poison_after_failures` times.
#[test]
fn the_examination_is_announced_before_the_file_is_read() {
    let decider = ValidationDecider {
        config: ValidationConfig::default(),
    };
    let first = completed("up-1");
    let ctx = Context::for_input("validation", NOW, Input::Record(&first));
    let announced = decider.announce(&ValidationState::default(), Input::Record(&first), &ctx);
    assert_eq!(
        announced.iter().map(|o| o.type_name).collect::<Vec<_>>(),
        ["validation.started"]
    );
    let started: ValidationStarted = announced[0].decode().unwrap();
    assert_eq!(started.object_key, KEY);

    let (_, validated) = handle(
        &ValidationConfig::default(),
        &ValidationState::default(),
        &first,
        Observation::Audio(facts(3_000)),
    )
    .unwrap();
    let again = completed("up-2");
    let ctx = Context::for_input("validation", NOW, Input::Record(&again));
    assert!(decider
        .announce(&validated, Input::Record(&again), &ctx)
        .is_empty());
}

#[test]
fn other_upload_events_are_ignored_without_io() {
    let config = ValidationConfig::default();
    let other = incoming(&UploadFailed {
        metadata: meta("up-9"),
        reason_code: UploadFailureReason::Expired,
        message: "expired".into(),
    });
    assert!(!needs_examination(
        &ValidationState::default(),
        Input::Record(&other)
    ));
    let (decision, state) = handle(
        &config,
        &ValidationState::default(),
        &other,
        Observation::Nothing,
    )
    .unwrap();
    assert!(decision.emit.is_empty() && decision.schedule.is_empty());
    assert_eq!(state, ValidationState::default());
}

#[test]
fn a_first_upload_completed_without_an_examination_is_a_bug_not_a_verdict() {
    let err = handle(
        &ValidationConfig::default(),
        &ValidationState::default(),
        &completed("up-1"),
        Observation::Nothing,
    )
    .unwrap_err();
    assert!(matches!(err, HandlerError::Permanent(_)), "{err:?}");
}

#[test]
fn the_configured_chunk_plan_is_used() {
    let config = ValidationConfig {
        chunk_ms: 10_000,
        overlap_ms: 500,
        ..ValidationConfig::default()
    };
    let (decision, _) = handle(
        &config,
        &ValidationState::default(),
        &completed("up-1"),
        Observation::Audio(facts(20_000)),
    )
    .unwrap();
    let job: ProcessingJobCreated = decision.emit[2].decode().unwrap();
    assert_eq!(
        (job.chunk_count, job.chunk_ms, job.overlap_ms),
        (3, 10_000, 500)
    );
    let last = job.chunks.unwrap().pop().unwrap();
    assert_eq!((last.start_ms, last.end_ms), (19_000, 20_000));
}

#[test]
fn heard_speech_is_packed_into_chunks_cut_in_pauses_and_reported_with_the_job() {
    // 34 s of speech in four regions: the first three pack into one window (23.5 s of speech
    // and three squeezed pauses of at most 400 ms), the fourth would overfill it.
    let speech = vec![1_000..9_000, 9_500..16_000, 21_000..30_000, 30_500..41_000];
    let (decision, _) = handle(
        &ValidationConfig::default(),
        &ValidationState::default(),
        &completed("up-1"),
        Observation::Audio(AudioFacts {
            speech: Some(SpeechMap {
                regions: speech,
                breaks: Vec::new(),
            }),
            ..facts(60_000)
        }),
    )
    .unwrap();
    let job: ProcessingJobCreated = decision.emit[2].decode().unwrap();
    assert_eq!(job.speech_ms, Some(34_000));
    let planned: Vec<(i64, i64)> = job
        .chunks
        .unwrap()
        .iter()
        .map(|c| (c.start_ms, c.end_ms))
        .collect();
    assert_eq!(planned, [(1_000, 30_000), (30_500, 41_000)]);
    assert_eq!(job.chunk_count, 2);
}

#[test]
fn a_file_without_speech_makes_a_job_of_no_chunks() {
    let (decision, state) = handle(
        &ValidationConfig::default(),
        &ValidationState::default(),
        &completed("up-1"),
        Observation::Audio(AudioFacts {
            speech: Some(SpeechMap::default()),
            ..facts(60_000)
        }),
    )
    .unwrap();
    assert_eq!(
        types(&decision),
        [
            "validation.started",
            "validation.passed",
            "processing.job.created"
        ]
    );
    let job: ProcessingJobCreated = decision.emit[2].decode().unwrap();
    assert_eq!((job.chunk_count, job.speech_ms), (0, Some(0)));
    assert_eq!(job.chunks, Some(Vec::new()));
    assert!(state.passed);
}

/// The partitions of the 12 of the chunk-commands topic that the commands of the chunks
/// validation plans for audio of `duration_ms` are placed on (by the runtime, from the
/// topic's rule, whoever dispatches them).
fn chunk_partitions(duration_ms: i64) -> Vec<i32> {
    let (decision, _) = handle(
        &ValidationConfig::default(),
        &ValidationState::default(),
        &completed("up-spread"),
        Observation::Audio(facts(duration_ms)),
    )
    .unwrap();
    let job: ProcessingJobCreated = decision.emit[2].decode().unwrap();
    (0..job.chunk_count)
        .map(|i| chunk_partition(&job.job_id, i, job.chunk_count, 12))
        .collect()
}

#[test]
fn a_short_jobs_chunk_commands_go_in_pairs_to_both_halves_of_the_partitions() {
    let placed = chunk_partitions(200_000);
    assert_eq!(placed.len(), 7);
    // Chunks 0 and 1, 2 and 3, ...: the two halves, whichever two workers own them.
    for pair in placed.chunks_exact(2) {
        assert_eq!((pair[1] - pair[0]).rem_euclid(12), 6, "{placed:?}");
    }
}

#[test]
fn a_long_jobs_chunk_commands_are_placed_in_runs_paired_over_both_halves() {
    let placed = chunk_partitions(1_200_000);
    assert!(placed.len() >= 24, "{} chunks", placed.len());
    let runs: Vec<&[i32]> = placed.chunks(3).collect();
    for run in &runs {
        assert!(run.iter().all(|&p| p == run[0]), "{placed:?}");
    }
    for pair in runs.chunks_exact(2) {
        assert_eq!((pair[1][0] - pair[0][0]).rem_euclid(12), 6, "{placed:?}");
    }
}

#[test]
fn audio_shorter_than_its_header_states_is_truncated() {
    let truncation = |stated, decoded| time_disagreement(Some(stated), None, decoded);
    let message = truncation(4_500, 1_800).expect("cut at 40 %");
    assert!(message.contains("truncated"), "{message}");
    assert!(
        message.contains("4500 ms") && message.contains("1800 ms"),
        "{message}"
    );
    // Encoder padding and rounding are not truncation.
    assert_eq!(truncation(4_500, 4_300), None);
    assert_eq!(truncation(4_500, 4_600), None);
    // Long files are allowed a percent of slack.
    assert_eq!(truncation(3_600_000, 3_570_000), None);
    assert!(truncation(3_600_000, 3_500_000).is_some());
}

#[test]
fn audio_far_longer_than_its_timestamps_say_is_refused_but_not_longer_than_its_header() {
    // A header's length may be an estimate (an MP3 without a frame count, a fragmented MP4
    // stating 0): the decoded length is what chunks are planned from.
    assert_eq!(time_disagreement(Some(10_000), None, 10_200_000), None);
    assert_eq!(time_disagreement(Some(0), None, 120_000), None);
    // Timestamps that run a hundred times slow.
    let message = time_disagreement(None, Some(1_200), 120_000).expect("a slow clock");
    assert!(message.contains("timestamps are false"), "{message}");
    // Timestamps ahead of the audio (a recorder's gaps) and honest ones are accepted.
    assert_eq!(time_disagreement(None, Some(130_000), 120_000), None);
    assert_eq!(
        time_disagreement(Some(120_000), Some(120_021), 120_000),
        None
    );
    assert_eq!(time_disagreement(Some(3_600_000), None, 3_630_000), None);
    assert_eq!(time_disagreement(None, None, 120_000), None);
}

#[test]
fn declares_what_its_catalogue_entry_lists() {
    testing::assert_declared_as_catalogued(&ValidationDecider {
        config: ValidationConfig::default(),
    });
}
