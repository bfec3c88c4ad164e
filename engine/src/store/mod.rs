//! The in-memory data: series name -> series, series: key -> [`Counter`].
//!
//! Locking rule: the series map lock is always taken before a series lock and
//! never while holding one, so the two levels cannot deadlock.

mod counter;

use std::sync::Arc;

use indexmap::IndexMap;
use parking_lot::RwLock;

pub use counter::{Counter, Overflow};

pub type Hasher = hashbrown::DefaultHashBuilder;

/// A series' counters in key insertion order (Karma 1.0 lists `tree.series`
/// per shard in that order).
pub type KeyMap = IndexMap<u64, Counter, Hasher>;

/// The branch count Karma 1.0 reports and writes into snapshots.
pub const BRANCHES: u64 = 9;

#[derive(Debug, Default)]
pub struct SeriesData {
    pub counters: KeyMap,
    /// Set when the series was dropped while someone held a reference, so a
    /// late writer retries against the live map instead of writing into a
    /// ghost.
    pub dropped: bool,
}

impl SeriesData {
    pub fn bucket_count(&self) -> usize {
        self.counters.values().map(Counter::bucket_count).sum()
    }

    /// Sum of every counter total, saturating at u64::MAX (series-wide sums
    /// can exceed u64; Karma 1.0 failed with `Arithmetic overflow`).
    pub fn total(&self) -> u64 {
        self.counters.values().fold(0u64, |acc, c| acc.saturating_add(c.total()))
    }

    /// Removes empty counters and recomputes totals (`series.compact`).
    pub fn compact(&mut self) {
        self.counters.retain(|_, c| {
            c.compact();
            c.total() != 0
        });
    }

    /// Keys grouped by `key % 9` then insertion order: the order of
    /// `tree.series` and of snapshots.
    pub fn keys_in_branch_order(&self) -> Vec<u64> {
        let mut keys: Vec<u64> = self.counters.keys().copied().collect();
        keys.sort_by_key(|k| k % BRANCHES);
        keys
    }
}

#[derive(Debug)]
pub struct Series {
    name: String,
    pub data: RwLock<SeriesData>,
}

impl Series {
    fn new(name: &str) -> Series {
        Series { name: name.to_owned(), data: RwLock::new(SeriesData::default()) }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Every series, in creation order.
#[derive(Debug, Default)]
pub struct Store {
    map: RwLock<IndexMap<String, Arc<Series>, Hasher>>,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Series>> {
        self.map.read().get(name).cloned()
    }

    /// Runs `f` on the series without cloning its `Arc` (the hot path).
    #[inline]
    pub fn with<R>(&self, name: &str, f: impl FnOnce(&Series) -> R) -> Option<R> {
        let map = self.map.read();
        map.get(name).map(|s| f(s))
    }

    pub fn get_or_create(&self, name: &str) -> Arc<Series> {
        if let Some(s) = self.get(name) {
            return s;
        }
        let mut map = self.map.write();
        map.entry(name.to_owned()).or_insert_with(|| Arc::new(Series::new(name))).clone()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.read().contains_key(name)
    }

    /// Removes a series; anyone still holding it sees `dropped`.
    pub fn remove(&self, name: &str) -> Option<Arc<Series>> {
        let removed = self.map.write().shift_remove(name);
        if let Some(s) = &removed {
            s.data.write().dropped = true;
        }
        removed
    }

    pub fn names(&self) -> Vec<String> {
        self.map.read().keys().cloned().collect()
    }

    pub fn all(&self) -> Vec<Arc<Series>> {
        self.map.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces every series at once (readers see the old set or the new):
    /// series that stay are updated in place, the rest are dropped.
    pub fn replace_all(&self, series: Vec<(String, SeriesData)>) {
        let mut map = self.map.write();
        let keep: std::collections::HashSet<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
        map.retain(|name, s| {
            let stays = keep.contains(name.as_str());
            if !stays {
                s.data.write().dropped = true;
            }
            stays
        });
        for (name, data) in series {
            let entry = map.entry(name.clone()).or_insert_with(|| Arc::new(Series::new(&name)));
            let mut current = entry.data.write();
            current.counters = data.counters;
        }
    }

    /// Removes every series.
    pub fn clear(&self) {
        let mut map = self.map.write();
        for s in map.values() {
            s.data.write().dropped = true;
        }
        map.clear();
    }
}
