//! Settings of the chunk worker, loaded from the `chunk-worker` section of echo's configuration.

use anyhow::{ensure, Result};
use echo_speech::model::{ModelName, Quantization};
use serde::{Deserialize, Serialize};

/// Environment variable that sets [`ChunkWorkerConfig::test_delay_ms`] (tests only).
pub const TEST_DELAY_ENV: &str = "ECHO_CHUNK_WORKER_TEST_DELAY_MS";

/// How one chunk worker instance transcribes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChunkWorkerConfig {
    /// CPU threads whisper uses per chunk. 1 by default: many single-threaded workers scale
    /// better than one multi-threaded one, which collapses on a busy machine (measured).
    pub threads: usize,
    /// Name written as `worker` in `chunk.processing.started`, to trace a slow or failing
    /// worker; the host name (the pod name in Kubernetes) by default.
    pub worker_name: String,
    /// TEST ONLY: sleep this long before transcribing each chunk, so tests can simulate a hung
    /// worker and exercise the aggregator's deadlines. `None` (the default) in every real
    /// deployment; also set by the environment variable `ECHO_CHUNK_WORKER_TEST_DELAY_MS`.
    pub test_delay_ms: Option<u64>,
    /// How many downloaded source files the local cache keeps; the least recently used are
    /// deleted past it. A worker transcribes many chunks of one file, so a few suffice, and
    /// the bound keeps the disk from filling up with old uploads.
    pub cache_max_files: usize,
    /// Largest source file downloaded, in bytes: a chunk command names an object, and a bigger
    /// one is refused rather than streamed to disk without end. Keep it at least
    /// `upload.max_size_bytes` (default the same, 512 MiB).
    pub max_download_bytes: u64,
    /// Longest chunk transcribed, in ms: a command's range sizes the decoded samples held in
    /// memory (64 KB a second), so `0..i64::MAX` must not be taken at its word. Keep it at
    /// least `validation.chunk_ms` and `validation.max_span_ms` (speech chunks span up to
    /// it). Default 10 minutes (38 MB of samples).
    pub max_chunk_ms: u64,
    /// Whether whisper hears only the speech of a chunk: the worker detects it in the range,
    /// keeps at most 400 ms of each pause and maps whisper's times back. whisper pays per 30 s
    /// window, so silence costs as much as speech; speech chunks are planned to fill a
    /// window once squeezed. On by default; off sends the whole range, for comparison.
    pub squeeze_silence: bool,
    /// Whether a chunk hears the text of the chunk before it as whisper's prompt, when this
    /// worker transcribed that one (see `context`). Measured on the benchmark's file: with
    /// `tiny.en` it lowers WER by 0.68 points (each chunk no longer starts cold); with `base`
    /// it raised WER by 2 points, so unset (the default) means on for `tiny.en`, off for
    /// `base`. The price is memory: whisper.cpp keeps room for every prompt token's logits,
    /// ~30 MB more resident per worker (measured; ~125 MB before echo's build computed only
    /// the last token's, docs/PERFORMANCE.md change 19); `false` for workers that must stay
    /// small.
    pub prompt_with_previous_chunk: Option<bool>,
    /// Which weights of the whisper model to load (`f16`, `q8_0`, `q5_0`, `q5_1`): quantized
    /// weights transcribe faster on a CPU and take less memory, at some cost in accuracy, so
    /// each deployment picks its trade-off. `f16` (the source model's precision) by default.
    pub quantization: Quantization,
    /// Which whisper model (`tiny.en`, the default, or `base`): `base` knows 99 languages
    /// and detects each chunk's, and takes about twice the time.
    pub model: ModelName,
    /// Most chunk commands handled in one transaction, in place of
    /// `runtime.batch_max_records`: one chunk is seconds of CPU, so batching buys nothing and
    /// would stretch the transaction over several transcriptions. 1 by default.
    pub batch_max_records: usize,
    /// Jobs of at most this many chunks (clips) are transcribed by the express worker, not
    /// the pool, so they never wait behind long files (see `lane`). 1 by default: a job of one
    /// chunk (up to about 28 s of speech); 0 sends every job to the pool. Both groups must
    /// be given the same value, as each passes over what it reads as the other's.
    pub express_max_chunks: i32,
    /// How much lower than the process the pool's whisper runs (Unix niceness, 0–19): the
    /// work someone is waiting for (the express worker's clip, the pipeline's hops) gets a
    /// core at once, and the pool gets it back after (see `niced`). 10 by default; 0 runs the
    /// pool at the process's priority.
    pub pool_whisper_nice: i32,
}

impl Default for ChunkWorkerConfig {
    fn default() -> Self {
        ChunkWorkerConfig {
            threads: 1,
            worker_name: default_worker_name(),
            test_delay_ms: std::env::var(TEST_DELAY_ENV)
                .ok()
                .and_then(|v| v.trim().parse().ok()),
            cache_max_files: 8,
            max_download_bytes: 512 * 1024 * 1024,
            max_chunk_ms: 10 * 60 * 1000,
            squeeze_silence: true,
            prompt_with_previous_chunk: None,
            quantization: Quantization::F16,
            model: ModelName::TinyEn,
            batch_max_records: 1,
            express_max_chunks: 1,
            pool_whisper_nice: 10,
        }
    }
}

impl ChunkWorkerConfig {
    /// Whether chunks hear the text of the chunk before them: as set, else as measured best
    /// for the model (see [`ChunkWorkerConfig::prompt_with_previous_chunk`]).
    pub fn prompts_with_previous_chunk(&self) -> bool {
        self.prompt_with_previous_chunk
            .unwrap_or(self.model == ModelName::TinyEn)
    }

    /// Fails on settings no worker can run with, so a bad config stops it at startup.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.threads >= 1,
            "chunk-worker.threads must be at least 1, got {}",
            self.threads
        );
        ensure!(
            self.batch_max_records >= 1,
            "chunk_worker.batch_max_records must be at least 1, got {}",
            self.batch_max_records
        );
        ensure!(
            !self.worker_name.trim().is_empty(),
            "chunk-worker.worker_name must not be empty"
        );
        ensure!(
            self.cache_max_files >= 1,
            "chunk-worker.cache_max_files must be at least 1 (the file being transcribed)"
        );
        ensure!(
            self.max_download_bytes >= 1,
            "chunk-worker.max_download_bytes must be positive"
        );
        ensure!(
            self.express_max_chunks >= 0,
            "chunk_worker.express_max_chunks must not be negative, got {}",
            self.express_max_chunks
        );
        ensure!(
            (0..=19).contains(&self.pool_whisper_nice),
            "chunk_worker.pool_whisper_nice must be within 0..=19, got {}",
            self.pool_whisper_nice
        );
        ensure!(
            self.max_chunk_ms >= 1,
            "chunk-worker.max_chunk_ms must be positive"
        );
        Ok(())
    }
}

/// `$HOSTNAME` (set in Kubernetes pods), else `/etc/hostname`, else `worker`.
fn default_worker_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "worker".to_string())
}
