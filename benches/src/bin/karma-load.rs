//! TCP load generator for a running `karma` server (protocol v2, NDJSON).
//!
//! Each client is one connection. It keeps `--pipeline` requests in flight:
//! writes P request lines with one `write`, then reads the P response lines,
//! and repeats. Like `redis-benchmark`, the clients run as tasks on
//! `--threads` event-loop threads (default 1: one epoll loop, as
//! redis-benchmark). Until 2026-11-22 each client was a blocking OS thread,
//! which at 50 clients took much of the CPU from the server it measured.
//! Every response must be a success envelope (others are counted as errors). The latency of a request runs from the
//! send of its batch to the read of its own response line, recorded in a
//! log-linear histogram (< 0.8% error).
//!
//! Before measuring, the tool creates the series and gives each of the
//! `--keys` keys one point in today's bucket (`series.batch_add` in requests
//! of `--batch` items), so `sum`/`batch_sum` read existing counters. Then
//! `--warmup` seconds run unrecorded, then `--duration` seconds are measured.
//!
//! Only loopback addresses are accepted: this is a local benchmark.
//!
//! `--protocol resp` drives a Redis server with the same loop, for side by
//! side runs (benches/durable-vs-redis.sh): `increment` is `INCRBY k 1`,
//! `batch_add` is `--batch` pipelined `INCRBY`s counted as one request. With
//! `--server-pid`, the server's CPU time (utime + stime of
//! `/proc/<pid>/stat`) over the measured seconds is reported per item.
//!
//! ```sh
//! target/release/karma --bind=127.0.0.1 --port=7400 --directory=/tmp/k --log=false --max-request-bytes=1048576 &
//! target/release/karma-load --port 7400 --clients 4 --pipeline 1 --duration 5 --op increment
//! ```
//!
//! Batches of 1,000 items are ~18 KB per line: the server needs a
//! `--max-request-bytes` above its default of 4096 for `batch_add`/`batch_sum`
//! (and for the setup step, which always uses batches).

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use karma_benches::{thousands, Histogram};
use karma_engine::clock::bucket_of_unix;

const SUCCESS_PREFIX: &[u8] = b"{\"protocol_version\":2,\"success\":true,";
/// A RESP integer reply (what `INCRBY` answers).
const RESP_INTEGER_PREFIX: &[u8] = b":";
/// Linux reports process CPU times in units of USER_HZ, fixed at 100 by its ABI.
const USER_HZ: f64 = 100.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// Karma's protocol v2 (NDJSON).
    Karma,
    /// Redis' RESP (only `increment` and `batch_add`).
    Resp,
}
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Op {
    /// `counter.increment` of one key by 1 (today's bucket).
    Increment,
    /// `counter.sum` (total) of one key.
    Sum,
    /// `counter.consume` of one key by 1 against a month-to-date limit it
    /// never reaches (the allowed path: check and add).
    Consume,
    /// `series.batch_add` of `--batch` items (distinct keys, today, value 1).
    #[value(name = "batch_add", alias = "batch-add")]
    BatchAdd,
    /// `counter.batch_sum` of `--batch` keys.
    #[value(name = "batch_sum", alias = "batch-sum")]
    BatchSum,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Increment => "increment",
            Op::Sum => "sum",
            Op::Consume => "consume",
            Op::BatchAdd => "batch_add",
            Op::BatchSum => "batch_sum",
        }
    }

    fn is_batch(self) -> bool {
        matches!(self, Op::BatchAdd | Op::BatchSum)
    }
}

#[derive(Parser, Debug)]
#[command(name = "karma-load", about = "Pipelined TCP load generator for a local karma server")]
struct Args {
    /// Server address; must resolve to loopback only.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Event-loop threads the connections are spread over (like
    /// redis-benchmark's `--threads`).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Measured seconds (after the warm-up). Default 5; with --requests it is
    /// only an upper bound (default 300).
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after about this many measured requests in total (split evenly
    /// over the clients, rounded up to whole pipeline batches).
    #[arg(long)]
    requests: Option<u64>,
    /// Unrecorded seconds before measuring.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    #[arg(long, value_enum, default_value = "increment")]
    op: Op,
    /// Distinct keys (0..K) the requests rotate over.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Items (batch_add) or keys (batch_sum) per batch request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    #[arg(long, default_value = "bench")]
    series: String,
    /// Sent as the `token` field of every request (note: any token disables
    /// the server's fast path for increment/sum).
    #[arg(long)]
    token: Option<String>,
    /// Skip creating and populating the series.
    #[arg(long)]
    no_setup: bool,
    /// Free text copied into the JSON line (e.g. "wal=off").
    #[arg(long, default_value = "")]
    label: String,
    #[arg(long, value_enum, default_value = "karma")]
    protocol: Protocol,
    /// The server's process id: report its CPU time per item.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// RESP commands for the same workloads.
fn resp_incrby(out: &mut Vec<u8>, key: u64) {
    let key = format!("bench:{key}");
    out.extend_from_slice(format!("*3\r\n$6\r\nINCRBY\r\n${}\r\n{key}\r\n$1\r\n1\r\n", key.len()).as_bytes());
}

/// utime + stime of a process, in seconds.
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may hold spaces):
    // state is field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

fn today_bucket() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    bucket_of_unix(now)
}

/// Builds request lines (each ending in `\n`).
struct Lines {
    series: String,
    token: Option<String>,
}

impl Lines {
    fn start(&self, op: &str) -> String {
        let mut s = String::with_capacity(64);
        s.push_str("{\"v\":2,\"op\":\"");
        s.push_str(op);
        s.push_str("\",\"series\":");
        s.push_str(&serde_json::to_string(&self.series).unwrap_or_default());
        if let Some(token) = &self.token {
            s.push_str(",\"token\":");
            s.push_str(&serde_json::to_string(token).unwrap_or_default());
        }
        s
    }

    fn single(&self, op: Op, key: u64) -> Vec<u8> {
        let mut s = match op {
            Op::Increment => self.start("counter.increment"),
            Op::Consume => self.start("counter.consume"),
            _ => self.start("counter.sum"),
        };
        s.push_str(&format!(",\"key\":{key}"));
        match op {
            Op::Increment => s.push_str(",\"value\":1"),
            Op::Consume => s.push_str(",\"value\":1,\"limit\":9223372036854775807,\"window\":\"month\""),
            _ => {}
        }
        s.push_str("}\n");
        s.into_bytes()
    }

    fn batch_add(&self, keys: impl Iterator<Item = u64>, bucket: u64) -> Vec<u8> {
        let mut s = self.start("series.batch_add");
        s.push_str(",\"items\":[");
        for (i, k) in keys.enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!("[{k},{bucket},1]"));
        }
        s.push_str("]}\n");
        s.into_bytes()
    }

    fn batch_sum(&self, keys: impl Iterator<Item = u64>) -> Vec<u8> {
        let mut s = self.start("counter.batch_sum");
        s.push_str(",\"keys\":[");
        for (i, k) in keys.enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&k.to_string());
        }
        s.push_str("]}\n");
        s.into_bytes()
    }
}

/// `batch`-sized windows over 0..keys (the last one may be shorter).
fn windows(keys: u64, batch: usize) -> impl Iterator<Item = std::ops::Range<u64>> {
    let batch = batch.max(1) as u64;
    (0..keys.div_ceil(batch)).map(move |i| i * batch..((i + 1) * batch).min(keys))
}

/// Splits what a stream sends into `\n`-terminated lines, with one
/// reusable buffer; the reading itself is the caller's (blocking or async).
struct LineReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl LineReader {
    fn new() -> LineReader {
        LineReader { buf: vec![0; 64 * 1024], start: 0, end: 0 }
    }

    /// The next complete line (without its `\n`) already buffered.
    fn take_line(&mut self) -> Option<std::ops::Range<usize>> {
        let pos = self.buf[self.start..self.end].iter().position(|&b| b == b'\n')?;
        let line = self.start..self.start + pos;
        self.start += pos + 1;
        Some(line)
    }

    /// Free space to read into (after moving the unread bytes to the front).
    fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Records `n` bytes read into [`LineReader::spare`].
    fn filled(&mut self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }

    /// The next line, reading from a blocking stream as needed.
    fn next_line(&mut self, stream: &mut TcpStream) -> std::io::Result<&[u8]> {
        loop {
            if let Some(line) = self.take_line() {
                return Ok(&self.buf[line]);
            }
            let n = stream.read(self.spare())?;
            self.filled(n)?;
        }
    }

    /// The next line, reading from a non-blocking stream as needed.
    async fn next_line_async(&mut self, stream: &mut tokio::net::TcpStream) -> std::io::Result<&[u8]> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(line) = self.take_line() {
                return Ok(&self.buf[line]);
            }
            let n = stream.read(self.spare()).await?;
            self.filled(n)?;
        }
    }
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

fn shorten(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    text.chars().take(300).collect()
}

/// Creates the series and one point per key (today's bucket, value 1).
fn setup(addr: SocketAddr, lines: &Lines, keys: u64, batch: usize) -> Result<(), String> {
    let mut stream = connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let mut reader = LineReader::new();
    let bucket = today_bucket();
    for window in windows(keys, batch) {
        let line = lines.batch_add(window, bucket);
        stream.write_all(&line).map_err(|e| format!("setup write: {e}"))?;
        let response = reader.next_line(&mut stream).map_err(|e| format!("setup read: {e}"))?;
        if !response.starts_with(SUCCESS_PREFIX) {
            return Err(format!(
                "setup batch_add ({} bytes) failed: {} (batches need a server --max-request-bytes above that)",
                line.len() - 1,
                shorten(response)
            ));
        }
    }
    Ok(())
}

#[derive(Default)]
struct ClientResult {
    hist: Histogram,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    io_error: Option<String>,
    /// End of the client's last measured batch.
    finished: Option<Instant>,
}

/// What every client shares: the run's shape, its clock and its stop flag.
struct Plan {
    clients: usize,
    pipeline: usize,
    measure_start: Instant,
    measure_end: Instant,
    /// Measured requests per client (`u64::MAX`: time-bound only).
    quota: u64,
    requests: Vec<Vec<u8>>,
    /// Reply lines each request gets (RESP batches get one per command).
    replies: Vec<usize>,
    /// How every successful reply line starts.
    success: &'static [u8],
    stop: AtomicBool,
}

/// One client: pipelined batches until the plan says stop.
async fn run_client(id: usize, plan: &Plan, stream: &mut tokio::net::TcpStream) -> ClientResult {
    use tokio::io::AsyncWriteExt;
    let mut result = ClientResult::default();
    let requests = &plan.requests;
    let mut next = id * requests.len() / plan.clients.max(1);
    let mut out: Vec<u8> = Vec::with_capacity(plan.pipeline * requests[0].len());
    let mut sent_requests: Vec<usize> = Vec::with_capacity(plan.pipeline);
    let mut reader = LineReader::new();
    loop {
        if plan.stop.load(Ordering::Relaxed) || result.ok + result.errors >= plan.quota {
            break;
        }
        out.clear();
        sent_requests.clear();
        for _ in 0..plan.pipeline {
            out.extend_from_slice(&requests[next]);
            sent_requests.push(next);
            next += 1;
            if next == requests.len() {
                next = 0;
            }
        }
        let sent = Instant::now();
        if sent >= plan.measure_end {
            break;
        }
        let measured = sent >= plan.measure_start;
        if let Err(e) = stream.write_all(&out).await {
            result.io_error = Some(format!("write: {e}"));
            break;
        }
        for &request in &sent_requests {
            let mut failed: Option<String> = None;
            for _ in 0..plan.replies[request] {
                let line = match reader.next_line_async(stream).await {
                    Ok(line) => line,
                    Err(e) => {
                        result.io_error = Some(format!("read: {e}"));
                        return result;
                    }
                };
                if failed.is_none() && !line.starts_with(plan.success) {
                    failed = Some(shorten(line));
                }
            }
            if !measured {
                continue;
            }
            let latency = sent.elapsed();
            result.hist.record(latency.as_nanos() as u64);
            match failed {
                None => result.ok += 1,
                Some(line) => {
                    result.errors += 1;
                    result.first_error.get_or_insert(line);
                }
            }
        }
        if measured {
            result.finished = Some(Instant::now());
        }
    }
    result
}

/// One event-loop thread: runs the clients `(id, stream)` as tasks on a
/// single-threaded runtime and returns their results. A client that has not
/// finished `IO_TIMEOUT` after the end of the measurement counts as a
/// connection error.
fn run_event_loop(
    streams: Vec<(usize, TcpStream)>,
    plan: Arc<Plan>,
    barrier: &Barrier,
) -> Result<Vec<ClientResult>, String> {
    let prepared = (|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("event loop: {e}"))?;
        let mut registered = Vec::with_capacity(streams.len());
        let guard = runtime.enter();
        for (id, stream) in streams {
            stream.set_nonblocking(true).map_err(|e| format!("set_nonblocking: {e}"))?;
            registered.push((id, tokio::net::TcpStream::from_std(stream).map_err(|e| format!("register: {e}"))?));
        }
        drop(guard);
        Ok::<_, String>((runtime, registered))
    })();
    // Every thread reaches the barrier, ready or not, so none waits forever.
    barrier.wait();
    let (runtime, registered) = prepared?;
    let tasks: Vec<_> = registered
        .into_iter()
        .map(|(id, mut stream)| {
            let plan = Arc::clone(&plan);
            async move { run_client(id, &plan, &mut stream).await }
        })
        .collect();
    let deadline = tokio::time::Instant::from_std(plan.measure_end + IO_TIMEOUT);
    Ok(runtime.block_on(async move {
        let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
        let mut results = Vec::with_capacity(handles.len());
        for handle in handles {
            results.push(match tokio::time::timeout_at(deadline, handle).await {
                Ok(Ok(r)) => r,
                _ => ClientResult { io_error: Some("timed out".into()), ..ClientResult::default() },
            });
        }
        results
    }))
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(clean) => {
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(message) => {
            eprintln!("karma-load: {message}");
            ExitCode::from(2)
        }
    }
}

/// Runs the benchmark; `Ok(false)` when some request failed.
fn run(args: &Args) -> Result<bool, String> {
    if args.clients == 0 || args.threads == 0 || args.pipeline == 0 || args.keys == 0 || args.batch == 0 {
        return Err("--clients, --threads, --pipeline, --keys and --batch must be > 0".into());
    }
    let addrs: Vec<SocketAddr> =
        (args.host.as_str(), args.port).to_socket_addrs().map_err(|e| format!("resolve {}: {e}", args.host))?.collect();
    let Some(&addr) = addrs.first() else {
        return Err(format!("{} resolves to no address", args.host));
    };
    if !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(format!("{} is not a loopback address: karma-load only targets the local machine", args.host));
    }
    let duration = args.duration.unwrap_or(if args.requests.is_some() { 300.0 } else { 5.0 });
    if !(duration > 0.0 && duration <= 3600.0 && (0.0..=600.0).contains(&args.warmup)) {
        return Err("--duration must be in (0, 3600] and --warmup in [0, 600]".into());
    }

    let lines = Lines { series: args.series.clone(), token: args.token.clone() };
    if !args.no_setup && args.protocol == Protocol::Karma {
        setup(addr, &lines, args.keys, args.batch)?;
    }
    let bucket = today_bucket();
    let requests: Vec<Vec<u8>> = match (args.protocol, args.op) {
        (Protocol::Karma, Op::Increment | Op::Sum | Op::Consume) => {
            (0..args.keys).map(|k| lines.single(args.op, k)).collect()
        }
        (Protocol::Karma, Op::BatchAdd) => windows(args.keys, args.batch).map(|w| lines.batch_add(w, bucket)).collect(),
        (Protocol::Karma, Op::BatchSum) => windows(args.keys, args.batch).map(|w| lines.batch_sum(w)).collect(),
        (Protocol::Resp, Op::Increment) => (0..args.keys)
            .map(|k| {
                let mut out = Vec::new();
                resp_incrby(&mut out, k);
                out
            })
            .collect(),
        (Protocol::Resp, Op::BatchAdd) => windows(args.keys, args.batch)
            .map(|w| {
                let mut out = Vec::new();
                w.for_each(|k| resp_incrby(&mut out, k));
                out
            })
            .collect(),
        (Protocol::Resp, op) => {
            return Err(format!("--protocol resp supports increment and batch_add, not {}", op.name()))
        }
    };
    let replies: Vec<usize> = match (args.protocol, args.op.is_batch()) {
        (Protocol::Resp, true) => windows(args.keys, args.batch).map(|w| (w.end - w.start) as usize).collect(),
        _ => vec![1; requests.len()],
    };
    let success = match args.protocol {
        Protocol::Karma => SUCCESS_PREFIX,
        Protocol::Resp => RESP_INTEGER_PREFIX,
    };
    let items_per_request: Vec<u64> = match args.op {
        Op::Increment | Op::Sum | Op::Consume => vec![1],
        _ => windows(args.keys, args.batch).map(|w| w.end - w.start).collect(),
    };
    // Items per request, averaged over the rotation (exact when keys is a
    // multiple of batch).
    let items_avg = items_per_request.iter().sum::<u64>() as f64 / items_per_request.len() as f64;
    let longest = requests.iter().map(Vec::len).max().unwrap_or(0) - 1;

    let mut streams = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        streams.push(connect(addr).map_err(|e| format!("connect {addr}: {e}"))?);
    }
    let quota = match args.requests {
        Some(total) => {
            let per = total.div_ceil(args.clients as u64);
            per.div_ceil(args.pipeline as u64) * args.pipeline as u64
        }
        None => u64::MAX,
    };
    // Every connection is open; the clients start together at the barrier.
    let measure_start = Instant::now() + Duration::from_millis(20) + Duration::from_secs_f64(args.warmup);
    let measure_end = measure_start + Duration::from_secs_f64(duration);
    let plan = Arc::new(Plan {
        clients: args.clients,
        pipeline: args.pipeline,
        measure_start,
        measure_end,
        quota,
        requests,
        replies,
        success,
        stop: AtomicBool::new(false),
    });
    // The server's CPU time over exactly the measured seconds.
    let cpu_sampler = args.server_pid.map(|pid| {
        std::thread::spawn(move || {
            let sample_at = |at: Instant| {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                process_cpu_seconds(pid)
            };
            let before = sample_at(measure_start)?;
            let after = sample_at(measure_end)?;
            Some(after - before)
        })
    });
    let threads = args.threads.min(args.clients);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let mut shares: Vec<Vec<(usize, TcpStream)>> = (0..threads).map(|_| Vec::new()).collect();
    for (id, stream) in streams.into_iter().enumerate() {
        shares[id % threads].push((id, stream));
    }
    let handles: Vec<std::thread::JoinHandle<Result<Vec<ClientResult>, String>>> = shares
        .into_iter()
        .enumerate()
        .map(|(t, share)| {
            let (plan, barrier) = (Arc::clone(&plan), Arc::clone(&barrier));
            std::thread::Builder::new()
                .name(format!("loop-{t}"))
                .spawn(move || run_event_loop(share, plan, &barrier))
                .map_err(|e| format!("spawn event-loop thread: {e}"))
        })
        .collect::<Result<_, _>>()?;
    barrier.wait();
    // Hard stop in case a client is slow to notice the end.
    let watchdog_plan = Arc::clone(&plan);
    let watchdog = std::thread::spawn(move || {
        let deadline = measure_end + Duration::from_secs(1);
        while Instant::now() < deadline && !watchdog_plan.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        watchdog_plan.stop.store(true, Ordering::Relaxed);
    });

    let mut hist = Histogram::new();
    let (mut ok, mut errors) = (0u64, 0u64);
    let mut first_error: Option<String> = None;
    let mut io_errors = Vec::new();
    let mut finished = measure_start;
    let results = handles
        .into_iter()
        .map(|h| h.join().map_err(|_| "a client thread panicked".to_string())?)
        .collect::<Result<Vec<_>, _>>()?;
    for r in results.into_iter().flatten() {
        hist.merge(&r.hist);
        ok += r.ok;
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
        if let Some(e) = r.io_error {
            io_errors.push(e);
        }
        if let Some(f) = r.finished {
            finished = finished.max(f);
        }
    }
    plan.stop.store(true, Ordering::Relaxed);
    let _ = watchdog.join();

    let elapsed = finished.saturating_duration_since(measure_start).as_secs_f64();
    let done = ok + errors;
    let ops = if elapsed > 0.0 { done as f64 / elapsed } else { 0.0 };
    let items = ops * items_avg;
    let server_cpu_seconds = cpu_sampler.and_then(|h| h.join().ok().flatten());
    // The sampler's window is the planned one; the clients' may end a little
    // later (their last batch), so this is items per planned second.
    let server_cpu_us_per_item =
        server_cpu_seconds.map(|cpu| if items > 0.0 { cpu * 1e6 / (items * duration) } else { 0.0 });
    let (p50, p95, p99, p999) = (hist.quantile(0.50), hist.quantile(0.95), hist.quantile(0.99), hist.quantile(0.999));

    println!(
        "karma-load: op={} clients={} pipeline={} keys={}{} target={addr}",
        args.op.name(),
        args.clients,
        args.pipeline,
        args.keys,
        if args.op.is_batch() { format!(" batch={} ({longest} bytes/request)", args.batch) } else { String::new() }
    );
    println!("measured: {elapsed:.2} s, {} ok, {} errors", thousands(ok), thousands(errors));
    if args.op.is_batch() {
        println!("throughput: {} requests/s, {} items/s", thousands(ops as u64), thousands(items as u64));
    } else {
        println!("throughput: {} ops/s", thousands(ops as u64));
    }
    println!(
        "latency: p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        ms(p50),
        ms(p95),
        ms(p99),
        ms(p999),
        ms(hist.max())
    );
    if let (Some(cpu), Some(per_item)) = (server_cpu_seconds, server_cpu_us_per_item) {
        println!("server CPU: {cpu:.2} s over the measured {duration} s, {per_item:.3} us per item");
    }
    if let Some(e) = &first_error {
        println!("first error response: {e}");
    }
    for e in &io_errors {
        println!("connection error: {e}");
    }
    let json = serde_json::json!({
        "tool": "karma-load",
        "label": args.label,
        "op": args.op.name(),
        "clients": args.clients,
        "pipeline": args.pipeline,
        "keys": args.keys,
        "batch": if args.op.is_batch() { Some(args.batch) } else { None },
        "token": args.token.is_some(),
        "seconds": (elapsed * 1000.0).round() / 1000.0,
        "ok": ok,
        "errors": errors,
        "connection_errors": io_errors.len(),
        "ops_per_s": ops.round(),
        "items_per_s": items.round(),
        "p50_ms": ms(p50),
        "p95_ms": ms(p95),
        "p99_ms": ms(p99),
        "p999_ms": ms(p999),
        "max_ms": ms(hist.max()),
        "protocol": match args.protocol { Protocol::Karma => "karma", Protocol::Resp => "resp" },
        "server_cpu_seconds": server_cpu_seconds,
        "server_cpu_us_per_item": server_cpu_us_per_item,
    });
    println!("{json}");
    Ok(errors == 0 && io_errors.is_empty() && done > 0)
}
