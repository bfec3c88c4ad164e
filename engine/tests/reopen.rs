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
/// the ops of its seed forever, printing `ACK <i> <state>` once op `i` is
/// acknowledged (durable: `wal_fsync` is on).
#[test]
fn child_ops() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let seed: u64 = std::env::var(SEED_ENV).unwrap().parse().unwrap();
    let dir = Path::new(&dir);
    let engine = open_durable(dir);
    // libtest has printed "test child_ops ... " without a newline.
    println!();
    run_ops(&engine, dir, seed, |i, e| {
        println!("ACK {i} {}", serde_json::to_string(&state(e)).unwrap());
        true
    });
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
/// random point, many times over one directory: after each reopen the state
/// is the state the child acknowledged last, or that plus the op in flight
/// (which was durable but not yet reported).
#[test]
fn sigkill_at_random_points_keeps_exactly_the_acknowledged_state() {
    let runs: u64 = std::env::var("KARMA_REOPEN_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0x5eed);
    let mut ops = 0u64;
    for run in 0..runs {
        let seed = 1000 + run;
        let start = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), start.path());
        let kill_after = 1 + rng.below(60);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_ops", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env(SEED_ENV, seed.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let (mut last, mut killed) = (None::<(u64, String)>, false);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let Some(rest) = line.trim_end().strip_prefix("ACK ") else { continue };
            let (i, s) = rest.split_once(' ').unwrap();
            last = Some((i.parse().unwrap(), serde_json::from_str(s).unwrap()));
            if !killed && last.as_ref().is_some_and(|(i, _)| *i + 1 >= kill_after) {
                // Child::kill is SIGKILL; lines already written are still read.
                child.kill().unwrap();
                killed = true;
            }
        }
        let status = child.wait().unwrap();
        assert!(killed, "run {run}: the child ended by itself: {status}");
        let (acked, acked_state) = last.expect("the child acknowledged something");
        ops += acked + 1;
        let engine = open_durable(dir.path());
        let got = state(&engine);
        engine.close().unwrap();
        drop(engine);
        if got != acked_state {
            let with_in_flight = replayed_state(start.path(), seed, acked + 1);
            assert_eq!(got, with_in_flight, "run {run} (seed {seed}): state after SIGKILL after op {acked}");
        }
    }
    eprintln!("{runs} SIGKILL runs, {ops} acknowledged ops");
}
