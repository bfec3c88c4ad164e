//! WAL replay is idempotent against the snapshots it follows, for every
//! mutating op kind, proven with real processes: a child (this test binary,
//! re-executed with `KARMA_REPLAY_CHILD=<dir>`) runs a scenario with
//! `wal_fsync: karma_engine::FsyncPolicy::Always`, prints the state it acknowledged and is killed with
//! SIGKILL; the parent reopens the directory and must find exactly that
//! state, again after a graceful close (`snapshot.create_all`, which
//! truncates the WAL) and a second reopen.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use karma_engine::{Engine, Options};
use serde_json::Value;
use support::{observe, send};

const CHILD_ENV: &str = "KARMA_REPLAY_CHILD";
const LINES_ENV: &str = "KARMA_REPLAY_LINES";

/// Every series with its `tree.info`, `tree.keys` and `tree.series`, by name.
fn dump(e: &Engine) -> String {
    let list: Value = serde_json::from_str(&send(e, r#"{"v":2,"op":"tree.list"}"#)).unwrap();
    let mut names: Vec<String> =
        list["response"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    names.sort();
    let mut out = String::new();
    for name in names {
        out.push_str(&format!("{name}: {:?}\n", observe(e, &name)));
    }
    out
}

/// The child: a no-op unless `KARMA_REPLAY_CHILD` names a directory.
#[test]
fn child_scenario() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let lines = std::env::var(LINES_ENV).unwrap();
    let engine = Engine::open(Options { wal_fsync: karma_engine::FsyncPolicy::Always, ..Options::durable(&dir) })
        .expect("child open");
    // libtest has printed "test child_scenario ... " without a newline.
    println!();
    for line in lines.lines() {
        let answer = send(&engine, line);
        if !answer.contains("\"success\":true") {
            println!("FAIL {line} -> {answer}");
            return;
        }
    }
    println!("STATE {}", serde_json::to_string(&dump(&engine)).unwrap());
    println!("READY");
    loop {
        std::thread::park();
    }
}

/// Runs `lines` in a child, SIGKILLs it once they are all acknowledged and
/// returns the state the child reported.
fn run_and_kill(dir: &Path, lines: &[String]) -> String {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_scenario", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(LINES_ENV, lines.join("\n"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut state = None;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            let _ = child.wait();
            panic!("child ended before READY; state {state:?}");
        }
        let text = line.trim();
        if let Some(s) = text.strip_prefix("STATE ") {
            state = Some(serde_json::from_str::<String>(s).unwrap());
        } else if text == "READY" {
            break;
        } else if text.starts_with("FAIL") {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child reported {text}");
        }
    }
    // Child::kill is SIGKILL on unix.
    child.kill().unwrap();
    child.wait().unwrap();
    state.expect("child printed its state")
}

fn tree_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tree"))
        .collect();
    files.sort();
    files
}

/// Kills a child after `lines`, then checks the state across a reopen, a
/// graceful close (which snapshots everything and truncates the WAL) and a
/// second reopen. Replay must not delete any snapshot file.
fn check_scenario(what: &str, lines: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let acknowledged = run_and_kill(dir.path(), lines);
    let files_before = tree_files(dir.path());
    let engine = Engine::open(Options::durable(dir.path())).unwrap();
    assert_eq!(dump(&engine), acknowledged, "{what}: state after SIGKILL and reopen");
    assert_eq!(tree_files(dir.path()), files_before, "{what}: replay deleted snapshot files");
    engine.snapshot_all().unwrap();
    engine.close().unwrap();
    drop(engine);
    let engine = Engine::open(Options::durable(dir.path())).unwrap();
    assert_eq!(dump(&engine), acknowledged, "{what}: state after a graceful restart");
}

fn line(op: &str, rest: &str) -> String {
    format!(r#"{{"v":2,"op":"{op}","series":"api"{rest}}}"#)
}

fn inc(key: u64, value: u64) -> String {
    line("counter.increment", &format!(r#","key":{key},"bucket":20260101,"value":{value}"#))
}

/// The issue's reproduction: a drop replayed over the newer snapshot that
/// follows it destroyed the data written after the drop, and the snapshot.
#[test]
fn a_replayed_drop_keeps_the_newer_snapshot_and_its_data() {
    let lines = [inc(1, 1), line("tree.drop", ""), inc(3, 10), line("snapshot.create", ""), inc(1, 5)];
    check_scenario("tree.drop", &lines);
}

/// A drop after the snapshot, with the series written again after the drop.
#[test]
fn a_drop_after_the_snapshot_replays_and_stays_dropped() {
    let lines = [inc(1, 1), line("snapshot.create", ""), line("tree.drop", ""), inc(2, 7)];
    check_scenario("tree.drop after snapshot", &lines);
    let lines = [inc(1, 1), line("snapshot.create", ""), inc(4, 2), line("tree.drop", "")];
    check_scenario("tree.drop last", &lines);
}

/// Every other mutation, replayed before and after a snapshot of its series
/// (and of another series): only what the snapshot lacks is applied.
#[test]
fn every_mutation_replays_idempotently_against_its_snapshot() {
    let ops: Vec<(&str, String)> = vec![
        ("tree.reset", line("tree.reset", "")),
        ("counter.reset", line("counter.reset", r#","key":1"#)),
        ("counter.delete_range", line("counter.delete_range", r#","key":1,"range":{"from":20260101,"to":20260101}"#)),
        ("tree.delete_range", line("tree.delete_range", r#","range":{"from":20260101,"to":20260101}"#)),
        ("series.delete_before", line("series.delete_before", r#","before":20260102"#)),
        ("counter.batch_reset", line("counter.batch_reset", r#","keys":[1,3]"#)),
        (
            "counter.batch_delete_range",
            line("counter.batch_delete_range", r#","keys":[1,3],"range":{"from":20260101,"to":20260101}"#),
        ),
        ("series.batch_set", line("series.batch_set", r#","items":[[1,20260101,4],[3,20260101,9]]"#)),
        ("series.batch_add", line("series.batch_add", r#","items":[[1,20260101,4],[3,20260101,9]]"#)),
        ("system.compact", r#"{"v":2,"op":"system.compact"}"#.to_owned()),
        ("counter.decrement", line("counter.decrement", r#","key":1,"bucket":20260101,"value":1"#)),
    ];
    let other = r#"{"v":2,"op":"counter.increment","series":"other","key":1,"bucket":20260101,"value":3}"#;
    for (name, op) in &ops {
        // The op inside the snapshot, then more writes after it.
        let lines = [inc(1, 2), inc(3, 1), op.clone(), inc(3, 10), line("snapshot.create", ""), inc(1, 5)];
        check_scenario(&format!("{name} before the snapshot"), &lines);
        // The op after the snapshot.
        let lines = [inc(1, 2), inc(3, 1), line("snapshot.create", ""), op.clone(), inc(3, 10)];
        check_scenario(&format!("{name} after the snapshot"), &lines);
        // Another series' snapshot is newer than the op: it still applies.
        let lines =
            [inc(1, 2), other.to_owned(), op.clone(), r#"{"v":2,"op":"snapshot.create","series":"other"}"#.into()];
        check_scenario(&format!("{name} before another series' snapshot"), &lines);
    }
}

/// A `replace_series` ingest commit, before and after its series' snapshot.
#[test]
fn an_ingest_commit_replays_idempotently_against_its_snapshot() {
    let ingest = [
        r#"{"v":2,"op":"ingest.begin","stream_id":"r","mode":"replace_series"}"#.to_owned(),
        r#"{"v":2,"op":"ingest.chunk","stream_id":"r","series":"api","chunk_seq":1,"items":[[7,20260101,4]]}"#
            .to_owned(),
        r#"{"v":2,"op":"ingest.commit","stream_id":"r"}"#.to_owned(),
    ];
    let mut lines = vec![inc(1, 2)];
    lines.extend(ingest.iter().cloned());
    lines.extend([inc(1, 10), line("snapshot.create", ""), inc(7, 1)]);
    check_scenario("ingest commit before the snapshot", &lines);
    let mut lines = vec![inc(1, 2), line("snapshot.create", "")];
    lines.extend(ingest.iter().cloned());
    lines.push(inc(1, 3));
    check_scenario("ingest commit after the snapshot", &lines);
}

/// A crash after a drop is durable but before its snapshot files are gone
/// (emulated by putting the files back): the replayed drop removes the series
/// from memory only, and `snapshot.create_all`, which truncates the WAL that
/// held the drop, removes the stale files so the series never comes back.
#[test]
fn create_all_removes_the_snapshots_a_replayed_drop_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Engine::open(Options { wal_fsync: karma_engine::FsyncPolicy::Never, ..Options::durable(dir.path()) }).unwrap()
    };
    let engine = open();
    send(&engine, &inc(1, 1));
    send(&engine, &line("snapshot.create", ""));
    let saved: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().contains("_api.tree"))
        .map(|e| (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap()))
        .collect();
    assert_eq!(saved.len(), 2, "the snapshot and its sidecar");
    send(&engine, &line("tree.drop", ""));
    engine.close().unwrap();
    drop(engine);
    for (name, bytes) in &saved {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let engine = open();
    assert_eq!(observe(&engine, "api"), None, "the replayed drop applies");
    assert_eq!(tree_files(dir.path()).len(), 1, "replay deletes no file");
    engine.snapshot_all().unwrap();
    assert!(tree_files(dir.path()).is_empty(), "create_all removed the dropped series' snapshot");
    engine.close().unwrap();
    drop(engine);
    assert_eq!(observe(&open(), "api"), None);
}

/// At the last LSN a write is refused with a clear error instead of wrapping
/// to 0 (which acknowledged writes before they were written); what was
/// acknowledged before survives SIGKILL.
#[test]
fn an_exhausted_lsn_refuses_writes_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("karma.wal.lsn"), format!("{}\n", u64::MAX - 2)).unwrap();
    let acknowledged = run_and_kill(dir.path(), &[inc(1, 1), inc(1, 2)]);
    let engine =
        Engine::open(Options { wal_fsync: karma_engine::FsyncPolicy::Always, ..Options::durable(dir.path()) }).unwrap();
    assert_eq!(dump(&engine), acknowledged);
    assert!(acknowledged.contains("\\\"total\\\":3"), "{acknowledged}");
    let answer = send(&engine, &inc(1, 4));
    assert_eq!(
        answer,
        support::fail("internal_error", &format!("WAL LSN space is exhausted at {}; no further writes", u64::MAX))
    );
    assert_eq!(dump(&engine), acknowledged, "the refused write changed nothing");
    drop(engine);
    let engine = Engine::open(Options::durable(dir.path())).unwrap();
    assert_eq!(dump(&engine), acknowledged);
}

/// A WAL holding an LSN twice (or going backwards) replays it once.
#[test]
fn a_duplicate_lsn_is_replayed_once() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Engine::open(Options { wal_fsync: karma_engine::FsyncPolicy::Never, ..Options::durable(dir.path()) }).unwrap()
    };
    let engine = open();
    send(&engine, &inc(1, 1));
    send(&engine, &inc(1, 2));
    engine.close().unwrap();
    drop(engine);
    let wal = dir.path().join("karma.wal");
    let text = std::fs::read_to_string(&wal).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    // The second entry again, then the first one out of place.
    std::fs::write(&wal, format!("{}\n{}\n{}\n{}\n", lines[0], lines[1], lines[1], lines[0])).unwrap();
    let engine = open();
    assert_eq!(send(&engine, &line("counter.sum", r#","key":1"#)), support::ok("3"));
}

/// `batch_write_count` / `batch_write_item_count` count the batches clients
/// had applied: not the WAL entries replayed at startup, not a batch the
/// overflow pre-check rejected.
#[test]
fn batch_write_metrics_count_applied_batches_only() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Engine::open(Options { wal_fsync: karma_engine::FsyncPolicy::Never, ..Options::durable(dir.path()) }).unwrap()
    };
    let counts = |e: &Engine| {
        let v = support::response(e, r#"{"v":2,"op":"system.stats"}"#);
        (v["batch_write_count"].as_u64().unwrap(), v["batch_write_item_count"].as_u64().unwrap())
    };
    let engine = open();
    send(&engine, &line("series.batch_add", r#","items":[[1,20260101,1],[2,20260101,1]]"#));
    send(&engine, &line("series.batch_add", &format!(r#","items":[[1,20260101,{}]]"#, u64::MAX)));
    send(&engine, &line("counter.batch_reset", r#","keys":[2]"#));
    send(&engine, r#"{"v":2,"op":"ingest.begin","stream_id":"s","mode":"add"}"#);
    send(
        &engine,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"s","series":"api","chunk_seq":1,"items":[[3,20260101,1]]}"#,
    );
    send(
        &engine,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"s","series":"api","chunk_seq":1,"items":[[3,20260101,1]]}"#,
    );
    assert_eq!(counts(&engine), (3, 4), "the rejected batch and the skipped chunk do not count");
    engine.close().unwrap();
    drop(engine);
    let engine = open();
    assert_eq!(counts(&engine), (0, 0), "replaying the WAL at startup counts nothing");
}

/// Found by the `handle_line` fuzzer: an empty `series.batch_set` with an
/// idempotency key answered and left a record, but logged nothing (1.0 logs
/// no empty batch_set), so a restart forgot the record and the key could be
/// reused for another request. The record now survives SIGKILL and a clean
/// close alike, with its first answer.
#[test]
fn an_empty_batch_set_keeps_its_idempotency_record_across_restarts() {
    let empty = line("series.batch_set", r#","items":[],"idempotency_key":"k""#);
    let other = line("series.batch_set", r#","items":[[1,20260101,5]],"idempotency_key":"k""#);
    let records =
        |e: &Engine| support::response(e, r#"{"v":2,"op":"system.stats"}"#)["idempotency_record_count"].clone();
    let check = |e: &Engine, what: &str| {
        assert_eq!(records(e), 1, "{what}: the record is back");
        assert_eq!(send(e, &empty), support::idem(r#"{"applied":0}"#, true), "{what}: the first answer, replayed");
        let (code, _) = support::error_of(e, &other);
        assert_eq!(code, "idempotency_conflict", "{what}: the key stays taken");
    };
    let dir = tempfile::tempdir().unwrap();
    run_and_kill(dir.path(), std::slice::from_ref(&empty));
    let engine = Engine::open(Options::durable(dir.path())).unwrap();
    check(&engine, "after SIGKILL");
    engine.close().unwrap();
    drop(engine);
    let engine = Engine::open(Options::durable(dir.path())).unwrap();
    check(&engine, "after a clean close");
    assert_eq!(dump(&engine), "", "an empty batch_set creates no series");
}
