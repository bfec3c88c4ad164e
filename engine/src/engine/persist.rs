//! Durable state Karma 1.0 lost, kept without changing its formats:
//!
//! * `karma.idempotency.times`, a file of our own: `<lsn> <created_at_unix>`
//!   per idempotent write. Karma 1.0 never logged the server-assigned record
//!   time, so a record rebuilt from the WAL got the restart time (B6). The
//!   WAL entry itself stays exactly as 1.0 writes it.
//! * the active ingest streams, which `snapshot.create_all` saves inside
//!   `karma.idempotency.json` (an `active_streams` member Karma 1.0 neither
//!   writes nor reads), because the WAL that held them is then truncated
//!   (B14) and slaves bootstrap from that file. This module encodes them.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::ingest::{Mode, Stream};
use crate::store::{Counter, KeyMap};

pub const TIMES_FILE: &str = "karma.idempotency.times";

/// Append-only record times, keyed by the WAL LSN of the write.
pub struct TimesLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl TimesLog {
    /// Opens the log and returns the times it already holds.
    pub fn open(dir: &Path) -> Result<(TimesLog, HashMap<u64, u64>)> {
        let path = dir.join(TIMES_FILE);
        let mut times = HashMap::new();
        if let Ok(text) = crate::files::read_regular(&path).map(|b| String::from_utf8_lossy(&b).into_owned()) {
            // A torn last line (crash mid-write) simply does not parse.
            for line in text.lines() {
                let mut parts = line.split(' ');
                if let (Some(Ok(lsn)), Some(Ok(at))) =
                    (parts.next().map(str::parse::<u64>), parts.next().map(str::parse::<u64>))
                {
                    times.insert(lsn, at);
                }
            }
        }
        Ok((TimesLog { path, file: Mutex::new(None) }, times))
    }

    /// Best effort: a lost line only means that record's age restarts at
    /// replay time, as in Karma 1.0.
    pub fn record(&self, lsn: u64, created_at: u64) {
        let mut file = self.file.lock();
        if file.is_none() {
            *file = crate::files::open_regular(&self.path, OpenOptions::new().create(true).append(true)).ok();
        }
        if let Some(f) = file.as_mut() {
            if let Err(err) = f.write_all(format!("{lsn} {created_at}\n").as_bytes()) {
                tracing::warn!(error = %err, path = %self.path.display(), "idempotency.times_write_failed");
                *file = None;
            }
        }
    }

    /// Empties the log (the WAL it annotated was truncated).
    pub fn reset(&self) -> Result<()> {
        let mut file = self.file.lock();
        *file = None;
        crate::files::open_regular(&self.path, OpenOptions::new().write(true).create(true).truncate(true))
            .map_err(|e| Error::io(format!("Cannot truncate {TIMES_FILE}"), e))?;
        Ok(())
    }
}

fn stream_to_json(s: &Stream) -> Value {
    let chunks: serde_json::Map<String, Value> =
        s.chunk_fingerprints.iter().map(|(k, v)| (k.to_string(), Value::String(v.clone()))).collect();
    let staged: Option<Vec<Value>> = s.staged.as_ref().map(|staged| {
        staged
            .iter()
            .map(|(k, c)| json!([k, c.total(), c.iter().map(|(b, v)| json!([b, v])).collect::<Vec<_>>()]))
            .collect()
    });
    json!({
        "stream_id": s.stream_id,
        "mode": s.mode.as_str(),
        "granularity": s.granularity,
        "series": s.series,
        "last_chunk_seq": s.last_chunk_seq,
        "begin_fingerprint": s.begin_fingerprint,
        "chunk_fingerprints": chunks,
        "staged": staged,
    })
}

fn stream_from_json(v: &Value) -> Option<Stream> {
    let id = v.get("stream_id")?.as_str()?;
    let mode = Mode::parse(v.get("mode")?.as_str()?)?;
    let granularity = v.get("granularity").and_then(Value::as_str).map(str::to_owned);
    let begin = v.get("begin_fingerprint")?.as_str()?.to_owned();
    let mut s = Stream::new(id, mode, granularity, begin);
    s.series = v.get("series").and_then(Value::as_str).map(str::to_owned);
    s.last_chunk_seq = v.get("last_chunk_seq")?.as_u64()?;
    let mut chunks = BTreeMap::new();
    for (k, fp) in v.get("chunk_fingerprints")?.as_object()? {
        chunks.insert(k.parse().ok()?, fp.as_str()?.to_owned());
    }
    s.chunk_fingerprints = chunks;
    if let Some(staged) = v.get("staged").and_then(Value::as_array) {
        let mut map = KeyMap::default();
        for entry in staged {
            let key = entry.get(0)?.as_u64()?;
            let total = entry.get(1)?.as_u64()?;
            let points: Vec<(u64, u64)> = entry
                .get(2)?
                .as_array()?
                .iter()
                .filter_map(|p| Some((p.get(0)?.as_u64()?, p.get(1)?.as_u64()?)))
                .collect();
            map.insert(key, Counter::from_parts(total, points));
        }
        s.staged = Some(map);
    }
    Some(s)
}

/// The active streams as the idempotency snapshot stores them.
pub fn active_streams_json(streams: &[&Stream]) -> Vec<Value> {
    streams.iter().map(|s| stream_to_json(s)).collect()
}

/// The active streams saved with the last idempotency snapshot.
pub fn read_active_streams(dir: &Path) -> Result<Vec<Stream>> {
    crate::snapshot::read_active_streams(dir)?
        .iter()
        .map(|v| {
            stream_from_json(v).ok_or_else(|| Error::validation(format!("Invalid ingest stream in {}", dir.display())))
        })
        .collect()
}
