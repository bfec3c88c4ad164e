//! ingest: the ops of this section through `Engine::handle_line`.

use super::*;

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
