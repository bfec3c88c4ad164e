//! The segment index sidecar `<segment>.idx` (spec/persistence.md §3.11).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const HEADER: &str = "KARMA_WAL_INDEX_V1 size=";

/// `<segment>.idx`.
pub fn idx_path(segment: &Path) -> PathBuf {
    let mut s = segment.as_os_str().to_owned();
    s.push(".idx");
    PathBuf::from(s)
}

/// The text of an index for a segment of `size` bytes.
pub fn encode_index(size: u64, entries: &[(u64, u64)]) -> String {
    let mut out = String::with_capacity(32 + entries.len() * 16);
    out.push_str(HEADER);
    out.push_str(&size.to_string());
    out.push('\n');
    for (lsn, offset) in entries {
        out.push_str(itoa::Buffer::new().format(*lsn));
        out.push(' ');
        out.push_str(itoa::Buffer::new().format(*offset));
        out.push('\n');
    }
    out
}

/// Writes `<segment>.idx` via `<segment>.idx.<pid>.tmp` + rename (not fsynced:
/// the index is only a hint).
pub fn write_index(segment: &Path, size: u64, entries: &[(u64, u64)]) -> Result<()> {
    let target = idx_path(segment);
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(encode_index(size, entries).as_bytes())?;
        drop(f);
        fs::rename(&tmp, &target)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("Cannot write WAL segment index {}", target.display()), e)
    })
}

/// Parses index text, accepting it only under the rules of §3.11 for a
/// segment that currently has `size` bytes. `None` = do not use it.
pub fn parse_index(text: &str, size: u64) -> Option<Vec<(u64, u64)>> {
    let mut lines = text.split('\n');
    let header = lines.next()?;
    if header.strip_prefix(HEADER)? != size.to_string() {
        return None;
    }
    let mut out: Vec<(u64, u64)> = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        let lsn = parse_u64(parts.next()?)?;
        let offset = parse_u64(parts.next()?)?;
        if parts.next().is_some() || offset >= size {
            return None;
        }
        match out.last() {
            None if offset != 0 => return None,
            Some(&(l, o)) if lsn <= l || offset <= o => return None,
            _ => {}
        }
        out.push((lsn, offset));
    }
    if out.is_empty() {
        return None;
    }
    Some(out)
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Reads and validates `<segment>.idx`; any problem yields `None`.
pub fn read_index(segment: &Path, size: u64) -> Option<Vec<(u64, u64)>> {
    let text = fs::read_to_string(idx_path(segment)).ok()?;
    parse_index(&text, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_valid_indexes() {
        let good = encode_index(100, &[(1, 0), (2, 40), (3, 80)]);
        assert_eq!(good, "KARMA_WAL_INDEX_V1 size=100\n1 0\n2 40\n3 80\n");
        assert_eq!(parse_index(&good, 100), Some(vec![(1, 0), (2, 40), (3, 80)]));
        assert_eq!(parse_index(&good, 101), None);
        assert_eq!(parse_index("", 100), None);
        assert_eq!(parse_index("KARMA_WAL_INDEX_V1 size=100\n1 5\n", 100), None);
        assert_eq!(parse_index("KARMA_WAL_INDEX_V1 size=100\n1 0\n1 40\n", 100), None);
        assert_eq!(parse_index("KARMA_WAL_INDEX_V1 size=100\n1 0\n2 0\n", 100), None);
        assert_eq!(parse_index("KARMA_WAL_INDEX_V1 size=100\n1 0\n2 100\n", 100), None);
        assert_eq!(parse_index("KARMA_WAL_INDEX_V1 size=100\n1 0 3\n", 100), None);
        assert_eq!(parse_index("KARMA_WAL_INDEX_V1 size=100\n1  0\n", 100), None);
        assert_eq!(parse_index("KARMA_WAL_INDEX_V1 size=100\n-1 0\n", 100), None);
        assert_eq!(parse_index("KARMA_WAL_INDEX_V1 size=100\n\n1 0\n\n", 100), Some(vec![(1, 0)]));
    }
}
