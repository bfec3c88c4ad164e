//! Crash-and-reopen properties (issue 10): random sequences of every
//! mutating op, hostile variants of them, and reopens; after each reopen the
//! state equals the state acknowledged before it.

mod fuzzing;

/// The `handle_line` fuzzer's short run: a few hundred rounds of valid and
/// mutated lines, each round closed and reopened (see
/// `examples/fuzz_handle_line.rs` for long runs).
#[test]
fn mutated_lines_never_break_answers_or_state_across_reopen() {
    let rounds = std::env::var("KARMA_FUZZ_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    for seed in 1..=2 {
        if let Err(failure) = fuzzing::run(seed, Some(rounds), None, |_| {}) {
            panic!("{failure}");
        }
    }
}

// ------------------------------------------------------- SIGKILL of a child

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use fuzzing::{state, tree_files, valid_line, Rng};
use karma_engine::clock::ManualClock;
use karma_engine::{Engine, Options, Session};

const CHILD_ENV: &str = "KARMA_REOPEN_CHILD";
const SEED_ENV: &str = "KARMA_REOPEN_SEED";
const STOP_ENV: &str = "KARMA_REOPEN_STOP_AFTER";
const SNAPSHOT_ENV: &str = "KARMA_REOPEN_SNAPSHOT";

/// Every child and every replay uses this clock, so a run is a pure
/// function of its seed and the directory it starts from.
fn open_durable(dir: &Path) -> Engine {
    let options = Options {
        wal_fsync: karma_engine::options::FsyncPolicy::Always,
        clock: ManualClock::new(1_780_000_000),
        ..Options::durable(dir)
    };
    Engine::open(Options { idempotency_max_age_seconds: 0, ..options }).expect("open")
}

/// Runs the op sequence of `seed` on `engine`, calling `after(i)` once op
/// `i` is acknowledged; stops when `after` says so.
fn run_ops(engine: &Engine, dir: &Path, seed: u64, mut after: impl FnMut(u64, &Engine) -> bool) {
    let mut rng = Rng::new(seed);
    for i in 0.. {
        let files = tree_files(dir);
        let line = valid_line(&mut rng, &files);
        let answer = engine.handle_line_acked(line.as_bytes(), &Session::client());
        if let Err(e) = fuzzing::check_answer(&answer) {
            panic!("op {i} {line}: {e}");
        }
        if !after(i, engine) {
            return;
        }
    }
}

/// The child: a no-op unless `KARMA_REOPEN_CHILD` names a directory. Runs
/// the ops of its seed, printing `ACK <i> <state>` once op `i` is
/// acknowledged (durable: `wal_fsync` is on), until it is killed, or, with
/// `KARMA_REOPEN_STOP_AFTER=<n>`, until op `n` is acknowledged: then it
/// shuts down as the server does on SIGTERM (`snapshot.create_all` when
/// `KARMA_REOPEN_SNAPSHOT` is set, then close) and prints `CLOSED`.
#[test]
fn child_ops() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let seed: u64 = std::env::var(SEED_ENV).unwrap().parse().unwrap();
    let stop_after: Option<u64> = std::env::var(STOP_ENV).ok().map(|v| v.parse().unwrap());
    let dir = Path::new(&dir);
    let engine = open_durable(dir);
    // libtest has printed "test child_ops ... " without a newline.
    println!();
    run_ops(&engine, dir, seed, |i, e| {
        println!("ACK {i} {}", serde_json::to_string(&state(e)).unwrap());
        stop_after != Some(i)
    });
    if std::env::var_os(SNAPSHOT_ENV).is_some() {
        engine.snapshot_all().expect("snapshot_all at shutdown");
    }
    engine.close().expect("close");
    println!("CLOSED");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The state after ops `0..=last` of `seed`, replayed on a copy of `start`.
fn replayed_state(start: &Path, seed: u64, last: u64) -> String {
    let scratch = tempfile::tempdir().unwrap();
    copy_dir(start, scratch.path());
    let engine = open_durable(scratch.path());
    let mut out = String::new();
    run_ops(&engine, scratch.path(), seed, |i, e| {
        if i == last {
            out = state(e);
            return false;
        }
        true
    });
    out
}

/// Random sequences of every mutating op in a child that is SIGKILLed at a
/// random point, or (one run in four) shut down cleanly, many times over one
/// directory. After a clean shutdown the reopened state is exactly the state
/// the child acknowledged last; after SIGKILL it is that state, or that plus
/// the op in flight (durable but not yet reported).
///
/// The test suite runs a few runs of at most 60 ops. Long runs:
/// `KARMA_REOPEN_RUNS=<runs> KARMA_REOPEN_MAX_OPS=<ops>` (docs/testing.md).
#[test]
fn sigkill_at_random_points_keeps_exactly_the_acknowledged_state() {
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let runs = env("KARMA_REOPEN_RUNS", 8);
    let max_ops = env("KARMA_REOPEN_MAX_OPS", 60).max(1);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0x5eed);
    let (mut ops, mut kills, mut closes) = (0u64, 0u64, 0u64);
    for run in 0..runs {
        let seed = 1000 + run;
        let start = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), start.path());
        let stop_at = rng.below(max_ops);
        let graceful = rng.chance(4);
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "child_ops", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env(SEED_ENV, seed.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if graceful {
            command.env(STOP_ENV, stop_at.to_string());
            if rng.chance(2) {
                command.env(SNAPSHOT_ENV, "1");
            }
        }
        let mut child = command.spawn().expect("spawn child");
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let (mut last, mut killed, mut closed) = (None::<(u64, String)>, false, false);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if line.trim_end() == "CLOSED" {
                closed = true;
                continue;
            }
            let Some(rest) = line.trim_end().strip_prefix("ACK ") else { continue };
            let (i, s) = rest.split_once(' ').unwrap();
            last = Some((i.parse().unwrap(), serde_json::from_str(s).unwrap()));
            if !graceful && !killed && last.as_ref().is_some_and(|(i, _)| *i >= stop_at) {
                // Child::kill is SIGKILL; lines already written are still read.
                child.kill().unwrap();
                killed = true;
            }
        }
        let status = child.wait().unwrap();
        if graceful {
            assert!(closed && status.success(), "run {run} (seed {seed}): the clean shutdown failed: {status}");
            closes += 1;
        } else {
            assert!(killed, "run {run} (seed {seed}): the child ended by itself: {status}");
            kills += 1;
        }
        let (acked, acked_state) = last.expect("the child acknowledged something");
        ops += acked + 1;
        let engine = open_durable(dir.path());
        let got = state(&engine);
        engine.close().unwrap();
        drop(engine);
        if got != acked_state {
            assert!(!graceful, "run {run} (seed {seed}): state after a clean shutdown after op {acked}");
            let with_in_flight = replayed_state(start.path(), seed, acked + 1);
            assert_eq!(got, with_in_flight, "run {run} (seed {seed}): state after SIGKILL after op {acked}");
        }
    }
    eprintln!("{runs} runs ({kills} SIGKILL, {closes} clean shutdowns), {ops} acknowledged ops, no failure");
}
