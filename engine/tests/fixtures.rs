//! Opens the Karma 1.0 data directories in `tests/fixtures/karma1` (written
//! by the original Crystal server, see `tests/fixtures/README.md`) and checks
//! every answer recorded in each fixture's `expected.json`.
//!
//! Each fixture's `data/` is copied to a temporary directory first: the
//! fixtures themselves are never opened. A missing fixture fails the test.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use karma_engine::{Engine, Options, Session};
use serde_json::{json, Value};

const FIXTURES: [&str; 5] =
    ["snapshot-plus-wal", "segmented-wal", "snapshots-only", "large-values", "bug-replay-batch-total"];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/karma1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A restored copy of one fixture's `data/`.
struct Opened {
    engine: Engine,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

fn open_copy(fixture: &str) -> Opened {
    let src = fixtures_dir().join(fixture).join("data");
    assert!(src.is_dir(), "fixture {fixture} is missing: {}", src.display());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    copy_dir(&src, &dir);
    let options = Options {
        wal_fsync: karma_engine::FsyncPolicy::Never,
        restore: true,
        // The records are dated when the fixtures were made; keep them
        // whatever today's date is.
        idempotency_max_age_seconds: 0,
        ..Options::durable(&dir)
    };
    let engine = Engine::open(options).unwrap_or_else(|e| panic!("{fixture}: open failed: {e}"));
    Opened { engine, dir, _tmp: tmp }
}

fn expected(fixture: &str) -> Value {
    let path = fixtures_dir().join(fixture).join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {fixture}: {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Sends one request line; returns the whole response envelope.
fn call(engine: &Engine, request: &Value) -> Value {
    let line = serde_json::to_vec(request).unwrap();
    let reply = engine.handle_line(&line, &Session::client());
    if let Some(lsn) = reply.lsn {
        engine.wait_durable(lsn).unwrap();
    }
    serde_json::from_slice(&reply.bytes).unwrap_or_else(|e| panic!("bad reply to {request}: {e}"))
}

/// Sends one request that must succeed; returns its `response`.
fn ok(engine: &Engine, request: Value) -> Value {
    let envelope = call(engine, &request);
    assert_eq!(envelope["success"], json!(true), "request {request} failed: {envelope}");
    envelope["response"].clone()
}

fn wal_current_lsn(engine: &Engine) -> u64 {
    let stats = ok(engine, json!({"v":2,"op":"system.stats"}));
    stats["wal_current_lsn"].as_u64().unwrap_or_else(|| panic!("no wal_current_lsn in {stats}"))
}

fn as_object(v: &Value) -> &serde_json::Map<String, Value> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}"))
}

fn series_names(engine: &Engine) -> BTreeSet<String> {
    let list = ok(engine, json!({"v":2,"op":"tree.list"}));
    list.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

/// Everything observable about the series of `fixture` (reads only).
fn check_series(fixture: &str, engine: &Engine, exp: &Value) {
    let want: BTreeSet<String> =
        exp["tree_list"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().into()).collect();
    assert_eq!(series_names(engine), want, "{fixture}: tree.list (as a set)");
    let range = exp["points_range"].clone();
    for (name, s) in as_object(&exp["series"]) {
        let info = ok(engine, json!({"v":2,"op":"tree.info","series":name}));
        assert_eq!(info, s["info"], "{fixture}: tree.info {name}");

        let keys = ok(engine, json!({"v":2,"op":"tree.keys","series":name,"limit":10000}));
        assert_eq!(keys["next_cursor"], Value::Null, "{fixture}: {name} has more than 10000 keys?");
        let got: BTreeMap<String, Value> = keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| (k["key"].as_u64().unwrap().to_string(), k["total"].clone()))
            .collect();
        let want: BTreeMap<String, Value> =
            as_object(&s["keys"]).iter().map(|(k, v)| (k.clone(), v["sum"].clone())).collect();
        assert_eq!(got, want, "{fixture}: tree.keys {name} (key -> total)");

        for (key, k) in as_object(&s["keys"]) {
            let key: u64 = key.parse().unwrap();
            let sum = ok(engine, json!({"v":2,"op":"counter.sum","series":name,"key":key}));
            assert_eq!(sum, k["sum"], "{fixture}: counter.sum {name}/{key}");
            let points = ok(engine, json!({"v":2,"op":"counter.series","series":name,"key":key,"range":range}));
            // Compared as maps: the order is insertion order, not sorted.
            assert_eq!(points, k["points"], "{fixture}: counter.series {name}/{key}");
        }
    }
}

/// Every idempotent request again: the recorded answer, `idempotent: true`,
/// nothing logged and nothing changed.
fn check_idempotency(fixture: &str, engine: &Engine, exp: &Value) {
    let records = as_object(&exp["idempotency"]);
    let lsn_before = wal_current_lsn(engine);
    for (key, rec) in records {
        let envelope = call(engine, &rec["request"]);
        assert_eq!(envelope["success"], json!(true), "{fixture}: idempotency {key}: {envelope}");
        assert_eq!(envelope["idempotent"], json!(true), "{fixture}: idempotency {key} not a hit: {envelope}");
        assert_eq!(envelope["response"], rec["response"], "{fixture}: idempotency {key} response");
    }
    assert_eq!(wal_current_lsn(engine), lsn_before, "{fixture}: idempotent hits must not be logged");
}

fn check_ingest(fixture: &str, engine: &Engine, exp: &Value) {
    for (id, want) in as_object(&exp["ingest_streams"]) {
        let mut req = json!({"v":2,"op":"ingest.begin","stream_id":id,"mode":want["mode"]});
        if !want["granularity"].is_null() {
            req["granularity"] = want["granularity"].clone();
        }
        let got = ok(engine, req);
        assert_eq!(&got, want, "{fixture}: ingest.begin {id}");
    }
}

/// The full bucket maps from a fresh `.tree` of `series`, decoded by a plain
/// MessagePack reader: key -> bucket -> value.
fn snapshot_buckets(engine: &Engine, dir: &Path, series: &str) -> HashMap<u64, HashMap<u64, u64>> {
    #[derive(serde::Deserialize)]
    struct Counter {
        table: HashMap<u64, u64>,
        #[allow(dead_code)]
        total: u64,
    }
    #[derive(serde::Deserialize)]
    struct Store {
        branches: Vec<HashMap<u64, Counter>>,
    }
    ok(engine, json!({"v":2,"op":"snapshot.create","series":series}));
    let suffix = format!("_{series}.tree");
    let newest = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(&suffix))
        .max_by_key(|n| n.split('_').next().unwrap().parse::<u64>().unwrap())
        .unwrap();
    let store: Store = rmp_serde::from_slice(&std::fs::read(dir.join(newest)).unwrap()).unwrap();
    store.branches.into_iter().flatten().map(|(k, c)| (k, c.table)).collect()
}

/// `points_outside_range`: buckets no date range can reach (0, 1, i64::MAX,
/// u64::MAX, 99991231), checked through the totals and a fresh snapshot.
fn check_outside_range(fixture: &str, opened: &Opened, exp: &Value) {
    let Some(outside) = exp.get("points_outside_range") else { return };
    for (series, keys) in as_object(outside) {
        let buckets = snapshot_buckets(&opened.engine, &opened.dir, series);
        for (key, points) in as_object(keys) {
            let key_n: u64 = key.parse().unwrap();
            let mut want: BTreeMap<u64, u64> = BTreeMap::new();
            for (b, v) in as_object(points).iter().chain(as_object(&exp["series"][series]["keys"][key]["points"])) {
                want.insert(b.parse().unwrap(), v.as_u64().unwrap());
            }
            let got: BTreeMap<u64, u64> = buckets[&key_n].iter().map(|(b, v)| (*b, *v)).collect();
            assert_eq!(got, want, "{fixture}: full bucket map of {series}/{key}");
            let total = want.values().try_fold(0u64, |a, v| a.checked_add(*v)).unwrap();
            assert_eq!(exp["series"][series]["keys"][key]["sum"].as_u64(), Some(total), "{fixture}: {series}/{key}");
        }
    }
}

/// The LSN right after opening, and that the next logged write gets
/// `next_write_lsn` (in `system.stats` and in `karma.wal`).
fn check_next_lsn(fixture: &str, opened: &Opened, exp: &Value) {
    let engine = &opened.engine;
    let current = exp["lsn"]["wal_current_lsn"].as_u64().unwrap();
    let next = exp["lsn"]["next_write_lsn"].as_u64().unwrap();
    assert_eq!(wal_current_lsn(engine), current, "{fixture}: wal_current_lsn after restore");
    ok(engine, json!({"v":2,"op":"counter.increment","series":"zz-lsn-probe","key":1,"bucket":20260101,"value":1}));
    assert_eq!(wal_current_lsn(engine), next, "{fixture}: LSN of the next write");
    let wal = std::fs::read_to_string(opened.dir.join("karma.wal")).unwrap();
    // A live WAL is zero-filled ahead of its last line (docs/persistence.md).
    let wal = wal.split('\0').next().unwrap_or_default();
    let last: Value = serde_json::from_str(wal.lines().rfind(|l| !l.trim().is_empty()).unwrap()).unwrap();
    assert_eq!(last["lsn"].as_u64(), Some(next), "{fixture}: last karma.wal line {last}");
    assert_eq!(last["entry"]["series"], json!("zz-lsn-probe"), "{fixture}: last karma.wal line {last}");
}

fn check_fixture(fixture: &str) {
    let exp = expected(fixture);
    let opened = open_copy(fixture);
    let engine = &opened.engine;

    check_series(fixture, engine, &exp);
    let recovery = ok(engine, json!({"v":2,"op":"recovery.status"}));
    assert_eq!(recovery, exp["recovery"], "{fixture}: recovery.status");
    check_idempotency(fixture, engine, &exp);
    // "Nothing changes": the hits did not touch the data.
    check_series(fixture, engine, &exp);
    check_outside_range(fixture, &opened, &exp);
    check_next_lsn(fixture, &opened, &exp);
    // ingest.begin may be logged, so it comes after the LSN check.
    check_ingest(fixture, engine, &exp);
    engine.close().unwrap();
}

#[test]
fn all_fixtures_are_present() {
    for fixture in FIXTURES {
        let dir = fixtures_dir().join(fixture);
        assert!(dir.join("data").is_dir(), "missing fixture data {}", dir.display());
        assert!(dir.join("expected.json").is_file(), "missing fixture answers {}", dir.display());
    }
}

#[test]
fn fixture_snapshot_plus_wal() {
    check_fixture("snapshot-plus-wal");
}

#[test]
fn fixture_segmented_wal() {
    check_fixture("segmented-wal");
}

#[test]
fn fixture_snapshots_only() {
    check_fixture("snapshots-only");
}

#[test]
fn fixture_large_values() {
    check_fixture("large-values");
}

/// The original cannot restart from this directory (`original_after_restart`);
/// Karma must, with the live answers.
#[test]
fn fixture_bug_replay_batch_total() {
    let exp = expected("bug-replay-batch-total");
    assert_eq!(exp["original_after_restart"]["started"], json!(false), "the fixture documents the original's crash");
    check_fixture("bug-replay-batch-total");
}

/// The active stream of snapshot-plus-wal survives with its chunk and series.
#[test]
fn fixture_snapshot_plus_wal_open_stream() {
    let exp = expected("snapshot-plus-wal");
    let want = &exp["ingest_streams"]["import-open"];
    assert_eq!(want["status"], json!("active"));
    assert_eq!(want["last_chunk_seq"], json!(1));
    assert_eq!(want["series"], json!("api_requests"));
    let opened = open_copy("snapshot-plus-wal");
    check_ingest("snapshot-plus-wal", &opened.engine, &exp);
    opened.engine.close().unwrap();
}
