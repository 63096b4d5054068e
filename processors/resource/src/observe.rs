//! The I/O of the `resource` processor: deleting a resource's objects on cleanup (and what was
//! PUT after it, on the sweep timer), idempotently: a second delete finds nothing.

use anyhow::Result;
use echo_catalog::events::CleanupInitiated;
use echo_runtime::{Context, EchoConfig, HandlerError, Input, NoEffect, Processor};
use echo_storage::S3Service;
use tracing::info;

use crate::config::ResourceConfig;
use crate::decide::{self, Observation, ResourceDecider, ResourceState, SWEEP_TIMER};

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

    /// It writes nothing outside Kafka.
    async fn effect(&self, effect: &NoEffect) -> Result<(), HandlerError> {
        match *effect {}
    }
}
