//! Snapshot files in the data directory: naming, listing, `.meta.json`
//! sidecars, retention and the restore LSN (spec/persistence.md §4.1, §4.3,
//! §4.6, §4.7).

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files::{atomic_write, file_error, label, read_regular, regular_metadata};

/// Metadata of one `.tree` snapshot (sidecar `<file>.meta.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub tree: String,
    pub file: String,
    pub timestamp: i64,
    pub last_lsn: u64,
    pub bytes: u64,
}

impl SnapshotMeta {
    /// The sidecar basename: `<file>.meta.json`.
    pub fn metadata_file(&self) -> String {
        format!("{}{META_SUFFIX}", self.file)
    }

    /// The exact sidecar content: compact JSON in the order
    /// tree, file, timestamp, last_lsn, bytes, then `\n`.
    pub fn to_json_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

const TREE_SUFFIX: &str = ".tree";
const META_SUFFIX: &str = ".meta.json";

/// Parses `<unix>_<series>.tree`, splitting at the first `_`. Returns `None`
/// for anything else (missing `_`, empty series, non-numeric prefix).
pub fn parse_file_name(name: &str) -> Option<(i64, String)> {
    let stem = name.strip_suffix(TREE_SUFFIX)?;
    let (ts, series) = stem.split_once('_')?;
    if series.is_empty() || ts.is_empty() {
        return None;
    }
    let digits = ts.strip_prefix(['-', '+']).unwrap_or(ts);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((ts.parse::<i64>().ok()?, series.to_string()))
}

/// The file name of a snapshot of `series` taken at `unix`.
pub fn file_name(series: &str, unix: i64) -> String {
    format!("{unix}_{series}{TREE_SUFFIX}")
}

fn check_series_name(series: &str) -> Result<()> {
    if series.is_empty() || series.contains('/') || series.contains('\0') {
        return Err(Error::validation(format!("Series name \"{series}\" cannot be used in a snapshot file name")));
    }
    Ok(())
}

fn check_tree_file(file: &str) -> Result<()> {
    if file.contains('/') || file.contains('\0') || file.starts_with('.') || !file.ends_with(TREE_SUFFIX) {
        return Err(Error::validation(format!("Invalid dump file name \"{file}\"")));
    }
    Ok(())
}

/// The snapshot files of one data directory.
#[derive(Clone, Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    pub fn new(dir: impl Into<PathBuf>) -> SnapshotDir {
        SnapshotDir { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Absolute-or-given path of a file in the directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Writes a snapshot of `series` taken at `unix` (or later) and returns
    /// its metadata.
    ///
    /// Crash safety: a `.tree` and its sidecar cannot be renamed into place
    /// together, so a snapshot never reuses a file name (a second snapshot in
    /// the same second, or after the clock went back, takes the next free
    /// second) and the sidecar is written first. A crash between the two
    /// leaves only an orphan sidecar, which nothing reads; a `.tree` is never
    /// paired with a sidecar describing other contents (that paired a new
    /// snapshot with an old `last_lsn` and made restore replay entries the
    /// snapshot already held).
    pub fn write(&self, series: &str, unix: i64, last_lsn: u64, bytes: &[u8]) -> Result<SnapshotMeta> {
        check_series_name(series)?;
        let newest = self.list()?.into_iter().filter(|m| m.tree == series).map(|m| m.timestamp).max();
        let unix = match newest {
            Some(t) if t >= unix => t + 1,
            _ => unix,
        };
        let file = file_name(series, unix);
        let meta =
            SnapshotMeta { tree: series.to_string(), file, timestamp: unix, last_lsn, bytes: bytes.len() as u64 };
        atomic_write(&self.dir, &meta.metadata_file(), meta.to_json_line().as_bytes())?;
        if let Err(err) = atomic_write(&self.dir, &meta.file, bytes) {
            let _ = fs::remove_file(self.dir.join(meta.metadata_file()));
            return Err(err);
        }
        Ok(meta)
    }

    /// Every parseable `*.tree` (hidden files excluded), newest first by
    /// file-name timestamp (ties by series name). Files whose name does not
    /// parse are skipped with a warning.
    pub fn list(&self) -> Result<Vec<SnapshotMeta>> {
        let mut out = Vec::new();
        for (file, ts, series, size) in self.scan()? {
            let meta = match self.read_sidecar(&file) {
                Ok(Some(m)) => m,
                Ok(None) => synthesize(&file, ts, &series, size),
                Err(e) => {
                    tracing::warn!(file = %file, error = %e, "snapshot.metadata_invalid");
                    synthesize(&file, ts, &series, size)
                }
            };
            out.push(meta);
        }
        Ok(out)
    }

    /// (file, timestamp, series, size), sorted newest first.
    fn scan(&self) -> Result<Vec<(String, i64, String, u64)>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("Cannot list {}", self.dir.display()), e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(format!("Cannot list {}", self.dir.display()), e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || !name.ends_with(TREE_SUFFIX) {
                continue;
            }
            let Ok(md) = entry.metadata() else { continue };
            if !md.is_file() {
                continue;
            }
            match parse_file_name(&name) {
                Some((ts, series)) => out.push((name, ts, series, md.len())),
                None => tracing::warn!(file = %name, "snapshot.invalid_file_name: skipped"),
            }
        }
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.2.cmp(&b.2)));
        Ok(out)
    }

    /// The sidecar of `file`, strictly parsed: `Ok(None)` if absent,
    /// `validation_error` `Invalid snapshot metadata <path>: <why>` if malformed.
    pub fn read_sidecar(&self, file: &str) -> Result<Option<SnapshotMeta>> {
        let path = self.dir.join(format!("{file}{META_SUFFIX}"));
        let bytes = match read_regular(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(file_error("Cannot read", &label(&path), e)),
        };
        serde_json::from_slice::<SnapshotMeta>(&bytes)
            .map(Some)
            .map_err(|e| Error::validation(format!("Invalid snapshot metadata {}: {e}", path.display())))
    }

    /// Newest snapshot of each series, sorted by series name.
    pub fn latest_by_series(&self) -> Result<Vec<SnapshotMeta>> {
        let mut latest: BTreeMap<String, SnapshotMeta> = BTreeMap::new();
        for meta in self.list()? {
            let series = parse_file_name(&meta.file).map(|(_, s)| s).unwrap_or_else(|| meta.tree.clone());
            latest.entry(series).or_insert(meta);
        }
        Ok(latest.into_values().collect())
    }

    /// The bytes of a snapshot, `None` if it does not exist.
    pub fn read(&self, file: &str) -> Result<Option<Vec<u8>>> {
        check_tree_file(file)?;
        match read_regular(&self.dir.join(file)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(file_error("Cannot read", file, e)),
        }
    }

    /// Metadata of a snapshot (sidecar, or synthesised if it is missing or
    /// unreadable); `None` if the `.tree` does not exist.
    pub fn meta(&self, file: &str) -> Result<Option<SnapshotMeta>> {
        check_tree_file(file)?;
        let (ts, series) =
            parse_file_name(file).ok_or_else(|| Error::validation(format!("Invalid dump file name \"{file}\"")))?;
        let path = self.dir.join(file);
        let size = match regular_metadata(&path) {
            Ok(md) => md.len(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(file_error("Cannot stat", file, e)),
        };
        match self.read_sidecar(file) {
            Ok(Some(m)) => Ok(Some(m)),
            Ok(None) => Ok(Some(synthesize(file, ts, &series, size))),
            Err(e) => {
                tracing::warn!(file = %file, error = %e, "snapshot.metadata_invalid");
                Ok(Some(synthesize(file, ts, &series, size)))
            }
        }
    }

    fn remove_pair(&self, file: &str) -> Result<()> {
        for name in [file.to_string(), format!("{file}{META_SUFFIX}")] {
            let path = self.dir.join(&name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("Cannot remove {}", path.display()), e)),
            }
        }
        Ok(())
    }

    /// Keeps the newest `retention` snapshots per series (0 keeps all) and
    /// deletes the older `.tree` files with their sidecars. Returns how many
    /// `.tree` files were removed.
    pub fn prune(&self, retention: usize) -> Result<usize> {
        if retention == 0 {
            return Ok(0);
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut removed = 0;
        for (file, _, series, _) in self.scan()? {
            let n = seen.entry(series).or_insert(0);
            *n += 1;
            if *n > retention {
                self.remove_pair(&file)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes every snapshot of `series` (so a dropped series stays dropped).
    pub fn remove_series(&self, series: &str) -> Result<usize> {
        let mut removed = 0;
        for (file, _, s, _) in self.scan()? {
            if s == series {
                self.remove_pair(&file)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes every snapshot of the series not in `keep`; returns how many
    /// `.tree` files were removed.
    pub fn remove_series_except(&self, keep: &std::collections::HashSet<&str>) -> Result<usize> {
        let mut removed = 0;
        for (file, _, series, _) in self.scan()? {
            if !keep.contains(series.as_str()) {
                self.remove_pair(&file)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Number of (parseable) `*.tree` files.
    pub fn dump_count(&self) -> Result<usize> {
        Ok(self.scan()?.len())
    }

    /// Restore LSN (§4.7): minimum `last_lsn` over the newest snapshot of each
    /// series; without any `.tree`, the idempotency snapshot's `last_lsn`; else 0.
    pub fn restore_lsn(&self) -> Result<u64> {
        let latest = self.latest_by_series()?;
        if let Some(min) = latest.iter().map(|m| m.last_lsn).min() {
            return Ok(min);
        }
        Ok(super::idem::idempotency_meta(&self.dir)?.map(|m| m.last_lsn).unwrap_or(0))
    }

    /// Maximum `last_lsn` over the newest snapshot of each series (0 if none),
    /// reported as `last_snapshot_lsn`.
    pub fn last_snapshot_lsn(&self) -> Result<u64> {
        Ok(self.latest_by_series()?.iter().map(|m| m.last_lsn).max().unwrap_or(0))
    }
}

fn synthesize(file: &str, ts: i64, series: &str, size: u64) -> SnapshotMeta {
    SnapshotMeta { tree: series.to_string(), file: file.to_string(), timestamp: ts, last_lsn: 0, bytes: size }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(
            parse_file_name("1795304364_short_links_daily.tree"),
            Some((1795304364, "short_links_daily".to_string()))
        );
        assert_eq!(parse_file_name("12_.tree"), None);
        assert_eq!(parse_file_name("12x_a.tree"), None);
        assert_eq!(parse_file_name("_a.tree"), None);
        assert_eq!(parse_file_name("12a.tree"), None);
        assert_eq!(parse_file_name("12_a.tre"), None);
        assert_eq!(parse_file_name("-5_a.tree"), Some((-5, "a".to_string())));
    }

    #[test]
    fn write_list_prune_remove() {
        let d = tempfile::tempdir().unwrap();
        let sd = SnapshotDir::new(d.path());
        assert!(sd.list().unwrap().is_empty());
        assert_eq!(sd.restore_lsn().unwrap(), 0);
        let m = sd.write("api_requests", 1777925811, 42, &[0u8; 56]).unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("1777925811_api_requests.tree.meta.json")).unwrap(),
            "{\"tree\":\"api_requests\",\"file\":\"1777925811_api_requests.tree\",\"timestamp\":1777925811,\"last_lsn\":42,\"bytes\":56}\n"
        );
        assert_eq!(m.metadata_file(), "1777925811_api_requests.tree.meta.json");
        sd.write("api_requests", 1777925812, 50, b"x").unwrap();
        sd.write("api_requests", 1777925813, 60, b"xy").unwrap();
        sd.write("b_series", 1777925810, 55, b"z").unwrap();
        // Unparseable names are skipped, hidden files ignored, sidecar-less synthesised.
        fs::write(d.path().join("garbage.tree"), b"").unwrap();
        fs::write(d.path().join(".1_hidden.tree"), b"").unwrap();
        fs::write(d.path().join("1777925800_nometa.tree"), b"abc").unwrap();
        let list = sd.list().unwrap();
        let files: Vec<&str> = list.iter().map(|m| m.file.as_str()).collect();
        assert_eq!(
            files,
            vec![
                "1777925813_api_requests.tree",
                "1777925812_api_requests.tree",
                "1777925811_api_requests.tree",
                "1777925810_b_series.tree",
                "1777925800_nometa.tree"
            ]
        );
        assert_eq!(list[4].last_lsn, 0);
        assert_eq!(list[4].bytes, 3);
        assert_eq!(list[4].tree, "nometa");
        let latest = sd.latest_by_series().unwrap();
        assert_eq!(
            latest.iter().map(|m| m.file.as_str()).collect::<Vec<_>>(),
            vec!["1777925813_api_requests.tree", "1777925810_b_series.tree", "1777925800_nometa.tree"]
        );
        assert_eq!(sd.restore_lsn().unwrap(), 0);
        assert_eq!(sd.last_snapshot_lsn().unwrap(), 60);
        assert_eq!(sd.dump_count().unwrap(), 5);
        assert_eq!(sd.read("1777925812_api_requests.tree").unwrap().unwrap(), b"x");
        assert_eq!(sd.read("1_none.tree").unwrap(), None);
        assert!(sd.read("../x.tree").is_err());
        assert_eq!(sd.meta("1777925812_api_requests.tree").unwrap().unwrap().last_lsn, 50);
        assert_eq!(sd.meta("1777925800_nometa.tree").unwrap().unwrap().bytes, 3);
        assert_eq!(sd.meta("1_none.tree").unwrap(), None);

        assert_eq!(sd.remove_series("nometa").unwrap(), 1);
        assert_eq!(sd.restore_lsn().unwrap(), 55);
        assert_eq!(sd.prune(0).unwrap(), 0);
        assert_eq!(sd.prune(1).unwrap(), 2);
        assert!(!d.path().join("1777925811_api_requests.tree.meta.json").exists());
        assert!(!d.path().join("1777925812_api_requests.tree").exists());
        assert_eq!(sd.dump_count().unwrap(), 2);
        assert!(sd.write("a/b", 1, 0, b"").is_err());
        assert!(sd.write("", 1, 0, b"").is_err());
    }

    #[test]
    fn fixture_snapshot_dirs() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/karma1");
        assert!(base.is_dir(), "fixtures missing at {}", base.display());
        let sd = SnapshotDir::new(base.join("snapshots-only/data"));
        let latest = sd.latest_by_series().unwrap();
        assert_eq!(
            latest.iter().map(|m| m.tree.as_str()).collect::<Vec<_>>(),
            vec!["late_series", "logins", "quota_daily", "short_links_daily"]
        );
        assert!(latest.iter().all(|m| m.timestamp == 1795304367));
        assert_eq!(sd.dump_count().unwrap(), 8);
        for m in sd.list().unwrap() {
            let raw = fs::read_to_string(sd.path(&m.metadata_file())).unwrap();
            assert_eq!(m.to_json_line(), raw);
            assert_eq!(m.bytes, fs::metadata(sd.path(&m.file)).unwrap().len());
        }
        let sd = SnapshotDir::new(base.join("snapshot-plus-wal/data"));
        assert_eq!(sd.restore_lsn().unwrap(), 721);
        let sd = SnapshotDir::new(base.join("segmented-wal/data"));
        assert_eq!(sd.restore_lsn().unwrap(), 0);
    }
}
