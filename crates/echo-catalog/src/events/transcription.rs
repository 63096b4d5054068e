//! Records of the Transcription context (`avro/transcription/`): assembly of the transcript.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use crate::record::EventMetadata;

/// Every chunk of a job is transcribed; assembly of the transcript began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.transcription")]
pub struct TranscriptionStarted {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Id of the transcription job (UUID); ties chunk records to their job, as one resource may be
    /// processed more than once.
    pub job_id: String,
    /// Number of chunks being assembled.
    pub chunk_count: i32,
}

/// The transcript is assembled and its files are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.transcription")]
pub struct TranscriptionCompleted {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Id of the transcription job (UUID); ties chunk records to their job, as one resource may be
    /// processed more than once.
    pub job_id: String,
    /// Where the transcript files are.
    pub artifacts: TranscriptArtifacts,
    /// Number of words in the transcript, for display and billing.
    pub word_count: i32,
    /// Duration of the transcribed audio in milliseconds.
    pub duration_ms: i64,
}

/// Object keys of the transcript files, one per download format, so a consumer can fetch or sign
/// any of them without listing the bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.transcription")]
pub struct TranscriptArtifacts {
    /// Object key of the plain-text transcript; null when the upload's `formats` left it out
    /// (version 2).
    pub txt_key: Option<String>,
    /// Object key of the SubRip (.srt) subtitles; null when the upload's `formats` left it out
    /// (version 2).
    pub srt_key: Option<String>,
    /// Object key of the WebVTT (.vtt) subtitles; null when the upload's `formats` left it out
    /// (version 2).
    pub vtt_key: Option<String>,
    /// Object key of the JSON transcript with segments, timings and confidences; always written.
    pub json_key: String,
}

/// The job cannot produce a transcript; terminal for the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.transcription")]
pub struct TranscriptionFailed {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Id of the transcription job (UUID); ties chunk records to their job, as one resource may be
    /// processed more than once.
    pub job_id: String,
    /// What went wrong, for operators and the client; not meant to be parsed.
    pub reason: String,
}
