//! Level 1 of the API: typed methods for the bindings' hot path. Each builds
//! a borrowed [`Request`] (no JSON, no allocation for names), runs it through
//! the same validation and execution as the protocol, and waits until a
//! write is durable before returning.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::protocol::{Command, Item, MultiSumItem, Op, Range, Request};

use super::{Engine, KeysPage, Response, Summary, TreeInfo};

fn unexpected(op: Op) -> Error {
    Error::internal(format!("unexpected response shape for {}", op.name()))
}

impl Engine {
    fn run(&self, op: Op, command: Command<'_>) -> Result<Response> {
        let req = Request::new(op, command);
        let outcome = self.execute(&req)?;
        if let Some(lsn) = outcome.lsn {
            self.wait_durable(lsn)?;
        }
        Ok(outcome.response)
    }

    fn run_u64(&self, op: Op, command: Command<'_>) -> Result<u64> {
        match self.run(op, command)? {
            Response::U64(n) => Ok(n),
            _ => Err(unexpected(op)),
        }
    }

    fn run_ok(&self, op: Op, command: Command<'_>) -> Result<()> {
        self.run(op, command).map(|_| ())
    }

    /// Adds `value` to one day bucket (today, UTC, when `bucket` is `None`).
    pub fn increment(&self, series: &str, key: u64, bucket: Option<u64>, value: u64) -> Result<u64> {
        let command = Command::Write { series: Cow::Borrowed(series), key, bucket, value: Some(value) };
        let lsn = self.increment_direct(&command)?;
        if let Some(lsn) = lsn {
            self.wait_durable(lsn)?;
        }
        Ok(value)
    }

    /// Subtracts up to `value` from one bucket (never below zero).
    pub fn decrement(&self, series: &str, key: u64, bucket: Option<u64>, value: u64) -> Result<u64> {
        self.run_u64(Op::Decrement, Command::Write { series: Cow::Borrowed(series), key, bucket, value: Some(value) })
    }

    /// The counter total, or the sum of buckets in `range`.
    pub fn sum(&self, series: &str, key: u64, range: Option<Range>) -> Result<u64> {
        self.run_u64(Op::Sum, Command::Key { series: Cow::Borrowed(series), key, range })
    }

    /// One value per key, in order.
    pub fn batch_sum(&self, series: &str, keys: &[u64], range: Option<Range>) -> Result<Vec<u64>> {
        match self.run(Op::BatchSum, Command::Keys { series: Cow::Borrowed(series), keys: keys.to_vec(), range })? {
            Response::KeyValues(kv) => Ok(kv.into_iter().map(|(_, v)| v).collect()),
            _ => Err(unexpected(Op::BatchSum)),
        }
    }

    /// One value per `(series, key)`, in order.
    pub fn multi_sum(&self, items: &[(&str, u64)], range: Option<Range>) -> Result<Vec<u64>> {
        let items = items.iter().map(|(s, k)| MultiSumItem { series: Cow::Borrowed(*s), key: *k }).collect();
        match self.run(Op::MultiSum, Command::MultiSum { items, range })? {
            Response::MultiSum(v) => Ok(v.into_iter().map(|(_, _, v)| v).collect()),
            _ => Err(unexpected(Op::MultiSum)),
        }
    }

    /// The `(bucket, value)` points of one counter inside `range`.
    pub fn points(&self, series: &str, key: u64, range: Range) -> Result<Vec<(u64, u64)>> {
        match self.run(Op::CounterSeries, Command::Key { series: Cow::Borrowed(series), key, range: Some(range) })? {
            Response::Buckets(b) => Ok(b),
            _ => Err(unexpected(Op::CounterSeries)),
        }
    }

    /// Adds many `[key, bucket, value]` items atomically; returns their total.
    pub fn batch_add(&self, series: &str, items: &[Item]) -> Result<u64> {
        match self.run(Op::BatchAdd, Command::Items { series: Cow::Borrowed(series), items: items.to_vec() })? {
            Response::Added { total, .. } => Ok(total),
            _ => Err(unexpected(Op::BatchAdd)),
        }
    }

    /// Sets exact bucket values (0 deletes); returns the item count.
    pub fn batch_set(&self, series: &str, items: &[Item]) -> Result<usize> {
        match self.run(Op::BatchSet, Command::Items { series: Cow::Borrowed(series), items: items.to_vec() })? {
            Response::Applied { applied } => Ok(applied),
            _ => Err(unexpected(Op::BatchSet)),
        }
    }

    /// Clears one counter (or, with `key: None`, every counter of the series).
    pub fn reset(&self, series: &str, key: Option<u64>) -> Result<()> {
        let series = Cow::Borrowed(series);
        match key {
            Some(key) => self.run_ok(Op::CounterReset, Command::Key { series, key, range: None }),
            None => self.run_ok(Op::TreeReset, Command::Series { series }),
        }
    }

    /// `(reset, missing)`.
    pub fn batch_reset(&self, series: &str, keys: &[u64]) -> Result<(usize, usize)> {
        match self
            .run(Op::BatchReset, Command::Keys { series: Cow::Borrowed(series), keys: keys.to_vec(), range: None })?
        {
            Response::Reset { reset, missing } => Ok((reset, missing)),
            _ => Err(unexpected(Op::BatchReset)),
        }
    }

    /// Deletes the buckets in `range` of one counter (or of every counter).
    pub fn delete_range(&self, series: &str, key: Option<u64>, range: Range) -> Result<()> {
        let series = Cow::Borrowed(series);
        match key {
            Some(key) => self.run_ok(Op::CounterDeleteRange, Command::Key { series, key, range: Some(range) }),
            None => self.run_ok(Op::TreeDeleteRange, Command::SeriesRange { series, range: Some(range) }),
        }
    }

    /// `(deleted, missing)`.
    pub fn batch_delete_range(&self, series: &str, keys: &[u64], range: Range) -> Result<(usize, usize)> {
        let command = Command::Keys { series: Cow::Borrowed(series), keys: keys.to_vec(), range: Some(range) };
        match self.run(Op::BatchDeleteRange, command)? {
            Response::Deleted { deleted, missing } => Ok((deleted, missing)),
            _ => Err(unexpected(Op::BatchDeleteRange)),
        }
    }

    pub fn create_series(&self, series: &str) -> Result<()> {
        self.run_ok(Op::TreeCreate, Command::Series { series: Cow::Borrowed(series) })
    }

    pub fn drop_series(&self, series: &str) -> Result<()> {
        self.run_ok(Op::TreeDrop, Command::Series { series: Cow::Borrowed(series) })
    }

    pub fn list_series(&self) -> Vec<String> {
        self.inner.store.names()
    }

    /// A copy of every counter of `series` (keys and buckets in insertion
    /// order), as a snapshot would hold it: for exports and for tests that
    /// compare whole states across a restart.
    pub fn export_series(&self, series: &str) -> Result<crate::snapshot::SeriesImage> {
        self.read_series(series, |d| Ok(super::admin::image_of(d)))
    }

    pub fn info(&self, series: &str) -> Result<TreeInfo> {
        match self.run(Op::TreeInfo, Command::Series { series: Cow::Borrowed(series) })? {
            Response::TreeInfo(t) => Ok(t),
            _ => Err(unexpected(Op::TreeInfo)),
        }
    }

    /// One page of keys above `cursor`, ascending (`limit` defaults to 100).
    pub fn keys(&self, series: &str, cursor: Option<u64>, limit: Option<usize>) -> Result<KeysPage> {
        let limit = limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        match self.run(Op::TreeKeys, Command::TreeKeys { series: Cow::Borrowed(series), cursor, limit })? {
            Response::Keys(p) => Ok(p),
            _ => Err(unexpected(Op::TreeKeys)),
        }
    }

    /// The largest counters, `(key, value)` (`limit` defaults to 50).
    pub fn top(&self, series: &str, limit: Option<usize>, range: Option<Range>) -> Result<Vec<(u64, u64)>> {
        let limit = limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        match self.run(Op::TreeTop, Command::TreeTop { series: Cow::Borrowed(series), limit, range })? {
            Response::Top { items, .. } => Ok(items),
            _ => Err(unexpected(Op::TreeTop)),
        }
    }

    pub fn summary(&self, series: &str, range: Option<Range>) -> Result<Summary> {
        match self.run(Op::TreeSummary, Command::SeriesRange { series: Cow::Borrowed(series), range })? {
            Response::Summary(s) => Ok(s),
            _ => Err(unexpected(Op::TreeSummary)),
        }
    }

    /// Retention: drops buckets `< before`, then compacts the series.
    pub fn delete_before(&self, series: &str, before: u64) -> Result<()> {
        self.run_ok(Op::DeleteBefore, Command::DeleteBefore { series: Cow::Borrowed(series), before })
    }

    /// Removes empty counters of one series (or of all, with `None`).
    pub fn compact(&self, series: Option<&str>) -> Result<()> {
        match series {
            Some(s) => self.run_ok(Op::SeriesCompact, Command::Series { series: Cow::Borrowed(s) }),
            None => self.run_ok(Op::SystemCompact, Command::NoFields),
        }
    }
}
