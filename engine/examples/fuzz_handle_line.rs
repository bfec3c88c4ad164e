//! A seeded mutation fuzzer for `Engine::handle_line` that also checks state
//! across reopen (issue 10). Each round sends valid request lines for every
//! op and hostile variants of them (structural JSON changes and byte
//! flips), checks that every answer is one well-formed envelope and that no
//! request is answered with an unexpected `internal_error`, then closes the
//! engine (sometimes after `snapshot.create_all`, as a graceful shutdown
//! does), reopens the directory and requires the same state. Nothing may
//! appear outside the data directory.
//!
//! ```text
//! cargo run --release -p karma-engine --example fuzz_handle_line -- [--seed N] [--seconds S] [--rounds R]
//! ```
//!
//! A failure prints the seed, the round and the lines of that round, so it
//! can be replayed with the same seed. The short version runs in the test
//! suite (`engine/tests/reopen.rs`).

#![forbid(unsafe_code)]

#[path = "../tests/fuzzing/mod.rs"]
mod fuzzing;

use std::time::Duration;

struct Args {
    seed: u64,
    seconds: Option<u64>,
    rounds: Option<u64>,
}

fn parse_args() -> Args {
    let mut args = Args { seed: 1, seconds: None, rounds: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--seed", Some(v)) => args.seed = v,
            ("--seconds", Some(v)) => args.seconds = Some(v),
            ("--rounds", Some(v)) => args.rounds = Some(v),
            _ => {
                eprintln!("usage: fuzz_handle_line [--seed N] [--seconds S] [--rounds R]");
                std::process::exit(2);
            }
        }
    }
    if args.seconds.is_none() && args.rounds.is_none() {
        args.rounds = Some(1000);
    }
    args
}

fn main() {
    let args = parse_args();
    let outcome = fuzzing::run(args.seed, args.rounds, args.seconds.map(Duration::from_secs), |report| {
        eprintln!("{report}");
    });
    match outcome {
        Ok(summary) => println!("{summary}"),
        Err(failure) => {
            eprintln!("FAILURE {failure}");
            std::process::exit(1);
        }
    }
}
