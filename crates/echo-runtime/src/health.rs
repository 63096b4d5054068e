//! Whether the processors of this process are alive and ready, for `/healthz` and `/readyz`.
//! A processor is alive from its start until it stops; it is ready once its group has
//! assigned it partitions (possibly none: more members than partitions) and their state is
//! restored, and not ready again while a rebalance takes partitions away.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// Where one processor instance stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// Its loop is running.
    pub alive: bool,
    /// Assigned and restored.
    pub ready: bool,
}

/// Every processor instance of the process, by `processor/instance`.
#[derive(Default)]
pub struct Health(Mutex<BTreeMap<String, Status>>);

impl Health {
    /// Records `status` of `instance`.
    pub fn set(&self, instance: &str, status: Status) {
        self.0
            .lock()
            .expect("health")
            .insert(instance.to_string(), status);
    }

    /// Every instance and its status.
    pub fn all(&self) -> BTreeMap<String, Status> {
        self.0.lock().expect("health").clone()
    }

    /// Alive: at least one instance, and every instance alive.
    pub fn alive(&self) -> bool {
        let all = self.all();
        !all.is_empty() && all.values().all(|s| s.alive)
    }

    /// Ready: at least one instance, and every instance ready.
    pub fn ready(&self) -> bool {
        let all = self.all();
        !all.is_empty() && all.values().all(|s| s.alive && s.ready)
    }
}

/// The process's health.
pub fn health() -> &'static Health {
    static HEALTH: OnceLock<Health> = OnceLock::new();
    HEALTH.get_or_init(Health::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_instance_is() {
        let h = Health::default();
        assert!(!h.alive() && !h.ready(), "nothing started yet");
        h.set(
            "upload/0",
            Status {
                alive: true,
                ready: true,
            },
        );
        h.set(
            "chunk-worker/0-w0",
            Status {
                alive: true,
                ready: false,
            },
        );
        assert!(h.alive() && !h.ready());
        h.set(
            "chunk-worker/0-w0",
            Status {
                alive: true,
                ready: true,
            },
        );
        assert!(h.ready());
        h.set(
            "upload/0",
            Status {
                alive: false,
                ready: true,
            },
        );
        assert!(!h.alive() && !h.ready());
    }
}
