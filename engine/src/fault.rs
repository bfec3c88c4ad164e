//! Faults a test can inject into a real process through its environment.
//! Compiled only with the `fault-injection` feature, which no release build
//! enables.

use std::sync::OnceLock;
use std::time::Duration;

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
