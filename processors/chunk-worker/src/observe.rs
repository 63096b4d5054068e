//! The I/O of the chunk worker: fetching the source file into a bounded local cache, decoding
//! the chunk's range and transcribing it with whisper on a blocking thread, for `decide` to
//! report. `observe` only reads (the cache, and the text of the chunks it transcribed last,
//! are its own).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result};
use echo_catalog::events::ChunkProcess;
use echo_runtime::metrics::metrics;
use echo_runtime::prelude::*;
use echo_speech::audio::{decode_range, AudioError};
use echo_speech::transcriber::{
    TranscribeError, Transcriber, TranscriberConfig, Transcription, SAMPLE_RATE,
};
use echo_speech::vad::{SpeechDetector, VadSettings};
use echo_storage::{Download, Pin, S3Service};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::config::ChunkWorkerConfig;
use crate::context::{self, RecentText};
use crate::decide::{self, ChunkWorkerDecider, ChunkWorkerState, Observation, Verdict};
use crate::lane::Lane;
use crate::niced;
use crate::squeeze::{Squeeze, JOIN_GAP_MS};

/// The chunk worker, run by `echo_runtime::run`.
#[derive(Debug, Clone)]
pub struct ChunkWorker {
    /// Its decisions, over its settings (threads, quantization, worker name, cache size, the
    /// test-only delay), which `observe` reads too.
    decider: ChunkWorkerDecider,
    /// The whisper model, loaded once at startup (loading per chunk would cost more than
    /// transcribing); in an `Arc` so the blocking transcription task can hold it.
    transcriber: Arc<Transcriber>,
    /// The bucket the uploaded audio is read from.
    s3: S3Service,
    /// Where downloaded source files are kept (`<data_dir>/cache/objects/`).
    cache_dir: PathBuf,
    /// How long one chunk's transcription may run: a quarter of the transaction timeout
    /// (30 s by default), inside the runtime's budget for announced work and well inside the
    /// job aggregator's chunk deadline, so a whisper run that hangs stops, rather than hold a
    /// core, before its chunk is re-issued to another worker.
    whisper_limit: Duration,
    /// What the chunks it transcribed last said, so the next chunk of a run hears the text
    /// before it (see [`context`]).
    recent: Arc<RecentText>,
}

impl ChunkWorker {
    /// A worker over the bucket of `config.s3` with the whisper model of `config.data_dir` in
    /// the configured model and quantization (prepared there if missing); fails on unusable settings or
    /// a model that does not load.
    pub fn new(config: &EchoConfig, worker: ChunkWorkerConfig, lane: Lane) -> Result<ChunkWorker> {
        worker.validate()?;
        let model =
            echo_speech::model::prepare(&config.data_dir, worker.model, worker.quantization, false)
                .context("preparing the whisper model")?;
        let transcriber = Transcriber::new(
            &model.path,
            TranscriberConfig {
                threads: worker.threads,
                ..TranscriberConfig::for_model(worker.model)
            },
        )
        .context("loading the whisper model")?;
        if let Some(ms) = worker.test_delay_ms {
            warn!(
                delay_ms = ms,
                "chunk worker delays every chunk (test-only setting)"
            );
        }
        info!(model = %model.path.display(), sha256 = %model.sha256, worker = %worker.worker_name,
            threads = worker.threads, model = %worker.model, quantization = %worker.quantization,
            blas_kernels = %echo_speech::blas::kernels(),
            tiled_kernels = echo_speech::llamafile::compiled_in(), "chunk worker ready");
        Ok(ChunkWorker {
            decider: ChunkWorkerDecider {
                config: worker,
                lane,
            },
            transcriber: Arc::new(transcriber),
            s3: S3Service::new(config)?,
            cache_dir: config.data_dir.join("cache").join("objects"),
            whisper_limit: config.kafka.observe_timeout(),
            recent: Arc::default(),
        })
    }

    /// The object store it reads from, for startup checks.
    pub fn s3(&self) -> &S3Service {
        &self.s3
    }

    /// Its settings.
    pub fn config(&self) -> &ChunkWorkerConfig {
        &self.decider.config
    }

    /// whisper's prompt for the chunk `command` names: the upload's prompt, then the text of the
    /// chunk before it if this worker transcribed that one (and prompts with it, see
    /// `ChunkWorkerConfig::prompt_with_previous_chunk`).
    pub fn prompt_for(&self, command: &ChunkProcess) -> Option<String> {
        let before = self
            .decider
            .config
            .prompts_with_previous_chunk()
            .then(|| self.recent.before(&command.job_id, command.chunk_index))
            .flatten();
        context::prompt(command.prompt.as_deref(), before.as_deref())
    }

    /// Where the version `pin` of the object at `key` is cached locally: named by a hash of
    /// both, so any key maps to one safe file name and another version of it to another.
    pub fn cache_path(&self, key: &str, pin: &Pin) -> PathBuf {
        let mut hash = Sha256::new();
        hash.update(key.as_bytes());
        if let Some(etag) = &pin.etag {
            hash.update([0]);
            hash.update(etag.as_bytes());
        }
        self.cache_dir.join(hex::encode(hash.finalize()))
    }

    /// The local copy of the pinned version of the object at `key`, downloaded unless already
    /// cached (a version never changes, so a cached copy stays valid); `Ok(Err)` when that
    /// version is not what is stored, which no retry will change.
    async fn fetch(&self, key: &str, pin: &Pin) -> Result<Result<PathBuf, String>, HandlerError> {
        let path = self.cache_path(key, pin);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            debug!(key, file = %file_name(&path), "source audio cached");
            // Marks it recently used, for the cache's eviction.
            touch(&path);
            return Ok(Ok(path));
        }
        tokio::fs::create_dir_all(&self.cache_dir)
            .await
            .map_err(|e| HandlerError::Transient(format!("creating the download cache: {e}")))?;
        // Downloaded beside and renamed into place, so no reader (another worker process on
        // the same disk) ever sees a partial file; deleted on every other way out.
        let partial = Partial(path.with_extension(format!(
            "partial-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        )));
        let size = match self.s3.download_to(key, &partial.0, pin).await? {
            Download::Stored(size) => size,
            // The upload completed before the command was issued, so this is the store not
            // (yet) showing it, or a cleanup racing the job: retried, then the DLQ.
            Download::Missing => {
                return Err(HandlerError::Transient(format!("no object at {key}")));
            }
            Download::Changed { found } => {
                return Ok(Err(format!(
                    "{OBJECT_CHANGED}: {key} is not the version verified at upload (ETag {}): \
                     found {found}",
                    pin.etag.as_deref().unwrap_or("unknown")
                )))
            }
            Download::TooLarge { at_least } => {
                return Ok(Err(format!(
                    "{OBJECT_CHANGED}: {key} is larger than the {} bytes it had when verified \
                     (at least {at_least})",
                    pin.max_bytes.unwrap_or_default()
                )))
            }
        };
        if let Err(e) = tokio::fs::rename(&partial.0, &path).await {
            return Err(HandlerError::Transient(format!(
                "moving the download of {key} into the cache: {e}"
            )));
        }
        info!(key, size, file = %file_name(&path), "source audio downloaded");
        evict(&self.cache_dir, &path, self.decider.config.cache_max_files);
        Ok(Ok(path))
    }
}

/// How a chunk's failure reason starts when its audio was replaced after it was verified, so
/// the reason the resource is rejected with names it.
pub const OBJECT_CHANGED: &str = "OBJECT_CHANGED";

/// Sets the file's modification time to now; failure only affects eviction order.
fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// A download in progress, deleted when dropped: on an error, and when the I/O budget drops
/// the download midway (nothing after the `await` runs then). After the rename into the cache
/// there is nothing left to delete.
struct Partial(PathBuf);

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A cache file's name (a hash), which is what logs say of it: never the machine's path.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// How long after its last write a download counts as abandoned: a worker killed mid-download
/// leaves its `.partial-*` file behind, and nobody else would delete it. A download gives up
/// after the storage's transfer timeout (5 min), so one untouched for twice that is dead.
const ABANDONED_DOWNLOAD: Duration = Duration::from_secs(600);

/// Deletes the least recently used cached files beyond `max_files`, never `keep` (the file
/// about to be transcribed), and downloads abandoned longer than [`ABANDONED_DOWNLOAD`] ago;
/// never another process's download in progress.
fn evict(dir: &Path, keep: &Path, max_files: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    let mut files: Vec<(SystemTime, PathBuf)> = Vec::new();
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        let Some(modified) = std::fs::metadata(&path).and_then(|m| m.modified()).ok() else {
            continue;
        };
        if path.extension().is_none() {
            if path != keep {
                files.push((modified, path));
            }
        } else if now.duration_since(modified).unwrap_or_default() > ABANDONED_DOWNLOAD {
            remove(&path, "abandoned download");
        }
    }
    // `keep` is one of the `max_files`.
    let excess = (files.len() + 1).saturating_sub(max_files);
    files.sort();
    for (_, path) in files.into_iter().take(excess) {
        // A worker still decoding it keeps its open file; a later chunk downloads it again.
        remove(&path, "cached source audio");
    }
}

/// Deletes a cache file; failure only costs disk space until the next eviction.
fn remove(path: &Path, what: &str) {
    match std::fs::remove_file(path) {
        Ok(()) => debug!(file = %file_name(path), what, "evicted"),
        Err(e) => debug!(file = %file_name(path), what, error = %e, "eviction failed"),
    }
}

/// Decodes the chunk's range and transcribes it (blocking: CPU-bound whisper), with its
/// silence squeezed out when `squeeze_silence` (a range without speech then costs no whisper
/// run); segment times are relative to the range, and whisper hears `prompt` before the
/// audio. `Ok(Err)` is a chunk that cannot be transcribed; `Err` is local trouble worth a
/// retry.
fn transcribe_range(
    transcriber: &Transcriber,
    path: &Path,
    command: &ChunkProcess,
    prompt: Option<&str>,
    settings: &ChunkWorkerConfig,
    processor: &'static str,
    deadline: Instant,
) -> Result<Result<Transcription, String>, HandlerError> {
    let range = match decide::chunk_range(command, settings.max_chunk_ms) {
        Ok(range) => range,
        Err(reason) => return Ok(Err(reason)),
    };
    let decode_started = Instant::now();
    let channel = match command.channel.map(usize::try_from) {
        None => None,
        Some(Ok(channel)) => Some(channel),
        Some(Err(_)) => return Ok(Err(format!("no channel {:?}", command.channel))),
    };
    let samples = match decode_range(path, range.clone(), channel) {
        Ok(samples) => samples,
        // The cached file vanished or the disk failed: not the audio's fault.
        Err(e @ AudioError::Io { .. }) => return Err(HandlerError::Transient(e.without_path())),
        Err(e) => {
            return Ok(Err(format!(
                "decoding {}..{} ms: {}",
                range.start,
                range.end,
                e.without_path()
            )))
        }
    };
    if samples.is_empty() {
        return Ok(Err(format!(
            "no audio in {}..{} ms: the range lies beyond the end of the audio",
            range.start, range.end
        )));
    }
    let squeeze = settings.squeeze_silence.then(|| {
        let mut detector = SpeechDetector::new(VadSettings::default());
        detector.push(&samples);
        let duration_ms = samples.len() as u64 * 1000 / u64::from(SAMPLE_RATE);
        Squeeze::new(&detector.finish().regions, duration_ms, JOIN_GAP_MS)
    });
    let heard = match &squeeze {
        Some(squeeze) if squeeze.is_empty() => {
            info!(job_id = %command.job_id, chunk_index = command.chunk_index,
                start_ms = range.start, audio_ms = range.end - range.start, "chunk holds no speech");
            metrics().transcribed(processor, (range.end - range.start) as f64 / 1e3, 0.0);
            return Ok(Ok(Transcription {
                segments: Vec::new(),
                language: None,
            }));
        }
        Some(squeeze) => squeeze.gather(&samples),
        None => samples,
    };
    let whisper_started = Instant::now();
    match transcriber.transcribe_until(&heard, prompt, Some(deadline)) {
        Ok(Transcription { segments, language }) => {
            // Where a chunk's time goes, for operators and the benchmark's per-stage figures.
            info!(job_id = %command.job_id, chunk_index = command.chunk_index,
                start_ms = range.start, audio_ms = range.end - range.start,
                whisper_audio_ms = heard.len() as u64 * 1000 / u64::from(SAMPLE_RATE),
                decode_ms = (whisper_started - decode_started).as_millis() as u64,
                whisper_ms = whisper_started.elapsed().as_millis() as u64,
                prompt_chars = prompt.map_or(0, str::len),
                "chunk transcribed");
            metrics().transcribed(
                processor,
                (range.end - range.start) as f64 / 1e3,
                whisper_started.elapsed().as_secs_f64(),
            );
            let segments = match &squeeze {
                Some(squeeze) => squeeze.unsqueeze(segments),
                None => segments,
            };
            Ok(Ok(Transcription { segments, language }))
        }
        // Too slow now (a busy machine), not this audio's fault: retried later.
        Err(e @ TranscribeError::DeadlinePassed) => Err(HandlerError::Transient(format!(
            "transcribing {}..{} ms: {e}",
            range.start, range.end
        ))),
        Err(e) => Ok(Err(format!(
            "transcribing {}..{} ms: {e}",
            range.start, range.end
        ))),
    }
}

impl Processor for ChunkWorker {
    type Decider = ChunkWorkerDecider;

    fn decider(&self) -> &ChunkWorkerDecider {
        &self.decider
    }

    /// Downloads and transcribes only for a command that will be reported, so re-delivered
    /// and stale commands cost nothing.
    async fn observe(
        &self,
        state: &ChunkWorkerState,
        input: Input<'_>,
        _ctx: &Context,
    ) -> Result<Observation, HandlerError> {
        let Input::Record(record) = input else {
            return Ok(Observation::Skipped);
        };
        if !record.is::<ChunkProcess>() {
            return Ok(Observation::Skipped);
        }
        let command: ChunkProcess = record.decode()?;
        if self.decider.screen(state, &command) == Verdict::Ignore {
            debug!(job_id = %command.job_id, chunk_index = command.chunk_index,
                attempt = command.attempt, "chunk passed over (the other lane's, or already handled)");
            return Ok(Observation::Skipped);
        }
        if let Err(reason) = decide::chunk_range(&command, self.decider.config.max_chunk_ms) {
            return Ok(Observation::Failed(reason));
        }
        // Never more than the verified size, nor than any upload may be (commands from before
        // sizes were recorded carry none).
        let cap = self.decider.config.max_download_bytes;
        let pin = Pin {
            etag: command.etag.clone(),
            max_bytes: Some(
                command
                    .size_bytes
                    .and_then(|n| u64::try_from(n).ok())
                    .map_or(cap, |n| n.min(cap)),
            ),
        };
        let path = match self.fetch(&command.object_key, &pin).await? {
            Ok(path) => path,
            Err(reason) => return Ok(Observation::Failed(reason)),
        };
        if let Some(ms) = self.decider.config.test_delay_ms {
            // Test-only: simulates a hung worker (see `ChunkWorkerConfig::test_delay_ms`).
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let transcriber = Arc::clone(&self.transcriber);
        let settings = self.decider.config.clone();
        let (job_id, chunk_index) = (command.job_id.clone(), command.chunk_index);
        let (start_ms, end_ms) = (command.start_ms, command.end_ms);
        let prompt = self.prompt_for(&command);
        let deadline = Instant::now() + self.whisper_limit;
        // The pool's whisper runs below everything else; the express worker's clip does not.
        let nice = match self.decider.lane {
            Lane::Standard => settings.pool_whisper_nice,
            Lane::Express => 0,
        };
        let processor = self.decider.lane.processor();
        let outcome = niced::run(nice, move || {
            transcribe_range(
                &transcriber,
                &path,
                &command,
                prompt.as_deref(),
                &settings,
                processor,
                deadline,
            )
        })
        .await
        // No thread to run it on is the machine's trouble, not the chunk's.
        .map_err(|e| HandlerError::Transient(format!("starting a whisper thread: {e}")))?;
        Ok(match outcome {
            Ok(Ok(Ok(local))) => {
                let segments = decide::global_segments(start_ms, end_ms, &local.segments);
                let said: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
                self.recent.remember(&job_id, chunk_index, &said.join(" "));
                Observation::Transcribed {
                    segments,
                    language: local.language,
                }
            }
            Ok(Ok(Err(reason))) => Observation::Failed(reason),
            Ok(Err(e)) => return Err(e),
            // A panic inside the decoder or whisper is this audio's problem: report the chunk
            // as failed so the aggregator's retry limit applies, instead of looping here.
            Err(e) => Observation::Failed(format!("transcription crashed: {e}")),
        })
    }

    /// It writes nothing outside Kafka.
    /// The object store is this processor's dependency besides Kafka; it only reads.
    async fn probe(&self) -> Result<(), Unavailable> {
        self.s3.probe_reads().await
    }

    async fn effect(&self, effect: &NoEffect) -> Result<(), HandlerError> {
        match *effect {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in `dir` last written `age` ago.
    fn file(dir: &Path, name: &str, age: Duration) -> PathBuf {
        let path = dir.join(name);
        let file = std::fs::File::create(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
        path
    }

    #[test]
    fn eviction_keeps_the_newest_files_and_the_one_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let minutes = |m: u64| Duration::from_secs(60 * m);
        let oldest = file(dir.path(), "a", minutes(30));
        let in_use = file(dir.path(), "b", minutes(20));
        let older = file(dir.path(), "c", minutes(10));
        let newest = file(dir.path(), "d", minutes(1));
        evict(dir.path(), &in_use, 2);
        assert!(!oldest.exists() && !older.exists());
        assert!(in_use.exists() && newest.exists());
    }

    #[test]
    fn abandoned_downloads_are_deleted_and_running_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let keep = file(dir.path(), "k", Duration::ZERO);
        let abandoned = file(
            dir.path(),
            "x.partial-1-1",
            ABANDONED_DOWNLOAD + Duration::from_secs(5),
        );
        let running = file(dir.path(), "y.partial-2-2", Duration::from_secs(5));
        evict(dir.path(), &keep, 8);
        assert!(
            !abandoned.exists(),
            "a killed worker's download is cleaned up"
        );
        assert!(running.exists(), "a download in progress is left alone");
        assert!(keep.exists());
    }

    #[tokio::test]
    async fn a_download_cut_short_by_its_budget_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.partial-1-1");
        let download = async {
            let partial = Partial(path.clone());
            std::fs::write(&partial.0, b"the first bytes").unwrap();
            // The store stops sending midway.
            std::future::pending::<()>().await;
            drop(partial);
        };
        let cut = tokio::time::timeout(Duration::from_millis(50), download).await;
        assert!(cut.is_err());
        assert!(!path.exists(), "the partial download was left behind");
    }
}
