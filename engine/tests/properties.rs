//! Property tests: random write sequences against a reference model, failing
//! batches that must leave every observable answer unchanged, and u64 values
//! up to `u64::MAX` through JSON.

mod support;

use std::collections::BTreeMap;

use karma_engine::Engine;
use proptest::prelude::*;
use support::*;

const KEYS: u64 = 5;
const FIRST_DAY: u64 = 20260101;
const DAYS: u64 = 6;
const COVER: &str = r#""range":{"from":20260101,"to":20260131}"#;
const MAX: u128 = u64::MAX as u128;

// ------------------------------------------------------------------ model

/// key → buckets; a present key with no bucket is an empty counter.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    counters: BTreeMap<u64, BTreeMap<u64, u64>>,
}

impl Model {
    fn total(&self, key: u64) -> u128 {
        self.counters.get(&key).map_or(0, |c| c.values().map(|v| u128::from(*v)).sum())
    }

    fn series_total(&self) -> u128 {
        self.counters.keys().map(|k| self.total(*k)).sum()
    }

    fn bucket(&self, key: u64, bucket: u64) -> u128 {
        self.counters.get(&key).and_then(|c| c.get(&bucket)).map_or(0, |v| u128::from(*v))
    }

    fn add(&mut self, key: u64, bucket: u64, value: u64) {
        *self.counters.entry(key).or_default().entry(bucket).or_insert(0) += value;
    }

    fn set(&mut self, key: u64, bucket: u64, value: u64) {
        let c = self.counters.entry(key).or_default();
        if value == 0 {
            c.remove(&bucket);
        } else {
            c.insert(bucket, value);
        }
    }

    fn compact(&mut self) {
        self.counters.retain(|_, c| !c.is_empty());
    }
}

#[derive(Clone, Debug)]
enum Op {
    Increment { key: u64, bucket: u64, value: u64 },
    Decrement { key: u64, bucket: u64, value: u64 },
    BatchAdd(Vec<[u64; 3]>),
    BatchSet(Vec<[u64; 3]>),
    Reset(Option<u64>),
    BatchReset(Vec<u64>),
    DeleteRange { key: Option<u64>, from: u64, to: u64 },
    BatchDeleteRange { keys: Vec<u64>, from: u64, to: u64 },
    DeleteBefore(u64),
    Compact,
}

fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        12 => 1..100u64,
        1 => Just(0u64),
        2 => Just(I64_MAX),
        1 => (I64_MAX - 50)..=I64_MAX,
    ]
}

fn key() -> impl Strategy<Value = u64> {
    0..KEYS
}

fn bucket() -> impl Strategy<Value = u64> {
    FIRST_DAY..FIRST_DAY + DAYS
}

fn item() -> impl Strategy<Value = [u64; 3]> {
    (key(), bucket(), value()).prop_map(|(k, b, v)| [k, b, v])
}

fn set_item() -> impl Strategy<Value = [u64; 3]> {
    (key(), bucket(), prop_oneof![3 => 0..50u64, 1 => Just(0u64), 1 => Just(I64_MAX)]).prop_map(|(k, b, v)| [k, b, v])
}

fn range() -> impl Strategy<Value = (u64, u64)> {
    (bucket(), 0..DAYS).prop_map(|(from, len)| (from, (from + len).min(FIRST_DAY + DAYS - 1)))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (key(), bucket(), value()).prop_map(|(key, bucket, value)| Op::Increment { key, bucket, value }),
        2 => (key(), bucket(), value()).prop_map(|(key, bucket, value)| Op::Decrement { key, bucket, value }),
        3 => prop::collection::vec(item(), 0..6).prop_map(Op::BatchAdd),
        // Item values whose plain sum passes u64::MAX are left out: whether
        // batch_set must refuse them is the open question of compat.rs
        // (b5_batch_set_running_total_overflow_...).
        2 => prop::collection::vec(set_item(), 0..6)
            .prop_filter("running sum within u64", |v| v.iter().map(|i| u128::from(i[2])).sum::<u128>() <= MAX)
            .prop_map(Op::BatchSet),
        1 => prop::option::of(key()).prop_map(Op::Reset),
        1 => prop::collection::vec(key(), 0..4).prop_map(Op::BatchReset),
        2 => (prop::option::of(key()), range()).prop_map(|(key, (from, to))| Op::DeleteRange { key, from, to }),
        1 => (prop::collection::vec(key(), 0..4), range()).prop_map(|(keys, (from, to))| Op::BatchDeleteRange { keys, from, to }),
        1 => (FIRST_DAY..=FIRST_DAY + DAYS).prop_map(Op::DeleteBefore),
        1 => Just(Op::Compact),
    ]
}

fn keys_json(keys: &[u64]) -> String {
    let parts: Vec<String> = keys.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(","))
}

/// The request line of `op` on series `p`.
fn request(op: &Op) -> String {
    match op {
        Op::Increment { key, bucket, value } => {
            format!(r#"{{"v":2,"op":"counter.increment","series":"p","key":{key},"bucket":{bucket},"value":{value}}}"#)
        }
        Op::Decrement { key, bucket, value } => {
            format!(r#"{{"v":2,"op":"counter.decrement","series":"p","key":{key},"bucket":{bucket},"value":{value}}}"#)
        }
        Op::BatchAdd(items) => {
            format!(r#"{{"v":2,"op":"series.batch_add","series":"p","items":{}}}"#, items_json(items))
        }
        Op::BatchSet(items) => {
            format!(r#"{{"v":2,"op":"series.batch_set","series":"p","items":{}}}"#, items_json(items))
        }
        Op::Reset(Some(key)) => format!(r#"{{"v":2,"op":"counter.reset","series":"p","key":{key}}}"#),
        Op::Reset(None) => r#"{"v":2,"op":"tree.reset","series":"p"}"#.to_string(),
        Op::BatchReset(keys) => {
            format!(r#"{{"v":2,"op":"counter.batch_reset","series":"p","keys":{}}}"#, keys_json(keys))
        }
        Op::DeleteRange { key: Some(key), from, to } => format!(
            r#"{{"v":2,"op":"counter.delete_range","series":"p","key":{key},"range":{{"from":{from},"to":{to}}}}}"#
        ),
        Op::DeleteRange { key: None, from, to } => {
            format!(r#"{{"v":2,"op":"tree.delete_range","series":"p","range":{{"from":{from},"to":{to}}}}}"#)
        }
        Op::BatchDeleteRange { keys, from, to } => format!(
            r#"{{"v":2,"op":"counter.batch_delete_range","series":"p","keys":{},"range":{{"from":{from},"to":{to}}}}}"#,
            keys_json(keys)
        ),
        Op::DeleteBefore(before) => format!(r#"{{"v":2,"op":"series.delete_before","series":"p","before":{before}}}"#),
        Op::Compact => r#"{"v":2,"op":"series.compact","series":"p"}"#.to_string(),
    }
}

/// Applies `op` to the model; `Err(())` when the engine must refuse it (and
/// then the model is left unchanged).
fn apply(m: &mut Model, op: &Op) -> Result<(), ()> {
    match op {
        Op::Increment { key, bucket, value } => {
            if *value == 0
                || m.bucket(*key, *bucket) + u128::from(*value) > MAX
                || m.total(*key) + u128::from(*value) > MAX
            {
                return Err(());
            }
            m.add(*key, *bucket, *value);
        }
        Op::Decrement { key, bucket, value } => {
            if *value == 0 {
                return Err(());
            }
            let c = m.counters.entry(*key).or_default();
            if let Some(v) = c.get_mut(bucket) {
                if *v > *value {
                    *v -= value;
                } else {
                    c.remove(bucket);
                }
            }
        }
        Op::BatchAdd(items) => {
            let sum: u128 = items.iter().map(|i| u128::from(i[2])).sum();
            if items.iter().any(|i| i[2] == 0) || sum > MAX {
                return Err(());
            }
            let mut next = m.clone();
            for &[k, b, v] in items {
                let over = next.bucket(k, b) + u128::from(v) > MAX || next.total(k) + u128::from(v) > MAX;
                if over {
                    return Err(());
                }
                next.add(k, b, v);
            }
            *m = next;
        }
        Op::BatchSet(items) => {
            if items.is_empty() {
                return Ok(());
            }
            let mut last: Vec<((u64, u64), u64)> = Vec::new();
            for &[k, b, v] in items {
                match last.iter_mut().find(|(p, _)| *p == (k, b)) {
                    Some(slot) => slot.1 = v,
                    None => last.push(((k, b), v)),
                }
            }
            let mut projected = m.series_total();
            for ((k, b), v) in &last {
                projected = projected - m.bucket(*k, *b) + u128::from(*v);
                if projected > MAX {
                    return Err(());
                }
            }
            for &[k, b, v] in items {
                m.set(k, b, v);
            }
        }
        Op::Reset(Some(key)) => {
            if let Some(c) = m.counters.get_mut(key) {
                c.clear();
            }
        }
        Op::Reset(None) => m.counters.values_mut().for_each(BTreeMap::clear),
        Op::BatchReset(keys) => {
            for k in keys {
                if let Some(c) = m.counters.get_mut(k) {
                    c.clear();
                }
            }
        }
        Op::DeleteRange { key, from, to } => {
            for (k, c) in m.counters.iter_mut() {
                if key.is_none_or(|want| want == *k) {
                    c.retain(|b, _| !(*from..=*to).contains(b));
                }
            }
        }
        Op::BatchDeleteRange { keys, from, to } => {
            for k in keys {
                if let Some(c) = m.counters.get_mut(k) {
                    c.retain(|b, _| !(*from..=*to).contains(b));
                }
            }
        }
        Op::DeleteBefore(before) => {
            for c in m.counters.values_mut() {
                c.retain(|b, _| b >= before);
            }
            m.compact();
        }
        Op::Compact => m.compact(),
    }
    Ok(())
}

// ------------------------------------------------------------------ observation

fn points(e: &Engine, key: u64) -> BTreeMap<u64, u64> {
    let v = response(e, &format!(r#"{{"v":2,"op":"counter.series","series":"p","key":{key},{COVER}}}"#));
    v.as_object().unwrap().iter().map(|(b, v)| (b.parse().unwrap(), v.as_u64().unwrap())).collect()
}

fn sum(e: &Engine, key: u64) -> u64 {
    raw_response(e, &format!(r#"{{"v":2,"op":"counter.sum","series":"p","key":{key}}}"#)).parse().unwrap()
}

/// Checks the engine against the model through every read that shows totals.
fn check(e: &Engine, m: &Model) -> Result<(), TestCaseError> {
    let mut series_total: u128 = 0;
    let mut bucket_count = 0usize;
    for key in 0..KEYS {
        let pts = points(e, key);
        let from_buckets: u128 = pts.values().map(|v| u128::from(*v)).sum();
        let total = sum(e, key);
        // The invariant: a counter's total is the sum of its buckets.
        prop_assert_eq!(u128::from(total), from_buckets, "key {} total vs buckets", key);
        let expected = m.counters.get(&key).cloned().unwrap_or_default();
        prop_assert_eq!(&pts, &expected, "key {} buckets", key);
        let ranged = raw_response(e, &format!(r#"{{"v":2,"op":"counter.sum","series":"p","key":{key},{COVER}}}"#));
        prop_assert_eq!(ranged, total.to_string());
        series_total += from_buckets;
        bucket_count += pts.len();
    }
    let info = response(e, r#"{"v":2,"op":"tree.info","series":"p"}"#);
    prop_assert_eq!(info["key_count"].as_u64().unwrap() as usize, m.counters.len());
    prop_assert_eq!(info["bucket_count"].as_u64().unwrap() as usize, bucket_count);
    prop_assert_eq!(u128::from(info["total"].as_u64().unwrap()), series_total.min(MAX));
    let summary = response(e, &format!(r#"{{"v":2,"op":"tree.summary","series":"p",{COVER}}}"#));
    prop_assert_eq!(u128::from(summary["total"].as_u64().unwrap()), series_total.min(MAX));
    let keys = response(e, r#"{"v":2,"op":"tree.keys","series":"p","limit":100}"#);
    let listed: Vec<(u64, u128)> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["key"].as_u64().unwrap(), u128::from(k["total"].as_u64().unwrap())))
        .collect();
    let modelled: Vec<(u64, u128)> = m.counters.keys().map(|k| (*k, m.total(*k))).collect();
    prop_assert_eq!(listed, modelled);
    Ok(())
}

fn fresh() -> Engine {
    let e = engine_with(|o| o.max_request_bytes = 1 << 22);
    send(&e, r#"{"v":2,"op":"tree.create","series":"p"}"#);
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every counter's total equals the sum of its buckets, and all reads
    /// agree with a reference model, after any sequence of writes.
    #[test]
    fn totals_equal_bucket_sums_after_random_writes(ops in prop::collection::vec(op(), 1..40)) {
        let e = fresh();
        let mut m = Model::default();
        for op in &ops {
            let line = request(op);
            let got = send(&e, &line);
            let expected_ok = apply(&mut m, op).is_ok();
            prop_assert_eq!(got.contains("\"success\":true"), expected_ok, "{} -> {}", line, got);
            if !expected_ok {
                prop_assert!(got.contains("\"validation_error\""), "{} -> {}", line, got);
            }
        }
        check(&e, &m)?;
    }

    /// A failing batch (overflow, zero value, too many items) leaves every
    /// observable answer unchanged.
    #[test]
    fn a_failing_batch_changes_nothing(
        setup in prop::collection::vec(op(), 0..25),
        bad in prop_oneof![
            // zero value in batch_add
            prop::collection::vec(item(), 0..5).prop_map(|mut v| { v.push([1, FIRST_DAY, 0]); (true, v) }),
            // batch total overflow
            (key(), bucket()).prop_map(|(k, b)| (true, vec![[k, b, I64_MAX], [(k + 1) % KEYS, b, I64_MAX], [k, b, 2]])),
            // too many items
            item().prop_map(|i| (true, vec![[i[0], i[1], 1]; 10_001])),
            item().prop_map(|i| (false, vec![[i[0], i[1], 1]; 10_001])),
        ],
    ) {
        let e = fresh();
        let mut m = Model::default();
        for op in &setup {
            send(&e, &request(op));
            let _ = apply(&mut m, op);
        }
        let (add, items) = bad;
        let before = (observe(&e, "p"), send(&e, r#"{"v":2,"op":"tree.keys","series":"p","limit":100}"#));
        let line = request(&if add { Op::BatchAdd(items) } else { Op::BatchSet(items) });
        let got = send(&e, &line);
        prop_assert!(got.contains("\"validation_error\""), "{}", got);
        let after = (observe(&e, "p"), send(&e, r#"{"v":2,"op":"tree.keys","series":"p","limit":100}"#));
        prop_assert_eq!(before, after);
        check(&e, &m)?;
    }

    /// An overflowing increment (on the plain and the idempotent path) leaves
    /// every answer unchanged.
    #[test]
    fn an_overflowing_increment_changes_nothing(key in key(), b1 in bucket(), b2 in bucket(), idem_key in any::<bool>()) {
        let e = fresh();
        send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"p","key":{key},"bucket":{b1},"value":{I64_MAX}}}"#));
        send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"p","key":{key},"bucket":{b2},"value":{I64_MAX}}}"#));
        let before = observe(&e, "p");
        let extra = if idem_key { r#","idempotency_key":"x""# } else { "" };
        let got = send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"p","key":{key},"bucket":{b1},"value":2{extra}}}"#));
        prop_assert_eq!(got, fail("validation_error", &format!("Counter overflow key={key} bucket={b1}")));
        prop_assert_eq!(before, observe(&e, "p"));
    }

    /// Any u64 up to u64::MAX survives increment → JSON → every read.
    #[test]
    fn u64_values_round_trip_through_json(total in 1..=u64::MAX, split in 0.0f64..1.0) {
        let e = fresh();
        // At most i64::MAX per request: split into up to three increments.
        let mut parts = Vec::new();
        let mut rest = total;
        let first = ((total as f64) * split) as u64;
        let first = first.clamp(1, total).min(I64_MAX);
        parts.push(first);
        rest -= first;
        while rest > 0 {
            let p = rest.min(I64_MAX);
            parts.push(p);
            rest -= p;
        }
        prop_assert!(parts.len() <= 3);
        for (i, p) in parts.iter().enumerate() {
            let got = send(&e, &format!(r#"{{"v":2,"op":"counter.increment","series":"p","key":7,"bucket":{},"value":{p}}}"#, FIRST_DAY + i as u64));
            prop_assert_eq!(got, ok(&p.to_string()));
        }
        let t = total.to_string();
        prop_assert_eq!(raw_response(&e, r#"{"v":2,"op":"counter.sum","series":"p","key":7}"#), t.clone());
        prop_assert_eq!(raw_response(&e, &format!(r#"{{"v":2,"op":"counter.sum","series":"p","key":7,{COVER}}}"#)), t.clone());
        prop_assert_eq!(
            raw_response(&e, r#"{"v":2,"op":"counter.batch_sum","series":"p","keys":[7]}"#),
            format!(r#"[{{"key":7,"value":{t}}}]"#)
        );
        prop_assert_eq!(
            raw_response(&e, r#"{"v":2,"op":"counter.multi_sum","items":[{"series":"p","key":7}]}"#),
            format!(r#"[{{"series":"p","key":7,"value":{t}}}]"#)
        );
        prop_assert_eq!(
            raw_response(&e, r#"{"v":2,"op":"tree.top","series":"p","limit":1}"#),
            format!(r#"{{"tree":"p","limit":1,"items":[{{"key":7,"value":{t}}}]}}"#)
        );
        prop_assert_eq!(
            raw_response(&e, r#"{"v":2,"op":"tree.keys","series":"p","limit":1}"#),
            format!(r#"{{"tree":"p","limit":1,"cursor":null,"next_cursor":null,"keys":[{{"key":7,"total":{t}}}]}}"#)
        );
        prop_assert_eq!(
            raw_response(&e, r#"{"v":2,"op":"tree.info","series":"p"}"#),
            format!(r#"{{"tree":"p","key_count":1,"bucket_count":{},"total":{t},"branches":9}}"#, parts.len())
        );
        prop_assert_eq!(e.sum("p", 7, None).unwrap(), total);
        // Keys and buckets up to i64::MAX round-trip too.
        let big = format!(r#"{{"v":2,"op":"counter.increment","series":"p","key":{I64_MAX},"bucket":{I64_MAX},"value":{I64_MAX}}}"#);
        prop_assert_eq!(send(&e, &big), ok(&I64_MAX.to_string()));
        prop_assert_eq!(
            raw_response(&e, &format!(r#"{{"v":2,"op":"counter.batch_sum","series":"p","keys":[{I64_MAX}]}}"#)),
            format!(r#"[{{"key":{I64_MAX},"value":{I64_MAX}}}]"#)
        );
    }
}
