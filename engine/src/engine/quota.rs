//! `counter.consume`: "if this key's usage in the window plus `value` stays
//! within `limit`, count it", as one step under the series' write lock, so
//! two racing callers can never both take the last unit.
//!
//! An allowed consume is logged as the `counter.increment` it amounts to:
//! WAL replay, replication (to Karma 1.0 slaves too) and restore see an
//! ordinary increment and need nothing new. A refused consume changes nothing
//! and logs nothing.

use std::borrow::Cow;

use crate::clock::{bucket_day_number, civil_from_days};
use crate::error::{Error, Result};
use crate::idempotency::{Lookup, Registry};
use crate::json::write_u64;
use crate::protocol::fingerprint::fingerprint;
use crate::protocol::wal_entry::write_entry;
use crate::protocol::{Command, Op, Range, Request, Window};

use super::{Ctx, Engine, Outcome, Response};

/// The answer of `counter.consume`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Whether `value` was added.
    pub allowed: bool,
    /// The window's total after this request (so including `value` when
    /// allowed).
    pub used: u64,
    /// `limit - used`, or 0 when the window is already past the limit (other
    /// writes, e.g. `counter.increment`, are not held to it).
    pub remaining: u64,
    pub limit: u64,
    /// The buckets counted, inclusive.
    pub window: Range,
}

impl Quota {
    fn new(allowed: bool, used: u64, limit: u64, window: Range) -> Quota {
        Quota { allowed, used, remaining: limit.saturating_sub(used), limit, window }
    }

    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.allowed { b"{\"allowed\":true" } else { b"{\"allowed\":false" });
        for (name, n) in [
            ("used", self.used),
            ("remaining", self.remaining),
            ("limit", self.limit),
            ("range_from", self.window.from),
            ("range_to", self.window.to),
        ] {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            write_u64(out, n);
        }
        out.push(b'}');
    }
}

/// The buckets `window` covers, ending at `bucket` (a valid date: the
/// validation step checked it).
pub(crate) fn window_range(window: Window, bucket: u64) -> Result<Range> {
    let invalid = || Error::validation("Invalid bucket date");
    let from = match window {
        Window::Day => bucket,
        Window::Month => bucket / 100 * 100 + 1,
        Window::Days(n) => {
            let day = bucket_day_number(bucket).ok_or_else(invalid)?;
            let back = i64::try_from(n.saturating_sub(1)).map_err(|_| invalid())?;
            let (y, m, d) = civil_from_days(day - back);
            let y = u64::try_from(y).map_err(|_| invalid())?;
            y * 10_000 + u64::from(m) * 100 + u64::from(d)
        }
    };
    Ok(Range { from, to: bucket })
}

fn window_overflow(key: u64, bucket: u64) -> Error {
    Error::validation(format!("Counter overflow key={key} bucket={bucket}"))
}

impl Engine {
    /// Runs a validated `counter.consume`. `resolved` is the default bucket
    /// the idempotency layer already fixed, if it did.
    pub(crate) fn consume_op(&self, req: &Request<'_>, ctx: Ctx<'_>, resolved: Option<u64>) -> Result<Outcome> {
        let Command::Consume { series, key, bucket, value, limit, window } = &req.command else {
            return Err(Error::internal("consume_op needs counter.consume"));
        };
        let (key, limit, value) = (*key, *limit, value.unwrap_or(1));
        let bucket = resolved.or(*bucket).unwrap_or_else(|| self.today_in(ctx));
        let range = window_range(*window, bucket)?;
        let answer = |quota: Quota, lsn| Ok(Outcome { response: Response::Quota(quota), lsn, idempotent: None });
        if value > limit && !self.inner.store.contains(series) {
            // Refused whatever the data, and a refusal must not leave an
            // empty series behind.
            return answer(Quota::new(false, 0, limit, range), None);
        }
        let entry = match (ctx.logs(), self.wal()) {
            (true, Some(_)) => {
                let increment = increment_of(series, key, bucket, value);
                let mut out = Vec::with_capacity(128);
                write_entry(&mut out, Op::Increment, &increment, Some(bucket), req.idempotency.as_ref());
                Some(out)
            }
            _ => None,
        };
        let (quota, lsn) = self
            .with_series(series, true, |data| {
                let used = data.counters.get(&key).map_or(0, |c| c.sum_range(range.from, range.to));
                let after = used.checked_add(value).ok_or_else(|| window_overflow(key, bucket))?;
                if after > limit {
                    return Ok((Quota::new(false, used, limit, range), None));
                }
                // `after` bounds the bucket's new value, so this cannot
                // overflow; checked anyway so nothing is logged if it did.
                if let Some(c) = data.counters.get(&key) {
                    c.check_add(bucket, value).map_err(|_| window_overflow(key, bucket))?;
                }
                let lsn = self.append(entry.as_deref())?;
                let counter = data.counters.entry(key).or_default();
                counter.add(bucket, value).map_err(|_| window_overflow(key, bucket))?;
                Ok((Quota::new(true, after, limit, range), lsn))
            })?
            .ok_or_else(|| Error::tree_not_found(series))?;
        answer(quota, lsn)
    }

    /// A retried idempotent consume whose first run is known only from the
    /// WAL: replay recorded it as the increment it was logged as, so its
    /// record has the increment's fingerprint. The first run was allowed
    /// (refusals are not logged); answer that again with today's numbers,
    /// without counting twice. `None` when the record is something else.
    pub(crate) fn consume_retry_after_replay(
        &self,
        req: &Request<'_>,
        idempotency_key: &str,
        resolved: Option<u64>,
        registry: &Registry,
    ) -> Result<Option<Outcome>> {
        let Command::Consume { series, key, bucket, value, limit, window } = &req.command else {
            return Ok(None);
        };
        let bucket = resolved.or(*bucket).unwrap_or_else(|| self.today());
        let increment = increment_of(series, *key, bucket, value.unwrap_or(1));
        let logged_as = fingerprint(Op::Increment, &increment, Some(bucket));
        if !matches!(registry.lookup(idempotency_key, &logged_as), Lookup::Hit(_)) {
            return Ok(None);
        }
        let range = window_range(*window, bucket)?;
        let used = self
            .inner
            .store
            .with(series, |s| s.data.read().counters.get(key).map_or(0, |c| c.sum_range(range.from, range.to)))
            .unwrap_or(0);
        let quota = Quota::new(true, used, *limit, range);
        Ok(Some(Outcome { response: Response::Quota(quota), lsn: None, idempotent: Some(true) }))
    }

    /// Adds `value` to `key`'s `bucket` (today, UTC, when `None`) if the
    /// window's total plus `value` stays within `limit`; otherwise changes
    /// nothing. Waits until an allowed consume is durable.
    pub fn consume(
        &self,
        series: &str,
        key: u64,
        bucket: Option<u64>,
        value: u64,
        limit: u64,
        window: Window,
    ) -> Result<Quota> {
        let command =
            Command::Consume { series: Cow::Borrowed(series), key, bucket, value: Some(value), limit, window };
        let outcome = self.execute(&Request::new(Op::Consume, command))?;
        if let Some(lsn) = outcome.lsn {
            self.wait_durable(lsn)?;
        }
        match outcome.response {
            Response::Quota(quota) => Ok(quota),
            _ => Err(Error::internal("unexpected response shape for counter.consume")),
        }
    }
}

/// The `counter.increment` an allowed consume amounts to.
fn increment_of(series: &str, key: u64, bucket: u64, value: u64) -> Command<'_> {
    Command::Write { series: Cow::Borrowed(series), key, bucket: Some(bucket), value: Some(value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_end_at_the_bucket() {
        let r = |w, b| window_range(w, b).map(|r| (r.from, r.to)).ok();
        assert_eq!(r(Window::Day, 20260301), Some((20260301, 20260301)));
        assert_eq!(r(Window::Month, 20260331), Some((20260301, 20260331)));
        assert_eq!(r(Window::Days(1), 20260301), Some((20260301, 20260301)));
        assert_eq!(r(Window::Days(2), 20260301), Some((20260228, 20260301)));
        assert_eq!(r(Window::Days(2), 20240301), Some((20240229, 20240301)));
        assert_eq!(r(Window::Days(7), 20270103), Some((20261228, 20270103)));
        assert_eq!(r(Window::Days(366), 20261231), Some((20251231, 20261231)));
    }
}
