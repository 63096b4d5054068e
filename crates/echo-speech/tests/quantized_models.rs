//! Quantized models: byte for byte what whisper.cpp's own quantizer makes of the f16 model,
//! and each one transcribes the flite sentence word for word.

use std::fs;

use echo_speech::audio::decode_to_mono_16k;
use echo_speech::model::{prepare, ModelName, Quantization};
use echo_speech::transcriber::{Transcriber, TranscriberConfig};
use echo_tests::pipeline::{speak, word_error_rate};
use whisper_rs_sys as ggml;

/// The quantizations besides the source's f16.
const QUANTIZED: [Quantization; 3] = [Quantization::Q8_0, Quantization::Q5_0, Quantization::Q5_1];

/// The sentence of `transcribe_flite.rs`, which f16 transcribes exactly.
const SENTENCE: &str =
    "Please call Stella and ask her to bring these things with her from the store.";

/// Little-endian cursor over a ggml model file.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let taken = &self.bytes[self.at..self.at + n];
        self.at += n;
        taken
    }

    fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.take(4).try_into().unwrap())
    }
}

/// What whisper.cpp's `examples/quantize` (`whisper_model_quantize` and
/// `ggml_common_quantize_0`) writes for the f16 model `f16`: its loop, with the quantizing done
/// by ggml's own `ggml_quantize_chunk` from the whisper.cpp build echo links.
fn quantize_with_ggml(f16: &[u8], quantization: Quantization) -> Vec<u8> {
    let (ftype, qtype) = match quantization {
        Quantization::Q8_0 => (
            ggml::ggml_ftype_GGML_FTYPE_MOSTLY_Q8_0,
            ggml::ggml_type_GGML_TYPE_Q8_0,
        ),
        Quantization::Q5_0 => (
            ggml::ggml_ftype_GGML_FTYPE_MOSTLY_Q5_0,
            ggml::ggml_type_GGML_TYPE_Q5_0,
        ),
        Quantization::Q5_1 => (
            ggml::ggml_ftype_GGML_FTYPE_MOSTLY_Q5_1,
            ggml::ggml_type_GGML_TYPE_Q5_1,
        ),
        Quantization::F16 => unreachable!("f16 is not quantized"),
    };
    // The tool's `to_skip`; and it quantizes only 2-D tensors.
    let to_skip = [
        "encoder.conv1.bias",
        "encoder.conv2.bias",
        "encoder.positional_embedding",
        "decoder.positional_embedding",
    ];
    let mut r = Cursor { bytes: f16, at: 0 };
    let mut out = Vec::with_capacity(f16.len());

    // Magic and hparams; the file type becomes the quantization version's.
    out.extend_from_slice(r.take(4 * 11));
    assert_eq!(r.i32(), 1, "source must be mostly f16");
    let ftype_dst = (ggml::GGML_QNT_VERSION * ggml::GGML_QNT_VERSION_FACTOR) as i32 + ftype;
    out.extend_from_slice(&ftype_dst.to_le_bytes());
    // Mel filters and vocabulary as they are.
    let mel_start = r.at;
    let (n_mel, n_fft) = (r.i32() as usize, r.i32() as usize);
    r.take(n_mel * n_fft * 4);
    for _ in 0..r.i32() {
        let len = r.i32() as usize;
        r.take(len);
    }
    out.extend_from_slice(&f16[mel_start..r.at]);

    while r.at < f16.len() {
        let head_start = r.at;
        let (n_dims, name_len, ttype) = (r.i32(), r.i32() as usize, r.i32());
        let ne: Vec<i64> = (0..n_dims).map(|_| i64::from(r.i32())).collect();
        let name = std::str::from_utf8(r.take(name_len)).unwrap().to_owned();
        let nelements = ne.iter().product::<i64>() as usize;
        let quantize = n_dims == 2 && !to_skip.contains(&name.as_str());
        if !quantize {
            let bpe = if ttype == 0 { 4 } else { 2 };
            r.take(nelements * bpe);
            out.extend_from_slice(&f16[head_start..r.at]);
            continue;
        }
        let data: Vec<f32> = match ttype {
            1 => r
                .take(nelements * 2)
                .chunks_exact(2)
                .map(|c| unsafe { ggml::ggml_fp16_to_fp32(u16::from_le_bytes([c[0], c[1]])) })
                .collect(),
            0 => r
                .take(nelements * 4)
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            other => panic!("{name}: type {other}"),
        };
        out.extend_from_slice(&n_dims.to_le_bytes());
        out.extend_from_slice(&(name_len as i32).to_le_bytes());
        out.extend_from_slice(&(qtype as i32).to_le_bytes());
        for d in &ne {
            out.extend_from_slice(&(*d as i32).to_le_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        // `work` in the tool: as many floats as elements, more than any quantized size.
        let mut work = vec![0f32; nelements];
        let size = unsafe {
            ggml::ggml_quantize_chunk(
                qtype,
                data.as_ptr(),
                work.as_mut_ptr().cast(),
                0,
                nelements as i64 / ne[0],
                ne[0],
                std::ptr::null(),
            )
        };
        let bytes = unsafe { std::slice::from_raw_parts(work.as_ptr().cast::<u8>(), size) };
        out.extend_from_slice(bytes);
    }
    out
}

#[test]
fn quantized_models_are_what_whisper_cpp_quantize_makes_of_the_f16_model() {
    let data_dir = echo_runtime::EchoConfig::load(None).unwrap().data_dir;
    let f16 = prepare(&data_dir, ModelName::TinyEn, Quantization::F16, false).expect("prepare f16");
    let f16 = fs::read(&f16.path).expect("read f16 model");
    for quantization in QUANTIZED {
        let model = prepare(&data_dir, ModelName::TinyEn, quantization, false).expect("prepare");
        let ours = fs::read(&model.path).expect("read quantized model");
        let theirs = quantize_with_ggml(&f16, quantization);
        assert_eq!(ours.len(), theirs.len(), "{quantization}: sizes differ");
        if let Some(at) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
            panic!("{quantization}: first difference from ggml's quantizer at byte {at}");
        }
        // So the pinned checksum is of ggml's output.
        assert_eq!(model.sha256, ModelName::TinyEn.sha256(quantization));
    }
}

#[test]
fn every_quantization_transcribes_the_sentence() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let tmp = tempfile::tempdir().expect("tempdir");
    let wav = speak(tmp.path(), "speech.wav", SENTENCE).expect("flite must be installed");
    let samples = decode_to_mono_16k(&wav).expect("decode flite wav");
    let data_dir = echo_runtime::EchoConfig::load(None).unwrap().data_dir;
    for quantization in QUANTIZED {
        let model = prepare(&data_dir, ModelName::TinyEn, quantization, false).expect("prepare");
        let transcriber =
            Transcriber::new(&model.path, TranscriberConfig::default()).expect("load");
        let heard = transcriber
            .transcribe(&samples)
            .expect("transcribe")
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            word_error_rate(SENTENCE, &heard),
            0.0,
            "{quantization} heard {heard:?}"
        );
    }
}
