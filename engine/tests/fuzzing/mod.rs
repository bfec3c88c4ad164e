//! Random request lines for the crash-and-reopen property test
//! (`tests/reopen.rs`) and the `handle_line` mutation fuzzer
//! (`examples/fuzz_handle_line.rs`): a seeded generator of valid lines for
//! every op, a mutator that bends them into hostile ones, the whole
//! observable state of an engine, and the shape every answer must have.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use karma_engine::protocol::Op;
use karma_engine::Engine;
use serde_json::{json, Map, Value};

/// xorshift64*: tiny, deterministic, good enough to pick test inputs.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const SERIES: [&str; 3] = ["a", "b", "c"];
const STREAMS: [&str; 3] = ["s1", "s2", "s3"];
const IDEM_KEYS: [&str; 4] = ["k1", "k2", "k3", "k4"];

fn series(rng: &mut Rng) -> Value {
    json!(rng.pick(&SERIES))
}

fn key(rng: &mut Rng) -> Value {
    json!(rng.below(8))
}

fn bucket(rng: &mut Rng) -> u64 {
    20260101 + rng.below(12)
}

fn value(rng: &mut Rng) -> u64 {
    if rng.chance(40) {
        u64::MAX - rng.below(3)
    } else {
        1 + rng.below(1000)
    }
}

fn range(rng: &mut Rng) -> Value {
    let from = bucket(rng);
    json!({"from": from, "to": from + rng.below(4)})
}

fn items(rng: &mut Rng, zero_ok: bool) -> Value {
    let n = rng.below(5);
    let items: Vec<Value> = (0..n)
        .map(|_| {
            let v = if zero_ok && rng.chance(4) { 0 } else { value(rng) };
            json!([rng.below(8), bucket(rng), v])
        })
        .collect();
    json!(items)
}

fn keys(rng: &mut Rng) -> Value {
    let n = 1 + rng.below(4);
    json!((0..n).map(|_| rng.below(8)).collect::<Vec<_>>())
}

/// The `*.tree` files of `dir`, for `snapshot.load` / `fetch`.
pub fn tree_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(".tree")).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// A valid request line (it may still fail: a missing series, an
/// overflow, a conflicting idempotency key) for a mutating op, most of the
/// time, or any other op. `files` are the snapshot files to load or fetch.
pub fn valid_line(rng: &mut Rng, files: &[String]) -> String {
    let mut o = Map::new();
    o.insert("v".into(), json!(2));
    let op = match rng.below(30) {
        0..=5 => {
            o.insert("series".into(), series(rng));
            o.insert("key".into(), key(rng));
            o.insert("bucket".into(), json!(bucket(rng)));
            o.insert("value".into(), json!(value(rng)));
            "counter.increment"
        }
        6 => {
            o.insert("series".into(), series(rng));
            o.insert("key".into(), key(rng));
            o.insert("bucket".into(), json!(bucket(rng)));
            o.insert("value".into(), json!(1 + rng.below(50)));
            "counter.decrement"
        }
        7..=8 => {
            o.insert("series".into(), series(rng));
            o.insert("items".into(), items(rng, false));
            "series.batch_add"
        }
        9 => {
            o.insert("series".into(), series(rng));
            o.insert("items".into(), items(rng, true));
            "series.batch_set"
        }
        10 => {
            o.insert("series".into(), series(rng));
            o.insert("key".into(), key(rng));
            "counter.reset"
        }
        11 => {
            o.insert("series".into(), series(rng));
            "tree.reset"
        }
        12 => {
            o.insert("series".into(), series(rng));
            o.insert("key".into(), key(rng));
            o.insert("range".into(), range(rng));
            "counter.delete_range"
        }
        13 => {
            o.insert("series".into(), series(rng));
            o.insert("range".into(), range(rng));
            "tree.delete_range"
        }
        14 => {
            o.insert("series".into(), series(rng));
            o.insert("keys".into(), keys(rng));
            "counter.batch_reset"
        }
        15 => {
            o.insert("series".into(), series(rng));
            o.insert("keys".into(), keys(rng));
            o.insert("range".into(), range(rng));
            "counter.batch_delete_range"
        }
        16 => {
            o.insert("series".into(), series(rng));
            o.insert("before".into(), json!(bucket(rng)));
            "series.delete_before"
        }
        17 => {
            if rng.chance(2) {
                o.insert("series".into(), series(rng));
                "series.compact"
            } else {
                "system.compact"
            }
        }
        18 => {
            o.insert("series".into(), series(rng));
            "tree.create"
        }
        19 => {
            o.insert("series".into(), series(rng));
            "tree.drop"
        }
        20 => {
            o.insert("stream_id".into(), json!(rng.pick(&STREAMS)));
            o.insert("mode".into(), json!(rng.pick(&["add", "set", "replace_series"])));
            "ingest.begin"
        }
        21..=22 => {
            o.insert("stream_id".into(), json!(rng.pick(&STREAMS)));
            o.insert("series".into(), series(rng));
            o.insert("chunk_seq".into(), json!(1 + rng.below(3)));
            o.insert("items".into(), items(rng, false));
            "ingest.chunk"
        }
        23 => {
            o.insert("stream_id".into(), json!(rng.pick(&STREAMS)));
            if rng.chance(4) {
                "ingest.abort"
            } else {
                "ingest.commit"
            }
        }
        24 => {
            o.insert("series".into(), series(rng));
            "snapshot.create"
        }
        25 => "snapshot.create_all",
        26 if !files.is_empty() => {
            o.insert("file".into(), json!(rng.pick(files)));
            "snapshot.load"
        }
        27 => {
            o.insert("before".into(), json!(1_780_000_000 + rng.below(100)));
            "idempotency.prune"
        }
        _ => {
            // Any other op, with a plausible field or two.
            let op = rng.pick(Op::ALL).name();
            o.insert("series".into(), series(rng));
            o.insert("key".into(), key(rng));
            if rng.chance(2) {
                o.insert("range".into(), range(rng));
            }
            if !files.is_empty() && rng.chance(2) {
                o.insert("file".into(), json!(rng.pick(files)));
            }
            op
        }
    };
    o.insert("op".into(), json!(op));
    let idempotent = matches!(
        op,
        "counter.increment" | "counter.decrement" | "series.batch_add" | "series.batch_set" | "counter.reset"
    );
    if idempotent && rng.chance(4) {
        o.insert("idempotency_key".into(), json!(rng.pick(&IDEM_KEYS)));
    }
    Value::Object(o).to_string()
}

const FIELDS: [&str; 24] = [
    "v",
    "op",
    "series",
    "tree",
    "key",
    "keys",
    "bucket",
    "value",
    "items",
    "range",
    "before",
    "file",
    "offset",
    "limit",
    "cursor",
    "token",
    "idempotency_key",
    "fingerprint",
    "stream_id",
    "mode",
    "chunk_seq",
    "after_lsn",
    "source",
    "granularity",
];

/// Values that have broken parsers before: boundaries, wrong types, names
/// that try to leave the data directory, very long strings.
fn hostile_value(rng: &mut Rng, files: &[String]) -> Value {
    match rng.below(22) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(u64::MAX),
        3 => json!(i64::MAX),
        4 => json!(i64::MIN),
        5 => json!(1.5),
        6 => json!(1e300),
        7 => json!(""),
        8 => json!("../../etc/passwd"),
        9 => json!("../x.tree"),
        10 => json!("x".repeat(200 + rng.below(300) as usize)),
        11 => json!(null),
        12 => json!(true),
        13 => json!([]),
        14 => json!({}),
        15 => json!([[1, 20260101, 1], [2]]),
        16 => json!({"from": 20260110, "to": 20260101}),
        17 => json!("séries\u{0}"),
        18 => json!(rng.pick(Op::ALL).name()),
        19 if !files.is_empty() => json!(rng.pick(files)),
        20 => json!(format!("{}_a.tree", rng.below(3_000_000_000))),
        _ => json!(rng.next()),
    }
}

fn mutate_value(rng: &mut Rng, v: &mut Value, files: &[String], depth: usize) {
    match v {
        Value::Object(o) if !o.is_empty() && depth < 4 && rng.chance(2) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            if let Some(inner) = o.get_mut(&k) {
                mutate_value(rng, inner, files, depth + 1);
            }
        }
        Value::Array(a) if !a.is_empty() && depth < 4 && rng.chance(2) => {
            let i = rng.below(a.len() as u64) as usize;
            mutate_value(rng, &mut a[i], files, depth + 1);
        }
        Value::Object(o) => match rng.below(3) {
            0 => {
                let keys: Vec<String> = o.keys().cloned().collect();
                if !keys.is_empty() {
                    o.remove(rng.pick(&keys).as_str());
                }
            }
            _ => {
                o.insert(rng.pick(&FIELDS).to_string(), hostile_value(rng, files));
            }
        },
        _ => *v = hostile_value(rng, files),
    }
}

/// A hostile variant of `line`: a structural change of its JSON (most of
/// the time) or a byte-level one.
pub fn mutate(rng: &mut Rng, line: &str, files: &[String]) -> Vec<u8> {
    if rng.chance(4) {
        let mut bytes = line.as_bytes().to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len() as u64 + 1) as usize;
            match rng.below(4) {
                0 if at < bytes.len() => bytes[at] = rng.next() as u8,
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                2 => bytes.insert(at, *rng.pick(b"{}[]\",:0-9e\\\r\t \x00\xff")),
                _ => bytes.truncate(at),
            }
        }
        // The request is one line: a newline would make it two.
        bytes.retain(|b| *b != b'\n');
        return bytes;
    }
    let mut v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
    for _ in 0..1 + rng.below(3) {
        mutate_value(rng, &mut v, files, 0);
    }
    v.to_string().into_bytes()
}

/// Checks one answer: a single CRLF-terminated JSON envelope with
/// `protocol_version` 2, a boolean `success` and an `error_code` that is
/// null exactly on success. Returns `success`.
pub fn check_answer(answer: &[u8]) -> Result<bool, String> {
    let text = std::str::from_utf8(answer).map_err(|_| "answer is not UTF-8".to_owned())?;
    let body = text.strip_suffix("\r\n").ok_or_else(|| format!("answer lacks CRLF: {text:?}"))?;
    if body.contains('\n') || body.contains('\r') {
        return Err(format!("answer is not one line: {body:?}"));
    }
    let v: Value = serde_json::from_str(body).map_err(|e| format!("answer is not JSON ({e}): {body}"))?;
    if v["protocol_version"] != json!(2) {
        return Err(format!("answer without protocol_version 2: {body}"));
    }
    let success = v["success"].as_bool().ok_or_else(|| format!("answer without boolean success: {body}"))?;
    if success != v["error_code"].is_null() {
        return Err(format!("success and error_code disagree: {body}"));
    }
    if !success && v["error_code"] == json!("internal_error") {
        let message = v["response"].as_str().unwrap_or_default();
        // The one internal error a client can cause on purpose is documented.
        if !message.starts_with("WAL LSN space is exhausted") {
            return Err(format!("internal_error: {body}"));
        }
    }
    Ok(success)
}

/// One counter as [`state`] shows it: its total and its sorted buckets.
type Counter = (u64, Vec<(u64, u64)>);

/// Everything a client can observe that must survive a restart: every
/// series with every counter's buckets (sorted), the idempotency records
/// and the ingest streams (as counted by `system.stats`).
pub fn state(e: &Engine) -> String {
    let mut all: BTreeMap<String, BTreeMap<u64, Counter>> = BTreeMap::new();
    for name in e.list_series() {
        let Ok(image) = e.export_series(&name) else { continue };
        let counters = image
            .counters
            .into_iter()
            .map(|(k, c)| {
                let mut buckets = c.buckets;
                buckets.sort_unstable();
                (k, (c.total, buckets))
            })
            .collect();
        all.insert(name, counters);
    }
    let stats: Value = serde_json::from_slice(
        e.handle_line_acked(br#"{"v":2,"op":"system.stats"}"#, &karma_engine::Session::internal())
            .strip_suffix(b"\r\n")
            .unwrap_or_default(),
    )
    .unwrap_or(Value::Null);
    let r = &stats["response"];
    format!(
        "{all:?} idempotency_records={} active_streams={} committed_streams={}",
        r["idempotency_record_count"], r["ingest_active_streams"], r["idempotency_committed_stream_count"]
    )
}

/// The fuzzing loop shared by the example and the test suite: rounds of
/// valid and mutated lines against a durable engine, each followed by a
/// close (sometimes graceful, with `snapshot.create_all`) and a reopen that
/// must restore the same state. Stops after `rounds` rounds or `time`,
/// whichever comes first. `Err` describes the first failure with the seed,
/// the round and its lines; `progress` hears about every 1000th round.
pub fn run(
    seed: u64,
    rounds: Option<u64>,
    time: Option<std::time::Duration>,
    mut progress: impl FnMut(String),
) -> Result<String, String> {
    use karma_engine::clock::ManualClock;
    use karma_engine::{Options, Session};

    let started = std::time::Instant::now();
    let base = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = base.path().join("data");
    let clock = ManualClock::new(1_780_000_000);
    let open = || {
        // Records never expire here: an expired record that no write has
        // pruned yet is dropped by a restart (Karma 1.0's lazy expiry), which
        // is not a change of acknowledged state.
        let options = Options {
            wal_fsync: karma_engine::options::FsyncPolicy::Never,
            clock: clock.clone(),
            ..Options::durable(&dir)
        };
        Engine::open(Options { idempotency_max_age_seconds: 0, ..options })
            .map_err(|e| format!("seed {seed}: reopen failed: {e}"))
    };
    let mut rng = Rng::new(seed);
    let mut engine = open()?;
    let (mut round, mut lines_sent, mut successes) = (0u64, 0u64, 0u64);
    loop {
        if rounds.is_some_and(|r| round >= r) || time.is_some_and(|t| started.elapsed() >= t) {
            break;
        }
        let fail = |what: String, lines: &[Vec<u8>]| {
            let shown: Vec<String> = lines.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
            format!("seed {seed} round {round}: {what}\nlines of the round:\n{}", shown.join("\n"))
        };
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut files = tree_files(&dir);
        for i in 0..20 + rng.below(200) {
            if i % 16 == 0 {
                files = tree_files(&dir);
            }
            let valid = valid_line(&mut rng, &files);
            let line = if rng.chance(3) { mutate(&mut rng, &valid, &files) } else { valid.into_bytes() };
            let answer = engine.handle_line_acked(&line, &Session::client());
            lines.push(line);
            match check_answer(&answer) {
                Ok(true) => successes += 1,
                Ok(false) => {}
                Err(e) => return Err(fail(e, &lines)),
            }
            if rng.chance(64) {
                clock.advance(rng.below(200_000));
            }
        }
        lines_sent += lines.len() as u64;
        let before = state(&engine);
        if rng.chance(3) {
            if let Err(e) = engine.snapshot_all() {
                return Err(fail(format!("snapshot_all failed: {e}"), &lines));
            }
        }
        if let Err(e) = engine.close() {
            return Err(fail(format!("close failed: {e}"), &lines));
        }
        drop(engine);
        let outside: Vec<String> = std::fs::read_dir(base.path())
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n != "data")
            .collect();
        if !outside.is_empty() {
            return Err(fail(format!("files appeared outside the data directory: {outside:?}"), &lines));
        }
        engine = open()?;
        let after = state(&engine);
        if before != after {
            return Err(fail(format!("state changed across reopen\nbefore: {before}\nafter:  {after}"), &lines));
        }
        round += 1;
        if round % 1000 == 0 {
            progress(format!(
                "seed {seed}: {round} rounds, {lines_sent} lines ({successes} succeeded), {:.0}s",
                started.elapsed().as_secs_f64()
            ));
        }
    }
    Ok(format!(
        "seed {seed}: {round} rounds, {lines_sent} lines ({successes} succeeded), {:.1}s, no failure",
        started.elapsed().as_secs_f64()
    ))
}
