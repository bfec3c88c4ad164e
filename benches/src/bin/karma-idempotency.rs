//! Idempotency record store: memory per record and write rate before and
//! after the `--idempotency-max-records` cap is reached (issue 14 item 2).
//!
//! Fills an in-memory engine with `--records` idempotent `counter.increment`
//! requests (20-byte keys), then sends as many again, each evicting the
//! oldest record. Past the cap the rate must stay close to the filling rate:
//! eviction is O(1) amortised.
//!
//! Usage: `cargo run --release -p karma-benches --bin karma-idempotency -- --records 1000000`.

#![forbid(unsafe_code)]

use std::time::Instant;

use clap::Parser;
use karma_benches::rss_bytes;
use karma_engine::{Engine, Options, Session};

#[derive(Parser)]
struct Args {
    /// The cap (`idempotency_max_records`) and the number of requests per phase.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
}

/// Sends `count` idempotent increments with keys `from..from + count`;
/// returns requests per second.
fn run(engine: &Engine, from: usize, count: usize) -> f64 {
    let session = Session::client();
    let started = Instant::now();
    for i in from..from + count {
        let line = format!(
            r#"{{"v":2,"op":"counter.increment","series":"s","key":{},"idempotency_key":"idem-{i:015}"}}"#,
            i % 1000
        );
        let reply = engine.handle_line(line.as_bytes(), &session);
        assert!(reply.bytes.starts_with(b"{\"protocol_version\":2,\"success\":true"), "request {i} failed");
    }
    count as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let args = Args::parse();
    let options = Options {
        wal: false,
        idempotency_max_records: args.records,
        idempotency_max_age_seconds: 0,
        ..Options::default()
    };
    let engine = match Engine::open(options) {
        Ok(engine) => engine,
        Err(err) => {
            eprintln!("cannot open the engine: {}", err.message());
            std::process::exit(1);
        }
    };
    // Warm the series so its memory is not counted as records'.
    for key in 0..1000 {
        let line = format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":{key}}}"#);
        engine.handle_line(line.as_bytes(), &Session::client());
    }
    let before = rss_bytes();
    let fill = run(&engine, 0, args.records);
    let after = rss_bytes();
    let evicting = run(&engine, args.records, args.records);
    let per_record = after.saturating_sub(before) as f64 / args.records as f64;
    println!("records:               {}", args.records);
    println!("rss growth filling:    {:.1} MiB", after.saturating_sub(before) as f64 / 1_048_576.0);
    println!("memory per record:     {per_record:.0} bytes (RSS, allocator overhead included)");
    println!("writes/s filling:      {fill:.0}");
    println!("writes/s past the cap: {evicting:.0} (one eviction each)");
}
