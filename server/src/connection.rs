//! One client connection: NDJSON framing, pipelined batches, group-commit
//! durability wait, timeouts (spec/server.md §3, spec/protocol.md §1).
//!
//! Every complete line already buffered is executed in order into one output
//! buffer; the connection then waits once for the highest WAL LSN among them
//! to be durable and writes all responses with one `write_all`. A pipelining
//! client thus gets one group commit and one write per read.
//!
//! Resource bounds (docs/limits.md): once a batch's answers pass
//! `--max-pending-output-bytes` the rest of the buffered lines wait until
//! those answers are written, and nothing more is read meanwhile, so a client
//! that pipelines heavy reads and never reads its answers holds at most that
//! much output; a request line must be complete within `--request-deadline`
//! of its first byte; heavy batches take one of `--max-heavy-requests`
//! permits; an idle connection may be reaped to make room (`slots`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use karma_engine::protocol::plain::usual_hot_op;
use karma_engine::protocol::Op;
use karma_engine::{Engine, Error, ErrorCode, Limit, LineBatch, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch, Semaphore};

use crate::slots::Slot;

/// Read buffer growth step.
const READ_CHUNK: usize = 8 * 1024;
/// Buffers above this are shrunk back after use, so idle connections stay small.
const KEEP_CAPACITY: usize = 64 * 1024;
/// After `request_too_large`, how long unread input is drained before the
/// socket is closed, so the error line is not destroyed by a TCP reset.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1 << 20;

/// Per-connection settings, derived once from the configuration.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    pub max_request_bytes: usize,
    pub read_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    /// A batch stops executing once its answers reach this many bytes.
    pub max_pending_output_bytes: usize,
    /// Time allowed to complete a request line, from its first byte.
    pub request_deadline: Option<Duration>,
    /// Permits for heavy batches (`--max-heavy-requests`), shared by all
    /// connections, so their working memory and threads stay bounded.
    pub heavy: Arc<Semaphore>,
}

/// What one pass over the buffered input produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Bytes of input consumed (complete lines and their terminators).
    pub consumed: usize,
    /// Requests executed (one response line each, in `out`).
    pub requests: usize,
    /// Highest LSN that must be durable before `out` may be sent.
    pub lsn: Option<u64>,
    /// A line longer than the limit was found after the executed ones: send
    /// `request_too_large` and close.
    pub too_large: bool,
    /// The answers reached the pending output limit before every complete
    /// line was executed: write them, then go on with the rest.
    pub output_full: bool,
    /// Stopped before a heavy line ([`Heavy::StopBefore`]): the rest of the
    /// input, from that line on, is still to run.
    pub stopped_at_heavy: bool,
}

impl Batch {
    /// This batch followed by `later`, which ran the input this one left.
    pub fn then(self, later: Batch) -> Batch {
        Batch {
            consumed: self.consumed + later.consumed,
            requests: self.requests + later.requests,
            lsn: self.lsn.max(later.lsn),
            ..later
        }
    }
}

/// What [`run_batch`] does on reaching a heavy line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heavy {
    /// Runs it like any other (on a thread that may block).
    Run,
    /// Stops before it (on an async worker, which must not stall).
    StopBefore,
}

/// Executes one request line of a batch into `out`. This is the single place
/// the connection calls into the engine, so long-running ops can later move to
/// `spawn_blocking` without touching the framing. A panic in the engine
/// becomes an `internal_error` line for that request only.
pub fn execute(lines: &mut LineBatch<'_>, line: &[u8], out: &mut Vec<u8>) -> Option<u64> {
    let start = out.len();
    match catch_unwind(AssertUnwindSafe(|| lines.handle_line_into(line, &Session::client(), out))) {
        Ok(lsn) => lsn,
        Err(_) => {
            out.truncate(start);
            out.extend_from_slice(&Engine::error_line(&Error::internal("Internal error while handling the request")));
            None
        }
    }
}

/// Whether a request line asks for work whose cost grows with the data
/// (the op table's `Cost::Heavy`: full-series scans, batches, snapshot and
/// replication work, whole-engine stats): those run on the blocking pool so
/// they cannot stall the async workers. Only the line's `op` value is
/// inspected; a line whose op is unknown or unreadable is not heavy (it
/// only earns an error line).
pub fn is_heavy(line: &[u8]) -> bool {
    // Asked of every line before it runs. Most lines are hot ops written
    // the usual way, none of them heavy: recognised by a few byte
    // comparisons, not the op table lookup.
    usual_hot_op(line).is_none() && op_of(line).is_some_and(op_is_heavy)
}

/// The value of the first `"op"` member of a request line, unparsed.
fn op_of(line: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"\"op\"";
    // What clients send: `op` right after `v`, so no search at all.
    const USUAL_START: &[u8] = b"{\"v\":2,\"op\"";
    let at = if line.starts_with(USUAL_START) {
        USUAL_START.len()
    } else {
        memchr::memchr_iter(b'"', line).find(|&i| line[i..].starts_with(KEY))? + KEY.len()
    };
    let rest = &line[at..];
    let rest = &rest[memchr::memchr(b'"', rest)? + 1..];
    Some(&rest[..memchr::memchr(b'"', rest)?])
}

/// Looks the op name (or alias) up in the engine's op table.
fn op_is_heavy(op: &[u8]) -> bool {
    std::str::from_utf8(op).ok().and_then(Op::from_name).is_some_and(Op::is_heavy)
}

/// Executes every complete line of `input` (and, at `eof`, a final line
/// without `\n`), appending the responses to `out`. Stops at the first line
/// whose body (including a `\r` before the `\n`) exceeds `max`; also flags a
/// partial line that is already longer than `max`. Stops early, flagging
/// `output_full`, once `out` holds `max_output` bytes or more, and, with
/// [`Heavy::StopBefore`], flagging `stopped_at_heavy` before a heavy line.
pub fn run_batch(
    engine: &Engine,
    input: &[u8],
    max: usize,
    max_output: usize,
    eof: bool,
    out: &mut Vec<u8>,
    heavy: Heavy,
) -> Batch {
    let mut batch = Batch::default();
    // The lines of one read share the clock reads and metric updates that
    // need not be per line (see LineBatch).
    let mut lines = engine.line_batch();
    let mut rest = input;
    while let Some(pos) = memchr::memchr(b'\n', rest) {
        if out.len() >= max_output {
            batch.output_full = true;
            return batch;
        }
        if pos > max {
            batch.too_large = true;
            return batch;
        }
        let mut line = &rest[..pos];
        if let [body @ .., b'\r'] = line {
            line = body;
        }
        if heavy == Heavy::StopBefore && is_heavy(line) {
            batch.stopped_at_heavy = true;
            return batch;
        }
        let lsn = execute(&mut lines, line, out);
        batch.lsn = batch.lsn.max(lsn);
        batch.requests += 1;
        batch.consumed += pos + 1;
        rest = &rest[pos + 1..];
    }
    if rest.len() > max {
        batch.too_large = true;
    } else if eof && !rest.is_empty() && out.len() >= max_output {
        batch.output_full = true;
    } else if eof && !rest.is_empty() && heavy == Heavy::StopBefore && is_heavy(rest) {
        batch.stopped_at_heavy = true;
    } else if eof && !rest.is_empty() {
        let lsn = execute(&mut lines, rest, out);
        batch.lsn = batch.lsn.max(lsn);
        batch.requests += 1;
        batch.consumed += rest.len();
    }
    batch
}

/// Waits (without blocking the runtime) until every WAL entry up to `lsn` is
/// durable. `others_open`: other connections may be executing writes in
/// this same turn of the runtime.
pub async fn wait_durable(engine: &Engine, lsn: u64, others_open: bool) -> Result<(), Error> {
    if others_open && !engine.is_committed(lsn) {
        // Let the other connections that are ready in this turn append their
        // writes first: `yield_now` defers this task until the runtime has
        // run what is ready and polled for I/O, as Redis commits the writes
        // of one event-loop turn together. Then the first of them to commit
        // takes the whole queue: one write(2), or under `always` one fsync,
        // for every connection of the turn instead of one per connection.
        tokio::task::yield_now().await;
    }
    // Already durable, or (no fsync before the acknowledgement) the writer
    // was free and committed the queued group right here with one write(2):
    // no thread hop. Otherwise (always under `--wal-fsync=always`, so an
    // fsync never stalls the other connections of this worker) the WAL
    // writer thread commits, with whatever else arrives meanwhile, and
    // wakes this task.
    if let Some(result) = engine.try_durable_now(lsn) {
        return result;
    }
    if !others_open && may_block_in_place() {
        // A lone connection has nobody to gather a group with and nobody
        // its fsync could hold up: it commits on this thread, and the
        // worker's other tasks (accepting, timers) move to another thread
        // meanwhile. Handing the wait to the WAL writer would cost two
        // cross-thread wake-ups in the latency of every request (to the
        // writer and back), each tens of microseconds on an idle vCPU.
        return tokio::task::block_in_place(|| engine.wait_durable(lsn));
    }
    let (tx, rx) = oneshot::channel();
    engine.on_durable(
        lsn,
        Box::new(move |result| {
            let _ = tx.send(result);
        }),
    );
    match rx.await {
        Ok(result) => result,
        Err(_) => Err(Error::internal("WAL writer stopped before the write was durable")),
    }
}

/// Whether this task runs on a runtime that can hand its worker's other
/// tasks to another thread (`block_in_place` panics on a current-thread
/// runtime).
fn may_block_in_place() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|runtime| runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// `limit_exceeded` for a request line not completed within `deadline`.
pub fn deadline_line(deadline: Duration) -> Vec<u8> {
    let message = format!("Request line not completed within {} seconds", deadline.as_secs());
    Engine::error_line(&Error::new(ErrorCode::LimitExceeded, message))
}

/// `request_too_large` for a limit of `max` bytes.
pub fn too_large_line(max: usize) -> Vec<u8> {
    Engine::error_line(&Error::new(ErrorCode::RequestTooLarge, format!("Request exceeds {max} bytes")))
}

async fn write_all_timeout(stream: &mut TcpStream, mut data: &[u8], timeout: Option<Duration>) -> std::io::Result<()> {
    // The socket buffer almost always has room: write without creating a
    // timer (a clock read and a runtime handle per answer).
    match stream.try_write(data) {
        Ok(n) => data = &data[n..],
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    while !data.is_empty() {
        let n = match timeout {
            Some(t) => match tokio::time::timeout(t, stream.write(data)).await {
                Ok(r) => r?,
                Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
            },
            None => stream.write(data).await?,
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    Ok(())
}

/// Half-closes and drains unread input for a moment, so the peer reads the
/// last line before the socket is dropped (dropping with unread input sends a
/// reset that can discard it).
async fn lingering_close(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let drain = async {
        let mut scratch = vec![0u8; READ_CHUNK];
        let mut total = 0;
        while total < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// How the wait for more input ended.
enum Wait {
    Read(std::io::Result<usize>),
    /// `--read-timeout` with nothing arriving: close silently.
    Idle,
    /// `--request-deadline` passed with the line still incomplete.
    Deadline,
    /// Server shutdown, or this idle connection was reaped for a newcomer.
    Close,
}

/// Runs the complete lines of `buf`: here up to the first heavy line, and
/// from it on on the blocking pool, holding a heavy permit. `None` if that
/// task died.
async fn execute_buffered(
    engine: &Engine,
    settings: &ConnectionSettings,
    buf: &[u8],
    eof: bool,
    out: &mut Vec<u8>,
) -> Option<Batch> {
    let (max, max_output) = (settings.max_request_bytes, settings.max_pending_output_bytes);
    let light = run_batch(engine, buf, max, max_output, eof, out, Heavy::StopBefore);
    if !light.stopped_at_heavy {
        return Some(light);
    }
    // Scans, big batches and snapshot work may take a while: run them on the
    // blocking pool so other connections keep going, a bounded number at once.
    let permit = settings.heavy.clone().acquire_owned().await.ok()?;
    let (e, input, mut o) = (engine.clone(), buf[light.consumed..].to_vec(), std::mem::take(out));
    let (heavy, o) =
        tokio::task::spawn_blocking(move || (run_batch(&e, &input, max, max_output, eof, &mut o, Heavy::Run), o))
            .await
            .ok()?;
    drop(permit);
    *out = o;
    Some(light.then(heavy))
}

/// Serves one connection until EOF, an error, a timeout, an oversized request
/// or server shutdown. Never panics; errors end only this connection.
pub async fn serve(
    mut stream: TcpStream,
    engine: Engine,
    settings: ConnectionSettings,
    slot: Slot,
    shutdown: watch::Receiver<bool>,
) {
    let max = settings.max_request_bytes;
    let mut buf: Vec<u8> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    let mut eof = false;
    // When the first byte of the oldest incomplete line in `buf` arrived
    // (at the latest), for `--request-deadline`.
    let mut line_started: Option<Instant> = None;
    // `--read-timeout`: one timer for the connection's life, pushed later at
    // every wait. Moving a registered timer later is an atomic store; a new
    // timer per read takes the timer wheel's lock and, when the runtime
    // parked with no timer pending, wakes it through its eventfd.
    let idle = tokio::time::sleep(settings.read_timeout.unwrap_or_default());
    tokio::pin!(idle);
    // Shutdown or reaping, likewise registered once instead of per read.
    let mut shutdown_changed = shutdown.clone();
    let closing = async {
        tokio::select! {
            _ = shutdown_changed.changed() => {}
            _ = slot.reaped() => {}
        }
    };
    tokio::pin!(closing);
    loop {
        // Marked idle in this pass already (after running what was read).
        let mut marked_idle = false;
        if !buf.is_empty() || eof {
            out.clear();
            let Some(batch) = execute_buffered(&engine, &settings, &buf, eof, &mut out).await else { return };
            if let Some(lsn) = batch.lsn {
                if let Err(err) = wait_durable(&engine, lsn, slot.others_open()).await {
                    // Nothing of this batch may be acknowledged: a read after
                    // a write could have observed the non-durable state.
                    let line = Engine::error_line(&Error::internal(err.message()));
                    out.clear();
                    for _ in 0..batch.requests {
                        out.extend_from_slice(&line);
                    }
                }
            }
            if batch.too_large {
                out.extend_from_slice(&too_large_line(max));
            }
            if batch.output_full {
                engine.count_limit(Limit::PendingOutput);
            }
            if batch.consumed == buf.len() && !eof && !batch.output_full && !batch.too_large {
                // Nothing is left to run once these answers are out, and a
                // client that has read them may count on this connection
                // making room for a newcomer: it is idle from now on, not
                // from the moment after the write, which the client can
                // outrun. A reap only takes effect at the next wait, so
                // these answers are still written whole.
                marked_idle = slot.set_idle();
            }
            if !out.is_empty() && write_all_timeout(&mut stream, &out, settings.write_timeout).await.is_err() {
                return;
            }
            if batch.too_large {
                lingering_close(stream).await;
                return;
            }
            if eof && !batch.output_full {
                let _ = stream.shutdown().await;
                return;
            }
            buf.drain(..batch.consumed);
            if buf.capacity() > KEEP_CAPACITY && buf.len() < KEEP_CAPACITY / 2 {
                buf.shrink_to(KEEP_CAPACITY / 2);
            }
            if out.capacity() > KEEP_CAPACITY {
                out = Vec::new();
            }
            if buf.is_empty() {
                line_started = None;
            } else if batch.consumed > 0 {
                // What is left began after the last executed line. Its rest
                // may have waited in the socket while this connection
                // executed and wrote answers without reading (a pipelining
                // client that reads late): the client's time starts when the
                // server reads again, that is now, not at the last read.
                line_started = Some(Instant::now());
            }
            if batch.output_full {
                // The answers are out: go on with the buffered lines before
                // reading anything more.
                continue;
            }
        }
        if *shutdown.borrow() {
            return;
        }
        // (A reap after the mark above ends the wait below at once.)
        if buf.is_empty() && !marked_idle && !slot.set_idle() {
            return;
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let wait = match stream.try_read_buf(&mut buf) {
            // Input already there (a pipelining or busy client): take it
            // without a timer, a select or a trip through the runtime.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let deadline = line_started.zip(settings.request_deadline).map(|(at, d)| at + d);
                if let Some(t) = settings.read_timeout {
                    idle.as_mut().reset(tokio::time::Instant::now() + t);
                }
                tokio::select! {
                    r = stream.read_buf(&mut buf) => Wait::Read(r),
                    _ = &mut idle, if settings.read_timeout.is_some() => Wait::Idle,
                    _ = async {
                        match deadline {
                            Some(at) => tokio::time::sleep_until(at.into()).await,
                            None => std::future::pending().await,
                        }
                    } => Wait::Deadline,
                    _ = &mut closing => Wait::Close,
                }
            }
            read => {
                // Without an await that can return Pending, a client that
                // always has input ready would keep this worker from every
                // other connection: spend the task's runtime budget instead.
                tokio::task::consume_budget().await;
                Wait::Read(read)
            }
        };
        match wait {
            Wait::Idle | Wait::Close | Wait::Read(Err(_)) => return,
            Wait::Deadline => {
                engine.count_limit(Limit::RequestDeadline);
                let line = deadline_line(settings.request_deadline.unwrap_or_default());
                if write_all_timeout(&mut stream, &line, settings.write_timeout).await.is_ok() {
                    lingering_close(stream).await;
                }
                return;
            }
            Wait::Read(Ok(0)) => eof = true,
            Wait::Read(Ok(n)) => {
                if buf.len() == n {
                    line_started = Some(Instant::now());
                }
            }
        }
        if !slot.set_busy() {
            return;
        }
    }
}

/// Answers a connection over the `--max-connections` limit (every slot busy,
/// none idle) with one error line and closes it.
pub async fn reject(stream: TcpStream, limit: usize) {
    let mut stream = stream;
    let message = format!("Too many connections (limit {limit})");
    let line = Engine::error_line(&Error::new(ErrorCode::LimitExceeded, message));
    if write_all_timeout(&mut stream, &line, Some(Duration::from_secs(1))).await.is_ok() {
        lingering_close(stream).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(out: &[u8]) -> usize {
        out.iter().filter(|&&b| b == b'\n').count()
    }

    #[test]
    fn executes_complete_lines_only() {
        let engine = Engine::in_memory();
        let mut out = Vec::new();
        let b = run_batch(&engine, b"{\"v\":2}\r\n\n{\"v\"", 4096, usize::MAX, false, &mut out, Heavy::Run);
        assert_eq!(b.requests, 2);
        assert_eq!(b.consumed, 10);
        assert!(!b.too_large);
        assert_eq!(lines(&out), 2);
    }

    #[test]
    fn stops_once_the_output_limit_is_reached() {
        let engine = Engine::in_memory();
        let input = b"a\nb\nc\nd";
        let mut out = Vec::new();
        // Every answer is longer than 10 bytes: one line per batch.
        let b = run_batch(&engine, input, 4096, 10, true, &mut out, Heavy::Run);
        assert_eq!((b.requests, b.consumed, b.output_full), (1, 2, true));
        let first = out.len();
        let b = run_batch(&engine, input, 4096, first * 3, true, &mut out, Heavy::Run);
        assert_eq!((b.requests, b.consumed, b.output_full), (2, 4, true));
        // The final unterminated line at EOF waits too.
        out.clear();
        let b = run_batch(&engine, input, 4096, first * 3, true, &mut out, Heavy::Run);
        assert_eq!((b.requests, b.consumed, b.output_full), (3, 6, true));
        let b = run_batch(&engine, &input[6..], 4096, usize::MAX, true, &mut Vec::new(), Heavy::Run);
        assert_eq!((b.requests, b.consumed, b.output_full), (1, 1, false));
    }

    #[test]
    fn heavy_requests_are_recognised() {
        assert!(is_heavy(br#"{"v":2,"op":"tree.summary","series":"a"}"#));
        assert!(is_heavy(br#"{"v":2,"op":"series.batch_add","series":"a","items":[]}"#));
        assert!(is_heavy(br#"{"v":2,"op":"snapshot.create_all"}"#));
        assert!(!is_heavy(br#"{"v":2,"op":"counter.increment","series":"a","key":1}"#));
        assert!(!is_heavy(br#"{"v":2,"op":"counter.sum","series":"a","key":1}"#));
        assert!(!is_heavy(br#"{"v":2,"op":"counter.sum","series":"tree.batch","key":1}"#));
        assert!(is_heavy(br#"{"op":"counter.multi_sum"}"#));
        assert!(!is_heavy(b"not json at all"));
        // Members in another order, or spaced out, are found as well.
        assert!(is_heavy(br#"{"series":"a","op":"tree.summary","v":2}"#));
        assert!(is_heavy(br#"{ "v" : 2, "op" : "series.batch_add" }"#));
        assert!(!is_heavy(br#"{"series":"op","v":2,"op":"counter.increment"}"#));
        // One op of each class and cost.
        assert!(!is_heavy(br#"{"v":2,"op":"system.ping"}"#));
        assert!(is_heavy(br#"{"v":2,"op":"system.stats"}"#));
        assert!(!is_heavy(br#"{"v":2,"op":"counter.consume","series":"a","key":1,"limit":1}"#));
        assert!(is_heavy(br#"{"v":2,"op":"ingest.chunk"}"#));
        assert!(!is_heavy(br#"{"v":2,"op":"reconciliation.report"}"#));
        assert!(is_heavy(br#"{"v":2,"op":"snapshot.load","file":"x"}"#));
        // Unknown ops are not heavy, whatever they look like.
        assert!(!is_heavy(br#"{"v":2,"op":"tree.nonsense_batch"}"#));
        assert!(!is_heavy(br#"{"v":2,"op":"system.verify"}"#));
    }

    #[test]
    fn a_light_pass_stops_before_the_first_heavy_line() {
        let engine = Engine::in_memory();
        let sum = "{\"v\":2,\"op\":\"counter.sum\",\"series\":\"s\",\"key\":1}\n";
        let keys = "{\"v\":2,\"op\":\"tree.keys\",\"series\":\"s\"}\n";
        let input = format!("{sum}\n{keys}{sum}");
        let mut out = Vec::new();
        let light = run_batch(&engine, input.as_bytes(), 4096, usize::MAX, false, &mut out, Heavy::StopBefore);
        assert_eq!((light.requests, light.consumed, light.stopped_at_heavy), (2, sum.len() + 1, true));
        assert_eq!(lines(&out), 2);
        let rest = &input.as_bytes()[light.consumed..];
        let heavy = run_batch(&engine, rest, 4096, usize::MAX, false, &mut out, Heavy::Run);
        assert_eq!((heavy.requests, heavy.stopped_at_heavy), (2, false));
        let whole = light.then(heavy);
        assert_eq!((whole.requests, whole.consumed, whole.stopped_at_heavy), (4, input.len(), false));
        assert_eq!(lines(&out), 4, "every line answered once, in order");
        // A heavy final line at EOF waits for the blocking pool as well.
        let at_eof = format!("{sum}{}", keys.trim_end());
        let b = run_batch(&engine, at_eof.as_bytes(), 4096, usize::MAX, true, &mut Vec::new(), Heavy::StopBefore);
        assert_eq!((b.requests, b.consumed, b.stopped_at_heavy), (1, sum.len(), true));
        // Without heavy lines nothing stops.
        let b = run_batch(&engine, sum.as_bytes(), 4096, usize::MAX, false, &mut Vec::new(), Heavy::StopBefore);
        assert_eq!((b.requests, b.stopped_at_heavy), (1, false));
    }

    #[test]
    fn heaviness_comes_from_the_op_table_for_every_name_and_alias() {
        for &op in Op::ALL {
            for name in std::iter::once(op.name()).chain(op.aliases().iter().copied()) {
                let line = format!(r#"{{"v":2,"op":"{name}"}}"#);
                assert_eq!(is_heavy(line.as_bytes()), op.is_heavy(), "{name}");
                let reordered = format!(r#"{{"series":"a","op":"{name}","v":2}}"#);
                assert_eq!(is_heavy(reordered.as_bytes()), op.is_heavy(), "{name}");
            }
        }
    }

    #[test]
    fn final_line_at_eof() {
        let engine = Engine::in_memory();
        let mut out = Vec::new();
        let b = run_batch(&engine, b"a\nbc", 4096, usize::MAX, true, &mut out, Heavy::Run);
        assert_eq!(b.requests, 2);
        assert_eq!(b.consumed, 4);
        let mut out = Vec::new();
        let b = run_batch(&engine, b"", 4096, usize::MAX, true, &mut out, Heavy::Run);
        assert_eq!(b, Batch::default());
    }

    #[test]
    fn size_limit_counts_the_carriage_return() {
        let engine = Engine::in_memory();
        let mut out = Vec::new();
        // Exactly max bytes: accepted.
        let b = run_batch(&engine, b"abcd\n", 4, usize::MAX, false, &mut out, Heavy::Run);
        assert_eq!((b.requests, b.too_large), (1, false));
        // max bytes + \r: rejected.
        let b = run_batch(&engine, b"abcd\r\n", 4, usize::MAX, false, &mut out, Heavy::Run);
        assert_eq!((b.requests, b.too_large), (0, true));
        // Lines before the oversized one are answered first.
        let b = run_batch(&engine, b"ab\nabcde\nab\n", 4, usize::MAX, false, &mut out, Heavy::Run);
        assert_eq!((b.requests, b.consumed, b.too_large), (1, 3, true));
        // A partial line already over the limit.
        let b = run_batch(&engine, b"ab\nabcde", 4, usize::MAX, false, &mut out, Heavy::Run);
        assert_eq!((b.requests, b.too_large), (1, true));
        // A partial line at the limit waits for more input.
        let b = run_batch(&engine, b"abcd", 4, usize::MAX, false, &mut out, Heavy::Run);
        assert_eq!((b.requests, b.too_large), (0, false));
        // Huge limits do not overflow.
        let b = run_batch(&engine, b"abcd\n", usize::MAX, usize::MAX, false, &mut out, Heavy::Run);
        assert_eq!(b.requests, 1);
    }

    /// Group commits the WAL wrote for `connections` single increments
    /// executed in one turn of a one-thread runtime, each then awaiting
    /// durability as a connection does.
    fn wal_groups_for_one_turn(connections: u64, others_open: bool) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let options = karma_engine::Options {
            wal_fsync: karma_engine::FsyncPolicy::Never,
            ..karma_engine::Options::durable(dir.path())
        };
        let engine = Engine::open(options).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for key in 1..=connections {
                let engine = engine.clone();
                tasks.spawn(async move {
                    let line = format!("{{\"v\":2,\"op\":\"counter.increment\",\"series\":\"s\",\"key\":{key}}}\n");
                    let batch =
                        run_batch(&engine, line.as_bytes(), 4096, usize::MAX, false, &mut Vec::new(), Heavy::Run);
                    wait_durable(&engine, batch.lsn.unwrap(), others_open).await
                });
            }
            while let Some(done) = tasks.join_next().await {
                assert_eq!(done.unwrap(), Ok(()));
            }
        });
        let wal = engine.request_value("system.wal", serde_json::Map::new()).unwrap();
        assert_eq!(wal["durable_lsn"].as_u64(), Some(connections), "{wal}");
        wal["groups"].as_u64().unwrap()
    }

    #[test]
    fn writes_of_one_runtime_turn_share_a_group_commit() {
        // Alone, a connection commits its own write at once.
        assert_eq!(wal_groups_for_one_turn(16, false), 16);
        // With others open, each lets the rest of the turn append first and
        // the first to commit takes them all (the WAL writer thread's sweep
        // may take a part first: fewer groups than writes, whatever else).
        assert!(wal_groups_for_one_turn(16, true) < 16);
    }

    #[test]
    fn too_large_line_text() {
        let line = String::from_utf8(too_large_line(4096)).unwrap_or_default();
        assert!(line.starts_with(
            "{\"protocol_version\":2,\"success\":false,\"response\":\"Request exceeds 4096 bytes\",\"error_code\":\"request_too_large\"}"
        ));
    }
}
