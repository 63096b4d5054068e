//! The `quota` processor: each tenant's share of echo, counted where one key sees all of it.
//!
//! It consumes `echo.upload.quota` and `echo.resource.quota-releases` (both keyed by tenant)
//! and produces `echo.upload.quota-events` (keyed by resource; see `topics/topics.toml`):
//!
//! - `quota.reserve` (from the upload processor, for a request that passed its own checks) →
//!   `quota.reserved` when the tenant is within its requests per minute, jobs in flight and
//!   stored bytes, else `quota.refused` naming the limit;
//! - `resource.quota.released` (from the resource processor, when a resource ends and when its
//!   objects are deleted) → the resource's job and bytes no longer count.
//!
//! Its shape is every processor's: [`config`] (its settings), [`decide`] (its `Decider`: what it
//! handles and emits, pure `decide` and `evolve`), [`observe`] (the I/O its decisions need);
//! it needs none, so it runs as `echo_runtime::Pure` over its decider.

pub mod config;
pub mod decide;
pub mod observe;

use anyhow::Result;
use echo_runtime::{EchoConfig, Instances, Registration, RunOptions};

pub use config::{QuotaConfig, TenantLimits};
pub use decide::{QuotaDecider, TenantUsage};
pub use observe::{quota_processor, QuotaProcessor};

/// How `echoctl run quota` finds and starts it.
pub const REGISTRATION: Registration = Registration {
    name: "quota",
    summary: "Tenants' limits: requests per minute, jobs in flight, stored bytes.",
    instances: Instances::One,
    start: |config, options| Box::pin(start(config, options)),
};

/// Builds it from `[quota]` and runs it until shutdown.
async fn start(config: EchoConfig, options: RunOptions) -> Result<()> {
    let quota: QuotaConfig = config.section("quota")?;
    quota.validate()?;
    echo_runtime::run(config, quota_processor(quota), options).await
}
