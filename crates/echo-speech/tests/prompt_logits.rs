//! whisper.cpp as echo builds it decodes a prompt for its last token only. The test reads the
//! buffer sizes whisper.cpp logs through `tracing`, so it runs alone in its own binary: a
//! tracing callsite registered while other tests install their subscribers can be left
//! disabled for the whole process, and the log it reads would come back empty.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{joined, the_sentence, SENTENCE};

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

/// whisper.cpp as echo builds it computes a prompt's logits for its last token only
/// (`patches/whisper-prompt-logits.cmake`): a chunk worker's prompt is the previous chunk's
/// text, up to 224 tokens, and unpatched whisper.cpp runs the 51,864-token output projection
/// for every one of them and reserves room for all their logits.
#[test]
fn a_prompt_is_decoded_for_its_last_token_only_and_still_heard() {
    // The state, whose buffers whisper.cpp reports, is created by the first transcription.
    let (transcriber, samples) = the_sentence();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let transcription = tracing::subscriber::with_default(subscriber, || {
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
    assert_eq!(joined(&transcription.segments).trim(), SENTENCE);
}
