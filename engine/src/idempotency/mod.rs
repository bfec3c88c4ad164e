//! The idempotency registry (spec/protocol.md §12): first successful response
//! per key, kept in insertion order with count and age retention.
//!
//! Records sit in a queue in insertion order; a hash map gives each key's
//! sequence number. Replacing a key leaves a hole (`None`) at its old place
//! instead of shifting the queue, and holes are dropped when they reach the
//! front or outnumber the live records, so evicting the oldest record costs
//! O(1) amortised however large the cap.

use std::collections::VecDeque;

use hashbrown::HashMap;

use crate::store::Hasher;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    /// Internal command name (`increment`, `batch_add`, ...).
    pub operation: String,
    pub fingerprint: String,
    /// The exact JSON text of the first `response` value.
    pub response: Vec<u8>,
    pub created_at_unix: u64,
}

/// What looking a key up found.
pub enum Lookup<'a> {
    Miss,
    Hit(&'a Record),
    Conflict,
}

#[derive(Debug)]
pub struct Registry {
    /// Records oldest first; `None` marks a replaced or pruned record.
    queue: VecDeque<Option<Record>>,
    /// Sequence number of `queue[0]`; a record's number never changes.
    front_seq: u64,
    /// Key to sequence number, for live records only.
    index: HashMap<String, u64, Hasher>,
    max_records: usize,
    /// 0 disables age expiry.
    max_age_seconds: u64,
}

impl Registry {
    pub fn new(max_records: usize, max_age_seconds: u64) -> Registry {
        Registry {
            queue: VecDeque::new(),
            front_seq: 0,
            index: HashMap::default(),
            max_records: max_records.max(1),
            max_age_seconds,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn slot(&self, seq: u64) -> Option<&Record> {
        let at = usize::try_from(seq.checked_sub(self.front_seq)?).ok()?;
        self.queue.get(at)?.as_ref()
    }

    pub fn lookup(&self, key: &str, fingerprint: &str) -> Lookup<'_> {
        match self.index.get(key).and_then(|&seq| self.slot(seq)) {
            None => Lookup::Miss,
            Some(r) if r.fingerprint == fingerprint => Lookup::Hit(r),
            Some(_) => Lookup::Conflict,
        }
    }

    /// Stores a record, then applies age expiry and the cap (§12.5).
    /// Returns how many records were evicted.
    pub fn insert(&mut self, record: Record, now: u64) -> usize {
        self.remove(&record.key);
        let seq = self.front_seq + self.queue.len() as u64;
        self.index.insert(record.key.clone(), seq);
        self.queue.push_back(Some(record));
        let mut pruned = 0;
        if self.max_age_seconds > 0 {
            let cutoff = now.saturating_sub(self.max_age_seconds);
            while self.oldest().is_some_and(|r| r.created_at_unix < cutoff) {
                self.pop_oldest();
                pruned += 1;
            }
        }
        while self.len() > self.max_records {
            self.pop_oldest();
            pruned += 1;
        }
        self.compact_if_sparse();
        pruned
    }

    /// The oldest live record; drops holes at the front on the way.
    fn oldest(&mut self) -> Option<&Record> {
        while let Some(None) = self.queue.front() {
            self.queue.pop_front();
            self.front_seq += 1;
        }
        self.queue.front().and_then(Option::as_ref)
    }

    fn pop_oldest(&mut self) {
        if self.oldest().is_some() {
            if let Some(Some(record)) = self.queue.pop_front() {
                self.index.remove(&record.key);
            }
            self.front_seq += 1;
        }
    }

    /// Leaves a hole where `key`'s record was.
    fn remove(&mut self, key: &str) {
        if let Some(seq) = self.index.remove(key) {
            let at = seq.checked_sub(self.front_seq).and_then(|at| usize::try_from(at).ok());
            if let Some(slot) = at.and_then(|at| self.queue.get_mut(at)) {
                *slot = None;
            }
        }
    }

    /// Rebuilds the queue without holes once they outnumber the live records,
    /// so replaced keys cannot grow it without bound. Costs O(live), paid for
    /// by the at least as many replacements that made the holes.
    fn compact_if_sparse(&mut self) {
        let holes = self.queue.len() - self.index.len();
        if holes <= self.index.len().max(64) {
            return;
        }
        self.queue.retain(Option::is_some);
        self.queue.shrink_to_fit();
        self.front_seq = 0;
        for (seq, record) in self.queue.iter().flatten().enumerate() {
            if let Some(slot) = self.index.get_mut(record.key.as_str()) {
                *slot = seq as u64;
            }
        }
    }

    /// `idempotency.prune`: removes records created before `before`, oldest
    /// first, at most `limit`.
    pub fn prune_before(&mut self, before: u64, limit: Option<usize>) -> usize {
        let mut deleted = 0;
        let limit = limit.unwrap_or(usize::MAX);
        for slot in self.queue.iter_mut() {
            if deleted >= limit {
                break;
            }
            if slot.as_ref().is_some_and(|r| r.created_at_unix < before) {
                if let Some(record) = slot.take() {
                    self.index.remove(&record.key);
                }
                deleted += 1;
            }
        }
        self.compact_if_sparse();
        deleted
    }

    /// Live records, oldest first.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.queue.iter().flatten()
    }

    pub fn clear(&mut self) {
        self.queue.clear();
        self.index.clear();
        self.front_seq = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, at: u64) -> Record {
        Record {
            key: key.into(),
            operation: "increment".into(),
            fingerprint: "f".into(),
            response: b"1".to_vec(),
            created_at_unix: at,
        }
    }

    fn keys(r: &Registry) -> Vec<&str> {
        r.records().map(|r| r.key.as_str()).collect()
    }

    #[test]
    fn cap_and_age_evict_oldest() {
        let mut r = Registry::new(2, 100);
        assert_eq!(r.insert(rec("a", 1000), 1000), 0);
        assert_eq!(r.insert(rec("b", 1001), 1001), 0);
        assert_eq!(r.insert(rec("c", 1002), 1002), 1);
        assert!(matches!(r.lookup("a", "f"), Lookup::Miss));
        assert_eq!(r.insert(rec("d", 1200), 1200), 2);
        assert_eq!(r.len(), 1);
        assert!(matches!(r.lookup("d", "g"), Lookup::Conflict));
    }

    #[test]
    fn prune_respects_limit() {
        let mut r = Registry::new(10, 0);
        for (i, k) in ["a", "b", "c"].iter().enumerate() {
            r.insert(rec(k, i as u64), 0);
        }
        assert_eq!(r.prune_before(2, Some(1)), 1);
        assert_eq!(r.prune_before(2, None), 1);
        assert_eq!(r.len(), 1);
        assert_eq!(keys(&r), ["c"]);
    }

    #[test]
    fn replacing_a_key_moves_it_to_the_end() {
        let mut r = Registry::new(3, 0);
        for k in ["a", "b", "c"] {
            r.insert(rec(k, 0), 0);
        }
        r.insert(rec("a", 1), 1);
        assert_eq!(keys(&r), ["b", "c", "a"]);
        // The cap now evicts b, the oldest, not the replaced a.
        assert_eq!(r.insert(rec("d", 2), 2), 1);
        assert_eq!(keys(&r), ["c", "a", "d"]);
        assert!(matches!(r.lookup("a", "f"), Lookup::Hit(x) if x.created_at_unix == 1));
    }

    #[test]
    fn holes_are_compacted_so_the_queue_stays_bounded() {
        let mut r = Registry::new(1000, 0);
        for i in 0..10 {
            r.insert(rec(&format!("k{i}"), 0), 0);
        }
        for round in 0..10_000u64 {
            r.insert(rec(&format!("k{}", round % 10), round), round);
        }
        assert_eq!(r.len(), 10);
        assert!(r.queue.len() <= 10 + 65, "queue grew to {}", r.queue.len());
        assert_eq!(keys(&r).len(), 10);
        for i in 0..10 {
            assert!(matches!(r.lookup(&format!("k{i}"), "f"), Lookup::Hit(_)));
        }
        // Eviction still follows insertion order after compactions.
        let mut capped = Registry::new(3, 0);
        for i in 0..200u64 {
            capped.insert(rec(&format!("x{}", i % 5), i), i);
        }
        assert_eq!(keys(&capped), ["x2", "x3", "x4"]);
    }

    #[test]
    fn matches_a_reference_model() {
        // A plain Vec in insertion order is the obvious (O(n)) model.
        let mut model: Vec<(String, u64)> = Vec::new();
        let mut r = Registry::new(7, 50);
        let mut state = 12345u64;
        for step in 0..5_000u64 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let key = format!("k{}", (state >> 33) % 12);
            let now = step / 3;
            if (state >> 20).is_multiple_of(50) {
                let before = now.saturating_sub(5);
                let limit = ((state >> 40) % 4) as usize;
                let mut deleted = 0;
                model.retain(|(_, at)| {
                    let drop = deleted < limit && *at < before;
                    deleted += usize::from(drop);
                    !drop
                });
                assert_eq!(r.prune_before(before, Some(limit)), deleted);
            } else {
                model.retain(|(k, _)| *k != key);
                model.push((key.clone(), now));
                let cutoff = now.saturating_sub(50);
                let mut pruned = 0;
                while model.first().is_some_and(|(_, at)| *at < cutoff) {
                    model.remove(0);
                    pruned += 1;
                }
                while model.len() > 7 {
                    model.remove(0);
                    pruned += 1;
                }
                assert_eq!(r.insert(rec(&key, now), now), pruned);
            }
            let got: Vec<(String, u64)> = r.records().map(|x| (x.key.clone(), x.created_at_unix)).collect();
            assert_eq!(got, model);
        }
    }
}
