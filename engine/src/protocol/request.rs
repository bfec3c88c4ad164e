//! A parsed v2 request: the op, its typed fields, and the envelope fields
//! (token, idempotency). Parsing covers steps 2-9 of spec/protocol.md §4.1;
//! validation that comes after authentication lives in `validate.rs`.

use std::borrow::Cow;

use crate::error::{Error, ErrorCode, Result};
use crate::json::{self, Value};

use super::fields::Fields;
use super::ops::Op;

/// An inclusive bucket range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub from: u64,
    pub to: u64,
}

/// One `[key, bucket, value]` batch item.
pub type Item = [u64; 3];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiSumItem<'a> {
    pub series: Cow<'a, str>,
    pub key: u64,
}

/// The idempotency envelope (§12.2), present when the request carried
/// `idempotency_key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idempotency<'a> {
    pub key: Cow<'a, str>,
    pub fingerprint: Option<Cow<'a, str>>,
    pub created_at_unix: Option<u64>,
}

/// Which buckets a `counter.consume` counts against its limit; each ends at
/// the request's bucket (today by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The bucket's day alone.
    Day,
    /// The last `n` days, the bucket's day included.
    Days(u64),
    /// The bucket's calendar month (UTC) up to and including the bucket.
    Month,
}

impl Window {
    /// The window a request's `window` (`"day"`, `"days"`, `"month"`, or
    /// absent) and `days` fields name: `"day"` by default, `days` alone
    /// implies `"days"`, and `days` beside another window is refused rather
    /// than guessed at. The protocol's parser and every binding's `consume`
    /// read their arguments through this, so they refuse alike. (Whether
    /// `days` is in range is checked later, with the other limits.)
    pub fn parse(name: Option<&str>, days: Option<u64>) -> Result<Window> {
        match (name, days) {
            (None | Some("day"), None) => Ok(Window::Day),
            (Some("month"), None) => Ok(Window::Month),
            (None | Some("days"), Some(n)) => Ok(Window::Days(n)),
            (Some("days"), None) => Err(Error::validation("Field days is required")),
            (Some("day" | "month"), Some(_)) => Err(Error::validation("Field days requires window days")),
            (Some(other), _) => Err(Error::validation(format!("Field window must be day, days or month, got {other}"))),
        }
    }

    /// The request's `window` field for this window.
    pub fn name(self) -> &'static str {
        match self {
            Window::Day => "day",
            Window::Days(_) => "days",
            Window::Month => "month",
        }
    }

    /// The request's `days` field: present for a days window only.
    pub fn days(self) -> Option<u64> {
        match self {
            Window::Days(n) => Some(n),
            Window::Day | Window::Month => None,
        }
    }
}

/// `idempotency.prune`'s `before`, as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PruneBefore {
    Unix(u64),
    Rfc3339(u64),
}

/// The typed fields of every op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    NoFields,
    Series { series: Cow<'a, str> },
    TreeKeys { series: Cow<'a, str>, cursor: Option<u64>, limit: Option<i64> },
    SeriesRange { series: Cow<'a, str>, range: Option<Range> },
    TreeTop { series: Cow<'a, str>, limit: Option<i64>, range: Option<Range> },
    Key { series: Cow<'a, str>, key: u64, range: Option<Range> },
    Keys { series: Cow<'a, str>, keys: Vec<u64>, range: Option<Range> },
    MultiSum { items: Vec<MultiSumItem<'a>>, range: Option<Range> },
    Write { series: Cow<'a, str>, key: u64, bucket: Option<u64>, value: Option<u64> },
    Consume { series: Cow<'a, str>, key: u64, bucket: Option<u64>, value: Option<u64>, limit: u64, window: Window },
    Items { series: Cow<'a, str>, items: Vec<Item> },
    DeleteBefore { series: Cow<'a, str>, before: u64 },
    File { file: Cow<'a, str> },
    Chunk { file: Option<Cow<'a, str>>, offset: u64, limit: Option<i64> },
    RecoveryStatus { source: Option<Cow<'a, str>>, after_source: Option<Cow<'a, str>> },
    RecoveryCheckpoint { source: Cow<'a, str>, offset: Option<Cow<'a, str>>, event_id: Option<Cow<'a, str>> },
    ReplicationEntries { after_lsn: u64, limit: Option<i64> },
    IngestBegin { stream_id: Cow<'a, str>, mode: Cow<'a, str>, granularity: Option<Cow<'a, str>> },
    IngestChunk { stream_id: Cow<'a, str>, series: Cow<'a, str>, chunk_seq: u64, items: Vec<Item> },
    Stream { stream_id: Cow<'a, str> },
    Prune { before: PruneBefore, limit: Option<i64> },
    Reconciliation { checked_points: i64, mismatch_count: i64, absolute_drift: i64, max_abs_delta: i64 },
}

/// A request after field extraction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub op: Op,
    pub command: Command<'a>,
    /// The `token` when it is a string.
    pub token: Option<Cow<'a, str>>,
    pub idempotency: Option<Idempotency<'a>>,
}

impl<'a> Request<'a> {
    pub fn new(op: Op, command: Command<'a>) -> Request<'a> {
        Request { op, command, token: None, idempotency: None }
    }

    /// The series this request names, if any.
    pub fn series(&self) -> Option<&str> {
        match &self.command {
            Command::Series { series }
            | Command::TreeKeys { series, .. }
            | Command::SeriesRange { series, .. }
            | Command::TreeTop { series, .. }
            | Command::Key { series, .. }
            | Command::Keys { series, .. }
            | Command::Write { series, .. }
            | Command::Consume { series, .. }
            | Command::Items { series, .. }
            | Command::DeleteBefore { series, .. }
            | Command::IngestChunk { series, .. } => Some(series),
            _ => None,
        }
    }
}

pub const UNSUPPORTED_PROTOCOL: &str = "Karma 1.0 accepts only protocol v2 requests with field v=2";

/// Parses the JSON document of a request line (steps 2-3).
pub fn parse_document(line: &[u8]) -> Result<Value<'_>> {
    let doc = json::parse(line).map_err(|msg| Error::new(ErrorCode::InvalidJson, msg))?;
    if !matches!(doc, Value::Object(_)) {
        return Err(Error::validation(format!("Request must be a JSON object, got {}", doc.type_name())));
    }
    Ok(doc)
}

/// Steps 4, 5, 7, 8 and 9 on a parsed request object.
pub fn parse_request<'a>(doc: &Value<'a>) -> Result<Request<'a>> {
    let f = Fields::new(doc);
    match f.get("v") {
        Some(Value::Int(2)) => {}
        _ => return Err(Error::new(ErrorCode::UnsupportedProtocol, UNSUPPORTED_PROTOCOL)),
    }
    let op_name = f.loose_str("op").ok_or_else(|| Error::validation("Field op is required"))?;
    let op = Op::from_name(&op_name)
        .ok_or_else(|| Error::new(ErrorCode::UnknownCommand, format!("Unknown op {op_name}")))?;
    let command = parse_command(op, f)?;
    let idempotency = if f.has("idempotency_key") {
        let key = f.stringish("idempotency_key")?.unwrap_or_default();
        let fingerprint = f.stringish("fingerprint")?;
        let created_at_unix = match f.get("idempotency_created_at_unix") {
            None => None,
            Some(Value::Int(n)) if *n >= 0 => Some(*n as u64),
            Some(Value::Int(_)) => {
                return Err(Error::validation("Field idempotency_created_at_unix must be greater than or equal to 0"))
            }
            Some(_) => return Err(Error::validation("Field idempotency_created_at_unix must be an integer")),
        };
        Some(Idempotency { key, fingerprint, created_at_unix })
    } else {
        None
    };
    Ok(Request { op, command, token: f.loose_str("token"), idempotency })
}

fn parse_command<'a>(op: Op, f: Fields<'_, 'a>) -> Result<Command<'a>> {
    use Op::*;
    Ok(match op {
        Ping | Health | Stats | Metrics | Wal | TreeList | SnapshotList | SnapshotInfo | SnapshotVerify
        | ReplicationStatus | SystemCompact | SnapshotCreateAll => Command::NoFields,
        TreeInfo | TreeCreate | TreeDrop | TreeReset | SeriesCompact | SnapshotCreate => {
            Command::Series { series: f.series()? }
        }
        TreeKeys => {
            let series = f.series()?;
            let cursor = f.cursor()?;
            let limit = f.optional_i64("limit")?;
            Command::TreeKeys { series, cursor, limit }
        }
        TreeSummary => {
            let series = f.series()?;
            Command::SeriesRange { series, range: f.range()? }
        }
        TreeSeries | TreeDeleteRange => {
            let series = f.series()?;
            Command::SeriesRange { series, range: Some(f.required_range()?) }
        }
        TreeTop => {
            let series = f.series()?;
            let limit = f.optional_i64("limit")?;
            Command::TreeTop { series, limit, range: f.range()? }
        }
        Sum | CounterReset => {
            let series = f.series()?;
            let key = f.required_u64("key")?;
            let range = if op == Sum { f.range()? } else { None };
            Command::Key { series, key, range }
        }
        CounterSeries | CounterDeleteRange => {
            let series = f.series()?;
            let key = f.required_u64("key")?;
            Command::Key { series, key, range: Some(f.required_range()?) }
        }
        BatchSum | BatchReset => {
            let series = f.series()?;
            let keys = f.keys()?;
            let range = if op == BatchSum { f.range()? } else { None };
            Command::Keys { series, keys, range }
        }
        BatchDeleteRange => {
            let series = f.series()?;
            let keys = f.keys()?;
            Command::Keys { series, keys, range: Some(f.required_range()?) }
        }
        MultiSum => {
            let items = match f.get("items") {
                None => return Err(Error::validation("Field items is required")),
                Some(Value::Array(items)) => items,
                Some(_) => return Err(Error::validation("Field items must be an array")),
            };
            let mut parsed = Vec::with_capacity(items.len());
            for item in items {
                let item_fields = Fields::new(item);
                if !matches!(item, Value::Object(_)) {
                    return Err(Error::validation("Field items[] must be an object"));
                }
                let series = item_fields
                    .loose_str("series")
                    .ok_or_else(|| Error::validation("Field items[].series is required"))?;
                if series.is_empty() {
                    return Err(Error::validation("Field items[].series must not be empty"));
                }
                let key = match item_fields.get("key") {
                    None => return Err(Error::validation("Field items[].key is required")),
                    Some(v) => super::fields::unsigned(v, "items[].key")?,
                };
                parsed.push(MultiSumItem { series, key });
            }
            Command::MultiSum { items: parsed, range: f.range()? }
        }
        Increment | Decrement => {
            let series = f.series()?;
            let key = f.required_u64("key")?;
            let bucket = f.write_bucket()?;
            let value = f.optional_u64("value")?;
            Command::Write { series, key, bucket, value }
        }
        Consume => {
            let series = f.series()?;
            let key = f.required_u64("key")?;
            let limit = f.required_u64("limit")?;
            let bucket = f.write_bucket()?;
            let value = f.optional_u64("value")?;
            Command::Consume { series, key, bucket, value, limit, window: f.window()? }
        }
        BatchAdd | BatchSet => {
            let series = f.series()?;
            Command::Items { series, items: f.items()? }
        }
        DeleteBefore => {
            let series = f.series()?;
            let before = match (f.get("before"), f.get("date")) {
                (Some(v), _) => super::fields::unsigned(v, "before")?,
                (None, Some(v)) => super::fields::unsigned(v, "date")?,
                (None, None) => return Err(Error::validation("Field before is required")),
            };
            Command::DeleteBefore { series, before }
        }
        SnapshotFetch | SnapshotLoad => Command::File { file: f.snapshot_file()? },
        SnapshotFetchChunk | IdempotencySnapshotFetchChunk => {
            let file = if op == SnapshotFetchChunk { Some(f.snapshot_file()?) } else { None };
            let offset = f.optional_i64("offset")?.unwrap_or(0);
            if offset < 0 {
                return Err(Error::validation("Field offset must be greater than or equal to 0"));
            }
            Command::Chunk { file, offset: offset as u64, limit: f.optional_i64("limit")? }
        }
        RecoveryStatus => {
            Command::RecoveryStatus { source: f.loose_str("source"), after_source: f.loose_str("after_source") }
        }
        RecoveryCheckpoint => {
            let source = f.required_str("source")?;
            let source_offset = f.stringish("source_offset")?;
            let offset = f.stringish("offset")?;
            let event_id = f.stringish("event_id")?;
            Command::RecoveryCheckpoint { source, offset: source_offset.or(offset), event_id }
        }
        ReplicationEntries => {
            let after_lsn = f.required_u64("after_lsn")?;
            Command::ReplicationEntries { after_lsn, limit: f.optional_i64("limit")? }
        }
        IngestBegin => {
            let stream_id = f.required_str("stream_id")?;
            let mode = f.required_str("mode")?;
            Command::IngestBegin { stream_id, mode, granularity: f.loose_str("granularity") }
        }
        IngestChunk => {
            let stream_id = f.required_str("stream_id")?;
            let series = f.series()?;
            let chunk_seq = f.required_u64("chunk_seq")?;
            Command::IngestChunk { stream_id, series, chunk_seq, items: f.items()? }
        }
        IngestCommit | IngestAbort => Command::Stream { stream_id: f.required_str("stream_id")? },
        IdempotencyPrune => {
            let before = match f.get("before") {
                None => return Err(Error::validation("Field before is required")),
                Some(Value::Int(n)) if *n >= 0 => PruneBefore::Unix(*n as u64),
                Some(Value::Int(_)) => {
                    return Err(Error::validation("Field before must be greater than or equal to 0"))
                }
                Some(Value::Str(s)) => PruneBefore::Rfc3339(
                    parse_rfc3339(s).ok_or_else(|| Error::validation("Field before must be an ISO8601 timestamp"))?,
                ),
                Some(_) => return Err(Error::validation("Field before must be an integer or ISO8601 timestamp")),
            };
            Command::Prune { before, limit: f.optional_i64("limit")? }
        }
        ReconciliationReport => {
            let checked_points = f.required_i64("checked_points")?;
            let mismatch_count = f.required_i64("mismatch_count")?;
            let absolute_drift = f.optional_i64("absolute_drift")?.unwrap_or(0);
            let max_abs_delta = f.optional_i64("max_abs_delta")?.unwrap_or(0);
            Command::Reconciliation { checked_points, mismatch_count, absolute_drift, max_abs_delta }
        }
    })
}

/// Parses an RFC 3339 date-time (`2026-05-29T00:00:00Z`,
/// `2030-01-01T00:00:00.5+03:00`) into Unix seconds. Date-only strings are
/// refused. Times before 1970 are refused too (the field is unsigned).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let bucket = (year * 10_000 + month * 100 + day) as u64;
    let days = crate::clock::bucket_day_number(bucket)?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || !matches!(rb[0], b'+' | b'-') || rb[3] != b':' {
                return None;
            }
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if rb[0] == b'+' {
                off
            } else {
                -off
            }
        }
    };
    let unix = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(unix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2030-01-01T03:00:00+03:00"), Some(1_893_456_000));
        assert_eq!(parse_rfc3339("2026-05-29T00:00:00.25Z"), Some(1_780_012_800));
        assert_eq!(parse_rfc3339("2026-05-29"), None);
        assert_eq!(parse_rfc3339("2026-02-30T00:00:00Z"), None);
    }

    #[test]
    fn window_names_and_days_combine_as_the_protocol_reads_them() {
        assert_eq!(Window::parse(None, None), Ok(Window::Day));
        assert_eq!(Window::parse(Some("day"), None), Ok(Window::Day));
        assert_eq!(Window::parse(Some("month"), None), Ok(Window::Month));
        assert_eq!(Window::parse(None, Some(3)), Ok(Window::Days(3)));
        assert_eq!(Window::parse(Some("days"), Some(3)), Ok(Window::Days(3)));
        let refused = |name, days| Window::parse(name, days).map_err(|e| (e.code(), e.message().to_string()));
        let invalid = |m: &str| Err((ErrorCode::ValidationError, m.to_string()));
        assert_eq!(refused(Some("days"), None), invalid("Field days is required"));
        assert_eq!(refused(Some("month"), Some(2)), invalid("Field days requires window days"));
        assert_eq!(refused(Some("day"), Some(2)), invalid("Field days requires window days"));
        assert_eq!(refused(Some("week"), None), invalid("Field window must be day, days or month, got week"));
    }
}
