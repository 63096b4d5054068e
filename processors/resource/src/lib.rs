//! The `resource` processor: the lifecycle of each resource, from its outcome to the deletion
//! of its objects.
//!
//! It consumes `echo.upload.events`, `echo.processing.events`, `echo.transcription.events` and
//! its own `echo.resource.events`, and produces `echo.resource.events` (see
//! `topics/topics.toml`):
//!
//! - `transcription.completed` → `resource.ready`, then after the retention
//!   `resource.ttl.reached` and `cleanup.initiated` (`TTL_REACHED`);
//! - `validation.failed` / `transcription.failed` → `resource.rejected` and `cleanup.initiated`
//!   (`REJECTED`);
//! - `upload.failed` → `cleanup.initiated` (`UPLOAD_FAILED`);
//! - `cleanup.initiated`, read back from its own topic → `observe` counts the objects under
//!   the resource's prefix, `decide` asks for their deletion (an effect) and emits
//!   `cleanup.completed`;
//! - a cleanup before the upload URL expired → once the URL expired (and a grace period
//!   passed), the prefix is swept again: what a client PUT after the cleanup is deleted too.
//!
//! Deleting on the way back, not when deciding on the cleanup, keeps the decision that a
//! resource goes apart from the I/O that carries it out: the deletion is retried on its own,
//! and the decision is in the log before any object is touched.
//!
//! Its shape is every processor's: [`config`] (its settings), [`decide`] (its `Decider`: what it
//! handles and emits, pure `decide` and `evolve`), [`observe`] (what its decisions need to
//! read), [`effects`] (its deletes, which the runtime carries out after `decide`).

pub mod config;
pub mod decide;
pub mod effects;
pub mod observe;

use anyhow::Result;
use echo_runtime::{EchoConfig, Instances, Registration, RunOptions};

pub use config::ResourceConfig;
pub use decide::{
    Observation, Outcome, ResourceDecider, ResourceEffect, ResourceState, SWEEP_TIMER, TTL_TIMER,
};
pub use echo_storage::S3Service;
pub use observe::ResourceProcessor;

/// How `echoctl run resource` finds and starts it.
pub const REGISTRATION: Registration = Registration {
    name: "resource",
    summary: "Resource lifecycle, TTL, cleanup.",
    instances: Instances::One,
    start: |config, options| Box::pin(start(config, options)),
};

/// Builds it from `[resource]`, makes sure its bucket exists, and runs it until shutdown.
async fn start(config: EchoConfig, options: RunOptions) -> Result<()> {
    let p = ResourceProcessor::new(&config, config.section("resource")?)?;
    p.s3().ensure_bucket().await?;
    echo_runtime::run(config, p, options).await
}
