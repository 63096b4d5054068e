//! Records of the Processing context (`avro/processing/`): validation, jobs, chunks.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use crate::events::upload::TranscriptOptions;
use crate::record::EventMetadata;

/// Processing started probing the uploaded audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.processing")]
pub struct ValidationStarted {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Object-store key of the audio being validated.
    pub object_key: String,
}

/// The audio decodes and is within limits; what the probe found, for planning chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.processing")]
pub struct ValidationPassed {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Container format found by the probe (for example `ogg`, `mp4`).
    pub container: String,
    /// Audio codec found by the probe (for example `opus`, `aac`).
    pub codec: String,
    /// Number of audio channels; they are mixed down to mono for recognition.
    pub channels: i32,
    /// Sample rate of the source in hertz; it is resampled for recognition.
    pub sample_rate_hz: i32,
    /// Duration of the audio in milliseconds; decides the number of chunks.
    pub duration_ms: i64,
}

/// The audio cannot be transcribed; terminal for processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.processing")]
pub struct ValidationFailed {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Machine-readable cause, for clients and metrics.
    pub reason_code: ValidationFailureReason,
    /// Human-readable detail; not meant to be parsed.
    pub message: String,
}

/// Why uploaded audio was refused, so a client can tell the user what to fix. `UNDECODABLE`: the
/// file is not audio echo can decode. `UNSUPPORTED_CODEC`: it decodes, but with a codec echo does
/// not accept. `TOO_LONG` / `TOO_SHORT`: the duration is outside the limits. `EMPTY`: the file has
/// no audio samples. `TOO_MANY_CHANNELS`: more channels than echo mixes down. `OBJECT_CHANGED`: the
/// stored audio is no longer the object verified at upload (replaced after `upload.finalize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, AvroSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "echo.processing")]
pub enum ValidationFailureReason {
    // No doc comments here: the derive refuses them on unit variants (an Avro enum has no
    // per-symbol doc), so the symbols are explained in the enum's doc above.
    Undecodable,
    UnsupportedCodec,
    TooLong,
    TooShort,
    Empty,
    TooManyChannels,
    ObjectChanged,
}

/// A transcription job was planned: the audio is split into chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.processing")]
pub struct ProcessingJobCreated {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Id of the new job (UUID); every chunk record of the job carries it.
    pub job_id: String,
    /// Object-store key of the uploaded audio.
    pub object_key: String,
    /// Number of chunks in the job, so a consumer knows when it has seen all of them.
    pub chunk_count: i32,
    /// Longest chunk in milliseconds (chunks cut at pauses, and the last one, are shorter).
    pub chunk_ms: i64,
    /// How many milliseconds consecutive chunks overlap where they are cut without a pause, so
    /// words at a boundary are not cut; the assembler de-duplicates them.
    pub overlap_ms: i64,
    /// Duration of the whole audio in milliseconds.
    pub duration_ms: i64,
    /// ETag of the audio as verified at upload; every chunk command of the job, re-issued ones
    /// too, reads exactly this version. Null only in records written before it existed.
    pub etag: Option<String>,
    /// Size of the audio as verified at upload; no worker downloads more. Null only in records
    /// written before it existed.
    pub size_bytes: Option<i64>,
    /// The time range of each chunk, in index order, as planned (at pauses of the speech, long
    /// silences left out). Null in records written before it existed, whose chunks follow from
    /// `duration_ms`, `chunk_ms` and `overlap_ms`.
    pub chunks: Option<Vec<ChunkRange>>,
    /// Milliseconds of the audio in which the voice-activity detector heard speech; the rest of
    /// `duration_ms` is silence. Null when no detector ran (fixed chunking, or records written
    /// before it existed).
    pub speech_ms: Option<i64>,
    /// The upload's options (version 2, from `upload.completed`): the prompt goes to every
    /// chunk, formats and caption rules to the report; null: the deployment's defaults.
    #[serde(default)]
    pub options: Option<TranscriptOptions>,
}

/// Where one planned chunk lies in the audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.processing")]
pub struct ChunkRange {
    /// Start of the chunk in milliseconds from the beginning of the audio.
    pub start_ms: i64,
    /// End of the chunk in milliseconds from the beginning of the audio (exclusive).
    pub end_ms: i64,
    /// The one channel transcribed, from 0, when the upload has a speaker per channel
    /// (version 2); null: all channels mixed.
    #[serde(default)]
    pub channel: Option<i32>,
}

/// Command to a chunk worker: transcribe one chunk of a job's audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.processing")]
pub struct ChunkProcess {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Id of the transcription job (UUID); ties chunk records to their job, as one resource may be
    /// processed more than once.
    pub job_id: String,
    /// Position of the chunk in the job, from 0; with `job_id` it identifies the chunk.
    pub chunk_index: i32,
    /// Number of chunks in the job, so a consumer knows when it has seen all of them.
    pub chunk_count: i32,
    /// Object-store key of the whole audio; the worker reads only its time range.
    pub object_key: String,
    /// Start of the chunk in milliseconds from the beginning of the audio.
    pub start_ms: i64,
    /// End of the chunk in milliseconds from the beginning of the audio (exclusive).
    pub end_ms: i64,
    /// Attempt number, from 1; a retry increments it, and the limit on it decides when a chunk
    /// gives up.
    pub attempt: i32,
    /// ETag of the audio as verified at upload (from `upload.completed`); the worker reads exactly
    /// this version. Null only in records written before it existed.
    pub etag: Option<String>,
    /// Size of the audio as verified at upload; the worker downloads no more than this. Null only
    /// in records written before it existed.
    pub size_bytes: Option<i64>,
    /// Text whisper hears as if just said before the chunk (the upload's `options.prompt`,
    /// version 2); null: none.
    #[serde(default)]
    pub prompt: Option<String>,
    /// The one channel to transcribe, from 0, when the upload has a speaker per channel
    /// (version 2); null: all channels mixed.
    #[serde(default)]
    pub channel: Option<i32>,
}

/// A worker took a chunk; starts its processing deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.processing")]
pub struct ChunkProcessingStarted {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Id of the transcription job (UUID); ties chunk records to their job, as one resource may be
    /// processed more than once.
    pub job_id: String,
    /// Position of the chunk in the job, from 0; with `job_id` it identifies the chunk.
    pub chunk_index: i32,
    /// Id of the worker instance, for tracing a slow or failing worker.
    pub worker: String,
    /// Attempt number, from 1; a retry increments it, and the limit on it decides when a chunk
    /// gives up.
    pub attempt: i32,
}

/// A chunk was transcribed; carries its segments for the assembler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.processing")]
pub struct ChunkProcessingCompleted {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Id of the transcription job (UUID); ties chunk records to their job, as one resource may be
    /// processed more than once.
    pub job_id: String,
    /// Position of the chunk in the job, from 0; with `job_id` it identifies the chunk.
    pub chunk_index: i32,
    /// Start of the chunk in milliseconds from the beginning of the audio.
    pub start_ms: i64,
    /// End of the chunk in milliseconds from the beginning of the audio.
    pub end_ms: i64,
    /// Recognised segments in time order; empty when the chunk holds no speech.
    pub segments: Vec<Segment>,
    /// Language the chunk was spoken in ("en", "de") as a multilingual model detected it
    /// (version 3); null when the deployment's model has one language.
    #[serde(default)]
    pub language: Option<String>,
}

/// One recognised stretch of speech, the unit the transcript and subtitle files are built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.processing")]
pub struct Segment {
    /// Start of the segment in milliseconds from the beginning of the whole audio (not of the
    /// chunk), so segments of all chunks can be merged by time.
    pub start_ms: i64,
    /// End of the segment in milliseconds from the beginning of the whole audio.
    pub end_ms: i64,
    /// The recognised text of the segment.
    pub text: String,
    /// Recognition confidence from 0.0 to 1.0; the assembler prefers the more confident copy of a
    /// segment in the overlap of two chunks.
    pub confidence: f32,
    /// The segment's words with their own times, in order; joined by single spaces they are
    /// `text`. Empty in records written before words were recorded (the field's default), for
    /// which the assembler spreads the words over the segment's span.
    #[serde(default)]
    #[avro(default = "[]")]
    pub words: Vec<Word>,
    /// Who said it, when the upload has a speaker per channel (`Speaker 1` for the first
    /// channel); set when the transcript is assembled, null in chunk results (version 3).
    #[serde(default)]
    pub speaker: Option<String>,
}

/// One recognised word: what seams between chunks are resolved on and captions are cut from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.processing")]
pub struct Word {
    /// Start of the word in milliseconds from the beginning of the whole audio.
    pub start_ms: i64,
    /// End of the word in milliseconds from the beginning of the whole audio.
    pub end_ms: i64,
    /// The word as written, punctuation attached ("Hello,").
    pub text: String,
    /// Confidence in the word from 0.0 to 1.0: the lowest probability of its tokens.
    pub confidence: f32,
}

/// A worker could not transcribe a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.processing")]
pub struct ChunkProcessingFailed {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Id of the transcription job (UUID); ties chunk records to their job, as one resource may be
    /// processed more than once.
    pub job_id: String,
    /// Position of the chunk in the job, from 0; with `job_id` it identifies the chunk.
    pub chunk_index: i32,
    /// What went wrong, for operators; not meant to be parsed.
    pub reason: String,
    /// Attempt number, from 1; a retry increments it, and the limit on it decides when a chunk
    /// gives up.
    pub attempt: i32,
}

/// A chunk did not finish by its deadline; the worker is presumed lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.processing")]
pub struct ProcessingTimeout {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Id of the transcription job (UUID); ties chunk records to their job, as one resource may be
    /// processed more than once.
    pub job_id: String,
    /// Position of the chunk in the job, from 0; with `job_id` it identifies the chunk.
    pub chunk_index: i32,
    /// Attempt number, from 1; a retry increments it, and the limit on it decides when a chunk
    /// gives up.
    pub attempt: i32,
    /// The deadline that passed, milliseconds since the Unix epoch.
    pub deadline_ms: i64,
}
