//! The idempotency snapshot `karma.idempotency.json` and its sidecar
//! `karma.idempotency.json.meta.json` (spec/persistence.md §5).

use std::fmt;
use std::io::ErrorKind;
use std::path::Path;
use std::time::UNIX_EPOCH;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::files::atomic_write;

pub const IDEMPOTENCY_FILE: &str = "karma.idempotency.json";
pub const IDEMPOTENCY_META_FILE: &str = "karma.idempotency.json.meta.json";

/// One idempotency record. `response` is the exact JSON text of the first
/// response (kept raw so integers up to u64::MAX and key order survive).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordImage {
    pub key: String,
    pub operation: String,
    pub fingerprint: String,
    pub response: Box<RawValue>,
    pub created_at_unix: u64,
}

impl PartialEq for RecordImage {
    fn eq(&self, other: &RecordImage) -> bool {
        self.key == other.key
            && self.operation == other.operation
            && self.fingerprint == other.fingerprint
            && self.response.get() == other.response.get()
            && self.created_at_unix == other.created_at_unix
    }
}

impl Eq for RecordImage {}

/// One committed ingest stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamImage {
    pub stream_id: String,
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granularity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_name: Option<String>,
    pub last_chunk_seq: u64,
    pub begin_fingerprint: String,
    #[serde(serialize_with = "ser_chunks", deserialize_with = "de_chunks")]
    pub chunk_fingerprints: Vec<(u64, String)>,
    pub committed_at_unix: u64,
}

fn ser_chunks<S: Serializer>(chunks: &[(u64, String)], s: S) -> std::result::Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(chunks.len()))?;
    for (seq, fp) in chunks {
        m.serialize_entry(&seq.to_string(), fp)?;
    }
    m.end()
}

fn de_chunks<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<(u64, String)>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(u64, String)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of chunk_seq -> fingerprint")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
            let mut out: Vec<(u64, String)> = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                let seq =
                    k.parse::<u64>().map_err(|_| serde::de::Error::custom(format!("invalid chunk_seq key \"{k}\"")))?;
                match out.iter_mut().find(|(s, _)| *s == seq) {
                    Some(slot) => slot.1 = v,
                    None => out.push((seq, v)),
                }
            }
            Ok(out)
        }
    }
    d.deserialize_map(V)
}

/// Sidecar of the idempotency snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyMeta {
    pub file: String,
    pub timestamp: u64,
    pub last_lsn: u64,
    pub bytes: u64,
    pub record_count: u64,
    pub committed_stream_count: u64,
}

#[derive(Serialize)]
struct FileOut<'a> {
    records: &'a [RecordImage],
    committed_streams: &'a [StreamImage],
    /// Our extension: the active ingest streams at snapshot time. Written
    /// only when there are some, so files without any stay byte-identical to
    /// Karma 1.0's, whose reader ignores members it does not know.
    #[serde(skip_serializing_if = "no_active")]
    active_streams: &'a [serde_json::Value],
}

fn no_active(v: &&[serde_json::Value]) -> bool {
    v.is_empty()
}

#[derive(Deserialize)]
struct FileIn {
    records: Vec<RecordImage>,
    committed_streams: Vec<StreamImage>,
    #[serde(default)]
    active_streams: Vec<serde_json::Value>,
}

/// The exact bytes of `karma.idempotency.json`.
pub fn encode_idempotency(records: &[RecordImage], streams: &[StreamImage]) -> Vec<u8> {
    encode_idempotency_with_active(records, streams, &[])
}

/// [`encode_idempotency`] plus the active ingest streams (our extension).
pub fn encode_idempotency_with_active(
    records: &[RecordImage],
    streams: &[StreamImage],
    active: &[serde_json::Value],
) -> Vec<u8> {
    let out = FileOut { records, committed_streams: streams, active_streams: active };
    // Strings, integers and already-valid raw JSON cannot fail to serialize.
    let mut bytes = serde_json::to_vec(&out).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Writes the idempotency snapshot, then its sidecar, both atomically.
pub fn write_idempotency(
    dir: &Path,
    records: &[RecordImage],
    streams: &[StreamImage],
    timestamp: u64,
    last_lsn: u64,
) -> Result<IdempotencyMeta> {
    write_idempotency_with_active(dir, records, streams, &[], timestamp, last_lsn)
}

/// [`write_idempotency`] plus the active ingest streams (our extension), so
/// they survive the WAL truncation that follows and reach bootstrapping
/// slaves with the rest of the file.
pub fn write_idempotency_with_active(
    dir: &Path,
    records: &[RecordImage],
    streams: &[StreamImage],
    active: &[serde_json::Value],
    timestamp: u64,
    last_lsn: u64,
) -> Result<IdempotencyMeta> {
    let bytes = encode_idempotency_with_active(records, streams, active);
    atomic_write(dir, IDEMPOTENCY_FILE, &bytes)?;
    let meta = IdempotencyMeta {
        file: IDEMPOTENCY_FILE.to_string(),
        timestamp,
        last_lsn,
        bytes: bytes.len() as u64,
        record_count: records.len() as u64,
        committed_stream_count: streams.len() as u64,
    };
    let mut line = serde_json::to_vec(&meta).unwrap_or_default();
    line.push(b'\n');
    atomic_write(dir, IDEMPOTENCY_META_FILE, &line)?;
    Ok(meta)
}

/// The raw bytes of `karma.idempotency.json`, `None` if absent.
pub fn read_idempotency_bytes(dir: &Path) -> Result<Option<Vec<u8>>> {
    match crate::files::read_regular(&dir.join(IDEMPOTENCY_FILE)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::files::file_error("Cannot read", IDEMPOTENCY_FILE, e)),
    }
}

/// Parses idempotency snapshot bytes (`context` names the source in errors).
pub fn decode_idempotency(bytes: &[u8], context: &str) -> Result<(Vec<RecordImage>, Vec<StreamImage>)> {
    let f: FileIn = serde_json::from_slice(bytes)
        .map_err(|e| Error::validation(format!("Invalid idempotency snapshot {context}: {e}")))?;
    Ok((f.records, f.committed_streams))
}

/// The active ingest streams saved in the idempotency snapshot (empty when
/// there is no snapshot or it was written by Karma 1.0).
pub fn read_active_streams(dir: &Path) -> Result<Vec<serde_json::Value>> {
    let Some(bytes) = read_idempotency_bytes(dir)? else {
        return Ok(Vec::new());
    };
    let f: FileIn = serde_json::from_slice(&bytes).map_err(|e| {
        Error::validation(format!("Invalid idempotency snapshot {}: {e}", dir.join(IDEMPOTENCY_FILE).display()))
    })?;
    Ok(f.active_streams)
}

/// Records and committed streams of the idempotency snapshot, `None` if absent.
pub fn read_idempotency(dir: &Path) -> Result<Option<(Vec<RecordImage>, Vec<StreamImage>)>> {
    let Some(bytes) = read_idempotency_bytes(dir)? else {
        return Ok(None);
    };
    let path = dir.join(IDEMPOTENCY_FILE);
    decode_idempotency(&bytes, &path.display().to_string()).map(Some)
}

/// The sidecar, or (if it is missing) metadata synthesised from the file:
/// `timestamp` = mtime, `last_lsn` = 0, counts from its content. `None` if
/// there is no idempotency snapshot.
pub fn idempotency_meta(dir: &Path) -> Result<Option<IdempotencyMeta>> {
    let path = dir.join(IDEMPOTENCY_FILE);
    let md = match crate::files::regular_metadata(&path) {
        Ok(md) => md,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::files::file_error("Cannot stat", IDEMPOTENCY_FILE, e)),
    };
    let meta_path = dir.join(IDEMPOTENCY_META_FILE);
    match crate::files::read_regular(&meta_path) {
        Ok(b) => {
            return serde_json::from_slice::<IdempotencyMeta>(&b).map(Some).map_err(|e| {
                Error::validation(format!("Invalid idempotency snapshot metadata {}: {e}", meta_path.display()))
            })
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(crate::files::file_error("Cannot read", IDEMPOTENCY_META_FILE, e)),
    }
    let timestamp =
        md.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs()).unwrap_or(0);
    let (records, streams) = match read_idempotency(dir) {
        Ok(Some((r, s))) => (r.len() as u64, s.len() as u64),
        _ => (0, 0),
    };
    Ok(Some(IdempotencyMeta {
        file: IDEMPOTENCY_FILE.to_string(),
        timestamp,
        last_lsn: 0,
        bytes: md.len(),
        record_count: records,
        committed_stream_count: streams,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fixtures() -> std::path::PathBuf {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/karma1");
        assert!(base.is_dir(), "fixtures missing at {}", base.display());
        base
    }

    #[test]
    fn fixtures_roundtrip_byte_exact() {
        for fx in ["snapshot-plus-wal", "snapshots-only", "large-values"] {
            let dir = fixtures().join(fx).join("data");
            let original = fs::read(dir.join(IDEMPOTENCY_FILE)).unwrap();
            let (records, streams) = read_idempotency(&dir).unwrap().unwrap();
            assert_eq!(encode_idempotency(&records, &streams), original, "{fx}");
            let meta = idempotency_meta(&dir).unwrap().unwrap();
            assert_eq!(meta.bytes, original.len() as u64);
            assert_eq!(meta.record_count, records.len() as u64);
            assert_eq!(meta.committed_stream_count, streams.len() as u64);
            let mut line = serde_json::to_vec(&meta).unwrap();
            line.push(b'\n');
            assert_eq!(line, fs::read(dir.join(IDEMPOTENCY_META_FILE)).unwrap());
        }
        assert_eq!(idempotency_meta(&fixtures().join("segmented-wal/data")).unwrap(), None);
        let dir = fixtures().join("snapshot-plus-wal/data");
        let (records, streams) = read_idempotency(&dir).unwrap().unwrap();
        assert_eq!(records[1].response.get(), "{\"applied\":3,\"total\":12}");
        assert_eq!(streams[1].granularity, None);
        assert_eq!(streams[0].chunk_fingerprints.len(), 3);
        assert_eq!(streams[0].chunk_fingerprints[2].0, 3);
    }

    #[test]
    fn write_read_synthesize() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_idempotency(d.path()).unwrap(), None);
        assert_eq!(idempotency_meta(d.path()).unwrap(), None);
        let records = vec![RecordImage {
            key: "k\u{e9}\"1".into(),
            operation: "batch_add".into(),
            fingerprint: "ab".into(),
            response: RawValue::from_string("{\"total\":18446744073709551615,\"applied\":1}".into()).unwrap(),
            created_at_unix: 7,
        }];
        let streams = vec![StreamImage {
            stream_id: "s".into(),
            mode: "add".into(),
            granularity: Some("day".into()),
            series_name: None,
            last_chunk_seq: 2,
            begin_fingerprint: "f".into(),
            chunk_fingerprints: vec![(2, "b".into()), (1, "a".into())],
            committed_at_unix: 9,
        }];
        let meta = write_idempotency(d.path(), &records, &streams, 100, 5).unwrap();
        let text = fs::read_to_string(d.path().join(IDEMPOTENCY_FILE)).unwrap();
        assert_eq!(
            text,
            "{\"records\":[{\"key\":\"k\u{e9}\\\"1\",\"operation\":\"batch_add\",\"fingerprint\":\"ab\",\"response\":{\"total\":18446744073709551615,\"applied\":1},\"created_at_unix\":7}],\"committed_streams\":[{\"stream_id\":\"s\",\"mode\":\"add\",\"granularity\":\"day\",\"last_chunk_seq\":2,\"begin_fingerprint\":\"f\",\"chunk_fingerprints\":{\"2\":\"b\",\"1\":\"a\"},\"committed_at_unix\":9}]}\n"
        );
        assert_eq!(
            fs::read_to_string(d.path().join(IDEMPOTENCY_META_FILE)).unwrap(),
            format!("{{\"file\":\"karma.idempotency.json\",\"timestamp\":100,\"last_lsn\":5,\"bytes\":{},\"record_count\":1,\"committed_stream_count\":1}}\n", text.len())
        );
        assert_eq!(meta.bytes, text.len() as u64);
        assert_eq!(read_idempotency(d.path()).unwrap(), Some((records, streams)));
        assert_eq!(read_idempotency_bytes(d.path()).unwrap().unwrap(), text.as_bytes());
        fs::remove_file(d.path().join(IDEMPOTENCY_META_FILE)).unwrap();
        let m = idempotency_meta(d.path()).unwrap().unwrap();
        assert_eq!((m.last_lsn, m.record_count, m.committed_stream_count), (0, 1, 1));
        assert!(m.timestamp > 0);
        fs::write(d.path().join(IDEMPOTENCY_FILE), "{").unwrap();
        assert!(read_idempotency(d.path()).unwrap_err().message().starts_with("Invalid idempotency snapshot"));
    }
}
