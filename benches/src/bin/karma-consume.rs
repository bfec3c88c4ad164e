//! `counter.consume` next to `counter.increment`, in-process, in one run:
//! `--threads` threads call the typed method (`Engine::increment` /
//! `Engine::consume`) and then the protocol path (`Engine::handle_line` of
//! the request line) for `--seconds` each, on an in-memory engine, over
//! `--keys` keys of one series. The consume's month-to-date limit is never
//! reached, so every call takes the allowed path (check, then add).
//!
//! ```sh
//! taskset -c 1 target/release/karma-consume --threads 1 --seconds 3
//! ```

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use karma_benches::thousands;
use karma_engine::{Engine, Session, Window};

#[derive(Parser, Debug)]
#[command(name = "karma-consume", about = "In-process ops/s of counter.consume beside counter.increment")]
struct Args {
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    #[arg(long, default_value_t = 1_000)]
    keys: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Case {
    IncrementTyped,
    ConsumeTyped,
    IncrementLine,
    ConsumeLine,
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::IncrementTyped => "Engine::increment",
            Case::ConsumeTyped => "Engine::consume (window month)",
            Case::IncrementLine => "handle_line counter.increment",
            Case::ConsumeLine => "handle_line counter.consume (window month)",
        }
    }
}

fn line(case: Case, key: u64) -> Vec<u8> {
    let op = if case == Case::IncrementLine { "counter.increment" } else { "counter.consume" };
    let extra = if case == Case::ConsumeLine { r#","limit":9223372036854775807,"window":"month""# } else { "" };
    format!(r#"{{"v":2,"op":"{op}","series":"bench","key":{key},"value":1{extra}}}"#).into_bytes()
}

/// Calls per second of `case` over all threads.
fn measure(engine: &Engine, case: Case, args: &Args) -> Result<f64, String> {
    let stop = AtomicBool::new(false);
    let calls = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let lines: Vec<Vec<u8>> = (0..args.keys).map(|k| line(case, k)).collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..args.threads {
            let (engine, stop, calls, failed, lines) = (engine, &stop, &calls, &failed, &lines);
            s.spawn(move || {
                let session = Session::client();
                let mut n = 0u64;
                let mut key = t as u64 % args.keys;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        let ok = match case {
                            Case::IncrementTyped => engine.increment("bench", key, None, 1).is_ok(),
                            Case::ConsumeTyped => {
                                engine.consume("bench", key, None, 1, u64::MAX, Window::Month).is_ok_and(|q| q.allowed)
                            }
                            Case::IncrementLine | Case::ConsumeLine => {
                                let reply = engine.handle_line(&lines[key as usize], &session);
                                reply.bytes.starts_with(b"{\"protocol_version\":2,\"success\":true")
                            }
                        };
                        if !ok {
                            failed.store(true, Ordering::Relaxed);
                        }
                        key = (key + 1) % args.keys;
                        n += 1;
                    }
                }
                calls.fetch_add(n, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_secs_f64(args.seconds));
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = started.elapsed().as_secs_f64();
    if failed.load(Ordering::Relaxed) {
        return Err(format!("{}: a call failed", case.label()));
    }
    Ok(calls.load(Ordering::Relaxed) as f64 / elapsed)
}

fn run(args: &Args) -> Result<(), String> {
    if args.threads == 0 || args.keys == 0 || !(args.seconds > 0.0 && args.seconds <= 600.0) {
        return Err("--threads and --keys must be > 0, --seconds in (0, 600]".into());
    }
    println!(
        "== in-process, in-memory engine, {} thread(s), {} keys, {:.1} s per row ==",
        args.threads, args.keys, args.seconds
    );
    for case in [Case::IncrementTyped, Case::ConsumeTyped, Case::IncrementLine, Case::ConsumeLine] {
        let engine = Engine::in_memory();
        let rate = measure(&engine, case, args)?;
        println!("{:<44} {:>12} ops/s", case.label(), thousands(rate as u64));
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("karma-consume: {e}");
            ExitCode::FAILURE
        }
    }
}
