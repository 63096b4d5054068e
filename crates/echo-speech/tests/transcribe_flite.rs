//! End to end: synthetic speech (flite) → decode → whisper → exact text.

use std::path::Path;
use std::sync::Arc;

use echo_speech::audio::decode_to_mono_16k;
use echo_speech::model::{prepare, Quantization};
use echo_speech::transcriber::{Segment, TranscribeError, Transcriber, TranscriberConfig};
use echo_tests::pipeline::{speak, word_error_rate};

/// A sentence tiny.en transcribes word for word from flite's `slt` voice.
const SENTENCE: &str =
    "Please call Stella and ask her to bring these things with her from the store.";

fn joined(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The model's transcriber and [`SENTENCE`] spoken by flite, as 16 kHz mono samples.
fn the_sentence() -> (Transcriber, Vec<f32>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wav = speak(tmp.path(), "speech.wav", SENTENCE).expect("flite must be installed");
    let model = prepare(
        &echo_runtime::EchoConfig::load(None).unwrap().data_dir,
        Quantization::F16,
        false,
    )
    .expect("prepare model");
    let samples = decode_to_mono_16k(&wav).expect("decode flite wav");
    let transcriber = Transcriber::new(&model.path, TranscriberConfig::default()).expect("load");
    (transcriber, samples)
}

#[test]
fn flite_sentence_is_transcribed_exactly() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();

    let (transcriber, samples) = the_sentence();
    let duration_ms = samples.len() as u64 * 1000 / 16_000;
    assert!(duration_ms > 2_000, "speech too short: {duration_ms} ms");
    let transcriber = Arc::new(transcriber);

    // The same model serves two threads at once; each call has its own state.
    let (here, there) = std::thread::scope(|s| {
        let other = {
            let t = Arc::clone(&transcriber);
            let samples = &samples;
            s.spawn(move || t.transcribe(samples))
        };
        let here = transcriber.transcribe(&samples);
        (here, other.join().expect("thread panicked"))
    });
    let segments = here.expect("transcribe");
    assert_eq!(segments, there.expect("transcribe in second thread"));
    // Their two states are kept and reused: other audio, then the sentence again, allocate
    // no third one, and nothing of an earlier call leaks into a later one.
    assert_eq!(transcriber.idle_states(), 2);
    let silence = vec![0.0; 16_000 * 3];
    transcriber
        .transcribe(&silence)
        .expect("transcribe silence");
    assert_eq!(transcriber.transcribe(&samples).expect("again"), segments);
    assert_eq!(transcriber.idle_states(), 2);

    let heard = joined(&segments);
    assert_eq!(word_error_rate(SENTENCE, &heard), 0.0, "heard {heard:?}");
    for s in &segments {
        assert!(s.start_ms < s.end_ms, "{s:?}");
        assert!(
            s.end_ms <= duration_ms + 1_000,
            "{s:?} beyond {duration_ms} ms"
        );
        assert!(s.confidence > 0.5 && s.confidence <= 1.0, "{s:?}");
    }
}

#[test]
fn a_transcription_past_its_deadline_stops() {
    let (transcriber, samples) = the_sentence();
    // Whisper itself must give up (its abort callback), or it would return the segments.
    let stopped = transcriber.transcribe_until(&samples, Some(std::time::Instant::now()));
    assert!(
        matches!(stopped, Err(TranscribeError::DeadlinePassed)),
        "{stopped:?}"
    );
    let far = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let heard = joined(
        &transcriber
            .transcribe_until(&samples, Some(far))
            .expect("transcribe"),
    );
    assert_eq!(word_error_rate(SENTENCE, &heard), 0.0, "heard {heard:?}");
}

#[test]
fn empty_input_gives_no_segments() {
    let model = prepare(
        &echo_runtime::EchoConfig::load(None).unwrap().data_dir,
        Quantization::F16,
        false,
    )
    .expect("prepare model");
    let transcriber = Transcriber::new(&model.path, TranscriberConfig::default()).expect("load");
    assert!(transcriber.transcribe(&[]).expect("transcribe").is_empty());
}

#[test]
fn transcriber_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Transcriber>();
}

#[test]
fn missing_model_is_a_clear_error() {
    let err = Transcriber::new(Path::new("/nonexistent/model.bin"), Default::default())
        .expect_err("must fail");
    assert!(err.to_string().contains("/nonexistent/model.bin"), "{err}");
}

#[test]
fn zero_threads_is_rejected() {
    let config = TranscriberConfig {
        threads: 0,
        ..TranscriberConfig::default()
    };
    let err = Transcriber::new(Path::new("/nonexistent/model.bin"), config).expect_err("must fail");
    assert!(
        matches!(
            err,
            echo_speech::transcriber::TranscribeError::InvalidConfig(_)
        ),
        "{err}"
    );
}

#[test]
fn speech_from_the_first_sample_is_heard() {
    // A chunk cut between two words of read speech (the benchmark's last paragraph, cut
    // where the planner cut it): without silence before it, whisper answered "This is the
    // first time." for all fifteen seconds.
    let paragraph = "There is a small observatory on the headland, built by an amateur astronomer \
        who left it to the town when he died. On clear nights volunteers open the dome and \
        invite anyone who is curious to look through the telescope. Far from the lights of the \
        city, the sky is full of stars, and the band of the galaxy stretches from one horizon \
        to the other. Visitors often fall silent when they see the rings of a planet or the \
        craters of the moon for the first time. The volunteers say that this silence is the \
        reason they keep the observatory open.";
    let said = "sky is full of stars, and the band of the galaxy stretches from one horizon to \
        the other. Visitors often fall silent when they see the rings of a planet or the \
        craters of the moon for the first time. The volunteers say that this silence is the \
        reason they keep the observatory open.";
    let (transcriber, _) = the_sentence();
    let tmp = tempfile::tempdir().expect("tempdir");
    let wav = speak(tmp.path(), "paragraph.wav", paragraph).expect("flite");
    let samples = decode_to_mono_16k(&wav).expect("decode");
    let cut = &samples[13_476 * 16..];
    let segments = transcriber.transcribe(cut).expect("transcribe");
    let heard = joined(&segments);
    let wer = word_error_rate(said, &heard);
    assert!(wer < 0.2, "WER {wer:.2}: heard {heard:?}");
    // Times are the input's, not the lead-in's.
    assert!(segments[0].start_ms < 500, "{segments:?}");
    let duration_ms = cut.len() as u64 / 16;
    assert!(
        segments.last().unwrap().end_ms <= duration_ms + 500,
        "{segments:?}"
    );
}
