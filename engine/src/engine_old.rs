//! The facade tying store, protocol, WAL, snapshots, idempotency and ingest
//! together.

use std::sync::Arc;

use crate::error::{Error, ErrorCode, Result};
use crate::options::Options;

/// Who is asking: a client (authenticated, role-checked, size-limited) or the
/// engine itself replaying its WAL or a master's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    internal: bool,
}

impl Session {
    /// A network or binding client.
    pub const fn client() -> Session {
        Session { internal: false }
    }

    /// WAL replay and replication apply: no auth, no role check, no size limit.
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

/// A Karma database. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    options: Options,
}

impl Engine {
    /// Opens (and with `options.restore`, recovers) an engine.
    pub fn open(options: Options) -> Result<Engine> {
        Ok(Engine {
            inner: Arc::new(Inner { options }),
        })
    }

    /// An in-memory engine with default options.
    pub fn in_memory() -> Engine {
        Engine {
            inner: Arc::new(Inner {
                options: Options::default(),
            }),
        }
    }

    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// Handles one request line (without its `\n`).
    pub fn handle_line(&self, line: &[u8], session: &Session) -> Reply {
        let mut bytes = Vec::with_capacity(96);
        let lsn = self.handle_line_into(line, session, &mut bytes);
        Reply { bytes, lsn }
    }

    /// Like [`Engine::handle_line`], appending the response to `out`; returns
    /// the LSN to wait for before sending, if any.
    pub fn handle_line_into(&self, line: &[u8], _session: &Session, out: &mut Vec<u8>) -> Option<u64> {
        let _ = line;
        write_error(out, &Error::new(ErrorCode::InternalError, "not implemented yet"));
        None
    }

    /// Blocks until every WAL entry up to `lsn` is durable.
    pub fn wait_durable(&self, _lsn: u64) -> Result<()> {
        Ok(())
    }

    /// Calls `done` once every WAL entry up to `lsn` is durable (or the WAL
    /// failed). It may run on the WAL writer thread: keep it short.
    pub fn on_durable(&self, _lsn: u64, done: Box<dyn FnOnce(Result<()>) + Send>) {
        done(Ok(()))
    }

    /// The error envelope line for `err` (e.g. `request_too_large`).
    pub fn error_line(err: &Error) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        write_error(&mut out, err);
        out
    }

    /// `snapshot.create_all`: snapshot every series, then truncate the WAL.
    pub fn snapshot_all(&self) -> Result<()> {
        Ok(())
    }

    /// The Prometheus text of `system.metrics`.
    pub fn metrics_text(&self) -> String {
        String::new()
    }

    /// `None` when healthy; otherwise why writes are refused (e.g. the WAL
    /// failed).
    pub fn unhealthy_reason(&self) -> Option<String> {
        None
    }

    /// Flushes the WAL and stops its writer.
    pub fn close(&self) -> Result<()> {
        Ok(())
    }
}

fn write_error(out: &mut Vec<u8>, err: &Error) {
    out.extend_from_slice(b"{\"protocol_version\":2,\"success\":false,\"response\":");
    out.extend_from_slice(serde_json::to_string(err.message()).unwrap_or_default().as_bytes());
    out.extend_from_slice(b",\"error_code\":\"");
    out.extend_from_slice(err.code().as_str().as_bytes());
    out.extend_from_slice(b"\"}\r\n");
}
