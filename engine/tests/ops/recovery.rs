//! recovery / reconciliation / replication: the ops of this section through `Engine::handle_line`.

use super::*;

#[test]
fn recovery_checkpoint_and_status() {
    let (e, clock) = engine_and_clock(|_| {});
    expect_ok(
        &e,
        r#"{"v":2,"op":"recovery.checkpoint","source":"billing-export","offset":4711}"#,
        &format!(r#"{{"source":"billing-export","offset":"4711","event_id":null,"updated_at_unix":{T0}}}"#),
    );
    clock.advance(5);
    // source_offset wins over offset; the checkpoint is replaced, not merged.
    expect_ok(
        &e,
        r#"{"v":2,"op":"recovery.checkpoint","source":"a-src","source_offset":"x","offset":"y","event_id":9}"#,
        &format!(r#"{{"source":"a-src","offset":"x","event_id":"9","updated_at_unix":{}}}"#, T0 + 5),
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"recovery.checkpoint","source":"billing-export","event_id":"e-1"}"#,
        &format!(r#"{{"source":"billing-export","offset":null,"event_id":"e-1","updated_at_unix":{}}}"#, T0 + 5),
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"recovery.status"}"#,
        &format!(
            r#"{{"checkpoint_count":2,"checkpoints":[{{"source":"a-src","offset":"x","event_id":"9","updated_at_unix":{t}}},{{"source":"billing-export","offset":null,"event_id":"e-1","updated_at_unix":{t}}}]}}"#,
            t = T0 + 5
        ),
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"recovery.status","source":"a-src"}"#,
        &format!(
            r#"{{"checkpoint_count":1,"checkpoints":[{{"source":"a-src","offset":"x","event_id":"9","updated_at_unix":{}}}]}}"#,
            T0 + 5
        ),
    );
    expect_ok(&e, r#"{"v":2,"op":"recovery.status","source":"zzz"}"#, r#"{"checkpoint_count":0,"checkpoints":[]}"#);
    // A non-string source is ignored.
    let v = response(&e, r#"{"v":2,"op":"recovery.status","source":5}"#);
    assert_eq!(v["checkpoint_count"], 2);
    let s = stats(&e);
    assert_eq!(s["recovery_checkpoint_count"], 2);
    assert_eq!(s["recovery_last_checkpoint_unix"], T0 + 5);
}

#[test]
fn recovery_checkpoint_is_written_to_the_data_directory() {
    let (e, dir) = durable();
    send(&e, r#"{"v":2,"op":"recovery.checkpoint","source":"s","offset":1}"#);
    let file = std::fs::read_to_string(dir.path().join("recovery.json")).expect("recovery.json");
    assert!(file.contains("\"s\""), "{file}");
    e.close().unwrap();
    drop(e);
    let (e2, _dir2) = (
        karma_engine::Engine::open(Options {
            wal_fsync: karma_engine::FsyncPolicy::Never,
            ..Options::durable(dir.path())
        })
        .unwrap(),
        (),
    );
    let v = response(&e2, r#"{"v":2,"op":"recovery.status"}"#);
    assert_eq!(v["checkpoint_count"], 1);
    assert_eq!(v["checkpoints"][0]["offset"], "1");
}

#[test]
fn reconciliation_report_feeds_the_stats() {
    let e = engine();
    expect_ok(
        &e,
        r#"{"v":2,"op":"reconciliation.report","checked_points":10,"mismatch_count":2,"absolute_drift":7,"max_abs_delta":5}"#,
        r#""OK""#,
    );
    expect_ok(&e, r#"{"v":2,"op":"reconciliation.report","checked_points":4,"mismatch_count":4}"#, r#""OK""#);
    let v = stats(&e);
    assert_eq!(v["reconciliation_run_count"], 2);
    assert_eq!(v["reconciliation_checked_points"], 14);
    assert_eq!(v["reconciliation_mismatch_count"], 6);
    assert_eq!(v["reconciliation_absolute_drift"], 7);
    assert_eq!(v["reconciliation_last_run_unix"], T0);
    assert_eq!(v["reconciliation_last_checked_points"], 4);
    assert_eq!(v["reconciliation_last_mismatch_count"], 4);
    assert_eq!(v["reconciliation_last_absolute_drift"], 0);
    assert_eq!(v["reconciliation_last_max_abs_delta"], 0);
}

const REPLICATION_STATUS_KEYS: [&str; 26] = [
    "role",
    "wal_enabled",
    "wal_current_lsn",
    "wal_bytes",
    "replayed_lsn",
    "replication_lag_entries",
    "replication_entries_applied",
    "replication_last_received_unix",
    "replication_poll_attempt_count",
    "replication_poll_success_count",
    "replication_poll_error_count",
    "replication_last_poll_attempt_unix",
    "replication_last_poll_success_unix",
    "replication_last_poll_error_unix",
    "replication_last_poll_error",
    "replication_bootstrap_attempt_count",
    "replication_bootstrap_success_count",
    "replication_bootstrap_error_count",
    "replication_last_bootstrap_attempt_unix",
    "replication_last_bootstrap_success_unix",
    "replication_last_bootstrap_error_unix",
    "replication_last_bootstrap_error",
    "last_snapshot_lsn",
    "latest_snapshots",
    "recovery",
    "recovery_checkpoint_count",
];

#[test]
fn replication_status_key_order() {
    let (e, _dir) = durable();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1}"#);
    let raw = raw_response(&e, r#"{"v":2,"op":"replication.status"}"#);
    assert_eq!(object_keys(&raw), REPLICATION_STATUS_KEYS);
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["role"], "master");
    assert_eq!(v["wal_enabled"], true);
    assert_eq!(v["wal_current_lsn"], 1);
    assert_eq!(v["replication_lag_entries"], 0);
    assert_eq!(v["latest_snapshots"], serde_json::json!([]));
    assert_eq!(v["recovery"], serde_json::json!({"checkpoint_count":0,"checkpoints":[]}));
}

#[test]
fn replication_entries_pages_the_wal_in_canonical_form() {
    let (e, _dir) = durable();
    send(&e, r#"{"v":2,"op":"counter.increment","tree":"emails","key":7,"bucket":"2026-03-01","value":3,"token":"t"}"#);
    send(&e, r#"{"v":2,"op":"series.increment","series":"emails","key":8,"bucket":20260301}"#);
    send(&e, r#"{"v":2,"op":"tree.create","series":"other"}"#);
    let raw = raw_response(&e, r#"{"v":2,"op":"replication.entries","after_lsn":0,"limit":2}"#);
    assert_eq!(
        object_keys(&raw),
        [
            "after_lsn",
            "limit",
            "byte_limit",
            "entries_bytes",
            "truncated_by_bytes",
            "count",
            "source_lsn",
            "entries",
            "next_lsn"
        ]
    );
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["after_lsn"], 0);
    assert_eq!(v["limit"], 2);
    assert_eq!(v["byte_limit"], 1_048_576 - 2048);
    assert_eq!(v["truncated_by_bytes"], false);
    assert_eq!(v["count"], 2);
    assert_eq!(v["source_lsn"], 3);
    assert_eq!(v["next_lsn"], 2);
    assert!(raw.contains(
        r#"{"lsn":1,"entry":{"v":2,"op":"counter.increment","series":"emails","key":7,"bucket":20260301,"value":3}}"#
    ), "{raw}");
    assert!(raw.contains(
        r#"{"lsn":2,"entry":{"v":2,"op":"counter.increment","series":"emails","key":8,"bucket":20260301,"value":1}}"#
    ), "{raw}");
    let v = response(&e, r#"{"v":2,"op":"replication.entries","after_lsn":2}"#);
    assert_eq!(v["limit"], 1000);
    assert_eq!(v["count"], 1);
    assert_eq!(v["next_lsn"], 3);
    assert_eq!(v["entries"][0]["entry"]["op"], "tree.create");
    // Beyond the end: empty page, next_lsn = after_lsn.
    let v = response(&e, r#"{"v":2,"op":"replication.entries","after_lsn":50}"#);
    assert_eq!(v["count"], 0);
    assert_eq!(v["next_lsn"], 50);
    assert_eq!(v["entries"], serde_json::json!([]));
}

#[test]
fn replication_entries_after_a_full_snapshot_is_a_gap() {
    let (e, _dir) = durable();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1}"#);
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1}"#);
    expect_ok(&e, r#"{"v":2,"op":"snapshot.create_all"}"#, r#""OK""#);
    expect_err(
        &e,
        r#"{"v":2,"op":"replication.entries","after_lsn":1}"#,
        "replication_gap",
        "Requested WAL after_lsn 1 is older than snapshot LSN 2; bootstrap from snapshot",
    );
    let v = response(&e, r#"{"v":2,"op":"replication.entries","after_lsn":2}"#);
    assert_eq!(v["count"], 0);
}
