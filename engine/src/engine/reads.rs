//! The read ops. They take series read locks only, never a global lock.
//! Full-series scans honour the query deadline (spec/protocol.md §14).

use std::time::Instant;

use crate::error::{Error, ErrorCode, Result};
use crate::metrics;
use crate::protocol::validate::{tree_keys_limit, tree_top_limit};
use crate::protocol::{Command, Op, Range, Request};
use crate::store::{Counter, SeriesData};

use super::{Engine, KeysPage, Response, Summary, TreeInfo};

/// Checks the query budget every 256 counters.
struct Deadline {
    started: Instant,
    budget_ms: Option<u128>,
}

impl Deadline {
    fn tick(&self, visited: usize) -> Result<()> {
        if !visited.is_multiple_of(256) {
            return Ok(());
        }
        self.check()
    }

    fn check(&self) -> Result<()> {
        match self.budget_ms {
            Some(ms) if self.started.elapsed().as_millis() > ms => {
                Err(Error::new(ErrorCode::QueryTimeout, format!("Query exceeded {ms} ms")))
            }
            _ => Ok(()),
        }
    }
}

fn value_of(c: &Counter, range: Option<&Range>) -> u64 {
    match range {
        Some(r) => c.sum_range(r.from, r.to),
        None => c.total(),
    }
}

impl Engine {
    fn deadline(&self) -> Deadline {
        Deadline { started: Instant::now(), budget_ms: self.inner.options.query_timeout.map(|d| d.as_millis()) }
    }

    /// Runs `f` under the read lock of an existing series.
    pub(crate) fn read_series<R>(&self, name: &str, f: impl FnOnce(&SeriesData) -> Result<R>) -> Result<R> {
        match self.inner.store.with(name, |s| f(&s.data.read())) {
            Some(r) => r,
            None => Err(Error::tree_not_found(name)),
        }
    }

    pub(crate) fn read(&self, req: &Request<'_>) -> Result<Response> {
        let m = &self.inner.metrics;
        match (req.op, &req.command) {
            (Op::Sum, Command::Key { series, key, range }) => self.read_series(series, |d| {
                Ok(Response::U64(d.counters.get(key).map_or(0, |c| value_of(c, range.as_ref()))))
            }),
            (Op::CounterSeries, Command::Key { series, key, range: Some(r) }) => self.read_series(series, |d| {
                let buckets = d
                    .counters
                    .get(key)
                    .map_or_else(Vec::new, |c| c.iter().filter(|(b, _)| (r.from..=r.to).contains(b)).collect());
                Ok(Response::Buckets(buckets))
            }),
            (Op::BatchSum, Command::Keys { series, keys, range }) => {
                let r = self.read_series(series, |d| {
                    Ok(Response::KeyValues(
                        keys.iter()
                            .map(|k| (*k, d.counters.get(k).map_or(0, |c| value_of(c, range.as_ref()))))
                            .collect(),
                    ))
                })?;
                metrics::bump(&m.batch_reads);
                metrics::add(&m.batch_read_keys, keys.len() as u64);
                Ok(r)
            }
            (Op::MultiSum, Command::MultiSum { items, range }) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let v = self.read_series(&item.series, |d| {
                        Ok(d.counters.get(&item.key).map_or(0, |c| value_of(c, range.as_ref())))
                    })?;
                    out.push((item.series.to_string(), item.key, v));
                }
                metrics::bump(&m.batch_reads);
                metrics::add(&m.batch_read_keys, items.len() as u64);
                Ok(Response::MultiSum(out))
            }
            (Op::TreeInfo, Command::Series { series }) => {
                let deadline = self.deadline();
                self.read_series(series, |d| {
                    let (mut buckets, mut total) = (0usize, 0u64);
                    for (i, c) in d.counters.values().enumerate() {
                        deadline.tick(i)?;
                        buckets += c.bucket_count();
                        total = total.saturating_add(c.total());
                    }
                    Ok(Response::TreeInfo(TreeInfo {
                        tree: series.to_string(),
                        key_count: d.counters.len(),
                        bucket_count: buckets,
                        total,
                    }))
                })
            }
            (Op::TreeKeys, Command::TreeKeys { series, cursor, limit }) => {
                let limit = tree_keys_limit(*limit)?;
                let deadline = self.deadline();
                self.read_series(series, |d| {
                    let mut keys: Vec<(u64, u64)> = Vec::new();
                    for (i, (k, c)) in d.counters.iter().enumerate() {
                        deadline.tick(i)?;
                        if cursor.is_none_or(|cur| *k > cur) {
                            keys.push((*k, c.total()));
                        }
                    }
                    deadline.check()?;
                    // Only the page needs to be in order: select, then sort it.
                    let more = keys.len() > limit;
                    if more {
                        keys.select_nth_unstable_by_key(limit, |(k, _)| *k);
                        keys.truncate(limit);
                    }
                    keys.sort_unstable_by_key(|(k, _)| *k);
                    let next_cursor = if more { keys.last().map(|(k, _)| *k) } else { None };
                    Ok(Response::Keys(KeysPage { tree: series.to_string(), limit, cursor: *cursor, next_cursor, keys }))
                })
            }
            (Op::TreeTop, Command::TreeTop { series, limit, range }) => {
                let limit = tree_top_limit(*limit)?;
                let deadline = self.deadline();
                self.read_series(series, |d| {
                    let mut items: Vec<(u64, u64)> = Vec::new();
                    for (i, (k, c)) in d.counters.iter().enumerate() {
                        deadline.tick(i)?;
                        let v = value_of(c, range.as_ref());
                        if v > 0 {
                            items.push((*k, v));
                        }
                    }
                    deadline.check()?;
                    let order = |a: &(u64, u64), b: &(u64, u64)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
                    if items.len() > limit {
                        items.select_nth_unstable_by(limit, order);
                        items.truncate(limit);
                    }
                    items.sort_unstable_by(order);
                    Ok(Response::Top { tree: series.to_string(), limit, items })
                })
            }
            (Op::TreeSummary, Command::SeriesRange { series, range }) => {
                let deadline = self.deadline();
                self.read_series(series, |d| {
                    let (mut total, mut active, mut buckets) = (0u64, 0usize, 0usize);
                    for (i, c) in d.counters.values().enumerate() {
                        deadline.tick(i)?;
                        match range {
                            None => {
                                total = total.saturating_add(c.total());
                                active += 1;
                                buckets += c.bucket_count();
                            }
                            Some(r) => {
                                let v = c.sum_range(r.from, r.to);
                                if v > 0 {
                                    total = total.saturating_add(v);
                                    active += 1;
                                    buckets += c.count_range(r.from, r.to);
                                }
                            }
                        }
                    }
                    Ok(Response::Summary(Summary {
                        tree: series.to_string(),
                        range: range.map(|r| (r.from, r.to)),
                        total,
                        active_keys: active,
                        bucket_count: buckets,
                    }))
                })
            }
            (Op::TreeSeries, Command::SeriesRange { series, range: Some(r) }) => {
                let deadline = self.deadline();
                self.read_series(series, |d| {
                    let mut out = Vec::with_capacity(d.counters.len());
                    for (i, key) in d.keys_in_branch_order().into_iter().enumerate() {
                        deadline.tick(i)?;
                        let buckets = d
                            .counters
                            .get(&key)
                            .map_or_else(Vec::new, |c| c.iter().filter(|(b, _)| (r.from..=r.to).contains(b)).collect());
                        out.push((key, buckets));
                    }
                    Ok(Response::TreeSeries(out))
                })
            }
            _ => Err(Error::internal(format!("{} is not a read", req.op.name()))),
        }
    }
}
