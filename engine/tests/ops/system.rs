//! system.*: the ops of this section through `Engine::handle_line`.

use super::*;

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
