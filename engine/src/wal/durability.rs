//! Waiting for durability: the blocking wait of threads that may block,
//! the non-blocking attempt and completion callbacks of async callers
//! (spec/persistence.md §3.8).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::handle::{closed_error, lost_error, unavailable, Wal};
use crate::error::{Error, Result};

/// How long [`Wal::wait_durable`] yields before it parks: a few fast
/// fsyncs, so a waiter sleeps only when the disk is slow.
const SPIN_LIMIT: Duration = Duration::from_micros(200);

/// How long [`Wal::try_durable_now`] (fsync off) waits for another
/// thread's group write before it gives up.
const TRY_SPIN_LIMIT: Duration = Duration::from_micros(20);

impl Wal {
    /// Blocks until every entry `<= lsn` is durable; `Err` if the WAL failed first.
    pub fn wait_durable(&self, lsn: u64) -> Result<()> {
        if self.spin_until_durable(lsn) {
            return self.not_lost(lsn);
        }
        let mut st = self.shared.state.lock();
        if lsn > st.assigned {
            return Err(Error::internal(format!("WAL LSN {lsn} was never assigned")));
        }
        loop {
            if st.durable >= lsn {
                return if st.is_lost(lsn) { Err(lost_error(lsn)) } else { Ok(()) };
            }
            if let Some(cause) = &st.failure {
                return Err(unavailable(cause));
            }
            if st.closed {
                return Err(closed_error());
            }
            // The writer is free: commit the queue here instead of handing
            // it to the writer thread and waiting to be woken. `try_lock`
            // never blocks while the state lock is held, and whoever holds
            // the writer takes the state lock only after it.
            if !st.closing && std::thread::current().id() != self.thread_id {
                if let Some(mut writer) = self.core.try_lock() {
                    drop(st);
                    writer.step();
                    drop(writer);
                    st = self.shared.state.lock();
                    continue;
                }
            }
            self.shared.durable.wait(&mut st);
        }
    }

    /// `Ok` unless `lsn` (now below the durable LSN) was handed out before a
    /// WAL failure and never written. [`Wal::try_resume`] records the lost
    /// range before it publishes the durable LSN that passes it, so a waiter
    /// that saw that LSN also sees the range.
    fn not_lost(&self, lsn: u64) -> Result<()> {
        if self.shared.has_lost.load(Ordering::Acquire) && self.shared.state.lock().is_lost(lsn) {
            return Err(lost_error(lsn));
        }
        Ok(())
    }

    /// The short spin before sleeping in [`Wal::wait_durable`]: while
    /// another thread's group (which may hold `lsn`) is being written, yield
    /// instead of parking, and commit the queue when the writer comes free.
    /// A parked waiter costs a futex wake and a context switch per
    /// acknowledgement, which with many writers on few cores costs more than
    /// the fsync they share. `true` once `lsn` is durable.
    fn spin_until_durable(&self, lsn: u64) -> bool {
        if self.shared.durable_hint.load(Ordering::Acquire) >= lsn {
            return true;
        }
        let start = Instant::now();
        let may_commit = std::thread::current().id() != self.thread_id;
        loop {
            if self.shared.durable_hint.load(Ordering::Acquire) >= lsn {
                return true;
            }
            if may_commit {
                if let Some(mut writer) = self.core.try_lock() {
                    if !writer.step() {
                        return false;
                    }
                    continue;
                }
            }
            if start.elapsed() >= SPIN_LIMIT {
                return false;
            }
            std::thread::yield_now();
        }
    }

    /// Whether the group holding `lsn` has been committed, without a lock.
    /// Only a hint for deciding whether to wait at all: the outcome (a range
    /// lost to a WAL failure included) comes from the waiting calls.
    pub fn is_committed(&self, lsn: u64) -> bool {
        self.shared.durable_hint.load(Ordering::Acquire) >= lsn
    }

    /// Makes `lsn` durable on this thread if that needs no waiting: `Some`
    /// when it already is, or the writer was free and this call committed
    /// the queue; `None` when another thread holds the writer (use
    /// [`Wal::on_durable`] then). For async callers that must not block.
    pub fn try_durable_now(&self, lsn: u64) -> Option<Result<()>> {
        if self.shared.durable_hint.load(Ordering::Acquire) >= lsn {
            return Some(self.not_lost(lsn));
        }
        if self.shared.cfg.fsync.fsync_before_ack() {
            // An fsync can take milliseconds: never on the caller's thread,
            // which would stop every other connection it serves. The writer
            // thread commits the group (with whatever else arrives
            // meanwhile) and runs the caller's callback.
            let st = self.shared.state.lock();
            return match &st.failure {
                _ if st.durable >= lsn && st.is_lost(lsn) => Some(Err(lost_error(lsn))),
                _ if st.durable >= lsn => Some(Ok(())),
                Some(cause) => Some(Err(unavailable(cause))),
                None => None,
            };
        }
        // Read the clock only once there is something to wait for.
        let mut start: Option<Instant> = None;
        loop {
            let st = self.shared.state.lock();
            if st.durable >= lsn {
                return Some(if st.is_lost(lsn) { Err(lost_error(lsn)) } else { Ok(()) });
            }
            if let Some(cause) = &st.failure {
                return Some(Err(unavailable(cause)));
            }
            if st.closed || st.closing || lsn > st.assigned {
                return None;
            }
            let Some(mut writer) = self.core.try_lock() else {
                drop(st);
                // Another thread is writing a group: without fsync that is
                // one write(2), over in microseconds, and cheaper to wait
                // out here than a callback from the writer thread.
                let start = *start.get_or_insert_with(Instant::now);
                if start.elapsed() >= TRY_SPIN_LIMIT {
                    return None;
                }
                // Watch the atomic, not the state lock the writer needs to
                // finish its group.
                while self.core.is_locked()
                    && self.shared.durable_hint.load(Ordering::Acquire) < lsn
                    && start.elapsed() < TRY_SPIN_LIMIT
                {
                    std::hint::spin_loop();
                }
                continue;
            };
            drop(st);
            if !writer.step() {
                return None;
            }
        }
    }

    /// Calls `done` once `lsn` is durable (or the WAL failed): at once if it
    /// already is, otherwise on the writer thread.
    pub fn on_durable(&self, lsn: u64, done: Box<dyn FnOnce(Result<()>) + Send>) {
        let mut st = self.shared.state.lock();
        let outcome = if st.durable >= lsn && st.is_lost(lsn) {
            Err(lost_error(lsn))
        } else if st.durable >= lsn {
            Ok(())
        } else if let Some(cause) = &st.failure {
            Err(unavailable(cause))
        } else if st.closed {
            Err(closed_error())
        } else if lsn > st.assigned {
            Err(Error::internal(format!("WAL LSN {lsn} was never assigned")))
        } else {
            st.callbacks.push((lsn, done));
            // Someone is waiting now: the writer must not leave it to its
            // next sweep (appends never wake it). While it gathers the next
            // group, only the callback that completes the group wakes it:
            // one wake-up per group, not one per connection.
            let wake = st.callbacks.len() >= st.wake_at_callbacks;
            drop(st);
            if wake {
                self.shared.work.notify_one();
            }
            return;
        };
        drop(st);
        done(outcome);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::options::FsyncPolicy;
    use crate::wal::WalConfig;

    fn open(dir: &Path, fsync: bool) -> Wal {
        let fsync = if fsync { FsyncPolicy::Always } else { FsyncPolicy::Never };
        Wal::open(WalConfig { fsync, ..WalConfig::new(dir) }).unwrap()
    }

    #[test]
    fn a_waiter_held_up_longer_than_its_spin_is_acknowledged_once_the_writer_is_free() {
        // Another thread holds the writer (as during a slow fsync) for far
        // longer than the spin, then lets go without committing anything:
        // the waiter must not be acknowledged meanwhile, must not give up,
        // and must be acknowledged afterwards (by the writer thread's sweep
        // if it parked, or by committing itself).
        let d = tempfile::tempdir().unwrap();
        let wal = Arc::new(open(d.path(), true));
        let holder = wal.core.lock();
        let waiter = {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                let lsn = wal.append(br#"{"op":"x"}"#).unwrap();
                wal.wait_durable(lsn).map(|()| lsn)
            })
        };
        std::thread::sleep(SPIN_LIMIT * 20);
        assert!(!waiter.is_finished(), "acknowledged while the writer was held");
        assert_eq!(wal.durable_lsn(), 0);
        drop(holder);
        let lsn = waiter.join().unwrap().unwrap();
        assert!(wal.durable_lsn() >= lsn);
        wal.close().unwrap();
    }

    #[test]
    fn under_always_try_durable_now_leaves_the_fsync_to_the_writer_thread() {
        // The writer is held (as during another group's slow fsync): the
        // async path must neither commit nor wait, and the callback it then
        // registers is completed by the writer thread once it is free.
        let d = tempfile::tempdir().unwrap();
        let wal = open(d.path(), true);
        let lsn = wal.append(br#"{"op":"x"}"#).unwrap();
        let holder = wal.core.lock();
        assert_eq!(wal.try_durable_now(lsn), None);
        let (tx, rx) = std::sync::mpsc::channel();
        wal.on_durable(
            lsn,
            Box::new(move |r| {
                let _ = tx.send((r, std::thread::current().name().map(str::to_owned)));
            }),
        );
        assert!(rx.try_recv().is_err(), "acknowledged while the writer was held");
        drop(holder);
        let (result, thread) = rx.recv().unwrap();
        assert_eq!(result, Ok(()));
        assert_eq!(thread.as_deref(), Some("karma-wal-writer"));
        assert_eq!(wal.try_durable_now(lsn), Some(Ok(())));
        let stats = wal.stats();
        assert_eq!((stats.groups, stats.fsyncs), (1, 1));
        assert!(stats.fsync_micros_max <= stats.fsync_micros_total);
        wal.close().unwrap();
    }

    #[test]
    fn under_always_try_durable_now_never_commits_even_when_the_writer_is_free() {
        let d = tempfile::tempdir().unwrap();
        let wal = open(d.path(), true);
        let lsn = wal.append(br#"{"op":"x"}"#).unwrap();
        let first = wal.try_durable_now(lsn);
        // Either the writer thread's sweep already committed it, or it is
        // left to that thread; never written by this caller.
        assert!(first.is_none() || first == Some(Ok(())));
        wal.wait_durable(lsn).unwrap();
        assert_eq!(wal.try_durable_now(lsn), Some(Ok(())));
        wal.close().unwrap();
    }

    #[test]
    fn try_durable_now_gives_up_when_the_writer_stays_busy() {
        // fsync off: it waits out a group write for a moment, then hands the
        // wait to the caller (None) instead of blocking an async worker.
        let d = tempfile::tempdir().unwrap();
        let wal = open(d.path(), false);
        let lsn = wal.append(br#"{"op":"x"}"#).unwrap();
        let holder = wal.core.lock();
        assert_eq!(wal.try_durable_now(lsn), None);
        drop(holder);
        wal.wait_durable(lsn).unwrap();
        assert_eq!(wal.try_durable_now(lsn), Some(Ok(())));
        wal.close().unwrap();
    }
}
