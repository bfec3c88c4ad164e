//! The writer: one group commit at a time (by the writer thread, or by a
//! waiter that finds it free), segment rotation, truncation of the files,
//! and the writer thread's loop with its `everysec` background fsync
//! (spec/persistence.md §3.7–§3.11).

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::handle::{closed_error, unavailable, Callback, Item, Shared, State};
use super::index::write_index;
use super::pending::Chunk;
use super::segments::{list_files, segment_name, ACTIVE_FILE, LSN_FILE};
use crate::error::{Error, Result};
use crate::files::{fsync_dir, label, open_regular, write_lsn_file_atomic};
use crate::options::FsyncPolicy;

/// How far ahead of the log's end the writer zero-fills the active file.
/// A group then overwrites bytes that are already allocated: its
/// fdatasync (`always`, `everysec`) need not also commit a new file size
/// through the filesystem journal, and its write(2) (every policy) finds
/// its page-cache pages and delayed-allocation blocks in place instead of
/// adding them, which makes a 2.6 KiB write about half as expensive on
/// ext4. Only the group that extends the file pays for that, once per
/// chunk. (Not `fallocate`: its unwritten extents turn into written ones
/// on the first write, which is a metadata change again.)
const PREALLOCATION_CHUNK: u64 = 1 << 20;

/// Zeros for filling the active file ahead of the log.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// The writer thread's private state.
pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) file: Option<File>,
    /// Length of the open active file: the log (`FileSet::active_len`)
    /// followed by zeros. Valid while `file` is open.
    file_len: u64,
}

impl Writer {
    pub(super) fn new(shared: Arc<Shared>) -> Writer {
        Writer { shared, file: None, file_len: 0 }
    }

    /// Writes what is queued: one group of entries or one truncation.
    /// Returns whether there was anything to do.
    pub(super) fn step(&mut self) -> bool {
        match self.next_item() {
            Some(Item::Entries(chunk)) => self.commit(chunk),
            Some(Item::Truncate { lsn, reply }) => {
                let result = self.truncate(lsn);
                let _ = reply.send(result);
            }
            None => return false,
        }
        true
    }

    /// Takes the next group (a chunk of at most `batch_size` entries, which
    /// a truncation never splits) or truncation; `None` when nothing is
    /// queued.
    fn next_item(&mut self) -> Option<Item> {
        let shared = Arc::clone(&self.shared);
        let mut st = shared.state.lock();
        self.wait_for_fuller_group(&mut st);
        let item = st.queue.pop_front()?;
        st.in_flight = true;
        if let Item::Entries(chunk) = &item {
            st.in_flight_bytes = chunk.bytes().len() as u64;
        }
        Some(item)
    }

    /// `batch_wait`: while the only item queued is a group with room left,
    /// leaves it there for appends to extend, until it is full, the wait is
    /// over, or closing needs the writer. (The queue stays non-empty
    /// meanwhile, so an LSN-floor raise does not count it as written.)
    fn wait_for_fuller_group(&self, st: &mut parking_lot::MutexGuard<'_, State>) {
        let wait = self.shared.cfg.batch_wait;
        if wait.is_zero() {
            return;
        }
        let max = self.shared.cfg.batch_size.max(1);
        let growing = |st: &State| {
            st.queue.len() == 1 && matches!(st.queue.front(), Some(Item::Entries(chunk)) if chunk.len() < max)
        };
        let deadline = Instant::now() + wait;
        while growing(st) && !st.closing {
            if self.shared.work.wait_until(st, deadline).timed_out() {
                break;
            }
        }
    }

    fn commit(&mut self, chunk: Chunk) {
        let failed = self.shared.state.lock().failure.clone();
        let result = match failed {
            Some(cause) => Err(cause),
            None => self.write_group(&chunk),
        };
        if result.is_ok() && self.shared.cfg.fsync == FsyncPolicy::EverySec {
            self.shared.unsynced.store(true, Ordering::Release);
        }
        let last = chunk.last_lsn().unwrap_or(0);
        let mut st = self.shared.state.lock();
        st.in_flight = false;
        st.in_flight_bytes = 0;
        match result {
            Ok((written, fsync_took)) => {
                st.durable = st.durable.max(last);
                if st.queue.is_empty() {
                    // Nothing else assigned is pending: LSN-floor raises are durable too.
                    st.durable = st.assigned;
                }
                st.bytes += written;
                st.stats.groups += 1;
                st.stats.entries += chunk.len() as u64;
                if let Some(took) = fsync_took {
                    st.stats.count_fsync(took);
                }
            }
            Err(e) => self.shared.fail(&mut st, e, "wal.write_failed"),
        }
        st.recycle(chunk);
        self.finish(st);
    }

    /// Wakes waiters and runs every callback that is now decided.
    fn finish(&self, mut st: parking_lot::MutexGuard<'_, State>) {
        let durable = st.durable;
        self.shared.durable_hint.store(durable, Ordering::Release);
        let failure = st.failure.clone();
        let mut ready: Vec<(Callback, Result<()>)> = Vec::new();
        let pending = std::mem::take(&mut st.callbacks);
        for (lsn, cb) in pending {
            if lsn <= durable {
                ready.push((cb, Ok(())));
            } else if let Some(cause) = &failure {
                ready.push((cb, Err(unavailable(cause))));
            } else {
                st.callbacks.push((lsn, cb));
            }
        }
        st.answered = ready.len();
        drop(st);
        self.shared.durable.notify_all();
        for (cb, r) in ready {
            cb(r);
        }
    }

    fn active_path(&self) -> PathBuf {
        self.shared.cfg.dir.join(ACTIVE_FILE)
    }

    /// Writes one group, framed already, with one positional write at the
    /// log's end (plus zeros ahead of it when the file grows) and at most
    /// one fsync. Returns the bytes written and how long the fsync took, if
    /// there was one. On failure the file is cut back to its old length.
    pub(super) fn write_group(&mut self, chunk: &Chunk) -> Result<(u64, Option<Duration>)> {
        self.rotate_if_needed()?;
        let path = self.active_path();
        let pre_len = self.shared.files.read().active_len;
        let buf = chunk.bytes();
        let fsync = self.shared.cfg.fsync.fsync_before_ack();
        let result = (|| -> Result<Option<Duration>> {
            self.open_active()?;
            let write_error = |e| Error::io(format!("Cannot write WAL file {}", label(&path)), e);
            #[cfg(feature = "fault-injection")]
            crate::fault::disk_full().map_err(write_error)?;
            self.write_at_log_end(buf, pre_len).map_err(write_error)?;
            if !fsync {
                return Ok(None);
            }
            let file = self.file.as_ref().ok_or_else(|| Error::internal("WAL file handle missing"))?;
            let took = sync_data(file).map_err(|e| Error::io(format!("Cannot fsync WAL file {}", label(&path)), e))?;
            Ok(Some(took))
        })();
        let written = buf.len() as u64;
        let fsync_took = match result {
            Ok(took) => took,
            Err(e) => {
                // Keep the file equal to what was acknowledged.
                if let Some(f) = self.file.take() {
                    if let Err(te) = f.set_len(pre_len) {
                        tracing::error!(error = %te, file = %path.display(), "wal.rollback_failed");
                    }
                }
                return Err(e);
            }
        };
        let mut set = self.shared.files.write();
        set.active_len = pre_len + written;
        if set.active_first.is_none() {
            set.active_first = chunk.first_lsn();
        }
        set.active_index.extend(chunk.lines().iter().map(|&(lsn, at)| (lsn, pre_len + at as u64)));
        Ok((written, fsync_took))
    }

    /// Writes `buf` at `log_end` and, when that grows the file,
    /// zero-fills the next chunk after it, so that the
    /// groups after it overwrite allocated bytes (see [`PREALLOCATION_CHUNK`]).
    /// The zeros are synced by this group's fsync (`always`) or the next
    /// background one (`everysec`), not by one of their own (`never`: by
    /// none).
    fn write_at_log_end(&mut self, buf: &[u8], log_end: u64) -> std::io::Result<()> {
        let file = self.file.as_ref().ok_or_else(|| std::io::Error::other("WAL file handle missing"))?;
        file.write_all_at(buf, log_end)?;
        let end = log_end + buf.len() as u64;
        if end <= self.file_len {
            return Ok(());
        }
        let fill_to = self.preallocation_end(end);
        let mut at = end;
        while at < fill_to {
            let n = (fill_to - at).min(ZEROS.len() as u64);
            file.write_all_at(&ZEROS[..n as usize], at)?;
            at += n;
        }
        self.file_len = fill_to;
        Ok(())
    }

    /// Where the zeros after a log ending at `end` should end: the next
    /// chunk boundary past it, but not past the segment size (the file
    /// rotates there).
    fn preallocation_end(&self, end: u64) -> u64 {
        let cfg = &self.shared.cfg;
        let next_chunk = (end / PREALLOCATION_CHUNK + 1) * PREALLOCATION_CHUNK;
        if cfg.segment_bytes == 0 {
            return next_chunk;
        }
        next_chunk.min(cfg.segment_bytes.max(end))
    }

    /// Opens `karma.wal` for writing at the log's end. Bytes past the end
    /// (left by a failure that could not cut them) are cut first: the
    /// writer may leave its zeros there, never anything a reader could take
    /// for lines.
    fn open_active(&mut self) -> Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let path = self.active_path();
        let existed = path.exists();
        let f = open_regular(&path, OpenOptions::new().create(true).write(true))
            .map_err(|e| Error::io(format!("Cannot open WAL file {}", label(&path)), e))?;
        if !existed && self.shared.cfg.fsync.fsync_metadata() {
            fsync_dir(&self.shared.cfg.dir)?;
        }
        let log_end = self.shared.files.read().active_len;
        let len = f.metadata().map_err(|e| Error::io(format!("Cannot stat WAL file {}", label(&path)), e))?.len();
        if len < log_end {
            // Writing at the log's end would leave a hole of zeros, which
            // readers take for the end of the log.
            return Err(Error::internal(format!(
                "WAL file {} is shorter ({len} bytes) than the log written to it ({log_end} bytes)",
                path.display()
            )));
        }
        if len > log_end {
            f.set_len(log_end).map_err(|e| Error::io(format!("Cannot cut back {}", label(&path)), e))?;
        }
        if self.shared.cfg.fsync == FsyncPolicy::EverySec {
            let second = f.try_clone().map_err(|e| Error::io(format!("Cannot open WAL file {}", path.display()), e))?;
            self.shared.sync_files.lock().push(Arc::new(second));
        }
        self.file = Some(f);
        self.file_len = log_end;
        Ok(())
    }

    /// Closes the active file, cut to the log's end: a closed file holds
    /// no zeros. Called at rotation and when the WAL closes.
    pub(super) fn close_active(&mut self, log_end: u64) -> Result<()> {
        let Some(file) = self.file.take() else { return Ok(()) };
        if self.file_len > log_end {
            file.set_len(log_end)
                .map_err(|e| Error::io(format!("Cannot cut WAL file {} to its end", label(&self.active_path())), e))?;
        }
        Ok(())
    }

    fn rotate_if_needed(&mut self) -> Result<()> {
        let seg_bytes = self.shared.cfg.segment_bytes;
        if seg_bytes == 0 {
            return Ok(());
        }
        let (len, first) = {
            let set = self.shared.files.read();
            (set.active_len, set.active_first)
        };
        let Some(first) = first else { return Ok(()) };
        if len < seg_bytes {
            return Ok(());
        }
        let dir = self.shared.cfg.dir.clone();
        let target = dir.join(segment_name(first));
        if target.exists() {
            return Err(Error::validation(format!("WAL segment already exists: {}", target.display())));
        }
        // `everysec`: the outgoing file's second handle stays in
        // `sync_files` until the next background fsync covered it.
        self.close_active(len)?;
        let mut set = self.shared.files.write();
        let active = dir.join(ACTIVE_FILE);
        fs::rename(&active, &target)
            .map_err(|e| Error::io(format!("Cannot rename {} to {}", active.display(), target.display()), e))?;
        let index = std::mem::take(&mut set.active_index);
        if let Err(e) = write_index(&target, len, &index) {
            tracing::warn!(error = %e, "wal.segment_index_failed");
        }
        set.segments.push((first, target.clone()));
        set.active_len = 0;
        set.active_first = None;
        drop(set);
        tracing::info!(path = %target.display(), "wal.segment");
        let mut st = self.shared.state.lock();
        st.stats.rotations += 1;
        // The directory is fsynced when the new karma.wal is created.
        Ok(())
    }

    fn truncate(&mut self, lsn: u64) -> Result<()> {
        let failed = self.shared.state.lock().failure.clone();
        let result = match failed {
            Some(cause) => Err(unavailable(&cause)),
            None => self.truncate_files(lsn),
        };
        let mut st = self.shared.state.lock();
        st.in_flight = false;
        match &result {
            Ok(()) => {
                st.bytes = 0;
                st.stats.truncations += 1;
                if st.queue.is_empty() {
                    st.durable = st.assigned;
                }
            }
            Err(e) => self.shared.fail(&mut st, e.clone(), "wal.truncate_failed"),
        }
        self.finish(st);
        result
    }

    fn truncate_files(&mut self, lsn: u64) -> Result<()> {
        let dir = self.shared.cfg.dir.clone();
        let fsync = self.shared.cfg.fsync.fsync_metadata();
        self.file = None;
        // Everything left is fsynced below (or deleted).
        self.shared.sync_files.lock().clear();
        let mut set = self.shared.files.write();
        // Everything on disk, including segments this process never listed.
        let mut segments: Vec<PathBuf> =
            list_files(&dir)?.into_iter().filter(|f| !f.is_active()).map(|f| f.path).collect();
        for (_, p) in &set.segments {
            if !segments.contains(p) {
                segments.push(p.clone());
            }
        }
        for seg in &segments {
            for p in [super::index::idx_path(seg), seg.clone()] {
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(format!("Cannot remove {}", p.display()), e)),
                }
            }
        }
        set.segments.clear();
        self.shared.idx_cache.lock().clear();
        let active = dir.join(ACTIVE_FILE);
        let f = open_regular(&active, OpenOptions::new().write(true).create(true).truncate(true))
            .map_err(|e| Error::io(format!("Cannot truncate {}", label(&active)), e))?;
        if fsync {
            f.sync_all().map_err(|e| Error::io(format!("Cannot fsync {}", active.display()), e))?;
        }
        set.active_len = 0;
        set.active_first = None;
        set.active_index.clear();
        drop(set);
        write_lsn_file_atomic(&dir, LSN_FILE, lsn, fsync)?;
        if fsync {
            fsync_dir(&dir)?;
        }
        tracing::info!(path = %active.display(), lsn, "wal.truncate");
        Ok(())
    }
}

/// `everysec`: the least time between two background fsyncs.
const EVERYSEC_INTERVAL: Duration = Duration::from_secs(1);

/// How often the writer thread looks for queued entries nobody waits on.
const SWEEP_INTERVAL: Duration = Duration::from_millis(2);

/// `always`: the longest the writer gathers a group after a commit (see
/// [`Gather`]).
const GATHER_LIMIT: Duration = Duration::from_millis(2);

/// `always`: how long the writer waits for the next callback while a group
/// still grows, at least (a commit faster than this sets no shorter wait).
const GATHER_MIN_WINDOW: Duration = Duration::from_micros(50);

/// `always`: what the writer waits for before it commits the next group.
///
/// While one group's fsync runs, the writes that arrive form the next group;
/// the connections that group answers send their next writes a moment
/// later. Committing the next group at once splits a closed loop of N
/// connections into groups that alternate forever (a group of one and one
/// of N-1 is typical): half the writes per fsync or fewer. So after a
/// commit the writer waits until the connections it answered are back
/// (their callbacks registered), as Redis gathers every client of one
/// event-loop turn.
///
/// Waiting for all of them is right while they come back faster than a
/// commit takes. When they take longer (many connections, each costing the
/// server CPU time), a writer that waits for the last one leaves the disk
/// idle while the CPU works, and then the CPU idle while the disk works.
/// So once the writer has waited as long as the last commit took (the
/// window) and half the group is back, it commits that half: the rest
/// arrive during its fsync and form the next group, and CPU and disk work
/// at the same time. It also stops once no callback arrived for a window
/// while some are pending, and after [`GATHER_LIMIT`] in any case.
/// Connections that do not come back thus cost one window, and at one
/// connection there is nothing to wait for. A write arriving while nobody
/// is pending after the limit wakes the writer at once.
struct Gather {
    callbacks: usize,
    window: Duration,
}

impl Gather {
    /// After a group commit that took `took`: wait for everyone it answered
    /// plus everyone already waiting.
    fn after_commit(st: &State, took: Duration) -> Gather {
        let window = took.clamp(GATHER_MIN_WINDOW, GATHER_LIMIT);
        Gather { callbacks: st.answered + st.callbacks.len(), window }
    }

    /// How many callbacks are enough once the writer has waited a window.
    fn half(&self) -> usize {
        self.callbacks.div_ceil(2)
    }

    /// Whether `pending` callbacks after `waited` make a group to commit.
    fn complete(&self, pending: usize, waited: Duration) -> bool {
        pending >= self.callbacks || (waited >= self.window && pending >= self.half())
    }

    /// Sleeps until the group is complete, callbacks stopped arriving, the
    /// limit passed, or a truncation or close needs the writer.
    fn wait(&self, shared: &Shared, st: &mut parking_lot::MutexGuard<'_, State>) {
        let started = Instant::now();
        let mut seen = st.callbacks.len();
        let mut until = started + self.window;
        st.wake_at_callbacks = self.callbacks;
        while !self.complete(st.callbacks.len(), started.elapsed())
            && !st.closing
            && !st.queue.iter().any(|item| matches!(item, Item::Truncate { .. }))
        {
            if !shared.work.wait_until(st, until).timed_out() {
                continue;
            }
            let pending = st.callbacks.len();
            if (pending > 0 && pending == seen) || started.elapsed() >= GATHER_LIMIT {
                break;
            }
            seen = pending;
            // Past the window half the group is enough: wake when it is back.
            st.wake_at_callbacks = self.half();
            until = Instant::now() + self.window;
        }
        st.wake_at_callbacks = 0;
    }
}

/// The writer thread: commits whatever is queued whenever work arrives and
/// the writer is free, until the WAL is closed and drained.
pub(super) fn writer_loop(shared: &Shared, core: &Mutex<Writer>) {
    let mut last_sync = Instant::now();
    let mut gather: Option<Gather> = None;
    let mut assigned_at_last_sweep = 0;
    loop {
        {
            let mut st = shared.state.lock();
            if let Some(gather) = gather.take() {
                gather.wait(shared, &mut st);
            }
            // Someone awaits what is queued (a callback, or any write under
            // `always`, whose async waiters never commit themselves): commit
            // at once. Otherwise waiters commit their own groups and appends
            // do not wake this thread; it sweeps up entries nobody waits on
            // a few milliseconds late, and is woken for callbacks and closing.
            let awaited = !st.queue.is_empty() && (shared.cfg.fsync.fsync_before_ack() || !st.callbacks.is_empty());
            if !st.closing && !awaited {
                let quiet = st.assigned == assigned_at_last_sweep;
                assigned_at_last_sweep = st.assigned;
                if quiet && st.queue.is_empty() && !shared.unsynced.load(Ordering::Acquire) {
                    // Nothing was appended for a whole sweep interval and
                    // nothing is left to sweep or sync: sleep until an
                    // append (see `Wal::append`), a callback, a truncation
                    // or closing wakes the thread, so that an idle server
                    // stays asleep. (Under load it keeps sweeping instead:
                    // sleeping whenever the queue is empty would make every
                    // group's first append wake it.)
                    st.writer_asleep = true;
                    shared.work.wait(&mut st);
                    st.writer_asleep = false;
                } else {
                    let _ = shared.work.wait_for(&mut st, SWEEP_INTERVAL);
                }
            }
            if st.queue.is_empty() {
                if st.closing {
                    break;
                }
                drop(st);
                background_sync(shared, &mut last_sync, false);
                continue;
            }
        }
        let started = Instant::now();
        core.lock().step();
        if shared.cfg.fsync.fsync_before_ack() {
            gather = Some(Gather::after_commit(&shared.state.lock(), started.elapsed()));
        }
        background_sync(shared, &mut last_sync, false);
    }
    // A clean shutdown leaves nothing unsynced behind.
    background_sync(shared, &mut last_sync, true);
    let mut st = shared.state.lock();
    st.closed = true;
    let callbacks = std::mem::take(&mut st.callbacks);
    drop(st);
    shared.durable.notify_all();
    for (_, cb) in callbacks {
        cb(Err(closed_error()));
    }
}

/// `everysec`: fsyncs the active file through the second handle when groups
/// were written since the last time and a second has passed (or `now`),
/// without holding the writer, so groups keep being written meanwhile. A
/// failed fsync fails the WAL like a failed write.
fn background_sync(shared: &Shared, last_sync: &mut Instant, now: bool) {
    if shared.cfg.fsync != FsyncPolicy::EverySec || (!now && last_sync.elapsed() < EVERYSEC_INTERVAL) {
        return;
    }
    *last_sync = Instant::now();
    if !shared.unsynced.swap(false, Ordering::AcqRel) {
        return;
    }
    let files = shared.sync_files.lock().clone();
    if files.is_empty() {
        return;
    }
    let mut result = Ok(Duration::ZERO);
    for file in &files {
        match sync_data(file) {
            Ok(took) => result = result.map(|sum| sum + took),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        if let Some((_active, rotated)) = files.split_last() {
            shared.sync_files.lock().retain(|f| !rotated.iter().any(|r| Arc::ptr_eq(r, f)));
        }
    }
    let mut st = shared.state.lock();
    match result {
        Ok(took) => st.stats.count_fsync(took),
        Err(e) => shared.fail(&mut st, Error::io("Cannot fsync the WAL in the background", e), "wal.fsync_failed"),
    }
}

/// `sync_data` timed. Builds with the `fault-injection` feature first sleep
/// for `KARMA_FAULT_FSYNC_DELAY_MS` milliseconds, so tests can make a disk
/// slow.
pub(super) fn sync_data(file: &File) -> std::io::Result<Duration> {
    let start = Instant::now();
    #[cfg(feature = "fault-injection")]
    crate::fault::fsync_delay();
    file.sync_data()?;
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::super::handle::{Wal, WalConfig};
    use super::super::tests::log_bytes;
    use super::*;

    #[test]
    fn a_gather_waits_for_everyone_within_a_window_and_for_half_after_it() {
        let window = Duration::from_micros(200);
        let gather = Gather { callbacks: 50, window };
        let early = Duration::from_micros(100);
        // Within the window only the whole group is complete.
        assert!(!gather.complete(0, early));
        assert!(!gather.complete(49, early));
        assert!(gather.complete(50, early));
        // Past it, half the group is: the rest joins the next one while
        // this one's fsync runs.
        assert!(!gather.complete(24, window));
        assert!(gather.complete(25, window));
        assert!(gather.complete(25, window * 3));
        // One connection is a whole group at once; an odd group's half
        // rounds up.
        let one = Gather { callbacks: 1, window };
        assert!(one.complete(1, Duration::ZERO));
        assert!(!one.complete(0, window));
        let three = Gather { callbacks: 3, window };
        assert!(!three.complete(1, window));
        assert!(three.complete(2, window));
    }

    #[test]
    fn everysec_acknowledges_after_the_write_and_fsyncs_in_the_background() {
        let d = tempfile::tempdir().unwrap();
        let wal = Wal::open(WalConfig { fsync: FsyncPolicy::EverySec, ..WalConfig::new(d.path()) }).unwrap();
        let mut last = 0;
        for _ in 0..3 {
            last = wal.append(br#"{"op":"x"}"#).unwrap();
            // Committed inline: write(2), no fsync, no waiting.
            assert_eq!(wal.try_durable_now(last), Some(Ok(())));
        }
        let (log, _) = log_bytes(&d.path().join(ACTIVE_FILE));
        let written = std::str::from_utf8(&log).unwrap();
        assert_eq!(written.lines().count(), 3, "acknowledged entries are in the file");
        assert!(written.ends_with(&format!("{{\"v\":2,\"lsn\":{last},\"entry\":{{\"op\":\"x\"}}}}\n")));
        // Closing syncs what the background fsync has not covered yet.
        wal.close().unwrap();
        let stats = wal.stats();
        assert!(stats.fsyncs >= 1, "{stats:?}");
        assert!(stats.fsyncs <= stats.groups, "{stats:?}");
    }

    #[test]
    fn everysec_background_fsync_covers_a_file_rotated_away() {
        // Tiny segments: every group rotates the previous file away; each
        // stays in the background fsync's list until it was synced once.
        let d = tempfile::tempdir().unwrap();
        let cfg = WalConfig { fsync: FsyncPolicy::EverySec, segment_bytes: 1, ..WalConfig::new(d.path()) };
        let wal = Wal::open(cfg).unwrap();
        for _ in 0..3 {
            let lsn = wal.append(br#"{"op":"x"}"#).unwrap();
            wal.wait_durable(lsn).unwrap();
        }
        assert_eq!(wal.stats().rotations, 2);
        // Three files were written; a background fsync may have run already.
        assert!((1..=3).contains(&wal.shared.sync_files.lock().len()));
        wal.close().unwrap();
        assert_eq!(wal.shared.sync_files.lock().len(), 1, "only the active file is left after a sync");
    }
}
