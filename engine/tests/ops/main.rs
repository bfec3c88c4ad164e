//! Every op of spec/protocol.md §8.1 driven through `Engine::handle_line`, with
//! exact response lines (key order included).

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod counter_reads;
mod counter_writes;
mod edges;
mod idempotency;
mod ingest;
mod recovery;
mod snapshots;
mod system;
mod system_wal;
mod tree;

use karma_engine::{Options, Role, Session};
use support::*;

/// The `system.stats` response (several sections check its counts).
fn stats(e: &karma_engine::Engine) -> serde_json::Value {
    response(e, r#"{"v":2,"op":"system.stats"}"#)
}

/// Request lines of the ingest ops (several sections drive streams).
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
