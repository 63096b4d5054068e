//! Settings of the resource processor, loaded from the `resource` section of echo's
//! configuration.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// One day in milliseconds, the unit retention is usually thought in.
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Longest retention accepted: ten years. Longer is surely a unit mistake (seconds or
/// microseconds for milliseconds), and it keeps `now + retention` far from overflowing.
const MAX_RETENTION_MS: i64 = 3653 * DAY_MS;

/// How long a resource's objects are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceConfig {
    /// How long a ready resource's audio and transcript stay downloadable, in milliseconds
    /// from `resource.ready`; then its objects are deleted. Bounds storage, and keeps users'
    /// audio no longer than promised.
    pub retention_ms: i64,
    /// How long after its upload URL expires a cleaned-up resource's prefix is swept once
    /// more, in milliseconds: a client holding the URL can PUT after the cleanup, and a PUT
    /// started just before the expiry may still be finishing.
    pub sweep_grace_ms: i64,
    /// How long after `upload.completed` a resource may stay in processing, in
    /// milliseconds; then it is rejected (`TIMED_OUT`) and its objects deleted, whatever step
    /// it waits at. The last line behind every step's own deadline and retries: no resource
    /// stays in progress for ever. Twice the longest audio validation accepts by default.
    pub processing_deadline_ms: i64,
}

impl Default for ResourceConfig {
    fn default() -> Self {
        ResourceConfig {
            retention_ms: 7 * DAY_MS,
            sweep_grace_ms: 5 * 60 * 1000,
            processing_deadline_ms: 6 * 60 * 60 * 1000,
        }
    }
}

impl ResourceConfig {
    /// Fails on settings that would delete resources at once or never, so a bad config stops
    /// the processor at startup instead of surprising users later.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            (1..=MAX_RETENTION_MS).contains(&self.retention_ms),
            "resource.retention_ms must be between 1 and {MAX_RETENTION_MS}, got {}",
            self.retention_ms
        );
        ensure!(
            (0..=DAY_MS).contains(&self.sweep_grace_ms),
            "resource.sweep_grace_ms must be between 0 and {DAY_MS}, got {}",
            self.sweep_grace_ms
        );
        ensure!(
            (1..=MAX_RETENTION_MS).contains(&self.processing_deadline_ms),
            "resource.processing_deadline_ms must be between 1 and {MAX_RETENTION_MS}, got {}",
            self.processing_deadline_ms
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_keep_a_week() {
        let c = ResourceConfig::default();
        c.validate().unwrap();
        assert_eq!(c.retention_ms, 604_800_000);
        let empty: ResourceConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, c);
        let set: ResourceConfig = serde_json::from_str(r#"{"retention_ms": 60000}"#).unwrap();
        assert_eq!(set.retention_ms, 60_000);
    }

    #[test]
    fn unusable_retention_is_refused() {
        for bad in [0, -1, MAX_RETENTION_MS + 1] {
            let c = ResourceConfig {
                retention_ms: bad,
                ..ResourceConfig::default()
            };
            assert!(c.validate().is_err(), "{bad} accepted");
        }
    }
}
