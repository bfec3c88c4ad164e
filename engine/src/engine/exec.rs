//! Level 2 of the API: a parsed [`Request`] in, an [`Outcome`] out.
//! Authentication, the role check, the idempotency layer and dispatch.

use std::time::Instant;

use crate::clock::bucket_of_unix;
use crate::error::{Error, ErrorCode, Result};
use crate::idempotency::{Lookup, Record};
use crate::metrics;
use crate::options::Role;
use crate::protocol::fingerprint::fingerprint;
use crate::protocol::validate::{validate, validate_fields, MAX_FINGERPRINT_BYTES, MAX_IDEMPOTENCY_KEY_BYTES};
use crate::protocol::{Command, Op, Request};

use super::{Ctx, Engine, Outcome, Response};

impl Engine {
    /// Executes a parsed request as a client would (no authentication: the
    /// caller is in-process).
    pub fn execute(&self, req: &Request<'_>) -> Result<Outcome> {
        self.execute_ctx(req, Ctx::CLIENT)
    }

    /// Step 10 of spec/protocol.md §4.1.
    #[inline]
    pub(crate) fn authorize(&self, req: &Request<'_>) -> Result<()> {
        let o = &self.inner.options;
        if !o.auth_enabled() {
            return Ok(());
        }
        let token = req.token.as_deref();
        if token.is_some() && token == o.auth_token.as_deref() {
            return Ok(());
        }
        if token.is_some() && token == o.read_auth_token.as_deref() {
            if req.op.is_read_only() {
                return Ok(());
            }
            return Err(Error::new(
                ErrorCode::Forbidden,
                format!("Read-only token cannot execute command {}", req.op.internal_name()),
            ));
        }
        // With only a read token configured no request may write: access
        // control that is half configured fails closed (as in Karma 1.0).
        Err(Error::new(ErrorCode::Unauthorized, "Unauthorized"))
    }

    /// Step 12: a slave serves reads only (replay bypasses this).
    #[inline]
    pub(crate) fn check_role(&self, op: Op, ctx: Ctx<'_>) -> Result<()> {
        if !ctx.internal && self.inner.options.role == Role::Slave && !op.is_read_only() {
            return Err(Error::new(
                ErrorCode::Forbidden,
                format!("Slave role cannot execute command {}", op.internal_name()),
            ));
        }
        if !ctx.internal && !op.is_read_only() {
            self.inner.write_lease.check()?;
        }
        Ok(())
    }

    pub(crate) fn today(&self) -> u64 {
        bucket_of_unix(self.now())
    }

    /// Today's bucket for a request run in `ctx`: the batch's, when the
    /// request belongs to one (one clock read per batch), else the clock's.
    pub(crate) fn today_in(&self, ctx: Ctx<'_>) -> u64 {
        match ctx.batch.map(|batch| &batch.today) {
            Some(day) => match day.get() {
                Some(today) => today,
                None => {
                    let today = self.today();
                    day.set(Some(today));
                    today
                }
            },
            None => self.today(),
        }
    }

    pub(crate) fn execute_ctx(&self, req: &Request<'_>, ctx: Ctx<'_>) -> Result<Outcome> {
        if !ctx.internal {
            // After a WAL failure nothing is served from memory before it
            // holds only acknowledged writes again; anything but a read may
            // resume the WAL.
            self.recover_wal(!req.op.is_read_only())?;
        }
        match req.series() {
            // The series a line of this batch wrote: its name passed.
            Some(series) if ctx.batch.is_some_and(|batch| batch.wrote(series)) => validate_fields(req)?,
            _ => validate(req)?,
        }
        if matches!(req.op, Op::IngestBegin | Op::IngestChunk | Op::IngestCommit | Op::IngestAbort) {
            // Ingest checks stream state before the role check (§4.1 step 11).
            let _admin = self.inner.admin.lock();
            return self.ingest(req, ctx);
        }
        self.check_role(req.op, ctx)?;
        if let (Some(_), true) = (&req.idempotency, req.op.idempotency_eligible()) {
            return self.execute_idempotent(req, ctx);
        }
        self.dispatch(req, ctx, None)
    }

    /// §12.3: replay the first response for a known key, refuse a reused
    /// key, or run the op and remember its response.
    fn execute_idempotent(&self, req: &Request<'_>, ctx: Ctx<'_>) -> Result<Outcome> {
        let Some(idem) = &req.idempotency else { return self.dispatch(req, ctx, None) };
        if idem.key.is_empty() {
            return Err(Error::validation("Field idempotency_key must not be empty"));
        }
        if idem.key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
            return Err(Error::validation("Field idempotency_key exceeds max size"));
        }
        let bucket = match &req.command {
            Command::Write { bucket: None, .. } | Command::Consume { bucket: None, .. } => Some(self.today_in(ctx)),
            _ => None,
        };
        let computed = fingerprint(req.op, &req.command, bucket);
        if let Some(sent) = &idem.fingerprint {
            if sent.is_empty() {
                return Err(Error::validation("Field fingerprint must not be empty"));
            }
            if sent.len() > MAX_FINGERPRINT_BYTES {
                return Err(Error::validation("Field fingerprint exceeds max size"));
            }
            if sent.as_ref() != computed {
                return Err(Error::new(
                    ErrorCode::IdempotencyConflict,
                    "Field fingerprint does not match request fingerprint",
                ));
            }
        }
        let m = &self.inner.metrics;
        let _admin = self.inner.admin.lock();
        {
            let registry = self.inner.idempotency.lock();
            match registry.lookup(&idem.key, &computed) {
                Lookup::Hit(record) => {
                    metrics::bump(&m.idempotency_hits);
                    return Ok(Outcome {
                        response: Response::Json(record.response.clone()),
                        lsn: None,
                        idempotent: Some(true),
                    });
                }
                Lookup::Conflict => {
                    if let Some(outcome) = self.consume_retry_after_replay(req, &idem.key, bucket, &registry)? {
                        metrics::bump(&m.idempotency_hits);
                        return Ok(outcome);
                    }
                    metrics::bump(&m.idempotency_conflicts);
                    return Err(Error::new(
                        ErrorCode::IdempotencyConflict,
                        "Idempotency key was already used with a different request",
                    ));
                }
                Lookup::Miss => {}
            }
        }
        let mut outcome = self.dispatch(req, ctx, bucket)?;
        let started = Instant::now();
        let created_at = match ctx.replay {
            Some((lsn, _)) => {
                self.inner.replay_times.lock().get(&lsn).copied().or(idem.created_at_unix).unwrap_or_else(|| self.now())
            }
            None => self.now(),
        };
        if let (Some(lsn), Some(disk)) = (outcome.lsn, &self.inner.disk) {
            disk.times.record(lsn, created_at);
        }
        let record = Record {
            key: idem.key.to_string(),
            operation: req.op.internal_name().to_owned(),
            fingerprint: computed,
            response: outcome.response.to_json(),
            created_at_unix: created_at,
        };
        let pruned = self.inner.idempotency.lock().insert(record, self.now());
        metrics::add(&m.idempotency_pruned, pruned as u64);
        metrics::bump(&m.idempotency_writes);
        m.idempotency_latency.record(started.elapsed().as_secs_f64() * 1000.0);
        outcome.idempotent = Some(false);
        Ok(outcome)
    }

    /// Runs a validated, authorised request. `bucket` is the resolved default
    /// write bucket when the idempotency layer already fixed it.
    fn dispatch(&self, req: &Request<'_>, ctx: Ctx<'_>, bucket: Option<u64>) -> Result<Outcome> {
        use Op::*;
        let plain = |r: Result<Response>| r.map(|response| Outcome { response, lsn: None, idempotent: None });
        match req.op {
            Ping => plain(Ok(Response::Text("pong".into()))),
            Health => plain(Ok(self.health_response())),
            Stats => plain(Ok(self.stats_response())),
            Metrics => plain(Ok(Response::Text(self.metrics_text()))),
            Wal => plain(Ok(self.wal_status())),
            TreeList => plain(Ok(Response::Names(self.inner.store.names()))),
            TreeInfo | TreeKeys | TreeSummary | TreeTop | TreeSeries | Sum | BatchSum | MultiSum | CounterSeries => {
                plain(self.read(req))
            }
            SnapshotList
            | SnapshotInfo
            | SnapshotFetch
            | SnapshotFetchChunk
            | SnapshotVerify
            | SnapshotCreate
            | SnapshotCreateAll
            | SnapshotLoad
            | IdempotencySnapshotFetchChunk => {
                let _admin = self.inner.admin.lock();
                plain(self.snapshot_op(req))
            }
            RecoveryStatus | RecoveryCheckpoint | ReconciliationReport | ReplicationStatus | ReplicationEntries => {
                plain(self.admin_op(req))
            }
            IdempotencyPrune => {
                let _admin = self.inner.admin.lock();
                self.prune(req, ctx)
            }
            TreeCreate | TreeDrop | TreeReset | TreeDeleteRange | SystemCompact | SeriesCompact | Increment
            | Decrement | BatchAdd | BatchSet | CounterReset | BatchReset | CounterDeleteRange | BatchDeleteRange
            | DeleteBefore => self.write(req, ctx, bucket),
            Consume => self.consume_op(req, ctx, bucket),
            IngestBegin | IngestChunk | IngestCommit | IngestAbort => self.ingest(req, ctx),
        }
    }
}
