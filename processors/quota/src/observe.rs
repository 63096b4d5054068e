//! The quota processor needs nothing from outside Kafka: its `observe` reads nothing, and every
//! verdict comes from the reservations and releases it has seen.

use anyhow::Result;
use echo_runtime::prelude::*;

use crate::config::QuotaConfig;
use crate::decide::{QuotaDecider, TenantUsage};

/// The quota processor, run by `echo_runtime::run`.
#[derive(Debug, Clone)]
pub struct QuotaProcessor {
    /// Its decisions, over the tenants' limits.
    decider: QuotaDecider,
}

impl QuotaProcessor {
    /// A quota processor with these limits. Does no I/O and cannot fail; whoever loads the
    /// settings calls [`QuotaConfig::validate`] first.
    pub fn new(config: QuotaConfig) -> Self {
        QuotaProcessor {
            decider: QuotaDecider { config },
        }
    }

    /// Its settings.
    pub fn config(&self) -> &QuotaConfig {
        &self.decider.config
    }
}

impl Processor for QuotaProcessor {
    type Decider = QuotaDecider;

    fn decider(&self) -> &QuotaDecider {
        &self.decider
    }

    async fn observe(
        &self,
        _state: &TenantUsage,
        _input: Input<'_>,
        _ctx: &Context,
    ) -> Result<(), HandlerError> {
        Ok(())
    }

    /// It writes nothing outside Kafka.
    async fn effect(&self, effect: &NoEffect) -> Result<(), HandlerError> {
        match *effect {}
    }
}
