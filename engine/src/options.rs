//! How an [`crate::Engine`] is configured. The server maps its CLI flags and
//! environment onto this; the bindings map keyword arguments onto it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};

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
    /// fsync each WAL group commit before acknowledging.
    pub wal_fsync: bool,
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
    pub clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            directory: None,
            restore: true,
            wal: true,
            wal_fsync: true,
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
