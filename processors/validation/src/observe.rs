//! The I/O of the `validation` processor: downloading the upload (no more bytes than were
//! finalized) and examining it on a blocking thread (probe, decode, speech detection), for
//! `decide` to judge. `observe` only reads.

use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use echo_catalog::events::{UploadCompleted, ValidationFailureReason};
use echo_chunking::{Chunking, SpeechMap};
use echo_runtime::prelude::*;
use echo_speech::audio::{self, AudioError, AudioInfo, Limit};
use echo_speech::vad::{SpeechDetector, VadSettings};
use echo_storage::{Download, Pin, S3Service};

use crate::config::ValidationConfig;
use crate::decide::{self, AudioFacts, Observation, ValidationDecider, ValidationState};

/// The validation processor, run by `echo_runtime::run`.
#[derive(Debug, Clone)]
pub struct ValidationProcessor {
    /// Its decisions, over the limits and the chunk plan.
    decider: ValidationDecider,
    /// The bucket the uploaded audio is read from.
    s3: S3Service,
    /// How long one input's examination may take: the runtime's I/O budget for announced
    /// work (the examination is announced), less a margin, so the blocking scan stops before
    /// the runtime gives up on it.
    budget: Duration,
}

impl ValidationProcessor {
    /// A processor over the bucket of `config.s3`; fails on unusable settings. Does no I/O.
    pub fn new(config: &EchoConfig, validation: ValidationConfig) -> Result<ValidationProcessor> {
        validation.validate()?;
        Ok(ValidationProcessor {
            decider: ValidationDecider { config: validation },
            s3: S3Service::new(config)?,
            budget: config
                .kafka
                .announced_work_timeout()
                .saturating_sub(Duration::from_secs(1)),
        })
    }

    /// The object store it reads from, for startup checks.
    pub fn s3(&self) -> &S3Service {
        &self.s3
    }

    /// Its settings.
    pub fn config(&self) -> &ValidationConfig {
        &self.decider.config
    }
}

impl Processor for ValidationProcessor {
    type Decider = ValidationDecider;

    fn decider(&self) -> &ValidationDecider {
        &self.decider
    }

    /// Downloads and examines the audio only for a first `upload.completed`, so duplicates and
    /// the other upload events cost no S3 call and no decoding.
    async fn observe(
        &self,
        state: &ValidationState,
        input: Input<'_>,
        _ctx: &Context,
    ) -> Result<Observation, HandlerError> {
        if !decide::needs_examination(state, input) {
            return Ok(Observation::Nothing);
        }
        let Input::Record(record) = input else {
            return Ok(Observation::Nothing);
        };
        let deadline = Instant::now() + self.budget;
        let completed: UploadCompleted = record.decode()?;
        // A private directory, removed when dropped (also on every early return).
        let dir = tempfile::tempdir()
            .map_err(|e| HandlerError::Transient(format!("creating a temporary directory: {e}")))?;
        let path = dir.path().join(file_name_for(&completed.content_type));
        let pin = pin_of(&completed);
        let download = self
            .s3
            .download_to(&completed.object_key, &path, &pin)
            .await?;
        if let Some(refused) = refusal_of_download(&completed, download) {
            return Ok(refused);
        }
        let config = self.decider.config.clone();
        // Probing and decoding are CPU-bound: keep them off the async worker threads.
        tokio::task::spawn_blocking(move || {
            let observed = examine(&config, &path, deadline);
            drop(dir);
            observed
        })
        .await
        // A panicking decoder was fed this file; it would panic again on every retry.
        .map_err(|e| HandlerError::Permanent(format!("examining the audio panicked: {e}")))?
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

/// The version of the audio `upload.completed` verified: its ETag and size.
fn pin_of(completed: &UploadCompleted) -> Pin {
    Pin {
        etag: completed.etag.clone(),
        max_bytes: u64::try_from(completed.size_bytes).ok(),
    }
}

/// Why a download cannot be examined at all, if it cannot: nothing or another version stored
/// (the audio was replaced after it was verified), or nothing in it.
fn refusal_of_download(completed: &UploadCompleted, download: Download) -> Option<Observation> {
    let changed = |found: String| {
        Observation::Refused(
            ValidationFailureReason::ObjectChanged,
            format!(
                "the stored audio is not the version verified at upload (ETag {}): {found}",
                completed.etag.as_deref().unwrap_or("unknown")
            ),
        )
    };
    match download {
        Download::Stored(0) => Some(Observation::Refused(
            ValidationFailureReason::Empty,
            "the uploaded file is empty (0 bytes)".into(),
        )),
        Download::Stored(_) => None,
        Download::Missing => Some(Observation::Refused(
            ValidationFailureReason::Undecodable,
            format!("nothing is stored at {}", completed.object_key),
        )),
        Download::Changed { found } => Some(changed(format!("found {found}"))),
        Download::TooLarge { at_least } => Some(changed(format!(
            "it is larger than the {} bytes verified (at least {at_least})",
            completed.size_bytes
        ))),
    }
}

/// Probes the file, then scans it (decodes it packet by packet, keeping no samples) from the
/// start up to just past the duration limit: that proves every accepted sample decodes and
/// measures the true duration, in memory of one packet and time bounded by the limit, even
/// when the container states no (or a false) duration. With `speech` chunking the scan also
/// feeds the voice-activity detector, which keeps only the speech regions. A file the probe alone condemns (a
/// hostile header, too many channels, a refused codec, a stated duration over the limit) is
/// not decoded at all; one whose container's account of time disagrees with what decodes
/// (cut short, or a header or timestamps that lie) is refused as undecodable.
fn examine(
    config: &ValidationConfig,
    path: &Path,
    deadline: Instant,
) -> Result<Observation, HandlerError> {
    let info = match audio::probe(path) {
        Ok(info) => info,
        Err(e) => return refusal(e),
    };
    let stated_ms = info
        .duration
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let probed = facts(&info, stated_ms.unwrap_or(0), None);
    let condemned = decide::check_limits(config, &probed).is_some_and(|(reason, _)| {
        !matches!(
            reason,
            ValidationFailureReason::Empty | ValidationFailureReason::TooShort
        )
    });
    if condemned {
        return Ok(Observation::Audio(probed));
    }
    // One ms past the limit: enough to tell "too long" from "exactly at the limit".
    let until_ms = u64::try_from(config.max_duration_ms).unwrap_or(0) + 1;
    let mut detector =
        (config.chunking == Chunking::Speech).then(|| SpeechDetector::new(VadSettings::default()));
    let scanned = match &mut detector {
        Some(detector) => audio::scan(
            path,
            until_ms,
            Some(deadline),
            Some(&mut |s: &[f32]| detector.push(s)),
        ),
        None => audio::scan(path, until_ms, Some(deadline), None),
    };
    let scanned = match scanned {
        Ok(scanned) => scanned,
        Err(e) => return refusal(e),
    };
    let speech = detector.map(|detector| {
        let heard = detector.finish();
        let in_ms = |ranges: Vec<Range<u64>>| ranges.into_iter().map(|r| ms(r.start)..ms(r.end));
        SpeechMap {
            regions: in_ms(heard.regions).collect(),
            breaks: in_ms(heard.breaks).collect(),
        }
    });
    let decoded_ms = i64::try_from(scanned.decoded_ms).unwrap_or(i64::MAX);
    let clock_ms = scanned.clock_ms.map(ms);
    if let Some(message) = decide::time_disagreement(stated_ms, clock_ms, decoded_ms) {
        return Ok(Observation::Refused(
            ValidationFailureReason::Undecodable,
            message,
        ));
    }
    Ok(Observation::Audio(facts(&info, decoded_ms, speech)))
}

fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn facts(info: &AudioInfo, duration_ms: i64, speech: Option<SpeechMap>) -> AudioFacts {
    AudioFacts {
        container: info.container.clone(),
        codec: info.codec.clone(),
        channels: i32::try_from(info.channels).unwrap_or(i32::MAX),
        sample_rate_hz: i32::try_from(info.sample_rate).unwrap_or(i32::MAX),
        duration_ms,
        speech,
    }
}

/// Turns what the decoder refused into the reason a client is told; trouble reading the local
/// temporary file is the machine's fault, not the file's, and is retried, as is a scan that
/// ran out of time (a busy machine may finish it later; a file built to be slow ends in the
/// dead letters, and its resource at its processing deadline).
fn refusal(error: AudioError) -> Result<Observation, HandlerError> {
    let reason = match &error {
        AudioError::Io { .. } | AudioError::PastDeadline { .. } => {
            return Err(HandlerError::Transient(error.without_path()))
        }
        // Validation decodes every channel mixed: asking for a range or a channel is a bug.
        AudioError::InvalidRange { .. } | AudioError::NoSuchChannel { .. } => {
            return Err(HandlerError::Permanent(error.to_string()))
        }
        AudioError::UnsupportedCodec { .. } => ValidationFailureReason::UnsupportedCodec,
        AudioError::NoAudioTrack { .. } => ValidationFailureReason::Empty,
        AudioError::OutOfLimits {
            limit: Limit::Channels(_),
            ..
        } => ValidationFailureReason::TooManyChannels,
        AudioError::OutOfLimits { .. } => ValidationFailureReason::Undecodable,
        AudioError::UnsupportedFormat { .. }
        | AudioError::Corrupt { .. }
        | AudioError::Resample { .. } => ValidationFailureReason::Undecodable,
    };
    Ok(Observation::Refused(reason, error.without_path()))
}

/// The temporary file's name: its extension is symphonia's format hint, taken from the stored
/// content type (which the upload processor verified), so headerless formats such as raw MP3
/// streams are recognised.
fn file_name_for(content_type: &str) -> &'static str {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    match essence.to_ascii_lowercase().as_str() {
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "upload.wav",
        "audio/flac" | "audio/x-flac" => "upload.flac",
        "audio/ogg" | "application/ogg" => "upload.ogg",
        "audio/mpeg" | "audio/mp3" => "upload.mp3",
        _ => "upload",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_give_format_hints() {
        assert_eq!(file_name_for("audio/wav"), "upload.wav");
        assert_eq!(file_name_for("AUDIO/MPEG; charset=x"), "upload.mp3");
        assert_eq!(file_name_for("video/mp4"), "upload");
    }

    #[test]
    fn decoder_errors_map_to_reasons_and_hide_the_temporary_path() {
        let path = std::path::PathBuf::from("/tmp/secret/upload.wav");
        let corrupt = AudioError::Corrupt {
            path: path.clone(),
            reason: "bad".into(),
        };
        let Ok(Observation::Refused(reason, message)) = refusal(corrupt) else {
            panic!("corrupt audio is refused");
        };
        assert_eq!(reason, ValidationFailureReason::Undecodable);
        assert!(!message.contains("/tmp/secret"), "{message}");

        let codec = AudioError::UnsupportedCodec {
            path: path.clone(),
            codec: "opus".into(),
        };
        assert!(matches!(
            refusal(codec),
            Ok(Observation::Refused(
                ValidationFailureReason::UnsupportedCodec,
                _
            ))
        ));
        let io = AudioError::Io {
            path: path.clone(),
            source: std::io::Error::other("disk"),
        };
        assert!(matches!(refusal(io), Err(HandlerError::Transient(_))));

        let rate = AudioError::OutOfLimits {
            path: path.clone(),
            limit: Limit::SampleRate(2_147_483_647),
        };
        let Ok(Observation::Refused(reason, message)) = refusal(rate) else {
            panic!("a hostile header is the audio's fault");
        };
        assert_eq!(reason, ValidationFailureReason::Undecodable);
        assert!(message.contains("sample rate 2147483647 Hz"), "{message}");
        assert!(!message.contains("/tmp/secret"), "{message}");
        let channels = AudioError::OutOfLimits {
            path,
            limit: Limit::Channels(16),
        };
        assert!(matches!(
            refusal(channels),
            Ok(Observation::Refused(
                ValidationFailureReason::TooManyChannels,
                _
            ))
        ));
    }
}
