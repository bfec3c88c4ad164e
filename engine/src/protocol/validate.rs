//! Step 11 of spec/protocol.md §4.1: the checks that run after
//! authentication and before the role check. Stateless; the engine adds the
//! checks that need state (ingest stream state, series existence).

use crate::clock::bucket_day_number;
use crate::error::{Error, Result};

use super::ops::Op;
use super::request::{Command, Range, Request, Window};

pub const MAX_KEYS: usize = 10_000;
pub const MAX_ITEMS: usize = 10_000;
pub const MAX_RANGE_DAYS: i64 = 366;
/// Longest `counter.consume` window of `days`: a year, leap day included.
pub const MAX_WINDOW_DAYS: u64 = 366;
/// Longest series name: it becomes part of snapshot file names, which the
/// file system limits to 255 bytes (`<unix>_<name>.tree.meta.json`).
pub const MAX_SERIES_NAME_BYTES: usize = 200;
pub const CHUNK_DEFAULT_LIMIT: i64 = 262_144;
pub const CHUNK_MAX_LIMIT: i64 = 524_288;
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;
pub const MAX_FINGERPRINT_BYTES: usize = 512;

/// The series name policy (fix of B8/B9): non-empty, at most 200 bytes, no
/// `/` or NUL, so every name can become a snapshot file name.
pub fn validate_series_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::validation("Field tree_name is required"));
    }
    if name.len() > MAX_SERIES_NAME_BYTES {
        return Err(Error::validation(format!("Field tree_name exceeds max size of {MAX_SERIES_NAME_BYTES} bytes")));
    }
    // Both are ASCII: a byte scan, not a char pattern (every request
    // naming a series runs this).
    if name.bytes().any(|b| b == b'/' || b == 0) {
        return Err(Error::validation("Field tree_name must not contain '/' or NUL"));
    }
    Ok(())
}

/// `Invalid bucket date` / `Range exceeds max days` (§7.6 steps 4-5).
pub fn validate_range(range: &Range) -> Result<()> {
    // The parser already refuses this; typed callers build ranges directly.
    if range.from > range.to {
        return Err(Error::validation("Bucket range start must be less than or equal to range end"));
    }
    let from = bucket_day_number(range.from).ok_or_else(|| Error::validation("Invalid bucket date"))?;
    let to = bucket_day_number(range.to).ok_or_else(|| Error::validation("Invalid bucket date"))?;
    if to - from > MAX_RANGE_DAYS {
        return Err(Error::validation("Range exceeds max days"));
    }
    Ok(())
}

/// A `limit` with its default and maximum (fix of B3 and Q14: the defaults
/// apply and out-of-range integers are a `validation_error`).
pub fn resolve_limit(limit: Option<i64>, default: i64, max: i64) -> Result<usize> {
    let limit = limit.unwrap_or(default);
    if limit <= 0 {
        return Err(Error::validation("Field limit must be greater than 0"));
    }
    if limit > max {
        return Err(Error::validation("Field limit exceeds max size"));
    }
    Ok(limit as usize)
}

pub fn tree_keys_limit(limit: Option<i64>) -> Result<usize> {
    resolve_limit(limit, 100, 10_000)
}

pub fn tree_top_limit(limit: Option<i64>) -> Result<usize> {
    resolve_limit(limit, 50, 1_000)
}

pub fn entries_limit(limit: Option<i64>) -> Result<usize> {
    resolve_limit(limit, 1_000, 10_000)
}

pub fn chunk_limit(limit: Option<i64>) -> Result<usize> {
    resolve_limit(limit, CHUNK_DEFAULT_LIMIT, CHUNK_MAX_LIMIT)
}

fn check_size(len: usize, max: usize, field: &str) -> Result<()> {
    if len > max {
        return Err(Error::validation(format!("Field {field} exceeds max size")));
    }
    Ok(())
}

fn check_range(range: &Option<Range>) -> Result<()> {
    range.as_ref().map_or(Ok(()), validate_range)
}

/// The stateless checks of a counter write (`counter.increment`,
/// `counter.decrement`): what [`validate`] runs for one, for the engine's
/// typed increment, which does not build a request.
pub fn validate_write(series: &str, value: Option<u64>) -> Result<()> {
    validate_series_name(series)?;
    check_value(value)
}

/// `value` of a write or a consume: absent (meaning 1) or positive.
fn check_value(value: Option<u64>) -> Result<()> {
    match value {
        Some(0) => Err(Error::validation("Field value must be greater than 0")),
        _ => Ok(()),
    }
}

/// Runs every stateless validation of the request's op.
pub fn validate(req: &Request<'_>) -> Result<()> {
    if let Some(series) = req.series() {
        validate_series_name(series)?;
    }
    validate_fields(req)
}

/// [`validate`] but for the series name, which comes first (for a caller
/// that knows the name passed already).
pub fn validate_fields(req: &Request<'_>) -> Result<()> {
    match (&req.op, &req.command) {
        (Op::TreeKeys, Command::TreeKeys { limit, .. }) => {
            tree_keys_limit(*limit)?;
        }
        (Op::TreeTop, Command::TreeTop { limit, range, .. }) => {
            tree_top_limit(*limit)?;
            check_range(range)?;
        }
        (_, Command::SeriesRange { range, .. } | Command::Key { range, .. }) => check_range(range)?,
        (_, Command::Keys { keys, range, .. }) => {
            check_size(keys.len(), MAX_KEYS, "keys")?;
            check_range(range)?;
        }
        (_, Command::MultiSum { items, range }) => {
            check_size(items.len(), MAX_ITEMS, "items")?;
            check_range(range)?;
        }
        (_, Command::Write { value, .. }) => check_value(*value)?,
        (_, Command::Consume { value, bucket, window, .. }) => {
            check_value(*value)?;
            validate_consume(*bucket, *window)?;
        }
        (op, Command::Items { items, .. }) => {
            check_size(items.len(), MAX_ITEMS, "items")?;
            if *op == Op::BatchAdd && items.iter().any(|i| i[2] == 0) {
                return Err(Error::validation("Batch item value must be greater than 0"));
            }
        }
        (Op::SnapshotLoad, Command::File { file }) => {
            snapshot_series_of(file)?;
        }
        (_, Command::Chunk { limit, .. }) => {
            chunk_limit(*limit)?;
        }
        (_, Command::ReplicationEntries { limit, .. }) => {
            entries_limit(*limit)?;
        }
        (_, Command::Prune { limit: Some(l), .. }) => {
            resolve_limit(Some(*l), 0, 100_000)?;
        }
        (_, Command::RecoveryCheckpoint { source, offset, event_id }) => {
            if source.is_empty() {
                return Err(Error::validation("Field source is required"));
            }
            if offset.is_none() && event_id.is_none() {
                return Err(Error::validation("Field offset or event_id is required"));
            }
            if offset.as_deref() == Some("") {
                return Err(Error::validation("Field offset must not be empty"));
            }
            if event_id.as_deref() == Some("") {
                return Err(Error::validation("Field event_id must not be empty"));
            }
        }
        (_, Command::Reconciliation { checked_points, mismatch_count, absolute_drift, max_abs_delta }) => {
            if *checked_points < 0 {
                return Err(Error::validation("Field checked_points must be greater than or equal to 0"));
            }
            if *mismatch_count < 0 {
                return Err(Error::validation("Field mismatch_count must be greater than or equal to 0"));
            }
            if mismatch_count > checked_points {
                return Err(Error::validation("Field mismatch_count must be less than or equal to checked_points"));
            }
            if *absolute_drift < 0 {
                return Err(Error::validation("Field absolute_drift must be greater than or equal to 0"));
            }
            if *max_abs_delta < 0 {
                return Err(Error::validation("Field max_abs_delta must be greater than or equal to 0"));
            }
        }
        (_, Command::IngestBegin { stream_id, mode, .. }) => {
            if stream_id.is_empty() {
                return Err(Error::validation("Field stream_id is required"));
            }
            if mode.is_empty() {
                return Err(Error::validation("Field mode is required"));
            }
            if !matches!(mode.as_ref(), "add" | "set" | "replace_series") {
                return Err(Error::validation(format!("Unsupported ingest mode {mode}")));
            }
        }
        (_, Command::IngestChunk { stream_id, .. } | Command::Stream { stream_id }) if stream_id.is_empty() => {
            return Err(Error::validation("Field stream_id is required"));
        }
        _ => {}
    }
    Ok(())
}

/// `counter.consume`: a window of 1 to [`MAX_WINDOW_DAYS`] days, and a
/// bucket that is a real date (the window is counted back from it).
pub fn validate_consume(bucket: Option<u64>, window: Window) -> Result<()> {
    match window {
        Window::Days(0) => return Err(Error::validation("Field days must be greater than 0")),
        Window::Days(n) if n > MAX_WINDOW_DAYS => {
            return Err(Error::validation(format!("Field days exceeds max size of {MAX_WINDOW_DAYS}")))
        }
        _ => {}
    }
    match bucket {
        Some(b) if bucket_day_number(b).is_none() => Err(Error::validation("Invalid bucket date")),
        _ => Ok(()),
    }
}

/// The series named by a snapshot file `<unix>_<series>.tree` (fix of Q23:
/// a non-numeric prefix is a `validation_error`).
pub fn snapshot_series_of(file: &str) -> Result<(i64, String)> {
    let invalid = || Error::validation(format!("Invalid dump file name \"{file}\""));
    let stem = file.strip_suffix(".tree").ok_or_else(invalid)?;
    let (prefix, series) = stem.split_once('_').ok_or_else(invalid)?;
    if series.is_empty() {
        return Err(invalid());
    }
    let unix = prefix.parse::<i64>().map_err(|_| invalid())?;
    Ok((unix, series.to_owned()))
}
