//! Streaming ingest bookkeeping (spec/protocol.md §11): active and committed
//! streams, chunk fingerprints, and the staged series of `replace_series`.

use std::collections::BTreeMap;
use std::collections::HashMap;

use indexmap::IndexMap;

use crate::store::{Hasher, KeyMap};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Add,
    Set,
    ReplaceSeries,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "add" => Some(Mode::Add),
            "set" => Some(Mode::Set),
            "replace_series" => Some(Mode::ReplaceSeries),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Add => "add",
            Mode::Set => "set",
            Mode::ReplaceSeries => "replace_series",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Stream {
    pub stream_id: String,
    pub mode: Mode,
    pub granularity: Option<String>,
    /// Bound by the first applied chunk.
    pub series: Option<String>,
    pub last_chunk_seq: u64,
    pub begin_fingerprint: String,
    pub chunk_fingerprints: BTreeMap<u64, String>,
    /// The private series a `replace_series` stream builds.
    pub staged: Option<KeyMap>,
    /// Items of the chunks staged so far (after a restore, the points held):
    /// what `--ingest-max-staged-items` counts.
    pub staged_items: u64,
    /// When a request last touched this stream; 0 until the engine stamps
    /// it. Not persisted: a restart gives every stream a fresh TTL.
    pub last_active_unix: u64,
    pub committed_at_unix: u64,
}

impl Stream {
    pub fn new(stream_id: &str, mode: Mode, granularity: Option<String>, begin_fingerprint: String) -> Stream {
        Stream {
            stream_id: stream_id.to_owned(),
            mode,
            granularity,
            series: None,
            last_chunk_seq: 0,
            begin_fingerprint,
            chunk_fingerprints: BTreeMap::new(),
            staged: (mode == Mode::ReplaceSeries).then(KeyMap::default),
            staged_items: 0,
            last_active_unix: 0,
            committed_at_unix: 0,
        }
    }
}

#[derive(Debug, Default)]
pub struct Ingest {
    pub active: HashMap<String, Stream>,
    pub committed: IndexMap<String, Stream, Hasher>,
    /// The engine-clock second of the last expiry sweep (one per second).
    pub last_sweep_unix: u64,
}

impl Ingest {
    pub fn clear(&mut self) {
        self.active.clear();
        self.committed.clear();
    }

    /// Items staged by all active streams together. A sum over at most
    /// `--ingest-max-streams` streams, asked once per `replace_series` chunk
    /// and per metrics read: cheaper to recompute than to keep in step with
    /// every insertion and removal.
    pub fn staged_items(&self) -> u64 {
        self.active.values().fold(0u64, |a, s| a.saturating_add(s.staged_items))
    }

    /// The active streams untouched for `ttl` seconds or more at `now`,
    /// oldest first (ties by id, so expiry order is deterministic).
    pub fn idle_since(&self, now: u64, ttl: u64) -> Vec<String> {
        let Some(cutoff) = now.checked_sub(ttl) else { return Vec::new() };
        let mut idle: Vec<(u64, &str)> = self
            .active
            .values()
            .filter(|s| s.last_active_unix <= cutoff)
            .map(|s| (s.last_active_unix, s.stream_id.as_str()))
            .collect();
        idle.sort_unstable();
        idle.into_iter().map(|(_, id)| id.to_owned()).collect()
    }
}

/// The points a staged series holds, for a stream restored from a snapshot.
pub fn points_of(staged: &KeyMap) -> u64 {
    staged.values().map(|c| c.bucket_count() as u64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_streams_are_those_untouched_for_the_whole_ttl() {
        let mut ingest = Ingest::default();
        for (id, at) in [("b", 100), ("a", 100), ("c", 150), ("d", 161)] {
            let mut s = Stream::new(id, Mode::Add, None, String::new());
            s.last_active_unix = at;
            ingest.active.insert(id.to_owned(), s);
        }
        // At 160 with a TTL of 10: idle since 150 or earlier.
        assert_eq!(ingest.idle_since(160, 10), ["a", "b", "c"]);
        assert_eq!(ingest.idle_since(159, 10), ["a", "b"]);
        assert!(ingest.idle_since(100, 1_000).is_empty());
    }

    #[test]
    fn staged_items_add_up_over_streams() {
        let mut ingest = Ingest::default();
        for (id, n) in [("a", 3), ("b", 4)] {
            let mut s = Stream::new(id, Mode::ReplaceSeries, None, String::new());
            s.staged_items = n;
            ingest.active.insert(id.to_owned(), s);
        }
        assert_eq!(ingest.staged_items(), 7);
    }
}
