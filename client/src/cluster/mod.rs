//! Cluster mode (docs/cluster.md): a client for a sharded Karma cluster
//! coordinated by etcd, implementing the whole [`Karma`](crate::Karma) API.
//!
//! It reads the shard count and each shard's leader from etcd. Every request
//! is first parsed and validated by the engine's own parser, so a bad
//! request gets the error one node would give before anything is sent; then
//! [`route`] decides where it goes: a single-key op to the leader of its
//! key's shard, a multi-key op split by shard (answers merged back in request
//! order, counts summed), an op over a whole series or over the node to
//! every shard ([`merge`] combines the answers where that is exact), and the
//! few ops whose answer shards cannot reproduce are refused with a
//! `validation` error naming them.
//!
//! A failover shows up as connection errors or `forbidden` (a slave, or a
//! leader whose lease lapsed). Those are retried against the leader etcd
//! names next, for up to [`ClusterClient::with_retry_for`] (30 s by
//! default); writes carry an idempotency key (the caller's, or one the
//! client adds), so a retry of a write that did reach the old leader counts
//! once. Reads are retried freely. The caller sees an error only when no
//! leader answered in that time, or for errors a retry cannot cure.

mod api;
mod merge;
mod route;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use karma_cluster::{admin, shard_of, ClusterPaths, Etcd, LeaderRecord};
use karma_engine::protocol::request::{parse_document, parse_request};
use karma_engine::protocol::validate::validate;
use karma_engine::protocol::{Command, Op, Request};
use karma_engine::{Engine, Error, ErrorCode, Response};
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::typed::decode;
use crate::{wire, Client, ClientConfig, ClientError, Result};
use merge::{PartAnswer, Raw, ShardAnswer};
use route::Plan;

/// The scheme of cluster URLs: `karma+etcd://host:port[,host:port...]/<cluster-name>`.
pub const URL_SCHEME: &str = "karma+etcd://";

pub struct ClusterClient {
    /// `karma+etcd://endpoints/cluster`, for messages.
    url: String,
    etcd: Etcd,
    paths: ClusterPaths,
    shards: u32,
    /// Token, pool size and timeouts for every node; host and port come
    /// from etcd.
    base: ClientConfig,
    /// The leader each shard was last found at, and a client for it.
    leaders: Mutex<HashMap<u32, (String, Client)>>,
    retry_for: Duration,
    /// Makes the idempotency keys this client adds unique.
    key_prefix: String,
    next_key: AtomicU64,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient").field("etcd", &self.etcd.endpoints()).field("shards", &self.shards).finish()
    }
}

fn etcd_error(err: impl std::fmt::Display) -> ClientError {
    ClientError::Connection(err.to_string())
}

fn is_not_found(err: &ClientError) -> bool {
    matches!(err, ClientError::Server(e) if e.code() == ErrorCode::NotFound)
}

impl ClusterClient {
    /// Connects to the cluster `cluster` through the etcd `endpoints`
    /// (`host:port,...`); `base` gives the token, pool and timeouts used for
    /// every node.
    pub fn connect(endpoints: &str, cluster: &str, base: ClientConfig) -> Result<ClusterClient> {
        let etcd = Etcd::new(endpoints, base.connect_timeout.max(Duration::from_millis(500)))
            .map_err(|e| ClientError::Invalid(Error::validation(e.to_string())))?;
        let shards = admin::shard_count(&etcd, cluster).map_err(etcd_error)?.ok_or_else(|| {
            ClientError::Invalid(Error::validation(format!("no cluster {cluster} in etcd (karma cluster init)")))
        })?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Ok(ClusterClient {
            url: format!("{URL_SCHEME}{}/{cluster}", etcd.endpoints().join(",")),
            etcd,
            paths: ClusterPaths::new(cluster),
            shards,
            base,
            leaders: Mutex::new(HashMap::new()),
            retry_for: Duration::from_secs(30),
            key_prefix: format!("kc-{}-{nanos:x}", std::process::id()),
            next_key: AtomicU64::new(0),
        })
    }

    /// `karma+etcd://host:port[,host:port...]/<cluster-name>`: the etcd
    /// endpoints and the cluster's name; `base` as for [`ClusterClient::connect`].
    pub fn from_url(url: &str, base: ClientConfig) -> Result<ClusterClient> {
        let (endpoints, cluster) = route::parse_url(url).map_err(|m| ClientError::Invalid(Error::validation(m)))?;
        ClusterClient::connect(&endpoints, &cluster, base)
    }

    /// How long an op is retried through a failover (default 30 s).
    pub fn with_retry_for(mut self, retry_for: Duration) -> ClusterClient {
        self.retry_for = retry_for;
        self
    }

    pub fn shard_count(&self) -> u32 {
        self.shards
    }

    pub fn shard_of(&self, key: u64) -> u32 {
        shard_of(key, self.shards)
    }

    /// The token, pool and timeouts used for every node.
    pub fn config(&self) -> &ClientConfig {
        &self.base
    }

    /// `karma+etcd://host:port[,...]/<cluster-name>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes the idle pooled connections to every leader known so far.
    pub fn close_idle(&self) {
        for (_, client) in self.leaders.lock().values() {
            client.close_idle();
        }
    }

    fn idempotency_key(&self) -> String {
        format!("{}-{}", self.key_prefix, self.next_key.fetch_add(1, Ordering::Relaxed))
    }

    /// The shard's leader (its advertised address and a client for it),
    /// from the cache or etcd.
    fn leader(&self, shard: u32) -> Result<(String, Client)> {
        if let Some(found) = self.leaders.lock().get(&shard) {
            return Ok(found.clone());
        }
        let kv = self.etcd.get(&self.paths.leader(shard)).map_err(etcd_error)?;
        let record = kv
            .and_then(|kv| LeaderRecord::parse(&kv.value))
            .ok_or_else(|| ClientError::Connection(format!("shard {shard} has no leader")))?;
        let (host, port) = record
            .advertise
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| ClientError::Protocol(format!("leader advertises {}", record.advertise)))?;
        let config = ClientConfig { host, port, ..self.base.clone() };
        let client = Client::new(config).map_err(ClientError::Invalid)?;
        let found = (record.advertise, client);
        self.leaders.lock().insert(shard, found.clone());
        Ok(found)
    }

    /// Sends `op` to `shard`'s leader, retrying through failovers; the
    /// leader's address and the raw `response` it sent.
    fn call(&self, shard: u32, op: &str, fields: &Map<String, Value>) -> Result<(String, Raw)> {
        let started = Instant::now();
        loop {
            let result = self.leader(shard).and_then(|(leader, client)| {
                let line = client.exchange_fields(op, fields)?;
                Ok((leader, wire::response_raw(&line)?.get().as_bytes().to_vec()))
            });
            match result {
                Err(err) if retryable(&err) && started.elapsed() < self.retry_for => {
                    self.leaders.lock().remove(&shard);
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// Carries out `{"v":2,"op":op,...fields}` on the cluster and returns
    /// the `response` one node would have given.
    pub(crate) fn run(&self, op: &str, mut fields: Map<String, Value>) -> Result<Response> {
        fields.remove("v");
        fields.remove("op");
        if Op::from_name(op).is_some_and(Op::idempotency_eligible) && !fields.contains_key("idempotency_key") {
            fields.insert("idempotency_key".into(), Value::from(self.idempotency_key()));
        }
        let mut line = Map::with_capacity(fields.len() + 2);
        line.insert("v".into(), Value::from(2));
        line.insert("op".into(), Value::from(op));
        line.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        let line = Value::Object(line).to_string();
        let doc = parse_document(line.as_bytes()).map_err(ClientError::Invalid)?;
        let req = parse_request(&doc).map_err(ClientError::Invalid)?;
        validate(&req).map_err(ClientError::Invalid)?;
        match route::plan(&req, self.shards).map_err(ClientError::Invalid)? {
            Plan::One(shard) => Ok(Response::Json(self.call(shard, op, &fields)?.1)),
            Plan::Split { field, parts } => self.run_split(op, &req, &fields, field, parts),
            Plan::Every => self.run_every(req.op, op, &fields),
        }
    }

    fn run_split(
        &self,
        op: &str,
        req: &Request<'_>,
        fields: &Map<String, Value>,
        field: &str,
        parts: Vec<(u32, Vec<usize>)>,
    ) -> Result<Response> {
        let answers = at_once(parts, |(shard, positions)| {
            let part = route::subset(fields, field, &positions);
            let raw = match self.call(shard, op, &part) {
                Ok((_, raw)) => raw,
                Err(err) if is_not_found(&err) => self.absent_series(req, shard, op, &part, &positions, err)?,
                Err(err) => return Err(err),
            };
            Ok(PartAnswer { positions, raw })
        })
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
        let len = match &req.command {
            Command::Keys { keys, .. } => keys.len(),
            Command::Items { items, .. } => items.len(),
            Command::MultiSum { items, .. } => items.len(),
            _ => 0,
        };
        merge::split(req.op, len, answers)
    }

    /// A shard answered its part with `not_found`. One node fails the same
    /// way only when no shard has the series (for `counter.multi_sum`: the
    /// first series of the request no shard has); otherwise the shard simply
    /// holds none of the series' keys, and the part is answered as one node
    /// answers keys it has never seen.
    fn absent_series(
        &self,
        req: &Request<'_>,
        shard: u32,
        op: &str,
        part: &Map<String, Value>,
        positions: &[usize],
        not_found: ClientError,
    ) -> Result<Raw> {
        let present = self.series_by_shard()?;
        let anywhere = |series: &str| present.iter().any(|names| names.iter().any(|n| n == series));
        match &req.command {
            Command::Keys { series, keys, .. } if anywhere(series) => {
                let part_keys: Vec<u64> = positions.iter().filter_map(|&i| keys.get(i).copied()).collect();
                merge::absent_part(req.op, &part_keys).map(|r| r.to_json()).ok_or(not_found)
            }
            Command::MultiSum { items, .. } => {
                if let Some(item) = items.iter().find(|i| !anywhere(&i.series)) {
                    return Err(ClientError::Server(Error::tree_not_found(&item.series)));
                }
                // Ask again for the items whose series this shard has; the
                // others are counters it has never seen.
                let here = &present[shard as usize];
                let mut answers: Vec<(String, u64, u64)> = Vec::with_capacity(positions.len());
                let mut asked = Vec::new();
                for (slot, &i) in positions.iter().enumerate() {
                    if let Some(item) = items.get(i) {
                        answers.push((item.series.to_string(), item.key, 0));
                        if here.iter().any(|n| *n == item.series) {
                            asked.push(slot);
                        }
                    }
                }
                if !asked.is_empty() {
                    let again = route::subset(part, "items", &asked);
                    let values: Vec<merge::SeriesKeyValue> = decode(req.op, &self.call(shard, op, &again)?.1)?;
                    for (slot, v) in asked.into_iter().zip(values) {
                        answers[slot].2 = v.value;
                    }
                }
                Ok(Response::MultiSum(answers).to_json())
            }
            _ => Err(not_found),
        }
    }

    /// Every shard's `tree.list`, by shard.
    fn series_by_shard(&self) -> Result<Vec<Vec<String>>> {
        (0..self.shards).map(|s| decode(Op::TreeList, &self.call(s, "tree.list", &Map::new())?.1)).collect()
    }

    fn run_every(&self, op: Op, name: &str, fields: &Map<String, Value>) -> Result<Response> {
        let answers = at_once((0..self.shards).collect(), |shard| match self.call(shard, name, fields) {
            Ok((leader, raw)) => ShardAnswer { shard, leader, result: Ok(raw) },
            Err(err) => ShardAnswer { shard, leader: String::new(), result: Err(err) },
        });
        merge::every(op, answers)
    }

    /// As [`Client::request_value`]: the `response` value, an error
    /// envelope as [`ClientError::Server`].
    pub fn request_value(&self, op: &str, fields: Map<String, Value>) -> Result<Value> {
        let response = self.run(op, fields)?.to_json();
        serde_json::from_slice(&response)
            .map_err(|e| ClientError::Protocol(format!("unparsable merged response to {op}: {e}")))
    }

    /// As [`Client::request_line`]: one raw request line (routed by its op
    /// and key fields), answered with the response line one node would
    /// write, success or error. Only transport failures are `Err`.
    pub fn request_line(&self, json_line: &str) -> Result<String> {
        let envelope = match self.line_response(json_line) {
            Ok(response) => {
                let mut out = b"{\"protocol_version\":2,\"success\":true,\"response\":".to_vec();
                response.write_json(&mut out);
                out.extend_from_slice(b",\"error_code\":null}");
                out
            }
            Err(ClientError::Server(err) | ClientError::Invalid(err)) => Engine::error_line(&err),
            Err(other) => return Err(other),
        };
        let text = String::from_utf8(envelope).map_err(|e| ClientError::Protocol(format!("not UTF-8: {e}")))?;
        Ok(text.trim_end().to_owned())
    }

    fn line_response(&self, json_line: &str) -> Result<Response> {
        // The engine judges the line first, so a line one node would refuse
        // (bad JSON, unknown op, ...) gets that node's error.
        let doc = parse_document(json_line.as_bytes()).map_err(ClientError::Invalid)?;
        let op = parse_request(&doc).map_err(ClientError::Invalid)?.op;
        let fields = match serde_json::from_str::<Value>(json_line) {
            Ok(Value::Object(fields)) => fields,
            _ => return Err(ClientError::Invalid(Error::validation("Request must be a JSON object"))),
        };
        let name = fields.get("op").and_then(Value::as_str).unwrap_or(op.name()).to_owned();
        self.run(&name, fields)
    }
}

/// `f` of every item, each on a thread of its own so that the shards work
/// at the same time (a failover on one does not hold up the others' answers
/// either); the results in the items' order.
fn at_once<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    if items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let running: Vec<_> = items.into_iter().map(|item| scope.spawn(move || f(item))).collect();
        running.into_iter().map(|t| t.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}

/// Connection trouble and `forbidden` (a slave or a fenced leader) are what
/// a failover looks like; everything else is the answer.
fn retryable(err: &ClientError) -> bool {
    err.is_transport() || matches!(err, ClientError::Server(e) if e.code() == ErrorCode::Forbidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_done_at_once_comes_back_in_order() {
        let ids = at_once((0..8u64).collect(), |i| (i, std::thread::current().id()));
        assert_eq!(ids.iter().map(|(i, _)| *i).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
        assert!(ids.iter().all(|(_, t)| *t != std::thread::current().id()), "each item on a thread of its own");
        let one = at_once(vec![5], |i| (i, std::thread::current().id()));
        assert_eq!(one, vec![(5, std::thread::current().id())], "a single item runs here");
    }

    #[test]
    fn forbidden_and_transport_errors_are_retried_others_are_not() {
        assert!(retryable(&ClientError::Connection("x".into())));
        assert!(retryable(&ClientError::Server(Error::new(ErrorCode::Forbidden, "slave"))));
        assert!(!retryable(&ClientError::Server(Error::validation("bad"))));
        assert!(!retryable(&ClientError::Protocol("x".into())));
    }
}
