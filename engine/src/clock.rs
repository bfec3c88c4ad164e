//! Time, injectable: "today" decides the default bucket, and tests must never
//! depend on the real date.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the engine reads wall-clock time from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the Unix epoch (UTC).
    fn unix_seconds(&self) -> u64;
}

/// The real clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_seconds(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }
}

/// A clock that stands still until told to move; for tests.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(unix_seconds: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicU64::new(unix_seconds)))
    }

    pub fn set(&self, unix_seconds: u64) {
        self.0.store(unix_seconds, Ordering::Relaxed);
    }

    pub fn advance(&self, seconds: u64) {
        self.0.fetch_add(seconds, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn unix_seconds(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The `YYYYMMDD` bucket of a Unix timestamp (UTC).
pub fn bucket_of_unix(unix_seconds: u64) -> u64 {
    let (y, m, d) = civil_from_days((unix_seconds / 86_400) as i64);
    (y as u64) * 10_000 + u64::from(m) * 100 + u64::from(d)
}

/// If `bucket` is a valid `YYYYMMDD` date with a year in 1000..=9999, its day
/// number; otherwise `None` (spec/protocol.md §7.6 step 4).
pub fn bucket_day_number(bucket: u64) -> Option<i64> {
    if !(10_000_101..=99_991_231).contains(&bucket) {
        return None;
    }
    let year = (bucket / 10_000) as i64;
    let month = ((bucket / 100) % 100) as u32;
    let day = (bucket % 100) as u32;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_through_day_numbers() {
        assert_eq!(bucket_of_unix(0), 19700101);
        assert_eq!(bucket_of_unix(1_780_000_000), 20260528);
        assert_eq!(bucket_day_number(19700101), Some(0));
        let d = bucket_day_number(20240229).unwrap();
        assert_eq!(bucket_of_unix(d as u64 * 86_400), 20240229);
    }

    #[test]
    fn invalid_dates_are_rejected() {
        for bad in [20260230, 1, 20261301, 20260100, 9991231, 20230229] {
            assert_eq!(bucket_day_number(bad), None, "{bad}");
        }
        assert!(bucket_day_number(20000229).is_some());
    }
}
