//! Durability of the engine across close + reopen, in-process: every
//! mutating op, snapshots (single, all, partial), WAL segments, torn and
//! corrupt WAL lines, corrupt snapshots, the directory lock, idempotency
//! record times, active ingest streams, and the `.tree` MessagePack layout.
//!
//! The observable state is compared as a "dump" (see [`dump`]). The clock is
//! a [`ManualClock`], so snapshot file names and record times are
//! deterministic.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use karma_engine::clock::ManualClock;
use karma_engine::{Engine, Options, Session};
use serde_json::{json, Value};

const T0: u64 = 1_800_000_000;
const RANGE: &str = r#"{"from":20260101,"to":20261231}"#;

// ------------------------------------------------------------------ harness

struct Db {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    clock: Arc<ManualClock>,
}

impl Db {
    fn new() -> Db {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        Db { _tmp: tmp, dir, clock: ManualClock::new(T0) }
    }

    fn options(&self) -> Options {
        Options {
            wal_fsync: karma_engine::FsyncPolicy::Never,
            clock: self.clock.clone(),
            ..Options::durable(&self.dir)
        }
    }

    fn open(&self) -> Engine {
        self.open_with(self.options())
    }

    fn open_with(&self, options: Options) -> Engine {
        Engine::open(options).unwrap_or_else(|e| panic!("open {}: {e}", self.dir.display()))
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(&self.dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    fn wal_path(&self) -> PathBuf {
        self.dir.join("karma.wal")
    }
}

fn close(engine: Engine) {
    engine.close().unwrap();
    drop(engine);
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

fn range() -> Value {
    serde_json::from_str(RANGE).unwrap()
}

fn wal_current_lsn(engine: &Engine) -> u64 {
    ok(engine, json!({"v":2,"op":"system.stats"}))["wal_current_lsn"].as_u64().unwrap()
}

fn sum(engine: &Engine, series: &str, key: u64) -> u64 {
    ok(engine, json!({"v":2,"op":"counter.sum","series":series,"key":key})).as_u64().unwrap()
}

fn series_list(engine: &Engine) -> Vec<String> {
    let mut names: Vec<String> = ok(engine, json!({"v":2,"op":"tree.list"}))
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// What the dump probes besides the data: idempotent requests whose record
/// should exist (re-sent: they must be hits) and streams to `ingest.begin`.
#[derive(Default, Clone)]
struct Probes {
    idempotent: Vec<Value>,
    /// stream id -> the `ingest.begin` request (only active or committed
    /// streams: a begin of an unknown one would open it).
    streams: BTreeMap<String, Value>,
}

/// The observable state: every series (`tree.info`, `tree.keys` with
/// totals, `tree.series` over 2026), `recovery.status`, the answers to the
/// idempotency probes and to `ingest.begin` for every known stream.
fn dump(engine: &Engine, probes: &Probes) -> Value {
    let mut series = serde_json::Map::new();
    for name in series_list(engine) {
        let info = ok(engine, json!({"v":2,"op":"tree.info","series":name}));
        let keys = ok(engine, json!({"v":2,"op":"tree.keys","series":name,"limit":10000}));
        let points = ok(engine, json!({"v":2,"op":"tree.series","series":name,"range":range()}));
        series.insert(name, json!({"info":info,"keys":keys,"points":points}));
    }
    let recovery = ok(engine, json!({"v":2,"op":"recovery.status"}));
    let mut idem = serde_json::Map::new();
    for req in &probes.idempotent {
        let envelope = call(engine, req);
        assert_eq!(envelope["idempotent"], json!(true), "idempotency probe {req} was not a hit: {envelope}");
        idem.insert(req["idempotency_key"].as_str().unwrap().to_owned(), envelope);
    }
    let mut ingest = serde_json::Map::new();
    for (id, req) in &probes.streams {
        ingest.insert(id.clone(), call(engine, req));
    }
    json!({"series":series,"recovery":recovery,"idempotency":idem,"ingest":ingest})
}

/// Dumps, closes, reopens, dumps again and compares; also that the LSN
/// carries on. Returns the reopened engine.
fn restart_and_compare(db: &Db, engine: Engine, probes: &Probes, label: &str) -> Engine {
    let before = dump(&engine, probes);
    let lsn = wal_current_lsn(&engine);
    close(engine);
    let engine = db.open();
    assert_eq!(wal_current_lsn(&engine), lsn, "{label}: wal_current_lsn after restart");
    let after = dump(&engine, probes);
    if before != after {
        panic!(
            "{label}: state changed across restart\nbefore: {}\nafter:  {}",
            serde_json::to_string_pretty(&before).unwrap(),
            serde_json::to_string_pretty(&after).unwrap()
        );
    }
    engine
}

// ------------------------------------------------------------------ every mutating op

/// One request of a step and whether it must succeed.
enum Req {
    Ok(Value),
    /// Must fail (and leave no trace that breaks a restart, B1).
    Err(Value),
    /// Registers an idempotency probe after sending.
    Idem(Value),
    /// Registers a stream probe (`ingest.begin` with these fields).
    Begin(Value),
    /// The stream is about to go (aborted): stop probing it.
    Forget(&'static str),
    /// Every idempotency record is about to go (pruned): stop probing them.
    ForgetIdempotency,
}

struct Step {
    label: &'static str,
    reqs: Vec<Req>,
    /// False for steps that leave an ingest stream active (B14 is tested
    /// on its own).
    across_create_all: bool,
}

fn step(label: &'static str, reqs: Vec<Req>) -> Step {
    Step { label, reqs, across_create_all: true }
}

fn ingest(id: &str, op: &str, extra: Value) -> Value {
    let mut v = json!({"v":2,"op":op,"stream_id":id});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// Every mutating op, including aliases, idempotent forms and every ingest
/// mode. Buckets lie in 2026 so the dump's range sees them.
fn steps() -> Vec<Step> {
    use Req::*;
    let rg = range();
    let sub = json!({"from":20260110,"to":20260120});
    vec![
        step("tree.create", vec![Ok(json!({"v":2,"op":"tree.create","series":"a"}))]),
        step("tree.create b,c,d", {
            ["b", "c", "d"].iter().map(|s| Ok(json!({"v":2,"op":"tree.create","series":s}))).collect()
        }),
        step(
            "counter.increment",
            vec![
                Ok(json!({"v":2,"op":"counter.increment","series":"a","key":1,"bucket":20260105,"value":5})),
                Ok(json!({"v":2,"op":"counter.increment","series":"a","key":1,"bucket":20260115,"value":7})),
                Ok(json!({"v":2,"op":"counter.increment","series":"b","key":9,"bucket":20260115,"value":9})),
                Ok(json!({"v":2,"op":"counter.increment","series":"c","key":18,"bucket":20260301,"value":1})),
                Ok(
                    json!({"v":2,"op":"counter.increment","series":"ov","key":i64::MAX,"bucket":20260302,"value":i64::MAX}),
                ),
                Ok(
                    json!({"v":2,"op":"counter.increment","series":"ov","key":i64::MAX,"bucket":20260302,"value":i64::MAX}),
                ),
            ],
        ),
        step(
            "series.increment (alias, date alias, string bucket)",
            vec![
                Ok(json!({"v":2,"op":"series.increment","tree":"b","key":10,"date":20260106,"value":3})),
                Ok(json!({"v":2,"op":"counter.increment","series":"b","key":11,"bucket":"2026-01-07","value":4})),
            ],
        ),
        step(
            "counter.increment idempotent",
            vec![Idem(
                json!({"v":2,"op":"counter.increment","series":"a","key":2,"bucket":20260110,"value":3,"idempotency_key":"inc-1"}),
            )],
        ),
        step(
            "counter.decrement",
            vec![
                Ok(json!({"v":2,"op":"counter.decrement","series":"a","key":1,"bucket":20260105,"value":2})),
                // A missing key: creates an empty counter.
                Ok(json!({"v":2,"op":"counter.decrement","series":"a","key":99,"bucket":20260105,"value":1})),
                // Removes a whole bucket.
                Ok(json!({"v":2,"op":"counter.decrement","series":"b","key":10,"bucket":20260106,"value":100})),
            ],
        ),
        step(
            "counter.decrement idempotent",
            vec![Idem(
                json!({"v":2,"op":"counter.decrement","series":"a","key":1,"bucket":20260115,"value":1,"idempotency_key":"dec-1"}),
            )],
        ),
        step(
            "series.batch_add",
            vec![
                Ok(
                    json!({"v":2,"op":"series.batch_add","series":"a","items":[[2,20260110,3],[3,20260111,4],[1,20260112,6],[3,20260111,1]]}),
                ),
                Ok(json!({"v":2,"op":"counter.batch_increment","series":"b","items":[[12,20260201,2]]})),
                // An empty batch creates its series (Q8).
                Ok(json!({"v":2,"op":"series.batch_add","series":"e","items":[]})),
            ],
        ),
        step(
            "series.batch_add idempotent",
            vec![Idem(
                json!({"v":2,"op":"series.batch_add","series":"b","items":[[13,20260202,8],[14,20260203,9]],"idempotency_key":"badd-1"}),
            )],
        ),
        step(
            "series.batch_set",
            vec![Ok(
                json!({"v":2,"op":"series.batch_set","series":"a","items":[[2,20260110,10],[3,20260111,0],[4,20260113,0],[5,20260114,50]]}),
            )],
        ),
        step(
            "series.batch_set idempotent",
            vec![Idem(
                json!({"v":2,"op":"series.batch_set","series":"b","items":[[13,20260202,1]],"idempotency_key":"bset-1"}),
            )],
        ),
        step("counter.reset", vec![Ok(json!({"v":2,"op":"counter.reset","series":"a","key":2}))]),
        step(
            "counter.reset idempotent",
            vec![Idem(json!({"v":2,"op":"counter.reset","series":"b","key":14,"idempotency_key":"reset-1"}))],
        ),
        step(
            "counter.batch_reset",
            vec![
                Ok(json!({"v":2,"op":"counter.batch_reset","series":"a","keys":[5,77]})),
                Idem(json!({"v":2,"op":"counter.batch_reset","series":"b","keys":[12],"idempotency_key":"breset-1"})),
            ],
        ),
        step(
            "counter.delete_range",
            vec![
                Ok(json!({"v":2,"op":"counter.delete_range","series":"a","key":1,"range":sub})),
                Idem(
                    json!({"v":2,"op":"counter.delete_range","series":"b","key":11,"range":rg,"idempotency_key":"del-1"}),
                ),
            ],
        ),
        step(
            "counter.batch_delete_range",
            vec![
                Ok(json!({"v":2,"op":"counter.batch_delete_range","series":"b","keys":[9,13,404],"range":sub})),
                Idem(
                    json!({"v":2,"op":"counter.batch_delete_range","series":"c","keys":[18],"range":rg,"idempotency_key":"bdel-1"}),
                ),
            ],
        ),
        step(
            "tree.delete_range",
            vec![
                Ok(json!({"v":2,"op":"counter.increment","series":"d","key":1,"bucket":20260401,"value":1})),
                Ok(json!({"v":2,"op":"counter.increment","series":"d","key":1,"bucket":20260501,"value":2})),
                Ok(json!({"v":2,"op":"tree.delete_range","series":"d","range":{"from":20260401,"to":20260430}})),
                Idem(
                    json!({"v":2,"op":"tree.delete_range","series":"c","range":{"from":20260101,"to":20260131},"idempotency_key":"tdel-1"}),
                ),
            ],
        ),
        step(
            "tree.reset",
            vec![
                Ok(json!({"v":2,"op":"series.batch_add","series":"f","items":[[1,20260101,1],[2,20260102,2]]})),
                Ok(json!({"v":2,"op":"tree.reset","series":"f"})),
                Idem(json!({"v":2,"op":"tree.reset","series":"e","idempotency_key":"treset-1"})),
            ],
        ),
        step(
            "series.delete_before",
            vec![
                Ok(
                    json!({"v":2,"op":"series.batch_add","series":"g","items":[[1,20260101,1],[1,20260301,2],[2,20260102,5]]}),
                ),
                Ok(json!({"v":2,"op":"series.delete_before","series":"g","before":20260201})),
                Ok(json!({"v":2,"op":"tree.delete_before","series":"a","before":20260111})),
            ],
        ),
        step(
            "series.compact",
            vec![
                Ok(json!({"v":2,"op":"series.compact","series":"a"})),
                Ok(json!({"v":2,"op":"tree.compact","series":"f"})),
            ],
        ),
        step("system.compact", vec![Ok(json!({"v":2,"op":"system.compact"}))]),
        step(
            "tree.drop",
            vec![
                Ok(json!({"v":2,"op":"tree.drop","series":"d"})),
                Ok(json!({"v":2,"op":"tree.create","series":"h"})),
                Ok(json!({"v":2,"op":"counter.increment","series":"h","key":1,"bucket":20260101,"value":1})),
                Ok(json!({"v":2,"op":"tree.drop","series":"h"})),
            ],
        ),
        step(
            "failed requests leave no trace (B1)",
            vec![
                Err(json!({"v":2,"op":"tree.drop","series":"missing"})),
                Err(json!({"v":2,"op":"counter.batch_reset","series":"missing","keys":[1]})),
                Err(json!({"v":2,"op":"series.delete_before","series":"missing","before":20260101})),
                Err(json!({"v":2,"op":"series.compact","series":"missing"})),
                // Overflows (B4, B5): refused whole, on every path.
                Err(json!({"v":2,"op":"counter.increment","series":"ov","key":i64::MAX,"bucket":20260302,"value":2})),
                Err(
                    json!({"v":2,"op":"counter.increment","series":"ov","key":i64::MAX,"bucket":20260303,"value":2,"range":rg}),
                ),
                Err(
                    json!({"v":2,"op":"counter.increment","series":"ov","key":i64::MAX,"bucket":20260303,"value":2,"idempotency_key":"ov-1"}),
                ),
                Err(
                    json!({"v":2,"op":"series.batch_add","series":"ov","items":[[7,20260101,i64::MAX],[7,20260101,i64::MAX],[7,20260101,2]]}),
                ),
                Err(
                    json!({"v":2,"op":"series.batch_set","series":"ov","items":[[7,20260101,i64::MAX],[7,20260102,i64::MAX],[7,20260103,2]]}),
                ),
            ],
        ),
        step(
            "ingest add",
            vec![
                Begin(ingest("s-add", "ingest.begin", json!({"mode":"add","granularity":"day"}))),
                Ok(ingest("s-add", "ingest.chunk", json!({"series":"a","chunk_seq":1,"items":[[30,20260601,3]]}))),
                Ok(ingest(
                    "s-add",
                    "ingest.chunk",
                    json!({"series":"a","chunk_seq":2,"items":[[30,20260602,4],[31,20260601,5]]}),
                )),
                // A duplicate chunk: skipped.
                Ok(ingest(
                    "s-add",
                    "ingest.chunk",
                    json!({"series":"a","chunk_seq":2,"items":[[30,20260602,4],[31,20260601,5]]}),
                )),
                Ok(ingest("s-add", "ingest.commit", json!({}))),
            ],
        ),
        step(
            "ingest set",
            vec![
                Begin(ingest("s-set", "ingest.begin", json!({"mode":"set"}))),
                Ok(ingest(
                    "s-set",
                    "ingest.chunk",
                    json!({"series":"b","chunk_seq":1,"items":[[13,20260202,0],[40,20260701,6]]}),
                )),
                Ok(ingest("s-set", "ingest.commit", json!({}))),
            ],
        ),
        step(
            "ingest replace_series",
            vec![
                Begin(ingest("s-rep", "ingest.begin", json!({"mode":"replace_series","granularity":"day"}))),
                Ok(ingest("s-rep", "ingest.chunk", json!({"series":"g","chunk_seq":1,"items":[[50,20260801,7]]}))),
                Ok(ingest(
                    "s-rep",
                    "ingest.chunk",
                    json!({"series":"g","chunk_seq":2,"items":[[51,20260802,8],[52,20260803,0]]}),
                )),
                Ok(ingest("s-rep", "ingest.commit", json!({}))),
            ],
        ),
        step(
            "ingest abort",
            vec![
                Begin(ingest("s-abort", "ingest.begin", json!({"mode":"replace_series"}))),
                Ok(ingest("s-abort", "ingest.chunk", json!({"series":"a","chunk_seq":1,"items":[[60,20260901,9]]}))),
                Forget("s-abort"),
                Ok(ingest("s-abort", "ingest.abort", json!({}))),
                Begin(ingest("s-abort-add", "ingest.begin", json!({"mode":"add"}))),
                Ok(ingest(
                    "s-abort-add",
                    "ingest.chunk",
                    json!({"series":"b","chunk_seq":1,"items":[[61,20260901,1]]}),
                )),
                Forget("s-abort-add"),
                Ok(ingest("s-abort-add", "ingest.abort", json!({}))),
            ],
        ),
        Step {
            label: "ingest streams left active (add, set, replace_series)",
            reqs: vec![
                Begin(ingest("open-add", "ingest.begin", json!({"mode":"add","granularity":"day"}))),
                Ok(ingest("open-add", "ingest.chunk", json!({"series":"a","chunk_seq":1,"items":[[70,20261001,1]]}))),
                Begin(ingest("open-set", "ingest.begin", json!({"mode":"set"}))),
                Begin(ingest("open-rep", "ingest.begin", json!({"mode":"replace_series"}))),
                Ok(ingest("open-rep", "ingest.chunk", json!({"series":"b","chunk_seq":1,"items":[[71,20261002,2]]}))),
            ],
            across_create_all: false,
        },
        Step {
            label: "active streams commit after a restart",
            reqs: vec![
                Ok(ingest("open-add", "ingest.chunk", json!({"series":"a","chunk_seq":2,"items":[[70,20261003,3]]}))),
                Ok(ingest("open-add", "ingest.commit", json!({}))),
                Ok(ingest("open-rep", "ingest.commit", json!({}))),
                Forget("open-set"),
                Ok(ingest("open-set", "ingest.abort", json!({}))),
            ],
            across_create_all: false,
        },
        step(
            "recovery.checkpoint",
            vec![
                Ok(json!({"v":2,"op":"recovery.checkpoint","source":"billing","offset":4711})),
                Ok(json!({"v":2,"op":"recovery.checkpoint","source":"crm","event_id":"e-1"})),
                Ok(json!({"v":2,"op":"recovery.checkpoint","source":"billing","source_offset":"4712","event_id":9})),
            ],
        ),
        step(
            "idempotency.prune (nothing)",
            vec![
                Ok(json!({"v":2,"op":"idempotency.prune","before":T0 - 100})),
                Ok(json!({"v":2,"op":"idempotency.prune","before":"2020-01-01T00:00:00Z","limit":5})),
            ],
        ),
        step(
            "idempotency.prune (everything)",
            vec![ForgetIdempotency, Ok(json!({"v":2,"op":"idempotency.prune","before":T0 + 1_000_000}))],
        ),
        step(
            "writes after the prune",
            vec![
                Ok(
                    json!({"v":2,"op":"counter.increment","series":"a","key":2,"bucket":20260110,"value":3,"idempotency_key":"inc-1"}),
                ),
                Idem(
                    json!({"v":2,"op":"counter.increment","series":"a","key":2,"bucket":20260111,"value":1,"idempotency_key":"inc-2"}),
                ),
            ],
        ),
    ]
}

/// Runs the steps; `restart_every_request` restarts after every request (and
/// then skips nothing), otherwise after every step, with a
/// `snapshot.create_all` first when `create_all` is set.
fn run_steps(restart_every_request: bool, create_all: bool) {
    let db = Db::new();
    let mut engine = db.open();
    let mut probes = Probes::default();
    for (i, step) in steps().into_iter().enumerate() {
        if create_all && !step.across_create_all {
            continue;
        }
        let n = step.reqs.len();
        for (j, req) in step.reqs.into_iter().enumerate() {
            match req {
                Req::Ok(v) => {
                    ok(&engine, v);
                }
                Req::Err(v) => {
                    let envelope = call(&engine, &v);
                    assert_eq!(envelope["success"], json!(false), "{}: {v} should fail: {envelope}", step.label);
                }
                Req::Idem(v) => {
                    let envelope = call(&engine, &v);
                    assert_eq!(envelope["success"], json!(true), "{}: {v}: {envelope}", step.label);
                    assert_eq!(envelope["idempotent"], json!(false), "{}: {v}: {envelope}", step.label);
                    probes.idempotent.push(v);
                }
                Req::Begin(v) => {
                    ok(&engine, v.clone());
                    probes.streams.insert(v["stream_id"].as_str().unwrap().to_owned(), v);
                }
                Req::Forget(id) => {
                    probes.streams.remove(id);
                }
                Req::ForgetIdempotency => probes.idempotent.clear(),
            }
            if restart_every_request || j + 1 == n {
                if create_all {
                    db.clock.advance(1);
                    ok(&engine, json!({"v":2,"op":"snapshot.create_all"}));
                }
                let label = format!("step {i} {} request {j}", step.label);
                engine = restart_and_compare(&db, engine, &probes, &label);
            }
        }
    }
    // The end state is not trivial: the steps really did something.
    let end = dump(&engine, &probes);
    assert!(end["series"].as_object().unwrap().len() >= 5, "{end}");
    assert!(end["recovery"]["checkpoint_count"] == json!(2), "{end}");
    close(engine);
}

#[test]
fn every_mutating_op_survives_restart_from_the_wal() {
    run_steps(true, false);
}

#[test]
fn every_mutating_op_survives_create_all_and_restart() {
    run_steps(false, true);
}

/// A restart straight after opening an empty directory, and one with
/// nothing but reads in between.
#[test]
fn empty_directory_restarts() {
    let db = Db::new();
    let engine = db.open();
    let engine = restart_and_compare(&db, engine, &Probes::default(), "empty");
    assert_eq!(wal_current_lsn(&engine), 0);
    ok(&engine, json!({"v":2,"op":"snapshot.create_all"}));
    let engine = restart_and_compare(&db, engine, &Probes::default(), "empty after create_all");
    ok(&engine, json!({"v":2,"op":"counter.increment","series":"a","key":1,"bucket":20260101,"value":1}));
    assert_eq!(wal_current_lsn(&engine), 1);
    close(engine);
}

// ------------------------------------------------------------------ snapshots

fn inc(engine: &Engine, series: &str, key: u64, bucket: u64, value: u64) {
    ok(engine, json!({"v":2,"op":"counter.increment","series":series,"key":key,"bucket":bucket,"value":value}));
}

/// B2: `snapshot.create` does not truncate the WAL; replay must skip what
/// the snapshot already holds.
#[test]
fn snapshot_create_then_restart_does_not_double_count() {
    let db = Db::new();
    let engine = db.open();
    for i in 0..10 {
        inc(&engine, "a", i, 20260101, 1 + i);
    }
    ok(&engine, json!({"v":2,"op":"series.batch_add","series":"a","items":[[100,20260102,5]]}));
    ok(&engine, json!({"v":2,"op":"snapshot.create","series":"a"}));
    inc(&engine, "a", 0, 20260101, 100);
    let engine = restart_and_compare(&db, engine, &Probes::default(), "after snapshot.create");
    assert_eq!(sum(&engine, "a", 0), 101);
    assert_eq!(sum(&engine, "a", 9), 10);
    assert_eq!(sum(&engine, "a", 100), 5);
    // Twice: the second restart must not double either.
    db.clock.advance(1);
    ok(&engine, json!({"v":2,"op":"snapshot.create","series":"a"}));
    let engine = restart_and_compare(&db, engine, &Probes::default(), "after a second snapshot.create");
    let engine = restart_and_compare(&db, engine, &Probes::default(), "once more");
    assert_eq!(sum(&engine, "a", 0), 101);
    close(engine);
}

#[test]
fn snapshot_create_all_then_more_writes_then_restart() {
    let db = Db::new();
    let engine = db.open();
    inc(&engine, "a", 1, 20260101, 1);
    inc(&engine, "b", 2, 20260101, 2);
    ok(&engine, json!({"v":2,"op":"snapshot.create_all"}));
    let lsn = wal_current_lsn(&engine);
    assert_eq!(std::fs::metadata(db.wal_path()).unwrap().len(), 0, "create_all truncates the WAL");
    inc(&engine, "a", 1, 20260101, 10);
    inc(&engine, "c", 3, 20260101, 3);
    ok(&engine, json!({"v":2,"op":"counter.reset","series":"b","key":2}));
    assert_eq!(wal_current_lsn(&engine), lsn + 3, "LSNs continue after truncation");
    let engine = restart_and_compare(&db, engine, &Probes::default(), "create_all + writes");
    assert_eq!(sum(&engine, "a", 1), 11);
    assert_eq!(sum(&engine, "b", 2), 0);
    assert_eq!(sum(&engine, "c", 3), 3);
    inc(&engine, "a", 1, 20260101, 100);
    assert_eq!(wal_current_lsn(&engine), lsn + 4);
    close(engine);
}

/// A snapshot of one series of two: the other one comes from the WAL alone.
#[test]
fn partial_snapshot_then_restart() {
    let db = Db::new();
    let engine = db.open();
    inc(&engine, "a", 1, 20260101, 1);
    inc(&engine, "b", 1, 20260101, 2);
    ok(&engine, json!({"v":2,"op":"snapshot.create","series":"a"}));
    inc(&engine, "a", 1, 20260101, 10);
    inc(&engine, "b", 1, 20260101, 20);
    ok(&engine, json!({"v":2,"op":"series.batch_add","series":"a","items":[[2,20260102,3]]}));
    let engine = restart_and_compare(&db, engine, &Probes::default(), "partial snapshot");
    assert_eq!(sum(&engine, "a", 1), 11);
    assert_eq!(sum(&engine, "b", 1), 22);
    assert_eq!(sum(&engine, "a", 2), 3);
    // Now snapshot b only, write, restart.
    db.clock.advance(1);
    ok(&engine, json!({"v":2,"op":"snapshot.create","series":"b"}));
    inc(&engine, "a", 1, 20260101, 100);
    inc(&engine, "b", 1, 20260101, 200);
    let engine = restart_and_compare(&db, engine, &Probes::default(), "partial snapshot of the other series");
    assert_eq!(sum(&engine, "a", 1), 111);
    assert_eq!(sum(&engine, "b", 1), 222);
    close(engine);
}

/// B15: a dropped series does not come back from its old snapshot files.
#[test]
fn dropped_series_stays_dropped_after_create_all_and_restart() {
    let db = Db::new();
    let engine = db.open();
    inc(&engine, "gone", 1, 20260101, 5);
    inc(&engine, "kept", 1, 20260101, 6);
    ok(&engine, json!({"v":2,"op":"snapshot.create_all"}));
    db.clock.advance(1);
    ok(&engine, json!({"v":2,"op":"tree.drop","series":"gone"}));
    // Without a second create_all: the WAL's tree.drop wins over the snapshot.
    let engine = restart_and_compare(&db, engine, &Probes::default(), "drop after create_all");
    assert_eq!(series_list(&engine), vec!["kept"]);
    ok(&engine, json!({"v":2,"op":"snapshot.create_all"}));
    let engine = restart_and_compare(&db, engine, &Probes::default(), "drop + create_all");
    assert_eq!(series_list(&engine), vec!["kept"]);
    // Re-created under the same name: only the new data.
    db.clock.advance(1);
    inc(&engine, "gone", 2, 20260101, 1);
    ok(&engine, json!({"v":2,"op":"snapshot.create_all"}));
    let engine = restart_and_compare(&db, engine, &Probes::default(), "re-created");
    assert_eq!(sum(&engine, "gone", 1), 0);
    assert_eq!(sum(&engine, "gone", 2), 1);
    close(engine);
}

/// A single-series snapshot of a series that is dropped later.
#[test]
fn dropped_series_stays_dropped_after_snapshot_create() {
    let db = Db::new();
    let engine = db.open();
    inc(&engine, "gone", 1, 20260101, 5);
    ok(&engine, json!({"v":2,"op":"snapshot.create","series":"gone"}));
    ok(&engine, json!({"v":2,"op":"tree.drop","series":"gone"}));
    let engine = restart_and_compare(&db, engine, &Probes::default(), "drop after snapshot.create");
    assert!(series_list(&engine).is_empty());
    close(engine);
}

#[test]
fn wal_segment_rotation_then_restart() {
    let db = Db::new();
    let engine = db.open_with(Options { wal_segment_bytes: 600, ..db.options() });
    for i in 0..200u64 {
        inc(&engine, "a", i % 17, 20260101 + i % 28, i + 1);
        if i % 25 == 0 {
            ok(
                &engine,
                json!({"v":2,"op":"series.batch_add","series":"b","items":[[i,20260201,1],[i + 1,20260202,2]]}),
            );
        }
    }
    let segments = db.files().iter().filter(|n| n.ends_with(".segment")).count();
    assert!(segments >= 5, "expected rotated segments, got {:?}", db.files());
    let before = dump(&engine, &Probes::default());
    let lsn = wal_current_lsn(&engine);
    close(engine);
    // Reopened with and without rotation configured.
    for segment_bytes in [600, 0] {
        let engine = db.open_with(Options { wal_segment_bytes: segment_bytes, ..db.options() });
        assert_eq!(wal_current_lsn(&engine), lsn);
        assert_eq!(dump(&engine, &Probes::default()), before, "after restart (segment bytes {segment_bytes})");
        close(engine);
    }
    // create_all removes the segments; the state stays.
    let engine = db.open_with(Options { wal_segment_bytes: 600, ..db.options() });
    ok(&engine, json!({"v":2,"op":"snapshot.create_all"}));
    assert!(!db.files().iter().any(|n| n.contains(".segment")), "{:?}", db.files());
    inc(&engine, "a", 0, 20260101, 1000);
    let engine = restart_and_compare(&db, engine, &Probes::default(), "segments after create_all");
    close(engine);
}

// ------------------------------------------------------------------ damaged files

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn torn_wal_tail_is_skipped() {
    let db = Db::new();
    let engine = db.open();
    for i in 0..5 {
        inc(&engine, "a", i, 20260101, 10 + i);
    }
    let before = dump(&engine, &Probes::default());
    close(engine);
    append(&db.wal_path(), br#"{"v":2,"lsn":6,"entry":{"v":2,"op":"counter.increment","series":"a","ke"#);

    let engine = db.open();
    assert_eq!(dump(&engine, &Probes::default()), before, "data before the torn line");
    assert_eq!(wal_current_lsn(&engine), 5);
    // New writes after the torn tail are not glued to the fragment.
    inc(&engine, "a", 0, 20260101, 1000);
    inc(&engine, "a", 1, 20260101, 2000);
    assert_eq!(wal_current_lsn(&engine), 7);
    let engine = restart_and_compare(&db, engine, &Probes::default(), "writes after a torn tail");
    assert_eq!(sum(&engine, "a", 0), 1010);
    assert_eq!(sum(&engine, "a", 1), 2011);
    close(engine);
}

/// A torn tail that is only an invalid terminated last line.
#[test]
fn torn_wal_tail_with_newline_is_skipped() {
    let db = Db::new();
    let engine = db.open();
    inc(&engine, "a", 1, 20260101, 1);
    close(engine);
    append(&db.wal_path(), b"{\"v\":2,\"lsn\":2,\"entry\":{\"v\":2,\"op\"\n");
    let engine = db.open();
    assert_eq!(sum(&engine, "a", 1), 1);
    inc(&engine, "a", 1, 20260101, 1);
    let engine = restart_and_compare(&db, engine, &Probes::default(), "after an invalid last line");
    assert_eq!(sum(&engine, "a", 1), 2);
    close(engine);
}

#[test]
fn corrupt_wal_line_in_the_middle_fails_open_naming_the_file() {
    let db = Db::new();
    let engine = db.open();
    for i in 0..3 {
        inc(&engine, "a", i, 20260101, 1);
    }
    close(engine);
    let text = std::fs::read_to_string(db.wal_path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    std::fs::write(db.wal_path(), format!("{}\n{{\"v\":2,\"lsn\":2,garbage\n{}\n", lines[0], lines[2])).unwrap();
    let err = match Engine::open(db.options()) {
        Ok(_) => panic!("opening a WAL with a corrupt middle line must fail"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("karma.wal"), "the error should name the file: {err}");
    // A failed open releases the directory: fixing the file makes it openable.
    std::fs::write(db.wal_path(), format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    let engine = db.open();
    assert_eq!(sum(&engine, "a", 1), 1);
    close(engine);
}

#[test]
fn corrupt_newest_snapshot_falls_back_to_the_older_generation() {
    let db = Db::new();
    let engine = db.open_with(Options { dump_retention_per_tree: 5, ..db.options() });
    inc(&engine, "a", 1, 20260101, 1);
    inc(&engine, "b", 1, 20260101, 1);
    ok(&engine, json!({"v":2,"op":"snapshot.create_all"}));
    db.clock.advance(10);
    inc(&engine, "a", 1, 20260101, 10);
    inc(&engine, "b", 1, 20260101, 10);
    ok(&engine, json!({"v":2,"op":"snapshot.create_all"}));
    inc(&engine, "a", 1, 20260101, 100);
    inc(&engine, "b", 1, 20260101, 100);
    close(engine);

    let newest = db.dir.join(format!("{}_a.tree", T0 + 10));
    let older = db.dir.join(format!("{T0}_a.tree"));
    assert!(newest.is_file() && older.is_file(), "{:?}", db.files());
    // 0xc1 is never used in MessagePack.
    std::fs::write(&newest, [0xc1u8, 0xc1, 0xc1, 0xc1]).unwrap();

    let engine = db.open();
    // Series b is intact. Series a comes from the older generation plus the
    // WAL after it; what the newer snapshot added (10) was truncated from
    // the WAL and is gone, loudly (a log line), but the open succeeds.
    assert_eq!(sum(&engine, "b", 1), 111);
    assert_eq!(sum(&engine, "a", 1), 101);
    close(engine);
}

#[test]
fn second_open_of_the_same_directory_fails() {
    let db = Db::new();
    let engine = db.open();
    inc(&engine, "a", 1, 20260101, 1);
    let second = Engine::open(db.options());
    assert!(second.is_err(), "a second engine must not open a locked directory");
    // The first engine is unaffected.
    inc(&engine, "a", 1, 20260101, 1);
    assert_eq!(sum(&engine, "a", 1), 2);
    close(engine);
    let engine = db.open();
    assert_eq!(sum(&engine, "a", 1), 2);
    close(engine);
}

// ------------------------------------------------------------------ idempotency and ingest

/// B6: a record rebuilt from the WAL keeps its creation time: pruning
/// "before T0+1" after a restart at T0+1000 still deletes it.
#[test]
fn idempotency_created_at_survives_restart_from_the_wal() {
    let db = Db::new();
    let engine = db.open();
    let req =
        json!({"v":2,"op":"counter.increment","series":"a","key":1,"bucket":20260101,"value":1,"idempotency_key":"k1"});
    assert_eq!(call(&engine, &req)["idempotent"], json!(false));
    close(engine);
    db.clock.set(T0 + 1000);
    let engine = db.open();
    assert_eq!(call(&engine, &req)["idempotent"], json!(true), "record rebuilt from the WAL");
    let pruned = ok(&engine, json!({"v":2,"op":"idempotency.prune","before":T0 + 1}));
    assert_eq!(pruned, json!({"deleted":1}), "the record must keep created_at {T0}, not the restart time");
    close(engine);
}

/// The same through `karma.idempotency.json` (`snapshot.create_all`).
#[test]
fn idempotency_created_at_survives_create_all_and_restart() {
    let db = Db::new();
    let engine = db.open();
    let req =
        json!({"v":2,"op":"counter.increment","series":"a","key":1,"bucket":20260101,"value":1,"idempotency_key":"k1"});
    assert_eq!(call(&engine, &req)["idempotent"], json!(false));
    ok(&engine, json!({"v":2,"op":"snapshot.create_all"}));
    let file: Value = serde_json::from_slice(&std::fs::read(db.dir.join("karma.idempotency.json")).unwrap()).unwrap();
    assert!(file.to_string().contains(&format!("\"created_at_unix\":{T0}")), "{file}");
    close(engine);
    db.clock.set(T0 + 1000);
    let engine = db.open();
    assert_eq!(call(&engine, &req)["idempotent"], json!(true));
    assert_eq!(sum(&engine, "a", 1), 1);
    let pruned = ok(&engine, json!({"v":2,"op":"idempotency.prune","before":T0 + 1}));
    assert_eq!(pruned, json!({"deleted":1}));
    close(engine);
}

/// B14: an active stream (with its staged `replace_series` data) survives
/// `snapshot.create_all` and a restart.
#[test]
fn active_ingest_stream_survives_create_all_and_restart() {
    let db = Db::new();
    let engine = db.open();
    inc(&engine, "live", 1, 20260101, 1);
    ok(&engine, json!({"v":2,"op":"ingest.begin","stream_id":"add-1","mode":"add","granularity":"day"}));
    ok(
        &engine,
        json!({"v":2,"op":"ingest.chunk","stream_id":"add-1","series":"a","chunk_seq":1,"items":[[1,20260101,5]]}),
    );
    ok(&engine, json!({"v":2,"op":"ingest.begin","stream_id":"rep-1","mode":"replace_series"}));
    ok(
        &engine,
        json!({"v":2,"op":"ingest.chunk","stream_id":"rep-1","series":"live","chunk_seq":1,"items":[[9,20260109,9]]}),
    );
    ok(&engine, json!({"v":2,"op":"snapshot.create_all"}));
    close(engine);

    let engine = db.open();
    let status = ok(&engine, json!({"v":2,"op":"ingest.begin","stream_id":"add-1","mode":"add","granularity":"day"}));
    assert_eq!(
        status,
        json!({"stream_id":"add-1","mode":"add","series":"a","granularity":"day","status":"active","last_chunk_seq":1})
    );
    ok(
        &engine,
        json!({"v":2,"op":"ingest.chunk","stream_id":"add-1","series":"a","chunk_seq":2,"items":[[1,20260102,6]]}),
    );
    ok(&engine, json!({"v":2,"op":"ingest.commit","stream_id":"add-1"}));
    assert_eq!(sum(&engine, "a", 1), 11);
    let committed = ok(&engine, json!({"v":2,"op":"ingest.commit","stream_id":"rep-1"}));
    assert_eq!(committed["status"], json!("committed"), "{committed}");
    assert_eq!(sum(&engine, "live", 1), 0, "replace_series swapped in the staged data");
    assert_eq!(sum(&engine, "live", 9), 9, "the staged chunk survived");
    let engine = restart_and_compare(&db, engine, &Probes::default(), "after committing restored streams");
    close(engine);
}

// ------------------------------------------------------------------ .tree layout

#[derive(serde::Deserialize)]
struct TreeCounter {
    table: HashMap<u64, u64>,
    total: u64,
}

#[derive(serde::Deserialize)]
struct TreeFile {
    branches: Vec<HashMap<u64, TreeCounter>>,
    branches_num: u64,
}

/// `.tree` files decode with a plain MessagePack reader into the documented
/// layout (persistence.md §4.2).
#[test]
fn snapshots_decode_with_a_plain_messagepack_reader() {
    let db = Db::new();
    let engine = db.open();
    let cells: Vec<(u64, u64, u64)> = vec![
        (0, 20260101, 1),
        (1, 20260102, 2),
        (1, 20260103, 3),
        (9, 20260104, u64::MAX - 10),
        (42, 20260505, 1),
        (i64::MAX as u64, 0, i64::MAX as u64),
        (127, i64::MAX as u64, 5),
        (128, 20260101, 256),
        (65536, 20260101, 65536),
    ];
    for (key, bucket, value) in &cells {
        let mut left = *value;
        while left > 0 {
            let step = left.min(i64::MAX as u64);
            inc(&engine, "s_with_underscore", *key, *bucket, step);
            left -= step;
        }
    }
    // An empty counter.
    ok(
        &engine,
        json!({"v":2,"op":"counter.decrement","series":"s_with_underscore","key":500,"bucket":20260101,"value":1}),
    );
    ok(&engine, json!({"v":2,"op":"snapshot.create_all"}));
    close(engine);

    let path = db.dir.join(format!("{T0}_s_with_underscore.tree"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} ({:?})", path.display(), db.files()));
    // Top level: exactly the two documented keys.
    let top: BTreeMap<String, serde::de::IgnoredAny> = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(top.keys().collect::<Vec<_>>(), vec!["branches", "branches_num"]);
    let tree: TreeFile = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(tree.branches_num, 9);
    assert_eq!(tree.branches.len(), 9);
    let mut want: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
    for (key, bucket, value) in &cells {
        *want.entry(*key).or_default().entry(*bucket).or_default() += value;
    }
    want.insert(500, BTreeMap::new());
    let mut got: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
    for (i, branch) in tree.branches.iter().enumerate() {
        for (key, counter) in branch {
            assert_eq!(key % 9, i as u64, "key {key} sits in branch {i}");
            assert!(counter.table.values().all(|v| *v > 0), "no zero buckets");
            let total = counter.table.values().try_fold(0u64, |a, v| a.checked_add(*v));
            assert_eq!(Some(counter.total), total, "total of key {key}");
            got.insert(*key, counter.table.iter().map(|(b, v)| (*b, *v)).collect());
        }
    }
    assert_eq!(got, want);

    // The worked example of §4.2, byte for byte, except that the two
    // top-level keys come in the order Karma 1.0 really writes them
    // (`branches_num` first: see any `.tree` in tests/fixtures/karma1).
    let db = Db::new();
    let engine = db.open();
    inc(&engine, "x", 42, 20260505, 1);
    ok(&engine, json!({"v":2,"op":"snapshot.create","series":"x"}));
    close(engine);
    let bytes = std::fs::read(db.dir.join(format!("{T0}_x.tree"))).unwrap();
    let mut want = vec![0x82, 0xac];
    want.extend_from_slice(b"branches_num");
    want.extend_from_slice(&[0x09, 0xa8]);
    want.extend_from_slice(b"branches");
    want.extend_from_slice(&[0x99, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x2a, 0x82, 0xa5]);
    want.extend_from_slice(b"table");
    want.extend_from_slice(&[0x81, 0xce, 0x01, 0x35, 0x26, 0x99, 0x01, 0xa5]);
    want.extend_from_slice(b"total");
    want.extend_from_slice(&[0x01, 0x80, 0x80]);
    assert_eq!(bytes.len(), 56);
    assert_eq!(bytes, want);
}

// ------------------------------------------------------------------ a kill inside a snapshot

/// Two snapshots of a series in the same second used to share a file name,
/// so a kill between the `.tree` and `.meta.json` renames could pair the new
/// `.tree` with the old sidecar. Snapshots now never reuse a name: the
/// second one takes the next second, and the old sidecar (put back here as
/// a kill would have left it) describes only the old file.
#[test]
fn kill_between_tree_and_stale_sidecar_does_not_double_count() {
    let db = Db::new();
    let engine = db.open();
    inc(&engine, "a", 1, 20260101, 1);
    ok(&engine, json!({"v":2,"op":"snapshot.create","series":"a"}));
    let sidecar = db.dir.join(format!("{T0}_a.tree.meta.json"));
    let old_sidecar = std::fs::read(&sidecar).unwrap();
    inc(&engine, "a", 1, 20260101, 10);
    // Same second: the same file name, replaced atomically.
    ok(&engine, json!({"v":2,"op":"snapshot.create","series":"a"}));
    close(engine);
    std::fs::write(&sidecar, old_sidecar).unwrap();

    let engine = db.open();
    assert_eq!(sum(&engine, "a", 1), 11, "the increment of 10 is in the .tree and in the WAL: applied twice");
    close(engine);
}

/// The sidecar is written before its `.tree`, so a kill between the two
/// leaves an orphan sidecar (with a high `last_lsn`) and no `.tree`: restore
/// must ignore it and use the previous snapshot plus the WAL.
#[test]
fn kill_between_sidecar_and_tree_leaves_an_ignored_orphan_sidecar() {
    let db = Db::new();
    let engine = db.open();
    inc(&engine, "a", 1, 20260101, 1);
    ok(&engine, json!({"v":2,"op":"series.batch_add","series":"a","items":[[2,20260101,2]],"idempotency_key":"b-1"}));
    ok(&engine, json!({"v":2,"op":"snapshot.create","series":"a"}));
    inc(&engine, "a", 1, 20260101, 10);
    close(engine);
    // The next snapshot got as far as its sidecar.
    let orphan = format!("{}_a.tree", T0 + 7);
    std::fs::write(
        db.dir.join(format!("{orphan}.meta.json")),
        format!("{{\"tree\":\"a\",\"file\":\"{orphan}\",\"timestamp\":{},\"last_lsn\":99,\"bytes\":56}}\n", T0 + 7),
    )
    .unwrap();

    let engine = db.open();
    assert_eq!(sum(&engine, "a", 1), 11);
    assert_eq!(sum(&engine, "a", 2), 2);
    close(engine);
}
