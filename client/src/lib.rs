//! A blocking, pooled TCP client for protocol v2: the same methods as the
//! engine's typed API, over the network.
//!
//! ```no_run
//! use karma_client::{Client, ClientConfig};
//!
//! let client = Client::new(ClientConfig::from_url("karma://127.0.0.1:8080")?)?;
//! client.increment("api_requests", 42, Some(20260301), 1)?;
//! assert_eq!(client.sum("api_requests", 42, None)?, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! * [`Client`] is cheap to clone; clones share one pool of at most
//!   `pool_size` connections, opened lazily. A call waits up to
//!   `checkout_timeout` for a free connection ([`ClientError::PoolTimeout`]).
//! * A pooled connection the server has closed (its idle read timeout,
//!   5 s by default, or a restart) is noticed before use and replaced. If a
//!   reused connection still turns out dead (the write fails, or EOF before
//!   the first response byte) the request is sent again **once** on a fresh
//!   connection, but only when that cannot apply it twice: reads always,
//!   writes only with an `idempotency_key` ([`Client::request`] and
//!   [`Client::request_value`] can send one). Otherwise the call fails with
//!   [`ClientError::Connection`].
//! * After `fork()` the child notices the new pid and opens its own
//!   connections; the parent's are never written to (see `pool.rs`).
//! * With a token configured, every request carries `"token"`.
//! * [`cluster::ClusterClient`] talks to a sharded cluster coordinated by
//!   etcd (docs/cluster.md): it routes each op to its shard's leader (or
//!   splits it by shard, or asks every shard), merges the answers into the
//!   one a single node would give, and retries through failovers.
//! * [`AnyClient`] opens either from one URL (`karma://` or `karma+etcd://`).
//! * [`Pipeline`] is the same server behind callbacks instead of blocking
//!   calls: many requests in flight on each connection (for an event loop).
//! * [`Karma`] is implemented by [`karma_engine::Engine`], [`Client`] and
//!   [`cluster::ClusterClient`], so code (bindings, tests) can be written
//!   once for all of them.

#![forbid(unsafe_code)]

mod any;
mod api;
pub mod cluster;
mod config;
mod connection;
mod exception;
mod options;
mod pipelined;
mod pool;
mod typed;
mod wire;

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use karma_engine::error::{Error, ErrorCode};
use karma_engine::protocol::{Item, Range, Window};
use karma_engine::{KeysPage, Quota, Summary, TreeInfo};

pub use any::AnyClient;
pub use config::{
    ClientConfig, DEFAULT_PORT, ENV_CHECKOUT_TIMEOUT, ENV_CONNECT_TIMEOUT, ENV_HOST, ENV_POOL_SIZE, ENV_PORT,
    ENV_READ_TIMEOUT, ENV_TOKEN, ENV_URL, ENV_WRITE_TIMEOUT,
};
pub use exception::Exception;
pub use karma_engine::api::{Karma, KarmaError};
pub use options::{ClientOption, ClientOptionKind, ClientOptionValue, CLIENT_OPTIONS};
pub use pipelined::{Pipeline, DEPTH as PIPELINE_DEPTH};
pub use pool::PoolStatus;

use pool::{Checkout, Pool};
use wire::Line;

/// Everything a [`Client`] call can fail with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The server answered with an error envelope; its `error_code` and
    /// message, exactly as the in-process engine would return them.
    Server(Error),
    /// The client refused the call before sending it (a bad argument).
    Invalid(Error),
    /// No connection could be opened, or it broke before the answer was
    /// complete (a write may or may not have been applied).
    Connection(String),
    /// Connecting, writing or waiting for the answer took longer than the
    /// configured timeout. The connection is closed, since a late answer
    /// would otherwise be read by the next request.
    Timeout(String),
    /// Every pooled connection stayed busy for `checkout_timeout`.
    PoolTimeout(String),
    /// The server sent something that is not a v2 response of the expected shape.
    Protocol(String),
}

impl ClientError {
    /// The v2 error code of a server (or argument) error; `None` for
    /// transport failures.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(e) | ClientError::Invalid(e) => Some(e.code()),
            _ => None,
        }
    }

    /// The answer was longer than the config's `max_response_bytes` (a
    /// [`ClientError::Protocol`] error; the connection was closed).
    pub fn is_response_too_large(&self) -> bool {
        matches!(self, ClientError::Protocol(m) if m.starts_with(connection::RESPONSE_TOO_LARGE))
    }

    /// Connection, timeout and pool failures: the request may succeed later.
    pub fn is_transport(&self) -> bool {
        matches!(self, ClientError::Connection(_) | ClientError::Timeout(_) | ClientError::PoolTimeout(_))
    }
}

/// Server errors print like [`Error`] (`not_found: Tree "x" not found`).
impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Server(e) | ClientError::Invalid(e) => write!(f, "{e}"),
            ClientError::Connection(m) => write!(f, "connection error: {m}"),
            ClientError::Timeout(m) => write!(f, "timeout: {m}"),
            ClientError::PoolTimeout(m) => write!(f, "pool timeout: {m}"),
            ClientError::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Server(e) | ClientError::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A pooled connection to one Karma server. Clones share the pool.
#[derive(Clone)]
pub struct Client {
    pool: Arc<Pool>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("config", &self.pool.config).field("pool", &self.pool.status()).finish()
    }
}

impl Client {
    /// A client for `config` (validated; nothing is connected yet).
    pub fn new(config: ClientConfig) -> std::result::Result<Client, Error> {
        config.validate()?;
        Ok(Client { pool: Arc::new(Pool::new(config)) })
    }

    /// `Client::new(ClientConfig::from_url(url)?)`.
    pub fn from_url(url: &str) -> std::result::Result<Client, Error> {
        Client::new(ClientConfig::from_url(url)?)
    }

    /// `Client::new(ClientConfig::from_env()?)`.
    pub fn from_env() -> std::result::Result<Client, Error> {
        Client::new(ClientConfig::from_env()?)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.pool.config
    }

    pub fn pool_status(&self) -> PoolStatus {
        self.pool.status()
    }

    /// Closes the idle pooled connections (e.g. to release server
    /// connections); connections in use go back to the pool as usual.
    pub fn close_idle(&self) {
        self.pool.close_idle();
    }

    /// Takes one connection out of the pool until the guard is dropped, for
    /// a sequence of requests on the same connection.
    pub fn checkout(&self) -> Result<PooledConnection> {
        Ok(PooledConnection { checkout: self.pool.checkout()?, token: self.pool.config.token.clone() })
    }

    fn token(&self) -> Option<&str> {
        self.pool.config.token.as_deref()
    }

    fn line(&self, op: &str) -> Line {
        Line::new(op, self.token())
    }

    /// Sends one built line, returns its response line.
    fn send(&self, line: Line, retry_safe: bool) -> Result<Vec<u8>> {
        let payload = line.finish()?;
        let mut checkout = self.pool.checkout()?;
        let mut lines = checkout.exchange(&payload, 1, retry_safe)?;
        Ok(lines.pop().unwrap_or_default())
    }

    fn call<T: serde::de::DeserializeOwned>(&self, op: &str, line: Line, read: bool) -> Result<T> {
        let resp = self.send(line, read)?;
        wire::decode(op, &resp)
    }

    fn read<T: serde::de::DeserializeOwned>(&self, op: &str, build: impl FnOnce(&mut Line)) -> Result<T> {
        let mut line = self.line(op);
        build(&mut line);
        self.call(op, line, true)
    }

    fn write<T: serde::de::DeserializeOwned>(&self, op: &str, build: impl FnOnce(&mut Line)) -> Result<T> {
        let mut line = self.line(op);
        build(&mut line);
        self.call(op, line, false)
    }

    fn write_ok(&self, op: &str, build: impl FnOnce(&mut Line)) -> Result<()> {
        self.write::<wire::Ignored>(op, build).map(|_| ())
    }

    // ---------------------------------------------------------------- raw

    /// Sends one request line as is (plus the configured token) and returns
    /// the whole response envelope, success or error: check `"success"`.
    /// Only transport and parse failures are `Err`.
    pub fn request(&self, json_line: &str) -> Result<Value> {
        self.checkout()?.request(json_line)
    }

    /// Sends one raw request line and returns the response line exactly as
    /// the server wrote it (without its terminator): key order and number
    /// text preserved, success or error alike. The configured token is added
    /// as [`Client::request`] does.
    pub fn request_line(&self, json_line: &str) -> Result<String> {
        let mut payload = Vec::with_capacity(json_line.len() + 24);
        wire::raw_line(json_line, self.token(), &mut payload)?;
        let retry = wire::line_retry_safe(json_line);
        let mut checkout = self.pool.checkout()?;
        let resp = checkout.exchange(&payload, 1, retry)?.pop().unwrap_or_default();
        String::from_utf8(resp).map_err(|e| ClientError::Protocol(format!("response is not UTF-8: {e}")))
    }

    /// Sends `{"v":2,"op":op, ...fields}` and returns the `response` value;
    /// an error envelope becomes [`ClientError::Server`]. A write that has
    /// `idempotency_key` among `fields` is retried after a dead connection.
    pub fn request_value(&self, op: &str, fields: Map<String, Value>) -> Result<Value> {
        let resp = self.exchange_fields(op, &fields)?;
        wire::decode(op, &resp)
    }

    /// Sends `{"v":2,"op":op, ...fields}` (plus the token) and returns the
    /// response line, success or error envelope alike.
    pub(crate) fn exchange_fields(&self, op: &str, fields: &Map<String, Value>) -> Result<Vec<u8>> {
        let retry = wire::retry_safe(op, fields.contains_key("idempotency_key"));
        let mut map = Map::with_capacity(fields.len() + 3);
        map.insert("v".into(), Value::from(2));
        map.insert("op".into(), Value::from(op));
        if let Some(t) = self.token() {
            map.insert("token".into(), Value::from(t));
        }
        for (k, v) in fields {
            if k != "v" && k != "op" {
                map.insert(k.clone(), v.clone());
            }
        }
        let mut bytes = serde_json::to_vec(&Value::Object(map))
            .map_err(|e| ClientError::Invalid(Error::validation(format!("cannot encode request: {e}"))))?;
        bytes.push(b'\n');
        let mut checkout = self.pool.checkout()?;
        Ok(checkout.exchange(&bytes, 1, retry)?.pop().unwrap_or_default())
    }

    /// Writes every line on one connection in a single write and reads the
    /// responses in order: whole envelopes, success or error. Retried after
    /// a dead connection only if every line may be.
    pub fn pipeline(&self, lines: &[String]) -> Result<Vec<Value>> {
        self.checkout()?.pipeline(lines)
    }

    // --------------------------------------------------------------- typed

    /// Adds `value` to one day bucket (today, UTC, when `bucket` is `None`).
    pub fn increment(&self, series: &str, key: u64, bucket: Option<u64>, value: u64) -> Result<u64> {
        self.write("counter.increment", |l| {
            l.str("series", series).u64("key", key).opt_u64("bucket", bucket).u64("value", value);
        })
    }

    /// Subtracts up to `value` from one bucket (never below zero).
    pub fn decrement(&self, series: &str, key: u64, bucket: Option<u64>, value: u64) -> Result<u64> {
        self.write("counter.decrement", |l| {
            l.str("series", series).u64("key", key).opt_u64("bucket", bucket).u64("value", value);
        })
    }

    /// `counter.consume`: adds `value` to one bucket only if the `window`'s
    /// total plus `value` stays within `limit`, atomically on the server;
    /// a refusal (`allowed: false`) changes nothing. Sent without an
    /// `idempotency_key`, so never retried after a dead connection (use
    /// [`Client::request_value`] with one for retry-safe consumes).
    pub fn consume(
        &self,
        series: &str,
        key: u64,
        bucket: Option<u64>,
        value: u64,
        limit: u64,
        window: Window,
    ) -> Result<Quota> {
        let quota: wire::QuotaAnswer = self.write("counter.consume", |l| {
            l.str("series", series).u64("key", key).opt_u64("bucket", bucket).u64("value", value);
            l.u64("limit", limit).window(window);
        })?;
        Ok(quota.into())
    }

    /// The counter total, or the sum of buckets in `range`.
    pub fn sum(&self, series: &str, key: u64, range: Option<Range>) -> Result<u64> {
        self.read("counter.sum", |l| {
            l.str("series", series).u64("key", key).range(range);
        })
    }

    /// One value per key, in order.
    pub fn batch_sum(&self, series: &str, keys: &[u64], range: Option<Range>) -> Result<Vec<u64>> {
        let kv: Vec<wire::KeyValue> = self.read("counter.batch_sum", |l| {
            l.str("series", series).keys(keys).range(range);
        })?;
        Ok(kv.into_iter().map(|kv| kv.value).collect())
    }

    /// One value per `(series, key)`, in order.
    pub fn multi_sum(&self, items: &[(&str, u64)], range: Option<Range>) -> Result<Vec<u64>> {
        let v: Vec<wire::Valued> = self.read("counter.multi_sum", |l| {
            l.multi_items(items).range(range);
        })?;
        Ok(v.into_iter().map(|v| v.value).collect())
    }

    /// The `(bucket, value)` points of one counter inside `range`, in the server's order.
    pub fn points(&self, series: &str, key: u64, range: Range) -> Result<Vec<(u64, u64)>> {
        let p: wire::OrderedPoints = self.read("counter.series", |l| {
            l.str("series", series).u64("key", key).range(Some(range));
        })?;
        Ok(p.0)
    }

    /// Adds many `[key, bucket, value]` items atomically; returns their total.
    pub fn batch_add(&self, series: &str, items: &[Item]) -> Result<u64> {
        let a: wire::Added = self.write("series.batch_add", |l| {
            l.str("series", series).items(items);
        })?;
        Ok(a.total)
    }

    /// Sets exact bucket values (0 deletes); returns the item count.
    pub fn batch_set(&self, series: &str, items: &[Item]) -> Result<usize> {
        let a: wire::Applied = self.write("series.batch_set", |l| {
            l.str("series", series).items(items);
        })?;
        Ok(a.applied)
    }

    /// Clears one counter (or, with `key: None`, every counter of the series).
    pub fn reset(&self, series: &str, key: Option<u64>) -> Result<()> {
        match key {
            Some(key) => self.write_ok("counter.reset", |l| {
                l.str("series", series).u64("key", key);
            }),
            None => self.write_ok("tree.reset", |l| {
                l.str("series", series);
            }),
        }
    }

    /// `(reset, missing)`.
    pub fn batch_reset(&self, series: &str, keys: &[u64]) -> Result<(usize, usize)> {
        let r: wire::ResetCounts = self.write("counter.batch_reset", |l| {
            l.str("series", series).keys(keys);
        })?;
        Ok((r.reset, r.missing))
    }

    /// Deletes the buckets in `range` of one counter (or of every counter).
    pub fn delete_range(&self, series: &str, key: Option<u64>, range: Range) -> Result<()> {
        match key {
            Some(key) => self.write_ok("counter.delete_range", |l| {
                l.str("series", series).u64("key", key).range(Some(range));
            }),
            None => self.write_ok("tree.delete_range", |l| {
                l.str("series", series).range(Some(range));
            }),
        }
    }

    /// `(deleted, missing)`.
    pub fn batch_delete_range(&self, series: &str, keys: &[u64], range: Range) -> Result<(usize, usize)> {
        let d: wire::DeletedCounts = self.write("counter.batch_delete_range", |l| {
            l.str("series", series).keys(keys).range(Some(range));
        })?;
        Ok((d.deleted, d.missing))
    }

    pub fn create_series(&self, series: &str) -> Result<()> {
        self.write_ok("tree.create", |l| {
            l.str("series", series);
        })
    }

    pub fn drop_series(&self, series: &str) -> Result<()> {
        self.write_ok("tree.drop", |l| {
            l.str("series", series);
        })
    }

    pub fn list_series(&self) -> Result<Vec<String>> {
        self.read("tree.list", |_| {})
    }

    pub fn info(&self, series: &str) -> Result<TreeInfo> {
        let t: wire::WireTreeInfo = self.read("tree.info", |l| {
            l.str("series", series);
        })?;
        Ok(t.into())
    }

    /// One page of keys above `cursor`, ascending (`limit` defaults to 100).
    pub fn keys(&self, series: &str, cursor: Option<u64>, limit: Option<usize>) -> Result<KeysPage> {
        let p: wire::WireKeysPage = self.read("tree.keys", |l| {
            l.str("series", series).opt_u64("cursor", cursor).opt_u64("limit", limit.map(wire_limit));
        })?;
        Ok(p.into())
    }

    /// The largest counters, `(key, value)` (`limit` defaults to 50).
    pub fn top(&self, series: &str, limit: Option<usize>, range: Option<Range>) -> Result<Vec<(u64, u64)>> {
        let t: wire::WireTop = self.read("tree.top", |l| {
            l.str("series", series).opt_u64("limit", limit.map(wire_limit)).range(range);
        })?;
        Ok(t.items.into_iter().map(|kv| (kv.key, kv.value)).collect())
    }

    pub fn summary(&self, series: &str, range: Option<Range>) -> Result<Summary> {
        let s: wire::WireSummary = self.read("tree.summary", |l| {
            l.str("series", series).range(range);
        })?;
        Ok(s.into())
    }

    /// Retention: drops buckets `< before`, then compacts the series.
    pub fn delete_before(&self, series: &str, before: u64) -> Result<()> {
        self.write_ok("series.delete_before", |l| {
            l.str("series", series).u64("before", before);
        })
    }

    /// Removes empty counters of one series (or of all, with `None`).
    pub fn compact(&self, series: Option<&str>) -> Result<()> {
        match series {
            Some(s) => self.write_ok("series.compact", |l| {
                l.str("series", s);
            }),
            None => self.write_ok("system.compact", |_| {}),
        }
    }

    /// Snapshots every series (and the idempotency records), then truncates
    /// the server's write-ahead log (`snapshot.create_all`).
    pub fn snapshot_all(&self) -> Result<()> {
        self.write_ok("snapshot.create_all", |_| {})
    }

    /// `"pong"`.
    pub fn ping(&self) -> Result<String> {
        self.read("system.ping", |_| {})
    }

    /// The `system.health` object.
    pub fn health(&self) -> Result<Value> {
        self.read("system.health", |_| {})
    }

    /// The `system.stats` object.
    pub fn stats(&self) -> Result<Value> {
        self.read("system.stats", |_| {})
    }

    /// The Prometheus text of `system.metrics`.
    pub fn metrics(&self) -> Result<String> {
        self.read("system.metrics", |_| {})
    }
}

/// `limit` as the engine reads it: saturated at `i64::MAX`, the largest
/// integer the wire accepts.
pub(crate) fn wire_limit(limit: usize) -> u64 {
    u64::try_from(limit).unwrap_or(u64::MAX).min(i64::MAX as u64)
}

/// A connection held out of the pool ([`Client::checkout`]); returned when dropped.
pub struct PooledConnection {
    checkout: Checkout,
    token: Option<String>,
}

impl fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection").finish_non_exhaustive()
    }
}

impl PooledConnection {
    /// As [`Client::request`], on this connection.
    pub fn request(&mut self, json_line: &str) -> Result<Value> {
        let mut out = self.pipeline_raw(&[json_line])?;
        Ok(out.pop().unwrap_or(Value::Null))
    }

    /// As [`Client::pipeline`], on this connection.
    pub fn pipeline(&mut self, lines: &[String]) -> Result<Vec<Value>> {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        self.pipeline_raw(&lines)
    }

    fn pipeline_raw(&mut self, lines: &[&str]) -> Result<Vec<Value>> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let mut payload = Vec::with_capacity(lines.iter().map(|l| l.len() + 24).sum());
        for line in lines {
            wire::raw_line(line, self.token.as_deref(), &mut payload)?;
        }
        let retry = lines.iter().all(|l| wire::line_retry_safe(l));
        let responses = self.checkout.exchange(&payload, lines.len(), retry)?;
        let parsed: Result<Vec<Value>> = responses.iter().map(|r| wire::envelope(r)).collect();
        if parsed.is_err() {
            self.checkout.discard();
        }
        parsed
    }
}
