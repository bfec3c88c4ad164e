//! The facade tying store, protocol, WAL, snapshots, idempotency and ingest
//! together. Submodules split the ops by concern; none reaches into another
//! module's internals.

mod admin;
mod data;
mod exec;
mod ingest_ops;
mod lines;
mod persist;
mod quota;
mod reads;
mod recovery;
mod replica;
mod requests;
pub mod response;
mod restore;
mod typed;
mod wal_recovery;
mod write_lease;

pub use lines::LineBatch;
pub use write_lease::WriteLease;

use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::files::{Checkpoint, DirLock};
use crate::idempotency::Registry;
use crate::ingest::Ingest;
use crate::metrics::{Limit, Metrics, ReplicationStats};
use crate::options::Options;
use crate::protocol::response::write_error;
use crate::snapshot::SnapshotDir;
use crate::store::{Series, Store};
use crate::wal::Wal;

pub use quota::Quota;
pub use replica::REPLICATION_LSN_FILE;
pub use response::{KeysPage, Response, Summary, TreeInfo};

/// Who is asking: a client (authenticated, role-checked, size-limited) or the
/// engine itself replaying its WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    internal: bool,
}

impl Session {
    /// A network or binding client.
    pub const fn client() -> Session {
        Session { internal: false }
    }

    /// WAL replay: no auth, no role check, no size limit, nothing logged.
    pub const fn internal() -> Session {
        Session { internal: true }
    }

    pub fn is_internal(&self) -> bool {
        self.internal
    }
}

/// One response line and, for a logged mutation, the LSN that must be durable
/// before the line may be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The response envelope followed by `\r\n`.
    pub bytes: Vec<u8>,
    pub lsn: Option<u64>,
}

/// What executing one request produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub response: Response,
    /// WAL LSN to wait for before acknowledging.
    pub lsn: Option<u64>,
    /// `Some` when the request went through the idempotency layer.
    pub idempotent: Option<bool>,
}

/// A Karma database. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// The files of a durable engine.
struct Disk {
    dir: PathBuf,
    snapshots: SnapshotDir,
    wal: Option<Wal>,
    times: persist::TimesLog,
    _lock: DirLock,
}

struct Inner {
    options: Options,
    store: Store,
    disk: Option<Disk>,
    /// Serialises everything that is not a single-series write or a read:
    /// idempotent writes, ingest, multi-series ops, snapshots.
    admin: Mutex<()>,
    /// Every write holds this shared while it logs and applies;
    /// `snapshot.create_all` takes it exclusively for a cut no write can
    /// slip past. Lock order: admin, gate, series map, series.
    gate: parking_lot::RwLock<()>,
    idempotency: Mutex<Registry>,
    ingest: Mutex<Ingest>,
    recovery: Mutex<Vec<Checkpoint>>,
    metrics: Metrics,
    replication: ReplicationStats,
    /// Record times of idempotent WAL entries, used while replaying them.
    replay_times: Mutex<HashMap<u64, u64>>,
    /// How many WAL failures memory has been rebuilt from disk for.
    wal_rebuilt: Mutex<u64>,
    write_lease: write_lease::WriteLease,
    started: Instant,
}

/// How a request is being executed.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub internal: bool,
    /// During replay: the LSN of the entry and the snapshot LSN per series,
    /// so entries already inside a series' snapshot do not touch it again.
    pub replay: Option<(u64, &'a HashMap<String, u64>)>,
    /// What the lines of one batch share; `None`: a request on its own.
    pub batch: Option<&'a BatchMemo>,
}

/// What the lines of one batch (see [`LineBatch`]) remember for each other.
#[derive(Default)]
pub(crate) struct BatchMemo {
    /// Today's bucket, read from the clock by the first line that needs it.
    pub today: Cell<Option<u64>>,
    /// The series the batch's last write went to. A write to the same
    /// series locks it without the series map (see
    /// [`Engine::with_series_in`]), and the plain-line reader matches its
    /// name as bytes. A dropped series is marked (`SeriesData::dropped`),
    /// so a stale one is noticed under its lock.
    pub series: Option<Arc<Series>>,
    /// The series a write of the current line looked up in the map, for
    /// [`BatchMemo::series`] once the line is done.
    pub looked_up: Cell<Option<Arc<Series>>>,
}

impl BatchMemo {
    /// Whether `name` is the very name of [`BatchMemo::series`] (the
    /// plain-line reader lends it to the lines that name it), which passed
    /// validation when that series was written.
    pub fn wrote(&self, name: &str) -> bool {
        self.series.as_deref().is_some_and(|series| std::ptr::eq(series.name(), name))
    }

    /// The line is done: what it looked up is what the next line may write.
    pub fn next_line(&mut self) {
        if let Some(series) = self.looked_up.take() {
            self.series = Some(series);
        }
    }
}

impl Ctx<'_> {
    pub const CLIENT: Ctx<'static> = Ctx { internal: false, replay: None, batch: None };

    /// Whether this execution may change the live data of `series`.
    pub fn applies_to(&self, series: &str) -> bool {
        match self.replay {
            Some((lsn, covered)) => covered.get(series).is_none_or(|s| lsn > *s),
            None => true,
        }
    }

    pub fn logs(&self) -> bool {
        self.replay.is_none()
    }
}

impl Engine {
    /// Opens (and with `options.restore`, recovers) an engine. Without a
    /// directory the engine lives in memory only.
    pub fn open(options: Options) -> Result<Engine> {
        restore::open(options)
    }

    /// An in-memory engine with default options.
    pub fn in_memory() -> Engine {
        Engine::from_parts(Options::default(), None)
    }

    fn from_parts(options: Options, disk: Option<Disk>) -> Engine {
        let idempotency = Registry::new(options.idempotency_max_records, options.idempotency_max_age_seconds);
        Engine {
            inner: Arc::new(Inner {
                store: Store::new(),
                disk,
                admin: Mutex::new(()),
                gate: parking_lot::RwLock::new(()),
                idempotency: Mutex::new(idempotency),
                ingest: Mutex::new(Ingest::default()),
                recovery: Mutex::new(Vec::new()),
                metrics: Metrics::default(),
                replication: ReplicationStats::default(),
                replay_times: Mutex::new(HashMap::new()),
                wal_rebuilt: Mutex::new(0),
                write_lease: write_lease::WriteLease::default(),
                started: Instant::now(),
                options,
            }),
        }
    }

    /// The lease client writes need when this node leads a cluster shard.
    pub fn write_lease(&self) -> &WriteLease {
        &self.inner.write_lease
    }

    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    fn wal(&self) -> Option<&Wal> {
        self.inner.disk.as_ref().and_then(|d| d.wal.as_ref())
    }

    fn now(&self) -> u64 {
        self.inner.options.clock.unix_seconds()
    }

    /// Handles one request line (without its `\n`).
    pub fn handle_line(&self, line: &[u8], session: &Session) -> Reply {
        let mut bytes = Vec::with_capacity(96);
        let lsn = self.handle_line_into(line, session, &mut bytes);
        Reply { bytes, lsn }
    }

    /// One request line in, the response line out once it may be sent: a
    /// logged write is durable first, and if the WAL cannot make it durable
    /// the answer is that error instead. What in-process callers (bindings,
    /// the C ABI) want; the server batches this itself across pipelined
    /// lines.
    pub fn handle_line_acked(&self, line: &[u8], session: &Session) -> Vec<u8> {
        let reply = self.handle_line(line, session);
        match reply.lsn.map(|lsn| self.wait_durable(lsn)) {
            Some(Err(err)) => Engine::error_line(&err),
            _ => reply.bytes,
        }
    }

    /// Like [`Engine::handle_line`], appending the response to `out`; returns
    /// the LSN to wait for before sending, if any.
    pub fn handle_line_into(&self, line: &[u8], session: &Session, out: &mut Vec<u8>) -> Option<u64> {
        self.line_batch().handle_line_into(line, session, out)
    }

    /// [`Engine::handle_line`] with the plain-line reader turned off: every
    /// line goes through the general parser. For tests that compare the two
    /// readers; the answers are meant to be identical.
    #[doc(hidden)]
    pub fn handle_line_general(&self, line: &[u8], session: &Session) -> Reply {
        let mut bytes = Vec::with_capacity(96);
        let lsn = self.line_batch().general_only().handle_line_into(line, session, &mut bytes);
        Reply { bytes, lsn }
    }

    /// Blocks until every WAL entry up to `lsn` is durable.
    pub fn wait_durable(&self, lsn: u64) -> Result<()> {
        match self.wal() {
            Some(wal) => wal.wait_durable(lsn),
            None => Ok(()),
        }
    }

    /// Whether the WAL group holding `lsn` has been committed (see
    /// [`crate::wal::Wal::is_committed`]): a lock-free hint that waiting is
    /// needed.
    pub fn is_committed(&self, lsn: u64) -> bool {
        self.wal().is_none_or(|wal| wal.is_committed(lsn))
    }

    /// Makes `lsn` durable right here if that needs no waiting (it already
    /// is, or the WAL writer was free and this call committed the queued
    /// group); `None` when another thread is committing, in which case use
    /// [`Engine::on_durable`]. Lets an async server avoid blocking its
    /// workers and avoid a thread hop in the common case.
    pub fn try_durable_now(&self, lsn: u64) -> Option<Result<()>> {
        match self.wal() {
            Some(wal) => wal.try_durable_now(lsn),
            None => Some(Ok(())),
        }
    }

    /// Calls `done` once every WAL entry up to `lsn` is durable (or the WAL
    /// failed). It may run on the WAL writer thread: keep it short.
    pub fn on_durable(&self, lsn: u64, done: Box<dyn FnOnce(Result<()>) + Send>) {
        match self.wal() {
            Some(wal) => wal.on_durable(lsn, done),
            None => done(Ok(())),
        }
    }

    /// The error envelope line for `err` (e.g. `request_too_large`).
    pub fn error_line(err: &Error) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        write_error(&mut out, err);
        out
    }

    /// The Prometheus text of `system.metrics`.
    pub fn metrics_text(&self) -> String {
        let mut text = self.stats_view().prometheus();
        self.inner.metrics.limits.write_prometheus(&mut text);
        // Like the limit counters, only once non-zero: Karma 1.0 has no such
        // line, and it only matters while replace_series streams stage data.
        let staged = self.inner.ingest.lock().staged_items();
        if staged > 0 {
            text.push_str(&format!("# TYPE karma_ingest_staged_items gauge\nkarma_ingest_staged_items {staged}\n"));
        }
        self.wal_metrics(&mut text);
        text
    }

    /// Counts one hit of a resource bound (`karma_limit_*_total`); the
    /// server calls this for the bounds it enforces itself.
    pub fn count_limit(&self, limit: Limit) {
        self.inner.metrics.limits.bump(limit);
    }

    /// `None` when healthy; otherwise why writes are refused (e.g. the WAL
    /// failed). A failed WAL is given a chance to resume first.
    pub fn unhealthy_reason(&self) -> Option<String> {
        if let Err(e) = self.recover_wal(true) {
            return Some(e.message().to_owned());
        }
        self.wal().and_then(Wal::failure)
    }

    /// Flushes the WAL and stops its writer (a failed WAL is given a last
    /// chance to resume; if it cannot, closing reports its failure).
    pub fn close(&self) -> Result<()> {
        // If it cannot resume, the WAL's close below reports the failure.
        let _ = self.recover_wal(true);
        match self.wal() {
            Some(wal) => wal.close(),
            None => Ok(()),
        }
    }
}
