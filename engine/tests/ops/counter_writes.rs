//! counter writes: the ops of this section through `Engine::handle_line`.

use super::*;

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
