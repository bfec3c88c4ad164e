//! `ingest.*` (spec/protocol.md §11). Runs under the admin lock; stream state
//! checks come before the role check, as in Karma 1.0.

use std::borrow::Cow;
use std::time::Instant;

use crate::error::{Error, ErrorCode, Result};
use crate::ingest::{Ingest, Mode, Stream};
use crate::json::{write_str, write_u64};
use crate::metrics::{self, Limit};
use crate::options::Role;
use crate::protocol::fingerprint::fingerprint;
use crate::protocol::validate::MAX_ITEMS;
use crate::protocol::wal_entry::write_entry;
use crate::protocol::{Command, Op, Request};
use crate::store::SeriesData;

use super::data::{apply_batch_add, apply_batch_set, check_batch_add, check_batch_set};
use super::{Ctx, Engine, Outcome, Response};

fn stream_not_found(id: &str) -> Error {
    Error::not_found(format!("Ingest stream \"{id}\" not found"))
}

fn conflict(msg: &str) -> Error {
    Error::new(ErrorCode::IdempotencyConflict, msg)
}

fn limit_exceeded(msg: String) -> Error {
    Error::new(ErrorCode::LimitExceeded, msg)
}

fn status_json(s: &Stream, status: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"stream_id\":");
    write_str(&mut out, &s.stream_id);
    out.extend_from_slice(b",\"mode\":");
    write_str(&mut out, s.mode.as_str());
    out.extend_from_slice(b",\"series\":");
    match &s.series {
        Some(name) => write_str(&mut out, name),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"granularity\":");
    match &s.granularity {
        Some(g) => write_str(&mut out, g),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"status\":");
    write_str(&mut out, status);
    out.extend_from_slice(b",\"last_chunk_seq\":");
    write_u64(&mut out, s.last_chunk_seq);
    out.push(b'}');
    out
}

fn short_status(id: &str, status: &str, last: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"{\"stream_id\":");
    write_str(&mut out, id);
    out.extend_from_slice(b",\"status\":");
    write_str(&mut out, status);
    out.extend_from_slice(b",\"last_chunk_seq\":");
    write_u64(&mut out, last);
    out.push(b'}');
    out
}

fn chunk_json(id: &str, seq: u64, skipped: Option<bool>, applied: usize, total: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"stream_id\":");
    write_str(&mut out, id);
    out.extend_from_slice(b",\"chunk_seq\":");
    write_u64(&mut out, seq);
    match skipped {
        Some(committed) => {
            out.extend_from_slice(b",\"skipped\":true,\"committed\":");
            out.extend_from_slice(if committed { b"true" } else { b"false" });
        }
        None => out.extend_from_slice(b",\"skipped\":false"),
    }
    out.extend_from_slice(b",\"applied\":");
    write_u64(&mut out, applied as u64);
    out.extend_from_slice(b",\"total\":");
    write_u64(&mut out, total);
    out.push(b'}');
    out
}

impl Engine {
    pub(crate) fn ingest(&self, req: &Request<'_>, ctx: Ctx<'_>) -> Result<Outcome> {
        let started = Instant::now();
        if !ctx.internal {
            // Replay and replication only repeat what the master decided.
            self.expire_idle_streams_locked(&mut self.inner.ingest.lock());
        }
        let result = match (&req.op, &req.command) {
            (Op::IngestBegin, Command::IngestBegin { stream_id, mode, granularity }) => {
                self.ingest_begin(req, ctx, stream_id, mode, granularity.as_deref())
            }
            (Op::IngestChunk, Command::IngestChunk { .. }) => {
                let r = self.ingest_chunk(req, ctx);
                let m = &self.inner.metrics;
                match &r {
                    Ok((_, true)) => metrics::bump(&m.ingest_chunks_skipped),
                    Ok((_, false)) => metrics::bump(&m.ingest_chunks_applied),
                    Err(_) => {}
                }
                self.inner.metrics.ingest_latency.record(started.elapsed().as_secs_f64() * 1000.0);
                r.map(|(o, _)| o)
            }
            (Op::IngestCommit, Command::Stream { stream_id }) => self.ingest_commit(req, ctx, stream_id),
            (Op::IngestAbort, Command::Stream { stream_id }) => self.ingest_abort(req, ctx, stream_id),
            _ => Err(Error::internal("not an ingest op")),
        };
        result
    }

    fn ingest_begin(
        &self,
        req: &Request<'_>,
        ctx: Ctx<'_>,
        id: &str,
        mode: &str,
        granularity: Option<&str>,
    ) -> Result<Outcome> {
        let mode = Mode::parse(mode).ok_or_else(|| Error::validation(format!("Unsupported ingest mode {mode}")))?;
        let mut ingest = self.inner.ingest.lock();
        let same = |s: &Stream| s.mode == mode && s.granularity.as_deref() == granularity;
        let response = if let Some(s) = ingest.committed.get(id) {
            if !same(s) {
                return Err(conflict("Ingest stream was already committed with different parameters"));
            }
            status_json(s, "already_committed")
        } else if let Some(s) = ingest.active.get_mut(id) {
            if !same(s) {
                return Err(conflict("Ingest stream already exists with different parameters"));
            }
            s.last_active_unix = self.now();
            status_json(s, "active")
        } else {
            let mut s = Stream::new(id, mode, granularity.map(str::to_owned), fingerprint(req.op, &req.command, None));
            s.last_active_unix = self.now();
            let json = status_json(&s, "active");
            self.check_role(req.op, ctx)?;
            let max = self.inner.options.ingest_max_streams;
            if !ctx.internal && ingest.active.len() >= max {
                self.count_limit(Limit::IngestStreams);
                return Err(limit_exceeded(format!(
                    "Too many active ingest streams (limit {max}): commit or abort one first"
                )));
            }
            let lsn = self.append(self.entry_for(req, ctx, None).as_deref())?;
            ingest.active.insert(id.to_owned(), s);
            return Ok(Outcome { response: Response::Json(json), lsn, idempotent: None });
        };
        self.check_role(req.op, ctx)?;
        let lsn = self.append(self.entry_for(req, ctx, None).as_deref())?;
        Ok(Outcome { response: Response::Json(response), lsn, idempotent: None })
    }

    /// Returns the outcome and whether the chunk was skipped as a duplicate.
    fn ingest_chunk(&self, req: &Request<'_>, ctx: Ctx<'_>) -> Result<(Outcome, bool)> {
        let Command::IngestChunk { stream_id, series, chunk_seq, items } = &req.command else {
            return Err(Error::internal("not a chunk"));
        };
        let (id, seq) = (stream_id.as_ref(), *chunk_seq);
        let mut ingest = self.inner.ingest.lock();
        let fp = fingerprint(req.op, &req.command, None);
        if let Some(s) = ingest.committed.get(id) {
            if seq == 0 {
                return Err(Error::validation("Field chunk_seq must be greater than 0"));
            }
            let compatible = seq <= s.last_chunk_seq
                && s.series.as_deref().is_none_or(|b| b == series.as_ref())
                && s.chunk_fingerprints.get(&seq) == Some(&fp);
            if !compatible {
                return Err(conflict("Ingest stream was already committed with different chunks"));
            }
            if items.len() > MAX_ITEMS {
                return Err(Error::validation("Field items exceeds max size"));
            }
            self.check_role(req.op, ctx)?;
            let lsn = self.append(self.entry_for(req, ctx, None).as_deref())?;
            return Ok((
                Outcome { response: Response::Json(chunk_json(id, seq, Some(true), 0, 0)), lsn, idempotent: None },
                true,
            ));
        }
        let rejected = |e: Error| {
            metrics::bump(&self.inner.metrics.ingest_chunks_rejected);
            e
        };
        // What every stream has staged, for the bound on a staging chunk.
        let staged_total = match ingest.active.get(id) {
            Some(s) if s.mode == Mode::ReplaceSeries && !ctx.internal => ingest.staged_items(),
            _ => 0,
        };
        let now = self.now();
        let s = ingest.active.get_mut(id).ok_or_else(|| rejected(stream_not_found(id)))?;
        if seq == 0 {
            return Err(rejected(Error::validation("Field chunk_seq must be greater than 0")));
        }
        if seq <= s.last_chunk_seq {
            if s.chunk_fingerprints.get(&seq) != Some(&fp) {
                return Err(rejected(conflict("Ingest chunk was already used with different payload")));
            }
            self.check_role(req.op, ctx)?;
            s.last_active_unix = now;
            let lsn = self.append(self.entry_for(req, ctx, None).as_deref())?;
            return Ok((
                Outcome { response: Response::Json(chunk_json(id, seq, Some(false), 0, 0)), lsn, idempotent: None },
                true,
            ));
        }
        if seq > s.last_chunk_seq + 1 {
            return Err(rejected(Error::validation("Field chunk_seq must be the next chunk")));
        }
        if let Some(bound) = &s.series {
            if bound != series.as_ref() {
                return Err(rejected(Error::validation(format!("Ingest stream is already bound to series {bound}"))));
            }
        }
        if items.len() > MAX_ITEMS {
            return Err(Error::validation("Field items exceeds max size"));
        }
        if s.mode == Mode::Add && items.iter().any(|i| i[2] == 0) {
            return Err(Error::validation("Batch item value must be greater than 0"));
        }
        self.check_role(req.op, ctx)?;
        let entry = self.entry_for(req, ctx, None);
        let total = items.iter().fold(0u64, |a, i| a.saturating_add(i[2]));
        let m = &self.inner.metrics;
        let lsn = match s.mode {
            Mode::ReplaceSeries => {
                let max = self.inner.options.ingest_max_staged_items;
                if !ctx.internal && staged_total.saturating_add(items.len() as u64) > max {
                    self.count_limit(Limit::IngestStagedItems);
                    return Err(rejected(limit_exceeded(format!(
                        "Too many staged ingest items (limit {max}): commit or abort a replace_series stream first"
                    ))));
                }
                let staged = s.staged.get_or_insert_with(Default::default);
                let mut data = SeriesData { counters: std::mem::take(staged), dropped: false };
                let checked = check_batch_set(&data, items);
                let lsn = checked.and_then(|()| self.append(entry.as_deref()));
                if lsn.is_ok() {
                    apply_batch_set(&mut data, items);
                }
                *staged = data.counters;
                let lsn = lsn?;
                s.staged_items = s.staged_items.saturating_add(items.len() as u64);
                lsn
            }
            mode => {
                if ctx.applies_to(series) {
                    if !self.inner.store.contains(series) {
                        // A rejected chunk must not leave its series behind.
                        let empty = SeriesData::default();
                        match mode {
                            Mode::Add => check_batch_add(&empty, items).map(|_| ())?,
                            _ => check_batch_set(&empty, items)?,
                        }
                    }
                    self.with_series(series, true, |data| {
                        if mode == Mode::Add {
                            check_batch_add(data, items)?;
                        } else {
                            check_batch_set(data, items)?;
                        }
                        let lsn = self.append(entry.as_deref())?;
                        if mode == Mode::Add {
                            apply_batch_add(data, items);
                        } else {
                            apply_batch_set(data, items);
                        }
                        self.count_batch(ctx, items.len());
                        Ok(lsn)
                    })?
                    .flatten()
                } else {
                    None
                }
            }
        };
        // Bound only once a chunk was applied (fix of B16).
        s.series.get_or_insert_with(|| series.to_string());
        s.last_chunk_seq = seq;
        s.last_active_unix = now;
        s.chunk_fingerprints.insert(seq, fp);
        metrics::add(&m.ingest_items_applied, items.len() as u64);
        Ok((
            Outcome { response: Response::Json(chunk_json(id, seq, None, items.len(), total)), lsn, idempotent: None },
            false,
        ))
    }

    fn ingest_commit(&self, req: &Request<'_>, ctx: Ctx<'_>, id: &str) -> Result<Outcome> {
        let mut ingest = self.inner.ingest.lock();
        if let Some(s) = ingest.committed.get(id) {
            let json = status_json(s, "already_committed");
            self.check_role(req.op, ctx)?;
            let lsn = self.append(self.entry_for(req, ctx, None).as_deref())?;
            return Ok(Outcome { response: Response::Json(json), lsn, idempotent: None });
        }
        let s = ingest.active.get(id).ok_or_else(|| stream_not_found(id))?;
        if s.mode == Mode::ReplaceSeries && s.series.is_none() {
            return Err(Error::validation("Cannot commit empty replace_series stream"));
        }
        self.check_role(req.op, ctx)?;
        let entry = self.entry_for(req, ctx, None);
        let Some(mut s) = ingest.active.remove(id) else { return Err(stream_not_found(id)) };
        let lsn = match (s.mode, s.series.clone()) {
            (Mode::ReplaceSeries, Some(series)) => {
                let staged = s.staged.take().unwrap_or_default();
                let mut staged = Some(staged);
                let applies = ctx.applies_to(&series);
                let r = self.with_series(&series, true, |data| {
                    let lsn = self.append(entry.as_deref())?;
                    if applies {
                        data.counters = staged.take().unwrap_or_default();
                    }
                    Ok(lsn)
                });
                match r {
                    Ok(lsn) => lsn.flatten(),
                    Err(e) => {
                        s.staged = staged;
                        ingest.active.insert(id.to_owned(), s);
                        return Err(e);
                    }
                }
            }
            _ => match self.append(entry.as_deref()) {
                Ok(lsn) => lsn,
                Err(e) => {
                    ingest.active.insert(id.to_owned(), s);
                    return Err(e);
                }
            },
        };
        let last = s.last_chunk_seq;
        s.committed_at_unix = self.now();
        ingest.committed.insert(id.to_owned(), s);
        Ok(Outcome { response: Response::Json(short_status(id, "committed", last)), lsn, idempotent: None })
    }

    fn ingest_abort(&self, req: &Request<'_>, ctx: Ctx<'_>, id: &str) -> Result<Outcome> {
        let mut ingest = self.inner.ingest.lock();
        let last = ingest.active.get(id).ok_or_else(|| stream_not_found(id))?.last_chunk_seq;
        self.check_role(req.op, ctx)?;
        let lsn = self.append(self.entry_for(req, ctx, None).as_deref())?;
        ingest.active.remove(id);
        Ok(Outcome { response: Response::Json(short_status(id, "aborted", last)), lsn, idempotent: None })
    }
}

impl Engine {
    /// Aborts the streams idle for `--ingest-stream-ttl` or longer (each
    /// `ingest.*` request and each snapshot first does this, at most once a
    /// second of the engine's clock; the server also calls
    /// [`Engine::expire_ingest_streams`] periodically). Each abort is logged
    /// as an `ingest.abort` entry, so WAL replay and slaves drop the stream
    /// too. Only a node that may write expires streams: a slave waits for
    /// its master's aborts. The caller holds the admin lock. Returns the LSN
    /// of the last abort logged.
    pub(super) fn expire_idle_streams_locked(&self, ingest: &mut Ingest) -> Option<u64> {
        let ttl = self.inner.options.ingest_stream_ttl_seconds;
        let now = self.now();
        if ttl == 0 || ingest.last_sweep_unix == now || ingest.active.is_empty() {
            return None;
        }
        if self.inner.options.role == Role::Slave || self.inner.write_lease.check().is_err() {
            return None;
        }
        ingest.last_sweep_unix = now;
        let mut last = None;
        for id in ingest.idle_since(now, ttl) {
            let entry = self.wal().map(|_| {
                let mut out = Vec::with_capacity(64 + id.len());
                write_entry(&mut out, Op::IngestAbort, &Command::Stream { stream_id: Cow::Borrowed(&id) }, None, None);
                out
            });
            match self.append(entry.as_deref()) {
                Ok(lsn) => last = lsn.or(last),
                Err(err) => {
                    // Kept, and tried again at the next sweep.
                    tracing::warn!(stream_id = %id, error = %err, "ingest.expire_failed");
                    break;
                }
            }
            ingest.active.remove(&id);
            self.count_limit(Limit::IngestStreamExpired);
            tracing::info!(stream_id = %id, ttl_seconds = ttl, "ingest.stream_expired");
        }
        last
    }

    /// Aborts the ingest streams idle past `--ingest-stream-ttl` and waits
    /// until those aborts are durable. The server calls this periodically so
    /// abandoned streams go away even when no ingest request comes.
    pub fn expire_ingest_streams(&self) -> Result<()> {
        let lsn = {
            let _admin = self.inner.admin.lock();
            self.expire_idle_streams_locked(&mut self.inner.ingest.lock())
        };
        match lsn {
            Some(lsn) => self.wait_durable(lsn),
            None => Ok(()),
        }
    }
}
