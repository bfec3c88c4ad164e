//! Entries waiting for the writer, already framed as the WAL lines they
//! become (`{"v":2,"lsn":N,"entry":…}\n`) and back to back in one buffer
//! that is reused once written. An append copies its entry once, into
//! that buffer; the writer writes a group as it is, without copying,
//! allocating or freeing anything per entry.

use crate::error::{Error, Result};

/// Every line up to its LSN.
const LINE_START: &[u8] = br#"{"v":2,"lsn":"#;
/// Between a line's LSN and its entry.
const ENTRY_KEY: &[u8] = br#","entry":"#;
/// After the entry.
const LINE_END: &[u8] = b"}\n";

/// The largest buffer kept for the next group once written: a group of big
/// batch writes is not worth holding on to.
const MAX_KEPT_BYTES: usize = 1 << 20;

/// Refuses an entry that is not one line of JSON: a line of the WAL holds
/// exactly one entry. (`memchr` scans with SIMD: every append runs this.)
pub(super) fn check_entry(entry: &[u8]) -> Result<()> {
    if entry.is_empty() || memchr::memchr(b'\n', entry).is_some() {
        return Err(Error::validation("WAL entry must be one line of JSON"));
    }
    Ok(())
}

/// Consecutive entries framed as WAL lines: written as one group.
#[derive(Debug, Default)]
pub(super) struct Chunk {
    /// The lines, back to back, exactly as they go into the file.
    bytes: Vec<u8>,
    /// `(lsn, offset in bytes)` of every line, in order.
    lines: Vec<(u64, usize)>,
}

impl Chunk {
    /// Appends the line of entry `lsn`, an entry [`check_entry`] accepted.
    pub(super) fn push(&mut self, lsn: u64, entry: &[u8]) {
        self.lines.push((lsn, self.bytes.len()));
        self.bytes.extend_from_slice(LINE_START);
        self.bytes.extend_from_slice(itoa::Buffer::new().format(lsn).as_bytes());
        self.bytes.extend_from_slice(ENTRY_KEY);
        self.bytes.extend_from_slice(entry);
        self.bytes.extend_from_slice(LINE_END);
    }

    /// How many entries it holds.
    pub(super) fn len(&self) -> usize {
        self.lines.len()
    }

    /// The lines, as they are written.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `(lsn, offset in bytes)` of every line.
    pub(super) fn lines(&self) -> &[(u64, usize)] {
        &self.lines
    }

    pub(super) fn first_lsn(&self) -> Option<u64> {
        self.lines.first().map(|&(lsn, _)| lsn)
    }

    pub(super) fn last_lsn(&self) -> Option<u64> {
        self.lines.last().map(|&(lsn, _)| lsn)
    }

    /// The chunk emptied for the next group, keeping its buffers; `None`
    /// when they are too big to keep.
    pub(super) fn recycled(mut self) -> Option<Chunk> {
        if self.bytes.capacity() > MAX_KEPT_BYTES {
            return None;
        }
        self.bytes.clear();
        self.lines.clear();
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_framed_back_to_back_with_their_offsets() {
        let mut chunk = Chunk::default();
        chunk.push(7, br#"{"op":"a"}"#);
        chunk.push(8, br#"{"op":"bc"}"#);
        let first = "{\"v\":2,\"lsn\":7,\"entry\":{\"op\":\"a\"}}\n";
        let second = "{\"v\":2,\"lsn\":8,\"entry\":{\"op\":\"bc\"}}\n";
        assert_eq!(chunk.bytes(), format!("{first}{second}").as_bytes());
        assert_eq!(chunk.lines(), [(7, 0), (8, first.len())]);
        assert_eq!((chunk.len(), chunk.first_lsn(), chunk.last_lsn()), (2, Some(7), Some(8)));
    }

    #[test]
    fn an_entry_must_be_one_line() {
        for bad in [&b""[..], b"{\n}", b"{}\n", b"\n"] {
            let e = check_entry(bad).unwrap_err();
            assert_eq!(e.message(), "WAL entry must be one line of JSON");
        }
        assert!(check_entry(b"{}").is_ok());
        assert!(check_entry(&[b' '; 100]).is_ok());
    }

    #[test]
    fn a_recycled_chunk_is_empty_and_a_big_one_is_dropped() {
        let mut chunk = Chunk::default();
        chunk.push(1, b"{}");
        let kept = chunk.recycled().unwrap();
        assert!(kept.bytes().is_empty() && kept.lines().is_empty());
        assert!(kept.bytes.capacity() > 0, "the buffer is reused");
        let mut big = Chunk::default();
        let entry = vec![b' '; MAX_KEPT_BYTES];
        big.push(1, &entry);
        assert!(big.recycled().is_none());
    }
}
