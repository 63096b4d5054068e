//! The HTTP endpoints of a process running processors: `/metrics` (Prometheus text format),
//! `/healthz` (alive) and `/readyz` (assigned and restored), for Prometheus and Kubernetes.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::health::health;
use crate::metrics::metrics;

/// Where the endpoints listen (the `[endpoints]` section, `ECHO_ENDPOINTS__LISTEN`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointsConfig {
    /// `address:port`. Local by default; a pod sets `0.0.0.0:9464` so Prometheus and the
    /// kubelet reach it. Port 0 takes any free port (logged). When the port is taken (a
    /// second process on one machine), the process takes a free port instead and says so.
    pub listen: String,
}

impl Default for EndpointsConfig {
    fn default() -> Self {
        EndpointsConfig {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

/// Binds the endpoints and serves them in the background; the address bound.
pub async fn serve(config: &EndpointsConfig) -> Result<SocketAddr> {
    let listener = match tokio::net::TcpListener::bind(&config.listen).await {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let host = config.listen.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
            tracing::warn!(listen = %config.listen, "port in use (another process on this machine?); taking a free one");
            tokio::net::TcpListener::bind((host, 0)).await
        }
        bound => bound,
    }
    .with_context(|| format!("binding the metrics and health endpoints on {}", config.listen))?;
    let address = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(|| async { metrics().encode() }))
        .route("/healthz", get(|| async { answer(health().alive()) }))
        .route("/readyz", get(|| async { answer(health().ready()) }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics and health endpoints stopped");
        }
    });
    tracing::info!(%address, "metrics on /metrics, health on /healthz and /readyz");
    Ok(address)
}

/// 200 with the instances' states (and what they wait for) when `ok`, 503 otherwise.
fn answer(ok: bool) -> (StatusCode, String) {
    let waiting = health().waiting();
    let states: String = health()
        .all()
        .iter()
        .map(|(instance, s)| {
            let wait = waiting
                .get(instance)
                .map(|d| format!(" waiting_for={d}"))
                .unwrap_or_default();
            format!("{instance} alive={} ready={}{wait}\n", s.alive, s.ready)
        })
        .collect();
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, states)
}
