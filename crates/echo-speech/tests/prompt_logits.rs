//! whisper.cpp as echo builds it computes a prompt's logits for its last token only
//! (`patches/whisper-prompt-logits.cmake`): a chunk worker's prompt is the previous chunk's
//! text, up to 224 tokens, and unpatched whisper.cpp runs the 51,864-token output projection
//! for every one of them and reserves room for all their logits.

use std::io::Write;
use std::sync::{Arc, Mutex};

use echo_speech::audio::decode_to_mono_16k;
use echo_speech::model::{prepare, ModelName, Quantization};
use echo_speech::transcriber::{Transcriber, TranscriberConfig};
use echo_tests::pipeline::speak;

/// A sentence tiny.en transcribes word for word from flite's `slt` voice.
const SENTENCE: &str =
    "Please call Stella and ask her to bring these things with her from the store.";

/// A prompt well past the 32 tokens from which whisper.cpp hands a batch to OpenBLAS.
const PROMPT: &str = "The boats came back through the narrow channel in the evening, and the \
    gulls circled low over the quay while the fishermen unloaded their crates. Nobody spoke \
    of the storm that had kept them out for three days, though everyone had heard of it.";

/// What whisper.cpp logs while it creates a state, collected from `tracing`.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The size whisper.cpp reports for one of a state's compute buffers, in MB.
fn compute_buffer_mb(log: &str, name: &str) -> Option<f64> {
    let line = log
        .lines()
        .find(|l| l.contains(&format!("compute buffer ({name})")))?;
    line.rsplit('=')
        .next()?
        .trim()
        .trim_end_matches("MB")
        .trim()
        .parse()
        .ok()
}

#[test]
fn a_prompt_is_decoded_for_its_last_token_only_and_still_heard() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wav = speak(tmp.path(), "speech.wav", SENTENCE).expect("flite must be installed");
    let samples = decode_to_mono_16k(&wav).expect("decode flite wav");
    let model = prepare(
        &echo_runtime::EchoConfig::load(None).unwrap().data_dir,
        ModelName::TinyEn,
        Quantization::F16,
        false,
    )
    .expect("prepare model");

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let transcription = tracing::subscriber::with_default(subscriber, || {
        let transcriber =
            Transcriber::new(&model.path, TranscriberConfig::default()).expect("load model");
        transcriber
            .transcribe_until(&samples, Some(PROMPT), None)
            .expect("transcribe with a prompt")
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();

    // The decoder's buffers are reserved for the longest batch, a full text context (448
    // tokens): with every token's logits, 448 × 51,864 floats (93 MB) of them.
    let decode = compute_buffer_mb(&log, "decode")
        .unwrap_or_else(|| panic!("whisper.cpp reported no decode buffer; it logged:\n{log}"));
    assert!(
        decode < 48.0,
        "whisper.cpp reserved {decode} MB to decode a batch: room for the logits of every \
         prompt token, so it is not built with the patch"
    );

    // The logits read after the prompt are its last token's: the sentence is heard exactly.
    let text: Vec<&str> = transcription
        .segments
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(text.join(" ").trim(), SENTENCE);
}
