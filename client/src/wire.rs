//! Request lines out, response envelopes in (spec/protocol.md §2, §3).
//!
//! Requests are written by hand with the engine's JSON writer (exact u64
//! digits, no intermediate tree). Responses are parsed with serde_json:
//! integers stay `u64` end to end (never f64), and the `response` field is
//! kept as raw text until the caller says which shape it expects, so
//! ordered objects (bucket maps) keep the server's order.

use std::fmt;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use karma_engine::error::Error;
use karma_engine::json::{write_str, write_u64};
use karma_engine::protocol::response::{read_envelope, EnvelopeError};
use karma_engine::protocol::{Item, Op, Range, Window};
use karma_engine::{KeysPage, Quota, Summary, TreeInfo};

use super::ClientError;

/// One request line under construction: `{"v":2,"op":..,"token":..` then fields.
pub(crate) struct Line {
    buf: Vec<u8>,
    /// The first number above i64::MAX written, if any: the server reads
    /// request integers as i64 (spec/protocol.md §7.1) and would refuse the
    /// whole line as `invalid_json`, so the client refuses it first.
    too_big: Option<u64>,
}

impl Line {
    pub(crate) fn new(op: &str, token: Option<&str>) -> Line {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"{\"v\":2,\"op\":");
        write_str(&mut out, op);
        let mut line = Line { buf: out, too_big: None };
        if let Some(t) = token {
            line.str("token", t);
        }
        line
    }

    fn name(&mut self, name: &str) {
        self.buf.extend_from_slice(b",\"");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    pub(crate) fn str(&mut self, name: &str, value: &str) -> &mut Line {
        self.name(name);
        write_str(&mut self.buf, value);
        self
    }

    pub(crate) fn u64(&mut self, name: &str, value: u64) -> &mut Line {
        self.name(name);
        self.num(value);
        self
    }

    pub(crate) fn opt_u64(&mut self, name: &str, value: Option<u64>) -> &mut Line {
        if let Some(v) = value {
            self.u64(name, v);
        }
        self
    }

    pub(crate) fn range(&mut self, range: Option<Range>) -> &mut Line {
        if let Some(r) = range {
            self.name("range");
            self.buf.extend_from_slice(b"{\"from\":");
            self.num(r.from);
            self.buf.extend_from_slice(b",\"to\":");
            self.num(r.to);
            self.buf.push(b'}');
        }
        self
    }

    /// `counter.consume`'s window: `"window"`, plus `"days"` for a days window.
    pub(crate) fn window(&mut self, window: Window) -> &mut Line {
        self.str("window", window.name()).opt_u64("days", window.days())
    }

    pub(crate) fn keys(&mut self, keys: &[u64]) -> &mut Line {
        self.name("keys");
        self.buf.push(b'[');
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.num(*k);
        }
        self.buf.push(b']');
        self
    }

    pub(crate) fn items(&mut self, items: &[Item]) -> &mut Line {
        self.name("items");
        self.buf.push(b'[');
        for (i, [k, b, v]) in items.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.buf.push(b'[');
            self.num(*k);
            self.buf.push(b',');
            self.num(*b);
            self.buf.push(b',');
            self.num(*v);
            self.buf.push(b']');
        }
        self.buf.push(b']');
        self
    }

    pub(crate) fn multi_items(&mut self, items: &[(&str, u64)]) -> &mut Line {
        self.name("items");
        self.buf.push(b'[');
        for (i, (series, key)) in items.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.buf.extend_from_slice(b"{\"series\":");
            write_str(&mut self.buf, series);
            self.buf.extend_from_slice(b",\"key\":");
            self.num(*key);
            self.buf.push(b'}');
        }
        self.buf.push(b']');
        self
    }

    fn num(&mut self, value: u64) {
        if value > i64::MAX as u64 && self.too_big.is_none() {
            self.too_big = Some(value);
        }
        write_u64(&mut self.buf, value);
    }

    /// The finished line, or a validation error if a number cannot be sent.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, ClientError> {
        if let Some(n) = self.too_big {
            return Err(ClientError::Invalid(Error::validation(format!(
                "{n} exceeds 9223372036854775807, the largest integer protocol v2 accepts in a request"
            ))));
        }
        self.buf.extend_from_slice(b"}\n");
        Ok(self.buf)
    }
}

/// May this request be sent a second time after a dead connection?
/// Reads always; writes only when they carry an `idempotency_key` the
/// server honours (spec/protocol.md §12.1), so they can never apply twice.
pub(crate) fn retry_safe(op: &str, has_idempotency_key: bool) -> bool {
    match Op::from_name(op) {
        Some(op) if op.is_read_only() => true,
        Some(op) => op.idempotency_eligible() && has_idempotency_key,
        None => false,
    }
}

/// Whether a raw request line may be retried (see [`retry_safe`]).
pub(crate) fn line_retry_safe(line: &str) -> bool {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(line) else {
        return false;
    };
    match map.get("op") {
        Some(serde_json::Value::String(op)) => retry_safe(op, map.contains_key("idempotency_key")),
        _ => false,
    }
}

/// Checks a caller's raw line and prepares it for the wire: one line (a
/// trailing `\n` or `\r\n` is fine), the configured token added in front
/// when the line is a JSON object (a `"token"` of the line's own comes
/// later and so wins: the server keeps the last duplicate key).
pub(crate) fn raw_line(line: &str, token: Option<&str>, out: &mut Vec<u8>) -> Result<(), ClientError> {
    let body = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(line);
    if body.contains('\n') {
        return Err(ClientError::Invalid(Error::validation("A request must be a single line (it contains \\n)")));
    }
    let trimmed = body.trim_start();
    match (token, trimmed.strip_prefix('{')) {
        (Some(t), Some(rest)) => {
            out.extend_from_slice(b"{\"token\":");
            write_str(out, t);
            if !rest.trim_start().starts_with('}') {
                out.push(b',');
            }
            out.extend_from_slice(rest.as_bytes());
        }
        _ => out.extend_from_slice(body.as_bytes()),
    }
    out.push(b'\n');
    Ok(())
}

fn show(line: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(line);
    if text.len() > MAX {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &text[..end])
    } else {
        text.into_owned()
    }
}

/// The raw `response` of a success envelope, or the server's error; a line
/// the engine's envelope reader refuses is a protocol error.
pub(crate) fn response_raw(line: &[u8]) -> Result<&RawValue, ClientError> {
    match read_envelope(line) {
        Ok(Ok(raw)) => Ok(raw),
        Ok(Err(e)) => Err(ClientError::Server(e)),
        Err(EnvelopeError::Unparsable(reason)) => {
            Err(ClientError::Protocol(format!("unparsable response ({reason}): {}", show(line))))
        }
        Err(EnvelopeError::UnknownCode { .. }) => {
            Err(ClientError::Protocol(format!("error response with unknown error_code: {}", show(line))))
        }
    }
}

/// The `response` of a success envelope as `T`.
pub(crate) fn decode<T: DeserializeOwned>(op: &str, line: &[u8]) -> Result<T, ClientError> {
    let raw = response_raw(line)?;
    serde_json::from_str(raw.get())
        .map_err(|e| ClientError::Protocol(format!("unexpected response to {op} ({e}): {}", show(line))))
}

/// A whole envelope as a `serde_json::Value` (integers stay u64).
pub(crate) fn envelope(line: &[u8]) -> Result<serde_json::Value, ClientError> {
    serde_json::from_slice(line)
        .map_err(|e| ClientError::Protocol(format!("unparsable response ({e}): {}", show(line))))
}

/// `counter.consume`'s answer as sent (an `idempotent` flag, present only
/// with an `idempotency_key`, is ignored).
#[derive(Deserialize)]
pub(crate) struct QuotaAnswer {
    allowed: bool,
    used: u64,
    remaining: u64,
    limit: u64,
    range_from: u64,
    range_to: u64,
}

impl From<QuotaAnswer> for Quota {
    fn from(q: QuotaAnswer) -> Quota {
        let window = Range { from: q.range_from, to: q.range_to };
        Quota { allowed: q.allowed, used: q.used, remaining: q.remaining, limit: q.limit, window }
    }
}

/// Any success response (`"OK"`, `true`, ...), checked only for success.
#[derive(Deserialize)]
pub(crate) struct Ignored(serde::de::IgnoredAny);

#[derive(Deserialize)]
pub(crate) struct KeyValue {
    pub key: u64,
    pub value: u64,
}

#[derive(Deserialize)]
pub(crate) struct Valued {
    pub value: u64,
}

#[derive(Deserialize)]
pub(crate) struct KeyTotal {
    pub key: u64,
    pub total: u64,
}

#[derive(Deserialize)]
pub(crate) struct Added {
    pub applied: usize,
    pub total: u64,
}

#[derive(Deserialize)]
pub(crate) struct Applied {
    pub applied: usize,
}

#[derive(Deserialize)]
pub(crate) struct ResetCounts {
    pub reset: usize,
    pub missing: usize,
}

#[derive(Deserialize)]
pub(crate) struct DeletedCounts {
    pub deleted: usize,
    pub missing: usize,
}

#[derive(Deserialize)]
pub(crate) struct WireTreeInfo {
    pub tree: String,
    pub key_count: usize,
    pub bucket_count: usize,
    pub total: u64,
}

#[derive(Deserialize)]
pub(crate) struct WireKeysPage {
    pub tree: String,
    pub limit: usize,
    pub cursor: Option<u64>,
    pub next_cursor: Option<u64>,
    pub keys: Vec<KeyTotal>,
}

#[derive(Deserialize)]
pub(crate) struct WireTop {
    pub tree: String,
    pub limit: usize,
    pub items: Vec<KeyValue>,
}

#[derive(Deserialize)]
pub(crate) struct WireSummary {
    pub tree: String,
    pub range_from: Option<u64>,
    pub range_to: Option<u64>,
    pub total: u64,
    pub active_keys: usize,
    pub bucket_count: usize,
}

impl From<WireTreeInfo> for TreeInfo {
    fn from(t: WireTreeInfo) -> TreeInfo {
        TreeInfo { tree: t.tree, key_count: t.key_count, bucket_count: t.bucket_count, total: t.total }
    }
}

impl From<WireKeysPage> for KeysPage {
    fn from(p: WireKeysPage) -> KeysPage {
        let keys = p.keys.into_iter().map(|k| (k.key, k.total)).collect();
        KeysPage { tree: p.tree, limit: p.limit, cursor: p.cursor, next_cursor: p.next_cursor, keys }
    }
}

/// A summary without a range (`range_from`/`range_to` null) is over all time.
impl From<WireSummary> for Summary {
    fn from(s: WireSummary) -> Summary {
        let range = s.range_from.zip(s.range_to);
        Summary { tree: s.tree, range, total: s.total, active_keys: s.active_keys, bucket_count: s.bucket_count }
    }
}

/// A `{"<u64>": u64, ...}` object, in the order the server wrote it.
pub(crate) struct OrderedPoints(pub Vec<(u64, u64)>);

impl<'de> Deserialize<'de> for OrderedPoints {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OrderedPoints, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedPoints;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of bucket -> value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedPoints, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((k, v)) = map.next_entry::<std::borrow::Cow<'de, str>, u64>()? {
                    let bucket = k.parse::<u64>().map_err(|_| serde::de::Error::custom(format!("bucket {k:?}")))?;
                    out.push((bucket, v));
                }
                Ok(OrderedPoints(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use karma_engine::error::ErrorCode;

    #[test]
    fn lines_are_exact() {
        let mut l = Line::new("counter.increment", Some("t\"k"));
        l.str("series", "a\nb")
            .u64("key", i64::MAX as u64)
            .opt_u64("bucket", None)
            .range(Some(Range { from: 1, to: 2 }));
        assert_eq!(
            String::from_utf8(l.finish().unwrap()).unwrap(),
            "{\"v\":2,\"op\":\"counter.increment\",\"token\":\"t\\\"k\",\"series\":\"a\\nb\",\"key\":9223372036854775807,\"range\":{\"from\":1,\"to\":2}}\n"
        );
        let mut l = Line::new("counter.increment", None);
        l.u64("key", u64::MAX);
        assert_eq!(l.finish().unwrap_err().code(), Some(ErrorCode::ValidationError));
    }

    #[test]
    fn raw_lines_get_the_token_in_front() {
        let mut out = Vec::new();
        raw_line(" {\"v\":2,\"op\":\"system.ping\"}\r\n", Some("w"), &mut out).unwrap();
        assert_eq!(out, b"{\"token\":\"w\",\"v\":2,\"op\":\"system.ping\"}\n");
        out.clear();
        raw_line("{ }", Some("w"), &mut out).unwrap();
        assert_eq!(out, b"{\"token\":\"w\" }\n");
        out.clear();
        raw_line("[1]", Some("w"), &mut out).unwrap();
        assert_eq!(out, b"[1]\n");
        assert!(matches!(raw_line("{}\n{}", None, &mut out), Err(ClientError::Invalid(_))));
    }

    #[test]
    fn envelopes() {
        let ok = br#"{"protocol_version":2,"success":true,"response":18446744073709551615,"error_code":null}"#;
        assert_eq!(decode::<u64>("counter.sum", ok).unwrap(), u64::MAX);
        let err =
            br#"{"protocol_version":2,"success":false,"response":"Tree \"x\" not found","error_code":"not_found"}"#;
        match decode::<u64>("counter.sum", err) {
            Err(ClientError::Server(e)) => {
                assert_eq!((e.code(), e.message()), (ErrorCode::NotFound, "Tree \"x\" not found"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(decode::<u64>("counter.sum", b"nope"), Err(ClientError::Protocol(_))));
        let pts = br#"{"protocol_version":2,"success":true,"response":{"20260310":1,"20260305":18446744073709551615},"error_code":null}"#;
        assert_eq!(
            decode::<OrderedPoints>("counter.series", pts).unwrap().0,
            vec![(20260310, 1), (20260305, u64::MAX)]
        );
    }

    #[test]
    fn retry_rules() {
        assert!(retry_safe("counter.sum", false));
        assert!(retry_safe("tree.list", false));
        assert!(!retry_safe("counter.increment", false));
        assert!(retry_safe("counter.increment", true));
        assert!(!retry_safe("tree.create", true));
        assert!(!retry_safe("nope", true));
        assert!(line_retry_safe(r#"{"v":2,"op":"series.batch_add","idempotency_key":"k"}"#));
        assert!(!line_retry_safe(r#"{"v":2,"op":"series.batch_add"}"#));
        assert!(!line_retry_safe("garbage"));
    }
}
