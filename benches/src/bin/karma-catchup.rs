//! `karma-catchup`: how fast a fresh slave replays a master's WAL, and how
//! far behind a caught-up slave stays while a writer runs at full speed.
//!
//! ```text
//! cargo build --release -p karma-server
//! cargo run --release -p karma-benches --bin karma-catchup -- [--entries=1000000] [--lag-seconds=10]
//! ```
//!
//! 1. Starts a master (`target/release/karma`, `--wal-fsync=false`) and loads
//!    `--entries` increments (one WAL entry each), pipelined over
//!    `--connections` connections.
//! 2. Starts an empty slave with `--replication-batch-size=10000` and times
//!    until its `replayed_lsn` reaches the master's `wal_current_lsn`.
//! 3. Steady state: a writer does increments at full speed for
//!    `--lag-seconds`; every 100 ms the slave's `replication_lag_entries` (its
//!    own view: last master LSN it saw minus what it replayed) and the true
//!    lag (master `wal_current_lsn` minus slave `replayed_lsn`, read one after
//!    the other) are sampled; p50/p99/max are printed.
//!
//! Options: `--karma=PATH` (default `<workspace>/target/release/karma`),
//! `--entries=N`, `--connections=N` (default 2), `--batch-size=N` (slave,
//! default 10000), `--poll-interval-ms=N` (slave, default 50),
//! `--lag-seconds=N`, `--max-response-bytes=N` (passed to the master; its
//! default of 1 MiB cannot carry a 10000-entry page, see
//! `full_pages_fit_the_default_response_limit` in server/tests/replication.rs),
//! `--keep` (keep the data directories).
//!
//! A slave that makes no progress for 30 s while its polls fail aborts the
//! run with the slave's last poll error.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

struct Options {
    karma: PathBuf,
    entries: u64,
    connections: u64,
    batch_size: u64,
    poll_interval_ms: u64,
    lag_seconds: u64,
    max_response_bytes: Option<u64>,
    keep: bool,
}

fn parse_options() -> Options {
    let mut o = Options {
        karma: Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/karma"),
        entries: 1_000_000,
        connections: 2,
        batch_size: 10_000,
        poll_interval_ms: 50,
        lag_seconds: 10,
        max_response_bytes: None,
        keep: false,
    };
    for arg in std::env::args().skip(1) {
        let (name, value) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
        let num = || value.parse::<u64>().unwrap_or_else(|_| die(&format!("{name} needs a number")));
        match name {
            "--karma" => o.karma = PathBuf::from(value),
            "--entries" => o.entries = num(),
            "--connections" => o.connections = num().max(1),
            "--batch-size" => o.batch_size = num(),
            "--poll-interval-ms" => o.poll_interval_ms = num(),
            "--lag-seconds" => o.lag_seconds = num(),
            "--max-response-bytes" => o.max_response_bytes = Some(num()),
            "--keep" => o.keep = true,
            _ => die(&format!("unknown option {arg}")),
        }
    }
    o
}

/// Pids of the `karma` processes we started, killed by [`die`] (exit skips
/// destructors).
static CHILDREN: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn die(message: &str) -> ! {
    eprintln!("karma-catchup: {message}");
    if let Ok(children) = CHILDREN.lock() {
        for &pid in children.iter() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
    std::process::exit(2)
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| die(&format!("bind: {e}")));
    listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| die(&format!("addr: {e}")))
}

/// A `karma` process, killed when dropped.
struct Node {
    child: Child,
    port: u16,
}

impl Node {
    fn start(karma: &Path, dir: &Path, extra: &[String]) -> Node {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| die(&format!("mkdir {}: {e}", dir.display())));
        let port = free_port();
        let child = Command::new(karma)
            .arg("--bind=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--directory={}", dir.display()))
            .arg("--log=false")
            .arg("--wal-fsync=false")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| die(&format!("cannot run {}: {e}", karma.display())));
        if let Ok(mut children) = CHILDREN.lock() {
            children.push(child.id());
        }
        Node { child, port }
    }

    /// Waits until the port accepts connections.
    fn wait_ready(&mut self) {
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                die(&format!("karma exited with {status}"));
            }
            if started.elapsed() > Duration::from_secs(120) {
                die("karma did not start");
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request/response connection for status queries.
struct Conn {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| die(&format!("connect: {e}")));
        let _ = stream.set_nodelay(true);
        let reader = BufReader::new(stream.try_clone().unwrap_or_else(|e| die(&format!("clone: {e}"))));
        Conn { writer: stream, reader }
    }

    fn response(&mut self, request: &str) -> Value {
        self.writer.write_all(format!("{request}\n").as_bytes()).unwrap_or_else(|e| die(&format!("write: {e}")));
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap_or_else(|e| die(&format!("read: {e}")));
        let reply: Value = serde_json::from_str(&line).unwrap_or_else(|e| die(&format!("bad reply {line:?}: {e}")));
        if reply["success"] != Value::Bool(true) {
            die(&format!("{request} failed: {line}"));
        }
        reply["response"].clone()
    }

    fn status(&mut self) -> Value {
        self.response(r#"{"v":2,"op":"replication.status"}"#)
    }
}

fn field(v: &Value, name: &str) -> u64 {
    v[name].as_u64().unwrap_or_else(|| die(&format!("{name} missing in {v}")))
}

/// Sends increments on one connection, full duplex (a writer thread keeps the
/// pipe full while this thread reads and checks the replies), until `limit`
/// requests were sent or `stop` is set. Returns how many were acknowledged.
fn drive(port: u16, conn: u64, limit: Option<u64>, stop: Arc<AtomicBool>) -> u64 {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| die(&format!("connect: {e}")));
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (sent, done) = (sent.clone(), done.clone());
        let stream = stream.try_clone().unwrap_or_else(|e| die(&format!("clone: {e}")));
        thread::spawn(move || {
            let mut out = BufWriter::with_capacity(1 << 16, stream);
            let mut i = 0u64;
            let mut line = String::with_capacity(128);
            while !matches!(limit, Some(l) if i >= l) && !stop.load(Ordering::Relaxed) {
                let end = limit.map_or(i + 1000, |l| l.min(i + 1000));
                while i < end {
                    use std::fmt::Write as _;
                    line.clear();
                    let n = i * 64 + conn;
                    let _ = writeln!(
                        line,
                        r#"{{"v":2,"op":"counter.increment","series":"catchup","key":{},"bucket":{},"value":1}}"#,
                        n % 100_003,
                        20260101 + n % 28
                    );
                    out.write_all(line.as_bytes()).unwrap_or_else(|e| die(&format!("write: {e}")));
                    i += 1;
                }
                sent.store(i, Ordering::Release);
                out.flush().unwrap_or_else(|e| die(&format!("flush: {e}")));
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let mut line = String::new();
    let mut acked = 0u64;
    loop {
        if done.load(Ordering::Acquire) && acked == sent.load(Ordering::Acquire) {
            break;
        }
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => die("master closed the connection"),
            Ok(_) => {
                if !line.starts_with(r#"{"protocol_version":2,"success":true"#) {
                    die(&format!("increment failed: {line}"));
                }
                acked += 1;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => die(&format!("read: {e}")),
        }
    }
    let _ = writer.join();
    acked
}

/// Runs `connections` drivers in parallel; returns the total acknowledged.
fn load(port: u16, connections: u64, total: Option<u64>, stop: Arc<AtomicBool>) -> u64 {
    let handles: Vec<_> = (0..connections)
        .map(|c| {
            let share = total.map(|t| t / connections + u64::from(c < t % connections));
            let stop = stop.clone();
            thread::spawn(move || drive(port, c, share, stop))
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap_or_else(|_| die("driver panicked"))).sum()
}

/// Waits until the slave replayed `lsn`; aborts if it stalls while its polls
/// fail.
fn wait_replayed(slave: &mut Conn, lsn: u64) {
    let mut last = (0, Instant::now());
    loop {
        let s = slave.status();
        let replayed = field(&s, "replayed_lsn");
        if replayed >= lsn {
            return;
        }
        if replayed != last.0 {
            last = (replayed, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(30) && !s["replication_last_poll_error"].is_null() {
            die(&format!(
                "slave stalled at LSN {replayed} of {lsn}: {} poll errors, last: {}",
                field(&s, "replication_poll_error_count"),
                s["replication_last_poll_error"]
            ));
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(name: &str, mut samples: Vec<u64>) {
    samples.sort_unstable();
    println!(
        "  {name}: samples={} p50={} p99={} max={}",
        samples.len(),
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        samples.last().copied().unwrap_or(0)
    );
}

fn main() {
    let o = parse_options();
    if !o.karma.exists() {
        die(&format!("{} not found; run `cargo build --release -p karma-server` first", o.karma.display()));
    }
    let root = std::env::temp_dir().join(format!("karma-catchup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);

    // 1. Master and its WAL.
    let master_args: Vec<String> =
        o.max_response_bytes.map(|n| format!("--max-response-bytes={n}")).into_iter().collect();
    let mut master = Node::start(&o.karma, &root.join("master"), &master_args);
    master.wait_ready();
    let started = Instant::now();
    let acked = load(master.port, o.connections, Some(o.entries), Arc::new(AtomicBool::new(false)));
    let load_time = started.elapsed();
    let mut mconn = Conn::open(master.port);
    let master_lsn = field(&mconn.status(), "wal_current_lsn");
    println!("karma-catchup: {} {}", o.karma.display(), master_args.join(" "));
    println!(
        "load: {acked} increments over {} connections in {:.2} s ({:.0} req/s), master wal_current_lsn={master_lsn}",
        o.connections,
        load_time.as_secs_f64(),
        acked as f64 / load_time.as_secs_f64()
    );

    // 2. A fresh slave replays all of it.
    let slave_args = vec![
        "--role=slave".to_string(),
        "--replication-source-host=127.0.0.1".to_string(),
        format!("--replication-source-port={}", master.port),
        format!("--replication-batch-size={}", o.batch_size),
        format!("--replication-poll-interval-ms={}", o.poll_interval_ms),
    ];
    let started = Instant::now();
    let mut slave = Node::start(&o.karma, &root.join("slave"), &slave_args);
    slave.wait_ready();
    let ready = started.elapsed();
    let mut sconn = Conn::open(slave.port);
    wait_replayed(&mut sconn, master_lsn);
    let catchup = started.elapsed();
    let s = sconn.status();
    println!(
        "catch-up: {master_lsn} entries in {:.3} s from slave spawn ({:.3} s after its port opened) = {:.0} entries/s \
         (batch {}, poll interval {} ms, polls {}, entries applied {})",
        catchup.as_secs_f64(),
        (catchup - ready).as_secs_f64(),
        master_lsn as f64 / catchup.as_secs_f64(),
        o.batch_size,
        o.poll_interval_ms,
        field(&s, "replication_poll_attempt_count"),
        field(&s, "replication_entries_applied"),
    );

    // 3. Steady-state lag under a full-speed writer.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, port, connections) = (stop.clone(), master.port, o.connections);
        thread::spawn(move || load(port, connections, None, stop))
    };
    let mut reported = Vec::new();
    let mut true_lag = Vec::new();
    let started = Instant::now();
    let window = Duration::from_secs(o.lag_seconds);
    let mut next = started;
    while started.elapsed() < window {
        next += Duration::from_millis(100);
        let m = field(&mconn.status(), "wal_current_lsn");
        let s = sconn.status();
        reported.push(field(&s, "replication_lag_entries"));
        true_lag.push(m.saturating_sub(field(&s, "replayed_lsn")));
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap_or_else(|_| die("writer panicked"));
    let elapsed = started.elapsed();
    let final_lsn = field(&mconn.status(), "wal_current_lsn");
    let drained = Instant::now();
    wait_replayed(&mut sconn, final_lsn);
    println!(
        "steady state: writer {written} increments in {:.2} s ({:.0} entries/s), sampled every 100 ms",
        elapsed.as_secs_f64(),
        written as f64 / elapsed.as_secs_f64()
    );
    let trend: Vec<String> = true_lag.iter().step_by(10).map(u64::to_string).collect();
    summary("replication_lag_entries (slave's view)", reported);
    summary("master wal_current_lsn - slave replayed_lsn", true_lag);
    println!("  true lag once a second: {}", trend.join(" "));
    println!("  slave caught up {:.3} s after the writer stopped", drained.elapsed().as_secs_f64());

    drop(slave);
    drop(master);
    if o.keep {
        println!("data kept in {}", root.display());
    } else {
        let _ = std::fs::remove_dir_all(&root);
    }
}
