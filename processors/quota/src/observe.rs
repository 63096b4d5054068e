//! The quota processor needs nothing from outside Kafka: it runs as a [`Pure`] processor, whose
//! `observe` reads nothing, and every verdict comes from the reservations and releases it has
//! seen.

use echo_runtime::Pure;

use crate::config::QuotaConfig;
use crate::decide::QuotaDecider;

/// The quota processor, run by `echo_runtime::run`.
pub type QuotaProcessor = Pure<QuotaDecider>;

/// The quota processor with these limits. Does no I/O and cannot fail; whoever loads the
/// settings calls [`QuotaConfig::validate`] first.
pub fn quota_processor(config: QuotaConfig) -> QuotaProcessor {
    Pure(QuotaDecider { config })
}
