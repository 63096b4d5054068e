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
        TestEnv::at(&TestEnv::fresh_prefix(name).await?).await
    }

    /// A prefix no topic or subject has yet (for a test that starts something before they
    /// exist); [`TestEnv::at`] creates them.
    pub async fn fresh_prefix(name: &str) -> Result<String> {
        // The processors' logs, when asked for (`RUST_LOG=echo_runtime=debug cargo test …`).
        if std::env::var_os("RUST_LOG").is_some() {
            echo_runtime::telemetry::init();
        }
        let config = EchoConfig::load(None)?;
        PRUNED
            .get_or_try_init(|| prune_earlier_runs(&config))
            .await?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let pid = std::process::id();
        Ok(format!("{TEST_PREFIX}{pid}.{name}.{}.", &id[..8]))
    }

    /// Creates every catalogue topic and subject under `prefix`, with the fast retry
    /// backoff tests use.
    pub async fn at(prefix: &str) -> Result<TestEnv> {
        let mut config = EchoConfig::load(None)?;
        config.kafka.topic_prefix = prefix.to_string();
        config.runtime.retry_backoff_scale = 0.01;
        let catalogue = Catalogue::load()?;
        admin::apply(&config, &catalogue).await?;
        registry::register(&config, &catalogue, false).await?;
        Ok(TestEnv { config, catalogue })
    }

    /// The names of the catalogue's processors, in declaration order.
    pub fn processor_names(&self) -> Vec<&str> {
        self.catalogue
            .processors
            .iter()
            .map(|p| p.name.as_str())
            .collect()
    }

    /// The real name of a catalogue topic for this test.
    pub fn topic(&self, name: &str) -> String {
        self.config.topic(name)
    }
}

/// Where every test environment's topics and subjects start; the id of the test process
/// follows, so pruning can tell a finished run from one still going.
const TEST_PREFIX: &str = "test.";

/// Whether process `pid` is running (Linux).
fn is_running(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether a topic or subject name belongs to an earlier test process, one no longer
/// running; a running one may be another test process beside this one, and is left alone.
fn is_leftover(name: &str, running: impl Fn(u32) -> bool) -> bool {
    let Some(rest) = name.strip_prefix(TEST_PREFIX) else {
        return false;
    };
    match rest.split('.').next().and_then(|s| s.parse::<u32>().ok()) {
        Some(pid) => !running(pid),
        // Names from before the prefix carried the process id.
        None => true,
    }
}

/// Set once the leftovers of earlier runs are gone; the first environment of a test process
/// prunes them before any of this process's environments exist.
static PRUNED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Deletes the topics and registry subjects earlier test runs left on the shared stack, so
/// the broker does not accumulate thousands of partitions run after run.
async fn prune_earlier_runs(config: &EchoConfig) -> Result<()> {
    prune(config, |name| is_leftover(name, is_running)).await
}

/// Deletes every topic and registry subject whose name `doomed` selects.
pub async fn prune(config: &EchoConfig, doomed: impl Fn(&str) -> bool) -> Result<()> {
    admin::delete_where(config, &doomed).await?;
    let base = config.registry.url.trim_end_matches('/');
    let client = reqwest::Client::new();
    let subjects: Vec<String> = client
        .get(format!("{base}/subjects"))
        .send()
        .await?
        .json()
        .await?;
    for subject in subjects.iter().filter(|s| doomed(s)) {
        for permanent in [false, true] {
            let delete = client.delete(format!("{base}/subjects/{subject}?permanent={permanent}"));
            config.registry.as_writer(delete).send().await?;
        }
    }
    Ok(())
}

/// A generous bound for anything a healthy stack does in well under a second.
pub const PATIENCE: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_environments_of_finished_processes_are_leftovers() {
        let running = |pid: u32| pid == 41;
        assert!(!is_leftover(
            "test.41.e2e.ab12cd34.echo.upload.events",
            running
        ));
        assert!(is_leftover(
            "test.42.e2e.ab12cd34.echo.upload.events",
            running
        ));
        assert!(is_leftover("test.e2e.ab12cd34.echo.upload.events", running));
        assert!(!is_leftover("echo.upload.events", running));
        assert!(!is_leftover("chaos.7.echo.upload.events", running));
        assert!(!is_leftover(
            &format!("test.{}.x.y.t", std::process::id()),
            is_running
        ));
    }
}
