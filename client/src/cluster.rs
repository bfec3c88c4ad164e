//! Cluster mode (docs/cluster.md): a client for a sharded Karma cluster
//! coordinated by etcd. It reads the shard count and each shard's leader from
//! etcd, sends every op to the leader of its key's shard, splits multi-key
//! ops by shard and merges the answers in request order.
//!
//! A failover shows up as connection errors or `forbidden` (a slave, or a
//! leader whose lease lapsed). Those are retried against the leader etcd
//! names next, for up to [`ClusterClient::retry_for`]; writes carry an
//! idempotency key the client adds itself, so a retry of a write that did
//! reach the old leader counts once. The caller sees an error only when no
//! leader answered in that time, or for errors that a retry cannot cure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use karma_cluster::{admin, shard_of, ClusterPaths, Etcd, LeaderRecord};
use karma_engine::protocol::{Item, Range};
use karma_engine::{Error, ErrorCode};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use crate::{Client, ClientConfig, ClientError, Result};

pub struct ClusterClient {
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
        let (endpoints, cluster) = parse_url(url).map_err(|m| ClientError::Invalid(Error::validation(m)))?;
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

    fn idempotency_key(&self) -> String {
        format!("{}-{}", self.key_prefix, self.next_key.fetch_add(1, Ordering::Relaxed))
    }

    /// A client for the shard's leader, from the cache or etcd.
    fn leader(&self, shard: u32) -> Result<Client> {
        if let Some((_, client)) = self.leaders.lock().get(&shard) {
            return Ok(client.clone());
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
        self.leaders.lock().insert(shard, (record.advertise, client.clone()));
        Ok(client)
    }

    /// Sends `op` to `shard`'s leader, retrying through failovers.
    fn call(&self, shard: u32, op: &str, fields: &Map<String, Value>) -> Result<Value> {
        let started = Instant::now();
        loop {
            let result = self.leader(shard).and_then(|c| c.request_value(op, fields.clone()));
            match result {
                Err(err) if retryable(&err) && started.elapsed() < self.retry_for => {
                    self.leaders.lock().remove(&shard);
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// `counter.increment` on the key's shard, with an idempotency key.
    pub fn increment(&self, series: &str, key: u64, bucket: Option<u64>, value: u64) -> Result<u64> {
        let mut fields = fields(json!({"series": series, "key": key, "value": value}));
        if let Some(b) = bucket {
            fields.insert("bucket".into(), Value::from(b));
        }
        fields.insert("idempotency_key".into(), Value::from(self.idempotency_key()));
        as_u64(self.call(self.shard_of(key), "counter.increment", &fields)?)
    }

    /// `counter.sum` on the key's shard.
    pub fn sum(&self, series: &str, key: u64, range: Option<Range>) -> Result<u64> {
        let mut fields = fields(json!({"series": series, "key": key}));
        add_range(&mut fields, range);
        as_u64(self.call(self.shard_of(key), "counter.sum", &fields)?)
    }

    /// `counter.batch_sum` split by shard; one value per key, in order.
    pub fn batch_sum(&self, series: &str, keys: &[u64], range: Option<Range>) -> Result<Vec<u64>> {
        let mut out = vec![0; keys.len()];
        for (shard, positions) in self.split(keys.iter().copied()) {
            let part: Vec<u64> = positions.iter().map(|&i| keys[i]).collect();
            let mut fields = fields(json!({"series": series, "keys": part}));
            add_range(&mut fields, range);
            let answer = self.call(shard, "counter.batch_sum", &fields)?;
            let values = answer.as_array().filter(|a| a.len() == positions.len()).ok_or_else(|| {
                ClientError::Protocol(format!("counter.batch_sum answered {answer} for {} keys", positions.len()))
            })?;
            for (&i, v) in positions.iter().zip(values) {
                out[i] = v
                    .get("value")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| ClientError::Protocol(format!("counter.batch_sum answered {v} for a key")))?;
            }
        }
        Ok(out)
    }

    /// `series.batch_add` split by shard, each part with an idempotency key;
    /// returns the total added. Atomic per shard, not across shards.
    pub fn batch_add(&self, series: &str, items: &[Item]) -> Result<u64> {
        let mut total = 0u64;
        for (shard, positions) in self.split(items.iter().map(|[k, _, _]| *k)) {
            let part: Vec<Item> = positions.iter().map(|&i| items[i]).collect();
            let mut fields = fields(json!({"series": series, "items": part}));
            fields.insert("idempotency_key".into(), Value::from(self.idempotency_key()));
            let answer = self.call(shard, "series.batch_add", &fields)?;
            let added = answer
                .get("total")
                .and_then(Value::as_u64)
                .ok_or_else(|| ClientError::Protocol(format!("series.batch_add answered {answer}")))?;
            total = total.saturating_add(added);
        }
        Ok(total)
    }

    /// The positions of `keys` grouped by shard, shards in order.
    fn split(&self, keys: impl Iterator<Item = u64>) -> Vec<(u32, Vec<usize>)> {
        let mut by_shard: Vec<Vec<usize>> = vec![Vec::new(); self.shards as usize];
        for (i, key) in keys.enumerate() {
            by_shard[self.shard_of(key) as usize].push(i);
        }
        by_shard.into_iter().enumerate().filter(|(_, p)| !p.is_empty()).map(|(s, p)| (s as u32, p)).collect()
    }
}

/// The etcd endpoints and cluster name of a `karma+etcd://` URL.
fn parse_url(url: &str) -> std::result::Result<(String, String), String> {
    let bad = || format!("invalid cluster URL {url:?}: expected karma+etcd://host:port[,host:port...]/<cluster-name>");
    let rest = url.strip_prefix("karma+etcd://").ok_or_else(bad)?;
    let (endpoints, cluster) = rest.split_once('/').ok_or_else(bad)?;
    let cluster = cluster.trim_end_matches('/');
    if endpoints.is_empty() || cluster.is_empty() || cluster.contains('/') {
        return Err(bad());
    }
    Ok((endpoints.to_owned(), cluster.to_owned()))
}

/// Connection trouble and `forbidden` (a slave or a fenced leader) are what
/// a failover looks like; everything else is the answer.
fn retryable(err: &ClientError) -> bool {
    err.is_transport() || matches!(err, ClientError::Server(e) if e.code() == ErrorCode::Forbidden)
}

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn add_range(fields: &mut Map<String, Value>, range: Option<Range>) {
    if let Some(r) = range {
        fields.insert("range".into(), json!({"from": r.from, "to": r.to}));
    }
}

fn as_u64(v: Value) -> Result<u64> {
    v.as_u64().ok_or_else(|| ClientError::Protocol(format!("expected an integer, got {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_endpoints_and_cluster() {
        assert_eq!(parse_url("karma+etcd://127.0.0.1:2379/demo"), Ok(("127.0.0.1:2379".into(), "demo".into())));
        assert_eq!(parse_url("karma+etcd://a:1,b:2/c/"), Ok(("a:1,b:2".into(), "c".into())));
        for bad in ["karma://h:1/c", "karma+etcd://h:1", "karma+etcd:///c", "karma+etcd://h:1/", "karma+etcd://h:1/a/b"]
        {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forbidden_and_transport_errors_are_retried_others_are_not() {
        assert!(retryable(&ClientError::Connection("x".into())));
        assert!(retryable(&ClientError::Server(Error::new(ErrorCode::Forbidden, "slave"))));
        assert!(!retryable(&ClientError::Server(Error::validation("bad"))));
        assert!(!retryable(&ClientError::Protocol("x".into())));
    }
}
