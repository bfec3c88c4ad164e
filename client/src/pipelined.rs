//! Pipelined connections: many requests in flight on one socket, each
//! completed by a callback instead of a blocked thread. For callers that
//! must not hold a thread per request (the Node binding's event loop): a
//! [`Pipeline`] call returns at once, and its callback runs on the
//! connection's reader thread when the answer arrives.
//!
//! Protocol v2 answers the requests of one connection in order, so each
//! connection keeps the requests it wrote in a FIFO and hands every
//! response line to the oldest. A connection has two threads: a writer that
//! connects, then writes whatever was queued since its last write in one
//! `write` (the batching that makes pipelining pay), and a reader.
//!
//! The [`ClientConfig`] means what it means for [`crate::Client`]:
//! `pool_size` bounds the connections (a new one opens only when every open
//! one already has [`DEPTH`] requests in flight), the token goes on every
//! request, `connect_timeout` bounds connecting, `write_timeout` each write
//! and `read_timeout` the wait for the oldest answer. Nothing waits for a
//! free connection, so `checkout_timeout` has no use here. A connection that
//! dies (the server's idle timeout, a restart) is replaced by the next call;
//! the requests it had not answered are sent again on a fresh connection
//! when that cannot apply them twice (reads, and requests never written),
//! and fail with [`ClientError::Connection`] otherwise.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use karma_engine::api::Change;
use karma_engine::error::Error;
use karma_engine::protocol::Window;
use karma_engine::Quota;

use crate::config::ClientConfig;
use crate::connection::{connect, is_timeout, read_bounded_line, response_too_large};
use crate::wire::{self, Line};
use crate::{ClientError, Result};

/// Requests in flight on every open connection before another one opens
/// (up to `pool_size`): one connection carries a few dozen concurrent calls
/// at full speed, and each extra one costs two threads.
pub const DEPTH: usize = 64;

/// What a request's answer goes to: the response line, or why there is none.
type Done = Box<dyn FnOnce(Result<Vec<u8>>) + Send>;

/// A client whose calls complete by callback. Clones share the connections;
/// they close (after answering what is in flight) when the last clone is
/// dropped or [`Pipeline::close`] runs.
#[derive(Clone)]
pub struct Pipeline {
    shared: Arc<Shared>,
}

struct Shared {
    config: ClientConfig,
    connections: Mutex<Vec<Arc<Conn>>>,
    closed: AtomicBool,
}

/// One request: its callback and, while it may still be sent again, its line.
struct Pending {
    done: Done,
    line: Vec<u8>,
    /// Reads may be sent twice; writes only if they were never written.
    retry_safe: bool,
    /// When the writer handed it to the socket (`None`: still queued).
    written: Option<Instant>,
    /// Already sent again once after a dead connection.
    retried: bool,
}

/// Requests queued for the writer.
#[derive(Default)]
struct Outbox {
    bytes: Vec<u8>,
    requests: Vec<Pending>,
    /// No more requests: write what is queued, then half-close.
    closing: bool,
}

struct Conn {
    outbox: Mutex<Outbox>,
    wake: Condvar,
    /// Written and unanswered, oldest first.
    in_flight: Mutex<VecDeque<Pending>>,
    /// Accepted and unanswered (queued or in flight): picks the least busy connection.
    load: AtomicUsize,
    /// Set once the connection failed; it takes no more requests.
    dead: AtomicBool,
    /// A write that timed out: the reason every unanswered request fails.
    write_failure: Mutex<Option<ClientError>>,
    /// The socket, once connected (to shut it down from either thread).
    stream: Mutex<Option<TcpStream>>,
}

/// Why a connection stopped answering.
enum Broken {
    /// EOF or a reset before the next answer began.
    Closed(String),
    /// EOF in the middle of an answer.
    Partial,
    /// No answer to the oldest request within the read timeout.
    Timeout,
    /// Any other failure, for every unanswered request.
    Fatal(ClientError),
}

impl Pipeline {
    /// A pipeline for `config` (validated; nothing is connected yet).
    pub fn new(config: ClientConfig) -> std::result::Result<Pipeline, Error> {
        config.validate()?;
        let shared = Shared { config, connections: Mutex::new(Vec::new()), closed: AtomicBool::new(false) };
        Ok(Pipeline { shared: Arc::new(shared) })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    /// Open connections (for tests and monitoring).
    pub fn connections(&self) -> usize {
        self.shared.connections.lock().iter().filter(|c| !c.dead.load(Ordering::Acquire)).count()
    }

    /// Takes no more calls; each connection writes what is queued, answers
    /// what is in flight, then closes. Idempotent.
    pub fn close(&self) {
        self.shared.close();
    }

    /// `counter.increment`; `done` gets the value added.
    pub fn increment(
        &self,
        series: &str,
        key: u64,
        bucket: Option<u64>,
        value: u64,
        done: impl FnOnce(Result<u64>) + Send + 'static,
    ) {
        self.change(Change::Increment, series, key, bucket, value, done);
    }

    /// `counter.decrement`; `done` gets the requested value.
    pub fn decrement(
        &self,
        series: &str,
        key: u64,
        bucket: Option<u64>,
        value: u64,
        done: impl FnOnce(Result<u64>) + Send + 'static,
    ) {
        self.change(Change::Decrement, series, key, bucket, value, done);
    }

    /// [`Pipeline::increment`] or [`Pipeline::decrement`], as `change` says.
    pub fn change(
        &self,
        change: Change,
        series: &str,
        key: u64,
        bucket: Option<u64>,
        value: u64,
        done: impl FnOnce(Result<u64>) + Send + 'static,
    ) {
        self.call(change.op().name(), done, |l| {
            l.str("series", series).u64("key", key).opt_u64("bucket", bucket).u64("value", value);
        });
    }

    /// `counter.consume` (see [`crate::Client::consume`]).
    #[allow(clippy::too_many_arguments)]
    pub fn consume(
        &self,
        series: &str,
        key: u64,
        bucket: Option<u64>,
        value: u64,
        limit: u64,
        window: Window,
        done: impl FnOnce(Result<Quota>) + Send + 'static,
    ) {
        let done = move |r: Result<wire::QuotaAnswer>| done(r.map(Quota::from));
        self.call("counter.consume", done, |l| {
            l.str("series", series).u64("key", key).opt_u64("bucket", bucket).u64("value", value);
            l.u64("limit", limit).window(window);
        });
    }

    /// Builds the line of `op`, sends it, and decodes its answer as `T` for `done`.
    fn call<T: serde::de::DeserializeOwned + 'static>(
        &self,
        op: &'static str,
        done: impl FnOnce(Result<T>) + Send + 'static,
        build: impl FnOnce(&mut Line),
    ) {
        let mut line = Line::new(op, self.shared.config.token.as_deref());
        build(&mut line);
        match line.finish() {
            Ok(bytes) => {
                let decode = move |answer: Result<Vec<u8>>| done(answer.and_then(|l| wire::decode(op, &l)));
                self.shared.submit(Pending {
                    done: Box::new(decode),
                    line: bytes,
                    retry_safe: wire::retry_safe(op, false),
                    written: None,
                    retried: false,
                });
            }
            Err(e) => done(Err(e)),
        }
    }
}

impl Shared {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for conn in self.connections.lock().drain(..) {
            conn.outbox.lock().closing = true;
            conn.wake.notify_one();
        }
    }

    /// Queues `pending` on the least busy connection, opening one when each
    /// open connection is [`DEPTH`] deep and the pool has room.
    fn submit(self: &Arc<Shared>, mut pending: Pending) {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return (pending.done)(Err(ClientError::Connection("the client is closed".into())));
            }
            let conn = {
                let mut conns = self.connections.lock();
                conns.retain(|c| !c.dead.load(Ordering::Acquire));
                let least = conns.iter().min_by_key(|c| c.load.load(Ordering::Relaxed));
                match least {
                    Some(c) if c.load.load(Ordering::Relaxed) < DEPTH || conns.len() >= self.config.pool_size => {
                        Arc::clone(c)
                    }
                    _ => match self.open() {
                        Ok(c) => {
                            conns.push(Arc::clone(&c));
                            c
                        }
                        Err(e) => return (pending.done)(Err(e)),
                    },
                }
            };
            match conn.queue(pending) {
                Ok(()) => return,
                // It died meanwhile: try the next one.
                Err(back) => pending = back,
            }
        }
    }

    /// A new connection; its writer thread connects (so a slow connect never
    /// blocks the caller) and starts the reader.
    fn open(self: &Arc<Shared>) -> Result<Arc<Conn>> {
        let conn = Arc::new(Conn {
            outbox: Mutex::new(Outbox::default()),
            wake: Condvar::new(),
            in_flight: Mutex::new(VecDeque::new()),
            load: AtomicUsize::new(0),
            dead: AtomicBool::new(false),
            write_failure: Mutex::new(None),
            stream: Mutex::new(None),
        });
        let (writer, shared) = (Arc::clone(&conn), Arc::downgrade(self));
        std::thread::Builder::new()
            .name("karma-pipeline".into())
            .spawn(move || writer.write_loop(shared))
            .map_err(|e| ClientError::Connection(format!("cannot start a connection thread: {e}")))?;
        Ok(conn)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.close();
    }
}

impl Conn {
    /// Adds a request to the outbox, or hands it back if the connection died.
    fn queue(&self, pending: Pending) -> std::result::Result<(), Pending> {
        let mut outbox = self.outbox.lock();
        if self.dead.load(Ordering::Acquire) || outbox.closing {
            return Err(pending);
        }
        self.load.fetch_add(1, Ordering::Relaxed);
        outbox.bytes.extend_from_slice(&pending.line);
        outbox.requests.push(pending);
        drop(outbox);
        self.wake.notify_one();
        Ok(())
    }

    fn write_loop(self: Arc<Conn>, shared: Weak<Shared>) {
        let config = match shared.upgrade() {
            Some(s) => s.config.clone(),
            None => return self.fail(Broken::Closed("the client is closed".into()), &shared),
        };
        let address = config.address();
        let stream = match connect(&config).and_then(|s| {
            let reader = s.try_clone().map_err(|e| ClientError::Connection(format!("{address}: {e}")))?;
            Ok((s, reader))
        }) {
            Ok(pair) => pair,
            Err(e) => return self.fail(Broken::Fatal(e), &shared),
        };
        let (mut stream, reader) = stream;
        *self.stream.lock() = stream.try_clone().ok();
        let (conn, weak) = (Arc::clone(&self), shared.clone());
        let spawned = std::thread::Builder::new()
            .name("karma-pipeline".into())
            .spawn(move || conn.read_loop(reader, &config, &weak));
        if let Err(e) = spawned {
            let why = ClientError::Connection(format!("cannot start a connection thread: {e}"));
            return self.fail(Broken::Fatal(why), &shared);
        }
        let mut spare = Vec::new();
        loop {
            let (mut bytes, requests) = {
                let mut outbox = self.outbox.lock();
                while outbox.requests.is_empty() && !outbox.closing && !self.dead.load(Ordering::Acquire) {
                    self.wake.wait(&mut outbox);
                }
                if outbox.requests.is_empty() || self.dead.load(Ordering::Acquire) {
                    break;
                }
                let bytes = std::mem::replace(&mut outbox.bytes, std::mem::take(&mut spare));
                (bytes, std::mem::take(&mut outbox.requests))
            };
            {
                // In the FIFO before the bytes leave: the answer may come back at once.
                let mut in_flight = self.in_flight.lock();
                if self.dead.load(Ordering::Acquire) {
                    // `fail` already emptied the FIFO: these were never sent.
                    drop(in_flight);
                    return self.settle(requests, &Broken::Closed("the connection was lost".into()), &shared);
                }
                let now = Instant::now();
                in_flight.extend(requests.into_iter().map(|p| Pending { written: Some(now), ..p }));
            }
            if let Err(e) = stream.write_all(&bytes) {
                if is_timeout(&e) {
                    *self.write_failure.lock() = Some(ClientError::Timeout(format!("writing to {address} timed out")));
                }
                // The reader sees the shutdown and settles everything unanswered.
                self.shut(Shutdown::Both);
                return;
            }
            bytes.clear();
            spare = bytes;
        }
        // Closing: the server answers what it read, then sees EOF and closes.
        self.shut(Shutdown::Write);
    }

    fn read_loop(self: Arc<Conn>, stream: TcpStream, config: &ClientConfig, shared: &Weak<Shared>) {
        let mut reader = BufReader::with_capacity(64 * 1024, stream);
        let mut line = Vec::with_capacity(64);
        let broken = loop {
            match read_bounded_line(&mut reader, &mut line, config.max_response_bytes) {
                Ok(true) => break Broken::Fatal(response_too_large(&config.address(), config.max_response_bytes)),
                Ok(false) if line.last() == Some(&b'\n') => {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    let Some(pending) = self.in_flight.lock().pop_front() else {
                        break Broken::Fatal(ClientError::Protocol(format!(
                            "{} sent an answer to no request",
                            config.address()
                        )));
                    };
                    self.load.fetch_sub(1, Ordering::Relaxed);
                    (pending.done)(Ok(std::mem::replace(&mut line, Vec::with_capacity(64))));
                }
                Ok(false) if line.is_empty() => {
                    break Broken::Closed(format!("{} closed the connection", config.address()))
                }
                Ok(_) => break Broken::Partial,
                Err(e) if is_timeout(&e) => {
                    let oldest = self.in_flight.lock().front().and_then(|p| p.written);
                    if oldest.is_some_and(|t| t.elapsed() >= config.read_timeout) {
                        break Broken::Timeout;
                    }
                }
                Err(e) if line.is_empty() => break Broken::Closed(format!("reading from {}: {e}", config.address())),
                Err(e) => {
                    break Broken::Fatal(ClientError::Connection(format!(
                        "reading from {} failed in the middle of a response: {e}",
                        config.address()
                    )))
                }
            }
        };
        self.fail(broken, shared);
    }

    fn shut(&self, how: Shutdown) {
        if let Some(s) = self.stream.lock().as_ref() {
            let _ = s.shutdown(how);
        }
    }

    /// Marks the connection dead and settles every unanswered request:
    /// sent again elsewhere when that is safe, failed otherwise.
    fn fail(&self, why: Broken, shared: &Weak<Shared>) {
        let queued = {
            let mut outbox = self.outbox.lock();
            self.dead.store(true, Ordering::Release);
            outbox.bytes.clear();
            std::mem::take(&mut outbox.requests)
        };
        self.wake.notify_one();
        self.shut(Shutdown::Both);
        let mut unanswered: Vec<Pending> = self.in_flight.lock().drain(..).collect();
        unanswered.extend(queued);
        self.settle(unanswered, &why, shared);
    }

    /// Settles requests this connection will never answer, oldest first.
    fn settle(&self, unanswered: Vec<Pending>, why: &Broken, shared: &Weak<Shared>) {
        self.load.store(0, Ordering::Relaxed);
        let write_failure = self.write_failure.lock().clone();
        let shared = shared.upgrade().filter(|s| !s.closed.load(Ordering::Acquire));
        for (i, mut pending) in unanswered.into_iter().enumerate() {
            let never_sent = pending.written.is_none();
            // Once, and only after a connection that worked was lost (not a
            // refused connect or a timeout, which would just happen again).
            let resend = matches!(why, Broken::Closed(_)) && write_failure.is_none() && !pending.retried;
            if let Some(shared) = shared.as_ref().filter(|_| resend && (pending.retry_safe || never_sent)) {
                pending.retried = true;
                pending.written = None;
                shared.submit(pending);
                continue;
            }
            let error = match (why, &write_failure) {
                (_, Some(e)) => e.clone(),
                (Broken::Fatal(e), None) => e.clone(),
                (Broken::Timeout, None) => ClientError::Timeout("no response within the read timeout".into()),
                (Broken::Partial, None) if i == 0 => {
                    ClientError::Connection("the server closed the connection in the middle of a response".into())
                }
                (Broken::Closed(m), None) if pending.retry_safe || never_sent => ClientError::Connection(m.clone()),
                (Broken::Closed(m), None) => ClientError::Connection(format!(
                    "{m} before answering; not retried: the request is a write and may have been applied"
                )),
                (Broken::Partial, None) => ClientError::Connection(
                    "the server closed the connection before answering; not retried: the request may have been applied"
                        .into(),
                ),
            };
            (pending.done)(Err(error));
        }
    }
}
