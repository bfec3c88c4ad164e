//! tree.*: the ops of this section through `Engine::handle_line`.

use super::*;

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
