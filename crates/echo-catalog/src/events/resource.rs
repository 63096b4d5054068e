//! Records of the Resource context (`avro/resource/`): ready, rejected, TTL, cleanup.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::processing::ValidationFailureReason;
use super::transcription::TranscriptArtifacts;
use crate::record::EventMetadata;

/// The transcript of a resource can be downloaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.resource")]
pub struct ResourceReady {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Where the transcript files are, for the client to download.
    pub artifacts: TranscriptArtifacts,
}

/// The resource will never have a transcript because its audio was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.resource")]
pub struct ResourceRejected {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Why the audio was refused, as validation reported it.
    pub reason_code: ValidationFailureReason,
    /// Human-readable detail for the client; not meant to be parsed.
    pub message: String,
}

/// The retention of a resource ended; its objects must go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.resource")]
pub struct ResourceTtlReached {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// The retention deadline that passed, milliseconds since the Unix epoch.
    pub expires_at: i64,
}

/// Deletion of a resource's objects began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.resource")]
pub struct CleanupInitiated {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// Why the resource is deleted.
    pub reason: CleanupReason,
    /// Object-store key prefix under which every object of the resource is deleted.
    pub prefix: String,
}

/// Why a resource's objects are deleted, for audit and metrics. `UPLOAD_FAILED`: the upload never
/// completed. `REJECTED`: the audio failed validation. `TTL_REACHED`: the retention of a resource
/// ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, AvroSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "echo.resource")]
pub enum CleanupReason {
    // No doc comments here: the derive refuses them on unit variants (an Avro enum has no
    // per-symbol doc), so the symbols are explained in the enum's doc above.
    UploadFailed,
    Rejected,
    TtlReached,
}

/// Every object of a resource is deleted; terminal for the resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "echo.resource")]
pub struct CleanupCompleted {
    /// Ids, time and producer shared by every record; `metadata.correlation_id` is the resource id
    /// (and the record key), so the payload does not repeat it.
    pub metadata: EventMetadata,
    /// How many objects were deleted, for audit.
    pub deleted_objects: i32,
}
