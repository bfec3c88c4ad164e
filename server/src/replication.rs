//! The slave side of replication (spec/server.md §10, with its failure modes
//! fixed): bootstrap from the master's newest snapshots when the data
//! directory is empty, then poll `replication.entries` and apply each page
//! through the engine. A full page is followed by another poll at once, so
//! catch-up is not capped at `batch_size / poll_interval`; a
//! `replication_gap` re-bootstraps by itself. The master is reached with
//! `karma_client`, the same client applications use.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use karma_client::{Client, ClientConfig, ClientError};
use karma_engine::snapshot::{self, SnapshotDir, IDEMPOTENCY_FILE, IDEMPOTENCY_META_FILE};
use karma_engine::{files, Engine, Limit};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::{oneshot, watch};

/// Where and how to replicate from.
#[derive(Clone, Debug)]
pub struct Source {
    pub host: String,
    pub port: u16,
    pub token: Option<String>,
    pub poll_interval: Duration,
    pub batch_size: usize,
    /// Bounds connecting to the master, each write and each read (the
    /// node's `--read-timeout`, a default if 0).
    pub timeout: Duration,
    /// Longest reply line read from the master (`--replication-max-line-bytes`).
    pub max_line_bytes: usize,
}

const CHUNK: u64 = 262_144;

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The master, reached through `karma_client` (its pooled connection is
/// reopened after any failure, and a read that finds the reused connection
/// closed, as the master does to idle ones after its read timeout, is sent
/// again on a fresh one). The blocking client runs on a thread of its own
/// that lives as long as this value: a request waiting on a slow master
/// holds neither an async worker nor the process's exit.
struct Master {
    requests: Result<mpsc::Sender<Call>, String>,
    max_line_bytes: usize,
}

/// One request line for the client thread, and where its answer goes.
type Call = (String, oneshot::Sender<Result<String, ClientError>>);

/// Why a request failed.
#[derive(Debug)]
enum Failure {
    /// The master answered with an error envelope.
    Rejected {
        code: String,
        message: String,
    },
    Io(String),
    /// A reply line passed `--replication-max-line-bytes`.
    LineTooLong(usize),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Rejected { code, message } => write!(f, "Master rejected request: {code}: {message}"),
            Failure::Io(m) => f.write_str(m),
            Failure::LineTooLong(max) => write!(f, "Master reply exceeds {max} bytes (--replication-max-line-bytes)"),
        }
    }
}

/// The client's settings for `source`: one connection, the node's I/O
/// timeout for connecting, writing and each read, and the reply line bound.
fn client_config(source: &Source) -> ClientConfig {
    // The client wants an IPv6 address without brackets.
    let host = source.host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(&source.host);
    ClientConfig {
        host: host.to_owned(),
        port: source.port,
        token: source.token.clone(),
        pool_size: 1,
        checkout_timeout: source.timeout,
        connect_timeout: source.timeout,
        read_timeout: source.timeout,
        write_timeout: source.timeout,
        max_response_bytes: source.max_line_bytes,
    }
}

/// Serves `calls` with `client` until the [`Master`] is dropped.
fn serve_calls(client: Client, calls: mpsc::Receiver<Call>) {
    for (line, reply) in calls {
        let _ = reply.send(client.request_line(&line));
    }
}

impl Master {
    fn new(source: &Source) -> Master {
        let requests = Client::new(client_config(source))
            .map_err(|e| format!("Invalid replication source: {}", e.message()))
            .and_then(|client| {
                let (tx, rx) = mpsc::channel();
                std::thread::Builder::new()
                    .name("karma-replication-client".into())
                    .spawn(move || serve_calls(client, rx))
                    .map(|_| tx)
                    .map_err(|e| format!("Cannot start the replication client thread: {e}"))
            });
        Master { requests, max_line_bytes: source.max_line_bytes }
    }

    /// Sends one request (every one the poller sends is a read) and returns
    /// the raw response line; the client adds the token.
    async fn call_raw(&self, request: serde_json::Map<String, Value>) -> Result<String, Failure> {
        let requests = self.requests.as_ref().map_err(|e| Failure::Io(e.clone()))?;
        let (reply, answer) = oneshot::channel();
        let gone = || Failure::Io("The replication client thread stopped".into());
        requests.send((Value::Object(request).to_string(), reply)).map_err(|_| gone())?;
        match answer.await.map_err(|_| gone())? {
            Ok(line) => Ok(line),
            Err(err) if err.is_response_too_large() => Err(Failure::LineTooLong(self.max_line_bytes)),
            Err(err) => Err(Failure::Io(format!("Request to master failed: {err}"))),
        }
    }

    /// Sends one request and returns its `response` value as raw JSON text.
    async fn call(&mut self, request: serde_json::Map<String, Value>) -> Result<Box<RawValue>, Failure> {
        #[derive(Deserialize)]
        struct Envelope {
            success: bool,
            response: Box<RawValue>,
            error_code: Option<String>,
        }
        let reply = self.call_raw(request).await?;
        let env: Envelope = serde_json::from_str(reply.trim_end())
            .map_err(|e| Failure::Io(format!("Unreadable reply from master: {e}")))?;
        if !env.success {
            let message =
                serde_json::from_str::<String>(env.response.get()).unwrap_or_else(|_| env.response.get().into());
            return Err(Failure::Rejected { code: env.error_code.unwrap_or_default(), message });
        }
        Ok(env.response)
    }
}

fn req(op: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("v".into(), Value::from(2));
    m.insert("op".into(), Value::from(op));
    m
}

#[derive(Deserialize)]
struct ChunkReply {
    metadata: Value,
    next_offset: u64,
    done: bool,
    data_base64: String,
}

/// Downloads a whole file with `op` (snapshot or idempotency chunks),
/// checking the metadata does not change between chunks.
async fn fetch_file(master: &mut Master, op: &str, file: Option<&str>) -> Result<(Value, Vec<u8>), String> {
    let mut data = Vec::new();
    let mut offset = 0u64;
    let mut reference: Option<Value> = None;
    loop {
        let mut r = req(op);
        if let Some(f) = file {
            r.insert("file".into(), Value::from(f));
        }
        r.insert("offset".into(), Value::from(offset));
        r.insert("limit".into(), Value::from(CHUNK));
        let raw = master.call(r).await.map_err(|e| e.to_string())?;
        let chunk: ChunkReply = serde_json::from_str(raw.get()).map_err(|e| format!("Unreadable chunk: {e}"))?;
        let stable = |m: &Value| (m.get("file").cloned(), m.get("last_lsn").cloned(), m.get("bytes").cloned());
        match &reference {
            Some(r) if stable(r) != stable(&chunk.metadata) => return Err("Snapshot changed during fetch".into()),
            Some(_) => {}
            None => reference = Some(chunk.metadata.clone()),
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(chunk.data_base64.as_bytes())
            .map_err(|e| format!("Invalid chunk data: {e}"))?;
        data.extend_from_slice(&bytes);
        if chunk.done {
            break;
        }
        if chunk.next_offset <= offset {
            return Err("Master chunk did not advance".into());
        }
        offset = chunk.next_offset;
    }
    Ok((reference.unwrap_or(Value::Null), data))
}

/// Whether `dir` holds any data of its own (snapshots or WAL entries).
pub fn has_local_data(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        (name.ends_with(".tree") && !name.starts_with('.'))
            || (name.starts_with("karma.wal") && e.metadata().map(|m| m.len() > 0).unwrap_or(false))
            || name == IDEMPOTENCY_FILE
    })
}

/// Removes every snapshot-like file (before installing a fresh bootstrap).
fn remove_snapshot_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tree")
            || name.ends_with(".tree.meta.json")
            || name == IDEMPOTENCY_FILE
            || name == IDEMPOTENCY_META_FILE
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Installs the master's newest snapshots into `dir`. They are downloaded
/// into a hidden staging directory first; only a complete set replaces the
/// snapshot files in `dir`, so a failed attempt leaves `dir` as it was and a
/// retry starts clean.
async fn install_snapshots(master: &mut Master, dir: &Path) -> Result<u64, String> {
    let staging = dir.join(".bootstrap");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| format!("Cannot create {}: {e}", staging.display()))?;
    let result = install_snapshots_inner(master, &staging).await;
    let result = match result {
        Ok(lsn) => move_into_place(&staging, dir).map(|()| lsn),
        Err(err) => Err(err),
    };
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Replaces the snapshot files of `dir` with those in `staging`.
fn move_into_place(staging: &Path, dir: &Path) -> Result<(), String> {
    remove_snapshot_files(dir);
    let entries = std::fs::read_dir(staging).map_err(|e| format!("Cannot list {}: {e}", staging.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        std::fs::rename(entry.path(), dir.join(&name))
            .map_err(|e| format!("Cannot move {} into {}: {e}", name.to_string_lossy(), dir.display()))?;
    }
    files::fsync_dir(dir).map_err(|e| e.message().to_owned())
}

async fn install_snapshots_inner(master: &mut Master, dir: &Path) -> Result<u64, String> {
    let info_raw = master.call(req("snapshot.info")).await.map_err(|e| e.to_string())?;
    let info: Value = serde_json::from_str(info_raw.get()).map_err(|e| e.to_string())?;
    let snapshots = SnapshotDir::new(dir);
    let latest = info.get("latest_by_tree").and_then(Value::as_array).cloned().unwrap_or_default();
    for meta in &latest {
        let file = meta.get("file").and_then(Value::as_str).ok_or("snapshot.info without file")?;
        let (series, timestamp) = match snapshot::parse_file_name(file) {
            Some((ts, series)) => (series, ts),
            None => return Err(format!("Invalid snapshot file name {file}")),
        };
        let (reference, bytes) = fetch_file(master, "snapshot.fetch_chunk", Some(file)).await?;
        let last_lsn = reference.get("last_lsn").and_then(Value::as_u64).unwrap_or(0);
        snapshots.write(&series, timestamp, last_lsn, &bytes).map_err(|e| e.message().to_owned())?;
    }
    if info.get("idempotency_snapshot").is_some_and(|v| !v.is_null()) {
        let (reference, bytes) = fetch_file(master, "idempotency.snapshot_fetch_chunk", None).await?;
        files::atomic_write(dir, IDEMPOTENCY_FILE, &bytes).map_err(|e| e.message().to_owned())?;
        let meta = serde_json::json!({
            "file": IDEMPOTENCY_FILE,
            "timestamp": reference.get("timestamp").and_then(Value::as_u64).unwrap_or(0),
            "last_lsn": reference.get("last_lsn").and_then(Value::as_u64).unwrap_or(0),
            "bytes": bytes.len(),
            "record_count": reference.get("record_count").and_then(Value::as_u64).unwrap_or(0),
            "committed_stream_count": reference.get("committed_stream_count").and_then(Value::as_u64).unwrap_or(0),
        });
        let mut line = meta.to_string().into_bytes();
        line.push(b'\n');
        files::atomic_write(dir, IDEMPOTENCY_META_FILE, &line).map_err(|e| e.message().to_owned())?;
    }
    snapshots.restore_lsn().map_err(|e| e.message().to_owned())
}

/// Counters of bootstraps that happen before the engine exists.
#[derive(Default, Debug, Clone)]
pub struct BootstrapReport {
    pub attempts: u64,
    pub successes: u64,
    pub errors: u64,
    pub last_attempt_unix: u64,
    pub last_success_unix: u64,
    pub last_error_unix: u64,
    pub last_error: Option<String>,
}

/// Bootstraps an empty slave directory from the master, retrying (with
/// backoff) until it succeeds or `stop` is set. Returns what happened.
pub async fn bootstrap_if_empty(dir: PathBuf, source: Source, mut stop: watch::Receiver<bool>) -> BootstrapReport {
    let mut report = BootstrapReport::default();
    if has_local_data(&dir) {
        return report;
    }
    let mut master = Master::new(&source);
    let mut backoff = Duration::from_millis(200);
    loop {
        report.attempts += 1;
        report.last_attempt_unix = unix_now();
        match install_snapshots(&mut master, &dir).await {
            Ok(lsn) => {
                report.successes += 1;
                report.last_success_unix = unix_now();
                report.last_error = None;
                tracing::info!(event = "replication.snapshot_bootstrap", "lsn={lsn}");
                return report;
            }
            Err(err) => {
                report.errors += 1;
                report.last_error_unix = unix_now();
                tracing::warn!(event = "replication.bootstrap_failed", "{err}");
                report.last_error = Some(err);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return report,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[derive(Deserialize)]
struct Page {
    source_lsn: u64,
    count: usize,
    truncated_by_bytes: bool,
    entries: Vec<PageEntry>,
}

#[derive(Deserialize)]
struct PageEntry {
    lsn: u64,
    entry: Box<RawValue>,
}

/// Polls the master until `stop`, applying pages to `engine`.
pub async fn run_poller(engine: Engine, dir: PathBuf, source: Source, mut stop: watch::Receiver<bool>) {
    let mut master = Master::new(&source);
    let stats = || engine.replication_stats();
    loop {
        if *stop.borrow() {
            return;
        }
        let now = unix_now();
        stats().poll_attempts.fetch_add(1, Ordering::Relaxed);
        stats().last_poll_attempt_unix.store(now, Ordering::Relaxed);
        let outcome = poll_once(&engine, &mut master, source.batch_size).await;
        let again_now = match outcome {
            Ok(full) => {
                stats().poll_successes.fetch_add(1, Ordering::Relaxed);
                stats().last_poll_success_unix.store(unix_now(), Ordering::Relaxed);
                *stats().last_poll_error.lock() = None;
                full
            }
            Err(Failure::Rejected { code, message }) if code == "replication_gap" => {
                tracing::warn!(event = "replication.gap", "{message}; re-bootstrapping from the master's snapshots");
                poll_failed(&engine, &message);
                // Poll again at once only if the re-bootstrap worked; a
                // failing one waits the poll interval like any failed poll.
                rebootstrap(&engine, &mut master, &dir).await
            }
            Err(err) => {
                if matches!(err, Failure::LineTooLong(_)) {
                    engine.count_limit(Limit::ReplicationLine);
                }
                let message = err.to_string();
                tracing::warn!(event = "replication.poll_failed", "{message}");
                poll_failed(&engine, &message);
                false
            }
        };
        if !again_now {
            tokio::select! {
                _ = tokio::time::sleep(source.poll_interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

fn poll_failed(engine: &Engine, message: &str) {
    let stats = engine.replication_stats();
    stats.poll_errors.fetch_add(1, Ordering::Relaxed);
    stats.last_poll_error_unix.store(unix_now(), Ordering::Relaxed);
    *stats.last_poll_error.lock() = Some(message.to_owned());
}

/// One poll; `Ok(true)` when the page was full (poll again at once).
async fn poll_once(engine: &Engine, master: &mut Master, batch: usize) -> Result<bool, Failure> {
    let mut r = req("replication.entries");
    r.insert("after_lsn".into(), Value::from(engine.replicated_lsn()));
    r.insert("limit".into(), Value::from(batch));
    let raw = master.call(r).await?;
    let page: Page = serde_json::from_str(raw.get()).map_err(|e| Failure::Io(format!("Unreadable page: {e}")))?;
    engine.note_source_lsn(page.source_lsn);
    let full = page.count >= batch || page.truncated_by_bytes;
    if page.entries.is_empty() {
        return Ok(false);
    }
    let entries: Vec<(u64, String)> = page.entries.into_iter().map(|e| (e.lsn, e.entry.get().to_owned())).collect();
    let apply_engine = engine.clone();
    let applied = tokio::task::spawn_blocking(move || apply_engine.apply_replication_page(&entries))
        .await
        .map_err(|e| Failure::Io(format!("apply task failed: {e}")))?;
    match applied {
        Ok(_) => Ok(full),
        Err(err) if err.code() == karma_engine::ErrorCode::ReplicationGap => {
            Err(Failure::Rejected { code: "replication_gap".into(), message: err.message().to_owned() })
        }
        Err(err) => Err(Failure::Io(err.message().to_owned())),
    }
}

/// Re-installs the master's snapshots and reloads; `true` on success.
async fn rebootstrap(engine: &Engine, master: &mut Master, dir: &Path) -> bool {
    let stats = engine.replication_stats();
    stats.bootstrap_attempts.fetch_add(1, Ordering::Relaxed);
    stats.last_bootstrap_attempt_unix.store(unix_now(), Ordering::Relaxed);
    let result = match install_snapshots(master, dir).await {
        Ok(_) => {
            let e = engine.clone();
            match tokio::task::spawn_blocking(move || e.reload_from_snapshots()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(err.message().to_owned()),
                Err(err) => Err(err.to_string()),
            }
        }
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => {
            stats.bootstrap_successes.fetch_add(1, Ordering::Relaxed);
            stats.last_bootstrap_success_unix.store(unix_now(), Ordering::Relaxed);
            *stats.last_bootstrap_error.lock() = None;
            tracing::info!(event = "replication.snapshot_bootstrap", "lsn={}", engine.replicated_lsn());
            true
        }
        Err(err) => {
            stats.bootstrap_errors.fetch_add(1, Ordering::Relaxed);
            stats.last_bootstrap_error_unix.store(unix_now(), Ordering::Relaxed);
            *stats.last_bootstrap_error.lock() = Some(err.clone());
            tracing::warn!(event = "replication.bootstrap_failed", "{err}");
            false
        }
    }
}

/// Records the startup bootstrap in the engine's counters.
pub fn record_startup_bootstrap(engine: &Engine, report: BootstrapReport) {
    let stats = engine.replication_stats();
    stats.bootstrap_attempts.fetch_add(report.attempts, Ordering::Relaxed);
    stats.bootstrap_successes.fetch_add(report.successes, Ordering::Relaxed);
    stats.bootstrap_errors.fetch_add(report.errors, Ordering::Relaxed);
    let stamp = |count: u64, at: u64, slot: &std::sync::atomic::AtomicU64| {
        if count > 0 {
            slot.store(at, Ordering::Relaxed);
        }
    };
    stamp(report.attempts, report.last_attempt_unix, &stats.last_bootstrap_attempt_unix);
    stamp(report.successes, report.last_success_unix, &stats.last_bootstrap_success_unix);
    stamp(report.errors, report.last_error_unix, &stats.last_bootstrap_error_unix);
    if let Some(err) = report.last_error {
        *stats.last_bootstrap_error.lock() = Some(err);
    }
}
