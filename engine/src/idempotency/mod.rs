//! The idempotency registry (spec/protocol.md §12): first successful response
//! per key, kept in insertion order with count and age retention.

use indexmap::IndexMap;

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
    records: IndexMap<String, Record, Hasher>,
    max_records: usize,
    /// 0 disables age expiry.
    max_age_seconds: u64,
}

impl Registry {
    pub fn new(max_records: usize, max_age_seconds: u64) -> Registry {
        Registry { records: IndexMap::default(), max_records: max_records.max(1), max_age_seconds }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn lookup(&self, key: &str, fingerprint: &str) -> Lookup<'_> {
        match self.records.get(key) {
            None => Lookup::Miss,
            Some(r) if r.fingerprint == fingerprint => Lookup::Hit(r),
            Some(_) => Lookup::Conflict,
        }
    }

    /// Stores a record, then applies age expiry and the cap (§12.5).
    /// Returns how many records were evicted.
    pub fn insert(&mut self, record: Record, now: u64) -> usize {
        self.records.shift_remove(&record.key);
        self.records.insert(record.key.clone(), record);
        let mut pruned = 0;
        if self.max_age_seconds > 0 {
            let cutoff = now.saturating_sub(self.max_age_seconds);
            while let Some((_, r)) = self.records.first() {
                if r.created_at_unix >= cutoff {
                    break;
                }
                self.records.shift_remove_index(0);
                pruned += 1;
            }
        }
        while self.records.len() > self.max_records {
            self.records.shift_remove_index(0);
            pruned += 1;
        }
        pruned
    }

    /// `idempotency.prune`: removes records created before `before`, oldest
    /// first, at most `limit`.
    pub fn prune_before(&mut self, before: u64, limit: Option<usize>) -> usize {
        let mut deleted = 0;
        let limit = limit.unwrap_or(usize::MAX);
        self.records.retain(|_, r| {
            if deleted < limit && r.created_at_unix < before {
                deleted += 1;
                false
            } else {
                true
            }
        });
        deleted
    }

    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    pub fn clear(&mut self) {
        self.records.clear();
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
    }
}
