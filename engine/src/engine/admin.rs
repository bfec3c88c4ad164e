//! System, snapshot, recovery, reconciliation, replication and idempotency
//! administration ops.

use base64::Engine as _;

use crate::error::{Error, ErrorCode, Result};
use crate::files::Checkpoint;
use crate::json::{write_str, write_u64};
use crate::metrics::{self, get, write_f64, Stat, StatsView};
use crate::options::Role;
use crate::protocol::validate::{chunk_limit, entries_limit, resolve_limit, snapshot_series_of};
use crate::protocol::{Command, Op, PruneBefore, Request};
use crate::snapshot::{self, CounterImage, SeriesImage, SnapshotMeta};
use crate::store::{Counter, SeriesData};

use super::{Ctx, Disk, Engine, Outcome, Response};

fn no_disk() -> Error {
    Error::validation("This engine has no data directory; snapshots are unavailable")
}

fn meta_json(out: &mut Vec<u8>, m: &SnapshotMeta) {
    out.extend_from_slice(b"{\"tree\":");
    write_str(out, &m.tree);
    out.extend_from_slice(b",\"file\":");
    write_str(out, &m.file);
    out.extend_from_slice(b",\"timestamp\":");
    out.extend_from_slice(itoa::Buffer::new().format(m.timestamp).as_bytes());
    out.extend_from_slice(b",\"bytes\":");
    write_u64(out, m.bytes);
    out.extend_from_slice(b",\"last_lsn\":");
    write_u64(out, m.last_lsn);
    out.extend_from_slice(b",\"metadata_file\":");
    write_str(out, &m.metadata_file());
    out.push(b'}');
}

fn idem_meta_json(out: &mut Vec<u8>, m: &snapshot::IdempotencyMeta) {
    out.extend_from_slice(b"{\"file\":");
    write_str(out, &m.file);
    out.extend_from_slice(b",\"timestamp\":");
    write_u64(out, m.timestamp);
    out.extend_from_slice(b",\"bytes\":");
    write_u64(out, m.bytes);
    out.extend_from_slice(b",\"last_lsn\":");
    write_u64(out, m.last_lsn);
    out.extend_from_slice(b",\"record_count\":");
    write_u64(out, m.record_count);
    out.extend_from_slice(b",\"committed_stream_count\":");
    write_u64(out, m.committed_stream_count);
    out.push(b'}');
}

/// `{"metadata":..,"offset":..,"limit":..,"bytes":..,"total_bytes":..,"next_offset":..,"done":..,"data_base64":..}`
fn chunk_json(meta: &[u8], data: &[u8], offset: u64, limit: usize, what: &str) -> Result<Vec<u8>> {
    let total = data.len() as u64;
    if offset > total {
        return Err(Error::validation(format!("Field offset exceeds {what} size")));
    }
    let end = (offset.saturating_add(limit as u64)).min(total);
    let slice = &data[offset as usize..end as usize];
    let mut out = Vec::with_capacity(meta.len() + slice.len() * 4 / 3 + 160);
    out.extend_from_slice(b"{\"metadata\":");
    out.extend_from_slice(meta);
    out.extend_from_slice(b",\"offset\":");
    write_u64(&mut out, offset);
    out.extend_from_slice(b",\"limit\":");
    write_u64(&mut out, limit as u64);
    out.extend_from_slice(b",\"bytes\":");
    write_u64(&mut out, slice.len() as u64);
    out.extend_from_slice(b",\"total_bytes\":");
    write_u64(&mut out, total);
    out.extend_from_slice(b",\"next_offset\":");
    write_u64(&mut out, end);
    out.extend_from_slice(b",\"done\":");
    out.extend_from_slice(if end >= total { b"true" } else { b"false" });
    out.extend_from_slice(b",\"data_base64\":\"");
    out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(slice).as_bytes());
    out.extend_from_slice(b"\"}");
    Ok(out)
}

/// Resident set size from /proc (0 where unavailable).
fn memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

/// A copy of a series for a snapshot, keys in insertion order.
pub(crate) fn image_of(data: &SeriesData) -> SeriesImage {
    SeriesImage {
        counters: data
            .counters
            .iter()
            .map(|(k, c)| (*k, CounterImage { total: c.total(), buckets: c.iter().collect() }))
            .collect(),
    }
}

pub(crate) fn data_of(image: SeriesImage) -> SeriesData {
    let mut data = SeriesData::default();
    data.counters.reserve(image.counters.len());
    for (key, c) in image.counters {
        data.counters.insert(key, Counter::from_parts(c.total, c.buckets));
    }
    data
}

impl Engine {
    fn disk(&self) -> Result<&Disk> {
        self.inner.disk.as_ref().ok_or_else(no_disk)
    }

    fn wal_enabled(&self) -> bool {
        self.wal().is_some()
    }

    fn wal_bytes(&self) -> u64 {
        self.wal().map_or(0, |w| w.bytes())
    }

    /// `system.wal` (an extension; `system.stats` keeps Karma 1.0's keys):
    /// the fsync policy, the LSNs and the writer's group and fsync counters.
    pub(crate) fn wal_status(&self) -> Response {
        let wal = self.wal();
        let stats = wal.map(|w| w.stats()).unwrap_or_default();
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"policy\":");
        write_str(&mut out, self.inner.options.wal_fsync.as_str());
        out.extend_from_slice(if wal.is_some() { b",\"enabled\":true" } else { b",\"enabled\":false" });
        let fields = [
            ("current_lsn", wal.map_or(0, |w| w.current_lsn())),
            ("durable_lsn", wal.map_or(0, |w| w.durable_lsn())),
            ("groups", stats.groups),
            ("entries", stats.entries),
            ("fsyncs", stats.fsyncs),
            ("fsync_us_total", stats.fsync_micros_total),
            ("fsync_us_max", stats.fsync_micros_max),
        ];
        for (name, value) in fields {
            out.push(b',');
            write_str(&mut out, name);
            out.push(b':');
            write_u64(&mut out, value);
        }
        out.extend_from_slice(b",\"fsync_us_avg\":");
        let avg = if stats.fsyncs == 0 { 0.0 } else { stats.fsync_micros_total as f64 / stats.fsyncs as f64 };
        write_f64(&mut out, (avg * 10.0).round() / 10.0);
        out.push(b'}');
        Response::Json(out)
    }

    /// The WAL's fsync figures for `system.metrics`, once there was an
    /// fsync: a server that never fsyncs (like Karma 1.0's conformance
    /// setup, `--wal-fsync=false`) keeps Karma 1.0's exact metrics text.
    pub(crate) fn wal_metrics(&self, out: &mut String) {
        let Some(stats) = self.wal().map(|w| w.stats()).filter(|s| s.fsyncs > 0) else { return };
        let policy = self.inner.options.wal_fsync.as_str();
        let seconds = |micros: u64| micros as f64 / 1e6;
        out.push_str(&format!(
            "# TYPE karma_wal_fsync_policy gauge\nkarma_wal_fsync_policy{{policy=\"{policy}\"}} 1\n\
             # TYPE karma_wal_fsyncs_total counter\nkarma_wal_fsyncs_total {}\n\
             # TYPE karma_wal_fsync_seconds_total counter\nkarma_wal_fsync_seconds_total {:?}\n\
             # TYPE karma_wal_fsync_seconds_max gauge\nkarma_wal_fsync_seconds_max {:?}\n",
            stats.fsyncs,
            seconds(stats.fsync_micros_total),
            seconds(stats.fsync_micros_max),
        ));
    }

    /// The LSN snapshots record: the last LSN applied. A slave logs every
    /// applied master entry under its LSN, so its WAL position is exact even
    /// in the middle of a page (its `replayed_lsn` advances per page, and a
    /// snapshot stamped with it would claim less than it holds). Without a
    /// WAL a slave only knows its replayed position.
    pub(crate) fn position_lsn(&self) -> u64 {
        match (self.wal(), self.inner.options.role) {
            (Some(wal), _) => wal.current_lsn(),
            (None, Role::Slave) => get(&self.inner.replication.replayed_lsn),
            (None, Role::Master) => 0,
        }
    }

    fn uptime(&self) -> f64 {
        self.inner.started.elapsed().as_secs_f64()
    }

    pub(crate) fn health_response(&self) -> Response {
        let mut out = Vec::with_capacity(96);
        let reason = self.unhealthy_reason();
        out.extend_from_slice(b"{\"status\":");
        write_str(&mut out, if reason.is_some() { "unhealthy" } else { "ok" });
        out.extend_from_slice(b",\"uptime_seconds\":");
        write_f64(&mut out, self.uptime());
        out.extend_from_slice(b",\"role\":");
        write_str(&mut out, self.inner.options.role.as_str());
        out.extend_from_slice(b",\"wal_enabled\":");
        out.extend_from_slice(if self.wal_enabled() { b"true" } else { b"false" });
        if let Some(reason) = reason {
            out.extend_from_slice(b",\"error\":");
            write_str(&mut out, &reason);
        }
        out.push(b'}');
        Response::Json(out)
    }

    pub(crate) fn stats_response(&self) -> Response {
        let mut out = Vec::with_capacity(2048);
        self.stats_view().write_json(&mut out);
        Response::Json(out)
    }

    fn dump_count(&self) -> u64 {
        self.inner.disk.as_ref().and_then(|d| d.snapshots.dump_count().ok()).unwrap_or(0) as u64
    }

    fn lag(&self) -> u64 {
        let r = &self.inner.replication;
        match self.inner.options.role {
            Role::Slave => get(&r.source_lsn).saturating_sub(get(&r.replayed_lsn)),
            Role::Master => 0,
        }
    }

    pub(crate) fn stats_view(&self) -> StatsView {
        let i = &self.inner;
        let m = &i.metrics;
        let r = &i.replication;
        let keys: usize = i.store.all().iter().map(|s| s.data.read().counters.len()).sum();
        let recon = *m.reconciliation_last.lock();
        let (recovery_count, recovery_last) = {
            let cps = i.recovery.lock();
            (cps.len() as u64, cps.iter().map(|c| c.updated_at_unix).max().unwrap_or(0))
        };
        let (lat_last, lat_avg) = m.command_latency.read();
        let (ing_last, ing_avg) = m.ingest_latency.read();
        let (idem_last, idem_avg) = m.idempotency_latency.read();
        let (active_streams, committed_streams) = {
            let ing = i.ingest.lock();
            (ing.active.len() as u64, ing.committed.len() as u64)
        };
        let u = Stat::U;
        StatsView {
            rows: vec![
                ("uptime_seconds", Stat::F(self.uptime())),
                ("trees", u(i.store.len() as u64)),
                ("keys", u(keys as u64)),
                ("dump_count", u(self.dump_count())),
                ("role", Stat::Role(i.options.role.as_str())),
                ("wal_enabled", Stat::B(self.wal_enabled())),
                ("wal_bytes", u(self.wal_bytes())),
                ("wal_current_lsn", u(self.wal().map_or(0, |w| w.current_lsn()))),
                ("replication_replayed_lsn", u(get(&r.replayed_lsn))),
                ("replication_lag_entries", u(self.lag())),
                ("replication_entries_applied", u(get(&r.entries_applied))),
                ("replication_last_received_unix", u(get(&r.last_received_unix))),
                ("replication_poll_attempt_count", u(get(&r.poll_attempts))),
                ("replication_poll_success_count", u(get(&r.poll_successes))),
                ("replication_poll_error_count", u(get(&r.poll_errors))),
                ("replication_last_poll_attempt_unix", u(get(&r.last_poll_attempt_unix))),
                ("replication_last_poll_success_unix", u(get(&r.last_poll_success_unix))),
                ("replication_last_poll_error_unix", u(get(&r.last_poll_error_unix))),
                ("replication_last_poll_error", Stat::S(r.last_poll_error.lock().clone())),
                ("replication_bootstrap_attempt_count", u(get(&r.bootstrap_attempts))),
                ("replication_bootstrap_success_count", u(get(&r.bootstrap_successes))),
                ("replication_bootstrap_error_count", u(get(&r.bootstrap_errors))),
                ("replication_last_bootstrap_attempt_unix", u(get(&r.last_bootstrap_attempt_unix))),
                ("replication_last_bootstrap_success_unix", u(get(&r.last_bootstrap_success_unix))),
                ("replication_last_bootstrap_error_unix", u(get(&r.last_bootstrap_error_unix))),
                ("replication_last_bootstrap_error", Stat::S(r.last_bootstrap_error.lock().clone())),
                ("memory_bytes", u(memory_bytes())),
                ("command_count", u(get(&m.commands))),
                ("error_count", u(get(&m.errors))),
                ("query_timeout_count", u(get(&m.query_timeouts))),
                ("batch_read_count", u(get(&m.batch_reads))),
                ("batch_read_key_count", u(get(&m.batch_read_keys))),
                ("batch_write_count", u(get(&m.batch_writes))),
                ("batch_write_item_count", u(get(&m.batch_write_items))),
                ("retention_count", u(get(&m.retention))),
                ("compact_count", u(get(&m.compactions))),
                ("reconciliation_run_count", u(get(&m.reconciliation_runs))),
                ("reconciliation_checked_points", u(get(&m.reconciliation_checked_points))),
                ("reconciliation_mismatch_count", u(get(&m.reconciliation_mismatches))),
                ("reconciliation_absolute_drift", u(get(&m.reconciliation_drift))),
                ("reconciliation_last_run_unix", u(recon[0])),
                ("reconciliation_last_checked_points", u(recon[1])),
                ("reconciliation_last_mismatch_count", u(recon[2])),
                ("reconciliation_last_absolute_drift", u(recon[3])),
                ("reconciliation_last_max_abs_delta", u(recon[4])),
                ("recovery_checkpoint_count", u(recovery_count)),
                ("recovery_last_checkpoint_unix", u(recovery_last)),
                ("latency_ms_avg", Stat::F(lat_avg)),
                ("latency_ms_last", Stat::F(lat_last)),
                ("ingest_active_streams", u(active_streams)),
                ("ingest_chunks_applied", u(get(&m.ingest_chunks_applied))),
                ("ingest_chunks_skipped", u(get(&m.ingest_chunks_skipped))),
                ("ingest_chunks_rejected", u(get(&m.ingest_chunks_rejected))),
                ("ingest_items_applied", u(get(&m.ingest_items_applied))),
                ("ingest_latency_ms_last", Stat::F(ing_last)),
                ("ingest_latency_ms_avg", Stat::F(ing_avg)),
                ("idempotency_record_count", u(i.idempotency.lock().len() as u64)),
                ("idempotency_hits", u(get(&m.idempotency_hits))),
                ("idempotency_conflicts", u(get(&m.idempotency_conflicts))),
                ("idempotency_pruned", u(get(&m.idempotency_pruned))),
                ("idempotency_write_count", u(get(&m.idempotency_writes))),
                ("idempotency_write_latency_ms_last", Stat::F(idem_last)),
                ("idempotency_write_latency_ms_avg", Stat::F(idem_avg)),
                ("idempotency_committed_stream_count", u(committed_streams)),
            ],
        }
    }

    /// Writes one series' snapshot: copied under its read lock, encoded and
    /// written outside it.
    fn snapshot_series(&self, name: &str) -> Result<SnapshotMeta> {
        let disk = self.disk()?;
        self.check_wal_for_snapshot()?;
        let (image, lsn) = self.read_series(name, |d| Ok((image_of(d), self.position_lsn())))?;
        // The image may hold writes not yet durable: only once they are may
        // it become a file (a write the WAL then fails is never persisted).
        self.wait_durable(lsn)?;
        let bytes = snapshot::encode_tree(&image);
        disk.snapshots.write(name, self.now() as i64, lsn, &bytes)
    }

    /// `snapshot.create_all` (also SIGUSR1 and shutdown): every series, the
    /// idempotency snapshot, then WAL truncation and retention. Writers are
    /// held off while it runs so no entry can land between a snapshot and
    /// the truncation.
    pub fn snapshot_all(&self) -> Result<()> {
        self.recover_wal(true)?;
        let _admin = self.inner.admin.lock();
        self.snapshot_all_locked()
    }

    fn snapshot_all_locked(&self) -> Result<()> {
        let disk = self.disk()?;
        self.check_wal_for_snapshot()?;
        // A stream idle past its TTL must not be saved: it would come back
        // at the next start with a fresh TTL. The aborts are made durable
        // below with everything else before the WAL is truncated.
        self.expire_idle_streams_locked(&mut self.inner.ingest.lock());
        let gate = self.inner.gate.write();
        if let Some(wal) = &disk.wal {
            wal.wait_durable(wal.current_lsn())?;
        }
        let lsn = self.position_lsn();
        let now = self.now();
        let live = self.inner.store.all();
        for series in &live {
            let image = image_of(&series.data.read());
            let bytes = snapshot::encode_tree(&image);
            disk.snapshots.write(series.name(), now as i64, lsn, &bytes)?;
        }
        // The WAL is about to lose its `tree.drop` entries: a series dropped
        // without its files being removed (a crash after the drop was
        // durable, or a drop replayed at startup) must not come back from
        // its old snapshots.
        let names: std::collections::HashSet<&str> = live.iter().map(|s| s.name()).collect();
        disk.snapshots.remove_series_except(&names)?;
        let (records, streams) = self.idempotency_images();
        let active = {
            let ingest = self.inner.ingest.lock();
            let mut active: Vec<_> = ingest.active.values().collect();
            active.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
            super::persist::active_streams_json(&active)
        };
        snapshot::write_idempotency_with_active(&disk.dir, &records, &streams, &active, now, lsn)?;
        if let Some(wal) = &disk.wal {
            wal.truncate()?;
            disk.times.reset()?;
        }
        drop(gate);
        let removed = disk.snapshots.prune(self.inner.options.dump_retention_per_tree)?;
        if removed > 0 {
            tracing::info!(removed, "backup.prune");
        }
        Ok(())
    }

    pub(crate) fn snapshot_op(&self, req: &Request<'_>) -> Result<Response> {
        match (&req.op, &req.command) {
            (Op::SnapshotCreate, Command::Series { series }) => {
                self.snapshot_series(series)?;
                Ok(Response::Text(format!("Tree \"{series}\" saved")))
            }
            (Op::SnapshotCreateAll, _) => {
                self.snapshot_all_locked()?;
                Ok(Response::Ok)
            }
            (Op::SnapshotList, _) => {
                let disk = self.disk()?;
                let names = disk
                    .snapshots
                    .list()?
                    .iter()
                    .map(|m| disk.snapshots.path(&m.file).to_string_lossy().into_owned())
                    .collect();
                Ok(Response::Names(names))
            }
            (Op::SnapshotInfo, _) => self.snapshot_info(),
            (Op::SnapshotFetch, Command::File { file }) => {
                let disk = self.disk()?;
                let not_found = || Error::not_found(format!("Snapshot \"{file}\" not found"));
                let data = disk.snapshots.read(file)?.ok_or_else(not_found)?;
                let meta = disk.snapshots.meta(file)?.ok_or_else(not_found)?;
                let mut out = Vec::with_capacity(data.len() * 4 / 3 + 256);
                out.extend_from_slice(b"{\"metadata\":");
                meta_json(&mut out, &meta);
                out.extend_from_slice(b",\"data_base64\":\"");
                out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(&data).as_bytes());
                out.extend_from_slice(b"\"}");
                Ok(Response::Json(out))
            }
            (Op::SnapshotFetchChunk, Command::Chunk { file: Some(file), offset, limit }) => {
                let limit = chunk_limit(*limit)?;
                let disk = self.disk()?;
                let not_found = || Error::not_found(format!("Snapshot \"{file}\" not found"));
                let data = disk.snapshots.read(file)?.ok_or_else(not_found)?;
                let meta = disk.snapshots.meta(file)?.ok_or_else(not_found)?;
                let mut m = Vec::new();
                meta_json(&mut m, &meta);
                Ok(Response::Json(chunk_json(&m, &data, *offset, limit, "snapshot")?))
            }
            (Op::IdempotencySnapshotFetchChunk, Command::Chunk { offset, limit, .. }) => {
                let limit = chunk_limit(*limit)?;
                let disk = self.disk()?;
                let not_found = || Error::not_found("Idempotency snapshot not found");
                let data = snapshot::read_idempotency_bytes(&disk.dir)?.ok_or_else(not_found)?;
                let meta = snapshot::idempotency_meta(&disk.dir)?.ok_or_else(not_found)?;
                let mut m = Vec::new();
                idem_meta_json(&mut m, &meta);
                Ok(Response::Json(chunk_json(&m, &data, *offset, limit, "idempotency snapshot")?))
            }
            (Op::SnapshotLoad, Command::File { file }) => {
                let (_, series) = snapshot_series_of(file)?;
                let disk = self.disk()?;
                self.check_wal_for_snapshot()?;
                let bytes = disk
                    .snapshots
                    .read(file)?
                    .ok_or_else(|| Error::not_found(format!("Dump \"{series}\" not found")))?;
                let image = snapshot::decode_tree_named(&bytes, file)?;
                let mut fresh = Some(data_of(image));
                // The load is not logged (B13): it becomes durable as a new
                // snapshot of the series stamped with the current LSN, taken
                // under the same lock, so a restart restores the loaded data
                // and replays only the writes that came after it.
                let (image, lsn) = self
                    .with_series(&series, true, |data| {
                        if let Some(new) = fresh.take() {
                            data.counters = new.counters;
                        }
                        Ok((image_of(data), self.position_lsn()))
                    })?
                    .ok_or_else(|| Error::tree_not_found(&series))?;
                self.wait_durable(lsn)?;
                disk.snapshots.write(&series, self.now() as i64, lsn, &snapshot::encode_tree(&image))?;
                Ok(Response::Text(format!("Tree \"{series}\" loaded")))
            }
            (Op::SnapshotVerify, _) => self.verify(),
            _ => Err(Error::internal(format!("{} is not a snapshot op", req.op.name()))),
        }
    }

    fn snapshot_info(&self) -> Result<Response> {
        let disk = self.disk()?;
        let latest = disk.snapshots.latest_by_series()?;
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"{\"dump_count\":");
        write_u64(&mut out, disk.snapshots.dump_count()? as u64);
        out.extend_from_slice(b",\"latest_by_tree\":");
        self.write_latest(&mut out, &latest);
        out.extend_from_slice(b",\"idempotency_snapshot\":");
        match snapshot::idempotency_meta(&disk.dir)? {
            Some(m) => idem_meta_json(&mut out, &m),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"last_snapshot_lsn\":");
        write_u64(&mut out, latest.iter().map(|m| m.last_lsn).max().unwrap_or(0));
        out.extend_from_slice(b",\"wal_enabled\":");
        out.extend_from_slice(if self.wal_enabled() { b"true" } else { b"false" });
        out.extend_from_slice(b",\"wal_bytes\":");
        write_u64(&mut out, self.wal_bytes());
        out.extend_from_slice(b",\"wal_current_lsn\":");
        write_u64(&mut out, self.wal().map_or(0, |w| w.current_lsn()));
        out.extend_from_slice(b",\"dump_retention_per_tree\":");
        write_u64(&mut out, self.inner.options.dump_retention_per_tree as u64);
        out.push(b'}');
        Ok(Response::Json(out))
    }

    fn write_latest(&self, out: &mut Vec<u8>, latest: &[SnapshotMeta]) {
        out.push(b'[');
        for (i, m) in latest.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            meta_json(out, m);
        }
        out.push(b']');
    }

    pub(crate) fn admin_op(&self, req: &Request<'_>) -> Result<Response> {
        let m = &self.inner.metrics;
        match &req.command {
            Command::RecoveryStatus { source, after_source } => {
                let budget = self.response_budget(0, 0);
                Ok(Response::Json(self.recovery_status_json(source.as_deref(), after_source.as_deref(), budget)))
            }
            Command::RecoveryCheckpoint { source, offset, event_id } => {
                let _admin = self.inner.admin.lock();
                let cp = Checkpoint {
                    source: source.to_string(),
                    offset: offset.as_ref().map(|s| s.to_string()),
                    event_id: event_id.as_ref().map(|s| s.to_string()),
                    updated_at_unix: self.now(),
                };
                let mut out = Vec::with_capacity(128);
                super::recovery::checkpoint_json(&mut out, &cp);
                self.recovery_checkpoint(cp)?;
                Ok(Response::Json(out))
            }
            Command::Reconciliation { checked_points, mismatch_count, absolute_drift, max_abs_delta } => {
                let (c, mm, d, x) =
                    (*checked_points as u64, *mismatch_count as u64, *absolute_drift as u64, *max_abs_delta as u64);
                metrics::bump(&m.reconciliation_runs);
                metrics::add(&m.reconciliation_checked_points, c);
                metrics::add(&m.reconciliation_mismatches, mm);
                metrics::add(&m.reconciliation_drift, d);
                *m.reconciliation_last.lock() = [self.now(), c, mm, d, x];
                Ok(Response::Ok)
            }
            Command::NoFields if req.op == Op::ReplicationStatus => self.replication_status(),
            Command::ReplicationEntries { after_lsn, limit } => self.replication_entries(*after_lsn, *limit),
            _ => Err(Error::internal(format!("{} is not an admin op", req.op.name()))),
        }
    }

    fn replication_status(&self) -> Result<Response> {
        let view = self.stats_view();
        let mut out = Vec::with_capacity(2048);
        out.extend_from_slice(b"{\"role\":");
        write_str(&mut out, self.inner.options.role.as_str());
        out.extend_from_slice(b",\"wal_enabled\":");
        out.extend_from_slice(if self.wal_enabled() { b"true" } else { b"false" });
        out.extend_from_slice(b",\"wal_current_lsn\":");
        write_u64(&mut out, self.wal().map_or(0, |w| w.current_lsn()));
        out.extend_from_slice(b",\"wal_bytes\":");
        write_u64(&mut out, self.wal_bytes());
        out.extend_from_slice(b",\"replayed_lsn\":");
        write_u64(&mut out, get(&self.inner.replication.replayed_lsn));
        let subset = StatsView {
            rows: view
                .rows
                .into_iter()
                .filter(|(n, _)| n.starts_with("replication_") && *n != "replication_replayed_lsn")
                .collect(),
        };
        let mut rest = Vec::new();
        subset.write_json(&mut rest);
        // Splice the replication fields (without their braces) in order.
        if rest.len() > 2 {
            out.push(b',');
            out.extend_from_slice(&rest[1..rest.len() - 1]);
        }
        let latest = match &self.inner.disk {
            Some(d) => d.snapshots.latest_by_series()?,
            None => Vec::new(),
        };
        out.extend_from_slice(b",\"last_snapshot_lsn\":");
        write_u64(&mut out, latest.iter().map(|m| m.last_lsn).max().unwrap_or(0));
        out.extend_from_slice(b",\"latest_snapshots\":");
        self.write_latest(&mut out, &latest);
        out.extend_from_slice(b",\"recovery\":");
        // The checkpoints are paged like `recovery.status` if they would not
        // fit; the count after them is always the full one.
        let tail = b",\"recovery_checkpoint_count\":18446744073709551615}".len();
        let recovery = self.recovery_status_json(None, None, self.response_budget(out.len(), tail));
        out.extend_from_slice(&recovery);
        out.extend_from_slice(b",\"recovery_checkpoint_count\":");
        write_u64(&mut out, self.inner.recovery.lock().len() as u64);
        out.push(b'}');
        Ok(Response::Json(out))
    }

    fn replication_entries(&self, after_lsn: u64, limit: Option<i64>) -> Result<Response> {
        let limit = entries_limit(limit)?;
        let max = self.inner.options.max_response_bytes;
        let byte_limit = if max == 0 {
            None
        } else if max > 2048 {
            Some(max - 2048)
        } else {
            Some(max)
        };
        let restore_lsn = match &self.inner.disk {
            Some(d) => d.snapshots.restore_lsn()?,
            None => 0,
        };
        if restore_lsn > 0 && after_lsn < restore_lsn {
            return Err(Error::new(
                ErrorCode::ReplicationGap,
                format!("Requested WAL after_lsn {after_lsn} is older than snapshot LSN {restore_lsn}; bootstrap from snapshot"),
            ));
        }
        let source_lsn = self.wal().map_or(0, |w| w.current_lsn());
        let page = match self.wal() {
            Some(wal) => wal.entries_after(after_lsn, limit, byte_limit)?,
            None => Default::default(),
        };
        let mut out = Vec::with_capacity(page.entries_bytes + 256);
        out.extend_from_slice(b"{\"after_lsn\":");
        write_u64(&mut out, after_lsn);
        out.extend_from_slice(b",\"limit\":");
        write_u64(&mut out, limit as u64);
        out.extend_from_slice(b",\"byte_limit\":");
        match byte_limit {
            Some(b) => write_u64(&mut out, b as u64),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"entries_bytes\":");
        write_u64(&mut out, page.entries_bytes as u64);
        out.extend_from_slice(b",\"truncated_by_bytes\":");
        out.extend_from_slice(if page.truncated_by_bytes { b"true" } else { b"false" });
        out.extend_from_slice(b",\"count\":");
        write_u64(&mut out, page.entries.len() as u64);
        out.extend_from_slice(b",\"source_lsn\":");
        write_u64(&mut out, source_lsn);
        out.extend_from_slice(b",\"entries\":[");
        let mut next = after_lsn;
        for (i, (lsn, entry)) in page.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"lsn\":");
            write_u64(&mut out, *lsn);
            out.extend_from_slice(b",\"entry\":");
            out.extend_from_slice(entry.as_bytes());
            out.push(b'}');
            next = *lsn;
        }
        out.extend_from_slice(b"],\"next_lsn\":");
        write_u64(&mut out, next);
        out.push(b'}');
        Ok(Response::Json(out))
    }

    pub(crate) fn prune(&self, req: &Request<'_>, ctx: Ctx<'_>) -> Result<Outcome> {
        let Command::Prune { before, limit } = &req.command else {
            return Err(Error::internal("not a prune"));
        };
        let (PruneBefore::Unix(b) | PruneBefore::Rfc3339(b)) = before;
        let limit = limit.map(|l| resolve_limit(Some(l), 0, 100_000)).transpose()?;
        let mut registry = self.inner.idempotency.lock();
        let lsn = self.append(self.entry_for(req, ctx, None).as_deref())?;
        let deleted = registry.prune_before(*b, limit);
        metrics::add(&self.inner.metrics.idempotency_pruned, deleted as u64);
        let mut out = Vec::with_capacity(24);
        out.extend_from_slice(b"{\"deleted\":");
        write_u64(&mut out, deleted as u64);
        out.push(b'}');
        Ok(Outcome { response: Response::Json(out), lsn, idempotent: None })
    }
}
