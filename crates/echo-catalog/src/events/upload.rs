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
