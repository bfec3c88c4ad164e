//! Faults a test can inject into a real process through its environment.
//! Compiled only with the `fault-injection` feature, which no release build
//! enables.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// While the file this names exists, the disk is "full" for the WAL.
const DISK_FULL_ENV: &str = "KARMA_FAULT_DISK_FULL_FILE";

/// Milliseconds every WAL data fsync is delayed by.
const FSYNC_DELAY_ENV: &str = "KARMA_FAULT_FSYNC_DELAY_MS";

/// Sleeps for `KARMA_FAULT_FSYNC_DELAY_MS` (read once), as a slow disk would
/// inside fsync.
pub(crate) fn fsync_delay() {
    static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
    let delay = DELAY.get_or_init(|| {
        std::env::var(FSYNC_DELAY_ENV).ok()?.parse::<u64>().ok().filter(|&ms| ms > 0).map(Duration::from_millis)
    });
    if let Some(delay) = delay {
        std::thread::sleep(*delay);
    }
}

/// Fails with ENOSPC, as `write(2)` does on a full disk, while the file named
/// by `KARMA_FAULT_DISK_FULL_FILE` exists. Checked before every WAL group
/// write and every probe of a failed WAL, so a test fills and frees "the
/// disk" by creating and removing one file, at exact points.
pub(crate) fn disk_full() -> std::io::Result<()> {
    static FLAG: OnceLock<Option<PathBuf>> = OnceLock::new();
    let flag = FLAG.get_or_init(|| std::env::var_os(DISK_FULL_ENV).map(PathBuf::from));
    match flag {
        Some(path) if path.exists() => Err(std::io::Error::from(std::io::ErrorKind::StorageFull)),
        _ => Ok(()),
    }
}
