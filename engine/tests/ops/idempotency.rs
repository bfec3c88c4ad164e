//! idempotency: the ops of this section through `Engine::handle_line`.

use super::*;

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
