//! The validation processor's `observe` + `decide` against the REAL local stack: audio made with
//! flite and sox is put into S3, and the processor downloads, probes and decodes it. Fails
//! (never skips) when the S3 server of `EchoConfig::default()` is down.

use std::path::{Path, PathBuf};
use std::process::Command;

use echo_catalog::events::{
    ProcessingJobCreated, UploadCompleted, ValidationFailed, ValidationFailureReason,
    ValidationPassed,
};
use echo_catalog::record::{EventMetadata, Record};
use echo_runtime::{testing, Context, Decision, EchoConfig, Incoming, Input, Processor};
use echo_storage::keys;
use echo_validation::{Observation, ValidationConfig, ValidationProcessor, ValidationState};

fn incoming<R: Record>(record: &R) -> Incoming {
    Incoming::from_record(
        &record.metadata().correlation_id,
        record,
        "echo.upload.events",
    )
}

/// A processor on the local stack, with the bucket there.
async fn processor() -> ValidationProcessor {
    let p = ValidationProcessor::new(&EchoConfig::default(), ValidationConfig::default()).unwrap();
    p.s3()
        .ensure_bucket()
        .await
        .expect("the local S3 server must be running (127.0.0.1:9000)");
    p
}

/// Stores `bytes` as a fresh resource's upload; returns the `upload.completed` for it, with
/// the ETag the store gave it, as the upload processor records it.
async fn upload(p: &ValidationProcessor, bytes: &[u8], content_type: &str) -> Incoming {
    let resource = uuid::Uuid::new_v4().to_string();
    let key = keys::upload(&resource);
    p.s3()
        .put_bytes(&key, bytes, content_type)
        .await
        .expect("PUT to the local S3 server");
    let etag = p.s3().head(&key).await.unwrap().unwrap().etag;
    completed(&resource, &key, bytes.len() as i64, content_type, etag)
}

fn completed(
    resource: &str,
    key: &str,
    size: i64,
    content_type: &str,
    etag: Option<String>,
) -> Incoming {
    incoming(&UploadCompleted {
        metadata: EventMetadata::new(uuid::Uuid::new_v4().to_string(), resource, "upload", 0),
        object_key: key.into(),
        size_bytes: size,
        content_type: content_type.into(),
        etag,
        options: None,
    })
}

/// Observes, announces and decides as the runtime does: the decision holds the announcement
/// first.
async fn validate(p: &ValidationProcessor, input: &Incoming) -> (Observation, Decision) {
    const NOW: i64 = 1_700_000_000_000;
    let ctx = Context::for_input("validation", NOW, Input::Record(input));
    let state = ValidationState::default();
    let observed = p
        .observe(&state, Input::Record(input), &ctx)
        .await
        .expect("observe");
    let (decision, _) = testing::step(
        p.decider(),
        &state,
        Input::Record(input),
        observed.clone(),
        NOW,
    )
    .expect("decide");
    (observed, decision)
}

fn failure(decision: &Decision) -> ValidationFailed {
    let types: Vec<_> = decision.emit.iter().map(|o| o.type_name).collect();
    assert_eq!(
        types,
        ["validation.started", "validation.failed"],
        "{decision:?}"
    );
    decision.emit[1].decode().unwrap()
}

fn run(cmd: &mut Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("{cmd:?} (apt install flite sox): {e}"));
    assert!(status.success(), "{cmd:?}: {status}");
}

fn flite(text: &str, out: &Path) {
    run(Command::new("flite")
        .args(["-voice", "slt", "-t", text, "-o"])
        .arg(out));
}

/// What sox says about an audio file (`soxi -s`: samples, `-r`: rate), the reference for ours.
fn soxi(flag: &str, path: &Path) -> i64 {
    let out = Command::new("soxi").arg(flag).arg(path).output().unwrap();
    assert!(out.status.success(), "soxi {flag}");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Length in ms of an audio file as sox sees it (samples / rate).
fn sox_duration_ms(path: &Path) -> i64 {
    soxi("-s", path) * 1000 / soxi("-r", path)
}

#[tokio::test]
async fn flite_speech_passes_with_its_facts_and_gets_a_job() {
    let p = processor().await;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    flite("Echo checks every upload before it is transcribed.", &wav);
    let expected_ms = sox_duration_ms(&wav);
    assert!((2_000..6_000).contains(&expected_ms), "{expected_ms}");

    let input = upload(&p, &std::fs::read(&wav).unwrap(), "audio/wav").await;
    let (_, decision) = validate(&p, &input).await;
    let types: Vec<_> = decision.emit.iter().map(|o| o.type_name).collect();
    assert_eq!(
        types,
        [
            "validation.started",
            "validation.passed",
            "processing.job.created",
        ]
    );
    let passed: ValidationPassed = decision.emit[1].decode().unwrap();
    assert_eq!(passed.container, "wave");
    assert_eq!(passed.codec, "pcm_s16le");
    assert_eq!(passed.channels, 1);
    assert_eq!(i64::from(passed.sample_rate_hz), soxi("-r", &wav));
    assert!(
        (passed.duration_ms - expected_ms).abs() <= 1,
        "decoded {} ms, sox says {expected_ms} ms",
        passed.duration_ms
    );
    let job: ProcessingJobCreated = decision.emit[2].decode().unwrap();
    assert_eq!(job.chunk_count, 1);
    assert_eq!(job.duration_ms, passed.duration_ms);
    let chunk = &job.chunks.as_ref().unwrap()[0];
    // The one chunk holds the speech: at most flite's short lead-in and tail are left out.
    assert!(
        chunk.start_ms < 300 && chunk.end_ms > passed.duration_ms - 300,
        "{}..{} of {} ms",
        chunk.start_ms,
        chunk.end_ms,
        passed.duration_ms
    );
    assert!(chunk.end_ms <= passed.duration_ms);
    // The version validation examined is the one every chunk reads.
    let verified: UploadCompleted = input.decode().unwrap();
    assert!(verified.etag.is_some());
    assert_eq!(
        (&job.etag, job.size_bytes),
        (&verified.etag, Some(verified.size_bytes))
    );
    assert_eq!(job.object_key, keys::upload(&input.metadata.correlation_id));
}

/// `text` spoken by flite between `before` and `after` seconds of silence, into `out`.
fn padded_speech(dir: &Path, name: &str, text: &str, before: &str, after: &str) -> PathBuf {
    let spoken = dir.join(format!("{name}-spoken.wav"));
    flite(text, &spoken);
    let out = dir.join(format!("{name}.wav"));
    run(Command::new("sox")
        .arg(&spoken)
        .arg(&out)
        .args(["pad", before, after]));
    out
}

#[tokio::test]
async fn speech_across_a_pause_is_one_chunk_without_the_silence_around_it() {
    let p = processor().await;
    let dir = tempfile::tempdir().unwrap();
    // 3 s of silence, a sentence, 6 s, another sentence, 4 s.
    let first = padded_speech(dir.path(), "first", "Echo checks every upload.", "3", "6");
    let second = padded_speech(
        dir.path(),
        "second",
        "Then it listens for speech.",
        "0",
        "4",
    );
    let file = dir.path().join("both.wav");
    run(Command::new("sox").arg(&first).arg(&second).arg(&file));
    let first_ms = sox_duration_ms(&first);
    let (spoken_first, spoken_second) = (first_ms - 9_000, sox_duration_ms(&second) - 4_000);

    let input = upload(&p, &std::fs::read(&file).unwrap(), "audio/wav").await;
    let (_, decision) = validate(&p, &input).await;
    let job: ProcessingJobCreated = decision.emit[2].decode().unwrap();
    let chunks: Vec<(i64, i64)> = job
        .chunks
        .clone()
        .unwrap()
        .iter()
        .map(|c| (c.start_ms, c.end_ms))
        .collect();
    // Both sentences and the 6 s between them pack into one window once the chunk worker
    // squeezes the pause.
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    // The chunk runs from the first sentence to the second, with no more than half a second
    // of the silence before and after.
    let (start, end) = chunks[0];
    let (from, to) = (3_000, first_ms + spoken_second);
    assert!(
        (from - 500..=from + 300).contains(&start) && (to - 300..=to + 500).contains(&end),
        "chunk {start}..{end} for speech at {from}..{to}"
    );
    let speech_ms = job.speech_ms.unwrap();
    let spoken = spoken_first + spoken_second;
    assert!(
        (speech_ms - spoken).abs() <= spoken / 5,
        "{speech_ms} ms of speech detected, {spoken} ms spoken"
    );
}

#[tokio::test]
async fn a_silent_file_passes_with_a_job_of_no_chunks() {
    let p = processor().await;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("silence.wav");
    run(Command::new("sox")
        .args(["-n", "-r", "16000", "-b", "16", "-c", "1"])
        .arg(&wav)
        .args(["trim", "0", "5"]));
    let input = upload(&p, &std::fs::read(&wav).unwrap(), "audio/wav").await;
    let (_, decision) = validate(&p, &input).await;
    let types: Vec<_> = decision.emit.iter().map(|o| o.type_name).collect();
    assert_eq!(
        types,
        [
            "validation.started",
            "validation.passed",
            "processing.job.created"
        ]
    );
    let job: ProcessingJobCreated = decision.emit[2].decode().unwrap();
    assert_eq!((job.chunk_count, job.speech_ms), (0, Some(0)));
}

#[tokio::test]
async fn stereo_flac_at_another_rate_passes_with_its_own_facts() {
    let p = processor().await;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    let flac = dir.path().join("speech.flac");
    flite("Two channels, another codec, another rate.", &wav);
    run(Command::new("sox")
        .arg(&wav)
        .args(["-c", "2", "-r", "44100"])
        .arg(&flac));
    let expected_ms = sox_duration_ms(&flac);

    let input = upload(&p, &std::fs::read(&flac).unwrap(), "audio/flac").await;
    let (_, decision) = validate(&p, &input).await;
    let passed: ValidationPassed = decision.emit[1].decode().unwrap();
    assert_eq!(
        (passed.container.as_str(), passed.codec.as_str()),
        ("flac", "flac")
    );
    assert_eq!((passed.channels, passed.sample_rate_hz), (2, 44_100));
    assert!(
        (passed.duration_ms - expected_ms).abs() <= 1,
        "decoded {} ms, sox says {expected_ms} ms",
        passed.duration_ms
    );
}

#[tokio::test]
async fn lossy_formats_pass_with_their_codec_and_about_their_length() {
    let p = processor().await;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    flite("Compressed audio is validated the same way.", &wav);
    let expected_ms = sox_duration_ms(&wav);
    for (ext, content_type, container, codec) in [
        ("ogg", "audio/ogg", "ogg", "vorbis"),
        ("mp3", "audio/mpeg", "mp3", "mp3"),
    ] {
        let file = dir.path().join(format!("speech.{ext}"));
        run(Command::new("sox").arg(&wav).arg(&file));
        let input = upload(&p, &std::fs::read(&file).unwrap(), content_type).await;
        let (_, decision) = validate(&p, &input).await;
        let passed: ValidationPassed = decision.emit[1]
            .decode()
            .unwrap_or_else(|e| panic!("{ext}: {e:?} in {decision:?}"));
        assert_eq!(
            (passed.container.as_str(), passed.codec.as_str()),
            (container, codec)
        );
        // Encoders pad: the decoded length is close to, not exactly, the source's.
        assert!(
            (passed.duration_ms - expected_ms).abs() <= 150,
            "{ext}: decoded {} ms, source {expected_ms} ms",
            passed.duration_ms
        );
    }
}

#[tokio::test]
async fn garbage_bytes_named_wav_fail_as_undecodable() {
    let p = processor().await;
    // Deterministic noise that is no known container.
    let garbage: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let input = upload(&p, &garbage, "audio/wav").await;
    let (observed, decision) = validate(&p, &input).await;
    assert!(
        matches!(
            observed,
            Observation::Refused(ValidationFailureReason::Undecodable, _)
        ),
        "{observed:?}"
    );
    let failed = failure(&decision);
    assert_eq!(failed.reason_code, ValidationFailureReason::Undecodable);
    assert!(!failed.message.contains("/tmp"), "{}", failed.message);
}

#[tokio::test]
async fn a_file_whose_clock_lies_fails_as_undecodable() {
    let p = processor().await;
    // Two minutes of audio whose timestamps run a hundred times slow: chunked by that clock,
    // the first chunk would hold the whole file. Sent as WAV: what it is, is sniffed.
    let liar = echo_tests::mkv::pcm_mkv(120, 10_000);
    // The same audio with an honest clock passes.
    let honest = echo_tests::mkv::pcm_mkv(120, 1_000_000);
    undecodable_saying(&p, &liar, "timestamps are false", &honest).await;
}

/// Asserts that `liar`, sent as WAV, fails as UNDECODABLE with a message saying `why`, and
/// that `honest` (the same audio told truly) passes.
async fn undecodable_saying(p: &ValidationProcessor, liar: &[u8], why: &str, honest: &[u8]) {
    let input = upload(p, liar, "audio/wav").await;
    let (observed, decision) = validate(p, &input).await;
    assert!(
        matches!(
            &observed,
            Observation::Refused(ValidationFailureReason::Undecodable, m) if m.contains(why)
        ),
        "{observed:?}"
    );
    assert_eq!(
        failure(&decision).reason_code,
        ValidationFailureReason::Undecodable
    );
    let input = upload(p, honest, "audio/wav").await;
    let (observed, _) = validate(p, &input).await;
    assert!(matches!(observed, Observation::Audio(_)), "{observed:?}");
}

#[tokio::test]
async fn an_mp4_whose_time_table_would_take_hours_to_read_fails_as_undecodable() {
    use echo_tests::mp4::{pcm_mp4, TimeTable};
    let p = processor().await;
    // Ten seconds whose time table has an entry per packet: symphonia would walk 80,000
    // entries for each of 80,000 packets. Sent as WAV: what it is, is sniffed.
    let quadratic = pcm_mp4(10, TimeTable::EntryPerPacket);
    // The same audio with its table as encoders write it passes.
    let compact = pcm_mp4(10, TimeTable::Compact);
    undecodable_saying(&p, &quadratic, "time tables", &compact).await;
}

#[tokio::test]
async fn an_empty_file_fails_as_empty() {
    let p = processor().await;
    let input = upload(&p, &[], "audio/wav").await;
    let (_, decision) = validate(&p, &input).await;
    let failed = failure(&decision);
    assert_eq!(failed.reason_code, ValidationFailureReason::Empty);
}

#[tokio::test]
async fn a_wav_with_a_header_but_no_samples_fails_as_empty() {
    let p = processor().await;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("silence.wav");
    flite("x", &wav);
    // Keep the 44-byte header, declare no data.
    let mut bytes = std::fs::read(&wav).unwrap();
    bytes.truncate(44);
    bytes[40..44].copy_from_slice(&0u32.to_le_bytes());
    bytes[4..8].copy_from_slice(&36u32.to_le_bytes());
    let input = upload(&p, &bytes, "audio/wav").await;
    let (_, decision) = validate(&p, &input).await;
    assert_eq!(
        failure(&decision).reason_code,
        ValidationFailureReason::Empty
    );
}

#[tokio::test]
async fn a_too_short_clip_fails_as_too_short() {
    let p = processor().await;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("blip.wav");
    run(Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .args(["synth", "0.2", "sine", "440"]));
    let input = upload(&p, &std::fs::read(&wav).unwrap(), "audio/wav").await;
    let (_, decision) = validate(&p, &input).await;
    let failed = failure(&decision);
    assert_eq!(failed.reason_code, ValidationFailureReason::TooShort);
    assert!(failed.message.contains("200 ms"), "{}", failed.message);
}

#[tokio::test]
async fn audio_over_the_duration_limit_fails_as_too_long() {
    let limits = ValidationConfig {
        max_duration_ms: 1_000,
        min_duration_ms: 100,
        ..ValidationConfig::default()
    };
    let p = ValidationProcessor::new(&EchoConfig::default(), limits).unwrap();
    p.s3().ensure_bucket().await.expect("the local S3 server");
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    flite("This sentence lasts longer than one second.", &wav);
    let input = upload(&p, &std::fs::read(&wav).unwrap(), "audio/wav").await;
    let (_, decision) = validate(&p, &input).await;
    let failed = failure(&decision);
    assert_eq!(failed.reason_code, ValidationFailureReason::TooLong);
    assert!(failed.message.contains("1000 ms"), "{}", failed.message);
}

#[tokio::test]
async fn a_missing_object_fails_as_undecodable() {
    let p = processor().await;
    let resource = uuid::Uuid::new_v4().to_string();
    let input = completed(&resource, &keys::upload(&resource), 10, "audio/wav", None);
    let (_, decision) = validate(&p, &input).await;
    let failed = failure(&decision);
    assert_eq!(failed.reason_code, ValidationFailureReason::Undecodable);
    assert!(
        failed.message.contains("nothing is stored"),
        "{}",
        failed.message
    );
}

#[tokio::test]
async fn audio_replaced_after_it_was_verified_fails_as_object_changed() {
    let p = processor().await;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    flite("Only the verified audio is examined.", &wav);
    let bytes = std::fs::read(&wav).unwrap();
    let input = upload(&p, &bytes, "audio/wav").await;
    let verified: UploadCompleted = input.decode().unwrap();
    // Same size, other bytes, PUT after upload.completed recorded the ETag.
    let mut other = bytes.clone();
    other[44..].reverse();
    p.s3()
        .put_bytes(&verified.object_key, &other, "audio/wav")
        .await
        .unwrap();
    let (_, decision) = validate(&p, &input).await;
    let failed = failure(&decision);
    assert_eq!(failed.reason_code, ValidationFailureReason::ObjectChanged);
    assert!(
        failed.message.contains("not the version verified"),
        "{}",
        failed.message
    );

    // Longer than verified: cut off at the verified size.
    let longer = [bytes.as_slice(), b"more"].concat();
    p.s3()
        .put_bytes(&verified.object_key, &longer, "audio/wav")
        .await
        .unwrap();
    let unpinned = completed(
        &verified.metadata.correlation_id,
        &verified.object_key,
        verified.size_bytes,
        "audio/wav",
        None,
    );
    let (_, decision) = validate(&p, &unpinned).await;
    let failed = failure(&decision);
    assert_eq!(failed.reason_code, ValidationFailureReason::ObjectChanged);
    assert!(failed.message.contains("larger than"), "{}", failed.message);
}
