//! The multilingual model (`base`) detects the language of what it hears and writes it in that
//! language; `tiny.en` is told English and detects nothing. Real speech: English from flite,
//! German and Spanish from espeak-ng.

use echo_speech::audio::decode_to_mono_16k;
use echo_speech::model::{prepare, ModelName, Quantization};
use echo_speech::transcriber::{Transcriber, TranscriberConfig};
use echo_tests::pipeline::{speak, speak_in};

fn transcriber(model: ModelName) -> Transcriber {
    let data_dir = echo_runtime::EchoConfig::load(None).unwrap().data_dir;
    let prepared = prepare(&data_dir, model, Quantization::F16, false).expect("prepare model");
    Transcriber::new(&prepared.path, TranscriberConfig::for_model(model)).expect("load model")
}

#[test]
fn base_detects_the_language_of_each_clip_and_tiny_en_assumes_english() {
    let dir = tempfile::tempdir().unwrap();
    let english = "Please call Stella and ask her to bring these things with her from the store.";
    let clips = [
        (
            speak(dir.path(), "en.wav", english).unwrap(),
            "en",
            "Stella",
        ),
        (
            speak_in(
                dir.path(),
                "de.wav",
                "de",
                "Der Zug fuhr über eine lange Brücke und hielt dann am Bahnhof.",
            )
            .unwrap(),
            "de",
            "Zug",
        ),
        (
            speak_in(
                dir.path(),
                "es.wav",
                "es",
                "El tren cruzó un puente largo sobre el río y luego se detuvo en la estación.",
            )
            .unwrap(),
            "es",
            "estación",
        ),
    ];
    let base = transcriber(ModelName::Base);
    for (wav, language, word) in &clips {
        let samples = decode_to_mono_16k(wav).unwrap();
        let heard = base.transcribe_until(&samples, None, None).unwrap();
        let text: Vec<&str> = heard.segments.iter().map(|s| s.text.as_str()).collect();
        let text = text.join(" ");
        assert_eq!(heard.language.as_deref(), Some(*language), "{text}");
        assert!(text.contains(word), "{language}: {text}");
    }

    let tiny = transcriber(ModelName::TinyEn);
    let samples = decode_to_mono_16k(&clips[1].0).unwrap();
    let heard = tiny.transcribe_until(&samples, None, None).unwrap();
    assert_eq!(heard.language, None, "tiny.en detects nothing");
}
