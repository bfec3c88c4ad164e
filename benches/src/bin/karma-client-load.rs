//! Increments through the client library (`karma_client::AnyClient`), for
//! comparing a single server (`--url karma://...`) with a cluster
//! (`--url karma+etcd://.../<cluster>`, docs/cluster.md) through the same
//! blocking calls an application makes: `--threads` threads share one client
//! (its pool holds one connection per thread) and each sends one
//! `increment` at a time to key `i mod --keys`, so the cluster client's
//! routing, idempotency keys and request validation are all in the numbers.
//!
//! `--warmup` seconds run unrecorded, then `--duration` seconds are
//! measured. The last output line is a JSON object (`ops_per_s`, `p50_us`,
//! `p99_us`, `errors`).
//!
//! ```sh
//! target/release/karma-client-load --url karma+etcd://127.0.0.1:2379/demo --threads 4 --duration 5
//! ```

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;
use karma_benches::{thousands, Histogram};
use karma_client::{AnyClient, ClientConfig, Karma};

#[derive(Parser, Debug)]
#[command(name = "karma-client-load", about = "Blocking increments through the Karma client, to a server or a cluster")]
struct Args {
    /// `karma://host:port` or `karma+etcd://host:port[,...]/<cluster-name>`.
    #[arg(long)]
    url: String,
    /// Threads, each sending one request at a time.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Unrecorded seconds before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Distinct keys (0..K) the increments rotate over.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    #[arg(long, default_value = "bench")]
    series: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let threads = args.threads.max(1);
    let config = ClientConfig { pool_size: threads, ..ClientConfig::default() };
    let client = match AnyClient::from_url(&args.url, config) {
        Ok(client) => Arc::new(client),
        Err(err) => {
            eprintln!("karma-client-load: {err}");
            return ExitCode::from(2);
        }
    };
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads as u64)
        .map(|t| {
            let (client, recording, stop, errors, start) =
                (client.clone(), recording.clone(), stop.clone(), errors.clone(), start.clone());
            let (series, keys) = (args.series.clone(), args.keys.max(1));
            std::thread::spawn(move || {
                let mut latencies = Histogram::new();
                let mut i = t;
                start.wait();
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    if client.increment(&series, i % keys, None, 1).is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    if recording.load(Ordering::Relaxed) {
                        latencies.record(u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX));
                    }
                    i += threads as u64;
                }
                latencies
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(Duration::from_secs_f64(args.warmup.max(0.0)));
    recording.store(true, Ordering::Relaxed);
    let measured_from = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.duration.max(0.1)));
    recording.store(false, Ordering::Relaxed);
    let elapsed = measured_from.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut all = Histogram::new();
    for worker in workers {
        match worker.join() {
            Ok(h) => all.merge(&h),
            Err(_) => {
                eprintln!("karma-client-load: a worker thread panicked");
                return ExitCode::from(1);
            }
        }
    }
    let ops = all.count();
    let ops_per_s = ops as f64 / elapsed;
    let (p50, p99) = (all.quantile(0.50) as f64 / 1e3, all.quantile(0.99) as f64 / 1e3);
    let errors = errors.load(Ordering::Relaxed);
    println!(
        "{} increments in {elapsed:.2} s: {} ops/s, p50 {p50:.1} us, p99 {p99:.1} us, {errors} errors",
        thousands(ops),
        thousands(ops_per_s as u64)
    );
    println!(
        "{{\"ops_per_s\":{ops_per_s:.0},\"p50_us\":{p50:.1},\"p99_us\":{p99:.1},\"errors\":{errors},\"threads\":{threads}}}"
    );
    if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
