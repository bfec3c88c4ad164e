//! How an [`crate::Engine`] is configured. The server maps its CLI flags and
//! environment onto this, and the bindings their keyword arguments, all
//! through one table of the options by name ([`ENGINE_OPTIONS`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};

mod table;

pub use table::{EngineOption, OptionError, OptionKind, OptionValue, ENGINE_OPTIONS};

/// A node's replication role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    Master,
    Slave,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Slave => "slave",
        }
    }
}

/// When the WAL reaches the disk, named like Redis' `appendfsync`.
///
/// Every policy acknowledges a write only after `write(2)` handed it to the
/// kernel, so a process crash (even `kill -9`) never loses an acknowledged
/// write; the policies differ in what a power failure or kernel crash may
/// lose (docs/durability.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// fsync every group commit before acknowledging any write in it.
    #[default]
    Always,
    /// Acknowledge after `write(2)`; a background fsync runs at most once a
    /// second, so a power failure loses at most about the last two seconds.
    EverySec,
    /// Never fsync the WAL: the kernel writes it back when it chooses.
    Never,
}

impl FsyncPolicy {
    /// The configuration word: `always`, `everysec` or `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::EverySec => "everysec",
            FsyncPolicy::Never => "never",
        }
    }

    /// Parses a configuration word. Karma 1.0 configured the WAL with a
    /// boolean, so `true` and `false` still mean `always` and `never`.
    pub fn parse(word: &str) -> Option<FsyncPolicy> {
        match word {
            "always" | "true" => Some(FsyncPolicy::Always),
            "everysec" => Some(FsyncPolicy::EverySec),
            "never" | "false" => Some(FsyncPolicy::Never),
            _ => None,
        }
    }

    /// Whether an acknowledgement waits for fsync.
    pub fn fsync_before_ack(self) -> bool {
        self == FsyncPolicy::Always
    }

    /// Whether rare metadata writes that the WAL's numbering depends on
    /// (truncation, `karma.wal.lsn`, new files' directory entries) are
    /// fsynced. Only `never` leaves them to the kernel.
    pub fn fsync_metadata(self) -> bool {
        self != FsyncPolicy::Never
    }
}

/// Engine configuration. `Options::default()` is a safe in-memory engine;
/// [`Options::durable`] is the server's default for a data directory.
#[derive(Clone, Debug)]
pub struct Options {
    /// Data directory; `None` keeps everything in memory (no WAL, no snapshots).
    pub directory: Option<PathBuf>,
    /// Restore snapshots and replay the WAL when opening.
    pub restore: bool,
    /// Append every mutation to the write-ahead log.
    pub wal: bool,
    /// When the WAL is fsynced, and so what an acknowledgement promises.
    pub wal_fsync: FsyncPolicy,
    /// Rotate `karma.wal` into a segment past this size; 0 never rotates.
    pub wal_segment_bytes: u64,
    /// Most entries one group commit takes.
    pub wal_batch_size: usize,
    /// How long the WAL writer keeps collecting after draining its queue.
    pub wal_batch_wait: Duration,
    /// Longest request line accepted (bytes, without the `\n`).
    pub max_request_bytes: usize,
    /// Longest success envelope sent; 0 means unlimited.
    pub max_response_bytes: usize,
    /// Budget for full-series scans; `None` means unlimited.
    pub query_timeout: Option<Duration>,
    /// Write (full access) token.
    pub auth_token: Option<String>,
    /// Read-only token.
    pub read_auth_token: Option<String>,
    pub role: Role,
    /// Snapshots kept per series by `snapshot.create_all`; 0 keeps all.
    pub dump_retention_per_tree: usize,
    pub idempotency_max_records: usize,
    /// 0 disables age expiry.
    pub idempotency_max_age_seconds: u64,
    /// Most uncommitted ingest streams at once; `ingest.begin` of one more
    /// is refused with `limit_exceeded`.
    pub ingest_max_streams: usize,
    /// Most items all uncommitted `replace_series` streams may have staged
    /// together; a chunk that would pass it is refused.
    pub ingest_max_staged_items: u64,
    /// An uncommitted stream untouched this long is aborted; 0 never.
    pub ingest_stream_ttl_seconds: u64,
    /// Most sources `recovery.checkpoint` keeps; a new source past it is
    /// refused (an existing one can always be updated).
    pub recovery_max_sources: usize,
    pub clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            directory: None,
            restore: true,
            wal: true,
            wal_fsync: FsyncPolicy::Always,
            wal_segment_bytes: 67_108_864,
            wal_batch_size: 1024,
            wal_batch_wait: Duration::ZERO,
            max_request_bytes: 4096,
            max_response_bytes: 1_048_576,
            query_timeout: Some(Duration::from_millis(1000)),
            auth_token: None,
            read_auth_token: None,
            role: Role::Master,
            dump_retention_per_tree: 5,
            idempotency_max_records: 1_000_000,
            idempotency_max_age_seconds: 604_800,
            ingest_max_streams: 10_000,
            ingest_max_staged_items: 2_000_000,
            ingest_stream_ttl_seconds: 86_400,
            recovery_max_sources: 1_000,
            clock: Arc::new(SystemClock),
        }
    }
}

impl Options {
    /// The defaults of the `karma` server for a data directory.
    pub fn durable(directory: impl Into<PathBuf>) -> Options {
        Options { directory: Some(directory.into()), ..Options::default() }
    }

    /// Whether any token is configured (then every request is authenticated).
    pub fn auth_enabled(&self) -> bool {
        self.auth_token.is_some() || self.read_auth_token.is_some()
    }
}
