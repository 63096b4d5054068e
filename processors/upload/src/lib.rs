//! The `upload` processor: the entry point of echo's pipeline.
//!
//! It consumes `echo.upload.requests` and `echo.upload.commands` and produces
//! `echo.upload.events` (see `topics/topics.toml`):
//!
//! - `upload.requested` → a pre-signed PUT URL for a server-chosen object key, signed for the
//!   declared content type and size and sealed to the client's `reply_key`
//!   (`upload.url.generated`), or `upload.failed` when the request is refused;
//! - `upload.finalize` → a HEAD of the object, checked against the request
//!   (`upload.completed` or `upload.failed`);
//! - no finalize before the URL expires → `upload.expired` and `upload.failed`.
//!
//! Its shape is every processor's: [`config`] (its settings), [`decide`] (its `Decider`: what it
//! handles and emits, pure `decide` and `evolve`), [`observe`] (the I/O its decisions need).

pub mod config;
pub mod decide;
pub mod observe;

use anyhow::Result;
use echo_runtime::{EchoConfig, Instances, Registration, RunOptions};

pub use config::UploadConfig;
pub use decide::{DeliveredUrl, Observation, RequestedUpload, UploadDecider, UploadState};
pub use echo_storage::{ObjectFacts, S3Service};
pub use observe::UploadProcessor;

/// How `echoctl run upload` finds and starts it.
pub const REGISTRATION: Registration = Registration {
    name: "upload",
    summary: "Pre-signed URLs, upload verification, expiry.",
    instances: Instances::One,
    start: |config, options| Box::pin(start(config, options)),
};

/// Builds it from `[upload]`, makes sure its bucket exists, and runs it until shutdown.
async fn start(config: EchoConfig, options: RunOptions) -> Result<()> {
    let p = UploadProcessor::new(&config, config.section("upload")?)?;
    p.s3().ensure_bucket().await?;
    echo_runtime::run(config, p, options).await
}
