//! Records of the Upload context (`avro/upload/`): requests, pre-signed URLs, finalize, expiry.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use crate::record::EventMetadata;

/// A client asks echo to accept an audio file; the entry point of the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.upload")]
pub struct UploadRequested {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// The file name as the client knows it; used to name the downloadable transcript files.
    pub filename: String,
    /// MIME type the client declares (for example `audio/mpeg`); the URL is signed for exactly this
    /// type and unsupported types are refused.
    pub content_type: String,
    /// Size the client says it will upload; checked against the limit before a URL is issued and
    /// against the stored object on finalize.
    pub declared_size_bytes: i64,
    /// X25519 public key (32 bytes, base64) the upload URL is sealed to, so that only this client
    /// can read the URL on the shared events topic. Required unless the deployment allows clear
    /// URLs (`upload.allow_clear_urls`).
    pub reply_key: Option<String>,
    /// How this upload is transcribed and which files it gets (version 2); null: the
    /// deployment's defaults, as for every request of version 1.
    #[serde(default)]
    pub options: Option<TranscriptOptions>,
}

/// What a client may choose per upload; every part null means the deployment's default. Checked
/// when the upload is requested (`upload.failed` with `INVALID_REQUEST` otherwise) and carried
/// with the resource to the steps that use it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.upload")]
pub struct TranscriptOptions {
    /// Text given to whisper before every chunk as if it had just been said (names, terms,
    /// spelling, style), at most 500 characters; null: none.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Transcript files to write besides `report.json`, which is always written; null: all of
    /// them.
    #[serde(default)]
    pub formats: Option<Vec<TranscriptFormat>>,
    /// How the `.srt` and `.vtt` captions are cut; null: the deployment's rules.
    #[serde(default)]
    pub caption: Option<CaptionRules>,
    /// Two-channel audio with one speaker per channel (a call recording): each channel is
    /// transcribed on its own and its words and captions are labelled `Speaker 1` and
    /// `Speaker 2`. Ignored for audio of one channel; false: the channels are mixed.
    #[serde(default)]
    #[avro(default = "false")]
    pub speaker_per_channel: bool,
}

/// The most characters a prompt may have: whisper reads at most 224 tokens of prompt, which
/// 500 characters of English stay under.
pub const MAX_PROMPT_CHARS: usize = 500;

impl TranscriptOptions {
    /// Why a client's options cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if let Some(prompt) = &self.prompt {
            let chars = prompt.chars().count();
            if chars > MAX_PROMPT_CHARS {
                return Some(format!(
                    "prompt has {chars} characters, the most is {MAX_PROMPT_CHARS}"
                ));
            }
            if prompt.chars().any(char::is_control) {
                return Some("prompt must not contain control characters".into());
            }
        }
        self.caption
            .as_ref()
            .and_then(CaptionRules::problem)
            .map(|p| format!("caption: {p}"))
    }

    /// Whether the transcript file of `format` is to be written.
    pub fn wants(&self, format: TranscriptFormat) -> bool {
        self.formats.as_ref().is_none_or(|f| f.contains(&format))
    }
}

/// A transcript file a client may ask for: `TXT` (paragraphs), `SRT` and `VTT` (captions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, AvroSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "echo.upload")]
pub enum TranscriptFormat {
    Txt,
    Srt,
    Vtt,
}

/// How captions are cut into cues: the deployment's `[transcription.captions]`, or a client's
/// per upload. Defaults: 42 characters a line, 2 lines, 1-7 s on screen, a pause of 500 ms or
/// more ends a cue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, AvroSchema)]
#[serde(default)]
#[avro(namespace = "echo.upload")]
pub struct CaptionRules {
    /// Longest line, in characters, 10 to 100 (a single longer word gets a line of its own).
    pub max_chars_per_line: i32,
    /// Most lines a cue is wrapped into, 1 to 3.
    pub max_lines: i32,
    /// Shortest time a cue stays on screen, in ms, so it can be read: a shorter cue is held
    /// longer when the next one leaves room, and a cue does not end early (at a sentence end or
    /// a pause) before this.
    pub min_duration_ms: i32,
    /// Longest time a cue stays on screen, in ms, 1000 to 60000 and at least
    /// `min_duration_ms`.
    pub max_duration_ms: i32,
    /// A silence between two words at least this long (ms) ends the cue before it; at most
    /// 60000.
    pub pause_ms: i32,
}

impl Default for CaptionRules {
    fn default() -> Self {
        CaptionRules {
            max_chars_per_line: 42,
            max_lines: 2,
            min_duration_ms: 1_000,
            max_duration_ms: 7_000,
            pause_ms: 500,
        }
    }
}

/// The longest a cue may stay on screen, and the longest pause rule, in ms: no caption
/// guideline asks for more, and longer cues only make wrapping them cost more.
pub const MAX_CUE_MS: i32 = 60_000;

impl CaptionRules {
    /// Why these rules cannot cut cues, if they cannot.
    pub fn problem(&self) -> Option<String> {
        // Bounded so wrapping a cue (every split of its words is tried) stays cheap.
        if !(10..=100).contains(&self.max_chars_per_line) {
            return Some(format!(
                "max_chars_per_line must be 10 to 100, got {}",
                self.max_chars_per_line
            ));
        }
        if !(1..=3).contains(&self.max_lines) {
            return Some(format!("max_lines must be 1 to 3, got {}", self.max_lines));
        }
        if self.min_duration_ms < 0
            || !(1_000..=MAX_CUE_MS).contains(&self.max_duration_ms)
            || self.min_duration_ms > self.max_duration_ms
        {
            return Some(format!(
                "durations need 0 <= min_duration_ms <= max_duration_ms and 1000 <= \
                 max_duration_ms <= {MAX_CUE_MS}, got min {} max {}",
                self.min_duration_ms, self.max_duration_ms
            ));
        }
        if !(0..=MAX_CUE_MS).contains(&self.pause_ms) {
            return Some(format!(
                "pause_ms must be 0 to {MAX_CUE_MS}, got {}",
                self.pause_ms
            ));
        }
        None
    }
}

/// Command from the client: the PUT to the pre-signed URL is done, verify the object and complete
/// the upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.upload")]
pub struct UploadFinalize {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// ETag the object store returned for the PUT, when the client has it; lets the upload
    /// processor check it verifies the object the client wrote.
    pub etag: Option<String>,
}

/// The upload was accepted and a pre-signed URL issued; the client PUTs the file there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.upload")]
pub struct UploadUrlGenerated {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Object-store key the file must be PUT to; later events refer to the audio by it.
    pub object_key: String,
    /// Pre-signed PUT URL in clear, only for a request without `reply_key` where the deployment
    /// allows it; empty when the URL is sealed (`sealed_upload_url`). A bearer credential until
    /// `expires_at`, so it must not be logged.
    pub upload_url: String,
    /// Content type the URL was signed for; the client must send exactly this `Content-Type`.
    pub content_type: String,
    /// When the URL stops working, milliseconds since the Unix epoch; the upload expires if not
    /// finalized by then.
    pub expires_at: i64,
    /// The pre-signed PUT URL sealed to the request's `reply_key` (a libsodium sealed box,
    /// base64): only the requesting client can open it. Null when the URL was issued in clear.
    pub sealed_upload_url: Option<String>,
}

/// The audio is stored and verified against the request; Processing may read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.upload")]
pub struct UploadCompleted {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Object-store key of the stored audio, which Processing reads.
    pub object_key: String,
    /// Size of the stored object as the object store reports it, for limits and metrics.
    pub size_bytes: i64,
    /// Content type of the stored object; a hint for the decoder.
    pub content_type: String,
    /// ETag of the object as verified; readers fetch exactly this version (`If-Match`), so audio
    /// replaced after the upload is never processed. Null only in records written before it
    /// existed.
    pub etag: Option<String>,
    /// The options of the request (version 2), carried to Processing and Transcription; null:
    /// the deployment's defaults.
    #[serde(default)]
    pub options: Option<TranscriptOptions>,
}

/// The upload will not complete; terminal for the upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.upload")]
pub struct UploadFailed {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Machine-readable cause, for clients and metrics.
    pub reason_code: UploadFailureReason,
    /// Human-readable detail for the client; not meant to be parsed.
    pub message: String,
}

/// Why an upload failed, so a client can show a precise message and operators can count causes.
/// `EXPIRED`: the URL expired before `upload.finalize`. `OBJECT_MISSING`: no object was stored
/// under the key. `SIZE_MISMATCH`: the stored size differs from the declared one. `TOO_LARGE`: the
/// size is over the limit. `CONTENT_TYPE_MISMATCH`: the stored object's type differs from the
/// requested one. `UNSUPPORTED_CONTENT_TYPE`: echo does not accept that type. `INVALID_REQUEST`:
/// the request is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, AvroSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "echo.upload")]
pub enum UploadFailureReason {
    // No doc comments here: the derive refuses them on unit variants (an Avro enum has no
    // per-symbol doc), so the symbols are explained in the enum's doc above.
    Expired,
    ObjectMissing,
    SizeMismatch,
    TooLarge,
    ContentTypeMismatch,
    UnsupportedContentType,
    InvalidRequest,
}

/// The pre-signed URL expired before the client finalized the upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.upload")]
pub struct UploadExpired {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Object-store key the URL was issued for, so cleanup can delete a partial object.
    pub object_key: String,
    /// The deadline that passed (the URL's `expires_at`), milliseconds since the Unix epoch;
    /// `metadata.occurred_at` is when the expiry was noticed.
    pub expired_at: i64,
}
