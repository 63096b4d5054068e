//! Per-partition key-value state of a processor, changelogged to a compacted topic inside
//! the processing transaction and restored from it when a partition is assigned.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::handler::Timer;

/// Everything the runtime keeps for one key: the handler's state, the ids it has already
/// processed (dedup), and its pending timers. One changelog record per key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(bound = "S: Serialize + DeserializeOwned")]
pub struct KeyState<S> {
    /// The handler's own state.
    pub state: S,
    /// Most recent processed event ids, oldest first, bounded by the dedup window.
    pub seen: VecDeque<String>,
    /// Pending timers by name.
    pub timers: BTreeMap<String, Timer>,
}

impl<S: Default> Default for KeyState<S> {
    fn default() -> Self {
        KeyState {
            state: S::default(),
            seen: VecDeque::new(),
            timers: BTreeMap::new(),
        }
    }
}

impl<S> KeyState<S> {
    /// Whether `event_id` was processed already.
    pub fn has_seen(&self, event_id: &str) -> bool {
        self.seen.iter().any(|s| s == event_id)
    }

    /// Remembers `event_id`, forgetting the oldest beyond `window`.
    pub fn remember(&mut self, event_id: &str, window: usize) {
        self.seen.push_back(event_id.to_string());
        while self.seen.len() > window {
            self.seen.pop_front();
        }
    }
}

/// The state of the partitions this instance owns, and which keys changed in the open
/// transaction.
#[derive(Debug)]
pub struct StateStore<S> {
    partitions: HashMap<i32, HashMap<String, KeyState<S>>>,
    dirty: HashSet<(i32, String)>,
}

impl<S: Default + Clone + Serialize + DeserializeOwned> StateStore<S> {
    /// An empty store.
    pub fn new() -> StateStore<S> {
        StateStore {
            partitions: HashMap::new(),
            dirty: HashSet::new(),
        }
    }

    /// Whether partition `p` has been restored.
    pub fn owns(&self, p: i32) -> bool {
        self.partitions.contains_key(&p)
    }

    /// Partitions currently held.
    pub fn partitions(&self) -> Vec<i32> {
        self.partitions.keys().copied().collect()
    }

    /// Installs a restored partition.
    pub fn install(&mut self, p: i32, keys: HashMap<String, KeyState<S>>) {
        self.partitions.insert(p, keys);
    }

    /// Forgets a partition (revoked, or to be restored again after an abort).
    pub fn drop_partition(&mut self, p: i32) {
        self.partitions.remove(&p);
        self.dirty.retain(|(dp, _)| *dp != p);
    }

    /// The state of a key (default if new).
    pub fn get(&self, p: i32, key: &str) -> KeyState<S> {
        self.partitions
            .get(&p)
            .and_then(|keys| keys.get(key))
            .cloned()
            .unwrap_or_default()
    }

    /// Replaces the state of a key and marks it for the changelog.
    pub fn put(&mut self, p: i32, key: &str, state: KeyState<S>) {
        self.partitions
            .entry(p)
            .or_default()
            .insert(key.to_string(), state);
        self.dirty.insert((p, key.to_string()));
    }

    /// Changelog records for the keys changed since the last call: `(partition, key, json)`.
    pub fn take_dirty(&mut self) -> Vec<(i32, String, Vec<u8>)> {
        let dirty: Vec<_> = self.dirty.drain().collect();
        dirty
            .into_iter()
            .filter_map(|(p, key)| {
                let state = self.partitions.get(&p)?.get(&key)?;
                let json = serde_json::to_vec(state).expect("state serializes");
                Some((p, key, json))
            })
            .collect()
    }

    /// Timers due at `now_ms`, earliest first: `(partition, key, timer)`.
    pub fn due_timers(&self, now_ms: i64) -> Vec<(i32, String, Timer)> {
        let mut due: Vec<_> = self
            .partitions
            .iter()
            .flat_map(|(p, keys)| {
                keys.iter().flat_map(move |(key, ks)| {
                    ks.timers
                        .values()
                        .filter(move |t| t.due_at_ms <= now_ms)
                        .map(move |t| (*p, key.clone(), t.clone()))
                })
            })
            .collect();
        due.sort_by_key(|(_, _, t)| t.due_at_ms);
        due
    }
}

impl<S: Default + Clone + Serialize + DeserializeOwned> Default for StateStore<S> {
    fn default() -> Self {
        StateStore::new()
    }
}

/// Decodes one changelog record value.
pub fn decode_changelog<S: Serialize + DeserializeOwned>(
    bytes: &[u8],
) -> serde_json::Result<KeyState<S>> {
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_window_forgets_the_oldest() {
        let mut ks = KeyState::<u32>::default();
        for id in ["a", "b", "c"] {
            ks.remember(id, 2);
        }
        assert!(!ks.has_seen("a"));
        assert!(ks.has_seen("b") && ks.has_seen("c"));
    }

    #[test]
    fn dirty_keys_are_emitted_once_and_round_trip() {
        let mut store = StateStore::<u32>::new();
        let ks = KeyState::<u32> {
            state: 7,
            ..Default::default()
        };
        store.put(3, "k", ks.clone());
        let dirty = store.take_dirty();
        assert_eq!(dirty.len(), 1);
        assert_eq!(decode_changelog::<u32>(&dirty[0].2).unwrap(), ks);
        assert!(store.take_dirty().is_empty());
    }
}
