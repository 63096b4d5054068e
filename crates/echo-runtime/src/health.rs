//! Whether the processors of this process are alive and ready, for `/healthz` and `/readyz`.
//! A processor is alive from its start until it stops; it is ready once its group has
//! assigned it partitions (possibly none: more members than partitions) and their state is
//! restored, and not ready again while a rebalance takes partitions away, or while it waits
//! for a dependency that does not answer ([`crate::dependency`]).

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

/// Every processor instance of the process, by `processor/instance`, and the dependency each
/// waits for, if it does.
#[derive(Default)]
pub struct Health {
    statuses: Mutex<BTreeMap<String, Status>>,
    waiting: Mutex<BTreeMap<String, &'static str>>,
}

impl Health {
    /// Records `status` of `instance`.
    pub fn set(&self, instance: &str, status: Status) {
        self.statuses
            .lock()
            .expect("health")
            .insert(instance.to_string(), status);
    }

    /// Records that `instance` waits for `dependency` (`None`: for nothing any more). Kept
    /// apart from its [`Status`], which rebalances set while it waits.
    pub fn wait_for(&self, instance: &str, dependency: Option<&'static str>) {
        let mut waiting = self.waiting.lock().expect("health");
        match dependency {
            Some(dependency) => waiting.insert(instance.to_string(), dependency),
            None => waiting.remove(instance),
        };
    }

    /// Every instance and its status.
    pub fn all(&self) -> BTreeMap<String, Status> {
        self.statuses.lock().expect("health").clone()
    }

    /// Every instance waiting for a dependency, and which.
    pub fn waiting(&self) -> BTreeMap<String, &'static str> {
        self.waiting.lock().expect("health").clone()
    }

    /// Alive: at least one instance, and every instance alive.
    pub fn alive(&self) -> bool {
        let all = self.all();
        !all.is_empty() && all.values().all(|s| s.alive)
    }

    /// Ready: at least one instance, every instance ready, and none waiting for a dependency.
    pub fn ready(&self) -> bool {
        let all = self.all();
        !all.is_empty() && all.values().all(|s| s.alive && s.ready) && self.waiting().is_empty()
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

    #[test]
    fn not_ready_while_waiting_for_a_dependency() {
        let h = Health::default();
        let up = Status {
            alive: true,
            ready: true,
        };
        h.set("validation/0", up);
        h.wait_for("validation/0", Some("object-store"));
        h.set("validation/0", up);
        assert!(h.alive() && !h.ready(), "a rebalance does not end the wait");
        h.wait_for("validation/0", None);
        assert!(h.ready());
    }
}
