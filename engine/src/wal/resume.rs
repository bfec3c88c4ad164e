//! Resuming a failed WAL (issue 10 item 2). A failed write, fsync, rotation
//! or truncation stops the WAL: every later append is refused. The engine
//! then puts memory back to the acknowledged state (what the files hold)
//! and calls [`Wal::try_resume`] before serving requests, so the WAL comes
//! back by itself once the disk accepts writes again, as Redis does after an
//! AOF write error.
//!
//! Entries handed an LSN before the failure were never written, and their
//! writers were told so. Their LSNs must not acknowledge anything later:
//! on a master they are written as no-op fillers (the LSN sequence stays
//! whole for replication and `snapshot.verify`) and remembered as lost, so a
//! late waiter for one of them is refused; on a slave they are handed out
//! again, because the master's entries under those LSNs must still be
//! applied.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::handle::{closed_error, unavailable, Item, Wal};
use super::pending::Chunk;
use super::segments::ACTIVE_FILE;
use crate::error::{Error, Result};
use crate::files::{label, open_regular};
use crate::options::FsyncPolicy;

/// The entry that fills the LSN of an entry lost to a WAL failure: a read
/// that changes nothing when replayed, applied by a slave, or read by Karma
/// 1.0.
pub const FILLER_ENTRY: &[u8] = br#"{"v":2,"op":"system.ping"}"#;

/// Written, fsynced and removed to learn whether the disk takes writes again.
const PROBE_FILE: &str = "karma.wal.probe";
const PROBE_BYTES: usize = 64 * 1024;

impl Wal {
    /// When the WAL has failed: drops what is still queued, checks that the
    /// disk takes a write and an fsync again, cuts `karma.wal` back to what
    /// was acknowledged and, with `fill_lost`, writes fillers for the LSNs
    /// handed out but never written. `Ok(true)` once writes are accepted
    /// again, `Ok(false)` if the WAL had not failed, `Err` (still failed)
    /// otherwise. The caller must have put memory back to the acknowledged
    /// state first: nothing written before the failure is written now.
    pub fn try_resume(&self, fill_lost: bool) -> Result<bool> {
        let mut writer = self.core.lock();
        let (durable, assigned) = {
            let mut st = self.shared.state.lock();
            let Some(cause) = st.failure.clone() else { return Ok(false) };
            if st.closing || st.closed {
                return Err(closed_error());
            }
            for item in std::mem::take(&mut st.queue) {
                if let Item::Truncate { reply, .. } = item {
                    let _ = reply.send(Err(unavailable(&cause)));
                }
            }
            (st.durable, st.assigned)
        };
        // Start over with fresh handles on a file holding only what was
        // acknowledged (a failed group was cut off already; this covers a
        // cut that failed too).
        writer.file = None;
        self.shared.sync_files.lock().clear();
        let dir = self.shared.cfg.dir.clone();
        probe(&dir)?;
        let active = dir.join(ACTIVE_FILE);
        let acknowledged = self.shared.files.read().active_len;
        if fs::metadata(&active).is_ok_and(|m| m.len() > acknowledged) {
            open_regular(&active, OpenOptions::new().write(true))
                .and_then(|f| f.set_len(acknowledged))
                .map_err(|e| Error::io(format!("Cannot cut back {}", label(&active)), e))?;
        }
        let mut written = 0;
        if fill_lost && assigned > durable {
            let mut fillers = Chunk::default();
            for lsn in durable + 1..=assigned {
                fillers.push(lsn, FILLER_ENTRY);
            }
            written = writer.write_group(&fillers)?.0;
            if self.shared.cfg.fsync == FsyncPolicy::EverySec {
                // Written, not yet synced: the background fsync covers them.
                self.shared.unsynced.store(true, Ordering::Release);
            }
        }
        let mut st = self.shared.state.lock();
        st.bytes += written;
        if fill_lost {
            if assigned > durable {
                st.lost.push((durable + 1, assigned));
                self.shared.has_lost.store(true, Ordering::Release);
            }
            st.durable = assigned;
        } else {
            st.assigned = st.durable;
        }
        st.failure = None;
        self.shared.failed.store(false, Ordering::Release);
        // After the lost range: a waiter that sees this also sees the range.
        self.shared.durable_hint.store(st.durable, Ordering::Release);
        drop(st);
        self.shared.durable.notify_all();
        tracing::warn!(
            lost_from = durable + 1,
            lost_to = assigned,
            filled = fill_lost,
            "wal.resumed: the disk takes writes again; entries of the failed groups were not written"
        );
        Ok(true)
    }
}

/// Writes and fsyncs a probe file, then removes it.
fn probe(dir: &Path) -> Result<()> {
    let path = dir.join(PROBE_FILE);
    let result = (|| -> std::io::Result<()> {
        #[cfg(feature = "fault-injection")]
        crate::fault::disk_full()?;
        let mut file = open_regular(&path, OpenOptions::new().write(true).create(true).truncate(true))?;
        file.write_all(&[0u8; PROBE_BYTES])?;
        file.sync_data()
    })();
    let _ = fs::remove_file(&path);
    result.map_err(|e| Error::io(format!("The WAL is still failing: cannot write {PROBE_FILE}"), e))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::mpsc::channel;

    use super::*;
    use crate::wal::{read_all, segment_name, WalConfig};

    /// A WAL whose second entry failed: with one-byte segments every group
    /// rotates, and a file where the rotation must go fails it, as a full
    /// disk would. Returns the WAL, the blocking file and the lost LSN.
    fn failed_wal(dir: &Path) -> (Wal, std::path::PathBuf, u64) {
        let wal = Wal::open(WalConfig { fsync: FsyncPolicy::Never, segment_bytes: 1, ..WalConfig::new(dir) }).unwrap();
        let first = wal.append(br#"{"op":"a"}"#).unwrap();
        wal.wait_durable(first).unwrap();
        let blocker = dir.join(segment_name(first));
        fs::write(&blocker, b"").unwrap();
        let lost = wal.append(br#"{"op":"lost"}"#).unwrap();
        assert!(wal.wait_durable(lost).is_err());
        assert!(wal.is_failed());
        (wal, blocker, lost)
    }

    fn entries(dir: &Path) -> Vec<(u64, String)> {
        let mut seen = Vec::new();
        read_all(dir, |lsn, entry| {
            seen.push((lsn, entry.to_owned()));
            Ok(())
        })
        .unwrap();
        seen
    }

    #[test]
    fn a_master_resume_fills_the_lost_lsns_and_never_acknowledges_them() {
        let d = tempfile::tempdir().unwrap();
        let (wal, blocker, lost) = failed_wal(d.path());
        assert!(wal.append(br#"{"op":"refused"}"#).is_err());
        // The disk is still "full": no resume.
        assert!(wal.try_resume(true).is_err());
        assert!(wal.is_failed());
        fs::remove_file(&blocker).unwrap();
        assert_eq!(wal.try_resume(true), Ok(true));
        assert!(!wal.is_failed() && wal.failure().is_none());
        assert_eq!(wal.try_resume(true), Ok(false), "nothing left to resume");
        let next = wal.append(br#"{"op":"b"}"#).unwrap();
        assert_eq!(next, lost + 1, "LSNs go on after the lost one");
        wal.wait_durable(next).unwrap();
        // A late waiter for the lost entry is refused by every path, though
        // the durable LSN has passed it.
        assert!(wal.wait_durable(lost).is_err());
        assert!(matches!(wal.try_durable_now(lost), Some(Err(_))));
        let (tx, rx) = channel();
        wal.on_durable(lost, Box::new(move |r| tx.send(r).unwrap()));
        assert!(rx.recv().unwrap().is_err());
        wal.close().unwrap();
        let filler = String::from_utf8(FILLER_ENTRY.to_vec()).unwrap();
        assert_eq!(
            entries(d.path()),
            [(1, r#"{"op":"a"}"#.to_owned()), (lost, filler), (next, r#"{"op":"b"}"#.to_owned())],
            "the lost entry is never written; a filler keeps the LSNs whole"
        );
    }

    #[test]
    fn a_slave_resume_hands_the_lost_lsns_out_again() {
        let d = tempfile::tempdir().unwrap();
        let (wal, blocker, lost) = failed_wal(d.path());
        fs::remove_file(&blocker).unwrap();
        assert_eq!(wal.try_resume(false), Ok(true));
        let next = wal.append(br#"{"op":"b"}"#).unwrap();
        assert_eq!(next, lost, "the master's entry under that LSN is still to come");
        wal.wait_durable(next).unwrap();
        wal.close().unwrap();
        assert_eq!(entries(d.path()), [(1, r#"{"op":"a"}"#.to_owned()), (lost, r#"{"op":"b"}"#.to_owned())]);
    }
}
