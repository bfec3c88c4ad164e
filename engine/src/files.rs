//! Small file primitives shared by the WAL, snapshots and sidecars:
//! atomic writes, directory fsync, LSN sidecars, the data-directory lock and
//! `recovery.json` (spec/persistence.md §1, §4.4, §7, §8).

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Name of the advisory lock file inside a data directory.
pub const LOCK_FILE: &str = "karma.lock";
/// Name of the recovery checkpoint file (§7).
pub const RECOVERY_FILE: &str = "recovery.json";
/// WAL LSN sidecar (§3.9).
pub const WAL_LSN_FILE: &str = "karma.wal.lsn";
/// Slave replication LSN file (§8).
pub const REPLICATION_LSN_FILE: &str = "karma.replication.lsn";

/// 16 lowercase hex characters, different on every call.
pub(crate) fn random_hex16() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    h.write_u128(nanos);
    format!("{:016x}", h.finish())
}

/// How a file of the data directory is named in messages: its name inside
/// the directory, never the host's absolute path.
pub fn label(path: &Path) -> String {
    path.file_name().map_or_else(|| "(data directory)".to_owned(), |n| n.to_string_lossy().into_owned())
}

const REFUSED: &str = "not a regular file (symbolic links and special files in the data directory are refused)";

fn refused() -> std::io::Error {
    std::io::Error::new(ErrorKind::InvalidInput, REFUSED)
}

/// The error of a failed operation on the data-directory file `name`: a
/// refused file (a symbolic link, a FIFO, a directory) is a
/// `validation_error` naming it; any other failure an `internal_error`
/// naming it. Neither carries the host's path of the directory.
pub fn file_error(action: &str, name: &str, e: std::io::Error) -> Error {
    if e.kind() == ErrorKind::InvalidInput && e.get_ref().is_some_and(|r| r.to_string() == REFUSED) {
        Error::validation(format!("Refusing {name}: {REFUSED}"))
    } else {
        Error::io(format!("{action} {name}"), e)
    }
}

/// Opens a file of the data directory, refusing a symbolic link (which
/// could point anywhere on the host) and anything that is not a regular
/// file. `O_NONBLOCK` keeps a FIFO planted there from blocking the open; it
/// changes nothing for regular files.
pub fn open_regular(path: &Path, options: &mut OpenOptions) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            refused()
        } else {
            e
        }
    })?;
    if !file.metadata()?.is_file() {
        return Err(refused());
    }
    Ok(file)
}

/// The whole content of a regular file of the data directory (see
/// [`open_regular`]).
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = open_regular(path, OpenOptions::new().read(true))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The metadata of a regular file of the data directory, without following
/// a symbolic link; anything else is refused.
pub fn regular_metadata(path: &Path) -> std::io::Result<fs::Metadata> {
    let md = fs::symlink_metadata(path)?;
    if !md.is_file() {
        return Err(refused());
    }
    Ok(md)
}

/// fsyncs a directory so that renames/creations inside it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| Error::io(format!("Cannot open directory {}", dir.display()), e))?;
    d.sync_all().map_err(|e| Error::io(format!("Cannot fsync directory {}", dir.display()), e))
}

fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("Cannot create directory {}", dir.display()), e))
}

/// Atomically replaces `dir/file_name` with `bytes`: temp file
/// `.<name>.<pid>.<16 hex>.tmp`, write, fsync, rename, fsync the directory.
/// On error the temp file is removed and an existing file stays untouched.
pub fn atomic_write(dir: &Path, file_name: &str, bytes: &[u8]) -> Result<()> {
    atomic_write_opts(dir, file_name, bytes, true)
}

/// The longest file name most file systems accept.
const NAME_MAX: usize = 255;

/// `.<name>.<pid>.<hex>.tmp`, with `<name>` shortened (at a character
/// boundary) so the whole stays within [`NAME_MAX`] bytes whatever the pid:
/// a snapshot of a series with a long name must not fail on its temp file.
fn temp_name(file_name: &str, pid: u32, hex: &str) -> String {
    let tail = format!(".{pid}.{hex}.tmp");
    let mut keep = file_name.len().min(NAME_MAX - 1 - tail.len());
    while !file_name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!(".{}{tail}", &file_name[..keep])
}

/// [`atomic_write`] with optional fsync (of the file and the directory).
pub fn atomic_write_opts(dir: &Path, file_name: &str, bytes: &[u8], fsync: bool) -> Result<()> {
    if file_name.is_empty() || file_name.contains('/') || file_name.contains('\0') {
        return Err(Error::validation(format!("Invalid file name \"{file_name}\"")));
    }
    ensure_dir(dir)?;
    let tmp = dir.join(temp_name(file_name, std::process::id(), &random_hex16()));
    let target = dir.join(file_name);
    let result = (|| -> Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(format!("Cannot create {}", tmp.display()), e))?;
        f.write_all(bytes).map_err(|e| Error::io(format!("Cannot write {}", tmp.display()), e))?;
        if fsync {
            f.sync_all().map_err(|e| Error::io(format!("Cannot fsync {}", tmp.display()), e))?;
        }
        drop(f);
        fs::rename(&tmp, &target)
            .map_err(|e| Error::io(format!("Cannot rename {} to {}", tmp.display(), target.display()), e))?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if fsync {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Reads a decimal LSN file (`karma.wal.lsn`, `karma.replication.lsn`).
/// Missing or blank = 0. `what` is `"WAL"` or `"replication"` and names the
/// file in the error: `Invalid WAL LSN file <path>`.
pub fn read_lsn_file(path: &Path, what: &str) -> Result<u64> {
    let bytes = match read_regular(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(format!("Cannot read {}", label(path)), e)),
    };
    let invalid = || Error::validation(format!("Invalid {what} LSN file {}", path.display()));
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?.trim();
    if text.is_empty() {
        return Ok(0);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    text.parse::<u64>().map_err(|_| invalid())
}

/// Writes `<lsn>\n` atomically to `dir/name` (fsync of file and directory only if `fsync`).
pub fn write_lsn_file_atomic(dir: &Path, name: &str, lsn: u64, fsync: bool) -> Result<()> {
    atomic_write_opts(dir, name, format!("{lsn}\n").as_bytes(), fsync)
}

/// An exclusive advisory lock (`flock`) on `<dir>/karma.lock`, released on drop.
#[derive(Debug)]
pub struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock or fails with `validation_error`
    /// `Data directory <dir> is locked by another Karma process`.
    /// flock is per open file description, so a second acquire in the same
    /// process fails too.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        ensure_dir(dir)?;
        let path = dir.join(LOCK_FILE);
        let mut file = open_regular(&path, OpenOptions::new().read(true).write(true).create(true).truncate(false))
            .map_err(|e| Error::io(format!("Cannot open {}", label(&path)), e))?;
        // std's file lock is flock(2) on Unix: per open file description, so
        // a second acquire in the same process fails too.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::validation(format!(
                    "Data directory {} is locked by another Karma process",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(Error::io(format!("Cannot lock {}", path.display()), err));
            }
        }
        // Best effort: record the owner's pid for operators.
        if file.set_len(0).is_ok() {
            let _ = writeln!(file, "{}", std::process::id());
        }
        Ok(DirLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlock explicitly anyway.
        let _ = self.file.unlock();
    }
}

/// One `recovery.checkpoint` marker (§7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub updated_at_unix: u64,
}

#[derive(Deserialize)]
struct RecoveryFileIn {
    checkpoints: Vec<CheckpointIn>,
}

#[derive(Deserialize)]
struct CheckpointIn {
    source: String,
    #[serde(default)]
    offset: Option<serde_json::Value>,
    #[serde(default)]
    event_id: Option<serde_json::Value>,
    updated_at_unix: u64,
}

fn value_to_string(v: Option<serde_json::Value>) -> Option<String> {
    match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    }
}

/// Reads `recovery.json`; a missing file is an empty set. A malformed file is
/// `validation_error` `Invalid recovery file <path>: <why>`.
pub fn read_recovery(dir: &Path) -> Result<Vec<Checkpoint>> {
    let path = dir.join(RECOVERY_FILE);
    let bytes = match read_regular(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("Cannot read {}", label(&path)), e)),
    };
    let parsed: RecoveryFileIn = serde_json::from_slice(&bytes)
        .map_err(|e| Error::validation(format!("Invalid recovery file {}: {e}", path.display())))?;
    Ok(parsed
        .checkpoints
        .into_iter()
        .map(|c| Checkpoint {
            source: c.source,
            offset: value_to_string(c.offset),
            event_id: value_to_string(c.event_id),
            updated_at_unix: c.updated_at_unix,
        })
        .collect())
}

#[derive(Serialize)]
struct RecoveryFileOut<'a> {
    checkpoints: Vec<&'a Checkpoint>,
}

/// The exact bytes of `recovery.json` for these checkpoints: sorted by source
/// (one per source, the last given wins), null fields omitted, compact + `\n`.
pub fn encode_recovery(checkpoints: &[Checkpoint]) -> Vec<u8> {
    let mut by_source: std::collections::BTreeMap<&str, &Checkpoint> = Default::default();
    for c in checkpoints {
        by_source.insert(c.source.as_str(), c);
    }
    let out = RecoveryFileOut { checkpoints: by_source.into_values().collect() };
    // Serializing plain strings and integers into a Vec cannot fail.
    let mut bytes = serde_json::to_vec(&out).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Writes `recovery.json` atomically (always fsynced).
pub fn write_recovery(dir: &Path, checkpoints: &[Checkpoint]) -> Result<()> {
    atomic_write(dir, RECOVERY_FILE, &encode_recovery(checkpoints))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_fit_in_a_file_name_whatever_the_pid() {
        let series = "é".repeat(100);
        let file = format!("1780000000_{series}.tree.meta.json");
        for pid in [1, 4_194_304, u32::MAX] {
            let name = temp_name(&file, pid, "0123456789abcdef");
            assert!(name.len() <= NAME_MAX, "{} bytes: {name}", name.len());
            assert!(name.starts_with(".1780000000_é") && name.ends_with(".0123456789abcdef.tmp"), "{name}");
        }
        assert_eq!(temp_name("x.json", 7, "ab"), ".x.json.7.ab.tmp");
    }

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn atomic_write_creates_and_replaces() {
        let d = tmp();
        let sub = d.path().join("a/b");
        atomic_write(&sub, "x.json", b"one").unwrap();
        assert_eq!(fs::read(sub.join("x.json")).unwrap(), b"one");
        atomic_write(&sub, "x.json", b"two").unwrap();
        assert_eq!(fs::read(sub.join("x.json")).unwrap(), b"two");
        assert_eq!(entries(&sub), vec!["x.json".to_string()]);
    }

    #[test]
    fn atomic_write_failure_keeps_old_file_and_removes_temp() {
        let d = tmp();
        atomic_write(d.path(), "x", b"old").unwrap();
        // Rename onto a non-empty directory fails after the temp was written.
        fs::create_dir(d.path().join("target")).unwrap();
        fs::write(d.path().join("target/keep"), b"k").unwrap();
        let err = atomic_write(d.path(), "target", b"new").unwrap_err();
        assert!(err.message().contains("Cannot rename"), "{err}");
        assert_eq!(entries(d.path()), vec!["target".to_string(), "x".to_string()]);
        assert_eq!(fs::read(d.path().join("x")).unwrap(), b"old");
        assert!(atomic_write(d.path(), "a/b", b"z").is_err());
    }

    #[test]
    fn lsn_files() {
        let d = tmp();
        let p = d.path().join(WAL_LSN_FILE);
        assert_eq!(read_lsn_file(&p, "WAL").unwrap(), 0);
        fs::write(&p, "").unwrap();
        assert_eq!(read_lsn_file(&p, "WAL").unwrap(), 0);
        fs::write(&p, " 42 \n").unwrap();
        assert_eq!(read_lsn_file(&p, "WAL").unwrap(), 42);
        fs::write(&p, "4x2\n").unwrap();
        let e = read_lsn_file(&p, "WAL").unwrap_err();
        assert_eq!(e.message(), format!("Invalid WAL LSN file {}", p.display()));
        assert_eq!(e.code(), crate::error::ErrorCode::ValidationError);
        let e = read_lsn_file(&p, "replication").unwrap_err();
        assert_eq!(e.message(), format!("Invalid replication LSN file {}", p.display()));
        write_lsn_file_atomic(d.path(), REPLICATION_LSN_FILE, 615, false).unwrap();
        assert_eq!(fs::read_to_string(d.path().join(REPLICATION_LSN_FILE)).unwrap(), "615\n");
    }

    #[test]
    fn dir_lock_is_exclusive() {
        let d = tmp();
        let lock = DirLock::acquire(d.path()).unwrap();
        let err = DirLock::acquire(d.path()).unwrap_err();
        assert_eq!(err.message(), format!("Data directory {} is locked by another Karma process", d.path().display()));
        assert_eq!(err.code(), crate::error::ErrorCode::ValidationError);
        drop(lock);
        let _again = DirLock::acquire(d.path()).unwrap();
    }

    #[test]
    fn recovery_roundtrip_and_fixture_format() {
        let d = tmp();
        assert!(read_recovery(d.path()).unwrap().is_empty());
        let cps = vec![
            Checkpoint {
                source: "crm-sync".into(),
                offset: None,
                event_id: Some("evt-00042".into()),
                updated_at_unix: 1795304357,
            },
            Checkpoint {
                source: "billing-export".into(),
                offset: Some("9000".into()),
                event_id: None,
                updated_at_unix: 1795304358,
            },
        ];
        write_recovery(d.path(), &cps).unwrap();
        let text = fs::read_to_string(d.path().join(RECOVERY_FILE)).unwrap();
        assert_eq!(
            text,
            "{\"checkpoints\":[{\"source\":\"billing-export\",\"offset\":\"9000\",\"updated_at_unix\":1795304358},{\"source\":\"crm-sync\",\"event_id\":\"evt-00042\",\"updated_at_unix\":1795304357}]}\n"
        );
        let back = read_recovery(d.path()).unwrap();
        assert_eq!(back, vec![cps[1].clone(), cps[0].clone()]);
        fs::write(d.path().join(RECOVERY_FILE), "{nope").unwrap();
        assert!(read_recovery(d.path()).unwrap_err().message().starts_with("Invalid recovery file"));
    }

    #[test]
    fn recovery_fixture_is_byte_identical_after_rewrite() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/karma1");
        assert!(base.is_dir(), "fixtures missing at {}", base.display());
        for fx in ["snapshot-plus-wal", "segmented-wal", "snapshots-only"] {
            let dir = base.join(fx).join("data");
            let original = fs::read(dir.join(RECOVERY_FILE)).unwrap();
            let cps = read_recovery(&dir).unwrap();
            assert!(!cps.is_empty());
            assert_eq!(encode_recovery(&cps), original, "{fx}");
        }
    }
}
