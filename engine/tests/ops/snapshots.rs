//! snapshots: the ops of this section through `Engine::handle_line`.

use super::*;

#[test]
fn snapshot_create_list_info_fetch_and_load() {
    let (e, dir) = durable();
    send(&e, r#"{"v":2,"op":"series.batch_add","series":"s","items":[[1,20260301,2],[2,20260302,3]]}"#);
    expect_ok(&e, r#"{"v":2,"op":"snapshot.create","series":"s"}"#, r#""Tree \"s\" saved""#);
    expect_err(&e, r#"{"v":2,"op":"snapshot.create","series":"x"}"#, "not_found", r#"Tree "x" not found"#);
    let file = format!("{T0}_s.tree");
    let list = response(&e, r#"{"v":2,"op":"snapshot.list"}"#);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let path = std::path::Path::new(list[0].as_str().unwrap());
    assert!(path.is_absolute(), "{path:?}");
    assert_eq!(path.file_name().unwrap().to_str().unwrap(), file);
    assert!(path.starts_with(dir.path().canonicalize().unwrap()) || path.starts_with(dir.path()), "{path:?}");

    let raw = raw_response(&e, r#"{"v":2,"op":"snapshot.info"}"#);
    assert_eq!(
        object_keys(&raw),
        [
            "dump_count",
            "latest_by_tree",
            "idempotency_snapshot",
            "last_snapshot_lsn",
            "wal_enabled",
            "wal_bytes",
            "wal_current_lsn",
            "dump_retention_per_tree"
        ]
    );
    let info: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(info["dump_count"], 1);
    assert_eq!(info["last_snapshot_lsn"], 1);
    assert_eq!(info["idempotency_snapshot"], serde_json::Value::Null);
    assert_eq!(info["dump_retention_per_tree"], 5);
    let bytes = std::fs::metadata(dir.path().join(&file)).unwrap().len();
    let meta = format!(
        r#"{{"tree":"s","file":"{file}","timestamp":{T0},"bytes":{bytes},"last_lsn":1,"metadata_file":"{file}.meta.json"}}"#
    );
    assert!(raw.contains(&format!(r#""latest_by_tree":[{meta}]"#)), "{raw}");

    let fetched = raw_response(&e, &format!(r#"{{"v":2,"op":"snapshot.fetch","file":"{file}"}}"#));
    assert_eq!(object_keys(&fetched), ["metadata", "data_base64"]);
    assert!(fetched.starts_with(&format!(r#"{{"metadata":{meta},"data_base64":""#)), "{fetched}");
    let whole: serde_json::Value = serde_json::from_str(&fetched).unwrap();
    let whole = whole["data_base64"].as_str().unwrap().to_owned();
    assert_eq!(whole.len() as u64, bytes.div_ceil(3) * 4);

    // Chunks: keys in order, defaults, and an empty final chunk.
    let chunk = raw_response(&e, &format!(r#"{{"v":2,"op":"snapshot.fetch_chunk","file":"{file}"}}"#));
    assert_eq!(
        object_keys(&chunk),
        ["metadata", "offset", "limit", "bytes", "total_bytes", "next_offset", "done", "data_base64"]
    );
    let c: serde_json::Value = serde_json::from_str(&chunk).unwrap();
    assert_eq!(c["offset"], 0);
    assert_eq!(c["limit"], 262_144);
    assert_eq!(c["bytes"], bytes);
    assert_eq!(c["total_bytes"], bytes);
    assert_eq!(c["next_offset"], bytes);
    assert_eq!(c["done"], true);
    assert_eq!(c["data_base64"], whole.as_str());
    let c = response(&e, &format!(r#"{{"v":2,"op":"snapshot.fetch_chunk","file":"{file}","offset":1,"limit":2}}"#));
    assert_eq!(c["offset"], 1);
    assert_eq!(c["limit"], 2);
    assert_eq!(c["bytes"], 2);
    assert_eq!(c["next_offset"], 3);
    assert_eq!(c["done"], false);
    let c = response(&e, &format!(r#"{{"v":2,"op":"snapshot.fetch_chunk","file":"{file}","offset":{bytes}}}"#));
    assert_eq!(c["bytes"], 0);
    assert_eq!(c["done"], true);
    assert_eq!(c["data_base64"], "");

    // Load replaces the series with the snapshot.
    send(&e, r#"{"v":2,"op":"counter.increment","series":"s","key":9,"bucket":20260301}"#);
    expect_ok(&e, &format!(r#"{{"v":2,"op":"snapshot.load","file":"{file}"}}"#), r#""Tree \"s\" loaded""#);
    expect_ok(
        &e,
        r#"{"v":2,"op":"tree.info","series":"s"}"#,
        r#"{"tree":"s","key_count":2,"bucket_count":2,"total":5,"branches":9}"#,
    );
    // Load creates a missing series (drop deletes the series' files: put the bytes back).
    let bytes_on_disk = std::fs::read(dir.path().join(&file)).unwrap();
    send(&e, r#"{"v":2,"op":"tree.drop","series":"s"}"#);
    assert!(!dir.path().join(&file).exists(), "tree.drop must delete the series' snapshots (B15)");
    std::fs::write(dir.path().join(&file), bytes_on_disk).unwrap();
    expect_ok(&e, &format!(r#"{{"v":2,"op":"snapshot.load","file":"{file}"}}"#), r#""Tree \"s\" loaded""#);
    expect_ok(&e, r#"{"v":2,"op":"counter.sum","series":"s","key":2}"#, "3");
    expect_err(&e, r#"{"v":2,"op":"snapshot.load","file":"1_nope.tree"}"#, "not_found", r#"Dump "nope" not found"#);
    expect_err(
        &e,
        r#"{"v":2,"op":"snapshot.fetch","file":"1_nope.tree"}"#,
        "not_found",
        r#"Snapshot "1_nope.tree" not found"#,
    );
}

#[test]
fn snapshot_create_all_verify_and_idempotency_snapshot_chunks() {
    let (e, _dir) = durable();
    expect_err(&e, r#"{"v":2,"op":"idempotency.snapshot_fetch_chunk"}"#, "not_found", "Idempotency snapshot not found");
    send(&e, r#"{"v":2,"op":"counter.increment","series":"a","key":1,"bucket":1,"idempotency_key":"k"}"#);
    send(&e, r#"{"v":2,"op":"counter.increment","series":"b","key":1,"bucket":1}"#);
    expect_ok(&e, r#"{"v":2,"op":"snapshot.create_all"}"#, r#""OK""#);
    let raw = raw_response(&e, r#"{"v":2,"op":"idempotency.snapshot_fetch_chunk"}"#);
    assert_eq!(
        object_keys(&raw),
        ["metadata", "offset", "limit", "bytes", "total_bytes", "next_offset", "done", "data_base64"]
    );
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(object_keys(&serde_json::to_string(&v["metadata"]).unwrap()).len(), 6, "metadata: {}", v["metadata"]);
    let meta_start = raw.find(r#""metadata":"#).unwrap() + 11;
    let meta_raw = &raw[meta_start..raw.find(r#","offset":"#).unwrap()];
    assert_eq!(
        object_keys(meta_raw),
        ["file", "timestamp", "bytes", "last_lsn", "record_count", "committed_stream_count"]
    );
    assert_eq!(v["metadata"]["record_count"], 1);
    assert_eq!(v["metadata"]["last_lsn"], 2);
    assert_eq!(v["done"], true);
    let info = response(&e, r#"{"v":2,"op":"snapshot.info"}"#);
    assert_eq!(info["dump_count"], 2);
    assert_eq!(info["last_snapshot_lsn"], 2);
    assert!(info["idempotency_snapshot"].is_object());
    assert_eq!(stats(&e)["dump_count"], 2);

    let raw = raw_response(&e, r#"{"v":2,"op":"snapshot.verify"}"#);
    assert_eq!(
        object_keys(&raw),
        [
            "status",
            "dump_count",
            "trees",
            "keys",
            "snapshot_metadata_checked",
            "snapshot_missing_metadata",
            "restore_snapshot_lsn",
            "wal_entries_checked",
            "wal_first_lsn",
            "wal_last_lsn",
            "wal_lsn_file"
        ]
    );
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["trees"], 2);
    assert_eq!(v["keys"], 2);
    // verify leaves the live idempotency records alone (fix of B7).
    expect(
        &e,
        r#"{"v":2,"op":"counter.increment","series":"a","key":1,"bucket":1,"idempotency_key":"k"}"#,
        &idem("1", true),
    );
}
