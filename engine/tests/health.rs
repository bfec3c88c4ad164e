//! A WAL that cannot be written makes the engine refuse writes and report
//! unhealthy; `snapshot.verify` leaves live state alone (B7).

use karma_engine::{Engine, Options, Session};

fn ask(engine: &Engine, line: &str) -> String {
    String::from_utf8(engine.handle_line_acked(line.as_bytes(), &Session::client())).expect("utf-8")
}

#[test]
fn a_failed_wal_refuses_writes_and_reports_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    // Rotate before every group once karma.wal holds anything.
    let opts =
        Options { wal_fsync: karma_engine::FsyncPolicy::Never, wal_segment_bytes: 1, ..Options::durable(dir.path()) };
    let engine = Engine::open(opts).unwrap();
    engine.increment("s", 1, Some(20260101), 1).unwrap();
    assert!(engine.unhealthy_reason().is_none());
    // The segment the next rotation must create already exists (empty, so
    // the directory still reads back): the rotation, and so the next group
    // commit, fails.
    std::fs::write(dir.path().join("karma.wal.00000000000000000001.segment"), b"").unwrap();

    let err = engine.increment("s", 1, Some(20260101), 1).unwrap_err();
    assert!(err.message().contains("WAL segment already exists"), "{err}");
    let reason = engine.unhealthy_reason().expect("unhealthy");
    assert!(reason.contains("WAL segment already exists"), "{reason}");

    // Every later write is refused up front, with the cause.
    let err = engine.increment("s", 2, Some(20260101), 1).unwrap_err();
    assert!(err.message().starts_with("WAL is unavailable"), "{err}");
    let line = ask(&engine, r#"{"v":2,"op":"counter.increment","series":"s","key":3,"bucket":20260101}"#);
    assert!(line.contains("WAL is unavailable"), "{line}");
    assert_eq!(engine.sum("s", 2, None).unwrap(), 0, "a refused write changed nothing");
    assert_eq!(engine.sum("s", 3, None).unwrap(), 0, "a refused write changed nothing");

    // Health says so; reads still work.
    let health = ask(&engine, r#"{"v":2,"op":"system.health"}"#);
    assert!(health.contains(r#""status":"unhealthy""#), "{health}");
    assert!(health.contains("WAL segment already exists"), "{health}");
    assert!(ask(&engine, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#).contains(r#""success":true"#));
    let _ = engine.close();
}

#[test]
fn verify_does_not_touch_live_state() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(Options { wal_fsync: karma_engine::FsyncPolicy::Never, ..Options::durable(dir.path()) }).unwrap();
    let write =
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260101,"value":2,"idempotency_key":"k1"}"#;
    assert!(ask(&engine, write).contains(r#""idempotent":false"#));
    assert!(ask(&engine, r#"{"v":2,"op":"ingest.begin","stream_id":"st","mode":"add"}"#).contains("active"));
    let stats_before = ask(&engine, r#"{"v":2,"op":"system.stats"}"#);
    let verify = ask(&engine, r#"{"v":2,"op":"snapshot.verify"}"#);
    assert!(verify.contains(r#""status":"ok""#), "{verify}");
    // The record still answers as a replay, the stream is still active, and
    // the idempotency/ingest counters did not move.
    assert!(ask(&engine, write).contains(r#""idempotent":true"#));
    let begin = ask(&engine, r#"{"v":2,"op":"ingest.begin","stream_id":"st","mode":"add"}"#);
    assert!(begin.contains(r#""status":"active""#), "{begin}");
    let field = |stats: &str, name: &str| -> u64 {
        let v: serde_json::Value = serde_json::from_str(stats.trim_end()).unwrap();
        v["response"][name].as_u64().unwrap()
    };
    let stats_after = ask(&engine, r#"{"v":2,"op":"system.stats"}"#);
    for name in
        ["idempotency_record_count", "idempotency_write_count", "ingest_active_streams", "ingest_chunks_applied"]
    {
        assert_eq!(field(&stats_before, name), field(&stats_after, name), "{name}");
    }
    assert_eq!(engine.sum("s", 1, None).unwrap(), 2);
    let _ = engine.close();
}
