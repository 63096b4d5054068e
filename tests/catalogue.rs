//! `echoctl topics apply|describe` against the real broker: idempotent, and drift is seen.

use echo_runtime::admin::{self, Drift};
use echo_tests::TestEnv;

#[tokio::test(flavor = "multi_thread")]
async fn topics_apply_is_idempotent_and_describe_reports_drift() {
    let env = TestEnv::new("topics").await.unwrap();
    let rows = admin::describe(&env.config, &env.catalogue).await.unwrap();
    assert!(rows.iter().all(|r| r.drift == Drift::InSync), "{rows:?}");
    assert!(rows
        .iter()
        .any(|r| r.name == env.topic("echo.upload.changelog")));
    let again = admin::apply(&env.config, &env.catalogue).await.unwrap();
    assert!(again.iter().all(|r| r.drift == Drift::InSync));

    // Another environment prefix on the same cluster has nothing yet.
    let mut other = env.config.clone();
    other.kafka.topic_prefix = format!("{}other.", env.config.kafka.topic_prefix);
    let rows = admin::describe(&other, &env.catalogue).await.unwrap();
    assert!(rows.iter().all(|r| r.drift == Drift::Missing));
}
