//! How often each resource bound was hit (docs/limits.md). Karma 1.0 has no
//! such bounds, so a counter is exposed only once it is non-zero: a server
//! that never hits a bound answers `system.metrics` exactly like 1.0.

use std::sync::atomic::{AtomicU64, Ordering};

/// A resource bound; each has one `karma_limit_*_total` counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// A connection's unsent answers passed `--max-pending-output-bytes`.
    PendingOutput,
    /// A request line was not completed within `--request-deadline`.
    RequestDeadline,
    /// An idle connection was closed to make room for a new one.
    IdleConnectionReaped,
    /// A connection was refused: every slot busy, none idle.
    ConnectionRefused,
    /// A master's reply line passed `--replication-max-line-bytes`.
    ReplicationLine,
    /// `ingest.begin` refused: too many active streams.
    IngestStreams,
    /// An ingest chunk refused: too many staged items.
    IngestStagedItems,
    /// An ingest stream aborted after being idle past its TTL.
    IngestStreamExpired,
    /// A recovery checkpoint refused: too many sources.
    RecoverySources,
}

impl Limit {
    const ALL: [Limit; 9] = [
        Limit::PendingOutput,
        Limit::RequestDeadline,
        Limit::IdleConnectionReaped,
        Limit::ConnectionRefused,
        Limit::ReplicationLine,
        Limit::IngestStreams,
        Limit::IngestStagedItems,
        Limit::IngestStreamExpired,
        Limit::RecoverySources,
    ];

    pub const fn metric(self) -> &'static str {
        match self {
            Limit::PendingOutput => "karma_limit_pending_output_total",
            Limit::RequestDeadline => "karma_limit_request_deadline_total",
            Limit::IdleConnectionReaped => "karma_limit_idle_connections_reaped_total",
            Limit::ConnectionRefused => "karma_limit_connections_refused_total",
            Limit::ReplicationLine => "karma_limit_replication_line_total",
            Limit::IngestStreams => "karma_limit_ingest_streams_total",
            Limit::IngestStagedItems => "karma_limit_ingest_staged_items_total",
            Limit::IngestStreamExpired => "karma_limit_ingest_streams_expired_total",
            Limit::RecoverySources => "karma_limit_recovery_sources_total",
        }
    }
}

#[derive(Debug, Default)]
pub struct LimitCounters {
    hits: [AtomicU64; Limit::ALL.len()],
}

impl LimitCounters {
    pub fn bump(&self, limit: Limit) {
        self.hits[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, limit: Limit) -> u64 {
        self.hits[limit as usize].load(Ordering::Relaxed)
    }

    /// Appends the Prometheus lines of the counters that are non-zero.
    pub fn write_prometheus(&self, out: &mut String) {
        for limit in Limit::ALL {
            let n = self.get(limit);
            if n > 0 {
                let metric = limit.metric();
                out.push_str(&format!("# TYPE {metric} counter\n{metric} {n}\n"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hit_limits_are_exposed() {
        let c = LimitCounters::default();
        let mut text = String::new();
        c.write_prometheus(&mut text);
        assert_eq!(text, "");
        c.bump(Limit::RequestDeadline);
        c.bump(Limit::RequestDeadline);
        c.write_prometheus(&mut text);
        assert_eq!(text, "# TYPE karma_limit_request_deadline_total counter\nkarma_limit_request_deadline_total 2\n");
        for (i, limit) in Limit::ALL.into_iter().enumerate() {
            assert_eq!(limit as usize, i);
        }
    }
}
