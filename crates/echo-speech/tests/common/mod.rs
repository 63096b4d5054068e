//! The flite sentence and the transcriber the transcription tests share.

use echo_speech::audio::decode_to_mono_16k;
use echo_speech::model::{prepare, ModelName, Quantization};
use echo_speech::transcriber::{Segment, Transcriber, TranscriberConfig};
use echo_tests::pipeline::speak;

/// A sentence tiny.en transcribes word for word from flite's `slt` voice.
pub const SENTENCE: &str =
    "Please call Stella and ask her to bring these things with her from the store.";

pub fn joined(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// tiny.en's transcriber with the default settings.
pub fn tiny_en() -> Transcriber {
    let model = prepare(
        &echo_runtime::EchoConfig::load(None).unwrap().data_dir,
        ModelName::TinyEn,
        Quantization::F16,
        false,
    )
    .expect("prepare model");
    Transcriber::new(&model.path, TranscriberConfig::default()).expect("load")
}

/// The model's transcriber and [`SENTENCE`] spoken by flite, as 16 kHz mono samples.
pub fn the_sentence() -> (Transcriber, Vec<f32>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wav = speak(tmp.path(), "speech.wav", SENTENCE).expect("flite must be installed");
    let samples = decode_to_mono_16k(&wav).expect("decode flite wav");
    (tiny_en(), samples)
}
