//! Memory never runs ahead of a failed WAL (issue 10 item 2). A write is
//! applied in memory right after it gets its LSN and acknowledged once that
//! LSN is durable; if the WAL fails first, its writer gets the error, and
//! before the next request is served memory is rebuilt from the data
//! directory (snapshots plus the WAL as written), which is exactly the
//! acknowledged state. Snapshots are refused while the WAL is failed.
//! Writes, health checks, snapshots and closing also try to resume the WAL
//! ([`crate::wal::Wal::try_resume`]), so it recovers by itself once the
//! disk takes writes again; reads only wait for the rebuild.

use crate::error::{Error, ErrorCode, Result};
use crate::idempotency::Registry;
use crate::options::{Options, Role};
use crate::wal::Wal;

use super::Engine;

impl Engine {
    /// Before serving a request: when the WAL has failed, rebuild memory
    /// from disk (once per failure) and, with `resume`, try to resume the
    /// WAL. One atomic load when the WAL is healthy. `Err` only when memory
    /// could not be rebuilt: then nothing may be served from it.
    #[inline]
    pub(crate) fn recover_wal(&self, resume: bool) -> Result<()> {
        match self.wal() {
            Some(wal) if wal.is_failed() => self.recover_failed_wal(wal, resume),
            _ => Ok(()),
        }
    }

    #[cold]
    fn recover_failed_wal(&self, wal: &Wal, resume: bool) -> Result<()> {
        // Lock order: this, then admin, then the gate (no caller holds either).
        let mut rebuilt = self.inner.wal_rebuilt.lock();
        let failures = wal.failure_count();
        if *rebuilt == failures && !resume {
            return Ok(());
        }
        let _admin = self.inner.admin.lock();
        // No write is between its LSN and its apply while this is held.
        let _gate = self.inner.gate.write();
        if *rebuilt != failures {
            self.rebuild_from_disk().map_err(|e| {
                tracing::error!(error = %e, "wal.rebuild_failed: memory may hold unacknowledged writes");
                Error::new(
                    e.code(),
                    format!("WAL is unavailable: cannot restore the acknowledged state: {}", e.message()),
                )
            })?;
            tracing::warn!(failures, "wal.rebuilt: memory holds only acknowledged writes again");
            *rebuilt = failures;
        }
        if resume {
            // A slave must apply the master's entries under the lost LSNs
            // again; a master fills them.
            match wal.try_resume(self.inner.options.role == Role::Master) {
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "wal.resume_failed"),
            }
        }
        Ok(())
    }

    /// Replaces series, idempotency records and ingest streams with what
    /// the data directory holds, decoded into a scratch engine first.
    fn rebuild_from_disk(&self) -> Result<()> {
        let Some(disk) = &self.inner.disk else { return Ok(()) };
        if !self.inner.options.restore {
            // Memory did not start from the directory, so the directory
            // cannot tell what was acknowledged.
            return Err(Error::validation("the engine was opened without restore"));
        }
        let options = Options { directory: None, ..self.inner.options.clone() };
        let scratch = Engine::from_parts(options, None);
        let (_, times) = super::persist::TimesLog::open(&disk.dir)?;
        *scratch.inner.replay_times.lock() = times;
        let through = disk.wal.as_ref().map_or(u64::MAX, Wal::durable_lsn);
        scratch.restore_from(&disk.dir, &disk.snapshots, Some(through))?;
        let series = scratch
            .inner
            .store
            .all()
            .iter()
            .map(|s| (s.name().to_owned(), std::mem::take(&mut *s.data.write())))
            .collect();
        self.inner.store.replace_all(series);
        let o = &self.inner.options;
        let registry = std::mem::replace(
            &mut *scratch.inner.idempotency.lock(),
            Registry::new(o.idempotency_max_records, o.idempotency_max_age_seconds),
        );
        *self.inner.idempotency.lock() = registry;
        *self.inner.ingest.lock() = std::mem::take(&mut *scratch.inner.ingest.lock());
        Ok(())
    }

    /// Snapshots are refused while the WAL is failed: memory is put back to
    /// the acknowledged state, but the LSN a snapshot would be stamped with
    /// may name entries that were never written.
    pub(crate) fn check_wal_for_snapshot(&self) -> Result<()> {
        match self.wal().and_then(Wal::failure) {
            Some(cause) => Err(Error::new(
                ErrorCode::InternalError,
                format!("WAL is unavailable: {cause}; snapshots are refused until it recovers"),
            )),
            None => Ok(()),
        }
    }
}
