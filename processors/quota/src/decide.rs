//! The quota processor's logic as pure functions: no I/O, no clock but `ctx.now_ms`.
//!
//! Per tenant: `quota.reserve` → `quota.reserved` when the tenant is within every limit, else
//! `quota.refused` with the first limit reached (requests per minute, then jobs in flight,
//! then stored bytes); `resource.quota.released` → what the resource held no longer counts.
//! What is counted is learned from what the processor emitted (a reservation) and consumed (a
//! release), so the state is what the events say, and a repeated reserve or release of the
//! same resource changes nothing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use echo_catalog::events;
use echo_catalog::events::{
    QuotaLimit, QuotaRefused, QuotaReserve, QuotaReserved, ResourceQuotaReleased,
};
use echo_runtime::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{QuotaConfig, TenantLimits};

/// The window `requests_per_minute` counts over, in ms.
pub const RATE_WINDOW_MS: i64 = 60_000;

/// The quota processor's decisions: which requests their tenant has room for.
/// Pure: built from configuration alone.
#[derive(Debug, Clone)]
pub struct QuotaDecider {
    /// Every tenant's limits.
    pub config: QuotaConfig,
}

impl Decider for QuotaDecider {
    type State = TenantUsage;
    type Observation = ();
    type Effect = NoEffect;

    fn name(&self) -> &'static str {
        "quota"
    }

    fn handles(&self) -> &'static [&'static str] {
        &[
            events::QuotaReserve::TYPE,
            events::ResourceQuotaReleased::TYPE,
        ]
    }

    fn emits(&self) -> &'static [&'static str] {
        &[events::QuotaReserved::TYPE, events::QuotaRefused::TYPE]
    }

    fn decide(
        &self,
        usage: &TenantUsage,
        input: Input<'_>,
        _observed: (),
        ctx: &Context,
    ) -> Result<Decision, HandlerError> {
        match input {
            Input::Record(record) if record.is::<QuotaReserve>() => {
                let reserve: QuotaReserve = record.decode()?;
                let limits = self.config.limits(&reserve.tenant);
                Ok(Decision::emit(vec![answer(usage, limits, &reserve, ctx)]))
            }
            // A release is counted by `evolve`; nothing answers it.
            Input::Record(_) | Input::Timer(_) => Ok(Decision::default()),
        }
    }

    fn evolve(&self, mut usage: TenantUsage, fact: Fact<'_>) -> TenantUsage {
        match fact {
            Fact::Emitted(out) if out.is::<QuotaReserved>() => {
                if let Ok(reserved) = out.decode::<QuotaReserved>() {
                    let resource = reserved.metadata.correlation_id;
                    let at = reserved.metadata.occurred_at;
                    if usage
                        .stored
                        .insert(resource.clone(), reserved.reserved_bytes)
                        .is_none()
                    {
                        usage.jobs.insert(resource);
                        usage.admitted_at.push_back(at);
                    }
                    while usage
                        .admitted_at
                        .front()
                        .is_some_and(|&t| t <= at - RATE_WINDOW_MS)
                    {
                        usage.admitted_at.pop_front();
                    }
                }
            }
            Fact::Consumed(record) if record.is::<ResourceQuotaReleased>() => {
                if let Ok(release) = record.decode::<ResourceQuotaReleased>() {
                    let resource = &release.metadata.correlation_id;
                    if release.job {
                        usage.jobs.remove(resource);
                    }
                    if release.stored_bytes {
                        usage.stored.remove(resource);
                    }
                }
            }
            _ => {}
        }
        usage
    }
}

/// What one tenant holds of its limits (changelogged as JSON, one record per tenant).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantUsage {
    /// Resources admitted whose job has not ended.
    pub jobs: BTreeSet<String>,
    /// Declared bytes of each admitted resource whose objects are not yet deleted.
    pub stored: BTreeMap<String, i64>,
    /// When each admission of the last minute happened (ms since the epoch), oldest first.
    pub admitted_at: VecDeque<i64>,
}

impl TenantUsage {
    /// Bytes the tenant's resources may hold in the store now.
    pub fn stored_bytes(&self) -> i64 {
        self.stored.values().sum()
    }

    /// Admissions in the minute up to `now_ms`.
    pub fn admitted_since(&self, now_ms: i64) -> usize {
        self.admitted_at
            .iter()
            .filter(|&&t| t > now_ms - RATE_WINDOW_MS)
            .count()
    }
}

/// The limit `reserve` would pass, if any, given the tenant's usage.
pub fn limit_reached(
    usage: &TenantUsage,
    limits: TenantLimits,
    reserve: &QuotaReserve,
    now_ms: i64,
) -> Option<(QuotaLimit, String)> {
    let recent = usage.admitted_since(now_ms);
    if recent >= limits.requests_per_minute as usize {
        return Some((
            QuotaLimit::RequestsPerMinute,
            format!(
                "{recent} requests admitted in the last minute, the limit is {}",
                limits.requests_per_minute
            ),
        ));
    }
    if usage.jobs.len() >= limits.jobs_in_flight as usize {
        return Some((
            QuotaLimit::JobsInFlight,
            format!(
                "{} jobs in flight, the limit is {}",
                usage.jobs.len(),
                limits.jobs_in_flight
            ),
        ));
    }
    let stored = usage.stored_bytes();
    if stored.saturating_add(reserve.declared_size_bytes) > limits.stored_bytes {
        return Some((
            QuotaLimit::StoredBytes,
            format!(
                "{stored} bytes stored and {} more declared, the limit is {}",
                reserve.declared_size_bytes, limits.stored_bytes
            ),
        ));
    }
    None
}

/// `quota.reserved` or `quota.refused` for `reserve`. A resource already admitted is admitted
/// again without counting twice (its reservation's answer was lost to a retry of the upload
/// processor, say).
fn answer(
    usage: &TenantUsage,
    limits: TenantLimits,
    reserve: &QuotaReserve,
    ctx: &Context,
) -> Outgoing {
    let resource = reserve.metadata.correlation_id.as_str();
    let reserved = || {
        Outgoing::new(
            resource,
            &QuotaReserved {
                metadata: ctx.metadata(),
                tenant: reserve.tenant.clone(),
                reserved_bytes: reserve.declared_size_bytes,
            },
        )
    };
    if usage.stored.contains_key(resource) {
        return reserved();
    }
    match limit_reached(usage, limits, reserve, ctx.now_ms) {
        None => reserved(),
        Some((limit, message)) => Outgoing::new(
            resource,
            &QuotaRefused {
                metadata: ctx.metadata(),
                tenant: reserve.tenant.clone(),
                limit,
                message: format!("tenant {}: {message}", reserve.tenant),
            },
        ),
    }
}
