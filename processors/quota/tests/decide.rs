//! The quota processor's rules as pure functions: a tenant's reservations and releases in,
//! answers and usage out, folded the way the runtime folds them.

use echo_catalog::events::{
    QuotaLimit, QuotaRefused, QuotaReserve, QuotaReserved, ResourceQuotaReleased,
};
use echo_catalog::record::EventMetadata;
use echo_quota::{QuotaConfig, QuotaDecider, TenantLimits};
use echo_runtime::testing::{self, Harness};
use echo_runtime::{Decision, Incoming};

const TENANT: &str = "acme";
const NOW: i64 = 1_700_000_000_000;
const MIB: i64 = 1024 * 1024;

fn decider(limits: TenantLimits) -> QuotaDecider {
    QuotaDecider {
        config: QuotaConfig {
            default: limits,
            ..QuotaConfig::default()
        },
    }
}

fn limits(requests_per_minute: u32, jobs_in_flight: u32, stored_bytes: i64) -> TenantLimits {
    TenantLimits {
        requests_per_minute,
        jobs_in_flight,
        stored_bytes,
    }
}

fn reserve(resource: &str, bytes: i64) -> Incoming {
    let record = QuotaReserve {
        metadata: EventMetadata::new(format!("reserve-{resource}"), resource, "upload", NOW),
        tenant: TENANT.into(),
        declared_size_bytes: bytes,
    };
    Incoming::from_record(TENANT, &record, "echo.upload.quota")
}

fn release(resource: &str, job: bool, stored_bytes: bool) -> Incoming {
    let record = ResourceQuotaReleased {
        metadata: EventMetadata::new(
            format!("release-{resource}-{job}-{stored_bytes}"),
            resource,
            "resource",
            NOW,
        ),
        tenant: TENANT.into(),
        job,
        stored_bytes,
    };
    Incoming::from_record(TENANT, &record, "echo.resource.quota-releases")
}

/// The one answer of a reservation: `Ok(bytes reserved)` or `Err(the limit reached)`.
fn answer(decision: &Decision) -> Result<i64, QuotaLimit> {
    assert_eq!(decision.emit.len(), 1, "{:?}", testing::types(decision));
    let out = &decision.emit[0];
    if out.is::<QuotaReserved>() {
        let reserved: QuotaReserved = out.decode().unwrap();
        assert_eq!(reserved.tenant, TENANT);
        Ok(reserved.reserved_bytes)
    } else {
        let refused: QuotaRefused = out.decode().unwrap();
        assert!(refused.message.contains(TENANT), "{}", refused.message);
        Err(refused.limit)
    }
}

fn try_reserve(
    h: &mut Harness<QuotaDecider>,
    resource: &str,
    bytes: i64,
    at: i64,
) -> Result<i64, QuotaLimit> {
    answer(&h.record(&reserve(resource, bytes), (), at).unwrap())
}

#[test]
fn the_processor_declares_what_its_catalogue_entry_lists() {
    testing::assert_declared_as_catalogued(&decider(TenantLimits::default()));
}

#[test]
fn a_tenant_within_its_limits_is_admitted_and_its_usage_counted() {
    let mut h = Harness::new(decider(TenantLimits::default()));
    assert_eq!(try_reserve(&mut h, "r1", 3 * MIB, NOW), Ok(3 * MIB));
    assert_eq!(try_reserve(&mut h, "r2", 5 * MIB, NOW + 1), Ok(5 * MIB));
    assert_eq!(h.state.jobs.len(), 2);
    assert_eq!(h.state.stored_bytes(), 8 * MIB);
    assert_eq!(h.state.admitted_since(NOW + 1), 2);
}

#[test]
fn jobs_in_flight_are_capped_until_a_job_ends() {
    let mut h = Harness::new(decider(limits(100, 2, 1 << 40)));
    assert!(try_reserve(&mut h, "r1", MIB, NOW).is_ok());
    assert!(try_reserve(&mut h, "r2", MIB, NOW).is_ok());
    assert_eq!(
        try_reserve(&mut h, "r3", MIB, NOW),
        Err(QuotaLimit::JobsInFlight)
    );
    // A refused request holds nothing.
    assert_eq!(h.state.jobs.len(), 2);
    assert_eq!(h.state.stored_bytes(), 2 * MIB);

    // r1's job ends; its bytes stay stored until its cleanup.
    h.record(&release("r1", true, false), (), NOW + 10).unwrap();
    assert_eq!(h.state.stored_bytes(), 2 * MIB);
    assert!(try_reserve(&mut h, "r3", MIB, NOW + 20).is_ok());
}

#[test]
fn stored_bytes_are_capped_until_a_resource_is_cleaned_up() {
    let mut h = Harness::new(decider(limits(100, 100, 10 * MIB)));
    assert!(try_reserve(&mut h, "r1", 6 * MIB, NOW).is_ok());
    assert_eq!(
        try_reserve(&mut h, "r2", 5 * MIB, NOW),
        Err(QuotaLimit::StoredBytes)
    );
    assert!(
        try_reserve(&mut h, "r3", 4 * MIB, NOW).is_ok(),
        "exactly at the limit"
    );

    h.record(&release("r1", true, false), (), NOW + 10).unwrap();
    assert_eq!(
        try_reserve(&mut h, "r2", 5 * MIB, NOW + 20),
        Err(QuotaLimit::StoredBytes),
        "a job that ended still holds its bytes"
    );
    h.record(&release("r1", false, true), (), NOW + 30).unwrap();
    assert!(try_reserve(&mut h, "r2", 5 * MIB, NOW + 40).is_ok());
}

#[test]
fn requests_per_minute_are_counted_over_a_sliding_minute() {
    let mut h = Harness::new(decider(limits(3, 100, 1 << 40)));
    for (i, at) in [0, 10_000, 20_000].into_iter().enumerate() {
        assert!(try_reserve(&mut h, &format!("r{i}"), MIB, NOW + at).is_ok());
    }
    assert_eq!(
        try_reserve(&mut h, "r3", MIB, NOW + 59_999),
        Err(QuotaLimit::RequestsPerMinute)
    );
    // The first admission leaves the window at 60 s; the second is still in it.
    assert!(try_reserve(&mut h, "r3", MIB, NOW + 60_000).is_ok());
    assert_eq!(
        try_reserve(&mut h, "r4", MIB, NOW + 60_001),
        Err(QuotaLimit::RequestsPerMinute)
    );
    assert!(
        h.state.admitted_at.len() <= 3,
        "the window keeps no more than the limit"
    );
}

#[test]
fn a_repeated_reservation_or_release_counts_once() {
    let mut h = Harness::new(decider(limits(100, 1, 1 << 40)));
    assert!(try_reserve(&mut h, "r1", MIB, NOW).is_ok());
    // The same resource again, at its tenant's job limit: admitted, not counted twice.
    assert_eq!(try_reserve(&mut h, "r1", MIB, NOW + 1), Ok(MIB));
    assert_eq!(h.state.jobs.len(), 1);
    assert_eq!(h.state.stored_bytes(), MIB);
    assert_eq!(h.state.admitted_since(NOW + 1), 1);

    h.record(&release("r1", true, true), (), NOW + 2).unwrap();
    h.record(&release("r1", true, true), (), NOW + 3).unwrap();
    h.record(&release("never-reserved", true, true), (), NOW + 4)
        .unwrap();
    assert!(h.state.jobs.is_empty() && h.state.stored.is_empty());
}

#[test]
fn a_tenant_with_its_own_limits_is_held_to_them() {
    let mut config = QuotaConfig {
        default: limits(100, 1, 1 << 40),
        ..QuotaConfig::default()
    };
    config
        .tenants
        .insert(TENANT.into(), limits(100, 3, 1 << 40));
    let mut h = Harness::new(QuotaDecider { config });
    for r in ["r1", "r2", "r3"] {
        assert!(try_reserve(&mut h, r, MIB, NOW).is_ok());
    }
    assert_eq!(
        try_reserve(&mut h, "r4", MIB, NOW),
        Err(QuotaLimit::JobsInFlight)
    );
}
