//! `karma reconcile`: compares a CSV of expected `key, bucket, value` points
//! (e.g. aggregates exported from the analytical store) with what Karma
//! holds, as Karma 1.0's `reconcile_csv` script does.
//!
//! * `--sample-step N` checks data rows 1, 1+N, 1+2N, ... (N = 1: all).
//! * Each checked point is one bucket of one counter, read with
//!   `counter.batch_sum` over a one-day range (up to 10000 keys a request).
//! * A mismatch is a point whose Karma value differs from the CSV value; the
//!   first `--max-mismatches` are listed, all are counted.
//! * Totals are exact u64: the absolute drift (sum of |delta|) is checked,
//!   and the run fails rather than wrap if it overflows.
//! * `--report` sends `reconciliation.report` with the run's numbers, which
//!   then appear in `system.stats` / `system.metrics`.
//! * Exit status: 0 no drift, 1 drift found, 2 the run failed, 130 interrupted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};

use crate::connect::{ConnectArgs, Connection, RequestLimit};
use crate::csv_rows::{Columns, Row, RowReader};
use crate::interrupt::{Interrupt, EXIT_INTERRUPTED};
use crate::progress::Progress;

/// Points compared per round of requests (and keys per batch_sum, the
/// protocol's maximum).
const BATCH: usize = 10_000;

#[derive(Args, Debug)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// CSV file with a header line.
    #[arg(long, value_name = "FILE")]
    pub csv: PathBuf,
    /// Series to compare against.
    #[arg(long, value_name = "S")]
    pub series: String,
    /// Check every Nth data row (1 = every row).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_step: u64,
    /// List at most N mismatches (all are counted).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_mismatches: u64,
    /// Send the totals to the server with reconciliation.report.
    #[arg(long)]
    pub report: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limit: RequestLimit,
    #[command(flatten)]
    pub columns: Columns,
}

/// One point where Karma and the CSV disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub line: u64,
    pub key: u64,
    pub bucket: u64,
    pub expected: u64,
    pub actual: u64,
}

impl Mismatch {
    /// |actual - expected|, exact.
    fn abs_delta(&self) -> u64 {
        self.actual.abs_diff(self.expected)
    }

    fn delta_text(&self) -> String {
        match self.actual >= self.expected {
            true => format!("+{}", self.actual - self.expected),
            false => format!("-{}", self.expected - self.actual),
        }
    }
}

/// The run's totals, as `reconciliation.report` takes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub checked_points: u64,
    pub mismatch_count: u64,
    pub absolute_drift: u64,
    pub max_abs_delta: u64,
}

impl Totals {
    fn add(&mut self, mismatch: &Mismatch) -> Result<(), String> {
        let delta = mismatch.abs_delta();
        self.mismatch_count += 1;
        self.max_abs_delta = self.max_abs_delta.max(delta);
        self.absolute_drift = self
            .absolute_drift
            .checked_add(delta)
            .ok_or_else(|| format!("the absolute drift exceeds {} (u64) at line {}", u64::MAX, mismatch.line))?;
        Ok(())
    }
}

pub fn run(args: &ReconcileArgs) -> ExitCode {
    match reconcile(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("karma reconcile: {message}");
            ExitCode::from(2)
        }
    }
}

fn reconcile(args: &ReconcileArgs) -> Result<ExitCode, String> {
    let conn = Connection::open(&args.connect)?;
    if args.report && conn.is_cluster() {
        return Err(format!(
            "--report needs a karma:// URL: a report is recorded by one node, and {} is a cluster \
             (without --report, reconcile works against a cluster)",
            conn.target()
        ));
    }
    let interrupt = Interrupt::install();
    let mut reader = RowReader::open(&args.csv, &args.columns)?;
    let size = std::fs::metadata(&args.csv).map(|m| m.len()).unwrap_or(0);
    let mut progress = Progress::new("reconcile", "bytes", size);
    let mut totals = Totals::default();
    let mut listed: Vec<Mismatch> = Vec::new();
    let mut batch: Vec<Row> = Vec::with_capacity(BATCH);
    let mut index = 0u64;
    loop {
        let row = reader.next_row()?;
        if let Some(row) = row {
            if index.is_multiple_of(args.sample_step) {
                batch.push(row);
            }
            index += 1;
        }
        if batch.len() == BATCH || (row.is_none() && !batch.is_empty()) {
            if interrupt.requested() {
                progress.finish();
                eprintln!("interrupted after {} checked points; nothing reported", totals.checked_points);
                return Ok(ExitCode::from(EXIT_INTERRUPTED));
            }
            for mismatch in compare(&conn, &args.series, args.limit, &batch)? {
                totals.add(&mismatch)?;
                if (listed.len() as u64) < args.max_mismatches {
                    if !args.json {
                        println!("{}", describe(&mismatch));
                    }
                    listed.push(mismatch);
                }
            }
            totals.checked_points += batch.len() as u64;
            batch.clear();
            progress.set(reader.bytes_read());
        }
        if row.is_none() {
            break;
        }
    }
    progress.finish();

    // The results are printed even when the report is refused.
    let report_error = if args.report { report(&conn, &totals).err() } else { None };
    let reported = args.report && report_error.is_none();
    if args.json {
        println!("{}", summary_json(&args.series, &totals, &listed, reported));
    } else {
        let more = totals.mismatch_count - listed.len() as u64;
        if more > 0 {
            println!("... and {more} more mismatches (--max-mismatches {})", args.max_mismatches);
        }
        println!(
            "series {}: checked {} points, {} mismatches, absolute drift {}, max |delta| {}{}",
            args.series,
            totals.checked_points,
            totals.mismatch_count,
            totals.absolute_drift,
            totals.max_abs_delta,
            if reported { " (reported)" } else { "" }
        );
    }
    if let Some(err) = report_error {
        return Err(err);
    }
    Ok(if totals.mismatch_count == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Reads Karma's value of every row's point; returns the rows that differ,
/// in file order.
fn compare(conn: &Connection, series: &str, limit: RequestLimit, rows: &[Row]) -> Result<Vec<Mismatch>, String> {
    let mut by_bucket: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        by_bucket.entry(row.bucket).or_default().push(i);
    }
    let mut actual = vec![0u64; rows.len()];
    for (bucket, indexes) in by_bucket {
        let empty = json!({"series": series, "keys": [], "range": {"from": bucket, "to": bucket}});
        let room = limit
            .line_room()
            .checked_sub(conn.request_len("counter.batch_sum", &empty))
            .filter(|&r| r >= 32)
            .ok_or_else(|| format!("--max-request-bytes {} leaves no room for keys", limit.bytes))?;
        for part in split_to_fit(&indexes, |&i| rows[i].key, room) {
            let keys: Vec<u64> = part.iter().map(|&i| rows[i].key).collect();
            let fields = json!({"series": series, "keys": keys, "range": {"from": bucket, "to": bucket}});
            let response = conn.call("counter.batch_sum", fields).map_err(|e| format!("counter.batch_sum: {e}"))?;
            let values = response
                .as_array()
                .filter(|a| a.len() == part.len())
                .ok_or_else(|| format!("counter.batch_sum: expected {} results, got {response}", part.len()))?;
            for (&i, v) in part.iter().zip(values) {
                actual[i] = v
                    .get("value")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| format!("counter.batch_sum: result without an unsigned value: {v}"))?;
            }
        }
    }
    Ok(rows
        .iter()
        .zip(actual)
        .filter(|(row, actual)| row.value != *actual)
        .map(|(row, actual)| Mismatch { line: row.line, key: row.key, bucket: row.bucket, expected: row.value, actual })
        .collect())
}

/// Consecutive runs of `items` whose keys, as a JSON array body, fit in
/// `room` bytes and number at most [`BATCH`].
fn split_to_fit<T>(items: &[T], key: impl Fn(&T) -> u64, room: usize) -> Vec<&[T]> {
    let mut parts = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let size = key(item).checked_ilog10().unwrap_or(0) as usize + 1 + usize::from(i > start);
        if i > start && (i - start == BATCH || bytes + size > room) {
            parts.push(&items[start..i]);
            start = i;
            bytes = size - 1;
        } else {
            bytes += size;
        }
    }
    if start < items.len() {
        parts.push(&items[start..]);
    }
    parts
}

fn describe(m: &Mismatch) -> String {
    format!(
        "mismatch line {}: key {} bucket {}: expected {}, karma {} ({})",
        m.line,
        m.key,
        m.bucket,
        m.expected,
        m.actual,
        m.delta_text()
    )
}

/// `reconciliation.report` takes signed 64-bit integers.
fn report(conn: &Connection, totals: &Totals) -> Result<(), String> {
    let wire =
        |name: &str, n: u64| i64::try_from(n).map_err(|_| format!("cannot report: {name} {n} is above {}", i64::MAX));
    let fields = json!({
        "checked_points": wire("checked_points", totals.checked_points)?,
        "mismatch_count": wire("mismatch_count", totals.mismatch_count)?,
        "absolute_drift": wire("absolute_drift", totals.absolute_drift)?,
        "max_abs_delta": wire("max_abs_delta", totals.max_abs_delta)?,
    });
    conn.call("reconciliation.report", fields).map(|_| ()).map_err(|e| format!("reconciliation.report: {e}"))
}

/// The `--json` output, fields in this order.
#[derive(Serialize)]
struct Summary<'a> {
    series: &'a str,
    checked_points: u64,
    mismatch_count: u64,
    absolute_drift: u64,
    max_abs_delta: u64,
    reported: bool,
    mismatches_listed: usize,
    mismatches: Vec<MismatchJson>,
}

#[derive(Serialize)]
struct MismatchJson {
    line: u64,
    key: u64,
    bucket: u64,
    expected: u64,
    actual: u64,
    /// Signed, as text: it may lie outside i64.
    delta: String,
}

fn summary_json(series: &str, totals: &Totals, listed: &[Mismatch], reported: bool) -> String {
    let summary = Summary {
        series,
        checked_points: totals.checked_points,
        mismatch_count: totals.mismatch_count,
        absolute_drift: totals.absolute_drift,
        max_abs_delta: totals.max_abs_delta,
        reported,
        mismatches_listed: listed.len(),
        mismatches: listed
            .iter()
            .map(|m| MismatchJson {
                line: m.line,
                key: m.key,
                bucket: m.bucket,
                expected: m.expected,
                actual: m.actual,
                delta: m.delta_text(),
            })
            .collect(),
    };
    serde_json::to_string(&summary).unwrap_or_else(|e| format!("{{\"error\":\"cannot encode the summary: {e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(expected: u64, actual: u64) -> Mismatch {
        Mismatch { line: 2, key: 1, bucket: 20260101, expected, actual }
    }

    #[test]
    fn deltas_are_exact_at_the_u64_edges() {
        assert_eq!(m(0, u64::MAX).abs_delta(), u64::MAX);
        assert_eq!(m(u64::MAX, 0).delta_text(), format!("-{}", u64::MAX));
        assert_eq!(m(5, 7).delta_text(), "+2");
    }

    #[test]
    fn key_lists_are_split_to_fit() {
        let keys = [1u64, 22, 333, 4444, 5];
        // "1,22,333" is 8 bytes; adding ",4444" would make 13.
        let parts = split_to_fit(&keys, |&k| k, 10);
        assert_eq!(parts, [&keys[..3], &keys[3..]]);
        assert_eq!(split_to_fit(&keys, |&k| k, 1000), [&keys[..]]);
        assert_eq!(split_to_fit(&keys, |&k| k, 1).len(), 5);
        assert!(split_to_fit(&[] as &[u64], |&k| k, 10).is_empty());
    }

    #[test]
    fn drift_overflow_fails_instead_of_wrapping() {
        let mut t = Totals::default();
        t.add(&m(0, u64::MAX)).unwrap();
        assert_eq!((t.mismatch_count, t.absolute_drift, t.max_abs_delta), (1, u64::MAX, u64::MAX));
        assert!(t.add(&m(0, 1)).unwrap_err().contains("exceeds"));
    }
}
