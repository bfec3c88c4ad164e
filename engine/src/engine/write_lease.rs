//! Fencing by lease: a node that leads only while it holds an external lease
//! (a cluster's etcd lease) must stop taking writes before that lease can
//! have expired for the other nodes. The holder of the lease moves a
//! deadline forward each time it renews; client writes after the deadline
//! are refused with `forbidden`. The check reads the clock in the write path
//! itself, so it does not depend on any task noticing the lapse in time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::error::{Error, ErrorCode, Result};

#[derive(Debug)]
pub struct WriteLease {
    /// Off by default: a node outside a cluster always takes writes.
    required: AtomicBool,
    /// Milliseconds after `origin` until which writes are allowed.
    until_ms: AtomicU64,
    origin: Instant,
}

impl Default for WriteLease {
    fn default() -> WriteLease {
        WriteLease { required: AtomicBool::new(false), until_ms: AtomicU64::new(0), origin: Instant::now() }
    }
}

impl WriteLease {
    /// From now on client writes need an unexpired lease (none yet).
    pub fn require(&self) {
        self.until_ms.store(0, Ordering::SeqCst);
        self.required.store(true, Ordering::SeqCst);
    }

    /// Allows writes until `deadline` (never moves an earlier call's
    /// deadline back: renewals may finish out of order).
    pub fn allow_until(&self, deadline: Instant) {
        let ms = u64::try_from(deadline.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX);
        self.until_ms.fetch_max(ms, Ordering::SeqCst);
    }

    /// Refuses writes at once (the lease is known to be lost).
    pub fn revoke(&self) {
        self.until_ms.store(0, Ordering::SeqCst);
    }

    /// Whether a client write may run now.
    pub fn check(&self) -> Result<()> {
        if !self.required.load(Ordering::Relaxed) {
            return Ok(());
        }
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        if now < self.until_ms.load(Ordering::SeqCst) {
            return Ok(());
        }
        Err(Error::new(
            ErrorCode::Forbidden,
            "Leadership lease lapsed: this node takes no writes until it is leader again",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn writes_need_an_unexpired_lease_once_required() {
        let lease = WriteLease::default();
        assert!(lease.check().is_ok());
        lease.require();
        assert_eq!(lease.check().unwrap_err().code(), ErrorCode::Forbidden);
        lease.allow_until(Instant::now() + Duration::from_secs(60));
        assert!(lease.check().is_ok());
        // An older renewal finishing late does not shorten the lease.
        lease.allow_until(Instant::now());
        assert!(lease.check().is_ok());
        lease.revoke();
        assert!(lease.check().is_err());
        lease.allow_until(Instant::now());
        assert!(lease.check().is_err(), "a deadline in the past allows nothing");
    }
}
