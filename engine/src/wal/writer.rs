//! The WAL: LSN assignment, the single group-commit writer thread, segment
//! rotation, truncation and replication reads (spec/persistence.md §3.7–§3.13).

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use super::index::{read_index, write_index};
use super::reader::{scan_file, ScanEnd};
use super::segments::{list_files, segment_name, ACTIVE_FILE, LSN_FILE};
use crate::error::{Error, ErrorCode, Result};
use crate::files::{fsync_dir, label, open_regular, read_lsn_file, write_lsn_file_atomic};
use crate::options::FsyncPolicy;

/// How a [`Wal`] is set up.
#[derive(Clone, Debug)]
pub struct WalConfig {
    pub dir: PathBuf,
    /// When the active file is fsynced (`sync_data`): per group commit
    /// before acknowledging, in the background once a second, or never.
    pub fsync: FsyncPolicy,
    /// Rotate `karma.wal` into a segment once it reaches this size; 0 = never.
    pub segment_bytes: u64,
    /// Most entries written by one group commit.
    pub batch_size: usize,
    /// How long the writer keeps collecting after draining its queue.
    pub batch_wait: Duration,
}

impl WalConfig {
    /// The server defaults (fsync on, 64 MiB segments, groups of 1024, no wait).
    pub fn new(dir: impl Into<PathBuf>) -> WalConfig {
        WalConfig {
            dir: dir.into(),
            fsync: FsyncPolicy::Always,
            segment_bytes: 67_108_864,
            batch_size: 1024,
            batch_wait: Duration::ZERO,
        }
    }
}

/// Counters of the writer, for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Group commits written successfully.
    pub groups: u64,
    /// fsync calls on WAL data (per group under `always`, background ones
    /// under `everysec`).
    pub fsyncs: u64,
    /// Time spent in those fsync calls, in microseconds.
    pub fsync_micros_total: u64,
    /// The slowest of them, in microseconds.
    pub fsync_micros_max: u64,
    /// Entries written successfully.
    pub entries: u64,
    /// Segment rotations.
    pub rotations: u64,
    /// Truncations.
    pub truncations: u64,
}

/// One page of replication entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntriesPage {
    /// `(lsn, compact entry JSON)` in file order.
    pub entries: Vec<(u64, String)>,
    /// Σ len(`{"lsn":N,"entry":<entry>}`) over `entries`.
    pub entries_bytes: usize,
    pub truncated_by_bytes: bool,
}

/// Cost of one entry against a replication byte budget.
pub fn entry_cost(lsn: u64, entry_len: usize) -> usize {
    // {"lsn":  ,"entry":  }
    7 + itoa::Buffer::new().format(lsn).len() + 9 + entry_len + 1
}

type Callback = Box<dyn FnOnce(Result<()>) + Send>;
type IdxCache = HashMap<PathBuf, (u64, Arc<Vec<(u64, u64)>>)>;

enum Item {
    Entry(u64, Vec<u8>),
    Truncate { lsn: u64, reply: SyncSender<Result<()>> },
}

struct State {
    /// Last LSN handed out.
    assigned: u64,
    /// Every entry `<= durable` is written (and fsynced when configured).
    durable: u64,
    queue: VecDeque<Item>,
    /// The writer holds items taken from the queue.
    in_flight: bool,
    callbacks: Vec<(u64, Callback)>,
    failure: Option<Error>,
    closing: bool,
    closed: bool,
    bytes: u64,
    stats: WalStats,
}

/// What replication reads need to know about the files, updated by the writer.
struct FileSet {
    /// `(first lsn, path)` of every segment, in order.
    segments: Vec<(u64, PathBuf)>,
    /// Bytes of `karma.wal` covered by completed groups.
    active_len: u64,
    /// First LSN in `karma.wal`.
    active_first: Option<u64>,
    /// `(lsn, offset)` of every LSN line of `karma.wal`.
    active_index: Vec<(u64, u64)>,
}

struct Shared {
    cfg: WalConfig,
    state: Mutex<State>,
    /// Wakes the writer.
    work: Condvar,
    /// Wakes `wait_durable` callers.
    durable: Condvar,
    files: RwLock<FileSet>,
    idx_cache: Mutex<IdxCache>,
    /// A lower bound of `State::durable`, readable without the state lock:
    /// lets waiters check for their acknowledgement without contending.
    durable_hint: AtomicU64,
    /// `everysec`: second handles on the active file and on files rotated
    /// away since the last background fsync, so that fsync never holds the
    /// writer that commits groups. The last one is the active file.
    sync_files: Mutex<Vec<Arc<File>>>,
    /// `everysec`: groups were written since the last background fsync.
    unsynced: AtomicBool,
}

/// The write-ahead log of one data directory. `Send + Sync`.
///
/// Group commit: whoever holds the writer (`core`) drains everything queued
/// and writes it as one group. A caller of [`Wal::wait_durable`] (a thread
/// that may block) that finds the writer free commits the queue itself (its
/// own entry and everyone else's); otherwise it spins briefly, then waits
/// for the holder. [`Wal::try_durable_now`] (for async callers) commits
/// inline only when no fsync is involved; under [`FsyncPolicy::Always`] the
/// writer thread does every fsync of async callers and completes their
/// [`Wal::on_durable`] callbacks, so writes arriving during one fsync join
/// the next group. The writer thread also sweeps up entries nobody waits on
/// (every few milliseconds) and runs the `everysec` background fsync.
pub struct Wal {
    shared: Arc<Shared>,
    core: Arc<Mutex<Writer>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: ThreadId,
}

fn unavailable(cause: &Error) -> Error {
    Error::new(cause.code(), format!("WAL is unavailable: {}", cause.message()))
}

fn closed_error() -> Error {
    Error::internal("WAL is closed")
}

impl Wal {
    /// Opens the WAL of `cfg.dir` (created if missing): scans every WAL file,
    /// repairs a torn last line of `karma.wal`, derives the current LSN and
    /// starts the writer thread.
    pub fn open(cfg: WalConfig) -> Result<Wal> {
        let dir = cfg.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| Error::io(format!("Cannot create directory {}", dir.display()), e))?;
        let mut max_lsn = read_lsn_file(&dir.join(LSN_FILE), "WAL")?;
        let files = list_files(&dir)?;
        let mut set = FileSet { segments: Vec::new(), active_len: 0, active_first: None, active_index: Vec::new() };
        let mut bytes = 0u64;
        let count = files.len();
        for (i, wf) in files.iter().enumerate() {
            let active = wf.is_active();
            let mut index: Vec<(u64, u64)> = Vec::new();
            let end: ScanEnd =
                scan_file(&wf.path, None, 0, None, i + 1 == count, ErrorCode::ValidationError, |line| {
                    let lsn = line.parsed.lsn.unwrap_or(0);
                    max_lsn = max_lsn.max(lsn);
                    if active && line.parsed.lsn.is_some() {
                        index.push((lsn, line.offset));
                    }
                    Ok(true)
                })?;
            let size =
                fs::metadata(&wf.path).map_err(|e| Error::io(format!("Cannot stat {}", wf.path.display()), e))?.len();
            match (active, end.torn) {
                (true, Some(t)) => {
                    tracing::warn!(
                        file = %wf.path.display(),
                        line = t.line_no,
                        offset = t.offset,
                        removed_bytes = size.saturating_sub(t.offset),
                        reason = %t.reason,
                        "wal.torn_tail: truncating the torn last line of the WAL"
                    );
                    let f = open_regular(&wf.path, OpenOptions::new().write(true))
                        .map_err(|e| Error::io(format!("Cannot open {}", label(&wf.path)), e))?;
                    f.set_len(t.offset).map_err(|e| Error::io(format!("Cannot truncate {}", wf.path.display()), e))?;
                    if cfg.fsync.fsync_metadata() {
                        f.sync_all().map_err(|e| Error::io(format!("Cannot fsync {}", wf.path.display()), e))?;
                    }
                    set.active_len = t.offset;
                }
                (true, None) => set.active_len = end.valid_len,
                (false, torn) => {
                    if let Some(t) = torn {
                        tracing::warn!(
                            file = %wf.path.display(),
                            line = t.line_no,
                            offset = t.offset,
                            reason = %t.reason,
                            "wal.torn_tail: the last segment ends with a torn line (left in place)"
                        );
                    }
                    set.segments.push((wf.segment_lsn.unwrap_or(0), wf.path.clone()));
                }
            }
            if active {
                set.active_first = index.first().map(|&(l, _)| l);
                set.active_index = index;
                bytes += set.active_len;
            } else {
                bytes += size;
            }
        }
        let shared = Arc::new(Shared {
            cfg,
            state: Mutex::new(State {
                assigned: max_lsn,
                durable: max_lsn,
                queue: VecDeque::new(),
                in_flight: false,
                callbacks: Vec::new(),
                failure: None,
                closing: false,
                closed: false,
                bytes,
                stats: WalStats::default(),
            }),
            work: Condvar::new(),
            durable: Condvar::new(),
            durable_hint: AtomicU64::new(max_lsn),
            sync_files: Mutex::new(Vec::new()),
            unsynced: AtomicBool::new(false),
            files: RwLock::new(set),
            idx_cache: Mutex::new(HashMap::new()),
        });
        let core = Arc::new(Mutex::new(Writer::new(Arc::clone(&shared))));
        let (writer_shared, writer_core) = (Arc::clone(&shared), Arc::clone(&core));
        let handle = std::thread::Builder::new()
            .name("karma-wal-writer".into())
            .spawn(move || writer_loop(&writer_shared, &writer_core))
            .map_err(|e| Error::io("Cannot start the WAL writer thread", e))?;
        let thread_id = handle.thread().id();
        Ok(Wal { shared, core, thread: Mutex::new(Some(handle)), thread_id })
    }

    pub fn config(&self) -> &WalConfig {
        &self.shared.cfg
    }

    /// Assigns the next LSN to `entry` (compact JSON of the command object)
    /// and queues it for the writer. Never blocks on I/O.
    pub fn append(&self, entry: &[u8]) -> Result<u64> {
        if entry.is_empty() || entry.contains(&b'\n') {
            return Err(Error::validation("WAL entry must be one line of JSON"));
        }
        let owned = entry.to_vec();
        let mut st = self.shared.state.lock();
        if let Some(cause) = &st.failure {
            return Err(unavailable(cause));
        }
        if st.closing {
            return Err(closed_error());
        }
        // An LSN that cannot advance must refuse the write: a wrapped LSN
        // would be "durable" at once and acknowledged before it is written.
        let Some(lsn) = st.assigned.checked_add(1) else {
            return Err(Error::internal(format!("WAL LSN space is exhausted at {}; no further writes", st.assigned)));
        };
        st.assigned = lsn;
        st.queue.push_back(Item::Entry(lsn, owned));
        drop(st);
        // No wake-up here: whoever waits for this entry commits it (or
        // registers a callback, which wakes the writer thread); the writer
        // thread sweeps up the rest.
        Ok(lsn)
    }

    /// Blocks until every entry `<= lsn` is durable; `Err` if the WAL failed first.
    pub fn wait_durable(&self, lsn: u64) -> Result<()> {
        if self.spin_until_durable(lsn) {
            return Ok(());
        }
        let mut st = self.shared.state.lock();
        if lsn > st.assigned {
            return Err(Error::internal(format!("WAL LSN {lsn} was never assigned")));
        }
        loop {
            if st.durable >= lsn {
                return Ok(());
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

    /// Makes `lsn` durable on this thread if that needs no waiting: `Some`
    /// when it already is, or the writer was free and this call committed
    /// the queue; `None` when another thread holds the writer (use
    /// [`Wal::on_durable`] then). For async callers that must not block.
    pub fn try_durable_now(&self, lsn: u64) -> Option<Result<()>> {
        if self.shared.durable_hint.load(Ordering::Acquire) >= lsn {
            return Some(Ok(()));
        }
        if self.shared.cfg.fsync.fsync_before_ack() {
            // An fsync can take milliseconds: never on the caller's thread,
            // which would stop every other connection it serves. The writer
            // thread commits the group (with whatever else arrives
            // meanwhile) and runs the caller's callback.
            let st = self.shared.state.lock();
            return match &st.failure {
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
                return Some(Ok(()));
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
        let outcome = if st.durable >= lsn {
            Ok(())
        } else if let Some(cause) = &st.failure {
            Err(unavailable(cause))
        } else if st.closed {
            Err(closed_error())
        } else if lsn > st.assigned {
            Err(Error::internal(format!("WAL LSN {lsn} was never assigned")))
        } else {
            st.callbacks.push((lsn, done));
            drop(st);
            // Someone is waiting now: the writer must not leave it to its
            // next sweep (appends never wake it).
            self.shared.work.notify_one();
            return;
        };
        drop(st);
        done(outcome);
    }

    /// The last LSN assigned.
    pub fn current_lsn(&self) -> u64 {
        self.shared.state.lock().assigned
    }

    /// Every entry up to this LSN is durable.
    pub fn durable_lsn(&self) -> u64 {
        self.shared.state.lock().durable
    }

    /// Bytes of `karma.wal` plus every segment, after completed writes.
    pub fn bytes(&self) -> u64 {
        // Count every accepted entry: commit what is still queued first.
        let _ = self.wait_durable(self.current_lsn());
        self.shared.state.lock().bytes
    }

    /// The cause once a write, fsync, rotation or truncation failed.
    pub fn failure(&self) -> Option<String> {
        self.shared.state.lock().failure.as_ref().map(|e| e.message().to_string())
    }

    pub fn stats(&self) -> WalStats {
        self.shared.state.lock().stats
    }

    /// After every entry queued so far is written: deletes all segments and
    /// their indexes, empties `karma.wal` and writes `karma.wal.lsn` with the
    /// current LSN. LSNs continue afterwards.
    pub fn truncate(&self) -> Result<()> {
        let (tx, rx) = sync_channel(1);
        {
            let mut st = self.shared.state.lock();
            if let Some(cause) = &st.failure {
                return Err(unavailable(cause));
            }
            if st.closing {
                return Err(closed_error());
            }
            let lsn = st.assigned;
            st.queue.push_back(Item::Truncate { lsn, reply: tx });
        }
        self.shared.work.notify_one();
        rx.recv().unwrap_or_else(|_| Err(closed_error()))
    }

    /// Raises the LSN floor: the next LSN is `max(current, lsn) + 1`.
    pub fn ensure_lsn_at_least(&self, lsn: u64) {
        let mut st = self.shared.state.lock();
        if lsn <= st.assigned {
            return;
        }
        let idle = st.queue.is_empty() && !st.in_flight && st.durable == st.assigned && st.failure.is_none();
        st.assigned = lsn;
        if idle {
            st.durable = lsn;
        }
    }

    /// Replication page: entries with `lsn > after_lsn`, at most `limit`,
    /// within `max_bytes` (§3.12). Equal to a linear scan of all files.
    pub fn entries_after(&self, after_lsn: u64, limit: usize, max_bytes: Option<usize>) -> Result<EntriesPage> {
        // Serve every accepted entry: commit what is still queued first.
        self.wait_durable(self.current_lsn())?;
        self.entries_after_impl(after_lsn, limit, max_bytes, true)
    }

    /// [`Wal::entries_after`] without any index: scans every file from its start.
    pub fn entries_after_linear(&self, after_lsn: u64, limit: usize, max_bytes: Option<usize>) -> Result<EntriesPage> {
        self.entries_after_impl(after_lsn, limit, max_bytes, false)
    }

    fn entries_after_impl(
        &self,
        after_lsn: u64,
        limit: usize,
        max_bytes: Option<usize>,
        use_index: bool,
    ) -> Result<EntriesPage> {
        if limit == 0 {
            return Err(Error::validation("Field limit must be greater than 0"));
        }
        if max_bytes == Some(0) {
            return Err(Error::validation("Field max_bytes must be greater than 0"));
        }
        // A consistent cut: open every file needed while rotation/truncation
        // are excluded; open handles stay readable after a rename or unlink.
        struct ToRead {
            path: PathBuf,
            file: File,
            end: Option<u64>,
            start: u64,
        }
        let mut plan: Vec<ToRead> = Vec::new();
        {
            let set = self.shared.files.read();
            let mut all: Vec<(Option<u64>, PathBuf, bool)> =
                set.segments.iter().map(|(l, p)| (Some(*l), p.clone(), false)).collect();
            if set.active_len > 0 {
                all.push((set.active_first, self.shared.cfg.dir.join(ACTIVE_FILE), true));
            }
            let first = if use_index {
                all.iter().rposition(|(first, _, _)| matches!(first, Some(f) if *f <= after_lsn)).unwrap_or(0)
            } else {
                0
            };
            for (i, (_, path, active)) in all.iter().enumerate().skip(first) {
                let file = match open_regular(path, OpenOptions::new().read(true)) {
                    Ok(f) => f,
                    Err(e) => return Err(Error::io(format!("Cannot read WAL file {}", label(path)), e)),
                };
                let end = if *active { Some(set.active_len) } else { None };
                let mut start = 0;
                if use_index && i == first && *active {
                    let pos = set.active_index.partition_point(|&(l, _)| l <= after_lsn);
                    if pos > 0 {
                        let (lsn, offset) = set.active_index[pos - 1];
                        if anchor_ok(&file, offset, lsn) {
                            start = offset;
                        }
                    }
                }
                plan.push(ToRead { path: path.clone(), file, end, start });
            }
        }
        if use_index {
            if let Some(first) = plan.first_mut() {
                if first.end.is_none() {
                    first.start = self.segment_start(&first.path, &first.file, after_lsn);
                }
            }
        }
        let mut page = EntriesPage::default();
        for item in plan {
            let end =
                scan_file(&item.path, Some(item.file), item.start, item.end, false, ErrorCode::InvalidJson, |line| {
                    let (Some(lsn), Some(entry)) = (line.parsed.lsn, line.parsed.entry) else {
                        return Ok(true);
                    };
                    if lsn <= after_lsn {
                        return Ok(true);
                    }
                    let cost = entry_cost(lsn, entry.len());
                    if let Some(max) = max_bytes {
                        // The page also carries a comma between entries
                        // (Karma 1.0 left those out, so a cut page could
                        // still overflow the response limit).
                        if page.entries_bytes + page.entries.len() + cost > max {
                            if page.entries.is_empty() {
                                return Err(Error::new(
                                    ErrorCode::ResponseTooLarge,
                                    format!("Single WAL entry {lsn} exceeds replication response byte budget"),
                                ));
                            }
                            page.truncated_by_bytes = true;
                            return Ok(false);
                        }
                    }
                    page.entries_bytes += cost;
                    page.entries.push((lsn, entry.into_owned()));
                    Ok(page.entries.len() < limit)
                })?;
            if end.stopped {
                break;
            }
        }
        Ok(page)
    }

    /// Where to start reading a segment for entries after `after_lsn`: the
    /// offset of the last indexed entry `<= after_lsn` if the `.idx` is valid
    /// and agrees with the file there, else 0.
    fn segment_start(&self, path: &Path, file: &File, after_lsn: u64) -> u64 {
        let Ok(size) = file.metadata().map(|m| m.len()) else {
            return 0;
        };
        let index = {
            let cache = self.shared.idx_cache.lock();
            match cache.get(path) {
                Some((s, idx)) if *s == size => Some(Arc::clone(idx)),
                _ => None,
            }
        };
        let index = match index {
            Some(i) => i,
            None => {
                let Some(parsed) = read_index(path, size) else {
                    return 0;
                };
                let parsed = Arc::new(parsed);
                let mut cache = self.shared.idx_cache.lock();
                if cache.len() >= 8 {
                    cache.clear();
                }
                cache.insert(path.to_path_buf(), (size, Arc::clone(&parsed)));
                parsed
            }
        };
        let pos = index.partition_point(|&(l, _)| l <= after_lsn);
        if pos == 0 {
            return 0;
        }
        let (lsn, offset) = index[pos - 1];
        if anchor_ok(file, offset, lsn) {
            offset
        } else {
            0
        }
    }

    /// Writes everything queued, then stops the writer thread.
    pub fn close(&self) -> Result<()> {
        {
            let mut st = self.shared.state.lock();
            st.closing = true;
        }
        self.shared.work.notify_all();
        // A callback running on the writer thread may drop the last handle:
        // never join ourselves.
        if std::thread::current().id() != self.thread_id {
            if let Some(handle) = self.thread.lock().take() {
                let _ = handle.join();
            }
        }
        let st = self.shared.state.lock();
        match &st.failure {
            Some(cause) => Err(unavailable(cause)),
            None => Ok(()),
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Whether `offset` starts a line (offset 0 or preceded by `\n`) holding `lsn`.
fn anchor_ok(file: &File, offset: u64, lsn: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 64];
    let (read_at, skip) = if offset == 0 { (0, 0) } else { (offset - 1, 1) };
    let Ok(n) = file.read_at(&mut buf, read_at) else {
        return false;
    };
    let buf = &buf[..n];
    if skip == 1 && buf.first() != Some(&b'\n') {
        return false;
    }
    let line = &buf[skip.min(buf.len())..];
    // Writer lines start with {"v":2,"lsn":<n>, ; anything else: do not trust.
    let Some(rest) = line.strip_prefix(br#"{"v":2,"lsn":"#) else {
        return false;
    };
    let digits: Vec<u8> = rest.iter().take_while(|b| b.is_ascii_digit()).copied().collect();
    rest.get(digits.len()) == Some(&b',')
        && std::str::from_utf8(&digits).ok().and_then(|s| s.parse::<u64>().ok()) == Some(lsn)
}

/// The writer thread's private state.
struct Writer {
    shared: Arc<Shared>,
    file: Option<File>,
    line: Vec<u8>,
}

enum Batch {
    Entries(Vec<(u64, Vec<u8>)>),
    Truncate { lsn: u64, reply: SyncSender<Result<()>> },
}

impl Writer {
    fn new(shared: Arc<Shared>) -> Writer {
        Writer { shared, file: None, line: Vec::new() }
    }

    /// Writes what is queued: one group of entries or one truncation.
    /// Returns whether there was anything to do.
    fn step(&mut self) -> bool {
        match self.next_batch() {
            Some(Batch::Entries(entries)) => self.commit(entries),
            Some(Batch::Truncate { lsn, reply }) => {
                let result = self.truncate(lsn);
                let _ = reply.send(result);
            }
            None => return false,
        }
        true
    }

    /// Takes the next group (entries up to `batch_size`, stopping before a
    /// truncation) or a truncation; `None` when nothing is queued.
    fn next_batch(&mut self) -> Option<Batch> {
        let shared = Arc::clone(&self.shared);
        let mut st = shared.state.lock();
        if matches!(st.queue.front(), Some(Item::Truncate { .. })) {
            if let Some(Item::Truncate { lsn, reply }) = st.queue.pop_front() {
                st.in_flight = true;
                return Some(Batch::Truncate { lsn, reply });
            }
        }
        if st.queue.is_empty() {
            return None;
        }
        let max = self.shared.cfg.batch_size.max(1);
        let mut entries: Vec<(u64, Vec<u8>)> = Vec::new();
        take_entries(&mut st.queue, &mut entries, max);
        let wait = self.shared.cfg.batch_wait;
        if !wait.is_zero() && entries.len() < max && !st.closing {
            let deadline = Instant::now() + wait;
            loop {
                if matches!(st.queue.front(), Some(Item::Truncate { .. })) || entries.len() >= max {
                    break;
                }
                if st.queue.is_empty() && shared.work.wait_until(&mut st, deadline).timed_out() {
                    take_entries(&mut st.queue, &mut entries, max);
                    break;
                }
                take_entries(&mut st.queue, &mut entries, max);
            }
        }
        st.in_flight = true;
        Some(Batch::Entries(entries))
    }

    fn commit(&mut self, entries: Vec<(u64, Vec<u8>)>) {
        let failed = self.shared.state.lock().failure.clone();
        let result = match failed {
            Some(cause) => Err(cause),
            None => self.write_group(&entries),
        };
        if result.is_ok() && self.shared.cfg.fsync == FsyncPolicy::EverySec {
            self.shared.unsynced.store(true, Ordering::Release);
        }
        let last = entries.last().map(|(l, _)| *l).unwrap_or(0);
        let mut st = self.shared.state.lock();
        st.in_flight = false;
        match result {
            Ok((written, fsync_took)) => {
                st.durable = st.durable.max(last);
                if st.queue.is_empty() {
                    // Nothing else assigned is pending: LSN-floor raises are durable too.
                    st.durable = st.assigned;
                }
                st.bytes += written;
                st.stats.groups += 1;
                st.stats.entries += entries.len() as u64;
                if let Some(took) = fsync_took {
                    st.stats.count_fsync(took);
                }
            }
            Err(e) => {
                if st.failure.is_none() {
                    tracing::error!(error = %e, "wal.write_failed: refusing further writes");
                    st.failure = Some(e);
                }
            }
        }
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
        drop(st);
        self.shared.durable.notify_all();
        for (cb, r) in ready {
            cb(r);
        }
    }

    fn active_path(&self) -> PathBuf {
        self.shared.cfg.dir.join(ACTIVE_FILE)
    }

    /// Writes one group with one `write_all` and at most one fsync. Returns
    /// the bytes written and how long the fsync took, if there was one. On
    /// failure the file is cut back to its old length.
    fn write_group(&mut self, entries: &[(u64, Vec<u8>)]) -> Result<(u64, Option<Duration>)> {
        self.rotate_if_needed()?;
        let path = self.active_path();
        let pre_len = self.shared.files.read().active_len;
        let mut buf = std::mem::take(&mut self.line);
        buf.clear();
        let mut offsets: Vec<(u64, u64)> = Vec::with_capacity(entries.len());
        for (lsn, entry) in entries {
            offsets.push((*lsn, pre_len + buf.len() as u64));
            buf.extend_from_slice(br#"{"v":2,"lsn":"#);
            buf.extend_from_slice(itoa::Buffer::new().format(*lsn).as_bytes());
            buf.extend_from_slice(br#","entry":"#);
            buf.extend_from_slice(entry);
            buf.extend_from_slice(b"}\n");
        }
        let fsync = self.shared.cfg.fsync.fsync_before_ack();
        let result = (|| -> Result<Option<Duration>> {
            let file = self.open_active()?;
            file.write_all(&buf).map_err(|e| Error::io(format!("Cannot write WAL file {}", label(&path)), e))?;
            if !fsync {
                return Ok(None);
            }
            let took = sync_data(file).map_err(|e| Error::io(format!("Cannot fsync WAL file {}", label(&path)), e))?;
            Ok(Some(took))
        })();
        let written = buf.len() as u64;
        self.line = buf;
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
            set.active_first = offsets.first().map(|&(l, _)| l);
        }
        set.active_index.extend_from_slice(&offsets);
        Ok((written, fsync_took))
    }

    fn open_active(&mut self) -> Result<&mut File> {
        if self.file.is_none() {
            let path = self.active_path();
            let existed = path.exists();
            let f = open_regular(&path, OpenOptions::new().create(true).append(true))
                .map_err(|e| Error::io(format!("Cannot open WAL file {}", label(&path)), e))?;
            if !existed && self.shared.cfg.fsync.fsync_metadata() {
                fsync_dir(&self.shared.cfg.dir)?;
            }
            if self.shared.cfg.fsync == FsyncPolicy::EverySec {
                let second =
                    f.try_clone().map_err(|e| Error::io(format!("Cannot open WAL file {}", path.display()), e))?;
                self.shared.sync_files.lock().push(Arc::new(second));
            }
            self.file = Some(f);
        }
        self.file.as_mut().ok_or_else(|| Error::internal("WAL file handle missing"))
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
        let dir = &self.shared.cfg.dir;
        let target = dir.join(segment_name(first));
        if target.exists() {
            return Err(Error::validation(format!("WAL segment already exists: {}", target.display())));
        }
        // `everysec`: the outgoing file's second handle stays in
        // `sync_files` until the next background fsync covered it.
        self.file = None;
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
            Err(e) => {
                if st.failure.is_none() {
                    tracing::error!(error = %e, "wal.truncate_failed: refusing further writes");
                    st.failure = Some(e.clone());
                }
            }
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

/// How long [`Wal::wait_durable`] yields before it parks: a few fast
/// fsyncs, so a waiter sleeps only when the disk is slow.
const SPIN_LIMIT: Duration = Duration::from_micros(200);

/// How long [`Wal::try_durable_now`] (fsync off) waits for another
/// thread's group write before it gives up.
const TRY_SPIN_LIMIT: Duration = Duration::from_micros(20);

/// `everysec`: the least time between two background fsyncs.
const EVERYSEC_INTERVAL: Duration = Duration::from_secs(1);

/// How often the writer thread looks for queued entries nobody waits on.
const SWEEP_INTERVAL: Duration = Duration::from_millis(2);

/// The writer thread: commits whatever is queued whenever work arrives and
/// the writer is free, until the WAL is closed and drained.
fn writer_loop(shared: &Shared, core: &Mutex<Writer>) {
    let mut last_sync = Instant::now();
    loop {
        {
            let mut st = shared.state.lock();
            // Someone awaits what is queued (a callback, or any write under
            // `always`, whose async waiters never commit themselves): commit
            // at once. Otherwise waiters commit their own groups and appends
            // do not wake this thread; it sweeps up entries nobody waits on
            // a few milliseconds late, and is woken for callbacks and closing.
            let awaited = !st.queue.is_empty() && (shared.cfg.fsync.fsync_before_ack() || !st.callbacks.is_empty());
            if !st.closing && !awaited {
                let _ = shared.work.wait_for(&mut st, SWEEP_INTERVAL);
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
        core.lock().step();
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
        Err(e) => {
            if st.failure.is_none() {
                let e = Error::io("Cannot fsync the WAL in the background", e);
                tracing::error!(error = %e, "wal.fsync_failed: refusing further writes");
                st.failure = Some(e);
            }
        }
    }
}

/// `sync_data` timed. Builds with the `fault-injection` feature first sleep
/// for `KARMA_FAULT_FSYNC_DELAY_MS` milliseconds, so tests can make a disk
/// slow.
fn sync_data(file: &File) -> std::io::Result<Duration> {
    let start = Instant::now();
    #[cfg(feature = "fault-injection")]
    crate::fault::fsync_delay();
    file.sync_data()?;
    Ok(start.elapsed())
}

impl WalStats {
    fn count_fsync(&mut self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.fsyncs += 1;
        self.fsync_micros_total = self.fsync_micros_total.saturating_add(micros);
        self.fsync_micros_max = self.fsync_micros_max.max(micros);
    }
}

fn take_entries(queue: &mut VecDeque<Item>, out: &mut Vec<(u64, Vec<u8>)>, max: usize) {
    while out.len() < max {
        match queue.front() {
            Some(Item::Entry(..)) => {
                if let Some(Item::Entry(lsn, e)) = queue.pop_front() {
                    out.push((lsn, e));
                }
            }
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn everysec_acknowledges_after_the_write_and_fsyncs_in_the_background() {
        let d = tempfile::tempdir().unwrap();
        let wal = Wal::open(WalConfig { fsync: FsyncPolicy::EverySec, ..WalConfig::new(d.path()) }).unwrap();
        let mut last = 0;
        for _ in 0..3 {
            last = wal.append(br#"{"op":"x"}"#).unwrap();
            // Committed inline: write(2), no fsync, no waiting.
            assert_eq!(wal.try_durable_now(last), Some(Ok(())));
        }
        let written = std::fs::read_to_string(d.path().join(ACTIVE_FILE)).unwrap();
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
