//! The whole [`Karma`](karma_engine::api::Karma) API over anything that can
//! carry out one protocol request ([`Requests`]), produced from the surface
//! table ([`karma_engine::for_each_method!`]) instead of written out method
//! by method.
//!
//! A row's arguments become the request's fields by *kind*, one rule each in
//! [`put`]: the argument's name is its wire field (`series`, `key`,
//! `bucket`, `limit`, `before`, ...), and the kind says how it is spelled
//! (`opt_range` as `"range":{"from":..,"to":..}` when given, `window` as
//! `"window"` plus `"days"` for a days window). The answer is read by the
//! row's result kind, one rule each in [`answer`], with the client's wire
//! types. So a new row needs nothing here, and a new kind one rule.
//!
//! ```ignore
//! impl Requests for MyClient { fn response_json(..) }
//! karma_engine::for_each_method!(@with [MyClient;] crate::typed::karma_over_requests);
//! ```

use karma_engine::protocol::Op;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{ClientError, Result};

/// A client that can carry out `{"v":2,"op":op, ...fields}`.
pub(crate) trait Requests {
    /// The `response` of the answer as JSON text; an error answer is
    /// [`ClientError::Server`].
    fn response_json(&self, op: Op, fields: Map<String, Value>) -> Result<Vec<u8>>;
}

/// The `response` text of `op` read as `T`.
pub(crate) fn decode<T: DeserializeOwned>(op: Op, raw: &[u8]) -> Result<T> {
    serde_json::from_slice(raw).map_err(|e| {
        ClientError::Protocol(format!("unexpected response to {} ({e}): {}", op.name(), String::from_utf8_lossy(raw)))
    })
}

/// The op a row's request is sent as. A row names the op of its narrowest
/// scope (`counter.reset`); when an optional scope argument was left out
/// (no `key`, no `series`), the request lacks a field that op requires, and
/// it goes as the op of the same Karma 1.0 command that does without it
/// (`tree.reset`, `tree.delete_range`, `system.compact`), found in the op
/// table rather than listed here.
pub(crate) fn scoped(op: Op, fields: &Map<String, Value>) -> Op {
    let complete = |op: &Op| op.fields().iter().all(|f| !f.required || fields.contains_key(f.name));
    if complete(&op) {
        return op;
    }
    Op::ALL.iter().copied().find(|o| o.internal_name() == op.internal_name() && complete(o)).unwrap_or(op)
}

/// One rule per argument kind: puts the argument `name` into the request's
/// fields, as the engine's request parser reads it.
pub(crate) mod put {
    use karma_engine::protocol::{Item, Range, Window};
    use serde_json::{json, Map, Value};

    use crate::wire_limit;

    type Fields = Map<String, Value>;

    fn set(fields: &mut Fields, name: &str, value: impl Into<Value>) {
        fields.insert(name.to_owned(), value.into());
    }

    pub(crate) fn series(fields: &mut Fields, name: &str, series: &str) {
        set(fields, name, series);
    }
    /// Absent: every series.
    pub(crate) fn opt_series(fields: &mut Fields, name: &str, series: Option<&str>) {
        if let Some(s) = series {
            set(fields, name, s);
        }
    }
    pub(crate) fn key(fields: &mut Fields, name: &str, key: u64) {
        set(fields, name, key);
    }
    /// Absent: every counter.
    pub(crate) fn opt_key(fields: &mut Fields, name: &str, key: Option<u64>) {
        opt_uint(fields, name, key);
    }
    pub(crate) fn uint(fields: &mut Fields, name: &str, value: u64) {
        set(fields, name, value);
    }
    pub(crate) fn opt_uint(fields: &mut Fields, name: &str, value: Option<u64>) {
        if let Some(v) = value {
            set(fields, name, v);
        }
    }
    pub(crate) fn bucket(fields: &mut Fields, name: &str, bucket: u64) {
        set(fields, name, bucket);
    }
    /// Absent: today (UTC), as the server decides it.
    pub(crate) fn opt_bucket(fields: &mut Fields, name: &str, bucket: Option<u64>) {
        opt_uint(fields, name, bucket);
    }
    /// Saturated at the largest integer the wire accepts (see [`wire_limit`]).
    pub(crate) fn opt_limit(fields: &mut Fields, name: &str, limit: Option<usize>) {
        opt_uint(fields, name, limit.map(wire_limit));
    }
    /// `"window"` by the window's own name, plus its `"days"` for a days window.
    pub(crate) fn window(fields: &mut Fields, name: &str, window: Window) {
        set(fields, name, window.name());
        opt_uint(fields, "days", window.days());
    }
    pub(crate) fn range(fields: &mut Fields, name: &str, range: Range) {
        set(fields, name, json!({"from": range.from, "to": range.to}));
    }
    /// Absent: every bucket.
    pub(crate) fn opt_range(fields: &mut Fields, name: &str, range: Option<Range>) {
        if let Some(r) = range {
            self::range(fields, name, r);
        }
    }
    pub(crate) fn keys(fields: &mut Fields, name: &str, keys: &[u64]) {
        set(fields, name, keys);
    }
    /// `[[key, bucket, value], ...]`.
    pub(crate) fn items(fields: &mut Fields, name: &str, items: &[Item]) {
        set(fields, name, items.iter().map(|item| Value::from(&item[..])).collect::<Vec<_>>());
    }
    /// `[{"series": s, "key": k}, ...]`.
    pub(crate) fn series_keys(fields: &mut Fields, name: &str, items: &[(&str, u64)]) {
        set(fields, name, items.iter().map(|(s, k)| json!({"series": s, "key": k})).collect::<Vec<_>>());
    }
}

/// One rule per result kind: reads the `response` text of `op` into the
/// row's Rust type. `out` is the answer's name in the row (`-> total: uint`).
pub(crate) mod answer {
    use std::fmt;

    use karma_engine::protocol::Op;
    use karma_engine::{KeysPage, Quota, Summary, TreeInfo};
    use serde::de::{MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};
    use serde_json::{Map, Value};

    use super::decode;
    use crate::wire::{self, Ignored};
    use crate::{ClientError, Result};

    /// Any success (`"OK"`, `true`).
    pub(crate) fn unit(op: Op, _out: &str, raw: &[u8]) -> Result<()> {
        decode::<Ignored>(op, raw).map(drop)
    }

    /// A number, or the field named `out` of an object
    /// (`series.batch_add`'s `{"applied":..,"total":..}` for `-> total`).
    pub(crate) fn uint(op: Op, out: &str, raw: &[u8]) -> Result<u64> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Uint {
            Bare(u64),
            Fields(Map<String, Value>),
        }
        match decode::<Uint>(op, raw)? {
            Uint::Bare(n) => Ok(n),
            Uint::Fields(fields) => fields
                .get(out)
                .and_then(Value::as_u64)
                .ok_or_else(|| ClientError::Protocol(format!("response to {} has no number {out}", op.name()))),
        }
    }

    /// `{"applied": n}`.
    pub(crate) fn count(op: Op, _out: &str, raw: &[u8]) -> Result<usize> {
        decode::<wire::Applied>(op, raw).map(|a| a.applied)
    }

    /// (done, missing): `{"reset"|"deleted": n, "missing": m}`.
    pub(crate) fn counts(op: Op, _out: &str, raw: &[u8]) -> Result<(usize, usize)> {
        #[derive(Deserialize)]
        struct Counts {
            #[serde(alias = "deleted")]
            reset: usize,
            missing: usize,
        }
        decode::<Counts>(op, raw).map(|c| (c.reset, c.missing))
    }

    /// The `value` of each element, in order.
    pub(crate) fn uints(op: Op, _out: &str, raw: &[u8]) -> Result<Vec<u64>> {
        decode::<Vec<wire::Valued>>(op, raw).map(|v| v.into_iter().map(|v| v.value).collect())
    }

    /// The (bucket, value) entries of a bucket map, in the server's order,
    /// or the (key, value) `items` of a ranking (`{"tree":..,"items":[..]}`).
    pub(crate) fn pairs(op: Op, _out: &str, raw: &[u8]) -> Result<Vec<(u64, u64)>> {
        decode::<Pairs>(op, raw).map(|p| p.0)
    }

    struct Pairs(Vec<(u64, u64)>);

    impl<'de> Deserialize<'de> for Pairs {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Pairs, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Pairs;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object of bucket -> value, or one with items")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Pairs, A::Error> {
                    let mut out = Vec::new();
                    while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                        if let Ok(bucket) = name.parse::<u64>() {
                            out.push((bucket, map.next_value::<u64>()?));
                        } else if name == "items" {
                            let items: Vec<wire::KeyValue> = map.next_value()?;
                            out.extend(items.into_iter().map(|kv| (kv.key, kv.value)));
                        } else {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                    Ok(Pairs(out))
                }
            }
            d.deserialize_map(V)
        }
    }

    pub(crate) fn quota(op: Op, _out: &str, raw: &[u8]) -> Result<Quota> {
        decode::<wire::QuotaAnswer>(op, raw).map(Quota::from)
    }

    pub(crate) fn names(op: Op, _out: &str, raw: &[u8]) -> Result<Vec<String>> {
        decode(op, raw)
    }

    pub(crate) fn info(op: Op, _out: &str, raw: &[u8]) -> Result<TreeInfo> {
        decode::<wire::WireTreeInfo>(op, raw).map(TreeInfo::from)
    }

    pub(crate) fn page(op: Op, _out: &str, raw: &[u8]) -> Result<KeysPage> {
        decode::<wire::WireKeysPage>(op, raw).map(KeysPage::from)
    }

    pub(crate) fn summary(op: Op, _out: &str, raw: &[u8]) -> Result<Summary> {
        decode::<wire::WireSummary>(op, raw).map(Summary::from)
    }

    pub(crate) fn text(op: Op, _out: &str, raw: &[u8]) -> Result<String> {
        decode(op, raw)
    }

    pub(crate) fn json(op: Op, _out: &str, raw: &[u8]) -> Result<Value> {
        decode(op, raw)
    }
}

/// `impl Karma for $ty` (a [`Requests`]), one method per row: the
/// arguments put by kind, the op [`scoped`], the answer read by kind.
/// Expanded with `for_each_method!(@with [$ty;] karma_over_requests)`.
macro_rules! karma_over_requests {
    ($ty:ty; $( $(#[doc = $doc:literal])* $m:ident ($($arg:ident: $kind:ident),*) -> $out:ident: $ret:ident = $op:ident; )*) => {
        impl karma_engine::api::Karma for $ty {
            type Error = $crate::ClientError;
            $(
                $(#[doc = $doc])*
                fn $m(
                    &self,
                    $($arg: karma_engine::arg_type!($kind)),*
                ) -> $crate::Result<karma_engine::ret_type!($ret)> {
                    // Stays empty for the rows without arguments.
                    #[allow(unused_mut)]
                    let mut fields = serde_json::Map::new();
                    $( $crate::typed::put::$kind(&mut fields, stringify!($arg), $arg); )*
                    let op = $crate::typed::scoped(karma_engine::protocol::Op::$op, &fields);
                    let raw = $crate::typed::Requests::response_json(self, op, fields)?;
                    $crate::typed::answer::$ret(op, stringify!($out), &raw)
                }
            )*
        }
    };
}
pub(crate) use karma_over_requests;

#[cfg(test)]
mod tests {
    use karma_engine::api::Karma;
    use karma_engine::protocol::{Range, Window};
    use karma_engine::{Engine, ErrorCode, Session};

    use super::*;
    use crate::wire;

    /// The adapter over the engine's own protocol handling, in process.
    struct InProcess(Engine);

    impl Requests for InProcess {
        fn response_json(&self, op: Op, fields: Map<String, Value>) -> Result<Vec<u8>> {
            for name in fields.keys() {
                assert!(op.fields().iter().any(|f| f.name == name), "{} does not read {name}", op.name());
            }
            let mut line = Map::new();
            line.insert("v".into(), Value::from(2));
            line.insert("op".into(), Value::from(op.name()));
            line.extend(fields);
            let line = serde_json::to_vec(&Value::Object(line)).unwrap();
            let reply = self.0.handle_line_acked(&line, &Session::client());
            Ok(wire::response_raw(&reply)?.get().as_bytes().to_vec())
        }
    }

    karma_engine::for_each_method!(@with [InProcess;] karma_over_requests);

    /// A Debug rendering of a success, the error code of a failure.
    fn outcome<T: std::fmt::Debug>(
        r: std::result::Result<T, Option<ErrorCode>>,
    ) -> std::result::Result<String, Option<ErrorCode>> {
        r.map(|v| format!("{v:?}"))
    }

    /// Arguments for every kind: with every optional one given, or none.
    macro_rules! sample {
        (given, series) => {
            "s"
        };
        (given, opt_series) => {
            Some("s")
        };
        (given, key) => {
            7
        };
        (given, opt_key) => {
            Some(7)
        };
        (given, uint) => {
            5
        };
        (given, opt_uint) => {
            Some(3)
        };
        (given, bucket) => {
            20260302
        };
        (given, opt_bucket) => {
            Some(20260301)
        };
        (given, opt_limit) => {
            Some(2)
        };
        (given, window) => {
            Window::Days(3)
        };
        (given, range) => {
            Range { from: 20260301, to: 20260302 }
        };
        (given, opt_range) => {
            Some(Range { from: 20260301, to: 20260302 })
        };
        (given, keys) => {
            &[7, 3, 99]
        };
        (given, items) => {
            &[[7, 20260301, 4], [8, 20260303, 6]]
        };
        (given, series_keys) => {
            &[("s", 7), ("t", 1), ("s", 99)]
        };
        (none, opt_series) => {
            None
        };
        (none, opt_key) => {
            None
        };
        (none, opt_uint) => {
            None
        };
        (none, opt_bucket) => {
            None
        };
        (none, opt_limit) => {
            None
        };
        (none, opt_range) => {
            None
        };
        (none, window) => {
            Window::Month
        };
        (none, $kind:ident) => {
            sample!(given, $kind)
        };
    }

    /// Each row called on two engines holding the same data, one directly
    /// and one through the adapter: the same answer, or the same error.
    macro_rules! compare_rows {
        ($mode:ident; $( $(#[doc = $doc:literal])* $m:ident ($($arg:ident: $kind:ident),*) -> $out:ident: $ret:ident = $op:ident; )*) => {
            $({
                let (direct, adapted) = (Engine::in_memory(), InProcess(Engine::in_memory()));
                for engine in [&direct, &adapted.0] {
                    engine.batch_add("s", &[[7, 20260301, 10], [3, 20260302, 2], [5, 20260228, 1]]).unwrap();
                    engine.increment("t", 1, Some(20260301), 9).unwrap();
                }
                let want = outcome(Karma::$m(&direct, $(sample!($mode, $kind)),*).map_err(|e| Some(e.code())));
                let got = outcome(Karma::$m(&adapted, $(sample!($mode, $kind)),*).map_err(|e| e.code()));
                // Health, stats and metrics carry timings of their own engine.
                if matches!(stringify!($ret), "json" | "text") && stringify!($m) != "ping" {
                    assert_eq!(want.is_ok(), got.is_ok(), "{}: {want:?} / {got:?}", stringify!($m));
                } else {
                    assert_eq!(want, got, "{} ({})", stringify!($m), stringify!($mode));
                }
                // What the write left behind is the same too.
                assert_eq!(
                    direct.export_series("s").map(|s| format!("{s:?}")).ok(),
                    adapted.0.export_series("s").map(|s| format!("{s:?}")).ok(),
                    "{}",
                    stringify!($m)
                );
            })*
        };
    }

    #[test]
    fn every_row_over_requests_answers_as_the_engine_does() {
        karma_engine::for_each_method!(@with [given;] compare_rows);
        karma_engine::for_each_method!(@with [none;] compare_rows);
    }

    #[test]
    fn a_missing_scope_sends_the_wider_op() {
        let with = |names: &[&str]| names.iter().map(|n| (n.to_string(), Value::from(1))).collect::<Map<_, _>>();
        assert_eq!(scoped(Op::CounterReset, &with(&["series", "key"])), Op::CounterReset);
        assert_eq!(scoped(Op::CounterReset, &with(&["series"])), Op::TreeReset);
        assert_eq!(scoped(Op::CounterDeleteRange, &with(&["series", "range"])), Op::TreeDeleteRange);
        assert_eq!(scoped(Op::SeriesCompact, &with(&[])), Op::SystemCompact);
        assert_eq!(scoped(Op::Sum, &with(&["series"])), Op::Sum, "no wider op: the server names the field");
    }

    #[test]
    fn answers_read_both_shapes_of_a_kind() {
        let op = Op::BatchAdd;
        assert_eq!(answer::uint(op, "total", br#"{"applied":2,"total":18446744073709551615}"#).unwrap(), u64::MAX);
        assert_eq!(answer::uint(Op::Sum, "sum", b"12").unwrap(), 12);
        assert!(matches!(answer::uint(op, "total", br#"{"applied":2}"#), Err(ClientError::Protocol(_))));
        assert_eq!(answer::counts(Op::BatchReset, "counts", br#"{"reset":1,"missing":2}"#).unwrap(), (1, 2));
        assert_eq!(answer::counts(Op::BatchDeleteRange, "counts", br#"{"deleted":3,"missing":0}"#).unwrap(), (3, 0));
        let points = br#"{"20260310":1,"20260305":2}"#;
        assert_eq!(answer::pairs(Op::CounterSeries, "points", points).unwrap(), vec![(20260310, 1), (20260305, 2)]);
        let top = br#"{"tree":"s","limit":2,"items":[{"key":9,"value":5},{"key":1,"value":4}]}"#;
        assert_eq!(answer::pairs(Op::TreeTop, "top", top).unwrap(), vec![(9, 5), (1, 4)]);
    }
}
