//! What the transcription of a job needs to know of it, from its `processing.job.created`:
//! how many chunks make it complete, what the analysis is based on, and what the upload asked
//! for.

use echo_catalog::events::{ProcessingJobCreated, TranscriptOptions};
use serde::{Deserialize, Serialize};

/// The parts of `processing.job.created` the assembly needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPlan {
    /// How many chunks make the job complete.
    pub chunk_count: i32,
    /// Duration of the audio, the base of the analysis.
    pub duration_ms: i64,
    /// Milliseconds of speech the voice-activity detector heard, when it ran; the analysis
    /// reports speech and silence from it. Absent in state written before it existed.
    #[serde(default)]
    pub speech_ms: Option<i64>,
    /// The upload's options: which files to write and how to cut captions. Absent in state
    /// written before they existed, and for uploads without options.
    #[serde(default)]
    pub options: Option<TranscriptOptions>,
    /// The channel of each chunk, by index, when the upload has a speaker per channel; empty
    /// otherwise (and in state written before it existed).
    #[serde(default)]
    pub channels: Vec<Option<i32>>,
}

impl JobPlan {
    /// Why the job cannot be transcribed as planned, if it cannot: a negative chunk count or
    /// options no client could have sent through the upload processor (a bug upstream).
    pub fn problem(&self) -> Option<String> {
        if self.chunk_count < 0 {
            return Some(format!("a negative chunk count {}", self.chunk_count));
        }
        self.options
            .as_ref()
            .and_then(TranscriptOptions::problem)
            .map(|p| format!("unusable options: {p}"))
    }

    /// The upload's options, the defaults when it had none.
    pub fn options(&self) -> TranscriptOptions {
        self.options.clone().unwrap_or_default()
    }

    /// The plan `job` announces.
    pub fn of(job: &ProcessingJobCreated) -> JobPlan {
        JobPlan {
            chunk_count: job.chunk_count,
            duration_ms: job.duration_ms,
            speech_ms: job.speech_ms,
            options: job.options.clone(),
            channels: match &job.chunks {
                Some(chunks) if chunks.iter().any(|c| c.channel.is_some()) => {
                    chunks.iter().map(|c| c.channel).collect()
                }
                _ => Vec::new(),
            },
        }
    }
}
