//! [`Karma`] for [`ClusterClient`]: each method builds its request's fields
//! and decodes the (merged) answer with the wire types [`Client`](crate::Client)
//! uses, so both read the same response shapes the same way.

use karma_engine::api::Karma;
use karma_engine::{Item, KeysPage, Quota, Range, Summary, TreeInfo, Window};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::merge::{decode, SeriesKeyValue};
use super::ClusterClient;
use crate::wire::{self, Ignored};
use crate::{wire_limit, ClientError, Result};

/// `{"from":..,"to":..}`.
fn range_value(range: Range) -> Value {
    json!({"from": range.from, "to": range.to})
}

/// The fields of a request: `base` (an object) plus the optional ones that are set.
fn fields(base: Value, optional: &[(&str, Option<Value>)]) -> Map<String, Value> {
    let mut map = match base {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    for (name, value) in optional {
        if let Some(v) = value {
            map.insert((*name).to_owned(), v.clone());
        }
    }
    map
}

impl ClusterClient {
    fn typed<T: DeserializeOwned>(&self, op: &str, fields: Map<String, Value>) -> Result<T> {
        let response = self.run(op, fields)?;
        let parsed = karma_engine::protocol::Op::from_name(op)
            .ok_or_else(|| ClientError::Protocol(format!("unknown op {op}")))?;
        decode(parsed, &response.to_json())
    }

    fn done(&self, op: &str, fields: Map<String, Value>) -> Result<()> {
        self.typed::<Ignored>(op, fields).map(|_| ())
    }
}

impl Karma for ClusterClient {
    type Error = ClientError;

    fn increment(&self, series: &str, key: u64, bucket: Option<u64>, value: u64) -> Result<u64> {
        let base = json!({"series": series, "key": key, "value": value});
        self.typed("counter.increment", fields(base, &[("bucket", bucket.map(Value::from))]))
    }
    fn decrement(&self, series: &str, key: u64, bucket: Option<u64>, value: u64) -> Result<u64> {
        let base = json!({"series": series, "key": key, "value": value});
        self.typed("counter.decrement", fields(base, &[("bucket", bucket.map(Value::from))]))
    }
    fn consume(
        &self,
        series: &str,
        key: u64,
        bucket: Option<u64>,
        value: u64,
        limit: u64,
        window: Window,
    ) -> Result<Quota> {
        let base = json!({"series": series, "key": key, "value": value, "limit": limit, "window": window.name()});
        let f = fields(base, &[("bucket", bucket.map(Value::from)), ("days", window.days().map(Value::from))]);
        self.typed::<wire::QuotaAnswer>("counter.consume", f).map(Quota::from)
    }
    fn sum(&self, series: &str, key: u64, range: Option<Range>) -> Result<u64> {
        self.typed("counter.sum", fields(json!({"series": series, "key": key}), &[("range", range.map(range_value))]))
    }
    fn batch_sum(&self, series: &str, keys: &[u64], range: Option<Range>) -> Result<Vec<u64>> {
        let f = fields(json!({"series": series, "keys": keys}), &[("range", range.map(range_value))]);
        let kv: Vec<wire::KeyValue> = self.typed("counter.batch_sum", f)?;
        Ok(kv.into_iter().map(|kv| kv.value).collect())
    }
    fn multi_sum(&self, items: &[(&str, u64)], range: Option<Range>) -> Result<Vec<u64>> {
        let items: Vec<Value> = items.iter().map(|(s, k)| json!({"series": s, "key": k})).collect();
        let f = fields(json!({"items": items}), &[("range", range.map(range_value))]);
        let values: Vec<SeriesKeyValue> = self.typed("counter.multi_sum", f)?;
        Ok(values.into_iter().map(|v| v.value).collect())
    }
    fn points(&self, series: &str, key: u64, range: Range) -> Result<Vec<(u64, u64)>> {
        let f = fields(json!({"series": series, "key": key, "range": range_value(range)}), &[]);
        self.typed::<wire::OrderedPoints>("counter.series", f).map(|p| p.0)
    }
    fn batch_add(&self, series: &str, items: &[Item]) -> Result<u64> {
        let a: wire::Added = self.typed("series.batch_add", fields(json!({"series": series, "items": items}), &[]))?;
        Ok(a.total)
    }
    fn batch_set(&self, series: &str, items: &[Item]) -> Result<usize> {
        let a: wire::Applied =
            self.typed("series.batch_set", fields(json!({"series": series, "items": items}), &[]))?;
        Ok(a.applied)
    }
    fn reset(&self, series: &str, key: Option<u64>) -> Result<()> {
        match key {
            Some(key) => self.done("counter.reset", fields(json!({"series": series, "key": key}), &[])),
            None => self.done("tree.reset", fields(json!({"series": series}), &[])),
        }
    }
    fn batch_reset(&self, series: &str, keys: &[u64]) -> Result<(usize, usize)> {
        let r: wire::ResetCounts =
            self.typed("counter.batch_reset", fields(json!({"series": series, "keys": keys}), &[]))?;
        Ok((r.reset, r.missing))
    }
    fn delete_range(&self, series: &str, key: Option<u64>, range: Range) -> Result<()> {
        let base = json!({"series": series, "range": range_value(range)});
        match key {
            Some(key) => self.done("counter.delete_range", fields(base, &[("key", Some(Value::from(key)))])),
            None => self.done("tree.delete_range", fields(base, &[])),
        }
    }
    fn batch_delete_range(&self, series: &str, keys: &[u64], range: Range) -> Result<(usize, usize)> {
        let f = fields(json!({"series": series, "keys": keys, "range": range_value(range)}), &[]);
        let d: wire::DeletedCounts = self.typed("counter.batch_delete_range", f)?;
        Ok((d.deleted, d.missing))
    }
    fn create_series(&self, series: &str) -> Result<()> {
        self.done("tree.create", fields(json!({"series": series}), &[]))
    }
    fn drop_series(&self, series: &str) -> Result<()> {
        self.done("tree.drop", fields(json!({"series": series}), &[]))
    }
    fn list_series(&self) -> Result<Vec<String>> {
        self.typed("tree.list", Map::new())
    }
    fn info(&self, series: &str) -> Result<TreeInfo> {
        let t: wire::WireTreeInfo = self.typed("tree.info", fields(json!({"series": series}), &[]))?;
        Ok(TreeInfo { tree: t.tree, key_count: t.key_count, bucket_count: t.bucket_count, total: t.total })
    }
    fn keys(&self, series: &str, cursor: Option<u64>, limit: Option<usize>) -> Result<KeysPage> {
        let optional = [("cursor", cursor.map(Value::from)), ("limit", limit.map(|l| Value::from(wire_limit(l))))];
        let p: wire::WireKeysPage = self.typed("tree.keys", fields(json!({"series": series}), &optional))?;
        Ok(KeysPage {
            tree: p.tree,
            limit: p.limit,
            cursor: p.cursor,
            next_cursor: p.next_cursor,
            keys: p.keys.into_iter().map(|k| (k.key, k.total)).collect(),
        })
    }
    fn top(&self, series: &str, limit: Option<usize>, range: Option<Range>) -> Result<Vec<(u64, u64)>> {
        let optional = [("limit", limit.map(|l| Value::from(wire_limit(l)))), ("range", range.map(range_value))];
        let t: wire::WireTop = self.typed("tree.top", fields(json!({"series": series}), &optional))?;
        Ok(t.items.into_iter().map(|kv| (kv.key, kv.value)).collect())
    }
    fn summary(&self, series: &str, range: Option<Range>) -> Result<Summary> {
        let f = fields(json!({"series": series}), &[("range", range.map(range_value))]);
        let s: wire::WireSummary = self.typed("tree.summary", f)?;
        Ok(Summary {
            tree: s.tree,
            range: s.range_from.zip(s.range_to),
            total: s.total,
            active_keys: s.active_keys,
            bucket_count: s.bucket_count,
        })
    }
    fn delete_before(&self, series: &str, before: u64) -> Result<()> {
        self.done("series.delete_before", fields(json!({"series": series, "before": before}), &[]))
    }
    fn compact(&self, series: Option<&str>) -> Result<()> {
        match series {
            Some(s) => self.done("series.compact", fields(json!({"series": s}), &[])),
            None => self.done("system.compact", Map::new()),
        }
    }
    /// `"pong"` once every shard's leader answered.
    fn ping(&self) -> Result<String> {
        self.typed("system.ping", Map::new())
    }
    /// `{"status":"ok"|"unhealthy","shards":[{"shard":n,"leader":"host:port","health":{...}}, ...]}`.
    fn health(&self) -> Result<Value> {
        self.typed("system.health", Map::new())
    }
    /// `{"shards":[{"shard":n,"leader":"host:port","stats":{...}}, ...]}`.
    fn stats(&self) -> Result<Value> {
        self.typed("system.stats", Map::new())
    }
    /// Every shard leader's metrics, each sample labelled `shard="n"`.
    fn metrics(&self) -> Result<String> {
        self.typed("system.metrics", Map::new())
    }
    /// Refused (`validation_error`): a snapshot concerns one node's files.
    fn snapshot_all(&self) -> Result<()> {
        self.done("snapshot.create_all", Map::new())
    }
}
