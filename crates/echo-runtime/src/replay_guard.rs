//! The net under every other rule: whatever keeps failing on replay is quarantined, so no
//! record and no future bug can hold a partition in an abort-and-replay loop.
//!
//! A transaction that fails for a reason that may lie in its input (anything but broker and
//! network trouble) is replayed one unit of work at a time, so the culprit stands alone; a
//! unit that then fails [`ReplayGuard::limit`] times in a row is poison: the runtime moves it
//! to the DLQ (due work: drops it, with a dead letter) and goes on. Pure bookkeeping; the
//! driver asks and tells.

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
    /// Consecutive failures after which a lone unit is poison.
    limit: u32,
    /// Units still to be run one per transaction, after a failed transaction of several.
    isolate: usize,
    /// The lone unit that failed last, how often in a row, and the last reason.
    suspect: Option<(Unit, u32, String)>,
}

impl ReplayGuard {
    /// A guard that quarantines a unit after `limit` failures in a row (at least one).
    pub fn new(limit: u32) -> ReplayGuard {
        ReplayGuard {
            limit: limit.max(1),
            isolate: 0,
            suspect: None,
        }
    }

    /// Whether the next transaction must carry a single unit.
    pub fn isolating(&self) -> bool {
        self.isolate > 0 || self.suspect.is_some()
    }

    /// A transaction of `units` failed for a reason that may lie in them.
    pub fn failed(&mut self, units: &[Unit], reason: &str) {
        match units {
            [] => {}
            [unit] => {
                let count = match &self.suspect {
                    Some((u, n, _)) if u == unit => n + 1,
                    _ => 1,
                };
                self.suspect = Some((unit.clone(), count, reason.to_string()));
            }
            several => {
                self.isolate = self.isolate.max(several.len());
                self.suspect = None;
            }
        }
    }

    /// A transaction of `units` committed.
    pub fn committed(&mut self, units: usize) {
        self.isolate = self.isolate.saturating_sub(units);
        self.suspect = None;
    }

    /// The unit to quarantine instead of running it again, with how often it failed and why.
    pub fn poison(&self) -> Option<(&Unit, u32, &str)> {
        match &self.suspect {
            Some((unit, n, reason)) if *n >= self.limit => Some((unit, *n, reason)),
            _ => None,
        }
    }

    /// The poison unit was quarantined (its transaction committed).
    pub fn quarantined(&mut self) {
        self.committed(1);
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
        assert!(g.poison().is_none());
        g.committed(1);
        g.committed(1);
        assert!(g.isolating());
        g.committed(1);
        assert!(!g.isolating());
    }

    #[test]
    fn a_lone_unit_failing_limit_times_in_a_row_is_poison() {
        let mut g = ReplayGuard::new(3);
        g.failed(&[record(0), record(1)], "boom");
        g.committed(1);
        g.failed(&[record(1)], "first");
        g.failed(&[record(1)], "second");
        assert!(g.poison().is_none());
        g.failed(&[record(1)], "third");
        let (unit, count, reason) = g.poison().unwrap();
        assert_eq!((unit, count, reason), (&record(1), 3, "third"));
        g.quarantined();
        assert!(g.poison().is_none());
        assert!(!g.isolating());
    }

    #[test]
    fn another_unit_failing_starts_the_count_again() {
        let mut g = ReplayGuard::new(2);
        g.failed(&[record(1)], "x");
        g.failed(&[record(2)], "x");
        assert!(g.poison().is_none());
        g.failed(&[record(2)], "x");
        assert_eq!(g.poison().unwrap().0, &record(2));
    }

    #[test]
    fn a_commit_in_between_clears_the_suspicion() {
        let mut g = ReplayGuard::new(2);
        g.failed(&[record(1)], "x");
        g.committed(1);
        g.failed(&[record(1)], "x");
        assert!(g.poison().is_none());
    }
}
