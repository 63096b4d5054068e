//! Settings of the quota processor, loaded from the `quota` section of echo's configuration.

use std::collections::BTreeMap;

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// What one tenant may have at once. Every request counts against all three; the first one
/// reached refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantLimits {
    /// Requests admitted in any 60 s. Bounds how fast one tenant can fill the pipeline's
    /// queues (the broker's own quotas on its Kafka user bound the raw bytes it may send).
    pub requests_per_minute: u32,
    /// Resources admitted and not yet ended (ready, rejected or failed): bounds one tenant's
    /// share of the chunk workers, since each job has at most `job_aggregator.runs_in_flight`
    /// runs in progress.
    pub jobs_in_flight: u32,
    /// Declared bytes of resources whose objects are not yet deleted: bounds what one tenant
    /// keeps in the object store for the retention.
    pub stored_bytes: i64,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            requests_per_minute: 600,
            jobs_in_flight: 100,
            stored_bytes: 100 * 1024 * 1024 * 1024,
        }
    }
}

/// Every tenant's limits: the default, and those tenants given their own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuotaConfig {
    /// The limits of every tenant without an entry of its own, the anonymous tenant's among
    /// them (which all clients without a tenant token share).
    pub default: TenantLimits,
    /// Tenants with their own limits, by name (`[quota.tenants.acme]`).
    pub tenants: BTreeMap<String, TenantLimits>,
}

impl QuotaConfig {
    /// Fails on limits that would refuse every request, so a bad config stops the processor
    /// at startup instead of failing every upload.
    pub fn validate(&self) -> Result<()> {
        for (tenant, limits) in std::iter::once(("default", &self.default))
            .chain(self.tenants.iter().map(|(t, l)| (t.as_str(), l)))
        {
            ensure!(
                limits.requests_per_minute > 0
                    && limits.jobs_in_flight > 0
                    && limits.stored_bytes > 0,
                "quota limits of {tenant} must all be positive, got {limits:?}"
            );
        }
        Ok(())
    }

    /// The limits of `tenant`.
    pub fn limits(&self, tenant: &str) -> TenantLimits {
        self.tenants.get(tenant).copied().unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_without_an_entry_has_the_default_limits() {
        let config: QuotaConfig = serde_json::from_str(
            r#"{"default": {"jobs_in_flight": 5}, "tenants": {"acme": {"jobs_in_flight": 50}}}"#,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.limits("acme").jobs_in_flight, 50);
        assert_eq!(config.limits("globex").jobs_in_flight, 5);
        assert_eq!(config.limits("globex").requests_per_minute, 600);
    }

    #[test]
    fn a_zero_limit_is_refused() {
        let mut config = QuotaConfig::default();
        config.validate().unwrap();
        config.tenants.insert(
            "acme".into(),
            TenantLimits {
                stored_bytes: 0,
                ..TenantLimits::default()
            },
        );
        assert!(config.validate().is_err());
    }
}
