//! WAL file naming and listing (spec/persistence.md §3.10).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The active WAL file.
pub const ACTIVE_FILE: &str = "karma.wal";
/// The LSN sidecar rewritten at truncation.
pub const LSN_FILE: &str = "karma.wal.lsn";

/// `karma.wal.<first lsn, 20 digits>.segment`.
pub fn segment_name(first_lsn: u64) -> String {
    format!("{ACTIVE_FILE}.{first_lsn:020}.segment")
}

/// The first LSN in a segment name (any decimal digits between
/// `karma.wal.` and `.segment`), `None` for other names.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("karma.wal.")?.strip_suffix(".segment")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One WAL file of a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalFile {
    pub path: PathBuf,
    /// First LSN from the segment name; `None` for the active file.
    pub segment_lsn: Option<u64>,
}

impl WalFile {
    pub fn is_active(&self) -> bool {
        self.segment_lsn.is_none()
    }
}

/// WAL files in reading order: segments by first LSN, then `karma.wal`.
pub fn list_files(dir: &Path) -> Result<Vec<WalFile>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("Cannot list {}", dir.display()), e)),
    };
    let mut segments: Vec<(u64, String)> = Vec::new();
    let mut active = false;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(format!("Cannot list {}", dir.display()), e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name == ACTIVE_FILE {
            active = true;
        } else if let Some(lsn) = parse_segment_name(&name) {
            segments.push((lsn, name));
        }
    }
    segments.sort();
    let mut out: Vec<WalFile> =
        segments.into_iter().map(|(lsn, name)| WalFile { path: dir.join(name), segment_lsn: Some(lsn) }).collect();
    if active {
        out.push(WalFile { path: dir.join(ACTIVE_FILE), segment_lsn: None });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(segment_name(1), "karma.wal.00000000000000000001.segment");
        assert_eq!(parse_segment_name("karma.wal.00000000000000000066.segment"), Some(66));
        assert_eq!(parse_segment_name("karma.wal.7.segment"), Some(7));
        assert_eq!(parse_segment_name("karma.wal.7.segment.idx"), None);
        assert_eq!(parse_segment_name("karma.wal..segment"), None);
        assert_eq!(parse_segment_name("karma.wal.x.segment"), None);
    }
}
