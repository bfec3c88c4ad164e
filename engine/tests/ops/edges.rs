//! more orders and edges: the ops of this section through `Engine::handle_line`.

use super::*;

#[test]
fn tree_series_order_survives_compaction_and_recreation() {
    let e = engine();
    for k in [1, 10, 19, 2] {
        send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":{k},"bucket":20260301}}"#));
    }
    send(&e, r#"{"v":2,"op":"counter.reset","series":"s","key":10}"#);
    send(&e, r#"{"v":2,"op":"series.compact","series":"s"}"#);
    let range = r#""range":{"from":20260301,"to":20260301}"#;
    expect_ok(
        &e,
        &format!(r#"{{"v":2,"op":"tree.series","series":"s",{range}}}"#),
        r#"{"1":{"20260301":1},"19":{"20260301":1},"2":{"20260301":1}}"#,
    );
    // A key created again goes to the end of its shard.
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":10,"bucket":20260301}"#);
    expect_ok(
        &e,
        &format!(r#"{{"v":2,"op":"tree.series","series":"s",{range}}}"#),
        r#"{"1":{"20260301":1},"19":{"20260301":1},"10":{"20260301":1},"2":{"20260301":1}}"#,
    );
}

#[test]
fn ingest_check_order_gap_before_binding_and_committed_zero_values() {
    let e = engine();
    send(&e, &begin("s", "add"));
    send(&e, &chunk("s", "q", 1, "[[1,1,1]]"));
    // A gap is reported before the binding check.
    expect_err(&e, &chunk("s", "other", 3, "[]"), "validation_error", "Field chunk_seq must be the next chunk");
    send(&e, &commit("s"));
    // On a committed stream, a zero value in an add chunk is a conflict, not a value error.
    expect_err(
        &e,
        &chunk("s", "q", 1, "[[1,1,0]]"),
        "idempotency_conflict",
        "Ingest stream was already committed with different chunks",
    );
    assert_eq!(stats(&e)["ingest_chunks_rejected"], 1);
}

#[test]
fn replication_entries_stop_at_the_byte_budget() {
    // Budget = max_response_bytes - 2048 (room for the envelope).
    let (e, _dir) = durable_with(|o| o.max_response_bytes = 2048 + 400);
    for k in 0..5 {
        send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"s","key":{k},"bucket":20260301}}"#));
    }
    let v = response(&e, r#"{"v":2,"op":"replication.entries","after_lsn":0}"#);
    assert_eq!(v["byte_limit"], 400);
    assert_eq!(v["truncated_by_bytes"], true);
    let count = v["count"].as_u64().unwrap();
    assert!((1..5).contains(&count), "{v}");
    assert_eq!(v["next_lsn"], count);
    let sizes: u64 =
        v["entries"].as_array().unwrap().iter().map(|x| serde_json::to_string(x).unwrap().len() as u64).sum();
    assert_eq!(v["entries_bytes"], sizes);
    assert!(sizes <= 400);
}

#[test]
fn snapshot_list_is_newest_first_and_create_all_keeps_the_retention() {
    let clock = karma_engine::clock::ManualClock::new(T0);
    let c = clock.clone();
    let (e, dir) = durable_with(move |o| {
        o.clock = c;
        o.dump_retention_per_tree = 2;
    });
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":1,"bucket":1}"#);
    for _ in 0..3 {
        expect_ok(&e, r#"{"v":2,"op":"snapshot.create_all"}"#, r#""OK""#);
        clock.advance(10);
    }
    let list = response(&e, r#"{"v":2,"op":"snapshot.list"}"#);
    let names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| std::path::Path::new(p.as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [format!("{}_s.tree", T0 + 20), format!("{}_s.tree", T0 + 10)]);
    assert!(!dir.path().join(format!("{T0}_s.tree")).exists());
    assert_eq!(response(&e, r#"{"v":2,"op":"snapshot.info"}"#)["dump_count"], 2);
}

#[test]
fn a_restart_replays_the_wal_to_the_same_state() {
    let clock = karma_engine::clock::ManualClock::new(T0);
    let c = clock.clone();
    let (e, dir) = durable_with(move |o| o.clock = c);
    for req in [
        r#"{"v":2,"op":"series.batch_add","series":"a","items":[[1,20260301,2],[10,20260302,3],[2,20260301,1]]}"#,
        r#"{"v":2,"op":"counter.increment","series":"a","key":1}"#,
        r#"{"v":2,"op":"counter.decrement","series":"a","key":5,"bucket":20260301}"#,
        r#"{"v":2,"op":"series.batch_set","series":"b","items":[[1,20260301,9],[2,20260301,0]]}"#,
        r#"{"v":2,"op":"counter.delete_range","series":"a","key":10,"range":{"from":20260302,"to":20260302}}"#,
        r#"{"v":2,"op":"counter.increment","series":"b","key":3,"bucket":20260303,"idempotency_key":"k"}"#,
        r#"{"v":2,"op":"tree.create","series":"c"}"#,
        r#"{"v":2,"op":"tree.drop","series":"c"}"#,
    ] {
        assert!(send(&e, req).contains("\"success\":true"), "{req}");
    }
    let shot = |e: &karma_engine::Engine| {
        let mut out = vec![send(e, r#"{"v":2,"op":"tree.list"}"#)];
        for s in ["a", "b"] {
            out.push(format!("{:?}", observe(e, s)));
            out.push(send(
                e,
                &format!(r#"{{"v":2,"op":"tree.series","series":"{s}","range":{{"from":20260301,"to":20260531}}}}"#),
            ));
        }
        out
    };
    let before = shot(&e);
    e.close().unwrap();
    drop(e);
    let c = clock.clone();
    let e = karma_engine::Engine::open(Options {
        wal_fsync: karma_engine::FsyncPolicy::Never,
        clock: c,
        ..Options::durable(dir.path())
    })
    .unwrap();
    assert_eq!(before, shot(&e));
    expect(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"b","key":3,"bucket":20260303,"idempotency_key":"k"}"#,
        &idem("1", true),
    );
}
