//! Replication reads: pages of entries after an LSN, found through the
//! in-memory index of `karma.wal` and the `.idx` sidecars of segments
//! (spec/persistence.md §3.12).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::handle::Wal;
use super::index::read_index;
use super::reader::scan_file;
use super::segments::ACTIVE_FILE;
use crate::error::{Error, ErrorCode, Result};
use crate::files::{label, open_regular};

/// One page of replication entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntriesPage {
    /// `(lsn, compact entry JSON)` in file order.
    pub entries: Vec<(u64, String)>,
    /// Σ len(`{"lsn":N,"entry":<entry>}`) over `entries`.
    pub entries_bytes: usize,
    pub truncated_by_bytes: bool,
}

/// Cost of one entry against a replication byte budget.
pub fn entry_cost(lsn: u64, entry_len: usize) -> usize {
    // {"lsn":  ,"entry":  }
    7 + itoa::Buffer::new().format(lsn).len() + 9 + entry_len + 1
}

impl Wal {
    /// Replication page: entries with `lsn > after_lsn`, at most `limit`,
    /// within `max_bytes` (§3.12). Equal to a linear scan of all files.
    pub fn entries_after(&self, after_lsn: u64, limit: usize, max_bytes: Option<usize>) -> Result<EntriesPage> {
        // Serve every accepted entry: commit what is still queued first.
        self.wait_durable(self.current_lsn())?;
        self.entries_after_impl(after_lsn, limit, max_bytes, true)
    }

    /// [`Wal::entries_after`] without any index: scans every file from its start.
    pub fn entries_after_linear(&self, after_lsn: u64, limit: usize, max_bytes: Option<usize>) -> Result<EntriesPage> {
        self.entries_after_impl(after_lsn, limit, max_bytes, false)
    }

    fn entries_after_impl(
        &self,
        after_lsn: u64,
        limit: usize,
        max_bytes: Option<usize>,
        use_index: bool,
    ) -> Result<EntriesPage> {
        if limit == 0 {
            return Err(Error::validation("Field limit must be greater than 0"));
        }
        if max_bytes == Some(0) {
            return Err(Error::validation("Field max_bytes must be greater than 0"));
        }
        // A consistent cut: open every file needed while rotation/truncation
        // are excluded; open handles stay readable after a rename or unlink.
        struct ToRead {
            path: PathBuf,
            file: File,
            end: Option<u64>,
            start: u64,
        }
        let mut plan: Vec<ToRead> = Vec::new();
        {
            let set = self.shared.files.read();
            let mut all: Vec<(Option<u64>, PathBuf, bool)> =
                set.segments.iter().map(|(l, p)| (Some(*l), p.clone(), false)).collect();
            if set.active_len > 0 {
                all.push((set.active_first, self.shared.cfg.dir.join(ACTIVE_FILE), true));
            }
            let first = if use_index {
                all.iter().rposition(|(first, _, _)| matches!(first, Some(f) if *f <= after_lsn)).unwrap_or(0)
            } else {
                0
            };
            for (i, (_, path, active)) in all.iter().enumerate().skip(first) {
                let file = match open_regular(path, OpenOptions::new().read(true)) {
                    Ok(f) => f,
                    Err(e) => return Err(Error::io(format!("Cannot read WAL file {}", label(path)), e)),
                };
                let end = if *active { Some(set.active_len) } else { None };
                let mut start = 0;
                if use_index && i == first && *active {
                    let pos = set.active_index.partition_point(|&(l, _)| l <= after_lsn);
                    if pos > 0 {
                        let (lsn, offset) = set.active_index[pos - 1];
                        if anchor_ok(&file, offset, lsn) {
                            start = offset;
                        }
                    }
                }
                plan.push(ToRead { path: path.clone(), file, end, start });
            }
        }
        if use_index {
            if let Some(first) = plan.first_mut() {
                if first.end.is_none() {
                    first.start = self.segment_start(&first.path, &first.file, after_lsn);
                }
            }
        }
        let mut page = EntriesPage::default();
        for item in plan {
            let end =
                scan_file(&item.path, Some(item.file), item.start, item.end, false, ErrorCode::InvalidJson, |line| {
                    let (Some(lsn), Some(entry)) = (line.parsed.lsn, line.parsed.entry) else {
                        return Ok(true);
                    };
                    if lsn <= after_lsn {
                        return Ok(true);
                    }
                    let cost = entry_cost(lsn, entry.len());
                    if let Some(max) = max_bytes {
                        // The page also carries a comma between entries
                        // (Karma 1.0 left those out, so a cut page could
                        // still overflow the response limit).
                        if page.entries_bytes + page.entries.len() + cost > max {
                            if page.entries.is_empty() {
                                return Err(Error::new(
                                    ErrorCode::ResponseTooLarge,
                                    format!("Single WAL entry {lsn} exceeds replication response byte budget"),
                                ));
                            }
                            page.truncated_by_bytes = true;
                            return Ok(false);
                        }
                    }
                    page.entries_bytes += cost;
                    page.entries.push((lsn, entry.into_owned()));
                    Ok(page.entries.len() < limit)
                })?;
            if end.stopped {
                break;
            }
        }
        Ok(page)
    }

    /// Where to start reading a segment for entries after `after_lsn`: the
    /// offset of the last indexed entry `<= after_lsn` if the `.idx` is valid
    /// and agrees with the file there, else 0.
    fn segment_start(&self, path: &Path, file: &File, after_lsn: u64) -> u64 {
        let Ok(size) = file.metadata().map(|m| m.len()) else {
            return 0;
        };
        let index = {
            let cache = self.shared.idx_cache.lock();
            match cache.get(path) {
                Some((s, idx)) if *s == size => Some(Arc::clone(idx)),
                _ => None,
            }
        };
        let index = match index {
            Some(i) => i,
            None => {
                let Some(parsed) = read_index(path, size) else {
                    return 0;
                };
                let parsed = Arc::new(parsed);
                let mut cache = self.shared.idx_cache.lock();
                if cache.len() >= 8 {
                    cache.clear();
                }
                cache.insert(path.to_path_buf(), (size, Arc::clone(&parsed)));
                parsed
            }
        };
        let pos = index.partition_point(|&(l, _)| l <= after_lsn);
        if pos == 0 {
            return 0;
        }
        let (lsn, offset) = index[pos - 1];
        if anchor_ok(file, offset, lsn) {
            offset
        } else {
            0
        }
    }
}

/// Whether `offset` starts a line (offset 0 or preceded by `\n`) holding `lsn`.
fn anchor_ok(file: &File, offset: u64, lsn: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 64];
    let (read_at, skip) = if offset == 0 { (0, 0) } else { (offset - 1, 1) };
    let Ok(n) = file.read_at(&mut buf, read_at) else {
        return false;
    };
    let buf = &buf[..n];
    if skip == 1 && buf.first() != Some(&b'\n') {
        return false;
    }
    let line = &buf[skip.min(buf.len())..];
    // Writer lines start with {"v":2,"lsn":<n>, ; anything else: do not trust.
    let Some(rest) = line.strip_prefix(br#"{"v":2,"lsn":"#) else {
        return false;
    };
    let digits: Vec<u8> = rest.iter().take_while(|b| b.is_ascii_digit()).copied().collect();
    rest.get(digits.len()) == Some(&b',')
        && std::str::from_utf8(&digits).ok().and_then(|s| s.parse::<u64>().ok()) == Some(lsn)
}
