//! Opening a data directory: lock it, load the newest readable snapshot of
//! each series and the idempotency snapshot, then replay only the WAL entries
//! those snapshots do not already contain (fix of B2).

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::files::{read_recovery, DirLock};
use crate::idempotency::Record;
use crate::ingest::{Mode, Stream};
use crate::json::{self, write_u64};
use crate::protocol::request::parse_request;
use crate::snapshot::{self, RecordImage, SnapshotDir, StreamImage};
use crate::wal::{self, Wal, WalConfig};

use super::admin::data_of;
use super::{Ctx, Disk, Engine, Response};

pub(super) fn open(options: crate::Options) -> Result<Engine> {
    let Some(dir) = options.directory.clone() else {
        return Ok(Engine::from_parts(options, None));
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("Cannot create data directory {}", dir.display()), e))?;
    let lock = DirLock::acquire(&dir)?;
    let recovery = read_recovery(&dir)?;
    let wal = if options.wal {
        Some(Wal::open(WalConfig {
            dir: dir.clone(),
            fsync: options.wal_fsync,
            segment_bytes: options.wal_segment_bytes,
            batch_size: options.wal_batch_size,
            batch_wait: options.wal_batch_wait,
        })?)
    } else {
        None
    };
    let (times, replay_times) = super::persist::TimesLog::open(&dir)?;
    let disk = Disk { snapshots: SnapshotDir::new(&dir), dir: dir.clone(), wal, times, _lock: lock };
    let restore = options.restore;
    let engine = Engine::from_parts(options, Some(disk));
    *engine.inner.recovery.lock() = super::recovery::sorted(recovery);
    *engine.inner.replay_times.lock() = replay_times;
    if restore {
        engine.restore(&dir)?;
    }
    if engine.inner.options.role == crate::options::Role::Slave {
        engine.init_replica_position()?;
    }
    Ok(engine)
}

impl Engine {
    pub(super) fn restore(&self, dir: &Path) -> Result<()> {
        let Some(disk) = &self.inner.disk else { return Ok(()) };
        let max_lsn = self.restore_from(dir, &disk.snapshots, disk.wal.as_ref().map(|_| u64::MAX))?;
        if let Some(wal) = &disk.wal {
            wal.ensure_lsn_at_least(max_lsn);
        }
        Ok(())
    }

    /// Loads the snapshots of `dir` into this engine's memory and, with
    /// `replay_through`, the WAL entries they do not contain up to that LSN
    /// (after a WAL failure: the durable one). Returns the highest
    /// snapshot LSN. Also builds the scratch engine a WAL failure rebuilds
    /// memory from (that engine has no files of its own).
    pub(super) fn restore_from(&self, dir: &Path, snapshots: &SnapshotDir, replay_through: Option<u64>) -> Result<u64> {
        let Loaded { series, covered } = load_snapshots(snapshots)?;
        let mut max_lsn = covered.values().copied().max().unwrap_or(0);
        for (name, loaded) in series {
            let mut fresh = Some(loaded);
            self.with_series(&name, true, |data| {
                if let Some(new) = fresh.take() {
                    data.counters = new.counters;
                }
                Ok(())
            })?;
        }
        let idem_lsn = snapshot::idempotency_meta(dir)?.map_or(0, |m| m.last_lsn);
        max_lsn = max_lsn.max(idem_lsn);
        if let Some((records, streams)) = snapshot::read_idempotency(dir)? {
            self.load_idempotency(records, streams);
        }
        {
            let mut ingest = self.inner.ingest.lock();
            for s in super::persist::read_active_streams(dir)? {
                ingest.active.insert(s.stream_id.clone(), self.restored_stream(s));
            }
        }
        if let Some(through) = replay_through {
            let mut replayed = 0u64;
            let mut last_lsn = 0u64;
            let stats = wal::read_all(dir, |lsn, entry| {
                // LSNs only grow: an entry at or below one already replayed
                // is a duplicate (or out of place) and would apply twice.
                if lsn <= last_lsn {
                    tracing::warn!(lsn, last_lsn, "wal.replay_skipped_non_increasing_lsn");
                    return Ok(());
                }
                if lsn > through {
                    // Not acknowledged: a failed WAL could not cut it off.
                    return Ok(());
                }
                last_lsn = lsn;
                let doc = json::parse(entry.as_bytes())
                    .map_err(|e| Error::validation(format!("Cannot replay WAL entry {lsn}: {e}")))?;
                let req = parse_request(&doc)
                    .map_err(|e| Error::validation(format!("Cannot replay WAL entry {lsn}: {}", e.message())))?;
                let series_covered = req.series().is_some_and(|s| covered.get(s).is_some_and(|c| lsn <= *c));
                if lsn <= idem_lsn && (req.series().is_none() || series_covered) {
                    return Ok(());
                }
                let ctx = Ctx { internal: true, replay: Some((lsn, &covered)), batch: None };
                match self.execute_ctx(&req, ctx) {
                    Ok(_) => replayed += 1,
                    // Karma 1.0 logged some requests that then failed (B1);
                    // they changed nothing then and change nothing now.
                    Err(err) => tracing::warn!(lsn, error = %err, "wal.replay_skipped_failed_entry"),
                }
                Ok(())
            })?;
            tracing::info!(entries = stats.entries, replayed, "wal.replay");
            self.inner.replay_times.lock().clear();
        }
        Ok(max_lsn)
    }

    /// Replaces all state with what the snapshot files hold (a slave's
    /// re-bootstrap): decoded first, then swapped in at once, so readers see
    /// the old data or the new, never a missing series.
    pub(super) fn reload_snapshots(&self) -> Result<()> {
        let Some(disk) = &self.inner.disk else { return Ok(()) };
        let series = load_snapshots(&disk.snapshots)?.series;
        let idempotency = snapshot::read_idempotency(&disk.dir)?;
        let active = super::persist::read_active_streams(&disk.dir)?;
        let _admin = self.inner.admin.lock();
        let _gate = self.inner.gate.write();
        if let Some(wal) = &disk.wal {
            wal.truncate()?;
            disk.times.reset()?;
        }
        self.inner.store.replace_all(series);
        let (records, streams) = idempotency.unwrap_or_default();
        self.load_idempotency(records, streams);
        let mut ingest = self.inner.ingest.lock();
        ingest.active.clear();
        for s in active {
            ingest.active.insert(s.stream_id.clone(), self.restored_stream(s));
        }
        Ok(())
    }

    /// An active stream read from a snapshot: idle time is not persisted, so
    /// its TTL starts now; what it staged counts as the points it holds.
    fn restored_stream(&self, mut s: Stream) -> Stream {
        s.last_active_unix = self.now();
        s.staged_items = s.staged.as_ref().map_or(0, crate::ingest::points_of);
        s
    }

    fn load_idempotency(&self, mut records: Vec<RecordImage>, streams: Vec<StreamImage>) {
        records.sort_by_key(|r| r.created_at_unix);
        let now = self.now();
        let mut registry = self.inner.idempotency.lock();
        registry.clear();
        for r in records {
            registry.insert(
                Record {
                    key: r.key,
                    operation: r.operation,
                    fingerprint: r.fingerprint,
                    response: r.response.get().as_bytes().to_vec(),
                    created_at_unix: r.created_at_unix,
                },
                now,
            );
        }
        let mut ingest = self.inner.ingest.lock();
        ingest.committed.clear();
        for s in streams {
            let Some(mode) = Mode::parse(&s.mode) else { continue };
            let mut stream = Stream::new(&s.stream_id, mode, s.granularity, s.begin_fingerprint);
            stream.series = s.series_name;
            stream.last_chunk_seq = s.last_chunk_seq;
            stream.chunk_fingerprints = s.chunk_fingerprints.into_iter().collect();
            stream.committed_at_unix = s.committed_at_unix;
            stream.staged = None;
            ingest.committed.insert(s.stream_id, stream);
        }
    }

    /// The idempotency registry and committed streams as snapshot images.
    pub(crate) fn idempotency_images(&self) -> (Vec<RecordImage>, Vec<StreamImage>) {
        let records = self
            .inner
            .idempotency
            .lock()
            .records()
            .filter_map(|r| {
                let text = String::from_utf8(r.response.clone()).ok()?;
                let response = serde_json::value::RawValue::from_string(text).ok()?;
                Some(RecordImage {
                    key: r.key.clone(),
                    operation: r.operation.clone(),
                    fingerprint: r.fingerprint.clone(),
                    response,
                    created_at_unix: r.created_at_unix,
                })
            })
            .collect();
        let streams = self
            .inner
            .ingest
            .lock()
            .committed
            .values()
            .map(|s| StreamImage {
                stream_id: s.stream_id.clone(),
                mode: s.mode.as_str().to_owned(),
                granularity: s.granularity.clone(),
                series_name: s.series.clone(),
                last_chunk_seq: s.last_chunk_seq,
                begin_fingerprint: s.begin_fingerprint.clone(),
                chunk_fingerprints: s.chunk_fingerprints.iter().map(|(k, v)| (*k, v.clone())).collect(),
                committed_at_unix: s.committed_at_unix,
            })
            .collect();
        (records, streams)
    }

    /// `snapshot.verify`: checks the files without touching live state (fix
    /// of B7): sidecars, snapshot decoding and totals, WAL continuity.
    pub(crate) fn verify(&self) -> Result<Response> {
        let Some(disk) = &self.inner.disk else {
            return Err(Error::validation("This engine has no data directory; snapshots are unavailable"));
        };
        let list = disk.snapshots.list()?;
        let (mut checked, mut missing) = (0u64, 0u64);
        for meta in &list {
            match disk.snapshots.read_sidecar(&meta.file)? {
                Some(side) => {
                    let actual = disk.snapshots.read(&meta.file)?.map_or(0, |b| b.len() as u64);
                    if side.bytes != actual {
                        return Err(Error::validation(format!("Snapshot metadata bytes mismatch for {}", meta.file)));
                    }
                    if side.tree != meta.tree {
                        return Err(Error::validation(format!("Snapshot metadata tree mismatch for {}", meta.file)));
                    }
                    checked += 1;
                }
                None => missing += 1,
            }
        }
        let latest = disk.snapshots.latest_by_series()?;
        let restore_lsn = latest.iter().map(|m| m.last_lsn).min().unwrap_or(0);
        let (mut trees, mut keys) = (0u64, 0u64);
        for meta in &latest {
            let bytes = disk.snapshots.read(&meta.file)?.unwrap_or_default();
            let image = snapshot::decode_tree_named(&bytes, &meta.file)?;
            for (key, c) in &image.counters {
                let sum = c.buckets.iter().try_fold(0u64, |a, (_, v)| a.checked_add(*v));
                if sum != Some(c.total) || c.buckets.iter().any(|(_, v)| *v == 0) {
                    return Err(Error::validation(format!(
                        "Tree \"{}\" failed validation: counter {key} total mismatch",
                        meta.tree
                    )));
                }
            }
            trees += 1;
            keys += image.counters.len() as u64;
        }
        let (mut entries, mut first, mut last) = (0u64, 0u64, 0u64);
        if disk.wal.is_some() {
            let mut expected: Option<u64> = None;
            wal::read_all(&disk.dir, |lsn, _entry| {
                if let Some(e) = expected {
                    if lsn != e {
                        return Err(Error::validation(format!("WAL LSN gap: expected {e}, got {lsn}")));
                    }
                }
                if first == 0 {
                    first = lsn;
                }
                last = lsn;
                entries += 1;
                expected = lsn.checked_add(1);
                Ok(())
            })?;
        }
        let lsn_file = crate::files::read_lsn_file(&disk.dir.join("karma.wal.lsn"), "WAL").unwrap_or(0);
        let mut out = Vec::with_capacity(320);
        let fields: [(&str, u64); 10] = [
            ("dump_count", list.len() as u64),
            ("trees", trees),
            ("keys", keys),
            ("snapshot_metadata_checked", checked),
            ("snapshot_missing_metadata", missing),
            ("restore_snapshot_lsn", restore_lsn),
            ("wal_entries_checked", entries),
            ("wal_first_lsn", first),
            ("wal_last_lsn", last),
            ("wal_lsn_file", lsn_file),
        ];
        out.extend_from_slice(b"{\"status\":\"ok\"");
        for (name, v) in fields {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            write_u64(&mut out, v);
        }
        out.push(b'}');
        Ok(Response::Json(out))
    }
}

/// Series restored from snapshot files, with the snapshot LSN of each.
struct Loaded {
    series: Vec<(String, crate::store::SeriesData)>,
    covered: HashMap<String, u64>,
}

/// The newest decodable snapshot of every series, and each one's LSN. An
/// unreadable snapshot is skipped for the previous generation, loudly.
fn load_snapshots(snapshots: &SnapshotDir) -> Result<Loaded> {
    let mut covered: HashMap<String, u64> = HashMap::new();
    let mut series = Vec::new();
    for meta in snapshots.list()? {
        if covered.contains_key(&meta.tree) {
            continue;
        }
        let Some(bytes) = snapshots.read(&meta.file)? else { continue };
        match snapshot::decode_tree_named(&bytes, &meta.file) {
            Ok(image) => {
                series.push((meta.tree.clone(), data_of(image)));
                covered.insert(meta.tree.clone(), meta.last_lsn);
            }
            Err(err) => {
                tracing::error!(file = %meta.file, error = %err, "snapshot.corrupt: falling back to an older snapshot");
            }
        }
    }
    Ok(Loaded { series, covered })
}
