//! The plain-line reader (protocol/plain.rs) against the general parser.
//!
//! Many generated request lines, valid and invalid, go to two engines in the
//! same state: one through `handle_line` (hot-op lines the plain reader
//! accepts skip the general parser), one through `handle_line_general`
//! (every line through the general parser). Every answer must be the same
//! bytes with the same LSN, and at the end both engines must hold the same
//! data and WAL. Separately, every line the plain reader accepts must parse
//! to the very same `Request` through `parse_document` + `parse_request`.
//! The generator is a fixed-seed xorshift, so a failure repeats.

mod support;

use karma_engine::protocol::plain::parse_plain;
use karma_engine::protocol::request::{parse_document, parse_request};
use karma_engine::{Engine, Options, Session};
use karma_testkit::Rng;
use support::*;

/// The first (usual) item most of the time, else any.
fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    if rng.chance(80) {
        items[0]
    } else {
        items[rng.index(items.len())]
    }
}

const OPS: &[&str] = &[
    "\"counter.increment\"",
    "\"counter.increment\"",
    "\"counter.decrement\"",
    "\"counter.sum\"",
    "\"counter.sum\"",
    "\"counter.consume\"",
    "\"series.increment\"",
    "\"series.sum\"",
    "\"tree.info\"",
    "\"counter.nope\"",
    "\"counter.incr\\u0065ment\"",
    "7",
];
const SERIES: &[&str] = &[
    "\"s1\"",
    "\"s1\"",
    "\"s2\"",
    "\"\"",
    "\"a/b\"",
    "\"s\\u0031\"",
    "\"\u{e9}t\u{e9}\"",
    "\"tab\\there\"",
    "\"s\\\\1\"",
    "5",
    "null",
];
const KEYS: &[&str] = &[
    "0",
    "1",
    "1",
    "42",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "-1",
    "-0",
    "1.5",
    "1e2",
    "1E2",
    "2.0",
    "01",
    "\"7\"",
    "null",
    "true",
    "[1]",
    "{}",
];
const VALUES: &[&str] = &["1", "1", "5", "0", "-3", "2.0", "\"1\"", "9223372036854775807", "null", "false"];
const BUCKETS: &[&str] = &[
    "20260528",
    "20260527",
    "\"2026-05-27\"",
    "\"2026-5-5\"",
    "\"20260526\"",
    "\"x\"",
    "\"-1\"",
    "\"\"",
    "\"99999999999999999999\"",
    "0",
    "99999999",
    "-5",
    "null",
    "2026.5",
];
const LIMITS: &[&str] = &["10", "3", "9223372036854775807", "0", "-1", "\"10\"", "null"];
const WINDOWS: &[&str] = &["\"day\"", "\"days\"", "\"month\"", "\"week\"", "1", "null", "\"da\\u0079\""];
const DAYS: &[&str] = &["1", "7", "0", "400", "\"7\"", "-2"];
const TOKENS: &[&str] = &["\"secret\"", "\"reader\"", "\"wrong\"", "5", "null"];
const IDEM_KEYS: &[&str] = &["\"k1\"", "\"k2\"", "\"k1\"", "12", "\"\"", "null", "\"k\\u0031\""];
const FINGERPRINTS: &[&str] = &["\"f\"", "\"\"", "3", "null"];
const CREATED: &[&str] = &["5", "1780000000", "-1", "\"x\""];
const RANGES: &[&str] = &["{\"from\":20260501,\"to\":20260531}", "{\"from\":20260531,\"to\":20260501}", "null"];

/// One generated request line.
fn line(rng: &mut Rng) -> Vec<u8> {
    let mut members: Vec<(String, String)> = Vec::new();
    let mut add = |rng: &mut Rng, percent: u64, name: &str, values: &[&str]| {
        if rng.chance(percent) {
            let value = pick(rng, values).to_owned();
            members.push((format!("\"{name}\""), value));
        }
    };
    add(rng, 96, "v", &["2", "2", "2", "2", "1", "\"2\"", "2.0", "3"]);
    add(rng, 97, "op", OPS);
    add(rng, 85, "series", SERIES);
    add(rng, 12, "tree", SERIES);
    add(rng, 92, "key", KEYS);
    add(rng, 50, "value", VALUES);
    add(rng, 20, "bucket", BUCKETS);
    add(rng, 8, "date", BUCKETS);
    add(rng, 35, "limit", LIMITS);
    add(rng, 25, "window", WINDOWS);
    add(rng, 12, "days", DAYS);
    add(rng, 15, "token", TOKENS);
    add(rng, 15, "idempotency_key", IDEM_KEYS);
    add(rng, 6, "fingerprint", FINGERPRINTS);
    add(rng, 6, "idempotency_created_at_unix", CREATED);
    add(rng, 5, "range", RANGES);
    add(rng, 4, "extra", &["1", "\"x\"", "[1,2]", "{\"a\":1}"]);
    add(rng, 3, "k\\u0065y", &["3"]);
    if rng.chance(8) && !members.is_empty() {
        // A duplicate member, either value kept last.
        let i = rng.index(members.len());
        let (name, _) = members[i].clone();
        let value = pick(rng, &["1", "2", "\"s2\"", "\"counter.sum\"", "-1"]).to_owned();
        let at = rng.index(members.len() + 1);
        members.insert(at, (name, value));
    }
    if rng.chance(30) {
        // Another member order.
        for i in (1..members.len()).rev() {
            let j = rng.index(i + 1);
            members.swap(i, j);
        }
    }
    let (colon, comma) = match rng.index(12) {
        0 => (": ", ", "),
        1 => (":", " ,"),
        2 => (" :", ","),
        3 => (":\t", ","),
        _ => (":", ","),
    };
    let body: Vec<String> = members.iter().map(|(n, v)| format!("{n}{colon}{v}")).collect();
    let mut text = format!("{{{}}}", body.join(comma)).into_bytes();
    match rng.index(40) {
        0 => text.insert(0, b' '),
        1 => text.push(b' '),
        2 => text.push(b'\r'),
        3 => {
            text.pop();
            text.extend_from_slice(b",}");
        }
        4 => {
            // Cut anywhere, even inside a UTF-8 sequence.
            let cut = rng.index(text.len().max(1));
            text.truncate(cut);
        }
        5 => {
            text.insert(0, b'[');
            text.push(b']');
        }
        6 => text.extend_from_slice(b" x"),
        7 => text = b"\"just a string\"".to_vec(),
        8 => text.clear(),
        9 => text.push(b'}'),
        10 => {
            // Not UTF-8.
            let at = rng.index(text.len().max(1));
            text.insert(at, 0xff);
        }
        _ => {}
    }
    text
}

/// Engine state that must not differ between the two paths.
fn state(e: &Engine) -> Vec<(String, karma_engine::snapshot::SeriesImage)> {
    e.list_series()
        .into_iter()
        .map(|name| {
            let image = e.export_series(&name).expect("export");
            (name, image)
        })
        .collect()
}

/// Runs `lines` against a fresh pair of engines built by `open`; returns
/// how many lines the plain reader accepted. The general engine takes each
/// line on its own; the other takes each on its own too, or with `batches`
/// as the lines of batches (`Engine::line_batch`) of 1 to 24 lines.
fn compare(
    lines: &[Vec<u8>],
    open: &dyn Fn() -> (Engine, Option<tempfile::TempDir>),
    mut batches: Option<Rng>,
) -> usize {
    let (fast, _fast_dir) = open();
    let (general, _general_dir) = open();
    let session = Session::client();
    let mut accepted = 0;
    let mut rest = lines;
    while !rest.is_empty() {
        let n = batches.as_mut().map_or(1, |rng| 1 + rng.index(24)).min(rest.len());
        let (chunk, after) = rest.split_at(n);
        rest = after;
        let mut batch = fast.line_batch();
        for raw in chunk {
            let mut bytes = Vec::new();
            let lsn = batch.handle_line_into(raw, &session, &mut bytes);
            let b = general.handle_line_general(raw, &session);
            let line = String::from_utf8_lossy(raw);
            assert_eq!(String::from_utf8_lossy(&bytes), String::from_utf8_lossy(&b.bytes), "answers differ for {line}");
            assert_eq!(lsn, b.lsn, "LSNs differ for {line}");
            for (e, lsn) in [(&fast, lsn), (&general, b.lsn)] {
                if let Some(lsn) = lsn {
                    e.wait_durable(lsn).expect("durable");
                }
            }
            if parse_plain(raw).is_some() {
                accepted += 1;
            }
        }
    }
    assert_eq!(state(&fast), state(&general), "data differs");
    // The metrics the lines leave must agree too (the latency aside).
    let stats = |e: &Engine| {
        let v = response(e, r#"{"v":2,"op":"system.stats","token":"secret"}"#);
        (v["commands"].clone(), v["errors"].clone())
    };
    assert_eq!(stats(&fast), stats(&general), "counters differ");
    let wal =
        |e: &Engine| send(e, r#"{"v":2,"op":"replication.entries","after_lsn":0,"limit":10000,"token":"secret"}"#);
    assert_eq!(wal(&fast), wal(&general), "WAL entries differ");
    accepted
}

fn generated(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    (0..n).map(|_| line(&mut rng)).collect()
}

#[test]
fn accepted_lines_parse_to_the_general_request() {
    let lines = generated(0x5eed_0001, 20_000);
    let mut accepted = 0;
    for bytes in &lines {
        let Some(plain) = parse_plain(bytes) else { continue };
        accepted += 1;
        let line = String::from_utf8_lossy(bytes);
        let doc = parse_document(bytes).unwrap_or_else(|e| panic!("{line}: {}", e.message()));
        let general = parse_request(&doc).unwrap_or_else(|e| panic!("{line}: {}", e.message()));
        assert_eq!(plain, general, "{line}");
    }
    // Both readers must really be exercised.
    assert!(accepted > lines.len() / 10, "only {accepted} of {} lines were plain", lines.len());
    assert!(accepted < lines.len() / 2, "{accepted} of {} lines were plain", lines.len());
}

#[test]
fn both_readers_answer_alike_in_memory() {
    let lines = generated(0x5eed_0002, 6_000);
    let accepted = compare(&lines, &|| (engine(), None), None);
    assert!(accepted > lines.len() / 10, "only {accepted} plain lines");
}

#[test]
fn both_readers_answer_alike_with_tokens() {
    let lines = generated(0x5eed_0003, 6_000);
    let open = || {
        let e = engine_with(|o: &mut Options| {
            o.auth_token = Some("secret".into());
            o.read_auth_token = Some("reader".into());
        });
        (e, None)
    };
    // Most lines carry no token and are refused; those with one are not.
    compare(&lines, &open, None);
}

#[test]
fn both_readers_answer_alike_with_a_wal() {
    let lines = generated(0x5eed_0004, 4_000);
    let accepted = compare(
        &lines,
        &|| {
            let (e, dir) = durable();
            (e, Some(dir))
        },
        None,
    );
    assert!(accepted > lines.len() / 10, "only {accepted} plain lines");
}

/// Generated lines with, now and then, a line that drops or creates one of
/// the series they write, or names a series that begins like another.
fn generated_with_drops(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    let mut lines = Vec::new();
    for _ in 0..n {
        if rng.chance(4) {
            let op = pick(&mut rng, &["\"tree.drop\"", "\"tree.create\""]);
            let series = pick(&mut rng, SERIES);
            lines.push(format!(r#"{{"v":2,"op":{op},"series":{series},"token":"secret"}}"#).into_bytes());
        }
        if rng.chance(4) {
            let series = pick(&mut rng, &["s1x", "s", "s1/", "s1\\u0000"]);
            lines.push(format!(r#"{{"v":2,"op":"counter.increment","series":"{series}","key":1}}"#).into_bytes());
        }
        if rng.chance(2) {
            // Not JSON: the name's closing quote is missing.
            lines.push(br#"{"v":2,"op":"counter.increment","series":"s1x,"key":1}"#.to_vec());
        }
        lines.push(line(&mut rng));
    }
    lines
}

#[test]
fn lines_of_one_batch_answer_as_lines_on_their_own() {
    // The lines of a batch share today's bucket and the series last written
    // (whose name the next line may match as bytes, and whose lock it may
    // take without the series map): drops, re-creations, other series and
    // names that begin alike between them must not be answered from it.
    let lines = generated_with_drops(0x5eed_0005, 6_000);
    let accepted = compare(&lines, &|| (engine(), None), Some(Rng(0x5eed_0006)));
    assert!(accepted > lines.len() / 10, "only {accepted} plain lines");
    let lines = generated_with_drops(0x5eed_0007, 3_000);
    compare(
        &lines,
        &|| {
            let (e, dir) = durable();
            (e, Some(dir))
        },
        Some(Rng(0x5eed_0008)),
    );
}

#[test]
fn the_usual_lines_are_plain() {
    for line in [
        r#"{"v":2,"op":"counter.increment","series":"bench","key":1,"value":1}"#,
        r#"{"v":2,"op":"counter.decrement","series":"bench","key":1}"#,
        r#"{"v":2,"op":"counter.sum","series":"bench","key":1}"#,
        r#"{"v":2,"op":"counter.consume","series":"bench","key":1,"value":1,"limit":10,"window":"month"}"#,
        r#"{"v":2,"op":"counter.increment","series":"bench","key":1,"bucket":"2026-05-27","idempotency_key":"k"}"#,
        r#"{"key":1,"series":"bench","op":"counter.increment","v":2,"token":"t"}"#,
    ] {
        assert!(parse_plain(line.as_bytes()).is_some(), "{line}");
    }
}
