//! Durability costs of the engine, in-process (no network):
//!
//! 1. group commit: acknowledged `increment`s per second with the WAL on,
//!    fsync off and on, for 1, 8 and 64 writer threads. The typed
//!    `Engine::increment` returns only once its WAL entry is durable (written,
//!    and with fsync on, fsynced), so every counted call is acknowledged. With
//!    fsync on, concurrent writers share one fsync per WAL batch: the 64-writer
//!    rate must reach >= 20x the 1-writer rate.
//! 2. snapshot and restore of 50,000 keys x 356 days (17.8 M points): time of
//!    `snapshot_all()`, then of `Engine::open` on the same directory (page
//!    cache warm, then with the data files evicted from it), and the file
//!    sizes. Target: <= 1 s each.
//!
//! Usage: `cargo run --release -p karma-benches --bin karma-durability [-- --help]`.
//! Data goes to fresh temporary directories under `--dir` (default: the
//! system temp dir), removed at the end.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;
use karma_benches::{thousands, Histogram};
use karma_engine::clock::{bucket_of_unix, days_from_civil};
use karma_engine::{Engine, FsyncPolicy, Item, Options};
use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};

const GROUP_COMMIT_TARGET: f64 = 20.0;
const SNAPSHOT_TARGET_S: f64 = 1.0;

#[derive(Parser, Debug)]
#[command(name = "karma-durability", about = "Group commit, snapshot and restore timings of the engine")]
struct Args {
    /// Parent of the temporary data directories.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds per group-commit cell.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Writer thread counts, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    threads: Vec<usize>,
    /// Keys the writers rotate over.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Skip the group-commit table.
    #[arg(long)]
    no_commit: bool,
    /// Skip the snapshot/restore measurement.
    #[arg(long)]
    no_snapshot: bool,
    #[arg(long, default_value_t = 50_000)]
    snapshot_keys: u64,
    #[arg(long, default_value_t = 356)]
    snapshot_days: u64,
    /// Load the snapshot data with the WAL on (fsync off) instead of off; the
    /// snapshot then also truncates that WAL.
    #[arg(long)]
    load_wal: bool,
}

fn tempdir(parent: &Option<PathBuf>, prefix: &str) -> Result<tempfile::TempDir, String> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    match parent {
        Some(p) => builder.tempdir_in(p),
        None => builder.tempdir(),
    }
    .map_err(|e| format!("create temp dir: {e}"))
}

struct Cell {
    fsync: bool,
    threads: usize,
    acked: u64,
    seconds: f64,
    hist: Histogram,
}

impl Cell {
    fn rate(&self) -> f64 {
        self.acked as f64 / self.seconds
    }
}

fn group_commit_cell(args: &Args, fsync: bool, threads: usize) -> Result<Cell, String> {
    let dir = tempdir(&args.dir, "karma-durability-wal-")?;
    let engine = Engine::open(Options {
        wal_fsync: if fsync { FsyncPolicy::Always } else { FsyncPolicy::Never },
        ..Options::durable(dir.path())
    })
    .map_err(|e| format!("open engine: {}", e.message()))?;
    engine.create_series("bench").map_err(|e| format!("create series: {}", e.message()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let keys = args.keys.max(1);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (engine, stop, barrier, failures) =
                (engine.clone(), Arc::clone(&stop), Arc::clone(&barrier), Arc::clone(&failures));
            std::thread::spawn(move || {
                let mut hist = Histogram::new();
                let mut key = (t as u64 * 7919) % keys;
                barrier.wait();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    if engine.increment("bench", key, None, 1).is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    hist.record(started.elapsed().as_nanos() as u64);
                    key += 1;
                    if key == keys {
                        key = 0;
                    }
                }
                (hist, Instant::now())
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::new();
    let mut ended = started;
    for h in handles {
        let (thread_hist, end) = h.join().map_err(|_| "writer thread panicked".to_string())?;
        hist.merge(&thread_hist);
        ended = ended.max(end);
    }
    let seconds = ended.duration_since(started).as_secs_f64();
    let acked = hist.count();
    let total = engine.info("bench").map_err(|e| format!("tree.info: {}", e.message()))?.total;
    engine.close().map_err(|e| format!("close: {}", e.message()))?;
    if failures.load(Ordering::Relaxed) > 0 {
        return Err(format!("{} increments failed", failures.load(Ordering::Relaxed)));
    }
    if total != acked {
        return Err(format!("series total {total} != acknowledged increments {acked}"));
    }
    Ok(Cell { fsync, threads, acked, seconds, hist })
}

fn group_commit(args: &Args) -> Result<bool, String> {
    println!("== group commit: acknowledged Engine::increment calls, WAL on, {:.1} s per cell ==", args.seconds);
    println!(
        "{:<9} {:>8} {:>14} {:>12} {:>10} {:>10} {:>10}",
        "fsync", "writers", "acked", "acked/s", "p50 ms", "p99 ms", "max ms"
    );
    let mut cells = Vec::new();
    for fsync in [false, true] {
        for &threads in &args.threads {
            let cell = group_commit_cell(args, fsync, threads.max(1))?;
            println!(
                "{:<9} {:>8} {:>14} {:>12} {:>10.3} {:>10.3} {:>10.3}",
                if cell.fsync { "on" } else { "off" },
                cell.threads,
                thousands(cell.acked),
                thousands(cell.rate() as u64),
                cell.hist.quantile(0.5) as f64 / 1e6,
                cell.hist.quantile(0.99) as f64 / 1e6,
                cell.hist.max() as f64 / 1e6,
            );
            println!(
                "{}",
                serde_json::json!({
                    "tool": "karma-durability", "part": "group_commit", "fsync": cell.fsync,
                    "writers": cell.threads, "acked": cell.acked, "seconds": cell.seconds,
                    "acked_per_s": cell.rate().round(),
                    "p50_ms": cell.hist.quantile(0.5) as f64 / 1e6,
                    "p99_ms": cell.hist.quantile(0.99) as f64 / 1e6,
                })
            );
            cells.push(cell);
        }
    }
    let rate =
        |fsync: bool, threads: usize| cells.iter().find(|c| c.fsync == fsync && c.threads == threads).map(Cell::rate);
    let (min, max) = (args.threads.iter().copied().min(), args.threads.iter().copied().max());
    let mut met = true;
    if let (Some(lo), Some(hi)) = (min, max) {
        for fsync in [false, true] {
            if let (Some(a), Some(b)) = (rate(fsync, lo), rate(fsync, hi)) {
                let ratio = b / a;
                let verdict = if !fsync {
                    "(no target)"
                } else if ratio >= GROUP_COMMIT_TARGET {
                    "(target >= 20x: met)"
                } else {
                    met = false;
                    "(target >= 20x: MISSED)"
                };
                println!(
                    "fsync {}: {hi} writers / {lo} writer = {ratio:.1}x {verdict}",
                    if fsync { "on" } else { "off" }
                );
            }
        }
    }
    Ok(met)
}

/// Every regular file under `dir` with its size, sorted by path.
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                out.push((entry.path(), meta.len()));
            }
        }
    }
    out.sort();
    out
}

/// Drops the files' pages from the page cache (they are clean after the
/// snapshot's fsync), so the next open reads them from the device.
fn evict(paths: &[(PathBuf, u64)]) {
    for (path, _) in paths {
        if let Ok(file) = std::fs::File::open(path) {
            use std::os::fd::AsRawFd;
            let _ = posix_fadvise(file.as_raw_fd(), 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
        }
    }
}

fn value(key: u64, day: u64) -> u64 {
    1 + (key * 7919 + day * 104_729) % 1000
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn timed_open(dir: &Path) -> Result<(Engine, f64), String> {
    let started = Instant::now();
    let engine = Engine::open(Options::durable(dir)).map_err(|e| format!("restore: {}", e.message()))?;
    Ok((engine, started.elapsed().as_secs_f64()))
}

fn check(engine: &Engine, keys: u64, points: u64, total: u64) -> Result<(), String> {
    let info = engine.info("api").map_err(|e| format!("tree.info after restore: {}", e.message()))?;
    if (info.key_count as u64, info.bucket_count as u64, info.total) != (keys, points, total) {
        return Err(format!(
            "restored {} keys / {} points / total {}, expected {keys} / {points} / {total}",
            info.key_count, info.bucket_count, info.total
        ));
    }
    Ok(())
}

fn snapshot_restore(args: &Args) -> Result<bool, String> {
    let (keys, days) = (args.snapshot_keys, args.snapshot_days);
    let points = keys * days;
    println!();
    println!("== snapshot and restore: {keys} keys x {days} days = {} points ==", thousands(points));
    let dir = tempdir(&args.dir, "karma-durability-snap-")?;
    let options =
        Options { wal: args.load_wal, wal_fsync: karma_engine::FsyncPolicy::Never, ..Options::durable(dir.path()) };
    let engine = Engine::open(options).map_err(|e| format!("open engine: {}", e.message()))?;
    engine.create_series("api").map_err(|e| format!("create series: {}", e.message()))?;
    let first_day = days_from_civil(2025, 1, 1) as u64;
    let buckets: Vec<u64> = (0..days).map(|d| bucket_of_unix((first_day + d) * 86_400)).collect();
    let started = Instant::now();
    let mut chunk: Vec<Item> = Vec::with_capacity(10_000);
    let mut total = 0u64;
    for key in 0..keys {
        for (d, &bucket) in buckets.iter().enumerate() {
            let v = value(key, d as u64);
            total += v;
            chunk.push([key, bucket, v]);
            if chunk.len() == 10_000 {
                engine.batch_add("api", &chunk).map_err(|e| format!("batch_add: {}", e.message()))?;
                chunk.clear();
            }
        }
    }
    if !chunk.is_empty() {
        engine.batch_add("api", &chunk).map_err(|e| format!("batch_add: {}", e.message()))?;
    }
    let load = started.elapsed().as_secs_f64();
    println!(
        "load (typed batch_add, 10,000-item chunks, key-major, WAL {}): {load:.2} s ({:.1} M points/s)",
        if args.load_wal { "on, fsync off" } else { "off" },
        points as f64 / load / 1e6
    );

    let started = Instant::now();
    engine.snapshot_all().map_err(|e| format!("snapshot_all: {}", e.message()))?;
    let snapshot = started.elapsed().as_secs_f64();
    engine.close().map_err(|e| format!("close: {}", e.message()))?;
    drop(engine);
    let listing = files(dir.path());
    let bytes: u64 = listing.iter().map(|(_, n)| n).sum();
    println!("snapshot_all: {snapshot:.3} s");
    println!("files after snapshot ({:.1} MiB, {:.2} bytes/point):", mib(bytes), bytes as f64 / points as f64);
    for (path, size) in &listing {
        println!("  {:>14}  {}", thousands(*size), path.strip_prefix(dir.path()).unwrap_or(path).display());
    }

    let (engine, warm) = timed_open(dir.path())?;
    check(&engine, keys, points, total)?;
    engine.close().map_err(|e| format!("close: {}", e.message()))?;
    drop(engine);
    println!("Engine::open (restore), page cache warm: {warm:.3} s");

    evict(&files(dir.path()));
    let (engine, cold) = timed_open(dir.path())?;
    check(&engine, keys, points, total)?;
    engine.close().map_err(|e| format!("close: {}", e.message()))?;
    drop(engine);
    println!("Engine::open (restore), data files evicted from the page cache: {cold:.3} s");

    let verdict = |s: f64| if s <= SNAPSHOT_TARGET_S { "met" } else { "MISSED" };
    println!(
        "targets (<= {SNAPSHOT_TARGET_S} s): snapshot {}, restore warm {}, restore cold {}",
        verdict(snapshot),
        verdict(warm),
        verdict(cold)
    );
    println!(
        "{}",
        serde_json::json!({
            "tool": "karma-durability", "part": "snapshot", "keys": keys, "days": days, "points": points,
            "load_s": load, "snapshot_s": snapshot, "restore_warm_s": warm, "restore_cold_s": cold,
            "bytes": bytes,
        })
    );
    Ok(snapshot <= SNAPSHOT_TARGET_S && warm <= SNAPSHOT_TARGET_S && cold <= SNAPSHOT_TARGET_S)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(args.seconds > 0.0 && args.seconds <= 600.0) || args.threads.is_empty() {
        eprintln!("karma-durability: --seconds must be in (0, 600] and --threads non-empty");
        return ExitCode::from(2);
    }
    let mut met = true;
    let result = (|| -> Result<(), String> {
        if !args.no_commit {
            met &= group_commit(&args)?;
        }
        if !args.no_snapshot {
            met &= snapshot_restore(&args)?;
        }
        Ok(())
    })();
    match result {
        Err(e) => {
            eprintln!("karma-durability: {e}");
            ExitCode::from(2)
        }
        Ok(()) if met => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(1),
    }
}
