//! SIGKILL crash test of the engine: a child process (this test binary,
//! re-executed with `KARMA_CRASH_CHILD=<dir>`) writes with `wal_fsync: karma_engine::FsyncPolicy::Always`
//! and prints `ACK <n>` after each write is acknowledged; the parent kills
//! it with SIGKILL after a random number of acknowledgements, reopens the
//! directory and checks that every acknowledged write is there exactly once
//! and the one in flight is there entirely or not at all. The runs share
//! one directory, so the state accumulates; some children also run
//! `snapshot_all` every few writes, so kills land around snapshots and WAL
//! truncation too. No timing assertions.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use karma_engine::{Engine, Options, Session};
use karma_testkit::Rng;

const SERIES: &str = "crash";
const CHILD_ENV: &str = "KARMA_CRASH_CHILD";
const RUNS: usize = 40;

// ------------------------------------------------------------------ the writes

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Increment,
    BatchAdd,
    IdempotentIncrement,
    IdempotentBatchAdd,
}

/// Write `i` touches only its own cells (keys `4i..4i+3`), so a write
/// applied twice, or half-applied, is visible.
fn kind(i: u64) -> Kind {
    match i % 8 {
        3 => Kind::BatchAdd,
        5 => Kind::IdempotentIncrement,
        7 => Kind::IdempotentBatchAdd,
        _ => Kind::Increment,
    }
}

/// `(key, bucket, value)` of every cell write `i` adds to.
fn cells(i: u64) -> Vec<(u64, u64, u64)> {
    let n = match kind(i) {
        Kind::Increment | Kind::IdempotentIncrement => 1,
        Kind::BatchAdd | Kind::IdempotentBatchAdd => 3,
    };
    (0..n).map(|j| (4 * i + j, 20260101 + (i + j) % 28, (i % 1000) * 10 + j + 1)).collect()
}

fn request(i: u64) -> String {
    let c = cells(i);
    match kind(i) {
        Kind::Increment => {
            let (k, b, v) = c[0];
            format!(r#"{{"v":2,"op":"counter.increment","series":"{SERIES}","key":{k},"bucket":{b},"value":{v}}}"#)
        }
        Kind::IdempotentIncrement => {
            let (k, b, v) = c[0];
            format!(
                r#"{{"v":2,"op":"counter.increment","series":"{SERIES}","key":{k},"bucket":{b},"value":{v},"idempotency_key":"w-{i}"}}"#
            )
        }
        Kind::BatchAdd | Kind::IdempotentBatchAdd => {
            let items: Vec<String> = c.iter().map(|(k, b, v)| format!("[{k},{b},{v}]")).collect();
            let idem = if kind(i) == Kind::IdempotentBatchAdd {
                format!(r#","idempotency_key":"w-{i}""#)
            } else {
                String::new()
            };
            format!(r#"{{"v":2,"op":"series.batch_add","series":"{SERIES}","items":[{}]{idem}}}"#, items.join(","))
        }
    }
}

fn is_idempotent(i: u64) -> bool {
    matches!(kind(i), Kind::IdempotentIncrement | Kind::IdempotentBatchAdd)
}

// ------------------------------------------------------------------ the child

/// Sends one write and waits until it is durable; `Err` with the response
/// if it failed.
fn write(engine: &Engine, line: &str) -> Result<String, String> {
    let reply = engine.handle_line(line.as_bytes(), &Session::client());
    if let Some(lsn) = reply.lsn {
        engine.wait_durable(lsn).map_err(|e| format!("wait_durable: {e}"))?;
    }
    let text = String::from_utf8(reply.bytes).unwrap();
    if text.contains("\"success\":true") {
        Ok(text)
    } else {
        Err(text)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap())
}

/// The child: a no-op unless `KARMA_CRASH_CHILD` names a directory. Writes
/// forever (until killed), printing `ACK <i>` after write `i` is durable.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let start = env_u64("KARMA_CRASH_START").unwrap();
    let snapshot_every = env_u64("KARMA_CRASH_SNAPSHOT_EVERY").unwrap_or(0);
    let engine = Engine::open(Options { wal_fsync: karma_engine::FsyncPolicy::Always, ..Options::durable(&dir) })
        .expect("child open");
    // libtest has printed "test child_writer ... " without a newline.
    println!();
    // libtest has printed "test child_writer ... " without a newline.
    println!();
    // A client retrying the idempotent write that was in flight at the crash.
    if let Some(retry) = env_u64("KARMA_CRASH_RETRY") {
        match write(&engine, &request(retry)) {
            Ok(_) => println!("ACK {retry}"),
            Err(e) => println!("FAIL retry {retry}: {e}"),
        }
    }
    let mut i = start;
    let mut since_snapshot = 0;
    loop {
        let line = request(i);
        match write(&engine, &line) {
            Ok(_) => {}
            Err(e) => {
                println!("FAIL write {i}: {e}");
                return;
            }
        }
        if is_idempotent(i) {
            // An immediate retry must be a hit and change nothing.
            match write(&engine, &line) {
                Ok(text) if text.contains("\"idempotent\":true") => {}
                other => {
                    println!("FAIL retry of {i} was not a hit: {other:?}");
                    return;
                }
            }
        }
        println!("ACK {i}");
        i += 1;
        since_snapshot += 1;
        if since_snapshot == snapshot_every {
            since_snapshot = 0;
            if let Err(e) = engine.snapshot_all() {
                println!("FAIL snapshot_all: {e}");
                return;
            }
            println!("SNAPSHOT");
        }
    }
}

// ------------------------------------------------------------------ the parent

/// What the parent knows about each write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Present,
    Absent,
}

struct RunResult {
    acked: Vec<u64>,
    snapshots: usize,
}

fn run_child(
    dir: &Path,
    start: u64,
    retry: Option<u64>,
    snapshot_every: u64,
    kill_after: usize,
    slack_us: u64,
) -> RunResult {
    let stderr_path = dir.with_extension(format!("child-{start}.stderr"));
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env("KARMA_CRASH_START", start.to_string())
        .env("KARMA_CRASH_SNAPSHOT_EVERY", snapshot_every.to_string())
        .env_remove("KARMA_CRASH_RETRY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    if let Some(r) = retry {
        cmd.env("KARMA_CRASH_RETRY", r.to_string());
    }
    let mut child = cmd.spawn().expect("spawn child");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut result = RunResult { acked: Vec::new(), snapshots: 0 };
    let mut killed = false;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let text = line.trim();
        if let Some(n) = text.strip_prefix("ACK ") {
            result.acked.push(n.parse().unwrap());
            if !killed && result.acked.len() >= kill_after {
                // A little slack so the kill lands anywhere in the next
                // write (encoding, WAL append, fsync, apply, a snapshot).
                std::thread::sleep(std::time::Duration::from_micros(slack_us));
                // A little slack so the kill lands anywhere in the next
                // write (encoding, WAL append, fsync, apply, a snapshot).
                std::thread::sleep(std::time::Duration::from_micros(slack_us));
                // Child::kill is SIGKILL on unix. Lines already in the pipe
                // are still read below: they were acknowledged.
                child.kill().unwrap();
                killed = true;
            }
        } else if text == "SNAPSHOT" {
            result.snapshots += 1;
        } else if text.starts_with("FAIL") {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child reported {text}");
        }
    }
    let status = child.wait().unwrap();
    if !killed {
        let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        panic!("child exited by itself ({status}) after {} acks: {err}", result.acked.len());
    }
    result
}

/// Checks every write's cells against `states`; the write `in_flight` may
/// be present or absent but entirely so, and its state is returned.
fn verify(dir: &Path, states: &BTreeMap<u64, State>, in_flight: Option<u64>, run: usize) -> Option<State> {
    let engine = Engine::open(Options { wal_fsync: karma_engine::FsyncPolicy::Never, ..Options::durable(dir) })
        .unwrap_or_else(|e| panic!("run {run}: reopen after SIGKILL failed: {e}"));
    let mut all: Vec<u64> = states.keys().copied().collect();
    all.extend(in_flight);
    let mut keys = Vec::new();
    for i in &all {
        keys.extend(cells(*i).iter().map(|c| c.0));
    }
    let sums = if keys.is_empty() { Vec::new() } else { engine.batch_sum(SERIES, &keys, None).unwrap() };
    let got: BTreeMap<u64, u64> = keys.iter().copied().zip(sums).collect();
    let mut resolved = None;
    let (mut want_keys, mut want_total) = (0usize, 0u64);
    for i in all {
        let c = cells(i);
        let present = c.iter().all(|(k, _, v)| got[k] == *v);
        let absent = c.iter().all(|(k, _, _)| got[k] == 0);
        let state = match states.get(&i) {
            Some(s) => *s,
            None => {
                assert!(present || absent, "run {run}: in-flight write {i} is half applied: {:?}", sums_of(&got, &c));
                let s = if present { State::Present } else { State::Absent };
                resolved = Some(s);
                s
            }
        };
        match state {
            State::Present => {
                assert!(present, "run {run}: acknowledged write {i} ({:?}) reads {:?}", kind(i), sums_of(&got, &c));
                want_keys += c.len();
                want_total += c.iter().map(|x| x.2).sum::<u64>();
            }
            State::Absent => {
                assert!(absent, "run {run}: write {i} was lost before, now reads {:?}", sums_of(&got, &c));
            }
        }
    }
    // Nothing else: no stray cells, no double application anywhere.
    if want_keys > 0 {
        let info = engine.info(SERIES).unwrap();
        assert_eq!((info.key_count, info.bucket_count, info.total), (want_keys, want_keys, want_total), "run {run}");
    }
    engine.close().unwrap();
    drop(engine);
    resolved
}

fn sums_of(got: &BTreeMap<u64, u64>, c: &[(u64, u64, u64)]) -> Vec<(u64, u64, u64)> {
    c.iter().map(|(k, _, v)| (*k, *v, got[k])).collect()
}

/// Kills a writer `runs` times on one directory; with `snapshots`, every
/// other child also runs `snapshot_all` every few writes.
fn crash_loop(seed: u64, runs: usize, snapshots: bool) {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut rng = Rng(seed);
    let mut states: BTreeMap<u64, State> = BTreeMap::new();
    let mut next = 0u64;
    let mut retry = None;
    let (mut kills, mut snapshots_done, mut in_flight_present, mut in_flight_absent) = (0, 0, 0, 0);
    for run in 0..runs {
        let snapshot_every = if snapshots && run % 2 == 1 { 3 + rng.below(8) } else { 0 };
        let kill_after = 1 + rng.below(60) as usize;
        let slack_us = rng.below(3000);
        let result = run_child(&dir, next, retry, snapshot_every, kill_after, slack_us);
        kills += 1;
        snapshots_done += result.snapshots;
        let mut acked = result.acked.as_slice();
        if let Some(r) = retry.take() {
            assert_eq!(acked.first(), Some(&r), "run {run}: the retry comes first");
            // Whatever happened to it before, now it is there exactly once.
            states.insert(r, State::Present);
            acked = &acked[1..];
        }
        for &i in acked {
            assert_eq!(i, next, "run {run}: writes are acknowledged in order");
            states.insert(i, State::Present);
            next += 1;
        }
        // Writes are sequential: only `next` can have been in flight.
        let in_flight = next;
        let first = verify(&dir, &states, Some(in_flight), run).expect("in-flight write resolved");
        // Read again: a second restart must not change its mind.
        let second = verify(&dir, &states, Some(in_flight), run).expect("in-flight write resolved");
        assert_eq!(first, second, "run {run}: in-flight write {in_flight} changed across a clean restart");
        match first {
            State::Present => in_flight_present += 1,
            State::Absent => in_flight_absent += 1,
        }
        states.insert(in_flight, first);
        next += 1;
        if is_idempotent(in_flight) {
            retry = Some(in_flight);
        }
    }
    // One last clean look, and a final verify after a snapshot of it all.
    verify(&dir, &states, None, runs);
    let engine =
        Engine::open(Options { wal_fsync: karma_engine::FsyncPolicy::Never, ..Options::durable(&dir) }).unwrap();
    engine.snapshot_all().unwrap();
    engine.close().unwrap();
    drop(engine);
    verify(&dir, &states, None, runs + 1);
    println!(
        "{kills} kills, {} writes, {snapshots_done} snapshots in children, in-flight present {in_flight_present} / absent {in_flight_absent}",
        states.len()
    );
    assert!(kills >= 20);
    if snapshots {
        assert!(snapshots_done > 0, "no child got as far as a snapshot");
    }
}

/// WAL only: every kill lands in a write (append, fsync, apply) or between
/// writes.
#[test]
fn sigkill_never_loses_or_doubles_an_acknowledged_write() {
    crash_loop(0x9e37_79b9_7f4a_7c15, RUNS, false);
}

/// Kills also land inside `snapshot_all`: between a `.tree` and its
/// `.meta.json`, before the idempotency snapshot, before the WAL truncation.
#[test]
fn sigkill_around_snapshot_all_never_loses_or_doubles_an_acknowledged_write() {
    crash_loop(0x2545_f491_4f6c_dd1d, RUNS, true);
}
