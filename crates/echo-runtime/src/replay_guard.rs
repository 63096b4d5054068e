//! The net under every other rule: whatever keeps failing on replay is quarantined, so no
//! record and no future bug can hold a partition in an abort-and-replay loop.
//!
//! A transaction that fails for a reason that may lie in its input (anything but broker and
//! network trouble) is replayed one unit of work at a time, so the culprit stands alone; a
//! unit that then fails [`ReplayGuard::new`]'s `limit` times on its own is poison: the
//! runtime moves it to the DLQ (due work: drops it, with a dead letter) and goes on. Each
//! unit's failures are counted until that unit commits or is quarantined, whatever else
//! commits in between. Pure bookkeeping; the driver asks and tells.

use std::collections::HashMap;

/// One unit of work of a transaction: a record, or due work of a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Unit {
    /// A consumed record, by its position.
    Record {
        /// Real topic name.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
    },
    /// Work of a key that came due (a timer, a drain of held records, a retirement).
    Due {
        /// State partition.
        partition: i32,
        /// The key it belongs to.
        key: String,
        /// What is due (a timer's name).
        work: String,
    },
}

/// Remembers the failures of the last transactions.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    /// Failures on its own after which a unit is poison.
    limit: u32,
    /// Units still to be run one per transaction, after a failed transaction of several.
    isolate: usize,
    /// Units that failed on their own: how often, and the last reason.
    suspects: HashMap<Unit, (u32, String)>,
}

impl ReplayGuard {
    /// A guard that quarantines a unit after `limit` failures on its own (at least one).
    pub fn new(limit: u32) -> ReplayGuard {
        ReplayGuard {
            limit: limit.max(1),
            isolate: 0,
            suspects: HashMap::new(),
        }
    }

    /// Whether the next transaction must carry a single unit.
    pub fn isolating(&self) -> bool {
        self.isolate > 0 || !self.suspects.is_empty()
    }

    /// A transaction of `units` failed for a reason that may lie in them.
    pub fn failed(&mut self, units: &[Unit], reason: &str) {
        match units {
            [] => {}
            [unit] => {
                let entry = self
                    .suspects
                    .entry(unit.clone())
                    .or_insert((0, String::new()));
                entry.0 += 1;
                entry.1 = reason.to_string();
            }
            several => self.isolate = self.isolate.max(several.len()),
        }
    }

    /// A transaction of `units` committed.
    pub fn committed(&mut self, units: &[Unit]) {
        self.isolate = self.isolate.saturating_sub(units.len());
        for unit in units {
            self.suspects.remove(unit);
        }
    }

    /// How often `unit` failed on its own and why, if that makes it poison.
    pub fn poison(&self, unit: &Unit) -> Option<(u32, &str)> {
        match self.suspects.get(unit) {
            Some((n, reason)) if *n >= self.limit => Some((*n, reason)),
            _ => None,
        }
    }

    /// The partitions were reassigned: units read again elsewhere are not this instance's
    /// to count, and a suspect that never comes back must not keep it isolating forever.
    pub fn forget(&mut self) {
        self.isolate = 0;
        self.suspects.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64) -> Unit {
        Unit::Record {
            topic: "t".into(),
            partition: 0,
            offset,
        }
    }

    #[test]
    fn a_failed_batch_is_replayed_one_unit_at_a_time() {
        let mut g = ReplayGuard::new(3);
        assert!(!g.isolating());
        g.failed(&[record(0), record(1), record(2)], "boom");
        assert!(g.isolating());
        assert!(g.poison(&record(0)).is_none());
        g.committed(&[record(0)]);
        g.committed(&[record(1)]);
        assert!(g.isolating());
        g.committed(&[record(2)]);
        assert!(!g.isolating());
    }

    #[test]
    fn a_lone_unit_failing_limit_times_is_poison_whatever_commits_between() {
        let mut g = ReplayGuard::new(3);
        g.failed(&[record(0), record(1)], "boom");
        g.committed(&[record(0)]);
        g.failed(&[record(1)], "first");
        // Another partition's record commits in between: the count stays.
        g.committed(&[record(7)]);
        g.failed(&[record(1)], "second");
        assert!(g.poison(&record(1)).is_none());
        g.failed(&[record(1)], "third");
        assert_eq!(g.poison(&record(1)), Some((3, "third")));
        assert!(g.poison(&record(7)).is_none());
        g.committed(&[record(1)]);
        assert!(g.poison(&record(1)).is_none());
        assert!(!g.isolating());
    }

    #[test]
    fn a_rebalance_forgets_the_suspects() {
        let mut g = ReplayGuard::new(2);
        g.failed(&[record(1)], "x");
        g.failed(&[record(1)], "x");
        assert!(g.poison(&record(1)).is_some());
        g.forget();
        assert!(g.poison(&record(1)).is_none());
        assert!(!g.isolating());
    }
}
