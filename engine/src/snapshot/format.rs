//! The `.tree` MessagePack layout (spec/persistence.md §4.2): a byte-exact
//! writer and a lenient reader.

use std::convert::Infallible;

use rmp::encode::{self, ByteBuf, ValueWriteError};

use crate::error::{Error, Result};

/// Number of branches of every store the server creates.
pub const BRANCHES: u64 = 9;

/// One counter: its cached total and its buckets in insertion order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterImage {
    pub total: u64,
    pub buckets: Vec<(u64, u64)>,
}

/// One series: its counters in insertion order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesImage {
    pub counters: Vec<(u64, CounterImage)>,
}

/// Writing into a `Vec<u8>` cannot fail; this discharges the uninhabited error.
fn done<T>(r: std::result::Result<T, ValueWriteError<Infallible>>) {
    if let Err(e) = r {
        match e {
            ValueWriteError::InvalidMarkerWrite(never) | ValueWriteError::InvalidDataWrite(never) => match never {},
        }
    }
}

fn len32(n: usize) -> u32 {
    // More than 4 billion entries cannot be held in memory as an image anyway.
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Encodes a series exactly like the original writer (§4.2): a 2-entry map
/// `branches_num` then `branches` (9 maps `key % 9 -> {table, total}`),
/// shortest integer forms, entries in the image's order within each branch.
pub fn encode_tree(image: &SeriesImage) -> Vec<u8> {
    let mut branches: Vec<Vec<&(u64, CounterImage)>> = (0..BRANCHES).map(|_| Vec::new()).collect();
    for entry in &image.counters {
        let idx = (entry.0 % BRANCHES) as usize;
        branches[idx].push(entry);
    }
    let points: usize = image.counters.iter().map(|(_, c)| c.buckets.len()).sum();
    let mut out = ByteBuf::with_capacity(40 + image.counters.len() * 24 + points * 14);
    done(encode::write_map_len(&mut out, 2));
    // Karma 1.0 writes `branches_num` first (every fixture and the recorded
    // `snapshot.fetch` bytes show it; the spec's worked example lists
    // `branches` first). Byte-identical files keep fetch responses identical.
    done(encode::write_str(&mut out, "branches_num"));
    done(encode::write_uint(&mut out, BRANCHES));
    done(encode::write_str(&mut out, "branches"));
    done(encode::write_array_len(&mut out, BRANCHES as u32));
    for branch in &branches {
        done(encode::write_map_len(&mut out, len32(branch.len())));
        for (key, counter) in branch.iter().map(|e| (&e.0, &e.1)) {
            done(encode::write_uint(&mut out, *key));
            done(encode::write_map_len(&mut out, 2));
            done(encode::write_str(&mut out, "table"));
            done(encode::write_map_len(&mut out, len32(counter.buckets.len())));
            for &(bucket, value) in &counter.buckets {
                done(encode::write_uint(&mut out, bucket));
                done(encode::write_uint(&mut out, value));
            }
            done(encode::write_str(&mut out, "total"));
            done(encode::write_uint(&mut out, counter.total));
        }
    }
    out.into_vec()
}

/// Decodes a `.tree` with the context `"tree"` in error messages.
pub fn decode_tree(bytes: &[u8]) -> Result<SeriesImage> {
    decode_tree_named(bytes, "tree")
}

/// Lenient reader of §4.2. Errors are `validation_error`
/// `Invalid snapshot <context>: <why>`. Keys come back in branch order, then
/// map order; a duplicate key keeps its first position and its last value.
pub fn decode_tree_named(bytes: &[u8], context: &str) -> Result<SeriesImage> {
    let mut r = Reader { buf: bytes, pos: 0 };
    r.store().map_err(|why| Error::validation(format!("Invalid snapshot {context}: {why}")))
}

const MAX_DEPTH: usize = 256;

enum Key<'a> {
    Text(&'a [u8]),
    Other,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

type R<T> = std::result::Result<T, String>;

impl<'a> Reader<'a> {
    fn eof(&self) -> String {
        format!("unexpected end of data at byte {}", self.pos)
    }

    fn byte(&mut self) -> R<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.eof())?;
        self.pos += 1;
        Ok(b)
    }

    fn peek(&self) -> R<u8> {
        self.buf.get(self.pos).copied().ok_or_else(|| self.eof())
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.eof())?;
        let s = self.buf.get(self.pos..end).ok_or_else(|| self.eof())?;
        self.pos = end;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> R<u64> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Reads a nil (returns true) without consuming anything else.
    fn nil(&mut self) -> R<bool> {
        if self.peek()? == 0xc0 {
            self.pos += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Any MessagePack integer that fits a u64.
    fn uint(&mut self, what: &str) -> R<u64> {
        let at = self.pos;
        let m = self.byte()?;
        let v: i128 = match m {
            0x00..=0x7f => i128::from(m),
            0xe0..=0xff => i128::from(m as i8),
            0xcc => i128::from(self.be(1)?),
            0xcd => i128::from(self.be(2)?),
            0xce => i128::from(self.be(4)?),
            0xcf => i128::from(self.be(8)?),
            0xd0 => i128::from(self.be(1)? as u8 as i8),
            0xd1 => i128::from(self.be(2)? as u16 as i16),
            0xd2 => i128::from(self.be(4)? as u32 as i32),
            0xd3 => i128::from(self.be(8)? as i64),
            _ => return Err(format!("expected unsigned integer for {what} at byte {at}, found marker 0x{m:02x}")),
        };
        u64::try_from(v).map_err(|_| format!("negative {what} {v} at byte {at}"))
    }

    fn map_len(&mut self, what: &str) -> R<usize> {
        let at = self.pos;
        let m = self.byte()?;
        let n = match m {
            0x80..=0x8f => u64::from(m & 0x0f),
            0xde => self.be(2)?,
            0xdf => self.be(4)?,
            _ => return Err(format!("expected map for {what} at byte {at}, found marker 0x{m:02x}")),
        };
        usize::try_from(n).map_err(|_| format!("map too large at byte {at}"))
    }

    fn array_len(&mut self, what: &str) -> R<usize> {
        let at = self.pos;
        let m = self.byte()?;
        let n = match m {
            0x90..=0x9f => u64::from(m & 0x0f),
            0xdc => self.be(2)?,
            0xdd => self.be(4)?,
            _ => return Err(format!("expected array for {what} at byte {at}, found marker 0x{m:02x}")),
        };
        usize::try_from(n).map_err(|_| format!("array too large at byte {at}"))
    }

    /// A map key: str or bin yield their bytes; anything else is skipped.
    fn key(&mut self) -> R<Key<'a>> {
        let m = self.peek()?;
        let len = match m {
            0xa0..=0xbf => {
                self.pos += 1;
                u64::from(m & 0x1f)
            }
            0xd9 | 0xc4 => {
                self.pos += 1;
                self.be(1)?
            }
            0xda | 0xc5 => {
                self.pos += 1;
                self.be(2)?
            }
            0xdb | 0xc6 => {
                self.pos += 1;
                self.be(4)?
            }
            _ => {
                self.skip(0)?;
                return Ok(Key::Other);
            }
        };
        let len = usize::try_from(len).map_err(|_| self.eof())?;
        Ok(Key::Text(self.take(len)?))
    }

    /// Skips one complete value of any type.
    fn skip(&mut self, depth: usize) -> R<()> {
        if depth > MAX_DEPTH {
            return Err(format!("nesting too deep at byte {}", self.pos));
        }
        let at = self.pos;
        let m = self.byte()?;
        let (data, items): (u64, u64) = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, u64::from(m & 0x0f) * 2),
            0x90..=0x9f => (0, u64::from(m & 0x0f)),
            0xa0..=0xbf => (u64::from(m & 0x1f), 0),
            0xc4 | 0xd9 => (self.be(1)?, 0),
            0xc5 | 0xda => (self.be(2)?, 0),
            0xc6 | 0xdb => (self.be(4)?, 0),
            0xc7 => (self.be(1)? + 1, 0),
            0xc8 => (self.be(2)? + 1, 0),
            0xc9 => (self.be(4)? + 1, 0),
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, self.be(2)?),
            0xdd => (0, self.be(4)?),
            0xde => (0, self.be(2)? * 2),
            0xdf => (0, self.be(4)? * 2),
            0xc1 => return Err(format!("invalid marker 0xc1 at byte {at}")),
        };
        self.take(usize::try_from(data).map_err(|_| self.eof())?)?;
        for _ in 0..items {
            self.skip(depth + 1)?;
        }
        Ok(())
    }

    fn store(&mut self) -> R<SeriesImage> {
        let n = self.map_len("store")?;
        let mut branches: Option<Vec<(u64, CounterImage)>> = None;
        let mut branches_num: Option<u64> = None;
        for _ in 0..n {
            match self.key()? {
                Key::Text(b"branches") => {
                    branches = if self.nil()? { None } else { Some(self.branches()?) };
                }
                Key::Text(b"branches_num") => branches_num = Some(self.uint("branches_num")?),
                _ => self.skip(1)?,
            }
        }
        if branches_num.is_none() {
            return Err("missing branches_num".to_string());
        }
        let counters = branches.ok_or_else(|| "missing branches".to_string())?;
        Ok(SeriesImage { counters })
    }

    fn branches(&mut self) -> R<Vec<(u64, CounterImage)>> {
        let n = self.array_len("branches")?;
        let mut out: Vec<(u64, CounterImage)> = Vec::new();
        let mut index: hashbrown::HashMap<u64, usize> = hashbrown::HashMap::new();
        for _ in 0..n {
            if self.nil()? {
                continue;
            }
            let entries = self.map_len("branch")?;
            out.reserve(entries.min(1 << 20));
            index.reserve(entries.min(1 << 20));
            for _ in 0..entries {
                let key = self.uint("key")?;
                if self.nil()? {
                    continue;
                }
                let counter = self.counter()?;
                match index.get(&key) {
                    Some(&i) => out[i].1 = counter,
                    None => {
                        index.insert(key, out.len());
                        out.push((key, counter));
                    }
                }
            }
        }
        Ok(out)
    }

    fn counter(&mut self) -> R<CounterImage> {
        let at = self.pos;
        let n = self.map_len("counter")?;
        let mut table: Option<Vec<(u64, u64)>> = None;
        let mut total: Option<u64> = None;
        for _ in 0..n {
            match self.key()? {
                Key::Text(b"table") => table = Some(self.table()?),
                Key::Text(b"total") => total = Some(self.uint("total")?),
                _ => self.skip(1)?,
            }
        }
        let buckets = table.ok_or_else(|| format!("counter at byte {at} has no table"))?;
        let total = total.ok_or_else(|| format!("counter at byte {at} has no total"))?;
        Ok(CounterImage { total, buckets })
    }

    fn table(&mut self) -> R<Vec<(u64, u64)>> {
        let n = self.map_len("table")?;
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(n.min(4096));
        // Buckets are almost always written in ascending order, and a bucket
        // above every earlier one cannot be a duplicate: only the rest needs
        // a lookup (a map, built on first need, once the table is large).
        let mut max: Option<u64> = None;
        let mut index: Option<hashbrown::HashMap<u64, usize>> = None;
        for _ in 0..n {
            let bucket = self.uint("bucket")?;
            if self.nil()? {
                continue;
            }
            let value = self.uint("value")?;
            let existing = if max.is_none_or(|m| bucket > m) {
                None
            } else if out.len() <= 32 {
                out.iter().position(|(b, _)| *b == bucket)
            } else {
                let map = index.get_or_insert_with(|| out.iter().enumerate().map(|(i, (b, _))| (*b, i)).collect());
                map.get(&bucket).copied()
            };
            match existing {
                Some(i) => out[i].1 = value,
                None => {
                    if let Some(map) = index.as_mut() {
                        map.insert(bucket, out.len());
                    }
                    out.push((bucket, value));
                    max = Some(max.map_or(bucket, |m| m.max(bucket)));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn fixtures() -> PathBuf {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/karma1");
        assert!(base.is_dir(), "fixtures missing at {}", base.display());
        base
    }

    fn counter(total: u64, buckets: &[(u64, u64)]) -> CounterImage {
        CounterImage { total, buckets: buckets.to_vec() }
    }

    #[test]
    fn worked_example_is_byte_exact() {
        let image = SeriesImage { counters: vec![(42, counter(1, &[(20260505, 1)]))] };
        let bytes = encode_tree(&image);
        // The spec's 56-byte example, with the two top-level keys in the
        // order Karma 1.0 actually writes them.
        let mut expected = vec![0x82, 0xac];
        expected.extend_from_slice(b"branches_num");
        expected.extend_from_slice(&[0x09, 0xa8]);
        expected.extend_from_slice(b"branches");
        expected.push(0x99);
        expected.extend_from_slice(&[0x80; 6]);
        expected.extend_from_slice(&[0x81, 0x2a, 0x82, 0xa5]);
        expected.extend_from_slice(b"table");
        expected.extend_from_slice(&[0x81, 0xce, 0x01, 0x35, 0x26, 0x99, 0x01, 0xa5]);
        expected.extend_from_slice(b"total");
        expected.extend_from_slice(&[0x01, 0x80, 0x80]);
        assert_eq!(expected.len(), 56);
        assert_eq!(bytes, expected);
        assert_eq!(decode_tree(&bytes).unwrap(), image);
    }

    #[test]
    fn roundtrip_wide_values_and_big_maps() {
        let mut counters = Vec::new();
        // Keys in branch order so the decoded order equals the image order.
        for branch in 0..9u64 {
            for i in 0..3u64 {
                let key = branch + 9 * (i * 1_000_003);
                counters.push((key, counter(u64::MAX, &[(u64::MAX, u64::MAX), (0, 0), (20260101, 1)])));
            }
        }
        counters.push((u64::MAX, counter(7, &[(1, 7)])));
        let image = SeriesImage { counters };
        let mut sorted = image.clone();
        sorted.counters.sort_by_key(|(k, _)| k % 9);
        assert_eq!(decode_tree(&encode_tree(&image)).unwrap(), sorted);

        // map16 (>15) and map32 (>65535) headers, for both tables and branches.
        let wide: Vec<(u64, u64)> = (0..70_000u64).map(|b| (b * 3 + 1, u64::MAX - b)).collect();
        let mut counters = vec![(0u64, counter(5, &wide)), (9, counter(1, &wide[..20]))];
        counters.extend((2..70_000u64).map(|i| (i * 9, counter(i, &[(i, i)]))));
        let image = SeriesImage { counters };
        let bytes = encode_tree(&image);
        assert!(bytes.windows(5).any(|w| w == [0xdf, 0x00, 0x01, 0x11, 0x70]));
        assert!(bytes.windows(2).any(|w| w == [0x82, 0xa5]));
        assert_eq!(decode_tree(&bytes).unwrap(), image);
    }

    #[test]
    fn lenient_reader() {
        // {"branches_num": 9 (as int16), "junk": [1, {"a": nil}],
        //  "branches": [nil, {1: nil, 2: {"total": 3, "x": 1.5, "table"(bin): {5: 3, 6: nil}}}]}
        let mut b = vec![0x83, 0xac];
        b.extend_from_slice(b"branches_num");
        b.extend_from_slice(&[0xd1, 0x00, 0x09, 0xa4]);
        b.extend_from_slice(b"junk");
        b.extend_from_slice(&[0x92, 0x01, 0x81, 0xa1, b'a', 0xc0, 0xa8]);
        b.extend_from_slice(b"branches");
        b.extend_from_slice(&[0x92, 0xc0, 0x82, 0x01, 0xc0, 0x02, 0x83, 0xa5]);
        b.extend_from_slice(b"total");
        b.extend_from_slice(&[0x03, 0xa1, b'x', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xc4, 0x05]);
        b.extend_from_slice(b"table");
        b.extend_from_slice(&[0x83, 0x05, 0x03, 0x06, 0xc0, 0x05, 0xd0, 0x04]);
        b.extend_from_slice(b"trailing garbage ignored");
        let image = decode_tree(&b).unwrap();
        assert_eq!(image.counters, vec![(2, counter(3, &[(5, 4)]))]);

        // Missing branches_num, negative ints, truncated data, floats.
        let e = decode_tree(&[0x81, 0xa8, b'b', b'r', b'a', b'n', b'c', b'h', b'e', b's', 0x90]).unwrap_err();
        assert_eq!(e.message(), "Invalid snapshot tree: missing branches_num");
        assert_eq!(e.code(), crate::error::ErrorCode::ValidationError);
        let mut neg = vec![0x81, 0xac];
        neg.extend_from_slice(b"branches_num");
        neg.push(0xff);
        assert!(decode_tree(&neg).unwrap_err().message().contains("negative"));
        let full = encode_tree(&SeriesImage { counters: vec![(42, counter(1, &[(20260505, 1)]))] });
        for cut in 0..full.len() - 13 {
            assert!(decode_tree_named(&full[..cut], "x.tree").is_err(), "cut {cut}");
        }
        assert!(decode_tree(&[0xcb]).is_err());
    }

    #[test]
    fn decodes_every_fixture_tree() {
        let base = fixtures();
        let mut decoded = 0;
        for fx in std::fs::read_dir(&base).unwrap() {
            let data = fx.unwrap().path().join("data");
            if !data.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&data).unwrap() {
                let p = f.unwrap().path();
                if p.extension().and_then(|e| e.to_str()) != Some("tree") {
                    continue;
                }
                let bytes = std::fs::read(&p).unwrap();
                let image = decode_tree_named(&bytes, &p.display().to_string()).unwrap();
                for (key, c) in &image.counters {
                    let sum = c.buckets.iter().fold(0u128, |a, (_, v)| a + u128::from(*v));
                    assert_eq!(sum, u128::from(c.total), "{} key {key}", p.display());
                }
                // Re-encoding reproduces Karma 1.0's bytes exactly.
                assert_eq!(encode_tree(&image), bytes, "{}", p.display());
                decoded += 1;
            }
        }
        assert_eq!(decoded, 15);
        let u = std::fs::read(base.join("large-values/data/1795304433_u64-max-7.tree")).unwrap();
        let image = decode_tree(&u).unwrap();
        assert_eq!(image.counters.len(), 1);
        assert_eq!(image.counters[0].0, 9223372036854775806);
        assert_eq!(image.counters[0].1.total, u64::MAX);
        assert_eq!(image.counters[0].1.buckets.len(), 3);
    }
}
