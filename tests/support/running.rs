//! Processors run by tests: in this process until stopped, or as a child process (to be
//! killed or frozen) whose configuration comes from the test that spawned it.

use std::process::{Child, Command, Stdio};

use echo_runtime::{EchoConfig, Processor, RunOptions, Shutdown};

use crate::TestEnv;

/// Tells a child test process which environment (topic prefix) its processor runs in.
const CHILD_PREFIX: &str = "ECHO_TEST_CHILD_PREFIX";

/// A processor running in this process until `stop`, or until dropped: a test that fails
/// before it stops its processor tells it to stop as it unwinds, or the test's runtime would
/// wait for the processor's blocking loop for ever and the failure would never be reported.
pub struct Running {
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Starts `processor` as instance `instance` (its transactional id) on `config`.
pub fn start<P: Processor>(config: &EchoConfig, processor: P, instance: &str) -> Running {
    let shutdown = Shutdown::new();
    let options = RunOptions {
        instance: instance.into(),
        shutdown: shutdown.clone(),
    };
    let task = tokio::spawn(echo_runtime::run(config.clone(), processor, options));
    Running {
        shutdown,
        task: Some(task),
    }
}

impl Running {
    /// Stops it; fails the test if it had stopped on its own (an error, or fenced).
    pub async fn stop(mut self) {
        let task = self.task.take().expect("stopped once");
        assert!(
            !task.is_finished(),
            "the processor stopped on its own: {:?}",
            task.await
        );
        self.shutdown.trigger();
        task.await.unwrap().unwrap();
    }
}

/// Runs the test binary's ignored test `entry` as a child process in `env`, with `vars`.
pub fn spawn_child(env: &TestEnv, entry: &str, vars: &[(&str, &str)]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([entry, "--exact", "--ignored", "--nocapture"])
        .env(CHILD_PREFIX, &env.config.kafka.topic_prefix)
        .envs(vars.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// In a child spawned by [`spawn_child`], the configuration of its test's environment;
/// `None` when the entry point is run on its own.
pub fn child_config() -> Option<EchoConfig> {
    let prefix = std::env::var(CHILD_PREFIX).ok()?;
    let mut config = EchoConfig::load(None).unwrap();
    config.kafka.topic_prefix = prefix;
    Some(config)
}

/// Sends signal `name` (`STOP`, `CONT`, …) to `child`: a frozen process is how a hung
/// server or a partitioned network looks to its clients.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {}", child.id());
}
