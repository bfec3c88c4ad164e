//! The counter mutations. Each single-series write takes that series' lock,
//! checks everything that can fail, gets its WAL LSN, then applies: per series
//! the WAL order is the apply order, and a failed write changes nothing and
//! logs nothing (fixes B1, B4, B5).

use std::cell::Cell;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::metrics;
use crate::protocol::wal_entry::write_entry;
use crate::protocol::{Command, Item, Op, Request};
use crate::store::{Counter, Series, SeriesData};

use super::{Ctx, Engine, Outcome, Response};

thread_local! {
    /// See [`Engine::with_entry`].
    static ENTRY_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The largest entry buffer a thread keeps for the next request: a big batch
/// write's entry is not worth holding on to.
const MAX_KEPT_ENTRY_BUFFER: usize = 4096;

/// The WAL entry of `req`: its idempotency fields only for the ops that log
/// them.
fn write_request_entry(out: &mut Vec<u8>, req: &Request<'_>, bucket: Option<u64>) {
    let idem = if req.op.idempotency_eligible() || req.op.is_logged() { req.idempotency.as_ref() } else { None };
    write_entry(out, req.op, &req.command, bucket, idem);
}

fn overflow(key: u64, bucket: u64) -> Error {
    Error::validation(format!("Counter overflow key={key} bucket={bucket}"))
}

fn item_overflow(key: u64, bucket: u64) -> Error {
    Error::validation(format!("Counter overflow in batch item key={key} bucket={bucket}"))
}

impl Engine {
    /// The WAL entry of `req`, when this execution logs.
    pub(crate) fn entry_for(&self, req: &Request<'_>, ctx: Ctx<'_>, bucket: Option<u64>) -> Option<Vec<u8>> {
        if !self.logs_entry(ctx) {
            return None;
        }
        let mut out = Vec::with_capacity(128);
        write_request_entry(&mut out, req, bucket);
        Some(out)
    }

    /// Runs `f` with the WAL entry of `req` (when this execution logs),
    /// encoded into this thread's reused buffer: [`Wal::append`] copies an
    /// entry, so the writes of the request path need not allocate one each.
    ///
    /// [`Wal::append`]: crate::wal::Wal::append
    fn with_entry<R>(
        &self,
        req: &Request<'_>,
        ctx: Ctx<'_>,
        bucket: Option<u64>,
        f: impl FnOnce(Option<&[u8]>) -> R,
    ) -> R {
        if !self.logs_entry(ctx) {
            return f(None);
        }
        ENTRY_BUFFER.with(|buffer| {
            // Taken out of the cell, so a nested use (none today) would
            // simply find it empty and allocate its own.
            let mut out = buffer.take();
            out.clear();
            write_request_entry(&mut out, req, bucket);
            let result = f(Some(&out));
            if out.capacity() <= MAX_KEPT_ENTRY_BUFFER {
                buffer.set(out);
            }
            result
        })
    }

    fn logs_entry(&self, ctx: Ctx<'_>) -> bool {
        ctx.logs() && self.wal().is_some()
    }

    /// Appends a prepared entry; call while holding the lock that orders it.
    pub(crate) fn append(&self, entry: Option<&[u8]>) -> Result<Option<u64>> {
        match (entry, self.wal()) {
            (Some(entry), Some(wal)) => wal.append(entry).map(Some),
            _ => Ok(None),
        }
    }

    /// Runs `f` under the write lock of `name` (creating the series when
    /// `create`); `Ok(None)` when it does not exist.
    pub(crate) fn with_series<R>(
        &self,
        name: &str,
        create: bool,
        mut f: impl FnMut(&mut SeriesData) -> Result<R>,
    ) -> Result<Option<R>> {
        let _gate = self.inner.gate.read();
        // Common case first: the series exists. Lock it through the map
        // guard instead of cloning its Arc (this is the hot path).
        let existing = self.inner.store.with(name, |s| {
            let mut data = s.data.write();
            if data.dropped {
                None
            } else {
                Some(f(&mut data))
            }
        });
        if let Some(Some(result)) = existing {
            return result.map(Some);
        }
        self.with_series_looked_up(name, create, f).map(|(result, _)| result).transpose()
    }

    /// What [`Engine::with_series`] and [`Engine::with_series_in`] do when
    /// the quick way fails: looks `name` up in the series map (creating it
    /// when `create`) until the series found was not dropped meanwhile, runs
    /// `f` under its lock and hands back the series too; `None` when it
    /// does not exist. The caller holds the gate.
    fn with_series_looked_up<R>(
        &self,
        name: &str,
        create: bool,
        mut f: impl FnMut(&mut SeriesData) -> Result<R>,
    ) -> Option<(Result<R>, Arc<Series>)> {
        loop {
            let series = if create { Some(self.inner.store.get_or_create(name)) } else { self.inner.store.get(name) }?;
            let mut data = series.data.write();
            if data.dropped {
                continue;
            }
            let result = f(&mut data);
            drop(data);
            return Some((result, series));
        }
    }

    /// [`Engine::with_series`] for a line of a batch: the series the batch
    /// wrote last is locked directly when it is the one named and was not
    /// dropped since (no series map lock, no hashing of the name), and a
    /// series looked up in the map is remembered for the batch's next line.
    pub(crate) fn with_series_in<R>(
        &self,
        ctx: Ctx<'_>,
        name: &str,
        create: bool,
        mut f: impl FnMut(&mut SeriesData) -> Result<R>,
    ) -> Result<Option<R>> {
        let Some(batch) = ctx.batch else { return self.with_series(name, create, f) };
        let _gate = self.inner.gate.read();
        if let Some(series) = batch.series.as_deref().filter(|s| batch.wrote(name) || s.name() == name) {
            let mut data = series.data.write();
            if !data.dropped {
                return f(&mut data).map(Some);
            }
        }
        let Some((result, series)) = self.with_series_looked_up(name, create, f) else { return Ok(None) };
        batch.looked_up.set(Some(series));
        result.map(Some)
    }

    /// The typed API's `increment`: the same checks as the protocol path
    /// without building a [`Request`] (the bindings' hottest call).
    pub(crate) fn increment_direct(&self, command: &Command<'_>) -> Result<Option<u64>> {
        let Command::Write { series, key, bucket, value } = command else {
            return Err(Error::internal("increment_direct needs a write"));
        };
        crate::protocol::validate::validate_write(series, *value)?;
        self.check_role(Op::Increment, Ctx::CLIENT)?;
        self.recover_wal(true)?;
        let (key, value) = (*key, value.unwrap_or(1));
        let bucket = bucket.unwrap_or_else(|| self.today());
        let entry = match self.wal() {
            Some(_) => {
                let req = Request::new(Op::Increment, command.clone());
                self.entry_for(&req, Ctx::CLIENT, Some(bucket))
            }
            None => None,
        };
        self.with_series(series, true, |data| self.apply_increment(data, key, bucket, value, entry.as_deref()))?
            .ok_or_else(|| Error::tree_not_found(series))
    }

    /// Adds `value` to counter `key`'s `bucket`, logging `entry` first when
    /// there is one: where an increment is checked and applied, for the
    /// protocol path and the typed API alike. An overflow changes nothing
    /// and logs nothing.
    fn apply_increment(
        &self,
        data: &mut SeriesData,
        key: u64,
        bucket: u64,
        value: u64,
        entry: Option<&[u8]>,
    ) -> Result<Option<u64>> {
        let Some(entry) = entry else {
            // Nothing to log: `add` itself refuses an overflow unchanged.
            let counter = data.counters.entry(key).or_default();
            return counter.add(bucket, value).map(|()| None).map_err(|_| overflow(key, bucket));
        };
        // One hash lookup: the index found for the check is still the key's
        // after the append (the series lock is held throughout).
        let existing = data.counters.get_index_of(&key);
        if let Some(i) = existing {
            data.counters[i].check_add(bucket, value).map_err(|_| overflow(key, bucket))?;
        }
        let lsn = self.append(Some(entry))?;
        let counter = match existing {
            Some(i) => &mut data.counters[i],
            None => data.counters.entry(key).or_default(),
        };
        counter.add(bucket, value).map_err(|_| overflow(key, bucket))?;
        Ok(lsn)
    }

    pub(crate) fn write(&self, req: &Request<'_>, ctx: Ctx<'_>, bucket: Option<u64>) -> Result<Outcome> {
        let op = req.op;
        match (op, &req.command) {
            (Op::SystemCompact, _) => {
                let _admin = self.inner.admin.lock();
                return self.system_compact(req, ctx);
            }
            (Op::TreeDrop, Command::Series { series }) => {
                let _admin = self.inner.admin.lock();
                return self.drop_series_op(req, series, ctx);
            }
            _ => {}
        }
        let series = req.series().unwrap_or_default();
        let bucket = match &req.command {
            Command::Write { bucket: sent, .. } => Some(bucket.or(*sent).unwrap_or_else(|| self.today_in(ctx))),
            _ => bucket,
        };
        if !ctx.applies_to(series) {
            return Ok(Outcome { response: predicted(req), lsn: None, idempotent: None });
        }
        self.with_entry(req, ctx, bucket, |entry| self.write_logged(req, ctx, series, bucket, entry))
    }

    /// [`Engine::write`] once the bucket is resolved and the entry (if this
    /// execution logs) is encoded.
    fn write_logged(
        &self,
        req: &Request<'_>,
        ctx: Ctx<'_>,
        series: &str,
        bucket: Option<u64>,
        entry: Option<&[u8]>,
    ) -> Result<Outcome> {
        let op = req.op;
        let m = &self.inner.metrics;
        let missing = || Error::tree_not_found(series);
        let (response, lsn) = match (op, &req.command) {
            (Op::TreeCreate, _) => self.with_series(series, true, |_| Ok((Response::Ok, self.append(entry)?)))?,
            (Op::Increment, Command::Write { key, value, .. }) => {
                let (key, bucket, value) = (*key, bucket.unwrap_or(0), value.unwrap_or(1));
                self.with_series_in(ctx, series, true, |data| {
                    Ok((Response::U64(value), self.apply_increment(data, key, bucket, value, entry)?))
                })?
            }
            (Op::Decrement, Command::Write { key, value, .. }) => {
                let (key, bucket, value) = (*key, bucket.unwrap_or(0), value.unwrap_or(1));
                self.with_series_in(ctx, series, true, |data| {
                    let lsn = self.append(entry)?;
                    data.counters.entry(key).or_default().subtract(bucket, value);
                    Ok((Response::U64(value), lsn))
                })?
            }
            (Op::BatchAdd, Command::Items { items, .. }) => {
                if !self.inner.store.contains(series) {
                    // A rejected batch must not leave its series behind.
                    check_batch_add(&SeriesData::default(), items)?;
                }
                self.with_series(series, true, |data| {
                    let total = check_batch_add(data, items)?;
                    let lsn = self.append(entry)?;
                    apply_batch_add(data, items);
                    Ok((Response::Added { applied: items.len(), total }, lsn))
                })?
            }
            (Op::BatchSet, Command::Items { items, .. }) => {
                if items.is_empty() {
                    // Nothing to apply, and Karma 1.0 logs nothing. With an
                    // idempotency key the record this answer leaves must still
                    // survive a restart, and the WAL entry is what carries it.
                    let lsn = if req.idempotency.is_some() { self.append(entry)? } else { None };
                    self.count_batch(ctx, 0);
                    return Ok(Outcome { response: Response::Applied { applied: 0 }, lsn, idempotent: None });
                }
                if !self.inner.store.contains(series) {
                    check_batch_set(&SeriesData::default(), items)?;
                }
                self.with_series(series, true, |data| {
                    check_batch_set(data, items)?;
                    let lsn = self.append(entry)?;
                    apply_batch_set(data, items);
                    Ok((Response::Applied { applied: items.len() }, lsn))
                })?
            }
            (Op::CounterReset, Command::Key { key, .. }) => self.with_series(series, true, |data| {
                let lsn = self.append(entry)?;
                if let Some(c) = data.counters.get_mut(key) {
                    c.clear();
                }
                Ok((Response::Ok, lsn))
            })?,
            (Op::TreeReset, _) => self.with_series(series, true, |data| {
                let lsn = self.append(entry)?;
                data.counters.values_mut().for_each(Counter::clear);
                Ok((Response::Ok, lsn))
            })?,
            (Op::CounterDeleteRange, Command::Key { key, range: Some(r), .. }) => {
                self.with_series(series, true, |data| {
                    let lsn = self.append(entry)?;
                    if let Some(c) = data.counters.get_mut(key) {
                        c.remove_range(r.from, r.to);
                    }
                    Ok((Response::True, lsn))
                })?
            }
            (Op::TreeDeleteRange, Command::SeriesRange { range: Some(r), .. }) => {
                self.with_series(series, true, |data| {
                    let lsn = self.append(entry)?;
                    for c in data.counters.values_mut() {
                        c.remove_range(r.from, r.to);
                    }
                    Ok((Response::True, lsn))
                })?
            }
            (Op::BatchReset, Command::Keys { keys, .. }) => self.with_series(series, false, |data| {
                let lsn = self.append(entry)?;
                let (mut reset, mut missing) = (0, 0);
                for key in keys {
                    match data.counters.get_mut(key) {
                        Some(c) if !c.is_empty() => {
                            c.clear();
                            reset += 1;
                        }
                        _ => missing += 1,
                    }
                }
                Ok((Response::Reset { reset, missing }, lsn))
            })?,
            (Op::BatchDeleteRange, Command::Keys { keys, range: Some(r), .. }) => {
                self.with_series(series, false, |data| {
                    let lsn = self.append(entry)?;
                    let (mut deleted, mut missing) = (0, 0);
                    for key in keys {
                        match data.counters.get_mut(key) {
                            Some(c) if !c.is_empty() => {
                                if c.remove_range(r.from, r.to) > 0 {
                                    deleted += 1;
                                }
                            }
                            _ => missing += 1,
                        }
                    }
                    Ok((Response::Deleted { deleted, missing }, lsn))
                })?
            }
            (Op::DeleteBefore, Command::DeleteBefore { before, .. }) => self.with_series(series, false, |data| {
                let lsn = self.append(entry)?;
                for c in data.counters.values_mut() {
                    c.remove_before(*before);
                }
                data.compact();
                Ok((Response::Ok, lsn))
            })?,
            (Op::SeriesCompact, _) => self.with_series(series, false, |data| {
                let lsn = self.append(entry)?;
                data.compact();
                Ok((Response::Ok, lsn))
            })?,
            _ => return Err(Error::internal(format!("{} is not a write", op.name()))),
        }
        .ok_or_else(missing)?;
        match (op, &req.command) {
            (Op::BatchAdd | Op::BatchSet, Command::Items { items, .. }) => self.count_batch(ctx, items.len()),
            (Op::BatchReset | Op::BatchDeleteRange, Command::Keys { keys, .. }) => self.count_batch(ctx, keys.len()),
            _ => {}
        }
        match op {
            Op::DeleteBefore => metrics::bump(&m.retention),
            Op::SeriesCompact => metrics::bump(&m.compactions),
            _ => {}
        }
        Ok(Outcome { response, lsn, idempotent: None })
    }

    /// Batch-write metrics count the batches a client had applied, not
    /// rejected ones and not the WAL entries replayed at startup.
    pub(crate) fn count_batch(&self, ctx: Ctx<'_>, items: usize) {
        if ctx.logs() {
            metrics::bump(&self.inner.metrics.batch_writes);
            metrics::add(&self.inner.metrics.batch_write_items, items as u64);
        }
    }

    fn system_compact(&self, req: &Request<'_>, ctx: Ctx<'_>) -> Result<Outcome> {
        let all = self.inner.store.all();
        let entry = self.entry_for(req, ctx, None);
        // Every series lock is held while the entry is appended, so no write
        // to any series can slip between the log position and the compaction.
        let _gate = self.inner.gate.read();
        let mut guards: Vec<_> = all.iter().map(|s| s.data.write()).collect();
        let lsn = self.append(entry.as_deref())?;
        for (series, data) in all.iter().zip(guards.iter_mut()) {
            if ctx.applies_to(series.name()) {
                data.compact();
            }
        }
        drop(guards);
        metrics::bump(&self.inner.metrics.compactions);
        Ok(Outcome { response: Response::Ok, lsn, idempotent: None })
    }

    fn drop_series_op(&self, req: &Request<'_>, series: &str, ctx: Ctx<'_>) -> Result<Outcome> {
        let replayed = Outcome { response: Response::Ok, lsn: None, idempotent: None };
        // A replayed drop that the series' snapshot already follows must not
        // touch the newer data that snapshot restored.
        if !ctx.applies_to(series) {
            return Ok(replayed);
        }
        let Some(live) = self.inner.store.get(series) else {
            if ctx.replay.is_some() {
                return Ok(replayed);
            }
            return Err(Error::tree_not_found(series));
        };
        let entry = self.entry_for(req, ctx, None);
        let lsn = {
            let _gate = self.inner.gate.read();
            let _data = live.data.write();
            let lsn = self.append(entry.as_deref())?;
            lsn
        };
        self.inner.store.remove(series);
        // A drop must outlive the next snapshot cycle (fix of B15): once the
        // drop is durable, the series' snapshot files go too. Replay never
        // deletes files: the WAL entry stays until `snapshot.create_all`,
        // which removes the snapshots of every series that is gone.
        if let (Some(disk), true) = (&self.inner.disk, ctx.logs()) {
            if let Some(lsn) = lsn {
                self.wait_durable(lsn)?;
            }
            disk.snapshots.remove_series(series)?;
        }
        Ok(Outcome { response: Response::Ok, lsn, idempotent: None })
    }
}

/// The answer a write gives, without touching data (replay of an entry its
/// series' snapshot already contains).
fn predicted(req: &Request<'_>) -> Response {
    match &req.command {
        Command::Write { value, .. } => Response::U64(value.unwrap_or(1)),
        Command::Items { items, .. } if req.op == Op::BatchAdd => {
            Response::Added { applied: items.len(), total: items.iter().fold(0u64, |a, i| a.saturating_add(i[2])) }
        }
        Command::Items { items, .. } => Response::Applied { applied: items.len() },
        Command::Keys { keys, .. } if req.op == Op::BatchReset => Response::Reset { reset: 0, missing: keys.len() },
        Command::Keys { keys, .. } => Response::Deleted { deleted: 0, missing: keys.len() },
        Command::Key { .. } | Command::SeriesRange { .. }
            if matches!(req.op, Op::CounterDeleteRange | Op::TreeDeleteRange) =>
        {
            Response::True
        }
        _ => Response::Ok,
    }
}

/// `series.batch_add` pre-check (§13, all-or-nothing): summed deltas per
/// (key, bucket), bucket and counter totals within u64, and the response's
/// batch total within u64. Returns that total.
pub(crate) fn check_batch_add(data: &SeriesData, items: &[Item]) -> Result<u64> {
    let mut total = 0u64;
    let hasher = crate::store::Hasher::default;
    let mut per_pair: indexmap::IndexMap<(u64, u64), u64, crate::store::Hasher> =
        indexmap::IndexMap::with_capacity_and_hasher(items.len(), hasher());
    let mut per_key: indexmap::IndexMap<u64, u64, crate::store::Hasher> =
        indexmap::IndexMap::with_capacity_and_hasher(items.len(), hasher());
    for &[key, bucket, value] in items {
        total = total.checked_add(value).ok_or_else(|| Error::validation("Batch total overflow"))?;
        let pair = per_pair.entry((key, bucket)).or_insert(0);
        *pair = pair.checked_add(value).ok_or_else(|| Error::validation("Batch total overflow"))?;
        let k = per_key.entry(key).or_insert(0);
        *k = k.checked_add(value).ok_or_else(|| item_overflow(key, bucket))?;
    }
    for (&(key, bucket), &delta) in &per_pair {
        let current = data.counters.get(&key).map_or(0, |c| c.get(bucket));
        current.checked_add(delta).ok_or_else(|| item_overflow(key, bucket))?;
    }
    for (&key, &delta) in &per_key {
        let current = data.counters.get(&key).map_or(0, Counter::total);
        if current.checked_add(delta).is_none() {
            let bucket = items.iter().find(|i| i[0] == key).map_or(0, |i| i[1]);
            return Err(item_overflow(key, bucket));
        }
    }
    Ok(total)
}

pub(crate) fn apply_batch_add(data: &mut SeriesData, items: &[Item]) {
    for &[key, bucket, value] in items {
        // Cannot fail: check_batch_add proved every sum fits.
        let _ = data.counters.entry(key).or_default().add(bucket, value);
    }
}

/// `series.batch_set` pre-check: the series-wide projected total stays within
/// u64 at every distinct (key, bucket) in first-appearance order (Karma 1.0's
/// rule, computed in u128 so an already-large series cannot crash it).
pub(crate) fn check_batch_set(data: &SeriesData, items: &[Item]) -> Result<()> {
    let mut last: indexmap::IndexMap<(u64, u64), u64, crate::store::Hasher> =
        indexmap::IndexMap::with_capacity_and_hasher(items.len(), crate::store::Hasher::default());
    for &[key, bucket, value] in items {
        last.insert((key, bucket), value);
    }
    let mut projected: u128 = data.counters.values().map(|c| u128::from(c.total())).sum();
    for (&(key, bucket), &value) in &last {
        let current = data.counters.get(&key).map_or(0, |c| c.get(bucket));
        projected = projected - u128::from(current) + u128::from(value);
        if projected > u128::from(u64::MAX) {
            return Err(item_overflow(key, bucket));
        }
    }
    Ok(())
}

pub(crate) fn apply_batch_set(data: &mut SeriesData, items: &[Item]) {
    for &[key, bucket, value] in items {
        data.counters.entry(key).or_default().set(bucket, value);
    }
}
