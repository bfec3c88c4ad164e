//! Resource bounds the engine enforces itself (issue 14, docs/limits.md):
//! abandoned ingest streams expire on the engine's clock, durably, and
//! recovery checkpoints are bounded. The server's socket-level bounds are in
//! server/tests/limits.rs.

mod support;

use std::path::Path;
use std::sync::Arc;

use karma_engine::clock::ManualClock;
use karma_engine::{Engine, FsyncPolicy, Options};
use support::*;

const TTL: u64 = 100;

fn open(dir: &Path, clock: &Arc<ManualClock>) -> Engine {
    Engine::open(Options {
        wal_fsync: FsyncPolicy::Never,
        clock: clock.clone(),
        ingest_stream_ttl_seconds: TTL,
        ..Options::durable(dir)
    })
    .expect("open durable engine")
}

fn metric(e: &Engine, name: &str) -> Option<u64> {
    e.metrics_text().lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn begin(e: &Engine, id: &str, mode: &str) -> String {
    send(e, &format!(r#"{{"v":2,"op":"ingest.begin","stream_id":"{id}","mode":"{mode}"}}"#))
}

fn chunk(e: &Engine, id: &str, seq: u64, items: &str) -> String {
    send(
        e,
        &format!(r#"{{"v":2,"op":"ingest.chunk","stream_id":"{id}","series":"s","chunk_seq":{seq},"items":{items}}}"#),
    )
}

fn commit(e: &Engine, id: &str) -> String {
    send(e, &format!(r#"{{"v":2,"op":"ingest.commit","stream_id":"{id}"}}"#))
}

fn not_found(id: &str) -> String {
    fail("not_found", &format!("Ingest stream \"{id}\" not found"))
}

fn is_ok(answer: &str) -> bool {
    answer.contains(r#""success":true"#)
}

#[test]
fn idle_ingest_streams_expire_and_stay_gone_after_replay_and_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let e = open(dir.path(), &clock);
    assert!(is_ok(&begin(&e, "idle", "add")));
    assert!(is_ok(&begin(&e, "busy", "replace_series")));
    clock.advance(TTL - 1);
    assert!(is_ok(&chunk(&e, "busy", 1, "[[1,20260101,5],[2,20260101,6]]")));
    assert_eq!(metric(&e, "karma_ingest_staged_items"), Some(2));
    assert_eq!(metric(&e, "karma_limit_ingest_streams_expired_total"), None);

    // "idle" has now been untouched for the whole TTL; "busy" for 1 second.
    clock.advance(1);
    e.expire_ingest_streams().expect("expire");
    assert_eq!(commit(&e, "idle"), not_found("idle"));
    assert_eq!(metric(&e, "karma_limit_ingest_streams_expired_total"), Some(1));
    assert_eq!(metric(&e, "karma_ingest_active_streams"), Some(1));

    // The abort is in the WAL: replay does not bring the stream back.
    e.close().expect("close");
    drop(e);
    let e = open(dir.path(), &clock);
    assert_eq!(commit(&e, "idle"), not_found("idle"));
    assert_eq!(metric(&e, "karma_ingest_active_streams"), Some(1));
    assert_eq!(metric(&e, "karma_ingest_staged_items"), Some(2));

    // A restart gave "busy" a fresh TTL; once it runs out, the snapshot
    // (which truncates the WAL) aborts it instead of saving it.
    clock.advance(TTL);
    e.snapshot_all().expect("snapshot");
    assert_eq!(metric(&e, "karma_ingest_active_streams"), Some(0));
    assert_eq!(metric(&e, "karma_ingest_staged_items"), None);
    e.close().expect("close");
    drop(e);
    let e = open(dir.path(), &clock);
    assert_eq!(commit(&e, "busy"), not_found("busy"));
    assert_eq!(metric(&e, "karma_ingest_active_streams"), Some(0));
    // Nothing of the staged series reached the live data.
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
}

#[test]
fn any_ingest_request_expires_idle_streams_first() {
    let (e, clock) = engine_and_clock(|o| o.ingest_stream_ttl_seconds = TTL);
    assert!(is_ok(&begin(&e, "a", "add")));
    clock.advance(TTL / 2);
    assert!(is_ok(&begin(&e, "b", "set")));
    clock.advance(TTL / 2);
    // "a" is due, "b" is not; a chunk to "b" sweeps "a" away.
    assert!(is_ok(&chunk(&e, "b", 1, "[[1,20260101,5]]")));
    assert_eq!(chunk(&e, "a", 1, "[[1,20260101,5]]"), not_found("a"));
    assert!(is_ok(&commit(&e, "b")));
    assert_eq!(metric(&e, "karma_limit_ingest_streams_expired_total"), Some(1));
}

#[test]
fn streams_never_expire_with_a_ttl_of_zero() {
    let (e, clock) = engine_and_clock(|o| o.ingest_stream_ttl_seconds = 0);
    assert!(is_ok(&begin(&e, "a", "add")));
    clock.advance(10 * 365 * 86_400);
    e.expire_ingest_streams().expect("expire");
    assert!(is_ok(&chunk(&e, "a", 1, "[[1,20260101,5]]")));
    assert!(is_ok(&commit(&e, "a")));
    assert_eq!(metric(&e, "karma_limit_ingest_streams_expired_total"), None);
}

#[test]
fn a_slave_leaves_expiry_to_its_master() {
    let (e, clock) = engine_and_clock(|o| {
        o.ingest_stream_ttl_seconds = TTL;
        o.role = karma_engine::Role::Slave;
    });
    // What replication applies on a slave.
    let internal = karma_engine::Session::internal();
    assert!(is_ok(&send_as(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"a","mode":"add"}"#, &internal)));
    clock.advance(2 * TTL);
    e.expire_ingest_streams().expect("expire");
    assert_eq!(metric(&e, "karma_ingest_active_streams"), Some(1));
    assert_eq!(metric(&e, "karma_limit_ingest_streams_expired_total"), None);
}

fn checkpoint(e: &Engine, source: &str, offset: u64) -> String {
    send(e, &format!(r#"{{"v":2,"op":"recovery.checkpoint","source":"{source}","offset":{offset}}}"#))
}

#[test]
fn recovery_sources_are_bounded_and_stored_ones_still_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let open = || {
        Engine::open(Options {
            wal_fsync: FsyncPolicy::Never,
            clock: clock.clone(),
            recovery_max_sources: 3,
            ..Options::durable(dir.path())
        })
        .expect("open")
    };
    let e = open();
    for s in ["c", "a", "b"] {
        assert!(is_ok(&checkpoint(&e, s, 1)));
    }
    assert_eq!(metric(&e, "karma_limit_recovery_sources_total"), None);
    assert_eq!(checkpoint(&e, "d", 1), fail("limit_exceeded", "Too many recovery sources (limit 3)"));
    assert_eq!(metric(&e, "karma_limit_recovery_sources_total"), Some(1));
    assert!(is_ok(&checkpoint(&e, "b", 2)));
    e.close().expect("close");
    drop(e);
    let e = open();
    let status: serde_json::Value = serde_json::from_str(&send(&e, r#"{"v":2,"op":"recovery.status"}"#)).expect("json");
    let sources: Vec<(&str, &str)> = status["response"]["checkpoints"]
        .as_array()
        .expect("checkpoints")
        .iter()
        .map(|c| (c["source"].as_str().unwrap(), c["offset"].as_str().unwrap()))
        .collect();
    assert_eq!(sources, [("a", "1"), ("b", "2"), ("c", "1")]);
    assert_eq!(checkpoint(&e, "d", 1), fail("limit_exceeded", "Too many recovery sources (limit 3)"));
}

/// Issue 14 found both status ops failing for good with
/// `response_too_large` at 6,000 sources.
#[test]
fn status_ops_stay_answerable_with_6000_sources() {
    const SOURCES: usize = 6_000;
    let e = engine_with(|o| o.recovery_max_sources = SOURCES);
    // About 250 bytes per checkpoint: 1.5 MB in all, past the 1 MiB limit.
    let event = "e".repeat(120);
    for i in 0..SOURCES {
        let line = format!(
            r#"{{"v":2,"op":"recovery.checkpoint","source":"loader-{i:05}-with-a-longish-name-for-realism","offset":{i},"event_id":"{event}"}}"#
        );
        assert!(is_ok(&send(&e, &line)));
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let line = match &after {
            None => r#"{"v":2,"op":"recovery.status"}"#.to_owned(),
            Some(a) => format!(r#"{{"v":2,"op":"recovery.status","after_source":"{a}"}}"#),
        };
        let answer = send(&e, &line);
        assert!(answer.len() <= 1_048_576, "{} bytes", answer.len());
        let v: serde_json::Value = serde_json::from_str(&answer).expect("json");
        assert_eq!(v["success"], true, "{}", &answer[..200.min(answer.len())]);
        let page = v["response"]["checkpoints"].as_array().expect("checkpoints");
        assert_eq!(v["response"]["checkpoint_count"], page.len());
        seen.extend(page.iter().map(|c| c["source"].as_str().unwrap().to_owned()));
        pages += 1;
        match v["response"]["next_after_source"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), seen.last().map(String::as_str));
                after = Some(next.to_owned());
            }
            None => break,
        }
    }
    assert!(pages > 1, "6,000 checkpoints do not fit in one answer");
    let expected: Vec<String> =
        (0..SOURCES).map(|i| format!("loader-{i:05}-with-a-longish-name-for-realism")).collect();
    assert_eq!(seen, expected);

    let answer = send(&e, r#"{"v":2,"op":"replication.status"}"#);
    let v: serde_json::Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(v["success"], true);
    assert_eq!(v["response"]["recovery_checkpoint_count"], SOURCES);
    let shown = v["response"]["recovery"]["checkpoint_count"].as_u64().expect("count") as usize;
    assert!(shown > 0 && shown < SOURCES);
    assert_eq!(v["response"]["recovery"]["next_after_source"], expected[shown - 1]);
    // One source is still answered directly.
    let one = send(&e, r#"{"v":2,"op":"recovery.status","source":"loader-04321-with-a-longish-name-for-realism"}"#);
    assert!(one.contains(r#""checkpoint_count":1,"#), "{one}");
}
