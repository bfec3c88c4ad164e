//! The `Wal` handle of one data directory: opening (scan and torn-tail
//! repair), LSN assignment, truncation requests, closing, and the state the
//! writer thread, durability waits and replication reads share
//! (spec/persistence.md §3.7–§3.13).

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use super::pending::{check_entry, Chunk};
use super::reader::{scan_file, ScanEnd};
use super::segments::{list_files, LSN_FILE};
use super::writer::{writer_loop, Writer};
use crate::error::{Error, ErrorCode, Result};
use crate::files::{label, open_regular, read_lsn_file};
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

impl WalStats {
    pub(super) fn count_fsync(&mut self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.fsyncs += 1;
        self.fsync_micros_total = self.fsync_micros_total.saturating_add(micros);
        self.fsync_micros_max = self.fsync_micros_max.max(micros);
    }
}

pub(super) type Callback = Box<dyn FnOnce(Result<()>) + Send>;
pub(super) type IdxCache = HashMap<PathBuf, (u64, Arc<Vec<(u64, u64)>>)>;

/// How many written chunks [`State`] keeps for reuse: one is being written
/// while the next fills up.
const MAX_SPARE_CHUNKS: usize = 2;

pub(super) enum Item {
    /// Consecutive entries, at most `batch_size`: one group commit.
    Entries(Chunk),
    Truncate {
        lsn: u64,
        reply: SyncSender<Result<()>>,
    },
}

pub(super) struct State {
    /// Last LSN handed out.
    pub(super) assigned: u64,
    /// Every entry `<= durable` is written (and fsynced when configured).
    pub(super) durable: u64,
    /// Appends extend the last item while it is a chunk with room left,
    /// so a truncation stays between the entries before and after it.
    pub(super) queue: VecDeque<Item>,
    /// Written chunks, emptied for the next appends.
    pub(super) spare: Vec<Chunk>,
    /// The writer holds items taken from the queue.
    pub(super) in_flight: bool,
    /// Bytes of the group the writer holds (0 for a truncation).
    pub(super) in_flight_bytes: u64,
    pub(super) callbacks: Vec<(u64, Callback)>,
    /// Callbacks the last group commit completed: the connections it
    /// answered, which (in a closed loop) come back with their next write.
    pub(super) answered: usize,
    /// While the writer gathers a group (`always`), [`Wal::on_durable`]
    /// wakes it only once this many callbacks are pending; 0 otherwise.
    pub(super) wake_at_callbacks: usize,
    /// The writer thread sleeps without a timeout (nothing was queued or
    /// left to sync): the next append wakes it.
    pub(super) writer_asleep: bool,
    pub(super) failure: Option<Error>,
    /// How many times the WAL has failed (a failure clears when
    /// [`Wal::try_resume`] succeeds).
    pub(super) failures: u64,
    /// LSN ranges handed out before a failure and never written: a waiter
    /// for one of them is refused even once `durable` has passed it.
    pub(super) lost: Vec<(u64, u64)>,
    pub(super) closing: bool,
    pub(super) closed: bool,
    pub(super) bytes: u64,
    pub(super) stats: WalStats,
}

/// What replication reads need to know about the files, updated by the writer.
pub(super) struct FileSet {
    /// `(first lsn, path)` of every segment, in order.
    pub(super) segments: Vec<(u64, PathBuf)>,
    /// Bytes of `karma.wal` covered by completed groups.
    pub(super) active_len: u64,
    /// First LSN in `karma.wal`.
    pub(super) active_first: Option<u64>,
    /// `(lsn, offset)` of every LSN line of `karma.wal`.
    pub(super) active_index: Vec<(u64, u64)>,
}

pub(super) struct Shared {
    pub(super) cfg: WalConfig,
    pub(super) state: Mutex<State>,
    /// Wakes the writer.
    pub(super) work: Condvar,
    /// Wakes `wait_durable` callers.
    pub(super) durable: Condvar,
    pub(super) files: RwLock<FileSet>,
    pub(super) idx_cache: Mutex<IdxCache>,
    /// A lower bound of `State::durable`, readable without the state lock:
    /// lets waiters check for their acknowledgement without contending.
    pub(super) durable_hint: AtomicU64,
    /// `everysec`: second handles on the active file and on files rotated
    /// away since the last background fsync, so that fsync never holds the
    /// writer that commits groups. The last one is the active file.
    pub(super) sync_files: Mutex<Vec<Arc<File>>>,
    /// `everysec`: groups were written since the last background fsync.
    pub(super) unsynced: AtomicBool,
    /// `State::failure` is set; readable without the state lock, so the
    /// engine can check it before every request.
    pub(super) failed: AtomicBool,
    /// `State::lost` is not empty.
    pub(super) has_lost: AtomicBool,
}

impl Shared {
    /// Records the first failure: the WAL refuses writes until
    /// [`Wal::try_resume`] succeeds.
    pub(super) fn fail(&self, st: &mut State, e: Error, event: &str) {
        if st.failure.is_none() {
            tracing::error!(error = %e, "{event}: refusing further writes");
            st.failure = Some(e);
            st.failures += 1;
            self.failed.store(true, Ordering::Release);
        }
    }
}

impl State {
    /// `lsn` was handed out before a failure and never written.
    pub(super) fn is_lost(&self, lsn: u64) -> bool {
        self.lost.iter().any(|&(first, last)| (first..=last).contains(&lsn))
    }

    /// Frames entry `lsn` into the last chunk of the queue while it holds
    /// fewer than `batch_size` entries, else into a new one.
    fn queue_entry(&mut self, lsn: u64, batch_size: usize, entry: &[u8]) {
        if let Some(Item::Entries(chunk)) = self.queue.back_mut() {
            if chunk.len() < batch_size {
                chunk.push(lsn, entry);
                return;
            }
        }
        let mut chunk = self.spare.pop().unwrap_or_default();
        chunk.push(lsn, entry);
        self.queue.push_back(Item::Entries(chunk));
    }

    /// Keeps a written chunk's buffers for the next appends.
    pub(super) fn recycle(&mut self, chunk: Chunk) {
        if self.spare.len() < MAX_SPARE_CHUNKS {
            self.spare.extend(chunk.recycled());
        }
    }
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
    pub(super) shared: Arc<Shared>,
    pub(super) core: Arc<Mutex<Writer>>,
    pub(super) thread: Mutex<Option<JoinHandle<()>>>,
    pub(super) thread_id: ThreadId,
}

pub(super) fn unavailable(cause: &Error) -> Error {
    Error::new(cause.code(), format!("WAL is unavailable: {}", cause.message()))
}

pub(super) fn closed_error() -> Error {
    Error::internal("WAL is closed")
}

/// The answer to a waiter whose entry was never written: the WAL failed
/// before it, and the engine has since put memory back without it.
pub(super) fn lost_error(lsn: u64) -> Error {
    Error::new(
        ErrorCode::InternalError,
        format!("WAL is unavailable: entry {lsn} was not written before a WAL failure"),
    )
}

/// Cuts `path` to `len` bytes (fsynced when `sync`).
fn cut_to(path: &std::path::Path, len: u64, sync: bool) -> Result<()> {
    let f = open_regular(path, OpenOptions::new().write(true))
        .map_err(|e| Error::io(format!("Cannot open {}", label(path)), e))?;
    f.set_len(len).map_err(|e| Error::io(format!("Cannot truncate {}", path.display()), e))?;
    if sync {
        f.sync_all().map_err(|e| Error::io(format!("Cannot fsync {}", path.display()), e))?;
    }
    Ok(())
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
                (true, torn) => {
                    match torn {
                        Some(t) => tracing::warn!(
                            file = %wf.path.display(),
                            line = t.line_no,
                            offset = t.offset,
                            removed_bytes = size.saturating_sub(t.offset),
                            reason = %t.reason,
                            "wal.torn_tail: truncating the torn last line of the WAL"
                        ),
                        // The zeros the writer keeps ahead of the log,
                        // left by a crash: appending resumes at the end.
                        None if size > end.valid_len => tracing::info!(
                            file = %wf.path.display(),
                            offset = end.valid_len,
                            removed_bytes = size - end.valid_len,
                            "wal.zero_tail: cutting the zero-filled tail of the WAL"
                        ),
                        None => {}
                    }
                    if size > end.valid_len {
                        cut_to(&wf.path, end.valid_len, cfg.fsync.fsync_metadata())?;
                    }
                    set.active_len = end.valid_len;
                }
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
                spare: Vec::new(),
                in_flight: false,
                in_flight_bytes: 0,
                callbacks: Vec::new(),
                answered: 0,
                wake_at_callbacks: 0,
                writer_asleep: false,
                failure: None,
                failures: 0,
                lost: Vec::new(),
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
            failed: AtomicBool::new(false),
            has_lost: AtomicBool::new(false),
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
    /// and queues it for the writer, framed as the line the writer writes
    /// as it is. Never blocks on I/O.
    pub fn append(&self, entry: &[u8]) -> Result<u64> {
        check_entry(entry)?;
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
        st.queue_entry(lsn, self.shared.cfg.batch_size.max(1), entry);
        st.assigned = lsn;
        // Whoever waits for this entry commits it (or registers a callback,
        // which wakes the writer thread), and the writer thread sweeps up
        // the rest every few milliseconds. Only a writer that went to sleep
        // for good (the WAL was idle) needs waking, once.
        let wake = std::mem::take(&mut st.writer_asleep);
        drop(st);
        if wake {
            self.shared.work.notify_one();
        }
        Ok(lsn)
    }

    /// The last LSN assigned.
    pub fn current_lsn(&self) -> u64 {
        self.shared.state.lock().assigned
    }

    /// Every entry up to this LSN is durable.
    pub fn durable_lsn(&self) -> u64 {
        self.shared.state.lock().durable
    }

    /// Bytes of `karma.wal` plus every segment once every accepted entry
    /// is written: what is written, being written and queued (the queue
    /// holds entries as the lines they become). Never waits for the disk,
    /// so metrics and stats stay answerable while an fsync is slow. While
    /// a truncation is being carried out it still counts what it removes.
    /// After a failure, only what was written.
    pub fn bytes(&self) -> u64 {
        let st = self.shared.state.lock();
        if st.failure.is_some() {
            return st.bytes;
        }
        st.queue.iter().fold(st.bytes + st.in_flight_bytes, |total, item| match item {
            Item::Entries(chunk) => total + chunk.bytes().len() as u64,
            Item::Truncate { .. } => 0,
        })
    }

    /// The cause once a write, fsync, rotation or truncation failed.
    pub fn failure(&self) -> Option<String> {
        self.shared.state.lock().failure.as_ref().map(|e| e.message().to_string())
    }

    /// Whether the WAL has failed and not resumed yet. One atomic load.
    #[inline]
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// How many times the WAL has failed since it was opened.
    pub fn failure_count(&self) -> u64 {
        self.shared.state.lock().failures
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
                self.close_active_file();
            }
        }
        let st = self.shared.state.lock();
        match &st.failure {
            Some(cause) => Err(unavailable(cause)),
            None => Ok(()),
        }
    }
}

impl Wal {
    /// After the writer thread stopped: a cleanly closed `karma.wal` holds
    /// only the log, no zeros after it.
    fn close_active_file(&self) {
        let mut writer = self.core.lock();
        let log_end = self.shared.files.read().active_len;
        if let Err(e) = writer.close_active(log_end) {
            // Harmless: the next open cuts the zeros.
            tracing::warn!(error = %e, "wal.close_cut_failed");
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
