//! One test per reachable message of spec/protocol.md §5.2 (exact code and
//! text), at least one request per error code of §5.1, and the same codes
//! through the typed API.

mod support;

use std::time::Duration;

use karma_engine::{Engine, ErrorCode, Range, Role};
use support::*;

fn big() -> Engine {
    engine_with(|o| o.max_request_bytes = 1 << 22)
}

fn err(e: &Engine, line: &str, code: &str, message: &str) {
    expect_err(e, line, code, message);
}

/// `Field <f> must be greater than or equal to 0`.
fn neg(e: &Engine, line: &str, field: &str) {
    expect_err(e, line, "validation_error", &format!("Field {field} must be greater than or equal to 0"));
}

fn v(e: &Engine, line: &str, message: &str) {
    expect_err(e, line, "validation_error", message);
}

// ------------------------------------------------------------------ envelope level

#[test]
fn invalid_json() {
    let e = engine();
    for bad in [
        "",
        "{",
        "nope",
        r#"{"v":2,"op":"system.ping""#,
        r#"{"v":2,"op":"counter.sum","series":"s","key":99999999999999999999}"#,
    ] {
        let (code, _) = error_of(&e, bad);
        assert_eq!(code, "invalid_json", "{bad:?}");
    }
}

#[test]
fn non_object_body_is_a_validation_error() {
    let e = engine();
    for bad in ["[1,2]", "5", r#""x""#, "null"] {
        let (code, _) = error_of(&e, bad);
        assert_eq!(code, "validation_error", "{bad}");
    }
    // The texts are not contractual; docs/compatibility.md quotes these.
    v(&e, "[1,2]", "Request must be a JSON object, got array");
    v(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":"42"}"#, "Field key must be an integer");
}

#[test]
fn request_exceeds_n_bytes() {
    let e = engine();
    let pad = "x".repeat(4096);
    err(
        &e,
        &format!(r#"{{"v":2,"op":"system.ping","pad":"{pad}"}}"#),
        "request_too_large",
        "Request exceeds 4096 bytes",
    );
    // Exactly the limit is accepted.
    let base = r#"{"v":2,"op":"system.ping","pad":""}"#;
    let exact = format!(r#"{{"v":2,"op":"system.ping","pad":"{}"}}"#, "x".repeat(4096 - base.len()));
    assert_eq!(exact.len(), 4096);
    expect_ok(&e, &exact, r#""pong""#);
}

#[test]
fn response_exceeds_n_bytes() {
    let e = engine_with(|o| o.max_response_bytes = 80);
    send(&e, &format!(r#"{{"v":2,"op":"tree.create","series":"{}"}}"#, "a".repeat(60)));
    err(&e, r#"{"v":2,"op":"tree.list"}"#, "response_too_large", "Response exceeds 80 bytes");
    // Error envelopes are not size-checked; the mutation itself happened.
    let e = engine_with(|o| o.max_response_bytes = 10);
    err(&e, r#"{"v":2,"op":"tree.create","series":"s"}"#, "response_too_large", "Response exceeds 10 bytes");
    err(&e, r#"{"v":2,"op":"tree.list"}"#, "response_too_large", "Response exceeds 10 bytes");
    err(&e, r#"{"v":2,"op":"tree.info","series":"x"}"#, "not_found", r#"Tree "x" not found"#);
}

#[test]
fn unsupported_protocol() {
    let e = engine();
    let msg = "Karma 1.0 accepts only protocol v2 requests with field v=2";
    for v in [r#""v":1,"#, "", r#""v":"2","#, r#""v":2.0,"#, r#""v":null,"#, r#""v":4294967298,"#] {
        err(&e, &format!(r#"{{{v}"op":"system.ping"}}"#), "unsupported_protocol", msg);
    }
}

#[test]
fn field_op_is_required() {
    let e = engine();
    v(&e, r#"{"v":2}"#, "Field op is required");
    v(&e, r#"{"v":2,"op":5}"#, "Field op is required");
    v(&e, r#"{"v":2,"op":null}"#, "Field op is required");
}

#[test]
fn unknown_op() {
    let e = engine();
    err(&e, r#"{"v":2,"op":"nope.nope"}"#, "unknown_command", "Unknown op nope.nope");
    err(&e, r#"{"v":2,"op":"system.verify"}"#, "unknown_command", "Unknown op system.verify");
}

#[test]
fn unauthorized() {
    let e = engine_with(|o| o.auth_token = Some("w".into()));
    err(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, "unauthorized", "Unauthorized");
    err(&e, r#"{"v":2,"op":"system.ping","token":"x"}"#, "unauthorized", "Unauthorized");
}

#[test]
fn forbidden_read_only_token() {
    let e = engine_with(|o| o.read_auth_token = Some("r".into()));
    err(
        &e,
        r#"{"v":2,"op":"tree.create","series":"s","token":"r"}"#,
        "forbidden",
        "Read-only token cannot execute command create",
    );
}

#[test]
fn forbidden_slave_role() {
    let e = engine_with(|o| o.role = Role::Slave);
    err(&e, r#"{"v":2,"op":"snapshot.create_all"}"#, "forbidden", "Slave role cannot execute command dump_all");
    err(
        &e,
        r#"{"v":2,"op":"series.increment","series":"s","key":1}"#,
        "forbidden",
        "Slave role cannot execute command increment",
    );
}

// ------------------------------------------------------------------ field extraction

#[test]
fn field_tree_or_series_is_required() {
    let e = engine();
    for req in [
        r#"{"v":2,"op":"counter.sum","key":1}"#,
        r#"{"v":2,"op":"counter.sum","tree":5,"series":null,"key":1}"#,
        r#"{"v":2,"op":"tree.info"}"#,
    ] {
        v(&e, req, "Field tree or series is required");
    }
    // `tree` wins when it is a string, else `series` when it is one.
    send(&e, r#"{"v":2,"op":"tree.create","series":"b"}"#);
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","tree":7,"series":"b","key":1}"#, "0");
    err(&e, r#"{"v":2,"op":"counter.sum","tree":"a","series":"b","key":1}"#, "not_found", r#"Tree "a" not found"#);
}

#[test]
fn field_key_is_required() {
    v(&engine(), r#"{"v":2,"op":"counter.increment","series":"s"}"#, "Field key is required");
    v(&engine(), r#"{"v":2,"op":"counter.sum","series":"s"}"#, "Field key is required");
}

#[test]
fn field_keys_is_required() {
    v(&engine(), r#"{"v":2,"op":"counter.batch_sum","series":"s"}"#, "Field keys is required");
    v(&engine(), r#"{"v":2,"op":"counter.batch_reset","series":"s"}"#, "Field keys is required");
}

#[test]
fn field_items_is_required() {
    let e = engine();
    v(&e, r#"{"v":2,"op":"series.batch_add","series":"s"}"#, "Field items is required");
    v(&e, r#"{"v":2,"op":"series.batch_set","series":"s"}"#, "Field items is required");
    v(&e, r#"{"v":2,"op":"counter.multi_sum"}"#, "Field items is required");
    v(&e, r#"{"v":2,"op":"ingest.chunk","stream_id":"x","series":"s","chunk_seq":1}"#, "Field items is required");
}

#[test]
fn each_item_must_be_key_bucket_value() {
    let e = engine();
    v(
        &e,
        r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,20260101]]}"#,
        "Each item must be [key, bucket, value]",
    );
    v(
        &e,
        r#"{"v":2,"op":"series.batch_set","series":"s","items":[[1,2,3,4]]}"#,
        "Each item must be [key, bucket, value]",
    );
    v(&e, r#"{"v":2,"op":"series.batch_add","series":"s","items":[[]]}"#, "Each item must be [key, bucket, value]");
}

#[test]
fn multi_sum_item_messages() {
    let e = engine();
    v(&e, r#"{"v":2,"op":"counter.multi_sum","items":[{"key":1}]}"#, "Field items[].series is required");
    v(&e, r#"{"v":2,"op":"counter.multi_sum","items":[{"tree":"s","key":1}]}"#, "Field items[].series is required");
    v(
        &e,
        r#"{"v":2,"op":"counter.multi_sum","items":[{"series":"","key":1}]}"#,
        "Field items[].series must not be empty",
    );
    v(&e, r#"{"v":2,"op":"counter.multi_sum","items":[{"series":"s"}]}"#, "Field items[].key is required");
    neg(&e, r#"{"v":2,"op":"counter.multi_sum","items":[{"series":"s","key":-1}]}"#, "items[].key");
}

#[test]
fn field_stream_id_is_required() {
    let e = engine();
    v(&e, r#"{"v":2,"op":"ingest.begin","mode":"add"}"#, "Field stream_id is required");
    v(&e, r#"{"v":2,"op":"ingest.begin","stream_id":5,"mode":"add"}"#, "Field stream_id is required");
    v(&e, r#"{"v":2,"op":"ingest.commit"}"#, "Field stream_id is required");
    // Empty: the validation copy.
    v(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"","mode":"add"}"#, "Field stream_id is required");
    v(&e, r#"{"v":2,"op":"ingest.abort","stream_id":""}"#, "Field stream_id is required");
    v(
        &e,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"","series":"s","chunk_seq":1,"items":[]}"#,
        "Field stream_id is required",
    );
}

#[test]
fn snapshot_file_messages() {
    let e = engine();
    for op in ["snapshot.fetch", "snapshot.fetch_chunk", "snapshot.load"] {
        v(&e, &format!(r#"{{"v":2,"op":"{op}"}}"#), "Field file is required");
        v(&e, &format!(r#"{{"v":2,"op":"{op}","file":7}}"#), "Field file is required");
        v(&e, &format!(r#"{{"v":2,"op":"{op}","file":""}}"#), "Field file must not be empty");
        v(&e, &format!(r#"{{"v":2,"op":"{op}","file":"../x.tree"}}"#), "Field file must be a snapshot basename");
        v(&e, &format!(r#"{{"v":2,"op":"{op}","file":"a/b.tree"}}"#), "Field file must be a snapshot basename");
        v(&e, &format!(r#"{{"v":2,"op":"{op}","file":"1_s.json"}}"#), "Field file must end with .tree");
    }
}

#[test]
fn field_mode_is_required() {
    let e = engine();
    v(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"x"}"#, "Field mode is required");
    v(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"x","mode":1}"#, "Field mode is required");
    v(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"x","mode":""}"#, "Field mode is required");
}

#[test]
fn field_chunk_seq_is_required() {
    v(
        &engine(),
        r#"{"v":2,"op":"ingest.chunk","stream_id":"x","series":"s","items":[]}"#,
        "Field chunk_seq is required",
    );
}

#[test]
fn reconciliation_required_fields() {
    let e = engine();
    v(&e, r#"{"v":2,"op":"reconciliation.report","mismatch_count":0}"#, "Field checked_points is required");
    v(&e, r#"{"v":2,"op":"reconciliation.report","checked_points":0}"#, "Field mismatch_count is required");
}

#[test]
fn field_source_is_required() {
    let e = engine();
    v(&e, r#"{"v":2,"op":"recovery.checkpoint","offset":1}"#, "Field source is required");
    v(&e, r#"{"v":2,"op":"recovery.checkpoint","source":1,"offset":1}"#, "Field source is required");
    v(&e, r#"{"v":2,"op":"recovery.checkpoint","source":"","offset":1}"#, "Field source is required");
}

#[test]
fn field_must_be_a_string_or_integer() {
    let e = engine();
    for (field, value) in [("source_offset", "null"), ("offset", "1.5"), ("event_id", "true"), ("event_id", "[1]")] {
        v(
            &e,
            &format!(r#"{{"v":2,"op":"recovery.checkpoint","source":"s","{field}":{value}}}"#),
            &format!("Field {field} must be a string or integer"),
        );
    }
    v(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"idempotency_key":null}"#,
        "Field idempotency_key must be a string or integer",
    );
    v(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"idempotency_key":"k","fingerprint":false}"#,
        "Field fingerprint must be a string or integer",
    );
    // Without idempotency_key the other idempotency fields are not examined.
    expect_ok(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"fingerprint":false}"#, "1");
}

#[test]
fn idempotency_created_at_unix_messages() {
    let e = engine();
    v(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"idempotency_key":"k","idempotency_created_at_unix":"1"}"#,
        "Field idempotency_created_at_unix must be an integer",
    );
    v(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"idempotency_key":"k","idempotency_created_at_unix":-1}"#,
        "Field idempotency_created_at_unix must be greater than or equal to 0",
    );
    // Parsed for any op, even a non-eligible one.
    v(
        &e,
        r#"{"v":2,"op":"system.ping","idempotency_key":"k","idempotency_created_at_unix":1.5}"#,
        "Field idempotency_created_at_unix must be an integer",
    );
}

#[test]
fn field_before_messages() {
    let e = engine();
    v(&e, r#"{"v":2,"op":"idempotency.prune"}"#, "Field before is required");
    v(&e, r#"{"v":2,"op":"series.delete_before","series":"s"}"#, "Field before is required");
    neg(&e, r#"{"v":2,"op":"idempotency.prune","before":-1}"#, "before");
    neg(&e, r#"{"v":2,"op":"series.delete_before","series":"s","before":-1}"#, "before");
    neg(&e, r#"{"v":2,"op":"series.delete_before","series":"s","date":-1}"#, "date");
    for bad in ["1.5", "null", "true", "{}"] {
        v(
            &e,
            &format!(r#"{{"v":2,"op":"idempotency.prune","before":{bad}}}"#),
            "Field before must be an integer or ISO8601 timestamp",
        );
    }
    for bad in ["2026-05-29", "yesterday", "2026-05-29T00:00:00", "2026-02-30T00:00:00Z", ""] {
        v(
            &e,
            &format!(r#"{{"v":2,"op":"idempotency.prune","before":"{bad}"}}"#),
            "Field before must be an ISO8601 timestamp",
        );
    }
    expect_ok(&e, r#"{"v":2,"op":"idempotency.prune","before":"2030-01-01T00:00:00+03:00"}"#, r#"{"deleted":0}"#);
}

#[test]
fn field_offset_must_be_non_negative() {
    let e = engine();
    neg(&e, r#"{"v":2,"op":"snapshot.fetch_chunk","file":"1_s.tree","offset":-1}"#, "offset");
    neg(&e, r#"{"v":2,"op":"idempotency.snapshot_fetch_chunk","offset":-1}"#, "offset");
}

#[test]
fn field_after_lsn_messages() {
    let e = engine();
    v(&e, r#"{"v":2,"op":"replication.entries"}"#, "Field after_lsn is required");
    neg(&e, r#"{"v":2,"op":"replication.entries","after_lsn":-1}"#, "after_lsn");
}

#[test]
fn range_field_messages() {
    let e = engine();
    v(&e, r#"{"v":2,"op":"counter.series","series":"s","key":1}"#, "Field range is required");
    v(&e, r#"{"v":2,"op":"tree.series","series":"s"}"#, "Field range is required");
    v(&e, r#"{"v":2,"op":"counter.delete_range","series":"s","key":1}"#, "Field range is required");
    v(&e, r#"{"v":2,"op":"counter.batch_delete_range","series":"s","keys":[]}"#, "Field range is required");
    v(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1,"range":{"to":20260101}}"#, "Field range.from is required");
    v(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1,"range":{"from":20260101}}"#, "Field range.to is required");
    neg(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1,"range":{"from":-1,"to":1}}"#, "range.from");
    neg(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1,"range":{"from":1,"to":-1}}"#, "range.to");
    v(
        &e,
        r#"{"v":2,"op":"counter.sum","series":"s","key":1,"range":{"from":20260502,"to":20260501}}"#,
        "Bucket range start must be less than or equal to range end",
    );
    // range: null and non-objects are type errors.
    for bad in ["null", "5", "[1,2]"] {
        let (code, _) = error_of(&e, &format!(r#"{{"v":2,"op":"counter.sum","series":"s","key":1,"range":{bad}}}"#));
        assert_eq!(code, "validation_error");
    }
}

#[test]
fn field_must_be_greater_than_or_equal_to_zero() {
    let e = engine();
    neg(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":-5}"#, "key");
    neg(&e, r#"{"v":2,"op":"counter.batch_sum","series":"s","keys":[1,-2]}"#, "keys[]");
    neg(&e, r#"{"v":2,"op":"series.batch_add","series":"s","items":[[-1,1,1]]}"#, "items[][0]");
    neg(&e, r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,-1,1]]}"#, "items[][1]");
    neg(&e, r#"{"v":2,"op":"series.batch_set","series":"s","items":[[1,1,-1]]}"#, "items[][2]");
    neg(&e, r#"{"v":2,"op":"ingest.chunk","stream_id":"x","series":"s","chunk_seq":-1,"items":[]}"#, "chunk_seq");
    neg(&e, r#"{"v":2,"op":"tree.keys","series":"s","cursor":-1}"#, "cursor");
    neg(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"date":-1}"#, "date");
    neg(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":-1}"#, "bucket");
    neg(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":"-2026-01-01"}"#, "bucket");
    neg(&e, r#"{"v":2,"op":"counter.decrement","series":"s","key":1,"value":-1}"#, "value");
}

#[test]
fn type_errors_are_validation_errors() {
    let e = engine();
    for req in [
        r#"{"v":2,"op":"counter.sum","series":"s","key":"42"}"#,
        r#"{"v":2,"op":"counter.sum","series":"s","key":1.5}"#,
        r#"{"v":2,"op":"counter.sum","series":"s","key":null}"#,
        r#"{"v":2,"op":"counter.sum","series":"s","key":1e3}"#,
        r#"{"v":2,"op":"series.batch_add","series":"s","items":[5]}"#,
        r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,"20260101",1]]}"#,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":null}"#,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1.5}"#,
        r#"{"v":2,"op":"tree.keys","series":"s","limit":"5"}"#,
        r#"{"v":2,"op":"counter.batch_sum","series":"s","keys":5}"#,
    ] {
        let (code, _) = error_of(&e, req);
        assert_eq!(code, "validation_error", "{req}");
    }
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
}

#[test]
fn field_bucket_must_be_a_bucket_date() {
    let e = engine();
    for bad in ["x", "", "2026/05/05", "2026-05-05T00:00", " 1"] {
        v(
            &e,
            &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":"{bad}"}}"#),
            "Field bucket must be a bucket date",
        );
    }
}

// ------------------------------------------------------------------ validation

#[test]
fn field_tree_name_is_required() {
    let e = engine();
    v(&e, r#"{"v":2,"op":"counter.increment","series":"","key":1}"#, "Field tree_name is required");
    v(&e, r#"{"v":2,"op":"counter.sum","series":"","key":1}"#, "Field tree_name is required");
    v(&e, r#"{"v":2,"op":"tree.create","tree":"","series":"x"}"#, "Field tree_name is required");
    v(
        &e,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"x","series":"","chunk_seq":1,"items":[]}"#,
        "Field tree_name is required",
    );
}

#[test]
fn field_keys_exceeds_max_size() {
    let e = big();
    let keys: Vec<String> = (0..10_001).map(|k| k.to_string()).collect();
    let keys = keys.join(",");
    for op in ["counter.batch_sum", "counter.batch_reset"] {
        v(&e, &format!(r#"{{"v":2,"op":"{op}","series":"s","keys":[{keys}]}}"#), "Field keys exceeds max size");
    }
    v(
        &e,
        &format!(
            r#"{{"v":2,"op":"counter.batch_delete_range","series":"s","keys":[{keys}],"range":{{"from":20260101,"to":20260101}}}}"#
        ),
        "Field keys exceeds max size",
    );
    // 10000 is fine.
    send(&e, r#"{"v":2,"op":"tree.create","series":"s"}"#);
    let keys: Vec<String> = (0..10_000).map(|k| k.to_string()).collect();
    let got = send(&e, &format!(r#"{{"v":2,"op":"counter.batch_sum","series":"s","keys":[{}]}}"#, keys.join(",")));
    assert!(got.contains("\"success\":true"));
}

#[test]
fn field_items_exceeds_max_size() {
    let e = big();
    let items = vec![[1u64, 20260101, 1]; 10_001];
    let items = items_json(&items);
    for op in ["series.batch_add", "series.batch_set"] {
        v(&e, &format!(r#"{{"v":2,"op":"{op}","series":"s","items":{items}}}"#), "Field items exceeds max size");
    }
    let multi: Vec<&str> = vec![r#"{"series":"s","key":1}"#; 10_001];
    v(
        &e,
        &format!(r#"{{"v":2,"op":"counter.multi_sum","items":[{}]}}"#, multi.join(",")),
        "Field items exceeds max size",
    );
    send(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"x","mode":"add"}"#);
    v(
        &e,
        &format!(r#"{{"v":2,"op":"ingest.chunk","stream_id":"x","series":"s","chunk_seq":1,"items":{items}}}"#),
        "Field items exceeds max size",
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
}

#[test]
fn batch_item_value_must_be_greater_than_zero() {
    let e = engine();
    v(
        &e,
        r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,20260101,1],[1,20260101,0]]}"#,
        "Batch item value must be greater than 0",
    );
    send(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"x","mode":"add"}"#);
    v(
        &e,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"x","series":"s","chunk_seq":1,"items":[[1,1,0]]}"#,
        "Batch item value must be greater than 0",
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
}

#[test]
fn field_limit_messages() {
    let (e, _dir) = durable();
    for (op, extra, max) in [
        ("tree.keys", r#","series":"s""#, 10_000i64),
        ("tree.top", r#","series":"s""#, 1_000),
        ("replication.entries", r#","after_lsn":0"#, 10_000),
        ("idempotency.prune", r#","before":0"#, 100_000),
        ("snapshot.fetch_chunk", r#","file":"1_s.tree""#, 524_288),
        ("idempotency.snapshot_fetch_chunk", "", 524_288),
    ] {
        for zero in [0, -1] {
            v(&e, &format!(r#"{{"v":2,"op":"{op}"{extra},"limit":{zero}}}"#), "Field limit must be greater than 0");
        }
        v(&e, &format!(r#"{{"v":2,"op":"{op}"{extra},"limit":{}}}"#, max + 1), "Field limit exceeds max size");
    }
}

#[test]
fn field_value_must_be_greater_than_zero() {
    let e = engine();
    v(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"value":0}"#, "Field value must be greater than 0");
    v(&e, r#"{"v":2,"op":"counter.decrement","series":"s","key":1,"value":0}"#, "Field value must be greater than 0");
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
}

#[test]
fn range_exceeds_max_days() {
    let e = engine();
    v(
        &e,
        r#"{"v":2,"op":"counter.sum","series":"s","key":1,"range":{"from":20250101,"to":20260103}}"#,
        "Range exceeds max days",
    );
    // Across a leap year: 20240101..20250101 is 366 days (accepted), one more is not.
    v(
        &e,
        r#"{"v":2,"op":"tree.summary","series":"s","range":{"from":20240101,"to":20250102}}"#,
        "Range exceeds max days",
    );
    err(
        &e,
        r#"{"v":2,"op":"tree.summary","series":"s","range":{"from":20240101,"to":20250101}}"#,
        "not_found",
        r#"Tree "s" not found"#,
    );
}

#[test]
fn invalid_bucket_date() {
    let e = engine();
    for (from, to) in
        [(20260230, 20260301), (1, 20260101), (20260101, 20261301), (20260431, 20260501), (99991231, 100000101)]
    {
        v(
            &e,
            &format!(r#"{{"v":2,"op":"counter.sum","series":"s","key":1,"range":{{"from":{from},"to":{to}}}}}"#),
            "Invalid bucket date",
        );
    }
}

#[test]
fn unsupported_ingest_mode() {
    v(&engine(), r#"{"v":2,"op":"ingest.begin","stream_id":"x","mode":"merge"}"#, "Unsupported ingest mode merge");
}

#[test]
fn ingest_sequencing_messages() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"x","mode":"add"}"#);
    v(
        &e,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"x","series":"s","chunk_seq":0,"items":[]}"#,
        "Field chunk_seq must be greater than 0",
    );
    v(
        &e,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"x","series":"s","chunk_seq":2,"items":[]}"#,
        "Field chunk_seq must be the next chunk",
    );
    send(&e, r#"{"v":2,"op":"ingest.chunk","stream_id":"x","series":"s","chunk_seq":1,"items":[]}"#);
    v(
        &e,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"x","series":"t","chunk_seq":2,"items":[]}"#,
        "Ingest stream is already bound to series s",
    );
    send(&e, r#"{"v":2,"op":"ingest.commit","stream_id":"x"}"#);
    v(
        &e,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"x","series":"s","chunk_seq":0,"items":[]}"#,
        "Field chunk_seq must be greater than 0",
    );
    send(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"r","mode":"replace_series"}"#);
    v(&e, r#"{"v":2,"op":"ingest.commit","stream_id":"r"}"#, "Cannot commit empty replace_series stream");
}

#[test]
fn ingest_stream_not_found() {
    let e = engine();
    err(
        &e,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"x","series":"s","chunk_seq":1,"items":[]}"#,
        "not_found",
        r#"Ingest stream "x" not found"#,
    );
    err(&e, r#"{"v":2,"op":"ingest.commit","stream_id":"x"}"#, "not_found", r#"Ingest stream "x" not found"#);
    err(&e, r#"{"v":2,"op":"ingest.abort","stream_id":"x"}"#, "not_found", r#"Ingest stream "x" not found"#);
}

#[test]
fn ingest_conflict_messages() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"x","mode":"add"}"#);
    err(
        &e,
        r#"{"v":2,"op":"ingest.begin","stream_id":"x","mode":"set"}"#,
        "idempotency_conflict",
        "Ingest stream already exists with different parameters",
    );
    send(&e, r#"{"v":2,"op":"ingest.chunk","stream_id":"x","series":"s","chunk_seq":1,"items":[[1,1,1]]}"#);
    err(
        &e,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"x","series":"s","chunk_seq":1,"items":[[1,1,2]]}"#,
        "idempotency_conflict",
        "Ingest chunk was already used with different payload",
    );
    send(&e, r#"{"v":2,"op":"ingest.commit","stream_id":"x"}"#);
    err(
        &e,
        r#"{"v":2,"op":"ingest.begin","stream_id":"x","mode":"add","granularity":"day"}"#,
        "idempotency_conflict",
        "Ingest stream was already committed with different parameters",
    );
    err(
        &e,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"x","series":"s","chunk_seq":2,"items":[]}"#,
        "idempotency_conflict",
        "Ingest stream was already committed with different chunks",
    );
    // Ingest conflicts are not idempotency-key conflicts.
    assert_eq!(response(&e, r#"{"v":2,"op":"system.stats"}"#)["idempotency_conflicts"], 0);
}

#[test]
fn idempotency_messages() {
    let e = engine();
    let inc = |extra: &str| format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1{extra}}}"#);
    v(&e, &inc(r#","idempotency_key":"""#), "Field idempotency_key must not be empty");
    v(&e, &inc(&format!(r#","idempotency_key":"{}""#, "k".repeat(257))), "Field idempotency_key exceeds max size");
    expect(&e, &inc(&format!(r#","idempotency_key":"{}""#, "k".repeat(256))), &idem("1", false));
    v(&e, &inc(r#","idempotency_key":"a","fingerprint":"""#), "Field fingerprint must not be empty");
    v(
        &e,
        &inc(&format!(r#","idempotency_key":"a","fingerprint":"{}""#, "f".repeat(513))),
        "Field fingerprint exceeds max size",
    );
    err(
        &e,
        &inc(r#","idempotency_key":"a","fingerprint":"abc""#),
        "idempotency_conflict",
        "Field fingerprint does not match request fingerprint",
    );
    send(&e, &inc(r#","idempotency_key":"b""#));
    err(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":2,"bucket":1,"idempotency_key":"b"}"#,
        "idempotency_conflict",
        "Idempotency key was already used with a different request",
    );
    // Nothing of the refused requests was applied.
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, "2");
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":2}"#, "0");
}

#[test]
fn tree_not_found() {
    err(&engine(), r#"{"v":2,"op":"tree.top","series":"q\"x","limit":1}"#, "not_found", "Tree \"q\"x\" not found");
    err(&engine(), r#"{"v":2,"op":"tree.drop","series":"x"}"#, "not_found", r#"Tree "x" not found"#);
}

#[test]
fn counter_overflow() {
    let e = engine();
    for b in [1, 2] {
        send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":{b},"value":{I64_MAX}}}"#));
    }
    v(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":3,"value":2}"#,
        "Counter overflow key=1 bucket=3",
    );
    send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":2,"bucket":5,"value":{I64_MAX}}}"#));
    send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":2,"bucket":5,"value":{I64_MAX}}}"#));
    v(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":2,"bucket":5,"value":2}"#,
        "Counter overflow key=2 bucket=5",
    );
}

#[test]
fn counter_overflow_in_batch_item() {
    let e = engine();
    send(&e, &format!(r#"{{"v":2,"op":"series.batch_add","series":"s","items":[[1,7,{I64_MAX}],[1,7,{I64_MAX}]]}}"#));
    v(
        &e,
        r#"{"v":2,"op":"series.batch_add","series":"s","items":[[2,7,1],[1,7,2]]}"#,
        "Counter overflow in batch item key=1 bucket=7",
    );
    // batch_set: the series-wide projected total.
    v(
        &e,
        r#"{"v":2,"op":"series.batch_set","series":"s","items":[[2,7,1],[3,7,2],[1,7,1]]}"#,
        "Counter overflow in batch item key=3 bucket=7",
    );
}

#[test]
fn batch_total_overflow() {
    let e = engine();
    v(
        &e,
        &format!(r#"{{"v":2,"op":"series.batch_add","series":"s","items":[[1,7,{I64_MAX}],[1,7,{I64_MAX}],[1,7,2]]}}"#),
        "Batch total overflow",
    );
    v(
        &e,
        &format!(r#"{{"v":2,"op":"series.batch_add","series":"s","items":[[1,7,{I64_MAX}],[2,7,{I64_MAX}],[3,7,2]]}}"#),
        "Batch total overflow",
    );
    // That nothing changes (not even the series creation) is checked in compat.rs (b5_...).
}

#[test]
fn query_exceeded_n_ms() {
    let e = engine_with(|o| o.query_timeout = Some(Duration::from_millis(1)));
    let items: Vec<[u64; 3]> = (0..10_000).map(|k| [k, 20260101, 1]).collect();
    for chunk in 0..30u64 {
        let items: Vec<[u64; 3]> = items.iter().map(|i| [i[0] + chunk * 10_000, i[1], i[2]]).collect();
        e.batch_add("s", &items).unwrap();
    }
    let mut timed_out = false;
    for _ in 0..20 {
        let got = send(&e, r#"{"v":2,"op":"tree.series","series":"s","range":{"from":20260101,"to":20260101}}"#);
        if got == fail("query_timeout", "Query exceeded 1 ms") {
            timed_out = true;
            break;
        }
    }
    assert!(timed_out, "a 300000-counter scan never exceeded 1 ms");
    assert!(response(&e, r#"{"v":2,"op":"system.stats"}"#)["query_timeout_count"].as_u64().unwrap() >= 1);
    // Counter-level reads are not bounded.
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":5}"#, "1");
}

#[test]
fn replication_gap() {
    let (e, _dir) = durable();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1}"#);
    send(&e, r#"{"v":2,"op":"snapshot.create_all"}"#);
    err(
        &e,
        r#"{"v":2,"op":"replication.entries","after_lsn":0}"#,
        "replication_gap",
        "Requested WAL after_lsn 0 is older than snapshot LSN 1; bootstrap from snapshot",
    );
}

#[test]
fn single_wal_entry_exceeds_replication_budget() {
    let (e, _dir) = durable_with(|o| o.max_response_bytes = 120);
    let items: Vec<[u64; 3]> = (0..20).map(|k| [k, 20260101, 1]).collect();
    let got = send(&e, &format!(r#"{{"v":2,"op":"series.batch_add","series":"s","items":{}}}"#, items_json(&items)));
    assert!(got.contains("\"success\":true"), "{got}");
    err(
        &e,
        r#"{"v":2,"op":"replication.entries","after_lsn":0}"#,
        "response_too_large",
        "Single WAL entry 1 exceeds replication response byte budget",
    );
}

#[test]
fn snapshot_not_found_messages() {
    let (e, _dir) = durable();
    err(&e, r#"{"v":2,"op":"snapshot.fetch","file":"1_x.tree"}"#, "not_found", r#"Snapshot "1_x.tree" not found"#);
    err(
        &e,
        r#"{"v":2,"op":"snapshot.fetch_chunk","file":"1_x.tree"}"#,
        "not_found",
        r#"Snapshot "1_x.tree" not found"#,
    );
    err(&e, r#"{"v":2,"op":"snapshot.load","file":"1_x.tree"}"#, "not_found", r#"Dump "x" not found"#);
    err(&e, r#"{"v":2,"op":"idempotency.snapshot_fetch_chunk"}"#, "not_found", "Idempotency snapshot not found");
    // Limit errors win over a missing file.
    v(&e, r#"{"v":2,"op":"snapshot.fetch_chunk","file":"1_x.tree","limit":0}"#, "Field limit must be greater than 0");
}

#[test]
fn invalid_dump_file_name() {
    let (e, _dir) = durable();
    for file in ["abc.tree", "1_.tree", "abc_x.tree"] {
        v(
            &e,
            &format!(r#"{{"v":2,"op":"snapshot.load","file":"{file}"}}"#),
            &format!("Invalid dump file name \"{file}\""),
        );
    }
}

#[test]
fn field_offset_exceeds_snapshot_sizes() {
    let (e, _dir) = durable();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1}"#);
    send(&e, r#"{"v":2,"op":"snapshot.create_all"}"#);
    let file = format!("{T0}_s.tree");
    v(
        &e,
        &format!(r#"{{"v":2,"op":"snapshot.fetch_chunk","file":"{file}","offset":100000}}"#),
        "Field offset exceeds snapshot size",
    );
    v(
        &e,
        r#"{"v":2,"op":"idempotency.snapshot_fetch_chunk","offset":100000000}"#,
        "Field offset exceeds idempotency snapshot size",
    );
}

#[test]
fn recovery_checkpoint_messages() {
    let e = engine();
    v(&e, r#"{"v":2,"op":"recovery.checkpoint","source":"s"}"#, "Field offset or event_id is required");
    v(&e, r#"{"v":2,"op":"recovery.checkpoint","source":"s","offset":""}"#, "Field offset must not be empty");
    v(&e, r#"{"v":2,"op":"recovery.checkpoint","source":"s","source_offset":""}"#, "Field offset must not be empty");
    v(&e, r#"{"v":2,"op":"recovery.checkpoint","source":"s","event_id":""}"#, "Field event_id must not be empty");
    v(
        &e,
        r#"{"v":2,"op":"recovery.checkpoint","source":"s","offset":"1","event_id":""}"#,
        "Field event_id must not be empty",
    );
}

#[test]
fn reconciliation_messages() {
    let e = engine();
    let r = |c: i64, m: i64, extra: &str| {
        format!(r#"{{"v":2,"op":"reconciliation.report","checked_points":{c},"mismatch_count":{m}{extra}}}"#)
    };
    v(&e, &r(-1, 0, ""), "Field checked_points must be greater than or equal to 0");
    v(&e, &r(0, -1, ""), "Field mismatch_count must be greater than or equal to 0");
    v(&e, &r(1, 2, ""), "Field mismatch_count must be less than or equal to checked_points");
    v(&e, &r(2, 1, r#","absolute_drift":-1"#), "Field absolute_drift must be greater than or equal to 0");
    v(&e, &r(2, 1, r#","max_abs_delta":-1"#), "Field max_abs_delta must be greater than or equal to 0");
    let (code, _) = error_of(&e, &r(2, 1, r#","absolute_drift":"1""#));
    assert_eq!(code, "validation_error");
}

#[test]
fn no_data_directory_for_snapshot_ops_in_memory() {
    // Not in the spec (Karma 1.0 always has a directory): an in-memory engine
    // answers snapshot ops with a validation_error.
    let e = engine();
    for op in ["snapshot.list", "snapshot.create_all", "snapshot.info"] {
        let (code, _) = error_of(&e, &format!(r#"{{"v":2,"op":"{op}"}}"#));
        assert_eq!(code, "validation_error", "{op}");
    }
}

// ------------------------------------------------------------------ every code

#[test]
fn every_error_code_reachable_by_a_client() {
    let (e, _dir) = durable_with(|o| {
        o.max_response_bytes = 4000;
        o.query_timeout = Some(Duration::from_millis(1));
    });
    let mut seen = std::collections::BTreeSet::new();
    let mut note = |line: &str| {
        if let Some(c) = code_of(&e, line) {
            seen.insert(c);
        }
    };
    note("");
    note(r#"{"v":1,"op":"system.ping"}"#);
    note(r#"{"v":2,"op":"x"}"#);
    note(r#"{"v":2}"#);
    note(r#"{"v":2,"op":"tree.info","series":"nope"}"#);
    note(&format!(r#"{{"v":2,"op":"system.ping","pad":"{}"}}"#, "x".repeat(5000)));
    note(r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1,"idempotency_key":"k"}"#);
    note(r#"{"v":2,"op":"counter.increment","series":"s","key":2,"bucket":1,"idempotency_key":"k"}"#);
    note(r#"{"v":2,"op":"snapshot.create_all"}"#);
    note(r#"{"v":2,"op":"replication.entries","after_lsn":0}"#);
    for i in 0..200 {
        note(&format!(r#"{{"v":2,"op":"tree.create","series":"series-with-a-long-name-{i:03}"}}"#));
    }
    note(r#"{"v":2,"op":"tree.list"}"#);
    let expected: std::collections::BTreeSet<String> = [
        "invalid_json",
        "unsupported_protocol",
        "unknown_command",
        "validation_error",
        "not_found",
        "request_too_large",
        "idempotency_conflict",
        "replication_gap",
        "response_too_large",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(seen, expected);
    // unauthorized / forbidden / query_timeout have their own tests above;
    // replication_error is produced only by the replication machinery and
    // internal_error by no well-formed client request.
}

// ------------------------------------------------------------------ typed API

#[test]
fn typed_api_errors_carry_the_same_codes() {
    let e = engine();
    let r = |from, to| Range { from, to };
    assert_eq!(e.sum("nope", 1, None).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(e.sum("nope", 1, None).unwrap_err().message(), r#"Tree "nope" not found"#);
    assert_eq!(e.increment("", 1, None, 1).unwrap_err().message(), "Field tree_name is required");
    assert_eq!(e.increment("a/b", 1, None, 1).unwrap_err().code(), ErrorCode::ValidationError);
    assert_eq!(e.increment("s", 1, None, 0).unwrap_err().message(), "Field value must be greater than 0");
    assert_eq!(e.decrement("s", 1, None, 0).unwrap_err().code(), ErrorCode::ValidationError);
    assert_eq!(e.batch_add("s", &[[1, 1, 0]]).unwrap_err().message(), "Batch item value must be greater than 0");
    assert_eq!(e.batch_add("s", &vec![[1, 1, 1]; 10_001]).unwrap_err().message(), "Field items exceeds max size");
    assert_eq!(e.batch_sum("s", &vec![1; 10_001], None).unwrap_err().message(), "Field keys exceeds max size");
    e.create_series("s").unwrap();
    assert_eq!(e.keys("s", None, Some(10_001)).unwrap_err().message(), "Field limit exceeds max size");
    assert_eq!(e.keys("s", None, Some(0)).unwrap_err().message(), "Field limit must be greater than 0");
    assert_eq!(e.top("s", Some(1_001), None).unwrap_err().message(), "Field limit exceeds max size");
    assert_eq!(e.sum("s", 1, Some(r(20260230, 20260301))).unwrap_err().message(), "Invalid bucket date");
    assert_eq!(e.points("s", 1, r(20250101, 20260103)).unwrap_err().message(), "Range exceeds max days");
    assert_eq!(e.summary("x", None).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(e.drop_series("x").unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(e.delete_before("x", 1).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(e.compact(Some("x")).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(e.batch_reset("x", &[1]).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(e.batch_delete_range("x", &[1], r(20260101, 20260101)).unwrap_err().code(), ErrorCode::NotFound);
    e.increment("s", 1, Some(1), I64_MAX).unwrap();
    e.increment("s", 1, Some(2), I64_MAX).unwrap();
    let over = e.increment("s", 1, Some(3), 2).unwrap_err();
    assert_eq!((over.code(), over.message()), (ErrorCode::ValidationError, "Counter overflow key=1 bucket=3"));
    let over = e.batch_add("s", &[[1, 3, 2]]).unwrap_err();
    assert_eq!(
        (over.code(), over.message()),
        (ErrorCode::ValidationError, "Counter overflow in batch item key=1 bucket=3")
    );
    assert_eq!(e.sum("s", 1, None).unwrap(), u64::MAX - 1);
    // The typed API runs the role check too.
    let slave = engine_with(|o| o.role = Role::Slave);
    let f = slave.increment("s", 1, None, 1).unwrap_err();
    assert_eq!((f.code(), f.message()), (ErrorCode::Forbidden, "Slave role cannot execute command increment"));
    assert_eq!(slave.sum("s", 1, None).unwrap_err().code(), ErrorCode::NotFound);
}

#[test]
fn error_codes_have_their_wire_spelling() {
    let wire: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        wire,
        [
            "invalid_json",
            "unsupported_protocol",
            "unknown_command",
            "validation_error",
            "not_found",
            "unauthorized",
            "forbidden",
            "request_too_large",
            "response_too_large",
            "query_timeout",
            "idempotency_conflict",
            "replication_gap",
            "replication_error",
            "internal_error",
            "limit_exceeded"
        ]
    );
    for c in ErrorCode::ALL {
        assert_eq!(ErrorCode::from_wire(c.as_str()), Some(c));
    }
}
