//! What the `resource` processor reads: how many objects lie under a resource's prefix when it
//! is about to be cleaned up (and again on the sweep timer). The deletion itself is an effect
//! (`effects.rs`).

use anyhow::Result;
use echo_catalog::events::CleanupInitiated;
use echo_runtime::prelude::*;
use echo_storage::S3Service;

use crate::config::ResourceConfig;
use crate::decide::{
    self, Observation, ResourceDecider, ResourceEffect, ResourceState, SWEEP_TIMER,
};

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

    /// Lists only for a `cleanup.initiated` of a resource not yet cleaned, and for the sweep of
    /// one cleaned, so a repeated cleanup and every other input cost no S3 call.
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
                return Ok(Observation::Found(self.s3.count_prefix(&prefix).await?));
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
        Ok(Observation::Found(self.s3.count_prefix(&prefix).await?))
    }

    /// The object store is this processor's dependency besides Kafka; it writes there.
    async fn probe(&self) -> Result<(), Unavailable> {
        self.s3.probe().await
    }

    async fn effect(&self, effect: &ResourceEffect) -> Result<(), HandlerError> {
        match effect {
            ResourceEffect::DeletePrefix(prefix) => self.delete(prefix).await,
        }
    }
}
