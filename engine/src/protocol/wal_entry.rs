//! The canonical command object a logged mutation writes to the WAL
//! (spec/persistence.md §3.3-3.5): canonical op, `series` never `tree`,
//! defaults materialised, never the token. Byte-compatible with Karma 1.0 so
//! its slaves can replicate from us.

use crate::json::{write_str, write_u64};

use super::ops::Op;
use super::request::{Command, Idempotency, Item, PruneBefore, Range};

/// `,"name":`, the start of a member after the first, as one constant:
/// copied in place with one capacity check, not built byte by byte.
macro_rules! key {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}

// The helpers are inlined so that each field's key is a constant the
// compiler copies in place, not a `memcpy` call per field.
#[inline]
fn field(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(key.as_bytes());
}

#[inline]
fn str_field(out: &mut Vec<u8>, key: &str, v: &str) {
    field(out, key);
    write_str(out, v);
}

#[inline]
fn u64_field(out: &mut Vec<u8>, key: &str, v: u64) {
    field(out, key);
    write_u64(out, v);
}

fn items_field(out: &mut Vec<u8>, items: &[Item]) {
    field(out, key!("items"));
    out.push(b'[');
    for (i, [k, b, v]) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        write_u64(out, *k);
        out.push(b',');
        write_u64(out, *b);
        out.push(b',');
        write_u64(out, *v);
        out.push(b']');
    }
    out.push(b']');
}

fn keys_field(out: &mut Vec<u8>, keys: &[u64]) {
    field(out, key!("keys"));
    out.push(b'[');
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_u64(out, *k);
    }
    out.push(b']');
}

fn range_field(out: &mut Vec<u8>, r: &Range) {
    field(out, key!("range"));
    out.extend_from_slice(b"{\"from\":");
    write_u64(out, r.from);
    out.extend_from_slice(b",\"to\":");
    write_u64(out, r.to);
    out.push(b'}');
}

/// Writes the WAL entry of a logged op. `bucket`/`value` are the resolved
/// increment/decrement defaults.
pub fn write_entry(
    out: &mut Vec<u8>,
    op: Op,
    command: &Command<'_>,
    bucket: Option<u64>,
    idempotency: Option<&Idempotency<'_>>,
) {
    out.extend_from_slice(b"{\"v\":2,\"op\":\"");
    // Op names are fixed identifiers: nothing to escape (tested below).
    out.extend_from_slice(op.name().as_bytes());
    out.push(b'"');
    match command {
        Command::Series { series } => str_field(out, key!("series"), series),
        Command::Write { series, key, bucket: sent, value } => {
            str_field(out, key!("series"), series);
            u64_field(out, key!("key"), *key);
            u64_field(out, key!("bucket"), bucket.or(*sent).unwrap_or(0));
            u64_field(out, key!("value"), value.unwrap_or(1));
        }
        Command::Items { series, items } => {
            str_field(out, key!("series"), series);
            str_field(out, key!("granularity"), "day");
            items_field(out, items);
        }
        Command::Keys { series, keys, range } => {
            str_field(out, key!("series"), series);
            keys_field(out, keys);
            if let Some(r) = range {
                range_field(out, r);
            }
        }
        Command::Key { series, key, range } => {
            str_field(out, key!("series"), series);
            u64_field(out, key!("key"), *key);
            if let Some(r) = range {
                range_field(out, r);
            }
        }
        Command::SeriesRange { series, range } => {
            str_field(out, key!("series"), series);
            if let Some(r) = range {
                range_field(out, r);
            }
        }
        Command::DeleteBefore { series, before } => {
            str_field(out, key!("series"), series);
            u64_field(out, key!("before"), *before);
        }
        Command::IngestBegin { stream_id, mode, granularity } => {
            str_field(out, key!("stream_id"), stream_id);
            str_field(out, key!("mode"), mode);
            if let Some(g) = granularity {
                str_field(out, key!("granularity"), g);
            }
        }
        Command::IngestChunk { stream_id, series, chunk_seq, items } => {
            str_field(out, key!("stream_id"), stream_id);
            str_field(out, key!("series"), series);
            u64_field(out, key!("chunk_seq"), *chunk_seq);
            items_field(out, items);
        }
        Command::Stream { stream_id } => str_field(out, key!("stream_id"), stream_id),
        Command::Prune { before, limit } => {
            let (PruneBefore::Unix(b) | PruneBefore::Rfc3339(b)) = before;
            u64_field(out, key!("before"), *b);
            if let Some(l) = limit {
                field(out, key!("limit"));
                out.extend_from_slice(itoa::Buffer::new().format(*l).as_bytes());
            }
        }
        _ => {}
    }
    if let Some(idem) = idempotency {
        str_field(out, key!("idempotency_key"), &idem.key);
        if let Some(fp) = &idem.fingerprint {
            str_field(out, key!("fingerprint"), fp);
        }
        if let Some(t) = idem.created_at_unix {
            u64_field(out, key!("idempotency_created_at_unix"), t);
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names_are_written_as_json_strings() {
        for &op in Op::ALL {
            let mut escaped = Vec::new();
            write_str(&mut escaped, op.name());
            let mut entry = Vec::new();
            write_entry(&mut entry, op, &Command::NoFields, None, None);
            let expected = [&b"{\"v\":2,\"op\":"[..], &escaped, b"}"].concat();
            assert_eq!(entry, expected, "{}", op.name());
        }
    }

    #[test]
    fn an_increment_entry_has_every_default_materialised() {
        let command = Command::Write { series: "a\"b".into(), key: 7, bucket: None, value: None };
        let mut entry = Vec::new();
        write_entry(&mut entry, Op::Increment, &command, Some(20240131), None);
        assert_eq!(
            String::from_utf8(entry).unwrap(),
            r#"{"v":2,"op":"counter.increment","series":"a\"b","key":7,"bucket":20240131,"value":1}"#
        );
    }
}
