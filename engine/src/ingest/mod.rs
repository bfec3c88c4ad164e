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
            committed_at_unix: 0,
        }
    }
}

#[derive(Debug, Default)]
pub struct Ingest {
    pub active: HashMap<String, Stream>,
    pub committed: IndexMap<String, Stream, Hasher>,
}

impl Ingest {
    pub fn clear(&mut self) {
        self.active.clear();
        self.committed.clear();
    }
}
