//! Transcribes one audio file with each quantization of the model and prints, for each, the
//! wall time of `Transcriber::transcribe`, the real-time factor, the word error rate against
//! a reference text (when given) and the words heard. One run each: rough figures, for
//! choosing `chunk_worker.quantization`.
//!
//! ```text
//! cargo run --release -p echo-speech --example quantization_speed -- AUDIO [REFERENCE.txt] [--threads N]
//! ```

use std::time::Instant;

use anyhow::{bail, Context, Result};
use echo_speech::audio::decode_to_mono_16k;
use echo_speech::model::{prepare, ModelName, Quantization};
use echo_speech::transcriber::{Transcriber, TranscriberConfig, SAMPLE_RATE};
use echo_tests::pipeline::word_error_rate;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut audio, mut reference, mut threads) = (None, None, 1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => threads = args.next().context("--threads N")?.parse()?,
            _ if audio.is_none() => audio = Some(arg),
            _ if reference.is_none() => reference = Some(std::fs::read_to_string(&arg)?),
            _ => bail!("unexpected argument {arg}"),
        }
    }
    let audio = audio.context("usage: quantization_speed AUDIO [REFERENCE.txt] [--threads N]")?;
    let samples = decode_to_mono_16k(audio.as_ref())?;
    let seconds = samples.len() as f64 / f64::from(SAMPLE_RATE);
    println!("{audio}: {seconds:.1} s of audio, {threads} thread(s)");

    let data_dir = echo_runtime::EchoConfig::load(None)?.data_dir;
    for quantization in Quantization::ALL {
        let model = prepare(&data_dir, ModelName::TinyEn, quantization, false)?;
        let size_mb = std::fs::metadata(&model.path)?.len() as f64 / 1e6;
        let transcriber = Transcriber::new(
            &model.path,
            TranscriberConfig {
                threads,
                ..TranscriberConfig::default()
            },
        )?;
        let start = Instant::now();
        let segments = transcriber.transcribe(&samples)?;
        let wall = start.elapsed().as_secs_f64();
        let heard = segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let wer = reference
            .as_deref()
            .map(|r| format!("{:.1} %", 100.0 * word_error_rate(r, &heard)))
            .unwrap_or_else(|| "-".to_owned());
        println!(
            "{quantization:>5}  {size_mb:5.1} MB  wall {wall:6.2} s  RTF {:.3}  WER {wer}\n       {heard}",
            wall / seconds
        );
    }
    Ok(())
}
