//! Karma's engine: day-bucketed `u64` usage counters, durable through a
//! write-ahead log and snapshots, reachable three ways:
//!
//! 1. the typed API on [`Engine`] (`increment`, `sum`, ...), the bindings' hot path;
//! 2. [`Engine::execute`] with a parsed [`protocol::Request`];
//! 3. [`Engine::handle_line`]: one protocol v2 request line in, the exact
//!    response line out, as the server sends it.
//!
//! The engine knows nothing of sockets, async runtimes or host languages.

#![forbid(unsafe_code)]

pub mod api;
pub mod clock;
mod engine;
pub mod error;
#[cfg(feature = "fault-injection")]
mod fault;
pub mod files;
pub mod idempotency;
pub mod ingest;
pub mod json;
pub mod metrics;
pub mod options;
pub mod protocol;
pub mod snapshot;
pub mod store;
pub mod surface;
pub mod wal;

pub use engine::{
    Engine, KeysPage, LineBatch, Outcome, Quota, Reply, Response, Session, Summary, TreeInfo, WriteLease,
    REPLICATION_LSN_FILE,
};
pub use error::{Error, ErrorCode, Result};
pub use metrics::Limit;
pub use options::{EngineOption, FsyncPolicy, OptionError, OptionKind, OptionValue, Options, Role, ENGINE_OPTIONS};
pub use protocol::{Item, Range, Window};
