//! Graceful shutdown: one flag, set by SIGTERM or ctrl-c, checked by every loop between
//! transactions so an open transaction is finished (or aborted) before the process leaves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cheap, cloneable "please stop" flag.
#[derive(Clone, Default, Debug)]
pub struct Shutdown {
    requested: Arc<AtomicBool>,
}

impl Shutdown {
    /// A flag nobody has raised yet.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Raises the flag.
    pub fn trigger(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Whether the flag is raised.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Raises the flag on SIGTERM or ctrl-c (spawned on the current tokio runtime).
    pub fn on_signals(&self) {
        let flag = self.clone();
        tokio::spawn(async move {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("installing SIGTERM handler");
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            #[cfg(not(unix))]
            let _ = ctrl_c.await;
            tracing::info!("shutdown requested");
            flag.trigger();
        });
    }
}
