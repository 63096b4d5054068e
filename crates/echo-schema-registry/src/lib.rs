//! A small, real, Confluent-compatible Schema Registry for echo.
//!
//! echo's events are Avro records framed in Confluent's wire format, so the pipeline needs
//! a registry on 127.0.0.1. Confluent's own registry, Karapace and Apicurio are all out of
//! reach without Docker or their package registries, so this crate implements the subset
//! of Confluent's REST API that clients use (registration, lookups by subject/version/id,
//! compatibility checks and config, deletes) with the same paths, JSON shapes, status
//! codes and error codes.
//!
//! Layout (one concept per module):
//! - [`config`]: command-line configuration.
//! - [`api`]: routes and handlers.
//! - [`auth`]: who may write (HTTP basic auth on every change).
//! - [`limits`]: the largest and deepest schema accepted.
//! - [`lock`]: one instance per data file.
//! - [`store`]: subjects, versions, global ids and their rules.
//! - [`persist`]: the atomic JSON data file.
//! - [`schema`]: parsing, normalising and identifying Avro schemas.
//! - [`compatibility`]: compatibility levels and checks.
//! - [`error`]: Confluent-style errors.
//!
//! Tests start it on an ephemeral port with [`Server::bind`] and [`Server::run`].

pub mod api;
pub mod auth;
pub mod compatibility;
pub mod config;
pub mod error;
pub mod limits;
pub mod lock;
pub mod persist;
pub mod schema;
pub mod store;

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

use crate::lock::DataFileLock;

pub use auth::Credentials;
pub use compatibility::CompatibilityLevel;
pub use config::Config;
pub use error::RegistryError;
pub use store::Store;

/// A registry bound to its socket but not yet serving.
///
/// Binding first lets callers (tests, launch scripts) learn the actual address, e.g. when
/// port 0 asked for any free port, before requests start flowing.
pub struct Server {
    /// The bound listening socket.
    listener: TcpListener,
    /// The application serving the loaded store.
    app: Router,
    /// The data file's lock, held until the server is dropped (none in memory).
    lock: Option<DataFileLock>,
}

impl Server {
    /// Locks the data file, loads (or creates) the store described by `config` and binds the
    /// listening socket.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let lock = config
            .data_file
            .as_deref()
            .map(DataFileLock::acquire)
            .transpose()?;
        let store = Store::open(config.data_file.as_deref(), config.compatibility)?;
        let listener = TcpListener::bind((config.host.as_str(), config.port))
            .await
            .map_err(|error| {
                anyhow::anyhow!("cannot listen on {}:{}: {error}", config.host, config.port)
            })?;
        Ok(Self {
            listener,
            app: api::router(store, config.writer.clone()),
            lock,
        })
    }

    /// The address actually listened on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves requests until `shutdown` completes, then finishes in-flight requests and
    /// returns. Every change is already on disk by then, so there is nothing to flush.
    pub async fn run<F>(self, shutdown: F) -> io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let served = axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown)
            .await;
        drop(self.lock);
        served
    }
}

/// Binds according to `config` and serves until `shutdown` completes.
pub async fn serve<F>(config: Config, shutdown: F) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let server = Server::bind(&config).await?;
    tracing::info!(
        address = %server.local_addr()?,
        data_file = ?config.data_file,
        compatibility = %config.compatibility,
        "echo-schema-registry listening"
    );
    server.run(shutdown).await?;
    tracing::info!("echo-schema-registry stopped");
    Ok(())
}
