//! A small blocking client for etcd v3 through its JSON gateway (`POST
//! /v3/...` over HTTP/1.1). Karma needs a handful of calls (leases, range,
//! put, delete, one-compare transactions), so this avoids the gRPC stack and
//! its build-time protobuf compiler.
//!
//! Keys and values are base64 in the gateway's JSON and 64-bit integers are
//! strings; both are converted here. Each call opens a connection, sends one
//! request with `Connection: close` and reads the answer to the end; the
//! endpoints are tried in order until one answers.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

/// Why an etcd call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EtcdError {
    /// No endpoint could be reached or answered in time.
    Unavailable(String),
    /// An endpoint answered with an error or something unreadable.
    Rejected(String),
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EtcdError::Unavailable(m) => write!(f, "etcd unavailable: {m}"),
            EtcdError::Rejected(m) => write!(f, "etcd error: {m}"),
        }
    }
}

impl std::error::Error for EtcdError {}

pub type Result<T> = std::result::Result<T, EtcdError>;

/// One key-value pair as etcd stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: i64,
}

/// An etcd client for a list of `host:port` endpoints.
#[derive(Clone, Debug)]
pub struct Etcd {
    endpoints: Vec<String>,
    timeout: Duration,
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn unb64(v: Option<&Value>) -> Result<String> {
    let Some(text) = v.and_then(Value::as_str) else { return Ok(String::new()) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| EtcdError::Rejected(format!("invalid base64 from etcd: {e}")))?;
    String::from_utf8(bytes).map_err(|_| EtcdError::Rejected("non-UTF-8 data in etcd".into()))
}

/// The gateway writes int64 as strings and leaves out zero values.
fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// The smallest key greater than every key starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Etcd {
    /// `endpoints` is a comma-separated list of `host:port` (an
    /// `http://` prefix is accepted and ignored).
    pub fn new(endpoints: &str, timeout: Duration) -> Result<Etcd> {
        let endpoints: Vec<String> = endpoints
            .split(',')
            .map(|e| e.trim().trim_start_matches("http://").trim_end_matches('/').to_owned())
            .filter(|e| !e.is_empty())
            .collect();
        if endpoints.is_empty() {
            return Err(EtcdError::Rejected("no etcd endpoint given".into()));
        }
        Ok(Etcd { endpoints, timeout })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let mut last = String::new();
        for endpoint in &self.endpoints {
            match self.post_to(endpoint, path, body) {
                Ok(v) => return Ok(v),
                Err(EtcdError::Unavailable(m)) => last = format!("{endpoint}: {m}"),
                Err(e) => return Err(e),
            }
        }
        Err(EtcdError::Unavailable(last))
    }

    fn post_to(&self, endpoint: &str, path: &str, body: &Value) -> Result<Value> {
        let unavailable = |e: std::io::Error| EtcdError::Unavailable(e.to_string());
        let addr = endpoint
            .to_socket_addrs()
            .map_err(unavailable)?
            .next()
            .ok_or_else(|| EtcdError::Unavailable(format!("{endpoint} did not resolve")))?;
        let mut stream = TcpStream::connect_timeout(&addr, self.timeout).map_err(unavailable)?;
        stream.set_read_timeout(Some(self.timeout)).map_err(unavailable)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(unavailable)?;
        let body = body.to_string();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {endpoint}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).map_err(unavailable)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(unavailable)?;
        let (status, chunked, payload) = split_response(&raw)?;
        let payload = if chunked { dechunk(payload)? } else { payload.to_vec() };
        let text = String::from_utf8_lossy(&payload);
        // A streaming call (lease keep-alive) answers with one object per
        // message; the first is the one asked for.
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let value: Value =
            serde_json::from_str(first).map_err(|e| EtcdError::Rejected(format!("unreadable etcd answer: {e}")))?;
        if status != 200 {
            let message = value.get("message").or_else(|| value.get("error")).and_then(Value::as_str).unwrap_or("");
            return Err(EtcdError::Rejected(format!("HTTP {status} {message}")));
        }
        if let Some(err) = value.get("error") {
            return Err(EtcdError::Rejected(err.to_string()));
        }
        Ok(value.get("result").cloned().unwrap_or(value))
    }

    /// Grants a lease of `ttl_seconds`; returns its id and the TTL etcd gave.
    pub fn grant(&self, ttl_seconds: u64) -> Result<(i64, u64)> {
        let v = self.post("/v3/lease/grant", &json!({ "TTL": ttl_seconds }))?;
        let id = int(v.get("ID"));
        if id == 0 {
            return Err(EtcdError::Rejected("lease grant without an id".into()));
        }
        Ok((id, u64::try_from(int(v.get("TTL"))).unwrap_or(0)))
    }

    /// Renews a lease once; returns its remaining TTL, 0 when it has expired.
    pub fn keep_alive(&self, lease: i64) -> Result<u64> {
        let v = self.post("/v3/lease/keepalive", &json!({ "ID": lease.to_string() }))?;
        Ok(u64::try_from(int(v.get("TTL"))).unwrap_or(0))
    }

    /// Revokes a lease (its keys are deleted at once).
    pub fn revoke(&self, lease: i64) -> Result<()> {
        self.post("/v3/lease/revoke", &json!({ "ID": lease.to_string() })).map(|_| ())
    }

    pub fn get(&self, key: &str) -> Result<Option<Kv>> {
        let v = self.post("/v3/kv/range", &json!({ "key": b64(key) }))?;
        Ok(kvs(&v)?.into_iter().next())
    }

    /// Every key starting with `prefix`, in key order.
    pub fn get_prefix(&self, prefix: &str) -> Result<Vec<Kv>> {
        let end = base64::engine::general_purpose::STANDARD.encode(prefix_end(prefix));
        let v = self.post("/v3/kv/range", &json!({ "key": b64(prefix), "range_end": end }))?;
        kvs(&v)
    }

    /// Puts `value` at `key`, attached to `lease` when given.
    pub fn put(&self, key: &str, value: &str, lease: Option<i64>) -> Result<()> {
        let mut body = json!({ "key": b64(key), "value": b64(value) });
        if let Some(lease) = lease {
            body["lease"] = Value::from(lease.to_string());
        }
        self.post("/v3/kv/put", &body).map(|_| ())
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        self.post("/v3/kv/deleterange", &json!({ "key": b64(key) })).map(|_| ())
    }

    /// Atomically: if every `(key, mod_revision)` still has that revision
    /// (0: the key does not exist), puts every `(key, value, lease)`.
    /// Returns whether the puts happened.
    pub fn put_if_unchanged(&self, expect: &[(&str, i64)], puts: &[(&str, &str, Option<i64>)]) -> Result<bool> {
        let compare: Vec<Value> = expect
            .iter()
            .map(|(key, rev)| {
                json!({ "key": b64(key), "result": "EQUAL", "target": "MOD", "mod_revision": rev.to_string() })
            })
            .collect();
        let success: Vec<Value> = puts
            .iter()
            .map(|(key, value, lease)| {
                let mut put = json!({ "key": b64(key), "value": b64(value) });
                if let Some(lease) = lease {
                    put["lease"] = Value::from(lease.to_string());
                }
                json!({ "request_put": put })
            })
            .collect();
        let v = self.post("/v3/kv/txn", &json!({ "compare": compare, "success": success }))?;
        Ok(v.get("succeeded").and_then(Value::as_bool).unwrap_or(false))
    }
}

fn kvs(v: &Value) -> Result<Vec<Kv>> {
    let Some(list) = v.get("kvs").and_then(Value::as_array) else { return Ok(Vec::new()) };
    list.iter()
        .map(|kv| {
            Ok(Kv {
                key: unb64(kv.get("key"))?,
                value: unb64(kv.get("value"))?,
                create_revision: int(kv.get("create_revision")),
                mod_revision: int(kv.get("mod_revision")),
                lease: int(kv.get("lease")),
            })
        })
        .collect()
}

/// Status code, whether the body is chunked, and the body.
fn split_response(raw: &[u8]) -> Result<(u16, bool, &[u8])> {
    let bad = || EtcdError::Rejected("malformed HTTP answer from etcd".into());
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    Ok((status, chunked, &raw[end + 4..]))
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>> {
    let bad = || EtcdError::Rejected("malformed chunked answer from etcd".into());
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else { return Ok(out) };
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).map_err(|_| bad())?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        // A stream the server ends abruptly keeps what arrived.
        let take = size.min(body.len());
        out.extend_from_slice(&body[..take]);
        body = body.get(take + 2..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end("a/"), b"a0".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(), b"abcde".to_vec());
        assert!(dechunk(b"zz\r\nabc").is_err());
    }

    #[test]
    fn responses_are_split_into_status_and_body() {
        let (status, chunked, body) =
            split_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxy").unwrap();
        assert_eq!((status, chunked, body), (200, true, &b"xy"[..]));
        assert!(split_response(b"garbage").is_err());
    }

    #[test]
    fn unreachable_endpoints_are_unavailable() {
        // Port 9 on loopback: nothing listens there in the test environment.
        let etcd = Etcd::new("127.0.0.1:9", Duration::from_millis(200)).unwrap();
        assert!(matches!(etcd.get("k"), Err(EtcdError::Unavailable(_))));
        assert!(Etcd::new(" , ", Duration::from_secs(1)).is_err());
    }
}
