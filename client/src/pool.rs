//! A fixed-size pool of lazily opened connections, with a checkout timeout
//! and fork detection.
//!
//! The pool counts *slots*: a slot is taken when a caller checks out (an
//! idle connection, or the right to open a new one) and given back when the
//! guard drops. Connections that failed or got out of step are closed
//! instead of being returned.
//!
//! Fork safety (Puma, Sidekiq, Gunicorn, Celery fork after loading the app):
//! the pool remembers the pid it belongs to. The first checkout in a child
//! process sees another pid, forgets the parent's bookkeeping and drops the
//! inherited idle connections without writing to them (closing a descriptor
//! in the child does not close the parent's socket), then opens its own. A
//! connection the parent had checked out at the time of the fork is never
//! returned to the child's pool. As with every lock, fork while another
//! thread is inside a client call is not supported: fork from a quiet thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::config::ClientConfig;
use super::connection::{Connection, Failure};
use super::ClientError;

/// A snapshot of a pool's bookkeeping, for tests and monitoring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Configured maximum of connections.
    pub size: usize,
    /// Slots in use: idle connections plus checkouts.
    pub open: usize,
    /// Open connections waiting in the pool.
    pub idle: usize,
    /// TCP connections this pool opened in this process (reset by a fork).
    pub connects: u64,
}

struct State {
    idle: Vec<Connection>,
    open: usize,
    pid: u32,
}

pub(crate) struct Pool {
    pub(crate) config: ClientConfig,
    state: Mutex<State>,
    freed: Condvar,
    connects: AtomicU64,
}

impl Pool {
    pub(crate) fn new(config: ClientConfig) -> Pool {
        Pool {
            state: Mutex::new(State { idle: Vec::with_capacity(config.pool_size), open: 0, pid: std::process::id() }),
            config,
            freed: Condvar::new(),
            connects: AtomicU64::new(0),
        }
    }

    pub(crate) fn status(&self) -> PoolStatus {
        let mut state = self.state.lock();
        self.after_fork(&mut state);
        PoolStatus {
            size: self.config.pool_size,
            open: state.open,
            idle: state.idle.len(),
            connects: self.connects.load(Ordering::Relaxed),
        }
    }

    /// Closes every idle connection (checked-out ones stay in use).
    pub(crate) fn close_idle(&self) {
        let idle = {
            let mut state = self.state.lock();
            self.after_fork(&mut state);
            let idle = std::mem::take(&mut state.idle);
            state.open -= idle.len();
            idle
        };
        drop(idle);
        self.freed.notify_all();
    }

    /// Resets the bookkeeping inherited from a parent process.
    fn after_fork(&self, state: &mut State) {
        let pid = std::process::id();
        if state.pid != pid {
            // Dropping closes the child's copies of the descriptors; nothing
            // is written, and the parent's sockets stay open.
            state.idle.clear();
            state.open = 0;
            state.pid = pid;
            self.connects.store(0, Ordering::Relaxed);
        }
    }

    fn connect(&self) -> Result<Connection, ClientError> {
        let conn = Connection::open(&self.config)?;
        self.connects.fetch_add(1, Ordering::Relaxed);
        Ok(conn)
    }

    /// Takes a slot, waiting up to `checkout_timeout`, and makes sure it
    /// holds a live connection (reused if an idle one is still open).
    pub(crate) fn checkout(self: &Arc<Pool>) -> Result<Checkout, ClientError> {
        let timeout = self.config.checkout_timeout;
        let deadline = (!timeout.is_zero()).then(|| Instant::now() + timeout);
        let idle = {
            let mut state = self.state.lock();
            loop {
                self.after_fork(&mut state);
                if let Some(conn) = state.idle.pop() {
                    break Some(conn);
                }
                if state.open < self.config.pool_size {
                    state.open += 1;
                    break None;
                }
                match deadline {
                    Some(d) if Instant::now() >= d => {
                        return Err(ClientError::PoolTimeout(format!(
                            "no connection to {} became free within {:?} (pool_size {})",
                            self.config.address(),
                            timeout,
                            self.config.pool_size
                        )))
                    }
                    Some(d) => {
                        self.freed.wait_until(&mut state, d);
                    }
                    None => self.freed.wait(&mut state),
                }
            }
        };
        let mut guard = Checkout { pool: Arc::clone(self), pid: std::process::id(), conn: None, reused: false };
        match idle {
            Some(conn) if conn.is_reusable() => {
                guard.reused = true;
                guard.conn = Some(conn);
            }
            // A closed idle connection (server restart, idle timeout) is
            // replaced in the same slot.
            _ => guard.conn = Some(self.connect()?),
        }
        Ok(guard)
    }
}

/// One checked-out slot. Dropping it returns a healthy connection to the
/// pool, or frees the slot.
pub(crate) struct Checkout {
    pool: Arc<Pool>,
    pid: u32,
    conn: Option<Connection>,
    /// The connection came from the pool (was used before): a dead socket
    /// is then expected now and then, and worth one retry.
    reused: bool,
}

impl Checkout {
    /// Closes the connection instead of returning it (it is out of step).
    pub(crate) fn discard(&mut self) {
        self.conn = None;
    }

    /// Runs one exchange; on a dead reused connection, retries once on a
    /// fresh one when `retryable`.
    pub(crate) fn exchange(
        &mut self,
        payload: &[u8],
        count: usize,
        retryable: bool,
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        let conn = match self.conn.take() {
            Some(c) => self.conn.insert(c),
            None => {
                self.reused = false;
                self.conn.insert(self.pool.connect()?)
            }
        };
        match conn.exchange(payload, count) {
            Ok(lines) => Ok(lines),
            Err(Failure::Dead(why)) if self.reused && retryable => {
                self.conn = None;
                self.reused = false;
                let fresh = self.conn.insert(self.pool.connect()?);
                match fresh.exchange(payload, count) {
                    Ok(lines) => Ok(lines),
                    Err(f) => {
                        self.conn = None;
                        Err(match f {
                            Failure::Dead(again) => {
                                ClientError::Connection(format!("{again} (after reconnecting: {why})"))
                            }
                            Failure::Fatal(e) => e,
                        })
                    }
                }
            }
            Err(f) => {
                let reused = self.reused;
                self.conn = None;
                Err(match f {
                    Failure::Dead(why) if reused => ClientError::Connection(format!(
                        "{why}; not retried: the request is a write without idempotency_key and may have been applied"
                    )),
                    Failure::Dead(why) => ClientError::Connection(why),
                    Failure::Fatal(e) => e,
                })
            }
        }
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let mut state = self.pool.state.lock();
        if state.pid != self.pid || self.pid != std::process::id() {
            // Checked out before a fork: not this process's slot.
            return;
        }
        match self.conn.take() {
            Some(conn) => state.idle.push(conn),
            None => state.open -= 1,
        }
        drop(state);
        self.pool.freed.notify_one();
    }
}
