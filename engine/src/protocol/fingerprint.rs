//! Request fingerprints (spec/protocol.md §12.4): lowercase hex SHA-256 of a
//! canonical text, one `\n`-terminated line per field. Byte-compatible with
//! Karma 1.0 so persisted records and client-sent fingerprints keep matching.

use sha2::{Digest, Sha256};

use super::ops::Op;
use super::request::{Command, Item, Window};

/// Builds the canonical text line by line.
#[derive(Default)]
pub struct Canonical {
    text: Vec<u8>,
}

impl Canonical {
    pub fn new(command: &str) -> Canonical {
        let mut c = Canonical::default();
        c.string("command", command);
        c
    }

    pub fn string(&mut self, name: &str, s: &str) -> &mut Self {
        self.line(format_args!("{name}:s:{}:{s}", s.len()))
    }

    pub fn unsigned(&mut self, name: &str, n: u64) -> &mut Self {
        self.line(format_args!("{name}:u:{n}"))
    }

    pub fn count(&mut self, name: &str, n: usize) -> &mut Self {
        self.line(format_args!("{name}:i:{n}"))
    }

    pub fn null(&mut self, name: &str) -> &mut Self {
        self.line(format_args!("{name}:n"))
    }

    pub fn opt_unsigned(&mut self, name: &str, n: Option<u64>) -> &mut Self {
        match n {
            Some(n) => self.unsigned(name, n),
            None => self.null(name),
        }
    }

    pub fn opt_string(&mut self, name: &str, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.string(name, s),
            None => self.null(name),
        }
    }

    pub fn items(&mut self, items: &[Item]) -> &mut Self {
        self.count("items_count", items.len());
        for [k, b, v] in items {
            self.unsigned("item_key", *k).unsigned("item_bucket", *b).unsigned("item_value", *v);
        }
        self
    }

    fn line(&mut self, args: std::fmt::Arguments<'_>) -> &mut Self {
        use std::io::Write;
        // Writing into a Vec cannot fail.
        let _ = self.text.write_fmt(args);
        self.text.push(b'\n');
        self
    }

    pub fn text(&self) -> &[u8] {
        &self.text
    }

    pub fn digest(&self) -> String {
        let hash = Sha256::digest(&self.text);
        let mut out = String::with_capacity(64);
        for b in hash {
            out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
        }
        out
    }
}

/// The fingerprint of a request, with increment/decrement defaults already
/// resolved (`bucket`, `value`).
pub fn fingerprint(op: Op, command: &Command<'_>, resolved_bucket: Option<u64>) -> String {
    let mut c = Canonical::new(op.internal_name());
    match command {
        Command::Write { series, key, bucket, value } => {
            c.string("series", series)
                .unsigned("key", *key)
                .unsigned("bucket", resolved_bucket.or(*bucket).unwrap_or(0))
                .unsigned("value", value.unwrap_or(1));
        }
        Command::Consume { series, key, bucket, value, limit, window } => {
            let (kind, days) = match window {
                Window::Day => ("day", 1),
                Window::Days(n) => ("days", *n),
                Window::Month => ("month", 0),
            };
            c.string("series", series)
                .unsigned("key", *key)
                .unsigned("bucket", resolved_bucket.or(*bucket).unwrap_or(0))
                .unsigned("value", value.unwrap_or(1))
                .unsigned("limit", *limit)
                .string("window", kind)
                .unsigned("days", days);
        }
        Command::Items { series, items } => {
            c.string("series", series).items(items);
        }
        Command::Keys { series, keys, range } => {
            c.string("series", series).count("keys_count", keys.len());
            for k in keys {
                c.unsigned("key_value", *k);
            }
            if let Some(r) = range {
                c.unsigned("range_from", r.from).unsigned("range_to", r.to);
            }
        }
        Command::Key { series, key, range } => {
            c.string("series", series).unsigned("key", *key);
            if let Some(r) = range {
                c.unsigned("range_from", r.from).unsigned("range_to", r.to);
            }
        }
        Command::SeriesRange { series, range } => {
            c.string("series", series).null("key");
            if let Some(r) = range {
                c.unsigned("range_from", r.from).unsigned("range_to", r.to);
            }
        }
        Command::Series { series } if op == Op::TreeReset => {
            c.string("series", series).null("key");
        }
        Command::IngestBegin { stream_id, mode, granularity } => {
            c.string("stream_id", stream_id).string("mode", mode).opt_string("granularity", granularity.as_deref());
        }
        Command::IngestChunk { stream_id, series, chunk_seq, items } => {
            c.string("stream_id", stream_id).string("series", series).unsigned("chunk_seq", *chunk_seq).items(items);
        }
        Command::Stream { stream_id } => {
            c.string("stream_id", stream_id);
        }
        _ => {}
    }
    c.digest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn matches_the_spec_examples() {
        let inc = Command::Write { series: Cow::Borrowed("api"), key: 7, bucket: Some(20260301), value: Some(2) };
        assert_eq!(
            fingerprint(Op::Increment, &inc, None),
            "340e6f95e52723cd5e79c030c7df1d40aadec81b2b90cb7bc2f7eec6e0d57a58"
        );
        let add = Command::Items { series: Cow::Borrowed("api"), items: vec![[7, 20260301, 2], [8, 20260301, 3]] };
        assert_eq!(
            fingerprint(Op::BatchAdd, &add, None),
            "48cb1983ea887e00d8606d6bd0adc84e3cccce2d5374baf4801962777e6487e1"
        );
    }
}
