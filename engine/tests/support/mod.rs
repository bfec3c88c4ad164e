//! Shared helpers of the engine's protocol test suites (`ops`, `errors`,
//! `properties`, `compat`): engines with a fixed clock, one-line request
//! helpers and exact envelope builders.
//!
//! Not every suite uses every helper.
#![allow(dead_code)]

use std::sync::Arc;

use karma_engine::clock::ManualClock;
use karma_engine::{Engine, Options, Session};
use serde_json::Value;

/// "Now" of every test engine: 2026-05-28T20:26:40Z, so today's bucket is
/// `20260528`.
pub const T0: u64 = 1_780_000_000;
pub const TODAY: u64 = 20_260_528;
pub const I64_MAX: u64 = i64::MAX as u64;

/// In-memory options with the clock standing at [`T0`].
pub fn options() -> (Options, Arc<ManualClock>) {
    let clock = ManualClock::new(T0);
    let options = Options { directory: None, clock: clock.clone(), ..Options::default() };
    (options, clock)
}

/// An in-memory engine whose clock stands at [`T0`].
pub fn engine() -> Engine {
    engine_with(|_| {})
}

/// An in-memory engine at [`T0`], with `tweak` applied to its options.
pub fn engine_with(tweak: impl FnOnce(&mut Options)) -> Engine {
    let (mut o, _) = options();
    tweak(&mut o);
    Engine::open(o).expect("open in-memory engine")
}

/// An in-memory engine at [`T0`] and the clock that drives it.
pub fn engine_and_clock(tweak: impl FnOnce(&mut Options)) -> (Engine, Arc<ManualClock>) {
    let (mut o, clock) = options();
    tweak(&mut o);
    (Engine::open(o).expect("open in-memory engine"), clock)
}

/// A durable engine in a fresh temporary directory (WAL on, no fsync),
/// clock at [`T0`].
pub fn durable_with(tweak: impl FnOnce(&mut Options)) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0);
    let mut o = Options { wal_fsync: karma_engine::FsyncPolicy::Never, clock, ..Options::durable(dir.path()) };
    tweak(&mut o);
    (Engine::open(o).expect("open durable engine"), dir)
}

pub fn durable() -> (Engine, tempfile::TempDir) {
    durable_with(|_| {})
}

/// Sends one request line as a client; returns the response line without
/// its `\r\n` (which it checks is there).
pub fn send(e: &Engine, line: &str) -> String {
    send_as(e, line, &Session::client())
}

pub fn send_as(e: &Engine, line: &str, session: &Session) -> String {
    let reply = e.handle_line(line.as_bytes(), session);
    // Like the server: a logged mutation is answered once it is durable.
    if let Some(lsn) = reply.lsn {
        e.wait_durable(lsn).expect("WAL durable");
    }
    let text = String::from_utf8(reply.bytes).expect("response is UTF-8");
    let body = text.strip_suffix("\r\n").unwrap_or_else(|| panic!("response must end with CRLF: {text:?}"));
    assert!(!body.contains('\n'), "response must be one line: {body:?}");
    body.to_owned()
}

/// The success envelope around a raw `response` value.
pub fn ok(response: &str) -> String {
    format!("{{\"protocol_version\":2,\"success\":true,\"response\":{response},\"error_code\":null}}")
}

/// The success envelope of an idempotency-layer answer.
pub fn idem(response: &str, replayed: bool) -> String {
    format!(
        "{{\"protocol_version\":2,\"success\":true,\"response\":{response},\"idempotent\":{replayed},\"error_code\":null}}"
    )
}

/// The error envelope.
pub fn fail(code: &str, message: &str) -> String {
    let msg = serde_json::to_string(message).unwrap();
    format!("{{\"protocol_version\":2,\"success\":false,\"response\":{msg},\"error_code\":\"{code}\"}}")
}

/// Sends `line` and asserts the exact response line.
#[track_caller]
pub fn expect(e: &Engine, line: &str, expected: &str) {
    let got = send(e, line);
    assert_eq!(got, expected, "request: {line}");
}

/// Sends `line` and asserts a success whose `response` is exactly `response`.
#[track_caller]
pub fn expect_ok(e: &Engine, line: &str, response: &str) {
    expect(e, line, &ok(response));
}

/// Sends `line` and asserts the exact error.
#[track_caller]
pub fn expect_err(e: &Engine, line: &str, code: &str, message: &str) {
    expect(e, line, &fail(code, message));
}

/// Sends `line`, asserts success and returns the raw text of `response`.
#[track_caller]
pub fn raw_response(e: &Engine, line: &str) -> String {
    let got = send(e, line);
    let head = "{\"protocol_version\":2,\"success\":true,\"response\":";
    let tail = ",\"error_code\":null}";
    let inner = got
        .strip_prefix(head)
        .and_then(|s| s.strip_suffix(tail))
        .unwrap_or_else(|| panic!("expected a success for {line}, got {got}"));
    let inner = inner.strip_suffix(",\"idempotent\":false").unwrap_or(inner);
    let inner = inner.strip_suffix(",\"idempotent\":true").unwrap_or(inner);
    inner.to_owned()
}

/// Sends `line`, asserts success and returns `response` parsed.
#[track_caller]
pub fn response(e: &Engine, line: &str) -> Value {
    let raw = raw_response(e, line);
    serde_json::from_str(&raw).unwrap_or_else(|err| panic!("response of {line} is not JSON ({err}): {raw}"))
}

/// Sends `line` and returns `(error_code, message)`; panics on success.
#[track_caller]
pub fn error_of(e: &Engine, line: &str) -> (String, String) {
    let got = send(e, line);
    let v: Value = serde_json::from_str(&got).unwrap_or_else(|err| panic!("not JSON ({err}): {got}"));
    assert_eq!(v["success"], Value::Bool(false), "expected an error for {line}, got {got}");
    (v["error_code"].as_str().unwrap().to_owned(), v["response"].as_str().unwrap().to_owned())
}

/// The `error_code` of the response to `line`, or `None` on success.
pub fn code_of(e: &Engine, line: &str) -> Option<String> {
    let got = send(e, line);
    let v: Value = serde_json::from_str(&got).unwrap_or_else(|err| panic!("not JSON ({err}): {got}"));
    v["error_code"].as_str().map(str::to_owned)
}

/// The top-level keys of a JSON object text, in document order (serde_json's
/// map may sort them, so key order is read with a dedicated visitor).
pub fn object_keys(text: &str) -> Vec<String> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some(k) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                keys.push(k);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Keys).unwrap_or_else(|err| panic!("not an object ({err}): {text}"))
}

/// A whole-series observation for "nothing changed" comparisons: `tree.info`,
/// `tree.keys` (totals of every counter, whatever its buckets) and
/// `tree.series` over 2025-07-01..2026-07-01. `None` when the series does not exist.
pub fn observe(e: &Engine, series: &str) -> Option<(String, String, String)> {
    let name = serde_json::to_string(series).unwrap();
    let info = send(e, &format!(r#"{{"v":2,"op":"tree.info","series":{name}}}"#));
    if info.contains("\"not_found\"") {
        return None;
    }
    let keys = send(e, &format!(r#"{{"v":2,"op":"tree.keys","series":{name},"limit":10000}}"#));
    let all =
        send(e, &format!(r#"{{"v":2,"op":"tree.series","series":{name},"range":{{"from":20250701,"to":20260701}}}}"#));
    Some((info, keys, all))
}

/// A `[[k,b,v],...]` items array.
pub fn items_json(items: &[[u64; 3]]) -> String {
    let parts: Vec<String> = items.iter().map(|[k, b, v]| format!("[{k},{b},{v}]")).collect();
    format!("[{}]", parts.join(","))
}
