//! counter reads: the ops of this section through `Engine::handle_line`.

use super::*;

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
