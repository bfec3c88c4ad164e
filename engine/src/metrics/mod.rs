//! Operational counters and their two renderings: the `system.stats` object
//! and the `system.metrics` Prometheus text (same values, fixed order).

mod limits;

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::json::{write_str, write_u64};

pub use limits::{Limit, LimitCounters};

/// A running average and last value of a latency, in milliseconds. Lock
/// free: every request records one, from every connection at once.
#[derive(Debug, Default)]
pub struct Latency {
    last_ns: AtomicU64,
    total_ns: AtomicU64,
    count: AtomicU64,
}

impl Latency {
    pub fn record(&self, ms: f64) {
        let ns = (ms * 1_000_000.0) as u64;
        self.last_ns.store(ns, Ordering::Relaxed);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records `count` latencies that took `total` together (a batch of
    /// pipelined requests timed as one); the last value is their mean.
    pub fn record_many(&self, total: std::time::Duration, count: u64) {
        if count == 0 {
            return;
        }
        let ns = u64::try_from(total.as_nanos()).unwrap_or(u64::MAX);
        self.last_ns.store(ns / count, Ordering::Relaxed);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(count, Ordering::Relaxed);
    }

    /// (last, average)
    pub fn read(&self) -> (f64, f64) {
        let last = self.last_ns.load(Ordering::Relaxed) as f64 / 1_000_000.0;
        let count = self.count.load(Ordering::Relaxed);
        let total = self.total_ns.load(Ordering::Relaxed) as f64 / 1_000_000.0;
        (last, if count == 0 { 0.0 } else { total / count as f64 })
    }
}

/// Counters the engine bumps as it works. All relaxed atomics: they are
/// statistics, not synchronisation.
#[derive(Debug, Default)]
pub struct Metrics {
    pub commands: AtomicU64,
    pub errors: AtomicU64,
    pub query_timeouts: AtomicU64,
    pub batch_reads: AtomicU64,
    pub batch_read_keys: AtomicU64,
    pub batch_writes: AtomicU64,
    pub batch_write_items: AtomicU64,
    pub retention: AtomicU64,
    pub compactions: AtomicU64,
    pub reconciliation_runs: AtomicU64,
    pub reconciliation_checked_points: AtomicU64,
    pub reconciliation_mismatches: AtomicU64,
    pub reconciliation_drift: AtomicU64,
    pub reconciliation_last: Mutex<[u64; 5]>,
    pub ingest_chunks_applied: AtomicU64,
    pub ingest_chunks_skipped: AtomicU64,
    pub ingest_chunks_rejected: AtomicU64,
    pub ingest_items_applied: AtomicU64,
    pub idempotency_hits: AtomicU64,
    pub idempotency_conflicts: AtomicU64,
    pub idempotency_pruned: AtomicU64,
    pub idempotency_writes: AtomicU64,
    pub command_latency: Latency,
    pub ingest_latency: Latency,
    pub idempotency_latency: Latency,
    pub limits: LimitCounters,
}

#[inline]
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[inline]
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[inline]
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Replication progress, shared with the replication poller.
#[derive(Debug, Default)]
pub struct ReplicationStats {
    pub replayed_lsn: AtomicU64,
    pub source_lsn: AtomicU64,
    pub entries_applied: AtomicU64,
    pub last_received_unix: AtomicU64,
    pub poll_attempts: AtomicU64,
    pub poll_successes: AtomicU64,
    pub poll_errors: AtomicU64,
    pub last_poll_attempt_unix: AtomicU64,
    pub last_poll_success_unix: AtomicU64,
    pub last_poll_error_unix: AtomicU64,
    pub last_poll_error: Mutex<Option<String>>,
    pub bootstrap_attempts: AtomicU64,
    pub bootstrap_successes: AtomicU64,
    pub bootstrap_errors: AtomicU64,
    pub last_bootstrap_attempt_unix: AtomicU64,
    pub last_bootstrap_success_unix: AtomicU64,
    pub last_bootstrap_error_unix: AtomicU64,
    pub last_bootstrap_error: Mutex<Option<String>>,
}

/// One value of the stats table.
#[derive(Clone, Debug)]
pub enum Stat {
    U(u64),
    F(f64),
    B(bool),
    S(Option<String>),
    Role(&'static str),
}

/// A reading of every stat, in `system.stats` order.
pub struct StatsView {
    pub rows: Vec<(&'static str, Stat)>,
}

/// `system.metrics` names in exposition order, with the stats field each
/// one reports (spec/protocol.md §9.30).
const PROMETHEUS: &[(&str, &str)] = &[
    ("karma_uptime_seconds", "uptime_seconds"),
    ("karma_trees", "trees"),
    ("karma_keys", "keys"),
    ("karma_dumps", "dump_count"),
    ("karma_role", "role"),
    ("karma_wal_bytes", "wal_bytes"),
    ("karma_wal_current_lsn", "wal_current_lsn"),
    ("karma_replication_replayed_lsn", "replication_replayed_lsn"),
    ("karma_replication_lag_entries", "replication_lag_entries"),
    ("karma_replication_entries_applied_total", "replication_entries_applied"),
    ("karma_replication_last_received_unix", "replication_last_received_unix"),
    ("karma_replication_poll_attempts_total", "replication_poll_attempt_count"),
    ("karma_replication_poll_success_total", "replication_poll_success_count"),
    ("karma_replication_poll_errors_total", "replication_poll_error_count"),
    ("karma_replication_last_poll_attempt_unix", "replication_last_poll_attempt_unix"),
    ("karma_replication_last_poll_success_unix", "replication_last_poll_success_unix"),
    ("karma_replication_last_poll_error_unix", "replication_last_poll_error_unix"),
    ("karma_replication_bootstrap_attempts_total", "replication_bootstrap_attempt_count"),
    ("karma_replication_bootstrap_success_total", "replication_bootstrap_success_count"),
    ("karma_replication_bootstrap_errors_total", "replication_bootstrap_error_count"),
    ("karma_replication_last_bootstrap_attempt_unix", "replication_last_bootstrap_attempt_unix"),
    ("karma_replication_last_bootstrap_success_unix", "replication_last_bootstrap_success_unix"),
    ("karma_replication_last_bootstrap_error_unix", "replication_last_bootstrap_error_unix"),
    ("karma_memory_bytes", "memory_bytes"),
    ("karma_commands_total", "command_count"),
    ("karma_errors_total", "error_count"),
    ("karma_query_timeouts_total", "query_timeout_count"),
    ("karma_batch_reads_total", "batch_read_count"),
    ("karma_batch_read_keys_total", "batch_read_key_count"),
    ("karma_batch_writes_total", "batch_write_count"),
    ("karma_batch_write_items_total", "batch_write_item_count"),
    ("karma_retention_operations_total", "retention_count"),
    ("karma_compactions_total", "compact_count"),
    ("karma_reconciliation_runs_total", "reconciliation_run_count"),
    ("karma_reconciliation_checked_points_total", "reconciliation_checked_points"),
    ("karma_reconciliation_mismatches_total", "reconciliation_mismatch_count"),
    ("karma_reconciliation_absolute_drift_total", "reconciliation_absolute_drift"),
    ("karma_reconciliation_last_run_unix", "reconciliation_last_run_unix"),
    ("karma_reconciliation_last_checked_points", "reconciliation_last_checked_points"),
    ("karma_reconciliation_last_mismatches", "reconciliation_last_mismatch_count"),
    ("karma_reconciliation_last_absolute_drift", "reconciliation_last_absolute_drift"),
    ("karma_reconciliation_last_max_abs_delta", "reconciliation_last_max_abs_delta"),
    ("karma_recovery_checkpoints", "recovery_checkpoint_count"),
    ("karma_recovery_last_checkpoint_unix", "recovery_last_checkpoint_unix"),
    ("karma_command_latency_ms", "latency_ms_last"),
    ("karma_command_latency_ms_average", "latency_ms_avg"),
    ("karma_ingest_active_streams", "ingest_active_streams"),
    ("karma_ingest_chunks_applied_total", "ingest_chunks_applied"),
    ("karma_ingest_chunks_skipped_total", "ingest_chunks_skipped"),
    ("karma_ingest_chunks_rejected_total", "ingest_chunks_rejected"),
    ("karma_ingest_items_applied_total", "ingest_items_applied"),
    ("karma_ingest_chunk_latency_ms", "ingest_latency_ms_last"),
    ("karma_ingest_chunk_latency_ms_average", "ingest_latency_ms_avg"),
    ("karma_idempotency_records", "idempotency_record_count"),
    ("karma_idempotency_hits_total", "idempotency_hits"),
    ("karma_idempotency_conflicts_total", "idempotency_conflicts"),
    ("karma_idempotency_pruned_total", "idempotency_pruned"),
    ("karma_idempotency_writes_total", "idempotency_write_count"),
    ("karma_idempotency_write_latency_ms", "idempotency_write_latency_ms_last"),
    ("karma_idempotency_write_latency_ms_average", "idempotency_write_latency_ms_avg"),
    ("karma_idempotency_committed_streams", "idempotency_committed_stream_count"),
];

/// Writes a float the way Karma 1.0 (Crystal) does: always with a fraction.
pub fn write_f64(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        out.extend_from_slice(b"0.0");
        return;
    }
    out.extend_from_slice(format!("{f:?}").as_bytes());
}

fn write_stat(out: &mut Vec<u8>, v: &Stat) {
    match v {
        Stat::U(n) => write_u64(out, *n),
        Stat::F(f) => write_f64(out, *f),
        Stat::B(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Stat::S(Some(s)) => write_str(out, s),
        Stat::S(None) => out.extend_from_slice(b"null"),
        Stat::Role(r) => write_str(out, r),
    }
}

impl StatsView {
    fn get(&self, name: &str) -> Option<&Stat> {
        self.rows.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The `system.stats` object.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (name, v)) in self.rows.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, name);
            out.push(b':');
            write_stat(out, v);
        }
        out.push(b'}');
    }

    /// The Prometheus text exposition (`# TYPE` line before each sample).
    pub fn prometheus(&self) -> String {
        let mut out: Vec<u8> = Vec::with_capacity(6 * 1024);
        for (metric, field) in PROMETHEUS {
            let Some(v) = self.get(field) else { continue };
            let kind = if metric.ends_with("_total") { "counter" } else { "gauge" };
            out.extend_from_slice(format!("# TYPE {metric} {kind}\n").as_bytes());
            out.extend_from_slice(metric.as_bytes());
            match v {
                Stat::Role(r) => out.extend_from_slice(format!("{{role=\"{r}\"}} 1").as_bytes()),
                Stat::B(b) => out.extend_from_slice(if *b { b" 1" } else { b" 0" }),
                other => {
                    out.push(b' ');
                    write_stat(&mut out, other);
                }
            }
            out.push(b'\n');
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}
