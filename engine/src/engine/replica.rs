//! The slave side of replication: apply a master's WAL page through the same
//! execution path as replay, logging each entry into our own WAL under the
//! master's LSN. A slave therefore restarts from its own files without
//! re-bootstrapping, and a promoted slave numbers new writes after the
//! highest LSN it holds.

use crate::error::{Error, ErrorCode, Result};
use crate::files::write_lsn_file_atomic;
use crate::json;
use crate::metrics::{self, get, ReplicationStats};
use crate::protocol::request::parse_request;

use super::{Ctx, Engine, Outcome};

/// The file Karma 1.0 slaves keep their replayed LSN in.
pub const REPLICATION_LSN_FILE: &str = "karma.replication.lsn";

impl Engine {
    /// Replication counters, shared with the poller that drives this engine.
    pub fn replication_stats(&self) -> &ReplicationStats {
        &self.inner.replication
    }

    /// The last master LSN this node holds (what to ask the master for next).
    pub fn replicated_lsn(&self) -> u64 {
        let own = self.wal().map_or(0, |w| w.current_lsn());
        own.max(get(&self.inner.replication.replayed_lsn))
    }

    /// Records the master's current LSN (for lag), never moving backwards.
    pub fn note_source_lsn(&self, lsn: u64) {
        self.inner.replication.source_lsn.fetch_max(lsn, std::sync::atomic::Ordering::Relaxed);
    }

    /// Applies one page of `(lsn, entry)` from `replication.entries`, in
    /// order. Entries at or below our position are skipped; a hole is a
    /// `replication_gap`. Returns how many entries were applied.
    pub fn apply_replication_page(&self, entries: &[(u64, String)]) -> Result<usize> {
        self.recover_wal(true)?;
        let mut current = self.replicated_lsn();
        if let Some(wal) = self.wal() {
            wal.ensure_lsn_at_least(current);
        }
        let mut applied = 0;
        let mut last_lsn = None;
        for (lsn, entry) in entries {
            let lsn = *lsn;
            if lsn <= current {
                continue;
            }
            if lsn != current + 1 {
                return Err(Error::new(
                    ErrorCode::ReplicationGap,
                    format!("Replication gap: expected LSN {}, got {lsn}", current + 1),
                ));
            }
            self.apply_one(lsn, entry)?;
            current = lsn;
            applied += 1;
            last_lsn = Some(lsn);
        }
        if let Some(lsn) = last_lsn {
            if let Some(wal) = self.wal() {
                wal.wait_durable(lsn)?;
            }
            self.set_replayed(lsn)?;
            let r = &self.inner.replication;
            metrics::add(&r.entries_applied, applied as u64);
            r.last_received_unix.store(self.now(), std::sync::atomic::Ordering::Relaxed);
        }
        Ok(applied)
    }

    fn apply_one(&self, lsn: u64, entry: &str) -> Result<()> {
        let doc = json::parse(entry.as_bytes())
            .map_err(|e| Error::new(ErrorCode::ReplicationError, format!("Cannot parse WAL entry {lsn}: {e}")))?;
        let req = parse_request(&doc).map_err(|e| {
            Error::new(ErrorCode::ReplicationError, format!("Cannot apply WAL entry {lsn}: {}", e.message()))
        })?;
        let ctx = Ctx { internal: true, replay: None, batch: None };
        match self.execute_ctx(&req, ctx) {
            Ok(outcome) if outcome.lsn == Some(lsn) || self.wal().is_none() => Ok(()),
            // An entry that changes nothing (the filler a master writes for
            // an LSN lost to a WAL failure): keep the LSN sequence whole.
            Ok(Outcome { lsn: None, .. }) => match self.wal() {
                Some(wal) => wal.append(entry.as_bytes()).map(|_| ()),
                None => Ok(()),
            },
            Ok(outcome) => Err(Error::new(
                ErrorCode::ReplicationError,
                format!("WAL entry {lsn} was logged locally as {:?}", outcome.lsn),
            )),
            Err(err) => {
                // Karma 1.0 masters log some requests that then failed (B1);
                // they changed nothing there and change nothing here. Keep the
                // LSN sequence whole by logging the entry as it came.
                tracing::warn!(lsn, error = %err, "replication.skipped_failed_entry");
                match self.wal() {
                    Some(wal) => wal.append(entry.as_bytes()).map(|_| ()),
                    None => Ok(()),
                }
            }
        }
    }

    fn set_replayed(&self, lsn: u64) -> Result<()> {
        self.inner.replication.replayed_lsn.store(lsn, std::sync::atomic::Ordering::Relaxed);
        if let Some(disk) = &self.inner.disk {
            write_lsn_file_atomic(
                &disk.dir,
                REPLICATION_LSN_FILE,
                lsn,
                self.inner.options.wal_fsync.fsync_before_ack(),
            )?;
        }
        Ok(())
    }

    /// Replaces everything with the snapshots now in the data directory
    /// (installed by a re-bootstrap after a `replication_gap`): clears memory,
    /// truncates our WAL, restores, and continues from the snapshots' LSN.
    pub fn reload_from_snapshots(&self) -> Result<()> {
        let Some(disk) = &self.inner.disk else {
            return Err(Error::validation("This engine has no data directory"));
        };
        self.reload_snapshots()?;
        let lsn = disk.snapshots.restore_lsn()?;
        self.set_replayed(lsn)?;
        if let Some(wal) = &disk.wal {
            wal.ensure_lsn_at_least(lsn);
        }
        Ok(())
    }

    /// After opening a slave: our position is the higher of our own WAL and
    /// the snapshots we restored.
    pub(crate) fn init_replica_position(&self) -> Result<()> {
        let Some(disk) = &self.inner.disk else { return Ok(()) };
        let restored = disk.snapshots.restore_lsn()?;
        let own = self.wal().map_or(0, |w| w.current_lsn());
        let lsn = restored.max(own);
        if let Some(wal) = self.wal() {
            wal.ensure_lsn_at_least(lsn);
        }
        self.inner.replication.replayed_lsn.store(lsn, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}
