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
//! - `cleanup.initiated`, read back from its own topic → every object under the resource's
//!   prefix is deleted → `cleanup.completed`;
//! - a cleanup before the upload URL expired → once the URL expired (and a grace period
//!   passed), the prefix is swept again: what a client PUT after the cleanup is deleted too.
//!
//! Deleting on the way back, not when deciding on the cleanup, keeps the decision that a
//! resource goes apart from the I/O that carries it out: the deletion is retried on its own,
//! and the decision is in the log before any object is touched.
//!
//! Like every processor it is split in three: [`config`] (its settings), [`decide`] (pure
//! logic, the Decider's `decide` and `evolve`) and `echo_storage` (the S3 I/O `observe` does).

pub mod config;
pub mod decide;

use anyhow::Result;
use echo_catalog::events::CleanupInitiated;
use echo_runtime::{Context, EchoConfig, HandlerError, Input, Processor, Registration, RunOptions};
use tracing::info;

pub use config::ResourceConfig;
pub use decide::{Observation, Outcome, ResourceDecider, ResourceState, SWEEP_TIMER, TTL_TIMER};
pub use echo_storage::S3Service;

/// The resource processor, run by `echo_runtime::run`.
#[derive(Debug, Clone)]
pub struct ResourceProcessor {
    /// Its decisions, over how long ready resources are kept.
    decider: ResourceDecider,
    /// The bucket whose resource prefixes are deleted.
    s3: S3Service,
}

impl ResourceProcessor {
    /// A processor over the bucket of `config.s3`; fails on unusable settings. Does no I/O:
    /// call [`S3Service::ensure_bucket`] on [`ResourceProcessor::s3`] at startup.
    pub fn new(config: &EchoConfig, resource: ResourceConfig) -> Result<ResourceProcessor> {
        resource.validate()?;
        Ok(ResourceProcessor {
            decider: ResourceDecider { config: resource },
            s3: S3Service::new(config)?,
        })
    }

    /// The object store it uses, for startup checks.
    pub fn s3(&self) -> &S3Service {
        &self.s3
    }

    /// Its settings.
    pub fn config(&self) -> &ResourceConfig {
        &self.decider.config
    }
}

/// How `echoctl run resource` finds and starts it.
pub const REGISTRATION: Registration = Registration {
    name: "resource",
    summary: "Resource lifecycle, TTL, cleanup.",
    pooled: false,
    start: |config, options| Box::pin(start(config, options)),
};

/// Builds it from `[resource]`, makes sure its bucket exists, and runs it until shutdown.
async fn start(config: EchoConfig, options: RunOptions) -> Result<()> {
    let p = ResourceProcessor::new(&config, config.section("resource")?)?;
    p.s3().ensure_bucket().await?;
    echo_runtime::run(config, p, options).await
}

impl Processor for ResourceProcessor {
    type Decider = ResourceDecider;

    fn decider(&self) -> &ResourceDecider {
        &self.decider
    }

    /// Deletes only for a `cleanup.initiated` of a resource not yet cleaned, so a repeated
    /// cleanup and every other input cost no S3 call.
    async fn observe(
        &self,
        state: &ResourceState,
        input: Input<'_>,
        _ctx: &Context,
    ) -> Result<Observation, HandlerError> {
        let record = match input {
            Input::Timer(timer) if timer.name == SWEEP_TIMER => {
                let resource_id = &timer.scheduled_by.correlation_id;
                let Some(prefix) = decide::sweep_target(state, resource_id) else {
                    return Ok(Observation::Nothing);
                };
                let deleted = self.s3.delete_prefix(&prefix).await?;
                info!(prefix, deleted, "swept what was uploaded after the cleanup");
                return Ok(Observation::Deleted(deleted));
            }
            Input::Timer(_) => return Ok(Observation::Nothing),
            Input::Record(record) => record,
        };
        if !record.is::<CleanupInitiated>() {
            return Ok(Observation::Nothing);
        }
        let Some(prefix) = decide::cleanup_target(state, record)? else {
            return Ok(Observation::Nothing);
        };
        let deleted = self.s3.delete_prefix(&prefix).await?;
        info!(prefix, deleted, "deleted the objects of a resource");
        Ok(Observation::Deleted(deleted))
    }
}
