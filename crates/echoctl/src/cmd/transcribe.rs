//! `echoctl transcribe FILE [--threads N] [--model M] [--quantization Q] [--prompt TEXT] [--json]`: the transcriber alone on a whole file,
//! without Kafka, S3 or chunking. It is the compute limit the pipeline is measured against
//! (the same whisper.cpp build and weights the chunk workers load), and a quick way to hear
//! what the model makes of a file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result};
use echo_chunk_worker::ChunkWorkerConfig;
use echo_runtime::EchoConfig;
use echo_speech::audio::decode_to_mono_16k;
use echo_speech::model::{ModelName, Quantization};
use echo_speech::transcriber::{Transcriber, TranscriberConfig, SAMPLE_RATE};
use serde_json::json;

/// `transcribe` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The audio file (any format the pipeline accepts).
    file: PathBuf,
    /// CPU threads whisper uses.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Which weights: f16, q8_0, q5_0 or q5_1. Defaults to `chunk_worker.quantization`, what
    /// the chunk workers load.
    #[arg(long)]
    quantization: Option<Quantization>,
    /// Which model: tiny.en or base. Defaults to `chunk_worker.model`; `base` detects the
    /// language.
    #[arg(long)]
    model: Option<ModelName>,
    /// Text whisper reads as if just said (names, terms, style), as an upload's `prompt`.
    #[arg(long)]
    prompt: Option<String>,
    /// Prints the text, segments and timings as JSON.
    #[arg(long)]
    json: bool,
}

/// Decodes the whole file, transcribes it in one whisper call and prints the text.
pub fn run(config: &EchoConfig, args: Args) -> Result<ExitCode> {
    let worker = config.section::<ChunkWorkerConfig>("chunk_worker")?;
    let quantization = args.quantization.unwrap_or(worker.quantization);
    let name = args.model.unwrap_or(worker.model);
    let model = echo_speech::model::prepare(&config.data_dir, name, quantization, false)?;
    let transcriber = Transcriber::new(
        &model.path,
        TranscriberConfig {
            threads: args.threads,
            ..TranscriberConfig::for_model(name)
        },
    )?;
    let started = Instant::now();
    let samples = decode_to_mono_16k(&args.file)
        .with_context(|| format!("decoding {}", args.file.display()))?;
    let decoded = started.elapsed();
    let heard = transcriber.transcribe_until(&samples, args.prompt.as_deref(), None)?;
    let segments = heard.segments;
    let transcribed = started.elapsed() - decoded;
    let text = segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    if args.json {
        let report = json!({
            "model": name.name(),
            "model_sha256": model.sha256,
            "quantization": quantization.name(),
            "language": heard.language,
            "threads": args.threads,
            "blas_kernels": echo_speech::blas::kernels(),
            "tiled_kernels": echo_speech::llamafile::compiled_in(),
            "audio_ms": samples.len() as u64 * 1000 / u64::from(SAMPLE_RATE),
            "decode_ms": decoded.as_millis() as u64,
            "whisper_ms": transcribed.as_millis() as u64,
            "text": text,
            "segments": segments.iter().map(|s| json!({
                "start_ms": s.start_ms,
                "end_ms": s.end_ms,
                "text": s.text,
                "confidence": s.confidence,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
