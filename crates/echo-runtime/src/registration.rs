//! How a processor is found and started by name: each processor declares one
//! [`Registration`] beside its code, and the binary keeps them in one table (`echoctl run`,
//! `echoctl processors`, the topology and the Kubernetes check read it).

use std::future::Future;
use std::pin::Pin;

use anyhow::Result;

use crate::config::EchoConfig;
use crate::driver::RunOptions;

/// What running a processor returns: it ends on shutdown, or with the error that stopped it.
pub type Running = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// One processor as the binary knows it.
#[derive(Debug, Clone, Copy)]
pub struct Registration {
    /// Its name: its entry in topics/topics.toml and its consumer group.
    pub name: &'static str,
    /// One line for `echoctl run --help` and `echoctl processors`.
    pub summary: &'static str,
    /// How many of it `run all` starts.
    pub instances: Instances,
    /// Builds it from its section of the configuration (which may also override runtime
    /// settings, such as how many records one transaction takes) and runs it until shutdown.
    pub start: fn(EchoConfig, RunOptions) -> Running,
}

/// How many instances of a processor `echoctl run all` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instances {
    /// One.
    One,
    /// The pool that does the heavy work: as many as there are cores to spare
    /// (`run all --chunk-workers N`).
    Pool,
    /// One beside the pool, none without it (`--chunk-workers 0`): it shares the pool's work.
    BesideThePool,
}
