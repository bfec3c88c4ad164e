//! Every op of spec/protocol.md §8.1 driven through `Engine::handle_line`, with
//! exact response lines (key order included).

mod support;

use karma_engine::{Options, Role, Session};
use support::*;

// ------------------------------------------------------------------ op table

/// Every op name of §8.1 (55, aliases included), the internal command name,
/// whether it is read-only, and a minimal well-formed field list.
const OPS: &[(&str, &str, bool, &str)] = &[
    ("system.ping", "ping", true, ""),
    ("system.health", "health", true, ""),
    ("system.stats", "stats", true, ""),
    ("system.metrics", "metrics", true, ""),
    ("tree.list", "trees", true, ""),
    ("tree.info", "tree_info", true, r#","series":"s""#),
    ("tree.keys", "tree_keys", true, r#","series":"s""#),
    ("tree.summary", "tree_summary", true, r#","series":"s""#),
    ("tree.top", "tree_top", true, r#","series":"s""#),
    ("tree.series", "find", true, r#","series":"s","range":{"from":20260101,"to":20260102}"#),
    ("counter.sum", "sum", true, r#","series":"s","key":1"#),
    ("series.sum", "sum", true, r#","series":"s","key":1"#),
    ("counter.batch_sum", "batch_sum", true, r#","series":"s","keys":[1]"#),
    ("series.batch_sum", "batch_sum", true, r#","series":"s","keys":[1]"#),
    ("counter.multi_sum", "multi_sum", true, r#","items":[{"series":"s","key":1}]"#),
    ("counter.series", "find", true, r#","series":"s","key":1,"range":{"from":20260101,"to":20260102}"#),
    ("series.points", "find", true, r#","series":"s","key":1,"range":{"from":20260101,"to":20260102}"#),
    ("snapshot.list", "dumps", true, ""),
    ("snapshot.info", "snapshot_info", true, ""),
    ("snapshot.fetch", "snapshot_fetch", true, r#","file":"1_s.tree""#),
    ("snapshot.fetch_chunk", "snapshot_fetch_chunk", true, r#","file":"1_s.tree""#),
    ("snapshot.verify", "verify", true, ""),
    ("recovery.status", "recovery_status", true, ""),
    ("replication.status", "replication_status", true, ""),
    ("replication.entries", "replication_entries", true, r#","after_lsn":0"#),
    ("idempotency.snapshot_fetch_chunk", "idempotency_snapshot_fetch_chunk", true, ""),
    ("tree.create", "create", false, r#","series":"s""#),
    ("tree.drop", "drop", false, r#","series":"s""#),
    ("tree.reset", "reset", false, r#","series":"s""#),
    ("tree.delete_range", "delete", false, r#","series":"s","range":{"from":20260101,"to":20260102}"#),
    ("system.compact", "compact", false, ""),
    ("series.compact", "compact", false, r#","series":"s""#),
    ("tree.compact", "compact", false, r#","series":"s""#),
    ("counter.increment", "increment", false, r#","series":"s","key":1"#),
    ("series.increment", "increment", false, r#","series":"s","key":1"#),
    ("counter.decrement", "decrement", false, r#","series":"s","key":1"#),
    ("series.batch_add", "batch_add", false, r#","series":"s","items":[[1,20260101,1]]"#),
    ("counter.batch_increment", "batch_add", false, r#","series":"s","items":[[1,20260101,1]]"#),
    ("series.batch_set", "batch_set", false, r#","series":"s","items":[[1,20260101,1]]"#),
    ("counter.reset", "reset", false, r#","series":"s","key":1"#),
    ("counter.batch_reset", "batch_reset", false, r#","series":"s","keys":[1]"#),
    ("counter.delete_range", "delete", false, r#","series":"s","key":1,"range":{"from":20260101,"to":20260102}"#),
    (
        "counter.batch_delete_range",
        "batch_delete_range",
        false,
        r#","series":"s","keys":[1],"range":{"from":20260101,"to":20260102}"#,
    ),
    ("series.delete_before", "delete_before", false, r#","series":"s","before":20260101"#),
    ("tree.delete_before", "delete_before", false, r#","series":"s","before":20260101"#),
    ("ingest.begin", "ingest_begin", false, r#","stream_id":"st-new","mode":"add""#),
    ("ingest.chunk", "ingest_chunk", false, r#","stream_id":"st","series":"s","chunk_seq":1,"items":[]"#),
    ("ingest.commit", "ingest_commit", false, r#","stream_id":"st""#),
    ("ingest.abort", "ingest_abort", false, r#","stream_id":"st""#),
    ("idempotency.prune", "idempotency_prune", false, r#","before":0"#),
    ("recovery.checkpoint", "recovery_checkpoint", false, r#","source":"src","offset":1"#),
    ("snapshot.create", "dump", false, r#","series":"s""#),
    ("snapshot.create_all", "dump_all", false, ""),
    ("snapshot.load", "load", false, r#","file":"1_s.tree""#),
    ("reconciliation.report", "reconciliation_report", false, r#","checked_points":1,"mismatch_count":0"#),
];

fn line(op: &str, fields: &str, extra: &str) -> String {
    format!(r#"{{"v":2,"op":"{op}"{fields}{extra}}}"#)
}

#[test]
fn the_op_table_has_all_55_names_and_none_is_unknown() {
    assert_eq!(OPS.len(), 55);
    let mut names: Vec<&str> = OPS.iter().map(|o| o.0).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 55, "duplicate op names in the table");
    let e = engine();
    for (op, _, _, _) in OPS {
        // A bare request may fail its field checks, but is never an unknown op.
        let got = send(&e, &line(op, "", ""));
        assert!(!got.contains("unknown_command"), "{op}: {got}");
    }
    for bogus in ["system.verify", "counter.batch_decrement", "counter.set", "series.decrement", "tree.rename"] {
        expect_err(&e, &line(bogus, "", ""), "unknown_command", &format!("Unknown op {bogus}"));
    }
}

#[test]
fn every_op_with_its_minimal_fields_runs_on_a_durable_master() {
    let (e, _dir) = durable();
    for (op, _, _, fields) in OPS {
        let got = send(&e, &line(op, fields, ""));
        // Only state-dependent failures are acceptable here (missing series,
        // stream or snapshot file); never a field or auth error.
        if got.contains("\"success\":false") {
            assert!(got.contains("\"not_found\""), "{op}: {got}");
        }
    }
}

// ------------------------------------------------------------------ documented session

/// The example session of docs/protocol.md, byte for byte (the answers there
/// are shown without their `\r\n`), so the reference cannot drift.
#[test]
fn protocol_reference_example_session_replays_byte_for_byte() {
    let e = engine();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{path}: {err}"));
    let start = doc.find("## Example session").expect("docs/protocol.md has an example session");
    let block = &doc[start..];
    let block = &block[block.find("```text").expect("its text block") + 7..];
    let block = &block[..block.find("```").expect("the end of its text block")];
    let mut pairs = 0;
    let mut lines = block.lines().filter(|l| !l.trim().is_empty());
    while let Some(req) = lines.next() {
        let req = req.strip_prefix("→ ").unwrap_or_else(|| panic!("request line: {req}"));
        let resp = lines.next().and_then(|l| l.strip_prefix("← ")).unwrap_or_else(|| panic!("no answer to {req}"));
        assert_eq!(send(&e, req), resp, "request: {req}");
        pairs += 1;
    }
    assert!(pairs >= 20, "the example session has only {pairs} exchanges");
}

// ------------------------------------------------------------------ system.*

#[test]
fn system_ping() {
    let e = engine();
    expect_ok(&e, r#"{"v":2,"op":"system.ping"}"#, r#""pong""#);
    // Unknown fields are ignored; duplicate keys: the last wins.
    expect_ok(&e, r#"{"v":3,"op":"system.ping","v":2,"extra":[1,{"a":null}]}"#, r#""pong""#);
}

#[test]
fn system_health_in_memory_and_durable() {
    let e = engine();
    let raw = raw_response(&e, r#"{"v":2,"op":"system.health"}"#);
    assert_eq!(object_keys(&raw), ["status", "uptime_seconds", "role", "wal_enabled"]);
    assert!(raw.starts_with(r#"{"status":"ok","uptime_seconds":"#), "{raw}");
    assert!(raw.ends_with(r#","role":"master","wal_enabled":false}"#), "{raw}");
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert!(v["uptime_seconds"].is_f64(), "{raw}");

    let (d, _dir) = durable();
    let raw = raw_response(&d, r#"{"v":2,"op":"system.health"}"#);
    assert!(raw.ends_with(r#","role":"master","wal_enabled":true}"#), "{raw}");

    let s = engine_with(|o| o.role = Role::Slave);
    let raw = raw_response(&s, r#"{"v":2,"op":"system.health"}"#);
    assert!(raw.ends_with(r#","role":"slave","wal_enabled":false}"#), "{raw}");
}

const STATS_KEYS: [&str; 64] = [
    "uptime_seconds",
    "trees",
    "keys",
    "dump_count",
    "role",
    "wal_enabled",
    "wal_bytes",
    "wal_current_lsn",
    "replication_replayed_lsn",
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
    "memory_bytes",
    "command_count",
    "error_count",
    "query_timeout_count",
    "batch_read_count",
    "batch_read_key_count",
    "batch_write_count",
    "batch_write_item_count",
    "retention_count",
    "compact_count",
    "reconciliation_run_count",
    "reconciliation_checked_points",
    "reconciliation_mismatch_count",
    "reconciliation_absolute_drift",
    "reconciliation_last_run_unix",
    "reconciliation_last_checked_points",
    "reconciliation_last_mismatch_count",
    "reconciliation_last_absolute_drift",
    "reconciliation_last_max_abs_delta",
    "recovery_checkpoint_count",
    "recovery_last_checkpoint_unix",
    "latency_ms_avg",
    "latency_ms_last",
    "ingest_active_streams",
    "ingest_chunks_applied",
    "ingest_chunks_skipped",
    "ingest_chunks_rejected",
    "ingest_items_applied",
    "ingest_latency_ms_last",
    "ingest_latency_ms_avg",
    "idempotency_record_count",
    "idempotency_hits",
    "idempotency_conflicts",
    "idempotency_pruned",
    "idempotency_write_count",
    "idempotency_write_latency_ms_last",
    "idempotency_write_latency_ms_avg",
    "idempotency_committed_stream_count",
];

fn stats(e: &karma_engine::Engine) -> serde_json::Value {
    response(e, r#"{"v":2,"op":"system.stats"}"#)
}

#[test]
fn system_stats_has_64_keys_in_order_with_their_types() {
    let e = engine();
    let raw = raw_response(&e, r#"{"v":2,"op":"system.stats"}"#);
    assert_eq!(object_keys(&raw), STATS_KEYS);
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    for k in [
        "uptime_seconds",
        "latency_ms_avg",
        "latency_ms_last",
        "ingest_latency_ms_last",
        "ingest_latency_ms_avg",
        "idempotency_write_latency_ms_last",
        "idempotency_write_latency_ms_avg",
    ] {
        assert!(v[k].is_number(), "{k}: {raw}");
    }
    assert_eq!(v["role"], "master");
    assert_eq!(v["wal_enabled"], false);
    assert!(v["replication_last_poll_error"].is_null());
    assert!(v["replication_last_bootstrap_error"].is_null());
    for k in STATS_KEYS {
        if !matches!(k, "role" | "wal_enabled" | "replication_last_poll_error" | "replication_last_bootstrap_error") {
            assert!(v[k].is_number(), "{k} should be a number: {raw}");
        }
    }
}

#[test]
fn system_stats_counts_series_keys_and_batches() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"a","key":1,"bucket":20260301}"#);
    send(&e, r#"{"v":2,"op":"counter.decrement","series":"a","key":2,"bucket":20260301}"#); // empty counter
    send(&e, r#"{"v":2,"op":"tree.create","series":"b"}"#);
    send(&e, r#"{"v":2,"op":"series.batch_add","series":"b","items":[[1,20260301,1],[2,20260301,1]]}"#);
    send(&e, r#"{"v":2,"op":"counter.batch_sum","series":"b","keys":[1,2,3]}"#);
    send(&e, r#"{"v":2,"op":"counter.multi_sum","items":[{"series":"b","key":1}]}"#);
    send(&e, r#"{"v":2,"op":"nope"}"#);
    send(&e, r#"{"v":2,"op":"series.delete_before","series":"b","before":1}"#);
    send(&e, r#"{"v":2,"op":"series.compact","series":"b"}"#);
    send(&e, r#"{"v":2,"op":"system.compact"}"#);
    let v = stats(&e);
    assert_eq!(v["trees"], 2);
    // a/1, b/1, b/2 (the empty counter a/2 went with system.compact).
    assert_eq!(v["keys"], 3);
    assert_eq!(v["batch_read_count"], 2);
    assert_eq!(v["batch_read_key_count"], 4);
    assert_eq!(v["batch_write_count"], 1);
    assert_eq!(v["batch_write_item_count"], 2);
    assert_eq!(v["retention_count"], 1);
    assert_eq!(v["compact_count"], 2);
    assert_eq!(v["error_count"], 1);
    // Ten requests before this one (command_count counts the stats call itself
    // or not; both are fine as long as it is at least the ten above).
    assert!(v["command_count"].as_u64().unwrap() >= 10, "{v}");
    assert_eq!(v["dump_count"], 0);
}

const METRIC_NAMES: &[(&str, &str)] = &[
    ("karma_uptime_seconds", "gauge"),
    ("karma_trees", "gauge"),
    ("karma_keys", "gauge"),
    ("karma_dumps", "gauge"),
    ("karma_role", "gauge"),
    ("karma_wal_bytes", "gauge"),
    ("karma_wal_current_lsn", "gauge"),
    ("karma_replication_replayed_lsn", "gauge"),
    ("karma_replication_lag_entries", "gauge"),
    ("karma_replication_entries_applied_total", "counter"),
    ("karma_replication_last_received_unix", "gauge"),
    ("karma_replication_poll_attempts_total", "counter"),
    ("karma_replication_poll_success_total", "counter"),
    ("karma_replication_poll_errors_total", "counter"),
    ("karma_replication_last_poll_attempt_unix", "gauge"),
    ("karma_replication_last_poll_success_unix", "gauge"),
    ("karma_replication_last_poll_error_unix", "gauge"),
    ("karma_replication_bootstrap_attempts_total", "counter"),
    ("karma_replication_bootstrap_success_total", "counter"),
    ("karma_replication_bootstrap_errors_total", "counter"),
    ("karma_replication_last_bootstrap_attempt_unix", "gauge"),
    ("karma_replication_last_bootstrap_success_unix", "gauge"),
    ("karma_replication_last_bootstrap_error_unix", "gauge"),
    ("karma_memory_bytes", "gauge"),
    ("karma_commands_total", "counter"),
    ("karma_errors_total", "counter"),
    ("karma_query_timeouts_total", "counter"),
    ("karma_batch_reads_total", "counter"),
    ("karma_batch_read_keys_total", "counter"),
    ("karma_batch_writes_total", "counter"),
    ("karma_batch_write_items_total", "counter"),
    ("karma_retention_operations_total", "counter"),
    ("karma_compactions_total", "counter"),
    ("karma_reconciliation_runs_total", "counter"),
    ("karma_reconciliation_checked_points_total", "counter"),
    ("karma_reconciliation_mismatches_total", "counter"),
    ("karma_reconciliation_absolute_drift_total", "counter"),
    ("karma_reconciliation_last_run_unix", "gauge"),
    ("karma_reconciliation_last_checked_points", "gauge"),
    ("karma_reconciliation_last_mismatches", "gauge"),
    ("karma_reconciliation_last_absolute_drift", "gauge"),
    ("karma_reconciliation_last_max_abs_delta", "gauge"),
    ("karma_recovery_checkpoints", "gauge"),
    ("karma_recovery_last_checkpoint_unix", "gauge"),
    ("karma_command_latency_ms", "gauge"),
    ("karma_command_latency_ms_average", "gauge"),
    ("karma_ingest_active_streams", "gauge"),
    ("karma_ingest_chunks_applied_total", "counter"),
    ("karma_ingest_chunks_skipped_total", "counter"),
    ("karma_ingest_chunks_rejected_total", "counter"),
    ("karma_ingest_items_applied_total", "counter"),
    ("karma_ingest_chunk_latency_ms", "gauge"),
    ("karma_ingest_chunk_latency_ms_average", "gauge"),
    ("karma_idempotency_records", "gauge"),
    ("karma_idempotency_hits_total", "counter"),
    ("karma_idempotency_conflicts_total", "counter"),
    ("karma_idempotency_pruned_total", "counter"),
    ("karma_idempotency_writes_total", "counter"),
    ("karma_idempotency_write_latency_ms", "gauge"),
    ("karma_idempotency_write_latency_ms_average", "gauge"),
    ("karma_idempotency_committed_streams", "gauge"),
];

#[test]
fn system_metrics_is_prometheus_text_with_every_name_in_order() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"a","key":1,"bucket":20260301}"#);
    let v = response(&e, r#"{"v":2,"op":"system.metrics"}"#);
    let text = v.as_str().expect("metrics is a JSON string");
    assert!(text.ends_with('\n'));
    assert!(!text.contains("# HELP"));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), METRIC_NAMES.len() * 2, "{text}");
    for (i, (name, kind)) in METRIC_NAMES.iter().enumerate() {
        assert_eq!(lines[2 * i], format!("# TYPE {name} {kind}"));
        let sample = lines[2 * i + 1];
        if *name == "karma_role" {
            assert_eq!(sample, r#"karma_role{role="master"} 1"#);
        } else {
            let (n, value) = sample.split_once(' ').unwrap_or_else(|| panic!("sample: {sample}"));
            assert_eq!(n, *name);
            value.parse::<f64>().unwrap_or_else(|_| panic!("value of {name}: {value}"));
        }
    }
    assert!(text.contains("\nkarma_trees 1\n"), "{text}");
    assert!(text.contains("\nkarma_keys 1\n"), "{text}");
}

// ------------------------------------------------------------------ counter writes

#[test]
fn counter_increment_answers_the_amount_and_creates_series_and_counter() {
    let e = engine();
    expect_ok(&e, r#"{"v":2,"op":"counter.increment","series":"emails","key":7,"bucket":"2026-03-01","value":3}"#, "3");
    expect_ok(&e, r#"{"v":2,"op":"series.increment","tree":"emails","key":7,"bucket":20260301}"#, "1");
    // `date` wins over `bucket`; `granularity` is ignored.
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"emails","key":7,"date":20260302,"bucket":20260303,"value":5,"granularity":"hour"}"#,
        "5",
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["emails"]"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.series","series":"emails","key":7,"range":{"from":20260301,"to":20260303}}"#,
        r#"{"20260301":4,"20260302":5}"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"emails","key":7}"#, "9");
}

#[test]
fn counter_increment_without_bucket_uses_today_of_the_clock() {
    let (e, clock) = engine_and_clock(|_| {});
    expect_ok(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1}"#, "1");
    clock.advance(86_400);
    expect_ok(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"value":2}"#, "2");
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.series","series":"s","key":1,"range":{"from":20260501,"to":20260531}}"#,
        r#"{"20260528":1,"20260529":2}"#,
    );
}

#[test]
fn counter_increment_accepts_any_u64_bucket_and_loose_date_strings() {
    let e = engine();
    let cases = [
        ("0", 0u64),
        ("1", 1),
        ("20261399", 20261399),
        (r#""2026-5-5""#, 202655),
        (r#""20-26-0505""#, 20260505),
        ("9223372036854775807", I64_MAX),
        (r#""9223372036854775807""#, I64_MAX),
    ];
    for (key, (bucket, stored)) in cases.into_iter().enumerate() {
        expect_ok(
            &e,
            &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":{key},"bucket":{bucket}}}"#),
            "1",
        );
        expect_ok(&e, &format!(r#"{{"v":2,"op":"counter.sum","series":"s","key":{key}}}"#), "1");
        // Stored under the integer bucket: decrementing that bucket empties it.
        send(&e, &format!(r#"{{"v":2,"op":"counter.decrement","series":"s","key":{key},"bucket":{stored}}}"#));
        expect_ok(&e, &format!(r#"{{"v":2,"op":"counter.sum","series":"s","key":{key}}}"#), "0");
    }
    // A non-date bucket that lies numerically inside a range is included.
    send(&e, r#"{"v":2,"op":"counter.increment","series":"t","key":1,"bucket":20260199}"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.series","series":"t","key":1,"range":{"from":20260101,"to":20260201}}"#,
        r#"{"20260199":1}"#,
    );
}

#[test]
fn counter_decrement_floors_at_zero_and_answers_the_requested_amount() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260301,"value":2}"#);
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260302,"value":10}"#);
    expect_ok(&e, r#"{"v":2,"op":"counter.decrement","series":"s","key":1,"bucket":20260301,"value":5}"#, "5");
    expect_ok(&e, r#"{"v":2,"op":"counter.decrement","series":"s","key":1,"bucket":20260302,"value":3}"#, "3");
    // A missing bucket: nothing changes.
    expect_ok(&e, r#"{"v":2,"op":"counter.decrement","series":"s","key":1,"bucket":20260303}"#, "1");
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.series","series":"s","key":1,"range":{"from":20260301,"to":20260331}}"#,
        r#"{"20260302":7}"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, "7");
    // Decrement of exactly the value removes the bucket.
    expect_ok(&e, r#"{"v":2,"op":"counter.decrement","series":"s","key":1,"bucket":20260302,"value":7}"#, "7");
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.series","series":"s","key":1,"range":{"from":20260301,"to":20260331}}"#,
        "{}",
    );
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, "0");
}

#[test]
fn counter_decrement_creates_the_series_and_an_empty_counter() {
    let e = engine();
    expect_ok(&e, r#"{"v":2,"op":"counter.decrement","series":"d","key":4,"bucket":20260301}"#, "1");
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["d"]"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"d"}"#,
        r#"{"tree":"d","key_count":1,"bucket_count":0,"total":0,"branches":9}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.keys","series":"d","limit":5}"#,
        r#"{"tree":"d","limit":5,"cursor":null,"next_cursor":null,"keys":[{"key":4,"total":0}]}"#,
    );
}

#[test]
fn counter_reset_keeps_an_empty_counter_and_creates_the_series() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260301,"value":3}"#);
    expect_ok(&e, r#"{"v":2,"op":"counter.reset","series":"s","key":1}"#, r#""OK""#);
    expect_ok(&e, r#"{"v":2,"op":"counter.reset","series":"s","key":2}"#, r#""OK""#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        r#"{"tree":"s","key_count":1,"bucket_count":0,"total":0,"branches":9}"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"counter.reset","series":"new","key":2}"#, r#""OK""#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"new"}"#,
        r#"{"tree":"new","key_count":0,"bucket_count":0,"total":0,"branches":9}"#,
    );
}

#[test]
fn counter_batch_reset_counts_reset_and_missing() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"series.batch_add","series":"s","items":[[7,20260301,1],[8,20260301,2]]}"#);
    send(&e, r#"{"v":2,"op":"counter.decrement","series":"s","key":9,"bucket":20260301}"#); // empty counter
    expect_ok(&e, r#"{"v":2,"op":"counter.batch_reset","series":"s","keys":[7,8,999]}"#, r#"{"reset":2,"missing":1}"#);
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":7,"bucket":20260301}"#);
    // Duplicates count per occurrence; an empty counter is missing.
    expect_ok(&e, r#"{"v":2,"op":"counter.batch_reset","series":"s","keys":[7,7,9,8]}"#, r#"{"reset":1,"missing":3}"#);
    expect_ok(&e, r#"{"v":2,"op":"counter.batch_reset","series":"s","keys":[]}"#, r#"{"reset":0,"missing":0}"#);
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.batch_reset","series":"nope","keys":[1]}"#,
        "not_found",
        r#"Tree "nope" not found"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["s"]"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        r#"{"tree":"s","key_count":3,"bucket_count":0,"total":0,"branches":9}"#,
    );
}

#[test]
fn counter_delete_range_answers_true_and_keeps_the_counter() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,20260301,1],[1,20260302,2],[1,20260310,4]]}"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.delete_range","series":"s","key":1,"range":{"from":20260301,"to":20260302}}"#,
        "true",
    );
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, "4");
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.delete_range","series":"s","key":1,"range":{"from":20260310,"to":20260310}}"#,
        "true",
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        r#"{"tree":"s","key_count":1,"bucket_count":0,"total":0,"branches":9}"#,
    );
    // Missing key: no-op; missing series: created.
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.delete_range","series":"t","key":1,"range":{"from":20260310,"to":20260310}}"#,
        "true",
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"t"}"#,
        r#"{"tree":"t","key_count":0,"bucket_count":0,"total":0,"branches":9}"#,
    );
}

#[test]
fn counter_batch_delete_range_counts_deleted_and_missing() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,20260301,1],[2,20260401,2],[3,20260301,3]]}"#);
    send(&e, r#"{"v":2,"op":"counter.decrement","series":"s","key":4,"bucket":20260301}"#); // empty counter
                                                                                            // 1: deleted; 2: buckets but none in range (neither); 4: empty → missing; 5: missing.
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.batch_delete_range","series":"s","keys":[1,2,4,5],"range":{"from":20260301,"to":20260331}}"#,
        r#"{"deleted":1,"missing":2}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.batch_sum","series":"s","keys":[1,2,3]}"#,
        r#"[{"key":1,"value":0},{"key":2,"value":2},{"key":3,"value":3}]"#,
    );
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.batch_delete_range","series":"nope","keys":[1],"range":{"from":20260301,"to":20260331}}"#,
        "not_found",
        r#"Tree "nope" not found"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["s"]"#);
}

#[test]
fn series_batch_add_applies_all_items_and_answers_applied_and_total() {
    let e = engine();
    expect_ok(
        &e,
        r#"{"v":2,"op":"series.batch_add","series":"emails","items":[[7,20260301,2],[8,20260301,3],[7,20260301,1]]}"#,
        r#"{"applied":3,"total":6}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.batch_increment","tree":"emails","items":[[9,20260302,4]],"granularity":"day"}"#,
        r#"{"applied":1,"total":4}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"emails"}"#,
        r#"{"tree":"emails","key_count":3,"bucket_count":3,"total":10,"branches":9}"#,
    );
    // `[]` still creates the series.
    expect_ok(&e, r#"{"v":2,"op":"series.batch_add","series":"empty","items":[]}"#, r#"{"applied":0,"total":0}"#);
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["emails","empty"]"#);
}

#[test]
fn series_batch_set_sets_deletes_and_creates_empty_counters() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,20260301,5],[2,20260301,5]]}"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"series.batch_set","series":"s","items":[[1,20260301,9],[2,20260301,0],[3,20260301,0],[1,20260302,1],[1,20260302,7]]}"#,
        r#"{"applied":5}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.series","series":"s","range":{"from":20260301,"to":20260302}}"#,
        r#"{"1":{"20260301":9,"20260302":7},"2":{},"3":{}}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        r#"{"tree":"s","key_count":3,"bucket_count":2,"total":16,"branches":9}"#,
    );
    // `[]` does not create the series.
    expect_ok(&e, r#"{"v":2,"op":"series.batch_set","series":"none","items":[]}"#, r#"{"applied":0}"#);
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["s"]"#);
}

// ------------------------------------------------------------------ counter reads

#[test]
fn counter_sum_total_range_missing_key_and_missing_series() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"series.batch_add","series":"s","items":[[7,20260301,1],[7,20260315,2],[7,20260401,4]]}"#);
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":7}"#, "7");
    expect_ok(&e, r#"{"v":2,"op":"series.sum","tree":"s","key":7,"range":{"from":20260301,"to":20260331}}"#, "3");
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":7,"range":{"from":20260315,"to":20260401}}"#, "6");
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":8}"#, "0");
    expect_err(&e, r#"{"v":2,"op":"counter.sum","series":"x","key":8}"#, "not_found", r#"Tree "x" not found"#);
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.sum","series":"x","key":8,"range":{"from":20260301,"to":20260301}}"#,
        "not_found",
        r#"Tree "x" not found"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["s"]"#);
    // 366 days is the widest range.
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":7,"range":{"from":20260101,"to":20270102}}"#, "7");
}

#[test]
fn counter_series_lists_buckets_in_insertion_order() {
    let e = engine();
    for b in [20260310, 20260305, 20260307] {
        send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":{b}}}"#));
    }
    let range = r#""range":{"from":20260301,"to":20260331}"#;
    expect_ok(
        &e,
        &format!(r#"{{"v":2,"op":"counter.series","series":"s","key":1,{range}}}"#),
        r#"{"20260310":1,"20260305":1,"20260307":1}"#,
    );
    // Removed and re-created: moves to the end.
    send(&e, r#"{"v":2,"op":"counter.decrement","series":"s","key":1,"bucket":20260310}"#);
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260310,"value":2}"#);
    expect_ok(
        &e,
        &format!(r#"{{"v":2,"op":"series.points","series":"s","key":1,{range}}}"#),
        r#"{"20260305":1,"20260307":1,"20260310":2}"#,
    );
    // Only in-range buckets; missing key → {}; missing series → not_found.
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.series","series":"s","key":1,"range":{"from":20260306,"to":20260310}}"#,
        r#"{"20260307":1,"20260310":2}"#,
    );
    expect_ok(&e, &format!(r#"{{"v":2,"op":"counter.series","series":"s","key":2,{range}}}"#), "{}");
    expect_err(
        &e,
        &format!(r#"{{"v":2,"op":"counter.series","series":"z","key":2,{range}}}"#),
        "not_found",
        r#"Tree "z" not found"#,
    );
}

#[test]
fn counter_batch_sum_keeps_request_order_and_duplicates() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"series.batch_add","series":"emails","items":[[7,20260301,3],[7,20260401,1]]}"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.batch_sum","series":"emails","keys":[9,7,9]}"#,
        r#"[{"key":9,"value":0},{"key":7,"value":4},{"key":9,"value":0}]"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"series.batch_sum","series":"emails","keys":[7],"range":{"from":20260301,"to":20260331}}"#,
        r#"[{"key":7,"value":3}]"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"counter.batch_sum","series":"emails","keys":[]}"#, "[]");
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.batch_sum","series":"no","keys":[]}"#,
        "not_found",
        r#"Tree "no" not found"#,
    );
}

#[test]
fn counter_multi_sum_across_series() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"a","key":1,"bucket":20260301,"value":2}"#);
    send(&e, r#"{"v":2,"op":"counter.increment","series":"b","key":1,"bucket":20260302,"value":3}"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.multi_sum","items":[{"series":"b","key":1},{"series":"a","key":1},{"series":"a","key":5}]}"#,
        r#"[{"series":"b","key":1,"value":3},{"series":"a","key":1,"value":2},{"series":"a","key":5,"value":0}]"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.multi_sum","items":[{"series":"b","key":1},{"series":"a","key":1}],"range":{"from":20260302,"to":20260302}}"#,
        r#"[{"series":"b","key":1,"value":3},{"series":"a","key":1,"value":0}]"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"counter.multi_sum","items":[]}"#, "[]");
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.multi_sum","items":[{"series":"a","key":1},{"series":"x","key":1},{"series":"y","key":1}]}"#,
        "not_found",
        r#"Tree "x" not found"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["a","b"]"#);
}

// ------------------------------------------------------------------ tree.*

#[test]
fn tree_create_list_and_drop() {
    let e = engine();
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
    expect_ok(&e, r#"{"v":2,"op":"tree.create","series":"b"}"#, r#""OK""#);
    send(&e, r#"{"v":2,"op":"counter.increment","series":"a","key":1,"bucket":20260301}"#);
    expect_ok(&e, r#"{"v":2,"op":"tree.create","tree":"c"}"#, r#""OK""#);
    // Re-creating an existing series leaves it untouched.
    expect_ok(&e, r#"{"v":2,"op":"tree.create","series":"a"}"#, r#""OK""#);
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"a","key":1}"#, "1");
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["b","a","c"]"#);
    expect_ok(&e, r#"{"v":2,"op":"tree.drop","series":"a"}"#, r#""OK""#);
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["b","c"]"#);
    expect_err(&e, r#"{"v":2,"op":"tree.drop","series":"a"}"#, "not_found", r#"Tree "a" not found"#);
    expect_err(&e, r#"{"v":2,"op":"counter.sum","series":"a","key":1}"#, "not_found", r#"Tree "a" not found"#);
    // A re-created series starts empty.
    send(&e, r#"{"v":2,"op":"tree.create","series":"a"}"#);
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"a","key":1}"#, "0");
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["b","c","a"]"#);
}

#[test]
fn tree_info_counts_keys_buckets_and_total() {
    let e = engine();
    send(
        &e,
        r#"{"v":2,"op":"series.batch_add","series":"emails","items":[[7,20260301,2],[8,20260301,3],[7,20260302,1]]}"#,
    );
    send(&e, r#"{"v":2,"op":"counter.decrement","series":"emails","key":12,"bucket":20260301}"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"emails"}"#,
        r#"{"tree":"emails","key_count":3,"bucket_count":3,"total":6,"branches":9}"#,
    );
    expect_err(&e, r#"{"v":2,"op":"tree.info","series":"x"}"#, "not_found", r#"Tree "x" not found"#);
}

#[test]
fn tree_keys_paginates_ascending_with_an_exclusive_cursor() {
    let e = engine();
    for k in [14, 7, 12, 8, 3] {
        send(
            &e,
            &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":{k},"bucket":20260301,"value":{k}}}"#),
        );
    }
    send(&e, r#"{"v":2,"op":"counter.decrement","series":"s","key":5,"bucket":20260301}"#); // empty counter
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.keys","series":"s","limit":2}"#,
        r#"{"tree":"s","limit":2,"cursor":null,"next_cursor":5,"keys":[{"key":3,"total":3},{"key":5,"total":0}]}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.keys","series":"s","limit":2,"cursor":5}"#,
        r#"{"tree":"s","limit":2,"cursor":5,"next_cursor":8,"keys":[{"key":7,"total":7},{"key":8,"total":8}]}"#,
    );
    // Exactly the remaining keys: no next cursor.
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.keys","series":"s","limit":2,"cursor":8}"#,
        r#"{"tree":"s","limit":2,"cursor":8,"next_cursor":null,"keys":[{"key":12,"total":12},{"key":14,"total":14}]}"#,
    );
    // A cursor need not be an existing key; null means absent.
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.keys","series":"s","limit":10,"cursor":13}"#,
        r#"{"tree":"s","limit":10,"cursor":13,"next_cursor":null,"keys":[{"key":14,"total":14}]}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.keys","series":"s","limit":10,"cursor":100}"#,
        r#"{"tree":"s","limit":10,"cursor":100,"next_cursor":null,"keys":[]}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.keys","series":"s","limit":1,"cursor":null}"#,
        r#"{"tree":"s","limit":1,"cursor":null,"next_cursor":3,"keys":[{"key":3,"total":3}]}"#,
    );
    // Walking all pages visits every key once.
    let mut cursor: Option<u64> = None;
    let mut seen = Vec::new();
    loop {
        let c = cursor.map_or("null".to_string(), |c| c.to_string());
        let v = response(&e, &format!(r#"{{"v":2,"op":"tree.keys","series":"s","limit":4,"cursor":{c}}}"#));
        seen.extend(v["keys"].as_array().unwrap().iter().map(|k| k["key"].as_u64().unwrap()));
        match v["next_cursor"].as_u64() {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, [3, 5, 7, 8, 12, 14]);
}

#[test]
fn tree_keys_on_an_empty_series_and_a_missing_one() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"tree.create","series":"s"}"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.keys","series":"s","limit":3}"#,
        r#"{"tree":"s","limit":3,"cursor":null,"next_cursor":null,"keys":[]}"#,
    );
    expect_err(&e, r#"{"v":2,"op":"tree.keys","series":"x","limit":3}"#, "not_found", r#"Tree "x" not found"#);
}

#[test]
fn tree_summary_with_and_without_range() {
    let e = engine();
    send(
        &e,
        r#"{"v":2,"op":"series.batch_add","series":"emails","items":[[7,20260301,2],[8,20260301,4],[7,20260305,1],[9,20260310,5]]}"#,
    );
    send(&e, r#"{"v":2,"op":"counter.decrement","series":"emails","key":12,"bucket":20260301}"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.summary","series":"emails"}"#,
        r#"{"tree":"emails","total":12,"active_keys":4,"bucket_count":4}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.summary","series":"emails","range":{"from":20260301,"to":20260301}}"#,
        r#"{"tree":"emails","range_from":20260301,"range_to":20260301,"total":6,"active_keys":2,"bucket_count":2}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.summary","series":"emails","range":{"from":20260301,"to":20260305}}"#,
        r#"{"tree":"emails","range_from":20260301,"range_to":20260305,"total":7,"active_keys":2,"bucket_count":3}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.summary","series":"emails","range":{"from":20260401,"to":20260402}}"#,
        r#"{"tree":"emails","range_from":20260401,"range_to":20260402,"total":0,"active_keys":0,"bucket_count":0}"#,
    );
    expect_err(&e, r#"{"v":2,"op":"tree.summary","series":"x"}"#, "not_found", r#"Tree "x" not found"#);
}

#[test]
fn tree_top_sorts_by_value_then_key_and_drops_zeros() {
    let e = engine();
    send(
        &e,
        r#"{"v":2,"op":"series.batch_add","series":"emails","items":[[5,20260301,9],[4,20260301,2],[1,20260302,9],[3,20260401,20],[6,20260301,1]]}"#,
    );
    send(&e, r#"{"v":2,"op":"counter.decrement","series":"emails","key":2,"bucket":20260301}"#); // empty
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.top","series":"emails","limit":3,"range":{"from":20260301,"to":20260331}}"#,
        r#"{"tree":"emails","limit":3,"items":[{"key":1,"value":9},{"key":5,"value":9},{"key":4,"value":2}]}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.top","series":"emails","limit":10}"#,
        r#"{"tree":"emails","limit":10,"items":[{"key":3,"value":20},{"key":1,"value":9},{"key":5,"value":9},{"key":4,"value":2},{"key":6,"value":1}]}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.top","series":"emails","limit":1000,"range":{"from":20260501,"to":20260501}}"#,
        r#"{"tree":"emails","limit":1000,"items":[]}"#,
    );
    expect_err(&e, r#"{"v":2,"op":"tree.top","series":"x","limit":1}"#, "not_found", r#"Tree "x" not found"#);
}

#[test]
fn tree_series_orders_keys_by_key_mod_9_then_insertion() {
    let e = engine();
    for k in [1, 5, 9, 10, 14] {
        send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":{k},"bucket":20260301}}"#));
    }
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":10,"bucket":20260401}"#);
    send(&e, r#"{"v":2,"op":"counter.decrement","series":"s","key":18,"bucket":20260301}"#); // empty, shard 0
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.series","series":"s","range":{"from":20260301,"to":20260301}}"#,
        r#"{"9":{"20260301":1},"18":{},"1":{"20260301":1},"10":{"20260301":1},"5":{"20260301":1},"14":{"20260301":1}}"#,
    );
    // Counters without an in-range bucket still appear, as {}.
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.series","series":"s","range":{"from":20260401,"to":20260401}}"#,
        r#"{"9":{},"18":{},"1":{},"10":{"20260401":1},"5":{},"14":{}}"#,
    );
    expect_err(
        &e,
        r#"{"v":2,"op":"tree.series","series":"x","range":{"from":20260401,"to":20260401}}"#,
        "not_found",
        r#"Tree "x" not found"#,
    );
}

#[test]
fn tree_reset_empties_every_counter_and_creates_the_series() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,20260301,1],[2,20260302,2]]}"#);
    expect_ok(&e, r#"{"v":2,"op":"tree.reset","series":"s"}"#, r#""OK""#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        r#"{"tree":"s","key_count":2,"bucket_count":0,"total":0,"branches":9}"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.reset","series":"n"}"#, r#""OK""#);
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["s","n"]"#);
}

#[test]
fn tree_delete_range_answers_true_and_creates_the_series() {
    let e = engine();
    send(
        &e,
        r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,20260301,1],[1,20260302,2],[2,20260302,4],[3,20260303,8]]}"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.delete_range","series":"s","range":{"from":20260302,"to":20260302}}"#, "true");
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.series","series":"s","range":{"from":20260301,"to":20260303}}"#,
        r#"{"1":{"20260301":1},"2":{},"3":{"20260303":8}}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        r#"{"tree":"s","key_count":3,"bucket_count":2,"total":9,"branches":9}"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.delete_range","series":"n","range":{"from":20260302,"to":20260302}}"#, "true");
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["s","n"]"#);
}

#[test]
fn series_delete_before_drops_old_buckets_then_compacts() {
    let e = engine();
    send(
        &e,
        r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,20260301,1],[1,20260305,2],[2,20260302,4],[3,20260310,8]]}"#,
    );
    send(&e, r#"{"v":2,"op":"counter.decrement","series":"s","key":4,"bucket":20260301}"#); // empty
                                                                                            // before: 0 removes no bucket but still compacts (the empty counter goes).
    expect_ok(&e, r#"{"v":2,"op":"series.delete_before","series":"s","before":0}"#, r#""OK""#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        r#"{"tree":"s","key_count":3,"bucket_count":4,"total":15,"branches":9}"#,
    );
    // Strictly less than `before`.
    expect_ok(&e, r#"{"v":2,"op":"series.delete_before","series":"s","before":20260305}"#, r#""OK""#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        r#"{"tree":"s","key_count":2,"bucket_count":2,"total":10,"branches":9}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.keys","series":"s","limit":10}"#,
        r#"{"tree":"s","limit":10,"cursor":null,"next_cursor":null,"keys":[{"key":1,"total":2},{"key":3,"total":8}]}"#,
    );
    // Alias, and `date` when `before` is absent.
    expect_ok(&e, r#"{"v":2,"op":"tree.delete_before","tree":"s","date":20260306}"#, r#""OK""#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        r#"{"tree":"s","key_count":1,"bucket_count":1,"total":8,"branches":9}"#,
    );
    // `before` wins over `date`.
    expect_ok(&e, r#"{"v":2,"op":"series.delete_before","series":"s","before":1,"date":20270101}"#, r#""OK""#);
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":3}"#, "8");
    expect_err(
        &e,
        r#"{"v":2,"op":"series.delete_before","series":"x","before":1}"#,
        "not_found",
        r#"Tree "x" not found"#,
    );
}

#[test]
fn series_compact_removes_empty_counters_and_system_compact_all_series() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"series.batch_set","series":"a","items":[[1,20260301,1],[2,20260301,0]]}"#);
    send(&e, r#"{"v":2,"op":"series.batch_set","series":"b","items":[[1,20260301,1],[2,20260301,0]]}"#);
    send(&e, r#"{"v":2,"op":"series.batch_set","series":"c","items":[[2,20260301,0]]}"#);
    expect_ok(&e, r#"{"v":2,"op":"series.compact","series":"a"}"#, r#""OK""#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"a"}"#,
        r#"{"tree":"a","key_count":1,"bucket_count":1,"total":1,"branches":9}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"b"}"#,
        r#"{"tree":"b","key_count":2,"bucket_count":1,"total":1,"branches":9}"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.compact","tree":"b"}"#, r#""OK""#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"b"}"#,
        r#"{"tree":"b","key_count":1,"bucket_count":1,"total":1,"branches":9}"#,
    );
    expect_err(&e, r#"{"v":2,"op":"series.compact","series":"x"}"#, "not_found", r#"Tree "x" not found"#);
    expect_ok(&e, r#"{"v":2,"op":"system.compact"}"#, r#""OK""#);
    // Never removes a series, even an empty one.
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"c"}"#,
        r#"{"tree":"c","key_count":0,"bucket_count":0,"total":0,"branches":9}"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["a","b","c"]"#);
}

/// §8.3 in one table: which ops create a missing series.
#[test]
fn implicit_series_creation_follows_section_8_3() {
    let range = r#""range":{"from":20260301,"to":20260301}"#;
    let creates = [
        r#"{"v":2,"op":"tree.create","series":"N"}"#.to_string(),
        r#"{"v":2,"op":"counter.increment","series":"N","key":1}"#.to_string(),
        r#"{"v":2,"op":"counter.decrement","series":"N","key":1}"#.to_string(),
        r#"{"v":2,"op":"series.batch_add","series":"N","items":[]}"#.to_string(),
        r#"{"v":2,"op":"series.batch_set","series":"N","items":[[1,1,0]]}"#.to_string(),
        r#"{"v":2,"op":"counter.reset","series":"N","key":1}"#.to_string(),
        r#"{"v":2,"op":"tree.reset","series":"N"}"#.to_string(),
        format!(r#"{{"v":2,"op":"counter.delete_range","series":"N","key":1,{range}}}"#),
        format!(r#"{{"v":2,"op":"tree.delete_range","series":"N",{range}}}"#),
    ];
    for req in &creates {
        let e = engine();
        let got = send(&e, req);
        assert!(got.contains("\"success\":true"), "{req}: {got}");
        expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["N"]"#);
    }
    let not_found = [
        r#"{"v":2,"op":"counter.batch_reset","series":"N","keys":[1]}"#.to_string(),
        format!(r#"{{"v":2,"op":"counter.batch_delete_range","series":"N","keys":[1],{range}}}"#),
        r#"{"v":2,"op":"series.delete_before","series":"N","before":1}"#.to_string(),
        r#"{"v":2,"op":"series.compact","series":"N"}"#.to_string(),
        r#"{"v":2,"op":"tree.drop","series":"N"}"#.to_string(),
        r#"{"v":2,"op":"tree.info","series":"N"}"#.to_string(),
        r#"{"v":2,"op":"tree.keys","series":"N"}"#.to_string(),
        r#"{"v":2,"op":"tree.top","series":"N"}"#.to_string(),
        r#"{"v":2,"op":"tree.summary","series":"N"}"#.to_string(),
        format!(r#"{{"v":2,"op":"tree.series","series":"N",{range}}}"#),
        r#"{"v":2,"op":"counter.sum","series":"N","key":1}"#.to_string(),
        r#"{"v":2,"op":"counter.batch_sum","series":"N","keys":[1]}"#.to_string(),
        r#"{"v":2,"op":"counter.multi_sum","items":[{"series":"N","key":1}]}"#.to_string(),
        format!(r#"{{"v":2,"op":"counter.series","series":"N","key":1,{range}}}"#),
    ];
    for req in &not_found {
        let e = engine();
        expect_err(&e, req, "not_found", r#"Tree "N" not found"#);
        expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
    }
    // series.batch_set with [] does not create it.
    let e = engine();
    send(&e, r#"{"v":2,"op":"series.batch_set","series":"N","items":[]}"#);
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
}

/// §8.3: an empty counter everywhere it is observable.
#[test]
fn an_empty_counter_is_visible_until_compaction() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260301,"value":3}"#);
    send(&e, r#"{"v":2,"op":"counter.decrement","series":"s","key":2,"bucket":20260301}"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        r#"{"tree":"s","key_count":2,"bucket_count":1,"total":3,"branches":9}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.summary","series":"s"}"#,
        r#"{"tree":"s","total":3,"active_keys":2,"bucket_count":1}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.top","series":"s","limit":5}"#,
        r#"{"tree":"s","limit":5,"items":[{"key":1,"value":3}]}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.series","series":"s","range":{"from":20260301,"to":20260301}}"#,
        r#"{"1":{"20260301":3},"2":{}}"#,
    );
    assert_eq!(stats(&e)["keys"], 2);
    expect_ok(&e, r#"{"v":2,"op":"counter.batch_reset","series":"s","keys":[2]}"#, r#"{"reset":0,"missing":1}"#);
    send(&e, r#"{"v":2,"op":"system.compact"}"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        r#"{"tree":"s","key_count":1,"bucket_count":1,"total":3,"branches":9}"#,
    );
    assert_eq!(stats(&e)["keys"], 1);
}

// ------------------------------------------------------------------ ingest

fn begin(id: &str, mode: &str) -> String {
    format!(r#"{{"v":2,"op":"ingest.begin","stream_id":"{id}","mode":"{mode}"}}"#)
}

fn chunk(id: &str, series: &str, seq: u64, items: &str) -> String {
    format!(r#"{{"v":2,"op":"ingest.chunk","stream_id":"{id}","series":"{series}","chunk_seq":{seq},"items":{items}}}"#)
}

fn commit(id: &str) -> String {
    format!(r#"{{"v":2,"op":"ingest.commit","stream_id":"{id}"}}"#)
}

fn abort(id: &str) -> String {
    format!(r#"{{"v":2,"op":"ingest.abort","stream_id":"{id}"}}"#)
}

#[test]
fn ingest_add_stream_lifecycle() {
    let e = engine();
    expect_ok(
        &e,
        &begin("imp", "add"),
        r#"{"stream_id":"imp","mode":"add","series":null,"granularity":null,"status":"active","last_chunk_seq":0}"#,
    );
    expect_ok(
        &e,
        &chunk("imp", "q", 1, "[[40,20260410,3],[41,20260410,2]]"),
        r#"{"stream_id":"imp","chunk_seq":1,"skipped":false,"applied":2,"total":5}"#,
    );
    // Visible at once in add mode.
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"q","key":40}"#, "3");
    // Duplicate: skipped, nothing applied.
    expect_ok(
        &e,
        &chunk("imp", "q", 1, "[[40,20260410,3],[41,20260410,2]]"),
        r#"{"stream_id":"imp","chunk_seq":1,"skipped":true,"committed":false,"applied":0,"total":0}"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"q","key":40}"#, "3");
    // Re-begin with the same parameters shows the current state.
    expect_ok(
        &e,
        &begin("imp", "add"),
        r#"{"stream_id":"imp","mode":"add","series":"q","granularity":null,"status":"active","last_chunk_seq":1}"#,
    );
    expect_err(&e, &chunk("imp", "q", 3, "[]"), "validation_error", "Field chunk_seq must be the next chunk");
    expect_err(&e, &chunk("imp", "other", 2, "[]"), "validation_error", "Ingest stream is already bound to series q");
    expect_err(&e, &chunk("imp", "q", 2, "[[1,1,0]]"), "validation_error", "Batch item value must be greater than 0");
    expect_err(&e, &chunk("imp", "q", 0, "[]"), "validation_error", "Field chunk_seq must be greater than 0");
    expect_ok(
        &e,
        &chunk("imp", "q", 2, "[]"),
        r#"{"stream_id":"imp","chunk_seq":2,"skipped":false,"applied":0,"total":0}"#,
    );
    expect_ok(&e, &commit("imp"), r#"{"stream_id":"imp","status":"committed","last_chunk_seq":2}"#);
    let committed = r#"{"stream_id":"imp","mode":"add","series":"q","granularity":null,"status":"already_committed","last_chunk_seq":2}"#;
    expect_ok(&e, &commit("imp"), committed);
    expect_ok(&e, &begin("imp", "add"), committed);
    expect_ok(
        &e,
        &chunk("imp", "q", 1, "[[40,20260410,3],[41,20260410,2]]"),
        r#"{"stream_id":"imp","chunk_seq":1,"skipped":true,"committed":true,"applied":0,"total":0}"#,
    );
    expect_err(
        &e,
        &chunk("imp", "q", 3, "[]"),
        "idempotency_conflict",
        "Ingest stream was already committed with different chunks",
    );
    expect_err(
        &e,
        &chunk("imp", "q", 1, "[[40,20260410,4]]"),
        "idempotency_conflict",
        "Ingest stream was already committed with different chunks",
    );
    expect_err(
        &e,
        &chunk("imp", "other", 1, "[[40,20260410,3],[41,20260410,2]]"),
        "idempotency_conflict",
        "Ingest stream was already committed with different chunks",
    );
    expect_err(
        &e,
        &begin("imp", "set"),
        "idempotency_conflict",
        "Ingest stream was already committed with different parameters",
    );
    expect_err(&e, &abort("imp"), "not_found", r#"Ingest stream "imp" not found"#);
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"q","key":40}"#, "3");
}

#[test]
fn ingest_duplicate_chunk_with_other_payload_conflicts() {
    let e = engine();
    send(&e, &begin("s1", "add"));
    send(&e, &chunk("s1", "q", 1, "[[1,20260410,3]]"));
    expect_err(
        &e,
        &chunk("s1", "q", 1, "[[1,20260410,4]]"),
        "idempotency_conflict",
        "Ingest chunk was already used with different payload",
    );
    expect_err(
        &e,
        &chunk("s1", "other", 1, "[[1,20260410,3]]"),
        "idempotency_conflict",
        "Ingest chunk was already used with different payload",
    );
    expect_err(
        &e,
        &begin("s1", "set"),
        "idempotency_conflict",
        "Ingest stream already exists with different parameters",
    );
    expect_err(
        &e,
        r#"{"v":2,"op":"ingest.begin","stream_id":"s1","mode":"add","granularity":"day"}"#,
        "idempotency_conflict",
        "Ingest stream already exists with different parameters",
    );
    // A non-string granularity counts as absent.
    expect_ok(
        &e,
        r#"{"v":2,"op":"ingest.begin","stream_id":"s1","mode":"add","granularity":5}"#,
        r#"{"stream_id":"s1","mode":"add","series":"q","granularity":null,"status":"active","last_chunk_seq":1}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"ingest.begin","stream_id":"g","mode":"set","granularity":"hour"}"#,
        r#"{"stream_id":"g","mode":"set","series":null,"granularity":"hour","status":"active","last_chunk_seq":0}"#,
    );
    for op in ["ingest.chunk", "ingest.commit", "ingest.abort"] {
        let req = match op {
            "ingest.chunk" => chunk("nope", "q", 1, "[]"),
            "ingest.commit" => commit("nope"),
            _ => abort("nope"),
        };
        expect_err(&e, &req, "not_found", r#"Ingest stream "nope" not found"#);
    }
}

#[test]
fn ingest_set_stream_allows_zero_values() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"series.batch_add","series":"q","items":[[1,20260410,5],[2,20260410,5]]}"#);
    send(&e, &begin("st", "set"));
    expect_ok(
        &e,
        &chunk("st", "q", 1, "[[1,20260410,2],[2,20260410,0],[3,20260410,0]]"),
        r#"{"stream_id":"st","chunk_seq":1,"skipped":false,"applied":3,"total":2}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.series","series":"q","range":{"from":20260410,"to":20260410}}"#,
        r#"{"1":{"20260410":2},"2":{},"3":{}}"#,
    );
    expect_ok(&e, &commit("st"), r#"{"stream_id":"st","status":"committed","last_chunk_seq":1}"#);
}

/// The worked example of §11.8.
#[test]
fn ingest_replace_series_worked_example() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"series.batch_add","series":"emails","items":[[1,20260301,10],[7,20260302,1]]}"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"ingest.begin","stream_id":"rebuild-0301","mode":"replace_series"}"#,
        r#"{"stream_id":"rebuild-0301","mode":"replace_series","series":null,"granularity":null,"status":"active","last_chunk_seq":0}"#,
    );
    let c1 = chunk("rebuild-0301", "emails", 1, "[[7,20260301,4],[9,20260301,0]]");
    expect_ok(&e, &c1, r#"{"stream_id":"rebuild-0301","chunk_seq":1,"skipped":false,"applied":2,"total":4}"#);
    // Staged only: the live series is untouched until commit.
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"emails"}"#,
        r#"{"tree":"emails","key_count":2,"bucket_count":2,"total":11,"branches":9}"#,
    );
    expect_ok(
        &e,
        &c1,
        r#"{"stream_id":"rebuild-0301","chunk_seq":1,"skipped":true,"committed":false,"applied":0,"total":0}"#,
    );
    expect_err(
        &e,
        &chunk("rebuild-0301", "emails", 3, "[]"),
        "validation_error",
        "Field chunk_seq must be the next chunk",
    );
    expect_ok(&e, &commit("rebuild-0301"), r#"{"stream_id":"rebuild-0301","status":"committed","last_chunk_seq":1}"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.series","series":"emails","range":{"from":20260301,"to":20260302}}"#,
        r#"{"9":{},"7":{"20260301":4}}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"emails"}"#,
        r#"{"tree":"emails","key_count":2,"bucket_count":1,"total":4,"branches":9}"#,
    );
    expect_ok(
        &e,
        &commit("rebuild-0301"),
        r#"{"stream_id":"rebuild-0301","mode":"replace_series","series":"emails","granularity":null,"status":"already_committed","last_chunk_seq":1}"#,
    );
    expect_ok(
        &e,
        &c1,
        r#"{"stream_id":"rebuild-0301","chunk_seq":1,"skipped":true,"committed":true,"applied":0,"total":0}"#,
    );
    expect_err(
        &e,
        r#"{"v":2,"op":"ingest.begin","stream_id":"rebuild-0301","mode":"add"}"#,
        "idempotency_conflict",
        "Ingest stream was already committed with different parameters",
    );
}

#[test]
fn ingest_replace_series_creates_a_missing_series_and_empty_chunk_commits_empty() {
    let e = engine();
    send(&e, &begin("r1", "replace_series"));
    send(&e, &chunk("r1", "fresh", 1, "[[1,20260301,2]]"));
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
    send(&e, &commit("r1"));
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"fresh","key":1}"#, "2");

    // A stream whose only chunk was empty is bound and replaces with an empty series.
    send(&e, &begin("r2", "replace_series"));
    expect_ok(
        &e,
        &chunk("r2", "fresh", 1, "[]"),
        r#"{"stream_id":"r2","chunk_seq":1,"skipped":false,"applied":0,"total":0}"#,
    );
    expect_ok(&e, &commit("r2"), r#"{"stream_id":"r2","status":"committed","last_chunk_seq":1}"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"fresh"}"#,
        r#"{"tree":"fresh","key_count":0,"bucket_count":0,"total":0,"branches":9}"#,
    );

    // Never bound: refused.
    send(&e, &begin("r3", "replace_series"));
    expect_err(&e, &commit("r3"), "validation_error", "Cannot commit empty replace_series stream");
}

#[test]
fn ingest_abort_keeps_applied_add_data_and_discards_staging() {
    let e = engine();
    send(&e, &begin("a", "add"));
    send(&e, &chunk("a", "q", 1, "[[1,20260301,2]]"));
    expect_ok(&e, &abort("a"), r#"{"stream_id":"a","status":"aborted","last_chunk_seq":1}"#);
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"q","key":1}"#, "2");
    expect_err(&e, &chunk("a", "q", 2, "[]"), "not_found", r#"Ingest stream "a" not found"#);
    // The id can be begun again, with any mode.
    expect_ok(
        &e,
        &begin("a", "replace_series"),
        r#"{"stream_id":"a","mode":"replace_series","series":null,"granularity":null,"status":"active","last_chunk_seq":0}"#,
    );
    send(&e, &chunk("a", "q", 1, "[[5,20260301,9]]"));
    expect_ok(&e, &abort("a"), r#"{"stream_id":"a","status":"aborted","last_chunk_seq":1}"#);
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"q","key":5}"#, "0");
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"q","key":1}"#, "2");
}

#[test]
fn ingest_stats_count_chunks_and_streams() {
    let e = engine();
    send(&e, &begin("a", "add"));
    send(&e, &begin("b", "add"));
    send(&e, &chunk("a", "q", 1, "[[1,20260301,2],[2,20260301,1]]"));
    send(&e, &chunk("a", "q", 1, "[[1,20260301,2],[2,20260301,1]]")); // skipped
    send(&e, &chunk("a", "q", 5, "[]")); // rejected: gap
    send(&e, &commit("a"));
    let v = stats(&e);
    assert_eq!(v["ingest_active_streams"], 1);
    assert_eq!(v["ingest_chunks_applied"], 1);
    assert_eq!(v["ingest_chunks_skipped"], 1);
    assert_eq!(v["ingest_chunks_rejected"], 1);
    assert_eq!(v["ingest_items_applied"], 2);
    assert_eq!(v["idempotency_committed_stream_count"], 1);
    // Chunk applications count as batch writes.
    assert_eq!(v["batch_write_count"], 1);
}

#[test]
fn ingest_ops_ignore_idempotency_keys() {
    let e = engine();
    expect_ok(
        &e,
        r#"{"v":2,"op":"ingest.begin","stream_id":"a","mode":"add","idempotency_key":"k"}"#,
        r#"{"stream_id":"a","mode":"add","series":null,"granularity":null,"status":"active","last_chunk_seq":0}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"a","series":"q","chunk_seq":1,"items":[],"idempotency_key":"k"}"#,
        r#"{"stream_id":"a","chunk_seq":1,"skipped":false,"applied":0,"total":0}"#,
    );
}

// ------------------------------------------------------------------ idempotency

const FP_INCREMENT: &str = "340e6f95e52723cd5e79c030c7df1d40aadec81b2b90cb7bc2f7eec6e0d57a58";
const FP_BATCH_ADD: &str = "48cb1983ea887e00d8606d6bd0adc84e3cccce2d5374baf4801962777e6487e1";

#[test]
fn idempotency_hit_replays_the_stored_response_without_changing_data() {
    let e = engine();
    let req =
        r#"{"v":2,"op":"counter.increment","series":"api","key":7,"bucket":20260301,"value":2,"idempotency_key":"k1"}"#;
    expect(&e, req, &idem("2", false));
    expect(&e, req, &idem("2", true));
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"api","key":7}"#, "2");
    // Same fingerprint: alias, tree field, date field, string bucket.
    expect(
        &e,
        r#"{"v":2,"op":"series.increment","tree":"api","key":7,"date":20260301,"value":2,"idempotency_key":"k1"}"#,
        &idem("2", true),
    );
    expect(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"api","key":7,"bucket":"2026-03-01","value":2,"idempotency_key":"k1","token":"ignored"}"#,
        &idem("2", true),
    );
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"api","key":7,"bucket":20260301,"value":3,"idempotency_key":"k1"}"#,
        "idempotency_conflict",
        "Idempotency key was already used with a different request",
    );
    // One keyspace across ops and series.
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.reset","series":"other","key":7,"idempotency_key":"k1"}"#,
        "idempotency_conflict",
        "Idempotency key was already used with a different request",
    );
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"api","key":7}"#, "2");
    // The stored answer is replayed verbatim even after the data changed.
    let batch = r#"{"v":2,"op":"counter.batch_reset","series":"api","keys":[7,8],"idempotency_key":"k2"}"#;
    expect(&e, batch, &idem(r#"{"reset":1,"missing":1}"#, false));
    send(&e, r#"{"v":2,"op":"counter.increment","series":"api","key":8,"bucket":20260301}"#);
    expect(&e, batch, &idem(r#"{"reset":1,"missing":1}"#, true));
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"api","key":8}"#, "1");
    let v = stats(&e);
    assert_eq!(v["idempotency_record_count"], 2);
    assert_eq!(v["idempotency_hits"], 4);
    assert_eq!(v["idempotency_conflicts"], 2);
    assert_eq!(v["idempotency_write_count"], 2);
}

#[test]
fn idempotency_covers_every_eligible_op() {
    let e = engine();
    let r = r#""range":{"from":20260301,"to":20260301}"#;
    let cases = [
        (r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260301}"#.to_string(), "1"),
        (r#"{"v":2,"op":"counter.decrement","series":"s","key":1,"bucket":20260301,"value":4}"#.to_string(), "4"),
        (
            r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,20260301,2]]}"#.to_string(),
            r#"{"applied":1,"total":2}"#,
        ),
        (r#"{"v":2,"op":"series.batch_set","series":"s","items":[[1,20260301,3]]}"#.to_string(), r#"{"applied":1}"#),
        (r#"{"v":2,"op":"counter.reset","series":"s","key":1}"#.to_string(), r#""OK""#),
        (r#"{"v":2,"op":"tree.reset","series":"s"}"#.to_string(), r#""OK""#),
        (r#"{"v":2,"op":"counter.batch_reset","series":"s","keys":[1]}"#.to_string(), r#"{"reset":0,"missing":1}"#),
        (format!(r#"{{"v":2,"op":"counter.delete_range","series":"s","key":1,{r}}}"#), "true"),
        (format!(r#"{{"v":2,"op":"tree.delete_range","series":"s",{r}}}"#), "true"),
        (
            format!(r#"{{"v":2,"op":"counter.batch_delete_range","series":"s","keys":[1],{r}}}"#),
            r#"{"deleted":0,"missing":1}"#,
        ),
    ];
    for (i, (req, resp)) in cases.iter().enumerate() {
        let with_key = format!(r#"{},"idempotency_key":"e{i}"}}"#, req.strip_suffix('}').unwrap());
        expect(&e, &with_key, &idem(resp, false));
        expect(&e, &with_key, &idem(resp, true));
    }
    // counter.reset and tree.reset differ by the null key.
    send(&e, r#"{"v":2,"op":"counter.reset","series":"s","key":1,"idempotency_key":"r"}"#);
    expect_err(
        &e,
        r#"{"v":2,"op":"tree.reset","series":"s","idempotency_key":"r"}"#,
        "idempotency_conflict",
        "Idempotency key was already used with a different request",
    );
    // Item order matters.
    send(&e, r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,1,1],[2,1,1]],"idempotency_key":"o"}"#);
    expect_err(
        &e,
        r#"{"v":2,"op":"series.batch_add","series":"s","items":[[2,1,1],[1,1,1]],"idempotency_key":"o"}"#,
        "idempotency_conflict",
        "Idempotency key was already used with a different request",
    );
}

#[test]
fn idempotency_key_on_a_non_eligible_op_is_ignored() {
    let e = engine();
    expect_ok(&e, r#"{"v":2,"op":"tree.create","series":"s","idempotency_key":"x"}"#, r#""OK""#);
    expect_ok(&e, r#"{"v":2,"op":"tree.create","series":"s","idempotency_key":""}"#, r#""OK""#);
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1,"idempotency_key":"x"}"#, "0");
    // "x" was never stored: an eligible op can use it.
    expect(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1,"idempotency_key":"x"}"#,
        &idem("1", false),
    );
    assert_eq!(stats(&e)["idempotency_record_count"], 1);
}

#[test]
fn idempotency_integer_key_equals_its_decimal_string() {
    let e = engine();
    let a = r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1,"idempotency_key":12345}"#;
    let b = r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1,"idempotency_key":"12345"}"#;
    expect(&e, a, &idem("1", false));
    expect(&e, b, &idem("1", true));
}

#[test]
fn idempotency_client_fingerprints_of_the_spec_examples_match() {
    let e = engine();
    expect(
        &e,
        &format!(
            r#"{{"v":2,"op":"counter.increment","series":"api","key":7,"bucket":20260301,"value":2,"idempotency_key":"f1","fingerprint":"{FP_INCREMENT}"}}"#
        ),
        &idem("2", false),
    );
    // The same fingerprint for an equivalent spelling.
    expect(
        &e,
        &format!(
            r#"{{"v":2,"op":"series.increment","tree":"api","key":7,"date":20260301,"value":2,"idempotency_key":"f1","fingerprint":"{FP_INCREMENT}"}}"#
        ),
        &idem("2", true),
    );
    expect(
        &e,
        &format!(
            r#"{{"v":2,"op":"series.batch_add","series":"api","items":[[7,20260301,2],[8,20260301,3]],"idempotency_key":"f2","fingerprint":"{FP_BATCH_ADD}"}}"#
        ),
        &idem(r#"{"applied":2,"total":5}"#, false),
    );
    expect(
        &e,
        &format!(
            r#"{{"v":2,"op":"counter.batch_increment","series":"api","items":[[7,20260301,2],[8,20260301,3]],"idempotency_key":"f2","fingerprint":"{FP_BATCH_ADD}"}}"#
        ),
        &idem(r#"{"applied":2,"total":5}"#, true),
    );
    // Mismatch: refused before anything runs, not counted as a key conflict.
    expect_err(
        &e,
        &format!(
            r#"{{"v":2,"op":"counter.increment","series":"api","key":7,"bucket":20260301,"value":3,"idempotency_key":"f3","fingerprint":"{FP_INCREMENT}"}}"#
        ),
        "idempotency_conflict",
        "Field fingerprint does not match request fingerprint",
    );
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"api","key":7}"#, "4");
    assert_eq!(stats(&e)["idempotency_conflicts"], 0);
}

#[test]
fn idempotency_fingerprint_of_an_omitted_bucket_is_today() {
    let (e, clock) = engine_and_clock(|_| {});
    let req = r#"{"v":2,"op":"counter.increment","series":"api","key":7,"value":2,"idempotency_key":"t"}"#;
    expect(&e, req, &idem("2", false));
    // Same as an explicit bucket of today.
    expect(
        &e,
        &format!(
            r#"{{"v":2,"op":"counter.increment","series":"api","key":7,"value":2,"bucket":{TODAY},"idempotency_key":"t"}}"#
        ),
        &idem("2", true),
    );
    // Crossing midnight changes the fingerprint (Q16).
    clock.advance(86_400);
    expect_err(&e, req, "idempotency_conflict", "Idempotency key was already used with a different request");
}

#[test]
fn idempotency_retention_by_record_count() {
    let e = engine_with(|o| o.idempotency_max_records = 2);
    for k in ["a", "b", "c"] {
        expect(
            &e,
            &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1,"idempotency_key":"{k}"}}"#),
            &idem("1", false),
        );
    }
    let v = stats(&e);
    assert_eq!(v["idempotency_record_count"], 2);
    assert_eq!(v["idempotency_pruned"], 1);
    // "a" was evicted: runs again; "c" still deduplicates.
    expect(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1,"idempotency_key":"a"}"#,
        &idem("1", false),
    );
    expect(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1,"idempotency_key":"c"}"#,
        &idem("1", true),
    );
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, "4");
}

#[test]
fn idempotency_retention_by_age() {
    let (e, clock) = engine_and_clock(|o| o.idempotency_max_age_seconds = 100);
    let inc = |k: &str| {
        format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1,"idempotency_key":"{k}"}}"#)
    };
    expect(&e, &inc("old"), &idem("1", false)); // T0
    clock.advance(50);
    expect(&e, &inc("mid"), &idem("1", false)); // T0+50
    clock.advance(60);
    // Storing at T0+110 expires records created before T0+10.
    expect(&e, &inc("new"), &idem("1", false));
    assert_eq!(stats(&e)["idempotency_record_count"], 2);
    assert_eq!(stats(&e)["idempotency_pruned"], 1);
    expect(&e, &inc("mid"), &idem("1", true));
    expect(&e, &inc("old"), &idem("1", false));
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, "4");
}

#[test]
fn idempotency_age_zero_disables_expiry() {
    let (e, clock) = engine_and_clock(|o| o.idempotency_max_age_seconds = 0);
    let inc = |k: &str| {
        format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1,"idempotency_key":"{k}"}}"#)
    };
    expect(&e, &inc("a"), &idem("1", false));
    clock.advance(100 * 86_400);
    expect(&e, &inc("b"), &idem("1", false));
    expect(&e, &inc("a"), &idem("1", true));
}

#[test]
fn idempotency_prune_by_unix_rfc3339_and_limit() {
    let (e, clock) = engine_and_clock(|_| {});
    let inc = |k: &str| {
        format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1,"idempotency_key":"{k}"}}"#)
    };
    for k in ["a", "b", "c", "d"] {
        send(&e, &inc(k)); // created at T0, T0+10, T0+20, T0+30
        clock.advance(10);
    }
    let before = T0 + 15;
    expect_ok(&e, &format!(r#"{{"v":2,"op":"idempotency.prune","before":{before},"limit":1}}"#), r#"{"deleted":1}"#);
    expect_ok(&e, &format!(r#"{{"v":2,"op":"idempotency.prune","before":{before}}}"#), r#"{"deleted":1}"#);
    expect_ok(&e, &format!(r#"{{"v":2,"op":"idempotency.prune","before":{before}}}"#), r#"{"deleted":0}"#);
    // T0 = 2026-05-28T20:26:40Z; T0+25 = 20:27:05Z. Strictly older than `before`.
    expect_ok(&e, r#"{"v":2,"op":"idempotency.prune","before":"2026-05-28T23:27:05+03:00"}"#, r#"{"deleted":1}"#);
    expect_ok(&e, r#"{"v":2,"op":"idempotency.prune","before":"2026-05-28T20:27:10Z"}"#, r#"{"deleted":0}"#);
    expect_ok(&e, r#"{"v":2,"op":"idempotency.prune","before":"2026-05-28T20:27:11Z"}"#, r#"{"deleted":1}"#);
    let v = stats(&e);
    assert_eq!(v["idempotency_record_count"], 0);
    assert_eq!(v["idempotency_pruned"], 4);
    // Pruned keys execute again.
    expect(&e, &inc("a"), &idem("1", false));
}

#[test]
fn idempotency_prune_never_touches_committed_streams() {
    let e = engine();
    send(&e, &begin("st", "add"));
    send(&e, &commit("st"));
    expect_ok(&e, r#"{"v":2,"op":"idempotency.prune","before":99999999999}"#, r#"{"deleted":0}"#);
    assert_eq!(stats(&e)["idempotency_committed_stream_count"], 1);
    expect_ok(
        &e,
        &commit("st"),
        r#"{"stream_id":"st","mode":"add","series":null,"granularity":null,"status":"already_committed","last_chunk_seq":0}"#,
    );
}

#[test]
fn a_failed_idempotent_request_stores_nothing() {
    let e = engine();
    let req = r#"{"v":2,"op":"counter.batch_reset","series":"missing","keys":[1],"idempotency_key":"f"}"#;
    expect_err(&e, req, "not_found", r#"Tree "missing" not found"#);
    send(&e, r#"{"v":2,"op":"tree.create","series":"missing"}"#);
    expect(&e, req, &idem(r#"{"reset":0,"missing":1}"#, false));
}

// ------------------------------------------------------------------ recovery / reconciliation / replication

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

// ------------------------------------------------------------------ snapshots

#[test]
fn snapshot_create_list_info_fetch_and_load() {
    let (e, dir) = durable();
    send(&e, r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,20260301,2],[2,20260302,3]]}"#);
    expect_ok(&e, r#"{"v":2,"op":"snapshot.create","series":"s"}"#, r#""Tree \"s\" saved""#);
    expect_err(&e, r#"{"v":2,"op":"snapshot.create","series":"x"}"#, "not_found", r#"Tree "x" not found"#);
    let file = format!("{T0}_s.tree");
    let list = response(&e, r#"{"v":2,"op":"snapshot.list"}"#);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let path = std::path::Path::new(list[0].as_str().unwrap());
    assert!(path.is_absolute(), "{path:?}");
    assert_eq!(path.file_name().unwrap().to_str().unwrap(), file);
    assert!(path.starts_with(dir.path().canonicalize().unwrap()) || path.starts_with(dir.path()), "{path:?}");

    let raw = raw_response(&e, r#"{"v":2,"op":"snapshot.info"}"#);
    assert_eq!(
        object_keys(&raw),
        [
            "dump_count",
            "latest_by_tree",
            "idempotency_snapshot",
            "last_snapshot_lsn",
            "wal_enabled",
            "wal_bytes",
            "wal_current_lsn",
            "dump_retention_per_tree"
        ]
    );
    let info: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(info["dump_count"], 1);
    assert_eq!(info["last_snapshot_lsn"], 1);
    assert_eq!(info["idempotency_snapshot"], serde_json::Value::Null);
    assert_eq!(info["dump_retention_per_tree"], 5);
    let bytes = std::fs::metadata(dir.path().join(&file)).unwrap().len();
    let meta = format!(
        r#"{{"tree":"s","file":"{file}","timestamp":{T0},"bytes":{bytes},"last_lsn":1,"metadata_file":"{file}.meta.json"}}"#
    );
    assert!(raw.contains(&format!(r#""latest_by_tree":[{meta}]"#)), "{raw}");

    let fetched = raw_response(&e, &format!(r#"{{"v":2,"op":"snapshot.fetch","file":"{file}"}}"#));
    assert_eq!(object_keys(&fetched), ["metadata", "data_base64"]);
    assert!(fetched.starts_with(&format!(r#"{{"metadata":{meta},"data_base64":""#)), "{fetched}");
    let whole: serde_json::Value = serde_json::from_str(&fetched).unwrap();
    let whole = whole["data_base64"].as_str().unwrap().to_owned();
    assert_eq!(whole.len() as u64, bytes.div_ceil(3) * 4);

    // Chunks: keys in order, defaults, and an empty final chunk.
    let chunk = raw_response(&e, &format!(r#"{{"v":2,"op":"snapshot.fetch_chunk","file":"{file}"}}"#));
    assert_eq!(
        object_keys(&chunk),
        ["metadata", "offset", "limit", "bytes", "total_bytes", "next_offset", "done", "data_base64"]
    );
    let c: serde_json::Value = serde_json::from_str(&chunk).unwrap();
    assert_eq!(c["offset"], 0);
    assert_eq!(c["limit"], 262_144);
    assert_eq!(c["bytes"], bytes);
    assert_eq!(c["total_bytes"], bytes);
    assert_eq!(c["next_offset"], bytes);
    assert_eq!(c["done"], true);
    assert_eq!(c["data_base64"], whole.as_str());
    let c = response(&e, &format!(r#"{{"v":2,"op":"snapshot.fetch_chunk","file":"{file}","offset":1,"limit":2}}"#));
    assert_eq!(c["offset"], 1);
    assert_eq!(c["limit"], 2);
    assert_eq!(c["bytes"], 2);
    assert_eq!(c["next_offset"], 3);
    assert_eq!(c["done"], false);
    let c = response(&e, &format!(r#"{{"v":2,"op":"snapshot.fetch_chunk","file":"{file}","offset":{bytes}}}"#));
    assert_eq!(c["bytes"], 0);
    assert_eq!(c["done"], true);
    assert_eq!(c["data_base64"], "");

    // Load replaces the series with the snapshot.
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":9,"bucket":20260301}"#);
    expect_ok(&e, &format!(r#"{{"v":2,"op":"snapshot.load","file":"{file}"}}"#), r#""Tree \"s\" loaded""#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        r#"{"tree":"s","key_count":2,"bucket_count":2,"total":5,"branches":9}"#,
    );
    // Load creates a missing series (drop deletes the series' files: put the bytes back).
    let bytes_on_disk = std::fs::read(dir.path().join(&file)).unwrap();
    send(&e, r#"{"v":2,"op":"tree.drop","series":"s"}"#);
    assert!(!dir.path().join(&file).exists(), "tree.drop must delete the series' snapshots (B15)");
    std::fs::write(dir.path().join(&file), bytes_on_disk).unwrap();
    expect_ok(&e, &format!(r#"{{"v":2,"op":"snapshot.load","file":"{file}"}}"#), r#""Tree \"s\" loaded""#);
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":2}"#, "3");
    expect_err(&e, r#"{"v":2,"op":"snapshot.load","file":"1_nope.tree"}"#, "not_found", r#"Dump "nope" not found"#);
    expect_err(
        &e,
        r#"{"v":2,"op":"snapshot.fetch","file":"1_nope.tree"}"#,
        "not_found",
        r#"Snapshot "1_nope.tree" not found"#,
    );
}

#[test]
fn snapshot_create_all_verify_and_idempotency_snapshot_chunks() {
    let (e, _dir) = durable();
    expect_err(&e, r#"{"v":2,"op":"idempotency.snapshot_fetch_chunk"}"#, "not_found", "Idempotency snapshot not found");
    send(&e, r#"{"v":2,"op":"counter.increment","series":"a","key":1,"bucket":1,"idempotency_key":"k"}"#);
    send(&e, r#"{"v":2,"op":"counter.increment","series":"b","key":1,"bucket":1}"#);
    expect_ok(&e, r#"{"v":2,"op":"snapshot.create_all"}"#, r#""OK""#);
    let raw = raw_response(&e, r#"{"v":2,"op":"idempotency.snapshot_fetch_chunk"}"#);
    assert_eq!(
        object_keys(&raw),
        ["metadata", "offset", "limit", "bytes", "total_bytes", "next_offset", "done", "data_base64"]
    );
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(object_keys(&serde_json::to_string(&v["metadata"]).unwrap()).len(), 6, "metadata: {}", v["metadata"]);
    let meta_start = raw.find(r#""metadata":"#).unwrap() + 11;
    let meta_raw = &raw[meta_start..raw.find(r#","offset":"#).unwrap()];
    assert_eq!(
        object_keys(meta_raw),
        ["file", "timestamp", "bytes", "last_lsn", "record_count", "committed_stream_count"]
    );
    assert_eq!(v["metadata"]["record_count"], 1);
    assert_eq!(v["metadata"]["last_lsn"], 2);
    assert_eq!(v["done"], true);
    let info = response(&e, r#"{"v":2,"op":"snapshot.info"}"#);
    assert_eq!(info["dump_count"], 2);
    assert_eq!(info["last_snapshot_lsn"], 2);
    assert!(info["idempotency_snapshot"].is_object());
    assert_eq!(stats(&e)["dump_count"], 2);

    let raw = raw_response(&e, r#"{"v":2,"op":"snapshot.verify"}"#);
    assert_eq!(
        object_keys(&raw),
        [
            "status",
            "dump_count",
            "trees",
            "keys",
            "snapshot_metadata_checked",
            "snapshot_missing_metadata",
            "restore_snapshot_lsn",
            "wal_entries_checked",
            "wal_first_lsn",
            "wal_last_lsn",
            "wal_lsn_file"
        ]
    );
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["trees"], 2);
    assert_eq!(v["keys"], 2);
    // verify leaves the live idempotency records alone (fix of B7).
    expect(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"a","key":1,"bucket":1,"idempotency_key":"k"}"#,
        &idem("1", true),
    );
}

// ------------------------------------------------------------------ auth and roles

fn auth_engine() -> (karma_engine::Engine, tempfile::TempDir) {
    let (e, dir) = durable_with(|o| {
        o.auth_token = Some("w".into());
        o.read_auth_token = Some("r".into());
    });
    // The stream "st" the ingest rows refer to.
    expect_ok(
        &e,
        r#"{"v":2,"op":"ingest.begin","stream_id":"st","mode":"add","token":"w"}"#,
        r#"{"stream_id":"st","mode":"add","series":null,"granularity":null,"status":"active","last_chunk_seq":0}"#,
    );
    (e, dir)
}

#[test]
fn read_token_runs_reads_and_is_forbidden_every_mutation() {
    let (e, _dir) = auth_engine();
    for (op, internal, read_only, fields) in OPS {
        let got = send(&e, &line(op, fields, r#","token":"r""#));
        if *read_only {
            assert!(!got.contains("\"forbidden\"") && !got.contains("\"unauthorized\""), "{op}: {got}");
        } else {
            assert_eq!(got, fail("forbidden", &format!("Read-only token cannot execute command {internal}")), "{op}");
        }
    }
}

#[test]
fn write_token_runs_everything_and_no_token_is_unauthorized() {
    let (e, _dir) = auth_engine();
    for (op, _, _, fields) in OPS {
        for bad in ["", r#","token":"nope""#, r#","token":5"#, r#","token":null"#] {
            expect_err(&e, &line(op, fields, bad), "unauthorized", "Unauthorized");
        }
    }
    for (op, _, _, fields) in OPS {
        let got = send(&e, &line(op, fields, r#","token":"w""#));
        assert!(!got.contains("\"forbidden\"") && !got.contains("\"unauthorized\""), "{op}: {got}");
    }
}

#[test]
fn field_errors_come_before_authentication() {
    let (e, _dir) = auth_engine();
    expect_err(&e, r#"{"v":2,"op":"counter.sum"}"#, "validation_error", "Field tree or series is required");
    expect_err(&e, r#"{"v":2,"op":"nope"}"#, "unknown_command", "Unknown op nope");
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":-1}"#,
        "validation_error",
        "Field key must be greater than or equal to 0",
    );
    // Validation after authentication.
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"value":0}"#,
        "unauthorized",
        "Unauthorized",
    );
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"value":0,"token":"w"}"#,
        "validation_error",
        "Field value must be greater than 0",
    );
    // With auth on, every request is authenticated (no fast path).
    expect_err(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, "unauthorized", "Unauthorized");
    expect_ok(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1,"token":"w"}"#, "1");
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1,"token":"r"}"#, "1");
}

#[test]
fn only_a_read_token_guards_reads_and_refuses_it_for_writes() {
    let e = engine_with(|o| o.read_auth_token = Some("r".into()));
    expect_err(
        &e,
        r#"{"v":2,"op":"tree.create","series":"s","token":"r"}"#,
        "forbidden",
        "Read-only token cannot execute command create",
    );
    expect_err(&e, r#"{"v":2,"op":"tree.create","series":"s","token":"w"}"#, "unauthorized", "Unauthorized");
    expect_ok(&e, r#"{"v":2,"op":"tree.list","token":"r"}"#, "[]");
    expect_err(&e, r#"{"v":2,"op":"tree.list"}"#, "unauthorized", "Unauthorized");
}

#[test]
fn same_value_for_both_tokens_grants_full_access() {
    let e = engine_with(|o| {
        o.auth_token = Some("t".into());
        o.read_auth_token = Some("t".into());
    });
    expect_ok(&e, r#"{"v":2,"op":"tree.create","series":"s","token":"t"}"#, r#""OK""#);
}

#[test]
fn slave_refuses_every_non_read_op_after_validation() {
    let (e, _dir) = durable_with(|o| o.role = Role::Slave);
    // Replication applies internally, bypassing the role check.
    let internal = Session::internal();
    send_as(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"st","mode":"add"}"#, &internal);
    for (op, internal_name, read_only, fields) in OPS {
        let got = send(&e, &line(op, fields, ""));
        if *read_only {
            assert!(!got.contains("\"forbidden\""), "{op}: {got}");
        } else {
            assert_eq!(got, fail("forbidden", &format!("Slave role cannot execute command {internal_name}")), "{op}");
        }
    }
    // Validation first.
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"value":0}"#,
        "validation_error",
        "Field value must be greater than 0",
    );
    expect_err(&e, &chunk("unknown", "s", 1, "[]"), "not_found", r#"Ingest stream "unknown" not found"#);
    expect_err(&e, r#"{"v":2,"op":"snapshot.create_all"}"#, "forbidden", "Slave role cannot execute command dump_all");
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
}

#[test]
fn read_token_on_a_slave_reads() {
    let e = engine_with(|o| {
        o.role = Role::Slave;
        o.read_auth_token = Some("r".into());
    });
    expect_ok(&e, r#"{"v":2,"op":"system.ping","token":"r"}"#, r#""pong""#);
    expect_err(
        &e,
        r#"{"v":2,"op":"tree.create","series":"s","token":"r"}"#,
        "forbidden",
        "Read-only token cannot execute command create",
    );
}

// ------------------------------------------------------------------ more orders and edges

#[test]
fn tree_series_order_survives_compaction_and_recreation() {
    let e = engine();
    for k in [1, 10, 19, 2] {
        send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":{k},"bucket":20260301}}"#));
    }
    send(&e, r#"{"v":2,"op":"counter.reset","series":"s","key":10}"#);
    send(&e, r#"{"v":2,"op":"series.compact","series":"s"}"#);
    let range = r#""range":{"from":20260301,"to":20260301}"#;
    expect_ok(
        &e,
        &format!(r#"{{"v":2,"op":"tree.series","series":"s",{range}}}"#),
        r#"{"1":{"20260301":1},"19":{"20260301":1},"2":{"20260301":1}}"#,
    );
    // A key created again goes to the end of its shard.
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":10,"bucket":20260301}"#);
    expect_ok(
        &e,
        &format!(r#"{{"v":2,"op":"tree.series","series":"s",{range}}}"#),
        r#"{"1":{"20260301":1},"19":{"20260301":1},"10":{"20260301":1},"2":{"20260301":1}}"#,
    );
}

#[test]
fn ingest_check_order_gap_before_binding_and_committed_zero_values() {
    let e = engine();
    send(&e, &begin("s", "add"));
    send(&e, &chunk("s", "q", 1, "[[1,1,1]]"));
    // A gap is reported before the binding check.
    expect_err(&e, &chunk("s", "other", 3, "[]"), "validation_error", "Field chunk_seq must be the next chunk");
    send(&e, &commit("s"));
    // On a committed stream, a zero value in an add chunk is a conflict, not a value error.
    expect_err(
        &e,
        &chunk("s", "q", 1, "[[1,1,0]]"),
        "idempotency_conflict",
        "Ingest stream was already committed with different chunks",
    );
    assert_eq!(stats(&e)["ingest_chunks_rejected"], 1);
}

#[test]
fn replication_entries_stop_at_the_byte_budget() {
    // Budget = max_response_bytes - 2048 (room for the envelope).
    let (e, _dir) = durable_with(|o| o.max_response_bytes = 2048 + 400);
    for k in 0..5 {
        send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":{k},"bucket":20260301}}"#));
    }
    let v = response(&e, r#"{"v":2,"op":"replication.entries","after_lsn":0}"#);
    assert_eq!(v["byte_limit"], 400);
    assert_eq!(v["truncated_by_bytes"], true);
    let count = v["count"].as_u64().unwrap();
    assert!((1..5).contains(&count), "{v}");
    assert_eq!(v["next_lsn"], count);
    let sizes: u64 =
        v["entries"].as_array().unwrap().iter().map(|x| serde_json::to_string(x).unwrap().len() as u64).sum();
    assert_eq!(v["entries_bytes"], sizes);
    assert!(sizes <= 400);
}

#[test]
fn snapshot_list_is_newest_first_and_create_all_keeps_the_retention() {
    let clock = karma_engine::clock::ManualClock::new(T0);
    let c = clock.clone();
    let (e, dir) = durable_with(move |o| {
        o.clock = c;
        o.dump_retention_per_tree = 2;
    });
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1}"#);
    for _ in 0..3 {
        expect_ok(&e, r#"{"v":2,"op":"snapshot.create_all"}"#, r#""OK""#);
        clock.advance(10);
    }
    let list = response(&e, r#"{"v":2,"op":"snapshot.list"}"#);
    let names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| std::path::Path::new(p.as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [format!("{}_s.tree", T0 + 20), format!("{}_s.tree", T0 + 10)]);
    assert!(!dir.path().join(format!("{T0}_s.tree")).exists());
    assert_eq!(response(&e, r#"{"v":2,"op":"snapshot.info"}"#)["dump_count"], 2);
}

#[test]
fn a_restart_replays_the_wal_to_the_same_state() {
    let clock = karma_engine::clock::ManualClock::new(T0);
    let c = clock.clone();
    let (e, dir) = durable_with(move |o| o.clock = c);
    for req in [
        r#"{"v":2,"op":"series.batch_add","series":"a","items":[[1,20260301,2],[10,20260302,3],[2,20260301,1]]}"#,
        r#"{"v":2,"op":"counter.increment","series":"a","key":1}"#,
        r#"{"v":2,"op":"counter.decrement","series":"a","key":5,"bucket":20260301}"#,
        r#"{"v":2,"op":"series.batch_set","series":"b","items":[[1,20260301,9],[2,20260301,0]]}"#,
        r#"{"v":2,"op":"counter.delete_range","series":"a","key":10,"range":{"from":20260302,"to":20260302}}"#,
        r#"{"v":2,"op":"counter.increment","series":"b","key":3,"bucket":20260303,"idempotency_key":"k"}"#,
        r#"{"v":2,"op":"tree.create","series":"c"}"#,
        r#"{"v":2,"op":"tree.drop","series":"c"}"#,
    ] {
        assert!(send(&e, req).contains("\"success\":true"), "{req}");
    }
    let shot = |e: &karma_engine::Engine| {
        let mut out = vec![send(e, r#"{"v":2,"op":"tree.list"}"#)];
        for s in ["a", "b"] {
            out.push(format!("{:?}", observe(e, s)));
            out.push(send(
                e,
                &format!(r#"{{"v":2,"op":"tree.series","series":"{s}","range":{{"from":20260301,"to":20260531}}}}"#),
            ));
        }
        out
    };
    let before = shot(&e);
    e.close().unwrap();
    drop(e);
    let c = clock.clone();
    let e = karma_engine::Engine::open(Options {
        wal_fsync: karma_engine::FsyncPolicy::Never,
        clock: c,
        ..Options::durable(dir.path())
    })
    .unwrap();
    assert_eq!(before, shot(&e));
    expect(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"b","key":3,"bucket":20260303,"idempotency_key":"k"}"#,
        &idem("1", true),
    );
}

// ------------------------------------------------------------------ system.wal (extension)

#[test]
fn system_wal_reports_the_policy_and_the_fsyncs_of_a_durable_engine() {
    use karma_engine::FsyncPolicy;
    let (e, _dir) = durable_with(|o| o.wal_fsync = FsyncPolicy::Always);
    for key in 1..=3 {
        send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":{key}}}"#));
    }
    let reply = send(&e, r#"{"v":2,"op":"system.wal"}"#);
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let w = &v["response"];
    assert_eq!(v["success"], true, "{reply}");
    assert_eq!((w["policy"].as_str(), w["enabled"].as_bool()), (Some("always"), Some(true)), "{reply}");
    assert_eq!(
        (w["current_lsn"].as_u64(), w["durable_lsn"].as_u64(), w["entries"].as_u64()),
        (Some(3), Some(3), Some(3))
    );
    let (groups, fsyncs) = (w["groups"].as_u64().unwrap(), w["fsyncs"].as_u64().unwrap());
    assert!((1..=3).contains(&groups) && fsyncs == groups, "{reply}");
    assert!(w["fsync_us_max"].as_u64().unwrap() <= w["fsync_us_total"].as_u64().unwrap(), "{reply}");
    let metrics = e.metrics_text();
    assert!(metrics.contains("karma_wal_fsync_policy{policy=\"always\"} 1\n"), "{metrics}");
    assert!(metrics.contains(&format!("karma_wal_fsyncs_total {fsyncs}\n")), "{metrics}");
    assert!(metrics.contains("# TYPE karma_wal_fsync_seconds_max gauge\n"), "{metrics}");
    // A read: allowed with the read token and on a slave.
    let (slave, _d) = durable_with(|o| o.role = Role::Slave);
    assert!(send(&slave, r#"{"v":2,"op":"system.wal"}"#).contains("\"policy\":\"never\""));
}

#[test]
fn system_wal_without_fsyncs_leaves_the_metrics_as_karma_1_0_had_them() {
    let (e, _dir) = durable();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1}"#);
    let reply = send(&e, r#"{"v":2,"op":"system.wal"}"#);
    assert!(reply.contains(r#""policy":"never","enabled":true,"current_lsn":1,"durable_lsn":1,"groups":1,"entries":1,"fsyncs":0,"fsync_us_total":0,"fsync_us_max":0,"fsync_us_avg":0.0}"#), "{reply}");
    assert!(!e.metrics_text().contains("karma_wal_fsync"));
    let memory = engine();
    assert_eq!(
        send(&memory, r#"{"v":2,"op":"system.wal"}"#),
        r#"{"protocol_version":2,"success":true,"response":{"policy":"always","enabled":false,"current_lsn":0,"durable_lsn":0,"groups":0,"entries":0,"fsyncs":0,"fsync_us_total":0,"fsync_us_max":0,"fsync_us_avg":0.0},"error_code":null}"#
    );
}
