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
        let id = uuid::Uuid::new_v4().simple().to_string();
        config.kafka.topic_prefix = format!("test.{name}.{}.", &id[..8]);
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

/// A generous bound for anything a healthy stack does in well under a second.
pub const PATIENCE: Duration = Duration::from_secs(60);
