//! Settings of the validation processor, loaded from the `validation` section of echo's
//! configuration.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use echo_chunking::{Chunking, PauseCut, JOIN_GAP_MS};

/// How far under whisper's window a chunk's squeezed audio is packed, in ms: the chunk worker
/// detects speech again on its range alone, and a region found slightly longer there must
/// not spill into a second window.
const PACK_MARGIN_MS: i64 = 2_000;

/// The limits uploaded audio is checked against, and how a passing file is cut into chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ValidationConfig {
    /// Longest audio accepted, in ms; bounds the work (and the decode memory) one upload can
    /// cause. Default three hours.
    pub max_duration_ms: i64,
    /// Shortest audio accepted, in ms; shorter files hold no useful speech. Default 500 ms.
    pub min_duration_ms: i64,
    /// Most channels accepted; they are averaged to mono, and more than a surround layout is
    /// almost certainly not a recording of speech. Default 8.
    pub max_channels: i32,
    /// Codecs accepted, by symphonia's short name (`pcm_s16le`, `flac`, `mp3`, `vorbis`…),
    /// compared case-insensitively. Empty (the default) accepts every codec symphonia decodes,
    /// since decodability is what the transcription needs.
    pub allowed_codecs: Vec<String>,
    /// How files are cut into chunks: `speech` (the default) runs a voice-activity detector
    /// while scanning the file and packs its speech into chunks cut in pauses, leaving the
    /// silence between chunks out; `fixed` cuts
    /// every `chunk_ms - overlap_ms` whatever the audio holds.
    pub chunking: Chunking,
    /// Longest chunk in ms: the unit of parallel transcription. Default 30 s, Whisper's
    /// window, so no chunk pays for more than one window.
    pub chunk_ms: i64,
    /// How much consecutive chunks overlap where they are cut without a pause (every cut of
    /// `fixed` chunking), in ms, so a word cut at a boundary is whole in one of them; the
    /// assembler de-duplicates. Default 1 s.
    pub overlap_ms: i64,
    /// With `speech` chunking, the longest time from a chunk's first speech to its last, in
    /// ms. Chunks pack speech up to a window's worth whatever the pauses between it (the chunk
    /// worker squeezes them out), so this bounds what a worker decodes for one chunk; it must
    /// not exceed `chunk_worker.max_chunk_ms` (10 min), which the worker refuses. Default 2 min.
    pub max_span_ms: i64,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            max_duration_ms: 3 * 60 * 60 * 1000,
            min_duration_ms: 500,
            max_channels: 8,
            allowed_codecs: Vec::new(),
            chunking: Chunking::Speech,
            chunk_ms: 30_000,
            overlap_ms: 1_000,
            max_span_ms: 120_000,
        }
    }
}

impl ValidationConfig {
    /// Fails on settings that would refuse every file or plan no usable chunks, so a bad
    /// config stops the processor at startup instead of failing every upload.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.min_duration_ms >= 0,
            "validation.min_duration_ms must not be negative, got {}",
            self.min_duration_ms
        );
        ensure!(
            self.max_duration_ms > 0 && self.max_duration_ms >= self.min_duration_ms,
            "validation.max_duration_ms must be positive and at least min_duration_ms ({}), got {}",
            self.min_duration_ms,
            self.max_duration_ms
        );
        ensure!(
            (1..=echo_speech::audio::MAX_CHANNELS as i32).contains(&self.max_channels),
            "validation.max_channels must be at least 1 and at most {} (what the decoder \
             accepts), got {}",
            echo_speech::audio::MAX_CHANNELS,
            self.max_channels
        );
        ensure!(
            self.chunk_ms > 0,
            "validation.chunk_ms must be positive, got {}",
            self.chunk_ms
        );
        ensure!(
            (0..self.chunk_ms).contains(&self.overlap_ms),
            "validation.overlap_ms must be at least 0 and less than chunk_ms ({}), got {}",
            self.chunk_ms,
            self.overlap_ms
        );
        ensure!(
            self.max_span_ms >= self.chunk_ms,
            "validation.max_span_ms must be at least chunk_ms ({}), got {}",
            self.chunk_ms,
            self.max_span_ms
        );
        Ok(())
    }

    /// The limits of `speech` chunking: chunks pack up to [`PACK_MARGIN_MS`] less than
    /// `chunk_ms` (at least half of it) of speech and squeezed pauses.
    pub fn pause_cut(&self) -> PauseCut {
        PauseCut {
            chunk_ms: self.chunk_ms,
            overlap_ms: self.overlap_ms,
            pack_ms: (self.chunk_ms - PACK_MARGIN_MS).max(self.chunk_ms / 2),
            gap_ms: JOIN_GAP_MS as i64,
            max_span_ms: self.max_span_ms,
        }
    }

    /// Whether audio in this codec is accepted.
    pub fn allows_codec(&self, codec: &str) -> bool {
        self.allowed_codecs.is_empty()
            || self
                .allowed_codecs
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(codec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_accept_every_decodable_codec() {
        let c = ValidationConfig::default();
        c.validate().unwrap();
        assert_eq!(c.max_duration_ms, 10_800_000);
        assert_eq!(c.chunking, Chunking::Speech);
        let fixed: ValidationConfig = serde_json::from_str(r#"{"chunking": "fixed"}"#).unwrap();
        assert_eq!(fixed.chunking, Chunking::Fixed);
        assert!(c.allows_codec("pcm_s16le") && c.allows_codec("vorbis"));
        let only_flac = ValidationConfig {
            allowed_codecs: vec!["FLAC".into()],
            ..c
        };
        assert!(only_flac.allows_codec("flac") && !only_flac.allows_codec("mp3"));
    }

    #[test]
    fn unusable_settings_are_refused() {
        let bad = |f: fn(&mut ValidationConfig)| {
            let mut c = ValidationConfig::default();
            f(&mut c);
            c.validate().is_err()
        };
        assert!(bad(|c| c.min_duration_ms = -1));
        assert!(bad(|c| c.max_duration_ms = 0));
        assert!(bad(|c| c.max_duration_ms = c.min_duration_ms - 1));
        assert!(bad(|c| c.max_channels = 0));
        assert!(bad(|c| c.max_channels = 9));
        assert!(bad(|c| c.chunk_ms = 0));
        assert!(bad(|c| c.overlap_ms = c.chunk_ms));
        assert!(bad(|c| c.overlap_ms = -1));
        assert!(bad(|c| c.max_span_ms = c.chunk_ms - 1));
    }
}
