//! The election of one shard, on a thread of its own (etcd calls block).
//!
//! Every tick the controller renews the node's lease when due, publishes
//! the node's LSN, and reads the shard's leader key:
//! * a leader that is not us: follow it;
//! * no leader: the live node with the highest LSN (then the smallest id)
//!   campaigns at once; the others wait one lease TTL for it before they
//!   campaign too. Winning is one etcd transaction that creates the leader
//!   key on our lease and appends to the shard's history;
//! * we lead: writes stay allowed until `renewal sent + TTL - margin`. A
//!   renewal that fails or finds the lease gone lets that deadline pass, so
//!   the node refuses writes before etcd can hand the leadership to anyone
//!   else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use karma_cluster::layout::{history_value, parse_history, Epoch};
use karma_cluster::{ClusterPaths, Etcd, LeaderRecord, NodeRecord};
use karma_engine::Engine;
use parking_lot::Mutex;
use tokio::sync::watch;

/// What the node should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// Keep serving as now (no leader known yet).
    Wait,
    /// Lead the shard: this record is ours.
    Lead(LeaderRecord),
    /// Replicate from this leader; `history` decides whether our data is a
    /// prefix of the leader's.
    Follow { leader: LeaderRecord, history: Vec<Epoch> },
}

/// Who the node is.
#[derive(Clone, Debug)]
pub struct Identity {
    pub paths: ClusterPaths,
    pub shard: u32,
    pub node_id: String,
    pub advertise: String,
    pub ttl: Duration,
}

/// What the controller and the serving loop share.
#[derive(Default)]
pub struct Shared {
    /// The engine being served, once open; the lease and the LSN come
    /// from it.
    pub engine: Mutex<Option<Engine>>,
    /// The LSN last seen, published while no engine is open.
    pub last_lsn: std::sync::atomic::AtomicU64,
    /// Until when a leader may take writes.
    pub deadline: Mutex<Option<Instant>>,
    pub stop: AtomicBool,
}

impl Shared {
    /// Hands `engine` to the controller; a leader's engine takes writes only
    /// within the current lease deadline.
    pub fn install(&self, engine: &Engine, leading: bool) {
        let deadline = self.deadline.lock();
        if leading {
            engine.write_lease().require();
            if let Some(d) = *deadline {
                engine.write_lease().allow_until(d);
            }
        }
        *self.engine.lock() = Some(engine.clone());
    }

    pub fn uninstall(&self) {
        if let Some(engine) = self.engine.lock().take() {
            self.last_lsn.store(engine.replicated_lsn(), Ordering::Relaxed);
        }
    }

    fn lsn(&self) -> u64 {
        match &*self.engine.lock() {
            Some(e) => e.replicated_lsn(),
            None => self.last_lsn.load(Ordering::Relaxed),
        }
    }

    fn extend(&self, until: Instant) {
        let mut deadline = self.deadline.lock();
        *deadline = Some(deadline.map_or(until, |d| d.max(until)));
        if let Some(e) = &*self.engine.lock() {
            e.write_lease().allow_until(until);
        }
    }

    fn fence(&self) {
        *self.deadline.lock() = None;
        if let Some(e) = &*self.engine.lock() {
            e.write_lease().revoke();
        }
    }
}

struct Lease {
    id: i64,
    ttl: Duration,
    last_sent: Instant,
}

pub struct Controller {
    etcd: Etcd,
    me: Identity,
    shared: Arc<Shared>,
    want: watch::Sender<Want>,
    lease: Option<Lease>,
    leading: Option<LeaderRecord>,
    /// When we first saw the shard without a leader.
    leaderless_since: Option<Instant>,
}

impl Controller {
    pub fn new(etcd: Etcd, me: Identity, shared: Arc<Shared>, want: watch::Sender<Want>) -> Controller {
        Controller { etcd, me, shared, want, lease: None, leading: None, leaderless_since: None }
    }

    fn tick(&self) -> Duration {
        (self.me.ttl / 8).clamp(Duration::from_millis(50), Duration::from_millis(500))
    }

    /// Runs until `shared.stop`; then gives the leadership up at once.
    pub fn run(mut self) {
        while !self.shared.stop.load(Ordering::Relaxed) {
            if let Err(err) = self.step() {
                tracing::warn!(event = "cluster.etcd_error", "{err}");
            }
            std::thread::sleep(self.tick());
        }
        self.shared.fence();
        if let Some(lease) = &self.lease {
            let _ = self.etcd.revoke(lease.id);
        }
    }

    fn step(&mut self) -> Result<(), karma_cluster::EtcdError> {
        self.renew()?;
        let Some(lease) = &self.lease else { return Ok(()) };
        let lease_id = lease.id;
        let leading = self.leading.is_some();
        let record = NodeRecord {
            node_id: self.me.node_id.clone(),
            advertise: self.me.advertise.clone(),
            role: if leading { "master" } else { "slave" }.into(),
            lsn: self.shared.lsn(),
        };
        self.etcd.put(&self.me.paths.node(self.me.shard, &self.me.node_id), &record.to_json(), Some(lease_id))?;
        let leader = self.etcd.get(&self.me.paths.leader(self.me.shard))?;
        match leader {
            Some(kv) if kv.lease == lease_id => {
                self.leaderless_since = None;
            }
            Some(kv) => {
                self.leaderless_since = None;
                if self.leading.take().is_some() {
                    tracing::warn!(event = "cluster.leadership_lost", "another node holds the shard");
                    self.shared.fence();
                }
                let Some(leader) = LeaderRecord::parse(&kv.value) else { return Ok(()) };
                if leader.node_id == self.me.node_id {
                    // Our own key from before a restart: wait for it to expire.
                    return Ok(());
                }
                let history = self.history()?.0;
                let want = Want::Follow { leader, history };
                self.want.send_if_modified(|w| {
                    let changed = *w != want;
                    *w = want;
                    changed
                });
            }
            None => {
                if self.leading.take().is_some() {
                    tracing::warn!(event = "cluster.leadership_lost", "leader key gone");
                    self.shared.fence();
                }
                let since = *self.leaderless_since.get_or_insert_with(Instant::now);
                if self.best_candidate()? || since.elapsed() >= self.me.ttl {
                    self.campaign(lease_id, record.lsn)?;
                }
            }
        }
        Ok(())
    }

    /// Grants a lease when we have none, renews it every third of its TTL.
    fn renew(&mut self) -> Result<(), karma_cluster::EtcdError> {
        let Some(lease) = &mut self.lease else {
            let sent = Instant::now();
            let (id, ttl) = self.etcd.grant(self.me.ttl.as_secs())?;
            self.lease = Some(Lease { id, ttl: Duration::from_secs(ttl), last_sent: sent });
            return Ok(());
        };
        if lease.last_sent.elapsed() < lease.ttl / 3 {
            return Ok(());
        }
        let sent = Instant::now();
        match self.etcd.keep_alive(lease.id) {
            Ok(0) => {
                tracing::warn!(event = "cluster.lease_expired", "lease {} expired", lease.id);
                self.lease = None;
                self.leading = None;
                self.shared.fence();
                Ok(())
            }
            Ok(_) => {
                lease.last_sent = sent;
                if self.leading.is_some() {
                    self.shared.extend(sent + write_window(lease.ttl));
                }
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    fn history(&self) -> Result<(Vec<Epoch>, i64), karma_cluster::EtcdError> {
        Ok(match self.etcd.get(&self.me.paths.history(self.me.shard))? {
            Some(kv) => (parse_history(&kv.value), kv.mod_revision),
            None => (Vec::new(), 0),
        })
    }

    /// Whether no live node of the shard holds more than we do.
    fn best_candidate(&self) -> Result<bool, karma_cluster::EtcdError> {
        let mine = (self.shared.lsn(), std::cmp::Reverse(self.me.node_id.clone()));
        let nodes = self.etcd.get_prefix(&self.me.paths.nodes(self.me.shard))?;
        Ok(nodes
            .iter()
            .filter_map(|kv| NodeRecord::parse(&kv.value))
            .all(|n| n.node_id == self.me.node_id || (n.lsn, std::cmp::Reverse(n.node_id)) < mine))
    }

    fn campaign(&mut self, lease_id: i64, lsn: u64) -> Result<(), karma_cluster::EtcdError> {
        let Some(lease) = &self.lease else { return Ok(()) };
        let (mut history, revision) = self.history()?;
        let epoch = history.last().map_or(1, |e| e.epoch + 1);
        let record = LeaderRecord {
            node_id: self.me.node_id.clone(),
            advertise: self.me.advertise.clone(),
            epoch,
            start_lsn: lsn,
        };
        history.push(Epoch { epoch, start_lsn: lsn, node_id: self.me.node_id.clone() });
        let leader_key = self.me.paths.leader(self.me.shard);
        let history_key = self.me.paths.history(self.me.shard);
        let json = record.to_json();
        let history_json = history_value(&history);
        // The lease may have been renewed long ago: allow writes only from
        // the last renewal, as for every other extension.
        let window_start = lease.last_sent;
        let ttl = lease.ttl;
        let won = self.etcd.put_if_unchanged(
            &[(&leader_key, 0), (&history_key, revision)],
            &[(&leader_key, &json, Some(lease_id)), (&history_key, &history_json, None)],
        )?;
        if won {
            tracing::info!(event = "cluster.elected", "shard={} epoch={epoch} start_lsn={lsn}", self.me.shard);
            self.leaderless_since = None;
            self.leading = Some(record.clone());
            self.shared.extend(window_start + write_window(ttl));
            let _ = self.want.send(Want::Lead(record));
        }
        Ok(())
    }
}

/// How long after a renewal was sent a leader may take writes: the TTL less
/// a margin for clock-rate differences and the renewal's own travel time.
pub fn write_window(ttl: Duration) -> Duration {
    ttl.saturating_sub((ttl / 3).max(Duration::from_millis(500)))
}
