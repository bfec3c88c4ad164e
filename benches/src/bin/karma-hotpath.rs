//! Instructions per pipelined request, for `valgrind --tool=callgrind`:
//! feeds `--requests` request lines, `--pipeline` per batch, through
//! `karma_server::connection::run_batch` (what a server connection runs
//! over the lines of one read) and, with `--wal never`, the same durability
//! wait the connection does after each batch. No sockets and no runtime, so
//! a callgrind instruction count is repeatable to a few instructions per
//! request whatever else runs on the machine.
//!
//! Two runs that differ only in `--requests` cancel the fixed costs (start,
//! setup, exit): instructions per request = (I(n2) - I(n1)) / (n2 - n1).
//!
//! ```sh
//! cargo build --release -p karma-benches --bin karma-hotpath
//! for n in 10000 50000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/hot.$n \
//!     target/release/karma-hotpath --requests $n --pipeline 16 --op increment 2>&1 | grep refs
//! done
//! ```

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use karma_engine::{Engine, FsyncPolicy, Options};
use karma_server::connection::{run_batch, Heavy};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Op {
    Increment,
    Decrement,
    Sum,
    Consume,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Wal {
    /// In memory, no WAL (`--no-wal`).
    Off,
    /// A WAL in a temporary directory, `--wal-fsync=never`.
    Never,
}

#[derive(Parser, Debug)]
#[command(name = "karma-hotpath", about = "Pipelined request lines through run_batch, for callgrind")]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    #[arg(long, default_value_t = 16)]
    pipeline: u64,
    #[arg(long, value_enum, default_value_t = Op::Increment)]
    op: Op,
    #[arg(long, value_enum, default_value_t = Wal::Off)]
    wal: Wal,
    /// Distinct keys the requests rotate over.
    #[arg(long, default_value_t = 1_000)]
    keys: u64,
}

/// The line karma-load sends for `op` (today's bucket, value 1).
fn line(op: Op, key: u64) -> String {
    let (name, extra) = match op {
        Op::Increment => ("counter.increment", ",\"value\":1"),
        Op::Decrement => ("counter.decrement", ",\"value\":1"),
        Op::Sum => ("counter.sum", ""),
        Op::Consume => ("counter.consume", ",\"value\":1,\"limit\":9223372036854775807,\"window\":\"month\""),
    };
    format!("{{\"v\":2,\"op\":\"{name}\",\"series\":\"bench\",\"key\":{key}{extra}}}\n")
}

fn run(args: &Args) -> Result<(), String> {
    if args.pipeline == 0 || args.keys == 0 {
        return Err("--pipeline and --keys must be > 0".into());
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let engine = match args.wal {
        Wal::Off => Engine::in_memory(),
        Wal::Never => {
            let mut options = Options::durable(dir.path());
            options.wal_fsync = FsyncPolicy::Never;
            Engine::open(options).map_err(|e| format!("open: {}", e.message()))?
        }
    };
    // Every key exists before the measured lines (a sum of a missing
    // series is an error, not the path being measured).
    for key in 0..args.keys {
        engine.increment("bench", key, None, 1).map_err(|e| format!("setup: {}", e.message()))?;
    }
    // Every batch is the same `pipeline` lines, built once (a server reads
    // them from its socket buffer; building them is not the server's cost).
    let batches: Vec<Vec<u8>> = (0..args.keys)
        .step_by(args.pipeline as usize)
        .map(|first| (first..first + args.pipeline).flat_map(|k| line(args.op, k % args.keys).into_bytes()).collect())
        .collect();
    let mut out = Vec::new();
    let failed = memchr::memmem::Finder::new(b"\"success\":false");
    let (mut done, mut failures, mut i) = (0u64, 0u64, 0usize);
    while done < args.requests {
        let input = &batches[i % batches.len()];
        i += 1;
        out.clear();
        // As a connection does: light lines first, the rest (from a heavy
        // line on) as the blocking pool would.
        let mut batch = run_batch(&engine, input, 1 << 20, usize::MAX, false, &mut out, Heavy::StopBefore);
        if batch.stopped_at_heavy {
            let rest = run_batch(&engine, &input[batch.consumed..], 1 << 20, usize::MAX, false, &mut out, Heavy::Run);
            batch = batch.then(rest);
        }
        if let Some(lsn) = batch.lsn {
            engine.wait_durable(lsn).map_err(|e| format!("wal: {}", e.message()))?;
        }
        // A vectorised search, so the harness adds little to the count.
        failures += failed.find_iter(&out).count() as u64;
        done += batch.requests as u64;
    }
    engine.close().map_err(|e| format!("close: {}", e.message()))?;
    let first = out.split(|&b| b == b'\n').next().unwrap_or_default();
    println!("{done} requests, {failures} failed, an answer: {}", String::from_utf8_lossy(first).trim_end());
    if failures > 0 {
        return Err("some requests failed".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("karma-hotpath: {e}");
            ExitCode::FAILURE
        }
    }
}
