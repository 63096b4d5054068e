//! A per-test environment on the shared local stack.

use std::time::Duration;

use anyhow::Result;
use echo_catalog::Catalogue;
use echo_runtime::{admin, registry, EchoConfig};

/// One test's view of the stack: its own topic prefix, topics and subjects.
pub struct TestEnv {
    /// Configuration pointing at the local stack with this test's prefix.
    pub config: EchoConfig,
    /// The catalogue.
    pub catalogue: Catalogue,
}

impl TestEnv {
    /// Creates every catalogue topic and subject under a fresh prefix. Fails (never skips)
    /// when the stack is not up: the test command starts it first.
    pub async fn new(name: &str) -> Result<TestEnv> {
        let mut config = EchoConfig::load(None)?;
        PRUNED
            .get_or_try_init(|| prune_earlier_runs(&config))
            .await?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        config.kafka.topic_prefix = format!("{TEST_PREFIX}{name}.{}.", &id[..8]);
        config.runtime.batch_linger_ms = 20;
        config.runtime.retry_backoff_scale = 0.01;
        let catalogue = Catalogue::load()?;
        admin::apply(&config, &catalogue).await?;
        registry::register(&config, &catalogue, false).await?;
        Ok(TestEnv { config, catalogue })
    }

    /// The real name of a catalogue topic for this test.
    pub fn topic(&self, name: &str) -> String {
        self.config.topic(name)
    }
}

/// Where every test environment's topics and subjects start.
const TEST_PREFIX: &str = "test.";

/// Set once the leftovers of earlier runs are gone; the first environment of a test process
/// prunes them before any of this process's environments exist.
static PRUNED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Deletes the topics and registry subjects earlier test runs left on the shared stack, so
/// the broker does not accumulate thousands of partitions run after run.
async fn prune_earlier_runs(config: &EchoConfig) -> Result<()> {
    admin::delete_prefixed(config, TEST_PREFIX).await?;
    let base = config.registry.url.trim_end_matches('/');
    let client = reqwest::Client::new();
    let subjects: Vec<String> = client
        .get(format!("{base}/subjects"))
        .send()
        .await?
        .json()
        .await?;
    for subject in subjects.iter().filter(|s| s.starts_with(TEST_PREFIX)) {
        for permanent in [false, true] {
            client
                .delete(format!("{base}/subjects/{subject}?permanent={permanent}"))
                .send()
                .await?;
        }
    }
    Ok(())
}

/// A generous bound for anything a healthy stack does in well under a second.
pub const PATIENCE: Duration = Duration::from_secs(60);
