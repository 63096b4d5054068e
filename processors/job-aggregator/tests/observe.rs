//! The job aggregator's `observe`: it reads nothing from outside Kafka, so it answers at once
//! for any input, with no S3, registry or model configured.

use echo_catalog::events::ProcessingTimeout;
use echo_catalog::record::EventMetadata;
use echo_job_aggregator::{job_aggregator, AggregatorState, JobAggregatorConfig};
use echo_runtime::{Context, Decider, Incoming, Input, Processor};

#[tokio::test]
async fn observe_reads_nothing_and_the_decider_has_the_settings_it_was_built_with() {
    let config = JobAggregatorConfig {
        max_attempts: 7,
        ..JobAggregatorConfig::default()
    };
    let p = job_aggregator(config.clone());
    assert_eq!(p.decider().config, config);
    assert_eq!(p.decider().name(), "job-aggregator");
    let record = ProcessingTimeout {
        metadata: EventMetadata::new("t-1", "r-1", "job-aggregator", 1),
        job_id: "job-1".into(),
        chunk_index: 0,
        attempt: 1,
        deadline_ms: 1,
    };
    let input = Incoming::from_record("r-1", &record, "echo.processing.events");
    let ctx = Context::for_input("job-aggregator", 1, Input::Record(&input));
    let observed = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        p.observe(&AggregatorState::default(), Input::Record(&input), &ctx),
    )
    .await
    .expect("observe waits for nothing");
    assert_eq!(observed, Ok(()));
}
