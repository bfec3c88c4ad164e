//! Cluster mode end to end (docs/cluster.md): a real etcd (Debian's
//! etcd-server at /usr/bin/etcd, started here on loopback ports with a
//! temporary data directory) and real `karma` processes.
//!
//! * `failover_under_load_keeps_every_replicated_write`: 2 shards x 2 nodes,
//!   one writer per shard with idempotency keys that retries through
//!   failovers; a shard leader is SIGKILLed under load (the writes it
//!   acknowledged and had not yet shipped may be lost: counted and printed),
//!   the other shard's leader after its slave caught up (nothing may be
//!   lost); both killed nodes come back as slaves and converge.
//! * `partitioned_leader_stops_writes_before_a_new_leader_starts`: the
//!   leader's etcd traffic goes through a proxy the test cuts; the old
//!   leader's last accepted write comes before the new leader's first.
//!
//! The client's cluster mode has tests of its own (cluster_client.rs); the
//! harness (etcd, nodes) is in common/cluster.rs. The tests fail (never
//! skip) when etcd is missing: `scripts/test` installs it.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use common::cluster::{karma_cluster_tool, u, wait_caught_up, wait_for, Conn, EtcdServer, Node, BUCKET, CLUSTER, TTL};
use karma_cluster::{admin, shard_of, ClusterPaths, Etcd, LeaderRecord};
use serde_json::json;

// ---------------------------------------------------------------------------
// a writer that follows the shard leader
// ---------------------------------------------------------------------------

/// One acknowledged increment.
#[derive(Clone, Debug)]
struct Ack {
    key: u64,
    /// The node that answered.
    node: String,
}

#[derive(Default)]
struct WriterState {
    acks: Mutex<Vec<Ack>>,
    /// Requests that failed and were sent again (same idempotency key).
    retries: AtomicUsize,
    /// While set the writer sends nothing new.
    paused: AtomicBool,
    /// Set by the writer while it waits in a pause (nothing in flight).
    idle: AtomicBool,
    stop: AtomicBool,
}

/// Increments keys of `shard` one at a time, each with its own idempotency
/// key, against whichever node etcd names leader; a failure of any kind
/// (connection, `forbidden`, no leader) is retried with the same key, so no
/// error reaches the caller and no retry counts twice.
fn writer(etcd: Etcd, shard: u32, series: &'static str, keys: Vec<u64>, state: Arc<WriterState>) {
    let paths = ClusterPaths::new(CLUSTER);
    let mut conn: Option<(String, Conn)> = None;
    let mut i = 0u64;
    while !state.stop.load(Ordering::SeqCst) {
        if state.paused.load(Ordering::SeqCst) {
            state.idle.store(true, Ordering::SeqCst);
            sleep(Duration::from_millis(5));
            continue;
        }
        state.idle.store(false, Ordering::SeqCst);
        let key = keys[(i as usize) % keys.len()];
        let request = json!({"v": 2, "op": "counter.increment", "series": series, "key": key,
                             "bucket": BUCKET, "idempotency_key": format!("s{shard}-{i}")});
        loop {
            if conn.is_none() {
                let leader =
                    etcd.get(&paths.leader(shard)).ok().flatten().and_then(|kv| LeaderRecord::parse(&kv.value));
                let port = leader.as_ref().and_then(|l| l.advertise.rsplit_once(':')?.1.parse::<u16>().ok());
                if let (Some(leader), Some(port)) = (leader, port) {
                    conn = Conn::open(port).map(|c| (leader.node_id, c));
                }
            }
            let reply = conn.as_mut().and_then(|(_, c)| c.call(&request));
            match reply {
                Some(r) if r["success"] == true => {
                    let node = conn.as_ref().map(|(n, _)| n.clone()).unwrap_or_default();
                    state.acks.lock().expect("acks").push(Ack { key, node });
                    break;
                }
                Some(r) => {
                    // Refusals during a failover are retried; these would be bugs.
                    let code = r["error_code"].as_str().unwrap_or("");
                    assert!(
                        !matches!(code, "idempotency_conflict" | "validation_error" | "not_found"),
                        "unexpected answer to {request}: {r}"
                    );
                }
                None => {}
            }
            conn = None;
            state.retries.fetch_add(1, Ordering::Relaxed);
            sleep(Duration::from_millis(10));
        }
        i += 1;
    }
}

fn acks_from(state: &WriterState, node: &str) -> usize {
    state.acks.lock().expect("acks").iter().filter(|a| a.node == node).count()
}

fn per_key(acks: &[Ack]) -> HashMap<u64, u64> {
    let mut out = HashMap::new();
    for a in acks {
        *out.entry(a.key).or_insert(0) += 1;
    }
    out
}

/// SIGKILLs the leader of `shard`; returns the time until etcd named the
/// other node leader and until that node acknowledged a write.
fn kill_leader(etcd: &EtcdServer, shard: u32, leader: &mut Node, state: &WriterState) -> (Duration, Duration) {
    let killed_at = Instant::now();
    leader.kill();
    let new = wait_for("a new leader", || etcd.leader(shard).filter(|l| l.node_id != leader.id));
    let elected = killed_at.elapsed();
    let before = acks_from(state, &new.node_id);
    wait_for("the new leader's first acknowledged write", || (acks_from(state, &new.node_id) > before).then_some(()));
    (elected, killed_at.elapsed())
}

#[test]
fn failover_under_load_keeps_every_replicated_write() {
    let etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    let init = karma_cluster_tool(&endpoint, &["init", "--shards=2"]);
    assert!(init.status.success(), "karma cluster init: {init:?}");
    let again = karma_cluster_tool(&endpoint, &["init", "--shards=3"]);
    assert!(!again.status.success(), "a second init must not change the shard count");
    // The first node of each shard starts alone so that it leads.
    let mut a0 = Node::start("s0a", 0, &endpoint);
    let mut a1 = Node::start("s1a", 1, &endpoint);
    etcd.wait_leader(0, "s0a");
    etcd.wait_leader(1, "s1a");
    let b0 = Node::start("s0b", 0, &endpoint);
    let b1 = Node::start("s1b", 1, &endpoint);
    for (shard, id) in [(0, "s0b"), (1, "s1b")] {
        wait_for(&format!("{id} to register as a slave"), || etcd.node(shard, id).filter(|n| n.role == "slave"));
    }

    let keys: Vec<Vec<u64>> = (0..2).map(|s| (0..40u64).filter(|k| shard_of(*k, 2) == s).collect()).collect();
    let states: Vec<Arc<WriterState>> = (0..2).map(|_| Arc::new(WriterState::default())).collect();
    let writers: Vec<_> = (0..2u32)
        .map(|s| {
            let (etcd, keys, state) = (etcd.client(), keys[s as usize].clone(), states[s as usize].clone());
            thread::spawn(move || writer(etcd, s, "hits", keys, state))
        })
        .collect();
    wait_for("load on both shards", || states.iter().all(|s| s.acks.lock().expect("acks").len() >= 300).then_some(()));

    // Shard 0: SIGKILL under load. Every write acknowledged before a point
    // its slave is known to have replayed is safe; later ones may be lost.
    let safe_acks = states[0].acks.lock().expect("acks").len();
    let safe_lsn = u(&a0.status(), "wal_current_lsn");
    wait_for("s0b to replay the safe point", || {
        let s = b0.try_call(&json!({"v": 2, "op": "replication.status"}))?;
        (s["response"]["replayed_lsn"].as_u64() >= Some(safe_lsn)).then_some(())
    });
    let (elected0, writable0) = kill_leader(&etcd, 0, &mut a0, &states[0]);

    // Shard 1: pause, let the slave catch up, SIGKILL: nothing may be lost.
    states[1].paused.store(true, Ordering::SeqCst);
    wait_for("shard 1 writer to pause", || states[1].idle.load(Ordering::SeqCst).then_some(()));
    wait_caught_up(&a1, &b1);
    states[1].paused.store(false, Ordering::SeqCst);
    let (elected1, writable1) = kill_leader(&etcd, 1, &mut a1, &states[1]);

    // More load on the new leaders, then stop.
    let after: Vec<usize> = states.iter().map(|s| s.acks.lock().expect("acks").len()).collect();
    wait_for("load after the failovers", || {
        states.iter().zip(&after).all(|(s, n)| s.acks.lock().expect("acks").len() >= n + 200).then_some(())
    });
    for s in &states {
        s.stop.store(true, Ordering::SeqCst);
    }
    for w in writers {
        w.join().expect("writer");
    }

    // Totals: never more than acknowledged (idempotency keys make retries
    // count once); less only by writes the killed leader acknowledged after
    // the safe point.
    let acks0 = states[0].acks.lock().expect("acks").clone();
    let acks1 = states[1].acks.lock().expect("acks").clone();
    let expected0 = per_key(&acks0);
    let window0 = per_key(&acks0[safe_acks..].iter().filter(|a| a.node == "s0a").cloned().collect::<Vec<_>>());
    let mut lost0 = 0;
    for key in &keys[0] {
        let (want, got) = (expected0.get(key).copied().unwrap_or(0), b0.sum("hits", *key));
        assert!(got <= want, "shard 0 key {key}: total {got} above the {want} acknowledged increments");
        let window = window0.get(key).copied().unwrap_or(0);
        assert!(
            want - got <= window,
            "shard 0 key {key}: {} lost, only {window} were in the failover window",
            want - got
        );
        lost0 += want - got;
    }
    let expected1 = per_key(&acks1);
    for key in &keys[1] {
        let (want, got) = (expected1.get(key).copied().unwrap_or(0), b1.sum("hits", *key));
        assert_eq!(got, want, "shard 1 key {key}: a caught-up slave must lose nothing");
    }
    let window_size: u64 = window0.values().sum();
    println!(
        "lease TTL {TTL} s; shard 0 (killed under load): new leader in etcd after {elected0:?}, first write acknowledged \
         after {writable0:?}; {lost0} of {} acknowledged increments lost ({window_size} acknowledged after the safe point); \
         shard 1 (killed after catch-up): new leader after {elected1:?}, writable after {writable1:?}, 0 of {} lost; \
         retries hidden from the caller: {} and {}",
        acks0.len(),
        acks1.len(),
        states[0].retries.load(Ordering::Relaxed),
        states[1].retries.load(Ordering::Relaxed),
    );

    let status = karma_cluster_tool(&endpoint, &["status"]);
    let table = String::from_utf8_lossy(&status.stdout);
    println!("{table}");
    assert!(status.status.success(), "karma cluster status: {status:?}");
    for line in ["s0b", "s1b"] {
        assert!(table.lines().any(|l| l.contains(line) && l.contains("leader")), "{line} leads in\n{table}");
    }

    // The killed nodes come back as slaves of the new leaders and converge
    // (a0 rebuilds when it holds writes nobody else has).
    a0.launch();
    a1.launch();
    for (shard, node, leader, keys) in [(0, &a0, &b0, &keys[0]), (1, &a1, &b1, &keys[1])] {
        wait_for(&format!("{} to rejoin as a slave", node.id), || {
            etcd.node(shard, &node.id).filter(|n| n.role == "slave")
        });
        assert_eq!(etcd.leader(shard).map(|l| l.node_id), Some(leader.id.clone()));
        let want: Vec<u64> = keys.iter().map(|k| leader.sum("hits", *k)).collect();
        wait_for(&format!("{} to converge on {}'s totals", node.id, leader.id), || {
            (keys.iter().map(|k| node.sum("hits", *k)).collect::<Vec<_>>() == want).then_some(())
        });
    }
}

// ---------------------------------------------------------------------------
// partition
// ---------------------------------------------------------------------------

/// A TCP proxy to etcd that the test can cut: from then on every open
/// connection is closed and every new one is closed at once.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("proxy addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if flag.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else { continue };
                let (f1, f2) = (flag.clone(), flag.clone());
                thread::spawn(move || pipe(client, upstream, &f1));
                thread::spawn(move || pipe(u2, c2, &f2));
            }
        });
        Proxy { port, cut }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either side closes or the proxy is cut
/// (checked every 20 ms), then closes both.
fn pipe(mut from: TcpStream, mut to: TcpStream, cut: &AtomicBool) {
    use std::io::{ErrorKind, Read};
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = [0u8; 8192];
    while !cut.load(Ordering::SeqCst) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// What a client saw of one write.
#[derive(Clone, Debug)]
struct Outcome {
    sent: Instant,
    answered: Instant,
    /// `None` for success, else the error code (or "connection").
    error: Option<String>,
}

/// Sends increments to `node` until `stop`, recording each outcome.
fn hammer(port: u16, prefix: &'static str, stop: Arc<AtomicBool>, acked: Arc<AtomicUsize>) -> Vec<Outcome> {
    let mut out = Vec::new();
    let mut conn = None;
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        if conn.is_none() {
            conn = Conn::open(port);
        }
        let request = json!({"v": 2, "op": "counter.increment", "series": "p", "key": 1, "bucket": BUCKET,
                             "idempotency_key": format!("{prefix}-{i}")});
        let sent = Instant::now();
        let reply = conn.as_mut().and_then(|c| c.call(&request));
        let error = match &reply {
            Some(r) if r["success"] == true => {
                acked.fetch_add(1, Ordering::SeqCst);
                None
            }
            Some(r) => Some(r["error_code"].as_str().unwrap_or("?").to_owned()),
            None => {
                conn = None;
                Some("connection".to_owned())
            }
        };
        out.push(Outcome { sent, answered: Instant::now(), error });
        i += 1;
        sleep(Duration::from_millis(2));
    }
    out
}

#[test]
fn partitioned_leader_stops_writes_before_a_new_leader_starts() {
    let etcd = EtcdServer::start();
    assert!(admin::init(&etcd.client(), CLUSTER, 1).expect("init"), "a new cluster");
    let proxy = Proxy::start(etcd.port);
    let a = Node::start("pa", 0, &format!("127.0.0.1:{}", proxy.port));
    etcd.wait_leader(0, "pa");
    let b = Node::start("pb", 0, &etcd.endpoint());
    wait_for("pb to register as a slave", || etcd.node(0, "pb").filter(|n| n.role == "slave"));

    let stop = Arc::new(AtomicBool::new(false));
    let b_acked = Arc::new(AtomicUsize::new(0));
    let on_a = {
        let (port, stop) = (a.port, stop.clone());
        thread::spawn(move || hammer(port, "a", stop, Arc::default()))
    };
    let on_b = {
        let (port, stop, acked) = (b.port, stop.clone(), b_acked.clone());
        thread::spawn(move || hammer(port, "b", stop, acked))
    };
    // pb follows pa before the cut.
    wait_for("pb to replicate pa's writes", || (b.sum("p", 1) > 0).then_some(()));
    let cut_at = Instant::now();
    proxy.cut();
    wait_for("pb to lead", || etcd.leader(0).filter(|l| l.node_id == "pb"));
    // Let pb take writes for a while, and keep asking pa meanwhile.
    wait_for("pb to accept a write", || (b_acked.load(Ordering::SeqCst) > 0).then_some(()));
    sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::SeqCst);
    let on_a = on_a.join().expect("writer on pa");
    let on_b = on_b.join().expect("writer on pb");

    let a_ok_before_cut = on_a.iter().filter(|o| o.error.is_none() && o.answered < cut_at).count();
    assert!(a_ok_before_cut > 0, "pa took no writes before the cut: {:?}", on_a.last());
    let a_last_ok =
        on_a.iter().filter(|o| o.error.is_none()).map(|o| o.answered).max().expect("pa acknowledged writes");
    let b_first_ok = on_b.iter().find(|o| o.error.is_none()).map(|o| o.sent).expect("pb acknowledged a write");
    let a_refusals: Vec<&Outcome> = on_a.iter().filter(|o| o.sent > a_last_ok).collect();
    assert!(!a_refusals.is_empty(), "pa never refused a write after the cut");
    assert!(
        a_refusals.iter().all(|o| o.error.as_deref() == Some("forbidden")),
        "pa must refuse with forbidden: {:?}",
        a_refusals.iter().find(|o| o.error.as_deref() != Some("forbidden"))
    );
    assert!(
        a_last_ok < b_first_ok,
        "pa's last acknowledged write came {:?} after pb's first was sent",
        a_last_ok - b_first_ok
    );
    println!(
        "lease TTL {TTL} s; after the cut: pa's last acknowledged write at {:?}, pb's first write sent at {:?} \
         (gap {:?}); pa refused {} writes with forbidden, pb acknowledged {}",
        a_last_ok.saturating_duration_since(cut_at),
        b_first_ok - cut_at,
        b_first_ok - a_last_ok,
        a_refusals.len(),
        on_b.iter().filter(|o| o.error.is_none()).count(),
    );

    // Healed, pa learns of pb and follows it.
    proxy.heal();
    wait_for("pa to rejoin as a slave", || etcd.node(0, "pa").filter(|n| n.role == "slave"));
    let total = b.sum("p", 1);
    assert!(total as usize >= on_b.iter().filter(|o| o.error.is_none()).count());
    wait_for("pa to converge on pb's data", || (a.sum("p", 1) == total).then_some(()));
}

#[test]
fn nodes_refuse_a_shard_the_cluster_does_not_have() {
    let etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    let start = |shard: u32| {
        let mut node = Node::start("x", shard, &endpoint);
        let status = node.wait_exit();
        (status, node.stderr())
    };
    let (status, err) = start(0);
    assert!(!status.success() && err.contains("karma cluster init"), "{status}: {err}");
    assert!(admin::init(&etcd.client(), CLUSTER, 2).expect("init"), "a new cluster");
    let (status, err) = start(2);
    assert!(!status.success() && err.contains("no shard 2"), "{status}: {err}");
}
