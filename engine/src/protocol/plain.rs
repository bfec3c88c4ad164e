//! The plain-line reader: the hot ops (`counter.increment`,
//! `counter.decrement`, `counter.sum`, `counter.consume`) read in one scan
//! into a [`Request`], without the `Value` tree of the general parser and
//! without looking fields up by name.
//!
//! It only ever *accepts* or *declines*. It accepts a line when the line is
//! plain: one flat object written without whitespace, members with known
//! names each at most once, values that are strings without escapes or
//! non-negative integers without a fraction or exponent that fit `i64`, and
//! every field of the op well-typed and present where required. Anything
//! else (whitespace, escapes, duplicates, unknown members, floats, nested
//! values, a value the op refuses, another op) is declined, and the caller
//! runs the general parser, so every error answer is the general path's.
//!
//! What it accepts it reads exactly as `parse_document` + `parse_request`
//! do (same op, fields, token and idempotency envelope), so the request
//! that executes, and therefore the answer, is the same on both paths.
//! `engine/tests/plain_lines.rs` checks this on many generated lines.

use std::borrow::Cow;

use super::fields::parse_bucket_string;
use super::ops::Op;
use super::request::{Command, Idempotency, Request, Window};

/// A member's value, as the general parser would have typed it.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Str(&'a str),
    Int(u64),
}

/// The members of a plain line, one slot per known name.
#[derive(Default)]
struct Members<'a> {
    v: Option<Scalar<'a>>,
    /// Only the hot ops' names are read here; any other `op` declines.
    op: Option<Op>,
    tree: Option<Scalar<'a>>,
    series: Option<Scalar<'a>>,
    key: Option<Scalar<'a>>,
    value: Option<Scalar<'a>>,
    bucket: Option<Scalar<'a>>,
    date: Option<Scalar<'a>>,
    limit: Option<Scalar<'a>>,
    window: Option<Scalar<'a>>,
    days: Option<Scalar<'a>>,
    token: Option<Scalar<'a>>,
    idempotency_key: Option<Scalar<'a>>,
    fingerprint: Option<Scalar<'a>>,
    created_at: Option<Scalar<'a>>,
}

/// Which slot a member name fills.
enum Slot {
    Op,
    Scalar(for<'m, 'a> fn(&'m mut Members<'a>) -> &'m mut Option<Scalar<'a>>),
}

/// The slot of the member whose name starts `rest` (just after its opening
/// quote), and the length of `name":`; `None` for a name this reader does
/// not know (the line is then declined). Names are compared with their
/// closing quote and colon as constant byte strings, so a name with an
/// escape in it is simply an unknown name.
#[inline]
fn member(rest: &[u8]) -> Option<(Slot, usize)> {
    macro_rules! names {
        ($($name:literal => $field:ident),+) => {{
            $(
                if rest.starts_with($name) {
                    return Some((Slot::Scalar(|m| &mut m.$field), $name.len()));
                }
            )+
            None
        }};
    }
    match rest.first()? {
        b'o' if rest.starts_with(b"op\":") => Some((Slot::Op, 4)),
        b'v' => names!(b"v\":" => v, b"value\":" => value),
        b's' => names!(b"series\":" => series),
        b'k' => names!(b"key\":" => key),
        b't' => names!(b"tree\":" => tree, b"token\":" => token),
        b'b' => names!(b"bucket\":" => bucket),
        b'd' => names!(b"date\":" => date, b"days\":" => days),
        b'l' => names!(b"limit\":" => limit),
        b'w' => names!(b"window\":" => window),
        b'f' => names!(b"fingerprint\":" => fingerprint),
        b'i' => names!(
            b"idempotency_key\":" => idempotency_key,
            b"idempotency_created_at_unix\":" => created_at
        ),
        _ => None,
    }
}

/// The hot op named by the string value starting `rest` (at its opening
/// quote), and the length of that string with its quotes. The names are the
/// op table's (`Op::from_name`) for these ops; any other name, or an alias
/// added there later, is declined and read by the general parser.
#[inline]
fn hot_op(rest: &[u8]) -> Option<(Op, usize)> {
    const NAMES: [(&[u8], Op); 6] = [
        (b"\"counter.increment\"", Op::Increment),
        (b"\"counter.sum\"", Op::Sum),
        (b"\"counter.decrement\"", Op::Decrement),
        (b"\"counter.consume\"", Op::Consume),
        (b"\"series.increment\"", Op::Increment),
        (b"\"series.sum\"", Op::Sum),
    ];
    NAMES.iter().find(|(name, _)| rest.starts_with(name)).map(|&(name, op)| (op, name.len()))
}

/// The hot op of a line that starts the way clients write one
/// (`{"v":2,"op":"<hot op>"`), or `None` for any other line, whatever its
/// op. A few constant-byte comparisons: the server asks this of every line
/// it reads before deciding where a batch runs (none of the hot ops is
/// heavy), so it must cost far less than reading the op in general.
#[inline]
pub fn usual_hot_op(line: &[u8]) -> Option<Op> {
    hot_op(line.strip_prefix(USUAL_PREFIX)?).map(|(op, _)| op)
}

/// How clients begin a request line: the version, then the op.
const USUAL_PREFIX: &[u8] = b"{\"v\":2,\"op\":";

/// The request of a plain line of a hot op, or `None`: run the general
/// parser. The line is without its line terminator.
#[inline]
pub fn parse_plain(line: &[u8]) -> Option<Request<'_>> {
    parse_plain_with(line, None)
}

/// [`parse_plain`] for a line that likely names `known_series` (the series
/// of the line before, say): a series name that is those very bytes is
/// taken as that name without reading it character by character.
#[inline]
pub fn parse_plain_with<'a>(line: &'a [u8], known_series: Option<&'a str>) -> Option<Request<'a>> {
    let members = match usual_members(line, known_series) {
        Some(members) => members,
        None => {
            let mut members = Members::default();
            scan(line, &mut members)?;
            members
        }
    };
    build(&members)
}

/// The members of a line in the shape clients send (karma-load and the
/// bindings' pipelines): `{"v":2,"op":"<hot op>","series":"<name>","key":<n>}`
/// with or without `,"value":<n>` before the `}`. Matched as constant bytes
/// around the values, which is most of the reader's work saved on the
/// pipelined hot path; `None` for any other line, which [`scan`] then reads.
/// What this accepts, [`scan`] reads into the very same members (the
/// values go through the same readers), so [`build`] decides alike.
#[inline]
fn usual_members<'a>(b: &'a [u8], known_series: Option<&'a str>) -> Option<Members<'a>> {
    let rest = b.strip_prefix(USUAL_PREFIX)?;
    let (op, len) = hot_op(rest)?;
    let rest = rest.get(len..)?.strip_prefix(b",\"series\":\"")?;
    // The known name was read as a plain string before, so the same bytes
    // up to the closing quote are the same plain string.
    let known = known_series.and_then(|name| Some((name, rest.strip_prefix(name.as_bytes())?.strip_prefix(b"\"")?)));
    let (series, rest) = match known {
        Some(known) => known,
        None => {
            let name_len = plain_string_len(rest)?;
            (std::str::from_utf8(&rest[..name_len]).ok()?, rest.get(name_len + 1..)?)
        }
    };
    let rest = rest.strip_prefix(b",\"key\":")?;
    let (key, rest) = integer(rest)?;
    let (value, rest) = match rest.strip_prefix(b",\"value\":") {
        Some(rest) => {
            let (value, rest) = integer(rest)?;
            (Some(Scalar::Int(value)), rest)
        }
        None => (None, rest),
    };
    (rest == b"}").then(|| Members {
        v: Some(Scalar::Int(2)),
        op: Some(op),
        series: Some(Scalar::Str(series)),
        key: Some(Scalar::Int(key)),
        value,
        ..Members::default()
    })
}

/// Reads the members of `{"name":value,...}` into `m`; `None` on anything
/// that is not plain.
fn scan<'a>(b: &'a [u8], m: &mut Members<'a>) -> Option<()> {
    if b.first() != Some(&b'{') {
        return None;
    }
    let mut i = 1;
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (slot, name_len) = member(b.get(i + 1..)?)?;
        i += 1 + name_len;
        let next = match slot {
            Slot::Op => {
                let (op, len) = hot_op(b.get(i..)?)?;
                if m.op.replace(op).is_some() {
                    // A duplicate: the general parser takes the last one;
                    // rare enough to leave to it.
                    return None;
                }
                i + len
            }
            Slot::Scalar(field) => {
                let (value, next) = match *b.get(i)? {
                    b'"' => {
                        let start = i + 1;
                        let len = plain_string_len(b.get(start..)?)?;
                        // ASCII only (checked), so this cannot fail.
                        (Scalar::Str(std::str::from_utf8(&b[start..start + len]).ok()?), start + len + 1)
                    }
                    b'0'..=b'9' => {
                        let (n, rest) = integer(&b[i..])?;
                        (Scalar::Int(n), b.len() - rest.len())
                    }
                    _ => return None,
                };
                if field(m).replace(value).is_some() {
                    return None;
                }
                next
            }
        };
        match b.get(next)? {
            b',' => i = next + 1,
            b'}' if next + 1 == b.len() => return Some(()),
            _ => return None,
        }
    }
}

/// The length of a string body up to its closing `"`, when it is printable
/// ASCII without an escape (anything else is left to the general parser).
#[inline]
fn plain_string_len(b: &[u8]) -> Option<usize> {
    for (n, &c) in b.iter().enumerate() {
        match c {
            b'"' => return Some(n),
            b'\\' | 0..=0x1f | 0x80.. => return None,
            _ => {}
        }
    }
    None
}

/// A non-negative JSON integer at the start of `b` that fits `i64`, and
/// the bytes after it; `None` for no digit, a leading zero, a fraction, an
/// exponent or a larger number (which the general parser refuses or reads
/// as a float).
#[inline]
fn integer(b: &[u8]) -> Option<(u64, &[u8])> {
    // i64::MAX has 19 digits, and 19 digits cannot overflow u64.
    const MAX_DIGITS: usize = 19;
    let mut n: u64 = 0;
    let mut len = 0;
    while let Some(&c @ b'0'..=b'9') = b.get(len) {
        if len == MAX_DIGITS {
            return None;
        }
        n = n * 10 + u64::from(c - b'0');
        len += 1;
    }
    let rest = &b[len..];
    if len == 0 || (b[0] == b'0' && len > 1) || n > i64::MAX as u64 {
        return None;
    }
    if matches!(rest.first(), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some((n, rest))
}

fn uint(v: Option<Scalar<'_>>) -> Option<Option<u64>> {
    match v {
        None => Some(None),
        Some(Scalar::Int(n)) => Some(Some(n)),
        Some(Scalar::Str(_)) => None,
    }
}

fn required_uint(v: Option<Scalar<'_>>) -> Option<u64> {
    uint(v)?
}

/// `Fields::stringish` for what a plain line can hold.
fn stringish(v: Option<Scalar<'_>>) -> Option<Cow<'_, str>> {
    match v {
        None => None,
        Some(Scalar::Str(s)) => Some(Cow::Borrowed(s)),
        Some(Scalar::Int(n)) => Some(Cow::Owned(n.to_string())),
    }
}

/// The request of the members, deciding as `parse_request` does; `None`
/// wherever `parse_request` would refuse.
#[inline]
fn build<'a>(m: &Members<'a>) -> Option<Request<'a>> {
    if !matches!(m.v, Some(Scalar::Int(2))) {
        return None;
    }
    let op = m.op?;
    // `tree` when it is a string, else `series` when it is (Fields::series).
    let series = match (m.tree, m.series) {
        (Some(Scalar::Str(s)), _) | (_, Some(Scalar::Str(s))) => Cow::Borrowed(s),
        _ => return None,
    };
    let key = required_uint(m.key)?;
    let command = match op {
        Op::Increment | Op::Decrement => {
            Command::Write { series, key, bucket: write_bucket(m)?, value: uint(m.value)? }
        }
        Op::Sum => Command::Key { series, key, range: None },
        Op::Consume => {
            let limit = required_uint(m.limit)?;
            let bucket = write_bucket(m)?;
            let value = uint(m.value)?;
            let days = uint(m.days)?;
            let window = match m.window {
                None => None,
                Some(Scalar::Str(s)) => Some(s),
                Some(Scalar::Int(_)) => return None,
            };
            let window = Window::parse(window, days).ok()?;
            Command::Consume { series, key, bucket, value, limit, window }
        }
        _ => return None,
    };
    let idempotency = match m.idempotency_key {
        None => None,
        Some(key) => {
            let created_at_unix = uint(m.created_at)?;
            Some(Idempotency {
                key: stringish(Some(key)).unwrap_or_default(),
                fingerprint: stringish(m.fingerprint),
                created_at_unix,
            })
        }
    };
    // A token that is not a string counts as absent (Fields::loose_str).
    let token = match m.token {
        Some(Scalar::Str(s)) => Some(Cow::Borrowed(s)),
        _ => None,
    };
    Some(Request { op, command, token, idempotency })
}

/// `Fields::write_bucket`: `date` wins, then `bucket` (an integer or a
/// date string); `Some(None)` is today.
fn write_bucket(m: &Members<'_>) -> Option<Option<u64>> {
    if m.date.is_some() {
        return uint(m.date);
    }
    match m.bucket {
        None => Some(None),
        Some(Scalar::Str(s)) => parse_bucket_string(s).ok().map(Some),
        Some(Scalar::Int(n)) => Some(Some(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_usual_lines() {
        let req = parse_plain(br#"{"v":2,"op":"counter.increment","series":"bench","key":7,"value":1}"#).unwrap();
        assert_eq!(req.op, Op::Increment);
        assert_eq!(req.command, Command::Write { series: "bench".into(), key: 7, bucket: None, value: Some(1) });
        let req = parse_plain(br#"{"v":2,"op":"counter.sum","series":"bench","key":0}"#).unwrap();
        assert_eq!(req.command, Command::Key { series: "bench".into(), key: 0, range: None });
    }

    #[test]
    fn a_known_series_name_is_lent_only_to_the_lines_that_name_it_whole() {
        let known = String::from("bench");
        let lent = |line: &str| {
            let req = parse_plain_with(line.as_bytes(), Some(&known)).unwrap();
            std::ptr::eq(req.series().unwrap(), known.as_str())
        };
        assert!(lent(r#"{"v":2,"op":"counter.increment","series":"bench","key":7}"#));
        assert!(!lent(r#"{"v":2,"op":"counter.increment","series":"bench2","key":7}"#));
        assert!(!lent(r#"{"v":2,"op":"counter.increment","series":"benc","key":7}"#));
        // Any other member order takes the scan, which reads the name.
        assert!(!lent(r#"{"series":"bench","v":2,"op":"counter.increment","key":7}"#));
        let req = parse_plain_with(br#"{"v":2,"op":"counter.increment","series":"bench2","key":7}"#, Some(&known));
        assert_eq!(req.unwrap().series(), Some("bench2"));
        assert_eq!(
            parse_plain_with(br#"{"v":2,"op":"counter.increment","series":"bench,"key":7}"#, Some(&known)),
            None
        );
    }

    #[test]
    fn integers_are_read_up_to_i64_max() {
        assert_eq!(integer(b"0}"), Some((0, &b"}"[..])));
        assert_eq!(integer(b"9223372036854775807,"), Some((i64::MAX as u64, &b","[..])));
        for declined in [&b"9223372036854775808"[..], b"10000000000000000000", b"01", b"1.5", b"1e2", b"x", b""] {
            assert_eq!(integer(declined), None, "{}", String::from_utf8_lossy(declined));
        }
    }

    #[test]
    fn the_usual_hot_op_is_read_from_the_line_start_only() {
        let line = |op: &str| format!(r#"{{"v":2,"op":"{op}","series":"s","key":1}}"#);
        assert_eq!(usual_hot_op(line("counter.increment").as_bytes()), Some(Op::Increment));
        assert_eq!(usual_hot_op(line("series.sum").as_bytes()), Some(Op::Sum));
        assert_eq!(usual_hot_op(line("counter.consume").as_bytes()), Some(Op::Consume));
        // Not hot, or not where clients put it: the general reader decides.
        assert_eq!(usual_hot_op(line("series.batch_add").as_bytes()), None);
        assert_eq!(usual_hot_op(line("counter.increments").as_bytes()), None);
        assert_eq!(usual_hot_op(br#"{"op":"counter.increment","v":2}"#), None);
        assert_eq!(usual_hot_op(br#"{"v":2, "op":"counter.increment"}"#), None);
        assert_eq!(usual_hot_op(b""), None);
        // The server skips the heavy check for these lines: that is only
        // right while no hot op is heavy.
        for op in [Op::Increment, Op::Decrement, Op::Sum, Op::Consume] {
            assert!(!op.is_heavy(), "{op:?}");
        }
    }

    /// The shortcut for the usual shape reads what the member scan reads.
    #[test]
    fn the_usual_shape_reads_as_the_scan_does() {
        let mut lines = Vec::new();
        for op in ["counter.increment", "counter.decrement", "counter.sum", "series.increment", "counter.consume"] {
            for tail in [r#""key":7"#, r#""key":7,"value":3"#, r#""key":0,"value":0"#, r#""key":9223372036854775807"#] {
                lines.push(format!(r#"{{"v":2,"op":"{op}","series":"s-1","key":1,{tail}}}"#));
                lines.push(format!(r#"{{"v":2,"op":"{op}","series":"s-1",{tail}}}"#));
            }
        }
        let mut usual = 0;
        for line in &lines {
            let mut scanned = Members::default();
            let by_scan = scan(line.as_bytes(), &mut scanned).and_then(|()| build(&scanned));
            if let Some(members) = usual_members(line.as_bytes(), None) {
                usual += 1;
                assert_eq!(build(&members), by_scan, "{line}");
            }
            assert_eq!(parse_plain(line.as_bytes()), by_scan, "{line}");
        }
        // Every line without the duplicate key (the consume ones too, which
        // both paths then decline for their missing limit).
        assert_eq!(usual, lines.len() / 2);
    }

    #[test]
    fn declines_what_is_not_plain() {
        for line in [
            &br#"{"v":2,"op":"counter.increment","series":"a","key":1,"key":2}"#[..],
            br#"{"v":2, "op":"counter.increment","series":"a","key":1}"#,
            br#"{"v":2,"op":"counter.increment","series":"a\n","key":1}"#,
            br#"{"v":2,"op":"counter.increment","series":"a","key":1.0}"#,
            br#"{"v":2,"op":"counter.increment","series":"a","key":01}"#,
            br#"{"v":2,"op":"counter.increment","series":"a","key":-1}"#,
            br#"{"v":2,"op":"counter.increment","series":"a","key":9223372036854775808}"#,
            br#"{"v":2,"op":"counter.increment","series":"a","key":1,"x":1}"#,
            br#"{"v":2,"op":"tree.keys","series":"a","key":1}"#,
            br#"{"v":1,"op":"counter.increment","series":"a","key":1}"#,
            br#"{"v":2,"op":"counter.increment","series":"a","key":1} "#,
            br#"{"v":2,"op":"counter.increment","series":"a"}"#,
            br#"{}"#,
            b"",
        ] {
            assert!(parse_plain(line).is_none(), "{}", String::from_utf8_lossy(line));
        }
    }
}
