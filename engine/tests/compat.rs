//! One test per deliberate difference from Karma 1.0 (spec/protocol.md §18),
//! named after the bug id so docs/compatibility.md can point at it. Each test
//! pins the NEW behaviour; the doc comment says what Karma 1.0 did.

mod support;

use std::sync::Arc;

use karma_engine::{Engine, Role};
use support::*;

fn big() -> Engine {
    engine_with(|o| o.max_request_bytes = 1 << 22)
}

/// Series `s`, key 1 at total `u64::MAX - 1` (buckets 20260101 and 20260102
/// at `i64::MAX` each), key 2 at 5 in 20260101.
fn near_max(e: &Engine) {
    for b in [20260101, 20260102] {
        expect_ok(
            e,
            &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":{b},"value":{I64_MAX}}}"#),
            &I64_MAX.to_string(),
        );
    }
    send(e, r#"{"v":2,"op":"counter.increment","series":"s","key":2,"bucket":20260101,"value":5}"#);
}

fn snapshot_of(e: &Engine) -> Vec<String> {
    let mut out = Vec::new();
    out.push(send(e, r#"{"v":2,"op":"tree.list"}"#));
    for name in response(e, r#"{"v":2,"op":"tree.list"}"#).as_array().unwrap() {
        let name = name.as_str().unwrap();
        out.push(format!("{:?}", observe(e, name)));
        out.push(send(e, &format!(r#"{{"v":2,"op":"tree.keys","series":"{name}","limit":10000}}"#)));
    }
    out
}

// ------------------------------------------------------------------ B3

/// Karma 1.0: `tree.keys` without `limit` → `internal_error` `Nil assertion failed`.
#[test]
fn b3_tree_keys_defaults_limit_100() {
    let e = engine();
    let items: Vec<[u64; 3]> = (1..=150).map(|k| [k, 20260101, k]).collect();
    e.batch_add("s", &items).unwrap();
    let v = response(&e, r#"{"v":2,"op":"tree.keys","series":"s"}"#);
    assert_eq!(v["limit"], 100);
    assert_eq!(v["keys"].as_array().unwrap().len(), 100);
    assert_eq!(v["next_cursor"], 100);
    let v = response(&e, r#"{"v":2,"op":"tree.keys","series":"s","cursor":100}"#);
    assert_eq!(v["keys"].as_array().unwrap().len(), 50);
    assert!(v["next_cursor"].is_null());
    assert_eq!(e.keys("s", None, None).unwrap().limit, 100);
}

/// Karma 1.0: `tree.top` without `limit` → `internal_error` `Nil assertion failed`.
#[test]
fn b3_tree_top_defaults_limit_50() {
    let e = engine();
    let items: Vec<[u64; 3]> = (1..=150).map(|k| [k, 20260101, k]).collect();
    e.batch_add("s", &items).unwrap();
    let v = response(&e, r#"{"v":2,"op":"tree.top","series":"s"}"#);
    assert_eq!(v["limit"], 50);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 50);
    assert_eq!(items[0]["key"], 150);
    assert_eq!(items[49]["key"], 101);
    assert_eq!(e.top("s", None, None).unwrap().len(), 50);
}

// ------------------------------------------------------------------ B4 / B5

/// Karma 1.0 (slow path: a token configured, a `token` or `range` key
/// present): `internal_error` `counter overflow`, and for a key-total
/// overflow the bucket was already increased (corrupt counter).
#[test]
fn b4_overflowing_increment_is_rejected_and_changes_nothing() {
    for auth in [false, true] {
        let e = engine_with(|o| {
            if auth {
                o.auth_token = Some("w".into());
            }
        });
        let tok = if auth { r#","token":"w""# } else { "" };
        for b in [20260101, 20260102] {
            send(
                &e,
                &format!(
                    r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":{b},"value":{I64_MAX}{tok}}}"#
                ),
            );
        }
        let before = send(
            &e,
            &format!(r#"{{"v":2,"op":"tree.series","series":"s","range":{{"from":20260101,"to":20260105}}{tok}}}"#),
        );
        // Key total overflow into a new bucket; also with a `range` key (slow path in 1.0).
        for extra in ["", r#","range":{"from":20260101,"to":20260101}"#] {
            expect_err(
                &e,
                &format!(
                    r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260103,"value":2{tok}{extra}}}"#
                ),
                "validation_error",
                "Counter overflow key=1 bucket=20260103",
            );
        }
        // Bucket overflow.
        expect_err(
            &e,
            &format!(
                r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260101,"value":{I64_MAX}{tok}}}"#
            ),
            "validation_error",
            "Counter overflow key=1 bucket=20260101",
        );
        let after = send(
            &e,
            &format!(r#"{{"v":2,"op":"tree.series","series":"s","range":{{"from":20260101,"to":20260105}}{tok}}}"#),
        );
        assert_eq!(before, after);
        expect_ok(
            &e,
            &format!(r#"{{"v":2,"op":"counter.sum","series":"s","key":1{tok}}}"#),
            &(u64::MAX - 1).to_string(),
        );
        // Exactly u64::MAX is allowed (inclusive limit).
        expect_ok(
            &e,
            &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260104{tok}}}"#),
            "1",
        );
        expect_ok(&e, &format!(r#"{{"v":2,"op":"counter.sum","series":"s","key":1{tok}}}"#), &u64::MAX.to_string());
    }
}

/// Karma 1.0: the batch_add pre-check did not cover counter totals; applying
/// failed with `internal_error` `counter overflow` after a partial update.
#[test]
fn b4_overflowing_batch_add_counter_total_is_rejected_and_changes_nothing() {
    let e = engine();
    near_max(&e);
    let before = snapshot_of(&e);
    expect_err(
        &e,
        r#"{"v":2,"op":"series.batch_add","series":"s","items":[[2,20260101,1],[1,20260105,2]]}"#,
        "validation_error",
        "Counter overflow in batch item key=1 bucket=20260105",
    );
    expect_err(
        &e,
        &format!(r#"{{"v":2,"op":"series.batch_add","series":"s","items":[[3,20260101,1],[1,20260101,{I64_MAX}]]}}"#),
        "validation_error",
        "Counter overflow in batch item key=1 bucket=20260101",
    );
    assert_eq!(before, snapshot_of(&e));
}

/// Karma 1.0: `Batch total overflow` was raised mid-batch, after earlier items
/// had been applied.
#[test]
fn b5_batch_total_overflow_changes_nothing() {
    let e = engine();
    near_max(&e);
    let before = snapshot_of(&e);
    for items in [
        format!("[[7,20260101,1],[8,20260101,{I64_MAX}],[9,20260101,{I64_MAX}],[10,20260101,2]]"),
        format!("[[2,20260101,{I64_MAX}],[2,20260101,{I64_MAX}],[2,20260101,2]]"),
    ] {
        expect_err(
            &e,
            &format!(r#"{{"v":2,"op":"series.batch_add","series":"s","items":{items}}}"#),
            "validation_error",
            "Batch total overflow",
        );
        expect_err(
            &e,
            &format!(r#"{{"v":2,"op":"series.batch_add","series":"s","items":{items},"idempotency_key":"k"}}"#),
            "validation_error",
            "Batch total overflow",
        );
    }
    assert_eq!(before, snapshot_of(&e));
    // The failed idempotent attempts stored nothing.
    assert_eq!(response(&e, r#"{"v":2,"op":"system.stats"}"#)["idempotency_record_count"], 0);
}

/// §9.12: "If the pre-check fails, nothing is created or changed (a missing
/// series stays missing)" — and B4/B5: a rejected batch changes nothing.
#[test]
fn b5_rejected_batch_does_not_create_its_series() {
    let e = engine();
    expect_err(
        &e,
        &format!(r#"{{"v":2,"op":"series.batch_add","series":"n","items":[[1,1,{I64_MAX}],[2,1,{I64_MAX}],[3,1,2]]}}"#),
        "validation_error",
        "Batch total overflow",
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
    expect_err(
        &e,
        &format!(r#"{{"v":2,"op":"series.batch_set","series":"n","items":[[1,1,{I64_MAX}],[2,1,{I64_MAX}],[3,1,2]]}}"#),
        "validation_error",
        "Counter overflow in batch item key=3 bucket=1",
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
}

/// Karma 1.0: batch_set kept a running sum of item values and raised `Batch
/// total overflow` mid-batch, after applying part of it. Karma drops that
/// running sum: batch_set's reply has no total, and the series-wide cap
/// already guarantees every stored total fits. So a batch whose *item
/// values* add up past u64::MAX (duplicates, last one wins) is applied whole.
#[test]
fn b5_batch_set_has_no_running_total_limit() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":20260101,"value":5}"#);
    expect_ok(
        &e,
        &format!(
            r#"{{"v":2,"op":"series.batch_set","series":"s","items":[[1,20260101,{I64_MAX}],[1,20260101,{I64_MAX}],[1,20260101,2]]}}"#
        ),
        r#"{"applied":3}"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, "2");
}

/// The batch_set series-wide cap is kept (a Karma 1.0 rule), but a series
/// already above u64::MAX no longer makes the pre-check fail with
/// `internal_error` `Arithmetic overflow` (B11).
#[test]
fn b11_batch_set_on_a_series_above_u64_max() {
    let e = engine();
    near_max(&e);
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":3,"bucket":20260101,"value":7}"#);
    let before = snapshot_of(&e);
    expect_err(
        &e,
        r#"{"v":2,"op":"series.batch_set","series":"s","items":[[4,20260101,0]]}"#,
        "validation_error",
        "Counter overflow in batch item key=4 bucket=20260101",
    );
    assert_eq!(before, snapshot_of(&e));
    // The projection is checked after every distinct pair (Karma 1.0's rule):
    // one that brings the series back under the cap is accepted.
    expect_ok(&e, r#"{"v":2,"op":"series.batch_set","series":"s","items":[[1,20260101,0]]}"#, r#"{"applied":1}"#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        &format!(r#"{{"tree":"s","key_count":3,"bucket_count":3,"total":{},"branches":9}}"#, I64_MAX + 12),
    );
}

// ------------------------------------------------------------------ B8 / B9

const SERIES_OPS: &[(&str, &str)] = &[
    ("tree.info", ""),
    ("tree.keys", ""),
    ("tree.summary", ""),
    ("tree.top", ""),
    ("tree.series", r#","range":{"from":20260101,"to":20260102}"#),
    ("counter.sum", r#","key":1"#),
    ("series.sum", r#","key":1"#),
    ("counter.batch_sum", r#","keys":[1]"#),
    ("counter.series", r#","key":1,"range":{"from":20260101,"to":20260102}"#),
    ("tree.create", ""),
    ("tree.drop", ""),
    ("tree.reset", ""),
    ("tree.delete_range", r#","range":{"from":20260101,"to":20260102}"#),
    ("series.compact", ""),
    ("counter.increment", r#","key":1"#),
    ("series.increment", r#","key":1"#),
    ("counter.decrement", r#","key":1"#),
    ("series.batch_add", r#","items":[]"#),
    ("series.batch_set", r#","items":[[1,1,1]]"#),
    ("counter.reset", r#","key":1"#),
    ("counter.batch_reset", r#","keys":[1]"#),
    ("counter.delete_range", r#","key":1,"range":{"from":20260101,"to":20260102}"#),
    ("counter.batch_delete_range", r#","keys":[1],"range":{"from":20260101,"to":20260102}"#),
    ("series.delete_before", r#","before":1"#),
    ("snapshot.create", ""),
    ("ingest.chunk", r#","stream_id":"st","chunk_seq":1,"items":[]"#),
];

fn with_series(op: &str, series_json: &str, fields: &str) -> String {
    format!(r#"{{"v":2,"op":"{op}","series":{series_json}{fields}}}"#)
}

/// Karma 1.0's fast path answered `counter.sum` on `""` with `not_found` and
/// let `counter.increment` create a series named `""`.
#[test]
fn b8_empty_series_name_is_rejected_everywhere() {
    let (e, _dir) = durable();
    send(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"st","mode":"add"}"#);
    for (op, fields) in SERIES_OPS {
        expect_err(&e, &with_series(op, r#""""#, fields), "validation_error", "Field tree_name is required");
    }
    // With auth on too, and via the `tree` field.
    let a = engine_with(|o| o.auth_token = Some("w".into()));
    expect_err(
        &a,
        r#"{"v":2,"op":"counter.increment","tree":"","key":1,"token":"w"}"#,
        "validation_error",
        "Field tree_name is required",
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
    assert_eq!(e.increment("", 1, None, 1).unwrap_err().message(), "Field tree_name is required");
}

/// Karma 1.0 accepted any name; `/` broke snapshot files. Names are now at
/// most 200 bytes without `/` or NUL.
#[test]
fn b9_series_names_with_slash_nul_or_over_200_bytes_are_rejected() {
    let (e, _dir) = durable();
    send(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"st","mode":"add"}"#);
    let slash = "Field tree_name must not contain '/' or NUL";
    let long = "Field tree_name exceeds max size of 200 bytes";
    let too_long = format!("\"{}\"", "a".repeat(201));
    // 67 three-byte characters = 201 bytes.
    let too_long_utf8 = format!("\"{}\"", "€".repeat(67));
    for (name, msg) in [
        (r#""a/b""#, slash),
        (r#""/""#, slash),
        (r#""../x""#, slash),
        (r#""a\u0000b""#, slash),
        (too_long.as_str(), long),
        (too_long_utf8.as_str(), long),
    ] {
        for (op, fields) in SERIES_OPS {
            expect_err(&e, &with_series(op, name, fields), "validation_error", msg);
        }
    }
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
    // Allowed: exactly 200 bytes, spaces, dots, quotes, non-ASCII.
    let exact = "b".repeat(200);
    for name in [exact.as_str(), "with space", "..", "quote\"d", "naïve-€", "back\\slash"] {
        let json = serde_json::to_string(name).unwrap();
        expect_ok(&e, &with_series("counter.increment", &json, r#","key":1,"bucket":1"#), "1");
        let saved = serde_json::to_string(&format!("Tree \"{name}\" saved")).unwrap();
        expect_ok(&e, &with_series("snapshot.create", &json, ""), &saved);
    }
    assert_eq!(response(&e, r#"{"v":2,"op":"tree.list"}"#).as_array().unwrap().len(), 6);
    // The typed API applies the same policy.
    assert_eq!(e.increment("x/y", 1, None, 1).unwrap_err().message(), slash);
    assert_eq!(e.create_series(&"c".repeat(201)).unwrap_err().message(), long);
}

// ------------------------------------------------------------------ B10 / Q15

/// Karma 1.0 stored a string bucket between i64::MAX and u64::MAX and logged
/// it in a form its WAL reader could not replay (B10).
#[test]
fn b10_string_bucket_above_i64_max_is_a_validation_error() {
    let (e, _dir) = durable();
    let message = "Field bucket must be at most 9223372036854775807";
    for bucket in ["9223372036854775808", "18446744073709551615", "9223-3720-3685-4775-808"] {
        for op in ["counter.increment", "counter.decrement"] {
            let req = format!(r#"{{"v":2,"op":"{op}","series":"s","key":1,"bucket":"{bucket}"}}"#);
            expect_err(&e, &req, "validation_error", message);
        }
    }
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
    // i64::MAX itself is fine and round-trips through the WAL.
    expect_ok(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":"9223372036854775807"}"#, "1");
    let v = response(&e, r#"{"v":2,"op":"replication.entries","after_lsn":0}"#);
    assert_eq!(v["entries"][0]["entry"]["bucket"], I64_MAX);
}

/// Karma 1.0: a bucket digit string above u64::MAX → `internal_error`
/// `Invalid UInt64: "..."` (Q15).
#[test]
fn q15_bucket_digit_string_above_u64_max_is_a_validation_error() {
    let e = engine();
    for bucket in ["18446744073709551616", "99999999999999999999", "1-0000000000000000000000000000"] {
        expect_err(
            &e,
            &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":"{bucket}"}}"#),
            "validation_error",
            "Field bucket must be at most 9223372036854775807",
        );
    }
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, "[]");
}

// ------------------------------------------------------------------ B11

/// Karma 1.0: `internal_error` `Arithmetic overflow` once the series-wide
/// total passed u64::MAX.
#[test]
fn b11_tree_info_and_summary_totals_saturate_at_u64_max() {
    let e = engine();
    near_max(&e);
    let max = u64::MAX;
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        &format!(r#"{{"tree":"s","key_count":2,"bucket_count":3,"total":{max},"branches":9}}"#),
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.summary","series":"s"}"#,
        &format!(r#"{{"tree":"s","total":{max},"active_keys":2,"bucket_count":3}}"#),
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.summary","series":"s","range":{"from":20260101,"to":20260102}}"#,
        &format!(
            r#"{{"tree":"s","range_from":20260101,"range_to":20260102,"total":{max},"active_keys":2,"bucket_count":3}}"#
        ),
    );
    // Per-counter reads are exact.
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.top","series":"s","limit":2}"#,
        &format!(r#"{{"tree":"s","limit":2,"items":[{{"key":1,"value":{}}},{{"key":2,"value":5}}]}}"#, max - 1),
    );
    assert_eq!(e.info("s").unwrap().total, max);
    assert_eq!(e.summary("s", None).unwrap().total, max);
}

// ------------------------------------------------------------------ B12

/// Karma 1.0: an idempotent batch_add whose `total` exceeded i64::MAX was
/// applied and logged, then answered `internal_error`; no record was stored,
/// so a retry applied it twice.
#[test]
fn b12_idempotent_batch_add_with_total_above_i64_max_replays() {
    let e = engine();
    let req = format!(
        r#"{{"v":2,"op":"series.batch_add","series":"s","items":[[1,20260101,{I64_MAX}],[2,20260101,{I64_MAX}]],"idempotency_key":"big"}}"#
    );
    let resp = format!(r#"{{"applied":2,"total":{}}}"#, u64::MAX - 1);
    expect(&e, &req, &idem(&resp, false));
    expect(&e, &req, &idem(&resp, true));
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, &I64_MAX.to_string());
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":2}"#, &I64_MAX.to_string());
    // Also across a restart from the WAL.
    let (d, dir) = durable();
    expect(&d, &req, &idem(&resp, false));
    d.close().unwrap();
    drop(d);
    // Reopened with the same clock, so the 7-day age limit keeps the record.
    let clock = karma_engine::clock::ManualClock::new(T0 + 60);
    let options = karma_engine::Options {
        wal_fsync: karma_engine::FsyncPolicy::Never,
        clock,
        ..karma_engine::Options::durable(dir.path())
    };
    let d = Engine::open(options).unwrap();
    expect(&d, &req, &idem(&resp, true));
    expect_ok(&d, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, &I64_MAX.to_string());
}

// ------------------------------------------------------------------ B16

/// Karma 1.0 bound a replace_series stream to the series of a chunk that was
/// then rejected; committing replaced the live series with an empty one.
#[test]
fn b16_replace_series_stream_is_bound_only_by_an_applied_chunk() {
    let e = big();
    send(&e, r#"{"v":2,"op":"series.batch_add","series":"live","items":[[1,20260101,3],[2,20260101,4]]}"#);
    let before = snapshot_of(&e);
    send(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"r","mode":"replace_series"}"#);
    let items = items_json(&vec![[9, 20260101, 1]; 10_001]);
    expect_err(
        &e,
        &format!(r#"{{"v":2,"op":"ingest.chunk","stream_id":"r","series":"live","chunk_seq":1,"items":{items}}}"#),
        "validation_error",
        "Field items exceeds max size",
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"ingest.begin","stream_id":"r","mode":"replace_series"}"#,
        r#"{"stream_id":"r","mode":"replace_series","series":null,"granularity":null,"status":"active","last_chunk_seq":0}"#,
    );
    expect_err(
        &e,
        r#"{"v":2,"op":"ingest.commit","stream_id":"r"}"#,
        "validation_error",
        "Cannot commit empty replace_series stream",
    );
    assert_eq!(before, snapshot_of(&e));
    // The stream can still be bound to another series by an applied chunk.
    expect_ok(
        &e,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"r","series":"other","chunk_seq":1,"items":[[5,20260101,2]]}"#,
        r#"{"stream_id":"r","chunk_seq":1,"skipped":false,"applied":1,"total":2}"#,
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"ingest.commit","stream_id":"r"}"#,
        r#"{"stream_id":"r","status":"committed","last_chunk_seq":1}"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"other","key":5}"#, "2");
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"live","key":2}"#, "4");
}

/// Same for an `add` stream whose binding chunk was rejected for a zero value.
#[test]
fn b16_rejected_chunk_does_not_bind_an_add_stream() {
    let e = engine();
    send(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"a","mode":"add"}"#);
    expect_err(
        &e,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"a","series":"one","chunk_seq":1,"items":[[1,1,0]]}"#,
        "validation_error",
        "Batch item value must be greater than 0",
    );
    expect_ok(
        &e,
        r#"{"v":2,"op":"ingest.chunk","stream_id":"a","series":"two","chunk_seq":1,"items":[[1,1,1]]}"#,
        r#"{"stream_id":"a","chunk_seq":1,"skipped":false,"applied":1,"total":1}"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["two"]"#);
}

// ------------------------------------------------------------------ Q14

/// Karma 1.0: an integer `limit` outside the signed 32-bit range →
/// `internal_error` `Arithmetic overflow`.
#[test]
fn q14_limit_outside_i32_is_a_validation_error() {
    let (e, _dir) = durable();
    for (op, extra) in [
        ("tree.keys", r#","series":"s""#),
        ("tree.top", r#","series":"s""#),
        ("replication.entries", r#","after_lsn":0"#),
        ("idempotency.prune", r#","before":0"#),
        ("snapshot.fetch_chunk", r#","file":"1_s.tree""#),
        ("idempotency.snapshot_fetch_chunk", ""),
    ] {
        for limit in ["2147483648", "9223372036854775807"] {
            expect_err(
                &e,
                &format!(r#"{{"v":2,"op":"{op}"{extra},"limit":{limit}}}"#),
                "validation_error",
                "Field limit exceeds max size",
            );
        }
        for limit in ["-2147483649", "-9223372036854775808"] {
            expect_err(
                &e,
                &format!(r#"{{"v":2,"op":"{op}"{extra},"limit":{limit}}}"#),
                "validation_error",
                "Field limit must be greater than 0",
            );
        }
    }
    // `v` outside i32 (Karma 1.0: internal_error) is simply not 2.
    expect_err(
        &e,
        r#"{"v":4294967298,"op":"system.ping"}"#,
        "unsupported_protocol",
        "Karma 1.0 accepts only protocol v2 requests with field v=2",
    );
    // Typed API: a usize limit above i64::MAX saturates instead of wrapping.
    send(&e, r#"{"v":2,"op":"tree.create","series":"s"}"#);
    assert_eq!(e.keys("s", None, Some(usize::MAX)).unwrap_err().message(), "Field limit exceeds max size");
}

// ------------------------------------------------------------------ Q20

/// Karma 1.0 grouped concurrent fast-path increments into one WAL write and
/// failed every increment of the group when one of them overflowed.
#[test]
fn q20_one_overflowing_increment_does_not_fail_others() {
    let (e, _dir) = durable_with(|o| o.wal_batch_wait = std::time::Duration::from_micros(200));
    for b in [1, 2] {
        send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":{b},"value":{I64_MAX}}}"#));
    }
    let e = Arc::new(e);
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let e = Arc::clone(&e);
            std::thread::spawn(move || {
                for i in 0..150 {
                    let got = send(
                        &e,
                        &format!(
                            r#"{{"v":2,"op":"counter.increment","series":"s","key":{},"bucket":{}}}"#,
                            10 + t,
                            20260101 + i % 3
                        ),
                    );
                    assert_eq!(got, ok("1"));
                }
            })
        })
        .collect();
    let spoiler = {
        let e = Arc::clone(&e);
        std::thread::spawn(move || {
            for _ in 0..150 {
                let got = send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":3,"value":2}"#);
                assert_eq!(got, fail("validation_error", "Counter overflow key=1 bucket=3"));
            }
        })
    };
    for w in writers {
        w.join().expect("writer");
    }
    spoiler.join().expect("spoiler");
    expect_ok(
        &e,
        r#"{"v":2,"op":"counter.batch_sum","series":"s","keys":[10,11,12,13]}"#,
        r#"[{"key":10,"value":150},{"key":11,"value":150},{"key":12,"value":150},{"key":13,"value":150}]"#,
    );
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, &(u64::MAX - 1).to_string());
}

// ------------------------------------------------------------------ Q23

/// Karma 1.0: `internal_error` `Invalid Int64: "abc"`.
#[test]
fn q23_snapshot_load_with_a_non_numeric_prefix_is_a_validation_error() {
    let (e, dir) = durable();
    std::fs::write(dir.path().join("abc_x.tree"), b"not a snapshot").unwrap();
    expect_err(
        &e,
        r#"{"v":2,"op":"snapshot.load","file":"abc_x.tree"}"#,
        "validation_error",
        r#"Invalid dump file name "abc_x.tree""#,
    );
    let m = engine();
    expect_err(
        &m,
        r#"{"v":2,"op":"snapshot.load","file":"abc_x.tree"}"#,
        "validation_error",
        r#"Invalid dump file name "abc_x.tree""#,
    );
}

// ------------------------------------------------------------------ others

/// Karma 1.0 logged failing non-idempotent mutations before failing (B1):
/// `tree.drop` of a missing series, batch resets on a missing series, and
/// overflowing batches all reached the WAL. Now only successes are logged.
#[test]
fn b1_failed_mutations_are_not_logged() {
    let (e, _dir) = durable();
    near_max(&e);
    let lsn = response(&e, r#"{"v":2,"op":"system.stats"}"#)["wal_current_lsn"].as_u64().unwrap();
    for req in [
        r#"{"v":2,"op":"tree.drop","series":"nope"}"#.to_string(),
        r#"{"v":2,"op":"counter.batch_reset","series":"nope","keys":[1]}"#.to_string(),
        r#"{"v":2,"op":"counter.batch_delete_range","series":"nope","keys":[1],"range":{"from":20260101,"to":20260101}}"#.to_string(),
        r#"{"v":2,"op":"series.delete_before","series":"nope","before":1}"#.to_string(),
        r#"{"v":2,"op":"series.compact","series":"nope"}"#.to_string(),
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":9,"value":2}"#.to_string(),
        format!(r#"{{"v":2,"op":"series.batch_add","series":"s","items":[[1,9,{I64_MAX}]]}}"#),
        r#"{"v":2,"op":"ingest.commit","stream_id":"nope"}"#.to_string(),
    ] {
        assert!(send(&e, &req).contains("\"success\":false"), "{req}");
    }
    send(&e, r#"{"v":2,"op":"ingest.begin","stream_id":"r","mode":"replace_series"}"#);
    send(&e, r#"{"v":2,"op":"ingest.commit","stream_id":"r"}"#);
    let v = response(&e, r#"{"v":2,"op":"replication.entries","after_lsn":0}"#);
    let ops: Vec<&str> = v["entries"].as_array().unwrap().iter().map(|x| x["entry"]["op"].as_str().unwrap()).collect();
    assert_eq!(ops[lsn as usize..], ["ingest.begin"], "{v}");
}

/// Only `--read-auth-token` set: as in Karma 1.0 (spec §6.1) no request can
/// write; access control that is half configured fails closed. Reads need
/// the read token and a wrong token is refused.
#[test]
fn read_token_only_server_refuses_every_write() {
    let e = engine_with(|o| o.read_auth_token = Some("r".into()));
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1}"#,
        "unauthorized",
        "Unauthorized",
    );
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"token":"x"}"#,
        "unauthorized",
        "Unauthorized",
    );
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"s","key":1,"token":"r"}"#,
        "forbidden",
        "Read-only token cannot execute command increment",
    );
    expect_err(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, "unauthorized", "Unauthorized");
    expect_err(
        &e,
        r#"{"v":2,"op":"counter.sum","series":"s","key":1,"token":"r"}"#,
        "not_found",
        r#"Tree "s" not found"#,
    );
}

/// A slave still refuses writes first-class through the typed API (sanity for
/// the role fixes above).
#[test]
fn slave_role_is_enforced_for_typed_writes() {
    let e = engine_with(|o| o.role = Role::Slave);
    assert_eq!(e.create_series("s").unwrap_err().message(), "Slave role cannot execute command create");
}

/// Karma 1.0 did not truncate the WAL on `snapshot.create` and replayed all of
/// it on top of the snapshot at restart: every earlier write counted twice.
#[test]
fn b2_snapshot_create_then_restart_does_not_double_count() {
    let (e, dir) = durable();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1,"value":3}"#);
    expect_ok(&e, r#"{"v":2,"op":"snapshot.create","series":"s"}"#, r#""Tree \"s\" saved""#);
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1,"value":4}"#);
    e.close().unwrap();
    drop(e);
    let clock = karma_engine::clock::ManualClock::new(T0);
    let e = Engine::open(karma_engine::Options {
        wal_fsync: karma_engine::FsyncPolicy::Never,
        clock,
        ..karma_engine::Options::durable(dir.path())
    })
    .unwrap();
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":1}"#, "7");
    assert_eq!(response(&e, r#"{"v":2,"op":"snapshot.verify"}"#)["status"], "ok");
}

/// Karma 1.0: after `tree.drop` → `snapshot.create_all` → restart, the dropped
/// series came back from its old snapshot file.
#[test]
fn b15_drop_survives_a_snapshot_cycle_and_restart() {
    let (e, dir) = durable();
    send(&e, r#"{"v":2,"op":"counter.increment","series":"gone","key":1,"bucket":1}"#);
    send(&e, r#"{"v":2,"op":"counter.increment","series":"kept","key":1,"bucket":1}"#);
    send(&e, r#"{"v":2,"op":"snapshot.create_all"}"#);
    expect_ok(&e, r#"{"v":2,"op":"tree.drop","series":"gone"}"#, r#""OK""#);
    send(&e, r#"{"v":2,"op":"snapshot.create_all"}"#);
    e.close().unwrap();
    drop(e);
    let clock = karma_engine::clock::ManualClock::new(T0);
    let e = Engine::open(karma_engine::Options {
        wal_fsync: karma_engine::FsyncPolicy::Never,
        clock,
        ..karma_engine::Options::durable(dir.path())
    })
    .unwrap();
    expect_ok(&e, r#"{"v":2,"op":"tree.list"}"#, r#"["kept"]"#);
}
