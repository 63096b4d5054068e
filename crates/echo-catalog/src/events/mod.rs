//! Every event and command of echo as a Rust type, and the table that ties each one to its
//! `.avsc` file under `avro/`.
//!
//! The `.avsc` files are the one source: the build generates the Rust types from them, doc
//! comments included (`rsgen-avro`), so a field is documented once, in its schema. Besides the
//! standard Avro attributes each record carries custom ones, which Avro tools ignore and the
//! docs are generated from: `x-trigger` (what causes it), `x-failure-path` (what follows when it,
//! or what it asks for, fails) and `x-versions` (what each version changed). Who produces and
//! consumes it is the catalogue's (`topics/topics.toml`,
//! [`Catalogue::producers_of`](crate::Catalogue::producers_of)).

use anyhow::{bail, Context, Result};
use apache_avro::Schema;

use crate::record::{Record, RecordInfo};

mod options;

pub use options::{MAX_CUE_MS, MAX_PROMPT_CHARS};

/// The types generated from `avro/`: a struct per record, an enum per Avro enum. Their shape
/// is the generator's (default functions, attribute order), so its lints are not ours.
#[allow(clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/events.rs"));
}

pub use generated::*;

/// Declares the record table: one line per type, `context: RustType => "type.name"`.
///
/// Each line implements [`Record`] for the type and adds its row to [`all`], with the full Avro
/// name `echo.<context>.<RustType>` and the schema as registered, which the build writes from
/// `avro/<context>/<type.name>.avsc`, so the type name is written once.
macro_rules! records {
    ($($context:ident: $ty:ident => $type_name:literal,)*) => {
        $(
            impl Record for $ty {
                const TYPE: &'static str = $type_name;

                fn metadata(&self) -> &EventMetadata {
                    &self.metadata
                }
            }
        )*

        static RECORDS: &[RecordInfo] = &[$(
            RecordInfo {
                type_name: $type_name,
                record_name: concat!("echo.", stringify!($context), ".", stringify!($ty)),
                context: stringify!($context),
                avsc: include_str!(concat!(
                    env!("OUT_DIR"), "/avro/", stringify!($context), "/", $type_name, ".avsc"
                )),
            },
        )*];
    };
}

records! {
    upload: UploadRequested => "upload.requested",
    upload: UploadFinalize => "upload.finalize",
    upload: UploadUrlGenerated => "upload.url.generated",
    upload: UploadCompleted => "upload.completed",
    upload: UploadFailed => "upload.failed",
    upload: UploadExpired => "upload.expired",
    upload: QuotaReserve => "quota.reserve",
    upload: QuotaReserved => "quota.reserved",
    upload: QuotaRefused => "quota.refused",
    processing: ValidationStarted => "validation.started",
    processing: ValidationPassed => "validation.passed",
    processing: ValidationFailed => "validation.failed",
    processing: ProcessingJobCreated => "processing.job.created",
    processing: ChunkProcess => "chunk.process",
    processing: ChunkProcessingStarted => "chunk.processing.started",
    processing: ChunkProcessingCompleted => "chunk.processing.completed",
    processing: ChunkProcessingFailed => "chunk.processing.failed",
    processing: ProcessingTimeout => "processing.timeout",
    transcription: TranscriptionStarted => "transcription.started",
    transcription: TranscriptionCompleted => "transcription.completed",
    transcription: TranscriptionFailed => "transcription.failed",
    resource: ResourceReady => "resource.ready",
    resource: ResourceRejected => "resource.rejected",
    resource: ResourceTtlReached => "resource.ttl.reached",
    resource: CleanupInitiated => "cleanup.initiated",
    resource: CleanupCompleted => "cleanup.completed",
    resource: ResourceQuotaReleased => "resource.quota.released",
}

/// The bounded contexts, in pipeline order; each has a folder under `avro/`.
pub const CONTEXTS: &[&str] = &["upload", "processing", "transcription", "resource"];

/// Every event and command type, grouped by context in pipeline order.
pub fn all() -> &'static [RecordInfo] {
    RECORDS
}

/// The row of a dotted type name (`upload.requested`).
pub fn info(type_name: &str) -> Option<&'static RecordInfo> {
    RECORDS.iter().find(|r| r.type_name == type_name)
}

/// The row of a full Avro record name (`echo.upload.UploadRequested`), for example the name of
/// the writer schema a consumer got from the registry.
pub fn by_record_name(full_name: &str) -> Option<&'static RecordInfo> {
    RECORDS.iter().find(|r| r.record_name == full_name)
}

/// What the custom attributes of a record's `.avsc` say about it (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotations {
    /// The record's `doc`: what it is.
    pub doc: String,
    /// `x-trigger`: what causes it.
    pub trigger: String,
    /// `x-failure-path`: what follows when it, or what it asks for, fails.
    pub failure_path: String,
    /// `x-versions`: what each version of the schema changed, oldest first; one entry per
    /// version registered, so its length is the current version. Absent: version 1 only.
    pub versions: Vec<String>,
}

impl RecordInfo {
    /// The schema parsed: the one registered and written with, docs included.
    pub fn schema(&self) -> Result<Schema> {
        Schema::parse_str(self.avsc)
            .with_context(|| format!("parsing the schema of {}", self.type_name))
    }

    /// The record's doc and custom attributes, read from its `.avsc`.
    pub fn annotations(&self) -> Result<Annotations> {
        let json: serde_json::Value = serde_json::from_str(self.avsc)
            .with_context(|| format!("parsing the .avsc of {}", self.type_name))?;
        let text = |key: &str| -> Result<String> {
            match json.get(key).and_then(|v| v.as_str()) {
                Some(s) if !s.trim().is_empty() => Ok(s.to_owned()),
                _ => bail!("the .avsc of {} has no `{key}` text", self.type_name),
            }
        };
        Ok(Annotations {
            doc: text("doc")?,
            trigger: text("x-trigger")?,
            failure_path: text("x-failure-path")?,
            versions: match json.get("x-versions") {
                None => vec!["The first version.".into()],
                Some(v) => serde_json::from_value(v.clone()).with_context(|| {
                    format!("`x-versions` of {} is not a list of texts", self.type_name)
                })?,
            },
        })
    }

    /// The version of the schema records of this type are written with (`x-versions`), which
    /// the runtime stamps into `metadata.schema_version`.
    pub fn schema_version(&self) -> i32 {
        self.annotations()
            .map_or(1, |a| i32::try_from(a.versions.len()).unwrap_or(i32::MAX))
    }
}
