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
    op: Option<Scalar<'a>>,
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

impl<'a> Members<'a> {
    /// The slot of a member name; `None` for a name this reader does not
    /// know (the line is then declined).
    fn slot(&mut self, name: &[u8]) -> Option<&mut Option<Scalar<'a>>> {
        Some(match name {
            b"v" => &mut self.v,
            b"op" => &mut self.op,
            b"tree" => &mut self.tree,
            b"series" => &mut self.series,
            b"key" => &mut self.key,
            b"value" => &mut self.value,
            b"bucket" => &mut self.bucket,
            b"date" => &mut self.date,
            b"limit" => &mut self.limit,
            b"window" => &mut self.window,
            b"days" => &mut self.days,
            b"token" => &mut self.token,
            b"idempotency_key" => &mut self.idempotency_key,
            b"fingerprint" => &mut self.fingerprint,
            b"idempotency_created_at_unix" => &mut self.created_at,
            _ => return None,
        })
    }
}

/// The request of a plain line of a hot op, or `None`: run the general
/// parser. The line is without its line terminator.
pub fn parse_plain(line: &[u8]) -> Option<Request<'_>> {
    let members = scan(line)?;
    build(&members)
}

/// Reads the members of `{"name":value,...}`; `None` on anything that is not
/// plain.
fn scan(line: &[u8]) -> Option<Members<'_>> {
    // Strings are sliced out of the line as `&str`: one UTF-8 check for the
    // whole line (the general parser makes the same check first).
    let text = std::str::from_utf8(line).ok()?;
    let b = line;
    if b.first() != Some(&b'{') {
        return None;
    }
    let mut members = Members::default();
    let mut i = 1;
    loop {
        // A member name: matched as raw bytes, so a name with an escape in
        // it is simply an unknown name.
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let name_start = i + 1;
        let name_len = memchr_quote(&b[name_start..])?;
        let slot = members.slot(&b[name_start..name_start + name_len])?;
        i = name_start + name_len + 1;
        if b.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        let (value, next) = match b.get(i)? {
            b'"' => {
                let start = i + 1;
                let len = plain_string_len(&b[start..])?;
                (Scalar::Str(text.get(start..start + len)?), start + len + 1)
            }
            b'0'..=b'9' => {
                let (n, next) = integer(b, i)?;
                (Scalar::Int(n), next)
            }
            _ => return None,
        };
        if slot.is_some() {
            // A duplicate: the general parser takes the last one; rare
            // enough to leave to it.
            return None;
        }
        *slot = Some(value);
        match b.get(next)? {
            b',' => i = next + 1,
            b'}' if next + 1 == b.len() => return Some(members),
            _ => return None,
        }
    }
}

/// Bytes up to the next `"`.
fn memchr_quote(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'"')
}

/// The length of a string body up to its closing `"`, when it has no
/// escape and no control character.
fn plain_string_len(b: &[u8]) -> Option<usize> {
    for (n, &c) in b.iter().enumerate() {
        match c {
            b'"' => return Some(n),
            b'\\' | 0..=0x1f => return None,
            _ => {}
        }
    }
    None
}

/// A non-negative JSON integer starting at `b[i]` (a digit) that fits `i64`,
/// and the index after it; `None` for a leading zero, a fraction, an
/// exponent or a larger number (which the general parser refuses or reads
/// as a float).
fn integer(b: &[u8], mut i: usize) -> Option<(u64, usize)> {
    let start = i;
    let mut n: u64 = 0;
    while let Some(&c @ b'0'..=b'9') = b.get(i) {
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        i += 1;
    }
    if (b[start] == b'0' && i > start + 1) || n > i64::MAX as u64 {
        return None;
    }
    if matches!(b.get(i), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some((n, i))
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
fn build<'a>(m: &Members<'a>) -> Option<Request<'a>> {
    if !matches!(m.v, Some(Scalar::Int(2))) {
        return None;
    }
    let Some(Scalar::Str(op_name)) = m.op else { return None };
    let op = Op::from_name(op_name)?;
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
