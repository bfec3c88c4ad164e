//! Connection slots (`--max-connections`): when every slot is taken, the
//! connection idle longest (nothing buffered, no request running) is closed
//! to make room, and only when none is idle is the newcomer refused.
//!
//! Each connection publishes its state in one atomic, so marking itself busy
//! or idle costs no lock; the slot table is locked only to admit, to release
//! and (when full) to look for the idle connection to reap. The number of
//! open connections is an atomic too: a connection reads it to know whether
//! anyone else may be writing at the same moment (`connection::wait_durable`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// `state` values besides "idle since tick n" (n >= 1).
const BUSY: u64 = 0;
const REAPED: u64 = u64::MAX;

pub struct Slots {
    limit: usize,
    /// Orders the moments connections became idle: reaping needs to know
    /// which one has been idle longest, not since when, and a counter is
    /// cheaper than a clock read every time a connection goes idle.
    ticks: AtomicU64,
    table: Mutex<Table>,
    /// Connections admitted and not yet closed (a reaped one until it is).
    open: AtomicUsize,
}

struct Table {
    /// Slots in use; a reaped connection's slot already belongs to the
    /// newcomer, so its release does not free it again.
    used: usize,
    next_id: u64,
    connections: HashMap<u64, Arc<Shared>>,
}

struct Shared {
    state: AtomicU64,
    reaped: Notify,
}

/// How a new connection was admitted.
pub enum Admission {
    Admitted(Slot),
    /// Admitted in the place of an idle connection, which is being closed.
    ReapedIdle(Slot),
    /// Every slot is busy.
    Refused,
}

impl Slots {
    pub fn new(limit: usize) -> Arc<Slots> {
        Arc::new(Slots {
            limit: limit.max(1),
            ticks: AtomicU64::new(0),
            table: Mutex::new(Table { used: 0, next_id: 0, connections: HashMap::new() }),
            open: AtomicUsize::new(0),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The next tick: later than every tick before it, never `BUSY` or
    /// `REAPED` (a u64 counter does not wrap).
    fn now(&self) -> u64 {
        self.ticks.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Takes a slot for a new connection, which starts idle.
    pub fn admit(self: &Arc<Slots>) -> Admission {
        let mut table = self.table.lock();
        let reaped = if table.used < self.limit {
            table.used += 1;
            false
        } else if Self::reap_idle_longest(&table) {
            true
        } else {
            return Admission::Refused;
        };
        let id = table.next_id;
        table.next_id += 1;
        let shared = Arc::new(Shared { state: AtomicU64::new(self.now()), reaped: Notify::new() });
        table.connections.insert(id, shared.clone());
        self.open.fetch_add(1, Ordering::AcqRel);
        let slot = Slot { slots: self.clone(), id, shared };
        if reaped {
            Admission::ReapedIdle(slot)
        } else {
            Admission::Admitted(slot)
        }
    }

    /// Marks the connection idle longest as reaped and wakes it; `false`
    /// when no connection is idle.
    fn reap_idle_longest(table: &Table) -> bool {
        loop {
            let oldest = table
                .connections
                .values()
                .filter_map(|c| {
                    let since = c.state.load(Ordering::Acquire);
                    (since != BUSY && since != REAPED).then_some((since, c))
                })
                .min_by_key(|(since, _)| *since);
            let Some((since, victim)) = oldest else { return false };
            // Lost a race with the victim becoming busy: look again.
            if victim.state.compare_exchange(since, REAPED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                victim.reaped.notify_one();
                return true;
            }
        }
    }
}

/// One connection's slot; released when dropped.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    shared: Arc<Shared>,
}

impl Slot {
    /// Nothing buffered, nothing running: the connection may be reaped.
    /// Returns `false` if it already was.
    pub fn set_idle(&self) -> bool {
        let state = &self.shared.state;
        let now = self.slots.now();
        state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| (s != REAPED).then_some(now)).is_ok()
    }

    /// Input arrived: the connection may no longer be reaped. Returns
    /// `false` if it was reaped first (then it must close).
    pub fn set_busy(&self) -> bool {
        let state = &self.shared.state;
        state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| (s != REAPED).then_some(BUSY)).is_ok()
    }

    /// Whether another connection is open, so its writes may be executing
    /// in the same turn as this one's and may join its group commit.
    pub fn others_open(&self) -> bool {
        self.slots.open.load(Ordering::Acquire) > 1
    }

    /// Completes once this connection has been reaped.
    pub async fn reaped(&self) {
        while self.shared.state.load(Ordering::Acquire) != REAPED {
            self.shared.reaped.notified().await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.slots.table.lock();
        table.connections.remove(&self.id);
        self.slots.open.fetch_sub(1, Ordering::AcqRel);
        if self.shared.state.load(Ordering::Acquire) != REAPED {
            table.used -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(a: Admission) -> Option<Slot> {
        match a {
            Admission::Admitted(s) | Admission::ReapedIdle(s) => Some(s),
            Admission::Refused => None,
        }
    }

    #[test]
    fn busy_connections_are_never_reaped() {
        let slots = Slots::new(2);
        let a = admitted(slots.admit()).unwrap();
        let b = admitted(slots.admit()).unwrap();
        assert!(a.set_busy() && b.set_busy());
        assert!(matches!(slots.admit(), Admission::Refused));
        drop(a);
        assert!(matches!(slots.admit(), Admission::Admitted(_)));
    }

    #[test]
    fn the_idle_connection_makes_room_and_keeps_its_slot_count() {
        let slots = Slots::new(2);
        let a = admitted(slots.admit()).unwrap();
        let b = admitted(slots.admit()).unwrap();
        assert!(b.set_busy());
        let c = match slots.admit() {
            Admission::ReapedIdle(c) => c,
            _ => panic!("a was idle"),
        };
        // a learns it was reaped and may not start work.
        assert!(!a.set_busy());
        assert!(!a.set_idle());
        drop(a);
        // a's slot went to c: still full, and c (idle) is the next victim.
        let d = match slots.admit() {
            Admission::ReapedIdle(d) => d,
            _ => panic!("c was idle"),
        };
        assert!(!c.set_busy());
        drop((b, c));
        assert_eq!(slots.table.lock().used, 1, "only the last newcomer's slot remains");
        drop(d);
        assert_eq!(slots.table.lock().used, 0);
    }

    #[test]
    fn a_connection_knows_whether_others_are_open() {
        let slots = Slots::new(2);
        let a = admitted(slots.admit()).unwrap();
        assert!(!a.others_open());
        let b = admitted(slots.admit()).unwrap();
        assert!(a.others_open() && b.others_open());
        // A reaped connection counts until it has closed.
        assert!(b.set_busy());
        let c = match slots.admit() {
            Admission::ReapedIdle(c) => c,
            _ => panic!("a was idle"),
        };
        assert!(c.others_open());
        drop((a, b));
        assert!(!c.others_open());
    }

    #[tokio::test]
    async fn a_reaped_connection_is_woken() {
        let slots = Slots::new(1);
        let a = admitted(slots.admit()).unwrap();
        let waiter = tokio::spawn(async move {
            a.reaped().await;
        });
        let _b = admitted(slots.admit()).unwrap();
        assert!(waiter.await.is_ok());
    }
}
