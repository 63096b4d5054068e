//! Per-partition key-value state of a processor, changelogged to a compacted topic inside
//! the processing transaction and restored from it when a partition is assigned.
//!
//! Due work (timers, and the retirement of finished keys) is indexed by due time, so finding
//! it costs what is due, not the number of keys; a retired key is deleted and tombstoned in
//! the changelog, so state and restore time stay bounded by the keys still alive.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::io::Write as _;

use base64::Engine as _;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::envelope::SourcePosition;
use crate::handler::Timer;
use crate::headers::HeaderList;

/// Everything the runtime keeps for one key: the handler's state, the ids it has already
/// processed (dedup), its pending timers, and the records held back behind one in a retry
/// tier. One changelog record per key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(bound = "S: Serialize + DeserializeOwned")]
pub struct KeyState<S> {
    /// The handler's own state.
    pub state: S,
    /// Most recent processed event ids, oldest first, bounded by the dedup window.
    pub seen: VecDeque<String>,
    /// Pending timers by name.
    pub timers: BTreeMap<String, Timer>,
    /// Event id of this key's record now waiting in a retry tier: later records of the key
    /// wait behind it, so a key's records are handled in the order they were written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked: Option<String>,
    /// Records of this key that arrived while one was parked, oldest first.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub waiting: VecDeque<HeldRecord>,
    /// When the key, finished, is deleted (milliseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at_ms: Option<i64>,
    /// Event id of the record whose announcement (`Decider::announce`) is committed while its
    /// work is not: if the record is delivered again (after a crash, or back from a retry tier)
    /// it is not announced twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced: Option<String>,
    /// How many lives of the processor began the work announced for `announced` without
    /// ending it: counted and committed before each begins, so a record whose handling kills
    /// the process (out of memory, an abort) is known after the restart, and quarantined once
    /// it has done so `runtime.poison_after_failures` times.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub work_began: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl<S: Default> Default for KeyState<S> {
    fn default() -> Self {
        KeyState {
            state: S::default(),
            seen: VecDeque::new(),
            timers: BTreeMap::new(),
            parked: None,
            waiting: VecDeque::new(),
            retire_at_ms: None,
            announced: None,
            work_began: 0,
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

    /// Work of this key that comes due: its timers and its retirement.
    fn due_entries(&self) -> impl Iterator<Item = (i64, DueWork)> + '_ {
        let timers = self
            .timers
            .values()
            .map(|t| (t.due_at_ms, DueWork::Timer(t.name.clone())));
        let drain =
            (self.parked.is_none() && !self.waiting.is_empty()).then_some((0, DueWork::Drain));
        timers
            .chain(self.retire_at_ms.map(|at| (at, DueWork::Retire)))
            .chain(drain)
    }
}

/// A record of a key held back while an earlier record of the key is in a retry tier; kept
/// whole (in the key's changelogged state) so it is handled later exactly as it arrived.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeldRecord {
    /// Real name of the topic it was read from.
    pub topic: String,
    /// Where it was read (catalogue topic name, partition, offset).
    pub source: SourcePosition,
    /// Its key.
    #[serde(with = "base64_opt")]
    pub key: Option<Vec<u8>>,
    /// Its value.
    #[serde(with = "base64_opt")]
    pub value: Option<Vec<u8>>,
    /// Its headers, values as bytes (a client's may not be text).
    #[serde(with = "base64_headers")]
    pub headers: Vec<(String, Vec<u8>)>,
}

impl HeldRecord {
    /// The headers in the form the runtime reads.
    pub fn header_list(&self) -> HeaderList {
        HeaderList(self.headers.clone())
    }
}

/// Header values in the JSON changelog as base64.
mod base64_headers {
    use super::*;

    pub fn serialize<S: Serializer>(h: &[(String, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        let encoded: Vec<(&str, String)> = h
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    base64::engine::general_purpose::STANDARD.encode(v),
                )
            })
            .collect();
        encoded.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, Vec<u8>)>, D::Error> {
        Vec::<(String, String)>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| {
                let v = base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map_err(serde::de::Error::custom)?;
                Ok((k, v))
            })
            .collect()
    }
}

/// Bytes in the JSON changelog as base64 rather than arrays of numbers.
mod base64_opt {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

/// What comes due for a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DueWork {
    /// The timer of that name.
    Timer(String),
    /// The finished key is deleted.
    Retire,
    /// Records held behind a record that is no longer in a retry tier are handled.
    Drain,
}

impl DueWork {
    /// A name for logs and dead letters.
    pub fn name(&self) -> &str {
        match self {
            DueWork::Timer(name) => name,
            DueWork::Retire => "(retire)",
            DueWork::Drain => "(drain held records)",
        }
    }
}

/// One entry of the due-time index: `(due, partition, key, work)`.
type DueEntry = (i64, i32, String, DueWork);

/// The state of the partitions this instance owns, which keys changed in the open
/// transaction, and an index of due work.
#[derive(Debug)]
pub struct StateStore<S> {
    partitions: HashMap<i32, HashMap<String, KeyState<S>>>,
    /// Keys changed (or deleted) since the last changelog write.
    dirty: HashSet<(i32, String)>,
    /// Every pending timer, retirement and drain, by due time.
    due: BTreeSet<DueEntry>,
    /// How many of `due` are timers (the pending-timers metric, without a scan).
    timers: usize,
    /// What a key's state holds back (`Decider::backlog`), and the sum over every held key
    /// (the backlog metric, without a scan).
    weigh: fn(&S) -> usize,
    backlog: usize,
    /// Each key changed in the open transaction as it was before (`None`: absent), so an
    /// abort puts back committed state without re-reading the changelog.
    undo: HashMap<(i32, String), Option<KeyState<S>>>,
}

impl<S: Default + Clone + Serialize + DeserializeOwned> StateStore<S> {
    /// An empty store whose keys hold nothing back.
    pub fn new() -> StateStore<S> {
        StateStore::weighing(|_| 0)
    }

    /// An empty store that sums what each key's state holds back, by `weigh`.
    pub fn weighing(weigh: fn(&S) -> usize) -> StateStore<S> {
        StateStore {
            partitions: HashMap::new(),
            dirty: HashSet::new(),
            due: BTreeSet::new(),
            timers: 0,
            weigh,
            backlog: 0,
            undo: HashMap::new(),
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

    /// Keys held in all partitions.
    pub fn len(&self) -> usize {
        self.partitions.values().map(HashMap::len).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys of partition `p` and their state, for tools and benchmarks.
    pub fn keys_of(&self, p: i32) -> impl Iterator<Item = (&str, &KeyState<S>)> {
        self.partitions
            .get(&p)
            .into_iter()
            .flat_map(|keys| keys.iter().map(|(k, ks)| (k.as_str(), ks)))
    }

    /// Installs a restored partition.
    pub fn install(&mut self, p: i32, keys: HashMap<String, KeyState<S>>) {
        self.drop_partition(p);
        for (key, ks) in &keys {
            self.index(p, key, ks);
        }
        self.partitions.insert(p, keys);
    }

    /// Forgets a partition (revoked, or to be restored again after an abort).
    pub fn drop_partition(&mut self, p: i32) {
        if let Some(keys) = self.partitions.remove(&p) {
            for (key, ks) in &keys {
                self.unindex(p, key, ks);
            }
        }
        self.dirty.retain(|(dp, _)| *dp != p);
        self.undo.retain(|(up, _), _| *up != p);
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
        self.keep_undo(p, key);
        self.index(p, key, &state);
        let old = self
            .partitions
            .entry(p)
            .or_default()
            .insert(key.to_string(), state);
        if let Some(old) = old {
            self.backlog -= (self.weigh)(&old.state);
            self.unindex_stale(p, key, &old);
        }
        self.dirty.insert((p, key.to_string()));
    }

    /// Deletes a key; the changelog gets a tombstone.
    pub fn remove(&mut self, p: i32, key: &str) {
        self.keep_undo(p, key);
        if let Some(old) = self
            .partitions
            .get_mut(&p)
            .and_then(|keys| keys.remove(key))
        {
            self.unindex(p, key, &old);
        }
        self.dirty.insert((p, key.to_string()));
    }

    /// Changelog records for the keys changed since the last call: `(partition, key, json)`,
    /// `None` for a deleted key.
    pub fn take_dirty(&mut self) -> Vec<(i32, String, Option<Vec<u8>>)> {
        let dirty: Vec<_> = self.dirty.drain().collect();
        dirty
            .into_iter()
            .map(|(p, key)| {
                let json = self
                    .partitions
                    .get(&p)
                    .and_then(|keys| keys.get(&key))
                    .map(encode_changelog);
                (p, key, json)
            })
            .collect()
    }

    /// The open transaction committed: its changes are now the committed state.
    pub fn commit(&mut self) {
        self.undo.clear();
    }

    /// The open transaction was aborted: every key it changed is put back as it was.
    pub fn rollback(&mut self) {
        for ((p, key), before) in std::mem::take(&mut self.undo) {
            if let Some(now) = self
                .partitions
                .get_mut(&p)
                .and_then(|keys| keys.remove(&key))
            {
                self.unindex(p, &key, &now);
            }
            if let Some(before) = before {
                self.index(p, &key, &before);
                self.partitions.entry(p).or_default().insert(key, before);
            }
        }
        self.dirty.clear();
    }

    fn keep_undo(&mut self, p: i32, key: &str) {
        if !self.undo.contains_key(&(p, key.to_string())) {
            let before = self
                .partitions
                .get(&p)
                .and_then(|keys| keys.get(key))
                .cloned();
            self.undo.insert((p, key.to_string()), before);
        }
    }

    /// Work due at `now_ms`, earliest first: `(partition, key, work)`.
    pub fn due(&self, now_ms: i64) -> Vec<(i32, String, DueWork)> {
        self.due
            .range(..=(now_ms, i32::MAX, String::new(), DueWork::Retire))
            .filter(|(at, ..)| *at <= now_ms)
            .map(|(_, p, key, work)| (*p, key.clone(), work.clone()))
            .collect()
    }

    /// Timers due at `now_ms`, earliest first: `(partition, key, timer)`.
    pub fn due_timers(&self, now_ms: i64) -> Vec<(i32, String, Timer)> {
        self.due(now_ms)
            .into_iter()
            .filter_map(|(p, key, work)| match work {
                DueWork::Timer(name) => {
                    let timer = self.partitions.get(&p)?.get(&key)?.timers.get(&name)?;
                    Some((p, key, timer.clone()))
                }
                DueWork::Retire | DueWork::Drain => None,
            })
            .collect()
    }

    /// Pending timers in the owned partitions.
    pub fn pending_timers(&self) -> usize {
        self.timers
    }

    /// What the owned keys hold back, summed.
    pub fn backlog(&self) -> usize {
        self.backlog
    }

    fn index(&mut self, p: i32, key: &str, ks: &KeyState<S>) {
        self.backlog += (self.weigh)(&ks.state);
        for (at, work) in ks.due_entries() {
            let timer = matches!(work, DueWork::Timer(_));
            if self.due.insert((at, p, key.to_string(), work)) && timer {
                self.timers += 1;
            }
        }
    }

    fn unindex(&mut self, p: i32, key: &str, ks: &KeyState<S>) {
        self.backlog -= (self.weigh)(&ks.state);
        for (at, work) in ks.due_entries() {
            self.unindex_entry((at, p, key.to_string(), work));
        }
    }

    fn unindex_entry(&mut self, entry: DueEntry) {
        let timer = matches!(entry.3, DueWork::Timer(_));
        if self.due.remove(&entry) && timer {
            self.timers -= 1;
        }
    }

    /// Removes the index entries of `old` that the key's current state no longer has.
    fn unindex_stale(&mut self, p: i32, key: &str, old: &KeyState<S>) {
        let current: HashSet<(i64, DueWork)> = self
            .partitions
            .get(&p)
            .and_then(|keys| keys.get(key))
            .map(|ks| ks.due_entries().collect())
            .unwrap_or_default();
        for (at, work) in old.due_entries() {
            if !current.contains(&(at, work.clone())) {
                self.unindex_entry((at, p, key.to_string(), work));
            }
        }
    }
}

impl<S: Default + Clone + Serialize + DeserializeOwned> Default for StateStore<S> {
    fn default() -> Self {
        StateStore::new()
    }
}

/// A changelog value whose JSON is larger than this is written deflated (zlib). A
/// transcription job's state grows with every word heard (~17 KB per minute of speech, every
/// word timed): at 3 hours, the longest upload validation accepts, ~3 MB of JSON, three times
/// what a record may hold; deflated ~0.7 MB. Smaller states stay plain JSON, readable with
/// any Kafka tool.
pub const DEFLATE_ABOVE_BYTES: usize = 64 * 1024;

/// Encodes one changelog record value: the key's state as JSON, deflated when large.
pub fn encode_changelog<S: Serialize + DeserializeOwned>(state: &KeyState<S>) -> Vec<u8> {
    let json = serde_json::to_vec(state).expect("state serializes");
    if json.len() <= DEFLATE_ABOVE_BYTES {
        return json;
    }
    let mut deflated = ZlibEncoder::new(Vec::with_capacity(json.len() / 4), Compression::default());
    deflated.write_all(&json).expect("deflating into memory");
    deflated.finish().expect("deflating into memory")
}

/// Decodes one changelog record value, plain JSON (an object, so its first byte is `{`) or
/// deflated (a zlib stream, whose first byte never is).
pub fn decode_changelog<S: Serialize + DeserializeOwned>(
    bytes: &[u8],
) -> serde_json::Result<KeyState<S>> {
    if bytes.first() == Some(&b'{') {
        serde_json::from_slice(bytes)
    } else {
        serde_json::from_reader(ZlibDecoder::new(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use echo_catalog::record::EventMetadata;

    fn timer(name: &str, due: i64) -> Timer {
        Timer {
            name: name.into(),
            due_at_ms: due,
            payload: String::new(),
            scheduled_by: EventMetadata::new("e", "r", "t", 0),
        }
    }

    fn with_timers(timers: &[(&str, i64)]) -> KeyState<u32> {
        KeyState {
            timers: timers
                .iter()
                .map(|(n, d)| (n.to_string(), timer(n, *d)))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_small_state_is_changelogged_as_plain_json() {
        let state = KeyState {
            state: "a few words".to_string(),
            ..Default::default()
        };
        let bytes = encode_changelog(&state);
        assert_eq!(bytes, serde_json::to_vec(&state).unwrap());
        assert_eq!(decode_changelog::<String>(&bytes).unwrap(), state);
    }

    #[test]
    fn a_large_state_is_changelogged_deflated_and_restored_whole() {
        // Timed words, as a transcription job's state holds them: repetitive JSON.
        let words: Vec<String> = (0..40_000)
            .map(|i| format!(r#"{{"start_ms":{},"text":"word{}"}}"#, i * 350, i % 500))
            .collect();
        let state = KeyState {
            state: words,
            ..Default::default()
        };
        let json = serde_json::to_vec(&state).unwrap();
        let bytes = encode_changelog(&state);
        assert!(json.len() > DEFLATE_ABOVE_BYTES);
        assert!(
            bytes.len() * 3 < json.len(),
            "{} bytes of JSON written as {}",
            json.len(),
            bytes.len()
        );
        assert_eq!(decode_changelog::<Vec<String>>(&bytes).unwrap(), state);
    }

    #[test]
    fn a_corrupt_deflated_value_is_an_error_not_a_panic() {
        assert!(decode_changelog::<String>(&[0x78, 0x9c, 1, 2, 3]).is_err());
    }

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
        assert_eq!(
            decode_changelog::<u32>(dirty[0].2.as_deref().unwrap()).unwrap(),
            ks
        );
        assert!(store.take_dirty().is_empty());
    }

    #[test]
    fn a_removed_key_is_a_tombstone_and_leaves_no_due_work() {
        let mut store = StateStore::<u32>::new();
        store.put(1, "k", with_timers(&[("t", 5)]));
        store.take_dirty();
        store.remove(1, "k");
        assert_eq!(store.take_dirty(), vec![(1, "k".to_string(), None)]);
        assert!(store.due(100).is_empty());
        assert_eq!(store.pending_timers(), 0);
        assert!(store.is_empty());
    }

    #[test]
    fn the_backlog_follows_every_change_rollback_and_revocation() {
        let mut store = StateStore::<u32>::weighing(|n| *n as usize);
        let held = |n: u32| KeyState {
            state: n,
            ..Default::default()
        };
        store.put(0, "a", held(3));
        store.put(1, "b", held(4));
        store.commit();
        assert_eq!(store.backlog(), 7);
        store.put(0, "a", held(1));
        store.remove(1, "b");
        assert_eq!(store.backlog(), 1);
        store.rollback();
        assert_eq!(store.backlog(), 7, "an abort puts the backlog back");
        store.drop_partition(1);
        assert_eq!(store.backlog(), 3);
        store.install(1, HashMap::from([("b".to_string(), held(5))]));
        assert_eq!(store.backlog(), 8);
    }

    #[test]
    fn due_work_is_indexed_and_follows_every_change() {
        let mut store = StateStore::<u32>::new();
        store.put(0, "a", with_timers(&[("x", 10), ("y", 30)]));
        store.put(1, "b", with_timers(&[("x", 20)]));
        let names = |due: Vec<(i32, String, Timer)>| {
            due.into_iter()
                .map(|(p, k, t)| format!("{p}/{k}/{}", t.name))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(store.due_timers(20)), ["0/a/x", "1/b/x"]);
        assert_eq!(store.pending_timers(), 3);
        // Moving a timer moves its entry; the old one is gone.
        store.put(0, "a", with_timers(&[("x", 40), ("y", 30)]));
        assert_eq!(names(store.due_timers(35)), ["1/b/x", "0/a/y"]);
        assert_eq!(store.pending_timers(), 3);
        let mut retiring = with_timers(&[]);
        retiring.retire_at_ms = Some(25);
        store.put(1, "b", retiring);
        assert_eq!(store.pending_timers(), 2, "a retirement is no timer");
        assert_eq!(
            store.due(35),
            vec![
                (1, "b".to_string(), DueWork::Retire),
                (0, "a".to_string(), DueWork::Timer("y".into()))
            ]
        );
        store.drop_partition(0);
        assert_eq!(store.due(100), vec![(1, "b".to_string(), DueWork::Retire)]);
        let mut restored = HashMap::new();
        restored.insert("a".to_string(), with_timers(&[("z", 50)]));
        store.install(0, restored);
        assert_eq!(names(store.due_timers(100)), ["0/a/z"]);
    }

    #[test]
    fn rollback_puts_back_what_the_open_transaction_changed() {
        let mut store = StateStore::<u32>::new();
        store.put(0, "kept", with_timers(&[("x", 10)]));
        store.put(0, "gone", KeyState::default());
        store.commit();
        store.put(0, "kept", with_timers(&[("x", 99)]));
        store.remove(0, "gone");
        store.put(0, "new", KeyState::default());
        store.rollback();
        assert_eq!(store.get(0, "kept").timers["x"].due_at_ms, 10);
        assert_eq!(store.len(), 2);
        assert!(store.take_dirty().is_empty());
        assert_eq!(store.due(50).len(), 1);
    }

    #[test]
    fn held_records_wait_while_parked_and_drain_after() {
        let mut store = StateStore::<u32>::new();
        let mut ks = KeyState::<u32> {
            parked: Some("e1".into()),
            waiting: VecDeque::from([held()]),
            ..Default::default()
        };
        store.put(0, "k", ks.clone());
        assert!(store.due(i64::MAX).is_empty());
        ks.parked = None;
        store.put(0, "k", ks);
        assert_eq!(store.due(0), vec![(0, "k".to_string(), DueWork::Drain)]);
    }

    fn held() -> HeldRecord {
        HeldRecord {
            topic: "p.echo.upload.requests".into(),
            source: SourcePosition {
                topic: "echo.upload.requests".into(),
                partition: 2,
                offset: 9,
            },
            key: Some(b"k".to_vec()),
            value: Some(vec![0, 1, 2, 255]),
            headers: vec![("ce_type".into(), vec![0xff, b'x'])],
        }
    }

    #[test]
    fn held_records_round_trip_through_the_changelog() {
        let ks = KeyState::<u32> {
            parked: Some("e1".into()),
            waiting: VecDeque::from([held()]),
            ..Default::default()
        };
        let json = encode_changelog(&ks);
        assert!(String::from_utf8_lossy(&json).contains("\"AAEC/w==\""));
        assert_eq!(decode_changelog::<u32>(&json).unwrap(), ks);
        // A changelog record written before these fields existed still reads.
        let old = br#"{"state":3,"seen":["a"],"timers":{}}"#;
        assert_eq!(decode_changelog::<u32>(old).unwrap().state, 3);
    }
}
